// SPDX-License-Identifier: Apache-2.0 OR MIT
//! SMCCC's rule on AArch32 callers, which KVM leaves to the VMM: KVM
//! forwards an AArch32 guest's SMC64 call like any other (its exit's
//! `KVM_HYPERCALL_EXIT_16BIT` is the instruction's width, PSTATE says
//! AArch32), and the VMM's adapter (`optee_mediator::kvm`) answers it
//! NOT_SUPPORTED without passing it on to the mediator. The cases drive the
//! same adapter functions tools/vmm calls on each forwarded call.

use optee_mediator::caller::PSTATE_NRW;
use optee_mediator::kvm::{self as adapter, Forwarded};
use optee_mediator::{abi, ClientId, FakeGuestMemory, Mediator, Policy, UserTee, UteeConfig};
use smccc::kvm::KVM_HYPERCALL_EXIT_SMC;
use smccc::TRUSTED_OS_RANGES;

use crate::cases::{call_loop_vm, outcome, CaseResult, Failure, NOT_SUPPORTED};
use crate::guest::{Command, UCALL_DONE};
use crate::ktap::Outcome;
use crate::kvm::{self, Call, Exit, Reg, TestVcpu, TestVm, VmKind, GUEST_CODE_IPA, UCALL_IPA};

/// The SMC64 twin of OP-TEE's CALLS_UID (fast, SMC64, owner 63, 0xFF01): a
/// forwarded Trusted OS id.
pub const SMC64_CALLS_UID: u32 = 0xFF00_FF01;

/// The AArch32 guest, A32 code run with the MMU off from [`GUEST_CODE_IPA`]
/// (encodings from the Arm ARM): an SMC64 call, its result kept in r4, then
/// OP-TEE's (SMC32) CALLS_UID, then a store of r0 to the ucall window at r7.
const AARCH32_GUEST: [u32; 10] = [
    0xE59F_0018, // ldr r0, [pc, #24]   @ word 8
    0xE160_0070, // smc #0
    0xE1A0_4000, // mov r4, r0
    0xE59F_0010, // ldr r0, [pc, #16]   @ word 9
    0xE160_0070, // smc #0
    0xE587_0000, // str r0, [r7]
    0xEAFF_FFFE, // b .
    0,
    SMC64_CALLS_UID,
    abi::CALLS_UID.0,
];

fn check(cond: bool, msg: impl FnOnce() -> String) -> CaseResult {
    if cond {
        Ok(())
    } else {
        Err(Failure(msg()))
    }
}

/// The mediator of a VM, with the userspace TEE behind it: what tools/vmm
/// answers forwarded calls with.
fn mediator() -> Result<Mediator<UserTee>, Failure> {
    Mediator::new(
        ClientId(1),
        Policy::default(),
        UserTee::new(UteeConfig::default()),
    )
    .map_err(|e| Failure(format!("creating the mediator: {e}")))
}

/// What the VMM's adapter makes of the exit `call` of `vcpu`.
fn classify(vcpu: &TestVcpu, call: Call) -> Result<Forwarded, Failure> {
    adapter::read_call(&vcpu.fd, call.nr, call.flags)
        .map_err(|e| Failure(format!("the adapter's read_call: {e}")))
}

/// An AArch64 guest's SMC64 call reaches the mediator (which answers the
/// id, unknown to OP-TEE's ABI, NOT_SUPPORTED): the rule is for AArch32
/// callers only.
pub fn aarch64_smc64_call_reaches_the_mediator() -> CaseResult {
    let (_vm, mut vcpu) = call_loop_vm(VmKind::Normal, &TRUSTED_OS_RANGES)?;
    let mut mediator = mediator()?;
    let mem = FakeGuestMemory::new(&[]);
    let mut seen = None;
    let res = vcpu.call(&[u64::from(SMC64_CALLS_UID)], Command::Smc, |v, call| {
        let forwarded = adapter::read_call(&v.fd, call.nr, call.flags)
            .map_err(|e| kvm::Error::UnexpectedExit(format!("read_call: {e}")))?;
        if let Forwarded::Mediate(c) = forwarded {
            let r = mediator.handle(&mem, &c);
            adapter::write_result(&v.fd, &r)
                .map_err(|e| kvm::Error::UnexpectedExit(format!("write_result: {e}")))?;
        }
        seen = Some(forwarded);
        Ok(())
    })?;
    match seen {
        Some(Forwarded::Mediate(c)) => check(c.function.0 == SMC64_CALLS_UID, || {
            format!(
                "the mediator got {:#x}, want {SMC64_CALLS_UID:#x}",
                c.function.0
            )
        })?,
        other => {
            return Err(Failure(format!(
                "an AArch64 guest's SMC64 call: the adapter gave {other:?}, want Mediate"
            )))
        }
    }
    check(res.regs[0] == NOT_SUPPORTED, || {
        format!("x0 = {:#x}, want the mediator's NOT_SUPPORTED", res.regs[0])
    })
}

