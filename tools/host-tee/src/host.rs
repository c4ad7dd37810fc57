// SPDX-License-Identifier: Apache-2.0 OR MIT
//! [`HostTee`]: the mediator's [`Backend`] on the host's TEE device.

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Weak};

use optee_mediator::backend::{
    Backend, BackendError, CacheDisable, ClientId, Command, OsRevision, RpcReply, RpcRequest,
    StdCall, Step, ThreadId,
};
use optee_mediator::msg::teec;
use optee_mediator::shm::GuestBuffer;
use optee_mediator::{GuestRam, Progress};

use crate::device::{CallResult, ClientLogin, Shm, TeeDevice};
use crate::error::HostTeeError;
use crate::memory::{host_span, Pinned, Window};
use crate::params::{plan, write_back};
use crate::relay::{Answer, Forwarded, Relay};
use crate::worker::{orphan, Abandoned, Call, Finished, Job, Outcome, Pool};
use optee_mediator::relay::carry::{self, GuestBuffers};

/// Configuration of the host TEE backend.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HostTeeConfig {
    /// Concurrent calls per VM (GET_THREAD_COUNT): calls beyond the host
    /// OP-TEE's own thread count wait in the host driver.
    pub thread_count: u32,
    /// What GET_OS_REVISION reports: the uapi does not tell OP-TEE's
    /// revision, so it is configured (0.0 by default: unknown).
    pub revision: OsRevision,
    /// Who carries a VM's relayed supplicant requests into its guest: the
    /// backend itself, on the guest's calls (false, the default: a VMM),
    /// or its caller, which takes them from [`Backend::relay`] (true: the
    /// TEE service, whose guests are the VMMs', reached through their
    /// calls' steps).
    pub relay_carried_by_caller: bool,
}

impl Default for HostTeeConfig {
    fn default() -> Self {
        HostTeeConfig {
            thread_count: 8,
            revision: OsRevision {
                major: 0,
                minor: 0,
                build_id: 0,
            },
            relay_carried_by_caller: false,
        }
    }
}

/// A guest buffer the guest registered (REGISTER_SHM).
#[derive(Debug)]
struct Registered<D: TeeDevice> {
    /// Only to recognise the buffer in a call's parameters: a weak
    /// reference, because the mediator refuses UNREGISTER_SHM of a buffer
    /// someone else still holds (it takes that for a call in progress).
    buffer: Weak<GuestBuffer>,
    /// The host registration of the guest's pages (through a window if
    /// they are scattered); `None` if they could be neither (each call then
    /// bounces what it references).
    host: Option<Pinned<D::Registered>>,
}

/// Where a guest thread is in carrying a relayed supplicant request.
#[derive(Debug)]
enum Carry<D: TeeDevice> {
    /// Waiting for the TEE like any call.
    Idle,
    /// RPC_ALLOC asked for request `.0`.
    Allocating(u64, Forwarded),
    /// Request `.0` is with the guest (RPC_CMD).
    Asking(u64, Forwarded),
    /// The call is finished: RPC_FREE of its argument buffer asked, the
    /// result kept until the guest has freed it.
    Freeing(Finished<D>),
}

/// A guest thread that carries, or carried, relayed requests: the RPC
/// argument buffer it asked the guest for (freed when its call ends).
#[derive(Debug)]
struct Carrier<D: TeeDevice> {
    rpc_arg: Option<u64>,
    phase: Carry<D>,
}

/// One VM: its TEE context and what it holds in it.
#[derive(Debug)]
struct Client<D: TeeDevice> {
    dev: Arc<D>,
    sessions: HashSet<u32>,
    buffers: HashMap<u64, Registered<D>>,
    calls: HashMap<ThreadId, Call<D>>,
    /// Abandoned calls not finished yet: cancelled at teardown with what
    /// TEE_IOC_CANCEL needs, if they can be, and waited for.
    abandoned: Vec<Abandoned<D>>,
    /// The workers of its calls, for as long as the VM lives.
    pool: Pool<D>,
    /// Where its partition's supplicant requests reach the guest
    /// (`--tee-supplicant guest`), `None` if they don't.
    relay: Option<Arc<Relay>>,
    /// Whether this backend carries them (else its caller does, see
    /// [`HostTeeConfig::relay_carried_by_caller`]).
    carries: bool,
    /// Buffers the guest's tee-supplicant allocated for the TEE.
    guest_bufs: GuestBuffers,
    /// The threads that carry relayed requests.
    carriers: HashMap<ThreadId, Carrier<D>>,
    /// RPC argument buffers of calls given up (abandoned, lost) before
    /// they could be freed: handed back by DISABLE_SHM_CACHE.
    lost_rpc_args: Vec<u64>,
}

