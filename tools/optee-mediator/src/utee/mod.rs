// SPDX-License-Identifier: Apache-2.0 OR MIT
//! A TEE implemented entirely in userspace: sessions and commands are
//! dispatched to built-in trusted applications ([`ta`]). For machines
//! without EL3, and for tests. Like OP-TEE, it keeps per-client state,
//! asks the guest for an RPC argument buffer when it first needs one
//! (RPC_ALLOC), caches it if the guest enabled the SHM cache and frees it
//! otherwise (RPC_FREE), and runs long commands as threads that yield to the
//! normal world (FOREIGN_INTR) or ask it for services (RPC_CMD).

pub mod ta;

use std::collections::HashMap;

use crate::backend::{
    Backend, BackendError, CacheDisable, ClientId, Command, OsRevision, RpcCmdReply, RpcReply,
    RpcRequest, StdCall, Step, ThreadId,
};
use crate::mem::GuestRam;
use crate::msg::{arg_size, teec, MsgArg};
use crate::policy::Uuid;
use ta::{Invoked, Job, JobIn, JobOut, Ta};

/// Parameters the TEE reserves in an RPC argument (OP-TEE's THREAD_RPC_MAX_NUM_PARAMS).
pub const RPC_MAX_PARAMS: u32 = 4;

/// Configuration of the userspace TEE.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UteeConfig {
    /// Threads per client (GET_THREAD_COUNT).
    pub thread_count: u32,
    /// Reported revision.
    pub revision: OsRevision,
    /// UUIDs the device PTA reports for PTA_CMD_GET_DEVICES (the guest
    /// registers a TEE bus device for each).
    pub devices: Vec<Uuid>,
}

impl Default for UteeConfig {
    fn default() -> Self {
        UteeConfig {
            thread_count: 8,
            revision: OsRevision {
                major: 4,
                minor: 0,
                build_id: 0,
            },
            devices: Vec::new(),
        }
    }
}

#[derive(Debug)]
enum Phase {
    /// The job's last request was FOREIGN_INTR or a command.
    Running,
    /// RPC_ALLOC sent; this command goes out once the buffer is there.
    Allocating(MsgArg),
    /// RPC_FREE of the argument buffer sent; the call is finished after.
    Freeing,
}

#[derive(Debug)]
struct Thread {
    job: Job,
    phase: Phase,
    rpc_arg: Option<u64>,
    session: u32,
    cancel_id: u32,
    cancelled: bool,
}

#[derive(Debug, Default)]
struct Client {
    sessions: HashMap<u32, Ta>,
    next_session: u32,
    threads: HashMap<ThreadId, Thread>,
    cache_enabled: bool,
    cached: Vec<u64>,
}

/// The userspace TEE.
#[derive(Debug, Default)]
pub struct UserTee {
    config: UteeConfig,
    clients: HashMap<ClientId, Client>,
}

impl UserTee {
    /// A TEE with this configuration.
    pub fn new(config: UteeConfig) -> Self {
        UserTee {
            config,
            clients: HashMap::new(),
        }
    }

    /// Sessions open for `client`.
    pub fn session_count(&self, client: ClientId) -> usize {
        self.clients.get(&client).map_or(0, |c| c.sessions.len())
    }

    /// Whether the TEE knows `client`.
    pub fn has_client(&self, client: ClientId) -> bool {
        self.clients.contains_key(&client)
    }

    /// Parked threads of `client`.
    pub fn thread_count_of(&self, client: ClientId) -> usize {
        self.clients.get(&client).map_or(0, |c| c.threads.len())
    }
}

fn fail(call: &mut StdCall, ret: u32) -> Step {
    call.finish(ret, teec::ORIGIN_TEE);
    Step::Done
}

impl Client {
    /// Turns what a job needs into the step the mediator sees.
    fn next(&mut self, tid: ThreadId, mut th: Thread, out: JobOut) -> Step {
        match out {
            JobOut::Done => match th.rpc_arg.take() {
                Some(cookie) if self.cache_enabled => {
                    self.cached.push(cookie);
                    Step::Done
                }
                Some(cookie) => {
                    th.phase = Phase::Freeing;
                    self.threads.insert(tid, th);
                    Step::Rpc(RpcRequest::Free { cookie })
                }
                None => Step::Done,
            },
            JobOut::ForeignIntr => {
                th.phase = Phase::Running;
                self.threads.insert(tid, th);
                Step::Rpc(RpcRequest::ForeignIntr)
            }
            JobOut::Cmd(arg) => {
                if th.rpc_arg.is_none() {
                    th.rpc_arg = self.cached.pop();
                }
                let req = match th.rpc_arg {
                    Some(cookie) => {
                        th.phase = Phase::Running;
                        RpcRequest::Cmd { cookie, arg }
                    }
                    None => {
                        th.phase = Phase::Allocating(arg);
                        RpcRequest::Alloc {
                            size: arg_size(RPC_MAX_PARAMS),
                        }
                    }
                };
                self.threads.insert(tid, th);
                Step::Rpc(req)
            }
        }
    }
}

