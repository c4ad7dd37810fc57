// SPDX-License-Identifier: Apache-2.0 OR MIT
//! Sessions, commands, values, cancellation, blocking, device errors.

use optee_mediator::backend::{Backend, Command, Param, RpcReply, RpcRequest, Step};
use optee_mediator::msg::{teec, Dir};
use tee_uapi::sys::{
    TEE_IOCTL_LOGIN_PUBLIC, TEE_IOCTL_PARAM_ATTR_TYPE_MEMREF_OUTPUT,
    TEE_IOCTL_PARAM_ATTR_TYPE_VALUE_INOUT, TEE_IOCTL_PARAM_ATTR_TYPE_VALUE_INPUT,
    TEE_IOCTL_PARAM_ATTR_TYPE_VALUE_OUTPUT,
};
use tee_uapi::MEMREF_NULL;

use super::*;
use crate::fake::fake_cmd;
use crate::params::{plan, Planned};

#[test]
fn open_session_passes_public_login_whatever_the_guest_asked() {
    let mem = ram();
    let fake = FakeTee::new();
    let mut tee = backend(&fake);
    let s = open(&mut tee, &mem);
    assert_ne!(s, 0);
    assert_eq!(fake.logins(), vec![ClientLogin::PUBLIC]);
    assert_eq!(ClientLogin::PUBLIC.method, TEE_IOCTL_LOGIN_PUBLIC);
    assert_eq!((tee.session_count(VM), fake.session_count()), (1, 1));
}

#[test]
fn in_a_partition_of_its_own_the_guests_login_and_client_uuid_pass_through() {
    let mem = ram();
    let fake = FakeTee::new();
    fake.pass_logins();
    let mut tee = backend(&fake);
    let s = open(&mut tee, &mem);
    assert_ne!(s, 0);
    // open_command(): a USER login with client UUID 7...7.
    assert_eq!(
        fake.logins(),
        vec![ClientLogin {
            method: 1,
            uuid: [7; 16]
        }]
    );
}

#[test]
fn opening_an_unknown_ta_reports_the_tees_verdict_and_records_no_session() {
    let mem = ram();
    let fake = FakeTee::new();
    let mut tee = backend(&fake);
    let cmd = Command::OpenSession {
        ta: Uuid([9; 16]),
        client: Uuid::NIL,
        login: 0,
    };
    let mut c = std_call(cmd, 0, vec![]);
    run(&mut tee, 0, &mut c, &mem);
    assert_result(&c, teec::ERROR_ITEM_NOT_FOUND, teec::ORIGIN_TEE);
    assert_eq!(tee.session_count(VM), 0);
}

#[test]
fn values_are_translated_by_direction_and_outputs_come_back() {
    let mem = ram();
    let fake = FakeTee::new();
    let mut tee = backend(&fake);
    let s = open(&mut tee, &mem);
    let input = Param::Value {
        dir: Dir::In,
        a: 5,
        b: 6,
        c: 7,
    };
    let mut c = invoke(s, fake_cmd::INC, vec![value_inout(41), input.clone()]);
    run(&mut tee, 1, &mut c, &mem);
    assert_result(&c, teec::SUCCESS, teec::ORIGIN_TRUSTED_APP);
    assert_eq!(c.params[0], value_inout(42));
    assert_eq!(c.params[1], input, "inputs are left alone");
}

