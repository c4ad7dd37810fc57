// SPDX-License-Identifier: Apache-2.0 OR MIT
//! The RPC protocol: ALLOC, FREE, FOREIGN_INTR, CMD (GET_TIME, SHM_ALLOC,
//! SHM_FREE), RETURN_FROM_RPC matched by thread id, the SHM cache, cancel.

mod common;

use common::*;
use optee_mediator::abi::{self, reg_pair, ret};
use optee_mediator::msg::{attr, cmd, rpc_cmd, teec, MsgArg, MsgParam, PAGE_SIZE};
use optee_mediator::utee::ta::{fill_byte, fnv1a32, memory};
use optee_mediator::{GuestRam, SmcCall};

fn fill_sum(len: u64) -> u64 {
    let data: Vec<u8> = (0..len).map(fill_byte).collect();
    u64::from(fnv1a32(&data))
}

#[test]
fn a_slow_command_yields_foreign_intr_each_round_with_its_thread_id_in_a3() {
    let mut g = guest();
    let s = g.open(MEMORY);
    let (gpa, r) = g.start_invoke(s, memory::CMD_SLOW, vec![value(attr::VALUE_INOUT, 5)]);
    assert_eq!(r.regs(), &[u64::from(ret::RPC_FOREIGN_INTR), 0, 0, 0]);
    assert_eq!(g.m.usage().calls, 1);
    let r = g.serve(r);
    assert_eq!(r.regs(), &[0]);
    assert_eq!(g.log.foreign_intr, 5);
    let out = g.read_arg(gpa);
    assert_eq!((out.header.ret, out.params[0].a), (teec::SUCCESS, 5));
    assert_eq!(g.m.usage().calls, 0);
}

#[test]
fn the_vmm_may_return_from_foreign_intr_for_the_guest() {
    let mut g = guest();
    let s = g.open(MEMORY);
    let (gpa, mut r) = g.start_invoke(s, memory::CMD_SLOW, vec![value(attr::VALUE_INOUT, 3)]);
    let mut rounds = 0;
    while let Some(next) =
        g.m.return_from_foreign_intr(&g.mem, &r, smccc::Conduit::Hvc)
    {
        r = next;
        rounds += 1;
        assert!(rounds <= 3, "more rounds than the command has");
    }
    assert_eq!((r.regs(), rounds), (&[0u64][..], 3));
    let out = g.read_arg(gpa);
    assert_eq!((out.header.ret, out.params[0].a), (teec::SUCCESS, 3));
    // Anything but a FOREIGN_INTR is left to the guest.
    assert_eq!(
        g.m.return_from_foreign_intr(&g.mem, &r, smccc::Conduit::Smc),
        None
    );
    let alloc = optee_mediator::SmcResult::new(&[ret::RPC_ALLOC, 0, 4096, 0]);
    assert_eq!(
        g.m.return_from_foreign_intr(&g.mem, &alloc, smccc::Conduit::Smc),
        None
    );
}

#[test]
fn return_from_rpc_for_a_thread_not_waiting_is_eresume() {
    let mut g = guest();
    for t in [0u64, 1, 7, 8, 0xffff_ffff] {
        let r = g.call(SmcCall::new(abi::RETURN_FROM_RPC, &[0, 0, t]));
        assert_eq!(r.regs(), &[u64::from(ret::ERESUME)], "thread {t}");
    }
    // A finished thread cannot be resumed again.
    let s = g.open(MEMORY);
    let (_, r) = g.start_invoke(s, memory::CMD_SLOW, vec![value(attr::VALUE_INOUT, 1)]);
    let back = [r.regs()[1], r.regs()[2], r.regs()[3]];
    assert_eq!(
        g.call(SmcCall::new(abi::RETURN_FROM_RPC, &back)).regs(),
        &[0]
    );
    assert_eq!(
        g.call(SmcCall::new(abi::RETURN_FROM_RPC, &back)).regs(),
        &[u64::from(ret::ERESUME)]
    );
}

