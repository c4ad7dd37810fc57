// SPDX-License-Identifier: Apache-2.0 OR MIT
//! CALL_WITH_ARG: argument shadowing, the command whitelist, parameter
//! validation, memory translation, and every command of the userspace TEE.

mod common;

use common::*;
use optee_mediator::abi::{self, ret};
use optee_mediator::msg::{attr, cmd, login, teec, MsgArg, MsgParam, PAGE_SIZE};
use optee_mediator::utee::ta::{fnv1a32, hello, memory};
use optee_mediator::{GuestRam, SmcCall};

fn reversed(data: &[u8]) -> Vec<u8> {
    data.iter().rev().copied().collect()
}

fn pattern(n: usize) -> Vec<u8> {
    (0..n).map(|i| (i * 13 + 5) as u8).collect()
}

// ---- the argument ----

#[test]
fn an_unaligned_argument_is_ebadaddr() {
    let mut g = guest();
    let gpa = g.put_arg(&MsgArg::new(cmd::CANCEL, vec![]));
    assert_eq!(
        g.call_with_arg_raw(gpa + 0x20).regs(),
        &[u64::from(ret::EBADADDR)]
    );
    assert_eq!(g.m.usage().calls, 0);
}

#[test]
fn an_argument_outside_guest_ram_is_ebadaddr() {
    let mut g = guest();
    for gpa in [HOLE, 0, 0xffff_ffff_ffff_f000] {
        assert_eq!(
            g.call_with_arg_raw(gpa).a0(),
            u64::from(ret::EBADADDR),
            "{gpa:#x}"
        );
    }
}

#[test]
fn the_argument_address_is_the_a1_a2_pair_high_half_first() {
    let mut g = guest();
    let gpa = g.put_arg(&MsgArg::new(cmd::CANCEL, vec![]));
    let (hi, lo) = abi::split_pair(gpa);
    // Garbage in the upper halves of x1 and x2 is ignored (SMC32).
    let r = g.call(SmcCall::new(
        abi::CALL_WITH_ARG,
        &[
            0xdead_0000_0000_0000 | u64::from(hi),
            0xbeef_0000_0000_0000 | u64::from(lo),
        ],
    ));
    assert_eq!(r.regs(), &[0]);
    assert_eq!(g.read_arg(gpa).header.ret, teec::SUCCESS);
}

#[test]
fn commands_outside_the_whitelist_are_ebadcmd() {
    let mut g = guest();
    for c in [
        cmd::DO_BOTTOM_HALF,
        cmd::STOP_ASYNC_NOTIF,
        8,
        9,
        10,
        11,
        12,
        0xffff_ffff,
    ] {
        let gpa = g.put_arg(&MsgArg::new(c, vec![]));
        assert_eq!(
            g.call_with_arg_raw(gpa).regs(),
            &[u64::from(ret::EBADCMD)],
            "cmd {c}"
        );
    }
    assert_eq!(g.m.usage().calls, 0);
}

#[test]
fn more_params_than_fit_a_page_is_bad_parameters_in_the_argument() {
    let mut g = guest();
    let gpa = g.put_arg(&MsgArg::new(cmd::INVOKE_COMMAND, vec![]));
    g.mem.write(gpa + 0x1C, &128u32.to_le_bytes()).unwrap();
    assert_eq!(g.call_with_arg_raw(gpa).regs(), &[0]);
    let mut h = [0u8; 32];
    g.mem.read(gpa, &mut h).unwrap();
    assert_eq!(
        u32::from_le_bytes(h[0x14..0x18].try_into().unwrap()),
        teec::ERROR_BAD_PARAMETERS
    );
    assert_eq!(
        u32::from_le_bytes(h[0x18..0x1C].try_into().unwrap()),
        teec::ORIGIN_COMMS
    );
}

