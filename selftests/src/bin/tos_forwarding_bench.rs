// SPDX-License-Identifier: Apache-2.0 OR MIT
//! Benchmark (not a test): guest-timed round trips of an SMCCC call handled
//! in KVM (SMCCC_VERSION), a Trusted OS call KVM denies, and a Trusted OS
//! call forwarded to this VMM and answered by a trivial handler, N calls each
//! in one run. Prints cost per call, the ratios, and the ONE_REG ioctls each
//! forwarded call costs.

use std::process::ExitCode;

#[cfg(target_arch = "aarch64")]
fn main() -> ExitCode {
    match bench::run() {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            println!("# bench: error: {e}");
            ExitCode::FAILURE
        }
    }
}

#[cfg(target_arch = "aarch64")]
mod bench {
    use smccc::kvm::FilterAction;
    use smccc::std_call::SMCCC_VERSION;
    use smccc::{TRUSTED_APP_RANGES, TRUSTED_OS_RANGES};
    use tosfwd_selftests::guest::{
        Routine, BENCH_COUNT_REG, BENCH_END_REG, BENCH_ID_REG, BENCH_START_REG, COMMAND_REG,
        UCALL_BENCH,
    };
    use tosfwd_selftests::kvm::{Error, Exit, Reg, Result, TestVcpu, TestVm, VmKind};

    const N: u64 = 5000;

    /// How the VMM answers a forwarded call.
    #[derive(Clone, Copy)]
    enum Handler {
        /// Write x0 only.
        X0,
        /// Read x1..x7, write x0..x3: what a mediator does.
        Full,
    }

    struct Sample {
        ticks: u64,
        ioctls: u64,
    }

    fn measure(vcpu: &mut TestVcpu, id: u32, handler: Handler) -> Result<Sample> {
        vcpu.set(Reg::X(BENCH_ID_REG), id as u64)?;
        vcpu.set(Reg::X(BENCH_COUNT_REG), N)?;
        vcpu.set(Reg::X(COMMAND_REG), 0)?;
        let before = vcpu.one_reg_ioctls();
        let mut forwarded = 0;
        loop {
            match vcpu.run()? {
                Exit::Hypercall(_) => {
                    forwarded += 1;
                    match handler {
                        Handler::X0 => vcpu.set(Reg::X(0), 0)?,
                        Handler::Full => {
                            for i in 1..8 {
                                vcpu.get(Reg::X(i))?;
                            }
                            vcpu.set_x(&[0, 1, 2, 3])?;
                        }
                    }
                }
                Exit::Ucall(UCALL_BENCH) => break,
                other => {
                    return Err(Error::UnexpectedExit(format!(
                        "{other:?} during the benchmark"
                    )))
                }
            }
        }
        let ioctls = vcpu.one_reg_ioctls() - before;
        let ticks = vcpu.get(Reg::X(BENCH_END_REG))? - vcpu.get(Reg::X(BENCH_START_REG))?;
        if forwarded != 0 && forwarded != N {
            return Err(Error::UnexpectedExit(format!(
                "{forwarded} of {N} calls forwarded"
            )));
        }
        Ok(Sample {
            ticks,
            ioctls: if forwarded == N { ioctls } else { 0 },
        })
    }

    fn cntfrq() -> u64 {
        let f: u64;
        // SAFETY: reads the architected counter frequency, which Linux lets
        // EL0 read; no memory or flags are touched.
        unsafe { core::arch::asm!("mrs {}, cntfrq_el0", out(reg) f, options(nomem, nostack)) };
        f
    }

    pub fn run() -> Result<()> {
        let vm = TestVm::new(VmKind::Normal, tosfwd_selftests::guest::code())?;
        vm.forward(&TRUSTED_OS_RANGES)?;
        vm.set_filter(TRUSTED_APP_RANGES[2], FilterAction::Deny)?;
        let mut vcpu = vm.vcpu(0, Routine::Bench.offset())?;
        let freq = cntfrq();
        let fwd = TRUSTED_OS_RANGES[2].base;
        let cases = [
            ("in-kernel SMCCC_VERSION", SMCCC_VERSION, Handler::X0),
            (
                "DENY'd Trusted App call",
                TRUSTED_APP_RANGES[2].base,
                Handler::X0,
            ),
            ("forwarded Trusted OS call, x0 written", fwd, Handler::X0),
            (
                "forwarded Trusted OS call, x1..x7 read, x0..x3 written",
                fwd,
                Handler::Full,
            ),
        ];
        println!(
            "# bench: {N} calls of each kind, SMC conduit, guest-timed with CNTVCT at {freq} Hz"
        );
        let mut ns = Vec::new();
        for (name, id, handler) in cases {
            let s = measure(&mut vcpu, id, handler)?;
            let per = s.ticks as f64 * 1e9 / freq as f64 / N as f64;
            let ioctls = s.ioctls as f64 / N as f64;
            println!(
                "# bench: {name:<55} {per:>9.0} ns/call {:>9.0} calls/s  ONE_REG ioctls/call {ioctls:.1}",
                1e9 / per
            );
            ns.push(per);
        }
        println!(
            "# bench: ratios: forwarded(x0)/in-kernel {:.2}, forwarded(x0)/denied {:.2}, forwarded(full)/forwarded(x0) {:.2}",
            ns[2] / ns[0],
            ns[2] / ns[1],
            ns[3] / ns[2]
        );
        Ok(())
    }
}

#[cfg(not(target_arch = "aarch64"))]
fn main() -> ExitCode {
    println!("# bench: needs arm64 KVM: run it on the emulated arm64 host (scripts/vmtest)");
    ExitCode::SUCCESS
}
