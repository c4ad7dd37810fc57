// SPDX-License-Identifier: Apache-2.0 OR MIT
//! Shared guest memory (protocol version 4): a VMM passes its guest RAM's
//! sealed memfd to the service over the socket, and its memory parameters
//! then name guest pages. On the host TEE backend (a fake device), the TEE
//! reverses a buffer scattered over guest pages in place and nothing is
//! copied; a file the service cannot trust is refused and the VM's memory
//! goes by value; a peer that mixes the two, or names pages it did not
//! share, loses its connection.

mod support;

use std::fs::File;
use std::os::fd::{FromRawFd, OwnedFd};
use std::sync::Arc;
use std::time::Duration;

use host_tee::fake::{fake_cmd, FAKE_TA};
use host_tee::FakeTee;
use optee_mediator::backend::{Command, Param, RpcReply, RpcRequest, StdCall, Step};
use optee_mediator::msg::{teec, Dir};
use optee_mediator::shm::{GuestBuffer, MemRef};
use optee_mediator::{Backend, ClientId, GuestRam, Policy, Uuid};
use support::*;
use tee_remote::client::SharedMemory;
use tee_remote::policy::{Grant, PeerLimits};
use tee_remote::server::{Connection, Violation};
use tee_remote::wire::{self, MemRegion, Request, Response};
use tee_remote::{Address, RemoteConfig, RemoteTee};
use vm_memory::{FileOffset, GuestAddress, GuestMemoryMmap};

const VM: ClientId = ClientId(1);
const BASE: u64 = 0x4000_0000;
const SIZE: u64 = 0x10000;

/// A memfd of `SIZE` bytes with `seals`.
fn memfd(seals: i32) -> File {
    // SAFETY: the name is NUL-terminated; the result is checked.
    let fd = unsafe {
        libc::memfd_create(
            c"shared-test".as_ptr(),
            libc::MFD_CLOEXEC | libc::MFD_ALLOW_SEALING,
        )
    };
    assert!(fd >= 0);
    // SAFETY: `fd` is new and ours.
    let f = unsafe { File::from_raw_fd(fd) };
    f.set_len(SIZE).unwrap();
    // SAFETY: F_ADD_SEALS on a descriptor we own.
    assert_eq!(unsafe { libc::fcntl(fd, libc::F_ADD_SEALS, seals) }, 0);
    f
}

/// Guest RAM at `BASE` in a memfd with `seals`, as a VMM has it, and the
/// description a service maps it by.
fn guest_ram(seals: i32) -> (GuestMemoryMmap, SharedMemory) {
    let file = Arc::new(memfd(seals));
    let ram = GuestMemoryMmap::from_ranges_with_files([(
        GuestAddress(BASE),
        SIZE as usize,
        Some(FileOffset::from_arc(file.clone(), 0)),
    )])
    .unwrap();
    let shared = SharedMemory {
        file,
        regions: vec![MemRegion {
            gpa: BASE,
            size: SIZE,
            offset: 0,
        }],
    };
    (ram, shared)
}

/// Runs `c` on `thread` to its end.
fn run(tee: &mut RemoteTee, thread: u32, c: &mut StdCall, mem: &dyn GuestRam) {
    let mut step = tee.start(VM, thread, c, mem);
    for _ in 0..10_000 {
        match step {
            Step::Done => return,
            Step::Rpc(RpcRequest::ForeignIntr) => {
                std::thread::sleep(Duration::from_micros(200));
                step = tee.resume(VM, thread, c, RpcReply::ForeignIntr, mem);
            }
            other => panic!("unexpected {other:?}"),
        }
    }
    panic!("the call never ended");
}

/// A VMM on `path`, sharing `shared` if given, with its VM and a session
/// of the fake TA.
fn vmm(
    path: &std::path::Path,
    shared: Option<SharedMemory>,
    mem: &dyn GuestRam,
) -> (RemoteTee, u32) {
    let config = RemoteConfig {
        retry: Duration::ZERO,
        ..RemoteConfig::default()
    };
    let mut tee = RemoteTee::connect(Address::Unix(path.to_path_buf()), config).unwrap();
    if let Some(s) = shared {
        tee.share_memory(VM, s).unwrap();
    }
    tee.vm_created(VM).unwrap();
    let open = Command::OpenSession {
        ta: Uuid(FAKE_TA),
        client: Uuid([7; 16]),
        login: 0,
    };
    let mut o = std_call(open, 0, vec![]);
    run(&mut tee, 0, &mut o, mem);
    assert_eq!(o.ret, teec::SUCCESS);
    (tee, o.session)
}

