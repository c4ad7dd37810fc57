// SPDX-License-Identifier: Apache-2.0 OR MIT
//! The properties of Trusted OS call forwarding, one function each, shared by
//! the test binaries (ordinary and protected VMs run the same cases).

use smccc::kvm::FilterAction;
use smccc::{
    Conduit, Convention, FunctionId, FunctionRange, TRUSTED_APP_RANGES, TRUSTED_OS_RANGES,
};

use crate::guest::{self, Command, Routine};
use crate::ktap::Outcome;
use crate::kvm::{
    self, Call, CallResult, Reg, TestVcpu, TestVm, VmKind, CALL_REGS, GUEST_CODE_IPA,
};

/// Why a case failed.
#[derive(Debug)]
pub struct Failure(pub String);

impl From<kvm::Error> for Failure {
    fn from(e: kvm::Error) -> Self {
        Failure(e.to_string())
    }
}

/// What a case returns.
pub type CaseResult = Result<(), Failure>;

/// The KTAP outcome of a case.
pub fn outcome(r: CaseResult) -> Outcome {
    match r {
        Ok(()) => Outcome::Pass,
        Err(Failure(msg)) => Outcome::Fail(msg),
    }
}

macro_rules! ensure {
    ($cond:expr, $($fmt:tt)+) => {
        if !$cond {
            return Err(Failure(format!($($fmt)+)));
        }
    };
}

/// SMCCC_RET_NOT_SUPPORTED as KVM writes it to x0.
pub const NOT_SUPPORTED: u64 = u64::MAX;

/// A VM of `kind` running the call loop, with `forward` forwarded to
/// userspace, its vCPU 0 waiting for the first call.
pub fn call_loop_vm(
    kind: VmKind,
    forward: &[FunctionRange],
) -> Result<(TestVm, TestVcpu), Failure> {
    let vm = TestVm::new(kind, guest::code())?;
    vm.forward(forward)?;
    let mut vcpu = vm.vcpu(0, Routine::CallLoop.offset())?;
    vcpu.wait_ready()?;
    Ok((vm, vcpu))
}

/// Where the guest must resume after the call instruction of `cmd`.
pub fn resume_pc(cmd: Command) -> u64 {
    let insn = match cmd {
        Command::Smc => Routine::Smc,
        Command::Hvc => Routine::Hvc,
        Command::SmcImm1 => Routine::SmcImm1,
        Command::SystemOff => unreachable!("SYSTEM_OFF does not return"),
    };
    GUEST_CODE_IPA + insn.offset() as u64 + 4
}

fn conduit_of(cmd: Command) -> Conduit {
    match cmd {
        Command::Hvc => Conduit::Hvc,
        _ => Conduit::Smc,
    }
}

/// Arguments x0..x17 for a call of `id`: x1..x17 carry a pattern that names
/// the register, the call `seq` and the vCPU `tag`.
pub fn args(id: u64, seq: u64, tag: u64) -> Vec<u64> {
    let mut a = vec![id];
    a.extend((1..CALL_REGS as u64).map(|r| (tag << 56) | (r << 48) | (seq << 16) | 0xa5a5));
    a
}

/// The results a trivial handler gives call `seq`: four values, truncated to
/// 32 bits for SMC32 calls as an SMC32 service answers.
pub fn results(id: FunctionId, seq: u64, tag: u64) -> [u64; 4] {
    let r = [
        0,
        (tag << 40) | (seq << 8) | 1,
        0xffff_0000_0000_0002 ^ seq,
        0x8000_0000_0000_0003 | (seq << 4),
    ];
    match id.convention() {
        Convention::Smc32 => r.map(|v| v & 0xffff_ffff),
        Convention::Smc64 => r,
    }
}

