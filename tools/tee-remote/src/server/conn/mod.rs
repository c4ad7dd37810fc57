// SPDX-License-Identifier: Apache-2.0 OR MIT
//! One VMM connection: its VMs, their calls in progress, sessions and
//! registered buffers, the service's own policy over them (its quotas
//! count all the connection's VMs together), and the teardown that gives
//! everything back.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::time::{Duration, Instant};

use optee_mediator::backend::{
    CacheDisable, ClientId, Command, Param, RpcCmdReply, RpcReply, RpcRequest, StdCall, Step,
};
use optee_mediator::mem::GuestRam;
use optee_mediator::msg::{login, teec, MsgArg, MAX_PARAMS};
use optee_mediator::progress::Progress;
use optee_mediator::ratelimit::{LogLimiter, Verdict};
use optee_mediator::relay::Relay;
use optee_mediator::shm::GuestBuffer;
use optee_mediator::{LoginPolicy, Policy, Uuid};

use super::{Service, VmOptions, VmTee};
use crate::policy::PeerLimits;
use crate::relayed;
use crate::shadow::Shadow;
use crate::wire::{self, Request, Response, MAX_FRAME};

mod memory;
mod relaying;
mod shared;
mod wait;

use memory::Space;
use relaying::{answered, give_up, take_relayed, Carrying};
use wait::settle;

/// Bytes of spans one call may hold in the service (its start's and its
/// RPC replies' together).
pub const MAX_CALL_BYTES: usize = 2 * MAX_FRAME as usize;

/// How a peer broke the protocol: the connection is dropped.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Violation {
    /// The first request was not a greeting.
    #[error("the first request was not a greeting")]
    NoHello,
    /// A second greeting.
    #[error("a second greeting")]
    HelloAgain,
    /// An id this connection did not create.
    #[error("VM {0} was not created on this connection")]
    UnknownVm(u16),
    /// A thread beyond the TEE's.
    #[error("thread {thread} of VM {vm} is beyond the TEE's {count} threads")]
    BadThread {
        /// The VM.
        vm: u16,
        /// The thread.
        thread: u32,
        /// The TEE's threads.
        count: u32,
    },
    /// A start on a thread with a call.
    #[error("thread {thread} of VM {vm} already has a call")]
    ThreadBusy {
        /// The VM.
        vm: u16,
        /// The thread.
        thread: u32,
    },
    /// A resume of a thread without a parked call.
    #[error("thread {thread} of VM {vm} has no parked call")]
    ThreadIdle {
        /// The VM.
        vm: u16,
        /// The thread.
        thread: u32,
    },
    /// An answer to a relayed supplicant request out of turn, or not one.
    #[error("bad answer to a relayed supplicant request: {0}")]
    BadRelayAnswer(String),
    /// A buffer or span that is not one.
    #[error("bad memory parameter: {0}")]
    BadSpan(String),
    /// A ShareMemory whose file did not come.
    #[error("memory shared without its file: {0}")]
    NoFile(String),
    /// Shared memory in a VM that shares none, or by value in one that
    /// does.
    #[error("{0}")]
    NotShared(&'static str),
    /// A span in a buffer never registered.
    #[error("buffer {0:#x} is not registered")]
    UnknownCookie(u64),
    /// More parameters than an argument page holds.
    #[error("{0} parameters, more than the {MAX_PARAMS} an OP-TEE message holds")]
    TooManyParams(usize),
    /// Too many bytes held for one call.
    #[error("a call's memory parameters hold more than {MAX_CALL_BYTES} bytes")]
    TooMuchData,
}

/// A request answered with a refusal instead of reaching the TEE.
#[derive(Debug)]
enum Fault {
    Violation(Violation),
    Refuse { ret: u32, why: String },
}

impl From<Violation> for Fault {
    fn from(v: Violation) -> Self {
        Fault::Violation(v)
    }
}

/// A call in progress on a thread.
#[derive(Debug)]
struct Running {
    call: StdCall,
    shadow: Shadow,
    slots: u32,
    /// The relayed supplicant request the call carries to the VMM, if
    /// it does (its call is parked in a FOREIGN_INTR meanwhile).
    carrying: Option<Carrying>,
}