/// 200 bytes over two guest pages, the second before the first: the
/// buffer, and what it holds.
fn scattered(mem: &GuestMemoryMmap) -> (Arc<GuestBuffer>, Vec<u8>) {
    let data: Vec<u8> = (0..200u8).collect();
    let pages = vec![BASE + 0x3000, BASE + 0x1000];
    mem.write(BASE + 0x3f80, &data[..128]).unwrap();
    mem.write(BASE + 0x1000, &data[128..]).unwrap();
    (Arc::new(GuestBuffer::new(pages, 0xf80, 200).unwrap()), data)
}

fn read_scattered(mem: &GuestMemoryMmap) -> Vec<u8> {
    let mut b = vec![0; 200];
    mem.read(BASE + 0x3f80, &mut b[..128]).unwrap();
    mem.read(BASE + 0x1000, &mut b[128..]).unwrap();
    b
}

fn reverse(session: u32, buffer: Arc<GuestBuffer>) -> StdCall {
    let m = MemRef::new(buffer, 0, 200).unwrap();
    std_call(
        Command::Invoke {
            func: fake_cmd::REVERSE,
        },
        session,
        vec![Param::Memref {
            dir: Dir::InOut,
            mem: Some(m),
            size: 200,
        }],
    )
}

#[test]
fn a_shared_vms_buffer_is_reversed_in_its_own_pages_and_nothing_is_copied() {
    let dir = temp_dir("shared");
    let fake = FakeTee::new();
    let svc = TestService::start(dir.join("s"), fake_service(&fake), Policy::default());

    // By value (no sharing): the bytes go and come back in frames.
    let (mem, _) = guest_ram(libc::F_SEAL_SHRINK);
    let (mut tee, session) = vmm(&svc.path, None, &mem);
    let (buffer, data) = scattered(&mem);
    let mut c = reverse(session, buffer);
    run(&mut tee, 1, &mut c, &mem);
    assert_eq!(c.ret, teec::SUCCESS);
    let mut want = data.clone();
    want.reverse();
    assert_eq!(read_scattered(&mem), want);
    assert!(c.cost.bytes_copied >= 400, "{} bytes", c.cost.bytes_copied);

    // Shared: the same, by reference.
    let (mem, shared) = guest_ram(libc::F_SEAL_SHRINK);
    let (mut tee, session) = vmm(&svc.path, Some(shared), &mem);
    let (buffer, data) = scattered(&mem);
    let mut c = reverse(session, buffer.clone());
    run(&mut tee, 1, &mut c, &mem);
    assert_eq!(c.ret, teec::SUCCESS);
    let mut want = data.clone();
    want.reverse();
    assert_eq!(read_scattered(&mem), want);
    assert_eq!(c.cost.bytes_copied, 0);

    // A buffer registered once, used by reference.
    let mut r = std_call(
        Command::RegisterShm {
            cookie: 0x77,
            buffer: buffer.clone(),
        },
        0,
        vec![],
    );
    run(&mut tee, 1, &mut r, &mem);
    assert_eq!(r.ret, teec::SUCCESS);
    // Registered with the host's driver from the service's mapping of the
    // guest's pages, not copied into driver memory.
    assert_eq!(fake.shm_kinds(), (1, 0));
    let mut c = reverse(session, buffer);
    run(&mut tee, 1, &mut c, &mem);
    assert_eq!((c.ret, c.cost.bytes_copied), (teec::SUCCESS, 0));
    assert_eq!(read_scattered(&mem), data, "reversed twice");
    let mut u = std_call(Command::UnregisterShm { cookie: 0x77 }, 0, vec![]);
    run(&mut tee, 1, &mut u, &mem);
    assert_eq!(u.ret, teec::SUCCESS);
    tee.vm_destroyed(VM);
    assert_eq!(fake.shm_count(), 0, "the registration is gone with the VM");
}

