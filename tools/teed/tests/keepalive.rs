// SPDX-License-Identifier: Apache-2.0 OR MIT
//! tosfwd-teed's idle timeout drops only dead or hung peers: a VMM whose
//! guest holds a session open and makes no call pings (a third of the idle
//! timeout after its last request) and keeps its VMs; a peer that sends
//! nothing is dropped as before; a ping counts against nothing. Against
//! the real binary on its Unix socket, `--idle-timeout 1` (each test a few
//! seconds).

mod support;

use std::time::{Duration, Instant};

use optee_mediator::msg::{attr, teec};
use support::common::*;
use support::*;
use tee_remote::wire::{self, Hello, Request, Response, MAGIC};

/// Three idle timeouts and a bit.
const IDLE_3X: Duration = Duration::from_millis(3300);

/// Opens a session of the hello TA on `client`: the call's outcome.
fn open_hello(s: &mut std::os::unix::net::UnixStream, client: u16) -> wire::Outcome {
    done(ask(
        s,
        Request::Start {
            client,
            thread: 0,
            call: open(HELLO),
        },
    ))
}

#[test]
fn a_vmm_idle_for_three_idle_timeouts_keeps_its_vm_and_session() {
    let (dir, sock) = scratch("keepalive-vmm");
    let teed = Teed::start(&sock, &["--idle-timeout", "1", "-v"]);
    let mut g = guest_on(&sock);
    let hello = g.open(HELLO);
    let out = g.invoke(hello, 0, vec![value(attr::VALUE_INOUT, 6)]);
    assert_eq!((outcome(&out), out.params[0].a), ((0, 4), 7));
    // The guest holds its session and calls nothing for three idle
    // timeouts.
    std::thread::sleep(IDLE_3X);
    let out = g.invoke(hello, 0, vec![value(attr::VALUE_INOUT, 41)]);
    assert_eq!(
        (outcome(&out), out.params[0].a),
        ((0, 4), 42),
        "the session held across {IDLE_3X:?} of silence: {:?}",
        teed.log.lock().unwrap()
    );
    assert!(!teed.logged("idle too long"), "the VMM was dropped");
    assert!(!teed.logged(") gone"), "the VM was torn down");
    drop(g);
    // Its VM goes when the VMM does, at once.
    teed.wait_for(") gone: ");
    drop(teed);
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn a_vmm_idle_across_a_service_restart_is_served_at_its_next_call() {
    let (dir, sock) = scratch("keepalive-restart");
    let teed = Teed::start(&sock, &["--idle-timeout", "1"]);
    let mut g = guest_on(&sock);
    let old = g.open(HELLO);
    teed.kill9();
    let teed = Teed::start(&sock, &["--idle-timeout", "1"]);
    // Longer than a ping interval (333 ms): a ping finds the old
    // connection dead while the guest calls nothing.
    std::thread::sleep(Duration::from_millis(700));
    let hello = g.open(HELLO);
    let out = g.invoke(hello, 0, vec![value(attr::VALUE_INOUT, 1)]);
    assert_eq!((outcome(&out), out.params[0].a), ((0, 4), 2));
    // The old session went with the old service, as it answers.
    let out = g.invoke(old, 0, vec![value(attr::VALUE_INOUT, 1)]);
    assert_eq!(outcome(&out), (teec::ERROR_BAD_PARAMETERS, 3));
    let stats = g.m.backend().stats();
    assert_eq!((stats.reconnects, stats.lost_calls), (1, 0));
    drop(g);
    drop(teed);
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn pings_keep_a_peer_and_count_against_nothing() {
    let (dir, sock) = scratch("keepalive-raw");
    let policy = write_policy(
        &dir,
        format!(
            "[[peer]]\nuid = {}\nmax_vms = 1\nmax_sessions = 1\nmax_calls = 1\n",
            my_uid()
        ),
    );
    let teed = Teed::start(
        &sock,
        &[
            "--idle-timeout",
            "1",
            "-v",
            "--policy",
            policy.to_str().unwrap(),
        ],
    );
    let mut s = connect(&sock);
    let w = ask(&mut s, Request::Hello(Hello::new("pinger")));
    let Response::Welcome(w) = w else {
        panic!("{w:?}");
    };
    assert_eq!(
        (w.version, w.idle_timeout_ms),
        (wire::PROTOCOL_VERSION, Some(1000))
    );
    // Many pings, in a burst: each answered, none a call, a VM or a
    // session.
    for _ in 0..500 {
        assert_eq!(ask(&mut s, Request::Ping), Response::Pong);
    }
    assert_eq!(
        ask(&mut s, Request::VmCreated { client: 5 }),
        Response::Created(Ok(()))
    );
    assert_eq!(open_hello(&mut s, 5).ret, teec::SUCCESS);
    // Nothing but a ping every 300 ms for three idle timeouts: kept.
    let end = Instant::now() + IDLE_3X;
    while Instant::now() < end {
        std::thread::sleep(Duration::from_millis(300));
        assert_eq!(ask(&mut s, Request::Ping), Response::Pong);
    }
    assert!(!teed.logged("idle too long"), "a pinging peer was dropped");
    assert!(!teed.logged(") gone"), "its VM was torn down");
    // The rule's quotas are as they were: the one session is there (a
    // second is refused), and once closed, one opens again.
    assert_ne!(open_hello(&mut s, 5).ret, teec::SUCCESS);
    assert_eq!(
        ask(&mut s, Request::VmCreated { client: 6 }),
        Response::Created(Err(wire::CreateError::Refused(
            "this peer may have 1 VMs (max_vms of its policy rule)".to_owned()
        )))
    );
    // Silent now: dropped as any peer that sends nothing.
    s.set_read_timeout(Some(Duration::from_millis(100)))
        .unwrap();
    let start = Instant::now();
    assert!(
        closed_by(&mut s, start + Duration::from_secs(5)),
        "a silent peer was still connected after 5 s"
    );
    teed.wait_for("dropped: idle too long");
    teed.wait_for("VM 5 (TEE client 1) gone: 1 sessions");
    drop(teed);
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn a_version_1_peer_is_welcomed_as_before_and_dropped_when_silent() {
    let (dir, sock) = scratch("keepalive-v1");
    let teed = Teed::start(&sock, &["--idle-timeout", "1", "-v"]);
    let old = |version| {
        Request::Hello(Hello {
            magic: MAGIC,
            version,
            name: "old vmm".to_owned(),
        })
    };
    let mut s = connect(&sock);
    let r = ask(&mut s, old(1));
    assert!(
        matches!(r, Response::Hello { version: 1, .. }),
        "a version 1 welcome: {r:?}"
    );
    assert_eq!(
        ask(&mut s, Request::VmCreated { client: 2 }),
        Response::Created(Ok(()))
    );
    s.set_read_timeout(Some(Duration::from_millis(100)))
        .unwrap();
    let start = Instant::now();
    assert!(closed_by(&mut s, start + Duration::from_secs(5)));
    let after = start.elapsed();
    assert!(
        after >= Duration::from_millis(900) && after < Duration::from_secs(3),
        "dropped after {after:?}"
    );
    teed.wait_for("VM 2 (TEE client 1) gone");
    // A version from the future is refused, saying which are spoken.
    let mut s = connect(&sock);
    let future = tee_remote::wire::PROTOCOL_VERSION + 1;
    let r = ask(&mut s, old(future));
    assert_eq!(
        r,
        Response::Refused {
            reason: format!(
                "protocol version {future} is not spoken here (this service speaks 1 to {})",
                future - 1
            )
        }
    );
    drop(teed);
    std::fs::remove_dir_all(&dir).unwrap();
}