/// One VM of the connection.
#[derive(Debug)]
struct Vm {
    id: ClientId,
    tee: VmTee,
    sessions: HashSet<u32>,
    registered: HashMap<u64, Arc<GuestBuffer>>,
    pages: u64,
    threads: HashMap<u32, Running>,
    /// Where its partition's supplicant requests wait for the VMM's guest
    /// (created with [`Request::VmCreatedRelaying`]).
    relay: Option<Arc<Relay>>,
    /// Advanced by its backend when a call's result or a relayed request
    /// arrives; `None` for a backend whose calls return at once.
    progress: Option<Arc<Progress>>,
    /// Its guest RAM, if its VMM shared it ([`Request::ShareMemory`]):
    /// then every memory parameter names its pages. After `tee`, so that
    /// the backend (and whatever it registered from the mapping) is gone
    /// before the mapping is.
    shared: Option<shared::SharedRam>,
    /// The bytes of guest RAM it shares.
    shared_bytes: u64,
    /// Whether it has started a call (memory is shared before).
    called: bool,
}

impl Vm {
    /// The memory a call of this VM is made in: its shared guest RAM, or
    /// the call's spans.
    fn ram<'a>(shared: &'a Option<shared::SharedRam>, shadow: &'a Shadow) -> &'a dyn GuestRam {
        match shared {
            Some(r) => &**r,
            None => shadow,
        }
    }

    /// Its shared RAM, or why a shared reference is a violation.
    fn shared_ram(&self) -> Result<&shared::SharedRam, Violation> {
        self.shared.as_ref().ok_or(Violation::NotShared(
            "a shared memory reference from a VM that shares no memory",
        ))
    }

    /// A violation if its memory is shared (a span by value there).
    fn by_value(&self) -> Result<(), Violation> {
        match self.shared {
            Some(_) => Err(Violation::NotShared(
                "memory by value from a VM that shares its memory",
            )),
            None => Ok(()),
        }
    }
}

/// A connection's state. Dropping it tears its VMs down in the TEE.
pub struct Connection {
    service: Arc<Service>,
    /// The quotas here are the peer's: all its VMs together.
    policy: Policy,
    limits: PeerLimits,
    peer: String,
    vms: HashMap<u16, Vm>,
    space: Space,
    refusals: LogLimiter,
    /// How long a call still in the TEE may be waited for before the
    /// peer is answered FOREIGN_INTR ([`Request::CallWait`]).
    call_wait: Duration,
}

impl std::fmt::Debug for Connection {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Connection")
            .field("peer", &self.peer)
            .field("vms", &self.vms.len())
            .finish()
    }
}

/// A finished call's results, as sent.
fn outcome(call: &StdCall) -> wire::Outcome {
    wire::Outcome {
        ret: call.ret,
        ret_origin: call.ret_origin,
        session: call.session,
        params: call
            .params
            .iter()
            .map(|p| match p {
                Param::None => wire::ParamOut::None,
                Param::Value { a, b, c, .. } => wire::ParamOut::Value {
                    a: *a,
                    b: *b,
                    c: *c,
                },
                Param::Memref { size, .. } => wire::ParamOut::Memref { size: *size },
            })
            .collect(),
    }
}

fn rpc_request(r: RpcRequest) -> wire::RpcRequest {
    match r {
        RpcRequest::Alloc { size } => wire::RpcRequest::Alloc { size },
        RpcRequest::Free { cookie } => wire::RpcRequest::Free { cookie },
        RpcRequest::ForeignIntr => wire::RpcRequest::ForeignIntr,
        RpcRequest::Cmd { cookie, arg } => wire::RpcRequest::Cmd {
            cookie,
            arg: wire_arg(&arg),
        },
    }
}

fn wire_arg(arg: &MsgArg) -> wire::Arg {
    let h = &arg.header;
    wire::Arg {
        cmd: h.cmd,
        func: h.func,
        session: h.session,
        cancel_id: h.cancel_id,
        ret: h.ret,
        ret_origin: h.ret_origin,
        params: arg.params.iter().map(|p| [p.attr, p.a, p.b, p.c]).collect(),
    }
}

/// The answer to a call refused before it reached the TEE.
fn refused(ret: u32) -> Response {
    Response::Step(wire::StepAnswer {
        writes: Vec::new(),
        step: wire::Step::Done(wire::Outcome {
            ret,
            ret_origin: teec::ORIGIN_COMMS,
            session: 0,
            params: Vec::new(),
        }),
    })
}

