// SPDX-License-Identifier: Apache-2.0 OR MIT
//! A guest's mediator on a RemoteTee, its TEE a service in this process:
//! the same answers as an in-process TEE; a service that dies and comes
//! back; a VMM that vanishes; peers that break the protocol; the service's
//! own policy.

#[path = "../../optee-mediator/tests/common/mod.rs"]
mod common;
mod support;

use std::sync::Arc;
use std::time::Duration;

use common::*;
use host_tee::fake::{fake_cmd, FAKE_TA};
use host_tee::{FakeTee, HostTee, HostTeeConfig};
use optee_mediator::abi::ret;
use optee_mediator::backend::Backend;
use optee_mediator::msg::{attr, teec, MsgArg, PAGE_SIZE};
use optee_mediator::utee::ta::memory;
use optee_mediator::{ClientId, Mediator, Policy, TaFilter, UserTee, UteeConfig};
use support::*;
use tee_remote::server::Service;
use tee_remote::wire::{self, Request, Response, MAX_FRAME};
use tee_remote::{Address, RemoteConfig, RemoteTee};

fn user_service() -> Arc<Service> {
    Service::new(Box::new(UserTee::new(UteeConfig::default())))
}

fn remote_guest(path: &std::path::Path) -> Guest<RemoteTee> {
    let config = RemoteConfig {
        retry: Duration::ZERO,
        ..RemoteConfig::default()
    };
    let tee = RemoteTee::connect(Address::Unix(path.to_path_buf()), config).unwrap();
    Guest::from_mediator(Mediator::new(ClientId(1), Policy::default(), tee).unwrap())
}

/// What a guest sees of a sequence of calls covering every kind of
/// parameter and RPC: results, origins, output values, buffer contents.
fn transcript<B: Backend>(g: &mut Guest<B>) -> Vec<String> {
    let mut t = Vec::new();
    let line = |what: &str, out: &MsgArg| {
        let values: Vec<_> = out.params.iter().map(|p| (p.a, p.b)).collect();
        format!(
            "{what}: {:#x}/{} {values:?}",
            out.header.ret, out.header.ret_origin
        )
    };
    macro_rules! log {
        ($what:expr, $out:expr $(,)?) => {{
            let l = line($what, $out);
            t.push(l);
        }};
    }
    let hello = g.open(HELLO);
    log!(
        "inc",
        &g.invoke(hello, 0, vec![value(attr::VALUE_INOUT, 41)])
    );
    let mem = g.open(MEMORY);
    // Temporary memory, in place, at an odd offset over two pages.
    let data: Vec<u8> = (0..5000u32).map(|i| (i * 7) as u8).collect();
    let (p, pages) = g.tmem(attr::TMEM_INOUT, &data, 7);
    log!("reverse tmem", &g.reverse(mem, p));
    let back = g.read_scattered(&pages, 7, data.len());
    let mut want = data.clone();
    want.reverse();
    assert_eq!(back, want, "the TEE's writes reached guest memory");
    // An output too small, then large enough; bytes beyond what the TEE
    // writes stay as they were.
    let (input, _) = g.tmem(attr::TMEM_INPUT, b"abcdef", 0);
    let (small, small_pages) = g.tmem(attr::TMEM_OUTPUT, b"XY", 100);
    log!(
        "copy short",
        &g.invoke(
            mem,
            memory::CMD_COPY_REVERSED,
            vec![input, small, value(attr::VALUE_OUTPUT, 0)],
        ),
    );
    assert_eq!(g.read_scattered(&small_pages, 100, 2), b"XY");
    let (out, out_pages) = g.tmem(attr::TMEM_OUTPUT, b"0123456789", 5);
    log!(
        "copy",
        &g.invoke(
            mem,
            memory::CMD_COPY_REVERSED,
            vec![input, out, value(attr::VALUE_OUTPUT, 0)],
        ),
    );
    assert_eq!(g.read_scattered(&out_pages, 5, 10), b"fedcba6789");
    // Registered memory, used twice through RMEM.
    let reg: Vec<u8> = (0..300u32).map(|i| i as u8).collect();
    let (cookie, reg_pages, r) = g.register(&reg, 40);
    t.push(format!("register: {r:#x}"));
    for _ in 0..2 {
        let rmem = optee_mediator::msg::MsgParam::new(attr::RMEM_INOUT, 10, 100, cookie);
        log!("reverse rmem", &g.reverse(mem, rmem));
    }
    assert_eq!(g.read_scattered(&reg_pages, 40, 300), reg);
    // RPCs: an argument buffer, a kernel buffer, the time, interrupts.
    log!(
        "fill",
        &g.invoke(
            mem,
            memory::CMD_FILL_RPC_SHM,
            vec![value(attr::VALUE_INOUT, 6000)]
        ),
    );
    log!(
        "time",
        &g.invoke(
            mem,
            memory::CMD_GET_TIME,
            vec![value(attr::VALUE_OUTPUT, 0)]
        ),
    );
    log!(
        "slow",
        &g.invoke(mem, memory::CMD_SLOW, vec![value(attr::VALUE_INOUT, 3)]),
    );
    t.push(format!("unregister: {:#x}", g.unregister(cookie)));
    t.push(format!("close: {:#x}", g.close(mem)));
    log!(
        "closed",
        &g.invoke(mem, 0, vec![value(attr::VALUE_INOUT, 0)])
    );
    t.push(format!("close hello: {:#x}", g.close(hello)));
    t.push(format!("rpc: {:?}", g.log));
    t
}