#[test]
fn a_file_the_service_cannot_trust_is_refused_and_the_vm_goes_by_value() {
    let dir = temp_dir("shared-refused");
    let fake = FakeTee::new();
    let svc = TestService::start(dir.join("s"), fake_service(&fake), Policy::default());
    // Not sealed against shrinking: the VMM could make the service fault.
    let (mem, shared) = guest_ram(libc::F_SEAL_GROW);
    let (mut tee, session) = vmm(&svc.path, Some(shared), &mem);
    let (buffer, data) = scattered(&mem);
    let mut c = reverse(session, buffer);
    run(&mut tee, 1, &mut c, &mem);
    let mut want = data;
    want.reverse();
    assert_eq!((c.ret, read_scattered(&mem)), (teec::SUCCESS, want));
    assert!(c.cost.bytes_copied > 0, "by value");

    // A policy that does not let the peer share: the same.
    let dir = temp_dir("shared-policy");
    let grant = Grant {
        limits: PeerLimits {
            share_memory: false,
            ..PeerLimits::default()
        },
        ..Grant::default()
    };
    let svc = TestService::granting(dir.join("s"), fake_service(&fake), grant);
    let (mem, shared) = guest_ram(libc::F_SEAL_SHRINK);
    let (mut tee, session) = vmm(&svc.path, Some(shared), &mem);
    let (buffer, _) = scattered(&mem);
    let mut c = reverse(session, buffer);
    run(&mut tee, 1, &mut c, &mem);
    assert_eq!(c.ret, teec::SUCCESS);
    assert!(c.cost.bytes_copied > 0, "by value");
}

/// A connection of a peer on a fake TEE with VM 1.
fn connection() -> Connection {
    let fake = FakeTee::new();
    let mut c = Connection::new(
        fake_service(&fake),
        Policy::default(),
        "test peer".to_owned(),
    );
    assert_eq!(
        c.handle(Request::VmCreated { client: 1 }).unwrap(),
        Response::Created(Ok(()))
    );
    c
}

fn region() -> Vec<MemRegion> {
    vec![MemRegion {
        gpa: BASE,
        size: SIZE,
        offset: 0,
    }]
}

fn sealed() -> OwnedFd {
    memfd(libc::F_SEAL_SHRINK).into()
}

fn register(buffer: wire::PageList) -> Request {
    Request::Start {
        client: 1,
        thread: 0,
        call: wire::Call {
            command: wire::Command::RegisterShared { cookie: 1, buffer },
            session: 0,
            cancel_id: 0,
            params: vec![],
        },
    }
}

/// A registration of a page by value (a buffer's shape).
fn register_by_value() -> Request {
    Request::Start {
        client: 1,
        thread: 0,
        call: wire::Call {
            command: wire::Command::RegisterShm {
                cookie: 1,
                buffer: wire::Buffer {
                    page_offset: 0,
                    size: 0x1000,
                },
            },
            session: 0,
            cancel_id: 0,
            params: vec![],
        },
    }
}

fn pages(pages: Vec<u64>) -> wire::PageList {
    wire::PageList {
        page_offset: 0,
        size: pages.len() as u64 * 0x1000,
        pages,
    }
}

#[test]
fn a_peer_that_names_pages_it_did_not_share_or_mixes_value_and_reference_is_dropped() {
    // Pages outside what was shared.
    let mut c = connection();
    assert_eq!(
        c.share_memory(1, region(), sealed()).unwrap(),
        Response::Shared(Ok(()))
    );
    let e = c.handle(register(pages(vec![BASE + SIZE]))).unwrap_err();
    assert!(
        e.to_string().contains("is not a page of the shared memory"),
        "{e}"
    );

    // A buffer by value from a VM that shares.
    let mut c = connection();
    c.share_memory(1, region(), sealed()).unwrap();
    let by_value = register_by_value();
    assert_eq!(
        c.handle(by_value).unwrap_err(),
        Violation::NotShared("memory by value from a VM that shares its memory")
    );

    // By reference from a VM that does not share.
    let mut c = connection();
    assert_eq!(
        c.handle(register(pages(vec![BASE]))).unwrap_err(),
        Violation::NotShared("a shared memory reference from a VM that shares no memory")
    );

    // The request without its file (only the socket's reader has it).
    let e = c
        .handle(Request::ShareMemory {
            client: 1,
            regions: region(),
        })
        .unwrap_err();
    assert!(matches!(e, Violation::NoFile(_)), "{e}");
    // A VM that is not the peer's.
    assert_eq!(
        c.share_memory(9, region(), sealed()).unwrap_err(),
        Violation::UnknownVm(9)
    );
}

