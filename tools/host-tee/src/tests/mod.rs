// SPDX-License-Identifier: Apache-2.0 OR MIT
//! Tests of the backend against [`FakeTee`].

mod calls;
mod lifecycle;
mod mediator;
mod memory;
mod relay;

use std::sync::Arc;
use std::time::Duration;

use optee_mediator::backend::{Backend, ClientId, Command, Param, RpcReply, StdCall, Step};
use optee_mediator::msg::{teec, Dir};
use optee_mediator::shm::{GuestBuffer, MemRef};
use optee_mediator::{GuestRam, Uuid};
use vm_memory::{GuestAddress, GuestMemoryMmap};

use crate::fake::FAKE_TA;
use crate::{ClientLogin, FakeTee, HostTee, HostTeeConfig};

/// The VM of the tests.
const VM: ClientId = ClientId(1);

/// Guest RAM: 64 KiB at 0x4000_0000, mapped in this process.
fn ram() -> GuestMemoryMmap<()> {
    GuestMemoryMmap::from_ranges(&[(GuestAddress(0x4000_0000), 0x10000)]).unwrap()
}

/// Guest RAM as `ram`, backed by a file (as the VMM backs it by a memfd):
/// scattered pages can be mapped side by side.
fn file_ram() -> GuestMemoryMmap<()> {
    let file = tempfile::tempfile().unwrap();
    file.set_len(0x10000).unwrap();
    GuestMemoryMmap::from_ranges_with_files([(
        GuestAddress(0x4000_0000),
        0x10000,
        Some(vm_memory::FileOffset::new(file, 0)),
    )])
    .unwrap()
}

/// A backend whose VMs all use `fake`'s context, with VM created.
///
/// The guest memory of each test is declared before the backend, so it is
/// dropped after it (the contract of `HostTee::new`).
fn backend(fake: &FakeTee) -> HostTee<FakeTee> {
    let f = fake.clone();
    // SAFETY: every test declares its guest memory before the backend,
    // which is therefore dropped (tearing its VMs down) first.
    let mut tee = unsafe { HostTee::new(HostTeeConfig::default(), move || Ok(f.clone())) };
    tee.vm_created(VM).unwrap();
    tee
}

/// A standard call.
fn std_call(command: Command, session: u32, params: Vec<Param>) -> StdCall {
    StdCall {
        command,
        session,
        cancel_id: 0,
        params,
        ret: 0,
        ret_origin: 0,
        cost: Default::default(),
    }
}

/// Resumes `call` on `thread` with FOREIGN_INTR until it is done; the
/// number of FOREIGN_INTR rounds it took.
fn drive(tee: &mut HostTee<FakeTee>, thread: u32, call: &mut StdCall, mem: &dyn GuestRam) -> u32 {
    for round in 1..=10_000 {
        match tee.resume(VM, thread, call, RpcReply::ForeignIntr, mem) {
            Step::Done => return round,
            Step::Rpc(optee_mediator::backend::RpcRequest::ForeignIntr) => {
                std::thread::sleep(Duration::from_micros(200))
            }
            other => panic!("unexpected step {other:?}"),
        }
    }
    panic!("the call never finished");
}

/// Starts `call` on `thread` and drives it to the end.
fn run(tee: &mut HostTee<FakeTee>, thread: u32, call: &mut StdCall, mem: &dyn GuestRam) {
    match tee.start(VM, thread, call, mem) {
        Step::Done => {}
        Step::Rpc(optee_mediator::backend::RpcRequest::ForeignIntr) => {
            drive(tee, thread, call, mem);
        }
        other => panic!("unexpected step {other:?}"),
    }
}

/// Opens a session to the fake TA; its id.
fn open(tee: &mut HostTee<FakeTee>, mem: &dyn GuestRam) -> u32 {
    let mut c = std_call(open_command(), 0, vec![]);
    run(tee, 0, &mut c, mem);
    assert_eq!(
        (c.ret, c.ret_origin),
        (teec::SUCCESS, teec::ORIGIN_TRUSTED_APP)
    );
    c.session
}

/// OPEN_SESSION of the fake TA, with a USER login.
fn open_command() -> Command {
    Command::OpenSession {
        ta: Uuid(FAKE_TA),
        client: Uuid([7; 16]),
        login: 1,
    }
}

/// INVOKE of `func`.
fn invoke(session: u32, func: u32, params: Vec<Param>) -> StdCall {
    std_call(Command::Invoke { func }, session, params)
}

/// A value in/out parameter.
fn value_inout(a: u64) -> Param {
    Param::Value {
        dir: Dir::InOut,
        a,
        b: 0,
        c: 0,
    }
}

/// A memory reference to the whole of `buffer`.
fn memref(dir: Dir, buffer: GuestBuffer) -> Param {
    let size = buffer.size();
    Param::Memref {
        dir,
        mem: Some(MemRef::whole(Arc::new(buffer))),
        size,
    }
}

/// The bytes `0, 1, 2, ...` of length `n`.
fn ramp(n: usize) -> Vec<u8> {
    (0..n).map(|i| i as u8).collect()
}

/// Asserts `call` finished as `ret` from `origin`.
fn assert_result(call: &StdCall, ret: u32, origin: u32) {
    assert_eq!(
        (call.ret, call.ret_origin),
        (ret, origin),
        "ret {:#x} origin {}",
        call.ret,
        call.ret_origin
    );
}

#[test]
fn the_backend_can_move_to_vcpu_threads_and_sit_behind_their_lock() {
    fn send<T: Send>() {}
    send::<HostTee<crate::DevTee>>();
    send::<HostTee<FakeTee>>();
    send::<std::sync::Mutex<HostTee<crate::DevTee>>>();
}