/// The opener of a VM's TEE context.
type Opener<D> = Box<dyn FnMut() -> Result<D, HostTeeError> + Send>;

/// The host's TEE as the mediator's backend: each VM gets its own TEE
/// context (one open of the device), its calls run on worker threads, its
/// buffers are registered from the VMM's mapping of guest RAM.
///
/// Login rule: in a partition of the VM's own (a context that
/// [passes logins](TeeDevice::passes_logins)), a session is opened with
/// the login and client UUID the guest's kernel gave it, as the VM's
/// `Policy` let them through: the guest's kernel is the REE kernel of that
/// partition. Anywhere else (the host's partition, a TEE without VMs) the
/// TA would see the guest's claim as the host's, so every session is
/// opened PUBLIC with a nil client UUID.
///
/// Use one `HostTee` per VM where possible: teardown waits for the VM's
/// calls still in the TEE (after cancelling them), and a backend shared
/// behind one lock would make the other VMs wait with it.
pub struct HostTee<D: TeeDevice> {
    config: HostTeeConfig,
    open: Opener<D>,
    clients: HashMap<ClientId, Client<D>>,
    /// Advanced by every worker whose result is in.
    progress: Arc<Progress>,
}

impl HostTee<crate::DevTee> {
    /// A backend on the host's TEE device `first`, opened (and checked) by
    /// the caller: the first VM gets `first` as its TEE context, each later
    /// VM a new open of the same path; GET_OS_REVISION reports the device's
    /// revision where the host's kernel shows it
    /// ([`crate::revision::of_device`]), else the default.
    ///
    /// # Safety
    /// As [`HostTee::new`].
    pub unsafe fn on_device(first: crate::DevTee) -> Self {
        // SAFETY: the caller keeps HostTee::new's contract.
        unsafe { HostTee::on_device_with(first, Ok) }
    }

    /// As [`HostTee::on_device`], each VM's context (`first` too) passed
    /// through `prepare` before the VM uses it: such as
    /// [`crate::DevTee::make_vm`], to give each VM an OP-TEE partition of
    /// its own. A `prepare` that fails refuses the VM.
    ///
    /// # Safety
    /// As [`HostTee::new`].
    pub unsafe fn on_device_with(
        first: crate::DevTee,
        mut prepare: impl FnMut(crate::DevTee) -> Result<crate::DevTee, HostTeeError> + Send + 'static,
    ) -> Self {
        let path = first.path().to_path_buf();
        let config = HostTeeConfig {
            revision: crate::revision::of_device(
                std::path::Path::new(crate::revision::SYSFS_TEE_CLASS),
                &path,
            )
            .unwrap_or(HostTeeConfig::default().revision),
            ..HostTeeConfig::default()
        };
        let mut opened = Some(first);
        let open = move || match opened.take() {
            Some(d) => prepare(d),
            None => prepare(crate::DevTee::open(&path)?),
        };
        // SAFETY: the caller keeps HostTee::new's contract.
        unsafe { HostTee::new(config, open) }
    }
}

impl<D: TeeDevice> std::fmt::Debug for HostTee<D> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HostTee")
            .field("config", &self.config)
            .field("clients", &self.clients.keys().collect::<Vec<_>>())
            .finish()
    }
}

fn fail(call: &mut StdCall, ret: u32) -> Step {
    call.finish(ret, teec::ORIGIN_COMMS);
    Step::Done
}

fn device_error(call: &mut StdCall, what: &str, e: &HostTeeError) -> Step {
    log::warn!("host TEE: {what}: {e}");
    fail(call, e.teec())
}

