// SPDX-License-Identifier: Apache-2.0 OR MIT
//! [`SupplicantThread`]: a supplicant served on a thread of its own until
//! stopped (a relaying one with workers beside it: [`SupplicantThread::spawn_relay`]).
//!
//! The thread spends its life in TEE_IOC_SUPPL_RECV, where the kernel
//! waits interruptibly (optee_supp_recv: wait_for_completion_interruptible).
//! To stop it, the stop flag is set and [`stop_signal`] is sent to the
//! thread, whose handler is installed without SA_RESTART: the ioctl fails
//! with EINTR, and the loop sees the flag. The signal is sent again until
//! the thread has ended, so a signal that lands between the flag's check
//! and the ioctl is not lost for good. An EINTR without the flag (any
//! other signal) just receives again.
//!
//! Stopping never waits long: the thread may be in a storage operation
//! that does not return (storage on a hung network file system, in a
//! call retried on EINTR). After [`STOP_WAIT`] the stop gives up on it
//! and returns [`SupplicantError::Stuck`]: the thread, told to stop, ends
//! by itself when its call returns, and its resources go with it. Nothing
//! served here blocks by design: files are opened with O_NONBLOCK (a FIFO
//! does not block the open) and opens are retried a bounded number of
//! times.

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{mpsc, Arc, Mutex, OnceLock};
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};
use std::{io, ptr};

use std::os::unix::thread::JoinHandleExt;

use super::{Forwarder, Request, Supplicant, SupplicantChannel, SupplicantConfig, SupplicantError};
use crate::relay::Relay;

/// How long [`SupplicantThread::stop`] waits for the thread to end before
/// it leaves it to end on its own.
pub const STOP_WAIT: Duration = Duration::from_secs(2);
use crate::error::HostTeeError;

/// The signal that interrupts a supplicant thread's TEE_IOC_SUPPL_RECV:
/// SIGRTMIN + 1 (the VMM's vCPU kick is SIGRTMIN). Its handler, installed
/// process-wide by the first [`SupplicantThread::spawn`], does nothing:
/// a VMM must not use this signal for anything else.
pub fn stop_signal() -> libc::c_int {
    libc::SIGRTMIN() + 1
}

/// The stop signal's handler: nothing to do, the signal only interrupts
/// the ioctl.
extern "C" fn on_stop_signal(_sig: libc::c_int) {}

/// Installs the stop signal's handler (once per process), without
/// SA_RESTART so that TEE_IOC_SUPPL_RECV returns EINTR.
fn install_handler() -> Result<(), SupplicantError> {
    static INSTALLED: OnceLock<Result<(), i32>> = OnceLock::new();
    let r = INSTALLED.get_or_init(|| {
        let errno = || {
            io::Error::last_os_error()
                .raw_os_error()
                .unwrap_or(libc::EINVAL)
        };
        // SAFETY: sigaction is a plain C struct for which all zeroes is
        // valid (no handler, no flags, an empty mask).
        let mut sa: libc::sigaction = unsafe { std::mem::zeroed() };
        sa.sa_sigaction = on_stop_signal as extern "C" fn(libc::c_int) as libc::sighandler_t;
        sa.sa_flags = 0;
        // SAFETY: `sa.sa_mask` is a valid, writable sigset_t.
        if unsafe { libc::sigemptyset(&mut sa.sa_mask) } != 0 {
            return Err(errno());
        }
        // SAFETY: `sa` is fully initialised and its handler is
        // async-signal-safe (it does nothing); the old action is not
        // asked for.
        if unsafe { libc::sigaction(stop_signal(), &sa, ptr::null_mut()) } != 0 {
            return Err(errno());
        }
        Ok(())
    });
    r.map_err(|e| SupplicantError::Signal(io::Error::from_raw_os_error(e)))
}

/// Unblocks the stop signal in the calling thread (threads inherit their
/// creator's mask, which someone may have changed).
fn unblock_stop_signal() {
    // SAFETY: all zeroes is a valid sigset_t, initialised by sigemptyset
    // before use.
    let mut set: libc::sigset_t = unsafe { std::mem::zeroed() };
    // SAFETY: `set` is a valid sigset_t; pthread_sigmask only changes this
    // thread's mask, and the old mask is not asked for.
    unsafe {
        libc::sigemptyset(&mut set);
        libc::sigaddset(&mut set, stop_signal());
        libc::pthread_sigmask(libc::SIG_UNBLOCK, &set, ptr::null_mut());
    }
}