/// A handler that checks the forwarded call is `id` through `cmd` at the
/// right PC, that x1..x7 are `args`, and answers with `res` in x0..x3.
pub fn answer<'a>(
    id: FunctionId,
    cmd: Command,
    args: &'a [u64],
    res: [u64; 4],
) -> impl FnOnce(&TestVcpu, Call) -> kvm::Result<()> + 'a {
    move |vcpu, call| {
        let pc = vcpu.get(Reg::Pc)?;
        let x = (1..8)
            .map(|i| vcpu.get(Reg::X(i)))
            .collect::<kvm::Result<Vec<_>>>()?;
        vcpu.set_x(&res)?;
        let mut errs = Vec::new();
        if call.nr != id.0 as u64 {
            errs.push(format!("nr {:#x}", call.nr));
        }
        if call.conduit != conduit_of(cmd) {
            errs.push(format!("flags {:#x} say {:?}", call.flags, call.conduit));
        }
        if pc != resume_pc(cmd) {
            errs.push(format!(
                "pc {pc:#x} at the exit, want {:#x}",
                resume_pc(cmd)
            ));
        }
        if x[..] != args[1..8] {
            errs.push(format!("x1..x7 {x:x?}, want {:x?}", &args[1..8]));
        }
        if errs.is_empty() {
            Ok(())
        } else {
            Err(kvm::Error::UnexpectedExit(format!(
                "forwarded call {:#x} via {cmd:?}: {}",
                id.0,
                errs.join(", ")
            )))
        }
    }
}

/// One forwarded round trip of `id` through `cmd`, fully checked: KVM
/// forwards it, the handler sees the guest's registers and answers, the guest
/// sees the answer in x0..x3, x4..x17 unchanged, and resumes right after the
/// call instruction.
pub fn round_trip(
    vcpu: &mut TestVcpu,
    id: FunctionId,
    x0: u64,
    cmd: Command,
    seq: u64,
    tag: u64,
) -> CaseResult {
    let a = args(x0, seq, tag);
    let res = results(id, seq, tag);
    let r = vcpu.call(&a, cmd, answer(id, cmd, &a, res))?;
    ensure!(
        r.forwarded.is_some(),
        "{:#x} via {cmd:?} was not forwarded (x0 = {:#x})",
        id.0,
        r.regs[0]
    );
    ensure!(
        r.regs[..4] == res,
        "{:#x}: guest x0..x3 {:x?}, written {res:x?}",
        id.0,
        &r.regs[..4]
    );
    ensure!(
        r.regs[4..] == a[4..],
        "{:#x}: guest x4..x17 changed: {:x?}, were {:x?}",
        id.0,
        &r.regs[4..],
        &a[4..]
    );
    ensure!(
        r.resume_pc == resume_pc(cmd),
        "{:#x}: guest resumed at {:#x}, want {:#x} (one instruction after the call)",
        id.0,
        r.resume_pc,
        resume_pc(cmd)
    );
    Ok(())
}

/// Every Trusted OS and Trusted App range forwards its first and last id
/// through SMC and HVC, with KVM_HYPERCALL_EXIT_SMC telling the conduit.
pub fn ranges_forward_first_and_last_ids(kind: VmKind) -> CaseResult {
    let all: Vec<FunctionRange> = TRUSTED_OS_RANGES
        .into_iter()
        .chain(TRUSTED_APP_RANGES)
        .collect();
    let (_vm, mut vcpu) = call_loop_vm(kind, &all)?;
    let mut seq = 0;
    for r in &all {
        for id in [r.first(), r.last()] {
            for cmd in [Command::Smc, Command::Hvc] {
                seq += 1;
                round_trip(&mut vcpu, id, id.0 as u64, cmd, seq, 0)?;
            }
        }
    }
    Ok(())
}

/// `hypercall.nr` is the low 32 bits of x0, whatever x0[63:32] holds.
pub fn nr_is_the_low_32_bits_of_x0(kind: VmKind) -> CaseResult {
    let (_vm, mut vcpu) = call_loop_vm(kind, &TRUSTED_OS_RANGES)?;
    let id = TRUSTED_OS_RANGES[2].first();
    for (seq, hi) in [0xdead_beefu64, 0xffff_ffff, 1].into_iter().enumerate() {
        round_trip(
            &mut vcpu,
            id,
            (hi << 32) | id.0 as u64,
            Command::Smc,
            seq as u64,
            0,
        )?;
    }
    Ok(())
}

/// The guest's x1..x17 are what the VMM reads with KVM_GET_ONE_REG at the exit.
pub fn vmm_reads_the_guests_x1_to_x17(kind: VmKind) -> CaseResult {
    let (_vm, mut vcpu) = call_loop_vm(kind, &TRUSTED_OS_RANGES)?;
    let id = TRUSTED_OS_RANGES[3].first();
    let a = args(id.0 as u64, 7, 0x5a);
    let mut seen = Vec::new();
    let r = vcpu.call(&a, Command::Smc, |v, _| {
        seen = (1..CALL_REGS)
            .map(|i| v.get(Reg::X(i)))
            .collect::<kvm::Result<_>>()?;
        v.set(Reg::X(0), 0)
    })?;
    ensure!(r.forwarded.is_some(), "{:#x} was not forwarded", id.0);
    ensure!(
        seen[..] == a[1..],
        "x1..x17 at the exit {seen:x?}, guest set {:x?}",
        &a[1..]
    );
    Ok(())
}

