// SPDX-License-Identifier: Apache-2.0 OR MIT
//! One VMM connection: its VMs, their calls in progress, sessions and
//! registered buffers, the service's own policy over them, and the
//! teardown that gives everything back.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::time::Instant;

use optee_mediator::backend::{
    CacheDisable, ClientId, Command, Param, RpcCmdReply, RpcOut, RpcReply, RpcRequest, StdCall,
    Step,
};
use optee_mediator::msg::{login, teec, Dir, MsgArg, MAX_PARAMS, PAGE_SIZE};
use optee_mediator::ratelimit::{LogLimiter, Verdict};
use optee_mediator::shm::{GuestBuffer, MemRef};
use optee_mediator::{LoginPolicy, Policy, Uuid};

use super::Service;
use crate::shadow::Shadow;
use crate::wire::{self, Hello, Request, Response, MAGIC, MAX_FRAME, PROTOCOL_VERSION};

/// VMs one connection may have at once.
pub const MAX_VMS: usize = 64;

/// Bytes of spans one call may hold in the service (its start's and its
/// RPC replies' together).
pub const MAX_CALL_BYTES: usize = 2 * MAX_FRAME as usize;

/// Where the service's stand-in addresses start (any value: the TEE
/// backends see them only through [`Shadow`]).
const SPACE_BASE: u64 = 1 << 32;

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
    /// A buffer or span that is not one.
    #[error("bad memory parameter: {0}")]
    BadSpan(String),
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

/// Checks a greeting: the magic and a version this service speaks.
pub(super) fn check_hello(h: &Hello) -> Result<(), String> {
    if h.magic != MAGIC {
        return Err("not a tosfwd TEE client (bad magic)".to_owned());
    }
    if h.version != PROTOCOL_VERSION {
        return Err(format!(
            "protocol version {} is not spoken here (this service speaks {PROTOCOL_VERSION})",
            h.version
        ));
    }
    Ok(())
}

/// Where a buffer [`Space::place`]d starts: its first page (0 for an
/// empty buffer, which holds no span).
fn base(buffer: &GuestBuffer) -> u64 {
    buffer.pages().first().copied().unwrap_or(0)
}

/// A call in progress on a thread.
#[derive(Debug)]
struct Running {
    call: StdCall,
    shadow: Shadow,
    slots: u32,
}

/// One VM of the connection.
#[derive(Debug)]
struct Vm {
    id: ClientId,
    sessions: HashSet<u32>,
    registered: HashMap<u64, Arc<GuestBuffer>>,
    pages: u64,
    threads: HashMap<u32, Running>,
}

/// Hands out the stand-in addresses of buffers, never twice.
#[derive(Debug)]
struct Space {
    next: u64,
}

impl Space {
    /// Places a buffer of this shape: its pages at fresh, contiguous
    /// addresses. Refused if it has more pages than `max_pages`.
    fn place(
        &mut self,
        shape: wire::Buffer,
        max_pages: u64,
    ) -> Result<(Arc<GuestBuffer>, u64), Fault> {
        if shape.page_offset >= PAGE_SIZE {
            return Err(Violation::BadSpan(format!(
                "page offset {:#x} is not inside a page",
                shape.page_offset
            ))
            .into());
        }
        let pages = shape
            .page_offset
            .checked_add(shape.size)
            .map(|end| end.div_ceil(PAGE_SIZE))
            .filter(|&p| p <= max_pages)
            .ok_or_else(|| Fault::Refuse {
                ret: teec::ERROR_OUT_OF_MEMORY,
                why: format!(
                    "a buffer of {:#x} bytes is over the {max_pages}-page limit",
                    shape.size
                ),
            })?;
        let base = self.next;
        // A guard page between buffers; the space is 2^64 bytes and the
        // counter only grows by at most the limit each time.
        self.next = base
            .checked_add((pages + 1) * PAGE_SIZE)
            .ok_or_else(|| Violation::BadSpan("out of stand-in addresses".to_owned()))?;
        let list = (0..pages).map(|i| base + i * PAGE_SIZE).collect();
        let buffer = GuestBuffer::new(list, shape.page_offset, shape.size)
            .ok_or_else(|| Violation::BadSpan("inconsistent buffer shape".to_owned()))?;
        Ok((Arc::new(buffer), base))
    }
}

/// A connection's state. Dropping it tears its VMs down in the TEE.
pub struct Connection {
    service: Arc<Service>,
    policy: Policy,
    peer: String,
    vms: HashMap<u16, Vm>,
    space: Space,
    refusals: LogLimiter,
}

impl std::fmt::Debug for Connection {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Connection")
            .field("peer", &self.peer)
            .field("vms", &self.vms.len())
            .finish()
    }
}

