// SPDX-License-Identifier: Apache-2.0 OR MIT
//! [`RemoteTee`]: the mediator's [`Backend`] in a VMM whose TEE is the
//! service at the other end of a socket.
//!
//! Each backend operation is one request and its answer. A call's memory
//! parameters go with it as bytes ([`crate::wire::Span`]), and what the
//! TEE wrote comes back and is written into guest memory before the
//! mediator sees the step, so the guest's view is the one an in-process
//! backend gives.
//!
//! A service that drops silent peers says after how long in its welcome;
//! then a small thread per connection pings it when nothing was sent for
//! a third of that (never between a request and its answer), so that a
//! VMM whose guests hold sessions open and call nothing keeps them.
//!
//! When the service goes away (killed, restarted, its connection broken
//! or silent past the timeout), the call in progress completes with
//! TEEC_ERROR_COMMUNICATION from TEEC_ORIGIN_COMMS, and so does every
//! call until the service answers again; the next call after that
//! reconnects. What lived in the old service is gone: its sessions answer
//! as closed sessions do (BAD_PARAMETERS from the TEE), its calls as
//! failed, its registered buffers travel with each call as temporary
//! memory. Session ids the guest sees are this backend's, never reused,
//! so a guest's stale session id never reaches a new session.

use std::collections::{BTreeMap, HashMap};
use std::io::Write;
use std::sync::{Arc, Weak};
use std::time::{Duration, Instant};

use optee_mediator::backend::{
    BackendError, CacheDisable, ClientId, Command, OsRevision, Param, RpcReply, RpcRequest,
    StdCall, Step, ThreadId,
};
use optee_mediator::mem::GuestRam;
use optee_mediator::msg::teec;
use optee_mediator::shm::{GuestBuffer, MemRef};
use optee_mediator::Backend;

use optee_mediator::relay::carry::GuestBuffers;

use crate::addr::Address;
use crate::frame::{self, FrameError};
use crate::keepalive::Keepalive;
use crate::relayed;
use crate::wire::{self, Request, Response};

mod carry;
mod convert;
mod link;
mod shared;

use link::{greet, Link};

use carry::Carried;
use convert::{rpc_request, span_bytes};
pub use shared::SharedMemory;

/// How a [`RemoteTee`] behaves.
#[derive(Debug, Clone)]
pub struct RemoteConfig {
    /// The name it gives itself (the service logs it).
    pub name: String,
    /// How long an answer may take before the service is taken for gone.
    pub timeout: Duration,
    /// The least time between two attempts to reconnect.
    pub retry: Duration,
    /// The VMs' partition's supplicant requests come to this VMM for its
    /// guests' own tee-supplicant (`--tee-supplicant guest`): each VM is
    /// created with [`Request::VmCreatedRelaying`], and the requests
    /// arrive on the guest's calls (protocol version 3).
    pub relay_supplicant: bool,
    /// How long the service may wait for a call still in the TEE before
    /// it answers FOREIGN_INTR ([`wire::Request::CallWait`], protocol
    /// version 4): the guest's interrupts on that vCPU wait as long, and a
    /// call shorter than it costs one request and one guest exit. Zero
    /// answers at once (the guest comes back with RETURN_FROM_RPC).
    pub call_wait: Duration,
}

impl Default for RemoteConfig {
    fn default() -> Self {
        RemoteConfig {
            name: format!("tosfwd-vmm pid {}", std::process::id()),
            timeout: Duration::from_secs(30),
            retry: Duration::from_millis(100),
            relay_supplicant: false,
            call_wait: Duration::ZERO,
        }
    }
}

/// Why the service could not be used.
#[derive(Debug, thiserror::Error)]
pub enum RemoteError {
    /// Connecting failed.
    #[error("cannot reach the TEE service at {addr}: {err}")]
    Connect {
        /// The service.
        addr: Address,
        /// Why.
        err: std::io::Error,
    },
    /// The service said no.
    #[error("the TEE service at {addr} refused this VMM: {reason}")]
    Refused {
        /// The service.
        addr: Address,
        /// Its reason.
        reason: String,
    },
    /// A frame could not be sent or received.
    #[error("the TEE service at {addr}: {err}")]
    Frame {
        /// The service.
        addr: Address,
        /// Why.
        err: FrameError,
    },
    /// The answer made no sense.
    #[error("the TEE service at {addr} broke the protocol: {what}")]
    Protocol {
        /// The service.
        addr: Address,
        /// How.
        what: String,
    },
    /// A keepalive ping got no answer: the connection is dead.
    #[error("the TEE service at {addr} did not answer a keepalive: {why}")]
    Keepalive {
        /// The service.
        addr: Address,
        /// Why.
        why: String,
    },
}

