// SPDX-License-Identifier: Apache-2.0 OR MIT
//! The mediator's TEE in another process, on this host or another.
//!
//! A VMM's mediator drives a [`RemoteTee`], a [`optee_mediator::Backend`]
//! that forwards each backend operation to a TEE service over a socket
//! (Unix domain or TCP). The service ([`server`], run by `tosfwd-teed`)
//! owns the TEE (the userspace TEE, or the host's OP-TEE through its
//! /dev/tee) and serves it to many VMMs, each under the policy its
//! credentials map to ([`policy`]). The VMMs need no access to the TEE
//! device.
//!
//! The protocol ([`wire`], [`frame`]) is versioned and encoded with
//! postcard; every frame has a length limit. Guest memory crosses it by
//! value: a call carries the bytes of its memory parameters and the answer
//! carries back what the TEE wrote ([`shadow`] is the service's side of
//! that); unless the VMM, on a Unix socket, shares its guest RAM's sealed
//! memfd with the service ([`fdpass`]), when memory parameters name guest
//! pages and nothing is copied.
//!
//! Faults: when the service dies, a VMM's calls fail with
//! TEEC_ERROR_COMMUNICATION until it is back, and it reconnects by itself;
//! when a VMM dies, the service closes its VMs' sessions and frees their
//! buffers in the TEE; a peer that breaks the protocol loses its
//! connection and nothing else.

#![deny(missing_docs)]

pub mod addr;
pub mod client;
pub mod fdpass;
pub mod frame;
mod keepalive;
pub mod policy;
pub mod relayed;
pub mod server;
pub mod shadow;
pub mod wire;

pub use addr::Address;
pub use client::{RemoteConfig, RemoteError, RemoteTee};
pub use server::Service;
