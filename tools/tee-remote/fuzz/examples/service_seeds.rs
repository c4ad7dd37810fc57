// SPDX-License-Identifier: Apache-2.0 OR MIT
//! Writes the seed inputs of the `service` target into
//! `corpus/service/seed-*`: valid request sequences, played against a real
//! `Connection` as they are made (so that session ids are the TEE's and
//! each RPC gets the answer a VMM would give). Run once by hand, from the
//! fuzz directory:
//!
//! ```text
//! cargo run --example service_seeds
//! ```

#[path = "../fuzz_targets/common.rs"]
mod common;

use std::path::Path;
use std::sync::Arc;

use optee_mediator::msg::{rpc_cmd, teec};
use optee_mediator::utee::ta::{hello, memory, HELLO_UUID, MEMORY_UUID};
use optee_mediator::{Policy, UserTee, UteeConfig, Uuid};
use tee_remote::frame;
use tee_remote::server::{Connection, Service};
use tee_remote::wire::{
    Buffer, Call, Command, Dir, Outcome, Param, Reply, Request, Response, RpcOut, RpcRequest, Span,
    SpanBuffer, Step, StepAnswer,
};

/// A VMM's side of one seed: the requests sent, and the connection that
/// answers them.
struct Seed {
    service: Arc<Service>,
    conn: Option<Connection>,
    input: Vec<u8>,
    next_cookie: u64,
}

impl Seed {
    fn new() -> Seed {
        let service = Service::new(Box::new(UserTee::new(UteeConfig::default())));
        let conn = Connection::new(service.clone(), Policy::default(), "seeds".into());
        Seed {
            service,
            conn: Some(conn),
            input: Vec::new(),
            next_cookie: 0x10_0000,
        }
    }

    fn send(&mut self, req: Request) -> Response {
        let bytes = frame::encode(&req).expect("encode");
        common::push(&mut self.input, &bytes[4..]).expect("a frame under 64 KiB");
        let conn = self.conn.as_mut().expect("connection");
        conn.handle(req).expect("a valid request")
    }

    /// Starts a call and answers its RPCs until it is done.
    fn call(&mut self, client: u16, thread: u32, call: Call) -> Outcome {
        let mut resp = self.send(Request::Start {
            client,
            thread,
            call,
        });
        loop {
            let Response::Step(StepAnswer { step, .. }) = resp else {
                panic!("not a step: {resp:?}");
            };
            let req = match step {
                Step::Done(o) => return o,
                Step::Rpc(r) => r,
            };
            let reply = self.rpc_reply(req);
            resp = self.send(Request::Resume {
                client,
                thread,
                reply,
            });
        }
    }

    /// What a VMM answers to an RPC.
    fn rpc_reply(&mut self, req: RpcRequest) -> Reply {
        match req {
            RpcRequest::Alloc { .. } => {
                self.next_cookie += 1;
                Reply::Alloc(Some(self.next_cookie))
            }
            RpcRequest::Free { .. } => Reply::Free,
            RpcRequest::ForeignIntr => Reply::ForeignIntr,
            // The userspace TEE relays nothing; answered as a VMM whose
            // guest runs no tee-supplicant would be.
            RpcRequest::Supplicant { id, .. } => Reply::Supplicant {
                id,
                ret: teec::ERROR_COMMUNICATION,
                params: Vec::new(),
            },
            RpcRequest::Cmd { arg, .. } => {
                let params = match arg.cmd {
                    rpc_cmd::SHM_ALLOC => {
                        let size = arg.params.first().map_or(0, |p| p[2]);
                        self.next_cookie += 1;
                        vec![RpcOut::Memref {
                            cookie: self.next_cookie,
                            size,
                            mem: Some(Span {
                                buffer: SpanBuffer::Temporary(Buffer {
                                    page_offset: 0,
                                    size,
                                }),
                                offset: 0,
                                data: vec![0; size as usize],
                            }),
                        }]
                    }
                    rpc_cmd::GET_TIME => vec![RpcOut::Value {
                        a: 1_764_460_800,
                        b: 500_000_000,
                        c: 0,
                    }],
                    _ => arg.params.iter().map(|_| RpcOut::None).collect(),
                };
                Reply::Cmd {
                    delivered: true,
                    ret: 0,
                    params,
                }
            }
        }
    }

