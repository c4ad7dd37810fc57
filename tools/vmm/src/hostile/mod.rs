// SPDX-License-Identifier: Apache-2.0 OR MIT
//! `--hostile-host`: a TEST TOOL that makes this VMM lie to its own guest.
//!
//! In a confidential (pKVM protected) guest the host is the adversary: it
//! answers the guest's OP-TEE calls and may answer anything. This module
//! forges what the host controls, so that the bench can show that the
//! guest's OP-TEE driver (patches/guest-VERSION, the SMC ABI driver's
//! hardening) survives it: shared memory cookies it never gave or already
//! freed, RPC FREE and RPC CMD naming arbitrary memory, an RPC argument
//! whose `num_params` runs past its buffer, fields changed while the guest
//! reads them, bogus thread ids and RPC function codes, out-of-range sizes.
//! Never use it for anything but testing a guest kernel.
//!
//! It wraps the normal SMC path: every call goes to the mediator, except a
//! standard call the guest's client marks as a forgery's target (an
//! INVOKE_COMMAND whose first parameter is a VALUE_INPUT with
//! [`MARK_A`], the forgery's index in `b`, [`MARK_C`]): that call never
//! reaches the mediator or the TEE; this module answers it, and the
//! RETURN_FROM_RPCs of its made-up thread, with the forgery's script, and
//! ends it with an error (or, for a forged answer, with a message whose
//! result is an error). So the guest's probe and ordinary calls go through
//! untouched, and each forgery meets exactly the call the client made for
//! it. The VMM appends `tosfwd.hostile=NAME,...` to the guest's command
//! line: the client reads its list of forgeries from there.
//!
//! The flipping forgeries need a thread writing guest memory while the
//! guest runs: [`Verdict::start_flip`] asks the VMM for one ([`Flip`]), and
//! [`Verdict::stop_flip`] ends it.

use std::collections::BTreeSet;
use std::fmt::Write as _;

use optee_mediator::abi::{self, reg_pair, ret, split_pair};
use optee_mediator::msg::{
    attr, cmd, off, rpc_cmd, teec, MsgArg, MsgHeader, MsgParam, HEADER_SIZE, PARAM_SIZE,
};
use optee_mediator::{GuestRam, SmcCall, SmcResult};

/// The marker of a forgery's target call: its first parameter's `a`
/// ("hostile!" in ASCII).
pub const MARK_A: u64 = 0x686f_7374_696c_6521;
/// The marker's `c` ("tosfwd!!").
pub const MARK_C: u64 = 0x746f_7366_7764_2121;

/// An address that looks like a kernel pointer (the arm64 linear map) and
/// names nothing the guest gave.
pub const KERNEL_LOOKING: u64 = 0xffff_0000_dead_b000;
/// A memory reference size far past any buffer.
pub const HUGE_SIZE: u64 = 0x0000_7fff_ffff_f000;
/// The `num_params` of the forged RPC argument: far more than fit its
/// 4 KiB buffer (127).
pub const HUGE_NUM_PARAMS: u32 = 0x00ff_ffff;
/// The RPC ALLOC size of `rpc-alloc-huge`: the most a register carries.
pub const HUGE_ALLOC: u32 = 0xffff_f000;
/// An RPC function code OP-TEE does not define.
pub const UNKNOWN_RPC: u32 = ret::RPC_PREFIX | 9;
/// The thread id of `bogus-thread`.
pub const BOGUS_THREAD: u32 = 0xdead_beef;
/// How often a flipping RPC command is sent while its fields flip.
pub const FLIP_ROUNDS: u32 = 64;
/// The made-up thread ids of forged calls: this, plus the forgery's index.
const THREAD_BASE: u32 = 0x7f00_0000;
/// The error a forged call ends with: not ETHREAD_LIMIT (the driver would
/// retry), not an RPC.
const END: u32 = ret::EBADCMD;

