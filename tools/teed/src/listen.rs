// SPDX-License-Identifier: Apache-2.0 OR MIT
//! Listening sockets, who is on the other end, the greeting stage, and a
//! thread per authenticated peer.
//!
//! Peers are bounded before they are known as sshd bounds them
//! (MaxStartups, LoginGraceTime): one thread, the greeter, polls (poll(2))
//! every listener and every connection not yet greeted, each holding a
//! few hundred bytes at most ([`tee_remote::frame::Greeting`]), with one
//! deadline for its whole greeting ([`Limits::greeting_timeout`]). At most
//! [`Limits::max_unauthenticated`] connections wait for their greeting;
//! of those at most a quarter are peers the policy refuses (they wait
//! only to be told why), so that refused peers never crowd out accepted
//! ones, and at most half come from any one source ([`Source`]: a
//! user on a Unix socket, an address on TCP), so that one accepted user
//! or host cannot keep the others out (sshd's PerSourceMaxStartups). The
//! policy is looked up when the connection is accepted (Unix
//! peers by SO_PEERCRED, TCP peers by address); only a greeted peer that
//! the policy accepts takes one of the [`Limits::max_connections`] slots,
//! and a thread of its own, where it is served until it closes, breaks
//! the protocol or is idle for [`Limits::idle_timeout`].
//!
//! poll(2) through libc, which the service uses already, rather than an
//! event crate (mio, polling): the greeter waits on at most a few hundred
//! descriptors for reading only, and is the service's only user of it.

use std::io;
use std::net::TcpListener;
use std::os::fd::{AsRawFd, RawFd};
use std::os::unix::fs::FileTypeExt;
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::Path;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use optee_mediator::ratelimit::{LogLimiter, Verdict};
use tee_remote::frame::{FrameError, Greeting};
use tee_remote::policy::{self, Grant, Peer, ServicePolicy};
use tee_remote::server::{self, Ended, Service, Violation};
use tee_remote::wire::{Hello, Request};

use tee_remote::addr::Stream;
use tee_remote::Address;

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
    /// The socket's mode or group could not be set.
    #[error("{path}: cannot set the socket's {what}: {err}")]
    Access {
        /// The socket.
        path: String,
        /// Mode or group.
        what: &'static str,
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

impl Listener {
    fn fd(&self) -> RawFd {
        match self {
            Listener::Unix(l) => l.as_raw_fd(),
            Listener::Tcp(l) => l.as_raw_fd(),
        }
    }

    fn set_nonblocking(&self) -> io::Result<()> {
        match self {
            Listener::Unix(l) => l.set_nonblocking(true),
            Listener::Tcp(l) => l.set_nonblocking(true),
        }
    }

    /// The next connection and its peer.
    fn accept(&self) -> io::Result<(Stream, Peer)> {
        match self {
            Listener::Unix(l) => {
                let (s, _) = l.accept()?;
                let peer = peer_credentials(&s)?;
                Ok((Stream::Unix(s), peer))
            }
            Listener::Tcp(l) => {
                let (s, a) = l.accept()?;
                s.set_nodelay(true)?;
                Ok((Stream::Tcp(s), Peer::Tcp(a)))
            }
        }
    }
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

/// Who may connect to a Unix socket: its mode and group (the policy then
/// decides who is served).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SocketAccess {
    /// The permission bits (connecting takes write permission).
    pub mode: u32,
    /// The group, if not the service's.
    pub group: Option<u32>,
}

/// Binds a Unix socket at `path` with `access`: created under a umask that
/// lets only the service's user in, then given its mode and group, so
/// that nobody else can connect before it has them.
fn bind_unix(path: &Path, access: SocketAccess) -> Result<UnixListener, ListenError> {
    let name = path.display().to_string();
    // SAFETY: umask has no memory preconditions; it is process-wide, and
    // the service binds its sockets at start-up, before it starts any
    // thread that creates files.
    let old = unsafe { libc::umask(0o177) };
    let bound = UnixListener::bind(path);
    // SAFETY: as above.
    unsafe { libc::umask(old) };
    let listener = bound.map_err(|err| ListenError::Bind {
        addr: format!("unix:{name}"),
        err,
    })?;
    let access_err = |what, err| ListenError::Access {
        path: name.clone(),
        what,
        err,
    };
    if let Some(gid) = access.group {
        std::os::unix::fs::chown(path, None, Some(gid)).map_err(|e| access_err("group", e))?;
    }
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(access.mode))
        .map_err(|e| access_err("mode", e))?;
    Ok(listener)
}

