// SPDX-License-Identifier: Apache-2.0 OR MIT
//! A VM's own supplicant: the requests OP-TEE makes of the normal world's
//! tee-supplicant for one VM partition of an NS-virtualization OP-TEE,
//! served by the VMM on the VM's own TEE context.
//!
//! When the VM's context (an open /dev/teeN) is an OP-TEE VM of its own,
//! the host kernel delivers that partition's supplicant requests to that
//! context instead of the host's tee-supplicant: the VMM receives them
//! with TEE_IOC_SUPPL_RECV and answers with TEE_IOC_SUPPL_SEND on the same
//! fd, the protocol tee-supplicant speaks on /dev/teepriv0 (the kernel's
//! drivers/tee/optee/supp.c, drivers/tee/tee_core.c).
//!
//! - [`SupplicantChannel`]: the three operations on the context
//!   (receive, answer, allocate shared memory); [`crate::DevTee`] on the
//!   real device, `Arc` of one too.
//! - [`SupplicantThread`]: a thread that serves a channel until stopped
//!   (see [`stop_signal`] for how it leaves a blocked receive).
//! - What is served: loading TAs from [`SupplicantConfig::ta_dir`]
//!   (OPTEE_RPC_CMD_LOAD_TA), the REE file system behind secure storage in
//!   [`SupplicantConfig::storage_dir`] (OPTEE_RPC_CMD_FS), and supplicant
//!   shared memory (OPTEE_RPC_CMD_SHM_ALLOC / SHM_FREE of type APPL).
//!   Anything else (RPMB, gprof, sockets, ftrace, plugins, unknown
//!   commands) is answered TEEC_ERROR_NOT_SUPPORTED.
//! - Or, with [`crate::partition::SupplicantMode::Guest`], nothing is
//!   served here: [`Forwarder`] relays every request to the guest's own
//!   tee-supplicant ([`crate::relay`]).
//!
//! Everything in a request comes from the secure world and is checked:
//! names are confined to the storage directory (never through a symbolic
//! link, see [`storage`]), what is stored to the VM's [`StorageQuota`],
//! memory references to the shared memory this supplicant allocated,
//! handles to those it gave out. A bad request gets an error result,
//! never a panic.

mod forward;
mod fs;
mod shm;
pub mod storage;
mod ta;
mod thread;

#[cfg(test)]
mod tests;

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use optee_mediator::msg::teec;
use tee_uapi::sys::{
    TEE_IOCTL_PARAM_ATTR_META, TEE_IOCTL_PARAM_ATTR_TYPE_MASK,
    TEE_IOCTL_PARAM_ATTR_TYPE_MEMREF_INOUT, TEE_IOCTL_PARAM_ATTR_TYPE_MEMREF_INPUT,
    TEE_IOCTL_PARAM_ATTR_TYPE_MEMREF_OUTPUT, TEE_IOCTL_PARAM_ATTR_TYPE_VALUE_INOUT,
    TEE_IOCTL_PARAM_ATTR_TYPE_VALUE_INPUT, TEE_IOCTL_PARAM_ATTR_TYPE_VALUE_OUTPUT,
};

use crate::device::{AllocatedShm, Shm, TeeParam};
use crate::error::HostTeeError;

pub use forward::Forwarder;
pub use storage::{StorageDir, StorageError, StorageQuota};
pub use thread::{stop_signal, SupplicantThread, RELAY_WORKERS, STOP_WAIT};

/// Where TAs are looked for unless configured otherwise: Debian's
/// (and tee-supplicant's default) /lib/optee_armtz.
pub const DEFAULT_TA_DIR: &str = "/lib/optee_armtz";

/// Parameter slots of one TEE_IOC_SUPPL_RECV: the meta parameter and room
/// for seven of the request's (OP-TEE's supplicant commands use at most
/// four; a request with more than the room makes the kernel fail the
/// receive, so the room is generous).
pub const RECV_PARAMS: usize = crate::relay::MAX_PARAMS + 1;