#[test]
fn an_argument_of_127_params_is_accepted() {
    let mut g = guest();
    let s = g.open(HELLO);
    let out = g.invoke(s, hello::CMD_INC_VALUE, vec![MsgParam::default(); 127]);
    // The TA wants one INOUT value: the call got through, the TA refused it.
    assert_eq!(
        (out.header.ret, out.header.ret_origin),
        (teec::ERROR_BAD_PARAMETERS, teec::ORIGIN_TRUSTED_APP)
    );
}

#[test]
fn the_argument_is_read_once_so_changes_during_a_call_are_ignored() {
    let mut g = guest();
    let s = g.open(MEMORY);
    let (gpa, r) = g.start_invoke(s, memory::CMD_SLOW, vec![value(attr::VALUE_INOUT, 3)]);
    assert_eq!(r.a0(), u64::from(ret::RPC_FOREIGN_INTR));
    // The guest rewrites its argument while the call is parked.
    let mut evil = invoke_arg(
        s + 7,
        memory::CMD_REVERSE,
        vec![MsgParam::new(attr::TMEM_INOUT | attr::NONCONTIG, HOLE, 1, 0); 5],
    );
    evil.header.cmd = cmd::REGISTER_SHM;
    g.mem.write(gpa, &evil.encode()).unwrap();
    let r = g.serve(r);
    assert_eq!(r.regs(), &[0]);
    let out = g.read_arg(gpa);
    assert_eq!(out.header.ret, teec::SUCCESS);
    assert_eq!(
        out.header.session, s,
        "the shadow's session is written back"
    );
    assert_eq!(out.params[0].a, 3, "rounds done, from the shadow's value");
    assert_eq!(
        out.params[0].attr,
        attr::TMEM_INOUT | attr::NONCONTIG,
        "inputs are not copied back"
    );
}

#[test]
fn only_ret_origin_session_and_outputs_are_written_back() {
    let mut g = guest();
    let s = g.open(MEMORY);
    let data = pattern(100);
    let (p0, pages) = g.tmem(attr::TMEM_INPUT, &data, 0x10);
    let (p1, _) = g.tmem(attr::TMEM_OUTPUT, &[0u8; 100], 0);
    let mut arg = invoke_arg(
        s,
        memory::CMD_COPY_REVERSED,
        vec![p0, p1, MsgParam::new(attr::VALUE_OUTPUT, 9, 9, 9)],
    );
    arg.header.cancel_id = 0x55;
    arg.header.pad = 0x66;
    let gpa = g.put_arg(&arg);
    let mut before = vec![0u8; PAGE_SIZE as usize];
    g.mem.read(gpa, &mut before).unwrap();
    assert_eq!(g.call_with_arg_raw(gpa).regs(), &[0]);
    let mut after = vec![0u8; PAGE_SIZE as usize];
    g.mem.read(gpa, &mut after).unwrap();
    let written: Vec<std::ops::Range<usize>> = vec![
        0x08..0x0C,               // session
        0x14..0x1C,               // ret, ret_origin
        0x40 + 0x10..0x40 + 0x18, // params[1].size
        0x60 + 0x08..0x60 + 0x20, // params[2].value
    ];
    for i in 0..PAGE_SIZE as usize {
        if !written.iter().any(|r| r.contains(&i)) {
            assert_eq!(before[i], after[i], "byte {i:#x} changed");
        }
    }
    let out = g.read_arg(gpa);
    assert_eq!(out.header.ret, teec::SUCCESS);
    assert_eq!(out.params[1].b, 100);
    assert_eq!(out.params[2].a, u64::from(fnv1a32(&reversed(&data))));
    assert_eq!(
        out.params[2].c, 9,
        "value.c passes through the TA unchanged"
    );
    let _ = pages;
}