#[test]
fn parked_calls_are_resumed_by_thread_id_in_any_order() {
    let mut g = guest();
    let s = g.open(MEMORY);
    let a = g.put_invoke(s, memory::CMD_SLOW, vec![value(attr::VALUE_INOUT, 1)]);
    let b = g.put_invoke(s, memory::CMD_SLOW, vec![value(attr::VALUE_INOUT, 1)]);
    let ra = g.call_with_arg_raw(a);
    let rb = g.call_with_arg_raw(b);
    assert_ne!(ra.regs()[3], rb.regs()[3], "distinct threads");
    assert_eq!(g.resume(&rb).regs(), &[0]);
    assert_eq!(g.read_arg(b).header.ret, teec::SUCCESS);
    assert_eq!(
        g.read_arg(a).header.ret,
        0,
        "a is still running: nothing written back yet"
    );
    assert_eq!(g.resume(&ra).regs(), &[0]);
    assert_eq!(g.read_arg(a).header.ret, teec::SUCCESS);
}

#[test]
fn get_time_is_an_rpc_command_in_a_buffer_allocated_then_freed() {
    let mut g = guest();
    let s = g.open(MEMORY);
    let out = g.invoke(s, memory::CMD_GET_TIME, vec![value(attr::VALUE_OUTPUT, 0)]);
    assert_eq!(out.header.ret, teec::SUCCESS);
    assert_eq!((out.params[0].a, out.params[0].b), TIME);
    assert_eq!(g.log.alloc, 1);
    assert_eq!(g.log.cmds, vec![rpc_cmd::GET_TIME]);
    assert_eq!(
        g.log.free, 1,
        "the SHM cache is off: the RPC buffer is freed"
    );
    assert!(g.rpc_bufs.is_empty());
    assert_eq!(g.m.usage().rpc_args, 0);
}

#[test]
fn rpc_alloc_asks_for_a_four_param_argument() {
    let mut g = guest();
    let s = g.open(MEMORY);
    let (_, r) = g.start_invoke(s, memory::CMD_GET_TIME, vec![value(attr::VALUE_OUTPUT, 0)]);
    assert_eq!(r.regs(), &[u64::from(ret::RPC_ALLOC), 32 + 4 * 32, 0, 0]);
}

#[test]
fn with_the_shm_cache_enabled_rpc_buffers_are_kept_and_handed_back_by_disable() {
    let mut g = guest();
    assert_eq!(g.fast(abi::ENABLE_SHM_CACHE).a0(), 0);
    let s = g.open(MEMORY);
    for _ in 0..3 {
        let out = g.invoke(s, memory::CMD_GET_TIME, vec![value(attr::VALUE_OUTPUT, 0)]);
        assert_eq!(out.header.ret, teec::SUCCESS);
    }
    assert_eq!((g.log.alloc, g.log.free), (1, 0), "one buffer, reused");
    assert_eq!(g.m.usage().rpc_args, 1);
    let r = g.fast(abi::DISABLE_SHM_CACHE);
    assert_eq!(r.regs().len(), 3);
    assert_eq!(r.a0(), 0);
    let cookie = reg_pair(r.regs()[1], r.regs()[2]);
    assert!(
        g.rpc_bufs.contains_key(&cookie),
        "the cookie the guest gave"
    );
    assert_eq!(g.m.usage().rpc_args, 0);
    assert_eq!(
        g.fast(abi::DISABLE_SHM_CACHE).regs(),
        &[u64::from(ret::ENOTAVAIL)]
    );
}

#[test]
fn shm_cache_calls_are_busy_while_a_call_is_parked() {
    let mut g = guest();
    let s = g.open(MEMORY);
    let (_, r) = g.start_invoke(s, memory::CMD_SLOW, vec![value(attr::VALUE_INOUT, 1)]);
    assert_eq!(
        g.fast(abi::ENABLE_SHM_CACHE).regs(),
        &[u64::from(ret::EBUSY)]
    );
    assert_eq!(
        g.fast(abi::DISABLE_SHM_CACHE).regs(),
        &[u64::from(ret::EBUSY)]
    );
    g.serve(r);
    assert_eq!(g.fast(abi::ENABLE_SHM_CACHE).regs(), &[0]);
}

#[test]
fn shm_alloc_rpc_gives_the_ta_a_scattered_guest_buffer_then_frees_it() {
    let mut g = guest();
    let s = g.open(MEMORY);
    let len = 5 * PAGE_SIZE + 100;
    let out = g.invoke(
        s,
        memory::CMD_FILL_RPC_SHM,
        vec![value(attr::VALUE_INOUT, len)],
    );
    assert_eq!(out.header.ret, teec::SUCCESS);
    assert_eq!(out.params[0].a, fill_sum(len));
    assert_eq!(out.params[0].b, len);
    assert_eq!(g.log.cmds, vec![rpc_cmd::SHM_ALLOC, rpc_cmd::SHM_FREE]);
    assert!(g.shm_bufs.is_empty(), "the guest was told to free it");
    assert_eq!(g.m.usage().buffers, 0, "the mediator forgot it");
}

