// SPDX-License-Identifier: Apache-2.0 OR MIT
//! A fake guest for the tests: guest RAM with holes, a page allocator that
//! scatters pages, and a driver that does what Linux's smc_abi.c does
//! (optee_fill_pages_list, optee_handle_rpc, the RPC commands it serves).

#![allow(dead_code)]

use std::collections::HashMap;

use optee_mediator::abi::{self, reg_pair, ret, split_pair};
use optee_mediator::backend::Backend;
use optee_mediator::msg::{attr, cmd, login, rpc_cmd, teec, MsgArg, MsgParam, PAGE_SIZE};
use optee_mediator::pagelist::write_list;
use optee_mediator::utee::ta;
use optee_mediator::{
    ClientId, FakeGuestMemory, GuestRam, Mediator, Policy, SmcCall, SmcResult, UserTee, UteeConfig,
    Uuid,
};
use smccc::FunctionId;

/// Guest RAM.
pub const RAM: u64 = 0x4000_0000;
/// Its pages.
pub const RAM_PAGES: u64 = 8192;
/// A hole in the guest's address space.
pub const HOLE: u64 = 0x3000_0000;
/// A one-page region that tests can remove (arguments put there).
pub const FRAGILE: u64 = 0x7000_0000;

/// The time the fake guest answers GET_TIME with.
pub const TIME: (u64, u64) = (1_700_000_000, 123_456_789);

/// What the fake guest saw of RPCs.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct RpcLog {
    pub alloc: u32,
    pub free: u32,
    pub foreign_intr: u32,
    pub cmds: Vec<u32>,
}

/// How the fake guest answers RPC_ALLOC.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AllocAnswer {
    Page,
    Zero,
    Unaligned,
    Hole,
    SameCookie(u64),
}

/// How the fake guest answers SHM_ALLOC.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ShmAllocAnswer {
    PageList,
    Contiguous,
    Fail,
}

/// Called on each FOREIGN_INTR with the thread id (another vCPU's chance to act).
pub type IntrHook<B> = Box<dyn FnMut(&mut Mediator<B>, &FakeGuestMemory, u32)>;

pub struct Guest<B: Backend = UserTee> {
    pub mem: FakeGuestMemory,
    pub m: Mediator<B>,
    next: u64,
    next_cookie: u64,
    pub rpc_bufs: HashMap<u64, u64>,
    pub shm_bufs: HashMap<u64, Vec<u64>>,
    pub log: RpcLog,
    pub alloc_answer: AllocAnswer,
    pub shm_alloc_answer: ShmAllocAnswer,
    /// Called on each FOREIGN_INTR with the thread id.
    pub on_intr: Option<IntrHook<B>>,
}

pub fn memory() -> FakeGuestMemory {
    FakeGuestMemory::new(&[(RAM, RAM_PAGES * PAGE_SIZE), (FRAGILE, PAGE_SIZE)])
}

pub fn guest() -> Guest {
    guest_with(Policy::default(), UteeConfig::default())
}

pub fn guest_with(policy: Policy, config: UteeConfig) -> Guest {
    let m = Mediator::new(ClientId(1), policy, UserTee::new(config)).expect("mediator");
    Guest::from_mediator(m)
}

pub fn fid(id: FunctionId) -> SmcCall {
    SmcCall::new(id, &[])
}

impl<B: Backend> Guest<B> {
    pub fn from_mediator(m: Mediator<B>) -> Self {
        Guest {
            mem: memory(),
            m,
            next: 0,
            next_cookie: 0x1000,
            rpc_bufs: HashMap::new(),
            shm_bufs: HashMap::new(),
            log: RpcLog::default(),
            alloc_answer: AllocAnswer::Page,
            shm_alloc_answer: ShmAllocAnswer::PageList,
            on_intr: None,
        }
    }

