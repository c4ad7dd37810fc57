// SPDX-License-Identifier: Apache-2.0 OR MIT
//! The relaying supplicant: each request translated for the guest and its
//! answer back, SHM_ALLOC made on both sides and paired, memory the
//! supplicant did not allocate refused before the guest is asked.

use std::sync::atomic::AtomicBool;
use std::thread::{self, JoinHandle};

use optee_mediator::msg::{rpc_cmd, Dir};

use super::*;
use crate::relay::{Answer, Forwarded, FwdOut, FwdParam, Relay};

/// The guest: answers `n` relayed requests with `reply`; returns them.
fn guest(
    relay: &Arc<Relay>,
    n: usize,
    mut reply: impl FnMut(&Forwarded) -> Answer + Send + 'static,
) -> JoinHandle<Vec<Forwarded>> {
    let relay = relay.clone();
    thread::spawn(move || {
        let mut seen = Vec::new();
        let deadline = Instant::now() + Duration::from_secs(30);
        while seen.len() < n && Instant::now() < deadline {
            match relay.take() {
                Some((id, req)) => {
                    relay.answer(id, reply(&req));
                    seen.push(req);
                }
                None => thread::sleep(Duration::from_millis(1)),
            }
        }
        seen
    })
}

struct Fwd {
    chan: FakeChannel,
    fwd: Forwarder<FakeChannel>,
    relay: Arc<Relay>,
}

impl Fwd {
    fn new() -> Fwd {
        let chan = FakeChannel::default();
        let relay = Arc::new(Relay::new());
        Fwd {
            fwd: Forwarder::new(chan.clone(), relay.clone()),
            chan,
            relay,
        }
    }

    /// The kernel makes request `func`; the forwarder relays and answers
    /// it; the kernel's copy of the answer.
    fn serve(&mut self, func: u32, params: &[TeeParam]) -> (u32, Vec<TeeParam>) {
        self.chan.request(func, params);
        let req = receive(self.fwd.channel()).unwrap();
        self.fwd.answer(req, &AtomicBool::new(false)).unwrap();
        self.chan.answers().pop().unwrap()
    }

    /// SHM_ALLOC of `size`, the guest answering with its buffer `cookie`:
    /// the id allocated here.
    fn alloc(&mut self, size: u64, cookie: u64) -> i32 {
        let g = guest(&self.relay, 1, move |_| Answer {
            ret: teec::SUCCESS,
            params: vec![FwdOut::Allocated { cookie }],
        });
        let (ret, p) = self.serve(
            cmd::SHM_ALLOC,
            &[val(VAL_INOUT, cmd::SHM_TYPE_APPL, size, 0)],
        );
        assert_eq!(ret, teec::SUCCESS);
        let asked = g.join().unwrap();
        assert_eq!(
            asked,
            vec![Forwarded {
                func: rpc_cmd::SHM_ALLOC,
                params: vec![FwdParam::Value {
                    dir: Dir::In,
                    a: rpc_cmd::SHM_TYPE_APPL,
                    b: size,
                    c: 0
                }],
            }]
        );
        p[0].c as i32
    }
}

#[test]
fn shm_alloc_is_made_here_and_in_the_guest_and_shm_free_frees_both() {
    let mut f = Fwd::new();
    let id = f.alloc(4096, 0x51);
    assert_eq!((f.fwd.paired(), f.chan.tee.shm_count()), (1, 1));
    let g = guest(&f.relay, 1, |_| Answer::failed(teec::SUCCESS, 1));
    let (ret, _) = f.serve(
        cmd::SHM_FREE,
        &[val(VAL_IN, cmd::SHM_TYPE_APPL, id as u64, 0)],
    );
    assert_eq!(ret, teec::SUCCESS);
    let asked = g.join().unwrap();
    assert_eq!(asked[0].func, rpc_cmd::SHM_FREE);
    assert!(
        matches!(asked[0].params[0], FwdParam::Value { b: 0x51, .. }),
        "the guest frees its own buffer, by its cookie"
    );
    assert_eq!((f.fwd.paired(), f.chan.tee.shm_count()), (0, 0));
}

#[test]
fn a_buffer_the_guest_allocated_but_the_vmm_refused_is_given_back() {
    let mut f = Fwd::new();
    let g = guest(&f.relay, 2, |req| match req.func {
        rpc_cmd::SHM_ALLOC => Answer {
            ret: teec::SUCCESS,
            params: vec![FwdOut::Refused { cookie: 0x66 }],
        },
        _ => Answer::failed(teec::SUCCESS, 1),
    });
    let (ret, _) = f.serve(
        cmd::SHM_ALLOC,
        &[val(VAL_INOUT, cmd::SHM_TYPE_APPL, 4096, 0)],
    );
    assert_eq!(ret, teec::ERROR_OUT_OF_MEMORY);
    let asked = g.join().unwrap();
    assert_eq!(asked[1].func, rpc_cmd::SHM_FREE);
    assert!(matches!(
        asked[1].params[0],
        FwdParam::Value { b: 0x66, .. }
    ));
    assert_eq!((f.fwd.paired(), f.chan.tee.shm_count()), (0, 0));
}

