// SPDX-License-Identifier: Apache-2.0 OR MIT
//! The Arm SMC Calling Convention (DEN0028) as types, and the part of KVM's
//! uapi that routes SMCCC calls to userspace (the per-VM SMCCC filter).
//!
//! Arch-neutral: everything here is plain data, usable and tested on any host.
//! Every SMCCC constant the project uses lives here, once.

#![deny(missing_docs)]

pub mod id;
pub mod kvm;
pub mod range;

pub use id::{CallKind, Conduit, Convention, FunctionId, Owner};
pub use range::{FunctionRange, TRUSTED_APP_RANGES, TRUSTED_OS_RANGES};

/// SMCCC return codes (signed, in x0/w0).
pub mod ret {
    /// The call succeeded.
    pub const SUCCESS: i64 = 0;
    /// The function is not implemented (all ones in x0; in w0 for SMC32).
    pub const NOT_SUPPORTED: i64 = -1;
    /// The call is not needed on this system.
    pub const NOT_REQUIRED: i64 = -2;
    /// A parameter was invalid.
    pub const INVALID_PARAMETER: i64 = -3;
}

/// Standard service calls the tests use.
pub mod std_call {
    /// SMCCC_VERSION (Arm architecture call, always handled by KVM).
    pub const SMCCC_VERSION: u32 = 0x8000_0000;
    /// PSCI_VERSION.
    pub const PSCI_VERSION: u32 = 0x8400_0000;
    /// PSCI SYSTEM_OFF.
    pub const PSCI_SYSTEM_OFF: u32 = 0x8400_0008;
}

/// The README's example, compiled and run as a doctest.
#[cfg(doctest)]
#[doc = include_str!("../README.md")]
pub struct ReadmeDoctests;
