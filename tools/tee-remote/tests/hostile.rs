// SPDX-License-Identifier: Apache-2.0 OR MIT
//! The service's per-peer machinery against peers that mean it harm, on
//! the host TEE backend (HostTee on a fake device, whose calls run on
//! worker threads and park as on the real /dev/tee): session opens in
//! progress counted against max_sessions, the bytes parked calls hold
//! bounded over all of a peer's VMs, and one peer's teardown during a
//! long TA call holding up nobody else; the call wait a peer asks for,
//! within its grant.

use std::ptr::NonNull;
use std::sync::Arc;
use std::time::{Duration, Instant};

use host_tee::fake::{fake_cmd, FAKE_TA};
use host_tee::{CallResult, FakeTee, HostTee, HostTeeConfig, HostTeeError, TeeDevice, TeeParam};
use optee_mediator::backend::Backend;
use optee_mediator::msg::teec;
use optee_mediator::{Policy, Quotas};
use tee_remote::policy::PeerLimits;
use tee_remote::server::{Connection, Service};
use tee_remote::wire::{self, Request, Response};

/// The service on the host TEE as tosfwd-teed runs it: each VM a backend
/// of its own, its context from `open`.
fn host_service<D: TeeDevice>(open: impl Fn() -> D + Send + Sync + 'static) -> Arc<Service> {
    let config = HostTeeConfig::default();
    let open = Arc::new(open);
    Service::per_vm(
        config.thread_count,
        config.revision,
        Box::new(move |_| {
            let open = open.clone();
            // SAFETY: the service's memory (tee_remote::shadow::Shadow)
            // has no host mapping: nothing is registered from it.
            let tee = unsafe { HostTee::new(config, move || Ok(open())) };
            Ok(Box::new(tee) as Box<dyn Backend + Send>)
        }),
    )
}

fn call(command: wire::Command, session: u32, params: Vec<wire::Param>) -> wire::Call {
    wire::Call {
        command,
        session,
        cancel_id: 0,
        params,
    }
}

fn open_fake() -> wire::Call {
    call(
        wire::Command::OpenSession {
            ta: FAKE_TA,
            client: [0; 16],
            login: 0,
        },
        0,
        Vec::new(),
    )
}

fn step(r: Response) -> wire::Step {
    match r {
        Response::Step(a) => a.step,
        other => panic!("not a step: {other:?}"),
    }
}

/// Drives a call on `thread` from its first answer to its end (the host
/// TEE parks it in FOREIGN_INTR until its worker is done): its outcome.
fn finish(c: &mut Connection, client: u16, thread: u32, first: Response) -> wire::Outcome {
    let end = Instant::now() + Duration::from_secs(20);
    let mut s = step(first);
    loop {
        match s {
            wire::Step::Done(o) => return o,
            wire::Step::Rpc(wire::RpcRequest::ForeignIntr) => {}
            other => panic!("unexpected RPC {other:?}"),
        }
        assert!(Instant::now() < end, "the call never finished");
        std::thread::sleep(Duration::from_millis(2));
        s = step(
            c.handle(Request::Resume {
                client,
                thread,
                reply: wire::Reply::ForeignIntr,
            })
            .unwrap(),
        );
    }
}

#[test]
fn eight_concurrent_opens_under_max_sessions_1_give_one_session() {
    let fake = FakeTee::new();
    let f = fake.clone();
    let service = host_service(move || f.clone());
    let policy = Policy {
        quotas: Quotas {
            max_sessions: 1,
            ..Quotas::default()
        },
        ..Policy::default()
    };
    let mut c = Connection::new(service, policy, "test peer".to_owned());
    assert_eq!(
        c.handle(Request::VmCreated { client: 1 }).unwrap(),
        Response::Created(Ok(()))
    );
    // Eight opens, one per thread, all in the TEE at once.
    fake.close_gate();
    let firsts: Vec<Response> = (0..8)
        .map(|thread| {
            c.handle(Request::Start {
                client: 1,
                thread,
                call: open_fake(),
            })
            .unwrap()
        })
        .collect();
    fake.open_gate();
    let opened = firsts
        .into_iter()
        .enumerate()
        .map(|(thread, r)| finish(&mut c, 1, thread as u32, r))
        .filter(|o| o.ret == teec::SUCCESS)
        .count();
    assert_eq!(opened, 1, "sessions opened under max_sessions = 1");
    assert_eq!(fake.session_count(), 1, "sessions in the TEE");
}