/// Why a request got no answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Failure {
    /// It is larger than a frame may be: not sent.
    TooLarge,
    /// The connection is gone.
    Lost,
}

/// A call in progress at the service.
#[derive(Debug)]
struct Thread {
    /// The connection it was started on.
    epoch: u64,
    /// Its spans, by slot.
    slots: Vec<MemRef>,
    /// Lost with its connection, and giving back an RPC buffer.
    lost: bool,
    /// The RPC argument buffer the guest gave it to carry relayed
    /// supplicant requests in (freed when the call ends).
    rpc_arg: Option<u64>,
    /// Where it is in carrying one.
    carry: carry::Phase,
}

impl Thread {
    /// A call started on connection `epoch` with these spans.
    fn new(epoch: u64, slots: Vec<MemRef>) -> Thread {
        Thread {
            epoch,
            slots,
            lost: false,
            rpc_arg: None,
            carry: carry::Phase::Idle,
        }
    }
}

/// One VM.
#[derive(Debug, Default)]
struct Vm {
    /// The connection on which the service knows it (0: none).
    created: u64,
    /// Its guest RAM, to share with the service on each connection.
    share: Option<SharedMemory>,
    /// The connection on which the service has its memory (0: none):
    /// memory parameters go by reference there.
    shared: u64,
    /// The connection on which the service refused it, said once.
    refused: u64,
    /// Guest-visible session id -> (connection, the service's id).
    sessions: HashMap<u32, (u64, u32)>,
    next_session: u32,
    /// Cookie -> (buffer, connection it was registered on). Weak: the
    /// mediator's registry owns the buffer (and tells it busy by its
    /// references).
    registered: HashMap<u64, (Weak<GuestBuffer>, u64)>,
    threads: HashMap<ThreadId, Thread>,
    /// Buffers the guest's tee-supplicant allocated for the TEE (relayed
    /// SHM_ALLOC), by the guest's cookie.
    guest_bufs: GuestBuffers,
    /// RPC argument buffers of calls given up before they could free
    /// them: handed back by DISABLE_SHM_CACHE.
    lost_rpc_args: Vec<u64>,
}

impl Vm {
    /// A guest-visible session id, not in use.
    fn new_session(&mut self) -> u32 {
        loop {
            self.next_session = self.next_session.wrapping_add(1);
            let id = self.next_session;
            if id != 0 && !self.sessions.contains_key(&id) {
                return id;
            }
        }
    }
}

/// What happened to the connections.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct RemoteStats {
    /// Connections made after the first.
    pub reconnects: u64,
    /// Calls that failed because the service went away.
    pub lost_calls: u64,
}

/// The TEE service as the mediator's backend.
#[derive(Debug)]
pub struct RemoteTee {
    addr: Address,
    config: RemoteConfig,
    link: Option<Link>,
    /// The number of the current connection, from 1.
    epoch: u64,
    thread_count: u32,
    revision: OsRevision,
    vms: BTreeMap<ClientId, Vm>,
    next_attempt: Option<Instant>,
    stats: RemoteStats,
}

/// The step of a call that failed with the connection.
fn lost(call: &mut StdCall) -> Step {
    call.finish(teec::ERROR_COMMUNICATION, teec::ORIGIN_COMMS);
    Step::Done
}

impl RemoteTee {
    /// Connects to the service at `addr`. Fails if it cannot be reached or
    /// refuses: a VMM starts with its TEE or not at all.
    pub fn connect(addr: Address, config: RemoteConfig) -> Result<RemoteTee, RemoteError> {
        let (s, thread_count, revision) = greet(&addr, &config)?;
        Ok(RemoteTee {
            addr,
            config,
            link: Some(s),
            epoch: 1,
            thread_count,
            revision,
            vms: BTreeMap::new(),
            next_attempt: None,
            stats: RemoteStats::default(),
        })
    }

    /// The service's address.
    pub fn address(&self) -> &Address {
        &self.addr
    }

    /// What happened to the connections.
    pub fn stats(&self) -> RemoteStats {
        self.stats
    }

    /// Whether the service is connected now.
    pub fn is_connected(&self) -> bool {
        self.link.is_some()
    }