#[test]
fn an_argument_that_left_guest_ram_during_the_call_is_ebadaddr() {
    let mut g = guest();
    let s = g.open(MEMORY);
    let arg = invoke_arg(s, memory::CMD_SLOW, vec![value(attr::VALUE_INOUT, 1)]);
    g.mem.write(FRAGILE, &arg.encode()).unwrap();
    let r = g.call_with_arg_raw(FRAGILE);
    assert_eq!(r.a0(), u64::from(ret::RPC_FOREIGN_INTR));
    assert!(g.mem.remove_region(FRAGILE));
    let r = g.call(SmcCall::new(
        abi::RETURN_FROM_RPC,
        &[r.regs()[1], r.regs()[2], r.regs()[3]],
    ));
    assert_eq!(r.regs(), &[u64::from(ret::EBADADDR)]);
    assert_eq!(g.m.usage().calls, 0, "the thread is freed all the same");
}

// ---- parameters ----

fn invoke_ret(g: &mut Guest, s: u32, func: u32, params: Vec<MsgParam>) -> (u32, u32) {
    outcome(&g.invoke(s, func, params))
}

const REFUSED: (u32, u32) = (teec::ERROR_BAD_PARAMETERS, teec::ORIGIN_COMMS);

#[test]
fn reserved_attribute_bits_are_bad_parameters() {
    let mut g = guest();
    let s = g.open(HELLO);
    for a in [
        attr::VALUE_INOUT | 1 << 10,
        attr::VALUE_INOUT | 1 << 19,
        attr::VALUE_INOUT | 1 << 63,
    ] {
        assert_eq!(
            invoke_ret(&mut g, s, 0, vec![MsgParam::new(a, 1, 0, 0)]),
            REFUSED,
            "{a:#x}"
        );
    }
}

#[test]
fn reserved_parameter_types_are_bad_parameters() {
    let mut g = guest();
    let s = g.open(HELLO);
    for t in [4u64, 8, 0xC, 0x10, 0xFF] {
        assert_eq!(
            invoke_ret(&mut g, s, 0, vec![MsgParam::new(t, 0, 0, 0)]),
            REFUSED,
            "{t:#x}"
        );
    }
}

#[test]
fn meta_parameters_outside_open_session_are_bad_parameters() {
    let mut g = guest();
    let s = g.open(HELLO);
    let p = MsgParam::new(attr::META | attr::VALUE_INOUT, 1, 0, 0);
    assert_eq!(invoke_ret(&mut g, s, 0, vec![p]), REFUSED);
    let (r, o, _) = g.open_with(
        HELLO,
        0,
        vec![MsgParam::new(attr::META | attr::VALUE_INPUT, 0, 0, 0)],
    );
    assert_eq!((r, o), REFUSED);
}

#[test]
fn noncontig_on_a_value_or_rmem_is_bad_parameters() {
    let mut g = guest();
    let s = g.open(HELLO);
    for t in [attr::VALUE_INOUT, attr::RMEM_INPUT] {
        assert_eq!(
            invoke_ret(
                &mut g,
                s,
                0,
                vec![MsgParam::new(t | attr::NONCONTIG, 1, 0, 0)]
            ),
            REFUSED
        );
    }
}

#[test]
fn contiguous_temporary_memory_is_bad_parameters() {
    let mut g = guest();
    let s = g.open(MEMORY);
    let page = g.page();
    let p = MsgParam::new(attr::TMEM_INOUT, page, 16, 1);
    assert_eq!(outcome(&g.reverse(s, p)), REFUSED);
}

#[test]
fn a_null_temporary_memref_reaches_the_ta_as_memref_null() {
    let mut g = guest();
    let s = g.open(MEMORY);
    let data = pattern(10);
    let (p0, _) = g.tmem(attr::TMEM_INPUT, &data, 0);
    for null in [
        MsgParam::new(attr::TMEM_OUTPUT, 0, 0, 0),
        MsgParam::new(attr::TMEM_OUTPUT | attr::NONCONTIG, 0, 4, 0),
    ] {
        let out = g.invoke(
            s,
            memory::CMD_COPY_REVERSED,
            vec![p0, null, value(attr::VALUE_OUTPUT, 0)],
        );
        assert_eq!(out.header.ret, teec::ERROR_SHORT_BUFFER);
        assert_eq!(out.params[1].b, 10, "the size the client needs");
    }
}

