// SPDX-License-Identifier: Apache-2.0 OR MIT
//! The interface between the mediator and a TEE.
//!
//! The mediator hands the backend validated, translated requests: a
//! [`StdCall`] whose memory parameters are [`MemRef`]s to guest pages
//! already checked to be guest RAM. A call either completes ([`Step::Done`],
//! results written into the `StdCall`) or parks its thread with a request
//! for the normal world ([`Step::Rpc`]); the guest's answer comes back as an
//! [`RpcReply`] to [`Backend::resume`]. Everything the guest sent or
//! returned has been copied once by the mediator: a backend never reads a
//! guest argument structure itself.

use std::sync::{Arc, Mutex};

use crate::cost::CallCost;
use crate::mem::GuestRam;
use crate::msg::{Dir, MsgArg};
use crate::policy::Uuid;
use crate::progress::Progress;
use crate::shm::{GuestBuffer, MemRef};

/// The TEE's name for a VM: Xen's domain id + 1, 0 being the hypervisor.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ClientId(pub u16);

/// A TEE thread of one VM, as the guest sees it in a3 of an RPC return.
pub type ThreadId = u32;

/// The Trusted OS revision reported by GET_OS_REVISION.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct OsRevision {
    /// Major.
    pub major: u32,
    /// Minor.
    pub minor: u32,
    /// Build id, 0 if unspecified.
    pub build_id: u32,
}

/// A parameter of a session or command, translated.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Param {
    /// Unused.
    None,
    /// Values; the backend updates them if the direction is an output.
    Value {
        /// Direction.
        dir: Dir,
        /// a.
        a: u64,
        /// b.
        b: u64,
        /// c.
        c: u64,
    },
    /// Memory: `mem` is `None` for a NULL reference (MEMREF_NULL). `size`
    /// is the size field: the backend sets it on output (a size larger
    /// than the buffer tells the client how much it needs).
    Memref {
        /// Direction.
        dir: Dir,
        /// The referenced guest memory, `None` for a NULL reference.
        mem: Option<MemRef>,
        /// The size field.
        size: u64,
    },
}

/// What a standard call asks.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Command {
    /// OPEN_SESSION, after the policy applied to the TA and the login.
    OpenSession {
        /// The trusted application.
        ta: Uuid,
        /// The client's UUID.
        client: Uuid,
        /// The client's login (OPTEE_MSG_LOGIN_*).
        login: u32,
    },
    /// INVOKE_COMMAND of `func` in `StdCall::session`.
    Invoke {
        /// The TA's function.
        func: u32,
    },
    /// CLOSE_SESSION of `StdCall::session`.
    CloseSession,
    /// CANCEL of the call with `StdCall::cancel_id` (and session).
    Cancel,
    /// REGISTER_SHM: the mediator has walked and checked the page list.
    RegisterShm {
        /// The guest's cookie for the buffer.
        cookie: u64,
        /// The buffer.
        buffer: Arc<GuestBuffer>,
    },
    /// UNREGISTER_SHM of a buffer the mediator knows to be registered.
    UnregisterShm {
        /// The guest's cookie.
        cookie: u64,
    },
}

/// A standard call: the shadow of the guest's `optee_msg_arg`, translated.
/// The backend writes `ret`, `ret_origin`, `session` (OPEN) and output
/// parameters; the mediator copies those, and only those, back.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StdCall {
    /// What to do.
    pub command: Command,
    /// Session id.
    pub session: u32,
    /// Cancellation id.
    pub cancel_id: u32,
    /// Parameters (for OPEN_SESSION, those after the two meta parameters).
    pub params: Vec<Param>,
    /// Result (TEEC_*).
    pub ret: u32,
    /// Origin of the result (TEEC_ORIGIN_*).
    pub ret_origin: u32,
    /// What the backend spent on the call: it adds its counts when it
    /// finishes the call (zero if it counts nothing).
    pub cost: CallCost,
}

impl StdCall {
    /// Sets the result.
    pub fn finish(&mut self, ret: u32, ret_origin: u32) {
        self.ret = ret;
        self.ret_origin = ret_origin;
    }
}

