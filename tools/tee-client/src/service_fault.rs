// SPDX-License-Identifier: Apache-2.0 OR MIT
//! `--service-fault`: the guest's side of the bench's fault run, where the
//! VMM's TEE is a separate service (`tosfwd-vmm --tee remote:PATH`, served
//! by `tosfwd-teed`) that the host kills with SIGKILL during a long call
//! and starts again on the same socket. The cases run in order and share
//! their sessions:
//!
//! 1. sessions with the memory and the hello TA open, hello answers (the
//!    service is up);
//! 2. `# service-fault: slow call started` is printed, then the memory
//!    TA's CMD_SLOW of [`memory::MAX_ROUNDS`] rounds (minutes of work) is
//!    invoked; the host kills the service during it, so the call must end
//!    with TEEC_ERROR_COMMUNICATION from TEEC_ORIGIN_COMMS;
//! 3. while the service is down, opening a session fails the same way (or
//!    the service is already back: recorded, not a failure);
//! 4. opening a hello session is retried every [`RETRY_PERIOD`] for up to
//!    [`RETRY_LIMIT`] until the VMM has reconnected to the restarted
//!    service; every failure on the way must be COMMUNICATION from COMMS;
//!    the new session answers;
//! 5. the sessions opened before the crash are gone from the TEE: INVOKE
//!    answers TEEC_ERROR_BAD_PARAMETERS from TEEC_ORIGIN_TEE (as OP-TEE
//!    answers a closed session) and closing them works;
//! 6. the memory TA works on registered memory after the reconnect.
//!
//! `# service-fault: ...` lines say what happened (the host script waits
//! for the first one; the report shows them); the last is
//! `# service-fault: done`.

use std::io::Write;
use std::time::{Duration, Instant};

use optee_mediator::msg::teec;
use optee_mediator::utee::ta::{hello, memory, HELLO_UUID, MEMORY_UUID};
use tosfwd_selftests::ktap::{Ktap, Outcome};
use tosfwd_tee_client::sys::TEE_IOCTL_LOGIN_PUBLIC;
use tosfwd_tee_client::{param, Tee, TeeResult};

use crate::{close, invoke, open, CaseResult};

/// How often a session is tried while the service is down.
pub const RETRY_PERIOD: Duration = Duration::from_millis(200);
/// How long the service may stay away.
pub const RETRY_LIMIT: Duration = Duration::from_secs(120);

/// The note (`# service-fault: slow call started`) the host waits for
/// before it kills the service.
pub const SLOW_CALL_STARTED: &str = "slow call started";

/// The sessions the cases pass on to each other.
pub struct Fault<'a> {
    tee: &'a Tee,
    /// The memory TA's session from before the crash.
    memory: Option<u32>,
    /// The hello TA's session from before the crash.
    hello: Option<u32>,
}

