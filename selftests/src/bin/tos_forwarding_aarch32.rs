// SPDX-License-Identifier: Apache-2.0 OR MIT
//! SMCCC's rule on AArch32 callers, applied by the VMM: KVM forwards an
//! AArch32 guest's SMC64 call as any other, and the VMM's adapter
//! (optee_mediator::kvm, as tools/vmm uses it) answers it NOT_SUPPORTED
//! without passing it on; SMC32 calls, and an AArch64 guest's SMC64 calls,
//! reach the mediator.

use std::process::ExitCode;

#[cfg(target_arch = "aarch64")]
fn main() -> ExitCode {
    use tosfwd_selftests::cases::outcome;
    use tosfwd_selftests::ktap::{self, Ktap};
    use tosfwd_selftests::vmm_rule;

    if let Some(skip) = tosfwd_selftests::skip_without_kvm() {
        return skip;
    }
    let mut k = Ktap::stdout(2);
    k.run("aarch64_guests_smc64_call_reaches_the_mediator", || {
        outcome(vmm_rule::aarch64_smc64_call_reaches_the_mediator())
    });
    k.run(
        "aarch32_guests_smc64_call_is_forwarded_and_refused_by_the_vmm",
        vmm_rule::aarch32_smc64_call_is_refused_by_the_vmm,
    );
    ktap::exit(k.finish())
}

#[cfg(not(target_arch = "aarch64"))]
fn main() -> ExitCode {
    tosfwd_selftests::not_arm64_main()
}