#[test]
fn a_guest_sees_the_same_answers_through_the_service_as_from_a_tee_in_its_vmm() {
    let local = transcript(&mut guest());
    let dir = temp_dir("same");
    let svc = TestService::start(dir.join("s"), user_service(), Policy::default());
    let mut g = remote_guest(&svc.path);
    let remote = transcript(&mut g);
    assert_eq!(remote, local);
    assert!(
        local.iter().any(|l| l.starts_with("fill: 0x0/")),
        "{local:?}"
    );
    drop(g);
    eventually("the VM's teardown", || svc.service.vm_count() == 0);
    svc.kill();
}

#[test]
fn a_killed_service_fails_the_call_in_progress_and_the_vmm_reconnects_when_it_is_back() {
    let dir = temp_dir("killed");
    let path = dir.join("s");
    let svc = TestService::start(path.clone(), user_service(), Policy::default());
    let mut g = remote_guest(&path);
    let hello = g.open(HELLO);
    let mem = g.open(MEMORY);
    let (cookie, pages, r) = g.register(b"registered before", 0);
    assert_eq!(r, teec::SUCCESS);
    // A call in progress in the TEE (parked on FOREIGN_INTR)...
    let (gpa, r) = g.start_invoke(mem, memory::CMD_SLOW, vec![value(attr::VALUE_INOUT, 1000)]);
    assert_eq!(r.a0(), u64::from(ret::RPC_FOREIGN_INTR));
    // ... when the service dies.
    svc.kill();
    let r = g.resume(&r);
    let r = g.serve(r);
    assert_eq!(r.a0(), 0, "the guest's call returns");
    let out = g.read_arg(gpa);
    assert_eq!(
        outcome(&out),
        (teec::ERROR_COMMUNICATION, teec::ORIGIN_COMMS)
    );
    // While it is away, every call fails the same way.
    let (r, o, _) = g.open_with(HELLO, 0, vec![]);
    assert_eq!((r, o), (teec::ERROR_COMMUNICATION, teec::ORIGIN_COMMS));
    let out = g.invoke(hello, 0, vec![value(attr::VALUE_INOUT, 1)]);
    assert_eq!(
        outcome(&out),
        (teec::ERROR_COMMUNICATION, teec::ORIGIN_COMMS)
    );
    // Back (a new service, nothing of the old one's): the next call
    // reconnects and works.
    let svc = TestService::start(path.clone(), user_service(), Policy::default());
    let again = g.open(HELLO);
    let out = g.invoke(again, 0, vec![value(attr::VALUE_INOUT, 9)]);
    assert_eq!((outcome(&out), out.params[0].a), ((0, 4), 10));
    assert_ne!(again, hello, "a session id is never given twice");
    // The sessions from before answer as closed ones do, and close.
    let out = g.invoke(hello, 0, vec![value(attr::VALUE_INOUT, 1)]);
    assert_eq!(
        outcome(&out),
        (teec::ERROR_BAD_PARAMETERS, teec::ORIGIN_TEE)
    );
    g.close(hello);
    g.close(mem);
    // The buffer registered before still works (it travels as temporary
    // memory now), and unregisters.
    let mem2 = g.open(MEMORY);
    let rmem = optee_mediator::msg::MsgParam::new(attr::RMEM_INOUT, 0, 10, cookie);
    let out = g.reverse(mem2, rmem);
    assert_eq!(outcome(&out).0, teec::SUCCESS);
    assert_eq!(g.read_scattered(&pages, 0, 10), b"deretsiger");
    assert_eq!(g.unregister(cookie), teec::SUCCESS);
    assert_eq!(g.m.backend().stats().reconnects, 1);
    assert_eq!(g.m.backend().stats().lost_calls, 3);
    drop(g);
    eventually("the VM's teardown", || svc.service.vm_count() == 0);
    svc.kill();
}

