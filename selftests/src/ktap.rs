// SPDX-License-Identifier: Apache-2.0 OR MIT
//! A KTAP writer with kselftest's conventions (tools/testing/selftests/kselftest.h):
//! `TAP version 13`, a plan, one `ok`/`not ok` line per case with `# SKIP` or
//! `# XFAIL` directives, a `# Totals:` line, and the kselftest exit codes.

use std::io::{self, Write};
use std::panic::{self, AssertUnwindSafe};
use std::process::ExitCode;

/// kselftest exit code: every case passed (or was an expected failure).
pub const KSFT_PASS: u8 = 0;
/// kselftest exit code: a case failed, or the plan was not met.
pub const KSFT_FAIL: u8 = 1;
/// kselftest exit code: nothing ran because something the test needs is missing.
pub const KSFT_SKIP: u8 = 4;

/// How one case ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// The property holds.
    Pass,
    /// The property does not hold; the message says how.
    Fail(String),
    /// The case could not run; the message says what is missing.
    Skip(String),
    /// A known failure, expected on this kernel; the message names it.
    XFail(String),
}

/// Counters, as in kselftest's `# Totals:` line.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Totals {
    /// Cases that passed.
    pub pass: usize,
    /// Cases that failed.
    pub fail: usize,
    /// Expected failures.
    pub xfail: usize,
    /// Skipped cases.
    pub skip: usize,
}

/// Writes one KTAP document.
pub struct Ktap<W: Write> {
    out: W,
    plan: usize,
    next: usize,
    totals: Totals,
}

impl Ktap<io::Stdout> {
    /// A writer on standard output announcing `plan` cases.
    pub fn stdout(plan: usize) -> Self {
        Ktap::new(io::stdout(), plan)
    }
}

impl<W: Write> Ktap<W> {
    /// Starts a document of `plan` cases on `out`.
    pub fn new(mut out: W, plan: usize) -> Self {
        let _ = writeln!(out, "TAP version 13");
        let _ = writeln!(out, "1..{plan}");
        let _ = out.flush();
        Ktap {
            out,
            plan,
            next: 1,
            totals: Totals::default(),
        }
    }

    /// A diagnostic line (`# ...`), one per line of `msg`.
    pub fn diag(&mut self, msg: &str) {
        for line in msg.lines() {
            let _ = writeln!(self.out, "# {line}");
        }
        let _ = self.out.flush();
    }

    /// Records the result of the case `name`.
    pub fn report(&mut self, name: &str, outcome: Outcome) {
        let n = self.next;
        self.next += 1;
        let line = match &outcome {
            Outcome::Pass => {
                self.totals.pass += 1;
                format!("ok {n} {name}")
            }
            Outcome::Fail(why) => {
                self.totals.fail += 1;
                self.diag(&format!("{name}: {why}"));
                format!("not ok {n} {name}")
            }
            Outcome::Skip(why) => {
                self.totals.skip += 1;
                format!("ok {n} {name} # SKIP {}", one_line(why))
            }
            Outcome::XFail(why) => {
                self.totals.xfail += 1;
                format!("ok {n} {name} # XFAIL {}", one_line(why))
            }
        };
        let _ = writeln!(self.out, "{line}");
        let _ = self.out.flush();
    }

    /// Runs `case` and records its outcome; a panic is a failure of that case
    /// only, reported with its message.
    pub fn run(&mut self, name: &str, case: impl FnOnce() -> Outcome) {
        let outcome = match panic::catch_unwind(AssertUnwindSafe(case)) {
            Ok(o) => o,
            Err(e) => {
                let msg = e
                    .downcast_ref::<String>()
                    .map(String::as_str)
                    .or_else(|| e.downcast_ref::<&str>().copied())
                    .unwrap_or("panic");
                Outcome::Fail(format!("panicked: {msg}"))
            }
        };
        self.report(name, outcome);
    }

    /// The counters so far.
    pub fn totals(&self) -> Totals {
        self.totals
    }

    /// Ends the document with the `# Totals:` line and returns the exit code:
    /// [`KSFT_FAIL`] if a case failed or the plan was not met, [`KSFT_SKIP`] if
    /// every case was skipped, else [`KSFT_PASS`].
    pub fn finish(mut self) -> u8 {
        let t = self.totals;
        let ran = self.next - 1;
        if ran != self.plan {
            self.diag(&format!("planned {} cases, ran {ran}", self.plan));
        }
        let _ = writeln!(
            self.out,
            "# Totals: pass:{} fail:{} xfail:{} xpass:0 skip:{} error:0",
            t.pass, t.fail, t.xfail, t.skip
        );
        let _ = self.out.flush();
        if t.fail > 0 || ran != self.plan {
            KSFT_FAIL
        } else if t.skip == ran && ran > 0 {
            KSFT_SKIP
        } else {
            KSFT_PASS
        }
    }
}