/// A supplicant serving its channel on a thread named `tee-supplicant`.
/// Stopped by [`SupplicantThread::stop`] or when dropped; the
/// supplicant's files, directories and shared memory are released then.
///
/// Stop it at the VM's teardown, once nothing of the VM is in the TEE:
/// a request the TEE makes after the stop waits until the context is
/// closed (the kernel then fails it).
#[derive(Debug)]
pub struct SupplicantThread {
    stop: Arc<AtomicBool>,
    handle: Option<JoinHandle<Result<(), SupplicantError>>>,
}

impl SupplicantThread {
    /// Creates the storage directory if needed and starts serving
    /// `channel`, a VM's context (such as an `Arc<DevTee>` shared with
    /// the backend).
    pub fn spawn<C: SupplicantChannel>(
        channel: C,
        config: SupplicantConfig,
    ) -> Result<SupplicantThread, SupplicantError> {
        SupplicantThread::serving(Supplicant::new(channel, config)?)
    }

    /// Starts relaying `channel`'s requests to the guest through `relay`
    /// ([`crate::relay`]): the guest's own tee-supplicant serves them.
    /// This thread receives; each request is relayed and answered on a
    /// worker ([`RELAY_WORKERS`] at most, started when none is idle and
    /// kept until the stop), so that one the guest holds long (a socket's
    /// receive) does not hold the others.
    pub fn spawn_relay<C: SupplicantChannel + Sync>(
        channel: C,
        relay: Arc<Relay>,
    ) -> Result<SupplicantThread, SupplicantError> {
        let fwd = Forwarder::new(channel, relay);
        SupplicantThread::start(move |stop: &AtomicBool| serve_relay(&fwd, stop))
    }

    fn serving<S: Serve>(server: S) -> Result<SupplicantThread, SupplicantError> {
        SupplicantThread::start(move |stop: &AtomicBool| serve(server, stop))
    }

    fn start<F>(run: F) -> Result<SupplicantThread, SupplicantError>
    where
        F: FnOnce(&AtomicBool) -> Result<(), SupplicantError> + Send + 'static,
    {
        install_handler()?;
        let stop = Arc::new(AtomicBool::new(false));
        let flag = stop.clone();
        let handle = thread::Builder::new()
            .name("tee-supplicant".into())
            .spawn(move || run(&flag))
            .map_err(SupplicantError::Spawn)?;
        Ok(SupplicantThread {
            stop,
            handle: Some(handle),
        })
    }

    /// Whether the thread has ended (stopped, or on an error).
    pub fn is_finished(&self) -> bool {
        self.handle.as_ref().is_none_or(JoinHandle::is_finished)
    }

    /// Stops the thread and waits for it, at most [`STOP_WAIT`]: `Ok` if
    /// it was serving until now, the error that ended it otherwise,
    /// [`SupplicantError::Stuck`] if it is still in an operation then (it
    /// ends by itself when that returns).
    pub fn stop(mut self) -> Result<(), SupplicantError> {
        self.stop_and_join()
    }

    /// Sends the stop signal without asking the thread to stop (tests:
    /// an interrupted receive is received again).
    #[cfg(test)]
    pub(super) fn interrupt(&self) {
        if let Some(h) = &self.handle {
            // SAFETY: as in stop_and_join: the thread is not joined yet.
            unsafe { libc::pthread_kill(h.as_pthread_t(), stop_signal()) };
        }
    }

    fn stop_and_join(&mut self) -> Result<(), SupplicantError> {
        let Some(handle) = self.handle.take() else {
            return Ok(());
        };
        self.stop.store(true, Ordering::SeqCst);
        let thread = handle.as_pthread_t();
        let mut pause = Duration::from_micros(50);
        let started = Instant::now();
        while !handle.is_finished() {
            if started.elapsed() >= STOP_WAIT {
                // Dropping the handle detaches the thread: its id is not
                // used again.
                drop(handle);
                return Err(SupplicantError::Stuck(started.elapsed()));
            }
            // SAFETY: `thread` is the supplicant thread, which is not
            // joined nor detached yet, so its id is still valid (even if
            // it has just ended); the signal's handler is installed
            // (spawn did it).
            unsafe { libc::pthread_kill(thread, stop_signal()) };
            thread::sleep(pause);
            pause = (pause * 2).min(Duration::from_millis(20));
        }
        handle.join().unwrap_or(Err(SupplicantError::Panicked))
    }
}

impl Drop for SupplicantThread {
    fn drop(&mut self) {
        // A receive error was logged by the thread when it ended.
        match self.stop_and_join() {
            Err(e @ SupplicantError::Panicked) => log::error!("{e}"),
            Err(e @ SupplicantError::Stuck(_)) => log::warn!("{e}"),
            _ => {}
        }
    }
}