impl Connection {
    /// A connection of `peer` (named in logs) under `policy`, with the
    /// default [`PeerLimits`].
    pub fn new(service: Arc<Service>, policy: Policy, peer: String) -> Connection {
        Connection::with_limits(service, policy, PeerLimits::default(), peer)
    }

    /// A connection of `peer` (named in logs) under `policy` and `limits`.
    pub fn with_limits(
        service: Arc<Service>,
        policy: Policy,
        limits: PeerLimits,
        peer: String,
    ) -> Connection {
        let refusals = LogLimiter::new(policy.refusal_logs_per_second);
        Connection {
            service,
            policy,
            limits,
            peer,
            vms: HashMap::new(),
            space: Space::new(),
            refusals,
            call_wait: Duration::ZERO,
        }
    }

    /// Answers one request, or says how it broke the protocol.
    pub fn handle(&mut self, req: Request) -> Result<Response, Violation> {
        match req {
            Request::Hello(_) => Err(Violation::HelloAgain),
            // A keepalive: it counts against nothing.
            Request::Ping => Ok(Response::Pong),
            Request::VmCreated { client } => Ok(self.vm_created(client, VmOptions::default())),
            Request::VmCreatedRelaying { client } => Ok(self.vm_created(
                client,
                VmOptions {
                    relay_supplicant: true,
                },
            )),
            Request::VmDestroyed { client } => {
                let vm = self
                    .vms
                    .remove(&client)
                    .ok_or(Violation::UnknownVm(client))?;
                self.teardown(client, vm);
                Ok(Response::Ack)
            }
            Request::EnableShmCache { client } => {
                let vm = self.vm_mut(client)?;
                let id = vm.id;
                Ok(Response::ShmCache(vm.tee.with(|b| b.enable_shm_cache(id))))
            }
            Request::DisableShmCache { client } => {
                let vm = self.vm_mut(client)?;
                let id = vm.id;
                Ok(Response::Disabled(
                    match vm.tee.with(|b| b.disable_shm_cache(id)) {
                        CacheDisable::Freed(c) => wire::Disabled::Freed(c),
                        CacheDisable::Empty => wire::Disabled::Empty,
                        CacheDisable::Busy => wire::Disabled::Busy,
                    },
                ))
            }
            Request::Start {
                client,
                thread,
                call,
            } => self.start(client, thread, call),
            Request::Resume {
                client,
                thread,
                reply,
            } => self.resume(client, thread, reply),
            // The file comes only beside the frame: serve_greeted reads it
            // and calls share_memory.
            Request::ShareMemory { .. } => Err(Violation::NoFile(
                "the request reached the connection without its file".to_owned(),
            )),
            Request::CallWait { micros } => {
                let micros = micros.min(self.limits.max_call_wait_us);
                self.call_wait = Duration::from_micros(micros.into());
                Ok(Response::CallWaitSet { micros })
            }
            Request::Abandon { client, thread } => {
                let vm = self.vm_mut(client)?;
                let id = vm.id;
                if let Some(r) = vm.threads.remove(&thread) {
                    give_up(vm, &r);
                    vm.tee.with(|b| b.abandon(id, thread));
                }
                Ok(Response::Ack)
            }
        }
    }

    /// Answers [`Request::ShareMemory`] with its file: the VM's guest RAM
    /// mapped if the policy lets the peer share, the VM has made no call
    /// yet, and the file and regions pass the checks (a memfd on tmpfs sealed
    /// against shrinking, regions aligned, apart and within it).
    pub fn share_memory(
        &mut self,
        client: u16,
        regions: Vec<wire::MemRegion>,
        file: std::os::fd::OwnedFd,
    ) -> Result<Response, Violation> {
        let allowed = self.limits.share_memory;
        let room = self
            .limits
            .max_shared_bytes
            .saturating_sub(self.shared_bytes());
        let peer = self.peer.clone();
        let vm = self.vm_mut(client)?;
        let refuse = |why: &str| Ok(Response::Shared(Err(why.to_owned())));
        if !allowed {
            return refuse("this peer's policy rule does not let it share memory (share_memory)");
        }
        if vm.shared.is_some() {
            return refuse("the VM's memory is shared already");
        }
        if vm.called {
            return refuse("memory is shared before the VM's first call");
        }
        let bytes = regions
            .iter()
            .fold(0u64, |sum, r| sum.saturating_add(r.size));
        if bytes > room {
            return Ok(Response::Shared(Err(format!(
                "{bytes:#x} bytes more than this peer may share ({room:#x} left of its max_shared_bytes)"
            ))));
        }
        match shared::map(file, &regions) {
            Ok(ram) => {
                log::info!(
                    "{peer}: VM {client} shares its memory ({} regions, {} MiB): memory parameters by reference",
                    regions.len(),
                    bytes >> 20
                );
                vm.shared = Some(ram);
                vm.shared_bytes = bytes;
                Ok(Response::Shared(Ok(())))
            }
            Err(why) => {
                log::warn!("{peer}: VM {client}: memory not shared: {why}");
                Ok(Response::Shared(Err(why)))
            }
        }
    }

