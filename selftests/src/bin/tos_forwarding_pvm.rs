// SPDX-License-Identifier: Apache-2.0 OR MIT
//! Trusted OS forwarding for protected VMs (pKVM): the ranges forward, the
//! VMM reads the guest's arguments and its results reach the guest; pKVM's
//! own hypercalls are reserved in the filter (EEXIST), the rest of the
//! Vendor Specific Hypervisor range forwards.
//!
//! Unpatched kernels refuse protected VMs the SMCCC filter (the VM ioctl is
//! not allowed for them): the forwarding cases are then XFAIL, naming the
//! refusal, unless TOSFWD_PVM_FILTER=expected says the kernel under test
//! carries the change, in which case a refusal fails.

use std::process::ExitCode;

#[cfg(target_arch = "aarch64")]
fn main() -> ExitCode {
    use tosfwd_selftests::cases::{self, outcome, PvmSupport};
    use tosfwd_selftests::ktap::{self, Ktap, Outcome};
    use tosfwd_selftests::kvm::VmKind;

    if let Some(skip) = tosfwd_selftests::skip_without_kvm() {
        return skip;
    }
    let expected = std::env::var("TOSFWD_PVM_FILTER").is_ok_and(|v| v == "expected");
    let mut k = Ktap::stdout(CASES.len() + 1);
    let support = cases::probe_protected_vms();
    if let Ok(PvmSupport::NoProtectedVms(why)) = &support {
        for name in CASES
            .iter()
            .chain(["protected_vm_trusted_os_calls_without_a_filter_return_not_supported"].iter())
        {
            k.report(name, Outcome::Skip(why.clone()));
        }
        return ktap::exit(k.finish());
    }
    k.run(
        "protected_vm_trusted_os_calls_without_a_filter_return_not_supported",
        || outcome(cases::protected_vm_trusted_os_calls_without_a_filter_are_not_supported()),
    );
    let run: [fn() -> cases::CaseResult; CASES.len()] = [
        || cases::ranges_forward_first_and_last_ids(VmKind::Protected),
        || cases::vmm_reads_the_guests_x1_to_x17(VmKind::Protected),
        || cases::vmm_results_reach_the_guest_which_resumes(VmKind::Protected, 200),
        || cases::pkvm_own_ids_are_eexist(VmKind::Protected),
        || cases::other_vendor_hyp_ids_forward(VmKind::Protected),
    ];
    for (name, case) in CASES.iter().zip(run) {
        match &support {
            Ok(PvmSupport::Filter) => k.run(name, || outcome(case())),
            Ok(PvmSupport::FilterRefused(why)) if !expected => {
                k.report(name, Outcome::XFail(why.clone()))
            }
            Ok(PvmSupport::FilterRefused(why)) => k.report(
                name,
                Outcome::Fail(format!("{why}, but this kernel should allow it")),
            ),
            Ok(PvmSupport::NoProtectedVms(_)) => unreachable!("handled above"),
            Err(cases::Failure(m)) => k.report(name, Outcome::Fail(m.clone())),
        }
    }
    ktap::exit(k.finish())
}

#[cfg(target_arch = "aarch64")]
const CASES: [&str; 5] = [
    "protected_vm_trusted_os_and_app_ranges_forward_first_and_last_ids_via_smc_and_hvc",
    "protected_vm_vmm_reads_the_guests_x1_to_x17",
    "protected_vm_vmm_results_reach_the_guest_which_resumes_after_the_call",
    "protected_vm_pkvm_own_hypercalls_are_eexist",
    "protected_vm_other_vendor_hyp_ids_forward_via_smc_and_hvc",
];

#[cfg(not(target_arch = "aarch64"))]
fn main() -> ExitCode {
    tosfwd_selftests::not_arm64_main()
}
