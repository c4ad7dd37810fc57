// SPDX-License-Identifier: Apache-2.0 OR MIT
//! Listening sockets, who is on the other end, and one thread per
//! connection.

use std::io;
use std::net::{TcpListener, TcpStream};
use std::os::fd::AsRawFd;
use std::os::unix::fs::FileTypeExt;
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::Path;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use optee_mediator::ratelimit::{LogLimiter, Verdict};
use tee_remote::policy::{self, Peer, ServicePolicy};
use tee_remote::server::{self, Ended, Service};

use crate::args::Listen;

/// Why a socket could not be set up.
#[derive(Debug, thiserror::Error)]
pub enum ListenError {
    /// Another service answers on the socket path.
    #[error("{0}: another service is listening on this socket")]
    InUse(String),
    /// The path exists and is not a socket.
    #[error("{0}: exists and is not a socket: not replacing it")]
    NotASocket(String),
    /// Binding failed.
    #[error("cannot listen on {addr}: {err}")]
    Bind {
        /// The address.
        addr: String,
        /// Why.
        err: io::Error,
    },
}

/// A bound listener.
#[derive(Debug)]
pub enum Listener {
    /// Unix.
    Unix(UnixListener),
    /// TCP.
    Tcp(TcpListener),
}

/// Removes a stale socket at `path`: one that nobody answers.
fn clear_stale(path: &Path) -> Result<(), ListenError> {
    let name = path.display().to_string();
    let Ok(meta) = std::fs::symlink_metadata(path) else {
        return Ok(());
    };
    if !meta.file_type().is_socket() {
        return Err(ListenError::NotASocket(name));
    }
    match UnixStream::connect(path) {
        Ok(_) => Err(ListenError::InUse(name)),
        Err(e) if e.kind() == io::ErrorKind::ConnectionRefused => {
            log::info!("{name}: removing a stale socket");
            std::fs::remove_file(path).map_err(|err| ListenError::Bind {
                addr: format!("unix:{name}"),
                err,
            })
        }
        Err(err) => Err(ListenError::Bind {
            addr: format!("unix:{name}"),
            err,
        }),
    }
}

/// Binds `addr`.
pub fn bind(addr: &Listen) -> Result<Listener, ListenError> {
    let bind_err = |err| ListenError::Bind {
        addr: addr.to_string(),
        err,
    };
    match addr {
        Listen::Unix(p) => {
            clear_stale(p)?;
            UnixListener::bind(p).map(Listener::Unix).map_err(bind_err)
        }
        Listen::Tcp(a) => TcpListener::bind(a).map(Listener::Tcp).map_err(bind_err),
    }
}

/// The credentials of a Unix peer (SO_PEERCRED).
pub fn peer_credentials(s: &UnixStream) -> io::Result<Peer> {
    let mut cred = libc::ucred {
        pid: 0,
        uid: 0,
        gid: 0,
    };
    let mut len = std::mem::size_of::<libc::ucred>() as libc::socklen_t;
    // SAFETY: `cred` and `len` are live locals of the sizes passed; the
    // kernel writes at most `len` bytes into `cred`.
    let r = unsafe {
        libc::getsockopt(
            s.as_raw_fd(),
            libc::SOL_SOCKET,
            libc::SO_PEERCRED,
            (&mut cred as *mut libc::ucred).cast(),
            &mut len,
        )
    };
    if r != 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(Peer::Unix {
        uid: cred.uid,
        gid: cred.gid,
        pid: cred.pid,
    })
}

/// What every connection shares.
pub struct Shared {
    /// The TEE.
    pub service: Arc<Service>,
    /// The rules.
    pub policy: ServicePolicy,
    /// Connections now.
    pub active: AtomicU32,
    /// The most at once.
    pub max: u32,
    /// Refusals and drops logged, at most 10 a second.
    pub log: Mutex<LogLimiter>,
}

impl Shared {
    /// Logs a refused or dropped connection, within the rate.
    fn log_end(&self, peer: &Peer, ended: &Ended) {
        match ended {
            Ended::Closed => log::info!("{peer}: connection closed"),
            _ => {
                let mut l = self.log.lock().unwrap_or_else(|e| e.into_inner());
                if let Verdict::Log { suppressed } = l.check(Instant::now()) {
                    if suppressed > 0 {
                        log::warn!("{suppressed} refused or dropped connections not logged");
                    }
                    log::warn!("{peer}: {ended}");
                }
            }
        }
    }
}

/// How long a peer has to greet.
pub const GREETING_TIMEOUT: Duration = Duration::from_secs(10);

