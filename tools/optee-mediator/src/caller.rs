// SPDX-License-Identifier: Apache-2.0 OR MIT
//! SMCCC's rule on the caller's execution state, applied by the VMM.
//!
//! SMC64/HVC64 function ids exist only for AArch64 callers: SMCCC (DEN0028,
//! "SMC64/HVC64 calls from AArch32") says such a call from AArch32 must be
//! answered NOT_SUPPORTED. KVM does not apply that rule to the calls it
//! forwards to userspace (it routes; the VMM decides), so the VMM does,
//! before the call reaches the mediator.
//!
//! KVM tells the VMM nothing about the caller's execution state in the exit
//! itself: `KVM_HYPERCALL_EXIT_16BIT` is the width of the trapping
//! instruction (set only for a 16-bit T32 `smc`/`hvc`, so it implies
//! AArch32, but an A32 or 32-bit T32 caller leaves it clear), and api.rst
//! leaves the rest to userspace. The execution state is PSTATE.nRW
//! (`PSR_MODE32_BIT`, bit 4 of the `pstate` core register KVM_GET_ONE_REG
//! reads), which is what this module looks at, and only for SMC64 ids: the
//! calls of OP-TEE's ABI are SMC32, so its usual path costs no extra ioctl.

use smccc::kvm::KVM_HYPERCALL_EXIT_16BIT;
use smccc::{Convention, FunctionId};

use crate::mediator::SmcResult;

/// PSTATE.nRW as KVM's `pstate` core register holds it (`PSR_MODE32_BIT`):
/// set while the vCPU executes in AArch32.
pub const PSTATE_NRW: u64 = 1 << 4;

/// The execution state the caller ran in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ExecState {
    /// AArch64: every SMCCC id may be called.
    AArch64,
    /// AArch32: only SMC32/HVC32 ids may be called.
    AArch32,
}

impl ExecState {
    /// The execution state a `pstate` core register value says.
    pub const fn of_pstate(pstate: u64) -> Self {
        if pstate & PSTATE_NRW != 0 {
            ExecState::AArch32
        } else {
            ExecState::AArch64
        }
    }
}

/// The answer the VMM gives a forwarded call of `function` itself, without
/// passing it on, or `None` if the call goes on to the mediator.
///
/// `flags` is the exit's `hypercall.flags`; `pstate` reads the vCPU's
/// `pstate` core register and is called only when the answer depends on it:
/// for an SMC64 id whose instruction was not a 16-bit T32 one.
pub fn answer_before_mediation<E>(
    function: FunctionId,
    flags: u64,
    pstate: impl FnOnce() -> Result<u64, E>,
) -> Result<Option<SmcResult>, E> {
    if function.convention() != Convention::Smc64 {
        return Ok(None);
    }
    let state = if flags & KVM_HYPERCALL_EXIT_16BIT != 0 {
        ExecState::AArch32
    } else {
        ExecState::of_pstate(pstate()?)
    };
    Ok(match state {
        ExecState::AArch32 => Some(SmcResult::unknown_function()),
        ExecState::AArch64 => None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::abi;
    use smccc::kvm::KVM_HYPERCALL_EXIT_SMC;

    /// An SMC64 id of OP-TEE's Trusted OS range (fast, owner 50).
    const SMC64_TOS: FunctionId = FunctionId(0xF200_0001);
    /// KVM's PSTATE of an AArch32 vCPU at reset (SVC mode, A, I, F masked).
    const AARCH32_SVC: u64 = 0x1d3;
    /// KVM's PSTATE of an AArch64 vCPU at reset (EL1h, D, A, I, F masked).
    const AARCH64_EL1H: u64 = 0x3c5;

    fn never() -> Result<u64, &'static str> {
        Err("PSTATE read although the answer did not depend on it")
    }

    #[test]
    fn pstate_nrw_is_the_execution_state() {
        assert_eq!(ExecState::of_pstate(AARCH32_SVC), ExecState::AArch32);
        assert_eq!(ExecState::of_pstate(0x10), ExecState::AArch32);
        assert_eq!(ExecState::of_pstate(AARCH64_EL1H), ExecState::AArch64);
        assert_eq!(ExecState::of_pstate(0), ExecState::AArch64);
    }

    #[test]
    fn smc64_from_aarch32_is_not_supported_without_mediation() {
        for flags in [KVM_HYPERCALL_EXIT_SMC, 0] {
            let r = answer_before_mediation(SMC64_TOS, flags, || Ok::<_, ()>(AARCH32_SVC));
            let r = r.expect("no error").expect("answered by the VMM");
            assert_eq!(r.regs(), &[u64::MAX], "x0 = NOT_SUPPORTED, nothing else");
        }
    }

    #[test]
    fn a_16bit_instruction_is_aarch32_without_reading_pstate() {
        let flags = KVM_HYPERCALL_EXIT_SMC | KVM_HYPERCALL_EXIT_16BIT;
        let r = answer_before_mediation(SMC64_TOS, flags, never).expect("PSTATE not read");
        assert_eq!(r, Some(SmcResult::unknown_function()));
    }

    #[test]
    fn smc64_from_aarch64_goes_to_the_mediator() {
        let r = answer_before_mediation(SMC64_TOS, KVM_HYPERCALL_EXIT_SMC, || {
            Ok::<_, ()>(AARCH64_EL1H)
        });
        assert_eq!(r, Ok(None));
    }

    #[test]
    fn smc32_goes_to_the_mediator_from_either_state_without_reading_pstate() {
        for flags in [0, KVM_HYPERCALL_EXIT_SMC, KVM_HYPERCALL_EXIT_16BIT] {
            for id in [abi::CALLS_UID, abi::CALL_WITH_ARG, FunctionId(0xB200_FFFF)] {
                assert_eq!(
                    answer_before_mediation(id, flags, never),
                    Ok(None),
                    "{id:?}"
                );
            }
        }
    }

    #[test]
    fn a_failed_pstate_read_is_returned() {
        let r = answer_before_mediation(SMC64_TOS, 0, || Err::<u64, _>("EIO"));
        assert_eq!(r, Err("EIO"));
    }
}
