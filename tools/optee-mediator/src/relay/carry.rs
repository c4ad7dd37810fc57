// SPDX-License-Identifier: Apache-2.0 OR MIT
//! The vCPU's side of a [`crate::relay::Relay`]: a relayed supplicant
//! request made an RPC command for the guest, and the guest's reply made
//! the answer.
//!
//! The guest names the buffers its supplicant allocated (SHM_ALLOC) by its
//! cookies; the mediator checked their pages when the guest returned them
//! ([`RpcOut::Memref`]). A request's memory references name those buffers
//! only, and every range is checked against the buffer before a byte is
//! copied either way; what the guest reports (sizes) is bounded by the
//! range it was given before anything is copied back.

use std::collections::HashMap;

use crate::backend::{RpcCmdReply, RpcOut};
use crate::msg::{arg_size, attr, rpc_cmd, teec, Dir, MsgArg, MsgParam};
use crate::shm::MemRef;
use crate::GuestRam;

use crate::relay::{Answer, Forwarded, FwdOut, FwdParam};

/// The buffers the guest's supplicant allocated for the TEE, by cookie.
pub type GuestBuffers = HashMap<u64, MemRef>;

/// The size of the RPC argument buffer a carrying thread asks for: room
/// for as many parameters as a relayed request can have (the receive's
/// room less its meta parameter; OP-TEE's own commands use at most
/// four), whatever the first request it carries. The buffer serves every
/// later request of the call, and the guest's driver bounds num_params by
/// the buffer's size.
pub const fn rpc_arg_size() -> u64 {
    arg_size(super::MAX_PARAMS as u32)
}

fn value_attr(dir: Dir) -> u64 {
    match dir {
        Dir::In => attr::VALUE_INPUT,
        Dir::Out => attr::VALUE_OUTPUT,
        Dir::InOut => attr::VALUE_INOUT,
    }
}

fn rmem_attr(dir: Dir) -> u64 {
    match dir {
        Dir::In => attr::RMEM_INPUT,
        Dir::Out => attr::RMEM_OUTPUT,
        Dir::InOut => attr::RMEM_INOUT,
    }
}

fn tmem_attr(dir: Dir) -> u64 {
    match dir {
        Dir::In => attr::TMEM_INPUT,
        Dir::Out => attr::TMEM_OUTPUT,
        Dir::InOut => attr::TMEM_INOUT,
    }
}

/// The cookie an SHM_FREE request frees (value b).
fn freed_cookie(req: &Forwarded) -> Option<u64> {
    match (req.func, req.params.first()) {
        (rpc_cmd::SHM_FREE, Some(FwdParam::Value { b, .. })) => Some(*b),
        _ => None,
    }
}

/// The RPC command that asks the guest `req`, its input bytes written
/// into the guest buffers it names; a TEEC error (nothing delivered) if a
/// reference names no buffer of the guest's supplicant or lies outside
/// it. An SHM_FREE forgets its buffer here: the guest frees it.
pub fn command(
    req: &Forwarded,
    bufs: &mut GuestBuffers,
    mem: &dyn GuestRam,
) -> Result<MsgArg, u32> {
    let mut params = Vec::with_capacity(req.params.len());
    for p in &req.params {
        params.push(match p {
            FwdParam::None => MsgParam::new(attr::NONE, 0, 0, 0),
            FwdParam::Value { dir, a, b, c } => MsgParam::new(value_attr(*dir), *a, *b, *c),
            FwdParam::NullMemref { dir, size } => MsgParam::new(tmem_attr(*dir), 0, *size, 0),
            FwdParam::Memref {
                dir,
                cookie,
                offs,
                size,
                data,
            } => {
                let buf = bufs.get(cookie).ok_or(teec::ERROR_BAD_PARAMETERS)?;
                let fits = offs.checked_add(*size).is_some_and(|end| end <= buf.size());
                if !fits || data.len() as u64 > *size {
                    return Err(teec::ERROR_BAD_PARAMETERS);
                }
                if dir.is_input() {
                    buf.write(mem, *offs, data)
                        .map_err(|_| teec::ERROR_COMMUNICATION)?;
                }
                MsgParam::new(rmem_attr(*dir), *offs, *size, *cookie)
            }
        });
    }
    if let Some(cookie) = freed_cookie(req) {
        bufs.remove(&cookie);
    }
    Ok(MsgArg::new(req.func, params))
}