    /// Opens a session with `ta`: its id.
    fn open(&mut self, client: u16, ta: Uuid) -> u32 {
        let o = self.call(
            client,
            0,
            Call {
                command: Command::OpenSession {
                    ta: ta.0,
                    client: [0; 16],
                    login: 0,
                },
                session: 0,
                cancel_id: 0,
                params: Vec::new(),
            },
        );
        assert_eq!(o.ret, 0, "open {ta}");
        o.session
    }

    fn invoke(&mut self, client: u16, session: u32, func: u32, params: Vec<Param>) -> u32 {
        self.call(
            client,
            0,
            Call {
                command: Command::Invoke { func },
                session,
                cancel_id: 0,
                params,
            },
        )
        .ret
    }

    fn close(&mut self, client: u16, session: u32) {
        let o = self.call(
            client,
            0,
            Call {
                command: Command::CloseSession,
                session,
                cancel_id: 0,
                params: Vec::new(),
            },
        );
        assert_eq!(o.ret, 0);
    }

    fn created(&mut self, client: u16) {
        let r = self.send(Request::VmCreated { client });
        assert_eq!(r, Response::Created(Ok(())));
    }

    /// Writes the seed; the connection is dropped without destroying the
    /// VMs left, as a VMM that dies would.
    fn write(mut self, dir: &Path, name: &str) {
        drop(self.conn.take());
        assert_eq!(self.service.vm_count(), 0);
        std::fs::write(dir.join(format!("seed-{name}")), &self.input).expect("write");
        println!("seed-{name}: {} bytes", self.input.len());
    }
}

fn value(dir: Dir, a: u64) -> Param {
    Param::Value { dir, a, b: 0, c: 0 }
}

