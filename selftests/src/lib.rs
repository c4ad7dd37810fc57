// SPDX-License-Identifier: Apache-2.0 OR MIT
//! Harness for the project's KVM selftests: KTAP output compatible with the
//! kernel's kselftest runner, and (on aarch64) the KVM plumbing, guest code
//! and test cases the test binaries share.

pub mod ktap;

#[cfg(target_arch = "aarch64")]
pub mod cases;
#[cfg(target_arch = "aarch64")]
pub mod guest;
#[cfg(target_arch = "aarch64")]
pub mod kvm;