impl<D: TeeDevice> HostTee<D> {
    /// A backend whose VMs each get a TEE context from `open` (for the
    /// real device: `move || DevTee::open(&path)`).
    ///
    /// # Safety
    /// The guest memory given to [`Backend::start`] and [`Backend::resume`]
    /// must stay mapped until [`Backend::vm_destroyed`] for that VM has
    /// returned: registrations of guest pages (made from the VMM's
    /// mapping) live until then, and the TEE may access them meanwhile.
    /// Dropping the VM's mediator (which calls `vm_destroyed`) before
    /// unmapping its memory is enough.
    pub unsafe fn new(
        config: HostTeeConfig,
        open: impl FnMut() -> Result<D, HostTeeError> + Send + 'static,
    ) -> Self {
        HostTee {
            config,
            open: Box::new(open),
            clients: HashMap::new(),
            progress: Arc::new(Progress::new()),
        }
    }

    /// Leaves the VMs' relayed supplicant requests to the caller, from
    /// the VMs created after this on (see
    /// [`HostTeeConfig::relay_carried_by_caller`]).
    pub fn relay_carried_by_caller(mut self) -> Self {
        self.config.relay_carried_by_caller = true;
        self
    }

    /// Whether the backend knows `client`.
    pub fn has_client(&self, client: ClientId) -> bool {
        self.clients.contains_key(&client)
    }

    /// Sessions `client` has open.
    pub fn session_count(&self, client: ClientId) -> usize {
        self.clients.get(&client).map_or(0, |c| c.sessions.len())
    }

    /// Calls of `client` in progress.
    pub fn calls_in_progress(&self, client: ClientId) -> usize {
        self.clients.get(&client).map_or(0, |c| c.calls.len())
    }

    /// Worker threads started so far for `client`'s calls: as many as it
    /// had calls in the TEE at once, not one per call.
    pub fn threads_created(&self, client: ClientId) -> u64 {
        self.clients
            .get(&client)
            .map_or(0, |c| c.pool.threads_created())
    }

    /// Workers of `client` waiting for a call now.
    #[cfg(test)]
    pub(crate) fn idle_workers(&self, client: ClientId) -> usize {
        self.clients.get(&client).map_or(0, |c| c.pool.idle())
    }

    /// Buffers of `client` registered with the host through a window onto
    /// their scattered pages.
    pub fn windowed_buffers(&self, client: ClientId) -> usize {
        self.clients.get(&client).map_or(0, |c| {
            c.buffers
                .values()
                .filter(|b| b.host.as_ref().is_some_and(Pinned::windowed))
                .count()
        })
    }

    /// Buffers `client` registered, and how many of them are registered
    /// with the host (zero-copy) rather than bounced.
    pub fn buffer_counts(&self, client: ClientId) -> (usize, usize) {
        self.clients.get(&client).map_or((0, 0), |c| {
            let host = c.buffers.values().filter(|b| b.host.is_some()).count();
            (c.buffers.len(), host)
        })
    }
}