#[test]
fn shm_alloc_answered_with_a_buffer_the_guest_registered_is_that_buffer() {
    // A confidential guest's driver registers its pool memory when it
    // allocates it, and its tee-supplicant allocates from the pool.
    let mut g = guest();
    let s = g.open(MEMORY);
    let (reg, pages) = g.tmem(attr::TMEM_OUTPUT, &[0u8; 4096], 0);
    let (a0, out) = g.std_call(&MsgArg::new(cmd::REGISTER_SHM, vec![reg]));
    assert_eq!((a0, out.header.ret), (0, teec::SUCCESS));
    assert_eq!(g.m.usage().buffers, 1);
    let page = g.page();
    let (gpa, r) = g.start_rpc_cmd(
        s,
        memory::CMD_FILL_RPC_SHM,
        vec![value(attr::VALUE_INOUT, 64)],
        page,
        0x42,
    );
    let mut arg = MsgArg::read(&g.mem, page).unwrap();
    assert_eq!(arg.header.cmd, rpc_cmd::SHM_ALLOC);
    arg.params[0] = MsgParam::new(attr::TMEM_OUTPUT | attr::NONCONTIG, reg.a, 64, reg.c);
    arg.header.ret = teec::SUCCESS;
    g.mem.write(page, &arg.encode()).unwrap();
    let r = g.resume(&r);
    assert_eq!(
        r.a0(),
        u64::from(ret::RPC_CMD),
        "filled, then the TEE frees it"
    );
    let free = MsgArg::read(&g.mem, page).unwrap();
    assert_eq!(
        (free.header.cmd, free.params[0].b),
        (rpc_cmd::SHM_FREE, reg.c)
    );
    let mut answer = free;
    answer.header.ret = teec::SUCCESS;
    g.mem.write(page, &answer.encode()).unwrap();
    let r = g.resume(&r);
    g.rpc_bufs.insert(0x42, page);
    assert_eq!(g.serve(r).regs(), &[0]);
    let out = g.read_arg(gpa);
    assert_eq!(out.header.ret, teec::SUCCESS);
    assert_eq!(out.params[0].a, fill_sum(64));
    let data: Vec<u8> = (0..64).map(fill_byte).collect();
    assert_eq!(
        g.read_scattered(&pages, 0, 64),
        data,
        "the registered pages were filled"
    );
    assert_eq!(
        g.m.usage().buffers,
        1,
        "still registered: the guest unregisters it"
    );
}

#[test]
fn shm_alloc_beyond_the_page_quota_is_refused_freed_and_out_of_memory() {
    let mut g = guest();
    let s = g.open(MEMORY);
    let out = g.invoke(
        s,
        memory::CMD_FILL_RPC_SHM,
        vec![value(attr::VALUE_INOUT, 130 * PAGE_SIZE)],
    );
    assert_eq!(out.header.ret, teec::ERROR_OUT_OF_MEMORY);
    assert_eq!(g.log.cmds, vec![rpc_cmd::SHM_ALLOC, rpc_cmd::SHM_FREE]);
    assert!(g.shm_bufs.is_empty());
    assert_eq!(g.m.usage().buffers, 0);
}

#[test]
fn shm_alloc_answered_with_contiguous_memory_is_refused_and_freed() {
    let mut g = guest();
    g.shm_alloc_answer = ShmAllocAnswer::Contiguous;
    let s = g.open(MEMORY);
    let out = g.invoke(
        s,
        memory::CMD_FILL_RPC_SHM,
        vec![value(attr::VALUE_INOUT, 64)],
    );
    assert_eq!(out.header.ret, teec::ERROR_OUT_OF_MEMORY);
    assert!(g.shm_bufs.is_empty());
}

#[test]
fn a_failed_shm_alloc_fails_the_command() {
    let mut g = guest();
    g.shm_alloc_answer = ShmAllocAnswer::Fail;
    let s = g.open(MEMORY);
    let out = g.invoke(
        s,
        memory::CMD_FILL_RPC_SHM,
        vec![value(attr::VALUE_INOUT, 64)],
    );
    assert_eq!(out.header.ret, teec::ERROR_OUT_OF_MEMORY);
    assert_eq!(g.log.cmds, vec![rpc_cmd::SHM_ALLOC]);
}

