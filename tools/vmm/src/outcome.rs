// SPDX-License-Identifier: Apache-2.0 OR MIT
//! How a run ends: what each vCPU thread ended with, which of those decides
//! the run's outcome, and the process's exit status for it.

/// How the guest stopped.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stop {
    /// PSCI SYSTEM_OFF.
    PowerOff,
    /// PSCI SYSTEM_RESET (the guest rebooted, e.g. after a panic with panic=-1).
    Reset,
    /// Another system event.
    Event(u32),
}

impl Stop {
    /// The words of the report line: "guest {how} (vCPU ...".
    pub fn describe(self) -> String {
        match self {
            Stop::PowerOff => "powered off".to_string(),
            Stop::Reset => "reset (a panic with panic=-1?)".to_string(),
            Stop::Event(t) => format!("stopped with system event {t}"),
        }
    }

    /// The process's exit status: 0 for a power-off, 3 for a reset or any
    /// other system event (the guest stopped, but not cleanly); not 2,
    /// every tosfwd binary's status for a usage error
    /// ([`tosfwd_log::EXIT_USAGE`]).
    pub fn exit_status(self) -> u8 {
        match self {
            Stop::PowerOff => 0,
            Stop::Reset | Stop::Event(_) => EXIT_STOPPED,
        }
    }
}

/// The exit status when the guest reset or stopped with a system event
/// other than a power-off.
pub const EXIT_STOPPED: u8 = 3;

/// The exit status when the run failed (the VM could not be built, a vCPU
/// thread failed, or the vCPU threads could not be stopped).
pub const EXIT_ERROR: u8 = 1;

/// The exit status of a run's result.
pub fn exit_status<E>(r: Result<Stop, E>) -> u8 {
    match r {
        Ok(stop) => stop.exit_status(),
        Err(_) => EXIT_ERROR,
    }
}

/// What one vCPU thread ended with.
#[derive(Debug, PartialEq, Eq)]
pub enum VcpuEnd<E> {
    /// The guest stopped (a system event on this vCPU).
    Stopped(Stop),
    /// The VMM asked it to stop (another vCPU ended the run).
    Kicked,
    /// It failed.
    Failed(E),
}

/// Collects the vCPU threads' ends. The first thread to stop the guest or
/// fail decides the outcome, except that an error never hides behind a
/// stop: a failure reported after a stop replaces it (the first failure
/// wins). A kicked thread decides nothing.
#[derive(Debug)]
pub struct Ending<E> {
    decided: Option<(usize, Result<Stop, E>)>,
}

impl<E> Default for Ending<E> {
    fn default() -> Self {
        Ending { decided: None }
    }
}

impl<E> Ending<E> {
    /// Records vCPU `vcpu`'s end. True when it ends the run, i.e. this is
    /// the first end that is not a kick: the others must then be kicked.
    pub fn record(&mut self, vcpu: usize, end: VcpuEnd<E>) -> bool {
        let first = self.decided.is_none();
        match (end, &self.decided) {
            (VcpuEnd::Kicked, _) => return false,
            (VcpuEnd::Stopped(s), None) => self.decided = Some((vcpu, Ok(s))),
            (VcpuEnd::Stopped(_), Some(_)) => {}
            (VcpuEnd::Failed(e), None | Some((_, Ok(_)))) => self.decided = Some((vcpu, Err(e))),
            (VcpuEnd::Failed(_), Some((_, Err(_)))) => {}
        }
        first
    }

    /// Whether the run has ended.
    pub fn is_decided(&self) -> bool {
        self.decided.is_some()
    }

    /// The outcome: which vCPU decided it and how, or None when no thread
    /// stopped the guest or failed.
    pub fn into_outcome(self) -> Option<(usize, Result<Stop, E>)> {
        self.decided
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exit_statuses() {
        assert_eq!(exit_status::<()>(Ok(Stop::PowerOff)), 0);
        assert_eq!(exit_status::<()>(Ok(Stop::Reset)), 3);
        assert_eq!(exit_status::<()>(Ok(Stop::Event(5))), 3);
        assert_eq!(exit_status::<&str>(Err("boom")), 1);
        // 2 is a usage error, in every tosfwd binary.
        for s in [Stop::PowerOff, Stop::Reset, Stop::Event(5)] {
            assert_ne!(s.exit_status(), tosfwd_log::EXIT_USAGE);
        }
        assert_ne!(EXIT_ERROR, tosfwd_log::EXIT_USAGE);
    }

    #[test]
    fn descriptions_keep_the_report_words() {
        assert_eq!(Stop::PowerOff.describe(), "powered off");
        assert_eq!(Stop::Reset.describe(), "reset (a panic with panic=-1?)");
        assert_eq!(Stop::Event(9).describe(), "stopped with system event 9");
    }

    #[test]
    fn the_first_stop_decides_and_kicks_decide_nothing() {
        let mut e = Ending::<&str>::default();
        assert!(!e.record(1, VcpuEnd::Kicked));
        assert!(!e.is_decided());
        assert!(e.record(0, VcpuEnd::Stopped(Stop::PowerOff)));
        assert!(!e.record(2, VcpuEnd::Stopped(Stop::Reset)));
        assert!(!e.record(3, VcpuEnd::Kicked));
        assert_eq!(e.into_outcome(), Some((0, Ok(Stop::PowerOff))));
    }

    #[test]
    fn a_failure_decides_and_is_never_hidden_by_a_stop() {
        let mut e = Ending::default();
        assert!(e.record(1, VcpuEnd::Failed("first")));
        assert!(!e.record(0, VcpuEnd::Stopped(Stop::PowerOff)));
        assert!(!e.record(2, VcpuEnd::Failed("second")));
        assert_eq!(e.into_outcome(), Some((1, Err("first"))));

        let mut e = Ending::default();
        assert!(e.record(0, VcpuEnd::Stopped(Stop::PowerOff)));
        assert!(!e.record(1, VcpuEnd::Failed("late")));
        assert_eq!(e.into_outcome(), Some((1, Err("late"))));
    }

    #[test]
    fn only_kicks_is_no_outcome() {
        let mut e = Ending::<()>::default();
        assert!(!e.record(0, VcpuEnd::Kicked));
        assert_eq!(e.into_outcome(), None);
    }
}
