// SPDX-License-Identifier: Apache-2.0 OR MIT
//! tosfwd-vmm: boots an arm64 Linux guest under KVM and answers its OP-TEE
//! calls; see the library's documentation.

use std::path::Path;
use std::process::ExitCode;

use tosfwd_vmm::args::Args;
#[cfg(target_arch = "aarch64")]
use tosfwd_vmm::outcome::exit_status;
use tosfwd_vmm::outcome::EXIT_ERROR;
use tosfwd_vmm::tee;
#[cfg(target_arch = "aarch64")]
use tosfwd_vmm::vm;

/// The program's name in its messages.
const PROGRAM: &str = "tosfwd-vmm";

/// Runs the guest; once every vCPU thread has stopped and been joined and
/// the mediator torn down, reports (once) and gives the exit status: 0 for
/// a power-off, 3 for a reset or another system event, 1 for an error.
#[cfg(target_arch = "aarch64")]
fn run(args: &Args, tee: tee::Ready) -> ExitCode {
    let r = match vm::run(args, tee) {
        Ok(r) => r,
        Err(e) => {
            eprintln!("tosfwd-vmm: error: {e}");
            return ExitCode::from(EXIT_ERROR);
        }
    };
    let status = exit_status(r.end.as_ref().map(|(stop, _)| *stop));
    match &r.end {
        Ok((stop, vcpu)) => {
            eprintln!(
                "tosfwd-vmm: guest {} (vCPU {vcpu}) after {:.2} s wall, {} vCPU(s), conduit {}",
                stop.describe(),
                r.wall.as_secs_f64(),
                args.vcpus,
                args.conduit.method()
            );
            eprintln!("tosfwd-vmm: {}", r.calls.summary());
            for l in r.calls.cost_lines() {
                eprintln!("tosfwd-vmm: {l}");
            }
        }
        Err(e) => {
            eprintln!(
                "tosfwd-vmm: run ended after {:.2} s wall, {} vCPU(s), conduit {}",
                r.wall.as_secs_f64(),
                args.vcpus,
                args.conduit.method()
            );
            eprintln!("tosfwd-vmm: {}", r.calls.summary());
            eprintln!("tosfwd-vmm: error: {e}");
        }
    }
    ExitCode::from(status)
}

#[cfg(not(target_arch = "aarch64"))]
fn run(_args: &Args, _tee: tee::Ready) -> ExitCode {
    eprintln!(
        "tosfwd-vmm: error: this VMM runs arm64 KVM guests and works on aarch64 hosts only \
         (built for {})",
        std::env::consts::ARCH
    );
    ExitCode::from(EXIT_ERROR)
}

fn main() -> ExitCode {
    // A command line it does not take: one line, exit status 2.
    let args: Args = match tosfwd_log::parse_args(PROGRAM) {
        Ok(a) => a,
        Err(status) => return status,
    };
    if let Err(e) = args.check() {
        eprintln!("{}", tosfwd_log::usage_error(PROGRAM, &e));
        return ExitCode::from(tosfwd_log::EXIT_USAGE);
    }
    if let Err(e) = tosfwd_log::init(PROGRAM, args.verbosity) {
        eprintln!("tosfwd-vmm: error: {e}");
        return ExitCode::from(EXIT_ERROR);
    }
    // The TEE before the guest: a missing, refused or foreign TEE device,
    // or another VM on it, is one line and exit status 1.
    let (ready, _lock) = match tee::start(&args, Path::new(tee::LOCK_DIR)) {
        Ok(r) => r,
        Err(e) => {
            eprintln!("tosfwd-vmm: error: {e}");
            return ExitCode::from(EXIT_ERROR);
        }
    };
    // `_lock` is held until the run has returned, by which time the VM's
    // mediator (and its TEE context, with the partition if it has one) is
    // gone.
    run(&args, ready)
}