#[test]
fn rpc_alloc_answered_with_null_unaligned_or_a_hole_fails_the_command() {
    for answer in [AllocAnswer::Zero, AllocAnswer::Unaligned, AllocAnswer::Hole] {
        let mut g = guest();
        g.alloc_answer = answer;
        let s = g.open(MEMORY);
        let out = g.invoke(s, memory::CMD_GET_TIME, vec![value(attr::VALUE_OUTPUT, 0)]);
        assert_eq!(out.header.ret, teec::ERROR_OUT_OF_MEMORY, "{answer:?}");
        assert!(
            g.log.cmds.is_empty(),
            "{answer:?}: no command without a buffer"
        );
        assert_eq!(g.m.usage().rpc_args, 0);
    }
}

#[test]
fn an_rpc_buffer_cookie_already_in_use_is_refused() {
    let mut g = guest();
    assert_eq!(g.fast(abi::ENABLE_SHM_CACHE).a0(), 0);
    let s = g.open(MEMORY);
    // Two calls in flight each need a buffer; the guest answers both with one cookie.
    let a = g.put_invoke(s, memory::CMD_GET_TIME, vec![value(attr::VALUE_OUTPUT, 0)]);
    let b = g.put_invoke(s, memory::CMD_GET_TIME, vec![value(attr::VALUE_OUTPUT, 0)]);
    let ra = g.call_with_arg_raw(a);
    let rb = g.call_with_arg_raw(b);
    assert_eq!(
        (ra.a0(), rb.a0()),
        (u64::from(ret::RPC_ALLOC), u64::from(ret::RPC_ALLOC))
    );
    let (p1, p2) = (g.page(), g.page());
    let ret_a = g.answer_alloc(&ra, p1, 0x77);
    assert_eq!(ret_a.a0(), u64::from(ret::RPC_CMD));
    let ret_b = g.answer_alloc(&rb, p2, 0x77);
    assert_eq!(
        ret_b.regs(),
        &[0],
        "b fails without reaching the guest again"
    );
    assert_eq!(g.read_arg(b).header.ret, teec::ERROR_OUT_OF_MEMORY);
}

#[test]
fn the_guest_changing_an_rpc_argument_cannot_change_what_the_mediator_reads_back() {
    let mut g = guest();
    let s = g.open(MEMORY);
    let page = g.page();
    let (gpa, r) = g.start_rpc_cmd(
        s,
        memory::CMD_GET_TIME,
        vec![value(attr::VALUE_OUTPUT, 0)],
        page,
        0x99,
    );
    assert_eq!(
        reg_pair(r.regs()[1], r.regs()[2]),
        0x99,
        "the cookie of the buffer"
    );
    // The guest answers with a bogus num_params and attribute.
    let mut arg = MsgArg::read(&g.mem, page).unwrap();
    assert_eq!(arg.header.cmd, rpc_cmd::GET_TIME);
    arg.params[0] = MsgParam::new(attr::TMEM_OUTPUT, 5, 6, 7);
    arg.header.ret = 0;
    g.mem.write(page, &arg.encode()).unwrap();
    g.mem.write(page + 0x1C, &127u32.to_le_bytes()).unwrap();
    let r = g.resume(&r);
    assert_eq!(r.a0(), u64::from(ret::RPC_FREE));
    let r = g.resume(&r);
    assert_eq!(r.regs(), &[0]);
    let out = g.read_arg(gpa);
    assert_eq!(
        (out.header.ret, out.params[0].a, out.params[0].b),
        (teec::SUCCESS, 5, 6)
    );
}

#[test]
fn rpc_buffers_the_tee_dropped_as_unreadable_do_not_count_against_the_limit() {
    let mut g = guest();
    let s = g.open(MEMORY);
    // More than the 64 RPC buffers a VM may hold at once.
    for i in 0..80u64 {
        if i > 0 {
            assert!(g.mem.add_region(FRAGILE, PAGE_SIZE), "round {i}");
        }
        let (gpa, r) = g.start_rpc_cmd(
            s,
            memory::CMD_GET_TIME,
            vec![value(attr::VALUE_OUTPUT, 0)],
            FRAGILE,
            0x100 + i,
        );
        assert!(g.mem.remove_region(FRAGILE));
        assert_eq!(g.resume(&r).regs(), &[0], "round {i}");
        assert_eq!(g.read_arg(gpa).header.ret, teec::ERROR_COMMUNICATION);
        assert_eq!(
            g.m.usage().rpc_args,
            0,
            "round {i}: the dropped buffer is not held"
        );
    }
}

