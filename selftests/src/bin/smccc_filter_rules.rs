// SPDX-License-Identifier: Apache-2.0 OR MIT
//! The SMCCC filter's rules as a VMM installing the Trusted OS ranges meets
//! them: overlaps and the reserved Arm architecture ranges are EEXIST,
//! malformed entries EINVAL, and the filter freezes once a vCPU has run; an
//! ordinary VM filters the whole Vendor Specific Hypervisor range (pKVM's
//! ids are reserved for protected VMs only).

use std::process::ExitCode;

#[cfg(target_arch = "aarch64")]
fn main() -> ExitCode {
    use tosfwd_selftests::cases::{self, outcome};
    use tosfwd_selftests::ktap::{self, Ktap};

    if let Some(skip) = tosfwd_selftests::skip_without_kvm() {
        return skip;
    }
    let mut k = Ktap::stdout(8);
    k.run("overlapping_ranges_are_eexist", || {
        outcome(cases::overlapping_ranges_are_eexist())
    });
    k.run("arm_architecture_ranges_are_eexist", || {
        outcome(cases::arm_architecture_ranges_are_eexist())
    });
    k.run("nonzero_pad_is_einval", || {
        outcome(cases::nonzero_pad_is_einval())
    });
    k.run("zero_functions_is_einval", || {
        outcome(cases::zero_functions_is_einval())
    });
    k.run("wrapping_range_is_einval", || {
        outcome(cases::wrapping_range_is_einval())
    });
    k.run("unknown_action_is_einval", || {
        outcome(cases::unknown_action_is_einval())
    });
    k.run("filter_after_a_vcpu_ran_is_ebusy", || {
        outcome(cases::filter_after_a_vcpu_ran_is_ebusy())
    });
    k.run(
        "vendor_hyp_ranges_are_filterable_for_an_ordinary_vm",
        || outcome(cases::vendor_hyp_ranges_are_filterable()),
    );
    ktap::exit(k.finish())
}

#[cfg(not(target_arch = "aarch64"))]
fn main() -> ExitCode {
    tosfwd_selftests::not_arm64_main()
}
