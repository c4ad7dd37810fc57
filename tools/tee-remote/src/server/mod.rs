// SPDX-License-Identifier: Apache-2.0 OR MIT
//! The service side: one TEE ([`Backend`]) served to many VMM connections.
//!
//! [`Service`] owns the backend and hands out the TEE's client ids, which
//! are the service's, not the VMMs': a VMM names its VMs with ids of its
//! own, private to its connection, and can reach no other connection's VM.
//! Each connection runs [`serve`] on its own thread; a
//! [`Connection`] holds what the connection's VMs have in the TEE and
//! gives it all back when the connection ends, however it ends.
//!
//! A connection is dropped, and nothing else, when its peer breaks the
//! protocol: an undecodable or oversized frame, a request out of turn, an
//! id it was not given, a span that does not fit its buffer.

mod conn;

use std::collections::BTreeSet;
use std::io::{Read, Write};
use std::sync::{Arc, Mutex, MutexGuard};

use optee_mediator::backend::{ClientId, OsRevision};
use optee_mediator::{Backend, Policy};

pub use conn::{Connection, Violation};

use crate::frame::{self, FrameError};
use crate::policy::Peer;
use crate::wire::{Request, Response};

/// The TEE, shared by every connection.
pub struct Service {
    backend: Mutex<Box<dyn Backend + Send>>,
    thread_count: u32,
    revision: OsRevision,
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
    /// A service for `backend`.
    pub fn new(backend: Box<dyn Backend + Send>) -> Arc<Service> {
        let thread_count = backend.thread_count();
        let revision = backend.os_revision();
        Arc::new(Service {
            backend: Mutex::new(backend),
            thread_count,
            revision,
            ids: Mutex::new(BTreeSet::new()),
        })
    }

    /// The backend, its lock recovered if a holder panicked (its state is
    /// per client and consistent between calls).
    fn backend(&self) -> MutexGuard<'_, Box<dyn Backend + Send>> {
        self.backend.lock().unwrap_or_else(|e| e.into_inner())
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

/// Serves one connection until it ends: reads the peer's greeting, applies
/// `policy` (`None`: the peer is refused with `refusal`, after its
/// greeting so that it learns why), calls `greeted` (a listener clears the
/// greeting's read timeout there), then answers requests one by one. The
/// connection's VMs are torn down before this returns.
pub fn serve<S: Read + Write>(
    service: &Arc<Service>,
    stream: &mut S,
    peer: &Peer,
    policy: Option<&Policy>,
    refusal: &str,
    greeted: impl FnOnce(&mut S),
) -> Ended {
    let hello = match frame::receive::<_, Request>(stream) {
        Ok(Request::Hello(h)) => h,
        Ok(_) => return Ended::Violation(Violation::NoHello),
        Err(FrameError::Closed) => return Ended::Closed,
        Err(e) => return e.into(),
    };
    let refuse = |reason: String, stream: &mut S| {
        let _ = frame::send(
            stream,
            &Response::Refused {
                reason: reason.clone(),
            },
        );
        Ended::Refused(reason)
    };
    if let Err(reason) = conn::check_hello(&hello) {
        return refuse(reason, stream);
    }
    let Some(policy) = policy else {
        return refuse(refusal.to_owned(), stream);
    };
    greeted(stream);
    log::info!("{peer} ({:?}) connected", hello.name);
    let mut conn = Connection::new(service.clone(), policy.clone(), peer.to_string());
    let welcome = Response::Hello {
        version: crate::wire::PROTOCOL_VERSION,
        thread_count: service.thread_count,
        revision: crate::wire::Revision {
            major: service.revision.major,
            minor: service.revision.minor,
            build_id: service.revision.build_id,
        },
    };
    if let Err(e) = frame::send(stream, &welcome) {
        return e.into();
    }
    let ended = loop {
        let req = match frame::receive::<_, Request>(stream) {
            Ok(r) => r,
            Err(FrameError::Closed) => break Ended::Closed,
            Err(e) => break e.into(),
        };
        let resp = match conn.handle(req) {
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