/// OPTEE_RPC_CMD_* of the supplicant (OP-TEE's optee_rpc_cmd.h,
/// tee-supplicant's optee_msg_supplicant.h).
pub mod cmd {
    /// OPTEE_RPC_CMD_LOAD_TA.
    pub const LOAD_TA: u32 = 0;
    /// OPTEE_RPC_CMD_RPMB (not served).
    pub const RPMB: u32 = 1;
    /// OPTEE_RPC_CMD_FS: the REE file system.
    pub const FS: u32 = 2;
    /// OPTEE_RPC_CMD_SHM_ALLOC.
    pub const SHM_ALLOC: u32 = 6;
    /// OPTEE_RPC_CMD_SHM_FREE.
    pub const SHM_FREE: u32 = 7;
    /// OPTEE_RPC_CMD_GPROF (not served).
    pub const GPROF: u32 = 9;
    /// OPTEE_RPC_CMD_SOCKET (not served).
    pub const SOCKET: u32 = 10;
    /// OPTEE_RPC_CMD_FTRACE (not served).
    pub const FTRACE: u32 = 11;
    /// OPTEE_RPC_CMD_SUPP_PLUGIN (not served).
    pub const PLUGIN: u32 = 12;
    /// OPTEE_RPC_SHM_TYPE_APPL: the only type the kernel hands to a supplicant.
    pub const SHM_TYPE_APPL: u64 = 0;
}

/// TEEC results the supplicant answers besides those of
/// [`optee_mediator::msg::teec`].
pub mod result {
    /// TEEC_ERROR_ACCESS_CONFLICT: a rename without overwrite onto an
    /// existing name.
    pub const ERROR_ACCESS_CONFLICT: u32 = 0xFFFF_0003;
    /// TEEC_ERROR_STORAGE_NO_SPACE (TEE_ERROR_STORAGE_NO_SPACE): what
    /// tee-supplicant answers a file operation that failed with ENOSPC
    /// (its errno_to_teec), and what the quota answers.
    pub const ERROR_STORAGE_NO_SPACE: u32 = 0xFFFF_3041;
}

/// What a VM's supplicant serves from where.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SupplicantConfig {
    /// TA binaries, `<uuid>.ta` (shared, read-only: they are signed code).
    pub ta_dir: PathBuf,
    /// The VM's secure storage (its REE file system), created (0700) if
    /// missing. One directory per VM, like its disk image; refused if it
    /// is a symbolic link, another user's, or writable by its group or
    /// others ([`StorageDir::open`]).
    pub storage_dir: PathBuf,
    /// How much the VM may keep there.
    pub quota: StorageQuota,
}

impl SupplicantConfig {
    /// TAs from [`DEFAULT_TA_DIR`], secure storage in `storage_dir`, the
    /// default quota.
    pub fn new(storage_dir: impl Into<PathBuf>) -> Self {
        SupplicantConfig {
            ta_dir: DEFAULT_TA_DIR.into(),
            storage_dir: storage_dir.into(),
            quota: StorageQuota::default(),
        }
    }
}

/// Why a supplicant could not start, or why its thread ended.
#[derive(Debug, thiserror::Error)]
pub enum SupplicantError {
    /// The storage directory is refused, or could not be made or read.
    #[error("{0}")]
    Storage(#[from] StorageError),
    /// The handler of [`stop_signal`] could not be installed.
    #[error("cannot install the handler of the supplicant's stop signal: {0}")]
    Signal(std::io::Error),
    /// The thread could not be started.
    #[error("cannot start the supplicant thread: {0}")]
    Spawn(std::io::Error),
    /// Stopping: the thread was still in an operation (a storage call
    /// that blocks) after [`STOP_WAIT`]; it was left to end on its own
    /// (it ends when that call returns).
    #[error(
        "the supplicant thread is still busy {}s after it was asked to stop (a storage \
         operation blocks): left to end on its own",
        .0.as_secs_f32()
    )]
    Stuck(Duration),
    /// TEE_IOC_SUPPL_RECV failed (other than interrupted): the thread ended.
    #[error("the supplicant stopped: {0}")]
    Recv(HostTeeError),
    /// The thread panicked.
    #[error("the supplicant thread panicked")]
    Panicked,
}

