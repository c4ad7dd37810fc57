// SPDX-License-Identifier: Apache-2.0 OR MIT
//! The forgeries' encodings, against fake guest memory.

use super::*;
use optee_mediator::FakeGuestMemory;

const ARG: u64 = 0x4000_0000;
const BUF: u64 = 0x4001_0000;

fn mem() -> FakeGuestMemory {
    FakeGuestMemory::new(&[(0x4000_0000, 0x10_0000)])
}

/// Writes a marked INVOKE for forgery `k` at ARG with a memref
/// (cookie 5) and returns its CALL_WITH_ARG.
fn marked_call(m: &FakeGuestMemory, k: u64) -> SmcCall {
    let arg = MsgArg::new(
        cmd::INVOKE_COMMAND,
        vec![
            MsgParam::new(attr::VALUE_INPUT, MARK_A, k, MARK_C),
            MsgParam::new(attr::RMEM_INOUT, 0, 4096, 5),
        ],
    );
    m.write(ARG, &arg.encode()).unwrap();
    let (hi, lo) = split_pair(ARG);
    SmcCall::new(abi::CALL_WITH_ARG, &[hi.into(), lo.into(), 0])
}

fn from_rpc(thread: u32, regs: [u64; 5]) -> SmcCall {
    SmcCall::new(
        abi::RETURN_FROM_RPC,
        &[regs[0], regs[1], thread.into(), regs[3], regs[4]],
    )
}

fn regs(v: &Verdict) -> Vec<u64> {
    v.answer.expect("an answer").regs().to_vec()
}

#[test]
fn the_marker_spells_what_the_guests_client_writes() {
    // tools/tee-client/src/hostile.rs has the same two constants.
    assert_eq!(&MARK_A.to_be_bytes(), b"hostile!");
    assert_eq!(&MARK_C.to_be_bytes(), b"tosfwd!!");
}

#[test]
fn names_parse_and_all_is_every_forgery_once() {
    assert_eq!(parse_forgeries("all").unwrap().0, Forgery::ALL.to_vec());
    assert_eq!(
        parse_forgeries("rpc-free-zero,bogus-thread").unwrap().0,
        vec![Forgery::RpcFreeZero, Forgery::BogusThread]
    );
    let e = parse_forgeries("rpc-free-zero,nope").unwrap_err();
    assert!(
        e.starts_with("'nope' is no forgery (want all, or of: answer-unknown-ref"),
        "{e}"
    );
    let mut names: Vec<&str> = Forgery::ALL.iter().map(|f| f.name()).collect();
    names.sort_unstable();
    names.dedup();
    assert_eq!(names.len(), Forgery::ALL.len());
    assert_eq!(
        cmdline_word(&[Forgery::RpcFreeZero, Forgery::RpcFlip]),
        "tosfwd.hostile=rpc-free-zero,rpc-flip"
    );
    assert!(cmdline_word(&Forgery::ALL).len() < 400);
}

#[test]
fn unmarked_calls_and_other_functions_pass_to_the_mediator() {
    let m = mem();
    let mut h = Hostile::new(Forgery::ALL.to_vec());
    let arg = MsgArg::new(
        cmd::INVOKE_COMMAND,
        vec![MsgParam::new(attr::VALUE_INPUT, MARK_A, 0, 0)],
    );
    m.write(ARG, &arg.encode()).unwrap();
    let (hi, lo) = split_pair(ARG);
    let call = SmcCall::new(abi::CALL_WITH_ARG, &[hi.into(), lo.into(), 0]);
    assert_eq!(h.intercept(&m, &call), Verdict::default());
    let fast = SmcCall::new(abi::GET_THREAD_COUNT, &[]);
    assert_eq!(h.intercept(&m, &fast), Verdict::default());
    // A RETURN_FROM_RPC of a thread the hostile host did not make.
    assert_eq!(h.intercept(&m, &from_rpc(0, [0; 5])), Verdict::default());
}

#[test]
fn rpc_free_kernel_sends_the_address_in_a1_a2_then_ends_with_an_error() {
    let m = mem();
    let mut h = Hostile::new(vec![Forgery::RpcFreeZero, Forgery::RpcFreeKernel]);
    let v = h.intercept(&m, &marked_call(&m, 1));
    let t = THREAD_BASE + 1;
    assert_eq!(
        regs(&v),
        [
            u64::from(ret::RPC_FREE),
            0xffff_0000,
            0xdead_b000,
            u64::from(t)
        ]
    );
    assert!(v.report.is_none());
    let v = h.intercept(&m, &from_rpc(t, [0xffff_0000, 0xdead_b000, 0, 0, 0]));
    assert_eq!(regs(&v), [u64::from(END)]);
    let r = v.report.unwrap();
    assert!(
        r.starts_with("call 1: forgery rpc-free-kernel: RPC FREE of a kernel-looking"),
        "{r}"
    );
    assert!(r.contains("ended with 0x5"), "{r}");
    assert_eq!(h.done(), 1);
    // The next call is the mediator's again.
    assert_eq!(h.intercept(&m, &from_rpc(t, [0; 5])), Verdict::default());
}