/// A stream whose reads can time out.
trait Timed {
    fn read_timeout(&self, t: Option<Duration>);
}

impl Timed for UnixStream {
    fn read_timeout(&self, t: Option<Duration>) {
        let _ = self.set_read_timeout(t);
    }
}

impl Timed for TcpStream {
    fn read_timeout(&self, t: Option<Duration>) {
        let _ = self.set_read_timeout(t);
    }
}

/// Serves one connection on this thread: the greeting within
/// [`GREETING_TIMEOUT`], then as long as the peer likes.
fn serve<S: io::Read + io::Write + Timed>(shared: &Shared, mut stream: S, peer: Peer) {
    let n = shared.active.fetch_add(1, Ordering::SeqCst);
    let (policy, refusal) = if n >= shared.max {
        (
            None,
            format!("the service has {} connections already", shared.max),
        )
    } else {
        (shared.policy.lookup(&peer), policy::refusal(&peer))
    };
    stream.read_timeout(Some(GREETING_TIMEOUT));
    let ended = server::serve(&shared.service, &mut stream, &peer, policy, &refusal, |s| {
        s.read_timeout(None)
    });
    shared.active.fetch_sub(1, Ordering::SeqCst);
    shared.log_end(&peer, &ended);
}

/// How long a connection's writes may block (a peer that stops reading
/// loses its connection).
pub const WRITE_TIMEOUT: Duration = Duration::from_secs(30);

/// Accepts connections on `listener` forever, each served on its own
/// thread.
pub fn accept_loop(listener: Listener, shared: Arc<Shared>) {
    loop {
        let accepted: io::Result<(Box<dyn FnOnce() + Send>, Peer)> = match &listener {
            Listener::Unix(l) => l.accept().and_then(|(s, _)| {
                s.set_write_timeout(Some(WRITE_TIMEOUT))?;
                let peer = peer_credentials(&s)?;
                let sh = shared.clone();
                Ok((Box::new(move || serve(&sh, s, peer)) as _, peer))
            }),
            Listener::Tcp(l) => l.accept().and_then(|(s, a): (TcpStream, _)| {
                s.set_write_timeout(Some(WRITE_TIMEOUT))?;
                s.set_nodelay(true)?;
                let peer = Peer::Tcp(a);
                let sh = shared.clone();
                Ok((Box::new(move || serve(&sh, s, peer)) as _, peer))
            }),
        };
        match accepted {
            Ok((run, peer)) => {
                let spawned = std::thread::Builder::new()
                    .name("teed-conn".to_owned())
                    .spawn(run);
                if let Err(e) = spawned {
                    log::error!("{peer}: cannot start a thread for the connection: {e}");
                }
            }
            Err(e) => {
                log::warn!("accept: {e}");
                std::thread::sleep(Duration::from_millis(10));
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn temp(name: &str) -> std::path::PathBuf {
        let d = std::env::temp_dir().join(format!("teed-listen-{}-{name}", std::process::id()));
        let _ = std::fs::remove_dir_all(&d);
        std::fs::create_dir_all(&d).unwrap();
        d
    }

    #[test]
    fn a_stale_socket_is_replaced_a_live_one_and_a_file_are_not() {
        let d = temp("stale");
        let p = d.join("s.sock");
        let addr = Listen::Unix(p.clone());
        let live = bind(&addr).unwrap();
        let e = bind(&addr).unwrap_err();
        assert!(matches!(e, ListenError::InUse(_)), "{e}");
        drop(live);
        // The file stays behind, nobody listening: stale.
        assert!(p.exists());
        let again = bind(&addr).unwrap();
        drop(again);
        let f = d.join("file");
        std::fs::write(&f, b"x").unwrap();
        let e = bind(&Listen::Unix(f.clone())).unwrap_err();
        assert_eq!(
            e.to_string(),
            format!(
                "{}: exists and is not a socket: not replacing it",
                f.display()
            )
        );
        std::fs::remove_dir_all(&d).unwrap();
    }

    #[test]
    fn a_unix_peer_is_known_by_its_credentials() {
        let (a, _b) = UnixStream::pair().unwrap();
        let Peer::Unix { uid, gid, pid } = peer_credentials(&a).unwrap() else {
            panic!("not a Unix peer");
        };
        // SAFETY: getuid/getgid have no preconditions.
        let (me, my_gid) = unsafe { (libc::getuid(), libc::getgid()) };
        assert_eq!((uid, gid, pid), (me, my_gid, std::process::id() as i32));
    }
}