/// Results written with KVM_SET_ONE_REG reach the guest, which resumes one
/// instruction after the call with x4..x17 intact, over `n` calls mixing
/// conduits and calling conventions.
pub fn vmm_results_reach_the_guest_which_resumes(kind: VmKind, n: u64) -> CaseResult {
    let all: Vec<FunctionRange> = TRUSTED_OS_RANGES
        .into_iter()
        .chain(TRUSTED_APP_RANGES)
        .collect();
    let (_vm, mut vcpu) = call_loop_vm(kind, &all)?;
    for seq in 0..n {
        let r = all[(seq % all.len() as u64) as usize];
        let id = FunctionId(r.base + ((seq * 0x1_0001) as u32 % r.count));
        let cmd = if seq % 3 == 0 {
            Command::Hvc
        } else {
            Command::Smc
        };
        round_trip(&mut vcpu, id, id.0 as u64, cmd, seq, 1)?;
    }
    Ok(())
}

fn not_forwarded(vcpu: &mut TestVcpu, x0: u64, cmd: Command) -> Result<CallResult, Failure> {
    let r = vcpu.call(&args(x0, 0, 0), cmd, |_, call| {
        Err(kvm::Error::UnexpectedExit(format!(
            "{call:?} reached userspace"
        )))
    })?;
    ensure!(
        r.resume_pc == resume_pc(cmd),
        "resumed at {:#x}, want {:#x}",
        r.resume_pc,
        resume_pc(cmd)
    );
    Ok(r)
}

/// The ids just outside the forwarded Trusted OS ranges stay in KVM.
pub fn ids_next_to_forwarded_ranges_stay_in_kvm() -> CaseResult {
    let (_vm, mut vcpu) = call_loop_vm(VmKind::Normal, &TRUSTED_OS_RANGES)?;
    for r in TRUSTED_OS_RANGES {
        let mut outside = vec![FunctionId(r.base - 1)];
        if let Some(after) = r.last().0.checked_add(1) {
            outside.push(FunctionId(after));
        }
        for id in outside {
            let res = not_forwarded(&mut vcpu, id.0 as u64, Command::Smc)
                .map_err(|Failure(m)| Failure(format!("{:#x}: {m}", id.0)))?;
            let arch = id.owner() == smccc::Owner::Arch;
            ensure!(
                arch || res.regs[0] == NOT_SUPPORTED,
                "{:#x}: x0 = {:#x}, want SMCCC_RET_NOT_SUPPORTED",
                id.0,
                res.regs[0]
            );
        }
    }
    Ok(())
}

fn all_tos_calls_not_supported(vcpu: &mut TestVcpu) -> CaseResult {
    for r in TRUSTED_OS_RANGES {
        for cmd in [Command::Smc, Command::Hvc] {
            let res = not_forwarded(vcpu, r.first().0 as u64, cmd)?;
            ensure!(
                res.regs[0] == NOT_SUPPORTED,
                "{:#x} via {cmd:?}: x0 = {:#x}, want SMCCC_RET_NOT_SUPPORTED",
                r.base,
                res.regs[0]
            );
        }
    }
    Ok(())
}

/// Without a filter, Trusted OS calls return SMCCC_RET_NOT_SUPPORTED.
pub fn trusted_os_calls_without_a_filter_are_not_supported() -> CaseResult {
    let (_vm, mut vcpu) = call_loop_vm(VmKind::Normal, &[])?;
    all_tos_calls_not_supported(&mut vcpu)
}

/// DENY'd Trusted OS calls return SMCCC_RET_NOT_SUPPORTED.
pub fn denied_trusted_os_calls_are_not_supported() -> CaseResult {
    let vm = TestVm::new(VmKind::Normal, guest::code())?;
    for r in TRUSTED_OS_RANGES {
        vm.set_filter(r, FilterAction::Deny)?;
    }
    let mut vcpu = vm.vcpu(0, Routine::CallLoop.offset())?;
    vcpu.wait_ready()?;
    all_tos_calls_not_supported(&mut vcpu)
}

