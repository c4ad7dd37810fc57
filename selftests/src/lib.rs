// SPDX-License-Identifier: Apache-2.0 OR MIT
//! Harness for the project's KVM selftests: KTAP output compatible with the
//! kernel's kselftest runner, and (on aarch64) the KVM plumbing, guest code
//! and test cases the test binaries share.

pub mod ktap;

#[cfg(target_arch = "aarch64")]
pub mod cases;
#[cfg(target_arch = "aarch64")]
pub mod guest;
#[cfg(target_arch = "aarch64")]
pub mod kvm;
#[cfg(target_arch = "aarch64")]
pub mod vmm_rule;

use std::process::ExitCode;

/// Why the test binaries do nothing on other architectures.
pub const NOT_ARM64: &str = "needs arm64 KVM: run it on the emulated arm64 host (scripts/vmtest)";

/// `main` of a test binary built for another architecture: skips, saying why.
pub fn not_arm64_main() -> ExitCode {
    ktap::exit(ktap::skip_all(std::io::stdout(), NOT_ARM64))
}

/// Skips the whole test program (exit 4, with the reason) when /dev/kvm is
/// absent; `None` when KVM is there, or failed otherwise (the cases report
/// that failure themselves).
#[cfg(target_arch = "aarch64")]
pub fn skip_without_kvm() -> Option<ExitCode> {
    match kvm::open_kvm() {
        Err(e @ kvm::Error::NoDevKvm) => Some(ktap::exit(ktap::skip_all(
            std::io::stdout(),
            &e.to_string(),
        ))),
        _ => None,
    }
}
