// SPDX-License-Identifier: Apache-2.0 OR MIT
//! The per-VM mediator: answers every call of OP-TEE's SMC ABI, shadows and
//! validates standard call arguments, translates guest memory, enforces the
//! VM's policy and quotas, and drives the backend through its RPCs.

use std::collections::{HashMap, HashSet};
use std::fmt;
use std::sync::Arc;
use std::time::Instant;

use log::{debug, warn};
use smccc::{Conduit, FunctionId};

use crate::abi::{self, caps, reg_pair, ret, split_pair, Function};
use crate::backend::{Backend, BackendError, CacheDisable, ClientId, Command, StdCall, ThreadId};
use crate::cost::{CostReport, Ledger};
use crate::mem::GuestRam;
use crate::msg::{cmd, off, teec, MsgArg, MsgError, MsgParam};
use crate::pagelist::PageListError;
use crate::policy::{Policy, Uuid};
use crate::ratelimit::{Clock, LogLimiter, SystemClock, Verdict};
use crate::shm::GuestBuffer;

mod rpc;
mod translate;

/// A forwarded call: the function id (w0), the conduit, and x1..x7. Only
/// the registers [`Function::args_used`] names are read; the others may be
/// left zero.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SmcCall {
    /// Function id.
    pub function: FunctionId,
    /// `smc` or `hvc`.
    pub conduit: Conduit,
    /// x1..x7.
    pub args: [u64; 7],
}

impl SmcCall {
    /// A call of `function` by SMC with these x1.. arguments.
    pub fn new(function: FunctionId, args: &[u64]) -> Self {
        let mut a = [0u64; 7];
        for (d, s) in a.iter_mut().zip(args) {
            *d = *s;
        }
        SmcCall {
            function,
            conduit: Conduit::Smc,
            args: a,
        }
    }

    /// Argument register `n` (1..=7) as the 32-bit value an SMC32 call passes.
    pub fn w(&self, n: usize) -> u32 {
        self.args.get(n.wrapping_sub(1)).copied().unwrap_or(0) as u32
    }
}

/// The result registers: x0..x(len-1), each a zero-extended 32-bit value
/// (but x0 of [`SmcResult::unknown_function`], -1 sign-extended). x0 is
/// always written; the others only when the call defines them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SmcResult {
    regs: [u64; 4],
    len: usize,
}

impl SmcResult {
    /// A result with these 32-bit values in w0, w1, ... (one to four).
    pub fn new(values: &[u32]) -> Self {
        let mut regs = [0u64; 4];
        let mut len = 0;
        for (d, s) in regs.iter_mut().zip(values) {
            *d = u64::from(*s);
            len += 1;
        }
        SmcResult {
            regs,
            len: len.max(1),
        }
    }

    /// Only x0.
    pub fn code(a0: u32) -> Self {
        Self::new(&[a0])
    }

    /// The answer to an unknown function id: x0 = -1 (SMCCC's
    /// NOT_SUPPORTED, OP-TEE's UNKNOWN_FUNCTION) sign-extended to 64 bits,
    /// as KVM, Xen and TF-A answer, whether the id is SMC32 (whose caller
    /// reads w0: 32 ones) or SMC64 (whose caller reads x0: -1).
    pub fn unknown_function() -> Self {
        SmcResult {
            regs: [u64::MAX, 0, 0, 0],
            len: 1,
        }
    }

    /// The registers to write, x0 first.
    pub fn regs(&self) -> &[u64] {
        self.regs.get(..self.len).unwrap_or(&self.regs)
    }

    /// x0.
    pub fn a0(&self) -> u64 {
        self.regs[0]
    }
}

