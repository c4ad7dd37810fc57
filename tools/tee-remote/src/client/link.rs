// SPDX-License-Identifier: Apache-2.0 OR MIT
//! The connection to the service: made, greeted, and kept alive if the
//! service drops silent peers.

use optee_mediator::backend::OsRevision;

use super::{RemoteConfig, RemoteError};
use crate::addr::{Address, Stream};
use crate::frame;
use crate::keepalive::{self, Keepalive};
use crate::wire::{self, Hello, Request, Response};

/// A connection to the service, and its keepalive if the service drops
/// silent peers.
#[derive(Debug)]
pub(super) struct Link {
    pub(super) stream: Stream,
    pub(super) keepalive: Option<Keepalive>,
}

impl Drop for Link {
    fn drop(&mut self) {
        // Ended for the keepalive's handle too, so that the service sees
        // it go now.
        let _ = self.stream.shutdown();
    }
}

/// Connects and greets: the connection (pinging if the service drops
/// silent peers), the TEE's thread count and revision.
pub(super) fn greet(
    addr: &Address,
    config: &RemoteConfig,
) -> Result<(Link, u32, OsRevision), RemoteError> {
    let connect_err = |err| RemoteError::Connect {
        addr: addr.clone(),
        err,
    };
    let mut s = Stream::connect(addr, config.timeout).map_err(connect_err)?;
    let frame_err = |err| RemoteError::Frame {
        addr: addr.clone(),
        err,
    };
    frame::send(&mut s, &Request::Hello(Hello::new(&config.name))).map_err(frame_err)?;
    match frame::receive(&mut s).map_err(frame_err)? {
        Response::Welcome(w) if w.version == wire::PROTOCOL_VERSION && w.thread_count > 0 => {
            let revision = OsRevision {
                major: w.revision.major,
                minor: w.revision.minor,
                build_id: w.revision.build_id,
            };
            if !config.call_wait.is_zero() {
                // Asked before the keepalive may ping, on the greeting's
                // heels: nothing else is in flight.
                let micros = u32::try_from(config.call_wait.as_micros()).unwrap_or(u32::MAX);
                frame::send(&mut s, &Request::CallWait { micros }).map_err(frame_err)?;
                match frame::receive(&mut s).map_err(frame_err)? {
                    Response::CallWaitSet { micros: granted } if granted <= micros => {
                        log::debug!("{addr}: calls waited for up to {granted} us in the service")
                    }
                    other => {
                        return Err(RemoteError::Protocol {
                            addr: addr.clone(),
                            what: format!("{other:?} in answer to a call wait of {micros} us"),
                        })
                    }
                }
            }
            let keepalive = match keepalive::interval(w.idle_timeout_ms) {
                Some(every) => Some(
                    s.try_clone()
                        .and_then(|k| Keepalive::start(k, every))
                        .map_err(connect_err)?,
                ),
                None => None,
            };
            let link = Link {
                stream: s,
                keepalive,
            };
            Ok((link, w.thread_count, revision))
        }
        Response::Refused { reason } => Err(RemoteError::Refused {
            addr: addr.clone(),
            reason,
        }),
        other => Err(RemoteError::Protocol {
            addr: addr.clone(),
            what: format!("{other:?} in answer to the greeting"),
        }),
    }
}
