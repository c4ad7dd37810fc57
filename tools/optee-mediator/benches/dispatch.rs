// SPDX-License-Identifier: Apache-2.0 OR MIT
//! Dispatch cost per call, measured in one run on vm-memory's
//! GuestMemoryMmap: a fast call, and INVOKEs with a registered buffer.
//! `cargo bench -p optee-mediator` (optionally `-- N` iterations).

use std::hint::black_box;
use std::time::Instant;

use optee_mediator::abi::{self, split_pair};
use optee_mediator::msg::{attr, cmd, MsgArg, MsgParam, PAGE_SIZE};
use optee_mediator::pagelist::write_list;
use optee_mediator::utee::ta::{device, hello, memory, DEVICE_PTA_UUID, HELLO_UUID, MEMORY_UUID};
use optee_mediator::{ClientId, GuestRam, Mediator, Policy, SmcCall, UserTee};
use vm_memory::{GuestAddress, GuestMemoryMmap};

const RAM: u64 = 0x4000_0000;

fn call_with_arg(gpa: u64) -> SmcCall {
    let (hi, lo) = split_pair(gpa);
    SmcCall::new(abi::CALL_WITH_ARG, &[u64::from(hi), u64::from(lo)])
}

fn open(m: &mut Mediator<UserTee>, mem: &GuestMemoryMmap<()>, at: u64, uuid: [u8; 16]) -> u32 {
    let a = u64::from_le_bytes(uuid[..8].try_into().expect("8 bytes"));
    let b = u64::from_le_bytes(uuid[8..].try_into().expect("8 bytes"));
    let arg = MsgArg::new(
        cmd::OPEN_SESSION,
        vec![
            MsgParam::new(attr::META | attr::VALUE_INPUT, a, b, 0),
            MsgParam::new(attr::META | attr::VALUE_INPUT, 0, 0, 0),
        ],
    );
    mem.write(at, &arg.encode()).expect("write");
    assert_eq!(m.handle(mem, &call_with_arg(at)).a0(), 0);
    MsgArg::read(mem, at).expect("read").header.session
}

fn time(name: &str, n: u64, mut f: impl FnMut()) -> f64 {
    for _ in 0..n / 10 {
        f();
    }
    let t = Instant::now();
    for _ in 0..n {
        f();
    }
    let ns = t.elapsed().as_nanos() as f64 / n as f64;
    println!("{name:<52} {ns:>9.1} ns/call");
    ns
}

fn main() {
    let n: u64 = std::env::args()
        .skip(1)
        .find_map(|a| a.parse().ok())
        .unwrap_or(200_000);
    let mem: GuestMemoryMmap<()> =
        GuestMemoryMmap::from_ranges(&[(GuestAddress(RAM), 16 << 20)]).expect("guest memory");
    let mut m =
        Mediator::new(ClientId(1), Policy::default(), UserTee::default()).expect("mediator");

    let hello_s = open(&mut m, &mem, RAM, HELLO_UUID.0);
    let mem_s = open(&mut m, &mem, RAM, MEMORY_UUID.0);
    let dev_s = open(&mut m, &mem, RAM, DEVICE_PTA_UUID.0);

    // A registered 16 KiB buffer on scattered pages.
    let pages: Vec<u64> = (0..4)
        .map(|i| RAM + 0x10_0000 + i * 3 * PAGE_SIZE)
        .collect();
    let ptr = write_list(&mem, &[RAM + 0x1000], &pages, 0).expect("page list");
    let cookie = 0xC0_0C1E;
    let reg = MsgArg::new(
        cmd::REGISTER_SHM,
        vec![MsgParam::new(
            attr::TMEM_OUTPUT | attr::NONCONTIG,
            ptr,
            4 * PAGE_SIZE,
            cookie,
        )],
    );
    mem.write(RAM + 0x2000, &reg.encode()).expect("write");
    assert_eq!(m.handle(&mem, &call_with_arg(RAM + 0x2000)).a0(), 0);
    assert_eq!(
        MsgArg::read(&mem, RAM + 0x2000).expect("read").header.ret,
        0
    );

    println!("optee-mediator dispatch cost, {n} calls each, GuestMemoryMmap");
    let fast = time("fast call (GET_THREAD_COUNT)", n, || {
        black_box(m.handle(&mem, &SmcCall::new(abi::GET_THREAD_COUNT, &[])));
    });
    time("fast call (CALLS_UID)", n, || {
        black_box(m.handle(&mem, &SmcCall::new(abi::CALLS_UID, &[])));
    });

    let inc = MsgArg {
        header: optee_mediator::msg::MsgHeader {
            cmd: cmd::INVOKE_COMMAND,
            func: hello::CMD_INC_VALUE,
            session: hello_s,
            num_params: 1,
            ..Default::default()
        },
        params: vec![MsgParam::new(attr::VALUE_INOUT, 0, 0, 0)],
    };
    let at = RAM + 0x3000;
    mem.write(at, &inc.encode()).expect("write");
    let value = time("INVOKE hello (one value)", n, || {
        black_box(m.handle(&mem, &call_with_arg(at)));
    });

    // The device PTA with a registered output buffer: it has no devices to
    // write, so this is the dispatch cost of a registered memref alone.
    let get = MsgArg {
        header: optee_mediator::msg::MsgHeader {
            cmd: cmd::INVOKE_COMMAND,
            func: device::CMD_GET_DEVICES,
            session: dev_s,
            num_params: 1,
            ..Default::default()
        },
        params: vec![MsgParam::new(attr::RMEM_OUTPUT, 0, 4096, cookie)],
    };
    let at = RAM + 0x5000;
    mem.write(at, &get.encode()).expect("write");
    let regbuf = time("INVOKE, registered buffer, TA touches no data", n, || {
        black_box(m.handle(&mem, &call_with_arg(at)));
    });
    assert_eq!(MsgArg::read(&mem, at).expect("read").header.ret, 0);

    let mut results = vec![("INVOKE, registered buffer, TA touches no data", regbuf)];
    for (len, label) in [
        (64u64, "INVOKE memory TA, registered buffer, 64 B"),
        (4096, "INVOKE memory TA, registered buffer, 4 KiB"),
        (4 * 4096, "INVOKE memory TA, registered buffer, 16 KiB"),
    ] {
        let rev = MsgArg {
            header: optee_mediator::msg::MsgHeader {
                cmd: cmd::INVOKE_COMMAND,
                func: memory::CMD_REVERSE,
                session: mem_s,
                num_params: 2,
                ..Default::default()
            },
            params: vec![
                MsgParam::new(attr::RMEM_INOUT, 0, len, cookie),
                MsgParam::new(attr::VALUE_OUTPUT, 0, 0, 0),
            ],
        };
        let at = RAM + 0x4000;
        mem.write(at, &rev.encode()).expect("write");
        let ns = time(label, n, || {
            black_box(m.handle(&mem, &call_with_arg(at)));
        });
        assert_eq!(MsgArg::read(&mem, at).expect("read").header.ret, 0);
        results.push((label, ns));
    }
    println!("ratio INVOKE hello / fast call: {:.1}", value / fast);
    for (label, ns) in results {
        println!("ratio {label} / fast call: {:.1}", ns / fast);
    }
}