/// `smc #1` with a forwarded id never reaches userspace: x0 = ~0.
pub fn smc_with_a_nonzero_immediate_is_not_forwarded() -> CaseResult {
    let (_vm, mut vcpu) = call_loop_vm(VmKind::Normal, &TRUSTED_OS_RANGES)?;
    let res = not_forwarded(
        &mut vcpu,
        TRUSTED_OS_RANGES[2].first().0 as u64,
        Command::SmcImm1,
    )?;
    ensure!(
        res.regs[0] == NOT_SUPPORTED,
        "x0 = {:#x}, want ~0",
        res.regs[0]
    );
    Ok(())
}

/// The call loop's vCPU runs at EL1 (so HVC reaches KVM, not a virtual EL2).
pub fn vcpu_runs_at_el1() -> Outcome {
    let r = (|| -> Result<u64, Failure> {
        let (_vm, vcpu) = call_loop_vm(VmKind::Normal, &[])?;
        Ok(vcpu.get(Reg::Pstate)?)
    })();
    match r {
        Ok(p) if p & 0xf == 0b0101 => Outcome::Pass,
        Ok(p) => Outcome::Skip(format!(
            "the vCPU runs at EL2 (PSTATE {p:#x}): HVC goes to its virtual EL2"
        )),
        Err(Failure(m)) => Outcome::Fail(m),
    }
}

/// The Vendor Specific Hypervisor Service calls (owner 6) that pKVM keeps for
/// itself in a protected VM's filter (the kvm-pvm series, after the review of
/// "KVM: arm64: Prevent FWD_TO_USER of SMCCC to pKVM"): the Call UID query,
/// and the function numbers include/linux/arm-smccc.h earmarks for pKVM's
/// hypercalls (2..=63) as SMC64 fast calls.
pub const PKVM_OWN_IDS: [FunctionRange; 2] = [
    FunctionRange {
        base: 0x8600_ff01,
        count: 1,
    },
    FunctionRange {
        base: 0xc600_0002,
        count: 62,
    },
];

/// Both Vendor Specific Hypervisor Service ranges (fast SMC32 and SMC64).
pub const VENDOR_HYP_RANGES: [FunctionRange; 2] = [
    FunctionRange {
        base: 0x8600_0000,
        count: 0x1_0000,
    },
    FunctionRange {
        base: 0xc600_0000,
        count: 0x1_0000,
    },
];

/// A fresh VM of `kind` on which filtering any part of pKVM's own ids fails
/// with EEXIST, for either action.
pub fn pkvm_own_ids_are_eexist(kind: VmKind) -> CaseResult {
    for r in PKVM_OWN_IDS {
        for (base, count) in [
            (r.base, r.count),
            (r.first().0, 1),
            (r.last().0, 1),
            (r.base - 1, 2),
        ] {
            for action in [FilterAction::FwdToUser, FilterAction::Deny] {
                filter_error_on(
                    kind,
                    |_| Ok(()),
                    raw(base, count, action as u8),
                    libc::EEXIST,
                    "EEXIST",
                )?;
            }
        }
    }
    Ok(())
}

/// The Vendor Specific Hypervisor ids next to pKVM's own are a protected VM's
/// VMM's to filter: they are accepted, and a forwarded one round-trips
/// through SMC and HVC like a Trusted OS call.
pub fn other_vendor_hyp_ids_forward(kind: VmKind) -> CaseResult {
    let others = [
        // FEATURES and PTP, below pKVM's range.
        FunctionRange {
            base: 0xc600_0000,
            count: 2,
        },
        // Above it, through the end of the range (e.g. the MIDR/REVIDR
        // discovery calls, 64 and 65, which a VMM is expected to answer).
        FunctionRange {
            base: 0xc600_0040,
            count: 0x1_0000 - 0x40,
        },
        // The SMC32 range below the Call UID query.
        FunctionRange {
            base: 0x8600_0000,
            count: 0xff01,
        },
    ];
    let (_vm, mut vcpu) = call_loop_vm(kind, &others)?;
    // Not KVM's FEATURES call (0x8600_0000): pKVM answers it at EL2 when a
    // protected guest makes it through HVC, and it never reaches the VMM.
    let ids = [
        0xc600_0001,
        0xc600_0040,
        0xc600_0041,
        0xc600_ffff,
        0x8600_0001,
        0x8600_ff00,
    ];
    for (seq, id) in ids.into_iter().enumerate() {
        for cmd in [Command::Smc, Command::Hvc] {
            round_trip(&mut vcpu, FunctionId(id), id as u64, cmd, seq as u64, 2)?;
        }
    }
    Ok(())
}