    /// Drops the connection after `err`, saying so once.
    fn drop_link(&mut self, err: &RemoteError) {
        if self.link.take().is_some() {
            log::warn!("{err}; calls fail with TEEC_ERROR_COMMUNICATION until the service is back");
        }
    }

    /// A connection, made again if it was lost (at most once per
    /// `config.retry`), and `client` known to the service on it.
    fn ready(&mut self, client: ClientId) -> bool {
        let dead = self
            .link
            .as_ref()
            .and_then(|l| l.keepalive.as_ref()?.broken());
        if let Some(why) = dead {
            // Found dead while idle (the service restarted, say): made
            // again now rather than failing this call.
            let e = RemoteError::Keepalive {
                addr: self.addr.clone(),
                why,
            };
            self.drop_link(&e);
        }
        if self.link.is_none() {
            let now = Instant::now();
            if self.next_attempt.is_some_and(|t| now < t) {
                return false;
            }
            self.next_attempt = Some(now + self.config.retry);
            match greet(&self.addr, &self.config) {
                Ok((s, threads, _)) if threads >= self.thread_count => {
                    self.link = Some(s);
                    self.epoch += 1;
                    self.stats.reconnects += 1;
                    log::warn!(
                        "the TEE service at {} is back: the sessions and calls from before are lost",
                        self.addr
                    );
                }
                Ok((_, threads, _)) => {
                    log::error!(
                        "the TEE service at {} now has {threads} threads per VM, fewer than the \
                         {} the guests were told: not using it",
                        self.addr,
                        self.thread_count
                    );
                    return false;
                }
                Err(e) => {
                    log::debug!("{e}");
                    return false;
                }
            }
        }
        let epoch = self.epoch;
        if self.vms.get(&client).is_some_and(|vm| vm.created == epoch) {
            return true;
        }
        let create = if self.config.relay_supplicant {
            Request::VmCreatedRelaying { client: client.0 }
        } else {
            Request::VmCreated { client: client.0 }
        };
        match self.exchange(&create) {
            Ok(Response::Created(Ok(()))) => {
                self.vms.entry(client).or_default().created = epoch;
                self.share(client)
            }
            Ok(Response::Created(Err(e))) => {
                let vm = self.vms.entry(client).or_default();
                if vm.refused != epoch {
                    vm.refused = epoch;
                    log::error!(
                        "the TEE service at {} refused VM {}: {e:?}",
                        self.addr,
                        client.0
                    );
                }
                false
            }
            Ok(other) => {
                self.protocol(format!("{other:?} in answer to VmCreated"));
                false
            }
            Err(_) => false,
        }
    }

    /// One request and its answer. [`Failure::TooLarge`] if the request
    /// does not fit a frame (nothing was sent, the connection stays);
    /// [`Failure::Lost`] if the connection is gone (it has been dropped
    /// and logged).
    ///
    /// A keepalive ping on the connection ends before the request is sent,
    /// and none is sent until its answer is read.
    fn exchange(&mut self, req: &Request) -> Result<Response, Failure> {
        self.exchange_with(req, None)
    }

    /// [`RemoteTee::exchange`], `file` passed right after the request
    /// (SCM_RIGHTS, [`crate::fdpass`]).
    fn exchange_with(
        &mut self,
        req: &Request,
        file: Option<std::os::fd::BorrowedFd<'_>>,
    ) -> Result<Response, Failure> {
        let Some(link) = self.link.as_mut() else {
            return Err(Failure::Lost);
        };
        let bytes = match frame::encode(req) {
            Ok(b) => b,
            Err(e) => {
                log::warn!("the TEE service at {}: a call not sent: {e}", self.addr);
                return Err(Failure::TooLarge);
            }
        };
        if let Some(Err(why)) = link.keepalive.as_ref().map(Keepalive::begin) {
            let e = RemoteError::Keepalive {
                addr: self.addr.clone(),
                why,
            };
            self.drop_link(&e);
            return Err(Failure::Lost);
        }
        let s = &mut link.stream;
        let r = s
            .write_all(&bytes)
            .and_then(|()| s.flush())
            .and_then(|()| match file {
                Some(f) => crate::fdpass::FdChannel::send_fd(s, f),
                None => Ok(()),
            })
            .map_err(FrameError::from)
            .and_then(|()| frame::receive(s));
        if let Some(k) = &link.keepalive {
            k.end();
        }
        r.map_err(|err| {
            let e = RemoteError::Frame {
                addr: self.addr.clone(),
                err,
            };
            self.drop_link(&e);
            Failure::Lost
        })
    }