    /// A fresh guest page; consecutive pages are never adjacent.
    pub fn page(&mut self) -> u64 {
        let k = self.next;
        self.next += 1;
        assert!(k < RAM_PAGES, "fake guest out of pages");
        RAM + ((k * 7 + 3) % RAM_PAGES) * PAGE_SIZE
    }

    /// Hands out pages from the first again: for a guest that runs for
    /// long, between calls (no call may hold a page then).
    pub fn reuse_pages(&mut self) {
        self.next = 0;
    }

    pub fn cookie(&mut self) -> u64 {
        self.next_cookie += 0x40;
        0xffff_0000_0000_0000 | self.next_cookie
    }

    pub fn call(&mut self, c: SmcCall) -> SmcResult {
        self.m.handle(&self.mem, &c)
    }

    pub fn fast(&mut self, id: FunctionId) -> SmcResult {
        self.call(fid(id))
    }

    /// CALL_WITH_ARG of the argument at `gpa`, without serving RPCs.
    pub fn call_with_arg_raw(&mut self, gpa: u64) -> SmcResult {
        let (hi, lo) = split_pair(gpa);
        self.call(SmcCall::new(
            abi::CALL_WITH_ARG,
            &[u64::from(hi), u64::from(lo), 0, 0, 0, 0, 0],
        ))
    }

    /// Writes `arg` in a fresh page.
    pub fn put_arg(&mut self, arg: &MsgArg) -> u64 {
        let gpa = self.page();
        self.mem.write(gpa, &vec![0u8; PAGE_SIZE as usize]).unwrap();
        self.mem.write(gpa, &arg.encode()).unwrap();
        gpa
    }

    /// Writes an INVOKE_COMMAND argument in a fresh page.
    pub fn put_invoke(&mut self, session: u32, func: u32, params: Vec<MsgParam>) -> u64 {
        self.put_arg(&invoke_arg(session, func, params))
    }

    /// Starts an INVOKE_COMMAND without serving RPCs: the argument's
    /// address and the first result.
    pub fn start_invoke(
        &mut self,
        session: u32,
        func: u32,
        params: Vec<MsgParam>,
    ) -> (u64, SmcResult) {
        let gpa = self.put_invoke(session, func, params);
        let r = self.call_with_arg_raw(gpa);
        (gpa, r)
    }

    /// RETURN_FROM_RPC of the thread the RPC return `r` names (a3), a1 and
    /// a2 zero.
    pub fn resume(&mut self, r: &SmcResult) -> SmcResult {
        self.call(SmcCall::new(abi::RETURN_FROM_RPC, &[0, 0, r.regs()[3]]))
    }

    /// Answers the RPC_ALLOC `r` with the buffer at `pa` and `cookie`.
    pub fn answer_alloc(&mut self, r: &SmcResult, pa: u64, cookie: u64) -> SmcResult {
        let (ph, pl) = split_pair(pa);
        let (ch, cl) = split_pair(cookie);
        self.call(SmcCall::new(
            abi::RETURN_FROM_RPC,
            &[
                u64::from(ph),
                u64::from(pl),
                r.regs()[3],
                u64::from(ch),
                u64::from(cl),
            ],
        ))
    }

    /// Starts an INVOKE_COMMAND whose first RPC (ALLOC) is answered with the
    /// buffer at `pa` and `cookie`, and checks that the TEE then sends an
    /// RPC command in it: the argument's address and that RPC_CMD result.
    pub fn start_rpc_cmd(
        &mut self,
        session: u32,
        func: u32,
        params: Vec<MsgParam>,
        pa: u64,
        cookie: u64,
    ) -> (u64, SmcResult) {
        let (gpa, r) = self.start_invoke(session, func, params);
        let r = self.answer_alloc(&r, pa, cookie);
        assert_eq!(r.a0(), u64::from(ret::RPC_CMD));
        (gpa, r)
    }

