// SPDX-License-Identifier: Apache-2.0 OR MIT
//! tosfwd-teed's greeting stage against one accepted source that opens
//! every place it has and never greets: another user on the Unix socket
//! (a child process as uid 65534), or 127.0.0.1 on TCP. It holds at most
//! half of the places, and other accepted peers still get in. Against
//! the real binary, `--max-unauthenticated 8` (each test well under the
//! greeting's 10 s deadline).

mod support;

use std::io::Write;
use std::net::TcpStream;
use std::os::unix::net::UnixStream;
use std::path::Path;
use std::time::{Duration, Instant};

use support::*;
use tee_remote::frame::{self, FrameError};
use tee_remote::wire::{Hello, Request, Response};

/// The places of the greeting stage in these tests.
const PLACES: usize = 8;

/// Greets the service on `sock` as this user: its answer, or why none.
fn greets(sock: &Path) -> Result<Response, FrameError> {
    let mut s = UnixStream::connect(sock).map_err(FrameError::from)?;
    s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    frame::send(&mut s, &Request::Hello(Hello::new("a VMM")))?;
    frame::receive(&mut s)
}

/// A child process as uid and gid [`OTHER`] holding `n` connections to
/// `sock`, each with two bytes of a greeting sent and no more; killed
/// when dropped (and gone by itself after 30 s).
struct OtherUser(libc::pid_t);

impl OtherUser {
    /// Starts it; returns once it has made its connections (the count it
    /// made).
    fn hold(sock: &Path, n: usize) -> (OtherUser, u8) {
        // Everything the child needs, made before fork: after it, only
        // system calls.
        let addr = unix_addr(sock);
        let mut pipe = [0; 2];
        // SAFETY: `pipe` is a live array of two ints.
        assert_eq!(unsafe { libc::pipe(pipe.as_mut_ptr()) }, 0);
        let half = [20u8, 0];
        // SAFETY: the child makes system calls only (no allocation, no
        // lock) on memory made before the fork, and leaves with _exit or
        // a signal.
        let pid = unsafe { libc::fork() };
        assert!(pid >= 0, "fork: {}", std::io::Error::last_os_error());
        if pid == 0 {
            // SAFETY: as above; every pointer is to a live local of the
            // size passed.
            unsafe {
                libc::alarm(30);
                if libc::setgid(OTHER) != 0 || libc::setuid(OTHER) != 0 {
                    libc::_exit(3);
                }
                let mut made = 0u8;
                let len = std::mem::size_of::<libc::sockaddr_un>() as libc::socklen_t;
                for _ in 0..n {
                    let fd = libc::socket(libc::AF_UNIX, libc::SOCK_STREAM, 0);
                    if fd < 0
                        || libc::connect(fd, (&addr as *const libc::sockaddr_un).cast(), len) != 0
                    {
                        break;
                    }
                    libc::write(fd, half.as_ptr().cast(), half.len());
                    made += 1;
                }
                libc::write(pipe[1], (&made as *const u8).cast(), 1);
                loop {
                    libc::pause();
                }
            }
        }
        let mut made = 0u8;
        // SAFETY: `made` is a live byte; the pipe's ends are ours.
        unsafe {
            libc::close(pipe[1]);
            assert_eq!(libc::read(pipe[0], (&mut made as *mut u8).cast(), 1), 1);
            libc::close(pipe[0]);
        }
        (OtherUser(pid), made)
    }
}

impl Drop for OtherUser {
    fn drop(&mut self) {
        let mut status = 0;
        // SAFETY: our child; `status` a live int.
        unsafe {
            libc::kill(self.0, libc::SIGKILL);
            libc::waitpid(self.0, &mut status, 0);
        }
    }
}

#[test]
fn another_user_holding_every_place_cannot_keep_this_users_vmm_out() {
    if !is_root() {
        eprintln!("not root: another user cannot be played; not tried");
        return;
    }
    let dir = temp_dir("per-user");
    // The other user must reach the socket: the directory open to all.
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o755)).unwrap();
    let sock = dir.join("teed.sock");
    let policy = write_policy(
        &dir,
        format!("[[peer]]\nuid = {}\n\n[[peer]]\nuid = {OTHER}\n", my_uid()),
    );
    let group = OTHER.to_string();
    let places = PLACES.to_string();
    let teed = Teed::start(
        &sock,
        &[
            "--policy",
            policy.to_str().unwrap(),
            "--socket-mode",
            "0660",
            "--socket-group",
            &group,
            "--max-unauthenticated",
            &places,
        ],
    );
    // The other user, accepted by the policy, opens every place there is
    // and never greets.
    let (other, made) = OtherUser::hold(&sock, PLACES);
    assert_eq!(made as usize, PLACES, "the other user's connections");
    std::thread::sleep(Duration::from_millis(300));
    // This user's VMM gets in, one after another.
    for i in 0..4 {
        let r = greets(&sock);
        assert!(
            matches!(r, Ok(Response::Welcome(_))),
            "VMM {i} while another user holds {PLACES} connections: {r:?}"
        );
    }
    teed.wait_for(&format!(
        "{} connections from uid {OTHER} are waiting for their greeting already: closed",
        PLACES / 2
    ));
    drop(other);
    drop(teed);
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn one_address_holds_half_of_the_places_and_a_unix_vmm_still_gets_in() {
    let (dir, sock) = scratch("per-address");
    let policy = write_policy(
        &dir,
        format!(
            "[[peer]]\nuid = {}\n\n[[peer]]\ntcp = \"127.0.0.1\"\n",
            my_uid()
        ),
    );
    let (port, tcp) = loopback_listen();
    let places = PLACES.to_string();
    let teed = Teed::start(
        &sock,
        &[
            "--listen",
            &tcp,
            "--policy",
            policy.to_str().unwrap(),
            "--max-unauthenticated",
            &places,
        ],
    );
    // 127.0.0.1, accepted by the policy, opens every place and never
    // greets.
    let peers: Vec<TcpStream> = (0..PLACES)
        .map(|_| {
            let mut p = TcpStream::connect(("127.0.0.1", port)).unwrap();
            p.set_read_timeout(Some(Duration::from_millis(50))).unwrap();
            let _ = p.write_all(&[20, 0]);
            p
        })
        .collect();
    std::thread::sleep(Duration::from_millis(300));
    // Those closed are closed already; each held one is given 300 ms.
    let held = peers
        .iter()
        .filter(|&(mut p)| !closed_by(&mut p, Instant::now() + Duration::from_millis(300)))
        .count();
    assert_eq!(held, PLACES / 2, "places one address holds");
    // A VMM on the Unix socket gets in.
    let r = greets(&sock);
    assert!(
        matches!(r, Ok(Response::Welcome(_))),
        "a Unix VMM while 127.0.0.1 holds {held}: {r:?}"
    );
    teed.wait_for("connections from 127.0.0.1 are waiting for their greeting already: closed");
    drop(peers);
    drop(teed);
    std::fs::remove_dir_all(&dir).unwrap();
}
