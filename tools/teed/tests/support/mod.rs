// SPDX-License-Identifier: Apache-2.0 OR MIT
//! The tosfwd-teed binary run by a test: started on a Unix socket (and
//! whatever else the test asks), its standard error collected, its threads
//! and memory read from /proc, killed when dropped; and what its tests
//! share to meet it: a guest on a client, raw requests, a peer's greeting.

#![allow(dead_code)]

#[path = "../../../optee-mediator/tests/common/mod.rs"]
pub mod common;

use std::io::{BufRead, BufReader, Read, Write};
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::Guest;
use optee_mediator::{ClientId, Mediator, Policy};
use tee_remote::frame;
use tee_remote::wire::{self, Hello, Request, Response};
use tee_remote::{Address, RemoteConfig, RemoteError, RemoteTee};

/// The user and group another local user's VMM runs as.
pub const OTHER: u32 = 65534;

/// A fresh directory for a test's sockets and files.
pub fn temp_dir(name: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("teed-test-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    d
}

/// A fresh directory for a test and the path of the service's socket in
/// it.
pub fn scratch(name: &str) -> (PathBuf, PathBuf) {
    let dir = temp_dir(name);
    let sock = dir.join("teed.sock");
    (dir, sock)
}

/// Writes `text` to `dir`/policy.toml; its path.
pub fn write_policy(dir: &Path, text: impl AsRef<[u8]>) -> PathBuf {
    let policy = dir.join("policy.toml");
    std::fs::write(&policy, text).unwrap();
    policy
}

/// This process's user id.
pub fn my_uid() -> u32 {
    // SAFETY: getuid has no preconditions.
    unsafe { libc::getuid() }
}

/// Whether this process runs as root (and so can play another user).
pub fn is_root() -> bool {
    // SAFETY: geteuid has no preconditions.
    unsafe { libc::geteuid() == 0 }
}

/// The address of the Unix socket `sock`, made before a fork (the child
/// may only make system calls).
pub fn unix_addr(sock: &Path) -> libc::sockaddr_un {
    use std::os::unix::ffi::OsStrExt;
    let path = sock.as_os_str().as_bytes();
    // SAFETY: sockaddr_un is plain data; zeroed is a valid value.
    let mut addr: libc::sockaddr_un = unsafe { std::mem::zeroed() };
    addr.sun_family = libc::AF_UNIX as libc::sa_family_t;
    assert!(path.len() < addr.sun_path.len());
    for (d, s) in addr.sun_path.iter_mut().zip(path) {
        *d = *s as libc::c_char;
    }
    addr
}

/// A client's configuration that does not retry: each failure is seen.
pub fn config() -> RemoteConfig {
    RemoteConfig {
        retry: Duration::ZERO,
        ..RemoteConfig::default()
    }
}

/// A client of the service on `sock`, with [`config`].
pub fn remote(sock: &Path) -> Result<RemoteTee, RemoteError> {
    RemoteTee::connect(Address::Unix(sock.to_path_buf()), config())
}

/// A guest (TEE client 1, the default policy) whose calls go to `tee`.
pub fn remote_guest(tee: RemoteTee) -> Guest<RemoteTee> {
    Guest::from_mediator(Mediator::new(ClientId(1), Policy::default(), tee).unwrap())
}

/// A guest whose calls go to the service on `sock`.
pub fn guest_on(sock: &Path) -> Guest<RemoteTee> {
    remote_guest(remote(sock).unwrap())
}

/// One request and its answer.
pub fn ask<S: Read + Write>(s: &mut S, req: Request) -> Response {
    frame::send(s, &req).unwrap();
    frame::receive(s).unwrap()
}

/// A raw connection on `sock`, not greeted, with a 10 s read timeout.
pub fn connect(sock: &Path) -> UnixStream {
    let s = UnixStream::connect(sock).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    s
}

/// A raw connection on `sock`, greeted and welcome.
pub fn greeted(sock: &Path) -> UnixStream {
    let mut s = connect(sock);
    let r = ask(&mut s, Request::Hello(Hello::new("hostile test")));
    assert!(matches!(r, Response::Welcome(_)), "{r:?}");
    s
}

/// A call of `command` on `session`.
pub fn call(command: wire::Command, session: u32, params: Vec<wire::Param>) -> wire::Call {
    wire::Call {
        command,
        session,
        cancel_id: 0,
        params,
    }
}

/// A call opening a session of `ta`.
pub fn open(ta: optee_mediator::Uuid) -> wire::Call {
    call(
        wire::Command::OpenSession {
            ta: ta.0,
            client: [0; 16],
            login: 0,
        },
        0,
        Vec::new(),
    )
}

/// A finished call's outcome; panics on a parked one.
pub fn done(r: Response) -> wire::Outcome {
    match r {
        Response::Step(wire::StepAnswer {
            step: wire::Step::Done(o),
            ..
        }) => o,
        other => panic!("not finished: {other:?}"),
    }
}

/// Whether the service closed `s` by `until` (EOF or a reset); `s` has a
/// short read timeout (the caller's).
pub fn closed_by<S: Read>(s: &mut S, until: Instant) -> bool {
    let mut b = [0u8; 64];
    while Instant::now() < until {
        match s.read(&mut b) {
            Ok(0) => return true,
            Ok(_) => {}
            Err(e)
                if matches!(
                    e.kind(),
                    std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                ) => {}
            Err(_) => return true,
        }
    }
    false
}

/// A running tosfwd-teed and the lines of its standard error.
pub struct Teed {
    pub child: Child,
    pub log: Arc<Mutex<Vec<String>>>,
}

impl Teed {
    /// Starts the service on `sock` with `extra` options; returns once it
    /// listens.
    pub fn start(sock: &Path, extra: &[&str]) -> Teed {
        let t = Teed::spawn(sock, extra);
        t.wait_for("tosfwd-teed: listening on");
        t
    }

    /// Starts the service without waiting for it: this build's, or the
    /// binary TOSFWD_TEED_BIN names (to attack another build with the
    /// same tests).
    pub fn spawn(sock: &Path, extra: &[&str]) -> Teed {
        Teed::spawn_with(sock, extra, |_| {})
    }

    /// [`Teed::spawn`], `prepare` applied to the command first.
    pub fn spawn_with(sock: &Path, extra: &[&str], prepare: impl FnOnce(&mut Command)) -> Teed {
        let bin = std::env::var_os("TOSFWD_TEED_BIN")
            .unwrap_or_else(|| env!("CARGO_BIN_EXE_tosfwd-teed").into());
        let mut cmd = Command::new(bin);
        cmd.arg("--listen")
            .arg(format!("unix:{}", sock.display()))
            .args(extra)
            .stderr(Stdio::piped());
        prepare(&mut cmd);
        let mut child = cmd.spawn().unwrap();
        let log = Arc::new(Mutex::new(Vec::new()));
        let (l, err) = (log.clone(), child.stderr.take().unwrap());
        std::thread::spawn(move || {
            for line in BufReader::new(err).lines().map_while(Result::ok) {
                l.lock().unwrap().push(line);
            }
        });
        Teed { child, log }
    }

    /// Waits (10 s at most) for a log line containing `text`.
    pub fn wait_for(&self, text: &str) -> String {
        let end = Instant::now() + Duration::from_secs(10);
        loop {
            if let Some(l) = self.log.lock().unwrap().iter().find(|l| l.contains(text)) {
                return l.clone();
            }
            assert!(
                Instant::now() < end,
                "no '{text}' from tosfwd-teed: {:?}",
                self.log.lock().unwrap()
            );
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    /// Whether a log line so far contains `text`.
    pub fn logged(&self, text: &str) -> bool {
        self.log.lock().unwrap().iter().any(|l| l.contains(text))
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// A field of /proc/PID/status, as a number (kB for memory).
    fn status(&self, field: &str) -> u64 {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.pid())).unwrap();
        status
            .lines()
            .find_map(|l| l.strip_prefix(field))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
            .unwrap()
    }

    /// Its resident memory, in KiB.
    pub fn rss_kib(&self) -> u64 {
        self.status("VmRSS:")
    }

    /// Its threads.
    pub fn threads(&self) -> u64 {
        self.status("Threads:")
    }

    pub fn kill9(mut self) {
        self.child.kill().unwrap();
        self.child.wait().unwrap();
    }
}

impl Drop for Teed {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A free TCP port on the loopback.
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// A free TCP port on the loopback and the --listen value for it.
pub fn loopback_listen() -> (u16, String) {
    let port = free_port();
    (port, format!("tcp:127.0.0.1:{port}"))
}