    /// INVOKE of the memory TA's CMD_REVERSE on the memref `mem`, with the
    /// checksum and length output value after it.
    pub fn reverse(&mut self, session: u32, mem: MsgParam) -> MsgArg {
        self.invoke(
            session,
            ta::memory::CMD_REVERSE,
            vec![mem, value(attr::VALUE_OUTPUT, 0)],
        )
    }

    pub fn read_arg(&self, gpa: u64) -> MsgArg {
        MsgArg::read(&self.mem, gpa).expect("argument readable")
    }

    /// CALL_WITH_ARG, serving RPCs like Linux until the call returns;
    /// returns a0 and the argument as the guest sees it after.
    pub fn std_call(&mut self, arg: &MsgArg) -> (u64, MsgArg) {
        let gpa = self.put_arg(arg);
        let r = self.call_with_arg_raw(gpa);
        let r = self.serve(r);
        (r.a0(), self.read_arg(gpa))
    }

    /// Serves RPC returns until a final result.
    pub fn serve(&mut self, mut r: SmcResult) -> SmcResult {
        for _ in 0..100_000 {
            let regs = r.regs().to_vec();
            let a0 = regs[0] as u32;
            if !ret::is_rpc(a0) {
                return r;
            }
            assert_eq!(regs.len(), 4, "RPC returns write a0..a3");
            let (a1, a2, a3) = (regs[1], regs[2], regs[3]);
            let mut back = [a1, a2, a3, 0, 0];
            match a0 {
                ret::RPC_ALLOC => {
                    self.log.alloc += 1;
                    let cookie = self.cookie();
                    let (pa, cookie) = match self.alloc_answer {
                        AllocAnswer::Page => (self.page(), cookie),
                        AllocAnswer::Zero => (0, cookie),
                        AllocAnswer::Unaligned => (self.page() + 8, cookie),
                        AllocAnswer::Hole => (HOLE, cookie),
                        AllocAnswer::SameCookie(c) => (self.page(), c),
                    };
                    self.rpc_bufs.insert(cookie, pa);
                    let (h, l) = split_pair(pa);
                    let (ch, cl) = split_pair(cookie);
                    back = [u64::from(h), u64::from(l), a3, u64::from(ch), u64::from(cl)];
                }
                ret::RPC_FREE => {
                    self.log.free += 1;
                    assert!(
                        self.rpc_bufs.remove(&reg_pair(a1, a2)).is_some(),
                        "freeing an unknown RPC buffer"
                    );
                }
                ret::RPC_FOREIGN_INTR => {
                    self.log.foreign_intr += 1;
                    if let Some(mut f) = self.on_intr.take() {
                        f(&mut self.m, &self.mem, a3 as u32);
                        self.on_intr = Some(f);
                    }
                }
                ret::RPC_CMD => {
                    let cookie = reg_pair(a1, a2);
                    let pa = *self
                        .rpc_bufs
                        .get(&cookie)
                        .expect("RPC_CMD in a known buffer");
                    self.rpc_cmd(pa);
                }
                other => panic!("unknown RPC {other:#x}"),
            }
            r = self.call(SmcCall::new(abi::RETURN_FROM_RPC, &back));
        }
        panic!("RPC loop did not end");
    }

