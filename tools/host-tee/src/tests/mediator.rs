// SPDX-License-Identifier: Apache-2.0 OR MIT
//! The backend behind a real `Mediator`, called as a guest driver calls
//! it: CALL_WITH_ARG, FOREIGN_INTR answered with RETURN_FROM_RPC.

use optee_mediator::abi::{self, ret};
use optee_mediator::msg::{attr, cmd, teec, MsgArg, MsgParam};
use optee_mediator::{GuestRam, Mediator, Policy, SmcCall, SmcResult};

use super::*;
use crate::fake::fake_cmd;

/// The guest's argument page.
const ARG: u64 = 0x4000_1000;

/// CALL_WITH_ARG of `arg`, then RETURN_FROM_RPC while the answer is
/// FOREIGN_INTR; the final answer and the FOREIGN_INTR rounds.
fn call(vm: &mut Mediator<HostTee<FakeTee>>, mem: &dyn GuestRam, arg: &MsgArg) -> (SmcResult, u32) {
    mem.write(ARG, &arg.encode()).unwrap();
    let mut r = vm.handle(mem, &SmcCall::new(abi::CALL_WITH_ARG, &[0, ARG]));
    let mut rounds = 0;
    while r.a0() == u64::from(ret::RPC_FOREIGN_INTR) {
        rounds += 1;
        std::thread::sleep(Duration::from_micros(200));
        let back = [r.regs()[1], r.regs()[2], r.regs()[3]];
        r = vm.handle(mem, &SmcCall::new(abi::RETURN_FROM_RPC, &back));
    }
    (r, rounds)
}

/// OPEN_SESSION of the fake TA, login PUBLIC.
fn open_fake_ta() -> MsgArg {
    MsgArg::new(
        cmd::OPEN_SESSION,
        vec![
            MsgParam::new(
                attr::META | attr::VALUE_INPUT,
                u64::from_le_bytes(FAKE_TA[..8].try_into().unwrap()),
                u64::from_le_bytes(FAKE_TA[8..].try_into().unwrap()),
                0,
            ),
            MsgParam::new(attr::META | attr::VALUE_INPUT, 0, 0, 0),
        ],
    )
}

#[test]
fn a_guest_opens_invokes_and_its_vms_end_leaves_nothing_in_the_host_tee() {
    let mem = ram();
    let fake = FakeTee::new();
    let f = fake.clone();
    // SAFETY: `mem` is declared before the mediator that owns the backend.
    let tee = unsafe { HostTee::new(HostTeeConfig::default(), move || Ok(f.clone())) };
    let mut vm = Mediator::new(VM, Policy::default(), tee).unwrap();

    let open = open_fake_ta();
    let (r, rounds) = call(&mut vm, &mem, &open);
    assert_eq!(r.a0(), 0);
    assert!(rounds >= 1, "the open went through a worker");
    let opened = MsgArg::read(&mem, ARG).unwrap();
    assert_eq!(opened.header.ret, teec::SUCCESS);
    let session = opened.header.session;

    fake.close_gate();
    let mut inc = MsgArg::new(
        cmd::INVOKE_COMMAND,
        vec![MsgParam::new(attr::VALUE_INOUT, 41, 0, 0)],
    );
    inc.header.session = session;
    inc.header.func = fake_cmd::INC;
    mem.write(ARG, &inc.encode()).unwrap();
    let parked = vm.handle(&mem, &SmcCall::new(abi::CALL_WITH_ARG, &[0, ARG]));
    assert_eq!(parked.a0(), u64::from(ret::RPC_FOREIGN_INTR));
    fake.wait_held(1);
    let back = [parked.regs()[1], parked.regs()[2], parked.regs()[3]];
    let again = vm.handle(&mem, &SmcCall::new(abi::RETURN_FROM_RPC, &back));
    assert_eq!(
        again.a0(),
        u64::from(ret::RPC_FOREIGN_INTR),
        "still in the TEE"
    );
    fake.open_gate();
    let mut r = again;
    while r.a0() == u64::from(ret::RPC_FOREIGN_INTR) {
        std::thread::sleep(Duration::from_micros(200));
        let back = [r.regs()[1], r.regs()[2], r.regs()[3]];
        r = vm.handle(&mem, &SmcCall::new(abi::RETURN_FROM_RPC, &back));
    }
    assert_eq!(r.a0(), 0);
    let out = MsgArg::read(&mem, ARG).unwrap();
    assert_eq!((out.header.ret, out.params[0].a), (teec::SUCCESS, 42));

    assert_eq!(fake.session_count(), 1);
    drop(vm);
    assert_eq!((fake.session_count(), fake.shm_count()), (0, 0));
}

