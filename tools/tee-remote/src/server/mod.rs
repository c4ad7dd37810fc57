// SPDX-License-Identifier: Apache-2.0 OR MIT
//! The service side: one TEE ([`Backend`]) served to many VMM connections.
//!
//! [`Service`] owns the TEE and hands out the TEE's client ids, which
//! are the service's, not the VMMs': a VMM names its VMs with ids of its
//! own, private to its connection, and can reach no other connection's VM.
//! The TEE is either one backend every VM shares behind a lock
//! ([`Service::new`], for a backend whose every call returns at once: the
//! userspace TEE), or a backend of its own per VM ([`Service::per_vm`],
//! for the host's TEE, whose teardown waits for calls still in the TEE):
//! then no lock is held across a call into the TEE, and one peer's VM
//! creation, slow call or teardown holds up no other peer.
//!
//! A peer is greeted first ([`frame::Greeting`], a frame of at most
//! [`frame::MAX_GREETING`] bytes, checked by [`check_hello`]); a listener
//! does that for many peers at once without a thread each, then runs
//! [`serve_greeted`] on a thread of the peer's own. [`serve`] does both on
//! the caller's thread. A [`Connection`] holds what the peer's VMs have in
//! the TEE, within the peer's [`Grant`] (its quotas count all its VMs
//! together), and gives it all back when the connection ends, however it
//! ends.
//!
//! A connection is dropped, and nothing else, when its peer breaks the
//! protocol: an undecodable or oversized frame, a request out of turn, an
//! id it was not given, a span that does not fit its buffer.

mod conn;

use std::collections::BTreeSet;
use std::io::{self, Read, Write};
use std::sync::{Arc, Mutex, MutexGuard};

use optee_mediator::backend::{ClientId, OsRevision};
use optee_mediator::Backend;

pub use conn::{Connection, Violation};

use crate::fdpass::FdChannel;
use crate::frame::{self, FrameError};
use crate::policy::{Grant, Peer};
use crate::wire::{
    Hello, Request, Response, Welcome, MAGIC, MAX_NAME, OLDEST_PROTOCOL_VERSION, PROTOCOL_VERSION,
};

/// A backend behind the lock that makes it shared: the lock protects the
/// backend's state (every VM's), and is held across each call into it.
type SharedTee = Arc<Mutex<Box<dyn Backend + Send>>>;

/// Makes the backend of one VM.
pub type MakeTee = dyn Fn(VmOptions) -> Result<Box<dyn Backend + Send>, String> + Send + Sync;

/// What a VMM asks of a VM's TEE when it creates it.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct VmOptions {
    /// The partition's supplicant requests go to the VMM's guest
    /// ([`crate::wire::Request::VmCreatedRelaying`]): the backend must
    /// leave them to the caller ([`Backend::relay`]).
    pub relay_supplicant: bool,
}

/// Where the VMs' TEE comes from.
enum Tee {
    /// One backend for every VM.
    Shared(SharedTee),
    /// A backend of its own for each VM, made by this.
    PerVm(Box<MakeTee>),
}

/// One VM's way into the TEE.
pub(crate) enum VmTee {
    /// The shared backend, locked for each call.
    Shared(SharedTee),
    /// The VM's own backend: its connection's thread is its only user, so
    /// no lock.
    Own(Box<dyn Backend + Send>),
}

impl VmTee {
    /// Runs `f` on the VM's backend.
    pub(crate) fn with<R>(&mut self, f: impl FnOnce(&mut dyn Backend) -> R) -> R {
        match self {
            VmTee::Own(b) => f(b.as_mut()),
            VmTee::Shared(m) => {
                // Recovered if a holder panicked: the backend's state is
                // per client and consistent between calls.
                let mut b = m.lock().unwrap_or_else(|e| e.into_inner());
                f(b.as_mut())
            }
        }
    }
}

impl std::fmt::Debug for VmTee {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            VmTee::Shared(_) => "Shared",
            VmTee::Own(_) => "Own",
        })
    }
}

/// The TEE, shared by every connection.
pub struct Service {
    tee: Tee,
    thread_count: u32,
    revision: OsRevision,
    /// The TEE client ids in use; held only to pick or free one.
    ids: Mutex<BTreeSet<u16>>,
}

