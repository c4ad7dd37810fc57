// SPDX-License-Identifier: Apache-2.0 OR MIT
//! [`Progress`]: how a vCPU thread waits for a backend's call without
//! holding any lock.
//!
//! A backend whose calls run elsewhere (a worker thread, another process)
//! answers the guest RPC_FOREIGN_INTR until the result is in, and the guest
//! comes back with RETURN_FROM_RPC to ask again. Answered at once, each
//! round trip is a guest exit, and a long call becomes thousands of them.
//! Real OP-TEE only returns FOREIGN_INTR when a normal-world interrupt is
//! pending; a VMM can come closer to that by letting the vCPU wait a little
//! (outside the mediator's lock) for the backend to make progress before
//! it answers: [`Progress::seen`] before the call, [`Progress::wait_past`]
//! after a FOREIGN_INTR answer. The backend calls [`Progress::advance`]
//! whenever a result arrives.

use std::sync::{Condvar, Mutex};
use std::time::{Duration, Instant};

/// A counter of results that arrived, and a condition to wait on it.
#[derive(Debug, Default)]
pub struct Progress {
    count: Mutex<u64>,
    arrived: Condvar,
}

impl Progress {
    /// A counter at zero.
    pub fn new() -> Self {
        Self::default()
    }

    fn count(&self) -> std::sync::MutexGuard<'_, u64> {
        self.count.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// How many results have arrived so far: read it before a call, and
    /// give it to [`Progress::wait_past`].
    pub fn seen(&self) -> u64 {
        *self.count()
    }

    /// A result arrived: every waiter wakes.
    pub fn advance(&self) {
        let mut c = self.count();
        *c = c.wrapping_add(1);
        drop(c);
        self.arrived.notify_all();
    }

    /// Waits until a result arrived after `seen` was read, at most
    /// `timeout`. Returns whether one did (at once if one already has).
    pub fn wait_past(&self, seen: u64, timeout: Duration) -> bool {
        let deadline = Instant::now() + timeout;
        let mut c = self.count();
        while *c == seen {
            let now = Instant::now();
            if now >= deadline {
                return false;
            }
            c = self
                .arrived
                .wait_timeout(c, deadline - now)
                .unwrap_or_else(|e| e.into_inner())
                .0;
        }
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;

    #[test]
    fn a_wait_with_nothing_arriving_times_out() {
        let p = Progress::new();
        let seen = p.seen();
        let t = Instant::now();
        assert!(!p.wait_past(seen, Duration::from_millis(20)));
        assert!(t.elapsed() >= Duration::from_millis(20));
    }

    #[test]
    fn a_result_that_arrived_before_the_wait_ends_it_at_once() {
        let p = Progress::new();
        let seen = p.seen();
        p.advance();
        let t = Instant::now();
        assert!(p.wait_past(seen, Duration::from_secs(10)));
        assert!(t.elapsed() < Duration::from_secs(5));
        assert_eq!(p.seen(), seen + 1);
    }

    #[test]
    fn a_result_arriving_during_the_wait_wakes_the_waiter() {
        let p = Arc::new(Progress::new());
        let seen = p.seen();
        let theirs = p.clone();
        let t = Instant::now();
        let h = std::thread::spawn(move || {
            std::thread::sleep(Duration::from_millis(30));
            theirs.advance();
        });
        assert!(p.wait_past(seen, Duration::from_secs(10)));
        assert!(t.elapsed() < Duration::from_secs(5));
        h.join().unwrap();
    }
}
