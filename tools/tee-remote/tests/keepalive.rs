// SPDX-License-Identifier: Apache-2.0 OR MIT
//! The client's keepalive against a service in this process that says it
//! drops peers silent for 30 ms (and in fact never does): the client pings
//! every 10 ms of silence, and never between a request and its answer,
//! while its guest makes calls with gaps shorter and longer than that.

#[path = "../../optee-mediator/tests/common/mod.rs"]
mod common;
mod support;

use std::io::{Cursor, Read, Write};
use std::os::unix::net::{UnixListener, UnixStream};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use common::*;
use optee_mediator::msg::attr;
use optee_mediator::{ClientId, Mediator, Policy, UserTee, UteeConfig};
use support::*;
use tee_remote::fdpass::FdChannel;
use tee_remote::frame::{self, FrameError};
use tee_remote::policy::{Grant, Peer};
use tee_remote::server::{self, Ended, Service};
use tee_remote::wire::Request;
use tee_remote::{Address, RemoteConfig, RemoteTee};

/// A connection whose every byte read is kept.
struct Recorded {
    s: UnixStream,
    read: Arc<Mutex<Vec<u8>>>,
}

impl Read for Recorded {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = self.s.read(buf)?;
        self.read.lock().unwrap().extend_from_slice(&buf[..n]);
        Ok(n)
    }
}

impl Write for Recorded {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.s.write(buf)
    }

    fn flush(&mut self) -> std::io::Result<()> {
        self.s.flush()
    }
}

impl FdChannel for Recorded {
    fn send_fd(&mut self, fd: std::os::fd::BorrowedFd<'_>) -> std::io::Result<()> {
        self.s.send_fd(fd)
    }

    fn receive_fd(&mut self) -> std::io::Result<std::os::fd::OwnedFd> {
        self.s.receive_fd()
    }
}

#[test]
fn pings_fill_the_silences_and_never_come_between_a_request_and_its_answer() {
    let dir = temp_dir("keepalive");
    let path = dir.join("s.sock");
    let listener = UnixListener::bind(&path).unwrap();
    let service = Service::new(Box::new(UserTee::new(UteeConfig::default())));
    let read = Arc::new(Mutex::new(Vec::new()));
    let rec = read.clone();
    let server = std::thread::spawn(move || {
        let (s, _) = listener.accept().unwrap();
        let mut s = Recorded { s, read: rec };
        let hello = match frame::receive::<_, Request>(&mut s).unwrap() {
            Request::Hello(h) => h,
            other => panic!("{other:?}"),
        };
        server::check_hello(&hello).unwrap();
        let peer = Peer::Unix {
            uid: 0,
            gid: 0,
            pid: 1,
        };
        let idle = Some(Duration::from_millis(30));
        server::serve_greeted(&service, &mut s, &peer, &Grant::default(), &hello, idle)
    });
    let config = RemoteConfig {
        retry: Duration::ZERO,
        ..RemoteConfig::default()
    };
    let tee = RemoteTee::connect(Address::Unix(path.clone()), config).unwrap();
    let mut g = Guest::from_mediator(Mediator::new(ClientId(1), Policy::default(), tee).unwrap());
    let hello = g.open(HELLO);
    for i in 0..150u64 {
        let out = g.invoke(hello, 0, vec![value(attr::VALUE_INOUT, i)]);
        assert_eq!(
            (outcome(&out), out.params[0].a),
            ((0, 4), i + 1),
            "call {i}"
        );
        // Gaps of 0 to 19 ms: some shorter than the ping interval, some
        // longer, so that pings and calls meet.
        std::thread::sleep(Duration::from_millis(i * 7 % 20));
    }
    std::thread::sleep(Duration::from_millis(100));
    assert_eq!(g.m.backend().stats().reconnects, 0);
    assert_eq!(g.m.backend().stats().lost_calls, 0);
    drop(g);
    let ended = server.join().unwrap();
    assert!(matches!(ended, Ended::Closed), "{ended}");
    // What the service read: requests and pings, each whole.
    let bytes = read.lock().unwrap().clone();
    let mut c = Cursor::new(bytes);
    let (mut pings, mut requests) = (0, 0);
    loop {
        match frame::receive::<_, Request>(&mut c) {
            Ok(Request::Ping) => pings += 1,
            Ok(_) => requests += 1,
            Err(FrameError::Closed) => break,
            Err(e) => panic!("after {requests} requests and {pings} pings: {e}"),
        }
    }
    // Hello, VmCreated, the open, 150 invokes, VmDestroyed.
    assert!(requests >= 154, "{requests} requests");
    // About 1.5 s of calls with gaps, and 100 ms of silence at the end.
    assert!(pings >= 10, "{pings} pings");
    std::fs::remove_dir_all(&dir).unwrap();
}