impl std::fmt::Debug for Service {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Service")
            .field("thread_count", &self.thread_count)
            .field("revision", &self.revision)
            .field("vms", &self.vm_count())
            .finish()
    }
}

impl Service {
    /// A service whose VMs all share `backend`, behind one lock held
    /// across each call: for a backend whose calls return at once (the
    /// userspace TEE), not one that waits for the TEE.
    pub fn new(backend: Box<dyn Backend + Send>) -> Arc<Service> {
        let thread_count = backend.thread_count();
        let revision = backend.os_revision();
        Arc::new(Service {
            tee: Tee::Shared(Arc::new(Mutex::new(backend))),
            thread_count,
            revision,
            ids: Mutex::new(BTreeSet::new()),
        })
    }

    /// A service that gives each VM a backend of its own, from `make`
    /// (called without any lock held, on the creating peer's thread), of
    /// `thread_count` threads per VM and reporting `revision`: the host's
    /// TEE, where one VM's slow call or teardown must hold up no other.
    pub fn per_vm(thread_count: u32, revision: OsRevision, make: Box<MakeTee>) -> Arc<Service> {
        Arc::new(Service {
            tee: Tee::PerVm(make),
            thread_count,
            revision,
            ids: Mutex::new(BTreeSet::new()),
        })
    }

    /// The backend of a new VM `id` (told of it), or why not.
    pub(crate) fn open_vm(&self, id: ClientId, options: VmOptions) -> Result<VmTee, String> {
        let mut tee = match &self.tee {
            Tee::Shared(_) if options.relay_supplicant => {
                return Err("this service's TEE has no supplicant requests to relay".to_owned())
            }
            Tee::Shared(m) => VmTee::Shared(m.clone()),
            Tee::PerVm(make) => VmTee::Own(make(options)?),
        };
        tee.with(|b| b.vm_created(id)).map_err(|e| e.to_string())?;
        Ok(tee)
    }

    fn ids(&self) -> MutexGuard<'_, BTreeSet<u16>> {
        self.ids.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// A free client id (1 and up: 0 is the hypervisor's), `None` if all
    /// are taken.
    fn allocate(&self) -> Option<ClientId> {
        let mut ids = self.ids();
        let id = (1..=u16::MAX).find(|i| !ids.contains(i))?;
        ids.insert(id);
        Some(ClientId(id))
    }

    fn release(&self, id: ClientId) {
        self.ids().remove(&id.0);
    }

    /// VMs alive in the TEE, all connections together.
    pub fn vm_count(&self) -> usize {
        self.ids().len()
    }

    /// Concurrent calls per VM.
    pub fn thread_count(&self) -> u32 {
        self.thread_count
    }
}

