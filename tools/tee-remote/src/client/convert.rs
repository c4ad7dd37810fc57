// SPDX-License-Identifier: Apache-2.0 OR MIT
//! The mediator's calls, replies and RPC requests to and from the wire:
//! memory by value (spans of the guest's bytes) or, for a VM that shares
//! its memory, by reference ([`super::shared`]).

use std::sync::Arc;

use optee_mediator::backend::{ClientId, Command, Param, RpcOut, RpcReply, RpcRequest, StdCall};
use optee_mediator::mem::GuestRam;
use optee_mediator::msg::{teec, MsgArg, MsgParam, MAX_PARAMS};
use optee_mediator::shm::{GuestBuffer, MemRef};

use super::{shared, RemoteTee};
use crate::relayed;
use crate::wire;

/// The shape of a guest buffer, without its addresses.
pub(super) fn shape(b: &GuestBuffer) -> wire::Buffer {
    wire::Buffer {
        page_offset: b.offset(),
        size: b.size(),
    }
}

impl RemoteTee {
    /// The cookie of the buffer `m` is in, if that was registered on this
    /// connection.
    pub(super) fn registered_cookie(&self, client: ClientId, m: &MemRef) -> Option<u64> {
        let epoch = self.epoch;
        self.vms.get(&client).and_then(|vm| {
            vm.registered
                .iter()
                .find(|(_, (b, e))| {
                    *e == epoch && std::ptr::eq(b.as_ptr(), Arc::as_ptr(m.buffer()))
                })
                .map(|(c, _)| *c)
        })
    }

    /// A span: the reference's bytes, read now, and its buffer.
    pub(super) fn span(
        &self,
        client: ClientId,
        m: &MemRef,
        mem: &dyn GuestRam,
    ) -> Option<wire::Span> {
        let data = m.read_all(mem).ok()?;
        let buffer = match self.registered_cookie(client, m) {
            Some(cookie) => wire::SpanBuffer::Registered { cookie },
            None => wire::SpanBuffer::Temporary(shape(m.buffer())),
        };
        Some(wire::Span {
            buffer,
            offset: m.offset(),
            data,
        })
    }

    /// The wire's call, and its spans by slot; `Err` with the result if
    /// guest memory could not be read.
    pub(super) fn wire_call(
        &self,
        client: ClientId,
        call: &StdCall,
        mem: &dyn GuestRam,
    ) -> Result<(wire::Call, Vec<MemRef>), u32> {
        let mut slots = Vec::new();
        let mut params = Vec::with_capacity(call.params.len());
        for p in &call.params {
            params.push(match p {
                Param::None => wire::Param::None,
                Param::Value { dir, a, b, c } => wire::Param::Value {
                    dir: relayed::to_wire_dir(*dir),
                    a: *a,
                    b: *b,
                    c: *c,
                },
                Param::Memref { dir, mem: m, size } if self.shares(client) => {
                    wire::Param::SharedMemref {
                        dir: relayed::to_wire_dir(*dir),
                        mem: m.as_ref().map(|m| self.shared_ref(client, m)),
                        size: *size,
                    }
                }
                Param::Memref { dir, mem: m, size } => wire::Param::Memref {
                    dir: relayed::to_wire_dir(*dir),
                    mem: match m {
                        Some(m) => {
                            let s = self
                                .span(client, m, mem)
                                .ok_or(teec::ERROR_BAD_PARAMETERS)?;
                            slots.push(m.clone());
                            Some(s)
                        }
                        None => None,
                    },
                    size: *size,
                },
            });
        }
        let vm = self.vms.get(&client);
        let remote = |s: u32| {
            vm.and_then(|vm| vm.sessions.get(&s))
                .map_or(s, |(_, remote)| *remote)
        };
        let command = match &call.command {
            Command::OpenSession { ta, client, login } => wire::Command::OpenSession {
                ta: ta.0,
                client: client.0,
                login: *login,
            },
            Command::Invoke { func } => wire::Command::Invoke { func: *func },
            Command::CloseSession => wire::Command::CloseSession,
            Command::Cancel => wire::Command::Cancel,
            Command::RegisterShm { cookie, buffer } if self.shares(client) => {
                wire::Command::RegisterShared {
                    cookie: *cookie,
                    buffer: shared::page_list(buffer),
                }
            }
            Command::RegisterShm { cookie, buffer } => wire::Command::RegisterShm {
                cookie: *cookie,
                buffer: shape(buffer),
            },
            Command::UnregisterShm { cookie } => wire::Command::UnregisterShm { cookie: *cookie },
        };
        Ok((
            wire::Call {
                command,
                session: remote(call.session),
                cancel_id: call.cancel_id,
                params,
            },
            slots,
        ))
    }

