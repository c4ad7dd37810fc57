// SPDX-License-Identifier: Apache-2.0 OR MIT
//! Trusted OS calls from two vCPUs, each on its own VMM thread, are forwarded
//! concurrently, each exit with its own vCPU's registers.

use std::process::ExitCode;

#[cfg(target_arch = "aarch64")]
fn main() -> ExitCode {
    use tosfwd_selftests::cases::{self, outcome};
    use tosfwd_selftests::ktap::{self, Ktap};
    use tosfwd_selftests::kvm::VmKind;

    if let Some(skip) = tosfwd_selftests::skip_without_kvm() {
        return skip;
    }
    let mut k = Ktap::stdout(1);
    k.run(
        "two_vcpus_forward_concurrently_with_their_own_registers",
        || {
            outcome(cases::vcpus_forward_concurrently_with_their_own_registers(
                VmKind::Normal,
                300,
            ))
        },
    );
    ktap::exit(k.finish())
}

#[cfg(not(target_arch = "aarch64"))]
fn main() -> ExitCode {
    tosfwd_selftests::not_arm64_main()
}
