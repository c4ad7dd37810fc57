// SPDX-License-Identifier: Apache-2.0 OR MIT
//! A partition's supplicant requests relayed through the TEE service to
//! the VMM's guest (protocol version 3): the guest sees the same RPCs as
//! when the VMM reaches the host's TEE itself (an argument buffer asked
//! once, the command in it, freed before the call's result), the answer
//! reaches the partition's supplicant, a call given up fails its
//! request, and a TEE with no partitions refuses to relay.

mod support;

use std::sync::atomic::AtomicBool;
use std::sync::Arc;
use std::thread::{self, JoinHandle};
use std::time::Duration;

use host_tee::fake::{fake_cmd, FAKE_TA};
use host_tee::FakeTee;
use optee_mediator::backend::{
    Command, Param, RpcCmdReply, RpcOut, RpcReply, RpcRequest, StdCall, Step,
};
use optee_mediator::msg::{arg_size, attr, rpc_cmd, teec, Dir, MsgParam};
use optee_mediator::relay::{Answer, Forwarded, FwdOut, FwdParam, Relay, RelayError};
use optee_mediator::shm::{GuestBuffer, MemRef};
use optee_mediator::{Backend, ClientId, FakeGuestMemory, Policy, Uuid};
use support::*;
use tee_remote::policy::{Grant, PeerLimits};
use tee_remote::server::Service;
use tee_remote::{Address, RemoteConfig, RemoteTee};

const VM: ClientId = ClientId(1);
/// The guest page the guest's tee-supplicant allocated.
const PAGE: u64 = 0x4000_3000;

fn remote(path: &std::path::Path, relay_supplicant: bool) -> RemoteTee {
    let config = RemoteConfig {
        retry: Duration::ZERO,
        relay_supplicant,
        ..RemoteConfig::default()
    };
    let mut tee = RemoteTee::connect(Address::Unix(path.to_path_buf()), config).unwrap();
    tee.vm_created(VM).unwrap();
    tee
}

fn ask(relay: &Arc<Relay>, req: Forwarded) -> JoinHandle<Result<Answer, RelayError>> {
    let r = relay.clone();
    let h = thread::spawn(move || r.ask(req, &AtomicBool::new(false)));
    eventually("the request is posted", || relay.has_request());
    h
}

fn value_inout(a: u64) -> Param {
    Param::Value {
        dir: Dir::InOut,
        a,
        b: 0,
        c: 0,
    }
}

/// Resumes `c` with FOREIGN_INTR until it takes another step.
fn next(tee: &mut RemoteTee, c: &mut StdCall, mem: &FakeGuestMemory) -> Step {
    for _ in 0..10_000 {
        match tee.resume(VM, 1, c, RpcReply::ForeignIntr, mem) {
            Step::Rpc(RpcRequest::ForeignIntr) => thread::sleep(Duration::from_micros(200)),
            other => return other,
        }
    }
    panic!("the call never moved");
}

/// A session of the fake TA, and a call of it held in the TEE on thread 1.
fn held_call(tee: &mut RemoteTee, fake: &FakeTee, mem: &FakeGuestMemory) -> StdCall {
    let open = Command::OpenSession {
        ta: Uuid(FAKE_TA),
        client: Uuid([7; 16]),
        login: 0,
    };
    let mut o = std_call(open, 0, vec![]);
    let mut step = tee.start(VM, 0, &mut o, mem);
    while step == Step::Rpc(RpcRequest::ForeignIntr) {
        thread::sleep(Duration::from_micros(200));
        step = tee.resume(VM, 0, &mut o, RpcReply::ForeignIntr, mem);
    }
    assert_eq!((step, o.ret), (Step::Done, teec::SUCCESS));
    fake.close_gate();
    let mut c = std_call(
        Command::Invoke {
            func: fake_cmd::INC,
        },
        o.session,
        vec![value_inout(1)],
    );
    assert_eq!(
        tee.start(VM, 1, &mut c, mem),
        Step::Rpc(RpcRequest::ForeignIntr)
    );
    fake.wait_held(1);
    c
}

/// A VMM relaying through a service on a socket, and one of its guest's
/// calls held in the TEE on thread 1.
struct Held {
    svc: TestService,
    fake: FakeTee,
    relay: Arc<Relay>,
    mem: FakeGuestMemory,
    tee: RemoteTee,
    c: StdCall,
}

impl Held {
    fn new(name: &str) -> Held {
        let dir = temp_dir(name);
        let fake = FakeTee::new();
        let relay = Arc::new(Relay::new());
        fake.set_relay(relay.clone());
        let svc = TestService::start(dir.join("s"), fake_service(&fake), Policy::default());
        let mem = FakeGuestMemory::new(&[(0x4000_0000, 0x10000)]);
        let mut tee = remote(&svc.path, true);
        let c = held_call(&mut tee, &fake, &mem);
        Held {
            svc,
            fake,
            relay,
            mem,
            tee,
            c,
        }
    }
}