/// The function of [`SlowTee`] that takes [`SLOW`] in the TEE, whatever
/// cancellation asks (as a TA that never checks for it).
const SLOW_FUNC: u32 = 0x5105;
const SLOW: Duration = Duration::from_secs(4);
/// How many [`SLOW_FUNC`] calls have reached the TEE: a call the pool has
/// queued but not started is dropped at teardown, never run.
static SLOW_ENTERED: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);

/// The fake TEE with one TA function that takes four seconds.
#[derive(Debug, Clone, Default)]
struct SlowTee(FakeTee);

impl TeeDevice for SlowTee {
    type Registered = <FakeTee as TeeDevice>::Registered;
    type Allocated = <FakeTee as TeeDevice>::Allocated;

    fn version(&self) -> Result<tee_uapi::sys::tee_ioctl_version_data, HostTeeError> {
        self.0.version()
    }
    fn open_session(
        &self,
        uuid: [u8; 16],
        login: host_tee::ClientLogin,
        cancel_id: u32,
        params: &mut [TeeParam],
    ) -> Result<(u32, CallResult), HostTeeError> {
        self.0.open_session(uuid, login, cancel_id, params)
    }
    fn invoke(
        &self,
        session: u32,
        func: u32,
        cancel_id: u32,
        params: &mut [TeeParam],
    ) -> Result<CallResult, HostTeeError> {
        if func == SLOW_FUNC {
            SLOW_ENTERED.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
            std::thread::sleep(SLOW);
            return Ok(CallResult {
                ret: teec::SUCCESS,
                origin: teec::ORIGIN_TRUSTED_APP,
            });
        }
        self.0.invoke(session, func, cancel_id, params)
    }
    fn cancel(&self, session: u32, cancel_id: u32) -> Result<(), HostTeeError> {
        self.0.cancel(session, cancel_id)
    }
    fn close_session(&self, session: u32) -> Result<(), HostTeeError> {
        self.0.close_session(session)
    }
    unsafe fn shm_register(
        &self,
        addr: NonNull<u8>,
        len: usize,
    ) -> Result<Self::Registered, HostTeeError> {
        // SAFETY: the caller's promise, passed on.
        unsafe { self.0.shm_register(addr, len) }
    }
    fn shm_alloc(&self, size: usize) -> Result<Self::Allocated, HostTeeError> {
        self.0.shm_alloc(size)
    }
}

/// A VM with a session of the fake TA on `c`: the session.
fn vm_with_session(c: &mut Connection, client: u16) -> u32 {
    assert_eq!(
        c.handle(Request::VmCreated { client }).unwrap(),
        Response::Created(Ok(()))
    );
    let r = c
        .handle(Request::Start {
            client,
            thread: 0,
            call: open_fake(),
        })
        .unwrap();
    let o = finish(c, client, 0, r);
    assert_eq!(o.ret, teec::SUCCESS);
    o.session
}

#[test]
fn a_vm_torn_down_during_a_4_s_ta_call_holds_up_no_other_peer() {
    let service = host_service(SlowTee::default);
    let mut a = Connection::new(service.clone(), Policy::default(), "peer A".to_owned());
    let session = vm_with_session(&mut a, 1);
    // Peer A's call: four seconds in the TEE.
    let slow = call(
        wire::Command::Invoke { func: SLOW_FUNC },
        session,
        Vec::new(),
    );
    let r = a
        .handle(Request::Start {
            client: 1,
            thread: 1,
            call: slow,
        })
        .unwrap();
    assert_eq!(
        step(r),
        wire::Step::Rpc(wire::RpcRequest::ForeignIntr),
        "the call is under way"
    );
    // In the TEE, not only queued for a worker.
    let t = Instant::now();
    while SLOW_ENTERED.load(std::sync::atomic::Ordering::SeqCst) == 0 {
        assert!(
            t.elapsed() < Duration::from_secs(10),
            "the call never reached the TEE"
        );
        std::thread::sleep(Duration::from_millis(1));
    }
    // Peer A goes: its VM's teardown waits for that call.
    let teardown = std::thread::spawn(move || {
        let t = Instant::now();
        a.handle(Request::VmDestroyed { client: 1 }).unwrap();
        drop(a);
        t.elapsed()
    });
    std::thread::sleep(Duration::from_millis(200));
    // Peer B meanwhile: a VM, a session, a call, at once.
    let t = Instant::now();
    let mut b = Connection::new(service, Policy::default(), "peer B".to_owned());
    let session = vm_with_session(&mut b, 1);
    let inc = call(
        wire::Command::Invoke {
            func: fake_cmd::INC,
        },
        session,
        vec![wire::Param::Value {
            dir: wire::Dir::InOut,
            a: 41,
            b: 0,
            c: 0,
        }],
    );
    let r = b
        .handle(Request::Start {
            client: 1,
            thread: 0,
            call: inc,
        })
        .unwrap();
    let o = finish(&mut b, 1, 0, r);
    let took = t.elapsed();
    assert_eq!(o.ret, teec::SUCCESS);
    assert_eq!(o.params[0], wire::ParamOut::Value { a: 42, b: 0, c: 0 });
    let torn = teardown.join().unwrap();
    eprintln!("peer A's teardown took {torn:?}; peer B's VM, session and call {took:?}");
    assert!(
        torn >= SLOW - Duration::from_millis(500),
        "peer A's teardown waited for its call ({torn:?})"
    );
    assert!(
        took < Duration::from_secs(1),
        "peer B waited {took:?} for peer A's teardown"
    );
}