fn main() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("corpus/service");
    std::fs::create_dir_all(&dir).expect("corpus directory");

    // The hello TA: open, increment a value, decrement it, close, destroy.
    let mut s = Seed::new();
    s.created(1);
    let sess = s.open(1, HELLO_UUID);
    assert_eq!(
        s.invoke(1, sess, hello::CMD_INC_VALUE, vec![value(Dir::InOut, 41)]),
        0
    );
    assert_eq!(
        s.invoke(1, sess, hello::CMD_DEC_VALUE, vec![value(Dir::InOut, 7)]),
        0
    );
    s.close(1, sess);
    assert_eq!(s.send(Request::VmDestroyed { client: 1 }), Response::Ack);
    s.write(&dir, "hello");

    // The memory TA on temporary memory: a span at an odd offset of its
    // buffer, reversed in place; a copy into a buffer too short.
    let mut s = Seed::new();
    s.created(3);
    let sess = s.open(3, MEMORY_UUID);
    let temp = |page_offset, size, offset, data: Vec<u8>| {
        Some(Span {
            buffer: SpanBuffer::Temporary(Buffer { page_offset, size }),
            offset,
            data,
        })
    };
    let data: Vec<u8> = (0..64).collect();
    let ret = s.invoke(
        3,
        sess,
        memory::CMD_REVERSE,
        vec![
            Param::Memref {
                dir: Dir::InOut,
                mem: temp(0xff0, 96, 16, data.clone()),
                size: 64,
            },
            value(Dir::Out, 0),
        ],
    );
    assert_eq!(ret, 0);
    let ret = s.invoke(
        3,
        sess,
        memory::CMD_COPY_REVERSED,
        vec![
            Param::Memref {
                dir: Dir::In,
                mem: temp(0, 64, 0, data),
                size: 64,
            },
            Param::Memref {
                dir: Dir::Out,
                mem: temp(8, 16, 0, vec![0; 16]),
                size: 16,
            },
            value(Dir::Out, 0),
        ],
    );
    assert_ne!(ret, 0);
    s.write(&dir, "temporary");

    // A registered buffer over two pages, used by two parameters' spans,
    // then unregistered.
    let mut s = Seed::new();
    s.created(2);
    let sess = s.open(2, MEMORY_UUID);
    let cookie = 0xc0de_0000;
    let o = s.call(
        2,
        1,
        Call {
            command: Command::RegisterShm {
                cookie,
                buffer: Buffer {
                    page_offset: 0x800,
                    size: 0x1000,
                },
            },
            session: 0,
            cancel_id: 0,
            params: Vec::new(),
        },
    );
    assert_eq!(o.ret, 0);
    let reg = |offset, data: Vec<u8>| {
        Some(Span {
            buffer: SpanBuffer::Registered { cookie },
            offset,
            data,
        })
    };
    let ret = s.invoke(
        2,
        sess,
        memory::CMD_COPY_REVERSED,
        vec![
            Param::Memref {
                dir: Dir::In,
                mem: reg(0x7f0, (0..32).collect()),
                size: 32,
            },
            Param::Memref {
                dir: Dir::Out,
                mem: reg(0x900, vec![0; 32]),
                size: 32,
            },
            value(Dir::Out, 0),
        ],
    );
    assert_eq!(ret, 0);
    let o = s.call(
        2,
        0,
        Call {
            command: Command::UnregisterShm { cookie },
            session: 0,
            cancel_id: 0,
            params: Vec::new(),
        },
    );
    assert_eq!(o.ret, 0);
    s.write(&dir, "registered");

    // RPCs: an argument buffer allocated, kernel memory from the guest
    // (SHM_ALLOC / SHM_FREE), the time, foreign interrupts; the RPC
    // argument cache; a call left parked and abandoned, another left
    // parked for the teardown; two VMs, one id taken twice.
    let mut s = Seed::new();
    s.created(1);
    s.created(2);
    assert!(matches!(
        s.send(Request::VmCreated { client: 1 }),
        Response::Created(Err(_))
    ));
    // Version 3: the userspace TEE has no supplicant requests to relay.
    assert!(matches!(
        s.send(Request::VmCreatedRelaying { client: 3 }),
        Response::Created(Err(_))
    ));
    assert!(matches!(
        s.send(Request::EnableShmCache { client: 1 }),
        Response::ShmCache(_)
    ));
    // Version 4: a call wait (the userspace TEE's calls return at once).
    assert_eq!(
        s.send(Request::CallWait { micros: 1000 }),
        Response::CallWaitSet { micros: 1000 }
    );
    let sess = s.open(1, MEMORY_UUID);
    assert_eq!(
        s.invoke(
            1,
            sess,
            memory::CMD_FILL_RPC_SHM,
            vec![value(Dir::InOut, 100)]
        ),
        0
    );
    assert_eq!(
        s.invoke(1, sess, memory::CMD_GET_TIME, vec![value(Dir::Out, 0)]),
        0
    );
    assert_eq!(
        s.invoke(1, sess, memory::CMD_SLOW, vec![value(Dir::InOut, 2)]),
        0
    );
    let park = |s: &mut Seed, client, thread| {
        let r = s.send(Request::Start {
            client,
            thread,
            call: Call {
                command: Command::Invoke {
                    func: memory::CMD_SLOW,
                },
                session: sess,
                cancel_id: 0,
                params: vec![value(Dir::InOut, 3)],
            },
        });
        assert!(matches!(
            r,
            Response::Step(StepAnswer {
                step: Step::Rpc(_),
                ..
            })
        ));
    };
    park(&mut s, 1, 2);
    assert_eq!(
        s.send(Request::Abandon {
            client: 1,
            thread: 2
        }),
        Response::Ack
    );
    assert!(matches!(
        s.send(Request::DisableShmCache { client: 1 }),
        Response::Disabled(_)
    ));
    let sess2 = s.open(2, HELLO_UUID);
    assert_eq!(
        s.invoke(2, sess2, hello::CMD_INC_VALUE, vec![value(Dir::InOut, 1)]),
        0
    );
    park(&mut s, 1, 5);
    s.write(&dir, "rpc");
}