/// OPEN_SESSION of the fake TA as a raw request.
fn open_fake() -> wire::Call {
    wire::Call {
        command: wire::Command::OpenSession {
            ta: FAKE_TA,
            client: [0; 16],
            login: 0,
        },
        session: 0,
        cancel_id: 0,
        params: Vec::new(),
    }
}

/// Resumes `thread` with FOREIGN_INTR until the call is done.
fn finish(s: &mut std::os::unix::net::UnixStream, thread: u32, mut r: Response) -> wire::Outcome {
    loop {
        match r {
            Response::Step(wire::StepAnswer {
                step: wire::Step::Done(o),
                ..
            }) => return o,
            Response::Step(wire::StepAnswer {
                step: wire::Step::Rpc(wire::RpcRequest::ForeignIntr),
                ..
            }) => {
                std::thread::sleep(Duration::from_millis(1));
                r = exchange(
                    s,
                    &Request::Resume {
                        client: 1,
                        thread,
                        reply: wire::Reply::ForeignIntr,
                    },
                );
            }
            other => panic!("unexpected {other:?}"),
        }
    }
}

#[test]
fn a_vmm_that_vanishes_mid_call_leaves_nothing_in_the_host_tee() {
    let fake = FakeTee::new();
    let f = fake.clone();
    // SAFETY: the service's memory has no host mapping: nothing is
    // registered from it.
    let tee = unsafe { HostTee::new(HostTeeConfig::default(), move || Ok(f.clone())) };
    let service = Service::new(Box::new(tee));
    let dir = temp_dir("vanish");
    let svc = TestService::start(dir.join("s"), service, Policy::default());
    let mut s = raw(&svc.path);
    assert_eq!(
        exchange(&mut s, &Request::VmCreated { client: 1 }),
        Response::Created(Ok(()))
    );
    let r = exchange(
        &mut s,
        &Request::Start {
            client: 1,
            thread: 0,
            call: open_fake(),
        },
    );
    let opened = finish(&mut s, 0, r);
    assert_eq!(opened.ret, teec::SUCCESS);
    let reg = wire::Call {
        command: wire::Command::RegisterShm {
            cookie: 0x77,
            buffer: wire::Buffer {
                page_offset: 0,
                size: 2 * PAGE_SIZE,
            },
        },
        session: 0,
        cancel_id: 0,
        params: Vec::new(),
    };
    let r = exchange(
        &mut s,
        &Request::Start {
            client: 1,
            thread: 0,
            call: reg,
        },
    );
    assert_eq!(finish(&mut s, 0, r).ret, teec::SUCCESS);
    // A call held in the TEE, its data in a driver buffer.
    fake.close_gate();
    let call = wire::Call {
        command: wire::Command::Invoke {
            func: fake_cmd::REVERSE,
        },
        session: opened.session,
        cancel_id: 5,
        params: vec![wire::Param::Memref {
            dir: wire::Dir::InOut,
            mem: Some(wire::Span {
                buffer: wire::SpanBuffer::Temporary(wire::Buffer {
                    page_offset: 0,
                    size: 64,
                }),
                offset: 0,
                data: vec![1; 64],
            }),
            size: 64,
        }],
    };
    let r = exchange(
        &mut s,
        &Request::Start {
            client: 1,
            thread: 1,
            call,
        },
    );
    assert!(matches!(
        r,
        Response::Step(wire::StepAnswer {
            step: wire::Step::Rpc(_),
            ..
        })
    ));
    fake.wait_held(1);
    assert_eq!(fake.session_count(), 1);
    assert!(fake.shm_count() >= 1);
    // The VMM dies: its socket closes, no goodbye.
    drop(s);
    eventually("the VM's teardown", || svc.service.vm_count() == 0);
    fake.open_gate();
    eventually("the host TEE emptied", || {
        fake.session_count() == 0 && fake.shm_count() == 0
    });
    assert_eq!(fake.cancel_calls(), vec![(opened.session, 5)]);
    svc.kill();
}