/// One forgery.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Forgery {
    /// The answer's memory reference names a kernel-looking cookie.
    AnswerUnknownRef,
    /// The answer's memory reference names a cookie the guest freed.
    AnswerStaleRef,
    /// The answer's memory reference size is far past its buffer.
    AnswerMemrefSize,
    /// The answer's memory reference flips while the guest reads it.
    AnswerFlip,
    /// RPC FREE of a kernel-looking address.
    RpcFreeKernel,
    /// RPC FREE of 0.
    RpcFreeZero,
    /// RPC FREE of a cookie the guest freed already.
    RpcFreeStale,
    /// RPC CMD in a buffer the guest never gave.
    RpcCmdUnknownCookie,
    /// RPC CMD in a buffer the guest freed.
    RpcCmdStaleCookie,
    /// RPC CMD whose num_params is far past its buffer.
    RpcCmdNumParams,
    /// RPC CMD SHM_FREE of a kernel-looking cookie.
    RpcShmFreeUnknown,
    /// RPC CMD whose fields flip while the guest handles it.
    RpcFlip,
    /// An RPC with a thread id OP-TEE never gave.
    BogusThread,
    /// An RPC function code OP-TEE does not define.
    UnknownRpcFunc,
    /// RPC ALLOC of almost 4 GiB.
    RpcAllocHuge,
    /// RPC CMD whose memory reference runs far past its buffer.
    RpcMemrefSize,
}

impl Forgery {
    /// Every forgery, in the order of `--hostile-host all`.
    pub const ALL: [Forgery; 16] = [
        Forgery::AnswerUnknownRef,
        Forgery::AnswerStaleRef,
        Forgery::AnswerMemrefSize,
        Forgery::AnswerFlip,
        Forgery::RpcFreeKernel,
        Forgery::RpcFreeZero,
        Forgery::RpcFreeStale,
        Forgery::RpcCmdUnknownCookie,
        Forgery::RpcCmdStaleCookie,
        Forgery::RpcCmdNumParams,
        Forgery::RpcShmFreeUnknown,
        Forgery::RpcFlip,
        Forgery::BogusThread,
        Forgery::UnknownRpcFunc,
        Forgery::RpcAllocHuge,
        Forgery::RpcMemrefSize,
    ];

    /// The name `--hostile-host` takes.
    pub fn name(self) -> &'static str {
        match self {
            Forgery::AnswerUnknownRef => "answer-unknown-ref",
            Forgery::AnswerStaleRef => "answer-stale-ref",
            Forgery::AnswerMemrefSize => "answer-memref-size",
            Forgery::AnswerFlip => "answer-flip",
            Forgery::RpcFreeKernel => "rpc-free-kernel",
            Forgery::RpcFreeZero => "rpc-free-zero",
            Forgery::RpcFreeStale => "rpc-free-stale",
            Forgery::RpcCmdUnknownCookie => "rpc-cmd-unknown-cookie",
            Forgery::RpcCmdStaleCookie => "rpc-cmd-stale-cookie",
            Forgery::RpcCmdNumParams => "rpc-cmd-num-params",
            Forgery::RpcShmFreeUnknown => "rpc-shm-free-unknown",
            Forgery::RpcFlip => "rpc-flip",
            Forgery::BogusThread => "bogus-thread",
            Forgery::UnknownRpcFunc => "unknown-rpc-func",
            Forgery::RpcAllocHuge => "rpc-alloc-huge",
            Forgery::RpcMemrefSize => "rpc-memref-size",
        }
    }

    /// What the host does, in a few words.
    pub fn what(self) -> &'static str {
        match self {
            Forgery::AnswerUnknownRef => "answer whose memref shm_ref is a kernel-looking address",
            Forgery::AnswerStaleRef => "answer whose memref shm_ref is a cookie the guest freed",
            Forgery::AnswerMemrefSize => "answer whose memref size is far past its buffer",
            Forgery::AnswerFlip => {
                "answer whose memref flips (type, shm_ref, size) while the guest reads it"
            }
            Forgery::RpcFreeKernel => "RPC FREE of a kernel-looking address",
            Forgery::RpcFreeZero => "RPC FREE of 0",
            Forgery::RpcFreeStale => "RPC FREE of a buffer the guest freed already",
            Forgery::RpcCmdUnknownCookie => "RPC CMD in a buffer named by a kernel-looking cookie",
            Forgery::RpcCmdStaleCookie => "RPC CMD in a buffer the guest freed",
            Forgery::RpcCmdNumParams => "RPC CMD whose num_params is far past its 4 KiB buffer",
            Forgery::RpcShmFreeUnknown => "RPC CMD SHM_FREE of a kernel-looking cookie",
            Forgery::RpcFlip => {
                "RPC CMD whose num_params and parameter flip while the guest handles it"
            }
            Forgery::BogusThread => "RPC with a thread id OP-TEE never gave",
            Forgery::UnknownRpcFunc => "RPC with an undefined function code",
            Forgery::RpcAllocHuge => "RPC ALLOC of almost 4 GiB",
            Forgery::RpcMemrefSize => {
                "RPC CMD (LOAD_TA) whose memref into its own buffer runs far past it"
            }
        }
    }
}

