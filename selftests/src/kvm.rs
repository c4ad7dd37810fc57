// SPDX-License-Identifier: Apache-2.0 OR MIT
//! KVM plumbing shared by the aarch64 tests: a VM with one memslot holding
//! guest code, vCPUs whose core registers are accessed by name, and the exits
//! the tests care about.

use std::cell::Cell;
use std::ptr::NonNull;

use kvm_bindings::{
    kvm_device_attr, kvm_userspace_memory_region, kvm_vcpu_init, KVM_ARM_VCPU_EL1_32BIT,
    KVM_ARM_VCPU_PSCI_0_2, KVM_SYSTEM_EVENT_SHUTDOWN,
};
use kvm_ioctls::{Cap, Kvm, VcpuExit, VcpuFd, VmFd};
use smccc::kvm::{FilterAction, KvmSmcccFilter, KVM_HYPERCALL_EXIT_SMC, KVM_VM_TYPE_ARM_PROTECTED};
use smccc::{Conduit, FunctionId, FunctionRange};

/// Guest physical address of the memslot holding the guest code.
pub const GUEST_CODE_IPA: u64 = 0x4000_0000;
/// Size of that memslot.
pub const GUEST_CODE_SIZE: usize = 0x1_0000;
/// Guest physical address of the ucall window: no memslot, so stores exit.
pub const UCALL_IPA: u64 = 0x1000_0000;

/// Why a test could not set up or drive its VM.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// /dev/kvm is absent (no KVM in this kernel, or not started at EL2)
    #[error("/dev/kvm is absent (kernel without KVM, or not booted at EL2)")]
    NoDevKvm,
    /// Opening /dev/kvm failed for another reason.
    #[error("cannot open /dev/kvm: {0}")]
    OpenKvm(kvm_ioctls::Error),
    /// KVM_CREATE_VM failed.
    #[error("KVM_CREATE_VM (type {vm_type:#x}) failed: {err}")]
    CreateVm {
        /// The machine type asked for.
        vm_type: u64,
        /// The ioctl's error.
        err: kvm_ioctls::Error,
    },
    /// The guest memory mapping failed.
    #[error("mmap of {0} bytes of guest memory failed: {1}")]
    Mmap(usize, std::io::Error),
    /// KVM_SET_USER_MEMORY_REGION failed.
    #[error("KVM_SET_USER_MEMORY_REGION failed: {0}")]
    SetMemoryRegion(kvm_ioctls::Error),
    /// Guest code larger than its memslot.
    #[error("guest code of {0} bytes does not fit the {GUEST_CODE_SIZE}-byte memslot")]
    CodeTooLarge(usize),
    /// KVM_CREATE_VCPU failed.
    #[error("KVM_CREATE_VCPU {0} failed: {1}")]
    CreateVcpu(u64, kvm_ioctls::Error),
    /// KVM_ARM_PREFERRED_TARGET or KVM_ARM_VCPU_INIT failed.
    #[error("vCPU init failed: {0}")]
    VcpuInit(kvm_ioctls::Error),
    /// KVM_GET_ONE_REG failed.
    #[error("KVM_GET_ONE_REG {0} failed: {1}")]
    GetReg(Reg, kvm_ioctls::Error),
    /// KVM_SET_ONE_REG failed.
    #[error("KVM_SET_ONE_REG {0} failed: {1}")]
    SetReg(Reg, kvm_ioctls::Error),
    /// KVM_RUN failed.
    #[error("KVM_RUN failed: {0}")]
    Run(kvm_ioctls::Error),
    /// KVM_SET_DEVICE_ATTR(KVM_ARM_VM_SMCCC_FILTER) failed.
    #[error("installing SMCCC filter {base:#x}+{count:#x} ({action:?}) failed: {err}")]
    SetFilter {
        /// First id of the range.
        base: u32,
        /// Number of ids.
        count: u32,
        /// Action asked for.
        action: FilterAction,
        /// The ioctl's error.
        err: kvm_ioctls::Error,
    },
    /// The guest stopped in a way the test did not expect.
    #[error("unexpected exit: {0}")]
    UnexpectedExit(String),
}

/// Result of the harness.
pub type Result<T> = std::result::Result<T, Error>;

/// Opens /dev/kvm, telling absence (a reason to skip) from other failures.
pub fn open_kvm() -> Result<Kvm> {
    Kvm::new().map_err(|e| {
        if e.errno() == libc::ENOENT {
            Error::NoDevKvm
        } else {
            Error::OpenKvm(e)
        }
    })
}

/// Creates an ordinary VM with the default IPA size.
pub fn create_vm(kvm: &Kvm) -> Result<VmFd> {
    kvm.create_vm()
        .map_err(|err| Error::CreateVm { vm_type: 0, err })
}

