// SPDX-License-Identifier: Apache-2.0 OR MIT
//! Trusted OS calls from two vCPUs, each on its own VMM thread, are forwarded
//! concurrently, each exit with its own vCPU's registers.

use std::process::ExitCode;
use tosfwd_selftests::ktap;

#[cfg(target_arch = "aarch64")]
fn main() -> ExitCode {
    use ktap::Ktap;
    use tosfwd_selftests::cases::{self, outcome};
    use tosfwd_selftests::kvm::{self, Error, VmKind};

    if let Err(e @ Error::NoDevKvm) = kvm::open_kvm() {
        return ktap::exit(ktap::skip_all(std::io::stdout(), &e.to_string()));
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
    ktap::exit(ktap::skip_all(
        std::io::stdout(),
        "needs arm64 KVM: run it on the emulated arm64 host (scripts/vmtest)",
    ))
}