/// `--hostile-host`'s value: the forgeries, in order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Forgeries(pub Vec<Forgery>);

/// `--hostile-host`'s value: `all`, or forgery names separated by commas.
pub fn parse_forgeries(s: &str) -> Result<Forgeries, String> {
    if s == "all" {
        return Ok(Forgeries(Forgery::ALL.to_vec()));
    }
    s.split(',')
        .map(|n| {
            Forgery::ALL
                .iter()
                .copied()
                .find(|f| f.name() == n)
                .ok_or_else(|| {
                    let names: Vec<&str> = Forgery::ALL.iter().map(|f| f.name()).collect();
                    format!(
                        "'{n}' is no forgery (want all, or of: {})",
                        names.join(", ")
                    )
                })
        })
        .collect::<Result<Vec<_>, _>>()
        .map(Forgeries)
}

/// The guest command line word that lists the forgeries for the client.
pub fn cmdline_word(forgeries: &[Forgery]) -> String {
    let names: Vec<&str> = forgeries.iter().map(|f| f.name()).collect();
    format!("tosfwd.hostile={}", names.join(","))
}

/// A thread of the VMM that writes `states` in turn at `gpa` until told to
/// stop: fields changing under the guest's reads.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Flip {
    /// Where.
    pub gpa: u64,
    /// What, in turn (the same length).
    pub states: [Vec<u8>; 2],
}

/// What to do with a forwarded call.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Verdict {
    /// The forged answer; `None`: the mediator answers.
    pub answer: Option<SmcResult>,
    /// Start a flipping thread (before the answer is given).
    pub start_flip: Option<Flip>,
    /// Stop the flipping thread (before anything else).
    pub stop_flip: bool,
    /// A line for the VMM's report (a forged call ended).
    pub report: Option<String>,
}

/// Which buffer an RPC names.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Cookie {
    /// The buffer of this call's RPC ALLOC.
    Buf,
    /// This value.
    Fixed(u64),
}

/// One step of a forged call's script: what the guest is answered at one
/// entry.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Op {
    /// Write into the call's message (offset, bytes), answer OK: the call
    /// ends with the message as the host left it; optionally flipping.
    Answer(Vec<(u64, Vec<u8>)>, Option<[Vec<u8>; 2]>, u64),
    /// RPC ALLOC of this size.
    Alloc(u32),
    /// RPC FREE of this cookie.
    Free(Cookie),
    /// RPC FREE of the buffer, if the guest allocated one.
    FreeIfAllocated,
    /// RPC CMD in this buffer, after writing this argument there (and
    /// flipping it with the second state, `rounds` times).
    Cmd(Cookie, Option<Vec<u8>>, Option<Vec<u8>>, u32),
    /// These result registers (w0..w2; w3 is the thread).
    Raw([u32; 3]),
    /// End the call with this code.
    End(u32),
}

/// A forged call in progress.
#[derive(Debug)]
struct Active {
    index: usize,
    forgery: Forgery,
    thread: u32,
    ops: Vec<Op>,
    /// The op whose answer the guest is handling.
    at: usize,
    /// Rounds of a flipping command sent.
    rounds: u32,
    /// The buffer of this call's RPC ALLOC: (address, cookie).
    buf: Option<(u64, u64)>,
    /// What the guest did, for the report.
    notes: Vec<String>,
    flipping: bool,
}

/// The hostile host: the forgeries to make, what it has seen.
#[derive(Debug)]
pub struct Hostile {
    forgeries: Vec<Forgery>,
    /// Cookies of registered shared memory the guest has not unregistered.
    live: BTreeSet<u64>,
    /// The last cookie the guest unregistered (and has not registered again).
    stale: Option<u64>,
    active: Option<Active>,
    /// A flip of a forged answer runs until the guest's next call.
    answer_flip: bool,
    /// Forged calls ended.
    done: usize,
}