#[test]
fn rpc_free_stale_frees_the_guests_buffer_twice() {
    let m = mem();
    let mut h = Hostile::new(vec![Forgery::RpcFreeStale]);
    let t = THREAD_BASE;
    let v = h.intercept(&m, &marked_call(&m, 0));
    assert_eq!(regs(&v), [u64::from(ret::RPC_ALLOC), 4096, 0, u64::from(t)]);
    // The guest allocated at BUF, cookie 9.
    let v = h.intercept(&m, &from_rpc(t, [0, BUF, 0, 0, 9]));
    assert_eq!(regs(&v), [u64::from(ret::RPC_FREE), 0, 9, u64::from(t)]);
    let v = h.intercept(&m, &from_rpc(t, [0, 9, 0, 0, 0]));
    assert_eq!(regs(&v), [u64::from(ret::RPC_FREE), 0, 9, u64::from(t)]);
    let v = h.intercept(&m, &from_rpc(t, [0, 9, 0, 0, 0]));
    assert_eq!(regs(&v), [u64::from(END)]);
    assert!(v.report.unwrap().contains("cookie 0x9"));
}

#[test]
fn rpc_cmd_num_params_writes_a_huge_count_into_the_guests_buffer() {
    let m = mem();
    let mut h = Hostile::new(vec![Forgery::RpcCmdNumParams]);
    let t = THREAD_BASE;
    h.intercept(&m, &marked_call(&m, 0));
    let v = h.intercept(&m, &from_rpc(t, [0, BUF, 0, 0, 3]));
    assert_eq!(regs(&v), [u64::from(ret::RPC_CMD), 0, 3, u64::from(t)]);
    let mut hb = [0u8; HEADER_SIZE];
    m.read(BUF, &mut hb).unwrap();
    let hdr = MsgHeader::parse(&hb);
    assert_eq!(
        (hdr.cmd, hdr.num_params),
        (rpc_cmd::LOAD_TA, HUGE_NUM_PARAMS)
    );
    // The guest refuses it in the buffer; the host frees the buffer, ends.
    m.write(BUF + off::RET, &teec::ERROR_BAD_PARAMETERS.to_le_bytes())
        .unwrap();
    let v = h.intercept(&m, &from_rpc(t, [0, 3, 0, 0, 0]));
    assert_eq!(regs(&v), [u64::from(ret::RPC_FREE), 0, 3, u64::from(t)]);
    let v = h.intercept(&m, &from_rpc(t, [0, 3, 0, 0, 0]));
    assert_eq!(regs(&v), [u64::from(END)]);
    assert!(v.report.unwrap().contains("ret 0xffff0006"));
}

#[test]
fn rpc_memref_size_names_the_guests_own_buffer_with_a_huge_size() {
    let m = mem();
    let mut h = Hostile::new(vec![Forgery::RpcMemrefSize]);
    let t = THREAD_BASE;
    h.intercept(&m, &marked_call(&m, 0));
    let v = h.intercept(&m, &from_rpc(t, [0, BUF, 0, 0, 6]));
    assert_eq!(regs(&v), [u64::from(ret::RPC_CMD), 0, 6, u64::from(t)]);
    let a = MsgArg::read(&m, BUF).unwrap();
    assert_eq!(a.header.cmd, rpc_cmd::LOAD_TA);
    assert_eq!(
        a.params,
        vec![MsgParam::new(attr::TMEM_INOUT, BUF, HUGE_SIZE, 6)]
    );
    let v = h.intercept(&m, &from_rpc(t, [0, 6, 0, 0, 0]));
    assert_eq!(regs(&v), [u64::from(ret::RPC_FREE), 0, 6, u64::from(t)]);
}

#[test]
fn a_refused_alloc_ends_the_call_at_once() {
    let m = mem();
    let mut h = Hostile::new(vec![Forgery::RpcCmdStaleCookie, Forgery::RpcAllocHuge]);
    h.intercept(&m, &marked_call(&m, 0));
    let v = h.intercept(&m, &from_rpc(THREAD_BASE, [0; 5]));
    assert_eq!(regs(&v), [u64::from(END)]);
    assert!(v.report.unwrap().contains("refused RPC ALLOC"));
    let t = THREAD_BASE + 1;
    let v = h.intercept(&m, &marked_call(&m, 1));
    assert_eq!(
        regs(&v),
        [
            u64::from(ret::RPC_ALLOC),
            u64::from(HUGE_ALLOC),
            0,
            u64::from(t)
        ]
    );
    let v = h.intercept(&m, &from_rpc(t, [0; 5]));
    assert_eq!(regs(&v), [u64::from(END)]);
}