fn dir(d: wire::Dir) -> Dir {
    match d {
        wire::Dir::In => Dir::In,
        wire::Dir::Out => Dir::Out,
        wire::Dir::InOut => Dir::InOut,
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
    /// A connection of `peer` (named in logs) under `policy`.
    pub fn new(service: Arc<Service>, policy: Policy, peer: String) -> Connection {
        let refusals = LogLimiter::new(policy.refusal_logs_per_second);
        Connection {
            service,
            policy,
            peer,
            vms: HashMap::new(),
            space: Space { next: SPACE_BASE },
            refusals,
        }
    }

    /// Answers one request, or says how it broke the protocol.
    pub fn handle(&mut self, req: Request) -> Result<Response, Violation> {
        match req {
            Request::Hello(_) => Err(Violation::HelloAgain),
            Request::VmCreated { client } => Ok(self.vm_created(client)),
            Request::VmDestroyed { client } => {
                let vm = self
                    .vms
                    .remove(&client)
                    .ok_or(Violation::UnknownVm(client))?;
                self.teardown(client, vm);
                Ok(Response::Ack)
            }
            Request::EnableShmCache { client } => {
                let id = self.vm(client)?.id;
                Ok(Response::ShmCache(
                    self.service.backend().enable_shm_cache(id),
                ))
            }
            Request::DisableShmCache { client } => {
                let id = self.vm(client)?.id;
                Ok(Response::Disabled(
                    match self.service.backend().disable_shm_cache(id) {
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
            Request::Abandon { client, thread } => {
                let id = self.vm(client)?.id;
                if let Some(vm) = self.vms.get_mut(&client) {
                    if vm.threads.remove(&thread).is_some() {
                        self.service.backend().abandon(id, thread);
                    }
                }
                Ok(Response::Ack)
            }
        }
    }

    fn vm(&self, client: u16) -> Result<&Vm, Violation> {
        self.vms.get(&client).ok_or(Violation::UnknownVm(client))
    }

    fn vm_created(&mut self, client: u16) -> Response {
        if self.vms.contains_key(&client) {
            return Response::Created(Err(wire::CreateError::Exists));
        }
        if self.vms.len() >= MAX_VMS {
            return Response::Created(Err(wire::CreateError::Refused(format!(
                "a connection may have {MAX_VMS} VMs"
            ))));
        }
        let Some(id) = self.service.allocate() else {
            return Response::Created(Err(wire::CreateError::Refused(
                "the TEE has no client id left".to_owned(),
            )));
        };
        if let Err(e) = self.service.backend().vm_created(id) {
            self.service.release(id);
            return Response::Created(Err(wire::CreateError::Refused(e.to_string())));
        }
        log::info!("{}: VM {client} is the TEE's client {}", self.peer, id.0);
        self.vms.insert(
            client,
            Vm {
                id,
                sessions: HashSet::new(),
                registered: HashMap::new(),
                pages: 0,
                threads: HashMap::new(),
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

    /// A span, placed in `shadow` as `slot`, and its memory reference.
    fn span(
        space: &mut Space,
        vm: &Vm,
        max_pages: u64,
        s: wire::Span,
        slot: u32,
        shadow: &mut Shadow,
    ) -> Result<MemRef, Fault> {
        let (buffer, base) = match s.buffer {
            wire::SpanBuffer::Temporary(shape) => space.place(shape, max_pages)?,
            wire::SpanBuffer::Registered { cookie } => {
                let r = vm
                    .registered
                    .get(&cookie)
                    .ok_or(Violation::UnknownCookie(cookie))?;
                (r.clone(), base(r))
            }
        };
        let len = s.data.len() as u64;
        let mem = MemRef::new(buffer.clone(), s.offset, len).ok_or_else(|| {
            Violation::BadSpan(format!(
                "{len:#x} bytes at {:#x} are not inside a {:#x}-byte buffer",
                s.offset,
                buffer.size()
            ))
        })?;
        shadow.add(slot, base + buffer.offset() + s.offset, s.data);
        if shadow.bytes() > MAX_CALL_BYTES {
            return Err(Violation::TooMuchData.into());
        }
        Ok(mem)
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
        let vm = self.vms.get(&client).ok_or(Violation::UnknownVm(client))?;
        if call.params.len() > MAX_PARAMS as usize {
            return Err(Violation::TooManyParams(call.params.len()).into());
        }
        let limit = q
            .max_calls
            .unwrap_or(u32::MAX)
            .min(self.service.thread_count());
        if vm.threads.len() >= limit as usize {
            return Err(Fault::Refuse {
                ret: teec::ERROR_BUSY,
                why: format!("{limit} calls in progress already"),
            });
        }
        let mut slot = 0;
        let mut params = Vec::with_capacity(call.params.len());
        for p in call.params {
            params.push(match p {
                wire::Param::None => Param::None,
                wire::Param::Value { dir: d, a, b, c } => Param::Value {
                    dir: dir(d),
                    a,
                    b,
                    c,
                },
                wire::Param::Memref { dir: d, mem, size } => {
                    let mem = match mem {
                        Some(s) => {
                            let m = Self::span(
                                &mut self.space,
                                vm,
                                q.max_pages_per_buffer,
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
                        dir: dir(d),
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
                if vm.sessions.len() >= q.max_sessions as usize {
                    return Err(Fault::Refuse {
                        ret: teec::ERROR_OUT_OF_MEMORY,
                        why: format!("{} sessions open already", vm.sessions.len()),
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
            wire::Command::RegisterShm { cookie, buffer } => {
                if vm.registered.contains_key(&cookie) {
                    return Err(Fault::Refuse {
                        ret: teec::ERROR_BAD_PARAMETERS,
                        why: format!("buffer {cookie:#x} is registered already"),
                    });
                }
                if vm.registered.len() >= q.max_buffers as usize {
                    return Err(Fault::Refuse {
                        ret: teec::ERROR_OUT_OF_MEMORY,
                        why: format!("{} buffers registered already", vm.registered.len()),
                    });
                }
                let room = q.max_total_pages.saturating_sub(vm.pages);
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
        let vm = self
            .vms
            .get_mut(&client)
            .ok_or(Violation::UnknownVm(client))?;
        let step = self
            .service
            .backend()
            .start(vm.id, thread, &mut std, &shadow);
        let running = Running {
            call: std,
            shadow,
            slots,
        };
        Ok(after(vm, thread, running, step))
    }

    fn resume(
        &mut self,
        client: u16,
        thread: u32,
        reply: wire::Reply,
    ) -> Result<Response, Violation> {
        let max_pages = self.policy.quotas.max_pages_per_buffer;
        let vm = self
            .vms
            .get_mut(&client)
            .ok_or(Violation::UnknownVm(client))?;
        let mut running = vm
            .threads
            .remove(&thread)
            .ok_or(Violation::ThreadIdle { vm: client, thread })?;
        let reply = match reply {
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
                    out.push(match p {
                        wire::RpcOut::None => RpcOut::None,
                        wire::RpcOut::Value { a, b, c } => RpcOut::Value { a, b, c },
                        wire::RpcOut::Memref { cookie, size, mem } => {
                            let mem = match mem {
                                Some(s) if matches!(s.buffer, wire::SpanBuffer::Temporary(_)) => {
                                    let slot = running.slots;
                                    let vm_ref: &Vm = vm;
                                    let m = Self::span(
                                        &mut self.space,
                                        vm_ref,
                                        max_pages,
                                        s,
                                        slot,
                                        &mut running.shadow,
                                    );
                                    match m {
                                        Ok(m) => {
                                            running.slots += 1;
                                            Some(m)
                                        }
                                        // A refused RPC buffer is one the
                                        // mediator refused: no memory.
                                        Err(Fault::Refuse { .. }) => None,
                                        Err(Fault::Violation(v)) => {
                                            vm.threads.insert(thread, running);
                                            return Err(v);
                                        }
                                    }
                                }
                                Some(_) => {
                                    vm.threads.insert(thread, running);
                                    return Err(Violation::BadSpan(
                                        "an RPC buffer in a registered buffer".to_owned(),
                                    ));
                                }
                                None => None,
                            };
                            RpcOut::Memref { cookie, size, mem }
                        }
                    });
                }
                RpcReply::Cmd(RpcCmdReply {
                    delivered,
                    ret,
                    params: out,
                })
            }
        };
        let step =
            self.service
                .backend()
                .resume(vm.id, thread, &mut running.call, reply, &running.shadow);
        Ok(after(vm, thread, running, step))
    }

    /// Gives back everything `vm` holds: its parked calls abandoned, its
    /// sessions and buffers dropped with the TEE's client.
    fn teardown(&mut self, client: u16, vm: Vm) {
        let mut tee = self.service.backend();
        for thread in vm.threads.keys() {
            tee.abandon(vm.id, *thread);
        }
        tee.vm_destroyed(vm.id);
        drop(tee);
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
/// sessions and buffers recorded, a parked one kept.
fn after(vm: &mut Vm, thread: u32, running: Running, step: Step) -> Response {
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
        Step::Rpc(req) => {
            vm.threads.insert(thread, running);
            wire::Step::Rpc(rpc_request(req))
        }
    };
    Response::Step(wire::StepAnswer { writes, step })
}
