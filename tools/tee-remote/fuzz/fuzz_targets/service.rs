// SPDX-License-Identifier: Apache-2.0 OR MIT
//! The service's per-connection state machine: a stream of requests (the
//! input split into frames, see `common.rs`) handed to one `Connection`
//! over the userspace TEE, until the first violation. No panic, every
//! answer survives the wire, and once the connection is dropped the
//! service has no VM left.

#![no_main]

#[path = "common.rs"]
mod common;

use libfuzzer_sys::fuzz_target;
use optee_mediator::{Policy, UserTee, UteeConfig};
use tee_remote::frame;
use tee_remote::server::{Connection, Service};
use tee_remote::wire::{Request, Response};

fuzz_target!(|data: &[u8]| {
    let service = Service::new(Box::new(UserTee::new(UteeConfig::default())));
    let mut conn = Connection::new(service.clone(), Policy::default(), "fuzz".into());
    for chunk in common::Chunks::new(data) {
        let Ok(req) = frame::decode::<Request>(chunk) else {
            continue;
        };
        match conn.handle(req) {
            Ok(resp) => {
                // What `serve` would send, and the VMM read back.
                let bytes = match frame::encode(&resp) {
                    Ok(b) => b,
                    Err(e) => panic!("an answer that cannot be sent: {e}"),
                };
                assert_eq!(
                    frame::receive::<_, Response>(&mut &bytes[..]).ok(),
                    Some(resp)
                );
            }
            Err(v) => {
                let _ = v.to_string();
                break;
            }
        }
    }
    drop(conn);
    assert_eq!(service.vm_count(), 0);
});
