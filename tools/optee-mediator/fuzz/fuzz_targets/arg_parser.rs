// SPDX-License-Identifier: Apache-2.0 OR MIT
//! The argument parser: `optee_msg_arg` from arbitrary bytes, and a whole
//! CALL_WITH_ARG of an arbitrary argument page (validation, translation of
//! its memory parameters against arbitrary guest memory).

#![no_main]

#[path = "common.rs"]
mod common;

use libfuzzer_sys::fuzz_target;
use optee_mediator::abi::{self, ret};
use optee_mediator::msg::{attr, cmd, MsgArg, MsgParam};
use optee_mediator::utee::ta::{HELLO_UUID, MEMORY_UUID};
use optee_mediator::{ClientId, GuestRam, Mediator, Policy, SmcCall, UserTee};

fn open(m: &mut Mediator<UserTee>, mem: &dyn GuestRam, uuid: [u8; 16]) {
    let a = u64::from_le_bytes(uuid[..8].try_into().unwrap_or_default());
    let b = u64::from_le_bytes(uuid[8..].try_into().unwrap_or_default());
    let arg = MsgArg::new(
        cmd::OPEN_SESSION,
        vec![
            MsgParam::new(attr::META | attr::VALUE_INPUT, a, b, 0),
            MsgParam::new(attr::META | attr::VALUE_INPUT, 0, 0, 0),
        ],
    );
    if mem.write(0x8000_0000, &arg.encode()).is_ok() {
        let r = m.handle(mem, &SmcCall::new(abi::CALL_WITH_ARG, &[0, 0x8000_0000]));
        assert_eq!(r.regs(), &[0]);
    }
}

fuzz_target!(|data: &[u8]| {
    // 1. Bytes to message and back.
    if let Ok(arg) = MsgArg::parse(data) {
        assert_eq!(MsgArg::parse(&arg.encode()), Ok(arg));
    }

    // 2. The argument page of a CALL_WITH_ARG: header and parameters from
    // the input, the session fields aimed at an open session.
    let mut r = common::Reader::new(data);
    let n = usize::from(r.u8() % 8);
    let arg_bytes = r.bytes(32 + 32 * n);
    let mem = common::memory(&mut r);
    let _ = mem.write(0x1000, &[0u8; 0x1000]);
    let _ = mem.write(0x1000, arg_bytes);
    let mut m = Mediator::new(ClientId(1), Policy::default(), UserTee::default())
        .expect("mediator");
    open(&mut m, &mem, HELLO_UUID.0);
    open(&mut m, &mem, MEMORY_UUID.0);
    // The argument is the first region's page, from the input.
    let r0 = m.handle(&mem, &SmcCall::new(abi::CALL_WITH_ARG, &[0, 0x1000]));
    assert!(r0.regs().iter().all(|v| *v <= u64::from(u32::MAX)));
    let mut res = r0;
    // Serve up to a few RPCs with input-chosen answers.
    for _ in 0..8 {
        let a0 = res.a0() as u32;
        if !ret::is_rpc(a0) {
            break;
        }
        let regs = res.regs();
        let tid = regs.get(3).copied().unwrap_or(0);
        res = m.handle(
            &mem,
            &SmcCall::new(
                abi::RETURN_FROM_RPC,
                &[0, common::address(&mut r), tid, r.u64(), r.u64()],
            ),
        );
    }
    m.teardown();
    assert_eq!(m.usage(), optee_mediator::Usage::default());
});
