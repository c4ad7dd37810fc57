// SPDX-License-Identifier: Apache-2.0 OR MIT
//! The aarch64 adapter: a KVM_EXIT_HYPERCALL of a forwarded SMCCC call
//! becomes an [`SmcCall`], and the [`SmcResult`] goes back into the vCPU's
//! registers. Only the argument registers the function uses are read
//! (KVM_GET_ONE_REG); x0 is always written, x1..x3 only when the call
//! defines them. An SMC64 call from an AArch32 vCPU never reaches the
//! mediator: [`read_call`] answers it NOT_SUPPORTED itself, as SMCCC says
//! (see [`crate::caller`]).
//!
//! ```ignore
//! loop {
//!     match vcpu.run()? {
//!         VcpuExit::Hypercall(_) => {
//!             optee_mediator::kvm::handle_hypercall_exit(&mut vcpu, &mut mediator, &guest_mem)?;
//!         }
//!         // ...
//!     }
//! }
//! ```

use kvm_bindings::KVM_EXIT_HYPERCALL;
use kvm_ioctls::VcpuFd;
use smccc::kvm::{CoreReg, KVM_HYPERCALL_EXIT_SMC};
use smccc::{Conduit, FunctionId};

use crate::abi::Function;
use crate::backend::Backend;
use crate::caller;
use crate::mediator::{Mediator, SmcCall, SmcResult};
use crate::mem::GuestRam;

/// A failed register access.
#[derive(Debug, thiserror::Error)]
pub enum AdapterError {
    /// KVM_GET_ONE_REG failed.
    #[error("reading {reg} with KVM_GET_ONE_REG failed: {err}")]
    GetReg {
        /// The register.
        reg: CoreReg,
        /// The error.
        err: kvm_ioctls::Error,
    },
    /// The last exit was not KVM_EXIT_HYPERCALL.
    #[error("the vCPU's last exit (reason {0}) was not KVM_EXIT_HYPERCALL")]
    NotHypercall(u32),
    /// KVM_SET_ONE_REG failed.
    #[error("writing x{reg} with KVM_SET_ONE_REG failed: {err}")]
    SetReg {
        /// Register number.
        reg: u8,
        /// The error.
        err: kvm_ioctls::Error,
    },
}

/// The registers an SMC32 call uses: x0..x7 (ids from `smccc`'s `CoreReg`,
/// derived from the uapi layout, in one place).
const X: [CoreReg; 8] = [
    CoreReg::X(0),
    CoreReg::X(1),
    CoreReg::X(2),
    CoreReg::X(3),
    CoreReg::X(4),
    CoreReg::X(5),
    CoreReg::X(6),
    CoreReg::X(7),
];

fn reg(n: u8) -> CoreReg {
    X.get(usize::from(n)).copied().unwrap_or(CoreReg::X(0))
}

fn get(vcpu: &VcpuFd, reg: u8) -> Result<u64, AdapterError> {
    get_reg(vcpu, self::reg(reg))
}

fn get_reg(vcpu: &VcpuFd, reg: CoreReg) -> Result<u64, AdapterError> {
    let mut b = [0u8; 8];
    vcpu.get_one_reg(reg.id(), &mut b)
        .map_err(|err| AdapterError::GetReg { reg, err })?;
    Ok(u64::from_le_bytes(b))
}

fn set(vcpu: &VcpuFd, reg: u8, v: u64) -> Result<(), AdapterError> {
    vcpu.set_one_reg(self::reg(reg).id(), &v.to_le_bytes())
        .map(|_| ())
        .map_err(|err| AdapterError::SetReg { reg, err })
}

/// What the VMM does with a forwarded call.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Forwarded {
    /// The mediator answers it.
    Mediate(SmcCall),
    /// The VMM answers it with this result, without passing it on: an
    /// SMC64 function id called from AArch32 ([`caller`]).
    Refused(SmcResult),
}

/// The call of a hypercall exit: `nr` is `kvm_run.hypercall.nr` (the
/// function id), `flags` is `kvm_run.hypercall.flags`. An SMC64 id reads
/// the vCPU's PSTATE to tell an AArch32 caller, whose call is
/// [`Forwarded::Refused`]; an SMC32 id costs no extra ioctl.
pub fn read_call(vcpu: &VcpuFd, nr: u64, flags: u64) -> Result<Forwarded, AdapterError> {
    let function = FunctionId::from_x0(nr);
    if let Some(result) =
        caller::answer_before_mediation(function, flags, || get_reg(vcpu, CoreReg::Pstate))?
    {
        return Ok(Forwarded::Refused(result));
    }
    let conduit = if flags & KVM_HYPERCALL_EXIT_SMC != 0 {
        Conduit::Smc
    } else {
        Conduit::Hvc
    };
    let mut args = [0u64; 7];
    let used = Function::decode(function).args_used();
    for (i, a) in args.iter_mut().enumerate().take(used) {
        *a = get(vcpu, i as u8 + 1)?;
    }
    Ok(Forwarded::Mediate(SmcCall {
        function,
        conduit,
        args,
    }))
}

/// Writes a result: x0 always, x1.. as the result defines.
pub fn write_result(vcpu: &VcpuFd, result: &SmcResult) -> Result<(), AdapterError> {
    for (i, v) in result.regs().iter().enumerate() {
        set(vcpu, i as u8, *v)?;
    }
    Ok(())
}

/// Reads the call of a hypercall exit, lets `mediator` answer it (unless
/// the VMM refuses it itself, [`Forwarded::Refused`]), writes the answer
/// back; returns it.
pub fn handle_hypercall<B: Backend>(
    vcpu: &VcpuFd,
    nr: u64,
    flags: u64,
    mediator: &mut Mediator<B>,
    mem: &dyn GuestRam,
) -> Result<SmcResult, AdapterError> {
    let result = match read_call(vcpu, nr, flags)? {
        Forwarded::Mediate(call) => mediator.handle(mem, &call),
        Forwarded::Refused(result) => result,
    };
    write_result(vcpu, &result)?;
    Ok(result)
}

/// Answers the KVM_EXIT_HYPERCALL the vCPU just made: reads the function
/// id and flags from `kvm_run`, then as [`handle_hypercall`].
pub fn handle_hypercall_exit<B: Backend>(
    vcpu: &mut VcpuFd,
    mediator: &mut Mediator<B>,
    mem: &dyn GuestRam,
) -> Result<SmcResult, AdapterError> {
    let run = vcpu.get_kvm_run();
    if run.exit_reason != KVM_EXIT_HYPERCALL {
        return Err(AdapterError::NotHypercall(run.exit_reason));
    }
    // SAFETY: exit_reason is KVM_EXIT_HYPERCALL, so `hypercall` is the
    // member of the exit union KVM filled in; `nr` and `flags` are plain
    // u64s (flags shares its place with the x86-only `longmode`).
    let (nr, flags) = unsafe {
        let h = &run.__bindgen_anon_1.hypercall;
        (h.nr, h.__bindgen_anon_1.flags)
    };
    handle_hypercall(vcpu, nr, flags, mediator, mem)
}