/// Binds `addr` (a Unix socket with `access`).
pub fn bind(addr: &Address, access: SocketAccess) -> Result<Listener, ListenError> {
    match addr {
        Address::Unix(p) => {
            clear_stale(p)?;
            bind_unix(p, access).map(Listener::Unix)
        }
        Address::Tcp(a) => TcpListener::bind(a.as_str())
            .map(Listener::Tcp)
            .map_err(|err| ListenError::Bind {
                addr: addr.to_string(),
                err,
            }),
    }
}

/// The group id of `group`: a number, or a group's name.
pub fn group_id(group: &str) -> Result<u32, String> {
    if let Ok(gid) = group.parse() {
        return Ok(gid);
    }
    let name = std::ffi::CString::new(group)
        .map_err(|_| format!("--socket-group {group:?}: not a group name"))?;
    let mut buf = vec![0 as libc::c_char; 16 << 10];
    // SAFETY: group is plain data that getgrnam_r fills in; zeroed is a
    // valid value for it.
    let mut grp: libc::group = unsafe { std::mem::zeroed() };
    let mut found: *mut libc::group = std::ptr::null_mut();
    // SAFETY: `name` is a NUL-terminated string, `grp`, `buf` (of the
    // length passed) and `found` are live locals that getgrnam_r writes.
    let r = unsafe {
        libc::getgrnam_r(
            name.as_ptr(),
            &mut grp,
            buf.as_mut_ptr(),
            buf.len(),
            &mut found,
        )
    };
    if r != 0 {
        return Err(format!(
            "--socket-group {group}: {}",
            io::Error::from_raw_os_error(r)
        ));
    }
    if found.is_null() {
        return Err(format!("--socket-group {group}: no such group"));
    }
    Ok(grp.gr_gid)
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

/// The service's bounds on connections.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Authenticated peers served at once.
    pub max_connections: u32,
    /// Connections waiting for their greeting at once (a quarter of them,
    /// at least one, for peers the policy refuses).
    pub max_unauthenticated: u32,
    /// How long a peer has for its whole greeting.
    pub greeting_timeout: Duration,
    /// How long an authenticated peer may send nothing before it is
    /// dropped (its VMs torn down); `None`: forever.
    pub idle_timeout: Option<Duration>,
}

impl Limits {
    /// Of the connections waiting for their greeting, how many may be of
    /// peers the policy refuses.
    pub fn max_refused(&self) -> usize {
        (self.max_unauthenticated as usize / 4).max(1)
    }

    /// Of the connections waiting for their greeting, how many may come
    /// from one [`Source`]: half, so that one user or host always leaves
    /// the other half to the others, while a host whose VMMs all run as
    /// one user can still start many at once (a quarter turned away the
    /// ninth of sixteen VMMs started together with the default places).
    pub fn max_per_source(&self) -> usize {
        (self.max_unauthenticated as usize / 2).max(1)
    }
}

/// Where a connection comes from, for the greeting stage's cap per
/// source: who can open many connections at once.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Source {
    /// A user, on a Unix socket (its processes share its cap).
    User(u32),
    /// An IPv4 address.
    V4(std::net::Ipv4Addr),
    /// An IPv6 /64 prefix (a host has one to itself).
    V6(u64),
}

impl Source {
    /// The source of `peer`.
    pub fn of(peer: &Peer) -> Source {
        match peer {
            Peer::Unix { uid, .. } => Source::User(*uid),
            Peer::Tcp(a) => match a.ip() {
                std::net::IpAddr::V4(ip) => Source::V4(ip),
                std::net::IpAddr::V6(ip) => match ip.to_ipv4_mapped() {
                    Some(v4) => Source::V4(v4),
                    None => Source::V6((ip.to_bits() >> 64) as u64),
                },
            },
        }
    }
}

impl std::fmt::Display for Source {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Source::User(uid) => write!(f, "uid {uid}"),
            Source::V4(ip) => write!(f, "{ip}"),
            Source::V6(prefix) => {
                let ip = std::net::Ipv6Addr::from_bits(u128::from(*prefix) << 64);
                write!(f, "{ip}/64")
            }
        }
    }
}