/// Why a VM's mediator could not be created.
#[derive(Debug, thiserror::Error)]
pub enum MediatorError {
    /// Client id 0 is the hypervisor's.
    #[error("client id 0 is reserved for the hypervisor")]
    ReservedClientId,
    /// A policy that allows no standard call at all.
    #[error(
        "the VM's quota of concurrent calls is 0 (Quotas::max_calls): it could not call OP-TEE \
         at all"
    )]
    NoCalls,
    /// The backend refused the VM.
    #[error(transparent)]
    Backend(#[from] BackendError),
}

/// Why a standard call was refused before it reached the TEE; logged, and
/// reported to the guest in `optee_msg_arg.ret` with origin COMMS.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Refusal {
    /// num_params too large.
    #[error("{0}")]
    Msg(MsgError),
    /// An attribute with reserved bits, a reserved type, META or NONCONTIG
    /// where they do not belong.
    #[error("parameter {index} has invalid attribute {attr:#x}")]
    BadAttr {
        /// Parameter index.
        index: usize,
        /// Attribute.
        attr: u64,
    },
    /// Contiguous (physical) temporary memory from a guest.
    #[error("parameter {index} is contiguous temporary memory, which guests may not use")]
    ContiguousTmem {
        /// Parameter index.
        index: usize,
    },
    /// The page list was refused.
    #[error("parameter {index}: {err}")]
    PageList {
        /// Parameter index.
        index: usize,
        /// Why.
        err: PageListError,
    },
    /// Too many buffers or pages.
    #[error(
        "parameter {index}: shared memory quota exceeded ({buffers} buffers, {pages} pages in use)"
    )]
    ShmQuota {
        /// Parameter index.
        index: usize,
        /// Buffers in use.
        buffers: u32,
        /// Pages in use.
        pages: u64,
    },
    /// RMEM naming an unregistered cookie.
    #[error("parameter {index} refers to unregistered shared memory {cookie:#x}")]
    UnknownShm {
        /// Parameter index.
        index: usize,
        /// Cookie.
        cookie: u64,
    },
    /// RMEM outside its buffer.
    #[error("parameter {index}: range {offset:#x}+{size:#x} is outside shared memory {cookie:#x}")]
    RmemOutOfRange {
        /// Parameter index.
        index: usize,
        /// Cookie.
        cookie: u64,
        /// Offset.
        offset: u64,
        /// Size.
        size: u64,
    },
    /// The command's parameters do not have the shape it requires.
    #[error("{0} has malformed parameters")]
    Shape(&'static str),
    /// The cookie is already in use.
    #[error("shared memory cookie {0:#x} is already in use")]
    DuplicateCookie(u64),
    /// UNREGISTER_SHM of a buffer still used by a call.
    #[error("shared memory {0:#x} is in use by a call")]
    ShmBusy(u64),
    /// The VM's policy forbids the TA.
    #[error("policy forbids opening TA {0}")]
    TaForbidden(Uuid),
    /// The VM's policy forbids REE kernel logins.
    #[error("policy forbids kernel login {0:#x}")]
    LoginForbidden(u32),
    /// Too many sessions.
    #[error("session quota of {0} reached")]
    SessionQuota(u32),
    /// A session this VM does not have.
    #[error("session {0:#x} is not open in this VM")]
    UnknownSession(u32),
}

impl Refusal {
    /// The TEEC_* result the guest sees.
    pub fn teec(&self) -> u32 {
        match self {
            Refusal::PageList {
                err: PageListError::TooManyPages { .. },
                ..
            }
            | Refusal::ShmQuota { .. }
            | Refusal::SessionQuota(_) => teec::ERROR_OUT_OF_MEMORY,
            Refusal::TaForbidden(_) | Refusal::LoginForbidden(_) => teec::ERROR_ACCESS_DENIED,
            Refusal::ShmBusy(_) => teec::ERROR_BUSY,
            _ => teec::ERROR_BAD_PARAMETERS,
        }
    }
}

/// What a registry entry is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum ShmKind {
    /// REGISTER_SHM.
    Registered,
    /// Returned by the guest for an RPC SHM_ALLOC.
    RpcData,
}