/// How a connection ended.
#[derive(Debug, thiserror::Error)]
pub enum Ended {
    /// The peer closed it.
    #[error("closed by the peer")]
    Closed,
    /// The peer sent nothing for longer than its connection's read
    /// timeout (the listener's idle timeout).
    #[error("dropped: idle too long")]
    Idle,
    /// The policy has no rule for the peer, or its greeting was wrong.
    #[error("refused: {0}")]
    Refused(String),
    /// It broke the protocol.
    #[error("dropped: {0}")]
    Violation(#[from] Violation),
    /// Reading or writing failed.
    #[error("dropped: {0}")]
    Frame(#[from] FrameError),
}

/// Checks a greeting: the magic, a version this service speaks
/// ([`OLDEST_PROTOCOL_VERSION`] to [`PROTOCOL_VERSION`]), a name within
/// [`MAX_NAME`] bytes. The error is the reason the peer is told.
pub fn check_hello(h: &Hello) -> Result<(), String> {
    if h.magic != MAGIC {
        return Err("not a tosfwd TEE client (bad magic)".to_owned());
    }
    if !(OLDEST_PROTOCOL_VERSION..=PROTOCOL_VERSION).contains(&h.version) {
        return Err(format!(
            "protocol version {} is not spoken here (this service speaks \
             {OLDEST_PROTOCOL_VERSION} to {PROTOCOL_VERSION})",
            h.version
        ));
    }
    if h.name.len() > MAX_NAME {
        return Err(format!(
            "a name of {} bytes is over the {MAX_NAME}-byte limit",
            h.name.len()
        ));
    }
    Ok(())
}

/// Sends `peer` its refusal (best effort: it may be gone).
pub fn refuse<W: Write>(stream: &mut W, reason: &str) -> Ended {
    let _ = frame::send(
        stream,
        &Response::Refused {
            reason: reason.to_owned(),
        },
    );
    Ended::Refused(reason.to_owned())
}

/// A read that timed out: the peer idle beyond the stream's read timeout.
fn timed_out(e: &FrameError) -> bool {
    matches!(e, FrameError::Io(e) if matches!(e.kind(), io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut))
}

/// Serves one connection on this thread until it ends: reads the peer's
/// greeting (one frame of at most [`frame::MAX_GREETING`] bytes), applies
/// `grant` (`None`: the peer is refused with `refusal`, after its greeting
/// so that it learns why), calls `greeted` (a listener clears the
/// greeting's read timeout there), then [`serve_greeted`].
pub fn serve<S: Read + Write + FdChannel>(
    service: &Arc<Service>,
    stream: &mut S,
    peer: &Peer,
    grant: Option<&Grant>,
    refusal: &str,
    greeted: impl FnOnce(&mut S),
) -> Ended {
    let mut greeting = frame::Greeting::new();
    let hello = loop {
        match greeting.read_from(stream) {
            Ok(Some(Request::Hello(h))) => break h,
            Ok(Some(_)) => return Ended::Violation(Violation::NoHello),
            Ok(None) => {}
            Err(FrameError::Closed) => return Ended::Closed,
            Err(e) => return e.into(),
        }
    };
    if let Err(reason) = check_hello(&hello) {
        return refuse(stream, &reason);
    }
    let Some(grant) = grant else {
        return refuse(stream, refusal);
    };
    greeted(stream);
    serve_greeted(service, stream, peer, grant, &hello, None)
}

/// Serves a peer whose greeting `hello` was read and checked
/// ([`check_hello`]) and whom the policy grants `grant`: welcomes it,
/// then answers its requests one by one until the connection ends (a read
/// timeout on `stream` ends it as [`Ended::Idle`]). The connection's VMs
/// are torn down before this returns.
///
/// `idle` is that read timeout, which the welcome tells a version 2 peer
/// so that it pings ([`Request::Ping`]) when it has nothing to ask: then
/// only a dead or hung peer is dropped for its silence.
pub fn serve_greeted<S: Read + Write + FdChannel>(
    service: &Arc<Service>,
    stream: &mut S,
    peer: &Peer,
    grant: &Grant,
    hello: &Hello,
    idle: Option<std::time::Duration>,
) -> Ended {
    log::info!("{peer} ({:?}) connected", hello.name);
    let mut conn = Connection::with_limits(
        service.clone(),
        grant.policy.clone(),
        grant.limits,
        peer.to_string(),
    );
    let revision = crate::wire::Revision {
        major: service.revision.major,
        minor: service.revision.minor,
        build_id: service.revision.build_id,
    };
    let welcome = if hello.version == 1 {
        Response::Hello {
            version: 1,
            thread_count: service.thread_count,
            revision,
        }
    } else {
        Response::Welcome(Welcome {
            version: hello.version,
            thread_count: service.thread_count,
            revision,
            idle_timeout_ms: idle.map(|d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX)),
        })
    };
    if let Err(e) = frame::send(stream, &welcome) {
        return e.into();
    }
    let ended = loop {
        let req = match frame::receive::<_, Request>(stream) {
            Ok(r) => r,
            Err(FrameError::Closed) => break Ended::Closed,
            Err(e) if timed_out(&e) => break Ended::Idle,
            Err(e) => break e.into(),
        };
        let answer = match req {
            // Its file is the next byte's (a Unix socket's SCM_RIGHTS).
            Request::ShareMemory { client, regions } => match stream.receive_fd() {
                Ok(file) => conn.share_memory(client, regions, file),
                Err(e) => Err(Violation::NoFile(e.to_string())),
            },
            req => conn.handle(req),
        };
        let resp = match answer {
            Ok(r) => r,
            Err(v) => break v.into(),
        };
        if let Err(e) = frame::send(stream, &resp) {
            break e.into();
        }
    };
    // `conn` tears its VMs down when dropped.
    drop(conn);
    ended
}