impl<D: TeeDevice> Client<D> {
    /// The job a call asks for, or its answer when no ioctl is needed.
    fn job(&mut self, call: &mut StdCall, mem: &dyn GuestRam) -> Result<Job<D>, Step> {
        let buffers = &self.buffers;
        let registered = |b: &Arc<GuestBuffer>| {
            buffers
                .values()
                .find(|r| std::ptr::eq(r.buffer.as_ptr(), Arc::as_ptr(b)))
                .and_then(|r| r.host.as_ref().map(|h| h.reg.id()))
        };
        match call.command.clone() {
            // The login rule (see HostTee).
            Command::OpenSession { ta, client, login } => Ok(Job::Open {
                uuid: ta.0,
                login: if self.dev.passes_logins() {
                    ClientLogin {
                        method: login,
                        uuid: client.0,
                    }
                } else {
                    ClientLogin::PUBLIC
                },
                cancel_id: call.cancel_id,
                params: plan(&call.params, &registered, mem).map_err(|r| fail(call, r))?,
            }),
            Command::Invoke { func } => {
                if !self.sessions.contains(&call.session) {
                    return Err(fail(call, teec::ERROR_BAD_PARAMETERS));
                }
                Ok(Job::Invoke {
                    session: call.session,
                    func,
                    cancel_id: call.cancel_id,
                    params: plan(&call.params, &registered, mem).map_err(|r| fail(call, r))?,
                })
            }
            Command::CloseSession => {
                if !self.sessions.remove(&call.session) {
                    return Err(fail(call, teec::ERROR_BAD_PARAMETERS));
                }
                Ok(Job::Close {
                    session: call.session,
                })
            }
            Command::Cancel => Ok(Job::Cancel {
                session: call.session,
                cancel_id: call.cancel_id,
            }),
            Command::RegisterShm { cookie, buffer } => {
                if self.buffers.contains_key(&cookie) {
                    return Err(fail(call, teec::ERROR_BAD_PARAMETERS));
                }
                let Ok(len) = usize::try_from(buffer.size()) else {
                    return Err(fail(call, teec::ERROR_OUT_OF_MEMORY));
                };
                let placed = host_span(mem, &buffer, 0, buffer.size())
                    .map(|ptr| (ptr, None))
                    .or_else(|| {
                        Window::map(mem, &buffer, 0, buffer.size()).map(|(w, ptr)| (ptr, Some(w)))
                    });
                match placed {
                    Some((ptr, window)) => Ok(Job::Register { ptr, len, window }),
                    None => {
                        let buffer = Arc::downgrade(&buffer);
                        self.buffers
                            .insert(cookie, Registered { buffer, host: None });
                        call.finish(teec::SUCCESS, teec::ORIGIN_TEE);
                        Err(Step::Done)
                    }
                }
            }
            Command::UnregisterShm { cookie } => {
                match self.buffers.remove(&cookie).and_then(|r| r.host) {
                    Some(reg) => Ok(Job::Release(reg)),
                    None => {
                        call.finish(teec::SUCCESS, teec::ORIGIN_TEE);
                        Err(Step::Done)
                    }
                }
            }
        }
    }

    /// Writes a finished call's result into `call`.
    fn finish(&mut self, call: &mut StdCall, fin: Finished<D>, mem: &dyn GuestRam) -> Step {
        let verdict = |call: &mut StdCall, r: CallResult| {
            call.finish(r.ret, r.origin);
            Step::Done
        };
        call.cost.tee_requests += fin.cost.tee_requests;
        call.cost.bytes_copied += fin.cost.bytes_copied;
        match fin.outcome {
            Outcome::Opened(Ok((session, r)), out) => {
                if r.ret == teec::SUCCESS {
                    self.sessions.insert(session);
                    call.session = session;
                }
                call.cost.bytes_copied += write_back(call, &out, &fin.outputs, mem);
                verdict(call, r)
            }
            Outcome::Invoked(Ok(r), out) => {
                call.cost.bytes_copied += write_back(call, &out, &fin.outputs, mem);
                verdict(call, r)
            }
            Outcome::Opened(Err(e), _) => device_error(call, "OPEN_SESSION", &e),
            Outcome::Invoked(Err(e), _) => device_error(call, "INVOKE", &e),
            Outcome::Done(Ok(())) => {
                call.finish(teec::SUCCESS, teec::ORIGIN_TEE);
                Step::Done
            }
            Outcome::Done(Err(e)) => device_error(call, "call", &e),
            Outcome::Registered(Ok(host)) => {
                if let Command::RegisterShm { cookie, buffer } = &call.command {
                    let r = Registered {
                        buffer: Arc::downgrade(buffer),
                        host: Some(host),
                    };
                    self.buffers.insert(*cookie, r);
                }
                call.finish(teec::SUCCESS, teec::ORIGIN_TEE);
                Step::Done
            }
            Outcome::Registered(Err(e)) => device_error(call, "REGISTER_SHM", &e),
        }
    }

    /// The step of a call in progress on `thread`: its result if it is
    /// in, else a relayed request for the guest if one waits, else
    /// FOREIGN_INTR.
    fn step(&mut self, thread: ThreadId, call: &mut StdCall, mem: &dyn GuestRam) -> Step {
        let Some(c) = self.calls.get(&thread) else {
            return fail(call, teec::ERROR_BAD_STATE);
        };
        if let Some(fin) = c.poll() {
            call.cost.threads_started += u32::from(c.started_thread);
            self.calls.remove(&thread);
            return self.end(thread, call, fin, mem);
        }
        if c.is_lost() {
            self.calls.remove(&thread);
            self.drop_carrier(thread);
            log::warn!("host TEE: the worker of thread {thread} died without a result");
            return fail(call, teec::ERROR_COMMUNICATION);
        }
        self.carry(thread, mem)
            .unwrap_or(Step::Rpc(RpcRequest::ForeignIntr))
    }