    fn rpc_cmd(&mut self, pa: u64) {
        let mut arg = MsgArg::read(&self.mem, pa).expect("RPC argument readable");
        self.log.cmds.push(arg.header.cmd);
        arg.header.ret_origin = teec::ORIGIN_COMMS;
        match arg.header.cmd {
            rpc_cmd::GET_TIME => {
                assert_eq!(arg.params.len(), 1);
                assert_eq!(arg.params[0].attr, attr::VALUE_OUTPUT);
                arg.params[0].a = TIME.0;
                arg.params[0].b = TIME.1;
                arg.header.ret = teec::SUCCESS;
            }
            rpc_cmd::SHM_ALLOC => {
                assert_eq!(arg.params[0].attr, attr::VALUE_INPUT);
                assert_eq!(
                    arg.params[0].a,
                    rpc_cmd::SHM_TYPE_KERNEL,
                    "kernel memory, no supplicant"
                );
                let size = arg.params[0].b;
                let n = size.div_ceil(PAGE_SIZE);
                match self.shm_alloc_answer {
                    ShmAllocAnswer::Fail => arg.header.ret = teec::ERROR_OUT_OF_MEMORY,
                    ShmAllocAnswer::Contiguous => {
                        let cookie = self.cookie();
                        let p = self.page();
                        self.shm_bufs.insert(cookie, vec![p]);
                        arg.params[0] = MsgParam::new(attr::TMEM_OUTPUT, p, n * PAGE_SIZE, cookie);
                        arg.header.ret = teec::SUCCESS;
                    }
                    ShmAllocAnswer::PageList => {
                        let cookie = self.cookie();
                        let (ptr, pages) = self.page_list(n, 0);
                        self.shm_bufs.insert(cookie, pages);
                        arg.params[0] = MsgParam::new(
                            attr::TMEM_OUTPUT | attr::NONCONTIG,
                            ptr,
                            n * PAGE_SIZE,
                            cookie,
                        );
                        arg.header.ret = teec::SUCCESS;
                    }
                }
            }
            rpc_cmd::SHM_FREE => {
                assert_eq!(arg.params[0].a, rpc_cmd::SHM_TYPE_KERNEL);
                assert!(
                    self.shm_bufs.remove(&arg.params[0].b).is_some(),
                    "SHM_FREE of unknown buffer"
                );
                arg.header.ret = teec::SUCCESS;
            }
            _ => arg.header.ret = teec::ERROR_NOT_SUPPORTED,
        }
        self.mem.write(pa, &arg.encode()).unwrap();
    }

    /// Allocates `n` scattered data pages and the page list for them; returns
    /// buf_ptr (list | offset) and the pages.
    pub fn page_list(&mut self, n: u64, offset: u64) -> (u64, Vec<u64>) {
        let pages: Vec<u64> = (0..n).map(|_| self.page()).collect();
        let lists: Vec<u64> = (0..n.div_ceil(511).max(1)).map(|_| self.page()).collect();
        let ptr = write_list(&self.mem, &lists, &pages, offset).unwrap();
        (ptr, pages)
    }

    /// A temporary memory parameter holding `data` at `offset` of scattered pages.
    pub fn tmem(&mut self, dir_attr: u64, data: &[u8], offset: u64) -> (MsgParam, Vec<u64>) {
        let n = (offset + data.len() as u64).div_ceil(PAGE_SIZE);
        let (ptr, pages) = self.page_list(n, offset);
        write_scattered(&self.mem, &pages, offset, data);
        let cookie = self.cookie();
        (
            MsgParam::new(dir_attr | attr::NONCONTIG, ptr, data.len() as u64, cookie),
            pages,
        )
    }

    /// Registers `data` at `offset` of scattered pages: the cookie, pages and ret.
    pub fn register(&mut self, data: &[u8], offset: u64) -> (u64, Vec<u64>, u32) {
        let (p, pages) = self.tmem(attr::TMEM_OUTPUT, data, offset);
        let arg = MsgArg::new(cmd::REGISTER_SHM, vec![p]);
        let (a0, out) = self.std_call(&arg);
        assert_eq!(a0, 0);
        (p.c, pages, out.header.ret)
    }

    pub fn unregister(&mut self, cookie: u64) -> u32 {
        let arg = MsgArg::new(
            cmd::UNREGISTER_SHM,
            vec![MsgParam::new(attr::RMEM_INPUT, 0, 0, cookie)],
        );
        let (a0, out) = self.std_call(&arg);
        assert_eq!(a0, 0);
        out.header.ret
    }