#[test]
fn the_bytes_a_peers_parked_calls_hold_are_bounded_over_all_its_vms() {
    let fake = FakeTee::new();
    let f = fake.clone();
    let service = host_service(move || f.clone());
    let limits = PeerLimits {
        max_call_bytes: 1 << 20,
        ..PeerLimits::default()
    };
    let mut c = Connection::with_limits(service, Policy::default(), limits, "peer".to_owned());
    let sessions: Vec<u32> = (0..4).map(|vm| vm_with_session(&mut c, vm)).collect();
    // Each VM parks a call holding 400 KiB of its memory.
    fake.close_gate();
    let held = 400 << 10;
    let rets: Vec<u32> = sessions
        .iter()
        .zip(0u16..)
        .map(|(&session, vm)| {
            let big = wire::Param::Memref {
                dir: wire::Dir::InOut,
                mem: Some(wire::Span {
                    buffer: wire::SpanBuffer::Temporary(wire::Buffer {
                        page_offset: 0,
                        size: held,
                    }),
                    offset: 0,
                    data: vec![7; held as usize],
                }),
                size: held,
            };
            let inc = call(
                wire::Command::Invoke {
                    func: fake_cmd::INC,
                },
                session,
                vec![big],
            );
            match step(
                c.handle(Request::Start {
                    client: vm,
                    thread: 1,
                    call: inc,
                })
                .unwrap(),
            ) {
                wire::Step::Rpc(wire::RpcRequest::ForeignIntr) => teec::SUCCESS,
                wire::Step::Done(o) => o.ret,
                other => panic!("{other:?}"),
            }
        })
        .collect();
    fake.wait_held(2);
    assert_eq!(
        rets,
        [
            teec::SUCCESS,
            teec::SUCCESS,
            teec::ERROR_OUT_OF_MEMORY,
            teec::ERROR_OUT_OF_MEMORY
        ],
        "two calls of 400 KiB fit in 1 MiB, not a third, whichever VM"
    );
    fake.open_gate();
}

#[test]
fn a_greeting_is_small_and_its_name_bounded() {
    use std::io::Write;
    use std::os::unix::net::UnixStream;
    use tee_remote::frame::{self, MAX_GREETING};
    use tee_remote::policy::{Grant, Peer};
    use tee_remote::server::{self, Ended};
    use tee_remote::wire::{Hello, MAX_NAME};

    let long = Hello {
        name: "n".repeat(MAX_NAME + 1),
        ..Hello::new("")
    };
    let why = server::check_hello(&long).unwrap_err();
    assert_eq!(why, "a name of 257 bytes is over the 256-byte limit");
    assert_eq!(
        server::check_hello(&Hello::new(&"n".repeat(MAX_NAME))),
        Ok(())
    );
    // A peer announcing a greeting over the limit is dropped from the
    // length alone, having sent nothing more.
    let service = Service::new(Box::new(optee_mediator::UserTee::new(
        optee_mediator::UteeConfig::default(),
    )));
    let (mut a, mut b) = UnixStream::pair().unwrap();
    a.write_all(&(MAX_GREETING + 1).to_le_bytes()).unwrap();
    let peer = Peer::Unix {
        uid: 0,
        gid: 0,
        pid: 1,
    };
    let ended = server::serve(&service, &mut b, &peer, Some(&Grant::default()), "", |_| ());
    assert!(
        matches!(ended, Ended::Frame(frame::FrameError::TooLarge { .. })),
        "{ended}"
    );
    // The name is refused with the reason, before the policy is applied.
    let (mut a, mut b) = UnixStream::pair().unwrap();
    frame::send(&mut a, &Request::Hello(long)).unwrap();
    let ended = server::serve(&service, &mut b, &peer, Some(&Grant::default()), "", |_| ());
    assert!(
        matches!(ended, Ended::Refused(ref r) if r.contains("257 bytes")),
        "{ended}"
    );
    let r: Response = frame::receive(&mut a).unwrap();
    assert!(matches!(r, Response::Refused { .. }), "{r:?}");
}