/// What a supplicant thread runs: a request received, then answered.
trait Serve: Send + 'static {
    fn receive(&self) -> Result<Request, HostTeeError>;
    /// Serves (or relays) `req` and sends the answer; `stop` ends a wait
    /// for the guest.
    fn answer(&mut self, req: Request, stop: &AtomicBool) -> Result<(), HostTeeError>;
}

impl<C: SupplicantChannel> Serve for Supplicant<C> {
    fn receive(&self) -> Result<Request, HostTeeError> {
        Supplicant::receive(self)
    }
    fn answer(&mut self, req: Request, _stop: &AtomicBool) -> Result<(), HostTeeError> {
        Supplicant::answer(self, req)
    }
}

/// The thread: receive, serve, answer, until `stop` is set or the receive
/// fails.
fn serve<S: Serve>(mut supplicant: S, stop: &AtomicBool) -> Result<(), SupplicantError> {
    unblock_stop_signal();
    while let Some(req) = next_request(|| supplicant.receive(), stop, "served")? {
        if let Err(e) = supplicant.answer(req, stop) {
            // The request is lost (the kernel aborted it, or refused the
            // answer); the next ones may still be served.
            log::warn!("supplicant: answering a request: {e}");
        }
    }
    Ok(())
}

/// The next request, received again after an interruption (EINTR);
/// `None` once `stop` is set; a failed receive ends the serving (said
/// once: no more of the VM's requests are `what`).
fn next_request(
    receive: impl Fn() -> Result<Request, HostTeeError>,
    stop: &AtomicBool,
    what: &str,
) -> Result<Option<Request>, SupplicantError> {
    loop {
        if stop.load(Ordering::SeqCst) {
            return Ok(None);
        }
        match receive() {
            Ok(req) => return Ok(Some(req)),
            Err(HostTeeError::Ioctl {
                errno: libc::EINTR, ..
            }) => {}
            Err(e) => {
                log::error!("supplicant: {e}: no more requests of this VM are {what}");
                return Err(SupplicantError::Recv(e));
            }
        }
    }
}

/// The most requests a partition's relaying supplicant answers at once:
/// more than the OP-TEE threads a VM may hold (each request is made by
/// one), so that in practice every request has a worker at once.
pub const RELAY_WORKERS: usize = 16;

/// The relaying supplicant: receives here, until `stop` is set or the
/// receive fails; relays and answers each request on a worker, started
/// when none is idle (at most [`RELAY_WORKERS`]; beyond that requests
/// queue for the next idle one). The workers end with the receiving:
/// those waiting for the guest see `stop` (the relay looks at it), and
/// all are waited for before this returns.
fn serve_relay<C: SupplicantChannel + Sync>(
    fwd: &Forwarder<C>,
    stop: &AtomicBool,
) -> Result<(), SupplicantError> {
    unblock_stop_signal();
    let (tx, rx) = mpsc::channel::<Request>();
    let rx = Mutex::new(rx);
    let idle = AtomicUsize::new(0);
    thread::scope(|scope| {
        let mut workers = 0;
        let result = loop {
            let req = match next_request(|| super::receive(fwd.channel()), stop, "relayed") {
                Ok(Some(req)) => req,
                Ok(None) => break Ok(()),
                Err(e) => break Err(e),
            };
            if idle.load(Ordering::SeqCst) == 0 && workers < RELAY_WORKERS {
                let (rx, idle) = (&rx, &idle);
                let worker = thread::Builder::new()
                    .name("tee-supp-relay".into())
                    .spawn_scoped(scope, move || relay_worker(fwd, rx, idle, stop));
                match worker {
                    Ok(_) => workers += 1,
                    // The ones there serve it, later.
                    Err(e) if workers > 0 => {
                        log::warn!("supplicant: cannot start a relay worker: {e}")
                    }
                    Err(e) => break Err(SupplicantError::Spawn(e)),
                }
            }
            if tx.send(req).is_err() {
                break Ok(());
            }
        };
        // The workers' receive fails once the queue is empty: they end.
        drop(tx);
        result
    })
}

/// A relaying worker: takes a request from the queue, relays it and
/// answers it, until the queue is closed.
fn relay_worker<C: SupplicantChannel + Sync>(
    fwd: &Forwarder<C>,
    queue: &Mutex<mpsc::Receiver<Request>>,
    idle: &AtomicUsize,
    stop: &AtomicBool,
) {
    loop {
        idle.fetch_add(1, Ordering::SeqCst);
        let req = queue.lock().unwrap_or_else(|e| e.into_inner()).recv();
        idle.fetch_sub(1, Ordering::SeqCst);
        let Ok(req) = req else {
            return;
        };
        if let Err(e) = fwd.answer(req, stop) {
            // As for the serving thread: this request is lost, not the
            // next ones.
            log::warn!("supplicant: answering a request: {e}");
        }
    }
}