#[test]
fn plan_gives_each_parameter_its_uapi_attribute_and_fields() {
    let mem = ram();
    let none = |_: &std::sync::Arc<GuestBuffer>| None;
    let params = vec![
        Param::None,
        Param::Value {
            dir: Dir::In,
            a: 1,
            b: 2,
            c: 3,
        },
        Param::Value {
            dir: Dir::Out,
            a: 1,
            b: 2,
            c: 3,
        },
        Param::Memref {
            dir: Dir::Out,
            mem: None,
            size: 0x30,
        },
    ];
    let planned = plan(&params, &none, &mem).unwrap();
    let got: Vec<(u64, u64, u64, u64)> = planned
        .iter()
        .map(|p| match p {
            Planned::Ready(p) => (p.attr, p.a, p.b, p.c),
            other => panic!("not ready: {other:?}"),
        })
        .collect();
    assert_eq!(
        got,
        vec![
            (0, 0, 0, 0),
            (TEE_IOCTL_PARAM_ATTR_TYPE_VALUE_INPUT.into(), 1, 2, 3),
            (TEE_IOCTL_PARAM_ATTR_TYPE_VALUE_OUTPUT.into(), 0, 0, 0),
            (
                TEE_IOCTL_PARAM_ATTR_TYPE_MEMREF_OUTPUT.into(),
                0,
                0x30,
                MEMREF_NULL
            ),
        ]
    );
    let inout = plan(&[value_inout(9)], &none, &mem).unwrap();
    assert!(matches!(
        &inout[0],
        Planned::Ready(p) if p.attr == u64::from(TEE_IOCTL_PARAM_ATTR_TYPE_VALUE_INOUT) && p.a == 9
    ));
}

#[test]
fn more_than_four_parameters_are_bad_parameters_from_comms_without_an_ioctl() {
    let mem = ram();
    let fake = FakeTee::new();
    let mut tee = backend(&fake);
    let s = open(&mut tee, &mem);
    let mut c = invoke(s, fake_cmd::INC, vec![value_inout(0); 5]);
    assert_eq!(tee.start(VM, 1, &mut c, &mem), Step::Done);
    assert_result(&c, teec::ERROR_BAD_PARAMETERS, teec::ORIGIN_COMMS);
}

#[test]
fn a_session_the_vm_did_not_open_is_refused_without_an_ioctl() {
    let mem = ram();
    let fake = FakeTee::new();
    let mut tee = backend(&fake);
    let mut c = invoke(99, fake_cmd::INC, vec![value_inout(0)]);
    assert_eq!(tee.start(VM, 1, &mut c, &mem), Step::Done);
    assert_result(&c, teec::ERROR_BAD_PARAMETERS, teec::ORIGIN_COMMS);
    let mut close = std_call(Command::CloseSession, 99, vec![]);
    assert_eq!(tee.start(VM, 1, &mut close, &mem), Step::Done);
    assert_result(&close, teec::ERROR_BAD_PARAMETERS, teec::ORIGIN_COMMS);
}

#[test]
fn a_call_answers_foreign_intr_until_the_tees_result_is_in() {
    let mem = ram();
    let fake = FakeTee::new();
    let mut tee = backend(&fake);
    let s = open(&mut tee, &mem);
    fake.close_gate();
    let mut c = invoke(s, fake_cmd::INC, vec![value_inout(1)]);
    assert_eq!(
        tee.start(VM, 1, &mut c, &mem),
        Step::Rpc(RpcRequest::ForeignIntr)
    );
    fake.wait_held(1);
    for _ in 0..3 {
        assert_eq!(
            tee.resume(VM, 1, &mut c, RpcReply::ForeignIntr, &mem),
            Step::Rpc(RpcRequest::ForeignIntr),
            "still in the TEE"
        );
    }
    assert_eq!(tee.calls_in_progress(VM), 1);
    fake.open_gate();
    drive(&mut tee, 1, &mut c, &mem);
    assert_result(&c, teec::SUCCESS, teec::ORIGIN_TRUSTED_APP);
    assert_eq!(c.params[0], value_inout(2));
    assert_eq!(tee.calls_in_progress(VM), 0);
}

