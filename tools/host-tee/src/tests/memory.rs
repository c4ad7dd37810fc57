// SPDX-License-Identifier: Apache-2.0 OR MIT
//! Memory references: zero-copy registrations, bounce buffers, registered
//! buffers.

use optee_mediator::backend::{Backend, Command, Param, RpcRequest, Step};
use optee_mediator::msg::{teec, Dir};
use optee_mediator::{CallCost, FakeGuestMemory};

use super::*;
use crate::fake::{fake_cmd, GREETING};

/// REVERSE of `param`, with a value output for the length.
fn reverse(session: u32, param: Param) -> StdCall {
    let len = Param::Value {
        dir: Dir::Out,
        a: 0,
        b: 0,
        c: 0,
    };
    invoke(session, fake_cmd::REVERSE, vec![param, len])
}

/// Starts `call` with the gate closed, returns what the fake holds while
/// the call is in the TEE, then lets it finish.
fn held_kinds(
    tee: &mut HostTee<FakeTee>,
    fake: &FakeTee,
    call: &mut StdCall,
    mem: &dyn GuestRam,
) -> (usize, usize) {
    fake.close_gate();
    assert_eq!(
        tee.start(VM, 1, call, mem),
        Step::Rpc(RpcRequest::ForeignIntr)
    );
    fake.wait_held(1);
    let kinds = fake.shm_kinds();
    fake.open_gate();
    drive(tee, 1, call, mem);
    kinds
}

#[test]
fn a_guest_contiguous_memref_is_registered_zero_copy_for_the_call_only() {
    let mem = ram();
    let fake = FakeTee::new();
    let mut tee = backend(&fake);
    let s = open(&mut tee, &mem);
    mem.write(0x4000_1f00, &ramp(0x200)).unwrap();
    let buf = GuestBuffer::new(vec![0x4000_1000, 0x4000_2000], 0xf00, 0x200).unwrap();
    let mut c = reverse(s, memref(Dir::InOut, buf));
    assert_eq!(held_kinds(&mut tee, &fake, &mut c, &mem), (1, 0));
    assert_result(&c, teec::SUCCESS, teec::ORIGIN_TRUSTED_APP);
    let mut back = vec![0u8; 0x200];
    mem.read(0x4000_1f00, &mut back).unwrap();
    let mut want = ramp(0x200);
    want.reverse();
    assert_eq!(back, want, "the TA worked on the guest's own pages");
    assert!(matches!(c.params[1], Param::Value { a: 0x200, .. }));
    assert_eq!(fake.shm_count(), 0, "released with the call");
    assert_eq!(
        c.cost,
        CallCost {
            tee_requests: 2,
            bytes_copied: 0,
            threads_started: 0,
        },
        "SHM_REGISTER and INVOKE, nothing copied, the open's worker reused"
    );
}

#[test]
fn a_scattered_memref_is_bounced_in_and_out() {
    let mem = ram();
    let fake = FakeTee::new();
    let mut tee = backend(&fake);
    let s = open(&mut tee, &mem);
    let data = ramp(0x1100);
    mem.write(0x4000_5f00, &data[..0x100]).unwrap();
    mem.write(0x4000_2000, &data[0x100..]).unwrap();
    let buf = GuestBuffer::new(vec![0x4000_5000, 0x4000_2000], 0xf00, 0x1100).unwrap();
    let mut c = reverse(s, memref(Dir::InOut, buf.clone()));
    assert_eq!(held_kinds(&mut tee, &fake, &mut c, &mem), (0, 1));
    assert_result(&c, teec::SUCCESS, teec::ORIGIN_TRUSTED_APP);
    let mut back = vec![0u8; 0x1100];
    buf.read(&mem, 0, &mut back).unwrap();
    let mut want = data;
    want.reverse();
    assert_eq!(back, want);
    assert_eq!(fake.shm_count(), 0);
    assert_eq!(
        (c.cost.tee_requests, c.cost.bytes_copied),
        (2, 4 * 0x1100),
        "SHM_ALLOC and INVOKE; in: guest to buffer, buffer to shm; out: back"
    );
}

