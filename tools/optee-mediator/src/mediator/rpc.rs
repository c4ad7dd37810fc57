// SPDX-License-Identifier: Apache-2.0 OR MIT
//! Driving the backend through its RPCs: forwarding them to the guest,
//! reading back its answers, and completing calls.

use std::sync::Arc;

use crate::abi::{reg_pair, ret, split_pair};
use crate::backend::{
    Backend, Command, Param, RpcCmdReply, RpcOut, RpcReply, RpcRequest, Step, ThreadId,
};
use crate::cost::CallTally;
use crate::mem::GuestRam;
use crate::msg::{
    self, arg_size, attr, off, rpc_cmd, teec, Dir, MsgArg, MsgHeader, MsgParam, ParamType,
    PAGE_SIZE,
};
use crate::shm::MemRef;

use super::translate::in_dir;
use super::{Mediator, Pending, Shm, ShmKind, SmcCall, SmcResult, Thread};

/// How many times in a row the backend may be resumed without the guest
/// (undeliverable RPCs) before the call is failed.
const MAX_INTERNAL_RESUMES: u32 = 64;
/// RPC argument buffers a VM may hold at once.
const MAX_RPC_ARGS: usize = 64;

impl<B: Backend> Mediator<B> {
    /// Turns the backend's step into the guest's result, resuming the
    /// backend itself when an RPC cannot reach the guest.
    pub(super) fn drive(&mut self, mem: &dyn GuestRam, tid: usize, mut step: Step) -> SmcResult {
        for _ in 0..MAX_INTERNAL_RESUMES {
            let req = match step {
                Step::Done => return self.complete(mem, tid),
                Step::Rpc(req) => req,
            };
            let thread_reg = tid as u32;
            let (result, pending) = match req {
                RpcRequest::Alloc { size } => (
                    SmcResult::new(&[
                        ret::RPC_ALLOC,
                        size.min(u64::from(u32::MAX)) as u32,
                        0,
                        thread_reg,
                    ]),
                    Pending::Alloc,
                ),
                RpcRequest::Free { cookie } => {
                    self.rpc_args.remove(&cookie);
                    let (hi, lo) = split_pair(cookie);
                    (
                        SmcResult::new(&[ret::RPC_FREE, hi, lo, thread_reg]),
                        Pending::Free,
                    )
                }
                RpcRequest::ForeignIntr => (
                    SmcResult::new(&[ret::RPC_FOREIGN_INTR, 0, 0, thread_reg]),
                    Pending::ForeignIntr,
                ),
                RpcRequest::Cmd { cookie, arg } => match self.deliver_cmd(mem, cookie, &arg) {
                    Some(gpa) => {
                        let (hi, lo) = split_pair(cookie);
                        (
                            SmcResult::new(&[ret::RPC_CMD, hi, lo, thread_reg]),
                            Pending::Cmd {
                                cookie,
                                gpa,
                                sent: arg,
                            },
                        )
                    }
                    None => {
                        // An undelivered command's buffer is forgotten by
                        // the TEE (RpcCmdReply::delivered): no longer held.
                        self.rpc_args.remove(&cookie);
                        let reply = RpcReply::Cmd(RpcCmdReply {
                            delivered: false,
                            ret: teec::ERROR_COMMUNICATION,
                            params: vec![RpcOut::None; arg.params.len()],
                        });
                        step = self.resume_backend(mem, tid, reply);
                        continue;
                    }
                },
            };
            if let Some(Some(t)) = self.threads.get_mut(tid) {
                t.pending = Some(pending);
            }
            return result;
        }
        self.log_refusal(format_args!(
            "thread {tid}: backend made {MAX_INTERNAL_RESUMES} undeliverable RPCs, failing the call"
        ));
        if let Some(Some(t)) = self.threads.get_mut(tid) {
            t.call.finish(teec::ERROR_COMMUNICATION, teec::ORIGIN_COMMS);
        }
        self.backend.abandon(self.client, tid as ThreadId);
        self.complete(mem, tid)
    }

    fn resume_backend(&mut self, mem: &dyn GuestRam, tid: usize, reply: RpcReply) -> Step {
        match self.threads.get_mut(tid) {
            Some(Some(t)) => {
                self.backend
                    .resume(self.client, tid as ThreadId, &mut t.call, reply, mem)
            }
            _ => Step::Done,
        }
    }

    /// Writes an RPC command into the guest's RPC argument buffer; the
    /// buffer's address if it got there.
    fn deliver_cmd(&mut self, mem: &dyn GuestRam, cookie: u64, arg: &MsgArg) -> Option<u64> {
        let Some(&gpa) = self.rpc_args.get(&cookie) else {
            self.log_refusal(format_args!(
                "RPC command for unknown RPC buffer {cookie:#x}"
            ));
            return None;
        };
        if arg_size(arg.params.len() as u32) > PAGE_SIZE {
            return None;
        }
        if arg.header.cmd == rpc_cmd::SHM_FREE {
            if let Some(p) = arg.params.first() {
                self.free_rpc_data(p.b);
            }
        }
        mem.write(gpa, &arg.encode()).ok().map(|_| gpa)
    }

