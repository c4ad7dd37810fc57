// SPDX-License-Identifier: Apache-2.0 OR MIT
//! The host's TEE as a backend of `optee_mediator`: the VMM is an ordinary
//! client of the host's TEE driver (/dev/teeN, include/uapi/linux/tee.h),
//! one TEE context per VM, and proxies its guests' OP-TEE calls to it.
//!
//! - [`TeeDevice`]: one method per ioctl; [`DevTee`] on the real device,
//!   [`FakeTee`] in memory for tests.
//! - [`HostTee`]: the [`optee_mediator::Backend`]. Calls run on a pool of
//!   workers per VM; the guest's thread waits with RPC_FOREIGN_INTR until
//!   the result is in (the VMM may hold it a little on the backend's
//!   [`optee_mediator::Progress`] first). Guest buffers contiguous in the
//!   VMM, or scattered over RAM with a file behind it (mapped side by side
//!   into a window), are registered with the host driver (zero-copy);
//!   others go through bounce buffers.
//! - [`supplicant`]: for a VM whose context is an OP-TEE VM partition of
//!   its own, the partition's supplicant requests (TA loading, secure
//!   storage, supplicant shared memory) served by the VMM
//!   ([`SupplicantThread`]), or relayed to the guest's own
//!   tee-supplicant ([`relay`]: through the guest's calls in progress);
//!   [`partition`]: such a context, its supplicant and its storage, owned
//!   by its [`DevTee`] ([`DevTee::make_vm`]).
//!
//! See the README for what is isolated between VMs and what is not.

#![deny(missing_docs)]

pub mod dev_tee;
pub mod device;
pub mod error;
pub mod fake;
pub mod host;
mod memory;
mod params;
pub mod partition;
pub mod relay;
pub mod revision;
pub mod supplicant;
mod worker;

pub use dev_tee::DevTee;
pub use device::{AllocatedShm, CallResult, ClientLogin, Shm, TeeDevice, TeeParam};
pub use error::HostTeeError;
pub use fake::FakeTee;
pub use host::{HostTee, HostTeeConfig};
pub use partition::{Partition, PartitionConfig, PartitionError, SupplicantMode};
pub use supplicant::{SupplicantChannel, SupplicantConfig, SupplicantError, SupplicantThread};

#[cfg(test)]
mod tests;