    fn vm(&self, client: u16) -> Result<&Vm, Violation> {
        self.vms.get(&client).ok_or(Violation::UnknownVm(client))
    }

    fn vm_mut(&mut self, client: u16) -> Result<&mut Vm, Violation> {
        self.vms
            .get_mut(&client)
            .ok_or(Violation::UnknownVm(client))
    }

    /// Calls in progress (parked), all VMs together.
    fn calls(&self) -> usize {
        self.vms.values().map(|v| v.threads.len()).sum()
    }

    /// Sessions open and being opened, all VMs together: an open parked
    /// in the TEE counts, as the VMM's mediator counts it.
    fn sessions(&self) -> usize {
        let opening = |v: &Vm| {
            v.threads
                .values()
                .filter(|r| matches!(r.call.command, Command::OpenSession { .. }))
                .count()
        };
        self.vms
            .values()
            .map(|v| v.sessions.len() + opening(v))
            .sum()
    }

    /// Buffers registered and their pages, all VMs together.
    /// Guest RAM bytes shared, all VMs together.
    fn shared_bytes(&self) -> u64 {
        self.vms.values().map(|v| v.shared_bytes).sum()
    }

    fn registered(&self) -> (usize, u64) {
        self.vms
            .values()
            .fold((0, 0), |(n, p), v| (n + v.registered.len(), p + v.pages))
    }

    /// Guest bytes the calls in progress hold, all VMs together.
    fn held(&self) -> usize {
        self.vms
            .values()
            .flat_map(|v| v.threads.values())
            .map(|r| r.shadow.bytes())
            .sum()
    }

    /// Bytes one more call's spans may hold: what `max_call_bytes` leaves,
    /// within [`MAX_CALL_BYTES`].
    fn call_budget(&self) -> usize {
        let max = usize::try_from(self.limits.max_call_bytes).unwrap_or(usize::MAX);
        max.saturating_sub(self.held())
    }

    fn vm_created(&mut self, client: u16, options: VmOptions) -> Response {
        if self.vms.contains_key(&client) {
            return Response::Created(Err(wire::CreateError::Exists));
        }
        let max = self.limits.max_vms;
        if self.vms.len() >= max as usize {
            return Response::Created(Err(wire::CreateError::Refused(format!(
                "this peer may have {max} VMs (max_vms of its policy rule)"
            ))));
        }
        let Some(id) = self.service.allocate() else {
            return Response::Created(Err(wire::CreateError::Refused(
                "the TEE has no client id left".to_owned(),
            )));
        };
        let mut tee = match self.service.open_vm(id, options) {
            Ok(t) => t,
            Err(e) => {
                self.service.release(id);
                return Response::Created(Err(wire::CreateError::Refused(e)));
            }
        };
        let relay = tee.with(|b| b.relay(id));
        let progress = tee.with(|b| b.progress());
        if options.relay_supplicant && relay.is_none() {
            tee.with(|b| b.vm_destroyed(id));
            self.service.release(id);
            return Response::Created(Err(wire::CreateError::Refused(
                "the VM's TEE has no supplicant requests to relay (not a partition of its own)"
                    .to_owned(),
            )));
        }
        log::info!("{}: VM {client} is the TEE's client {}", self.peer, id.0);
        self.vms.insert(
            client,
            Vm {
                id,
                tee,
                sessions: HashSet::new(),
                registered: HashMap::new(),
                pages: 0,
                threads: HashMap::new(),
                relay,
                progress,
                shared: None,
                shared_bytes: 0,
                called: false,
            },
        );
        Response::Created(Ok(()))
    }