/// What every connection shares.
pub struct Shared {
    /// The TEE.
    pub service: Arc<Service>,
    /// The rules.
    pub policy: ServicePolicy,
    /// The bounds.
    pub limits: Limits,
    /// Authenticated connections now (each holds one while served).
    pub active: AtomicU32,
    /// Refusals and drops logged, at most 10 a second; the lock protects
    /// the limiter's counts only.
    pub log: Mutex<LogLimiter>,
}

impl Shared {
    /// Logs a warning about a peer, within the rate.
    fn warn(&self, line: std::fmt::Arguments<'_>) {
        let mut l = self.log.lock().unwrap_or_else(|e| e.into_inner());
        if let Verdict::Log { suppressed } = l.check(Instant::now()) {
            if suppressed > 0 {
                log::warn!("{suppressed} refused or dropped connections not logged");
            }
            log::warn!("{line}");
        }
    }

    /// Logs a refused or dropped connection, within the rate.
    fn log_end(&self, peer: &Peer, ended: &Ended) {
        match ended {
            Ended::Closed => log::info!("{peer}: connection closed"),
            _ => self.warn(format_args!("{peer}: {ended}")),
        }
    }
}

/// How long a peer has to greet, by default.
pub const GREETING_TIMEOUT: Duration = Duration::from_secs(10);

/// How long a connection's writes may block (a peer that stops reading
/// loses its connection).
pub const WRITE_TIMEOUT: Duration = Duration::from_secs(30);

/// A connection waiting for its greeting.
struct Pending {
    stream: Stream,
    peer: Peer,
    source: Source,
    /// What the policy grants the peer; `None`: refused once greeted.
    grant: Option<Grant>,
    deadline: Instant,
    greeting: Greeting,
}

/// One authenticated slot, given back when dropped.
struct Slot(Arc<Shared>);

impl Drop for Slot {
    fn drop(&mut self) {
        self.0.active.fetch_sub(1, Ordering::SeqCst);
    }
}

/// Serves a greeted peer the policy accepts on a thread of its own, if a
/// slot is free.
fn hand_off(shared: &Arc<Shared>, mut p: Pending, hello: Hello, grant: Grant) {
    let max = shared.limits.max_connections;
    if shared.active.fetch_add(1, Ordering::SeqCst) >= max {
        shared.active.fetch_sub(1, Ordering::SeqCst);
        let why = format!("the service has {max} connections already");
        let ended = server::refuse(&mut p.stream, &why);
        shared.log_end(&p.peer, &ended);
        return;
    }
    let slot = Slot(shared.clone());
    let set = p.stream.set_nonblocking(false).and_then(|()| {
        p.stream
            .set_timeouts(shared.limits.idle_timeout, Some(WRITE_TIMEOUT))
    });
    if let Err(e) = set {
        shared.warn(format_args!("{}: {e}", p.peer));
        return;
    }
    let (peer, mut stream) = (p.peer, p.stream);
    let sh = shared.clone();
    let spawned = std::thread::Builder::new()
        .name("teed-conn".to_owned())
        .spawn(move || {
            let _slot = slot;
            let idle = sh.limits.idle_timeout;
            let ended =
                server::serve_greeted(&sh.service, &mut stream, &peer, &grant, &hello, idle);
            sh.log_end(&peer, &ended);
        });
    if let Err(e) = spawned {
        // The closure, its slot with it, is dropped.
        log::error!("{peer}: cannot start a thread for the connection: {e}");
    }
}

/// A greeting read whole: the peer refused, dropped, or handed off.
fn greeted(shared: &Arc<Shared>, mut p: Pending, req: Request) {
    let hello = match req {
        Request::Hello(h) => h,
        _ => return shared.log_end(&p.peer, &Ended::Violation(Violation::NoHello)),
    };
    if let Err(why) = server::check_hello(&hello) {
        let ended = server::refuse(&mut p.stream, &why);
        return shared.log_end(&p.peer, &ended);
    }
    match p.grant.take() {
        Some(grant) => hand_off(shared, p, hello, grant),
        None => {
            let ended = server::refuse(&mut p.stream, &policy::refusal(&p.peer));
            shared.log_end(&p.peer, &ended);
        }
    }
}