/// The attribute that installs an SMCCC filter range (the project's one
/// definition, in smccc).
pub use smccc::kvm::filter_attr as smccc_filter_attr;

/// The SMCCC filter group's attribute number `attr` (for probing attributes
/// KVM does not have).
pub fn smccc_ctrl_attr(attr: u64) -> kvm_device_attr {
    kvm_device_attr {
        attr,
        ..smccc_filter_attr(None)
    }
}

/// A named core register of an arm64 vCPU (the project's one definition).
pub use smccc::kvm::CoreReg as Reg;

/// Guest memory: an anonymous mapping of `GUEST_CODE_SIZE` bytes.
struct GuestMem {
    ptr: NonNull<u8>,
    len: usize,
}

impl GuestMem {
    fn new(len: usize) -> Result<Self> {
        // SAFETY: an anonymous private mapping with no address hint; the
        // result is checked before use.
        let p = unsafe {
            libc::mmap(
                std::ptr::null_mut(),
                len,
                libc::PROT_READ | libc::PROT_WRITE,
                libc::MAP_PRIVATE | libc::MAP_ANONYMOUS | libc::MAP_NORESERVE,
                -1,
                0,
            )
        };
        if p == libc::MAP_FAILED {
            return Err(Error::Mmap(len, std::io::Error::last_os_error()));
        }
        let ptr = NonNull::new(p.cast::<u8>())
            .ok_or_else(|| Error::Mmap(len, std::io::Error::other("null mapping")))?;
        Ok(GuestMem { ptr, len })
    }
}

impl Drop for GuestMem {
    fn drop(&mut self) {
        // SAFETY: ptr/len are exactly the mapping made in new(); the VM fd
        // that referenced it is dropped before (field order in TestVm).
        unsafe { libc::munmap(self.ptr.as_ptr().cast(), self.len) };
    }
}

/// Which kind of VM to create.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum VmKind {
    /// An ordinary VM.
    Normal,
    /// A protected VM (pKVM, `KVM_VM_TYPE_ARM_PROTECTED`).
    Protected,
}

/// A VM with guest code loaded at [`GUEST_CODE_IPA`].
pub struct TestVm {
    /// The VM fd (dropped before the memory it maps).
    pub vm: VmFd,
    _mem: GuestMem,
    _kvm: Kvm,
}

impl TestVm {
    /// Creates a VM of `kind` with `code` at [`GUEST_CODE_IPA`].
    pub fn new(kind: VmKind, code: &[u8]) -> Result<Self> {
        let kvm = open_kvm()?;
        let vm_type = match kind {
            VmKind::Normal => 0,
            VmKind::Protected => KVM_VM_TYPE_ARM_PROTECTED,
        };
        let vm = kvm
            .create_vm_with_type(vm_type)
            .map_err(|err| Error::CreateVm { vm_type, err })?;
        if code.len() > GUEST_CODE_SIZE {
            return Err(Error::CodeTooLarge(code.len()));
        }
        let mem = GuestMem::new(GUEST_CODE_SIZE)?;
        // SAFETY: the mapping is GUEST_CODE_SIZE bytes long, code.len() fits
        // (checked above), and nothing else references it yet.
        unsafe { std::ptr::copy_nonoverlapping(code.as_ptr(), mem.ptr.as_ptr(), code.len()) };
        let region = kvm_userspace_memory_region {
            slot: 0,
            flags: 0,
            guest_phys_addr: GUEST_CODE_IPA,
            memory_size: GUEST_CODE_SIZE as u64,
            userspace_addr: mem.ptr.as_ptr() as u64,
        };
        // SAFETY: the region describes a live mapping owned by the returned
        // TestVm, which drops the VM fd before unmapping it.
        unsafe { vm.set_user_memory_region(region) }.map_err(Error::SetMemoryRegion)?;
        Ok(TestVm {
            vm,
            _mem: mem,
            _kvm: kvm,
        })
    }

    /// Installs one SMCCC filter range.
    pub fn set_filter(&self, range: FunctionRange, action: FilterAction) -> Result<()> {
        self.set_filter_raw(&KvmSmcccFilter::new(range, action))
            .map_err(|err| Error::SetFilter {
                base: range.base,
                count: range.count,
                action,
                err,
            })
    }

    /// Installs a filter entry as given, fields unchecked (for the filter's
    /// own error paths).
    pub fn set_filter_raw(
        &self,
        filter: &KvmSmcccFilter,
    ) -> std::result::Result<(), kvm_ioctls::Error> {
        self.vm.set_device_attr(&smccc_filter_attr(Some(filter)))
    }