#[test]
fn a_vcpu_waiting_on_progress_wakes_when_the_tees_result_is_in() {
    use std::time::{Duration, Instant};
    let mem = ram();
    let fake = FakeTee::new();
    let mut tee = backend(&fake);
    let progress = tee.progress().expect("the host backend reports progress");
    let s = open(&mut tee, &mem);
    fake.close_gate();
    let seen = progress.seen();
    let mut c = invoke(s, fake_cmd::INC, vec![value_inout(1)]);
    assert_eq!(
        tee.start(VM, 1, &mut c, &mem),
        Step::Rpc(RpcRequest::ForeignIntr)
    );
    fake.wait_held(1);
    assert!(
        !progress.wait_past(seen, Duration::from_millis(20)),
        "no result while the call is held in the TEE"
    );
    let opener = {
        let fake = fake.clone();
        std::thread::spawn(move || {
            std::thread::sleep(Duration::from_millis(30));
            fake.open_gate();
        })
    };
    let t = Instant::now();
    assert!(progress.wait_past(seen, Duration::from_secs(30)));
    assert!(t.elapsed() < Duration::from_secs(20));
    opener.join().unwrap();
    // The result is there for the first poll after the wake-up.
    assert_eq!(
        tee.resume(VM, 1, &mut c, RpcReply::ForeignIntr, &mem),
        Step::Done
    );
    assert_result(&c, teec::SUCCESS, teec::ORIGIN_TRUSTED_APP);
    assert_eq!(c.params[0], value_inout(2));
}

#[test]
fn close_session_closes_it_in_the_host_tee() {
    let mem = ram();
    let fake = FakeTee::new();
    let mut tee = backend(&fake);
    let s = open(&mut tee, &mem);
    let mut c = std_call(Command::CloseSession, s, vec![]);
    run(&mut tee, 0, &mut c, &mem);
    assert_result(&c, teec::SUCCESS, teec::ORIGIN_TEE);
    assert_eq!((tee.session_count(VM), fake.session_count()), (0, 0));
}

#[test]
fn cancel_reaches_tee_ioc_cancel_and_ends_the_call_it_names() {
    let mem = ram();
    let fake = FakeTee::new();
    let mut tee = backend(&fake);
    let s = open(&mut tee, &mem);
    fake.close_gate();
    let mut long = invoke(s, fake_cmd::INC, vec![value_inout(1)]);
    long.cancel_id = 7;
    assert_eq!(
        tee.start(VM, 1, &mut long, &mem),
        Step::Rpc(RpcRequest::ForeignIntr)
    );
    fake.wait_held(1);
    let mut cancel = std_call(Command::Cancel, s, vec![]);
    cancel.cancel_id = 7;
    run(&mut tee, 2, &mut cancel, &mem);
    assert_result(&cancel, teec::SUCCESS, teec::ORIGIN_TEE);
    assert_eq!(fake.cancel_calls(), vec![(s, 7)]);
    drive(&mut tee, 1, &mut long, &mem);
    assert_result(&long, teec::ERROR_CANCEL, teec::ORIGIN_TEE);
    assert_eq!(
        long.params[0],
        value_inout(1),
        "a cancelled call changes nothing"
    );
}

#[test]
fn device_errors_become_teec_results_with_origin_comms() {
    let mem = ram();
    let fake = FakeTee::new();
    let mut tee = backend(&fake);
    let s = open(&mut tee, &mem);
    for (errno, ret) in [
        (libc::EINVAL, teec::ERROR_BAD_PARAMETERS),
        (libc::ENOMEM, teec::ERROR_OUT_OF_MEMORY),
        (libc::EIO, teec::ERROR_COMMUNICATION),
    ] {
        fake.fail_next("INVOKE", errno);
        let mut c = invoke(s, fake_cmd::INC, vec![value_inout(1)]);
        run(&mut tee, 1, &mut c, &mem);
        assert_result(&c, ret, teec::ORIGIN_COMMS);
        assert_eq!(
            c.params[0],
            value_inout(1),
            "no outputs from a failed ioctl"
        );
    }
    fake.fail_next("OPEN_SESSION", libc::EPERM);
    let mut o = std_call(open_command(), 0, vec![]);
    run(&mut tee, 0, &mut o, &mem);
    assert_result(&o, teec::ERROR_COMMUNICATION, teec::ORIGIN_COMMS);
    assert_eq!(tee.session_count(VM), 1);
}