#[test]
fn a_guest_unregisters_what_it_registered_through_the_mediator() {
    let mem = ram();
    let fake = FakeTee::new();
    let f = fake.clone();
    // SAFETY: `mem` is declared before the mediator that owns the backend.
    let tee = unsafe { HostTee::new(HostTeeConfig::default(), move || Ok(f.clone())) };
    let mut vm = Mediator::new(VM, Policy::default(), tee).unwrap();

    // Two guest-contiguous pages, so registered with the host (zero-copy).
    let (list, pages) = (0x4000_2000, [0x4000_3000, 0x4000_4000]);
    let ptr = optee_mediator::pagelist::write_list(&mem, &[list], &pages, 0).unwrap();
    let cookie = 0xc0de;
    let reg = MsgArg::new(
        cmd::REGISTER_SHM,
        vec![MsgParam::new(
            attr::TMEM_OUTPUT | attr::NONCONTIG,
            ptr,
            8192,
            cookie,
        )],
    );
    let (r, _) = call(&mut vm, &mem, &reg);
    assert_eq!(r.a0(), 0);
    assert_eq!(MsgArg::read(&mem, ARG).unwrap().header.ret, teec::SUCCESS);
    assert_eq!(fake.shm_count(), 1);

    // The backend's record of the buffer does not make it look busy to
    // the mediator (which refuses UNREGISTER_SHM of a buffer in use).
    let unreg = MsgArg::new(
        cmd::UNREGISTER_SHM,
        vec![MsgParam::new(attr::RMEM_INPUT, 0, 0, cookie)],
    );
    let (r, _) = call(&mut vm, &mem, &unreg);
    assert_eq!(r.a0(), 0);
    assert_eq!(MsgArg::read(&mem, ARG).unwrap().header.ret, teec::SUCCESS);
    assert_eq!(fake.shm_count(), 0);
}

/// What tosfwd-vmm does with `--tee-wait-us`: after a FOREIGN_INTR answer,
/// wait on the backend's progress (no lock held), then come back from the
/// FOREIGN_INTR for the guest: the call completes in one guest exit.
#[test]
fn a_vmm_waiting_on_progress_completes_the_call_without_the_guest() {
    let mem = ram();
    let fake = FakeTee::new();
    let f = fake.clone();
    // SAFETY: `mem` is declared before the mediator that owns the backend.
    let tee = unsafe { HostTee::new(HostTeeConfig::default(), move || Ok(f.clone())) };
    let mut vm = Mediator::new(VM, Policy::default(), tee).unwrap();
    let progress = vm
        .backend()
        .progress()
        .expect("the host backend reports progress");
    let open = open_fake_ta();
    mem.write(ARG, &open.encode()).unwrap();
    let mut seen = progress.seen();
    let mut r = vm.handle(&mem, &SmcCall::new(abi::CALL_WITH_ARG, &[0, ARG]));
    let mut returns = 0;
    while r.a0() == u64::from(ret::RPC_FOREIGN_INTR) {
        assert!(
            progress.wait_past(seen, Duration::from_secs(30)),
            "the worker's result arrives"
        );
        seen = progress.seen();
        r = vm
            .return_from_foreign_intr(&mem, &r, smccc::Conduit::Smc)
            .expect("a FOREIGN_INTR is answered");
        returns += 1;
    }
    assert_eq!(r.a0(), 0);
    assert_eq!(returns, 1, "one wait, one return: the result was in");
    let opened = MsgArg::read(&mem, ARG).unwrap();
    assert_eq!(opened.header.ret, teec::SUCCESS);
    assert_eq!(fake.session_count(), 1);
}

#[test]
fn a_sessions_cost_counts_the_guests_exits_and_the_backends_work_per_call() {
    let mem = ram();
    let fake = FakeTee::new();
    let f = fake.clone();
    // SAFETY: `mem` is declared before the mediator that owns the backend.
    let tee = unsafe { HostTee::new(HostTeeConfig::default(), move || Ok(f.clone())) };
    let mut vm = Mediator::new(VM, Policy::default(), tee).unwrap();
    let (r, _) = call(&mut vm, &mem, &open_fake_ta());
    assert_eq!(r.a0(), 0);
    let session = MsgArg::read(&mem, ARG).unwrap().header.session;
    let n = optee_mediator::cost::REPORT_MIN_CALLS;
    let mut exits = 0;
    for i in 0..n {
        let mut inc = MsgArg::new(
            cmd::INVOKE_COMMAND,
            vec![MsgParam::new(attr::VALUE_INOUT, i, 0, 0)],
        );
        inc.header.session = session;
        inc.header.func = fake_cmd::INC;
        let (r, rounds) = call(&mut vm, &mem, &inc);
        assert_eq!(r.a0(), 0);
        exits += 1 + u64::from(rounds);
    }
    let mut close = MsgArg::new(cmd::CLOSE_SESSION, vec![]);
    close.header.session = session;
    call(&mut vm, &mem, &close);
    let report = vm.take_session_costs();
    assert_eq!(report.sessions.len(), 1);
    let s = &report.sessions[0];
    assert_eq!((s.session, s.calls, s.ta.0), (session, n, FAKE_TA));
    assert_eq!(
        s.guest_exits, exits,
        "CALL_WITH_ARG and each RETURN_FROM_RPC"
    );
    assert_eq!(s.vmm_returns, 0);
    assert_eq!(s.tee_requests, n, "one TEE_IOC_INVOKE a call");
    assert_eq!((s.bytes_copied, s.threads_started), (0, 0));
    assert!(vm.take_session_costs().sessions.is_empty(), "taken once");
}