    /// Forgets `thread`'s part in relaying: its request failed, its RPC
    /// argument buffer kept for DISABLE_SHM_CACHE, a finished call's
    /// result orphaned (a session it opened closed).
    fn drop_carrier(&mut self, thread: ThreadId) {
        let Some(k) = self.carriers.remove(&thread) else {
            return;
        };
        self.lost_rpc_args.extend(k.rpc_arg);
        match k.phase {
            Carry::Allocating(id, req) | Carry::Asking(id, req) => {
                self.answer(
                    id,
                    Answer::failed(teec::ERROR_COMMUNICATION, req.params.len()),
                );
            }
            Carry::Freeing(fin) => orphan(&*self.dev, fin),
            Carry::Idle => {}
        }
    }

    /// A finished call's answer; first the guest frees the RPC argument
    /// buffer the call carried requests in, if it has one.
    fn end(
        &mut self,
        thread: ThreadId,
        call: &mut StdCall,
        fin: Finished<D>,
        mem: &dyn GuestRam,
    ) -> Step {
        match self.carriers.remove(&thread) {
            Some(Carrier {
                rpc_arg: Some(cookie),
                ..
            }) => {
                let phase = Carry::Freeing(fin);
                let carrier = Carrier {
                    rpc_arg: None,
                    phase,
                };
                self.carriers.insert(thread, carrier);
                Step::Rpc(RpcRequest::Free { cookie })
            }
            _ => self.finish(call, fin, mem),
        }
    }

    /// Takes the relayed request waiting, if any, for `thread` to carry:
    /// the RPC argument buffer asked first if the thread has none. Any
    /// call in progress carries requests, whatever its kind: a request is
    /// made on behalf of one of the guest's calls, a session's close
    /// included (the TA's destructor closes its sockets, writes its
    /// storage), and a request left without a carrier waits until the
    /// host driver fails it.
    fn carry(&mut self, thread: ThreadId, mem: &dyn GuestRam) -> Option<Step> {
        if !self.carries {
            return None;
        }
        let (id, req) = self.relay.as_ref()?.take()?;
        let carrier = self.carriers.entry(thread).or_insert(Carrier {
            rpc_arg: None,
            phase: Carry::Idle,
        });
        match carrier.rpc_arg {
            Some(cookie) => Some(self.deliver(thread, cookie, id, req, mem)),
            None => {
                carrier.phase = Carry::Allocating(id, req);
                Some(Step::Rpc(RpcRequest::Alloc {
                    size: carry::rpc_arg_size(),
                }))
            }
        }
    }

    /// Sends request `id` to the guest in the RPC argument buffer
    /// `cookie`; a request that cannot be delivered is answered with the
    /// error at once, and the thread waits on.
    fn deliver(
        &mut self,
        thread: ThreadId,
        cookie: u64,
        id: u64,
        req: Forwarded,
        mem: &dyn GuestRam,
    ) -> Step {
        match carry::command(&req, &mut self.guest_bufs, mem) {
            Ok(arg) => {
                if let Some(k) = self.carriers.get_mut(&thread) {
                    k.phase = Carry::Asking(id, req);
                }
                Step::Rpc(RpcRequest::Cmd { cookie, arg })
            }
            Err(ret) => {
                log::warn!(
                    "host TEE: supplicant request {} not relayed to the guest: TEEC {ret:#x}",
                    req.func
                );
                self.answer(id, Answer::failed(ret, req.params.len()));
                Step::Rpc(RpcRequest::ForeignIntr)
            }
        }
    }

    /// Answers relayed request `id`; whether the answer was taken.
    fn answer(&self, id: u64, answer: Answer) -> bool {
        self.relay.as_ref().is_some_and(|r| r.answer(id, answer))
    }