fn le(v: u64) -> Vec<u8> {
    v.to_le_bytes().to_vec()
}

fn param_at(index: u64) -> u64 {
    off::PARAMS + PARAM_SIZE as u64 * index
}

/// The RPC argument of `rpc-cmd-num-params`: a command tee-supplicant would
/// serve (LOAD_TA), with far more parameters than its buffer holds.
pub fn num_params_arg() -> Vec<u8> {
    MsgHeader {
        cmd: rpc_cmd::LOAD_TA,
        num_params: HUGE_NUM_PARAMS,
        ..MsgHeader::default()
    }
    .encode()
    .to_vec()
}

/// The RPC argument of `rpc-shm-free-unknown`: SHM_FREE of kernel memory
/// at a kernel-looking address.
pub fn shm_free_arg() -> Vec<u8> {
    MsgArg::new(
        rpc_cmd::SHM_FREE,
        vec![MsgParam::new(
            attr::VALUE_INPUT,
            rpc_cmd::SHM_TYPE_KERNEL,
            KERNEL_LOOKING,
            0,
        )],
    )
    .encode()
}

/// The RPC argument of `rpc-memref-size`: LOAD_TA (which tee-supplicant
/// serves) whose temporary memory reference starts at its own buffer
/// (`pa`, `cookie`) and runs far past it.
pub fn memref_size_arg(pa: u64, cookie: u64) -> Vec<u8> {
    MsgArg::new(
        rpc_cmd::LOAD_TA,
        vec![MsgParam::new(attr::TMEM_INOUT, pa, HUGE_SIZE, cookie)],
    )
    .encode()
}

/// The two states of `rpc-flip`'s argument: GET_TIME as OP-TEE sends it
/// (served in the guest's kernel, no tee-supplicant), and the same with
/// num_params far past the buffer and a temporary memory reference at a
/// kernel-looking address in its parameter.
pub fn flip_args() -> [Vec<u8>; 2] {
    let good = MsgArg::new(
        rpc_cmd::GET_TIME,
        vec![MsgParam::new(attr::VALUE_OUTPUT, 0, 0, 0)],
    )
    .encode();
    let mut bad = MsgArg::new(
        rpc_cmd::GET_TIME,
        vec![MsgParam::new(
            attr::TMEM_INOUT,
            KERNEL_LOOKING,
            HUGE_SIZE,
            KERNEL_LOOKING,
        )],
    )
    .encode();
    bad[28..32].copy_from_slice(&HUGE_NUM_PARAMS.to_le_bytes());
    [good, bad]
}

/// The forged result of an answer: an error from the TEE, so that the
/// client's call ends with an error whatever the driver makes of the rest.
fn answer_ret() -> Vec<(u64, Vec<u8>)> {
    vec![
        (off::RET, teec::ERROR_BAD_STATE.to_le_bytes().to_vec()),
        (off::RET_ORIGIN, teec::ORIGIN_TEE.to_le_bytes().to_vec()),
    ]
}

impl Hostile {
    /// A hostile host making these forgeries (index k of the client's
    /// marked calls meets `forgeries[k]`).
    pub fn new(forgeries: Vec<Forgery>) -> Self {
        Hostile {
            forgeries,
            live: BTreeSet::new(),
            stale: None,
            active: None,
            answer_flip: false,
            done: 0,
        }
    }

    /// The forgeries.
    pub fn forgeries(&self) -> &[Forgery] {
        &self.forgeries
    }

    /// Forged calls ended so far.
    pub fn done(&self) -> usize {
        self.done
    }