/// The VM's TEE context as its supplicant uses it: one small method per
/// ioctl. Errors are [`HostTeeError::Ioctl`] named `SUPPL_RECV`,
/// `SUPPL_SEND` or `SHM_ALLOC`.
pub trait SupplicantChannel: Send + 'static {
    /// Shared memory the driver allocates for the supplicant.
    type Allocated: AllocatedShm;

    /// TEE_IOC_SUPPL_RECV: waits for the next request. `params` go in as
    /// the caller prepared them (the first one TEE_IOCTL_PARAM_ATTR_META,
    /// the others unused) and come back as the request's, after the
    /// kernel's meta parameter. Returns the function (OPTEE_RPC_CMD_*) and
    /// how many of `params` are used. The kernel waits interruptibly: a
    /// signal makes it fail with EINTR.
    fn supp_recv(&self, params: &mut [TeeParam; RECV_PARAMS])
        -> Result<(u32, usize), HostTeeError>;

    /// TEE_IOC_SUPPL_SEND: answers the request the meta parameter (first)
    /// names with the result `ret` and its parameters; requests received
    /// with a meta parameter may be answered in any order, from any
    /// thread.
    fn supp_send(&self, ret: u32, params: &[TeeParam]) -> Result<(), HostTeeError>;

    /// TEE_IOC_SHM_ALLOC of `size` bytes on this context, mapped here.
    fn supp_alloc(&self, size: usize) -> Result<Self::Allocated, HostTeeError>;
}

impl<C: SupplicantChannel + Sync> SupplicantChannel for Arc<C> {
    type Allocated = C::Allocated;

    fn supp_recv(
        &self,
        params: &mut [TeeParam; RECV_PARAMS],
    ) -> Result<(u32, usize), HostTeeError> {
        (**self).supp_recv(params)
    }

    fn supp_send(&self, ret: u32, params: &[TeeParam]) -> Result<(), HostTeeError> {
        (**self).supp_send(ret, params)
    }

    fn supp_alloc(&self, size: usize) -> Result<C::Allocated, HostTeeError> {
        (**self).supp_alloc(size)
    }
}

/// A received request: the function and the parameters as received (the
/// meta parameter first).
#[derive(Debug)]
struct Request {
    func: u32,
    params: [TeeParam; RECV_PARAMS],
    used: usize,
}

/// The supplicant's state: the shared memory it allocated, the files and
/// directories the secure world opened (closed when it is dropped).
#[derive(Debug)]
pub struct Supplicant<C: SupplicantChannel> {
    channel: C,
    ta_dir: PathBuf,
    fs: fs::ReeFs,
    shm: shm::ShmTable<C::Allocated>,
}

impl<C: SupplicantChannel> Supplicant<C> {
    /// A supplicant on `channel`; opens the storage directory (made, 0700
    /// with its missing parents, if it does not exist; refused if it is a
    /// link, another user's, or writable by others) and counts what it
    /// holds against the quota.
    pub fn new(channel: C, config: SupplicantConfig) -> Result<Self, SupplicantError> {
        let storage = StorageDir::open(&config.storage_dir)?;
        let fs = fs::ReeFs::new(storage, config.quota).map_err(|source| StorageError::Io {
            path: config.storage_dir.clone(),
            source,
        })?;
        if !config.ta_dir.is_dir() {
            log::warn!(
                "supplicant: the TA directory {} is missing: every TA load will fail",
                config.ta_dir.display()
            );
        }
        Ok(Supplicant {
            channel,
            ta_dir: config.ta_dir,
            fs,
            shm: shm::ShmTable::default(),
        })
    }

    /// The channel.
    pub fn channel(&self) -> &C {
        &self.channel
    }

    /// Receives one request, serves it and answers it.
    pub fn serve_one(&mut self) -> Result<(), HostTeeError> {
        let req = self.receive()?;
        self.answer(req)
    }

    /// Waits for the next request.
    fn receive(&self) -> Result<Request, HostTeeError> {
        receive(&self.channel)
    }

    /// Serves `req` and sends the answer (TEE_IOC_SUPPL_SEND).
    fn answer(&mut self, mut req: Request) -> Result<(), HostTeeError> {
        let params = &mut req.params[..req.used];
        let ret = match own_params(params) {
            Some(own) => self.handle(req.func, own),
            None => teec::ERROR_BAD_PARAMETERS,
        };
        self.channel.supp_send(ret, params)
    }

    /// Serves request `func` with `params` (outputs updated in place);
    /// returns its TEEC result.
    fn handle(&mut self, func: u32, params: &mut [TeeParam]) -> u32 {
        match func {
            cmd::LOAD_TA => ta::load(&self.ta_dir, &mut self.shm, params),
            cmd::FS => self.fs.process(&mut self.shm, params),
            cmd::SHM_ALLOC => self.shm_alloc(params),
            cmd::SHM_FREE => self.shm_free(params),
            other => {
                log::debug!("supplicant: command {other} not supported");
                teec::ERROR_NOT_SUPPORTED
            }
        }
    }