#[test]
fn a_peer_that_breaks_the_protocol_loses_its_connection_and_no_one_else_does() {
    let dir = temp_dir("malformed");
    let svc = TestService::start(dir.join("s"), user_service(), Policy::default());
    let mut g = remote_guest(&svc.path);
    let hello = g.open(HELLO);
    let breakers: Vec<(&str, Vec<u8>)> = vec![
        ("garbage", {
            let mut b = 3u32.to_le_bytes().to_vec();
            b.extend_from_slice(&[0xff, 0xff, 0xff]);
            b
        }),
        ("oversized", (MAX_FRAME + 1).to_le_bytes().to_vec()),
        ("a resume of nothing", {
            tee_remote::frame::encode(&Request::Resume {
                client: 1,
                thread: 0,
                reply: wire::Reply::ForeignIntr,
            })
            .unwrap()
        }),
        ("an unknown VM", {
            tee_remote::frame::encode(&Request::Abandon {
                client: 9,
                thread: 0,
            })
            .unwrap()
        }),
    ];
    for (what, bytes) in breakers {
        let mut s = raw(&svc.path);
        if what == "a resume of nothing" {
            assert_eq!(
                exchange(&mut s, &Request::VmCreated { client: 1 }),
                Response::Created(Ok(()))
            );
        }
        send_bytes(&mut s, &bytes);
        assert!(closed(&mut s), "{what}: connection dropped");
        let out = g.invoke(hello, 0, vec![value(attr::VALUE_INOUT, 1)]);
        assert_eq!(outcome(&out), (0, 4), "{what}: the other VMM goes on");
    }
    eventually("the breakers' VMs gone", || svc.service.vm_count() == 1);
    assert_eq!(g.m.backend().stats().reconnects, 0);
    drop(g);
    svc.kill();
}

#[test]
fn the_service_applies_its_own_policy_whatever_the_vmm_allows() {
    let dir = temp_dir("policy");
    let policy = Policy {
        tas: TaFilter::Only(vec![HELLO]),
        quotas: optee_mediator::Quotas {
            max_sessions: 2,
            max_buffers: 1,
            ..Default::default()
        },
        ..Policy::default()
    };
    let svc = TestService::start(dir.join("s"), user_service(), policy);
    // The VMM's own mediator allows anything.
    let mut g = remote_guest(&svc.path);
    let (r, o, _) = g.open_with(MEMORY, 0, vec![]);
    assert_eq!((r, o), (teec::ERROR_ACCESS_DENIED, teec::ORIGIN_COMMS));
    g.open(HELLO);
    g.open(HELLO);
    let (r, o, _) = g.open_with(HELLO, 0, vec![]);
    assert_eq!((r, o), (teec::ERROR_OUT_OF_MEMORY, teec::ORIGIN_COMMS));
    let (_, _, r) = g.register(b"one", 0);
    assert_eq!(r, teec::SUCCESS);
    let (_, _, r) = g.register(b"two", 0);
    assert_eq!(r, teec::ERROR_OUT_OF_MEMORY);
    drop(g);
    svc.kill();
}

