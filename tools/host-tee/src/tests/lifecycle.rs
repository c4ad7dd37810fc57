// SPDX-License-Identifier: Apache-2.0 OR MIT
//! VM creation and teardown, abandoned calls.

use std::sync::Mutex;

use optee_mediator::backend::{Backend, BackendError, Command, RpcRequest, Step};
use optee_mediator::msg::Dir;

use super::*;
use crate::fake::fake_cmd;
use crate::HostTeeError;

#[test]
fn teardown_leaves_the_device_with_no_session_and_no_shared_memory() {
    let mem = ram();
    let fake = FakeTee::new();
    let mut tee = backend(&fake);
    let s = open(&mut tee, &mem);
    open(&mut tee, &mem);
    let buffer = Arc::new(GuestBuffer::new(vec![0x4000_3000], 0, 0x1000).unwrap());
    let mut reg = std_call(Command::RegisterShm { cookie: 5, buffer }, 0, vec![]);
    run(&mut tee, 0, &mut reg, &mem);
    // A call in the TEE holding a temporary registration.
    fake.close_gate();
    let temp = GuestBuffer::new(vec![0x4000_8000], 0, 0x10).unwrap();
    let mut c = invoke(s, fake_cmd::REVERSE, vec![memref(Dir::InOut, temp)]);
    c.cancel_id = 3;
    assert_eq!(
        tee.start(VM, 1, &mut c, &mem),
        Step::Rpc(RpcRequest::ForeignIntr)
    );
    fake.wait_held(1);
    assert_eq!((fake.session_count(), fake.shm_count()), (2, 2));

    tee.abandon(VM, 1);
    tee.vm_destroyed(VM);
    assert_eq!(
        fake.cancel_calls(),
        vec![(s, 3)],
        "the call in the TEE was cancelled"
    );
    assert_eq!((fake.session_count(), fake.shm_count()), (0, 0));
    assert!(!tee.has_client(VM));
}

#[test]
fn dropping_the_backend_tears_its_vms_down() {
    let mem = ram();
    let fake = FakeTee::new();
    let mut tee = backend(&fake);
    open(&mut tee, &mem);
    drop(tee);
    assert_eq!(fake.session_count(), 0);
}

#[test]
fn an_abandoned_open_session_closes_the_session_it_opened() {
    let mem = ram();
    let fake = FakeTee::new();
    let mut tee = backend(&fake);
    // The result arrives after the call was abandoned.
    fake.close_gate();
    let mut c = std_call(open_command(), 0, vec![]);
    assert_eq!(
        tee.start(VM, 0, &mut c, &mem),
        Step::Rpc(RpcRequest::ForeignIntr)
    );
    fake.wait_held(1);
    tee.abandon(VM, 0);
    fake.open_gate();
    // The result is there before the call is abandoned.
    let mut c = std_call(open_command(), 0, vec![]);
    tee.start(VM, 0, &mut c, &mem);
    while fake.logins().len() < 2 || fake.session_count() == 0 {
        std::thread::sleep(Duration::from_micros(200));
    }
    tee.abandon(VM, 0);
    tee.vm_destroyed(VM);
    assert_eq!(fake.logins().len(), 2, "both opens reached the TEE");
    assert_eq!(fake.session_count(), 0);
}

#[test]
fn each_vm_gets_its_own_device_context() {
    let mem = ram();
    let contexts: Arc<Mutex<Vec<FakeTee>>> = Arc::default();
    let ctx = contexts.clone();
    // SAFETY: `mem` is declared before the backend and outlives it.
    let mut tee = unsafe {
        HostTee::new(HostTeeConfig::default(), move || {
            let f = FakeTee::new();
            ctx.lock().unwrap().push(f.clone());
            Ok(f)
        })
    };
    tee.vm_created(VM).unwrap();
    tee.vm_created(ClientId(2)).unwrap();
    assert!(matches!(
        tee.vm_created(VM),
        Err(BackendError::ClientExists(ClientId(1)))
    ));
    open(&mut tee, &mem);
    let counts: Vec<usize> = contexts
        .lock()
        .unwrap()
        .iter()
        .map(FakeTee::session_count)
        .collect();
    assert_eq!(counts, vec![1, 0]);
    tee.vm_destroyed(VM);
    assert_eq!(tee.session_count(ClientId(2)), 0);
    assert!(tee.has_client(ClientId(2)));
}

#[test]
fn a_vm_whose_device_cannot_be_opened_is_refused_with_the_devices_message() {
    // SAFETY: no guest memory is ever given to this backend.
    let mut tee = unsafe {
        HostTee::<FakeTee>::new(HostTeeConfig::default(), || {
            Err(HostTeeError::open(
                "/dev/tee0",
                std::io::Error::from_raw_os_error(libc::ENOENT),
            ))
        })
    };
    let e = tee.vm_created(VM).unwrap_err();
    assert_eq!(
        e.to_string(),
        "TEE refused client: /dev/tee0: no such TEE device (is the host's OP-TEE driver loaded?)"
    );
    assert!(!tee.has_client(VM));
}

#[test]
fn an_abandoned_register_shm_leaves_no_registration() {
    let mem = ram();
    let fake = FakeTee::new();
    let mut tee = backend(&fake);
    let buffer = Arc::new(GuestBuffer::new(vec![0x4000_3000], 0, 0x1000).unwrap());
    let mut reg = std_call(Command::RegisterShm { cookie: 9, buffer }, 0, vec![]);
    assert_eq!(
        tee.start(VM, 0, &mut reg, &mem),
        Step::Rpc(RpcRequest::ForeignIntr)
    );
    tee.abandon(VM, 0);
    assert_eq!(tee.buffer_counts(VM), (0, 0));
    tee.vm_destroyed(VM);
    assert_eq!(fake.shm_count(), 0);
}