#[test]
fn memory_without_a_host_mapping_is_bounced() {
    let mem = FakeGuestMemory::new(&[(0x1000, 0x1000)]);
    let fake = FakeTee::new();
    let mut tee = backend(&fake);
    let s = open(&mut tee, &mem);
    mem.write(0x1010, b"abc").unwrap();
    let buf = GuestBuffer::new(vec![0x1000], 0x10, 3).unwrap();
    let mut c = reverse(s, memref(Dir::InOut, buf));
    assert_eq!(held_kinds(&mut tee, &fake, &mut c, &mem), (0, 1));
    let mut back = [0u8; 3];
    mem.read(0x1010, &mut back).unwrap();
    assert_eq!(&back, b"cba");
}

/// Releasing a call's bounce buffer or registration is an unregistration
/// in the TEE, which may wait for a free TEE thread: only a worker may
/// make it, never the thread that collects the result (a vCPU, or the TEE
/// service's connection), which may be the one that carries what those
/// threads wait for (a request for the guest's own tee-supplicant).
#[test]
fn a_calls_temporary_memory_is_released_by_its_worker_not_the_collector() {
    let mem = FakeGuestMemory::new(&[(0x1000, 0x1000)]);
    let fake = FakeTee::new();
    let mut tee = backend(&fake);
    let s = open(&mut tee, &mem);
    mem.write(0x1010, b"abc").unwrap();
    let buf = GuestBuffer::new(vec![0x1000], 0x10, 3).unwrap();
    let mut c = reverse(s, memref(Dir::InOut, buf));
    run(&mut tee, 1, &mut c, &mem);
    let mut back = [0u8; 3];
    mem.read(0x1010, &mut back).unwrap();
    assert_eq!(&back, b"cba", "the output still reaches the guest");
    let released = fake.released_on();
    assert!(!released.is_empty(), "the bounce buffer was released");
    assert!(
        released
            .iter()
            .all(|t| t.as_deref() == Some("host-tee-call")),
        "released on {released:?}"
    );
}

#[test]
fn an_output_memref_gets_the_tees_size_and_data_only_when_it_fits() {
    let mem = FakeGuestMemory::new(&[(0x1000, 0x1000)]);
    let fake = FakeTee::new();
    let mut tee = backend(&fake);
    let s = open(&mut tee, &mem);
    mem.write(0x1000, &[0xee; 16]).unwrap();
    let small = GuestBuffer::new(vec![0x1000], 0, 4).unwrap();
    let mut c = invoke(s, fake_cmd::GREETING, vec![memref(Dir::Out, small)]);
    run(&mut tee, 1, &mut c, &mem);
    assert_result(&c, teec::ERROR_SHORT_BUFFER, teec::ORIGIN_TRUSTED_APP);
    assert!(matches!(c.params[0], Param::Memref { size: 8, .. }));
    let mut b = [0u8; 16];
    mem.read(0x1000, &mut b).unwrap();
    assert_eq!(b, [0xee; 16], "nothing written on SHORT_BUFFER");

    let big = GuestBuffer::new(vec![0x1000], 0, 16).unwrap();
    let mut c = invoke(s, fake_cmd::GREETING, vec![memref(Dir::Out, big)]);
    run(&mut tee, 1, &mut c, &mem);
    assert_result(&c, teec::SUCCESS, teec::ORIGIN_TRUSTED_APP);
    assert!(matches!(c.params[0], Param::Memref { size: 8, .. }));
    mem.read(0x1000, &mut b).unwrap();
    assert_eq!(&b[..8], GREETING);
    assert_eq!(b[8..], [0xee; 8], "only the size written");
}

#[test]
fn a_bounced_output_the_tee_filled_reaches_the_guest_though_its_size_says_more() {
    // A truncated datagram: the buffer filled, the size the whole. A
    // registered buffer shows the guest the bytes; a bounced one must too.
    let mem = FakeGuestMemory::new(&[(0x1000, 0x1000)]);
    let fake = FakeTee::new();
    let mut tee = backend(&fake);
    let s = open(&mut tee, &mem);
    mem.write(0x1000, &[0xee; 16]).unwrap();
    let small = GuestBuffer::new(vec![0x1000], 2, 4).unwrap();
    let mut c = invoke(s, fake_cmd::TRUNCATED, vec![memref(Dir::Out, small)]);
    run(&mut tee, 1, &mut c, &mem);
    assert_result(&c, teec::SUCCESS, teec::ORIGIN_TRUSTED_APP);
    assert!(matches!(c.params[0], Param::Memref { size: 8, .. }));
    let mut b = [0u8; 16];
    mem.read(0x1000, &mut b).unwrap();
    assert_eq!(&b[..2], [0xee; 2]);
    assert_eq!(&b[2..6], &GREETING[..4], "the bytes the TEE wrote");
    assert_eq!(b[6..], [0xee; 10], "nothing past the buffer");
}

