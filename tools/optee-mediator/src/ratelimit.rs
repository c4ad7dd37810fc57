// SPDX-License-Identifier: Apache-2.0 OR MIT
//! The rate limit of a VM's refusal logs: the guest decides how often the
//! mediator refuses, so without a limit it decides how much the host logs.

use std::time::{Duration, Instant};

/// Where a mediator reads the time for its log rate limit. Tests inject a
/// clock they move by hand; the default is [`SystemClock`].
pub trait Clock: Send + Sync {
    /// Now.
    fn now(&self) -> Instant;
}

/// The monotonic clock of the host ([`Instant::now`]).
#[derive(Debug, Clone, Copy, Default)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> Instant {
        Instant::now()
    }
}

/// The window the limit counts in.
pub const LOG_WINDOW: Duration = Duration::from_secs(1);

/// What to do with one refusal log line.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// Log it; `suppressed` lines were dropped since the last one logged
    /// (say so first when it is not 0).
    Log {
        /// Lines dropped before this one.
        suppressed: u64,
    },
    /// Drop it (counted).
    Suppress,
}

/// At most `limit` lines per [`LOG_WINDOW`] (fixed windows, the first
/// starting at the first line); the others are counted and reported with
/// the first line logged after them.
#[derive(Debug, Clone)]
pub struct LogLimiter {
    limit: u32,
    window_start: Option<Instant>,
    logged: u32,
    suppressed: u64,
}

impl LogLimiter {
    /// A limiter of `limit` lines a window (0: none, only the counts).
    pub fn new(limit: u32) -> Self {
        LogLimiter {
            limit,
            window_start: None,
            logged: 0,
            suppressed: 0,
        }
    }

    /// The verdict on a line at `now`. A clock that goes back is taken as
    /// standing still.
    pub fn check(&mut self, now: Instant) -> Verdict {
        let expired = self
            .window_start
            .is_none_or(|start| now.saturating_duration_since(start) >= LOG_WINDOW);
        if expired {
            self.window_start = Some(now);
            self.logged = 0;
        }
        if self.logged < self.limit {
            self.logged += 1;
            Verdict::Log {
                suppressed: std::mem::take(&mut self.suppressed),
            }
        } else {
            self.suppressed = self.suppressed.saturating_add(1);
            Verdict::Suppress
        }
    }

    /// Lines dropped and not reported yet; reported (and reset) by the
    /// caller, e.g. at teardown.
    pub fn take_suppressed(&mut self) -> u64 {
        std::mem::take(&mut self.suppressed)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn logs_the_limit_then_counts_then_reports_after_the_window() {
        let t0 = Instant::now();
        let mut l = LogLimiter::new(3);
        for _ in 0..3 {
            assert_eq!(l.check(t0), Verdict::Log { suppressed: 0 });
        }
        for i in 0..5 {
            let t = t0 + Duration::from_millis(100 * i);
            assert_eq!(l.check(t), Verdict::Suppress);
        }
        let t1 = t0 + LOG_WINDOW;
        assert_eq!(l.check(t1), Verdict::Log { suppressed: 5 });
        assert_eq!(l.check(t1), Verdict::Log { suppressed: 0 });
        assert_eq!(l.check(t1), Verdict::Log { suppressed: 0 });
        assert_eq!(l.check(t1), Verdict::Suppress);
        assert_eq!(l.take_suppressed(), 1);
        assert_eq!(l.take_suppressed(), 0);
    }

    #[test]
    fn a_clock_going_back_does_not_open_a_window_or_panic() {
        let t1 = Instant::now() + LOG_WINDOW * 10;
        let mut l = LogLimiter::new(1);
        assert_eq!(l.check(t1), Verdict::Log { suppressed: 0 });
        assert_eq!(l.check(t1 - LOG_WINDOW * 5), Verdict::Suppress);
        assert_eq!(l.check(t1 + LOG_WINDOW), Verdict::Log { suppressed: 1 });
    }

    #[test]
    fn limit_zero_logs_nothing_but_counts() {
        let t0 = Instant::now();
        let mut l = LogLimiter::new(0);
        assert_eq!(l.check(t0), Verdict::Suppress);
        assert_eq!(l.check(t0 + LOG_WINDOW), Verdict::Suppress);
        assert_eq!(l.take_suppressed(), 2);
    }
}