/// Reads what `p` has sent: `Some` once its greeting is whole or the
/// connection is over (a reason to log), `None` to wait for more.
fn advance(p: &mut Pending) -> Option<Result<Request, Ended>> {
    loop {
        match p.greeting.read_from(&mut p.stream) {
            Ok(Some(req)) => return Some(Ok(req)),
            Ok(None) => {}
            Err(FrameError::Io(e)) if e.kind() == io::ErrorKind::WouldBlock => return None,
            Err(FrameError::Closed) => return Some(Err(Ended::Closed)),
            Err(e) => return Some(Err(e.into())),
        }
    }
}

/// The greeting stage: every listener and every connection not greeted
/// yet, on this thread, forever.
pub struct Greeter {
    listeners: Vec<Listener>,
    pending: Vec<Pending>,
    shared: Arc<Shared>,
}

impl Greeter {
    /// A greeter of `listeners`.
    pub fn new(listeners: Vec<Listener>, shared: Arc<Shared>) -> io::Result<Greeter> {
        for l in &listeners {
            l.set_nonblocking()?;
        }
        Ok(Greeter {
            listeners,
            pending: Vec::new(),
            shared,
        })
    }

    /// Runs forever.
    pub fn run(mut self) -> ! {
        loop {
            self.round();
        }
    }

    /// Waits for something to do (a deadline at most), and does it.
    fn round(&mut self) {
        let now = Instant::now();
        let timeout = self
            .pending
            .iter()
            .map(|p| p.deadline.saturating_duration_since(now))
            .min()
            .map_or(-1, |d| {
                i32::try_from(d.as_millis().saturating_add(1)).unwrap_or(i32::MAX)
            });
        let mut fds: Vec<libc::pollfd> = self
            .listeners
            .iter()
            .map(Listener::fd)
            .chain(self.pending.iter().map(|p| p.stream.as_raw_fd()))
            .map(|fd| libc::pollfd {
                fd,
                events: libc::POLLIN,
                revents: 0,
            })
            .collect();
        // SAFETY: `fds` is a live array of `fds.len()` pollfds, which poll
        // writes (revents) and nothing else.
        let r = unsafe { libc::poll(fds.as_mut_ptr(), fds.len() as libc::nfds_t, timeout) };
        if r < 0 {
            let e = io::Error::last_os_error();
            if e.kind() != io::ErrorKind::Interrupted {
                log::error!("poll: {e}");
                std::thread::sleep(Duration::from_millis(10));
            }
            return;
        }
        let n = self.listeners.len();
        // Backwards, so that swap_remove moves only what was seen.
        for i in (0..self.pending.len()).rev() {
            if fds[n + i].revents == 0 {
                continue;
            }
            if let Some(outcome) = advance(&mut self.pending[i]) {
                let p = self.pending.swap_remove(i);
                match outcome {
                    Ok(req) => greeted(&self.shared, p, req),
                    Err(ended) => self.shared.log_end(&p.peer, &ended),
                }
            }
        }
        let now = Instant::now();
        let limit = self.shared.limits.greeting_timeout;
        let shared = &self.shared;
        self.pending.retain(|p| {
            let late = p.deadline <= now;
            if late {
                shared.warn(format_args!(
                    "{}: no greeting within {} s ({} bytes of it): dropped",
                    p.peer,
                    limit.as_secs(),
                    p.greeting.len()
                ));
            }
            !late
        });
        let ready: Vec<usize> = (0..n).filter(|&l| fds[l].revents != 0).collect();
        for l in ready {
            self.accept(l);
        }
    }