#[test]
fn memory_references_become_the_guests_buffer_and_outputs_come_back() {
    let mut f = Fwd::new();
    let id = f.alloc(8192, 0x51);
    let input = Region {
        id,
        offset: 16,
        len: 4,
    };
    f.fwd.shm_mut().write(&input, b"abcd").unwrap();
    let g = guest(&f.relay, 1, |req| Answer {
        ret: teec::SUCCESS,
        params: vec![
            FwdOut::Value { a: 7, b: 8, c: 9 },
            FwdOut::None,
            FwdOut::Memref {
                size: 3,
                data: b"xyz".to_vec(),
            },
            FwdOut::Memref {
                size: req.params.len() as u64 * 1000,
                data: Vec::new(),
            },
        ],
    });
    let (ret, p) = f.serve(
        cmd::FS,
        &[
            val(VAL_INOUT, 1, 2, 3),
            mem(MEM_IN, id, 16, 4),
            mem(MEM_OUT, id, 4096, 100),
            null_mem(MEM_OUT, 0),
        ],
    );
    assert_eq!(ret, teec::SUCCESS);
    let asked = g.join().unwrap();
    assert_eq!(
        asked[0].params,
        vec![
            FwdParam::Value {
                dir: Dir::InOut,
                a: 1,
                b: 2,
                c: 3
            },
            FwdParam::Memref {
                dir: Dir::In,
                cookie: 0x51,
                offs: 16,
                size: 4,
                data: b"abcd".to_vec()
            },
            FwdParam::Memref {
                dir: Dir::Out,
                cookie: 0x51,
                offs: 4096,
                size: 100,
                data: Vec::new()
            },
            FwdParam::NullMemref {
                dir: Dir::Out,
                size: 0
            },
        ]
    );
    assert_eq!((p[0].a, p[0].b, p[0].c), (7, 8, 9));
    assert_eq!(p[2].b, 3, "the size the guest reported");
    assert_eq!(
        p[3].b, 4000,
        "a NULL reference's size: how much the guest needs"
    );
    let out = Region {
        id,
        offset: 4096,
        len: 3,
    };
    assert_eq!(f.fwd.shm_mut().read(&out).unwrap(), b"xyz");
}

#[test]
fn memory_this_supplicant_did_not_allocate_is_refused_before_the_guest_is_asked() {
    let mut f = Fwd::new();
    let id = f.alloc(4096, 0x51);
    for bad in [mem(MEM_INOUT, id + 1, 0, 1), mem(MEM_INOUT, id, 4000, 97)] {
        let (ret, _) = f.serve(cmd::LOAD_TA, &[bad]);
        assert_eq!(ret, teec::ERROR_BAD_PARAMETERS);
    }
    assert!(!f.relay.has_request(), "nothing was relayed");
}

#[test]
fn a_closed_relay_fails_the_request_with_a_communication_error() {
    let mut f = Fwd::new();
    f.relay.close();
    let (ret, _) = f.serve(cmd::LOAD_TA, &[val(VAL_IN, 1, 2, 3)]);
    assert_eq!(ret, teec::ERROR_COMMUNICATION);
}

#[test]
fn an_allocation_the_kernel_no_longer_waits_for_is_undone_on_both_sides() {
    let f = Fwd::new();
    let kernel = f.chan.clone();
    // The guest answers the allocation after the kernel gave up on the
    // request (its bound passed: SUPPL_SEND then fails), then the free.
    let g = guest(&f.relay, 2, move |req| match req.func {
        rpc_cmd::SHM_ALLOC => {
            kernel.kernel().pending.clear();
            Answer {
                ret: teec::SUCCESS,
                params: vec![FwdOut::Allocated { cookie: 0x77 }],
            }
        }
        _ => Answer::failed(teec::SUCCESS, 1),
    });
    f.chan.request(
        cmd::SHM_ALLOC,
        &[val(VAL_INOUT, cmd::SHM_TYPE_APPL, 4096, 0)],
    );
    let req = receive(f.fwd.channel()).unwrap();
    assert!(f.fwd.answer(req, &AtomicBool::new(false)).is_err());
    let asked = g.join().unwrap();
    assert_eq!(asked.len(), 2, "the guest was asked to free it");
    assert_eq!(asked[1], Forwarded::shm_free(0x77));
    assert_eq!((f.fwd.paired(), f.chan.tee.shm_count()), (0, 0));
}
