// SPDX-License-Identifier: Apache-2.0 OR MIT
//! A partition's supplicant requests relayed to the guest: carried by a
//! call waiting for the TEE, in an RPC argument buffer asked once and
//! freed when the call ends; teardown and protocol errors fail them.

use std::sync::atomic::AtomicBool;
use std::sync::Arc;
use std::thread::{self, JoinHandle};

use optee_mediator::backend::{CacheDisable, RpcCmdReply, RpcOut, RpcRequest};
use optee_mediator::msg::{arg_size, attr, rpc_cmd, MsgParam};

use super::*;
use crate::fake::fake_cmd;
use crate::relay::{Answer, Forwarded, FwdOut, FwdParam, Relay, RelayError};
use crate::TeeDevice;

/// The guest page the guest's tee-supplicant allocated.
const PAGE: u64 = 0x4000_3000;

fn with_relay(fake: &FakeTee) -> (HostTee<FakeTee>, Arc<Relay>) {
    let relay = Arc::new(Relay::new());
    fake.set_relay(relay.clone());
    (backend(fake), relay)
}

fn ask(relay: &Arc<Relay>, req: Forwarded) -> JoinHandle<Result<Answer, RelayError>> {
    let r = relay.clone();
    let h = thread::spawn(move || r.ask(req, &AtomicBool::new(false)));
    while !relay.has_request() {
        thread::sleep(Duration::from_millis(1));
    }
    h
}

fn shm_alloc(size: u64) -> Forwarded {
    Forwarded {
        func: rpc_cmd::SHM_ALLOC,
        params: vec![FwdParam::Value {
            dir: Dir::In,
            a: rpc_cmd::SHM_TYPE_APPL,
            b: size,
            c: 0,
        }],
    }
}

/// A call of the guest held in the TEE on thread 1.
fn held_call(tee: &mut HostTee<FakeTee>, fake: &FakeTee, mem: &dyn GuestRam) -> StdCall {
    let s = open(tee, mem);
    fake.close_gate();
    let mut c = invoke(s, fake_cmd::INC, vec![value_inout(1)]);
    assert_eq!(
        tee.start(VM, 1, &mut c, mem),
        Step::Rpc(RpcRequest::ForeignIntr)
    );
    fake.wait_held(1);
    c
}