#[test]
fn a_null_memref_reaches_the_tee_as_memref_null() {
    let mem = ram();
    let fake = FakeTee::new();
    let mut tee = backend(&fake);
    let s = open(&mut tee, &mem);
    let null = Param::Memref {
        dir: Dir::Out,
        mem: None,
        size: 0,
    };
    let mut c = invoke(s, fake_cmd::GREETING, vec![null]);
    run(&mut tee, 1, &mut c, &mem);
    assert_result(&c, teec::ERROR_SHORT_BUFFER, teec::ORIGIN_TRUSTED_APP);
    assert!(matches!(
        c.params[0],
        Param::Memref {
            size: 8,
            mem: None,
            ..
        }
    ));
}

#[test]
fn a_contiguous_registered_buffer_is_registered_with_the_host_until_unregistered() {
    let mem = ram();
    let fake = FakeTee::new();
    let mut tee = backend(&fake);
    let s = open(&mut tee, &mem);
    let buffer = Arc::new(GuestBuffer::new(vec![0x4000_3000, 0x4000_4000], 0, 0x2000).unwrap());
    let mut reg = std_call(
        Command::RegisterShm {
            cookie: 0xc0,
            buffer: buffer.clone(),
        },
        0,
        vec![],
    );
    run(&mut tee, 0, &mut reg, &mem);
    assert_result(&reg, teec::SUCCESS, teec::ORIGIN_TEE);
    assert_eq!(tee.buffer_counts(VM), (1, 1));
    assert_eq!(fake.shm_kinds(), (1, 0));

    mem.write(0x4000_3ffe, &[1, 2, 3, 4]).unwrap();
    let r = MemRef::new(buffer, 0xffe, 4).unwrap();
    let p = Param::Memref {
        dir: Dir::InOut,
        mem: Some(r),
        size: 4,
    };
    let mut c = reverse(s, p);
    assert_eq!(
        held_kinds(&mut tee, &fake, &mut c, &mem),
        (1, 0),
        "the call uses the registration, no other"
    );
    let mut b = [0u8; 4];
    mem.read(0x4000_3ffe, &mut b).unwrap();
    assert_eq!(b, [4, 3, 2, 1]);

    let mut unreg = std_call(Command::UnregisterShm { cookie: 0xc0 }, 0, vec![]);
    run(&mut tee, 0, &mut unreg, &mem);
    assert_result(&unreg, teec::SUCCESS, teec::ORIGIN_TEE);
    assert_eq!(tee.buffer_counts(VM), (0, 0));
    assert_eq!(fake.shm_count(), 0);
}

#[test]
fn a_scattered_registered_buffer_is_kept_for_bouncing_without_an_ioctl() {
    let mem = ram();
    let fake = FakeTee::new();
    let mut tee = backend(&fake);
    let s = open(&mut tee, &mem);
    let buffer = Arc::new(GuestBuffer::new(vec![0x4000_6000, 0x4000_3000], 0, 0x2000).unwrap());
    let mut reg = std_call(
        Command::RegisterShm {
            cookie: 1,
            buffer: buffer.clone(),
        },
        0,
        vec![],
    );
    assert_eq!(tee.start(VM, 0, &mut reg, &mem), Step::Done);
    assert_result(&reg, teec::SUCCESS, teec::ORIGIN_TEE);
    assert_eq!(tee.buffer_counts(VM), (1, 0));
    assert_eq!(fake.shm_count(), 0);

    mem.write(0x4000_6ffe, &[1, 2]).unwrap();
    mem.write(0x4000_3000, &[3, 4]).unwrap();
    let p = Param::Memref {
        dir: Dir::InOut,
        mem: Some(MemRef::new(buffer, 0xffe, 4).unwrap()),
        size: 4,
    };
    let mut c = reverse(s, p);
    assert_eq!(held_kinds(&mut tee, &fake, &mut c, &mem), (0, 1));
    let (mut lo, mut hi) = ([0u8; 2], [0u8; 2]);
    mem.read(0x4000_6ffe, &mut lo).unwrap();
    mem.read(0x4000_3000, &mut hi).unwrap();
    assert_eq!((lo, hi), ([4, 3], [2, 1]));

    let mut unreg = std_call(Command::UnregisterShm { cookie: 1 }, 0, vec![]);
    assert_eq!(tee.start(VM, 0, &mut unreg, &mem), Step::Done);
    assert_eq!(tee.buffer_counts(VM), (0, 0));
}

