// SPDX-License-Identifier: Apache-2.0 OR MIT
//! tosfwd-vmm: boots an arm64 Linux guest under KVM and answers its OP-TEE
//! calls; see the library's documentation.

use std::path::Path;
use std::process::ExitCode;

use clap::Parser;

use tosfwd_vmm::args::Args;
#[cfg(target_arch = "aarch64")]
use tosfwd_vmm::outcome::exit_status;
use tosfwd_vmm::outcome::EXIT_ERROR;
use tosfwd_vmm::tee;
#[cfg(target_arch = "aarch64")]
use tosfwd_vmm::vm;

/// The environment variable that sets the log level (error, warn, info,
/// debug, trace, off; warnings by default).
const LOG_ENV: &str = "TOSFWD_VMM_LOG";

/// Runs the guest; once every vCPU thread has stopped and been joined and
/// the mediator torn down, reports (once) and gives the exit status: 0 for
/// a power-off, 2 for a reset, 1 for an error.
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
    // Not Args::parse(): clap exits 2 on a usage error, the status of a
    // guest reset here.
    let args = match Args::try_parse() {
        Ok(a) => a,
        Err(e) => {
            let _ = e.print();
            return ExitCode::from(tosfwd_vmm::args::usage_exit_status(&e));
        }
    };
    if let Err(e) = args
        .check()
        .and_then(|()| tosfwd_log::init("tosfwd-vmm", LOG_ENV, 0))
    {
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