    fn free_rpc_data(&mut self, cookie: u64) {
        if let Some(s) = self.shm.get(&cookie) {
            if s.kind == ShmKind::RpcData {
                let pages = s.buffer.pages().len() as u64;
                self.shm.remove(&cookie);
                self.release(pages);
            }
        }
    }

    /// RETURN_FROM_RPC, made by the guest or (`by_vmm`) by the VMM for it.
    pub(super) fn return_from_rpc(
        &mut self,
        mem: &dyn GuestRam,
        call: &SmcCall,
        by_vmm: bool,
    ) -> SmcResult {
        let tid = call.w(3) as usize;
        let pending = match self.threads.get_mut(tid) {
            Some(Some(t)) => {
                if by_vmm {
                    t.vmm_returns += 1;
                } else {
                    t.guest_exits += 1;
                }
                t.pending.take()
            }
            _ => None,
        };
        let Some(pending) = pending else {
            return self.refuse_call(
                format_args!("RETURN_FROM_RPC for thread {tid}, which is not waiting"),
                ret::ERESUME,
            );
        };
        let reply = match pending {
            Pending::Alloc => {
                let pa = reg_pair(u64::from(call.w(1)), u64::from(call.w(2)));
                let cookie = reg_pair(u64::from(call.w(4)), u64::from(call.w(5)));
                RpcReply::Alloc(self.accept_rpc_arg(mem, pa, cookie))
            }
            Pending::Free => RpcReply::Free,
            Pending::ForeignIntr => RpcReply::ForeignIntr,
            Pending::Cmd { cookie, gpa, sent } => {
                let reply = self.read_cmd_reply(mem, gpa, &sent);
                if !reply.delivered {
                    // The TEE forgets a buffer it could not use
                    // (RpcCmdReply::delivered): it no longer holds it.
                    self.rpc_args.remove(&cookie);
                }
                RpcReply::Cmd(reply)
            }
        };
        let step = self.resume_backend(mem, tid, reply);
        self.drive(mem, tid, step)
    }

    fn accept_rpc_arg(&mut self, mem: &dyn GuestRam, pa: u64, cookie: u64) -> Option<u64> {
        if pa == 0 {
            return None;
        }
        let why = if !pa.is_multiple_of(PAGE_SIZE) {
            "not 4 KiB aligned"
        } else if !mem.is_ram(pa, PAGE_SIZE) {
            "not guest RAM"
        } else if self.rpc_args.contains_key(&cookie) {
            "a duplicate cookie"
        } else if self.rpc_args.len() >= MAX_RPC_ARGS {
            "over the RPC buffer limit"
        } else {
            self.rpc_args.insert(cookie, pa);
            return Some(cookie);
        };
        self.log_refusal(format_args!(
            "RPC argument buffer {pa:#x} (cookie {cookie:#x}) refused: {why}"
        ));
        None
    }

    /// Reads back the guest's answer to an RPC command: the result and the
    /// outputs of the parameters as they were sent (the guest's idea of
    /// num_params and attributes is ignored, except for SHM_ALLOC's buffer).
    fn read_cmd_reply(&mut self, mem: &dyn GuestRam, gpa: u64, sent: &MsgArg) -> RpcCmdReply {
        let failed = RpcCmdReply {
            delivered: false,
            ret: teec::ERROR_COMMUNICATION,
            params: vec![RpcOut::None; sent.params.len()],
        };
        let mut hb = [0u8; msg::HEADER_SIZE];
        if mem.read(gpa, &mut hb).is_err() {
            return failed;
        }
        let head = MsgHeader::parse(&hb);
        let Ok(got) = MsgArg::read_params(mem, gpa, sent.params.len() as u32) else {
            return failed;
        };
        let mut params = Vec::with_capacity(sent.params.len());
        for (i, (s, g)) in sent.params.iter().zip(&got).enumerate() {
            let out = if sent.header.cmd == rpc_cmd::SHM_ALLOC && i == 0 {
                if head.ret == teec::SUCCESS {
                    self.accept_rpc_data(mem, g)
                } else {
                    RpcOut::None
                }
            } else {
                match s.param_type() {
                    Some(ParamType::Value(d)) if d.is_output() => RpcOut::Value {
                        a: g.a,
                        b: g.b,
                        c: g.c,
                    },
                    // rmem: offs, size, shm_ref; tmem: buf_ptr, size, shm_ref.
                    Some(ParamType::Rmem(d) | ParamType::Tmem(d)) if d.is_output() => {
                        RpcOut::MemrefSize(g.b)
                    }
                    _ => RpcOut::None,
                }
            };
            params.push(out);
        }
        RpcCmdReply {
            delivered: true,
            ret: head.ret,
            params,
        }
    }