#[derive(Debug)]
struct Shm {
    kind: ShmKind,
    buffer: Arc<GuestBuffer>,
}

/// A call parked in an RPC, waiting for RETURN_FROM_RPC.
#[derive(Debug)]
enum Pending {
    Alloc,
    Free,
    ForeignIntr,
    Cmd { cookie: u64, gpa: u64, sent: MsgArg },
}

#[derive(Debug)]
struct Thread {
    /// Guest address of the call's optee_msg_arg.
    guest_arg: u64,
    /// The shadow of the guest's parameters (for write-back by type).
    shadow: Vec<MsgParam>,
    /// Index of the first backend parameter among the guest's (2 for OPEN).
    base: usize,
    call: StdCall,
    /// Page counts of the temporary buffers this call holds.
    temps: Vec<u64>,
    pending: Option<Pending>,
    /// The guest's exits for this call so far (its CALL_WITH_ARG and
    /// RETURN_FROM_RPCs).
    guest_exits: u64,
    /// RETURN_FROM_RPCs the VMM made for the guest.
    vmm_returns: u64,
    /// When the CALL_WITH_ARG came.
    started: Instant,
}

/// Counters, for tests and monitoring.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Usage {
    /// Calls in progress (parked included).
    pub calls: u32,
    /// Shared buffers alive (registered, temporary, RPC data).
    pub buffers: u32,
    /// Their pages.
    pub pages: u64,
    /// Open sessions.
    pub sessions: u32,
    /// RPC argument buffers known.
    pub rpc_args: u32,
}

/// The mediator of one VM. Create it with the VM, give it every forwarded
/// call of [`abi::FILTER_RANGES`], drop it (or call
/// [`Mediator::teardown`]) with the VM. It never blocks and never panics
/// on guest data; several vCPUs share it behind a lock.
pub struct Mediator<B: Backend> {
    client: ClientId,
    policy: Policy,
    backend: B,
    threads: Vec<Option<Thread>>,
    shm: HashMap<u64, Shm>,
    buffers: u32,
    pages: u64,
    rpc_args: HashMap<u64, u64>,
    sessions: HashSet<u32>,
    opening: u32,
    alive: bool,
    /// Refusal logs: the guest decides how often they happen.
    log_limit: LogLimiter,
    clock: Box<dyn Clock>,
    /// What each session's calls cost.
    costs: Ledger,
}

impl<B: Backend> std::fmt::Debug for Mediator<B> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Mediator")
            .field("client", &self.client)
            .field("usage", &self.usage())
            .finish_non_exhaustive()
    }
}

impl<B: Backend> Mediator<B> {
    /// The mediator of a new VM, announced to the backend as `client`
    /// (Xen uses domain id + 1; 0 is reserved).
    pub fn new(client: ClientId, policy: Policy, mut backend: B) -> Result<Self, MediatorError> {
        if client.0 == 0 {
            return Err(MediatorError::ReservedClientId);
        }
        if policy.quotas.max_calls == Some(0) {
            return Err(MediatorError::NoCalls);
        }
        backend.vm_created(client)?;
        // A backend that says 0 threads still gets one: it would answer
        // every call anyway.
        let slots = backend
            .thread_count()
            .min(policy.quotas.max_calls.unwrap_or(u32::MAX))
            .max(1);
        let threads = (0..slots).map(|_| None).collect();
        let log_limit = LogLimiter::new(policy.refusal_logs_per_second);
        Ok(Mediator {
            client,
            policy,
            backend,
            threads,
            shm: HashMap::new(),
            buffers: 0,
            pages: 0,
            rpc_args: HashMap::new(),
            sessions: HashSet::new(),
            opening: 0,
            alive: true,
            log_limit,
            clock: Box::new(SystemClock),
            costs: Ledger::default(),
        })
    }