/// An ordinary VM may filter both whole Vendor Specific Hypervisor ranges,
/// pKVM's ids included: the reservation is a protected VM's only.
pub fn vendor_hyp_ranges_are_filterable() -> CaseResult {
    let vm = TestVm::new(VmKind::Normal, guest::code())?;
    for r in VENDOR_HYP_RANGES {
        vm.set_filter(r, FilterAction::FwdToUser)?;
    }
    Ok(())
}

/// Installs `filter` on a fresh VM after `prepare`, expecting `errno`.
fn filter_error(
    prepare: impl FnOnce(&TestVm) -> Result<(), Failure>,
    filter: smccc::kvm::KvmSmcccFilter,
    errno: i32,
    name: &str,
) -> CaseResult {
    filter_error_on(VmKind::Normal, prepare, filter, errno, name)
}

/// [`filter_error`] on a VM of `kind`.
fn filter_error_on(
    kind: VmKind,
    prepare: impl FnOnce(&TestVm) -> Result<(), Failure>,
    filter: smccc::kvm::KvmSmcccFilter,
    errno: i32,
    name: &str,
) -> CaseResult {
    let vm = TestVm::new(kind, guest::code())?;
    prepare(&vm)?;
    match vm.set_filter_raw(&filter) {
        Err(e) if e.errno() == errno => Ok(()),
        Err(e) => Err(Failure(format!("{filter:x?}: {e}, want {name}"))),
        Ok(()) => Err(Failure(format!("{filter:x?} was accepted, want {name}"))),
    }
}

fn raw(base: u32, count: u32, action: u8) -> smccc::kvm::KvmSmcccFilter {
    smccc::kvm::KvmSmcccFilter {
        base,
        nr_functions: count,
        action,
        pad: [0; 15],
    }
}

/// A range overlapping an installed one is refused with EEXIST.
pub fn overlapping_ranges_are_eexist() -> CaseResult {
    let r = TRUSTED_OS_RANGES[2];
    filter_error(
        |vm| Ok(vm.set_filter(r, FilterAction::FwdToUser)?),
        raw(r.last().0, 2, FilterAction::Deny as u8),
        libc::EEXIST,
        "EEXIST",
    )
}

/// The Arm architecture ranges (SMC32 and SMC64 owner 0, fast calls
/// 0x0000..0xFFFF) are reserved: EEXIST.
pub fn arm_architecture_ranges_are_eexist() -> CaseResult {
    for (base, count) in [
        (0x8000_0000, 1),
        (0x8000_ffff, 1),
        (0xc000_0000, 0x1_0000),
        (0x7fff_ffff, 2),
    ] {
        filter_error(
            |_| Ok(()),
            raw(base, count, FilterAction::FwdToUser as u8),
            libc::EEXIST,
            "EEXIST",
        )?;
    }
    Ok(())
}

/// Non-zero padding is EINVAL.
pub fn nonzero_pad_is_einval() -> CaseResult {
    let mut f = raw(TRUSTED_OS_RANGES[2].base, 1, FilterAction::FwdToUser as u8);
    f.pad[14] = 1;
    filter_error(|_| Ok(()), f, libc::EINVAL, "EINVAL")
}

/// A range of zero functions is EINVAL.
pub fn zero_functions_is_einval() -> CaseResult {
    filter_error(
        |_| Ok(()),
        raw(TRUSTED_OS_RANGES[2].base, 0, FilterAction::FwdToUser as u8),
        libc::EINVAL,
        "EINVAL",
    )
}

/// A range that wraps past 0xFFFFFFFF is EINVAL.
pub fn wrapping_range_is_einval() -> CaseResult {
    filter_error(
        |_| Ok(()),
        raw(0xf200_0000, 0x0f00_0000, FilterAction::FwdToUser as u8),
        libc::EINVAL,
        "EINVAL",
    )
}

/// An action KVM does not know is EINVAL.
pub fn unknown_action_is_einval() -> CaseResult {
    filter_error(
        |_| Ok(()),
        raw(TRUSTED_OS_RANGES[2].base, 1, 3),
        libc::EINVAL,
        "EINVAL",
    )
}