#[test]
fn registered_memory_of_an_unknown_cookie_is_bad_parameters() {
    let mut g = guest();
    let s = g.open(MEMORY);
    let p = MsgParam::new(attr::RMEM_INOUT, 0, 16, 0x1234);
    assert_eq!(outcome(&g.reverse(s, p)), REFUSED);
}

#[test]
fn registered_memory_outside_its_buffer_is_bad_parameters() {
    let mut g = guest();
    let s = g.open(MEMORY);
    let (cookie, _, r) = g.register(&pattern(0x2000), 0x100);
    assert_eq!(r, teec::SUCCESS);
    for (offs, size) in [
        (0, 0x2001),
        (0x1000, 0x1001),
        (0x2000, 1),
        (u64::MAX, 2),
        (1, u64::MAX),
    ] {
        let p = MsgParam::new(attr::RMEM_INOUT, offs, size, cookie);
        assert_eq!(outcome(&g.reverse(s, p)), REFUSED, "{offs:#x}+{size:#x}");
    }
}

#[test]
fn open_session_needs_two_meta_value_inputs_and_a_32_bit_login() {
    let mut g = guest();
    let good = open_arg(HELLO, 0, vec![]);
    let mut cases = vec![
        MsgArg::new(cmd::OPEN_SESSION, vec![]),
        MsgArg::new(cmd::OPEN_SESSION, vec![good.params[0]]),
    ];
    let mut a = good.clone();
    a.params[0].attr = attr::VALUE_INPUT;
    cases.push(a);
    let mut a = good.clone();
    a.params[1].attr = attr::META | attr::VALUE_INOUT;
    cases.push(a);
    let mut a = good.clone();
    a.params[1].c = 1 << 32;
    cases.push(a);
    for (i, arg) in cases.iter().enumerate() {
        let (a0, out) = g.std_call(arg);
        assert_eq!(a0, 0);
        assert_eq!((out.header.ret, out.header.ret_origin), REFUSED, "case {i}");
    }
    assert_eq!(g.m.usage().sessions, 0);
}

#[test]
fn invoke_or_close_of_a_session_not_open_is_bad_parameters() {
    let mut g = guest();
    assert_eq!(
        invoke_ret(&mut g, 42, 0, vec![value(attr::VALUE_INOUT, 1)]),
        REFUSED
    );
    let mut arg = MsgArg::new(cmd::CLOSE_SESSION, vec![]);
    arg.header.session = 42;
    let (_, out) = g.std_call(&arg);
    assert_eq!((out.header.ret, out.header.ret_origin), REFUSED);
}

#[test]
fn close_and_cancel_with_parameters_are_bad_parameters() {
    let mut g = guest();
    let s = g.open(HELLO);
    for c in [cmd::CLOSE_SESSION, cmd::CANCEL] {
        let mut arg = MsgArg::new(c, vec![MsgParam::default()]);
        arg.header.session = s;
        let (_, out) = g.std_call(&arg);
        assert_eq!((out.header.ret, out.header.ret_origin), REFUSED);
    }
    assert_eq!(g.m.usage().sessions, 1);
}

#[test]
fn a_temporary_page_list_with_a_hole_is_bad_parameters() {
    let mut g = guest();
    let s = g.open(MEMORY);
    let (mut p, pages) = g.tmem(attr::TMEM_INOUT, &pattern(0x3000), 0);
    let list = p.a & !0xfff;
    g.mem.write(list + 8, &HOLE.to_le_bytes()).unwrap();
    assert_eq!(outcome(&g.reverse(s, p)), REFUSED);
    g.mem
        .write(list + 8, &(pages[1] + 0x10).to_le_bytes())
        .unwrap();
    assert_eq!(outcome(&g.reverse(s, p)), REFUSED);
    p.a = HOLE;
    assert_eq!(outcome(&g.reverse(s, p)), REFUSED);
    assert_eq!(g.m.usage().buffers, 0, "nothing held after a refusal");
}

