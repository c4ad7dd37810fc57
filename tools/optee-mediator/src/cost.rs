// SPDX-License-Identifier: Apache-2.0 OR MIT
//! What a VM's calls cost, counted rather than timed alone: the guest's
//! exits, the returns a VMM made for the guest, the backend's requests to
//! its TEE, the threads it started and the bytes it copied, per call of a
//! session. Counts don't depend on how fast the machine is (an emulator
//! makes every exit slow), so they say where the work is when times can't.
//!
//! The backend fills a call's [`CallCost`]; the [`Mediator`](crate::Mediator)
//! adds its own counts and sums the INVOKE calls of each session. When a
//! session with at least [`REPORT_MIN_CALLS`] calls closes, its
//! [`SessionCost`] is kept for the VMM to report
//! ([`Mediator::take_session_costs`](crate::Mediator::take_session_costs)),
//! at most [`REPORT_MAX`] of them.

use std::collections::HashMap;
use std::fmt;
use std::time::Duration;

use crate::policy::Uuid;

/// Sessions with fewer INVOKE calls are not reported: their per-call
/// figures are too few to mean much (a benchmark makes hundreds).
pub const REPORT_MIN_CALLS: u64 = 50;

/// Closed sessions kept for the report until the VMM takes them; later
/// ones are counted, not kept.
pub const REPORT_MAX: usize = 32;

/// What the backend spent on one standard call.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct CallCost {
    /// Requests to the TEE: ioctls on the host's TEE device, or messages
    /// to a TEE service.
    pub tee_requests: u32,
    /// Bytes copied on the call's path (each copy counted: a bounce in is a
    /// read from guest memory and a write into the TEE's).
    pub bytes_copied: u64,
    /// Threads the backend started for the call.
    pub threads_started: u32,
}

/// The INVOKE calls of one session, summed.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SessionCost {
    /// The session's trusted application.
    pub ta: Uuid,
    /// The session, as the TEE named it.
    pub session: u32,
    /// INVOKE calls completed.
    pub calls: u64,
    /// The guest's exits for them: its CALL_WITH_ARGs and RETURN_FROM_RPCs.
    pub guest_exits: u64,
    /// RETURN_FROM_RPCs a VMM made for the guest
    /// ([`Mediator::return_from_foreign_intr`](crate::Mediator::return_from_foreign_intr)).
    pub vmm_returns: u64,
    /// The backend's part.
    pub tee_requests: u64,
    /// The backend's part.
    pub bytes_copied: u64,
    /// The backend's part.
    pub threads_started: u64,
    /// From each CALL_WITH_ARG to its result, summed.
    pub time: Duration,
}

/// One call's counts, as the mediator finishes it.
#[derive(Debug, Clone, Copy)]
pub(crate) struct CallTally {
    pub guest_exits: u64,
    pub vmm_returns: u64,
    pub time: Duration,
    pub backend: CallCost,
}

impl SessionCost {
    /// A session with no call yet.
    pub fn new(ta: Uuid, session: u32) -> Self {
        SessionCost {
            ta,
            session,
            ..SessionCost::default()
        }
    }

    pub(crate) fn add(&mut self, c: CallTally) {
        self.calls += 1;
        self.guest_exits += c.guest_exits;
        self.vmm_returns += c.vmm_returns;
        self.tee_requests += u64::from(c.backend.tee_requests);
        self.bytes_copied += c.backend.bytes_copied;
        self.threads_started += u64::from(c.backend.threads_started);
        self.time += c.time;
    }

    fn per_call(&self, n: u64) -> f64 {
        n as f64 / self.calls.max(1) as f64
    }
}

/// One line: `TA ... session N: C calls; per call: ...`.
impl fmt::Display for SessionCost {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "TA {} session {:#x}: {} calls; per call: {:.2} guest exits, {:.2} returns by the \
             VMM, {:.2} TEE requests, {:.3} threads started, {:.0} bytes copied, {} us",
            self.ta,
            self.session,
            self.calls,
            self.per_call(self.guest_exits),
            self.per_call(self.vmm_returns),
            self.per_call(self.tee_requests),
            self.per_call(self.threads_started),
            self.per_call(self.bytes_copied),
            self.time.as_micros() / u128::from(self.calls.max(1)),
        )
    }
}

