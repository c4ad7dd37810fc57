// SPDX-License-Identifier: Apache-2.0 OR MIT
//! The built-in trusted applications of the userspace TEE.

use crate::backend::{Param, RpcCmdReply, RpcOut, StdCall};
use crate::mem::GuestRam;
use crate::msg::{attr, rpc_cmd, teec, Dir, MsgArg, MsgParam};
use crate::policy::Uuid;

/// OP-TEE's hello_world example TA: command 0 increments value a of an
/// INOUT value parameter, command 1 decrements it.
pub const HELLO_UUID: Uuid = Uuid::from_fields(
    0x8aaa_f200,
    0x2450,
    0x11e4,
    [0xab, 0xe2, 0x00, 0x02, 0xa5, 0xd5, 0xc5, 0x1b],
);
/// The memory TA: exercises temporary, registered and RPC-allocated memory.
pub const MEMORY_UUID: Uuid = Uuid::from_fields(
    0xc3f6_e2a0,
    0x5b7d,
    0x4f1e,
    [0x8a, 0x9c, 0x6d, 0x0e, 0x1f, 0x2a, 0x3b, 0x4c],
);
/// The device-enumeration pseudo TA the Linux driver opens at probe.
pub const DEVICE_PTA_UUID: Uuid = Uuid::from_fields(
    0x7011_a688,
    0xddde,
    0x4053,
    [0xa5, 0xa9, 0x7b, 0x3c, 0x4d, 0xdf, 0x13, 0xb8],
);

/// Hello TA commands.
pub mod hello {
    /// TA_HELLO_WORLD_CMD_INC_VALUE: `value[0].a += 1`.
    pub const CMD_INC_VALUE: u32 = 0;
    /// TA_HELLO_WORLD_CMD_DEC_VALUE: `value[0].a -= 1`.
    pub const CMD_DEC_VALUE: u32 = 1;
}

/// Memory TA commands.
pub mod memory {
    /// (memref inout, value out): reverses the buffer in place; value.a =
    /// FNV-1a 32 of the result, value.b = its length.
    pub const CMD_REVERSE: u32 = 0;
    /// (memref in, memref out, value out): writes the input reversed into
    /// the output; SHORT_BUFFER with the needed size if it does not fit.
    pub const CMD_COPY_REVERSED: u32 = 1;
    /// (value inout): a = rounds; yields to the normal world with
    /// FOREIGN_INTR each round; cancellable; a = rounds done.
    pub const CMD_SLOW: u32 = 2;
    /// (value inout): a = length; asks the guest for a kernel buffer of
    /// that length (RPC SHM_ALLOC), fills it, checksums it, frees it
    /// (RPC SHM_FREE); a = checksum, b = length.
    pub const CMD_FILL_RPC_SHM: u32 = 3;
    /// (value out): asks the guest for the time (RPC GET_TIME); a =
    /// seconds, b = nanoseconds.
    pub const CMD_GET_TIME: u32 = 4;
    /// Most rounds CMD_SLOW accepts.
    pub const MAX_ROUNDS: u64 = 1 << 20;
}

/// Device PTA commands (PTA_CMD_GET_DEVICES*, drivers/tee/optee/optee_private.h).
pub mod device {
    /// PTA_CMD_GET_DEVICES.
    pub const CMD_GET_DEVICES: u32 = 0;
    /// PTA_CMD_GET_DEVICES_SUPP.
    pub const CMD_GET_DEVICES_SUPP: u32 = 1;
    /// PTA_CMD_GET_DEVICES_RPMB.
    pub const CMD_GET_DEVICES_RPMB: u32 = 2;
}

/// TEE_ERROR_CANCEL.
const ERROR_CANCEL: u32 = teec::ERROR_CANCEL;

/// Which TA a session is with.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Ta {
    /// [`HELLO_UUID`].
    Hello,
    /// [`MEMORY_UUID`].
    Memory,
    /// [`DEVICE_PTA_UUID`].
    DevicePta,
}

impl Ta {
    /// The TA with this UUID.
    pub fn find(uuid: &Uuid) -> Option<Ta> {
        [
            (HELLO_UUID, Ta::Hello),
            (MEMORY_UUID, Ta::Memory),
            (DEVICE_PTA_UUID, Ta::DevicePta),
        ]
        .iter()
        .find(|(u, _)| u == uuid)
        .map(|(_, t)| *t)
    }
}