/// A request of the TEE to the normal world, made while a call is parked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RpcRequest {
    /// RPC_ALLOC: a buffer of `size` bytes (at most 4 KiB) for RPC arguments.
    Alloc {
        /// Size in bytes.
        size: u64,
    },
    /// RPC_FREE of an RPC argument buffer.
    Free {
        /// Its cookie.
        cookie: u64,
    },
    /// RPC_FOREIGN_INTR: let the guest take its interrupts, then resume.
    ForeignIntr,
    /// RPC_CMD: the mediator writes `arg` into the RPC argument buffer
    /// `cookie` and reads the answer back.
    Cmd {
        /// Cookie of an RPC argument buffer from an earlier `Alloc`.
        cookie: u64,
        /// The request (OPTEE_RPC_CMD_* in `header.cmd`).
        arg: MsgArg,
    },
}

/// The normal world's answer to an RPC parameter.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RpcOut {
    /// Nothing returned.
    None,
    /// Output values.
    Value {
        /// a.
        a: u64,
        /// b.
        b: u64,
        /// c.
        c: u64,
    },
    /// The size field of an output memory reference: how much the normal
    /// world wrote, or (larger than the buffer, with
    /// TEEC_ERROR_SHORT_BUFFER) how much it needs. As the guest wrote it:
    /// the backend bounds it by the buffer before it copies anything.
    MemrefSize(u64),
    /// A buffer the guest allocated (SHM_ALLOC): `mem` is `None` if the
    /// mediator refused it (bad page list, quota); the cookie is still the
    /// guest's, to free it.
    Memref {
        /// The guest's cookie for the buffer.
        cookie: u64,
        /// The size it reported.
        size: u64,
        /// The translated buffer.
        mem: Option<MemRef>,
    },
}

/// The answer to an RPC_CMD.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RpcCmdReply {
    /// Whether the request reached the guest and its answer was read back;
    /// if not, `ret` is TEEC_ERROR_COMMUNICATION, and the RPC argument
    /// buffer is unusable: the backend forgets it (sends no RPC_FREE) and
    /// the mediator no longer counts it against the VM's limit.
    pub delivered: bool,
    /// The guest's result (TEEC_*).
    pub ret: u32,
    /// One entry per parameter sent.
    pub params: Vec<RpcOut>,
}

/// The guest's answer to an [`RpcRequest`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RpcReply {
    /// The cookie of the allocated RPC argument buffer, `None` if the guest
    /// could not allocate one or the mediator refused it.
    Alloc(Option<u64>),
    /// The buffer was freed.
    Free,
    /// The guest took its interrupt.
    ForeignIntr,
    /// The command's answer.
    Cmd(RpcCmdReply),
}

/// What a call did when started or resumed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Step {
    /// Finished; results are in the `StdCall`.
    Done,
    /// Parked until the guest answers this request.
    Rpc(RpcRequest),
}

/// Result of DISABLE_SHM_CACHE.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CacheDisable {
    /// One cached RPC argument buffer given back: the guest frees it.
    Freed(u64),
    /// Cache empty (and disabled).
    Empty,
    /// Calls in progress; retry later.
    Busy,
}

/// Why a backend refused a VM.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum BackendError {
    /// The client id is already in use.
    #[error("TEE client {0:?} already exists")]
    ClientExists(ClientId),
    /// Any other reason.
    #[error("TEE refused client: {0}")]
    Refused(String),
}

/// A TEE behind the mediator. One backend may serve several VMs, told
/// apart by their [`ClientId`]; thread ids are per client.
pub trait Backend {
    /// Concurrent calls per client.
    fn thread_count(&self) -> u32;
    /// The revision GET_OS_REVISION reports.
    fn os_revision(&self) -> OsRevision;
    /// A VM appears (OPTEE_SMC_VM_CREATED).
    fn vm_created(&mut self, client: ClientId) -> Result<(), BackendError>;
    /// A VM is gone (OPTEE_SMC_VM_DESTROYED): forget all its state.
    fn vm_destroyed(&mut self, client: ClientId);
    /// ENABLE_SHM_CACHE: `false` if busy.
    fn enable_shm_cache(&mut self, client: ClientId) -> bool;
    /// DISABLE_SHM_CACHE.
    fn disable_shm_cache(&mut self, client: ClientId) -> CacheDisable;
    /// Starts a call on `thread` (free until now).
    fn start(
        &mut self,
        client: ClientId,
        thread: ThreadId,
        call: &mut StdCall,
        mem: &dyn GuestRam,
    ) -> Step;
    /// Resumes a parked call with the guest's answer.
    fn resume(
        &mut self,
        client: ClientId,
        thread: ThreadId,
        call: &mut StdCall,
        reply: RpcReply,
        mem: &dyn GuestRam,
    ) -> Step;
    /// A parked call will never be resumed (VM teardown).
    fn abandon(&mut self, client: ClientId, thread: ThreadId);
    /// What a vCPU may wait on, outside any lock, after a FOREIGN_INTR
    /// answer, for the backend's results to arrive: `None` (the default)
    /// for a backend whose calls only progress when the guest comes back.
    fn progress(&self) -> Option<Arc<Progress>> {
        None
    }
    /// Where `client`'s supplicant requests wait for its guest when the
    /// caller carries them, not the backend (a TEE service, which hands
    /// them to the VMM whose guest serves them): `None` (the default)
    /// when there is no such relay or the backend carries them itself.
    fn relay(&self, _client: ClientId) -> Option<Arc<crate::relay::Relay>> {
        None
    }
}