#[test]
fn a_request_reaches_the_vmms_guest_on_a_waiting_call_as_it_would_locally() {
    let Held {
        svc,
        fake,
        relay,
        mem,
        mut tee,
        mut c,
    } = Held::new("relay");

    // SHM_ALLOC: the RPC buffer asked first, then the command in it.
    let asker = ask(
        &relay,
        Forwarded {
            func: rpc_cmd::SHM_ALLOC,
            params: vec![FwdParam::Value {
                dir: Dir::In,
                a: rpc_cmd::SHM_TYPE_APPL,
                b: 4096,
                c: 0,
            }],
        },
    );
    assert_eq!(
        next(&mut tee, &mut c, &mem),
        Step::Rpc(RpcRequest::Alloc { size: arg_size(7) })
    );
    let Step::Rpc(RpcRequest::Cmd { cookie, arg }) =
        tee.resume(VM, 1, &mut c, RpcReply::Alloc(Some(0x99)), &mem)
    else {
        panic!("the request goes out once the buffer is there");
    };
    assert_eq!((cookie, arg.header.cmd), (0x99, rpc_cmd::SHM_ALLOC));
    assert_eq!(
        arg.params,
        vec![MsgParam::new(
            attr::VALUE_INPUT,
            rpc_cmd::SHM_TYPE_APPL,
            4096,
            0
        )]
    );
    let page = Arc::new(GuestBuffer::new(vec![PAGE], 0, 4096).unwrap());
    let reply = RpcCmdReply {
        delivered: true,
        ret: teec::SUCCESS,
        params: vec![RpcOut::Memref {
            cookie: 0x51,
            size: 4096,
            mem: Some(MemRef::whole(page.clone())),
        }],
    };
    assert_eq!(
        tee.resume(VM, 1, &mut c, RpcReply::Cmd(reply), &mem),
        Step::Rpc(RpcRequest::ForeignIntr),
        "answered; the call itself is still in the TEE"
    );
    let a = asker.join().unwrap().unwrap();
    assert_eq!(a.params, vec![FwdOut::Allocated { cookie: 0x51 }]);

    // A command with an input and an output range of that buffer, on a
    // later step of the call: the same RPC buffer, the input bytes in the
    // guest's buffer, the output bytes back to the supplicant.
    let asker = ask(
        &relay,
        Forwarded {
            func: 2,
            params: vec![
                FwdParam::Memref {
                    dir: Dir::In,
                    cookie: 0x51,
                    offs: 8,
                    size: 5,
                    data: b"hello".to_vec(),
                },
                FwdParam::Memref {
                    dir: Dir::Out,
                    cookie: 0x51,
                    offs: 100,
                    size: 16,
                    data: Vec::new(),
                },
            ],
        },
    );
    let Step::Rpc(RpcRequest::Cmd { cookie, arg }) = next(&mut tee, &mut c, &mem) else {
        panic!("a thread with an RPC buffer sends the command at once");
    };
    assert_eq!((cookie, arg.header.cmd), (0x99, 2));
    assert_eq!(arg.params[0], MsgParam::new(attr::RMEM_INPUT, 8, 5, 0x51));
    assert_eq!(
        arg.params[1],
        MsgParam::new(attr::RMEM_OUTPUT, 100, 16, 0x51)
    );
    let mut hello = [0u8; 5];
    page.read(&mem, 8, &mut hello).unwrap();
    assert_eq!(&hello, b"hello");
    page.write(&mem, 100, b"world").unwrap();
    let reply = RpcCmdReply {
        delivered: true,
        ret: teec::SUCCESS,
        params: vec![RpcOut::None, RpcOut::MemrefSize(5)],
    };
    tee.resume(VM, 1, &mut c, RpcReply::Cmd(reply), &mem);
    let a = asker.join().unwrap().unwrap();
    assert_eq!(
        a.params[1],
        FwdOut::Memref {
            size: 5,
            data: b"world".to_vec()
        }
    );

    // The call ends: its RPC buffer is freed before its result.
    fake.open_gate();
    assert_eq!(
        next(&mut tee, &mut c, &mem),
        Step::Rpc(RpcRequest::Free { cookie: 0x99 })
    );
    assert_eq!(tee.resume(VM, 1, &mut c, RpcReply::Free, &mem), Step::Done);
    assert_eq!(
        (c.ret, c.ret_origin),
        (teec::SUCCESS, teec::ORIGIN_TRUSTED_APP)
    );
    assert_eq!(c.params[0], value_inout(2));
    drop(tee);
    svc.kill();
}