/// Skips a whole test program before any case runs: `1..0 # SKIP reason`,
/// exit [`KSFT_SKIP`].
pub fn skip_all<W: Write>(mut out: W, reason: &str) -> u8 {
    let _ = writeln!(out, "TAP version 13");
    let _ = writeln!(out, "1..0 # SKIP {}", one_line(reason));
    let _ = out.flush();
    KSFT_SKIP
}

/// Converts a kselftest code into the process exit code.
pub fn exit(code: u8) -> ExitCode {
    ExitCode::from(code)
}

fn one_line(s: &str) -> String {
    s.replace('\n', " ")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn doc(plan: usize, f: impl FnOnce(&mut Ktap<&mut Vec<u8>>)) -> (String, u8) {
        let mut buf = Vec::new();
        let mut k = Ktap::new(&mut buf, plan);
        f(&mut k);
        let code = k.finish();
        (String::from_utf8(buf).unwrap(), code)
    }

    #[test]
    fn all_passing_cases_exit_zero_with_totals() {
        let (out, code) = doc(2, |k| {
            k.report("a", Outcome::Pass);
            k.report("b", Outcome::Pass);
        });
        assert_eq!(
            out,
            "TAP version 13\n1..2\nok 1 a\nok 2 b\n\
             # Totals: pass:2 fail:0 xfail:0 xpass:0 skip:0 error:0\n"
        );
        assert_eq!(code, KSFT_PASS);
    }

    #[test]
    fn a_failing_case_prints_not_ok_with_its_reason_and_exits_one() {
        let (out, code) = doc(2, |k| {
            k.report("a", Outcome::Pass);
            k.report("b", Outcome::Fail("x0 = 0x1, want 0x0".into()));
        });
        assert!(
            out.contains("# b: x0 = 0x1, want 0x0\nnot ok 2 b\n"),
            "{out}"
        );
        assert!(out.contains("pass:1 fail:1 "), "{out}");
        assert_eq!(code, KSFT_FAIL);
    }

    #[test]
    fn skip_and_xfail_use_kselftest_directives() {
        let (out, code) = doc(3, |k| {
            k.report("a", Outcome::Pass);
            k.report("b", Outcome::Skip("no EL2\nat all".into()));
            k.report("c", Outcome::XFail("filter refused".into()));
        });
        assert!(out.contains("ok 2 b # SKIP no EL2 at all\n"), "{out}");
        assert!(out.contains("ok 3 c # XFAIL filter refused\n"), "{out}");
        assert!(
            out.contains("pass:1 fail:0 xfail:1 xpass:0 skip:1 error:0"),
            "{out}"
        );
        assert_eq!(code, KSFT_PASS);
    }

    #[test]
    fn only_skipped_cases_exit_four() {
        let (_, code) = doc(1, |k| k.report("a", Outcome::Skip("why".into())));
        assert_eq!(code, KSFT_SKIP);
    }

    #[test]
    fn an_unmet_plan_fails() {
        let (out, code) = doc(3, |k| k.report("a", Outcome::Pass));
        assert!(out.contains("# planned 3 cases, ran 1\n"), "{out}");
        assert_eq!(code, KSFT_FAIL);
    }

    #[test]
    fn a_panicking_case_fails_alone_and_the_next_one_runs() {
        let (out, code) = doc(2, |k| {
            k.run("boom", || panic!("guest x1 mismatch"));
            k.run("fine", || Outcome::Pass);
        });
        assert!(
            out.contains("# boom: panicked: guest x1 mismatch\nnot ok 1 boom\n"),
            "{out}"
        );
        assert!(out.contains("ok 2 fine\n"), "{out}");
        assert_eq!(code, KSFT_FAIL);
    }

    #[test]
    fn skip_all_prints_an_empty_plan_with_the_reason() {
        let mut buf = Vec::new();
        assert_eq!(skip_all(&mut buf, "/dev/kvm is absent"), KSFT_SKIP);
        assert_eq!(
            String::from_utf8(buf).unwrap(),
            "TAP version 13\n1..0 # SKIP /dev/kvm is absent\n"
        );
    }
}