#[test]
fn the_answer_forgeries_write_the_message_and_end_with_ok() {
    let m = mem();
    let mut h = Hostile::new(vec![
        Forgery::AnswerStaleRef,
        Forgery::AnswerMemrefSize,
        Forgery::AnswerFlip,
    ]);
    // The guest registered cookie 7 and unregistered it.
    for c in [cmd::REGISTER_SHM, cmd::UNREGISTER_SHM] {
        let a = MsgArg::new(c, vec![MsgParam::new(attr::TMEM_INOUT, 0, 0, 7)]);
        m.write(ARG, &a.encode()).unwrap();
        let (hi, lo) = split_pair(ARG);
        h.intercept(
            &m,
            &SmcCall::new(abi::CALL_WITH_ARG, &[hi.into(), lo.into()]),
        );
    }
    let v = h.intercept(&m, &marked_call(&m, 0));
    assert_eq!(regs(&v), [u64::from(ret::OK)]);
    let a = MsgArg::read(&m, ARG).unwrap();
    assert_eq!(
        (a.header.ret, a.header.ret_origin),
        (teec::ERROR_BAD_STATE, teec::ORIGIN_TEE)
    );
    assert_eq!(a.params[1].c, 7, "the stale cookie");
    assert!(v.report.unwrap().contains("stale cookie 0x7"));

    h.intercept(&m, &marked_call(&m, 1));
    assert_eq!(MsgArg::read(&m, ARG).unwrap().params[1].b, HUGE_SIZE);

    let v = h.intercept(&m, &marked_call(&m, 2));
    let f = v.start_flip.expect("a flip");
    assert_eq!(f.gpa, ARG + param_at(1));
    assert_eq!(
        MsgParam::parse(f.states[0].as_slice().try_into().unwrap()).c,
        5
    );
    assert_eq!(
        MsgParam::parse(f.states[1].as_slice().try_into().unwrap()).c,
        KERNEL_LOOKING
    );
    // The guest's next call stops it.
    let v = h.intercept(&m, &SmcCall::new(abi::GET_THREAD_COUNT, &[]));
    assert!(v.stop_flip && v.answer.is_none());
}

#[test]
fn rpc_flip_sends_the_command_for_every_round_and_stops_the_flip_between() {
    let m = mem();
    let mut h = Hostile::new(vec![Forgery::RpcFlip]);
    let t = THREAD_BASE;
    h.intercept(&m, &marked_call(&m, 0));
    let mut v = h.intercept(&m, &from_rpc(t, [0, BUF, 0, 0, 4]));
    for _ in 0..FLIP_ROUNDS {
        assert_eq!(regs(&v), [u64::from(ret::RPC_CMD), 0, 4, u64::from(t)]);
        let f = v.start_flip.expect("flipping");
        assert_eq!(f.gpa, BUF);
        assert_eq!(f.states, flip_args());
        v = h.intercept(&m, &from_rpc(t, [0, 4, 0, 0, 0]));
        assert!(v.stop_flip);
    }
    assert_eq!(regs(&v), [u64::from(ret::RPC_FREE), 0, 4, u64::from(t)]);
    let v = h.intercept(&m, &from_rpc(t, [0, 4, 0, 0, 0]));
    assert_eq!(regs(&v), [u64::from(END)]);
}

#[test]
fn bogus_thread_and_unknown_function_are_in_the_result_registers() {
    let m = mem();
    let mut h = Hostile::new(vec![Forgery::BogusThread, Forgery::UnknownRpcFunc]);
    let v = h.intercept(&m, &marked_call(&m, 0));
    assert_eq!(
        regs(&v),
        [
            u64::from(ret::RPC_FOREIGN_INTR),
            0,
            0,
            u64::from(BOGUS_THREAD)
        ]
    );
    let v = h.intercept(&m, &from_rpc(BOGUS_THREAD, [0; 5]));
    assert_eq!(regs(&v), [u64::from(ret::ERESUME)]);
    assert!(v.report.unwrap().contains("thread 0xdeadbeef"));
    let v = h.intercept(&m, &marked_call(&m, 1));
    assert_eq!(regs(&v), [0xffff_0009, 0, 0, u64::from(THREAD_BASE + 1)]);
}

#[test]
fn the_forged_rpc_arguments_encode_as_the_abi_lays_them_out() {
    let a = num_params_arg();
    assert_eq!(a.len(), HEADER_SIZE);
    assert_eq!(&a[28..32], &HUGE_NUM_PARAMS.to_le_bytes());
    let a = MsgArg::parse(&shm_free_arg()).unwrap();
    assert_eq!(a.header.cmd, rpc_cmd::SHM_FREE);
    assert_eq!(
        a.params,
        vec![MsgParam::new(attr::VALUE_INPUT, 1, KERNEL_LOOKING, 0)]
    );
    let [good, bad] = flip_args();
    assert_eq!(good.len(), room(1));
    assert_eq!(bad.len(), good.len());
    assert_eq!(MsgArg::parse(&good).unwrap().header.num_params, 1);
    assert_eq!(&bad[28..32], &HUGE_NUM_PARAMS.to_le_bytes());
}