impl Backend for UserTee {
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
        self.clients.insert(client, Client::default());
        Ok(())
    }

    fn vm_destroyed(&mut self, client: ClientId) {
        self.clients.remove(&client);
    }

    fn enable_shm_cache(&mut self, client: ClientId) -> bool {
        match self.clients.get_mut(&client) {
            Some(c) if c.threads.is_empty() => {
                c.cache_enabled = true;
                true
            }
            _ => false,
        }
    }

    fn disable_shm_cache(&mut self, client: ClientId) -> CacheDisable {
        match self.clients.get_mut(&client) {
            Some(c) if c.threads.is_empty() => {
                c.cache_enabled = false;
                c.cached
                    .pop()
                    .map_or(CacheDisable::Empty, CacheDisable::Freed)
            }
            Some(_) => CacheDisable::Busy,
            None => CacheDisable::Empty,
        }
    }

    fn start(
        &mut self,
        client: ClientId,
        thread: ThreadId,
        call: &mut StdCall,
        mem: &dyn GuestRam,
    ) -> Step {
        let devices = &self.config.devices;
        let Some(c) = self.clients.get_mut(&client) else {
            return fail(call, teec::ERROR_BAD_STATE);
        };
        if c.threads.contains_key(&thread) {
            return fail(call, teec::ERROR_BAD_STATE);
        }
        match call.command.clone() {
            Command::OpenSession { ta, .. } => {
                let Some(t) = Ta::find(&ta) else {
                    return fail(call, teec::ERROR_ITEM_NOT_FOUND);
                };
                let r = ta::open(t, call);
                if r != teec::SUCCESS {
                    call.finish(r, teec::ORIGIN_TRUSTED_APP);
                    return Step::Done;
                }
                let mut id = c.next_session;
                loop {
                    id = id.wrapping_add(1);
                    if id != 0 && !c.sessions.contains_key(&id) {
                        break;
                    }
                }
                c.next_session = id;
                c.sessions.insert(id, t);
                call.session = id;
                call.finish(teec::SUCCESS, teec::ORIGIN_TRUSTED_APP);
                Step::Done
            }
            Command::Invoke { func } => {
                let Some(&t) = c.sessions.get(&call.session) else {
                    return fail(call, teec::ERROR_BAD_PARAMETERS);
                };
                match ta::invoke(t, func, call, mem, devices) {
                    Invoked::Done => Step::Done,
                    Invoked::Job(job, out) => {
                        let th = Thread {
                            job,
                            phase: Phase::Running,
                            rpc_arg: None,
                            session: call.session,
                            cancel_id: call.cancel_id,
                            cancelled: false,
                        };
                        c.next(thread, th, out)
                    }
                }
            }
            Command::CloseSession => {
                if c.sessions.remove(&call.session).is_some() {
                    call.finish(teec::SUCCESS, teec::ORIGIN_TEE);
                } else {
                    call.finish(teec::ERROR_BAD_PARAMETERS, teec::ORIGIN_TEE);
                }
                Step::Done
            }
            Command::Cancel => {
                for th in c.threads.values_mut() {
                    if th.cancel_id == call.cancel_id
                        && (call.session == 0 || th.session == call.session)
                    {
                        th.cancelled = true;
                    }
                }
                call.finish(teec::SUCCESS, teec::ORIGIN_TEE);
                Step::Done
            }
            Command::RegisterShm { .. } | Command::UnregisterShm { .. } => {
                call.finish(teec::SUCCESS, teec::ORIGIN_TEE);
                Step::Done
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
        let Some(mut th) = c.threads.remove(&thread) else {
            return fail(call, teec::ERROR_BAD_STATE);
        };
        let phase = std::mem::replace(&mut th.phase, Phase::Running);
        let input = match (phase, reply) {
            (Phase::Freeing, RpcReply::Free) => return Step::Done,
            (Phase::Allocating(arg), RpcReply::Alloc(Some(cookie))) => {
                th.rpc_arg = Some(cookie);
                th.phase = Phase::Running;
                c.threads.insert(thread, th);
                return Step::Rpc(RpcRequest::Cmd { cookie, arg });
            }
            (Phase::Allocating(arg), RpcReply::Alloc(None)) => JobIn::Cmd(RpcCmdReply {
                delivered: false,
                ret: teec::ERROR_OUT_OF_MEMORY,
                params: vec![crate::backend::RpcOut::None; arg.params.len()],
            }),
            (Phase::Running, RpcReply::ForeignIntr) => JobIn::Resumed,
            (Phase::Running, RpcReply::Cmd(r)) => {
                if !r.delivered {
                    // The buffer is unusable: forget it rather than reuse it.
                    th.rpc_arg = None;
                }
                JobIn::Cmd(r)
            }
            _ => {
                th.rpc_arg = None;
                return fail(call, teec::ERROR_COMMUNICATION);
            }
        };
        let cancelled = th.cancelled;
        let out = ta::resume(&mut th.job, input, call, mem, cancelled);
        c.next(thread, th, out)
    }

    fn abandon(&mut self, client: ClientId, thread: ThreadId) {
        if let Some(c) = self.clients.get_mut(&client) {
            c.threads.remove(&thread);
        }
    }
}