/// A case of this mode: it may use and update the shared sessions.
type FaultCase = (&'static str, fn(&mut Fault) -> CaseResult);

/// The cases, in the order they must run.
pub const CASES: [FaultCase; 6] = [
    ("sessions_open_and_hello_answers_with_the_service_up", up),
    (
        "slow_call_ends_with_communication_when_the_service_is_killed",
        slow_call_killed,
    ),
    ("calls_fail_cleanly_while_the_service_is_down", down),
    ("a_new_session_opens_once_the_service_is_back", back),
    (
        "sessions_from_before_the_crash_answer_bad_parameters_and_close",
        old_sessions,
    ),
    (
        "memory_ta_reverses_registered_memory_after_the_reconnect",
        registered_after,
    ),
];

/// A `# service-fault: ...` line, flushed at once (the host script reads
/// the console while the guest runs).
fn note(msg: &str) {
    let mut out = std::io::stdout().lock();
    let _ = writeln!(out, "# service-fault: {msg}");
    let _ = out.flush();
}

/// Whether `r` is the answer of a VMM whose TEE service is gone:
/// TEEC_ERROR_COMMUNICATION from TEEC_ORIGIN_COMMS.
fn service_gone(r: TeeResult) -> bool {
    r.ret == teec::ERROR_COMMUNICATION && r.origin == teec::ORIGIN_COMMS
}

fn describe(r: TeeResult) -> String {
    format!("ret {:#x} origin {}", r.ret, r.origin)
}

/// Calls `attempt` (with its number, from 1) every `period` until it gives
/// a value (`Ok(Some)`), for at most `limit`; `Ok(None)` means "not yet",
/// an error ends the wait. Returns the value, the number of attempts and
/// the time they took, or `None` when the time ran out.
fn retry<T>(
    period: Duration,
    limit: Duration,
    mut attempt: impl FnMut(u32) -> Result<Option<T>, String>,
) -> Result<Option<(T, u32, Duration)>, String> {
    let start = Instant::now();
    let mut n = 0;
    loop {
        n += 1;
        if let Some(v) = attempt(n)? {
            return Ok(Some((v, n, start.elapsed())));
        }
        if start.elapsed() + period > limit {
            return Ok(None);
        }
        std::thread::sleep(period);
    }
}

/// INC_VALUE of `v` in the hello session `s` must give `v + 1`.
fn inc(tee: &Tee, s: u32, v: u64) -> CaseResult {
    let mut p = [param::value_inout(v, 0)];
    invoke(tee, s, hello::CMD_INC_VALUE, &mut p, "INC_VALUE")?;
    ensure!(p[0].a == v + 1, "INC_VALUE of {v} gave {}", p[0].a);
    Ok(())
}

fn up(f: &mut Fault) -> CaseResult {
    f.memory = Some(open(f.tee, MEMORY_UUID, "the memory TA")?);
    let h = open(f.tee, HELLO_UUID, "the hello TA")?;
    f.hello = Some(h);
    inc(f.tee, h, 41)
}

fn slow_call_killed(f: &mut Fault) -> CaseResult {
    let s = f
        .memory
        .ok_or("no memory TA session (the first case failed)")?;
    note(SLOW_CALL_STARTED);
    let t = Instant::now();
    let mut p = [param::value_inout(memory::MAX_ROUNDS, 0)];
    let r = f
        .tee
        .invoke(s, memory::CMD_SLOW, &mut p)
        .map_err(|e| format!("TEE_IOC_INVOKE SLOW: {e}"))?;
    note(&format!(
        "slow call ended after {:.1} s: {}",
        t.elapsed().as_secs_f64(),
        describe(r)
    ));
    ensure!(
        r.ret != teec::SUCCESS,
        "SLOW of {} rounds succeeded ({} rounds done): the service was not killed during the call",
        memory::MAX_ROUNDS,
        p[0].a
    );
    ensure!(
        service_gone(r),
        "SLOW gave {}, want COMMUNICATION ({:#x}) from COMMS ({})",
        describe(r),
        teec::ERROR_COMMUNICATION,
        teec::ORIGIN_COMMS
    );
    Ok(())
}

/// One attempt to open a hello session: `Ok(Some(session))`, `Ok(None)`
/// when the VMM says its service is gone, an error for any other answer.
fn try_open_hello(tee: &Tee) -> Result<Option<u32>, String> {
    let (s, r) = tee
        .open_session(HELLO_UUID.0, TEE_IOCTL_LOGIN_PUBLIC, &mut [])
        .map_err(|e| format!("TEE_IOC_OPEN_SESSION the hello TA: {e}"))?;
    if r.ret == teec::SUCCESS {
        Ok(Some(s))
    } else if service_gone(r) {
        Ok(None)
    } else {
        Err(format!(
            "opening the hello TA gave {}, want success or COMMUNICATION from COMMS",
            describe(r)
        ))
    }
}

fn down(f: &mut Fault) -> CaseResult {
    match try_open_hello(f.tee)? {
        None => note("opening a session while the service is down: COMMUNICATION from COMMS"),
        Some(s) => {
            note("the service was already back: opening a session succeeded");
            close(f.tee, s, "the hello TA")?;
        }
    }
    Ok(())
}

fn back(f: &mut Fault) -> CaseResult {
    let (s, n, took) = retry(RETRY_PERIOD, RETRY_LIMIT, |n| {
        try_open_hello(f.tee).map_err(|e| format!("attempt {n}: {e}"))
    })?
    .ok_or_else(|| {
        format!(
            "no session in {} s (every attempt COMMUNICATION from COMMS): the service did not \
             come back or the VMM did not reconnect",
            RETRY_LIMIT.as_secs()
        )
    })?;
    note(&format!(
        "a new session after {n} attempt(s), {:.1} s",
        took.as_secs_f64()
    ));
    inc(f.tee, s, 1000)?;
    close(f.tee, s, "the new hello session")
}

fn old_sessions(f: &mut Fault) -> CaseResult {
    let old = [
        // Parameters each TA would take: a session that survived would
        // answer SUCCESS (one round of SLOW, INC_VALUE), not BAD_PARAMETERS.
        (f.memory.take(), "memory", memory::CMD_SLOW),
        (f.hello.take(), "hello", hello::CMD_INC_VALUE),
    ];
    for (s, ta, func) in old {
        let s = s.ok_or_else(|| format!("no {ta} TA session (the first case failed)"))?;
        let mut p = [param::value_inout(1, 0)];
        let r = f
            .tee
            .invoke(s, func, &mut p)
            .map_err(|e| format!("TEE_IOC_INVOKE the old {ta} session: {e}"))?;
        ensure!(
            r.ret == teec::ERROR_BAD_PARAMETERS && r.origin == teec::ORIGIN_TEE,
            "the old {ta} session {s} answered {}, want BAD_PARAMETERS ({:#x}) from TEE ({})",
            describe(r),
            teec::ERROR_BAD_PARAMETERS,
            teec::ORIGIN_TEE
        );
        close(f.tee, s, &format!("the old {ta} session"))?;
    }
    Ok(())
}

fn registered_after(f: &mut Fault) -> CaseResult {
    crate::registered_memory(f.tee)
}

/// Runs the cases on `k` (planned with `CASES.len()`), in order.
pub fn run<W: Write>(tee: &Tee, k: &mut Ktap<W>) {
    let mut f = Fault {
        tee,
        memory: None,
        hello: None,
    };
    for (name, case) in CASES {
        k.run(name, || match case(&mut f) {
            Ok(()) => Outcome::Pass,
            Err(why) => Outcome::Fail(why),
        });
    }
    note("done");
}

#[cfg(test)]
mod tests {
    use super::*;

    const MS: Duration = Duration::from_millis(1);

    #[test]
    fn only_communication_from_comms_means_the_service_is_gone() {
        let r = |ret, origin| TeeResult { ret, origin };
        assert!(service_gone(r(0xffff_000e, 2)));
        assert!(!service_gone(r(0xffff_000e, 3)));
        assert!(!service_gone(r(0xffff_0006, 2)));
        assert!(!service_gone(r(0, 2)));
    }

    #[test]
    fn retry_returns_the_first_value_and_counts_attempts() {
        let (v, n, _) = retry(MS, Duration::from_secs(5), |n| {
            Ok((n == 3).then_some("session"))
        })
        .unwrap()
        .unwrap();
        assert_eq!((v, n), ("session", 3));
    }

    #[test]
    fn retry_stops_at_an_error() {
        let e = retry(MS, Duration::from_secs(5), |n| -> Result<Option<()>, _> {
            if n < 2 {
                Ok(None)
            } else {
                Err(format!("attempt {n}: wrong answer"))
            }
        })
        .unwrap_err();
        assert_eq!(e, "attempt 2: wrong answer");
    }

    #[test]
    fn retry_gives_up_at_its_limit() {
        let t = Instant::now();
        let mut tries = 0;
        let r = retry(5 * MS, 20 * MS, |_| {
            tries += 1;
            Ok(None::<()>)
        });
        assert_eq!(r, Ok(None));
        assert!((2..=5).contains(&tries), "{tries} attempts");
        assert!(t.elapsed() < Duration::from_secs(2));
    }

    #[test]
    fn cases_have_distinct_names_and_the_slow_one_follows_the_sessions() {
        let names: Vec<_> = CASES.iter().map(|c| c.0).collect();
        let mut sorted = names.clone();
        sorted.sort();
        sorted.dedup();
        assert_eq!(sorted.len(), names.len());
        assert!(names[1].starts_with("slow_call_"));
    }
}