#[test]
fn a_waiting_call_carries_the_request_in_one_rpc_buffer_freed_when_it_ends() {
    let mem = ram();
    let fake = FakeTee::new();
    let (mut tee, relay) = with_relay(&fake);
    let mut c = held_call(&mut tee, &fake, &mem);

    // SHM_ALLOC: the RPC buffer asked first, then the command in it.
    let asker = ask(&relay, shm_alloc(4096));
    assert_eq!(
        tee.resume(VM, 1, &mut c, RpcReply::ForeignIntr, &mem),
        Step::Rpc(RpcRequest::Alloc { size: arg_size(7) }),
        "room for the most parameters a request can have, not this one's one"
    );
    let Step::Rpc(RpcRequest::Cmd { cookie, arg }) =
        tee.resume(VM, 1, &mut c, RpcReply::Alloc(Some(0x99)), &mem)
    else {
        panic!("the request goes out once the buffer is there");
    };
    assert_eq!(cookie, 0x99);
    assert_eq!(arg.header.cmd, rpc_cmd::SHM_ALLOC);
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

    // A command with an input and an output range of that buffer: the
    // same RPC buffer, the input bytes in the guest's buffer.
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
    let Step::Rpc(RpcRequest::Cmd { cookie, arg }) =
        tee.resume(VM, 1, &mut c, RpcReply::ForeignIntr, &mem)
    else {
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
    let step = loop {
        match tee.resume(VM, 1, &mut c, RpcReply::ForeignIntr, &mem) {
            Step::Rpc(RpcRequest::ForeignIntr) => thread::sleep(Duration::from_micros(200)),
            other => break other,
        }
    };
    assert_eq!(step, Step::Rpc(RpcRequest::Free { cookie: 0x99 }));
    assert_eq!(tee.resume(VM, 1, &mut c, RpcReply::Free, &mem), Step::Done);
    assert_result(&c, teec::SUCCESS, teec::ORIGIN_TRUSTED_APP);
    assert_eq!(c.params[0], value_inout(2));
}

#[test]
fn a_request_naming_no_buffer_of_the_guests_supplicant_is_answered_and_not_sent() {
    let mem = ram();
    let fake = FakeTee::new();
    let (mut tee, relay) = with_relay(&fake);
    let mut c = held_call(&mut tee, &fake, &mem);
    let asker = ask(
        &relay,
        Forwarded {
            func: 0,
            params: vec![FwdParam::Memref {
                dir: Dir::InOut,
                cookie: 0x51,
                offs: 0,
                size: 1,
                data: vec![1],
            }],
        },
    );
    assert!(matches!(
        tee.resume(VM, 1, &mut c, RpcReply::ForeignIntr, &mem),
        Step::Rpc(RpcRequest::Alloc { .. })
    ));
    assert_eq!(
        tee.resume(VM, 1, &mut c, RpcReply::Alloc(Some(0x99)), &mem),
        Step::Rpc(RpcRequest::ForeignIntr)
    );
    assert_eq!(
        asker.join().unwrap().unwrap(),
        Answer::failed(teec::ERROR_BAD_PARAMETERS, 1)
    );
    fake.open_gate();
}

#[test]
fn an_answer_to_something_not_asked_fails_the_call_and_its_request() {
    let mem = ram();
    let fake = FakeTee::new();
    let (mut tee, relay) = with_relay(&fake);
    let mut c = held_call(&mut tee, &fake, &mem);
    let asker = ask(&relay, shm_alloc(64));
    assert!(matches!(
        tee.resume(VM, 1, &mut c, RpcReply::ForeignIntr, &mem),
        Step::Rpc(RpcRequest::Alloc { .. })
    ));
    assert_eq!(tee.resume(VM, 1, &mut c, RpcReply::Free, &mem), Step::Done);
    assert_result(&c, teec::ERROR_COMMUNICATION, teec::ORIGIN_COMMS);
    assert_eq!(
        asker.join().unwrap().unwrap(),
        Answer::failed(teec::ERROR_COMMUNICATION, 1)
    );
    fake.open_gate();
}

#[test]
fn teardown_fails_a_request_waiting_for_the_guest() {
    let mem = ram();
    let fake = FakeTee::new();
    let (mut tee, relay) = with_relay(&fake);
    let _c = held_call(&mut tee, &fake, &mem);
    let asker = ask(&relay, shm_alloc(64));
    fake.open_gate();
    tee.vm_destroyed(VM);
    assert_eq!(asker.join().unwrap(), Err(RelayError::Closed));
    assert!(relay.is_closed());
}

#[test]
fn without_a_relay_a_call_never_asks_the_guest_anything() {
    let mem = ram();
    let fake = FakeTee::new();
    let mut tee = backend(&fake);
    let mut c = held_call(&mut tee, &fake, &mem);
    for _ in 0..3 {
        assert_eq!(
            tee.resume(VM, 1, &mut c, RpcReply::ForeignIntr, &mem),
            Step::Rpc(RpcRequest::ForeignIntr)
        );
    }
    fake.open_gate();
    drive(&mut tee, 1, &mut c, &mem);
    assert_result(&c, teec::SUCCESS, teec::ORIGIN_TRUSTED_APP);
}

#[test]
fn a_buffer_allocated_for_a_request_given_up_meanwhile_is_given_back_to_the_guest() {
    let mem = ram();
    let fake = FakeTee::new();
    let relay = Arc::new(Relay::with_bound(Duration::from_millis(50)));
    fake.set_relay(relay.clone());
    let mut tee = backend(&fake);
    let mut c = held_call(&mut tee, &fake, &mem);
    let asker = ask(&relay, shm_alloc(4096));
    tee.resume(VM, 1, &mut c, RpcReply::ForeignIntr, &mem);
    let Step::Rpc(RpcRequest::Cmd { .. }) =
        tee.resume(VM, 1, &mut c, RpcReply::Alloc(Some(0x99)), &mem)
    else {
        panic!("sent");
    };
    assert_eq!(
        asker.join().unwrap(),
        Err(RelayError::TimedOut(Duration::from_millis(50)))
    );
    // The guest's late answer: a buffer nobody waits for any more.
    let page = Arc::new(GuestBuffer::new(vec![PAGE], 0, 4096).unwrap());
    let reply = RpcCmdReply {
        delivered: true,
        ret: teec::SUCCESS,
        params: vec![RpcOut::Memref {
            cookie: 0x51,
            size: 4096,
            mem: Some(MemRef::whole(page)),
        }],
    };
    let Step::Rpc(RpcRequest::Cmd { cookie, arg }) =
        tee.resume(VM, 1, &mut c, RpcReply::Cmd(reply), &mem)
    else {
        panic!("the guest is asked to free it");
    };
    assert_eq!(cookie, 0x99);
    assert_eq!(arg.header.cmd, rpc_cmd::SHM_FREE);
    assert_eq!(arg.params[0].b, 0x51);
    let done = RpcCmdReply {
        delivered: true,
        ret: teec::SUCCESS,
        params: vec![RpcOut::None],
    };
    assert_eq!(
        tee.resume(VM, 1, &mut c, RpcReply::Cmd(done), &mem),
        Step::Rpc(RpcRequest::ForeignIntr)
    );
    fake.open_gate();
}

#[test]
fn a_sessions_close_carries_requests_too() {
    // The TA's destructor may close its sockets or write its storage: the
    // close is the only call in progress to carry what it asks.
    let mem = ram();
    let fake = FakeTee::new();
    let (mut tee, relay) = with_relay(&fake);
    let s = open(&mut tee, &mem);
    fake.close_gate();
    let mut close = std_call(Command::CloseSession, s, vec![]);
    let asker = ask(&relay, shm_alloc(64));
    assert_eq!(
        tee.start(VM, 2, &mut close, &mem),
        Step::Rpc(RpcRequest::Alloc { size: arg_size(7) })
    );
    assert!(!relay.has_request(), "taken");
    relay.close();
    assert_eq!(asker.join().unwrap(), Err(RelayError::Closed));
    fake.open_gate();
}

#[test]
fn the_rpc_buffer_of_an_abandoned_carrier_is_handed_back_by_disable_shm_cache() {
    let mem = ram();
    let fake = FakeTee::new();
    let (mut tee, relay) = with_relay(&fake);
    let mut c = held_call(&mut tee, &fake, &mem);
    let asker = ask(&relay, shm_alloc(64));
    tee.resume(VM, 1, &mut c, RpcReply::ForeignIntr, &mem);
    tee.resume(VM, 1, &mut c, RpcReply::Alloc(Some(0x99)), &mem);
    tee.abandon(VM, 1);
    assert_eq!(
        asker.join().unwrap().unwrap(),
        Answer::failed(teec::ERROR_COMMUNICATION, 1)
    );
    assert_eq!(tee.disable_shm_cache(VM), CacheDisable::Freed(0x99));
    assert_eq!(tee.disable_shm_cache(VM), CacheDisable::Empty);
    fake.open_gate();
}

/// The fake TEE whose ASK_FUNC waits, as OP-TEE does in an RPC, for the
/// answer to a supplicant request it relays.
#[derive(Debug, Clone)]
struct AskingTee(FakeTee, Arc<Relay>);

const ASK_FUNC: u32 = 0xa5c;

impl TeeDevice for AskingTee {
    type Registered = <FakeTee as TeeDevice>::Registered;
    type Allocated = <FakeTee as TeeDevice>::Allocated;

    fn version(&self) -> Result<tee_uapi::sys::tee_ioctl_version_data, crate::HostTeeError> {
        self.0.version()
    }
    fn relay(&self) -> Option<Arc<Relay>> {
        Some(self.1.clone())
    }
    fn open_session(
        &self,
        uuid: [u8; 16],
        login: ClientLogin,
        cancel_id: u32,
        params: &mut [crate::TeeParam],
    ) -> Result<(u32, crate::CallResult), crate::HostTeeError> {
        self.0.open_session(uuid, login, cancel_id, params)
    }
    fn invoke(
        &self,
        session: u32,
        func: u32,
        cancel_id: u32,
        params: &mut [crate::TeeParam],
    ) -> Result<crate::CallResult, crate::HostTeeError> {
        if func == ASK_FUNC {
            let ret = match self.1.ask(shm_alloc(64), &AtomicBool::new(false)) {
                Ok(a) => a.ret,
                Err(_) => teec::ERROR_COMMUNICATION,
            };
            return Ok(crate::CallResult {
                ret,
                origin: teec::ORIGIN_TRUSTED_APP,
            });
        }
        self.0.invoke(session, func, cancel_id, params)
    }
    fn cancel(&self, session: u32, cancel_id: u32) -> Result<(), crate::HostTeeError> {
        self.0.cancel(session, cancel_id)
    }
    fn close_session(&self, session: u32) -> Result<(), crate::HostTeeError> {
        self.0.close_session(session)
    }
    unsafe fn shm_register(
        &self,
        addr: std::ptr::NonNull<u8>,
        len: usize,
    ) -> Result<Self::Registered, crate::HostTeeError> {
        // SAFETY: the caller's promise, passed on.
        unsafe { self.0.shm_register(addr, len) }
    }
    fn shm_alloc(&self, size: usize) -> Result<Self::Allocated, crate::HostTeeError> {
        self.0.shm_alloc(size)
    }
}

#[test]
fn teardown_ends_a_call_that_waits_in_the_tee_for_the_guests_answer() {
    let mem = ram();
    let relay = Arc::new(Relay::new());
    let dev = AskingTee(FakeTee::new(), relay.clone());
    // SAFETY: `mem` is declared before the backend and outlives it.
    let mut tee = unsafe { HostTee::new(HostTeeConfig::default(), move || Ok(dev.clone())) };
    tee.vm_created(VM).unwrap();
    let s = {
        let mut o = std_call(open_command(), 0, vec![]);
        let step = tee.start(VM, 0, &mut o, &mem);
        if step != Step::Done {
            drive_asking(&mut tee, 0, &mut o, &mem);
        }
        o.session
    };
    let mut c = invoke(s, ASK_FUNC, vec![]);
    tee.start(VM, 1, &mut c, &mem);
    // The call is in the TEE, waiting for the guest, who never answers.
    while !relay.has_request() {
        thread::sleep(Duration::from_millis(1));
    }
    let (done, ended) = std::sync::mpsc::channel();
    let t = thread::spawn(move || {
        tee.vm_destroyed(VM);
        done.send(()).unwrap();
    });
    assert!(
        ended.recv_timeout(Duration::from_secs(20)).is_ok(),
        "teardown waited for a call that waits for the guest"
    );
    t.join().unwrap();
}

/// Resumes an opening call on `thread` with FOREIGN_INTR until done.
fn drive_asking(tee: &mut HostTee<AskingTee>, thread: u32, call: &mut StdCall, mem: &dyn GuestRam) {
    for _ in 0..10_000 {
        match tee.resume(VM, thread, call, RpcReply::ForeignIntr, mem) {
            Step::Done => return,
            _ => thread::sleep(Duration::from_micros(200)),
        }
    }
    panic!("the call never finished");
}
