// SPDX-License-Identifier: Apache-2.0 OR MIT
//! tosfwd-teed, the TEE service: one TEE served to many VMMs (see the
//! tee-remote crate for the protocol and the service's rules).

#![deny(missing_docs)]

pub mod args;
pub mod listen;
