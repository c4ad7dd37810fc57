// SPDX-License-Identifier: Apache-2.0 OR MIT
//! The rate limit of refusal logs: a guest that is refused in a loop makes
//! the host log at most `Policy::refusal_logs_per_second` lines a second
//! (plus one that counts the others), and is answered exactly as before.

mod common;

use std::cell::RefCell;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::*;
use log::{Level, LevelFilter, Log, Metadata, Record};
use optee_mediator::abi::{self, ret};
use optee_mediator::msg::{attr, cmd, teec, MsgArg, MsgParam};
use optee_mediator::{Clock, Policy, SmcCall, UteeConfig, DEFAULT_REFUSAL_LOGS_PER_SECOND};

thread_local! {
    /// The warn lines logged by this thread (each test runs in its own).
    static LINES: RefCell<Vec<String>> = const { RefCell::new(Vec::new()) };
}

struct Capture;

impl Log for Capture {
    fn enabled(&self, m: &Metadata<'_>) -> bool {
        m.level() <= Level::Warn
    }
    fn log(&self, r: &Record<'_>) {
        if self.enabled(r.metadata()) {
            LINES.with(|l| l.borrow_mut().push(r.args().to_string()));
        }
    }
    fn flush(&self) {}
}

static CAPTURE: Capture = Capture;

/// Starts capturing this thread's warn lines.
fn capture() {
    let _ = log::set_logger(&CAPTURE);
    log::set_max_level(LevelFilter::Warn);
    LINES.with(|l| l.borrow_mut().clear());
}

fn lines() -> Vec<String> {
    LINES.with(|l| l.borrow().clone())
}

/// A clock the test moves by hand.
#[derive(Clone)]
struct HandClock(Arc<Mutex<Instant>>);

impl HandClock {
    fn set(&self, t: Instant) {
        *self.0.lock().unwrap() = t;
    }
}

impl Clock for HandClock {
    fn now(&self) -> Instant {
        *self.0.lock().unwrap()
    }
}

/// A guest whose VM may log `budget` refusals a second, on a hand clock
/// set at the returned instant.
fn guest_on_hand_clock(budget: u32) -> (Guest, HandClock, Instant) {
    let policy = Policy {
        refusal_logs_per_second: budget,
        ..Policy::default()
    };
    let t0 = Instant::now();
    let clock = HandClock(Arc::new(Mutex::new(t0)));
    let mut g = guest_with(policy, UteeConfig::default());
    g.m.set_clock(Box::new(clock.clone()));
    (g, clock, t0)
}

/// What the guest sees of a refusal: a0, and the argument's ret and
/// ret_origin when there is an argument.
type Seen = (u64, Option<(u32, u32)>);

/// Five refusals of different kinds (each logged once), in `session` of the
/// hello TA.
fn refusals(g: &mut Guest, session: u32) -> Vec<Seen> {
    let mut seen = Vec::new();
    let gpa = g.put_arg(&MsgArg::new(cmd::CANCEL, vec![]));
    seen.push((g.call_with_arg_raw(gpa + 0x20).a0(), None));
    let gpa = g.put_arg(&MsgArg::new(9, vec![]));
    seen.push((g.call_with_arg_raw(gpa).a0(), None));
    let r = g.call(SmcCall::new(abi::RETURN_FROM_RPC, &[0, 0, 0]));
    seen.push((r.a0(), None));
    for arg in [
        invoke_arg(session ^ 0x55, 0, vec![]),
        invoke_arg(
            session,
            0,
            vec![MsgParam::new(attr::TMEM_INPUT, RAM, 16, 0)],
        ),
    ] {
        let (a0, out) = g.std_call(&arg);
        seen.push((a0, Some(outcome(&out))));
    }
    seen
}

fn expected() -> Vec<Seen> {
    let bad = Some((teec::ERROR_BAD_PARAMETERS, teec::ORIGIN_COMMS));
    vec![
        (u64::from(ret::EBADADDR), None),
        (u64::from(ret::EBADCMD), None),
        (u64::from(ret::ERESUME), None),
        (u64::from(ret::OK), bad),
        (u64::from(ret::OK), bad),
    ]
}

#[test]
fn refusals_past_the_limit_are_counted_and_reported_after_the_window() {
    assert_eq!(DEFAULT_REFUSAL_LOGS_PER_SECOND, 10);
    capture();
    let (mut g, clock, t0) = guest_on_hand_clock(DEFAULT_REFUSAL_LOGS_PER_SECOND);
    let session = g.open(HELLO);
    assert!(lines().is_empty(), "{:?}", lines());

    // Ten refusals: all logged.
    for _ in 0..2 {
        assert_eq!(refusals(&mut g, session), expected());
    }
    let first = lines();
    assert_eq!(first.len(), 10, "{first:?}");
    assert!(
        first.iter().all(|l| l.starts_with("client 1: ")),
        "{first:?}"
    );
    for (i, what) in [
        "is not 4 KiB aligned",
        "command 9 not allowed",
        "RETURN_FROM_RPC for thread 0, which is not waiting",
        "is not open in this VM",
        "contiguous temporary memory",
    ]
    .iter()
    .enumerate()
    {
        assert!(first[i].contains(what), "{i}: {first:?}");
        assert!(first[i + 5].contains(what), "{i}: {first:?}");
    }

    // Fifteen more in the same second: answered alike, none logged.
    for i in 0..3 {
        clock.set(t0 + Duration::from_millis(300 * i));
        assert_eq!(refusals(&mut g, session), expected());
    }
    assert_eq!(lines(), first);

    // The next second: the count, then the refusal.
    clock.set(t0 + Duration::from_secs(1));
    let gpa = g.put_arg(&MsgArg::new(9, vec![]));
    assert_eq!(g.call_with_arg_raw(gpa).a0(), u64::from(ret::EBADCMD));
    let all = lines();
    assert_eq!(all.len(), 12, "{all:?}");
    assert_eq!(
        all[10],
        "client 1: 15 refusals not logged (at most 10 a second)"
    );
    assert_eq!(all[11], "client 1: command 9 not allowed");

    // Successful calls are not refusals: nothing logged.
    assert_eq!(
        g.invoke(session, 0, vec![value(attr::VALUE_INOUT, 1)])
            .params[0]
            .a,
        2
    );
    assert_eq!(lines().len(), 12);
}

#[test]
fn the_limit_is_per_vm_policy_and_teardown_reports_what_was_not_logged() {
    capture();
    let (mut g, _clock, _) = guest_on_hand_clock(2);
    let session = g.open(HELLO);
    assert_eq!(refusals(&mut g, session), expected());
    assert_eq!(lines().len(), 2, "{:?}", lines());
    // Another VM has its own budget.
    let (mut other, _c, _) = guest_on_hand_clock(DEFAULT_REFUSAL_LOGS_PER_SECOND);
    let gpa = other.put_arg(&MsgArg::new(9, vec![]));
    assert_eq!(other.call_with_arg_raw(gpa).a0(), u64::from(ret::EBADCMD));
    assert_eq!(lines().len(), 3);

    drop(g);
    let all = lines();
    assert_eq!(all.len(), 4, "{all:?}");
    assert_eq!(all[3], "client 1: 3 more refusals not logged");
}

#[test]
fn with_no_budget_nothing_is_logged_and_the_answers_stay() {
    capture();
    let (mut g, clock, t0) = guest_on_hand_clock(0);
    let session = g.open(HELLO);
    for s in 0..3 {
        clock.set(t0 + Duration::from_secs(s));
        assert_eq!(refusals(&mut g, session), expected());
    }
    assert!(lines().is_empty(), "{:?}", lines());
}