#[test]
fn a_page_list_that_loops_on_itself_ends_at_the_buffer_size() {
    let mut g = guest();
    let s = g.open(MEMORY);
    let data_page = g.page();
    let list = g.page();
    // 511 entries all naming the same data page, linking back to itself.
    let mut raw = Vec::new();
    for _ in 0..511 {
        raw.extend_from_slice(&data_page.to_le_bytes());
    }
    raw.extend_from_slice(&list.to_le_bytes());
    g.mem.write(list, &raw).unwrap();
    let p = MsgParam::new(attr::TMEM_INOUT | attr::NONCONTIG, list, 129 * PAGE_SIZE, 7);
    let out = g.reverse(s, p);
    assert_eq!(out.header.ret, teec::SUCCESS);
    let p = MsgParam::new(attr::TMEM_INOUT | attr::NONCONTIG, list, 1 << 40, 7);
    let out = g.reverse(s, p);
    assert_eq!(
        outcome(&out),
        (teec::ERROR_OUT_OF_MEMORY, teec::ORIGIN_COMMS)
    );
}

// ---- sessions and the hello TA ----

#[test]
fn open_session_returns_a_session_and_hello_increments_and_decrements() {
    let mut g = guest();
    let (r, o, s) = g.open_with(HELLO, login::PUBLIC, vec![]);
    assert_eq!((r, o), (teec::SUCCESS, teec::ORIGIN_TRUSTED_APP));
    assert_ne!(s, 0);
    let out = g.invoke(s, hello::CMD_INC_VALUE, vec![value(attr::VALUE_INOUT, 41)]);
    assert_eq!((out.header.ret, out.params[0].a), (teec::SUCCESS, 42));
    let out = g.invoke(s, hello::CMD_DEC_VALUE, vec![value(attr::VALUE_INOUT, 0)]);
    assert_eq!(out.params[0].a, 0xffff_ffff, "GP values are 32-bit");
}

#[test]
fn hello_refuses_unknown_commands_and_wrong_parameter_types() {
    let mut g = guest();
    let s = g.open(HELLO);
    let bad = (teec::ERROR_BAD_PARAMETERS, teec::ORIGIN_TRUSTED_APP);
    assert_eq!(
        invoke_ret(&mut g, s, 7, vec![value(attr::VALUE_INOUT, 1)]),
        bad
    );
    assert_eq!(
        invoke_ret(&mut g, s, 0, vec![value(attr::VALUE_INPUT, 1)]),
        bad
    );
    assert_eq!(invoke_ret(&mut g, s, 0, vec![]), bad);
    assert_eq!(
        invoke_ret(
            &mut g,
            s,
            0,
            vec![
                value(attr::VALUE_INOUT, 1),
                MsgParam::default(),
                MsgParam::default(),
                MsgParam::default(),
                MsgParam::default()
            ]
        ),
        bad
    );
}

#[test]
fn opening_an_unknown_ta_is_item_not_found_from_the_tee() {
    let mut g = guest();
    let (r, o, _) = g.open_with(optee_mediator::Uuid([9; 16]), 0, vec![]);
    assert_eq!((r, o), (teec::ERROR_ITEM_NOT_FOUND, teec::ORIGIN_TEE));
    assert_eq!(g.m.usage().sessions, 0);
}

#[test]
fn sessions_are_distinct_and_closing_forgets_them() {
    let mut g = guest();
    let a = g.open(HELLO);
    let b = g.open(HELLO);
    assert_ne!(a, b);
    assert_eq!(g.close(a), teec::SUCCESS);
    assert_eq!(
        invoke_ret(&mut g, a, 0, vec![value(attr::VALUE_INOUT, 1)]),
        REFUSED
    );
    assert_eq!(
        invoke_ret(&mut g, b, 0, vec![value(attr::VALUE_INOUT, 1)]),
        (teec::SUCCESS, teec::ORIGIN_TRUSTED_APP)
    );
    assert_eq!(g.m.usage().sessions, 1);
}