    /// The wire's reply to an RPC, its new spans appended to `slots`.
    pub(super) fn wire_reply(
        &self,
        client: ClientId,
        reply: &RpcReply,
        slots: &mut Vec<MemRef>,
        mem: &dyn GuestRam,
    ) -> wire::Reply {
        match reply {
            RpcReply::Alloc(c) => wire::Reply::Alloc(*c),
            RpcReply::Free => wire::Reply::Free,
            RpcReply::ForeignIntr => wire::Reply::ForeignIntr,
            RpcReply::Cmd(r) => wire::Reply::Cmd {
                delivered: r.delivered,
                ret: r.ret,
                params: r
                    .params
                    .iter()
                    .map(|p| match p {
                        // The service's own RPCs pass no memory
                        // references (it serves its supplicant itself):
                        // a size would answer nothing it sent.
                        RpcOut::None | RpcOut::MemrefSize(_) => wire::RpcOut::None,
                        RpcOut::Value { a, b, c } => wire::RpcOut::Value {
                            a: *a,
                            b: *b,
                            c: *c,
                        },
                        RpcOut::Memref {
                            cookie,
                            size,
                            mem: m,
                        } if self.shares(client) => wire::RpcOut::SharedMemref {
                            cookie: *cookie,
                            size: *size,
                            mem: m.as_ref().map(|m| wire::SharedRef {
                                buffer: wire::SharedBuffer::Pages(shared::page_list(m.buffer())),
                                offset: m.offset(),
                                len: m.size(),
                            }),
                        },
                        RpcOut::Memref {
                            cookie,
                            size,
                            mem: m,
                        } => wire::RpcOut::Memref {
                            cookie: *cookie,
                            size: *size,
                            mem: m.as_ref().and_then(|m| {
                                let data = m.read_all(mem).ok()?;
                                slots.push(m.clone());
                                Some(wire::Span {
                                    buffer: wire::SpanBuffer::Temporary(shape(m.buffer())),
                                    offset: m.offset(),
                                    data,
                                })
                            }),
                        },
                    })
                    .collect(),
            },
        }
    }
}

/// The mediator's RPC request from the wire's; `Err` if it is not one.
pub(super) fn rpc_request(r: wire::RpcRequest) -> Result<RpcRequest, String> {
    Ok(match r {
        wire::RpcRequest::Alloc { size } => RpcRequest::Alloc { size },
        wire::RpcRequest::Free { cookie } => RpcRequest::Free { cookie },
        wire::RpcRequest::ForeignIntr => RpcRequest::ForeignIntr,
        wire::RpcRequest::Supplicant { func, .. } => {
            return Err(format!("relayed supplicant request {func} out of place"))
        }
        wire::RpcRequest::Cmd { cookie, arg } => {
            if arg.params.len() > MAX_PARAMS as usize {
                return Err(format!("an RPC with {} parameters", arg.params.len()));
            }
            let params = arg
                .params
                .iter()
                .map(|p| MsgParam::new(p[0], p[1], p[2], p[3]))
                .collect();
            let mut m = MsgArg::new(arg.cmd, params);
            m.header.func = arg.func;
            m.header.session = arg.session;
            m.header.cancel_id = arg.cancel_id;
            m.header.ret = arg.ret;
            m.header.ret_origin = arg.ret_origin;
            RpcRequest::Cmd { cookie, arg: m }
        }
    })
}

/// The bytes of guest memory a call carries by value.
pub(super) fn span_bytes(c: &wire::Call) -> u64 {
    c.params
        .iter()
        .map(|p| match p {
            wire::Param::Memref { mem: Some(s), .. } => s.data.len() as u64,
            _ => 0,
        })
        .sum()
}
