// SPDX-License-Identifier: Apache-2.0 OR MIT
//! Guest memory translation and the VM's shared memory quotas: the
//! checks and shadowing of a standard call's parameters before it reaches
//! the backend.

use std::sync::Arc;

use crate::backend::{Backend, Command, Param, StdCall};
use crate::mem::GuestRam;
use crate::msg::{attr, cmd, login, teec, Dir, MsgArg, MsgParam, ParamType};
use crate::pagelist::{self, PageListError};
use crate::policy::{LoginPolicy, Uuid};
use crate::shm::{GuestBuffer, MemRef};

use super::{Mediator, Refusal, Shm, ShmKind};

pub(super) fn in_dir(t: ParamType) -> Option<Dir> {
    match t {
        ParamType::None => None,
        ParamType::Value(d) | ParamType::Rmem(d) | ParamType::Tmem(d) => Some(d),
    }
}

impl<B: Backend> Mediator<B> {
    fn reserve(&mut self, index: usize, pages: u64) -> Result<(), Refusal> {
        let q = &self.policy.quotas;
        let total = self.pages.saturating_add(pages);
        if self.buffers >= q.max_buffers || total > q.max_total_pages {
            return Err(Refusal::ShmQuota {
                index,
                buffers: self.buffers,
                pages: self.pages,
            });
        }
        self.buffers += 1;
        self.pages = total;
        Ok(())
    }

    pub(super) fn release(&mut self, pages: u64) {
        self.buffers = self.buffers.saturating_sub(1);
        self.pages = self.pages.saturating_sub(pages);
    }

    /// Walks a page list within the quotas and reserves it.
    pub(super) fn take_buffer(
        &mut self,
        mem: &dyn GuestRam,
        index: usize,
        buf_ptr: u64,
        size: u64,
    ) -> Result<GuestBuffer, Refusal> {
        let q = self.policy.quotas;
        if self.buffers >= q.max_buffers {
            return Err(Refusal::ShmQuota {
                index,
                buffers: self.buffers,
                pages: self.pages,
            });
        }
        let room = q.max_total_pages.saturating_sub(self.pages);
        let max = q.max_pages_per_buffer.min(room);
        let buf = pagelist::walk(mem, buf_ptr, size, max).map_err(|err| match err {
            PageListError::TooManyPages { pages, .. } if pages <= q.max_pages_per_buffer => {
                Refusal::ShmQuota {
                    index,
                    buffers: self.buffers,
                    pages: self.pages,
                }
            }
            err => Refusal::PageList { index, err },
        })?;
        self.reserve(index, buf.pages().len() as u64)?;
        Ok(buf)
    }