/// The answer to `req` from the guest's `reply`: output values, output
/// ranges read back (at most the range's size), an allocated buffer kept
/// (SHM_ALLOC: at least the size asked) or refused.
pub fn answer(
    req: &Forwarded,
    reply: &RpcCmdReply,
    bufs: &mut GuestBuffers,
    mem: &dyn GuestRam,
) -> Answer {
    if !reply.delivered {
        return Answer::failed(reply.ret, req.params.len());
    }
    let mut ret = reply.ret;
    let mut outs = Vec::with_capacity(req.params.len());
    for (i, p) in req.params.iter().enumerate() {
        let got = reply.params.get(i).unwrap_or(&RpcOut::None);
        let out = match (p, got) {
            (FwdParam::Value { dir, .. }, RpcOut::Value { a, b, c }) if dir.is_output() => {
                FwdOut::Value {
                    a: *a,
                    b: *b,
                    c: *c,
                }
            }
            (FwdParam::NullMemref { dir, .. }, RpcOut::MemrefSize(size)) if dir.is_output() => {
                FwdOut::Memref {
                    size: *size,
                    data: Vec::new(),
                }
            }
            (
                FwdParam::Memref {
                    dir,
                    cookie,
                    offs,
                    size,
                    ..
                },
                RpcOut::MemrefSize(reported),
            ) if dir.is_output() => {
                let n = (*reported).min(*size);
                let mut data = vec![0u8; usize::try_from(n).unwrap_or(0)];
                let read = bufs
                    .get(cookie)
                    .is_some_and(|b| b.read(mem, *offs, &mut data).is_ok());
                if !read {
                    data.clear();
                    ret = teec::ERROR_COMMUNICATION;
                }
                FwdOut::Memref {
                    size: *reported,
                    data,
                }
            }
            (FwdParam::Value { b: want, .. }, RpcOut::Memref { cookie, mem: m, .. })
                if req.func == rpc_cmd::SHM_ALLOC && i == 0 =>
            {
                match m {
                    Some(m) if reply.ret == teec::SUCCESS && m.size() >= *want => {
                        bufs.insert(*cookie, m.clone());
                        FwdOut::Allocated { cookie: *cookie }
                    }
                    _ => FwdOut::Refused { cookie: *cookie },
                }
            }
            _ => FwdOut::None,
        };
        outs.push(out);
    }
    Answer { ret, params: outs }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::shm::GuestBuffer;
    use crate::FakeGuestMemory;
    use std::sync::Arc;

    const BASE: u64 = 0x4000_0000;

    fn setup() -> (FakeGuestMemory, GuestBuffers) {
        let mem = FakeGuestMemory::new(&[(BASE, 16 * 4096)]);
        // Two scattered pages, 6000 bytes from offset 100.
        let buf = GuestBuffer::new(vec![BASE + 3 * 4096, BASE + 7 * 4096], 100, 6000).unwrap();
        let mut bufs = GuestBuffers::new();
        bufs.insert(0x51, MemRef::whole(Arc::new(buf)));
        (mem, bufs)
    }

    fn fs_read(size: u64) -> Forwarded {
        Forwarded {
            func: 2,
            params: vec![
                FwdParam::Value {
                    dir: Dir::In,
                    a: 1,
                    b: 7,
                    c: 0,
                },
                FwdParam::Memref {
                    dir: Dir::Out,
                    cookie: 0x51,
                    offs: 4000,
                    size,
                    data: Vec::new(),
                },
                FwdParam::Memref {
                    dir: Dir::In,
                    cookie: 0x51,
                    offs: 10,
                    size: 5,
                    data: b"hello".to_vec(),
                },
            ],
        }
    }

    #[test]
    fn inputs_are_written_and_references_name_the_guests_buffer_by_cookie() {
        let (mem, mut bufs) = setup();
        let arg = command(&fs_read(2000), &mut bufs, &mem).unwrap();
        assert_eq!(arg.header.cmd, 2);
        assert_eq!(arg.params[0], MsgParam::new(attr::VALUE_INPUT, 1, 7, 0));
        assert_eq!(
            arg.params[1],
            MsgParam::new(attr::RMEM_OUTPUT, 4000, 2000, 0x51)
        );
        assert_eq!(arg.params[2], MsgParam::new(attr::RMEM_INPUT, 10, 5, 0x51));
        let mut back = [0u8; 5];
        bufs[&0x51].read(&mem, 10, &mut back).unwrap();
        assert_eq!(&back, b"hello");
    }

    #[test]
    fn a_reference_past_its_buffer_or_to_an_unknown_cookie_is_not_delivered() {
        let (mem, mut bufs) = setup();
        assert_eq!(
            command(&fs_read(2001), &mut bufs, &mem),
            Err(teec::ERROR_BAD_PARAMETERS),
            "4000 + 2001 is past the 6000 bytes"
        );
        let mut req = fs_read(10);
        if let FwdParam::Memref { cookie, .. } = &mut req.params[1] {
            *cookie = 0x52;
        }
        assert_eq!(
            command(&req, &mut bufs, &mem),
            Err(teec::ERROR_BAD_PARAMETERS)
        );
        if let FwdParam::Memref {
            cookie, offs, size, ..
        } = &mut req.params[1]
        {
            (*cookie, *offs, *size) = (0x51, u64::MAX, 2);
        }
        assert_eq!(
            command(&req, &mut bufs, &mem),
            Err(teec::ERROR_BAD_PARAMETERS)
        );
    }

    #[test]
    fn outputs_are_read_back_no_further_than_the_range_whatever_size_the_guest_reports() {
        let (mem, mut bufs) = setup();
        let req = fs_read(8);
        command(&req, &mut bufs, &mem).unwrap();
        bufs[&0x51].write(&mem, 4000, b"0123456789").unwrap();
        let reply = RpcCmdReply {
            delivered: true,
            ret: teec::SUCCESS,
            params: vec![
                RpcOut::Value { a: 9, b: 9, c: 9 },
                RpcOut::MemrefSize(1 << 40),
                RpcOut::MemrefSize(3),
            ],
        };
        let a = answer(&req, &reply, &mut bufs, &mem);
        assert_eq!(a.ret, teec::SUCCESS);
        assert_eq!(
            a.params,
            vec![
                FwdOut::None,
                FwdOut::Memref {
                    size: 1 << 40,
                    data: b"01234567".to_vec()
                },
                FwdOut::None,
            ],
            "an input value and an input reference give nothing back"
        );
    }

    #[test]
    fn shm_alloc_keeps_a_buffer_as_large_as_asked_and_refuses_a_smaller_one() {
        let (mem, mut bufs) = setup();
        let alloc = |size| Forwarded {
            func: rpc_cmd::SHM_ALLOC,
            params: vec![FwdParam::Value {
                dir: Dir::In,
                a: rpc_cmd::SHM_TYPE_APPL,
                b: size,
                c: 0,
            }],
        };
        let buf = Arc::new(GuestBuffer::new(vec![BASE + 9 * 4096], 0, 4096).unwrap());
        let reply = RpcCmdReply {
            delivered: true,
            ret: teec::SUCCESS,
            params: vec![RpcOut::Memref {
                cookie: 0x60,
                size: 4096,
                mem: Some(MemRef::whole(buf)),
            }],
        };
        let a = answer(&alloc(4097), &reply, &mut bufs, &mem);
        assert_eq!(a.params, vec![FwdOut::Refused { cookie: 0x60 }]);
        assert!(!bufs.contains_key(&0x60));
        let a = answer(&alloc(4096), &reply, &mut bufs, &mem);
        assert_eq!(a.params, vec![FwdOut::Allocated { cookie: 0x60 }]);
        assert!(bufs.contains_key(&0x60));
        // SHM_FREE forgets it.
        let free = Forwarded {
            func: rpc_cmd::SHM_FREE,
            params: vec![FwdParam::Value {
                dir: Dir::In,
                a: rpc_cmd::SHM_TYPE_APPL,
                b: 0x60,
                c: 0,
            }],
        };
        command(&free, &mut bufs, &mem).unwrap();
        assert!(!bufs.contains_key(&0x60));
    }

    #[test]
    fn an_undelivered_command_answers_its_error_and_nothing_else() {
        let (mem, mut bufs) = setup();
        let req = fs_read(8);
        let reply = RpcCmdReply {
            delivered: false,
            ret: teec::ERROR_COMMUNICATION,
            params: vec![RpcOut::None; 3],
        };
        assert_eq!(
            answer(&req, &reply, &mut bufs, &mem),
            Answer::failed(teec::ERROR_COMMUNICATION, 3)
        );
    }
}