    /// Translates the buffer a guest allocated for SHM_ALLOC.
    fn accept_rpc_data(&mut self, mem: &dyn GuestRam, g: &MsgParam) -> RpcOut {
        let (buf_ptr, size, cookie) = (g.a, g.b, g.c);
        // A buffer the guest registered already (a confidential guest's
        // driver registers its pool memory as it allocates it, and its
        // tee-supplicant allocates from the pool): the same buffer, as
        // registered; it stays the guest's to unregister.
        if let Some(s) = self.shm.get(&cookie) {
            if s.kind == ShmKind::Registered && g.attr == attr::TMEM_OUTPUT | attr::NONCONTIG {
                return RpcOut::Memref {
                    cookie,
                    size,
                    mem: MemRef::new(s.buffer.clone(), 0, size),
                };
            }
        }
        let taken = if g.attr != attr::TMEM_OUTPUT | attr::NONCONTIG || buf_ptr == 0 {
            Err(format!("attribute {:#x}", g.attr))
        } else if self.shm.contains_key(&cookie) {
            Err("duplicate cookie".into())
        } else {
            self.take_buffer(mem, 0, buf_ptr, size)
                .map_err(|e| e.to_string())
        };
        match taken {
            Ok(buf) => {
                let buffer = Arc::new(buf);
                self.shm.insert(
                    cookie,
                    Shm {
                        kind: ShmKind::RpcData,
                        buffer: buffer.clone(),
                    },
                );
                RpcOut::Memref {
                    cookie,
                    size,
                    mem: Some(MemRef::whole(buffer)),
                }
            }
            Err(why) => {
                self.log_refusal(format_args!(
                    "RPC SHM_ALLOC buffer {cookie:#x} refused: {why}"
                ));
                RpcOut::Memref {
                    cookie,
                    size,
                    mem: None,
                }
            }
        }
    }

    /// Finishes a call: copies results back field by field, updates the
    /// VM's state, frees the thread.
    fn complete(&mut self, mem: &dyn GuestRam, tid: usize) -> SmcResult {
        let Some(t) = self.threads.get_mut(tid).and_then(Option::take) else {
            return SmcResult::code(ret::OK);
        };
        for p in &t.temps {
            self.release(*p);
        }
        let c = &t.call;
        match &c.command {
            Command::OpenSession { ta, .. } => {
                self.opening = self.opening.saturating_sub(1);
                if c.ret == teec::SUCCESS {
                    self.sessions.insert(c.session);
                    self.costs.opened(*ta, c.session);
                }
            }
            Command::Invoke { .. } => self.costs.invoked(
                c.session,
                CallTally {
                    guest_exits: t.guest_exits,
                    vmm_returns: t.vmm_returns,
                    time: self.clock.now().saturating_duration_since(t.started),
                    backend: c.cost,
                },
            ),
            Command::CloseSession => {
                self.sessions.remove(&c.session);
                self.costs.closed(c.session);
            }
            Command::RegisterShm { cookie, .. } if c.ret != teec::SUCCESS => {
                self.drop_registered(*cookie);
            }
            Command::UnregisterShm { cookie } if c.ret == teec::SUCCESS => {
                self.drop_registered(*cookie);
            }
            _ => {}
        }
        match write_back(mem, &t) {
            Ok(()) => SmcResult::code(ret::OK),
            Err(_) => {
                self.log_refusal(format_args!(
                    "optee_msg_arg at {:#x} left guest RAM during the call",
                    t.guest_arg
                ));
                SmcResult::code(ret::EBADADDR)
            }
        }
    }

    fn drop_registered(&mut self, cookie: u64) {
        if let Some(s) = self.shm.get(&cookie) {
            if s.kind == ShmKind::Registered {
                let pages = s.buffer.pages().len() as u64;
                self.shm.remove(&cookie);
                self.release(pages);
            }
        }
    }
}

/// Copies a finished call's results into the guest's argument: ret,
/// ret_origin, session, and for each output parameter its values or size.
fn write_back(mem: &dyn GuestRam, t: &Thread) -> Result<(), crate::mem::MemError> {
    let gpa = t.guest_arg;
    let c = &t.call;
    mem.write(gpa + off::SESSION, &c.session.to_le_bytes())?;
    mem.write(gpa + off::RET, &c.ret.to_le_bytes())?;
    mem.write(gpa + off::RET_ORIGIN, &c.ret_origin.to_le_bytes())?;
    for (i, p) in c.params.iter().enumerate() {
        let gi = t.base + i;
        let Some(shadow) = t.shadow.get(gi) else {
            break;
        };
        let Some(ty) = shadow.param_type() else {
            continue;
        };
        if !in_dir(ty).is_some_and(Dir::is_output) {
            continue;
        }
        let at = gpa + off::PARAMS + (gi as u64) * msg::PARAM_SIZE as u64;
        match (ty, p) {
            (ParamType::Value(_), Param::Value { a, b, c, .. }) => {
                let mut v = [0u8; 24];
                v[..8].copy_from_slice(&a.to_le_bytes());
                v[8..16].copy_from_slice(&b.to_le_bytes());
                v[16..].copy_from_slice(&c.to_le_bytes());
                mem.write(at + off::VALUE_A, &v)?;
            }
            (ParamType::Tmem(_) | ParamType::Rmem(_), Param::Memref { size, .. }) => {
                mem.write(at + off::MEM_SIZE, &size.to_le_bytes())?;
            }
            _ => {}
        }
    }
    Ok(())
}