    /// Logs a refusal, within the policy's rate.
    fn log_refusal(&mut self, client: u16, why: &str) {
        if let Verdict::Log { suppressed } = self.refusals.check(Instant::now()) {
            if suppressed > 0 {
                log::warn!("{}: {suppressed} refusals not logged", self.peer);
            }
            log::warn!("{}: VM {client}: refused: {why}", self.peer);
        }
    }

    /// The mediator's call from the wire's, its spans in `shadow`, checked
    /// against the policy.
    fn build(
        &mut self,
        client: u16,
        call: wire::Call,
        shadow: &mut Shadow,
    ) -> Result<StdCall, Fault> {
        let q = self.policy.quotas;
        if call.params.len() > MAX_PARAMS as usize {
            return Err(Violation::TooManyParams(call.params.len()).into());
        }
        let limit = q.max_calls.unwrap_or(self.service.thread_count());
        if self.calls() >= limit as usize {
            return Err(Fault::Refuse {
                ret: teec::ERROR_BUSY,
                why: format!("{limit} calls in progress already"),
            });
        }
        let sessions = self.sessions();
        let (buffers, pages) = self.registered();
        let budget = self.call_budget();
        let vm = self.vms.get(&client).ok_or(Violation::UnknownVm(client))?;
        let mut slot = 0;
        let mut params = Vec::with_capacity(call.params.len());
        for p in call.params {
            params.push(match p {
                wire::Param::None => Param::None,
                wire::Param::Value { dir: d, a, b, c } => Param::Value {
                    dir: relayed::from_wire_dir(d),
                    a,
                    b,
                    c,
                },
                wire::Param::SharedMemref { dir: d, mem, size } => {
                    let ram = vm.shared_ram()?;
                    let mem = match mem {
                        Some(r) => Some(Self::shared_ref(vm, ram, r, q.max_pages_per_buffer)?),
                        None => None,
                    };
                    Param::Memref {
                        dir: relayed::from_wire_dir(d),
                        mem,
                        size,
                    }
                }
                wire::Param::Memref { dir: d, mem, size } => {
                    vm.by_value()?;
                    let mem = match mem {
                        Some(s) => {
                            let m = Self::span(
                                &mut self.space,
                                vm,
                                q.max_pages_per_buffer,
                                budget,
                                s,
                                slot,
                                shadow,
                            )?;
                            slot += 1;
                            Some(m)
                        }
                        None => None,
                    };
                    Param::Memref {
                        dir: relayed::from_wire_dir(d),
                        mem,
                        size,
                    }
                }
            });
        }
        let command = match call.command {
            wire::Command::OpenSession {
                ta,
                client: cl,
                login: lg,
            } => {
                let ta = Uuid(ta);
                if !self.policy.tas.allows(&ta) {
                    return Err(Fault::Refuse {
                        ret: teec::ERROR_ACCESS_DENIED,
                        why: format!("TA {ta} is not allowed"),
                    });
                }
                if sessions >= q.max_sessions as usize {
                    return Err(Fault::Refuse {
                        ret: teec::ERROR_OUT_OF_MEMORY,
                        why: format!("{sessions} sessions open or being opened already"),
                    });
                }
                let (client_uuid, lg) = match self.policy.login {
                    LoginPolicy::ForcePublic => (Uuid::NIL, login::PUBLIC),
                    LoginPolicy::DenyKernel if login::is_kernel(lg) => {
                        return Err(Fault::Refuse {
                            ret: teec::ERROR_ACCESS_DENIED,
                            why: format!("kernel login {lg:#x}"),
                        })
                    }
                    _ => (Uuid(cl), lg),
                };
                Command::OpenSession {
                    ta,
                    client: client_uuid,
                    login: lg,
                }
            }
            wire::Command::Invoke { func } => Command::Invoke { func },
            wire::Command::CloseSession => Command::CloseSession,
            wire::Command::Cancel => Command::Cancel,
            wire::Command::RegisterShared { cookie, buffer } => {
                let ram = vm.shared_ram()?;
                Self::check_register(vm, cookie, buffers, q.max_buffers)?;
                let room = q.max_total_pages.saturating_sub(pages);
                let buffer = shared::buffer(ram, buffer, q.max_pages_per_buffer.min(room))?;
                Command::RegisterShm { cookie, buffer }
            }
            wire::Command::RegisterShm { cookie, buffer } => {
                vm.by_value()?;
                Self::check_register(vm, cookie, buffers, q.max_buffers)?;
                let room = q.max_total_pages.saturating_sub(pages);
                let (buffer, _) = self.space.place(buffer, q.max_pages_per_buffer.min(room))?;
                Command::RegisterShm { cookie, buffer }
            }
            wire::Command::UnregisterShm { cookie } => Command::UnregisterShm { cookie },
        };
        Ok(StdCall {
            command,
            session: call.session,
            cancel_id: call.cancel_id,
            params,
            ret: teec::SUCCESS,
            ret_origin: teec::ORIGIN_TEE,
            cost: Default::default(),
        })
    }