#[test]
fn an_rpc_buffer_that_left_guest_ram_fails_the_command() {
    let mut g = guest();
    let s = g.open(MEMORY);
    let (gpa, r) = g.start_rpc_cmd(
        s,
        memory::CMD_GET_TIME,
        vec![value(attr::VALUE_OUTPUT, 0)],
        FRAGILE,
        0x5,
    );
    assert!(g.mem.remove_region(FRAGILE));
    let r = g.resume(&r);
    // The buffer is unusable: the TEE forgets it instead of freeing it.
    assert_eq!(r.regs(), &[0]);
    assert_eq!(g.read_arg(gpa).header.ret, teec::ERROR_COMMUNICATION);
}

#[test]
fn cancel_from_another_vcpu_stops_a_slow_command() {
    let mut g = guest();
    let s = g.open(MEMORY);
    let mut arg = invoke_arg(s, memory::CMD_SLOW, vec![value(attr::VALUE_INOUT, 1000)]);
    arg.header.cancel_id = 0xC0FFEE;
    let gpa = g.put_arg(&arg);
    let cancel_page = g.page();
    let mut cancel = MsgArg::new(cmd::CANCEL, vec![]);
    cancel.header.session = s;
    cancel.header.cancel_id = 0xC0FFEE;
    g.mem.write(cancel_page, &cancel.encode()).unwrap();
    let mut intrs = 0;
    g.on_intr = Some(Box::new(move |m, mem, _tid| {
        intrs += 1;
        if intrs == 3 {
            let (hi, lo) = abi::split_pair(cancel_page);
            let r = m.handle(
                mem,
                &SmcCall::new(abi::CALL_WITH_ARG, &[u64::from(hi), u64::from(lo)]),
            );
            assert_eq!(r.regs(), &[0]);
        }
    }));
    let r = g.call_with_arg_raw(gpa);
    assert_eq!(g.serve(r).regs(), &[0]);
    let out = g.read_arg(gpa);
    assert_eq!(out.header.ret, teec::ERROR_CANCEL);
    assert_eq!(
        out.params[0].a, 3,
        "stopped after the round that saw the cancel"
    );
    assert_eq!(g.read_arg(cancel_page).header.ret, teec::SUCCESS);
}

#[test]
fn cancel_of_another_cancel_id_changes_nothing() {
    let mut g = guest();
    let s = g.open(MEMORY);
    let mut arg = invoke_arg(s, memory::CMD_SLOW, vec![value(attr::VALUE_INOUT, 4)]);
    arg.header.cancel_id = 1;
    let gpa = g.put_arg(&arg);
    let r = g.call_with_arg_raw(gpa);
    let mut cancel = MsgArg::new(cmd::CANCEL, vec![]);
    cancel.header.cancel_id = 2;
    let (a0, out) = g.std_call(&cancel);
    assert_eq!((a0, out.header.ret), (0, teec::SUCCESS));
    assert_eq!(g.serve(r).regs(), &[0]);
    assert_eq!(g.read_arg(gpa).header.ret, teec::SUCCESS);
}

#[test]
fn rpc_data_pages_are_checked_like_any_page_list() {
    // SHM_ALLOC answered with a page list naming a hole.
    let mut g = guest();
    let s = g.open(MEMORY);
    let page = g.page();
    let (_, r) = g.start_rpc_cmd(
        s,
        memory::CMD_FILL_RPC_SHM,
        vec![value(attr::VALUE_INOUT, 64)],
        page,
        0x42,
    );
    let mut arg = MsgArg::read(&g.mem, page).unwrap();
    assert_eq!(arg.header.cmd, rpc_cmd::SHM_ALLOC);
    let list = g.page();
    g.mem.write(list, &HOLE.to_le_bytes()).unwrap();
    arg.params[0] = MsgParam::new(attr::TMEM_OUTPUT | attr::NONCONTIG, list, 4096, 0x5150);
    arg.header.ret = 0;
    g.mem.write(page, &arg.encode()).unwrap();
    let r = g.resume(&r);
    assert_eq!(r.a0(), u64::from(ret::RPC_CMD), "the TEE asks to free it");
    let free = MsgArg::read(&g.mem, page).unwrap();
    assert_eq!(
        (free.header.cmd, free.params[0].b),
        (rpc_cmd::SHM_FREE, 0x5150)
    );
    let _ = r;
    assert_eq!(g.m.usage().buffers, 0);
}

