// SPDX-License-Identifier: Apache-2.0 OR MIT
//! KVM advertises the per-VM SMCCC filter, the mechanism that forwards Trusted
//! OS calls to userspace, through KVM_HAS_DEVICE_ATTR on the VM fd.

use std::process::ExitCode;

#[cfg(target_arch = "aarch64")]
fn main() -> ExitCode {
    use tosfwd_selftests::ktap::{self, Ktap, Outcome};
    use tosfwd_selftests::kvm::{self, Error};

    let kvm = match kvm::open_kvm() {
        Ok(k) => k,
        Err(e @ Error::NoDevKvm) => {
            return ktap::exit(ktap::skip_all(std::io::stdout(), &e.to_string()))
        }
        Err(e) => {
            let mut k = Ktap::stdout(1);
            k.report("open_dev_kvm", Outcome::Fail(e.to_string()));
            return ktap::exit(k.finish());
        }
    };
    let mut k = Ktap::stdout(2);
    let vm = match kvm::create_vm(&kvm) {
        Ok(vm) => vm,
        Err(e) => {
            k.report("vm_reports_smccc_filter_attr", Outcome::Fail(e.to_string()));
            k.report(
                "vm_rejects_unknown_smccc_ctrl_attr",
                Outcome::Fail(e.to_string()),
            );
            return ktap::exit(k.finish());
        }
    };

    k.run("vm_reports_smccc_filter_attr", || {
        match vm.has_device_attr(&kvm::smccc_filter_attr(None)) {
            Ok(()) => Outcome::Pass,
            Err(e) => Outcome::Fail(format!(
                "KVM_HAS_DEVICE_ATTR(KVM_ARM_VM_SMCCC_CTRL, KVM_ARM_VM_SMCCC_FILTER): {e}"
            )),
        }
    });
    k.run("vm_rejects_unknown_smccc_ctrl_attr", || {
        match vm.has_device_attr(&kvm::smccc_ctrl_attr(1)) {
            Err(e) if e.errno() == libc::ENXIO => Outcome::Pass,
            Err(e) => Outcome::Fail(format!("attribute 1: {e}, want ENXIO")),
            Ok(()) => Outcome::Fail("attribute 1 reported as supported, want ENXIO".into()),
        }
    });
    ktap::exit(k.finish())
}

#[cfg(not(target_arch = "aarch64"))]
fn main() -> ExitCode {
    tosfwd_selftests::not_arm64_main()
}
