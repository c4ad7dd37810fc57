// SPDX-License-Identifier: Apache-2.0 OR MIT
//! The SMCCC filter's rules as a VMM installing the Trusted OS ranges meets
//! them: overlaps and the reserved Arm architecture ranges are EEXIST,
//! malformed entries EINVAL, and the filter freezes once a vCPU has run.

use std::process::ExitCode;
use tosfwd_selftests::ktap;

#[cfg(target_arch = "aarch64")]
fn main() -> ExitCode {
    use ktap::Ktap;
    use tosfwd_selftests::cases::{self, outcome};
    use tosfwd_selftests::kvm::{self, Error};

    if let Err(e @ Error::NoDevKvm) = kvm::open_kvm() {
        return ktap::exit(ktap::skip_all(std::io::stdout(), &e.to_string()));
    }
    let mut k = Ktap::stdout(7);
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
    ktap::exit(k.finish())
}

#[cfg(not(target_arch = "aarch64"))]
fn main() -> ExitCode {
    ktap::exit(ktap::skip_all(
        std::io::stdout(),
        "needs arm64 KVM: run it on the emulated arm64 host (scripts/vmtest)",
    ))
}