#[test]
fn a_call_given_up_while_it_carries_fails_the_request_and_keeps_its_buffer() {
    let Held {
        svc,
        fake,
        relay,
        mem,
        mut tee,
        mut c,
    } = Held::new("relay-abandon");
    let asker = ask(
        &relay,
        Forwarded {
            func: 10,
            params: vec![FwdParam::Value {
                dir: Dir::In,
                a: 1,
                b: 2,
                c: 3,
            }],
        },
    );
    assert!(matches!(
        next(&mut tee, &mut c, &mem),
        Step::Rpc(RpcRequest::Alloc { .. })
    ));
    assert!(matches!(
        tee.resume(VM, 1, &mut c, RpcReply::Alloc(Some(0x99)), &mem),
        Step::Rpc(RpcRequest::Cmd { cookie: 0x99, .. })
    ));
    tee.abandon(VM, 1);
    assert_eq!(
        asker.join().unwrap().unwrap().ret,
        teec::ERROR_COMMUNICATION,
        "the supplicant goes on"
    );
    assert_eq!(
        tee.disable_shm_cache(VM),
        optee_mediator::backend::CacheDisable::Freed(0x99),
        "the argument buffer is handed back"
    );
    fake.open_gate();
    drop(tee);
    svc.kill();
}

#[test]
fn a_tee_without_partitions_refuses_to_relay() {
    let dir = temp_dir("relay-refused");
    // The userspace TEE has no supplicant requests: relaying is refused,
    // and the VMM's VM is not made.
    let user = Service::new(Box::new(optee_mediator::UserTee::new(Default::default())));
    let svc = TestService::start(dir.join("u"), user, Policy::default());
    let config = RemoteConfig {
        retry: Duration::ZERO,
        relay_supplicant: true,
        ..RemoteConfig::default()
    };
    let mut tee = RemoteTee::connect(Address::Unix(svc.path.clone()), config).unwrap();
    assert!(tee.vm_created(VM).is_err());
    drop(tee);
    svc.kill();
}

#[test]
fn a_request_posted_while_the_service_waits_for_the_call_goes_out_at_once() {
    let dir = temp_dir("relay-wait");
    let fake = FakeTee::new();
    let relay = Arc::new(Relay::new());
    fake.set_relay(relay.clone());
    let grant = Grant {
        limits: PeerLimits {
            max_call_wait_us: 30_000_000,
            ..PeerLimits::default()
        },
        ..Grant::default()
    };
    let svc = TestService::granting(dir.join("s"), fake_service(&fake), grant);
    let mem = FakeGuestMemory::new(&[(0x4000_0000, 0x10000)]);
    let config = RemoteConfig {
        retry: Duration::ZERO,
        relay_supplicant: true,
        call_wait: Duration::from_secs(30),
        ..RemoteConfig::default()
    };
    let mut tee = RemoteTee::connect(Address::Unix(svc.path.clone()), config).unwrap();
    tee.vm_created(VM).unwrap();
    // Waited for: the open's first answer is its result.
    let open = Command::OpenSession {
        ta: Uuid(FAKE_TA),
        client: Uuid([7; 16]),
        login: 0,
    };
    let mut o = std_call(open, 0, vec![]);
    assert_eq!(tee.start(VM, 0, &mut o, &mem), Step::Done);
    assert_eq!(o.ret, teec::SUCCESS);

    // A call the TEE holds while its partition's supplicant asks: the
    // service stops waiting and sends the request on that call.
    fake.close_gate();
    let asker = {
        let (fake, relay) = (fake.clone(), relay.clone());
        thread::spawn(move || {
            fake.wait_held(1);
            relay.ask(
                Forwarded {
                    func: rpc_cmd::SHM_ALLOC,
                    params: vec![FwdParam::Value {
                        dir: Dir::In,
                        a: rpc_cmd::SHM_TYPE_APPL,
                        b: 4096,
                        c: 0,
                    }],
                },
                &AtomicBool::new(false),
            )
        })
    };
    let mut c = std_call(
        Command::Invoke {
            func: fake_cmd::INC,
        },
        o.session,
        vec![value_inout(1)],
    );
    let t = std::time::Instant::now();
    let step = tee.start(VM, 1, &mut c, &mem);
    let took = t.elapsed();
    assert_eq!(step, Step::Rpc(RpcRequest::Alloc { size: arg_size(7) }));
    assert!(took < Duration::from_secs(10), "carried after {took:?}");
    // Given up: the request fails, so that the supplicant goes on.
    tee.abandon(VM, 1);
    fake.open_gate();
    let answer = asker.join().unwrap().unwrap();
    assert_eq!(answer.ret, teec::ERROR_COMMUNICATION);
}