mod misbehaving_backends {
    use super::*;
    use optee_mediator::backend::{
        Backend, BackendError, CacheDisable, ClientId, OsRevision, RpcReply, RpcRequest, StdCall,
        Step, ThreadId,
    };
    use optee_mediator::{Mediator, Policy};

    /// Asks for RPC commands in a buffer that does not exist, forever; or
    /// for RPC buffers, forever.
    struct Pest {
        alloc: bool,
        allocs: u32,
    }

    impl Backend for Pest {
        fn thread_count(&self) -> u32 {
            1
        }
        fn os_revision(&self) -> OsRevision {
            OsRevision {
                major: 0,
                minor: 0,
                build_id: 0,
            }
        }
        fn vm_created(&mut self, _: ClientId) -> Result<(), BackendError> {
            Ok(())
        }
        fn vm_destroyed(&mut self, _: ClientId) {}
        fn enable_shm_cache(&mut self, _: ClientId) -> bool {
            true
        }
        fn disable_shm_cache(&mut self, _: ClientId) -> CacheDisable {
            CacheDisable::Empty
        }
        fn start(&mut self, _: ClientId, _: ThreadId, _: &mut StdCall, _: &dyn GuestRam) -> Step {
            self.next()
        }
        fn resume(
            &mut self,
            _: ClientId,
            _: ThreadId,
            call: &mut StdCall,
            r: RpcReply,
            _: &dyn GuestRam,
        ) -> Step {
            if let RpcReply::Alloc(None) = r {
                call.finish(teec::ERROR_OUT_OF_MEMORY, teec::ORIGIN_TEE);
                return Step::Done;
            }
            self.next()
        }
        fn abandon(&mut self, _: ClientId, _: ThreadId) {}
    }

    impl Pest {
        fn next(&mut self) -> Step {
            if self.alloc {
                self.allocs += 1;
                Step::Rpc(RpcRequest::Alloc { size: 64 })
            } else {
                Step::Rpc(RpcRequest::Cmd {
                    cookie: 0xdead,
                    arg: MsgArg::new(
                        rpc_cmd::GET_TIME,
                        vec![MsgParam::new(attr::VALUE_OUTPUT, 0, 0, 0)],
                    ),
                })
            }
        }
    }

    #[test]
    fn a_backend_making_only_undeliverable_rpcs_gets_its_call_failed() {
        let m = Mediator::new(
            ClientId(1),
            Policy::default(),
            Pest {
                alloc: false,
                allocs: 0,
            },
        )
        .unwrap();
        let mut g = Guest::from_mediator(m);
        let gpa = g.put_arg(&MsgArg::new(cmd::CANCEL, vec![]));
        assert_eq!(g.call_with_arg_raw(gpa).regs(), &[0]);
        let out = g.read_arg(gpa);
        assert_eq!(
            (out.header.ret, out.header.ret_origin),
            (teec::ERROR_COMMUNICATION, teec::ORIGIN_COMMS)
        );
        assert_eq!(g.m.usage().calls, 0);
    }

    #[test]
    fn a_vm_holds_at_most_64_rpc_buffers() {
        let m = Mediator::new(
            ClientId(1),
            Policy::default(),
            Pest {
                alloc: true,
                allocs: 0,
            },
        )
        .unwrap();
        let mut g = Guest::from_mediator(m);
        let gpa = g.put_arg(&MsgArg::new(cmd::CANCEL, vec![]));
        let r = g.call_with_arg_raw(gpa);
        assert_eq!(g.serve(r).regs(), &[0]);
        assert_eq!(g.log.alloc, 65);
        assert_eq!(g.m.usage().rpc_args, 64);
        assert_eq!(g.read_arg(gpa).header.ret, teec::ERROR_OUT_OF_MEMORY);
    }
}