/// An AArch32 guest's SMC64 call is forwarded (SMC, `KVM_HYPERCALL_EXIT_16BIT`
/// clear for an A32 `smc`, PSTATE.nRW set, PC after the `smc`); the VMM's
/// adapter answers it NOT_SUPPORTED itself, and the guest's next call,
/// SMC32, reaches the mediator, whose answer the guest gets.
/// Skips where the CPU has no AArch32 EL1.
pub fn aarch32_smc64_call_is_refused_by_the_vmm() -> Outcome {
    match kvm::has_aarch32_el1() {
        Ok(true) => outcome(aarch32_guest_run()),
        Ok(false) => Outcome::Skip(
            "KVM cannot run AArch32 at EL1 on this CPU (no KVM_CAP_ARM_EL1_32BIT)".into(),
        ),
        Err(e) => Outcome::Fail(e.to_string()),
    }
}

fn aarch32_guest_run() -> CaseResult {
    let code: Vec<u8> = AARCH32_GUEST.iter().flat_map(|w| w.to_le_bytes()).collect();
    let vm = TestVm::new(VmKind::Normal, &code)?;
    vm.forward(&TRUSTED_OS_RANGES)?;
    let mut vcpu = vm.vcpu_aarch32(0, 0)?;
    vcpu.set(Reg::X(7), UCALL_IPA + UCALL_DONE)?;
    let mut mediator = mediator()?;
    let mem = FakeGuestMemory::new(&[]);

    let call = match vcpu.run()? {
        Exit::Hypercall(call) => call,
        other => {
            return Err(Failure(format!(
                "the AArch32 guest's SMC64 call was not forwarded ({other:?}): does this kernel \
                 carry v1's \"Don't forward SMC64 calls from AArch32 guests\"?"
            )))
        }
    };
    check(call.nr == u64::from(SMC64_CALLS_UID), || {
        format!("hypercall.nr = {:#x}, want {SMC64_CALLS_UID:#x}", call.nr)
    })?;
    check(call.flags == KVM_HYPERCALL_EXIT_SMC, || {
        format!(
            "hypercall.flags = {:#x}, want SMC only (A32: not 16-bit)",
            call.flags
        )
    })?;
    let pstate = vcpu.get(Reg::Pstate)?;
    check(pstate & PSTATE_NRW != 0, || {
        format!("PSTATE = {pstate:#x}: nRW clear, want AArch32")
    })?;
    let pc = vcpu.get(Reg::Pc)?;
    check(pc == GUEST_CODE_IPA + 8, || {
        format!(
            "PC = {pc:#x}, want {:#x} (after the smc)",
            GUEST_CODE_IPA + 8
        )
    })?;
    let refused = match classify(&vcpu, call)? {
        Forwarded::Refused(r) => r,
        Forwarded::Mediate(c) => {
            return Err(Failure(format!(
                "the adapter passed the AArch32 guest's SMC64 call on to the mediator: {c:?}"
            )))
        }
    };
    adapter::write_result(&vcpu.fd, &refused).map_err(|e| Failure(format!("write_result: {e}")))?;

    let call = vcpu.run_to_hypercall()?;
    check(call.nr == u64::from(abi::CALLS_UID.0), || {
        format!("second call: hypercall.nr = {:#x}, want CALLS_UID", call.nr)
    })?;
    let answer = match classify(&vcpu, call)? {
        Forwarded::Mediate(c) => mediator.handle(&mem, &c),
        Forwarded::Refused(r) => {
            return Err(Failure(format!(
                "the adapter refused the AArch32 guest's SMC32 CALLS_UID: {r:?}"
            )))
        }
    };
    adapter::write_result(&vcpu.fd, &answer).map_err(|e| Failure(format!("write_result: {e}")))?;

    vcpu.run_expect(Exit::Ucall(UCALL_DONE))?;
    let r4 = vcpu.get(Reg::X(4))? as u32;
    check(r4 == NOT_SUPPORTED as u32, || {
        format!("the guest's SMC64 call returned r0 = {r4:#x}, want NOT_SUPPORTED (0xffffffff)")
    })?;
    let uid = vcpu.get_x(4)?;
    let uid: Vec<u32> = uid.iter().map(|r| *r as u32).collect();
    check(uid == abi::API_UID, || {
        format!(
            "the guest's CALLS_UID returned r0..r3 = {uid:#x?}, want {:#x?}",
            abi::API_UID
        )
    })
}