    fn check_thread(&self, client: u16, thread: u32) -> Result<(), Violation> {
        let vm = self.vm(client)?;
        let count = self.service.thread_count();
        if thread >= count {
            return Err(Violation::BadThread {
                vm: client,
                thread,
                count,
            });
        }
        if vm.threads.contains_key(&thread) {
            return Err(Violation::ThreadBusy { vm: client, thread });
        }
        Ok(())
    }

    fn start(&mut self, client: u16, thread: u32, call: wire::Call) -> Result<Response, Violation> {
        self.check_thread(client, thread)?;
        self.vm_mut(client)?.called = true;
        let mut shadow = Shadow::default();
        let mut std = match self.build(client, call, &mut shadow) {
            Ok(c) => c,
            Err(Fault::Violation(v)) => return Err(v),
            Err(Fault::Refuse { ret, why }) => {
                self.log_refusal(client, &why);
                return Ok(refused(ret));
            }
        };
        let slots = shadow_slots(&std);
        let wait = self.call_wait;
        let vm = self.vm_mut(client)?;
        let id = vm.id;
        let seen = vm.progress.as_ref().map(|p| p.seen());
        let ram = Vm::ram(&vm.shared, &shadow);
        let step = vm.tee.with(|b| b.start(id, thread, &mut std, ram));
        let mut running = Running {
            call: std,
            shadow,
            slots,
            carrying: None,
        };
        let step = settle(vm, thread, &mut running, step, seen, wait);
        Ok(after(vm, thread, running, step))
    }

    fn resume(
        &mut self,
        client: u16,
        thread: u32,
        reply: wire::Reply,
    ) -> Result<Response, Violation> {
        let max_pages = self.policy.quotas.max_pages_per_buffer;
        // What the peer's other calls leave this one (it holds what it
        // holds already).
        let budget = self.call_budget().saturating_add(
            self.vm(client)?
                .threads
                .get(&thread)
                .map_or(0, |r| r.shadow.bytes()),
        );
        let vm = self
            .vms
            .get_mut(&client)
            .ok_or(Violation::UnknownVm(client))?;
        let mut running = vm
            .threads
            .remove(&thread)
            .ok_or(Violation::ThreadIdle { vm: client, thread })?;
        // The answer to a relayed request the call carried: to the relay,
        // and the call goes on from its FOREIGN_INTR.
        let reply = match (running.carrying.take(), reply) {
            (Some(c), wire::Reply::Supplicant { id, ret, params }) if id == c.id => {
                let Some(answer) = relayed::answer_from_wire(ret, params, c.params) else {
                    return Err(Violation::BadRelayAnswer(format!(
                        "more outputs than the request's {} parameters",
                        c.params
                    )));
                };
                if let Some((func, params)) = answered(vm, c, answer) {
                    running.carrying = Some(Carrying { id: 0, params: 1 });
                    vm.threads.insert(thread, running);
                    return Ok(Response::Step(wire::StepAnswer {
                        writes: Vec::new(),
                        step: wire::Step::Rpc(wire::RpcRequest::Supplicant {
                            id: 0,
                            func,
                            params,
                        }),
                    }));
                }
                wire::Reply::ForeignIntr
            }
            (Some(c), other) => {
                return Err(Violation::BadRelayAnswer(format!(
                    "{other:?} while request {} was with the guest",
                    c.id
                )))
            }
            (None, wire::Reply::Supplicant { id, .. }) => {
                return Err(Violation::BadRelayAnswer(format!(
                    "an answer to request {id}, which thread {thread} did not carry"
                )))
            }
            (None, other) => other,
        };
        let reply = match reply {
            wire::Reply::Supplicant { .. } => RpcReply::ForeignIntr,
            wire::Reply::Alloc(c) => RpcReply::Alloc(c),
            wire::Reply::Free => RpcReply::Free,
            wire::Reply::ForeignIntr => RpcReply::ForeignIntr,
            wire::Reply::Cmd {
                delivered,
                ret,
                params,
            } => {
                if params.len() > MAX_PARAMS as usize {
                    vm.threads.insert(thread, running);
                    return Err(Violation::TooManyParams(params.len()));
                }
                let mut out = Vec::with_capacity(params.len());
                for p in params {
                    let o = Self::rpc_out(&mut self.space, vm, &mut running, p, max_pages, budget);
                    match o {
                        Ok(o) => out.push(o),
                        Err(v) => {
                            vm.threads.insert(thread, running);
                            return Err(v);
                        }
                    }
                }
                RpcReply::Cmd(RpcCmdReply {
                    delivered,
                    ret,
                    params: out,
                })
            }
        };
        let id = vm.id;
        let seen = vm.progress.as_ref().map(|p| p.seen());
        let ram = Vm::ram(&vm.shared, &running.shadow);
        let step = vm
            .tee
            .with(|b| b.resume(id, thread, &mut running.call, reply, ram));
        let step = settle(vm, thread, &mut running, step, seen, self.call_wait);
        Ok(after(vm, thread, running, step))
    }

