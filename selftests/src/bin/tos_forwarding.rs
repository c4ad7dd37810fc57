// SPDX-License-Identifier: Apache-2.0 OR MIT
//! KVM/arm64 forwards Trusted OS and Trusted App SMCCC calls of an ordinary VM
//! to userspace through the SMCCC filter, and hands the VMM's results back to
//! the guest, which resumes after the call.

use std::process::ExitCode;

#[cfg(target_arch = "aarch64")]
fn main() -> ExitCode {
    use tosfwd_selftests::cases::{self, outcome};
    use tosfwd_selftests::ktap::{self, Ktap};
    use tosfwd_selftests::kvm::VmKind;

    if let Some(skip) = tosfwd_selftests::skip_without_kvm() {
        return skip;
    }
    let normal = VmKind::Normal;
    let mut k = Ktap::stdout(9);
    k.run(
        "trusted_os_and_app_ranges_forward_first_and_last_ids_via_smc_and_hvc",
        || outcome(cases::ranges_forward_first_and_last_ids(normal)),
    );
    k.run("hypercall_nr_is_the_low_32_bits_of_x0", || {
        outcome(cases::nr_is_the_low_32_bits_of_x0(normal))
    });
    k.run("vmm_reads_the_guests_x1_to_x17", || {
        outcome(cases::vmm_reads_the_guests_x1_to_x17(normal))
    });
    k.run(
        "vmm_results_reach_the_guest_which_resumes_after_the_call",
        || {
            outcome(cases::vmm_results_reach_the_guest_which_resumes(
                normal, 500,
            ))
        },
    );
    k.run("ids_next_to_forwarded_ranges_stay_in_kvm", || {
        outcome(cases::ids_next_to_forwarded_ranges_stay_in_kvm())
    });
    k.run(
        "trusted_os_calls_without_a_filter_return_not_supported",
        || outcome(cases::trusted_os_calls_without_a_filter_are_not_supported()),
    );
    k.run("denied_trusted_os_calls_return_not_supported", || {
        outcome(cases::denied_trusted_os_calls_are_not_supported())
    });
    k.run(
        "smc_with_a_nonzero_immediate_never_reaches_userspace",
        || outcome(cases::smc_with_a_nonzero_immediate_is_not_forwarded()),
    );
    k.run("hvc_is_tested_because_the_vcpu_has_no_el2", || {
        // HVC from a vCPU with KVM_ARM_VCPU_HAS_EL2 goes to its virtual EL2,
        // not to KVM's SMCCC handler; these tests never give the vCPU EL2,
        // so every HVC case above is meaningful. Prove it: PSTATE.M is EL1h.
        cases::vcpu_runs_at_el1()
    });
    ktap::exit(k.finish())
}

#[cfg(not(target_arch = "aarch64"))]
fn main() -> ExitCode {
    tosfwd_selftests::not_arm64_main()
}