    fn protocol(&mut self, what: String) {
        let e = RemoteError::Protocol {
            addr: self.addr.clone(),
            what,
        };
        self.drop_link(&e);
    }

    /// Answers a call about a session, a buffer or a cancellation the
    /// service does not have (lost with an earlier connection, or never
    /// opened); `None` if it goes to the service.
    fn local_answer(&mut self, client: ClientId, call: &mut StdCall) -> Option<Step> {
        let epoch = self.epoch;
        let vm = self.vms.entry(client).or_default();
        let live = |vm: &Vm, s: u32| vm.sessions.get(&s).is_some_and(|(e, _)| *e == epoch);
        match &call.command {
            Command::Invoke { .. } | Command::CloseSession if !live(vm, call.session) => {
                // As OP-TEE answers a session it does not have.
                call.finish(teec::ERROR_BAD_PARAMETERS, teec::ORIGIN_TEE);
                Some(Step::Done)
            }
            Command::Cancel if !live(vm, call.session) => {
                call.finish(teec::SUCCESS, teec::ORIGIN_TEE);
                Some(Step::Done)
            }
            Command::UnregisterShm { cookie }
                if vm.registered.get(cookie).is_some_and(|(_, e)| *e != epoch) =>
            {
                vm.registered.remove(cookie);
                call.finish(teec::SUCCESS, teec::ORIGIN_TEE);
                Some(Step::Done)
            }
            _ => None,
        }
    }

    /// Takes the service's answer to a start or resume of `thread`.
    fn take_answer(
        &mut self,
        client: ClientId,
        thread: ThreadId,
        mut t: Thread,
        call: &mut StdCall,
        answer: Response,
        mem: &dyn GuestRam,
    ) -> Result<Carried, String> {
        let Response::Step(a) = answer else {
            return Err(format!("{answer:?} in answer to a call"));
        };
        for w in &a.writes {
            // Out of the frame, then into the guest.
            call.cost.bytes_copied += 2 * w.data.len() as u64;
            let m = t
                .slots
                .get(w.slot as usize)
                .ok_or_else(|| format!("a write to span {} of {}", w.slot, t.slots.len()))?;
            m.write(mem, w.offset, &w.data)
                .map_err(|e| format!("a write to span {}: {e}", w.slot))?;
        }
        match a.step {
            wire::Step::Done(o) => Ok(Carried::Step(self.finished(client, thread, t, call, o))),
            wire::Step::Rpc(wire::RpcRequest::Supplicant { id, func, params }) => {
                if !self.config.relay_supplicant {
                    return Err(format!(
                        "supplicant request {func} relayed to a VMM that did not ask for them"
                    ));
                }
                let req = relayed::request_from_wire(func, params).ok_or_else(|| {
                    format!("relayed supplicant request {func} with bad parameters")
                })?;
                t.lost = false;
                Ok(self.carry_request(client, thread, t, id, req, mem))
            }
            wire::Step::Rpc(r) => {
                let req = rpc_request(r)?;
                t.lost = false;
                self.park(client, thread, t);
                Ok(Carried::Step(Step::Rpc(req)))
            }
        }
    }

    /// Keeps `t` until the guest answers its RPC.
    fn park(&mut self, client: ClientId, thread: ThreadId, t: Thread) {
        self.vms
            .entry(client)
            .or_default()
            .threads
            .insert(thread, t);
    }

    /// Writes a finished call's results into `call`.
    fn finish(&mut self, client: ClientId, call: &mut StdCall, o: wire::Outcome) {
        call.finish(o.ret, o.ret_origin);
        for (p, out) in call.params.iter_mut().zip(o.params) {
            match (p, out) {
                (Param::Value { dir, a, b, c }, wire::ParamOut::Value { a: x, b: y, c: z })
                    if dir.is_output() =>
                {
                    (*a, *b, *c) = (x, y, z);
                }
                (Param::Memref { dir, size, .. }, wire::ParamOut::Memref { size: s })
                    if dir.is_output() =>
                {
                    *size = s;
                }
                _ => {}
            }
        }
        let epoch = self.epoch;
        let vm = self.vms.entry(client).or_default();
        let ok = call.ret == teec::SUCCESS;
        match &call.command {
            Command::OpenSession { .. } if ok => {
                let id = vm.new_session();
                vm.sessions.insert(id, (epoch, o.session));
                call.session = id;
            }
            Command::RegisterShm { cookie, buffer } if ok => {
                vm.registered
                    .insert(*cookie, (Arc::downgrade(buffer), epoch));
            }
            Command::UnregisterShm { cookie } if ok => {
                vm.registered.remove(cookie);
            }
            _ => {}
        }
    }