    /// Gives back everything `vm` holds: its parked calls abandoned, its
    /// sessions and buffers dropped with the TEE's client.
    fn teardown(&mut self, client: u16, mut vm: Vm) {
        for r in vm.threads.values() {
            give_up(&vm, r);
        }
        let (id, threads) = (vm.id, &vm.threads);
        vm.tee.with(|tee| {
            for thread in threads.keys() {
                tee.abandon(id, *thread);
            }
            tee.vm_destroyed(id);
        });
        self.service.release(vm.id);
        log::info!(
            "{}: VM {client} (TEE client {}) gone: {} sessions, {} registered buffers, {} calls in progress",
            self.peer,
            vm.id.0,
            vm.sessions.len(),
            vm.registered.len(),
            vm.threads.len()
        );
    }
}

impl Drop for Connection {
    fn drop(&mut self) {
        let vms: Vec<(u16, Vm)> = self.vms.drain().collect();
        for (client, vm) in vms {
            self.teardown(client, vm);
        }
    }
}

/// Spans a started call holds: its memory parameters with memory.
fn shadow_slots(call: &StdCall) -> u32 {
    call.params
        .iter()
        .filter(|p| matches!(p, Param::Memref { mem: Some(_), .. }))
        .count() as u32
}

/// The answer to a start or resume; a finished call's effects on the VM's
/// sessions and buffers recorded, a parked one kept (carrying a relayed
/// supplicant request to the VMM if one waits and the call is in a
/// FOREIGN_INTR).
fn after(vm: &mut Vm, thread: u32, mut running: Running, step: Step) -> Response {
    let writes = running.shadow.take_writes();
    let step = match step {
        Step::Done => {
            let c = &running.call;
            let ok = c.ret == teec::SUCCESS;
            match &c.command {
                Command::OpenSession { .. } if ok => {
                    vm.sessions.insert(c.session);
                }
                Command::CloseSession => {
                    vm.sessions.remove(&c.session);
                }
                Command::RegisterShm { cookie, buffer } if ok => {
                    vm.pages += buffer.pages().len() as u64;
                    vm.registered.insert(*cookie, buffer.clone());
                }
                Command::UnregisterShm { cookie } if ok => {
                    if let Some(r) = vm.registered.remove(cookie) {
                        vm.pages -= r.pages().len() as u64;
                    }
                }
                _ => {}
            }
            wire::Step::Done(outcome(c))
        }
        Step::Rpc(RpcRequest::ForeignIntr) => match take_relayed(vm) {
            Some((c, func, params)) => {
                running.carrying = Some(c);
                vm.threads.insert(thread, running);
                wire::Step::Rpc(wire::RpcRequest::Supplicant {
                    id: c.id,
                    func,
                    params,
                })
            }
            None => {
                vm.threads.insert(thread, running);
                wire::Step::Rpc(wire::RpcRequest::ForeignIntr)
            }
        },
        Step::Rpc(req) => {
            vm.threads.insert(thread, running);
            wire::Step::Rpc(rpc_request(req))
        }
    };
    Response::Step(wire::StepAnswer { writes, step })
}