#[test]
fn device_pta_refuses_open_parameters() {
    let mut g = guest();
    let (r, _, _) = g.open_with(
        DEVICE_PTA,
        login::REE_KERNEL,
        vec![value(attr::VALUE_INPUT, 1)],
    );
    assert_eq!(r, teec::ERROR_BAD_PARAMETERS);
}

#[test]
fn device_pta_reports_configured_devices_after_a_short_buffer() {
    use optee_mediator::utee::ta::device;
    let dev = optee_mediator::Uuid([0xAB; 16]);
    let cfg = optee_mediator::UteeConfig {
        devices: vec![dev, optee_mediator::Uuid([0xCD; 16])],
        ..Default::default()
    };
    let mut g = guest_with(optee_mediator::Policy::default(), cfg);
    let s = g.open(DEVICE_PTA);
    let out = g.invoke(
        s,
        device::CMD_GET_DEVICES,
        vec![MsgParam::new(attr::TMEM_OUTPUT, 0, 0, 0)],
    );
    assert_eq!(
        (out.header.ret, out.params[0].b),
        (teec::ERROR_SHORT_BUFFER, 32)
    );
    let (cookie, pages, r) = g.register(&[0u8; 32], 0);
    assert_eq!(r, teec::SUCCESS);
    let out = g.invoke(
        s,
        device::CMD_GET_DEVICES,
        vec![MsgParam::new(attr::RMEM_OUTPUT, 0, 32, cookie)],
    );
    assert_eq!((out.header.ret, out.params[0].b), (teec::SUCCESS, 32));
    let got = g.read_scattered(&pages, 0, 32);
    assert_eq!(&got[..16], &[0xAB; 16]);
    assert_eq!(&got[16..], &[0xCD; 16]);
    for f in [device::CMD_GET_DEVICES_SUPP, device::CMD_GET_DEVICES_RPMB] {
        let out = g.invoke(s, f, vec![MsgParam::new(attr::TMEM_OUTPUT, 0, 0, 0)]);
        assert_eq!((out.header.ret, out.params[0].b), (teec::SUCCESS, 0));
    }
    let out = g.invoke(s, 99, vec![MsgParam::new(attr::TMEM_OUTPUT, 0, 0, 0)]);
    assert_eq!(out.header.ret, teec::ERROR_NOT_SUPPORTED);
}

// ---- the memory TA ----

#[test]
fn memory_ta_reverses_a_temporary_buffer_spanning_noncontiguous_pages() {
    let mut g = guest();
    let s = g.open(MEMORY);
    let data = pattern(3 * 4096 + 77);
    let (p, pages) = g.tmem(attr::TMEM_INOUT, &data, 0xF80);
    assert_eq!(pages.len(), 4);
    assert!(
        pages.windows(2).all(|w| w[1] != w[0] + PAGE_SIZE),
        "pages are not contiguous"
    );
    let out = g.reverse(s, p);
    assert_eq!(out.header.ret, teec::SUCCESS);
    let want = reversed(&data);
    assert_eq!(g.read_scattered(&pages, 0xF80, data.len()), want);
    assert_eq!(out.params[1].a, u64::from(fnv1a32(&want)));
    assert_eq!(out.params[1].b, data.len() as u64);
    assert_eq!(
        g.m.usage().buffers,
        0,
        "temporary buffers end with the call"
    );
}

#[test]
fn memory_ta_reverses_part_of_a_registered_buffer() {
    let mut g = guest();
    let s = g.open(MEMORY);
    let data = pattern(0x5000);
    let (cookie, pages, r) = g.register(&data, 0x123);
    assert_eq!(r, teec::SUCCESS);
    let out = g.reverse(s, MsgParam::new(attr::RMEM_INOUT, 0x1800, 0x2000, cookie));
    assert_eq!(out.header.ret, teec::SUCCESS);
    let mut want = data.clone();
    want[0x1800..0x3800].reverse();
    assert_eq!(g.read_scattered(&pages, 0x123, data.len()), want);
    assert_eq!(out.params[1].a, u64::from(fnv1a32(&want[0x1800..0x3800])));
    assert_eq!(g.m.usage().buffers, 1);
}