/// GP parameter type codes of up to four parameters; `None` if there are
/// more than four.
fn types(params: &[Param]) -> Option<[u8; 4]> {
    if params.len() > 4 {
        return None;
    }
    let mut t = [0u8; 4];
    for (d, p) in t.iter_mut().zip(params) {
        *d = match p {
            Param::None => 0,
            Param::Value { dir, .. } => match dir {
                Dir::In => 1,
                Dir::Out => 2,
                Dir::InOut => 3,
            },
            Param::Memref { dir, .. } => match dir {
                Dir::In => 5,
                Dir::Out => 6,
                Dir::InOut => 7,
            },
        };
    }
    Some(t)
}

/// FNV-1a, 32 bits.
pub fn fnv1a32(data: &[u8]) -> u32 {
    data.iter().fold(0x811c_9dc5u32, |h, b| {
        (h ^ u32::from(*b)).wrapping_mul(0x0100_0193)
    })
}

/// The byte CMD_FILL_RPC_SHM writes at offset `i`.
pub fn fill_byte(i: u64) -> u8 {
    (i.wrapping_mul(31).wrapping_add(7)) as u8
}

fn value_mut(p: Option<&mut Param>) -> Option<(&mut u64, &mut u64, &mut u64)> {
    match p {
        Some(Param::Value { a, b, c, .. }) => Some((a, b, c)),
        _ => None,
    }
}

/// A command still running: its state between RPCs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Job {
    /// CMD_SLOW.
    Slow {
        /// Rounds done.
        done: u64,
        /// Rounds asked.
        rounds: u64,
    },
    /// CMD_FILL_RPC_SHM.
    Fill(Fill),
    /// CMD_GET_TIME, waiting for the answer.
    Time,
}

/// CMD_FILL_RPC_SHM's progress.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Fill {
    /// SHM_ALLOC sent.
    Allocating {
        /// Length asked.
        len: u64,
    },
    /// SHM_FREE sent; the result to report after.
    Freeing {
        /// TEEC result.
        ret: u32,
        /// Checksum.
        sum: u32,
        /// Length.
        len: u64,
    },
}

/// What a job needs next.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum JobOut {
    /// Finished; the result is in the call.
    Done,
    /// Let the guest take its interrupts.
    ForeignIntr,
    /// Send this RPC command.
    Cmd(MsgArg),
}

/// What resumed a job.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum JobIn {
    /// The guest came back from FOREIGN_INTR.
    Resumed,
    /// The guest's answer to the command.
    Cmd(RpcCmdReply),
}

/// What invoking a command did.
#[derive(Debug)]
pub enum Invoked {
    /// Finished; the result is in the call.
    Done,
    /// Started a job that needs the normal world.
    Job(Job, JobOut),
}

fn done(call: &mut StdCall, ret: u32) -> Invoked {
    call.finish(ret, teec::ORIGIN_TRUSTED_APP);
    Invoked::Done
}

/// Opens a session: checks the parameters the TA accepts.
pub fn open(ta: Ta, call: &StdCall) -> u32 {
    match ta {
        Ta::Hello | Ta::Memory => teec::SUCCESS,
        Ta::DevicePta if call.params.iter().all(|p| *p == Param::None) => teec::SUCCESS,
        Ta::DevicePta => teec::ERROR_BAD_PARAMETERS,
    }
}

/// Invokes `func` of `ta`.
pub fn invoke(
    ta: Ta,
    func: u32,
    call: &mut StdCall,
    mem: &dyn GuestRam,
    devices: &[Uuid],
) -> Invoked {
    let Some(t) = types(&call.params) else {
        return done(call, teec::ERROR_BAD_PARAMETERS);
    };
    match ta {
        Ta::Hello => hello_invoke(func, t, call),
        Ta::Memory => memory_invoke(func, t, call, mem),
        Ta::DevicePta => device_invoke(func, t, call, mem, devices),
    }
}

fn hello_invoke(func: u32, t: [u8; 4], call: &mut StdCall) -> Invoked {
    if t != [3, 0, 0, 0] {
        return done(call, teec::ERROR_BAD_PARAMETERS);
    }
    let Some((a, _, _)) = value_mut(call.params.first_mut()) else {
        return done(call, teec::ERROR_BAD_PARAMETERS);
    };
    let v = *a as u32;
    *a = u64::from(match func {
        hello::CMD_INC_VALUE => v.wrapping_add(1),
        hello::CMD_DEC_VALUE => v.wrapping_sub(1),
        _ => return done(call, teec::ERROR_BAD_PARAMETERS),
    });
    done(call, teec::SUCCESS)
}

