// SPDX-License-Identifier: Apache-2.0 OR MIT
//! The machine (aarch64 only): a KVM VM with RAM, vCPUs, the in-kernel
//! GICv3 and architected timer, PSCI in KVM, a 16550 console, the Trusted
//! OS SMCCC ranges forwarded to userspace and answered by the mediator.

use std::fs::File;
use std::io::{self, Read, Seek, Stdout};
use std::os::unix::thread::JoinHandleExt;
use std::panic::{self, AssertUnwindSafe};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU8, Ordering};
use std::sync::{mpsc, Arc, Mutex, PoisonError, TryLockError};
use std::thread;
use std::time::{Duration, Instant};

use host_tee::{HostTee, TeeDevice};

use crate::tee::Ready;
use kvm_bindings::{
    kvm_create_device, kvm_device_attr, kvm_device_type_KVM_DEV_TYPE_ARM_VGIC_V3,
    kvm_userspace_memory_region, kvm_vcpu_events, kvm_vcpu_init, KVM_ARM_VCPU_POWER_OFF,
    KVM_ARM_VCPU_PSCI_0_2, KVM_DEV_ARM_VGIC_CTRL_INIT, KVM_DEV_ARM_VGIC_GRP_ADDR,
    KVM_DEV_ARM_VGIC_GRP_CTRL, KVM_DEV_ARM_VGIC_GRP_NR_IRQS, KVM_REG_ARM64, KVM_REG_ARM64_SYSREG,
    KVM_REG_SIZE_U64, KVM_SYSTEM_EVENT_RESET, KVM_SYSTEM_EVENT_SHUTDOWN,
    KVM_VGIC_V3_ADDR_TYPE_DIST, KVM_VGIC_V3_ADDR_TYPE_REDIST,
};
use kvm_ioctls::{DeviceFd, Kvm, VcpuExit, VcpuFd, VmFd};
use linux_loader::loader::pe::PE;
use linux_loader::loader::KernelLoader;
use optee_mediator::abi::ret;
use optee_mediator::kvm::{self as adapter, AdapterError, Forwarded};
use optee_mediator::{
    kvm_filters, Backend, ClientId, GuestRam, LoginPolicy, Mediator, MediatorError, Policy,
    Progress, SmcCall, SmcResult, TaFilter, UserTee, UteeConfig,
};
use smccc::kvm::{filter_attr, CoreReg, KVM_VM_TYPE_ARM_PROTECTED};
use smccc::FunctionId;
use vm_memory::{Bytes, GuestAddress, GuestMemoryBackend, GuestMemoryMmap};
use vm_superio::{Serial, Trigger};
use vmm_sys_util::eventfd::{EventFd, EFD_NONBLOCK};

use crate::args::Args;
use crate::console::LineOut;
use crate::fdt::{self, FdtConfig};
use crate::hostile::Hostile;
use crate::layout::{self, ImageError, KernelImage, LayoutError, MmioTarget};
use crate::outcome::{Ending, VcpuEnd};
use crate::private_ram::PrivateRam;
use crate::stats::CallCounts;