    /// Accepts what waits on listener `l`.
    fn accept(&mut self, l: usize) {
        // A bounded batch: the other listeners and the greetings get their
        // turn.
        for _ in 0..64 {
            match self.listeners[l].accept() {
                Ok((stream, peer)) => self.admit(stream, peer),
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) if e.kind() == io::ErrorKind::ConnectionAborted => {}
                Err(e) => {
                    // Out of descriptors or memory: the listener stays
                    // readable, so pause rather than spin.
                    self.shared.warn(format_args!("accept: {e}"));
                    std::thread::sleep(Duration::from_millis(10));
                    return;
                }
            }
        }
    }

    /// A new connection: waits for its greeting, if there is room.
    fn admit(&mut self, stream: Stream, peer: Peer) {
        let limits = &self.shared.limits;
        if self.pending.len() >= limits.max_unauthenticated as usize {
            return self.shared.warn(format_args!(
                "{peer}: {} connections are waiting for their greeting already: closed",
                self.pending.len()
            ));
        }
        let grant = self.shared.policy.lookup(&peer).cloned();
        if grant.is_none() {
            let refused = self.pending.iter().filter(|p| p.grant.is_none()).count();
            if refused >= limits.max_refused() {
                return self.shared.warn(format_args!(
                    "{peer}: refused by the policy, and {refused} refused peers are \
                     waiting for their greeting already: closed"
                ));
            }
        }
        let source = Source::of(&peer);
        let same = self.pending.iter().filter(|p| p.source == source).count();
        if same >= limits.max_per_source() {
            return self.shared.warn(format_args!(
                "{peer}: {same} connections from {source} are waiting for their greeting \
                 already: closed"
            ));
        }
        if let Err(e) = stream.set_nonblocking(true) {
            return self.shared.warn(format_args!("{peer}: {e}"));
        }
        self.pending.push(Pending {
            stream,
            peer,
            source,
            grant,
            deadline: Instant::now() + limits.greeting_timeout,
            greeting: Greeting::new(),
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const OWNER_ONLY: SocketAccess = SocketAccess {
        mode: 0o600,
        group: None,
    };

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
        let addr = Address::Unix(p.clone());
        let live = bind(&addr, OWNER_ONLY).unwrap();
        let e = bind(&addr, OWNER_ONLY).unwrap_err();
        assert!(matches!(e, ListenError::InUse(_)), "{e}");
        drop(live);
        // The file stays behind, nobody listening: stale.
        assert!(p.exists());
        let again = bind(&addr, OWNER_ONLY).unwrap();
        drop(again);
        let f = d.join("file");
        std::fs::write(&f, b"x").unwrap();
        let e = bind(&Address::Unix(f.clone()), OWNER_ONLY).unwrap_err();
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
    fn a_unix_socket_gets_the_mode_and_group_asked() {
        use std::os::unix::fs::MetadataExt;
        let d = temp("access");
        let p = d.join("s.sock");
        // SAFETY: getegid has no preconditions.
        let gid = unsafe { libc::getegid() };
        let access = SocketAccess {
            mode: 0o660,
            group: Some(gid),
        };
        let l = bind(&Address::Unix(p.clone()), access).unwrap();
        let m = std::fs::metadata(&p).unwrap();
        assert_eq!((m.mode() & 0o7777, m.gid()), (0o660, gid));
        drop(l);
        std::fs::remove_dir_all(&d).unwrap();
    }

    #[test]
    fn groups_are_named_or_numbered() {
        assert_eq!(group_id("0"), Ok(0));
        assert_eq!(group_id("root"), Ok(0));
        assert_eq!(
            group_id("no-such-group-here"),
            Err("--socket-group no-such-group-here: no such group".to_owned())
        );
    }

    #[test]
    fn a_source_is_a_user_an_ipv4_address_or_an_ipv6_64() {
        let tcp = |a: &str| Source::of(&Peer::Tcp(a.parse().unwrap()));
        let user = |uid, pid| Source::of(&Peer::Unix { uid, gid: 5, pid });
        assert_eq!(user(1000, 1), user(1000, 2));
        assert_ne!(user(1000, 1), user(1001, 1));
        assert_eq!(tcp("10.0.0.1:1"), tcp("10.0.0.1:2"));
        assert_ne!(tcp("10.0.0.1:1"), tcp("10.0.0.2:1"));
        assert_eq!(tcp("[::ffff:10.0.0.1]:1"), tcp("10.0.0.1:2"));
        assert_eq!(tcp("[2001:db8:0:1::5]:1"), tcp("[2001:db8:0:1:ff::9]:2"));
        assert_ne!(tcp("[2001:db8:0:1::5]:1"), tcp("[2001:db8:0:2::5]:1"));
        assert_eq!(tcp("[2001:db8:0:1::5]:1").to_string(), "2001:db8:0:1::/64");
        assert_eq!(user(7, 1).to_string(), "uid 7");
        assert_eq!(tcp("10.0.0.1:1").to_string(), "10.0.0.1");
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