    /// The guest's answer to an RPC `thread` made for a relayed request
    /// (or to its FOREIGN_INTR): the step after it.
    fn resume(
        &mut self,
        thread: ThreadId,
        call: &mut StdCall,
        reply: RpcReply,
        mem: &dyn GuestRam,
    ) -> Step {
        let phase = self
            .carriers
            .get_mut(&thread)
            .map(|k| std::mem::replace(&mut k.phase, Carry::Idle));
        match (phase, reply) {
            (None | Some(Carry::Idle), RpcReply::ForeignIntr) => self.step(thread, call, mem),
            (Some(Carry::Allocating(id, req)), RpcReply::Alloc(Some(cookie))) => {
                if let Some(k) = self.carriers.get_mut(&thread) {
                    k.rpc_arg = Some(cookie);
                }
                self.deliver(thread, cookie, id, req, mem)
            }
            (Some(Carry::Allocating(id, req)), RpcReply::Alloc(None)) => {
                self.answer(
                    id,
                    Answer::failed(teec::ERROR_OUT_OF_MEMORY, req.params.len()),
                );
                self.step(thread, call, mem)
            }
            (Some(Carry::Asking(id, req)), RpcReply::Cmd(r)) => {
                let rpc_arg = self.carriers.get_mut(&thread).and_then(|k| {
                    if !r.delivered {
                        // The buffer is unusable: the mediator forgot it.
                        k.rpc_arg = None;
                    }
                    k.rpc_arg
                });
                let a = carry::answer(&req, &r, &mut self.guest_bufs, mem);
                let buffer = a.buffer();
                if !self.answer(id, a) {
                    // Given up meanwhile: a buffer the guest allocated for
                    // it would be nobody's. The guest frees it (on the
                    // same argument buffer; nobody waits for that answer).
                    if let (Some(cookie), Some(arg)) = (buffer, rpc_arg) {
                        self.guest_bufs.remove(&cookie);
                        return self.deliver(thread, arg, 0, Forwarded::shm_free(cookie), mem);
                    }
                }
                self.step(thread, call, mem)
            }
            (Some(Carry::Freeing(fin)), RpcReply::Free) => {
                self.carriers.remove(&thread);
                self.finish(call, fin, mem)
            }
            (phase, _) => {
                // Not the answer to what was asked: a protocol error, and
                // the call (and the request it carried) is given up.
                if let (Some(phase), Some(k)) = (phase, self.carriers.get_mut(&thread)) {
                    k.phase = phase;
                }
                self.abandon(thread);
                fail(call, teec::ERROR_COMMUNICATION)
            }
        }
    }

    /// Nobody will collect `thread`'s result: the call runs to its end
    /// and cleans up after itself (it is not cancelled now: a guest's
    /// cancellation id may be shared by its other calls).
    fn abandon(&mut self, thread: ThreadId) {
        self.drop_carrier(thread);
        if let Some(c) = self.calls.remove(&thread) {
            let a = c.abandon(&self.dev);
            self.abandoned.retain(|a| !a.is_done());
            if !a.is_done() {
                self.abandoned.push(a);
            }
        }
    }

    /// Everything the VM holds released: calls still in the TEE cancelled
    /// (TEE_IOC_CANCEL) and waited for, sessions closed, registrations
    /// released.
    fn teardown(mut self) {
        // A call in the TEE may wait for a request relayed to the guest,
        // which will not answer now: it fails at once, so that the call
        // ends and the pool can be waited for.
        if let Some(r) = &self.relay {
            r.close();
        }
        let threads: Vec<ThreadId> = self.calls.keys().copied().collect();
        for t in threads {
            self.abandon(t);
        }
        for a in self.abandoned.drain(..) {
            if let (false, Some((session, cancel_id))) = (a.is_done(), a.cancel) {
                if let Err(e) = self.dev.cancel(session, cancel_id) {
                    log::warn!("host TEE: cancelling a call at VM teardown: {e}");
                }
            }
        }
        log::debug!(
            "host TEE: VM's calls ran on {} worker thread(s)",
            self.pool.threads_created()
        );
        // Waits for every job the VM's calls left running.
        drop(self.pool);
        for s in self.sessions.drain() {
            if let Err(e) = self.dev.close_session(s) {
                log::warn!("host TEE: closing session {s} at VM teardown: {e}");
            }
        }
        self.buffers.clear();
    }
}

impl<D: TeeDevice> Backend for HostTee<D> {
    fn thread_count(&self) -> u32 {
        self.config.thread_count
    }