#[test]
fn memory_ta_copies_between_registered_and_temporary_memory() {
    let mut g = guest();
    let s = g.open(MEMORY);
    let data = pattern(0x1234);
    let (cookie, _, _) = g.register(&data, 0);
    let (out_p, out_pages) = g.tmem(attr::TMEM_OUTPUT, &vec![0; 0x2000], 0x10);
    let out = g.invoke(
        s,
        memory::CMD_COPY_REVERSED,
        vec![
            MsgParam::new(attr::RMEM_INPUT, 0, 0x1234, cookie),
            out_p,
            value(attr::VALUE_OUTPUT, 0),
        ],
    );
    assert_eq!(out.header.ret, teec::SUCCESS);
    assert_eq!(
        out.params[1].b, 0x1234,
        "output size set to what was written"
    );
    assert_eq!(g.read_scattered(&out_pages, 0x10, 0x1234), reversed(&data));
}

#[test]
fn memory_ta_reports_short_buffer_with_the_needed_size() {
    let mut g = guest();
    let s = g.open(MEMORY);
    let (p0, _) = g.tmem(attr::TMEM_INPUT, &pattern(300), 0);
    let (p1, _) = g.tmem(attr::TMEM_OUTPUT, &[0; 299], 0);
    let out = g.invoke(
        s,
        memory::CMD_COPY_REVERSED,
        vec![p0, p1, value(attr::VALUE_OUTPUT, 0)],
    );
    assert_eq!(
        (out.header.ret, out.params[1].b),
        (teec::ERROR_SHORT_BUFFER, 300)
    );
}

#[test]
fn memory_ta_refuses_wrong_types_and_unknown_commands() {
    let mut g = guest();
    let s = g.open(MEMORY);
    let bad = (teec::ERROR_BAD_PARAMETERS, teec::ORIGIN_TRUSTED_APP);
    for f in [
        memory::CMD_REVERSE,
        memory::CMD_COPY_REVERSED,
        memory::CMD_SLOW,
        memory::CMD_FILL_RPC_SHM,
        memory::CMD_GET_TIME,
    ] {
        assert_eq!(
            invoke_ret(
                &mut g,
                s,
                f,
                vec![MsgParam::new(attr::TMEM_INPUT, 0, 0, 0); 4]
            ),
            bad,
            "cmd {f}"
        );
    }
    // A NULL memref where the TA needs memory.
    assert_eq!(
        outcome(&g.reverse(s, MsgParam::new(attr::TMEM_INOUT, 0, 0, 0))),
        bad
    );
    assert_eq!(
        invoke_ret(
            &mut g,
            s,
            memory::CMD_SLOW,
            vec![value(attr::VALUE_INOUT, memory::MAX_ROUNDS + 1)]
        ),
        bad
    );
    assert_eq!(
        invoke_ret(
            &mut g,
            s,
            memory::CMD_FILL_RPC_SHM,
            vec![value(attr::VALUE_INOUT, 0)]
        ),
        bad
    );
    assert_eq!(
        invoke_ret(&mut g, s, 77, vec![]),
        (teec::ERROR_NOT_SUPPORTED, teec::ORIGIN_TRUSTED_APP)
    );
}

#[test]
fn a_slow_command_of_zero_rounds_completes_at_once() {
    let mut g = guest();
    let s = g.open(MEMORY);
    let out = g.invoke(s, memory::CMD_SLOW, vec![value(attr::VALUE_INOUT, 0)]);
    assert_eq!(out.header.ret, teec::SUCCESS);
    assert_eq!(g.log.foreign_intr, 0);
}
