// SPDX-License-Identifier: Apache-2.0 OR MIT
//! KVM plumbing shared by the aarch64 tests.

use kvm_bindings::kvm_device_attr;
use kvm_ioctls::{Kvm, VmFd};
use smccc::kvm::{KvmSmcccFilter, KVM_ARM_VM_SMCCC_CTRL, KVM_ARM_VM_SMCCC_FILTER};

/// Why a test could not get a VM.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// /dev/kvm is absent (no KVM in this kernel, or not started at EL2)
    #[error("/dev/kvm is absent (kernel without KVM, or not booted at EL2)")]
    NoDevKvm,
    /// Opening /dev/kvm failed for another reason.
    #[error("cannot open /dev/kvm: {0}")]
    OpenKvm(kvm_ioctls::Error),
    /// KVM_CREATE_VM failed.
    #[error("KVM_CREATE_VM failed: {0}")]
    CreateVm(kvm_ioctls::Error),
}

/// Opens /dev/kvm, telling absence (a reason to skip) from other failures.
pub fn open_kvm() -> Result<Kvm, Error> {
    Kvm::new().map_err(|e| {
        if e.errno() == libc::ENOENT {
            Error::NoDevKvm
        } else {
            Error::OpenKvm(e)
        }
    })
}

/// Creates an ordinary VM with the default IPA size.
pub fn create_vm(kvm: &Kvm) -> Result<VmFd, Error> {
    kvm.create_vm().map_err(Error::CreateVm)
}

/// The device attribute of the SMCCC filter group with attribute number
/// `attr`, carrying `filter` (or nothing, for KVM_HAS_DEVICE_ATTR).
pub fn smccc_ctrl_attr(attr: u64, filter: Option<&KvmSmcccFilter>) -> kvm_device_attr {
    kvm_device_attr {
        group: KVM_ARM_VM_SMCCC_CTRL,
        attr,
        addr: filter.map_or(0, |f| f as *const KvmSmcccFilter as u64),
        flags: 0,
    }
}

/// The attribute that installs an SMCCC filter range.
pub fn smccc_filter_attr(filter: Option<&KvmSmcccFilter>) -> kvm_device_attr {
    smccc_ctrl_attr(KVM_ARM_VM_SMCCC_FILTER, filter)
}