    /// The step of a call whose connection is gone: an RPC argument
    /// buffer the guest just allocated is given back first.
    fn lost_step(
        &mut self,
        client: ClientId,
        thread: ThreadId,
        mut t: Thread,
        call: &mut StdCall,
        reply: Option<&RpcReply>,
    ) -> Step {
        // The buffer the guest just gave, or the one the call carried
        // relayed requests in.
        let cookie = match reply {
            Some(RpcReply::Alloc(Some(cookie))) => Some(*cookie),
            _ => t.rpc_arg.take(),
        };
        if let Some(cookie) = cookie {
            t.lost = true;
            t.carry = carry::Phase::Idle;
            self.park(client, thread, t);
            return Step::Rpc(RpcRequest::Free { cookie });
        }
        self.stats.lost_calls += 1;
        lost(call)
    }

    /// Sends a start or resume and takes its answer; and again while
    /// the answer is for the service at once (a relayed request that
    /// could not be carried into the guest).
    fn call(
        &mut self,
        (client, thread): (ClientId, ThreadId),
        mut t: Thread,
        call: &mut StdCall,
        req: &Request,
        mut reply: Option<&RpcReply>,
        mem: &dyn GuestRam,
    ) -> Step {
        let mut next: Option<Request> = None;
        loop {
            let req = next.as_ref().unwrap_or(req);
            // Its cost (optee_mediator::cost): a request to the service.
            call.cost.tee_requests += 1;
            let answer = match self.exchange(req) {
                Ok(a) => a,
                Err(Failure::Lost) => return self.lost_step(client, thread, t, call, reply),
                Err(Failure::TooLarge) => {
                    if matches!(req, Request::Resume { .. }) {
                        // Parked at the service, and never to be resumed.
                        let _ = self.exchange(&Request::Abandon {
                            client: client.0,
                            thread,
                        });
                    }
                    self.lose_rpc_arg(client, &t);
                    call.finish(teec::ERROR_OUT_OF_MEMORY, teec::ORIGIN_COMMS);
                    return Step::Done;
                }
            };
            let (epoch, rpc_arg) = (self.epoch, t.rpc_arg);
            match self.take_answer(client, thread, t, call, answer, mem) {
                Ok(Carried::Step(step)) => return step,
                Ok(Carried::Answer(back, answer)) => {
                    (t, next, reply) = (back, Some(answer), None);
                }
                Err(what) => {
                    self.protocol(what);
                    let mut t = Thread::new(epoch, Vec::new());
                    t.rpc_arg = rpc_arg;
                    return self.lost_step(client, thread, t, call, reply);
                }
            }
        }
    }

    /// Keeps a given-up call's RPC argument buffer for DISABLE_SHM_CACHE.
    fn lose_rpc_arg(&mut self, client: ClientId, t: &Thread) {
        if let Some(cookie) = t.rpc_arg {
            self.vms
                .entry(client)
                .or_default()
                .lost_rpc_args
                .push(cookie);
        }
    }

    /// Starts a call: answered here if the service is gone or does not
    /// have what it names, else sent.
    fn start_call(
        &mut self,
        client: ClientId,
        thread: ThreadId,
        call: &mut StdCall,
        mem: &dyn GuestRam,
    ) -> Step {
        if !self.ready(client) {
            self.stats.lost_calls += 1;
            return lost(call);
        }
        if let Some(step) = self.local_answer(client, call) {
            return step;
        }
        let (wire_call, slots) = match self.wire_call(client, call, mem) {
            Ok(x) => x,
            Err(ret) => {
                call.finish(ret, teec::ORIGIN_COMMS);
                return Step::Done;
            }
        };
        // Memory goes by value: read from the guest, then into the frame.
        call.cost.bytes_copied += 2 * span_bytes(&wire_call);
        let t = Thread::new(self.epoch, slots);
        let req = Request::Start {
            client: client.0,
            thread,
            call: wire_call,
        };
        self.call((client, thread), t, call, &req, None, mem)
    }
}

impl Backend for RemoteTee {
    fn thread_count(&self) -> u32 {
        self.thread_count
    }

    fn os_revision(&self) -> OsRevision {
        self.revision
    }