#[test]
fn a_failed_bounce_allocation_is_out_of_memory_from_comms() {
    let mem = FakeGuestMemory::new(&[(0x1000, 0x1000)]);
    let fake = FakeTee::new();
    let mut tee = backend(&fake);
    let s = open(&mut tee, &mem);
    fake.fail_next("SHM_ALLOC", libc::ENOMEM);
    let buf = GuestBuffer::new(vec![0x1000], 0, 8).unwrap();
    let mut c = reverse(s, memref(Dir::InOut, buf));
    run(&mut tee, 1, &mut c, &mem);
    assert_result(&c, teec::ERROR_OUT_OF_MEMORY, teec::ORIGIN_COMMS);
    assert_eq!(fake.shm_count(), 0);
}

#[test]
fn a_scattered_memref_in_file_backed_ram_is_registered_zero_copy_through_a_window() {
    let mem = file_ram();
    let fake = FakeTee::new();
    let mut tee = backend(&fake);
    let s = open(&mut tee, &mem);
    let data = ramp(0x1100);
    mem.write(0x4000_5f00, &data[..0x100]).unwrap();
    mem.write(0x4000_2000, &data[0x100..]).unwrap();
    let buf = GuestBuffer::new(vec![0x4000_5000, 0x4000_2000], 0xf00, 0x1100).unwrap();
    let mut c = reverse(s, memref(Dir::InOut, buf.clone()));
    assert_eq!(
        held_kinds(&mut tee, &fake, &mut c, &mem),
        (1, 0),
        "registered, not bounced"
    );
    assert_result(&c, teec::SUCCESS, teec::ORIGIN_TRUSTED_APP);
    let mut back = vec![0u8; 0x1100];
    buf.read(&mem, 0, &mut back).unwrap();
    let mut want = data;
    want.reverse();
    assert_eq!(back, want, "the TA worked on the guest's own pages");
    assert_eq!(fake.shm_count(), 0, "released with the call");
    assert_eq!((c.cost.tee_requests, c.cost.bytes_copied), (2, 0));
}

#[test]
fn a_scattered_registered_buffer_in_file_backed_ram_is_registered_once_through_a_window() {
    let mem = file_ram();
    let fake = FakeTee::new();
    let mut tee = backend(&fake);
    let s = open(&mut tee, &mem);
    let buffer = Arc::new(GuestBuffer::new(vec![0x4000_6000, 0x4000_3000], 0, 0x2000).unwrap());
    let mut reg = std_call(
        Command::RegisterShm {
            cookie: 1,
            buffer: buffer.clone(),
        },
        0,
        vec![],
    );
    run(&mut tee, 0, &mut reg, &mem);
    assert_result(&reg, teec::SUCCESS, teec::ORIGIN_TEE);
    assert_eq!(tee.buffer_counts(VM), (1, 1));
    assert_eq!(tee.windowed_buffers(VM), 1);
    assert_eq!(fake.shm_count(), 1);

    for round in 0..2u8 {
        mem.write(0x4000_6ffe, &[1, 2 + round]).unwrap();
        mem.write(0x4000_3000, &[3, 4]).unwrap();
        let p = Param::Memref {
            dir: Dir::InOut,
            mem: Some(MemRef::new(buffer.clone(), 0xffe, 4).unwrap()),
            size: 4,
        };
        let mut c = reverse(s, p);
        assert_eq!(
            held_kinds(&mut tee, &fake, &mut c, &mem),
            (1, 0),
            "the registration made once, nothing bounced"
        );
        let (mut lo, mut hi) = ([0u8; 2], [0u8; 2]);
        mem.read(0x4000_6ffe, &mut lo).unwrap();
        mem.read(0x4000_3000, &mut hi).unwrap();
        assert_eq!((lo, hi), ([4, 3], [2 + round, 1]));
        assert_eq!(
            (c.cost.tee_requests, c.cost.bytes_copied),
            (1, 0),
            "INVOKE only"
        );
    }

    let mut unreg = std_call(Command::UnregisterShm { cookie: 1 }, 0, vec![]);
    run(&mut tee, 0, &mut unreg, &mem);
    assert_eq!(tee.buffer_counts(VM), (0, 0));
    assert_eq!(fake.shm_count(), 0);
}
