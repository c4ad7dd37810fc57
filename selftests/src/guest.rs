// SPDX-License-Identifier: Apache-2.0 OR MIT
//! Guest code for the tests: small aarch64 routines run with the MMU off,
//! copied into the guest's memslot. They talk to the host through registers
//! and stores to the ucall window (x27), which exit to userspace as MMIO.
//!
//! The call loop, entered at [`Routine::CallLoop`]:
//!   1. store to ucall offset [`UCALL_READY`]: the host loads x0..x17 with
//!      the call's arguments, x26 with a [`Command`] and clears x25;
//!   2. make the call named by x26;
//!   3. `adr x25, .` right after the call instruction records where the
//!      guest resumed;
//!   4. store to ucall offset [`UCALL_DONE`]: the host reads x0..x17 and x25;
//!   5. back to 1.
//!
//! The benchmark loop, entered at [`Routine::Bench`]: x24 = function id,
//! x23 = number of calls, x26 = 0 for SMC or 1 for HVC; it reads CNTVCT into
//! x21 before and x22 after the calls, stores to [`UCALL_BENCH`] and starts
//! over (the host sets new parameters).

use std::ptr::addr_of;

/// Ucall offset: the guest is ready for the next call.
pub const UCALL_READY: u64 = 0;
/// Ucall offset: the call returned; the results are in the registers.
pub const UCALL_DONE: u64 = 8;
/// Ucall offset: a benchmark run ended.
pub const UCALL_BENCH: u64 = 16;

/// Register the guest records its resume address in.
pub const RESUME_REG: u8 = 25;
/// Register holding the [`Command`].
pub const COMMAND_REG: u8 = 26;
/// Benchmark: function id.
pub const BENCH_ID_REG: u8 = 24;
/// Benchmark: number of calls.
pub const BENCH_COUNT_REG: u8 = 23;
/// Benchmark: CNTVCT before the calls.
pub const BENCH_START_REG: u8 = 21;
/// Benchmark: CNTVCT after the calls.
pub const BENCH_END_REG: u8 = 22;

/// What the call loop does next (the value of x26).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Command {
    /// `smc #0`.
    Smc = 0,
    /// `hvc #0`.
    Hvc = 1,
    /// `smc #1`: an SMC with a non-zero immediate.
    SmcImm1 = 2,
    /// PSCI SYSTEM_OFF through `hvc #0`.
    SystemOff = 3,
}

core::arch::global_asm!(
    ".pushsection .text.tosfwd_guest, \"ax\"",
    ".balign 4",
    ".global tosfwd_guest_start",
    "tosfwd_guest_start:",
    ".global tosfwd_guest_call_loop",
    "tosfwd_guest_call_loop:",
    "    str xzr, [x27, #0]",
    "    cmp x26, #1",
    "    b.eq .Lhvc",
    "    cmp x26, #2",
    "    b.eq .Lsmc1",
    "    cmp x26, #3",
    "    b.eq .Loff",
    ".global tosfwd_guest_smc",
    "tosfwd_guest_smc:",
    "    smc #0",
    "    adr x25, .",
    "    b .Ldone",
    ".Lhvc:",
    ".global tosfwd_guest_hvc",
    "tosfwd_guest_hvc:",
    "    hvc #0",
    "    adr x25, .",
    "    b .Ldone",
    ".Lsmc1:",
    ".global tosfwd_guest_smc_imm1",
    "tosfwd_guest_smc_imm1:",
    "    smc #1",
    "    adr x25, .",
    ".Ldone:",
    "    str xzr, [x27, #8]",
    "    b tosfwd_guest_call_loop",
    ".Loff:",
    "    movz x0, #0x8400, lsl #16",
    "    add x0, x0, #8",
    "    hvc #0",
    "    b .Loff",
    ".global tosfwd_guest_bench",
    "tosfwd_guest_bench:",
    "    isb",
    "    mrs x21, cntvct_el0",
    ".Lbench_loop:",
    "    mov x0, x24",
    "    cbnz x26, .Lbench_hvc",
    "    smc #0",
    "    b .Lbench_next",
    ".Lbench_hvc:",
    "    hvc #0",
    ".Lbench_next:",
    "    subs x23, x23, #1",
    "    b.ne .Lbench_loop",
    "    isb",
    "    mrs x22, cntvct_el0",
    "    str xzr, [x27, #16]",
    "    b tosfwd_guest_bench",
    ".global tosfwd_guest_end",
    "tosfwd_guest_end:",
    ".popsection",
);

extern "C" {
    static tosfwd_guest_start: u8;
    static tosfwd_guest_call_loop: u8;
    static tosfwd_guest_smc: u8;
    static tosfwd_guest_hvc: u8;
    static tosfwd_guest_smc_imm1: u8;
    static tosfwd_guest_bench: u8;
    static tosfwd_guest_end: u8;
}

/// A place in the guest code.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Routine {
    /// Entry of the call loop.
    CallLoop,
    /// The `smc #0` of the call loop.
    Smc,
    /// The `hvc #0` of the call loop.
    Hvc,
    /// The `smc #1` of the call loop.
    SmcImm1,
    /// Entry of the benchmark loop.
    Bench,
}

fn start() -> usize {
    addr_of!(tosfwd_guest_start) as usize
}

impl Routine {
    /// Offset of this place from the start of [`code`].
    pub fn offset(self) -> usize {
        let addr = match self {
            Routine::CallLoop => addr_of!(tosfwd_guest_call_loop),
            Routine::Smc => addr_of!(tosfwd_guest_smc),
            Routine::Hvc => addr_of!(tosfwd_guest_hvc),
            Routine::SmcImm1 => addr_of!(tosfwd_guest_smc_imm1),
            Routine::Bench => addr_of!(tosfwd_guest_bench),
        } as usize;
        addr - start()
    }
}

/// The guest code, to be placed at the start of the guest's memslot.
pub fn code() -> &'static [u8] {
    // SAFETY: start and end delimit the bytes of the global_asm! block above,
    // in one section, in this order; they are immutable code bytes.
    unsafe {
        let end = addr_of!(tosfwd_guest_end) as usize;
        std::slice::from_raw_parts(addr_of!(tosfwd_guest_start), end - start())
    }
}