/// Once a vCPU has run, the filter is frozen: EBUSY.
pub fn filter_after_a_vcpu_ran_is_ebusy() -> CaseResult {
    filter_error(
        |vm| {
            let mut vcpu = vm.vcpu(0, Routine::CallLoop.offset())?;
            vcpu.wait_ready()?;
            Ok(())
        },
        raw(TRUSTED_OS_RANGES[2].base, 1, FilterAction::FwdToUser as u8),
        libc::EBUSY,
        "EBUSY",
    )
}

/// Two vCPUs on two threads forward `n` calls each at the same time; every
/// exit carries its own vCPU's registers and every answer reaches its vCPU.
pub fn vcpus_forward_concurrently_with_their_own_registers(kind: VmKind, n: u64) -> CaseResult {
    let vm = TestVm::new(kind, guest::code())?;
    vm.forward(&TRUSTED_OS_RANGES)?;
    let vcpus = (0..2)
        .map(|id| vm.vcpu(id, Routine::CallLoop.offset()))
        .collect::<kvm::Result<Vec<_>>>()?;
    let results: Vec<CaseResult> = std::thread::scope(|s| {
        let handles: Vec<_> = vcpus
            .into_iter()
            .zip(0u64..)
            .map(|(mut vcpu, tag)| {
                s.spawn(move || -> CaseResult {
                    vcpu.wait_ready()?;
                    for seq in 0..n {
                        let r = TRUSTED_OS_RANGES[(seq % 4) as usize];
                        let id = FunctionId(r.base + (tag as u32) * 0x100 + seq as u32);
                        let cmd = if (seq + tag) % 2 == 0 {
                            Command::Smc
                        } else {
                            Command::Hvc
                        };
                        round_trip(&mut vcpu, id, id.0 as u64, cmd, seq, 0x10 + tag).map_err(
                            |Failure(m)| Failure(format!("vCPU {tag}, call {seq}: {m}")),
                        )?;
                    }
                    Ok(())
                })
            })
            .collect();
        handles
            .into_iter()
            .map(|h| {
                h.join()
                    .unwrap_or_else(|_| Err(Failure("vCPU thread panicked".into())))
            })
            .collect()
    });
    results.into_iter().collect()
}

/// Whether a protected VM can be created here and install the SMCCC filter.
#[derive(Debug)]
pub enum PvmSupport {
    /// No protected VMs on this kernel or in this KVM mode.
    NoProtectedVms(String),
    /// Protected VMs exist but KVM refuses them the SMCCC filter.
    FilterRefused(String),
    /// Protected VMs can install the filter.
    Filter,
}

/// Probes protected VM support: creates a protected VM and asks KVM whether
/// it offers, then accepts, a Trusted OS filter range.
pub fn probe_protected_vms() -> Result<PvmSupport, Failure> {
    let vm = match TestVm::new(VmKind::Protected, guest::code()) {
        Ok(vm) => vm,
        Err(e @ kvm::Error::CreateVm { .. }) => {
            return Ok(PvmSupport::NoProtectedVms(format!(
                "no protected VMs on this kernel or in this KVM mode ({e})"
            )))
        }
        Err(e) => return Err(e.into()),
    };
    let has = vm.vm.has_device_attr(&kvm::smccc_filter_attr(None));
    let set = vm.set_filter(TRUSTED_OS_RANGES[2], FilterAction::FwdToUser);
    match (has, set) {
        (Ok(()), Ok(())) => Ok(PvmSupport::Filter),
        (Err(h), Err(s)) => Ok(PvmSupport::FilterRefused(format!(
            "KVM refuses protected VMs the SMCCC filter: KVM_HAS_DEVICE_ATTR: {h}; {s}"
        ))),
        (h, s) => Err(Failure(format!(
            "inconsistent filter support on a protected VM: KVM_HAS_DEVICE_ATTR {h:?}, KVM_SET_DEVICE_ATTR {s:?}"
        ))),
    }
}

/// A protected VM runs the call loop, and without a filter its Trusted OS
/// calls are answered in KVM with SMCCC_RET_NOT_SUPPORTED.
pub fn protected_vm_trusted_os_calls_without_a_filter_are_not_supported() -> CaseResult {
    let (_vm, mut vcpu) = call_loop_vm(VmKind::Protected, &[])?;
    all_tos_calls_not_supported(&mut vcpu)
}
