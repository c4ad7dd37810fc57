// SPDX-License-Identifier: Apache-2.0 OR MIT
//! OP-TEE's SMC ABI mediated in userspace, with a TEE that lives in
//! userspace.
//!
//! A VMM that forwards the Trusted OS SMCCC ranges of its guests
//! ([`abi::FILTER_RANGES`], KVM's SMCCC filter with FWD_TO_USER) gives each
//! forwarded call to the [`Mediator`] of the guest's VM, with the guest's
//! memory behind [`GuestRam`], and writes back the [`SmcResult`] registers.
//! The mediator applies the rules of Xen's OP-TEE mediator (shadowed
//! arguments, command whitelist, checked page lists, quotas, thread
//! tracking) and drives a [`Backend`]: here [`UserTee`], a TEE implemented
//! in userspace with built-in trusted applications.
//!
//! The core is arch-neutral and never touches KVM; on aarch64, the `kvm`
//! module adapts a kvm-ioctls hypercall exit.

#![deny(missing_docs)]

pub mod abi;
pub mod backend;
pub mod caller;
pub mod cost;
pub mod mediator;
pub mod mem;
pub mod msg;
pub mod pagelist;
pub mod policy;
pub mod progress;
pub mod ratelimit;
pub mod relay;
pub mod shm;
pub mod utee;

#[cfg(target_arch = "aarch64")]
pub mod kvm;

pub use abi::{kvm_filters, Function, FILTER_RANGES};
pub use backend::{Backend, ClientId};
pub use cost::{CallCost, SessionCost};
pub use mediator::{Mediator, MediatorError, SmcCall, SmcResult, Usage};
pub use mem::{FakeGuestMemory, GuestRam, MemError};
pub use policy::{LoginPolicy, Policy, Quotas, TaFilter, Uuid, DEFAULT_REFUSAL_LOGS_PER_SECOND};
pub use progress::Progress;
pub use ratelimit::{Clock, SystemClock};
pub use utee::{UserTee, UteeConfig};

/// The README's example, compiled and run as a doctest.
#[cfg(doctest)]
#[doc = include_str!("../README.md")]
pub struct ReadmeDoctests;
