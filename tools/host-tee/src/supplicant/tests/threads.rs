// SPDX-License-Identifier: Apache-2.0 OR MIT
//! The supplicant's thread: served requests, interrupted receives, stops
//! while blocked (a channel that blocks in read(2) as the real one blocks
//! in the ioctl), a receive that fails.

use super::*;

/// A channel whose receive blocks in read(2) on a pipe, as the real one
/// blocks in the ioctl: each byte written to the pipe releases one
/// request of the fake; end of file is a receive error.
#[derive(Debug)]
struct PipeChannel {
    inner: FakeChannel,
    rx: OwnedFd,
    receives: Arc<AtomicUsize>,
}

impl SupplicantChannel for PipeChannel {
    type Allocated = FakeShm;

    fn supp_recv(
        &self,
        params: &mut [TeeParam; RECV_PARAMS],
    ) -> Result<(u32, usize), HostTeeError> {
        self.receives.fetch_add(1, Ordering::SeqCst);
        let mut byte = 0u8;
        // SAFETY: reads at most one byte into `byte`, from the pipe `rx` owns.
        let n = unsafe { libc::read(self.rx.as_raw_fd(), (&mut byte as *mut u8).cast(), 1) };
        match n {
            1 => self.inner.supp_recv(params),
            0 => Err(ioctl_err("SUPPL_RECV", libc::ENODEV)),
            _ => Err(ioctl_err(
                "SUPPL_RECV",
                std::io::Error::last_os_error()
                    .raw_os_error()
                    .unwrap_or(libc::EIO),
            )),
        }
    }

    fn supp_send(&self, ret: u32, params: &[TeeParam]) -> Result<(), HostTeeError> {
        self.inner.supp_send(ret, params)
    }

    fn supp_alloc(&self, size: usize) -> Result<FakeShm, HostTeeError> {
        self.inner.supp_alloc(size)
    }
}

/// A pipe: (read end, write end).
pub(super) fn pipe() -> (OwnedFd, OwnedFd) {
    let mut fds = [0; 2];
    // SAFETY: pipe2 writes two fds into `fds`; the result is checked.
    assert_eq!(unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_CLOEXEC) }, 0);
    // SAFETY: both fds were just created and are owned by nobody else.
    unsafe { (OwnedFd::from_raw_fd(fds[0]), OwnedFd::from_raw_fd(fds[1])) }
}

pub(super) fn release_one(tx: &OwnedFd) {
    // SAFETY: writes one byte from a live local to the pipe `tx` owns.
    let n = unsafe { libc::write(tx.as_raw_fd(), b"r".as_ptr().cast(), 1) };
    assert_eq!(n, 1);
}

/// Waits (at most 10 s) until `cond` holds.
pub(super) fn wait_until(what: &str, mut cond: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(10);
    while !cond() {
        assert!(Instant::now() < deadline, "timed out waiting until {what}");
        std::thread::sleep(Duration::from_millis(1));
    }
}

/// Stops `t` on another thread: the result, or a failure after 10 s.
pub(super) fn stop_within_10s(t: SupplicantThread) -> Result<(), SupplicantError> {
    let (done, result) = mpsc::channel();
    std::thread::spawn(move || {
        let _ = done.send(t.stop());
    });
    result
        .recv_timeout(Duration::from_secs(10))
        .expect("the supplicant thread did not stop")
}