#[test]
fn a_reply_other_than_foreign_intr_fails_the_call_and_drops_it() {
    let mem = ram();
    let fake = FakeTee::new();
    let mut tee = backend(&fake);
    let s = open(&mut tee, &mem);
    let mut c = invoke(s, fake_cmd::INC, vec![value_inout(1)]);
    tee.start(VM, 1, &mut c, &mem);
    assert_eq!(tee.resume(VM, 1, &mut c, RpcReply::Free, &mem), Step::Done);
    assert_result(&c, teec::ERROR_COMMUNICATION, teec::ORIGIN_COMMS);
    assert_eq!(tee.calls_in_progress(VM), 0);
}

#[test]
fn a_thread_already_in_a_call_cannot_start_another() {
    let mem = ram();
    let fake = FakeTee::new();
    let mut tee = backend(&fake);
    let s = open(&mut tee, &mem);
    fake.close_gate();
    let mut c = invoke(s, fake_cmd::INC, vec![value_inout(1)]);
    tee.start(VM, 1, &mut c, &mem);
    let mut again = invoke(s, fake_cmd::INC, vec![value_inout(1)]);
    assert_eq!(tee.start(VM, 1, &mut again, &mem), Step::Done);
    assert_result(&again, teec::ERROR_BAD_STATE, teec::ORIGIN_COMMS);
    fake.open_gate();
    drive(&mut tee, 1, &mut c, &mem);
    assert_result(&c, teec::SUCCESS, teec::ORIGIN_TRUSTED_APP);
}

#[test]
fn calls_one_after_another_run_on_one_worker_thread() {
    let mem = ram();
    let fake = FakeTee::new();
    let mut tee = backend(&fake);
    let s = open(&mut tee, &mem);
    for i in 0..50 {
        let mut c = invoke(s, fake_cmd::INC, vec![value_inout(i)]);
        run(&mut tee, 1, &mut c, &mem);
        assert_result(&c, teec::SUCCESS, teec::ORIGIN_TRUSTED_APP);
        assert_eq!(c.params[0], value_inout(i + 1));
    }
    assert_eq!(
        tee.threads_created(VM),
        1,
        "one worker for 51 calls in a row"
    );
}

#[test]
fn calls_at_once_get_a_worker_each_and_the_workers_stay_for_the_next_ones() {
    let mem = ram();
    let fake = FakeTee::new();
    let mut tee = backend(&fake);
    let s = open(&mut tee, &mem);
    for round in 0..3 {
        fake.close_gate();
        let mut calls: Vec<StdCall> = (0..3)
            .map(|i| invoke(s, fake_cmd::INC, vec![value_inout(i)]))
            .collect();
        for (t, c) in (1..).zip(calls.iter_mut()) {
            assert_eq!(
                tee.start(VM, t, c, &mem),
                Step::Rpc(RpcRequest::ForeignIntr)
            );
        }
        // All three in the TEE at once: none waits for another's worker.
        fake.wait_held(3);
        fake.open_gate();
        for (t, c) in (1..).zip(calls.iter_mut()) {
            drive(&mut tee, t, c, &mem);
            assert_result(c, teec::SUCCESS, teec::ORIGIN_TRUSTED_APP);
        }
        assert_eq!(tee.threads_created(VM), 3, "round {round}");
        // A worker is back in the pool a moment after its result is in:
        // the next round starts when all three wait there, as calls that
        // come later than the emulator's microseconds would.
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
        while tee.idle_workers(VM) < 3 {
            assert!(
                std::time::Instant::now() < deadline,
                "round {round}: workers idle"
            );
            std::thread::sleep(std::time::Duration::from_millis(1));
        }
    }
}
