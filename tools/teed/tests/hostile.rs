// SPDX-License-Identifier: Apache-2.0 OR MIT
//! tosfwd-teed against peers on the same host that mean it harm, on its
//! Unix socket and on loopback TCP (127.0.0.1 only): peers that never
//! finish their greeting, refused peers that trickle bytes, hundreds of
//! unauthenticated connections, and authenticated peers that try to turn
//! a quota per VM into one per VM times 64. Each test is bounded in count
//! and time (the longest, the greeting's deadline, about 10 s).

mod support;

use std::io::Write;
use std::net::TcpStream;
use std::os::unix::net::UnixStream;
use std::path::Path;
use std::time::{Duration, Instant};

use optee_mediator::msg::{attr, rpc_cmd, teec};
use optee_mediator::utee::ta::memory;
use support::common::*;
use support::*;
use tee_remote::frame;
use tee_remote::wire::{self, Hello, Request, Response};

#[test]
fn four_refused_peers_trickling_bytes_cannot_keep_an_authorized_vmm_out() {
    let (dir, sock) = scratch("trickle-refused");
    // This user on the Unix socket; TCP peers named by no rule: refused.
    let policy = write_policy(&dir, format!("[[peer]]\nuid = {}\n", my_uid()));
    let (port, tcp) = loopback_listen();
    let teed = Teed::start(
        &sock,
        &[
            "--listen",
            &tcp,
            "--policy",
            policy.to_str().unwrap(),
            "--max-connections",
            "4",
        ],
    );
    // Four refused peers, each a byte of a greeting every 300 ms.
    let peers: Vec<TcpStream> = (0..4)
        .map(|_| TcpStream::connect(("127.0.0.1", port)).unwrap())
        .collect();
    let hello = frame::encode(&Request::Hello(Hello::new("trickler"))).unwrap();
    let trickle = std::thread::spawn(move || {
        let mut peers = peers;
        for b in hello.iter().take(10) {
            for p in &mut peers {
                let _ = p.write_all(&[*b]);
            }
            std::thread::sleep(Duration::from_millis(300));
        }
        peers
    });
    std::thread::sleep(Duration::from_millis(500));
    // The authorized VMM gets in, and its guest's calls go through.
    let tee = remote(&sock).expect("an authorized VMM is served while refused peers trickle");
    let mut g = remote_guest(tee);
    let hello = g.open(HELLO);
    let out = g.invoke(hello, 0, vec![value(attr::VALUE_INOUT, 6)]);
    assert_eq!((outcome(&out), out.params[0].a), ((0, 4), 7));
    drop(g);
    drop(trickle.join().unwrap());
    drop(teed);
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn a_greeting_trickled_a_byte_at_a_time_is_cut_at_its_deadline() {
    let (dir, sock) = scratch("trickle-deadline");
    let teed = Teed::start(&sock, &[]);
    let mut s = UnixStream::connect(&sock).unwrap();
    s.set_read_timeout(Some(Duration::from_millis(100)))
        .unwrap();
    let start = Instant::now();
    // A greeting that announces 200 bytes and sends one every 2 s: each
    // read is well within any per-read timeout, the whole never ends.
    s.write_all(&200u32.to_le_bytes()).unwrap();
    let mut cut = None;
    for _ in 0..8 {
        if closed_by(&mut s, Instant::now() + Duration::from_secs(2)) {
            cut = Some(start.elapsed());
            break;
        }
        if s.write_all(&[0]).is_err() {
            cut = Some(start.elapsed());
            break;
        }
    }
    let cut = cut.expect("the trickling greeting was still open after 16 s");
    // The default deadline is 10 s for the whole greeting.
    assert!(
        cut >= Duration::from_secs(9) && cut <= Duration::from_secs(12),
        "cut after {cut:?}"
    );
    drop(teed);
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn hundreds_of_unauthenticated_connections_take_no_thread_and_little_memory() {
    let (dir, sock) = scratch("unauthenticated");
    let (port, tcp) = loopback_listen();
    let teed = Teed::start(&sock, &["--listen", &tcp]);
    let (threads0, rss0) = (teed.threads(), teed.rss_kib());
    // 150 on the Unix socket, 150 on TCP: each starts a greeting (the
    // length of the largest frame there is) and sends no more.
    let big = wire::MAX_FRAME.to_le_bytes();
    let mut unix = Vec::new();
    let mut tcps = Vec::new();
    for _ in 0..150 {
        let mut u = UnixStream::connect(&sock).unwrap();
        let _ = u.write_all(&big[..3]);
        unix.push(u);
        let mut t = TcpStream::connect(("127.0.0.1", port)).unwrap();
        let _ = t.write_all(&big[..3]);
        tcps.push(t);
    }
    std::thread::sleep(Duration::from_millis(500));
    let (threads, rss) = (teed.threads(), teed.rss_kib());
    eprintln!(
        "unauthenticated: 300 connections: tosfwd-teed {threads0} -> {threads} threads, \
         {rss0} -> {rss} KiB"
    );
    assert!(
        threads <= threads0,
        "unauthenticated connections took threads: {threads0} -> {threads}"
    );
    assert!(
        rss <= rss0 + 4096,
        "unauthenticated connections took memory: {rss0} -> {rss} KiB"
    );
    // A greeting frame over the greeting's own small limit is refused at
    // once: nobody may make the service wait for (or hold) 8 MiB before
    // it knows them.
    drop(unix);
    drop(tcps);
    let mut s = UnixStream::connect(&sock).unwrap();
    s.set_read_timeout(Some(Duration::from_millis(100)))
        .unwrap();
    s.write_all(&big).unwrap();
    assert!(
        closed_by(&mut s, Instant::now() + Duration::from_secs(2)),
        "a greeting of {} bytes was not refused at once",
        wire::MAX_FRAME
    );
    // And the service still serves.
    drop(greeted(&sock));
    drop(teed);
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn max_sessions_1_cannot_become_64_through_64_vms() {
    let (dir, sock) = scratch("sessions-per-peer");
    let policy = write_policy(
        &dir,
        format!("[[peer]]\nuid = {}\nmax_sessions = 1\n", my_uid()),
    );
    let teed = Teed::start(&sock, &["--policy", policy.to_str().unwrap()]);
    let mut s = greeted(&sock);
    let mut opened = 0;
    for client in 0..64 {
        let r = ask(&mut s, Request::VmCreated { client });
        assert_eq!(r, Response::Created(Ok(())), "VM {client}");
        let o = done(ask(
            &mut s,
            Request::Start {
                client,
                thread: 0,
                call: open(HELLO),
            },
        ));
        if o.ret == teec::SUCCESS {
            opened += 1;
        }
    }
    assert_eq!(opened, 1, "sessions the peer got with max_sessions = 1");
    drop(s);
    drop(teed);
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn the_vms_of_a_peer_are_bounded_by_its_rule() {
    let (dir, sock) = scratch("vms-per-peer");
    let policy = write_policy(&dir, format!("[[peer]]\nuid = {}\nmax_vms = 3\n", my_uid()));
    let teed = Teed::start(&sock, &["--policy", policy.to_str().unwrap()]);
    let mut s = greeted(&sock);
    for client in 0..3 {
        assert_eq!(
            ask(&mut s, Request::VmCreated { client }),
            Response::Created(Ok(()))
        );
    }
    let r = ask(&mut s, Request::VmCreated { client: 3 });
    let Response::Created(Err(wire::CreateError::Refused(why))) = r else {
        panic!("a fourth VM: {r:?}");
    };
    assert!(why.contains("3 VMs"), "{why}");
    drop(s);
    drop(teed);
    std::fs::remove_dir_all(&dir).unwrap();
}

/// Bytes each VM's parked call tries to hold.
const PARKED_BYTES: usize = 4 << 20;

/// Starts CMD_FILL_RPC_SHM of [`PARKED_BYTES`] on `client` (with a
/// session of the memory TA) and answers its RPCs until it parks in
/// SHM_FREE holding the RPC buffer's bytes; false if it was refused.
fn park_a_big_call(s: &mut UnixStream, client: u16, session: u32) -> bool {
    let fill = call(
        wire::Command::Invoke {
            func: memory::CMD_FILL_RPC_SHM,
        },
        session,
        vec![wire::Param::Value {
            dir: wire::Dir::InOut,
            a: PARKED_BYTES as u64,
            b: 0,
            c: 0,
        }],
    );
    let mut r = ask(
        s,
        Request::Start {
            client,
            thread: 0,
            call: fill,
        },
    );
    loop {
        let step = match r {
            Response::Step(wire::StepAnswer { step, .. }) => step,
            other => panic!("{other:?}"),
        };
        let reply = match step {
            wire::Step::Done(o) => {
                assert_ne!(o.ret, teec::SUCCESS, "the call finished: {o:?}");
                return false;
            }
            wire::Step::Rpc(wire::RpcRequest::Alloc { .. }) => wire::Reply::Alloc(Some(0x1000)),
            wire::Step::Rpc(wire::RpcRequest::Cmd { arg, .. }) if arg.cmd == rpc_cmd::SHM_ALLOC => {
                wire::Reply::Cmd {
                    delivered: true,
                    ret: teec::SUCCESS,
                    params: vec![wire::RpcOut::Memref {
                        cookie: 0x2000,
                        size: PARKED_BYTES as u64,
                        mem: Some(wire::Span {
                            buffer: wire::SpanBuffer::Temporary(wire::Buffer {
                                page_offset: 0,
                                size: PARKED_BYTES as u64,
                            }),
                            offset: 0,
                            data: vec![0x5a; PARKED_BYTES],
                        }),
                    }],
                }
            }
            // Parked in SHM_FREE with the buffer's bytes: left there.
            wire::Step::Rpc(wire::RpcRequest::Cmd { arg, .. }) if arg.cmd == rpc_cmd::SHM_FREE => {
                return true
            }
            other => panic!("unexpected RPC {other:?}"),
        };
        r = ask(
            s,
            Request::Resume {
                client,
                thread: 0,
                reply,
            },
        );
    }
}

#[test]
fn max_calls_1_cannot_hold_hundreds_of_mib() {
    let (dir, sock) = scratch("bytes-per-peer");
    // Buffers of up to 4 MiB and one call at a time.
    let policy = write_policy(
        &dir,
        format!(
            "[[peer]]\nuid = {}\nmax_calls = 1\nmax_pages_per_buffer = 1025\n",
            my_uid()
        ),
    );
    let teed = Teed::start(&sock, &["--policy", policy.to_str().unwrap()]);
    let mut s = greeted(&sock);
    // 64 VMs, a session each (one call at a time: none parked yet).
    let sessions: Vec<u32> = (0..64)
        .map(|client| {
            assert_eq!(
                ask(&mut s, Request::VmCreated { client }),
                Response::Created(Ok(()))
            );
            let o = done(ask(
                &mut s,
                Request::Start {
                    client,
                    thread: 0,
                    call: open(MEMORY),
                },
            ));
            assert_eq!(o.ret, teec::SUCCESS);
            o.session
        })
        .collect();
    let rss0 = teed.rss_kib();
    let mut parked = 0;
    for (client, session) in (0..).zip(sessions) {
        if park_a_big_call(&mut s, client, session) {
            parked += 1;
        }
        let rss = teed.rss_kib();
        assert!(
            rss <= rss0 + (32 << 10),
            "VM {client}: {parked} parked calls of 4 MiB under max_calls = 1; \
             tosfwd-teed's memory {rss0} -> {rss} KiB"
        );
    }
    assert_eq!(parked, 1, "parked calls under max_calls = 1");
    drop(s);
    drop(teed);
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn an_idle_authenticated_peer_is_dropped_and_its_vms_torn_down() {
    let (dir, sock) = scratch("idle");
    let teed = Teed::start(&sock, &["--idle-timeout", "1", "-v"]);
    let mut s = greeted(&sock);
    assert_eq!(
        ask(&mut s, Request::VmCreated { client: 5 }),
        Response::Created(Ok(()))
    );
    assert_eq!(
        done(ask(
            &mut s,
            Request::Start {
                client: 5,
                thread: 0,
                call: open(HELLO),
            },
        ))
        .ret,
        teec::SUCCESS
    );
    let start = Instant::now();
    s.set_read_timeout(Some(Duration::from_millis(100)))
        .unwrap();
    assert!(
        closed_by(&mut s, start + Duration::from_secs(5)),
        "an idle peer was still connected after 5 s"
    );
    let after = start.elapsed();
    assert!(
        after >= Duration::from_millis(900) && after < Duration::from_secs(3),
        "dropped after {after:?}"
    );
    let gone = teed.wait_for("VM 5 (TEE client 1) gone");
    assert!(gone.ends_with("gone: 1 sessions, 0 registered buffers, 0 calls in progress"));
    teed.wait_for("dropped: idle too long");
    drop(teed);
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn a_policy_that_admits_nobody_is_reported_at_start() {
    let (dir, sock) = scratch("nobody");
    let policy = write_policy(&dir, "# nobody\n");
    let teed = Teed::start(&sock, &["--policy", policy.to_str().unwrap()]);
    let w = teed.wait_for("nobody can connect");
    assert!(w.starts_with("tosfwd-teed: warning: "), "{w}");
    drop(teed);
    // Rules for TCP peers only, and only a Unix socket.
    std::fs::write(&policy, "[[peer]]\ntcp = \"127.0.0.1\"\n").unwrap();
    let teed = Teed::start(&sock, &["--policy", policy.to_str().unwrap()]);
    teed.wait_for("listens on Unix sockets only and the policy's rules name TCP peers only");
    drop(teed);
    std::fs::remove_dir_all(&dir).unwrap();
}

/// Greets the service on `sock` from a child process running as uid and
/// gid [`OTHER`]: 0 if welcome, 1 if refused, 2 if it could not connect.
fn another_user_greets(sock: &Path) -> i32 {
    // Everything the child needs, made before fork: after it, only
    // system calls.
    let hello = frame::encode(&Request::Hello(Hello::new("another user"))).unwrap();
    let addr = unix_addr(sock);
    // SAFETY: the child makes system calls only (no allocation, no lock)
    // on memory made before the fork, and leaves with _exit.
    let pid = unsafe { libc::fork() };
    assert!(pid >= 0, "fork: {}", std::io::Error::last_os_error());
    if pid == 0 {
        // SAFETY: as above; every pointer is to a live local of the size
        // passed.
        unsafe {
            if libc::setgid(OTHER) != 0 || libc::setuid(OTHER) != 0 {
                libc::_exit(3);
            }
            let fd = libc::socket(libc::AF_UNIX, libc::SOCK_STREAM, 0);
            let len = std::mem::size_of::<libc::sockaddr_un>() as libc::socklen_t;
            if fd < 0 || libc::connect(fd, (&addr as *const libc::sockaddr_un).cast(), len) != 0 {
                libc::_exit(2);
            }
            if libc::write(fd, hello.as_ptr().cast(), hello.len()) != hello.len() as isize {
                libc::_exit(2);
            }
            // The answer's length, then its variant: 8 is Welcome.
            let mut answer = [0u8; 5];
            let mut got = 0;
            while got < answer.len() {
                let n = libc::read(fd, answer[got..].as_mut_ptr().cast(), answer.len() - got);
                if n <= 0 {
                    libc::_exit(2);
                }
                got += n as usize;
            }
            libc::_exit(if answer[4] == 8 { 0 } else { 1 });
        }
    }
    let mut status = 0;
    // SAFETY: `status` is a live int; `pid` our child.
    assert_eq!(unsafe { libc::waitpid(pid, &mut status, 0) }, pid);
    assert!(libc::WIFEXITED(status), "{status:#x}");
    libc::WEXITSTATUS(status)
}

#[test]
fn the_socket_mode_and_group_options_let_another_users_vmm_in() {
    use std::os::unix::fs::MetadataExt;
    let (dir, sock) = scratch("socket-access");
    // The README's example: a rule for another user's VMM.
    let policy = write_policy(&dir, format!("[[peer]]\nuid = {OTHER}\n"));
    let p = policy.to_str().unwrap();
    // By default only the service's user may connect.
    let teed = Teed::start(&sock, &["--policy", p]);
    let m = std::fs::metadata(&sock).unwrap();
    assert_eq!(m.mode() & 0o777, 0o600);
    let root = is_root();
    if root {
        assert_eq!(
            another_user_greets(&sock),
            2,
            "connected through a 0600 socket"
        );
    }
    drop(teed);
    let group = OTHER.to_string();
    let teed = Teed::start(
        &sock,
        &[
            "--policy",
            p,
            "--socket-mode",
            "0660",
            "--socket-group",
            &group,
        ],
    );
    let m = std::fs::metadata(&sock).unwrap();
    assert_eq!((m.mode() & 0o777, m.gid()), (0o660, OTHER));
    if root {
        assert_eq!(
            another_user_greets(&sock),
            0,
            "the other user's VMM is welcome"
        );
    } else {
        eprintln!("not root: another user's connection not tried (the socket's mode and group were checked)");
    }
    drop(teed);
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn a_peer_beyond_max_connections_is_told_why_and_a_slot_comes_back_when_a_peer_goes() {
    let (dir, sock) = scratch("slots");
    let teed = Teed::start(&sock, &["--max-connections", "2"]);
    let first = greeted(&sock);
    let _second = greeted(&sock);
    let e = remote(&sock).unwrap_err();
    assert!(
        e.to_string()
            .contains("the service has 2 connections already"),
        "{e}"
    );
    drop(first);
    // The slot is given back when the peer's thread ends.
    let end = Instant::now() + Duration::from_secs(5);
    loop {
        match remote(&sock) {
            Ok(_) => break,
            Err(e) => assert!(Instant::now() < end, "no slot came back: {e}"),
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    drop(teed);
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn eighty_refused_peers_holding_their_greetings_cannot_keep_an_authorized_vmm_out() {
    let (dir, sock) = scratch("refused-flood");
    let policy = write_policy(&dir, format!("[[peer]]\nuid = {}\n", my_uid()));
    let (port, tcp) = loopback_listen();
    let teed = Teed::start(
        &sock,
        &["--listen", &tcp, "--policy", policy.to_str().unwrap()],
    );
    // More refused peers than the greeting stage has places (32) and the
    // service slots (64), each with half a greeting sent: they hold at
    // most a quarter of the stage's places, and no slot.
    let peers: Vec<TcpStream> = (0..80)
        .map(|_| {
            let mut p = TcpStream::connect(("127.0.0.1", port)).unwrap();
            let _ = p.write_all(&[20, 0]);
            p
        })
        .collect();
    std::thread::sleep(Duration::from_millis(300));
    // Accepted peers still find room, one after another.
    for _ in 0..24 {
        drop(greeted(&sock));
    }
    let tee = remote(&sock).expect("an authorized VMM is served while refused peers wait");
    drop(tee);
    teed.wait_for("refused peers are waiting for their greeting already: closed");
    drop(peers);
    drop(teed);
    std::fs::remove_dir_all(&dir).unwrap();
}