fn memory_invoke(func: u32, t: [u8; 4], call: &mut StdCall, mem: &dyn GuestRam) -> Invoked {
    match func {
        memory::CMD_REVERSE if t == [7, 2, 0, 0] => {
            let Some(Param::Memref { mem: Some(r), .. }) = call.params.first() else {
                return done(call, teec::ERROR_BAD_PARAMETERS);
            };
            let Ok(mut data) = r.read_all(mem) else {
                return done(call, teec::ERROR_BAD_PARAMETERS);
            };
            data.reverse();
            if r.write(mem, 0, &data).is_err() {
                return done(call, teec::ERROR_BAD_PARAMETERS);
            }
            let sum = fnv1a32(&data);
            if let Some((a, b, _)) = value_mut(call.params.get_mut(1)) {
                (*a, *b) = (u64::from(sum), data.len() as u64);
            }
            done(call, teec::SUCCESS)
        }
        memory::CMD_COPY_REVERSED if t == [5, 6, 2, 0] => {
            let Some(Param::Memref { mem: Some(src), .. }) = call.params.first() else {
                return done(call, teec::ERROR_BAD_PARAMETERS);
            };
            let Ok(mut data) = src.read_all(mem) else {
                return done(call, teec::ERROR_BAD_PARAMETERS);
            };
            data.reverse();
            let need = data.len() as u64;
            let Some(Param::Memref { mem: dst, size, .. }) = call.params.get_mut(1) else {
                return done(call, teec::ERROR_BAD_PARAMETERS);
            };
            *size = need;
            let fits = dst.as_ref().is_some_and(|d| d.size() >= need);
            if !fits {
                return done(call, teec::ERROR_SHORT_BUFFER);
            }
            if let Some(d) = dst {
                if d.write(mem, 0, &data).is_err() {
                    return done(call, teec::ERROR_BAD_PARAMETERS);
                }
            }
            let sum = fnv1a32(&data);
            if let Some((a, b, _)) = value_mut(call.params.get_mut(2)) {
                (*a, *b) = (u64::from(sum), need);
            }
            done(call, teec::SUCCESS)
        }
        memory::CMD_SLOW if t == [3, 0, 0, 0] => {
            let rounds = match call.params.first() {
                Some(Param::Value { a, .. }) => *a,
                _ => 0,
            };
            if rounds > memory::MAX_ROUNDS {
                return done(call, teec::ERROR_BAD_PARAMETERS);
            }
            if rounds == 0 {
                return done(call, teec::SUCCESS);
            }
            Invoked::Job(Job::Slow { done: 0, rounds }, JobOut::ForeignIntr)
        }
        memory::CMD_FILL_RPC_SHM if t == [3, 0, 0, 0] => {
            let len = match call.params.first() {
                Some(Param::Value { a, .. }) => *a,
                _ => 0,
            };
            if len == 0 || len > 64 << 20 {
                return done(call, teec::ERROR_BAD_PARAMETERS);
            }
            let arg = MsgArg::new(
                rpc_cmd::SHM_ALLOC,
                vec![MsgParam::new(
                    attr::VALUE_INPUT,
                    rpc_cmd::SHM_TYPE_KERNEL,
                    len,
                    4096,
                )],
            );
            Invoked::Job(Job::Fill(Fill::Allocating { len }), JobOut::Cmd(arg))
        }
        memory::CMD_GET_TIME if t == [2, 0, 0, 0] => {
            let arg = MsgArg::new(
                rpc_cmd::GET_TIME,
                vec![MsgParam::new(attr::VALUE_OUTPUT, 0, 0, 0)],
            );
            Invoked::Job(Job::Time, JobOut::Cmd(arg))
        }
        memory::CMD_REVERSE
        | memory::CMD_COPY_REVERSED
        | memory::CMD_SLOW
        | memory::CMD_FILL_RPC_SHM
        | memory::CMD_GET_TIME => done(call, teec::ERROR_BAD_PARAMETERS),
        _ => done(call, teec::ERROR_NOT_SUPPORTED),
    }
}

fn device_invoke(
    func: u32,
    t: [u8; 4],
    call: &mut StdCall,
    mem: &dyn GuestRam,
    devices: &[Uuid],
) -> Invoked {
    let list: &[Uuid] = match func {
        device::CMD_GET_DEVICES => devices,
        device::CMD_GET_DEVICES_SUPP | device::CMD_GET_DEVICES_RPMB => &[],
        _ => return done(call, teec::ERROR_NOT_SUPPORTED),
    };
    if t != [6, 0, 0, 0] {
        return done(call, teec::ERROR_BAD_PARAMETERS);
    }
    let bytes: Vec<u8> = list.iter().flat_map(|u| u.0).collect();
    let need = bytes.len() as u64;
    let Some(Param::Memref { mem: dst, size, .. }) = call.params.first_mut() else {
        return done(call, teec::ERROR_BAD_PARAMETERS);
    };
    let room = dst.as_ref().map_or(0, |d| d.size()).min(*size);
    *size = need;
    if room < need {
        return done(call, teec::ERROR_SHORT_BUFFER);
    }
    if let Some(d) = dst {
        if d.write(mem, 0, &bytes).is_err() {
            return done(call, teec::ERROR_BAD_PARAMETERS);
        }
    }
    done(call, teec::SUCCESS)
}