/// Why the VM could not be built or run.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// /dev/kvm cannot be opened.
    #[error("cannot open /dev/kvm: {0} (is this an arm64 host with KVM enabled, and may this user use it?)")]
    OpenKvm(kvm_ioctls::Error),
    /// A file could not be read.
    #[error("cannot read the {what} '{}': {err}", path.display())]
    ReadFile {
        /// Kernel or initrd.
        what: &'static str,
        /// Its path.
        path: PathBuf,
        /// Why.
        err: io::Error,
    },
    /// A KVM ioctl failed.
    #[error("{what} failed: {err}")]
    Kvm {
        /// What was being done.
        what: String,
        /// Why.
        err: kvm_ioctls::Error,
    },
    /// The SMCCC filter is missing.
    #[error(
        "KVM has no SMCCC filter (KVM_ARM_VM_SMCCC_FILTER, Linux 6.4 or later): the guest's \
         Trusted OS calls cannot be forwarded to this VMM ({0})"
    )]
    NoSmcccFilter(kvm_ioctls::Error),
    /// KVM refused a protected VM.
    #[error(
        "KVM cannot create a protected VM (KVM_VM_TYPE_ARM_PROTECTED): {0}; protected VMs need \
         pKVM (an arm64 host booted with kvm-arm.mode=protected)"
    )]
    NoProtectedVms(kvm_ioctls::Error),
    /// The protected guest's RAM could not be given its checked accessor.
    #[error("cannot set up the access to a protected guest's RAM (a memfd): {0}")]
    PrivateRam(io::Error),
    /// --tee-share-memory could not be honoured.
    #[error("cannot share the guest's memory with the TEE service: {0}")]
    ShareMemory(String),
    /// The in-kernel GICv3 is missing.
    #[error(
        "KVM cannot create an in-kernel GICv3 ({0}): the host needs a GICv3 (or a GIC with v3 \
         emulation)"
    )]
    NoGicV3(kvm_ioctls::Error),
    /// Guest RAM could not be allocated.
    #[error("cannot allocate {mib} MiB of guest RAM: {err}")]
    Memory {
        /// Size.
        mib: u64,
        /// Why.
        err: crate::ram::RamError,
    },
    /// The images do not fit.
    #[error(transparent)]
    Layout(#[from] LayoutError),
    /// The kernel image was not accepted.
    #[error("cannot load the kernel '{}' (an arm64 Image is needed): {err}", path.display())]
    LoadKernel {
        /// Its path.
        path: PathBuf,
        /// Why.
        err: linux_loader::loader::Error,
    },
    /// The kernel file is not an arm64 Image.
    #[error("the kernel '{}' is not an arm64 Image: {err}", path.display())]
    KernelImage {
        /// Its path.
        path: PathBuf,
        /// Why.
        err: ImageError,
    },
    /// Writing into guest RAM failed.
    #[error("cannot write the {what} into guest RAM at {addr:#x}: {err}")]
    GuestWrite {
        /// What.
        what: &'static str,
        /// Where.
        addr: u64,
        /// Why.
        err: vm_memory::GuestMemoryError,
    },
    /// The device tree could not be built.
    #[error("cannot build the device tree: {0}")]
    Fdt(#[from] vm_fdt::Error),
    /// The mediator refused the VM.
    #[error("cannot create the OP-TEE mediator: {0}")]
    Mediator(#[from] MediatorError),
    /// A forwarded call's registers could not be accessed.
    #[error("vCPU {vcpu}: {err}")]
    Adapter {
        /// vCPU.
        vcpu: usize,
        /// Why.
        err: AdapterError,
    },
    /// An exit this VMM does not handle.
    #[error("vCPU {vcpu}: unexpected exit {exit}")]
    UnexpectedExit {
        /// vCPU.
        vcpu: usize,
        /// The exit.
        exit: String,
    },
    /// A host resource (thread, eventfd) could not be created.
    #[error("cannot create {what}: {err}")]
    Host {
        /// What.
        what: &'static str,
        /// Why.
        err: io::Error,
    },
    /// Every vCPU thread ended without a result.
    #[error("every vCPU thread ended without stopping the guest")]
    VcpusGone,
    /// A vCPU thread panicked.
    #[error("vCPU {0}: its thread panicked")]
    VcpuPanic(usize),
    /// A vCPU thread did not leave KVM_RUN when kicked.
    #[error("vCPU {vcpu}: its thread did not stop within {secs} s of being kicked")]
    VcpuStuck {
        /// vCPU.
        vcpu: usize,
        /// How long it was kicked for.
        secs: u64,
    },
}

fn kvm_err(what: impl Into<String>) -> impl FnOnce(kvm_ioctls::Error) -> Error {
    let what = what.into();
    move |err| Error::Kvm { what, err }
}

pub use crate::outcome::Stop;

/// What a run reports once every vCPU thread has stopped.
#[derive(Debug)]
pub struct Report {
    /// How the guest stopped and which vCPU saw it, or why the run failed.
    pub end: Result<(Stop, usize), Error>,
    /// Wall time from VM creation to the stop (or the failure).
    pub wall: Duration,
    /// Forwarded calls.
    pub calls: CallCounts,
}

/// The UART's interrupt: an irqfd on its SPI.
#[derive(Debug)]
struct IrqFd(EventFd);

impl Trigger for IrqFd {
    type E = io::Error;

    fn trigger(&self) -> io::Result<()> {
        self.0.write(1)
    }
}

/// The TEE behind a VM's mediator: the userspace TEE or the host's
/// (`--tee`).
type TeeBackend = Box<dyn Backend + Send>;

/// The mediator and the counts of what it answered, behind one lock.
struct Forwarder {
    mediator: Mediator<TeeBackend>,
    calls: CallCounts,
}

/// How a vCPU waits for a TEE call that runs elsewhere (the host TEE's
/// workers): on the backend's progress, outside the forwarder's lock, at
/// most `wait` after each FOREIGN_INTR answer.
struct TeeWait {
    progress: Arc<Progress>,
    wait: Duration,
}

/// What the vCPU threads share. The fields drop in this order: the
/// forwarder (whose mediator's teardown ends the VM's use of the host TEE
/// and of guest RAM) before `mem`.
struct Machine {
    forwarder: Mutex<Forwarder>,
    serial: Mutex<Serial<IrqFd, vm_superio::serial::NoEvents, LineOut<Stdout>>>,
    /// Guest RAM as the mediator reaches it: the mapping itself, or for a
    /// protected VM only through checked copies ([`PrivateRam`]).
    mem: GuestView,
    /// The guest's mistakes logged so far (stray MMIO, undecodable accesses).
    stray_mmio: Mutex<u32>,
    /// Set once the run has ended: every vCPU thread leaves its loop.
    stopping: AtomicBool,
    /// `None` for a backend that only progresses when the guest calls, or
    /// with --tee-wait-us 0.
    tee_wait: Option<TeeWait>,
    /// --hostile-host (a test tool): the forger, before the mediator.
    hostile: Option<Mutex<HostileHost>>,
}

/// The most a flipping thread runs: it stops when the guest comes back,
/// or after this.
const FLIP_MAX: Duration = Duration::from_secs(2);

/// --hostile-host: the forger and its flipping thread, if one runs.
struct HostileHost {
    forger: Hostile,
    flip: Option<(Arc<AtomicBool>, thread::JoinHandle<u64>)>,
}

impl HostileHost {
    /// Stops the flipping thread, if one runs; how many times it flipped.
    fn stop_flip(&mut self) -> Option<u64> {
        let (stop, t) = self.flip.take()?;
        stop.store(true, Ordering::SeqCst);
        t.join().ok()
    }
}

/// Guest RAM as the mediator reaches it.
enum GuestView {
    /// An ordinary VM's: all of it, through the mapping.
    Plain(GuestMemoryMmap),
    /// A protected VM's: what the guest shares, through checked copies.
    Private(PrivateRam),
}

impl GuestView {
    fn ram(&self) -> &dyn GuestRam {
        match self {
            GuestView::Plain(m) => m,
            GuestView::Private(p) => p,
        }
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

impl Machine {
    fn mmio_read(&self, addr: u64, data: &mut [u8]) {
        data.fill(0);
        match layout::mmio_target(addr) {
            MmioTarget::Uart(reg) => {
                if let Some(b) = data.first_mut() {
                    *b = lock(&self.serial).read(reg);
                }
            }
            MmioTarget::UartUnused => {}
            MmioTarget::Nothing => self.stray(addr, "read"),
        }
    }

    fn mmio_write(&self, addr: u64, data: &[u8]) {
        match layout::mmio_target(addr) {
            MmioTarget::Uart(reg) => {
                if let Some(b) = data.first() {
                    if let Err(e) = lock(&self.serial).write(reg, *b) {
                        eprintln!("tosfwd-vmm: console: {e}");
                    }
                }
            }
            MmioTarget::UartUnused => {}
            MmioTarget::Nothing => self.stray(addr, "write"),
        }
    }

    fn stray(&self, addr: u64, what: &str) {
        self.log_guest_mistake(|| format!("ignoring MMIO {what} at {addr:#x} (no device there)"));
    }

    /// Logs one of the guest's mistakes, the first 8 only (the guest
    /// decides how many there are).
    fn log_guest_mistake(&self, msg: impl FnOnce() -> String) {
        let mut n = lock(&self.stray_mmio);
        *n += 1;
        if *n <= 8 {
            eprintln!("tosfwd-vmm: {}", msg());
        }
    }

    /// An access outside RAM that KVM could not decode (no valid syndrome:
    /// a load/store pair, a writeback, ...; KVM_RUN says ENOSYS and would
    /// fault again on re-entry): the guest gets a synchronous external
    /// abort, as KVM gives a protected VM there and hardware gives an
    /// access to nothing.
    fn undecodable_access(&self, id: usize, vcpu: &VcpuFd) -> Result<(), Error> {
        self.log_guest_mistake(|| {
            format!(
                "vCPU {id}: an MMIO access KVM cannot decode (no valid syndrome): injecting an \
                 external data abort"
            )
        });
        let mut events = kvm_vcpu_events::default();
        events.exception.ext_dabt_pending = 1;
        vcpu.set_vcpu_events(&events).map_err(kvm_err(format!(
            "injecting an external data abort into vCPU {id} (KVM_SET_VCPU_EVENTS)"
        )))
    }

    /// --hostile-host: the forger's answer to `call`, if it forges one
    /// (starting its flipping thread as it asks; any call of the guest
    /// stops the one running).
    fn hostile_answer(
        self: &Arc<Self>,
        h: &Mutex<HostileHost>,
        call: &SmcCall,
    ) -> Option<SmcResult> {
        let mut h = lock(h);
        // The guest is back: whatever it was reading has been read. A flip
        // stops before the forger looks at guest memory again (the forger
        // asks for that too: `Verdict::stop_flip`).
        h.stop_flip();
        let v = h.forger.intercept(self.mem.ram(), call);
        if let Some(flip) = v.start_flip {
            h.stop_flip();
            let m = Arc::clone(self);
            let stop = Arc::new(AtomicBool::new(false));
            let stopped = Arc::clone(&stop);
            let spawned = thread::Builder::new()
                .name("hostile-flip".to_owned())
                .spawn(move || {
                    let deadline = Instant::now() + FLIP_MAX;
                    let mut n = 0u64;
                    while !stopped.load(Ordering::SeqCst) && Instant::now() < deadline {
                        for state in &flip.states {
                            // A page the guest took back is not written:
                            // the forgery goes on with what it can.
                            let _ = m.mem.ram().write(flip.gpa, state);
                        }
                        n += 1;
                    }
                    n
                });
            match spawned {
                Ok(t) => h.flip = Some((stop, t)),
                Err(e) => {
                    eprintln!("tosfwd-vmm: hostile-host: cannot start a flipping thread: {e}")
                }
            }
        }
        if let Some(r) = &v.report {
            eprintln!("tosfwd-vmm: hostile-host: {r}");
        }
        v.answer
    }

    /// One forwarded call: the registers it needs, the mediator's answer,
    /// the result registers.
    fn forward(
        self: &Arc<Self>,
        id: usize,
        vcpu: &VcpuFd,
        nr: u64,
        flags: u64,
    ) -> Result<(), Error> {
        let call = match adapter::read_call(vcpu, nr, flags)
            .map_err(|err| Error::Adapter { vcpu: id, err })?
        {
            Forwarded::Mediate(call) => call,
            // SMCCC's rule, applied here rather than by KVM: not passed on.
            Forwarded::Refused(result) => {
                lock(&self.forwarder).calls.refused_smc64_from_aarch32 += 1;
                return adapter::write_result(vcpu, &result)
                    .map_err(|err| Error::Adapter { vcpu: id, err });
            }
        };
        if let Some(h) = &self.hostile {
            if let Some(forged) = self.hostile_answer(h, &call) {
                return adapter::write_result(vcpu, &forged)
                    .map_err(|err| Error::Adapter { vcpu: id, err });
            }
        }
        // What the backend had finished before this call.
        let waiting = self.tee_wait.as_ref().map(|w| (w, w.progress.seen()));
        let mut result = {
            let mut f = lock(&self.forwarder);
            f.calls.add(FunctionId::from_x0(nr));
            f.mediator.handle(self.mem.ram(), &call)
        };
        // The call is still in the TEE: rather than send the guest away
        // for it at once, wait a little (no lock held) for a result to
        // arrive, and if one does, come back from the FOREIGN_INTR as the
        // guest's driver would, without the round trip through the guest.
        if let Some((w, mut seen)) = waiting {
            let deadline = Instant::now() + w.wait;
            while result.a0() == u64::from(ret::RPC_FOREIGN_INTR) {
                let left = deadline.saturating_duration_since(Instant::now());
                if left.is_zero() || !w.progress.wait_past(seen, left) {
                    break;
                }
                seen = w.progress.seen();
                let mut f = lock(&self.forwarder);
                let Some(next) =
                    f.mediator
                        .return_from_foreign_intr(self.mem.ram(), &result, call.conduit)
                else {
                    break;
                };
                f.calls.returns_for_guest += 1;
                result = next;
            }
        }
        adapter::write_result(vcpu, &result).map_err(|err| Error::Adapter { vcpu: id, err })
    }

    /// Runs one vCPU until the guest stops, it fails, or the run ends
    /// ([`Machine::stopping`], with a kick out of KVM_RUN).
    fn vcpu_loop(self: &Arc<Self>, id: usize, vcpu: &mut VcpuFd) -> VcpuEnd<Error> {
        loop {
            if self.stopping.load(Ordering::SeqCst) {
                return VcpuEnd::Kicked;
            }
            let hypercall = match vcpu.run() {
                Ok(VcpuExit::MmioRead(addr, data)) => {
                    self.mmio_read(addr, data);
                    None
                }
                Ok(VcpuExit::MmioWrite(addr, data)) => {
                    self.mmio_write(addr, data);
                    None
                }
                // `longmode` is the low half of the exit's `flags` union.
                Ok(VcpuExit::Hypercall(h)) => Some((h.nr, u64::from(h.longmode))),
                Ok(VcpuExit::SystemEvent(t, _)) => {
                    return VcpuEnd::Stopped(match t {
                        KVM_SYSTEM_EVENT_SHUTDOWN => Stop::PowerOff,
                        KVM_SYSTEM_EVENT_RESET => Stop::Reset,
                        other => Stop::Event(other),
                    })
                }
                Ok(VcpuExit::Intr) => None,
                Ok(other) => {
                    return VcpuEnd::Failed(Error::UnexpectedExit {
                        vcpu: id,
                        exit: format!("{other:?}"),
                    })
                }
                // A kick (or immediate_exit): the loop's top decides.
                Err(e) if e.errno() == libc::EINTR || e.errno() == libc::EAGAIN => None,
                Err(e) if e.errno() == libc::ENOSYS => {
                    if let Err(e) = self.undecodable_access(id, vcpu) {
                        return VcpuEnd::Failed(e);
                    }
                    None
                }
                Err(err) => {
                    return VcpuEnd::Failed(Error::Kvm {
                        what: format!("KVM_RUN on vCPU {id}"),
                        err,
                    })
                }
            };
            if let Some((nr, flags)) = hypercall {
                if let Err(e) = self.forward(id, vcpu, nr, flags) {
                    return VcpuEnd::Failed(e);
                }
            }
        }
    }
}

/// The signal that kicks a vCPU thread out of KVM_RUN.
fn kick_signal() -> libc::c_int {
    libc::SIGRTMIN()
}

/// The kick's handler: nothing to do, the signal only interrupts KVM_RUN.
extern "C" fn on_kick(_sig: libc::c_int) {}

/// Installs the kick's handler, without SA_RESTART so that KVM_RUN
/// returns EINTR.
fn install_kick_handler() -> Result<(), Error> {
    let host = |err| Error::Host {
        what: "the handler of the vCPU kick signal",
        err,
    };
    // SAFETY: sigaction is a plain C struct for which all zeroes is valid
    // (no handler, no flags, an empty mask).
    let mut sa: libc::sigaction = unsafe { std::mem::zeroed() };
    sa.sa_sigaction = on_kick as extern "C" fn(libc::c_int) as libc::sighandler_t;
    sa.sa_flags = 0;
    // SAFETY: `sa.sa_mask` is a valid, writable sigset_t.
    if unsafe { libc::sigemptyset(&mut sa.sa_mask) } != 0 {
        return Err(host(io::Error::last_os_error()));
    }
    // SAFETY: `sa` is fully initialised and its handler is async-signal-safe
    // (it does nothing); the old action is not asked for.
    if unsafe { libc::sigaction(kick_signal(), &sa, std::ptr::null_mut()) } != 0 {
        return Err(host(io::Error::last_os_error()));
    }
    Ok(())
}

/// Unblocks the kick signal in the calling thread (threads inherit their
/// creator's mask, which someone may have changed).
fn unblock_kick_signal() {
    // SAFETY: all zeroes is a valid sigset_t, initialised by sigemptyset
    // before use.
    let mut set: libc::sigset_t = unsafe { std::mem::zeroed() };
    // SAFETY: `set` is a valid sigset_t; pthread_sigmask only changes this
    // thread's mask, and the old mask is not asked for.
    unsafe {
        libc::sigemptyset(&mut set);
        libc::sigaddset(&mut set, kick_signal());
        libc::pthread_sigmask(libc::SIG_UNBLOCK, &set, std::ptr::null_mut());
    }
}

/// A running vCPU thread. The thread hands its `VcpuFd` back when it ends
/// instead of dropping it, so `immediate_exit` (in the vCPU's kvm_run
/// mapping, which the `VcpuFd` owns) stays valid until the join.
struct VcpuThread {
    handle: thread::JoinHandle<VcpuFd>,
    immediate_exit: *mut u8,
    reported: bool,
}

impl VcpuThread {
    /// Kicks the thread out of KVM_RUN: `immediate_exit` makes a KVM_RUN
    /// it is about to enter return at once, the signal interrupts the one
    /// it is in (both return EINTR).
    fn kick(&self) {
        // SAFETY: `immediate_exit` points into this vCPU's kvm_run mapping,
        // which lives as long as its `VcpuFd`; the thread returns that
        // through `handle`, not joined yet, so it is alive. AtomicU8 has
        // u8's size and alignment, and the byte is only read elsewhere (by
        // KVM on KVM_RUN entry).
        unsafe { AtomicU8::from_ptr(self.immediate_exit) }.store(1, Ordering::SeqCst);
        // SAFETY: the thread is not joined yet (`handle` is borrowed), so its
        // pthread_t is valid; a thread that already finished only makes
        // pthread_kill fail, which is harmless: it has nothing to leave.
        unsafe { libc::pthread_kill(self.handle.as_pthread_t(), kick_signal()) };
    }
}

/// How long the vCPU threads get to stop once kicked, and how often the
/// kick is repeated meanwhile.
const KICK_TIMEOUT: Duration = Duration::from_secs(5);
const KICK_RETRY: Duration = Duration::from_millis(20);

/// A lock that a stuck vCPU thread may hold: None rather than waiting.
fn try_lock<T>(m: &Mutex<T>) -> Option<std::sync::MutexGuard<'_, T>> {
    match m.try_lock() {
        Ok(g) => Some(g),
        Err(TryLockError::Poisoned(p)) => Some(p.into_inner()),
        Err(TryLockError::WouldBlock) => None,
    }
}

fn read_file(what: &'static str, path: &Path) -> Result<Vec<u8>, Error> {
    std::fs::read(path).map_err(|err| Error::ReadFile {
        what,
        path: path.to_owned(),
        err,
    })
}

/// The arm64 Image header of the kernel file: where it goes and how much
/// RAM it needs (its bss included), before anything is placed.
fn read_image_header(file: &mut File, path: &Path) -> Result<KernelImage, Error> {
    let read_err = |err| Error::ReadFile {
        what: "kernel image",
        path: path.to_owned(),
        err,
    };
    let size = file.metadata().map_err(read_err)?.len();
    let mut header = Vec::with_capacity(layout::IMAGE_HEADER_SIZE);
    file.by_ref()
        .take(layout::IMAGE_HEADER_SIZE as u64)
        .read_to_end(&mut header)
        .map_err(read_err)?;
    file.rewind().map_err(read_err)?;
    layout::parse_image_header(&header, size).map_err(|err| Error::KernelImage {
        path: path.to_owned(),
        err,
    })
}

fn set_reg(vcpu: &VcpuFd, id: usize, reg: CoreReg, v: u64) -> Result<(), Error> {
    vcpu.set_one_reg(reg.id(), &v.to_le_bytes())
        .map(|_| ())
        .map_err(kvm_err(format!("setting {reg} of vCPU {id}")))
}

/// MPIDR_EL1 (op0 3, op1 0, CRn 0, CRm 0, op2 5) as ONE_REG names it.
const MPIDR_EL1: u64 =
    KVM_REG_ARM64 | KVM_REG_SIZE_U64 | KVM_REG_ARM64_SYSREG as u64 | (3 << 14) | 5;

fn mpidr(vcpu: &VcpuFd, id: usize) -> Result<u64, Error> {
    let mut b = [0u8; 8];
    vcpu.get_one_reg(MPIDR_EL1, &mut b)
        .map_err(kvm_err(format!("reading MPIDR_EL1 of vCPU {id}")))?;
    Ok(u64::from_le_bytes(b))
}

fn install_filters(vm: &VmFd) -> Result<(), Error> {
    vm.has_device_attr(&filter_attr(None))
        .map_err(Error::NoSmcccFilter)?;
    for f in kvm_filters() {
        vm.set_device_attr(&filter_attr(Some(&f)))
            .map_err(kvm_err(format!(
                "installing the SMCCC filter {:#x}+{:#x} (FWD_TO_USER)",
                f.base, f.nr_functions
            )))?;
    }
    Ok(())
}

fn gic_attr(gic: &DeviceFd, group: u32, attr: u64, addr: u64, what: &str) -> Result<(), Error> {
    let a = kvm_device_attr {
        group,
        attr,
        addr,
        flags: 0,
    };
    gic.set_device_attr(&a)
        .map_err(kvm_err(format!("vGICv3: {what}")))
}

/// Creates and initialises the vGICv3 (after the vCPUs exist: KVM sizes
/// the redistributor region from their number).
fn create_gic(vm: &VmFd) -> Result<DeviceFd, Error> {
    let mut dev = kvm_create_device {
        type_: kvm_device_type_KVM_DEV_TYPE_ARM_VGIC_V3,
        fd: 0,
        flags: 0,
    };
    let gic = vm.create_device(&mut dev).map_err(Error::NoGicV3)?;
    let dist = layout::GIC_DIST_BASE;
    let redist = layout::GIC_REDIST_BASE;
    let nr_irqs = layout::GIC_NR_IRQS;
    gic_attr(
        &gic,
        KVM_DEV_ARM_VGIC_GRP_ADDR,
        u64::from(KVM_VGIC_V3_ADDR_TYPE_DIST),
        &dist as *const u64 as u64,
        "setting the distributor address",
    )?;
    gic_attr(
        &gic,
        KVM_DEV_ARM_VGIC_GRP_ADDR,
        u64::from(KVM_VGIC_V3_ADDR_TYPE_REDIST),
        &redist as *const u64 as u64,
        "setting the redistributor address",
    )?;
    gic_attr(
        &gic,
        KVM_DEV_ARM_VGIC_GRP_NR_IRQS,
        0,
        &nr_irqs as *const u32 as u64,
        "setting the number of interrupts",
    )?;
    gic_attr(
        &gic,
        KVM_DEV_ARM_VGIC_GRP_CTRL,
        u64::from(KVM_DEV_ARM_VGIC_CTRL_INIT),
        0,
        "initialising",
    )?;
    Ok(gic)
}

/// The backend `--tee` asks for: the userspace TEE, the host's OP-TEE on
/// the device opened and checked at start-up (it becomes the VM's TEE
/// context), or the TEE service connected at start-up.
///
/// # Safety
/// With the host's TEE, the guest memory the mediator is given must stay
/// mapped until the mediator is dropped or torn down ([`HostTee::new`]).
unsafe fn tee_backend(tee: Ready) -> TeeBackend {
    match tee {
        Ready::User => Box::new(UserTee::new(UteeConfig::default())),
        Ready::Remote(r) => r,
        // SAFETY: the caller keeps the guest memory mapped until the
        // mediator is gone, which is HostTee's contract. The device opened
        // at start-up is the VM's context (a second VM, which this VMM
        // never has, would open it anew).
        Ready::Host(dev) => Box::new(unsafe { HostTee::on_device(dev) }),
    }
}

/// Builds the VM from `args`, runs it until the guest stops, reports.
/// `tee` is the TEE [`crate::tee::start`] made ready.
pub fn run(args: &Args, mut tee: Ready) -> Result<Report, Error> {
    let mut kernel = File::open(&args.kernel).map_err(|err| Error::ReadFile {
        what: "kernel image",
        path: args.kernel.clone(),
        err,
    })?;
    let image = read_image_header(&mut kernel, &args.kernel)?;
    let initrd = match &args.initrd {
        Some(p) => Some(read_file("initrd", p)?),
        None => None,
    };
    let mem_size = args.memory_bytes();
    let placement = layout::place(mem_size, image, initrd.as_ref().map(|i| i.len() as u64))?;

    let kvm = Kvm::new().map_err(Error::OpenKvm)?;
    let start = Instant::now();
    let vm = if args.protected {
        kvm.create_vm_with_type(KVM_VM_TYPE_ARM_PROTECTED)
            .map_err(Error::NoProtectedVms)?
    } else {
        kvm.create_vm().map_err(kvm_err("KVM_CREATE_VM"))?
    };
    install_filters(&vm)?;

    let mem = crate::ram::guest_ram(layout::RAM_BASE, mem_size as usize, !args.protected).map_err(
        |err| Error::Memory {
            mib: args.memory,
            err,
        },
    )?;
    let host = mem
        .get_host_address(GuestAddress(layout::RAM_BASE))
        .map_err(|err| Error::GuestWrite {
            what: "RAM mapping",
            addr: layout::RAM_BASE,
            err,
        })?;
    let region = kvm_userspace_memory_region {
        slot: 0,
        flags: 0,
        guest_phys_addr: layout::RAM_BASE,
        memory_size: mem_size,
        userspace_addr: host as u64,
    };
    // SAFETY: the region is the whole of `mem`'s single anonymous mapping,
    // which lives in the `Machine`; that is dropped only after the VM's fd
    // (at the end of this function, or never while a stuck vCPU thread
    // holds it), so KVM never sees the region unmapped.
    unsafe { vm.set_user_memory_region(region) }.map_err(kvm_err("KVM_SET_USER_MEMORY_REGION"))?;

    let mut init = kvm_vcpu_init::default();
    vm.get_preferred_target(&mut init)
        .map_err(kvm_err("KVM_ARM_PREFERRED_TARGET"))?;
    init.features[0] |= 1 << KVM_ARM_VCPU_PSCI_0_2;
    let mut vcpus = Vec::new();
    for id in 0..usize::from(args.vcpus) {
        let vcpu = vm
            .create_vcpu(id as u64)
            .map_err(kvm_err(format!("creating vCPU {id}")))?;
        let mut vi = init;
        if id > 0 {
            // Secondaries wait for PSCI CPU_ON.
            vi.features[0] |= 1 << KVM_ARM_VCPU_POWER_OFF;
        }
        vcpu.vcpu_init(&vi)
            .map_err(kvm_err(format!("KVM_ARM_VCPU_INIT of vCPU {id}")))?;
        vcpus.push(vcpu);
    }
    let _gic = create_gic(&vm)?;
    let mpidrs = vcpus
        .iter()
        .enumerate()
        .map(|(id, v)| mpidr(v, id))
        .collect::<Result<Vec<_>, _>>()?;

    let loaded = PE::load(
        &mem,
        Some(GuestAddress(layout::RAM_BASE)),
        &mut kernel,
        None,
    )
    .map_err(|err| Error::LoadKernel {
        path: args.kernel.clone(),
        err,
    })?;
    // The loader reads the same header: same text_offset, and the file
    // (no larger than the room `place` kept) ends before `kernel_end`.
    let entry = loaded.kernel_load.0;
    debug_assert_eq!(entry, placement.kernel);
    debug_assert!(loaded.kernel_end <= placement.kernel_end);
    if let (Some(data), Some((addr, _))) = (&initrd, placement.initrd) {
        mem.write_slice(data, GuestAddress(addr))
            .map_err(|err| Error::GuestWrite {
                what: "initrd",
                addr,
                err,
            })?;
    }
    let blob = fdt::build(&FdtConfig {
        mem_size,
        mpidrs,
        cmdline: args.kernel_cmdline(),
        initrd: placement.initrd,
        optee: Some(args.conduit),
    })?;
    mem.write_slice(&blob, GuestAddress(placement.fdt))
        .map_err(|err| Error::GuestWrite {
            what: "device tree",
            addr: placement.fdt,
            err,
        })?;

    let boot = &vcpus[0];
    set_reg(boot, 0, CoreReg::Pstate, layout::BOOT_PSTATE)?;
    set_reg(boot, 0, CoreReg::Pc, entry)?;
    set_reg(boot, 0, CoreReg::X(0), placement.fdt)?;

    let irq = EventFd::new(EFD_NONBLOCK).map_err(|err| Error::Host {
        what: "the console's eventfd",
        err,
    })?;
    vm.register_irqfd(&irq, layout::UART_SPI)
        .map_err(kvm_err("KVM_IRQFD for the console"))?;
    let serial = Serial::new(IrqFd(irq), LineOut::new(io::stdout()));

    let policy = Policy {
        tas: args.allowed_tas().map_or(TaFilter::Any, TaFilter::Only),
        // The host backend passes the guest's login on only in a
        // partition of the guest's own; elsewhere it opens every session
        // PUBLIC (the TA would take the guest's claim for the host's):
        // said here too.
        login: match &tee {
            Ready::Host(dev) if !dev.passes_logins() => LoginPolicy::ForcePublic,
            _ => LoginPolicy::PassThrough,
        },
        quotas: crate::tee::quotas(args),
        ..Policy::default()
    };
    // The service maps the guest's RAM from its memfd; the VM is created
    // there with the mediator below, and shares it then.
    if let (Ready::Remote(r), true) = (&mut tee, args.tee_share_memory) {
        match crate::ram::shared_memory(&mem) {
            Some(shared) => r
                .share_memory(ClientId(1), shared)
                .map_err(Error::ShareMemory)?,
            None => return Err(Error::ShareMemory("guest RAM has no memfd".to_owned())),
        }
    }
    let mem = if args.protected {
        GuestView::Private(PrivateRam::new(mem).map_err(Error::PrivateRam)?)
    } else {
        GuestView::Plain(mem)
    };
    // SAFETY: the mediator only ever sees `mem` (Machine::forward), and
    // `mem` outlives it on every path: on the normal one the mediator is
    // torn down below (the host backend's vm_destroyed cancels and joins
    // its calls and drops its registrations) before `machine` is dropped;
    // when `machine` is dropped otherwise (an early return, a panic), its
    // `forwarder` field drops before its `mem` field (declaration order);
    // and while a stuck vCPU thread keeps the Machine alive, both live until
    // the process ends. Nothing returns between the mediator's creation and
    // the Machine's, which takes both.
    let backend = unsafe { tee_backend(tee) };
    let mediator = Mediator::new(ClientId(1), policy, backend)?;
    // No wait (the default) is no TeeWait: calls are answered as they come.
    let wait = args.tee_wait();
    let tee_wait = (!wait.is_zero())
        .then(|| mediator.backend().progress())
        .flatten()
        .map(|progress| TeeWait { progress, wait });
    let machine = Arc::new(Machine {
        forwarder: Mutex::new(Forwarder {
            mediator,
            calls: CallCounts::default(),
        }),
        serial: Mutex::new(serial),
        mem,
        stray_mmio: Mutex::new(0),
        stopping: AtomicBool::new(false),
        tee_wait,
        hostile: args.hostile_host.as_ref().map(|f| {
            let names: Vec<&str> = f.0.iter().map(|f| f.name()).collect();
            eprintln!(
                "tosfwd-vmm: hostile-host: a TEST TOOL: this VMM lies to its guest, forging \
                 the answers of the calls its client marks: {}",
                names.join(", ")
            );
            Mutex::new(HostileHost {
                forger: Hostile::new(f.0.clone()),
                flip: None,
            })
        }),
    });

    install_kick_handler()?;
    let (tx, rx) = mpsc::channel();
    let mut ending = Ending::default();
    let mut threads = Vec::new();
    for (id, mut vcpu) in vcpus.into_iter().enumerate() {
        let immediate_exit = std::ptr::addr_of_mut!(vcpu.get_kvm_run().immediate_exit);
        let m = Arc::clone(&machine);
        let tx = tx.clone();
        let spawned = thread::Builder::new()
            .name(format!("vcpu{id}"))
            .spawn(move || {
                unblock_kick_signal();
                let end = panic::catch_unwind(AssertUnwindSafe(|| m.vcpu_loop(id, &mut vcpu)))
                    .unwrap_or(VcpuEnd::Failed(Error::VcpuPanic(id)));
                let _ = tx.send((id, end));
                vcpu
            });
        match spawned {
            Ok(handle) => threads.push(VcpuThread {
                handle,
                immediate_exit,
                reported: false,
            }),
            Err(err) => {
                ending.record(
                    id,
                    VcpuEnd::Failed(Error::Host {
                        what: "a vCPU thread",
                        err,
                    }),
                );
                break;
            }
        }
    }
    drop(tx);

    // The first vCPU thread to stop the guest or fail ends the run.
    while !ending.is_decided() {
        let Ok((id, end)) = rx.recv() else { break };
        if let Some(t) = threads.get_mut(id) {
            t.reported = true;
        }
        ending.record(id, end);
    }
    let wall = start.elapsed();

    // Every other vCPU thread is kicked out of KVM_RUN (again until it
    // answers: a kick may land just before a KVM_RUN it then misses)...
    machine.stopping.store(true, Ordering::SeqCst);
    let deadline = Instant::now() + KICK_TIMEOUT;
    loop {
        let mut pending = threads.iter().enumerate().filter(|(_, t)| !t.reported);
        let Some((first, _)) = pending.next() else {
            break;
        };
        if Instant::now() >= deadline {
            ending.record(
                first,
                VcpuEnd::Failed(Error::VcpuStuck {
                    vcpu: first,
                    secs: KICK_TIMEOUT.as_secs(),
                }),
            );
            break;
        }
        for t in threads.iter().filter(|t| !t.reported) {
            t.kick();
        }
        match rx.recv_timeout(KICK_RETRY) {
            Ok((id, end)) => {
                if let Some(t) = threads.get_mut(id) {
                    t.reported = true;
                }
                ending.record(id, end);
            }
            Err(mpsc::RecvTimeoutError::Timeout) => {}
            // Every thread has ended: the join below says how.
            Err(mpsc::RecvTimeoutError::Disconnected) => {
                for t in &mut threads {
                    t.reported = true;
                }
            }
        }
    }
    // ... and joined (a stuck one is left to end with the process).
    for (id, t) in threads.into_iter().enumerate() {
        if !t.reported {
            continue;
        }
        match t.handle.join() {
            Ok(vcpu) => drop(vcpu),
            Err(_) => {
                ending.record(id, VcpuEnd::Failed(Error::VcpuPanic(id)));
            }
        }
    }

    if let Some(mut serial) = try_lock(&machine.serial) {
        serial.writer_mut().drain();
    }
    if let Some(mut h) = machine.hostile.as_ref().and_then(try_lock) {
        h.stop_flip();
        eprintln!(
            "tosfwd-vmm: hostile-host: {} of {} forgeries made",
            h.forger.done(),
            h.forger.forgeries().len()
        );
    }
    // The TEE learns the VM is gone; the counts are final.
    let calls = match try_lock(&machine.forwarder) {
        Some(mut f) => {
            f.mediator.teardown();
            let mut calls = f.calls.clone();
            calls.costs = f.mediator.take_session_costs();
            calls
        }
        None => CallCounts::default(),
    };
    let end = match ending.into_outcome() {
        Some((vcpu, r)) => r.map(|stop| (stop, vcpu)),
        None => Err(Error::VcpusGone),
    };
    // The VM goes before the guest RAM it maps.
    drop(_gic);
    drop(vm);
    drop(machine);
    Ok(Report { end, wall, calls })
}