/// Closed sessions' costs, as [`Mediator::take_session_costs`](crate::Mediator::take_session_costs)
/// gives them.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CostReport {
    /// In the order they closed (the first [`REPORT_MAX`]).
    pub sessions: Vec<SessionCost>,
    /// Sessions of at least [`REPORT_MIN_CALLS`] calls beyond those.
    pub not_kept: u64,
}

/// Each open session's sums, and the closed ones kept for the report.
/// Bounded: open sessions by the VM's session quota, closed ones by
/// [`REPORT_MAX`].
#[derive(Debug, Default)]
pub(crate) struct Ledger {
    open: HashMap<u32, SessionCost>,
    report: CostReport,
}

impl Ledger {
    pub fn opened(&mut self, ta: Uuid, session: u32) {
        self.open.insert(session, SessionCost::new(ta, session));
    }

    pub fn invoked(&mut self, session: u32, c: CallTally) {
        if let Some(s) = self.open.get_mut(&session) {
            s.add(c);
        }
    }

    pub fn closed(&mut self, session: u32) {
        if let Some(s) = self.open.remove(&session) {
            self.keep(s);
        }
    }

    /// The VM ends: its open sessions count as closed.
    pub fn close_all(&mut self) {
        let mut open: Vec<SessionCost> = self.open.drain().map(|(_, s)| s).collect();
        open.sort_by_key(|s| s.session);
        for s in open {
            self.keep(s);
        }
    }

    fn keep(&mut self, s: SessionCost) {
        if s.calls < REPORT_MIN_CALLS {
            return;
        }
        if self.report.sessions.len() < REPORT_MAX {
            self.report.sessions.push(s);
        } else {
            self.report.not_kept += 1;
        }
    }

    pub fn take(&mut self) -> CostReport {
        std::mem::take(&mut self.report)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_session_line_gives_per_call_figures() {
        let mut s = SessionCost::new(Uuid([0x11; 16]), 7);
        for exits in [1, 3] {
            s.add(CallTally {
                guest_exits: exits,
                vmm_returns: 1,
                time: Duration::from_micros(300),
                backend: CallCost {
                    tee_requests: 3,
                    bytes_copied: 1000,
                    threads_started: u32::from(exits == 1),
                },
            });
        }
        assert_eq!(
            s.to_string(),
            "TA 11111111-1111-1111-1111-111111111111 session 0x7: 2 calls; per call: 2.00 guest \
             exits, 1.00 returns by the VMM, 3.00 TEE requests, 0.500 threads started, 1000 bytes \
             copied, 300 us"
        );
    }

    fn counts(exits: u64) -> CallTally {
        CallTally {
            guest_exits: exits,
            vmm_returns: 0,
            time: Duration::ZERO,
            backend: CallCost::default(),
        }
    }

    #[test]
    fn the_ledger_reports_closed_sessions_with_enough_calls_in_closing_order() {
        let mut l = Ledger::default();
        for s in [1, 2, 3] {
            l.opened(Uuid::NIL, s);
        }
        for _ in 0..REPORT_MIN_CALLS {
            l.invoked(1, counts(1));
            l.invoked(3, counts(2));
        }
        l.invoked(2, counts(1));
        l.invoked(9, counts(1)); // not open: ignored
        l.closed(3);
        l.closed(2);
        l.closed(1);
        let r = l.take();
        assert_eq!(
            r.sessions
                .iter()
                .map(|s| (s.session, s.guest_exits))
                .collect::<Vec<_>>(),
            vec![(3, 2 * REPORT_MIN_CALLS), (1, REPORT_MIN_CALLS)]
        );
        assert_eq!(r.not_kept, 0);
        assert_eq!(l.take(), CostReport::default(), "taken once");
    }

    #[test]
    fn the_ledger_keeps_a_bounded_report_and_counts_the_rest() {
        let mut l = Ledger::default();
        for s in 0..(REPORT_MAX as u32 + 5) {
            l.opened(Uuid::NIL, s);
            for _ in 0..REPORT_MIN_CALLS {
                l.invoked(s, counts(1));
            }
        }
        l.close_all();
        let r = l.take();
        assert_eq!(r.sessions.len(), REPORT_MAX);
        assert_eq!(r.not_kept, 5);
        assert_eq!(r.sessions[0].session, 0);
    }

    #[test]
    fn a_session_without_calls_divides_by_nothing() {
        let s = SessionCost::new(Uuid::NIL, 1);
        assert!(s
            .to_string()
            .contains("0 calls; per call: 0.00 guest exits"));
    }
}