    /// Replaces the clock of the refusal log rate limit (by default the
    /// host's monotonic clock); for tests.
    pub fn set_clock(&mut self, clock: Box<dyn Clock>) {
        self.clock = clock;
    }

    /// The VM's client id.
    pub fn client(&self) -> ClientId {
        self.client
    }

    /// The backend.
    pub fn backend(&self) -> &B {
        &self.backend
    }

    /// The backend, mutably.
    pub fn backend_mut(&mut self) -> &mut B {
        &mut self.backend
    }

    /// Resources in use.
    pub fn usage(&self) -> Usage {
        Usage {
            calls: self.threads.iter().filter(|t| t.is_some()).count() as u32,
            buffers: self.buffers,
            pages: self.pages,
            sessions: self.sessions.len() as u32,
            rpc_args: self.rpc_args.len() as u32,
        }
    }

    /// Concurrent calls this VM may have (GET_THREAD_COUNT).
    pub fn thread_count(&self) -> u32 {
        self.threads.len() as u32
    }

    /// What the calls of the sessions closed so far cost (those of at
    /// least [`crate::cost::REPORT_MIN_CALLS`] calls), once: a VMM reports
    /// them when its guest stops. After [`Mediator::teardown`], the
    /// sessions left open are among them.
    pub fn take_session_costs(&mut self) -> CostReport {
        self.costs.take()
    }

    /// Frees everything the VM holds (parked calls, buffers, sessions) and
    /// tells the backend the VM is gone. Idempotent; `Drop` calls it.
    pub fn teardown(&mut self) {
        if !self.alive {
            return;
        }
        self.alive = false;
        for (tid, slot) in self.threads.iter_mut().enumerate() {
            if slot.take().is_some() {
                self.backend.abandon(self.client, tid as ThreadId);
            }
        }
        self.shm.clear();
        self.rpc_args.clear();
        self.sessions.clear();
        self.costs.close_all();
        self.buffers = 0;
        self.pages = 0;
        self.opening = 0;
        let suppressed = self.log_limit.take_suppressed();
        if suppressed > 0 {
            warn!(
                "client {}: {suppressed} more refusals not logged",
                self.client.0
            );
        }
        self.backend.vm_destroyed(self.client);
    }

    /// Answers RPC_FOREIGN_INTR `answer` as the guest's driver does once it
    /// has taken its interrupts: RETURN_FROM_RPC with the a1..a3 it was
    /// given, by `conduit`. For a VMM that waited on the backend's
    /// [`crate::Progress`] and saw a result arrive: the call completes
    /// without a round trip through the guest (which would only have come
    /// back at once). `None` if `answer` is not a FOREIGN_INTR.
    pub fn return_from_foreign_intr(
        &mut self,
        mem: &dyn GuestRam,
        answer: &SmcResult,
        conduit: Conduit,
    ) -> Option<SmcResult> {
        if answer.a0() != u64::from(ret::RPC_FOREIGN_INTR) || !self.alive {
            return None;
        }
        let a = |n: usize| answer.regs().get(n).copied().unwrap_or(0);
        let call = SmcCall {
            function: abi::RETURN_FROM_RPC,
            conduit,
            args: [a(1), a(2), a(3), 0, 0, 0, 0],
        };
        Some(self.return_from_rpc(mem, &call, true))
    }