#[test]
fn the_thread_serves_until_stopped_even_while_blocked_in_recv() {
    let dir = TempDir::new("thread");
    let inner = FakeChannel::default();
    let (rx, tx) = pipe();
    let receives = Arc::new(AtomicUsize::new(0));
    let chan = PipeChannel {
        inner: inner.clone(),
        rx,
        receives: receives.clone(),
    };
    let config = SupplicantConfig {
        ta_dir: dir.path().join("ta"),
        storage_dir: dir.path().join("storage"),
        quota: StorageQuota::default(),
    };
    let t = SupplicantThread::spawn(chan, config).unwrap();

    // A request served on the thread.
    inner.request(cmd::SHM_ALLOC, &[val(VAL_INOUT, cmd::SHM_TYPE_APPL, 64, 0)]);
    release_one(&tx);
    wait_until("the request is answered", || inner.answers().len() == 1);
    assert_eq!(inner.answers()[0].0, teec::SUCCESS);
    assert_eq!(inner.tee.shm_count(), 1);

    // Interrupted without a stop (EINTR): it receives again.
    wait_until("the thread waits again", || {
        receives.load(Ordering::SeqCst) == 2
    });
    wait_until("an interrupted receive is retried", || {
        t.interrupt();
        std::thread::sleep(Duration::from_millis(2));
        receives.load(Ordering::SeqCst) >= 3
    });
    assert!(!t.is_finished());

    // Stopped while blocked in read(2): the signal gets it out.
    stop_within_10s(t).unwrap();
    assert_eq!(
        inner.tee.shm_count(),
        0,
        "the supplicant's memory is released"
    );
    assert_eq!(inner.answers().len(), 1);
}

#[test]
fn a_failing_receive_ends_the_thread_with_its_error() {
    let dir = TempDir::new("thread-end");
    let (rx, tx) = pipe();
    let chan = PipeChannel {
        inner: FakeChannel::default(),
        rx,
        receives: Arc::new(AtomicUsize::new(0)),
    };
    let t = SupplicantThread::spawn(chan, SupplicantConfig::new(dir.path().join("st"))).unwrap();
    drop(tx);
    wait_until("the thread ends", || t.is_finished());
    let e = stop_within_10s(t).unwrap_err();
    assert!(
        matches!(
            e,
            SupplicantError::Recv(HostTeeError::Ioctl {
                ioctl: "SUPPL_RECV",
                errno: libc::ENODEV
            })
        ),
        "{e}"
    );
}

#[test]
fn the_stop_signal_is_not_the_vcpu_kick() {
    assert_eq!(stop_signal(), libc::SIGRTMIN() + 1);
    assert!(stop_signal() <= libc::SIGRTMAX());
}

/// The relaying supplicant answers requests side by side: one the guest
/// holds (a socket's receive) does not hold the next, each answer goes
/// to its own request (by the meta parameter's id), and a stop ends the
/// workers, the one still waiting for the guest included.
#[test]
fn relayed_requests_are_answered_side_by_side() {
    use crate::relay::{Answer, Relay};

    let inner = FakeChannel::default();
    let (rx, tx) = pipe();
    let chan = PipeChannel {
        inner: inner.clone(),
        rx,
        receives: Arc::new(AtomicUsize::new(0)),
    };
    let relay = Arc::new(Relay::new());
    let t = SupplicantThread::spawn_relay(chan, relay.clone()).unwrap();

    // A socket's receive, then a file system request, both for the guest.
    inner.request(cmd::SOCKET, &[val(VAL_IN, 3, 1, 0)]);
    release_one(&tx);
    wait_until("the first is posted", || relay.has_request());
    let (held, first) = relay.take().unwrap();
    assert_eq!(first.func, cmd::SOCKET);
    inner.request(cmd::FS, &[val(VAL_IN, 7, 0, 0)]);
    release_one(&tx);
    wait_until("the second is posted while the first is held", || {
        relay.has_request()
    });
    let (id, second) = relay.take().unwrap();
    assert_eq!(second.func, cmd::FS);
    assert!(relay.answer(id, Answer::failed(teec::ERROR_ITEM_NOT_FOUND, 1)));
    wait_until("the second is answered", || inner.answers().len() == 1);
    assert_eq!(inner.answers()[0].0, teec::ERROR_ITEM_NOT_FOUND);
    assert_eq!(inner.answers()[0].1[0].a, 7, "its own parameters");

    // Stopped with the first still with the guest: its worker gives up.
    stop_within_10s(t).unwrap();
    assert!(!relay.answer(held, Answer::failed(teec::SUCCESS, 1)));
    assert_eq!(inner.answers().len(), 2);
    assert_eq!(inner.answers()[1].0, teec::ERROR_COMMUNICATION);
    assert_eq!(inner.answers()[1].1[0].a, 3);
}