    /// OPTEE_RPC_CMD_SHM_ALLOC: value a = type (APPL), b = size; the id of
    /// the allocation goes back in c (where the kernel's
    /// optee_rpc_cmd_alloc_suppl looks for it).
    fn shm_alloc(&mut self, params: &mut [TeeParam]) -> u32 {
        let p = match appl_value(params) {
            Ok(p) => p,
            Err(ret) => return ret,
        };
        let Ok(size) = usize::try_from(p.b) else {
            return teec::ERROR_OUT_OF_MEMORY;
        };
        match self.channel.supp_alloc(size) {
            Ok(shm) => {
                p.c = shm.id() as u64;
                self.shm.insert(shm);
                teec::SUCCESS
            }
            Err(e) => {
                log::warn!("supplicant: allocating {size} bytes of shared memory: {e}");
                teec::ERROR_OUT_OF_MEMORY
            }
        }
    }

    /// OPTEE_RPC_CMD_SHM_FREE: value a = type (APPL), b = the id.
    fn shm_free(&mut self, params: &mut [TeeParam]) -> u32 {
        let p = match appl_value(params) {
            Ok(p) => p,
            Err(ret) => return ret,
        };
        match i32::try_from(p.b).ok().and_then(|id| self.shm.remove(id)) {
            Some(_) => teec::SUCCESS,
            None => teec::ERROR_BAD_PARAMETERS,
        }
    }
}

/// Waits for the next request on `channel` (TEE_IOC_SUPPL_RECV with the
/// meta parameter, as tee-supplicant asks).
fn receive<C: SupplicantChannel>(channel: &C) -> Result<Request, HostTeeError> {
    let mut params = [TeeParam::default(); RECV_PARAMS];
    params[0].attr = TEE_IOCTL_PARAM_ATTR_META.into();
    let (func, used) = channel.supp_recv(&mut params)?;
    Ok(Request {
        func,
        params,
        used: used.min(RECV_PARAMS),
    })
}

/// The request's own parameters: after the meta parameters (the
/// request's id) that lead; `None` if a meta parameter follows among
/// them (a protocol error).
fn own_params(params: &mut [TeeParam]) -> Option<&mut [TeeParam]> {
    let is_meta = |p: &TeeParam| p.attr & u64::from(TEE_IOCTL_PARAM_ATTR_META) != 0;
    let meta = params.iter().take_while(|p| is_meta(p)).count();
    let (_, own) = params.split_at_mut(meta);
    if own.iter().any(is_meta) {
        log::warn!("supplicant: a request with a meta parameter after its own");
        return None;
    }
    Some(own)
}

/// The one parameter of SHM_ALLOC and SHM_FREE: a value whose a is the
/// memory's type, APPL (the only one the kernel hands a supplicant);
/// BAD_PARAMETERS otherwise.
fn appl_value(params: &mut [TeeParam]) -> Result<&mut TeeParam, u32> {
    match params {
        [p] if is_value(p) && p.a == cmd::SHM_TYPE_APPL => Ok(p),
        _ => Err(teec::ERROR_BAD_PARAMETERS),
    }
}

/// A parameter's type (TEE_IOCTL_PARAM_ATTR_TYPE_*).
fn param_type(p: &TeeParam) -> u32 {
    (p.attr & u64::from(TEE_IOCTL_PARAM_ATTR_TYPE_MASK)) as u32
}

/// Whether `p` is a value parameter (any direction).
fn is_value(p: &TeeParam) -> bool {
    matches!(
        param_type(p),
        TEE_IOCTL_PARAM_ATTR_TYPE_VALUE_INPUT
            | TEE_IOCTL_PARAM_ATTR_TYPE_VALUE_OUTPUT
            | TEE_IOCTL_PARAM_ATTR_TYPE_VALUE_INOUT
    )
}

/// Whether `p` is a memory reference (any direction).
fn is_memref(p: &TeeParam) -> bool {
    matches!(
        param_type(p),
        TEE_IOCTL_PARAM_ATTR_TYPE_MEMREF_INPUT
            | TEE_IOCTL_PARAM_ATTR_TYPE_MEMREF_OUTPUT
            | TEE_IOCTL_PARAM_ATTR_TYPE_MEMREF_INOUT
    )
}

/// Whether `params` are exactly of `types`, in order.
fn has_types(params: &[TeeParam], types: &[u32]) -> bool {
    params.len() == types.len() && params.iter().zip(types).all(|(p, &t)| param_type(p) == t)
}
