// SPDX-License-Identifier: Apache-2.0 OR MIT
//! tosfwd-vmm: boots an arm64 Linux guest under KVM and answers its OP-TEE
//! calls; see the library's documentation.

use std::process::ExitCode;

use clap::Parser;

use tosfwd_vmm::args::Args;
#[cfg(target_arch = "aarch64")]
use tosfwd_vmm::vm;

#[cfg(target_arch = "aarch64")]
fn run(args: &Args) -> ExitCode {
    match vm::run(args) {
        Ok(r) => {
            let how = match r.stop {
                vm::Stop::PowerOff => "powered off".to_string(),
                vm::Stop::Reset => "reset (a panic with panic=-1?)".to_string(),
                vm::Stop::Event(t) => format!("stopped with system event {t}"),
            };
            eprintln!(
                "tosfwd-vmm: guest {how} (vCPU {}) after {:.2} s wall, {} vCPU(s), conduit {}",
                r.vcpu,
                r.wall.as_secs_f64(),
                args.vcpus,
                args.conduit.method()
            );
            eprintln!("tosfwd-vmm: {}", r.calls.summary());
            if r.stop == vm::Stop::PowerOff {
                ExitCode::SUCCESS
            } else {
                ExitCode::from(2)
            }
        }
        Err(e) => {
            eprintln!("tosfwd-vmm: error: {e}");
            ExitCode::FAILURE
        }
    }
}

#[cfg(not(target_arch = "aarch64"))]
fn run(_args: &Args) -> ExitCode {
    eprintln!(
        "tosfwd-vmm: error: this VMM runs arm64 KVM guests and works on aarch64 hosts only \
         (built for {})",
        std::env::consts::ARCH
    );
    ExitCode::FAILURE
}

fn main() -> ExitCode {
    let args = Args::parse();
    run(&args)
}