    /// Forwards every range of `ranges` to userspace.
    pub fn forward(&self, ranges: &[FunctionRange]) -> Result<()> {
        ranges
            .iter()
            .try_for_each(|r| self.set_filter(*r, FilterAction::FwdToUser))
    }

    /// Creates vCPU `id`, initialised with PSCI 0.2, PC at `entry` (an offset
    /// into the guest code) and x27 holding the ucall window's address.
    pub fn vcpu(&self, id: u64, entry: usize) -> Result<TestVcpu> {
        let vcpu = self.vcpu_with(id, entry, 0)?;
        vcpu.set(Reg::X(UCALL_REG), UCALL_IPA)?;
        Ok(vcpu)
    }

    /// Creates vCPU `id` whose EL1 runs in AArch32
    /// (`KVM_ARM_VCPU_EL1_32BIT`: it starts in SVC mode, A32), initialised
    /// with PSCI 0.2, PC at `entry` (an offset into the guest code). Needs
    /// [`has_aarch32_el1`].
    pub fn vcpu_aarch32(&self, id: u64, entry: usize) -> Result<TestVcpu> {
        self.vcpu_with(id, entry, 1 << KVM_ARM_VCPU_EL1_32BIT)
    }

    fn vcpu_with(&self, id: u64, entry: usize, features: u32) -> Result<TestVcpu> {
        let fd = self
            .vm
            .create_vcpu(id)
            .map_err(|e| Error::CreateVcpu(id, e))?;
        let mut init = kvm_vcpu_init::default();
        self.vm
            .get_preferred_target(&mut init)
            .map_err(Error::VcpuInit)?;
        init.features[0] |= 1 << KVM_ARM_VCPU_PSCI_0_2 | features;
        fd.vcpu_init(&init).map_err(Error::VcpuInit)?;
        let vcpu = TestVcpu {
            fd,
            one_reg_ioctls: Cell::new(0),
        };
        vcpu.set(Reg::Pc, GUEST_CODE_IPA + entry as u64)?;
        Ok(vcpu)
    }
}

/// Whether KVM can run a vCPU's EL1 in AArch32 (`KVM_CAP_ARM_EL1_32BIT`:
/// the CPU implements AArch32 at EL1, which most recent arm64 cores don't).
pub fn has_aarch32_el1() -> Result<bool> {
    Ok(open_kvm()?.check_extension(Cap::ArmEl132bit))
}

/// The register in which guest code finds the ucall window.
pub const UCALL_REG: u8 = 27;

/// A forwarded call as KVM_EXIT_HYPERCALL reports it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Call {
    /// `hypercall.nr`: the function id, zero-extended.
    pub nr: u64,
    /// The conduit, from `hypercall.flags`.
    pub conduit: Conduit,
    /// `hypercall.flags` as KVM set them.
    pub flags: u64,
}

impl Call {
    /// The function id.
    pub fn id(&self) -> FunctionId {
        FunctionId(self.nr as u32)
    }
}

/// How a KVM_RUN ended, as far as the tests care.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Exit {
    /// KVM_EXIT_HYPERCALL: a forwarded SMCCC call.
    Hypercall(Call),
    /// A store to the ucall window at this offset.
    Ucall(u64),
    /// PSCI SYSTEM_OFF.
    SystemOff,
}

/// A vCPU with named register access and a count of ONE_REG ioctls.
pub struct TestVcpu {
    /// The vCPU fd.
    pub fd: VcpuFd,
    one_reg_ioctls: Cell<u64>,
}

impl TestVcpu {
    /// Reads a core register.
    pub fn get(&self, reg: Reg) -> Result<u64> {
        let mut buf = [0u8; 8];
        self.one_reg_ioctls.set(self.one_reg_ioctls.get() + 1);
        self.fd
            .get_one_reg(reg.id(), &mut buf)
            .map_err(|e| Error::GetReg(reg, e))?;
        Ok(u64::from_le_bytes(buf))
    }

    /// Writes a core register.
    pub fn set(&self, reg: Reg, value: u64) -> Result<()> {
        self.one_reg_ioctls.set(self.one_reg_ioctls.get() + 1);
        self.fd
            .set_one_reg(reg.id(), &value.to_le_bytes())
            .map(|_| ())
            .map_err(|e| Error::SetReg(reg, e))
    }

    /// Reads x0..x(n-1).
    pub fn get_x(&self, n: u8) -> Result<Vec<u64>> {
        (0..n).map(|i| self.get(Reg::X(i))).collect()
    }