    /// Answers one forwarded call.
    pub fn handle(&mut self, mem: &dyn GuestRam, call: &SmcCall) -> SmcResult {
        if !self.alive {
            return SmcResult::unknown_function();
        }
        let f = Function::decode(call.function);
        match f {
            Function::CallsCount => SmcResult::code(Function::ANSWERED.len() as u32),
            Function::CallsUid => SmcResult::new(&abi::API_UID),
            Function::CallsRevision => SmcResult::new(&[abi::API_REVISION.0, abi::API_REVISION.1]),
            Function::GetOsUuid => SmcResult::new(&abi::OS_UUID),
            Function::GetOsRevision => {
                let r = self.backend.os_revision();
                SmcResult::new(&[r.major, r.minor, r.build_id])
            }
            Function::GetShmConfig => SmcResult::code(ret::ENOTAVAIL),
            Function::ExchangeCapabilities => {
                let nsec = call.w(1);
                if nsec & !caps::NSEC_UNIPROCESSOR != 0 {
                    debug!(
                        "client {}: ignoring unknown normal world caps {nsec:#x}",
                        self.client.0
                    );
                }
                SmcResult::new(&[ret::OK, caps::OFFERED, 0, 0])
            }
            Function::DisableShmCache => match self.backend.disable_shm_cache(self.client) {
                CacheDisable::Freed(cookie) => {
                    self.rpc_args.remove(&cookie);
                    let (hi, lo) = split_pair(cookie);
                    SmcResult::new(&[ret::OK, hi, lo])
                }
                CacheDisable::Empty => SmcResult::code(ret::ENOTAVAIL),
                CacheDisable::Busy => SmcResult::code(ret::EBUSY),
            },
            Function::EnableShmCache => {
                if self.backend.enable_shm_cache(self.client) {
                    SmcResult::code(ret::OK)
                } else {
                    SmcResult::code(ret::EBUSY)
                }
            }
            Function::GetThreadCount => SmcResult::new(&[ret::OK, self.thread_count()]),
            Function::EnableAsyncNotif | Function::GetAsyncNotifValue => {
                SmcResult::code(ret::ENOTAVAIL)
            }
            Function::CallWithArg => self.call_with_arg(mem, call),
            Function::ReturnFromRpc => self.return_from_rpc(mem, call, false),
            Function::Unknown => {
                debug!(
                    "client {}: unknown function {:#x}",
                    self.client.0, call.function.0
                );
                SmcResult::unknown_function()
            }
        }
    }

    /// Logs a refusal (warn) within the VM's rate limit: at most
    /// `Policy::refusal_logs_per_second`, then a count of those not logged
    /// before the next one logged.
    fn log_refusal(&mut self, what: fmt::Arguments<'_>) {
        if let Verdict::Log { suppressed } = self.log_limit.check(self.clock.now()) {
            if suppressed > 0 {
                warn!(
                    "client {}: {suppressed} refusals not logged (at most {} a second)",
                    self.client.0, self.policy.refusal_logs_per_second
                );
            }
            warn!("client {}: {what}", self.client.0);
        }
    }

    fn refuse_call(&mut self, what: fmt::Arguments<'_>, code: u32) -> SmcResult {
        self.log_refusal(what);
        SmcResult::code(code)
    }

    fn call_with_arg(&mut self, mem: &dyn GuestRam, call: &SmcCall) -> SmcResult {
        let Some(tid) = self.threads.iter().position(Option::is_none) else {
            return self.refuse_call(format_args!("all threads busy"), ret::ETHREAD_LIMIT);
        };
        let gpa = reg_pair(u64::from(call.w(1)), u64::from(call.w(2)));
        let arg = match MsgArg::read(mem, gpa) {
            Ok(a) => a,
            Err(e @ (MsgError::Unaligned(_) | MsgError::Memory(_))) => {
                return self.refuse_call(format_args!("{e}"), ret::EBADADDR);
            }
            Err(e @ MsgError::TooManyParams(_)) => {
                return self.refuse_arg(mem, gpa, &Refusal::Msg(e));
            }
        };
        let command = arg.header.cmd;
        if !matches!(
            command,
            cmd::OPEN_SESSION
                | cmd::INVOKE_COMMAND
                | cmd::CLOSE_SESSION
                | cmd::CANCEL
                | cmd::REGISTER_SHM
                | cmd::UNREGISTER_SHM
        ) {
            return self.refuse_call(format_args!("command {command} not allowed"), ret::EBADCMD);
        }
        let mut temps = Vec::new();
        let translated = self.translate(mem, &arg, &mut temps);
        let (std_call, base) = match translated {
            Ok(t) => t,
            Err(r) => {
                for p in temps {
                    self.release(p);
                }
                return self.refuse_arg(mem, gpa, &r);
            }
        };
        if matches!(std_call.command, Command::OpenSession { .. }) {
            self.opening += 1;
        }
        let mut thread = Thread {
            guest_arg: gpa,
            shadow: arg.params,
            base,
            call: std_call,
            temps,
            pending: None,
            guest_exits: 1,
            vmm_returns: 0,
            started: self.clock.now(),
        };
        let step = self
            .backend
            .start(self.client, tid as ThreadId, &mut thread.call, mem);
        if let Some(slot) = self.threads.get_mut(tid) {
            *slot = Some(thread);
        }
        self.drive(mem, tid, step)
    }

