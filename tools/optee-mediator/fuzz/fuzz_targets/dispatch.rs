// SPDX-License-Identifier: Apache-2.0 OR MIT
//! The whole dispatch: random register sets (biased to the ABI's ids,
//! guest addresses and thread ids) against random guest memory that the
//! "guest" also rewrites between calls. No panic, 32-bit results, and
//! teardown leaves nothing behind.

#![no_main]

#[path = "common.rs"]
mod common;

use libfuzzer_sys::fuzz_target;
use optee_mediator::abi::{self, Function};
use optee_mediator::msg::{attr, cmd, MsgArg, MsgParam};
use optee_mediator::utee::ta::{DEVICE_PTA_UUID, HELLO_UUID, MEMORY_UUID};
use optee_mediator::{
    ClientId, GuestRam, Mediator, Policy, Quotas, SmcCall, UserTee, UteeConfig,
};
use smccc::FunctionId;

fn function(r: &mut common::Reader) -> FunctionId {
    let sel = r.u8();
    let n = Function::ANSWERED.len() as u8;
    match sel {
        s if s < n * 8 => Function::ANSWERED[usize::from(s % n)].0,
        s if s < n * 8 + 16 => [
            abi::VM_CREATED,
            abi::VM_DESTROYED,
            abi::CALL_LOAD_IMAGE,
            abi::CALL_WITH_RPC_ARG,
        ][usize::from(s % 4)],
        _ => FunctionId(r.u32()),
    }
}

/// A well-formed argument, to get deep into the TAs often.
fn plausible_arg(r: &mut common::Reader) -> MsgArg {
    let uuids = [HELLO_UUID, MEMORY_UUID, DEVICE_PTA_UUID];
    match r.u8() % 4 {
        0 => {
            let u = uuids[usize::from(r.u8() % 3)].0;
            let a = u64::from_le_bytes(u[..8].try_into().unwrap_or_default());
            let b = u64::from_le_bytes(u[8..].try_into().unwrap_or_default());
            MsgArg::new(
                cmd::OPEN_SESSION,
                vec![
                    MsgParam::new(attr::META | attr::VALUE_INPUT, a, b, 0),
                    MsgParam::new(attr::META | attr::VALUE_INPUT, 0, 0, u64::from(r.u32())),
                ],
            )
        }
        _ => {
            let n = usize::from(r.u8() % 5);
            let params = (0..n)
                .map(|_| {
                    let t = [1u64, 2, 3, 5, 6, 7, 9, 10, 11][usize::from(r.u8() % 9)];
                    let nc = if r.u8() & 1 == 1 { attr::NONCONTIG } else { 0 };
                    MsgParam::new(t | nc, common::address(r), u64::from(r.u8()) * 33, u64::from(r.u8()))
                })
                .collect();
            let mut a = MsgArg::new(u32::from(r.u8() % 7), params);
            a.header.session = u32::from(r.u8() % 4);
            a.header.func = u32::from(r.u8() % 6);
            a.header.cancel_id = u32::from(r.u8() % 2);
            a
        }
    }
}

fuzz_target!(|data: &[u8]| {
    let mut r = common::Reader::new(data);
    let policy = Policy {
        quotas: Quotas {
            max_buffers: u32::from(r.u8() % 20),
            max_pages_per_buffer: u64::from(r.u8()),
            max_total_pages: u64::from(r.u8()) * 4,
            max_sessions: u32::from(r.u8() % 8),
            max_calls: Some(u32::from(r.u8() % 5)),
        },
        ..Policy::default()
    };
    let cfg = UteeConfig {
        thread_count: u32::from(r.u8() % 6),
        ..UteeConfig::default()
    };
    let mem = common::memory(&mut r);
    let mut m = Mediator::new(ClientId(7), policy, UserTee::new(cfg)).expect("mediator");
    let mut steps = 0;
    while !r.is_empty() && steps < 256 {
        steps += 1;
        match r.u8() % 8 {
            // The guest writes somewhere.
            0 => {
                let at = common::address(&mut r);
                let len = usize::from(r.u8());
                let bytes = r.bytes(len);
                let _ = mem.write(at, bytes);
            }
            // The guest writes a plausible argument and calls with it.
            1 => {
                let arg = plausible_arg(&mut r);
                let at = common::address(&mut r) & !0xfff;
                if mem.write(at, &arg.encode()).is_ok() {
                    let (hi, lo) = abi::split_pair(at);
                    let res = m.handle(
                        &mem,
                        &SmcCall::new(abi::CALL_WITH_ARG, &[u64::from(hi), u64::from(lo)]),
                    );
                    assert!(res.regs().iter().all(|v| *v <= u64::from(u32::MAX)));
                }
            }
            // Any call, registers biased to addresses and small thread ids.
            _ => {
                let f = function(&mut r);
                let mut args = [0u64; 7];
                for a in args.iter_mut() {
                    *a = match r.u8() % 4 {
                        0 => u64::from(r.u8() % 10),
                        1 => {
                            let (hi, lo) = abi::split_pair(common::address(&mut r));
                            if r.u8() & 1 == 0 { u64::from(hi) } else { u64::from(lo) }
                        }
                        _ => r.u64(),
                    };
                }
                let res = m.handle(&mem, &SmcCall::new(f, &args));
                assert!(!res.regs().is_empty() && res.regs().len() <= 4);
                assert!(res.regs().iter().all(|v| *v <= u64::from(u32::MAX)));
            }
        }
        let u = m.usage();
        assert!(u.calls <= m.thread_count());
    }
    m.teardown();
    assert_eq!(m.usage(), optee_mediator::Usage::default());
    assert!(!m.backend().has_client(ClientId(7)));
});