    /// Writes `values` to x0, x1, ...
    pub fn set_x(&self, values: &[u64]) -> Result<()> {
        values
            .iter()
            .zip(0u8..)
            .try_for_each(|(v, i)| self.set(Reg::X(i), *v))
    }

    /// How many KVM_{GET,SET}_ONE_REG ioctls this vCPU has issued.
    pub fn one_reg_ioctls(&self) -> u64 {
        self.one_reg_ioctls.get()
    }

    /// Runs the vCPU until an exit the tests care about.
    pub fn run(&mut self) -> Result<Exit> {
        loop {
            let exit = match self.fd.run().map_err(Error::Run)? {
                VcpuExit::Hypercall(h) => Exit::Hypercall(Call {
                    nr: h.nr,
                    conduit: Conduit::Smc,
                    flags: 0,
                }),
                VcpuExit::MmioWrite(addr, _) if (UCALL_IPA..UCALL_IPA + 0x1000).contains(&addr) => {
                    Exit::Ucall(addr - UCALL_IPA)
                }
                VcpuExit::SystemEvent(t, _) if t == KVM_SYSTEM_EVENT_SHUTDOWN => Exit::SystemOff,
                VcpuExit::Intr => continue,
                other => return Err(Error::UnexpectedExit(format!("{other:?}"))),
            };
            if let Exit::Hypercall(Call { nr, .. }) = exit {
                let run = self.fd.get_kvm_run();
                // SAFETY: the exit reason was KVM_EXIT_HYPERCALL, so the
                // hypercall member of the union is the one KVM filled in;
                // `flags` is a plain u64 of its inner union.
                let flags = unsafe { run.__bindgen_anon_1.hypercall.__bindgen_anon_1.flags };
                let conduit = if flags & KVM_HYPERCALL_EXIT_SMC != 0 {
                    Conduit::Smc
                } else {
                    Conduit::Hvc
                };
                return Ok(Exit::Hypercall(Call { nr, conduit, flags }));
            }
            return Ok(exit);
        }
    }

    /// Runs until the next exit, which must be `want`.
    pub fn run_expect(&mut self, want: Exit) -> Result<()> {
        let got = self.run()?;
        if got == want {
            Ok(())
        } else {
            Err(Error::UnexpectedExit(format!("{got:?}, want {want:?}")))
        }
    }

    /// Runs until the next exit, which must be a forwarded call.
    pub fn run_to_hypercall(&mut self) -> Result<Call> {
        match self.run()? {
            Exit::Hypercall(call) => Ok(call),
            other => Err(Error::UnexpectedExit(format!(
                "{other:?}, want a forwarded call"
            ))),
        }
    }
}

/// How one call of the guest's call loop went.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CallResult {
    /// The exit KVM gave userspace for the call, if it forwarded it.
    pub forwarded: Option<Call>,
    /// x0..x17 as the guest saw them after the call.
    pub regs: Vec<u64>,
    /// Where the guest resumed after the call instruction.
    pub resume_pc: u64,
}

/// Number of argument/result registers the call loop exchanges (x0..x17).
pub const CALL_REGS: u8 = 18;

impl TestVcpu {
    /// Runs the call loop up to its first "ready" ucall.
    pub fn wait_ready(&mut self) -> Result<()> {
        self.run_expect(Exit::Ucall(crate::guest::UCALL_READY))
    }

    /// Makes the guest (waiting in the call loop) issue one call with x0..x17
    /// = `args` through `cmd`. If KVM forwards it, `handler` answers it (it
    /// runs with the vCPU stopped at the exit). Returns when the guest is
    /// ready for the next call.
    pub fn call(
        &mut self,
        args: &[u64],
        cmd: crate::guest::Command,
        handler: impl FnOnce(&TestVcpu, Call) -> Result<()>,
    ) -> Result<CallResult> {
        use crate::guest::{COMMAND_REG, RESUME_REG, UCALL_DONE};
        self.set_x(args)?;
        self.set(Reg::X(COMMAND_REG), cmd as u64)?;
        self.set(Reg::X(RESUME_REG), 0)?;
        let forwarded = match self.run()? {
            Exit::Hypercall(call) => {
                handler(self, call)?;
                self.run_expect(Exit::Ucall(UCALL_DONE))?;
                Some(call)
            }
            Exit::Ucall(UCALL_DONE) => None,
            other => {
                return Err(Error::UnexpectedExit(format!(
                    "{other:?}, want a forwarded call or the guest's result"
                )))
            }
        };
        let regs = self.get_x(CALL_REGS)?;
        let resume_pc = self.get(Reg::X(RESUME_REG))?;
        self.wait_ready()?;
        Ok(CallResult {
            forwarded,
            regs,
            resume_pc,
        })
    }
}