    /// The script of `forgery`, for a call with these parameters.
    fn script(&self, forgery: Forgery, params: &[MsgParam]) -> (Vec<Op>, String) {
        let mut note = String::new();
        let memref = params.get(1).copied().unwrap_or_default();
        let ops = match forgery {
            Forgery::AnswerUnknownRef | Forgery::AnswerStaleRef => {
                let cookie = if forgery == Forgery::AnswerStaleRef {
                    match self.stale {
                        Some(c) => {
                            let _ = write!(note, "stale cookie {c:#x}");
                            c
                        }
                        None => {
                            note.push_str("no stale cookie seen: a kernel-looking one instead");
                            KERNEL_LOOKING
                        }
                    }
                } else {
                    KERNEL_LOOKING
                };
                let mut w = answer_ret();
                w.push((param_at(1) + 24, le(cookie)));
                vec![Op::Answer(w, None, 0)]
            }
            Forgery::AnswerMemrefSize => {
                let mut w = answer_ret();
                w.push((param_at(1) + 16, le(HUGE_SIZE)));
                vec![Op::Answer(w, None, 0)]
            }
            Forgery::AnswerFlip => {
                let bad =
                    MsgParam::new(attr::TMEM_INOUT, KERNEL_LOOKING, HUGE_SIZE, KERNEL_LOOKING);
                let states = [memref.encode().to_vec(), bad.encode().to_vec()];
                vec![Op::Answer(answer_ret(), Some(states), param_at(1))]
            }
            Forgery::RpcFreeKernel => {
                vec![Op::Free(Cookie::Fixed(KERNEL_LOOKING)), Op::End(END)]
            }
            Forgery::RpcFreeZero => vec![Op::Free(Cookie::Fixed(0)), Op::End(END)],
            Forgery::RpcFreeStale => vec![
                Op::Alloc(4096),
                Op::Free(Cookie::Buf),
                Op::Free(Cookie::Buf),
                Op::End(END),
            ],
            Forgery::RpcCmdUnknownCookie => vec![
                Op::Cmd(Cookie::Fixed(KERNEL_LOOKING), None, None, 1),
                Op::End(END),
            ],
            Forgery::RpcCmdStaleCookie => vec![
                Op::Alloc(4096),
                Op::Free(Cookie::Buf),
                Op::Cmd(Cookie::Buf, None, None, 1),
                Op::End(END),
            ],
            Forgery::RpcCmdNumParams => vec![
                Op::Alloc(4096),
                Op::Cmd(Cookie::Buf, Some(num_params_arg()), None, 1),
                Op::FreeIfAllocated,
                Op::End(END),
            ],
            Forgery::RpcShmFreeUnknown => vec![
                Op::Alloc(4096),
                Op::Cmd(Cookie::Buf, Some(shm_free_arg()), None, 1),
                Op::FreeIfAllocated,
                Op::End(END),
            ],
            Forgery::RpcFlip => {
                let [good, bad] = flip_args();
                vec![
                    Op::Alloc(4096),
                    Op::Cmd(Cookie::Buf, Some(good), Some(bad), FLIP_ROUNDS),
                    Op::FreeIfAllocated,
                    Op::End(END),
                ]
            }
            Forgery::BogusThread => vec![
                Op::Raw([ret::RPC_FOREIGN_INTR, 0, 0]),
                Op::End(ret::ERESUME),
            ],
            Forgery::UnknownRpcFunc => vec![Op::Raw([UNKNOWN_RPC, 0, 0]), Op::End(END)],
            Forgery::RpcAllocHuge => vec![Op::Alloc(HUGE_ALLOC), Op::FreeIfAllocated, Op::End(END)],
            // The argument names the buffer, known once allocated (`play`).
            Forgery::RpcMemrefSize => vec![
                Op::Alloc(4096),
                Op::Cmd(Cookie::Buf, None, None, 1),
                Op::FreeIfAllocated,
                Op::End(END),
            ],
        };
        (ops, note)
    }

    /// Looks at one forwarded call before the mediator: a forged call's
    /// step, or nothing (the mediator answers).
    pub fn intercept(&mut self, mem: &dyn GuestRam, call: &SmcCall) -> Verdict {
        let mut v = Verdict {
            stop_flip: std::mem::take(&mut self.answer_flip),
            ..Verdict::default()
        };
        if call.function == abi::RETURN_FROM_RPC {
            if let Some(a) = self.active.as_mut() {
                if call.w(3) == a.thread {
                    let a = self.active.take();
                    if let Some(mut a) = a {
                        self.returned(mem, &mut a, call, &mut v);
                        if v.report.is_none() {
                            self.active = Some(a);
                        }
                    }
                }
            }
            return v;
        }
        if call.function != abi::CALL_WITH_ARG {
            return v;
        }
        let gpa = reg_pair(u64::from(call.w(1)), u64::from(call.w(2)));
        let Ok(arg) = MsgArg::read(mem, gpa) else {
            return v;
        };
        self.observe(&arg);
        let Some(index) = marked(&arg) else {
            return v;
        };
        if self.active.is_some() {
            return v;
        }
        let Some(&forgery) = self.forgeries.get(index) else {
            v.report = Some(format!(
                "call {index}: marked for a forgery, but only {} were given: passed on",
                self.forgeries.len()
            ));
            return v;
        };
        let (ops, note) = self.script(forgery, &arg.params);
        let thread = if forgery == Forgery::BogusThread {
            BOGUS_THREAD
        } else {
            THREAD_BASE + index as u32
        };
        let mut a = Active {
            index,
            forgery,
            thread,
            ops,
            at: 0,
            rounds: 0,
            buf: None,
            notes: Vec::new(),
            flipping: false,
        };
        if !note.is_empty() {
            a.notes.push(note);
        }
        self.play(mem, &mut a, gpa, &mut v);
        if v.report.is_none() {
            self.active = Some(a);
        }
        v
    }

