// SPDX-License-Identifier: Apache-2.0 OR MIT
//! KVM/arm64's uapi for routing SMCCC calls to userspace
//! (arch/arm64/include/uapi/asm/kvm.h and include/uapi/linux/kvm.h), which
//! kvm-bindings does not carry yet.

use crate::range::FunctionRange;

#[cfg(target_arch = "aarch64")]
pub use regs::{filter_attr, CoreReg};

/// VM device attribute group of the SMCCC filter (`KVM_ARM_VM_SMCCC_CTRL`).
pub const KVM_ARM_VM_SMCCC_CTRL: u32 = 0;
/// Attribute of that group that installs a filter range (`KVM_ARM_VM_SMCCC_FILTER`).
pub const KVM_ARM_VM_SMCCC_FILTER: u64 = 0;

/// `kvm_run.hypercall.flags` bit: the call was an SMC (else an HVC).
pub const KVM_HYPERCALL_EXIT_SMC: u64 = 1 << 0;
/// `kvm_run.hypercall.flags` bit: the call was a 16-bit (T32) instruction.
pub const KVM_HYPERCALL_EXIT_16BIT: u64 = 1 << 1;

/// `KVM_CREATE_VM` type flag asking for a protected VM (pKVM).
pub const KVM_VM_TYPE_ARM_PROTECTED: u64 = 1 << 31;

/// What KVM does with the calls of a filter range.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[repr(u8)]
pub enum FilterAction {
    /// `KVM_SMCCC_FILTER_HANDLE`: KVM handles the call as without a filter.
    Handle = 0,
    /// `KVM_SMCCC_FILTER_DENY`: KVM answers SMCCC_RET_NOT_SUPPORTED.
    Deny = 1,
    /// `KVM_SMCCC_FILTER_FWD_TO_USER`: exit to userspace with KVM_EXIT_HYPERCALL.
    FwdToUser = 2,
}

/// `struct kvm_smccc_filter`, the payload of `KVM_ARM_VM_SMCCC_FILTER`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(C)]
pub struct KvmSmcccFilter {
    /// First function id.
    pub base: u32,
    /// Number of function ids.
    pub nr_functions: u32,
    /// A [`FilterAction`] value.
    pub action: u8,
    /// Must be zero.
    pub pad: [u8; 15],
}

const _: () = assert!(core::mem::size_of::<KvmSmcccFilter>() == 24);

impl KvmSmcccFilter {
    /// The filter entry applying `action` to `range`.
    pub const fn new(range: FunctionRange, action: FilterAction) -> Self {
        KvmSmcccFilter {
            base: range.base,
            nr_functions: range.count,
            action: action as u8,
            pad: [0; 15],
        }
    }
}

/// The vCPU core registers through which SMCCC calls travel, named.
#[cfg(target_arch = "aarch64")]
mod regs {
    use core::mem::offset_of;
    use kvm_bindings::{kvm_regs, user_pt_regs, KVM_REG_ARM64, KVM_REG_ARM_CORE, KVM_REG_SIZE_U64};

    /// A core register of an arm64 vCPU, as KVM_{GET,SET}_ONE_REG names it.
    #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
    pub enum CoreReg {
        /// General purpose register x0..x30.
        X(u8),
        /// The stack pointer (SP_EL0).
        Sp,
        /// The program counter.
        Pc,
        /// PSTATE.
        Pstate,
    }

    impl core::fmt::Display for CoreReg {
        fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
            match self {
                CoreReg::X(n) => write!(f, "x{n}"),
                CoreReg::Sp => write!(f, "sp"),
                CoreReg::Pc => write!(f, "pc"),
                CoreReg::Pstate => write!(f, "pstate"),
            }
        }
    }

    impl CoreReg {
        /// The ONE_REG id, derived from the uapi `struct kvm_regs` layout:
        /// a core register's id is its offset in 32-bit words.
        ///
        /// # Panics
        /// For `X(n)` with `n > 30`, which does not exist.
        pub const fn id(self) -> u64 {
            let base = offset_of!(kvm_regs, regs);
            let off = match self {
                CoreReg::X(n) => {
                    assert!(n < 31, "x31 does not exist");
                    base + offset_of!(user_pt_regs, regs) + 8 * n as usize
                }
                CoreReg::Sp => base + offset_of!(user_pt_regs, sp),
                CoreReg::Pc => base + offset_of!(user_pt_regs, pc),
                CoreReg::Pstate => base + offset_of!(user_pt_regs, pstate),
            };
            KVM_REG_ARM64 | KVM_REG_SIZE_U64 | KVM_REG_ARM_CORE as u64 | (off / 4) as u64
        }
    }

    /// The VM device attribute of the SMCCC filter: with `filter` for
    /// KVM_SET_DEVICE_ATTR, without for KVM_HAS_DEVICE_ATTR. The pointer in
    /// `addr` is only valid while `filter` is borrowed.
    pub fn filter_attr(filter: Option<&super::KvmSmcccFilter>) -> kvm_bindings::kvm_device_attr {
        kvm_bindings::kvm_device_attr {
            group: super::KVM_ARM_VM_SMCCC_CTRL,
            attr: super::KVM_ARM_VM_SMCCC_FILTER,
            addr: filter.map_or(0, |f| f as *const super::KvmSmcccFilter as u64),
            flags: 0,
        }
    }

    const _: () = assert!(CoreReg::X(0).id() == 0x6030_0000_0010_0000);
    const _: () = assert!(CoreReg::X(17).id() == 0x6030_0000_0010_0022);
    const _: () = assert!(CoreReg::Pc.id() == 0x6030_0000_0010_0040);
    const _: () = assert!(CoreReg::Pstate.id() == 0x6030_0000_0010_0042);
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::TRUSTED_OS_RANGES;

    #[test]
    fn filter_layout_matches_the_uapi() {
        assert_eq!(core::mem::offset_of!(KvmSmcccFilter, base), 0);
        assert_eq!(core::mem::offset_of!(KvmSmcccFilter, nr_functions), 4);
        assert_eq!(core::mem::offset_of!(KvmSmcccFilter, action), 8);
        assert_eq!(core::mem::offset_of!(KvmSmcccFilter, pad), 9);
    }

    #[test]
    fn new_forwards_a_whole_range() {
        let f = KvmSmcccFilter::new(TRUSTED_OS_RANGES[2], FilterAction::FwdToUser);
        assert_eq!(
            (f.base, f.nr_functions, f.action),
            (0xB200_0000, 0x0E00_0000, 2)
        );
        assert_eq!(f.pad, [0; 15]);
    }
}