mod memref_sizes {
    use super::*;
    use optee_mediator::backend::{
        Backend, BackendError, CacheDisable, ClientId, OsRevision, RpcCmdReply, RpcOut, RpcReply,
        RpcRequest, StdCall, Step, ThreadId,
    };
    use optee_mediator::{Mediator, Policy};
    use std::sync::{Arc, Mutex};

    /// Sends one RPC command whose parameters are an output value, an
    /// output and an input memory reference, and keeps the guest's answer.
    struct Asker {
        reply: Arc<Mutex<Option<RpcCmdReply>>>,
    }

    impl Backend for Asker {
        fn thread_count(&self) -> u32 {
            1
        }
        fn os_revision(&self) -> OsRevision {
            OsRevision {
                major: 0,
                minor: 0,
                build_id: 0,
            }
        }
        fn vm_created(&mut self, _: ClientId) -> Result<(), BackendError> {
            Ok(())
        }
        fn vm_destroyed(&mut self, _: ClientId) {}
        fn enable_shm_cache(&mut self, _: ClientId) -> bool {
            true
        }
        fn disable_shm_cache(&mut self, _: ClientId) -> CacheDisable {
            CacheDisable::Empty
        }
        fn start(&mut self, _: ClientId, _: ThreadId, _: &mut StdCall, _: &dyn GuestRam) -> Step {
            Step::Rpc(RpcRequest::Alloc { size: 4096 })
        }
        fn resume(
            &mut self,
            _: ClientId,
            _: ThreadId,
            call: &mut StdCall,
            r: RpcReply,
            _: &dyn GuestRam,
        ) -> Step {
            match r {
                RpcReply::Alloc(Some(cookie)) => Step::Rpc(RpcRequest::Cmd {
                    cookie,
                    arg: MsgArg::new(
                        rpc_cmd::LOAD_TA,
                        vec![
                            MsgParam::new(attr::VALUE_OUTPUT, 0, 0, 0),
                            MsgParam::new(attr::RMEM_OUTPUT, 0, 64, 0x77),
                            MsgParam::new(attr::RMEM_INPUT, 0, 64, 0x77),
                        ],
                    ),
                }),
                RpcReply::Cmd(reply) => {
                    *self.reply.lock().unwrap() = Some(reply);
                    call.finish(teec::SUCCESS, teec::ORIGIN_TEE);
                    Step::Done
                }
                _ => {
                    call.finish(teec::ERROR_COMMUNICATION, teec::ORIGIN_TEE);
                    Step::Done
                }
            }
        }
        fn abandon(&mut self, _: ClientId, _: ThreadId) {}
    }

    #[test]
    fn an_output_memrefs_size_comes_back_as_the_guest_wrote_it_and_an_inputs_does_not() {
        let reply = Arc::new(Mutex::new(None));
        let backend = Asker {
            reply: reply.clone(),
        };
        let mut g =
            Guest::from_mediator(Mediator::new(ClientId(1), Policy::default(), backend).unwrap());
        let gpa = g.put_arg(&MsgArg::new(cmd::CANCEL, vec![]));
        let r = g.call_with_arg_raw(gpa);
        let page = g.page();
        let r = g.answer_alloc(&r, page, 0x42);
        assert_eq!(r.a0(), u64::from(ret::RPC_CMD));
        // The guest's answer: sizes in both references (the input's is
        // not the guest's to change), another type and buffer in the
        // output (ignored: the sent parameters are what counts).
        let mut arg = MsgArg::read(&g.mem, page).unwrap();
        arg.header.ret = teec::ERROR_SHORT_BUFFER;
        arg.params[0] = MsgParam::new(attr::VALUE_OUTPUT, 1, 2, 3);
        arg.params[1] = MsgParam::new(attr::TMEM_OUTPUT, 0xbad, 100_000, 0xbad);
        arg.params[2].b = 5;
        g.mem.write(page, &arg.encode()).unwrap();
        assert_eq!(g.resume(&r).regs(), &[0]);
        let got = reply
            .lock()
            .unwrap()
            .take()
            .expect("the backend got the answer");
        assert_eq!(
            got,
            RpcCmdReply {
                delivered: true,
                ret: teec::ERROR_SHORT_BUFFER,
                params: vec![
                    RpcOut::Value { a: 1, b: 2, c: 3 },
                    RpcOut::MemrefSize(100_000),
                    RpcOut::None,
                ],
            }
        );
    }
}