fn inc(session: u32, a: u64) -> wire::Call {
    call(
        wire::Command::Invoke {
            func: fake_cmd::INC,
        },
        session,
        vec![wire::Param::Value {
            dir: wire::Dir::InOut,
            a,
            b: 0,
            c: 0,
        }],
    )
}

/// A connection to a fake TEE whose peer may be granted `max_wait_us`,
/// with a VM and a session: the connection, the fake, the session.
fn waiting_peer(max_wait_us: u32) -> (Connection, FakeTee, u32) {
    let fake = FakeTee::new();
    let f = fake.clone();
    let limits = PeerLimits {
        max_call_wait_us: max_wait_us,
        ..PeerLimits::default()
    };
    let mut c = Connection::with_limits(
        host_service(move || f.clone()),
        Policy::default(),
        limits,
        "test peer".to_owned(),
    );
    let session = vm_with_session(&mut c, 1);
    (c, fake, session)
}

#[test]
fn a_call_wait_answers_a_call_with_its_result_not_foreign_intr() {
    // Without a wait (the version 3 behaviour), a call held in the TEE is
    // answered FOREIGN_INTR at once.
    let (mut c, fake, session) = waiting_peer(5_000_000);
    fake.close_gate();
    let r = c.handle(Request::Start {
        client: 1,
        thread: 1,
        call: inc(session, 1),
    });
    assert_eq!(
        step(r.unwrap()),
        wire::Step::Rpc(wire::RpcRequest::ForeignIntr)
    );
    fake.open_gate();
    let r = c
        .handle(Request::Resume {
            client: 1,
            thread: 1,
            reply: wire::Reply::ForeignIntr,
        })
        .unwrap();
    assert_eq!(finish(&mut c, 1, 1, r).ret, teec::SUCCESS);

    // With one, the answer is the call's result, whenever within the
    // wait the TEE finishes it.
    assert_eq!(
        c.handle(Request::CallWait { micros: 5_000_000 }).unwrap(),
        Response::CallWaitSet { micros: 5_000_000 }
    );
    fake.close_gate();
    let opener = {
        let fake = fake.clone();
        std::thread::spawn(move || {
            fake.wait_held(1);
            std::thread::sleep(Duration::from_millis(50));
            fake.open_gate();
        })
    };
    let t = Instant::now();
    let r = c.handle(Request::Start {
        client: 1,
        thread: 1,
        call: inc(session, 41),
    });
    let took = t.elapsed();
    opener.join().unwrap();
    match step(r.unwrap()) {
        wire::Step::Done(o) => {
            assert_eq!(o.ret, teec::SUCCESS);
            assert_eq!(o.params[0], wire::ParamOut::Value { a: 42, b: 0, c: 0 });
        }
        other => panic!("the call's first answer is {other:?} after {took:?}"),
    }
    assert!(
        took >= Duration::from_millis(50),
        "answered in {took:?}, before the TEE"
    );
}

#[test]
fn a_call_wait_is_bounded_by_the_peers_grant_and_ends_at_it() {
    let (mut c, fake, session) = waiting_peer(20_000);
    // More than the grant: the grant.
    assert_eq!(
        c.handle(Request::CallWait { micros: u32::MAX }).unwrap(),
        Response::CallWaitSet { micros: 20_000 }
    );
    // A call the TEE holds is answered FOREIGN_INTR once the wait passed,
    // so that its guest takes its interrupts.
    fake.close_gate();
    let t = Instant::now();
    let r = c.handle(Request::Start {
        client: 1,
        thread: 1,
        call: inc(session, 1),
    });
    let took = t.elapsed();
    assert_eq!(
        step(r.unwrap()),
        wire::Step::Rpc(wire::RpcRequest::ForeignIntr)
    );
    assert!(
        took >= Duration::from_millis(20) && took < Duration::from_secs(2),
        "answered after {took:?}"
    );
    fake.open_gate();
    let r = c
        .handle(Request::Resume {
            client: 1,
            thread: 1,
            reply: wire::Reply::ForeignIntr,
        })
        .unwrap();
    assert_eq!(finish(&mut c, 1, 1, r).ret, teec::SUCCESS);

    // A peer its policy grants no wait gets none.
    let (mut c, _fake, _session) = waiting_peer(0);
    assert_eq!(
        c.handle(Request::CallWait { micros: 1000 }).unwrap(),
        Response::CallWaitSet { micros: 0 }
    );
}