    fn vm_created(&mut self, client: ClientId) -> Result<(), BackendError> {
        if self.vms.get(&client).is_some_and(|vm| vm.created != 0) {
            return Err(BackendError::ClientExists(client));
        }
        // Its memory to share, if the VMM said so before creating it.
        let share = self.vms.remove(&client).and_then(|vm| vm.share);
        self.vms.insert(
            client,
            Vm {
                share,
                ..Vm::default()
            },
        );
        if self.ready(client) {
            Ok(())
        } else {
            self.vms.remove(&client);
            Err(BackendError::Refused(format!(
                "the TEE service at {} did not take the VM",
                self.addr
            )))
        }
    }

    fn vm_destroyed(&mut self, client: ClientId) {
        let Some(vm) = self.vms.remove(&client) else {
            return;
        };
        if vm.created == self.epoch && self.link.is_some() {
            let _ = self.exchange(&Request::VmDestroyed { client: client.0 });
        }
    }

    fn enable_shm_cache(&mut self, client: ClientId) -> bool {
        if !self.ready(client) {
            return true;
        }
        match self.exchange(&Request::EnableShmCache { client: client.0 }) {
            Ok(Response::ShmCache(b)) => b,
            Ok(other) => {
                self.protocol(format!("{other:?} in answer to EnableShmCache"));
                true
            }
            Err(_) => true,
        }
    }

    /// Argument buffers of calls given up while they carried relayed
    /// requests come first; then the service's.
    fn disable_shm_cache(&mut self, client: ClientId) -> CacheDisable {
        if let Some(c) = self
            .vms
            .get_mut(&client)
            .and_then(|vm| vm.lost_rpc_args.pop())
        {
            return CacheDisable::Freed(c);
        }
        if !self.ready(client) {
            return CacheDisable::Empty;
        }
        match self.exchange(&Request::DisableShmCache { client: client.0 }) {
            Ok(Response::Disabled(d)) => match d {
                wire::Disabled::Freed(c) => CacheDisable::Freed(c),
                wire::Disabled::Empty => CacheDisable::Empty,
                wire::Disabled::Busy => CacheDisable::Busy,
            },
            Ok(other) => {
                self.protocol(format!("{other:?} in answer to DisableShmCache"));
                CacheDisable::Empty
            }
            Err(_) => CacheDisable::Empty,
        }
    }

    fn start(
        &mut self,
        client: ClientId,
        thread: ThreadId,
        call: &mut StdCall,
        mem: &dyn GuestRam,
    ) -> Step {
        let closing = matches!(call.command, Command::CloseSession).then_some(call.session);
        let step = self.start_call(client, thread, call, mem);
        // A session is closed whatever the answer, as the mediator takes it.
        if let (Some(s), Some(vm)) = (closing, self.vms.get_mut(&client)) {
            vm.sessions.remove(&s);
        }
        step
    }

    fn resume(
        &mut self,
        client: ClientId,
        thread: ThreadId,
        call: &mut StdCall,
        reply: RpcReply,
        mem: &dyn GuestRam,
    ) -> Step {
        let Some(mut t) = self
            .vms
            .get_mut(&client)
            .and_then(|vm| vm.threads.remove(&thread))
        else {
            call.finish(teec::ERROR_BAD_STATE, teec::ORIGIN_COMMS);
            return Step::Done;
        };
        if t.lost || t.epoch != self.epoch || self.link.is_none() {
            if t.lost {
                // The RPC buffer is given back: the call ends.
                self.stats.lost_calls += 1;
                return lost(call);
            }
            return self.lost_step(client, thread, t, call, Some(&reply));
        }
        if !matches!(t.carry, carry::Phase::Idle) {
            return match self.carried_reply(client, thread, t, call, reply, mem) {
                Carried::Step(step) => step,
                Carried::Answer(t, req) => self.call((client, thread), t, call, &req, None, mem),
            };
        }
        let wire_reply = self.wire_reply(client, &reply, &mut t.slots, mem);
        let req = Request::Resume {
            client: client.0,
            thread,
            reply: wire_reply,
        };
        self.call((client, thread), t, call, &req, Some(&reply), mem)
    }

    fn abandon(&mut self, client: ClientId, thread: ThreadId) {
        let Some(t) = self
            .vms
            .get_mut(&client)
            .and_then(|vm| vm.threads.remove(&thread))
        else {
            return;
        };
        self.lose_rpc_arg(client, &t);
        if !t.lost && t.epoch == self.epoch && self.link.is_some() {
            let _ = self.exchange(&Request::Abandon {
                client: client.0,
                thread,
            });
        }
    }
}