/// Advances a job. `cancelled` is whether a CANCEL named this call.
pub fn resume(
    job: &mut Job,
    input: JobIn,
    call: &mut StdCall,
    mem: &dyn GuestRam,
    cancelled: bool,
) -> JobOut {
    let finish = |call: &mut StdCall, ret: u32| {
        call.finish(ret, teec::ORIGIN_TRUSTED_APP);
        JobOut::Done
    };
    match job {
        Job::Slow { done, rounds } => {
            *done += 1;
            if cancelled {
                if let Some((a, _, _)) = value_mut(call.params.first_mut()) {
                    *a = *done;
                }
                call.finish(ERROR_CANCEL, teec::ORIGIN_TEE);
                return JobOut::Done;
            }
            if *done < *rounds {
                return JobOut::ForeignIntr;
            }
            if let Some((a, _, _)) = value_mut(call.params.first_mut()) {
                *a = *done;
            }
            finish(call, teec::SUCCESS)
        }
        Job::Time => {
            let JobIn::Cmd(r) = input else {
                return finish(call, teec::ERROR_COMMUNICATION);
            };
            match (r.ret, r.params.first()) {
                (teec::SUCCESS, Some(RpcOut::Value { a, b, .. })) => {
                    let (s, n) = (*a, *b);
                    if let Some((a, b, _)) = value_mut(call.params.first_mut()) {
                        (*a, *b) = (s, n);
                    }
                    finish(call, teec::SUCCESS)
                }
                (teec::SUCCESS, _) => finish(call, teec::ERROR_COMMUNICATION),
                (err, _) => finish(call, err),
            }
        }
        Job::Fill(Fill::Allocating { len }) => {
            let len = *len;
            let JobIn::Cmd(r) = input else {
                return finish(call, teec::ERROR_COMMUNICATION);
            };
            match r.params.first() {
                Some(RpcOut::Memref {
                    cookie,
                    mem: Some(buf),
                    ..
                }) if r.ret == teec::SUCCESS && buf.size() >= len => {
                    let (ret, sum) = fill(buf, len, mem);
                    let cookie = *cookie;
                    *job = Job::Fill(Fill::Freeing { ret, sum, len });
                    JobOut::Cmd(shm_free(cookie))
                }
                Some(RpcOut::Memref { cookie, .. }) if r.ret == teec::SUCCESS => {
                    // Allocated but refused by the mediator or too small:
                    // give it back before failing.
                    let cookie = *cookie;
                    *job = Job::Fill(Fill::Freeing {
                        ret: teec::ERROR_OUT_OF_MEMORY,
                        sum: 0,
                        len,
                    });
                    JobOut::Cmd(shm_free(cookie))
                }
                _ => finish(call, teec::ERROR_OUT_OF_MEMORY),
            }
        }
        Job::Fill(Fill::Freeing { ret, sum, len }) => {
            let (ret, sum, len) = (*ret, *sum, *len);
            if ret == teec::SUCCESS {
                if let Some((a, b, _)) = value_mut(call.params.first_mut()) {
                    (*a, *b) = (u64::from(sum), len);
                }
            }
            finish(call, ret)
        }
    }
}

fn shm_free(cookie: u64) -> MsgArg {
    MsgArg::new(
        rpc_cmd::SHM_FREE,
        vec![MsgParam::new(
            attr::VALUE_INPUT,
            rpc_cmd::SHM_TYPE_KERNEL,
            cookie,
            0,
        )],
    )
}

/// Fills `len` bytes of an RPC-allocated buffer and checksums what reads back.
fn fill(buf: &crate::shm::MemRef, len: u64, mem: &dyn GuestRam) -> (u32, u32) {
    let Ok(n) = usize::try_from(len) else {
        return (teec::ERROR_OUT_OF_MEMORY, 0);
    };
    let data: Vec<u8> = (0..len).map(fill_byte).collect();
    if buf.write(mem, 0, &data).is_err() {
        return (teec::ERROR_COMMUNICATION, 0);
    }
    let mut back = vec![0u8; n];
    if buf.read(mem, 0, &mut back).is_err() {
        return (teec::ERROR_COMMUNICATION, 0);
    }
    (teec::SUCCESS, fnv1a32(&back))
}