impl<B: Backend + ?Sized> Backend for Box<B> {
    fn thread_count(&self) -> u32 {
        (**self).thread_count()
    }
    fn os_revision(&self) -> OsRevision {
        (**self).os_revision()
    }
    fn vm_created(&mut self, client: ClientId) -> Result<(), BackendError> {
        (**self).vm_created(client)
    }
    fn vm_destroyed(&mut self, client: ClientId) {
        (**self).vm_destroyed(client)
    }
    fn enable_shm_cache(&mut self, client: ClientId) -> bool {
        (**self).enable_shm_cache(client)
    }
    fn disable_shm_cache(&mut self, client: ClientId) -> CacheDisable {
        (**self).disable_shm_cache(client)
    }
    fn start(
        &mut self,
        client: ClientId,
        thread: ThreadId,
        call: &mut StdCall,
        mem: &dyn GuestRam,
    ) -> Step {
        (**self).start(client, thread, call, mem)
    }
    fn resume(
        &mut self,
        client: ClientId,
        thread: ThreadId,
        call: &mut StdCall,
        reply: RpcReply,
        mem: &dyn GuestRam,
    ) -> Step {
        (**self).resume(client, thread, call, reply, mem)
    }
    fn abandon(&mut self, client: ClientId, thread: ThreadId) {
        (**self).abandon(client, thread)
    }
    fn progress(&self) -> Option<Arc<Progress>> {
        (**self).progress()
    }
    fn relay(&self, client: ClientId) -> Option<Arc<crate::relay::Relay>> {
        (**self).relay(client)
    }
}

/// The shared backend, its lock recovered if a holder panicked.
fn locked<B: ?Sized>(shared: &Mutex<B>) -> std::sync::MutexGuard<'_, B> {
    shared.lock().unwrap_or_else(|e| e.into_inner())
}

/// One backend shared by the mediators of several VMs. A poisoned lock is
/// recovered: the backend's state is per client and stays consistent
/// between calls.
impl<B: Backend + ?Sized> Backend for Arc<Mutex<B>> {
    fn thread_count(&self) -> u32 {
        locked(self).thread_count()
    }
    fn os_revision(&self) -> OsRevision {
        locked(self).os_revision()
    }
    fn vm_created(&mut self, client: ClientId) -> Result<(), BackendError> {
        locked(self).vm_created(client)
    }
    fn vm_destroyed(&mut self, client: ClientId) {
        locked(self).vm_destroyed(client)
    }
    fn enable_shm_cache(&mut self, client: ClientId) -> bool {
        locked(self).enable_shm_cache(client)
    }
    fn disable_shm_cache(&mut self, client: ClientId) -> CacheDisable {
        locked(self).disable_shm_cache(client)
    }
    fn start(
        &mut self,
        client: ClientId,
        thread: ThreadId,
        call: &mut StdCall,
        mem: &dyn GuestRam,
    ) -> Step {
        locked(self).start(client, thread, call, mem)
    }
    fn resume(
        &mut self,
        client: ClientId,
        thread: ThreadId,
        call: &mut StdCall,
        reply: RpcReply,
        mem: &dyn GuestRam,
    ) -> Step {
        locked(self).resume(client, thread, call, reply, mem)
    }
    fn abandon(&mut self, client: ClientId, thread: ThreadId) {
        locked(self).abandon(client, thread)
    }
    fn progress(&self) -> Option<Arc<Progress>> {
        locked(self).progress()
    }
    fn relay(&self, client: ClientId) -> Option<Arc<crate::relay::Relay>> {
        locked(self).relay(client)
    }
}