    /// Records the guest's shared memory registrations (for stale cookies).
    fn observe(&mut self, arg: &MsgArg) {
        let Some(p) = arg.params.first() else {
            return;
        };
        match arg.header.cmd {
            cmd::REGISTER_SHM => {
                self.live.insert(p.c);
                if self.stale == Some(p.c) {
                    self.stale = None;
                }
            }
            cmd::UNREGISTER_SHM => {
                self.live.remove(&p.c);
                self.stale = Some(p.c);
            }
            _ => {}
        }
    }

    /// The guest came back from the RPC of `a`'s current op.
    fn returned(&mut self, mem: &dyn GuestRam, a: &mut Active, call: &SmcCall, v: &mut Verdict) {
        if a.flipping {
            v.stop_flip = true;
            a.flipping = false;
        }
        match a.ops.get(a.at).cloned() {
            Some(Op::Alloc(size)) => {
                let pa = reg_pair(u64::from(call.w(1)), u64::from(call.w(2)));
                let cookie = reg_pair(u64::from(call.w(4)), u64::from(call.w(5)));
                if pa == 0 {
                    a.notes
                        .push(format!("the guest refused RPC ALLOC of {size:#x} bytes"));
                } else {
                    a.notes.push(format!(
                        "the guest allocated {size:#x} bytes at {pa:#x} (cookie {cookie:#x})"
                    ));
                    a.buf = Some((pa, cookie));
                }
                if pa == 0 && a.forgery != Forgery::RpcAllocHuge {
                    // Nothing to go on with: end.
                    a.at = a.ops.len().saturating_sub(1);
                    return self.play(mem, a, 0, v);
                }
            }
            Some(Op::Cmd(_, arg, flip, rounds)) => {
                if let Some((pa, _)) = a.buf {
                    let mut r = [0u8; 8];
                    if mem.read(pa + off::RET, &mut r).is_ok() {
                        let (ret, origin) = (
                            u32::from_le_bytes([r[0], r[1], r[2], r[3]]),
                            u32::from_le_bytes([r[4], r[5], r[6], r[7]]),
                        );
                        if a.rounds <= 1 || a.rounds == rounds {
                            a.notes.push(format!(
                                "RPC CMD round {}: the guest answered ret {ret:#x} origin {origin}",
                                a.rounds
                            ));
                        }
                    }
                }
                if a.rounds < rounds {
                    a.rounds += 1;
                    // The next round: the argument again, the flip again.
                    if let (Some((pa, _)), Some(arg)) = (a.buf, arg.as_ref()) {
                        let _ = mem.write(pa, arg);
                    }
                    return self.answer_cmd(a, flip, v);
                }
            }
            Some(Op::Raw(_)) if a.forgery == Forgery::BogusThread => {
                a.notes.push(format!(
                    "the guest returned from the RPC with thread {:#x}",
                    call.w(3)
                ));
            }
            Some(Op::Free(_)) | Some(Op::FreeIfAllocated) => {
                a.notes.push("the guest returned from RPC FREE".to_owned());
            }
            _ => {}
        }
        a.at += 1;
        self.play(mem, a, 0, v);
    }

