// SPDX-License-Identifier: Apache-2.0 OR MIT
//! The relay of a VM partition's supplicant requests to the guest's own
//! tee-supplicant (`--tee-supplicant guest`): the mediator's
//! [`optee_mediator::relay`] (the requests, their answers, the mailbox
//! and the carrying into the guest), and here the host driver's bound.

use std::time::Duration;

pub use optee_mediator::relay::*;

/// Where the host driver says its bound, in milliseconds.
pub const HOST_BOUND_PARAM: &str = "/sys/module/optee/parameters/vm_supp_timeout_ms";

/// How long a relayed request may wait for the guest: nine tenths of the
/// host driver's bound (`vm_supp_timeout_ms` from `param`, a file such as
/// [`HOST_BOUND_PARAM`]; [`DEFAULT_HOST_BOUND`] if it cannot be read or is
/// 0), so that the answer reaches the kernel before it gives up.
pub fn host_bound(param: &std::path::Path) -> Duration {
    let ms = std::fs::read_to_string(param)
        .ok()
        .and_then(|s| s.trim().parse::<u64>().ok())
        .filter(|&ms| ms > 0);
    let bound = ms.map_or(DEFAULT_HOST_BOUND, Duration::from_millis);
    bound * 9 / 10
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_bound_is_nine_tenths_of_the_host_drivers() {
        let dir = std::env::temp_dir().join(format!("relay-bound-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let p = dir.join("vm_supp_timeout_ms");
        std::fs::write(&p, "5000\n").unwrap();
        assert_eq!(host_bound(&p), Duration::from_millis(4500));
        std::fs::write(&p, "0\n").unwrap();
        assert_eq!(host_bound(&p), DEFAULT_HOST_BOUND * 9 / 10);
        assert_eq!(host_bound(&dir.join("none")), DEFAULT_HOST_BOUND * 9 / 10);
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