    pub(super) fn translate(
        &mut self,
        mem: &dyn GuestRam,
        arg: &MsgArg,
        temps: &mut Vec<u64>,
    ) -> Result<(StdCall, usize), Refusal> {
        let h = &arg.header;
        let p = &arg.params;
        let mut call = StdCall {
            command: Command::CloseSession,
            session: h.session,
            cancel_id: h.cancel_id,
            params: Vec::new(),
            ret: teec::SUCCESS,
            ret_origin: teec::ORIGIN_TEE,
            cost: Default::default(),
        };
        let mut base = 0;
        match h.cmd {
            cmd::OPEN_SESSION => {
                let meta = attr::META | attr::VALUE_INPUT;
                let (Some(ta), Some(cl)) = (p.first(), p.get(1)) else {
                    return Err(Refusal::Shape("OPEN_SESSION"));
                };
                if ta.attr != meta || cl.attr != meta || cl.c > u64::from(u32::MAX) {
                    return Err(Refusal::Shape("OPEN_SESSION"));
                }
                let ta_uuid = Uuid(ta.octets());
                let (mut client, mut lg) = (Uuid(cl.octets()), cl.c as u32);
                if !self.policy.tas.allows(&ta_uuid) {
                    return Err(Refusal::TaForbidden(ta_uuid));
                }
                match self.policy.login {
                    LoginPolicy::PassThrough => {}
                    LoginPolicy::ForcePublic => {
                        client = Uuid::NIL;
                        lg = login::PUBLIC;
                    }
                    LoginPolicy::DenyKernel if login::is_kernel(lg) => {
                        return Err(Refusal::LoginForbidden(lg));
                    }
                    LoginPolicy::DenyKernel => {}
                }
                let open = self.sessions.len() as u32 + self.opening;
                if open >= self.policy.quotas.max_sessions {
                    return Err(Refusal::SessionQuota(self.policy.quotas.max_sessions));
                }
                call.command = Command::OpenSession {
                    ta: ta_uuid,
                    client,
                    login: lg,
                };
                base = 2;
            }
            cmd::INVOKE_COMMAND | cmd::CLOSE_SESSION => {
                if !self.sessions.contains(&h.session) {
                    return Err(Refusal::UnknownSession(h.session));
                }
                if h.cmd == cmd::INVOKE_COMMAND {
                    call.command = Command::Invoke { func: h.func };
                } else if !p.is_empty() {
                    return Err(Refusal::Shape("CLOSE_SESSION"));
                }
            }
            cmd::CANCEL => {
                if !p.is_empty() {
                    return Err(Refusal::Shape("CANCEL"));
                }
                call.command = Command::Cancel;
            }
            cmd::REGISTER_SHM => {
                let [t] = p.as_slice() else {
                    return Err(Refusal::Shape("REGISTER_SHM"));
                };
                let ok_type = matches!(t.param_type(), Some(ParamType::Tmem(_)));
                if !ok_type
                    || t.attr & attr::NONCONTIG == 0
                    || t.attr & !attr::KNOWN != 0
                    || t.attr & attr::META != 0
                    || t.a == 0
                    || t.b == 0
                {
                    return Err(Refusal::Shape("REGISTER_SHM"));
                }
                if self.shm.contains_key(&t.c) {
                    return Err(Refusal::DuplicateCookie(t.c));
                }
                let buffer = Arc::new(self.take_buffer(mem, 0, t.a, t.b)?);
                self.shm.insert(
                    t.c,
                    Shm {
                        kind: ShmKind::Registered,
                        buffer: buffer.clone(),
                    },
                );
                call.command = Command::RegisterShm {
                    cookie: t.c,
                    buffer,
                };
                return Ok((call, 1));
            }
            cmd::UNREGISTER_SHM => {
                let [r] = p.as_slice() else {
                    return Err(Refusal::Shape("UNREGISTER_SHM"));
                };
                if !matches!(r.param_type(), Some(ParamType::Rmem(_)))
                    || r.attr & !attr::TYPE_MASK != 0
                {
                    return Err(Refusal::Shape("UNREGISTER_SHM"));
                }
                match self.shm.get(&r.c) {
                    Some(s) if s.kind == ShmKind::Registered => {
                        if Arc::strong_count(&s.buffer) > 1 {
                            return Err(Refusal::ShmBusy(r.c));
                        }
                    }
                    _ => {
                        return Err(Refusal::UnknownShm {
                            index: 0,
                            cookie: r.c,
                        })
                    }
                }
                call.command = Command::UnregisterShm { cookie: r.c };
                return Ok((call, 1));
            }
            _ => return Err(Refusal::Shape("unknown command")),
        }
        for (index, mp) in p.iter().enumerate().skip(base) {
            let param = self.translate_param(mem, index, mp, temps)?;
            call.params.push(param);
        }
        Ok((call, base))
    }

    fn translate_param(
        &mut self,
        mem: &dyn GuestRam,
        index: usize,
        mp: &MsgParam,
        temps: &mut Vec<u64>,
    ) -> Result<Param, Refusal> {
        let bad = Refusal::BadAttr {
            index,
            attr: mp.attr,
        };
        if mp.attr & !attr::KNOWN != 0 || mp.attr & attr::META != 0 {
            return Err(bad);
        }
        let t = mp.param_type().ok_or(bad.clone())?;
        if mp.attr & attr::NONCONTIG != 0 && !matches!(t, ParamType::Tmem(_)) {
            return Err(bad);
        }
        Ok(match t {
            ParamType::None => Param::None,
            ParamType::Value(dir) => Param::Value {
                dir,
                a: mp.a,
                b: mp.b,
                c: mp.c,
            },
            ParamType::Tmem(dir) => {
                let (buf_ptr, size) = (mp.a, mp.b);
                if buf_ptr == 0 {
                    Param::Memref {
                        dir,
                        mem: None,
                        size,
                    }
                } else if mp.attr & attr::NONCONTIG == 0 {
                    return Err(Refusal::ContiguousTmem { index });
                } else {
                    let buf = self.take_buffer(mem, index, buf_ptr, size)?;
                    temps.push(buf.pages().len() as u64);
                    Param::Memref {
                        dir,
                        mem: Some(MemRef::whole(Arc::new(buf))),
                        size,
                    }
                }
            }
            ParamType::Rmem(dir) => {
                let (offset, size, cookie) = (mp.a, mp.b, mp.c);
                let s = self
                    .shm
                    .get(&cookie)
                    .filter(|s| s.kind == ShmKind::Registered)
                    .ok_or(Refusal::UnknownShm { index, cookie })?;
                let r =
                    MemRef::new(s.buffer.clone(), offset, size).ok_or(Refusal::RmemOutOfRange {
                        index,
                        cookie,
                        offset,
                        size,
                    })?;
                Param::Memref {
                    dir,
                    mem: Some(r),
                    size,
                }
            }
        })
    }
}