    /// Answers the current op of `a` (the first, at the marked call, whose
    /// message is at `arg_gpa`).
    fn play(&mut self, mem: &dyn GuestRam, a: &mut Active, arg_gpa: u64, v: &mut Verdict) {
        let t = a.thread;
        let op = a.ops.get(a.at).cloned().unwrap_or(Op::End(END));
        match op {
            Op::Answer(writes, flip, flip_off) => {
                let mut failed = false;
                for (o, bytes) in &writes {
                    failed |= mem.write(arg_gpa + o, bytes).is_err();
                }
                if failed {
                    a.notes
                        .push("the message could not be written (not shared?)".to_owned());
                }
                if let Some(states) = flip {
                    v.start_flip = Some(Flip {
                        gpa: arg_gpa + flip_off,
                        states,
                    });
                    self.answer_flip = true;
                }
                self.end(a, ret::OK, v);
            }
            Op::Alloc(size) => v.answer = Some(SmcResult::new(&[ret::RPC_ALLOC, size, 0, t])),
            Op::Free(c) => {
                let (hi, lo) = split_pair(self.cookie(a, c));
                v.answer = Some(SmcResult::new(&[ret::RPC_FREE, hi, lo, t]));
            }
            Op::FreeIfAllocated => match a.buf {
                Some((_, cookie)) => {
                    let (hi, lo) = split_pair(cookie);
                    v.answer = Some(SmcResult::new(&[ret::RPC_FREE, hi, lo, t]));
                }
                None => {
                    a.at += 1;
                    self.play(mem, a, arg_gpa, v);
                }
            },
            Op::Cmd(_, arg, flip, _) => {
                let arg = match (a.forgery, a.buf) {
                    (Forgery::RpcMemrefSize, Some((pa, cookie))) => {
                        Some(memref_size_arg(pa, cookie))
                    }
                    _ => arg,
                };
                if let (Some((pa, _)), Some(arg)) = (a.buf, &arg) {
                    if mem.write(pa, arg).is_err() {
                        a.notes
                            .push("the RPC argument could not be written".to_owned());
                    }
                }
                a.rounds = 1;
                self.answer_cmd(a, flip, v);
            }
            Op::Raw([w0, w1, w2]) => v.answer = Some(SmcResult::new(&[w0, w1, w2, t])),
            Op::End(code) => self.end(a, code, v),
        }
    }

    /// RPC CMD of `a`'s current op, flipping its argument with `flip`.
    fn answer_cmd(&self, a: &mut Active, flip: Option<Vec<u8>>, v: &mut Verdict) {
        let c = match a.ops.get(a.at) {
            Some(Op::Cmd(c, ..)) => *c,
            _ => Cookie::Buf,
        };
        if let (Some((pa, _)), Some(bad)) = (a.buf, flip) {
            let good = match a.ops.get(a.at) {
                Some(Op::Cmd(_, Some(g), ..)) => g.clone(),
                _ => Vec::new(),
            };
            v.start_flip = Some(Flip {
                gpa: pa,
                states: [good, bad],
            });
            a.flipping = true;
        }
        let (hi, lo) = split_pair(self.cookie(a, c));
        v.answer = Some(SmcResult::new(&[ret::RPC_CMD, hi, lo, a.thread]));
    }

    fn cookie(&self, a: &Active, c: Cookie) -> u64 {
        match c {
            Cookie::Fixed(v) => v,
            Cookie::Buf => a.buf.map_or(0, |(_, cookie)| cookie),
        }
    }

    fn end(&mut self, a: &mut Active, code: u32, v: &mut Verdict) {
        v.answer = Some(SmcResult::code(code));
        self.done += 1;
        let mut line = format!(
            "call {}: forgery {}: {}: ended with {}",
            a.index,
            a.forgery.name(),
            a.forgery.what(),
            if code == ret::OK {
                "OK and a message whose result is TEEC_ERROR_BAD_STATE".to_owned()
            } else {
                format!("{code:#x}")
            }
        );
        for n in &a.notes {
            line.push_str("; ");
            line.push_str(n);
        }
        v.report = Some(line);
    }
}

/// The forgery index of a marked call.
fn marked(arg: &MsgArg) -> Option<usize> {
    if arg.header.cmd != cmd::INVOKE_COMMAND {
        return None;
    }
    let p = arg.params.first()?;
    (p.attr & attr::TYPE_MASK == attr::VALUE_INPUT && p.a == MARK_A && p.c == MARK_C)
        .then(|| usize::try_from(p.b).ok())
        .flatten()
}

/// The size of a forged message's room: header and this many parameters.
pub const fn room(params: usize) -> usize {
    HEADER_SIZE + PARAM_SIZE * params
}

#[cfg(test)]
mod tests;