#[test]
fn a_call_too_large_for_a_frame_fails_alone_and_the_connection_stays() {
    let dir = temp_dir("large");
    let svc = TestService::start(dir.join("s"), user_service(), Policy::default());
    let tee = RemoteTee::connect(Address::Unix(svc.path.clone()), RemoteConfig::default()).unwrap();
    // The VMM's own mediator allows buffers larger than a frame.
    let policy = Policy {
        quotas: optee_mediator::Quotas {
            max_pages_per_buffer: 4096,
            ..Default::default()
        },
        ..Policy::default()
    };
    let mut g = Guest::from_mediator(Mediator::new(ClientId(1), policy, tee).unwrap());
    let mem = g.open(MEMORY);
    let big = vec![7u8; MAX_FRAME as usize + 4096];
    let (p, _) = g.tmem(attr::TMEM_INOUT, &big, 0);
    let out = g.reverse(mem, p);
    assert_eq!(
        outcome(&out),
        (teec::ERROR_OUT_OF_MEMORY, teec::ORIGIN_COMMS)
    );
    let (p, pages) = g.tmem(attr::TMEM_INOUT, b"still here", 0);
    assert_eq!(outcome(&g.reverse(mem, p)), (0, 4));
    assert_eq!(g.read_scattered(&pages, 0, 10), b"ereh llits");
    assert_eq!(g.m.backend().stats().reconnects, 0);
    assert!(g.m.backend().is_connected());
    drop(g);
    svc.kill();
}

#[test]
fn more_parameters_than_a_message_holds_drop_the_connection() {
    let dir = temp_dir("params");
    let svc = TestService::start(dir.join("s"), user_service(), Policy::default());
    let mut s = raw(&svc.path);
    assert_eq!(
        exchange(&mut s, &Request::VmCreated { client: 1 }),
        Response::Created(Ok(()))
    );
    let call = wire::Call {
        command: wire::Command::Invoke { func: 0 },
        session: 1,
        cancel_id: 0,
        params: vec![wire::Param::None; 128],
    };
    let bytes = tee_remote::frame::encode(&Request::Start {
        client: 1,
        thread: 0,
        call,
    })
    .unwrap();
    send_bytes(&mut s, &bytes);
    assert!(closed(&mut s));
    eventually("the VM's teardown", || svc.service.vm_count() == 0);
    svc.kill();
}

#[test]
fn a_call_through_the_service_costs_one_request_and_its_memory_by_value() {
    let dir = temp_dir("cost");
    let svc = TestService::start(dir.join("s"), user_service(), Policy::default());
    let mut g = remote_guest(&svc.path);
    let mem = g.open(MEMORY);
    let data = vec![0x5a; 5000];
    let n = optee_mediator::cost::REPORT_MIN_CALLS;
    for _ in 0..n {
        let (p, _) = g.tmem(attr::TMEM_INOUT, &data, 7);
        assert_eq!(g.reverse(mem, p).header.ret, 0);
        g.reuse_pages();
    }
    assert_eq!(g.close(mem), 0);
    let report = g.m.take_session_costs();
    assert_eq!(report.sessions.len(), 1);
    let s = &report.sessions[0];
    assert_eq!((s.calls, s.tee_requests), (n, n), "one request a call");
    assert_eq!(
        s.bytes_copied,
        n * 4 * 5000,
        "in: from the guest, into the frame; out: from the frame, into the guest"
    );
    assert_eq!(s.threads_started, 0);
    drop(g);
    svc.kill();
}