#[test]
fn memory_is_shared_once_before_the_first_call_and_only_as_the_policy_lets() {
    let mut c = connection();
    // After a registration (a call): refused.
    assert!(matches!(
        c.handle(register_by_value()).unwrap(),
        Response::Step(_)
    ));
    let r = c.share_memory(1, region(), sealed()).unwrap();
    assert_eq!(
        r,
        Response::Shared(Err("memory is shared before the VM's first call".to_owned()))
    );

    // Twice.
    let mut c = connection();
    c.share_memory(1, region(), sealed()).unwrap();
    let r = c.share_memory(1, region(), sealed()).unwrap();
    assert_eq!(
        r,
        Response::Shared(Err("the VM's memory is shared already".to_owned()))
    );

    // Regions past the file's end.
    let mut c = connection();
    let big = vec![MemRegion {
        gpa: BASE,
        size: 2 * SIZE,
        offset: 0,
    }];
    let Response::Shared(Err(why)) = c.share_memory(1, big, sealed()).unwrap() else {
        panic!("mapped past the file's end");
    };
    assert!(why.contains("the regions need"), "{why}");

    // A VM that made a call, even one long finished: refused.
    let mut c = connection();
    let r = c
        .handle(Request::Start {
            client: 1,
            thread: 0,
            call: wire::Call {
                command: wire::Command::Invoke { func: 0 },
                session: 77,
                cancel_id: 0,
                params: vec![],
            },
        })
        .unwrap();
    assert!(matches!(r, Response::Step(_)), "{r:?}");
    let r = c.share_memory(1, region(), sealed()).unwrap();
    assert_eq!(
        r,
        Response::Shared(Err("memory is shared before the VM's first call".to_owned()))
    );

    // All the peer's VMs together share at most max_shared_bytes.
    let fake = FakeTee::new();
    let limits = PeerLimits {
        max_shared_bytes: SIZE + SIZE / 2,
        ..PeerLimits::default()
    };
    let mut c = Connection::with_limits(
        fake_service(&fake),
        Policy::default(),
        limits,
        "p".to_owned(),
    );
    c.handle(Request::VmCreated { client: 1 }).unwrap();
    c.handle(Request::VmCreated { client: 2 }).unwrap();
    assert_eq!(
        c.share_memory(1, region(), sealed()).unwrap(),
        Response::Shared(Ok(()))
    );
    let Response::Shared(Err(why)) = c.share_memory(2, region(), sealed()).unwrap() else {
        panic!("shared past max_shared_bytes");
    };
    assert!(why.contains("left of its max_shared_bytes"), "{why}");
    // Given back with the VM.
    c.handle(Request::VmDestroyed { client: 1 }).unwrap();
    assert_eq!(
        c.share_memory(2, region(), sealed()).unwrap(),
        Response::Shared(Ok(()))
    );

    // A policy that says no.
    let fake = FakeTee::new();
    let limits = PeerLimits {
        share_memory: false,
        ..PeerLimits::default()
    };
    let mut c = Connection::with_limits(
        fake_service(&fake),
        Policy::default(),
        limits,
        "p".to_owned(),
    );
    c.handle(Request::VmCreated { client: 1 }).unwrap();
    let Response::Shared(Err(why)) = c.share_memory(1, region(), sealed()).unwrap() else {
        panic!("shared against the policy");
    };
    assert!(why.contains("(share_memory)"), "{why}");
}