    /// OPEN_SESSION: (ret, ret_origin, session).
    pub fn open_with(&mut self, uuid: Uuid, lg: u32, extra: Vec<MsgParam>) -> (u32, u32, u32) {
        let arg = open_arg(uuid, lg, extra);
        let (a0, out) = self.std_call(&arg);
        assert_eq!(a0, 0);
        (out.header.ret, out.header.ret_origin, out.header.session)
    }

    pub fn open(&mut self, uuid: Uuid) -> u32 {
        let (r, _, s) = self.open_with(uuid, login::REE_KERNEL, vec![]);
        assert_eq!(r, teec::SUCCESS);
        s
    }

    pub fn invoke(&mut self, session: u32, func: u32, params: Vec<MsgParam>) -> MsgArg {
        let (a0, out) = self.std_call(&invoke_arg(session, func, params));
        assert_eq!(a0, 0);
        out
    }

    pub fn close(&mut self, session: u32) -> u32 {
        let mut arg = MsgArg::new(cmd::CLOSE_SESSION, vec![]);
        arg.header.session = session;
        let (a0, out) = self.std_call(&arg);
        assert_eq!(a0, 0);
        out.header.ret
    }

    pub fn read_scattered(&self, pages: &[u64], offset: u64, len: usize) -> Vec<u8> {
        let mut out = Vec::with_capacity(len);
        let mut pos = offset;
        while out.len() < len {
            let page = pages[(pos / PAGE_SIZE) as usize];
            let n = ((PAGE_SIZE - pos % PAGE_SIZE) as usize).min(len - out.len());
            let mut b = vec![0u8; n];
            self.mem.read(page + pos % PAGE_SIZE, &mut b).unwrap();
            out.extend_from_slice(&b);
            pos += n as u64;
        }
        out
    }
}

pub fn write_scattered(mem: &dyn GuestRam, pages: &[u64], offset: u64, data: &[u8]) {
    let mut pos = offset;
    let mut done = 0;
    while done < data.len() {
        let page = pages[(pos / PAGE_SIZE) as usize];
        let n = ((PAGE_SIZE - pos % PAGE_SIZE) as usize).min(data.len() - done);
        mem.write(page + pos % PAGE_SIZE, &data[done..done + n])
            .unwrap();
        done += n;
        pos += n as u64;
    }
}

pub fn open_arg(uuid: Uuid, lg: u32, extra: Vec<MsgParam>) -> MsgArg {
    let o = uuid.0;
    let a = u64::from_le_bytes(o[..8].try_into().unwrap());
    let b = u64::from_le_bytes(o[8..].try_into().unwrap());
    let client = [0x11u8; 16];
    let ca = u64::from_le_bytes(client[..8].try_into().unwrap());
    let cb = u64::from_le_bytes(client[8..].try_into().unwrap());
    let mut params = vec![
        MsgParam::new(attr::META | attr::VALUE_INPUT, a, b, 0),
        MsgParam::new(attr::META | attr::VALUE_INPUT, ca, cb, u64::from(lg)),
    ];
    params.extend(extra);
    MsgArg::new(cmd::OPEN_SESSION, params)
}

pub fn invoke_arg(session: u32, func: u32, params: Vec<MsgParam>) -> MsgArg {
    let mut arg = MsgArg::new(cmd::INVOKE_COMMAND, params);
    arg.header.session = session;
    arg.header.func = func;
    arg
}

/// (ret, ret_origin) of a finished call.
pub fn outcome(out: &MsgArg) -> (u32, u32) {
    (out.header.ret, out.header.ret_origin)
}

pub fn value(attr_type: u64, a: u64) -> MsgParam {
    MsgParam::new(attr_type, a, 0, 0)
}

pub const HELLO: Uuid = ta::HELLO_UUID;
pub const MEMORY: Uuid = ta::MEMORY_UUID;
pub const DEVICE_PTA: Uuid = ta::DEVICE_PTA_UUID;