    /// Reports a refusal in the guest's argument (ret, ret_origin) with OK.
    fn refuse_arg(&mut self, mem: &dyn GuestRam, gpa: u64, r: &Refusal) -> SmcResult {
        self.log_refusal(format_args!("refused: {r}"));
        let ok = mem
            .write(gpa + off::RET, &r.teec().to_le_bytes())
            .and_then(|_| mem.write(gpa + off::RET_ORIGIN, &teec::ORIGIN_COMMS.to_le_bytes()));
        SmcResult::code(if ok.is_ok() { ret::OK } else { ret::EBADADDR })
    }
}

impl<B: Backend> Drop for Mediator<B> {
    fn drop(&mut self) {
        self.teardown();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_mediator_can_move_between_vcpu_threads() {
        fn send<T: Send>() {}
        send::<Mediator<crate::UserTee>>();
        send::<Mediator<std::sync::Arc<std::sync::Mutex<crate::UserTee>>>>();
    }

    #[test]
    fn smc_result_always_has_x0_and_zero_extends() {
        assert_eq!(SmcResult::new(&[]).regs(), &[0]);
        assert_eq!(
            SmcResult::code(ret::UNKNOWN_FUNCTION).regs(),
            &[0xFFFF_FFFF]
        );
        assert_eq!(SmcResult::unknown_function().regs(), &[u64::MAX]);
        assert_eq!(
            SmcResult::unknown_function().a0() as u32,
            ret::UNKNOWN_FUNCTION
        );
        assert_eq!(SmcResult::new(&[1, 2, 3, 4, 5]).regs(), &[1, 2, 3, 4]);
    }

    #[test]
    fn smc_call_w_truncates_to_32_bits_and_tolerates_any_index() {
        let c = SmcCall::new(abi::CALL_WITH_ARG, &[0x1_0000_0002, 3]);
        assert_eq!((c.w(1), c.w(2), c.w(7)), (2, 3, 0));
        assert_eq!((c.w(0), c.w(8), c.w(usize::MAX)), (0, 0, 0));
    }

    #[test]
    fn refusals_map_to_the_teec_codes_of_their_kind() {
        assert_eq!(Refusal::SessionQuota(1).teec(), teec::ERROR_OUT_OF_MEMORY);
        assert_eq!(
            Refusal::TaForbidden(Uuid::NIL).teec(),
            teec::ERROR_ACCESS_DENIED
        );
        assert_eq!(Refusal::ShmBusy(1).teec(), teec::ERROR_BUSY);
        assert_eq!(
            Refusal::ContiguousTmem { index: 0 }.teec(),
            teec::ERROR_BAD_PARAMETERS
        );
        let e = PageListError::TooManyPages {
            size: 0,
            offset: 0,
            pages: 2,
            max: 1,
        };
        assert_eq!(
            Refusal::PageList { index: 0, err: e }.teec(),
            teec::ERROR_OUT_OF_MEMORY
        );
        assert!(Refusal::UnknownSession(7)
            .to_string()
            .contains("session 0x7"));
    }
}
