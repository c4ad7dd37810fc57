// SPDX-License-Identifier: Apache-2.0 OR MIT
//! tosfwd-vmm: a small arm64 KVM VMM whose guests reach OP-TEE through
//! KVM's SMCCC filter (FWD_TO_USER) and the optee-mediator library.
//!
//! The pure parts (command line, memory layout, device tree, call counts,
//! console line buffering, how a run ends and its exit status, the host
//! TEE's start-up checks and lock, guest RAM and a protected guest's)
//! build and are tested on any host; the machine itself (the `vm` module)
//! is aarch64 only.

#![deny(missing_docs)]

pub mod args;
pub mod console;
pub mod fdt;
pub mod hostile;
pub mod layout;
pub mod outcome;
pub mod private_ram;
pub mod ram;
pub mod stats;
pub mod tee;
#[cfg(target_arch = "aarch64")]
pub mod vm;