    fn os_revision(&self) -> OsRevision {
        self.config.revision
    }

    fn vm_created(&mut self, client: ClientId) -> Result<(), BackendError> {
        if self.clients.contains_key(&client) {
            return Err(BackendError::ClientExists(client));
        }
        let dev = Arc::new((self.open)().map_err(|e| BackendError::Refused(e.to_string()))?);
        let keep_idle = usize::try_from(self.config.thread_count).unwrap_or(usize::MAX);
        let relay = dev.relay();
        if let Some(r) = &relay {
            r.attach(self.progress.clone());
        }
        self.clients.insert(
            client,
            Client {
                pool: Pool::new(dev.clone(), self.progress.clone(), keep_idle),
                dev,
                sessions: HashSet::new(),
                buffers: HashMap::new(),
                calls: HashMap::new(),
                abandoned: Vec::new(),
                relay,
                carries: !self.config.relay_carried_by_caller,
                guest_bufs: GuestBuffers::new(),
                carriers: HashMap::new(),
                lost_rpc_args: Vec::new(),
            },
        );
        Ok(())
    }

    fn vm_destroyed(&mut self, client: ClientId) {
        if let Some(c) = self.clients.remove(&client) {
            c.teardown();
        }
    }

    /// RPC argument buffers (asked only to carry relayed supplicant
    /// requests) are freed when their call ends: the cache is accepted
    /// and stays empty.
    fn enable_shm_cache(&mut self, _client: ClientId) -> bool {
        true
    }

    /// Hands back the RPC argument buffers of calls given up before they
    /// could free them, one at a time.
    fn disable_shm_cache(&mut self, client: ClientId) -> CacheDisable {
        self.clients
            .get_mut(&client)
            .and_then(|c| c.lost_rpc_args.pop())
            .map_or(CacheDisable::Empty, CacheDisable::Freed)
    }

    fn start(
        &mut self,
        client: ClientId,
        thread: ThreadId,
        call: &mut StdCall,
        mem: &dyn GuestRam,
    ) -> Step {
        let Some(c) = self.clients.get_mut(&client) else {
            return fail(call, teec::ERROR_BAD_STATE);
        };
        if c.calls.contains_key(&thread) {
            return fail(call, teec::ERROR_BAD_STATE);
        }
        let job = match c.job(call, mem) {
            Ok(job) => job,
            Err(step) => return step,
        };
        // SAFETY: the host memory the job names is guest RAM the VMM
        // mapped; `new`'s caller keeps it mapped until vm_destroyed, which
        // drops the pool (waiting for every job) and every registration
        // before returning.
        match unsafe { c.pool.submit(job) } {
            Ok(w) => {
                c.calls.insert(thread, w);
                c.carry(thread, mem)
                    .unwrap_or(Step::Rpc(RpcRequest::ForeignIntr))
            }
            Err(e) => {
                log::warn!("host TEE: cannot start a worker thread: {e}");
                fail(call, teec::ERROR_OUT_OF_MEMORY)
            }
        }
    }

    fn resume(
        &mut self,
        client: ClientId,
        thread: ThreadId,
        call: &mut StdCall,
        reply: RpcReply,
        mem: &dyn GuestRam,
    ) -> Step {
        let Some(c) = self.clients.get_mut(&client) else {
            return fail(call, teec::ERROR_BAD_STATE);
        };
        c.resume(thread, call, reply, mem)
    }

    fn abandon(&mut self, client: ClientId, thread: ThreadId) {
        if let Some(c) = self.clients.get_mut(&client) {
            c.abandon(thread);
        }
    }

    /// Workers advance it when their result is in: a vCPU told
    /// FOREIGN_INTR may wait on it before letting the guest come back.
    fn progress(&self) -> Option<Arc<Progress>> {
        Some(self.progress.clone())
    }

    /// The VM's relay when the caller carries its requests.
    fn relay(&self, client: ClientId) -> Option<Arc<Relay>> {
        let c = self.clients.get(&client)?;
        c.relay.clone().filter(|_| !c.carries)
    }
}

impl<D: TeeDevice> Drop for HostTee<D> {
    fn drop(&mut self) {
        for (_, c) in self.clients.drain() {
            c.teardown();
        }
    }
}
