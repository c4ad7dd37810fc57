// SPDX-License-Identifier: Apache-2.0 OR MIT
//! Counts of the forwarded calls, by function id, and what the sessions'
//! calls cost ([`optee_mediator::cost`]), for the report printed when the
//! guest stops.

use std::collections::BTreeMap;
use std::fmt::Write as _;

use optee_mediator::abi::{self, Function};
use optee_mediator::cost::CostReport;
use smccc::FunctionId;

/// Forwarded calls by function id.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct CallCounts {
    by_id: BTreeMap<u32, u64>,
    /// RETURN_FROM_RPCs the VMM made for the guest after a FOREIGN_INTR
    /// (the result had arrived while the vCPU waited): not guest calls.
    pub returns_for_guest: u64,
    /// SMC64 calls from an AArch32 vCPU, answered NOT_SUPPORTED by the VMM
    /// (SMCCC's rule) without reaching the mediator: not in `by_id`.
    pub refused_smc64_from_aarch32: u64,
    /// The costs of the sessions with enough calls to report, from the
    /// mediator when the VM ends.
    pub costs: CostReport,
}

/// OP-TEE's name of a function id (optee_smc.h without the OPTEE_SMC_
/// prefix), or "unknown".
pub fn function_name(id: FunctionId) -> &'static str {
    match Function::decode(id) {
        Function::CallsCount => "CALLS_COUNT",
        Function::CallsUid => "CALLS_UID",
        Function::CallsRevision => "CALLS_REVISION",
        Function::GetOsUuid => "CALL_GET_OS_UUID",
        Function::GetOsRevision => "CALL_GET_OS_REVISION",
        Function::ReturnFromRpc => "CALL_RETURN_FROM_RPC",
        Function::CallWithArg => "CALL_WITH_ARG",
        Function::GetShmConfig => "GET_SHM_CONFIG",
        Function::ExchangeCapabilities => "EXCHANGE_CAPABILITIES",
        Function::DisableShmCache => "DISABLE_SHM_CACHE",
        Function::EnableShmCache => "ENABLE_SHM_CACHE",
        Function::GetThreadCount => "GET_THREAD_COUNT",
        Function::EnableAsyncNotif => "ENABLE_ASYNC_NOTIF",
        Function::GetAsyncNotifValue => "GET_ASYNC_NOTIF_VALUE",
        Function::Unknown if id == abi::CALL_LOAD_IMAGE => "CALL_LOAD_IMAGE (refused)",
        Function::Unknown => "unknown",
    }
}

impl CallCounts {
    /// Counts one call.
    pub fn add(&mut self, id: FunctionId) {
        *self.by_id.entry(id.0).or_default() += 1;
    }

    /// Adds another set of counts.
    pub fn merge(&mut self, other: &CallCounts) {
        for (id, n) in &other.by_id {
            *self.by_id.entry(*id).or_default() += n;
        }
        self.returns_for_guest += other.returns_for_guest;
        self.refused_smc64_from_aarch32 += other.refused_smc64_from_aarch32;
        self.costs
            .sessions
            .extend(other.costs.sessions.iter().cloned());
        self.costs.not_kept += other.costs.not_kept;
    }

    /// All calls.
    pub fn total(&self) -> u64 {
        self.by_id.values().sum()
    }

    /// Calls of one id.
    pub fn get(&self, id: FunctionId) -> u64 {
        self.by_id.get(&id.0).copied().unwrap_or(0)
    }

    /// One line: `N forwarded calls: 0xID NAME xCOUNT, ...` in id order,
    /// then `; N RETURN_FROM_RPC made for the guest` if any were, then
    /// `; N SMC64 calls from AArch32 refused` if any were.
    pub fn summary(&self) -> String {
        let mut s = format!("{} forwarded calls", self.total());
        let mut sep = ": ";
        for (id, n) in &self.by_id {
            let _ = write!(s, "{sep}{id:#010x} {} x{n}", function_name(FunctionId(*id)));
            sep = ", ";
        }
        if self.returns_for_guest > 0 {
            let _ = write!(
                s,
                "; {} RETURN_FROM_RPC made for the guest",
                self.returns_for_guest
            );
        }
        if self.refused_smc64_from_aarch32 > 0 {
            let _ = write!(
                s,
                "; {} SMC64 calls from AArch32 refused",
                self.refused_smc64_from_aarch32
            );
        }
        s
    }

    /// One line per reported session (`cost: TA ... session ...: N calls;
    /// per call: ...`), and one for those not kept, if any.
    pub fn cost_lines(&self) -> Vec<String> {
        let mut l: Vec<String> = self
            .costs
            .sessions
            .iter()
            .map(|s| format!("cost: {s}"))
            .collect();
        if self.costs.not_kept > 0 {
            l.push(format!(
                "cost: {} more sessions of at least {} calls not kept",
                self.costs.not_kept,
                optee_mediator::cost::REPORT_MIN_CALLS
            ));
        }
        l
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_by_id_in_id_order() {
        let mut c = CallCounts::default();
        c.add(abi::CALL_WITH_ARG);
        c.add(abi::CALLS_UID);
        c.add(abi::CALL_WITH_ARG);
        let mut d = CallCounts::default();
        d.add(FunctionId(0xB200_0100));
        c.merge(&d);
        assert_eq!(c.total(), 4);
        assert_eq!(c.get(abi::CALL_WITH_ARG), 2);
        assert_eq!(
            c.summary(),
            "4 forwarded calls: 0x32000004 CALL_WITH_ARG x2, 0xb2000100 unknown x1, \
             0xbf00ff01 CALLS_UID x1"
        );
    }

    #[test]
    fn returns_made_for_the_guest_are_counted_apart_from_its_calls() {
        let mut c = CallCounts::default();
        c.add(abi::RETURN_FROM_RPC);
        let d = CallCounts {
            returns_for_guest: 2,
            ..CallCounts::default()
        };
        c.merge(&d);
        assert_eq!(c.total(), 1);
        assert_eq!(
            c.summary(),
            "1 forwarded calls: 0x32000003 CALL_RETURN_FROM_RPC x1; 2 RETURN_FROM_RPC made for \
             the guest"
        );
    }

    #[test]
    fn refused_smc64_calls_from_aarch32_are_counted_apart_from_the_mediated_ones() {
        let mut c = CallCounts::default();
        c.add(abi::CALLS_UID);
        let d = CallCounts {
            refused_smc64_from_aarch32: 3,
            ..CallCounts::default()
        };
        c.merge(&d);
        assert_eq!(c.total(), 1);
        assert_eq!(
            c.summary(),
            "1 forwarded calls: 0xbf00ff01 CALLS_UID x1; 3 SMC64 calls from AArch32 refused"
        );
    }

    #[test]
    fn cost_lines_name_each_session_and_the_ones_not_kept() {
        use optee_mediator::{SessionCost, Uuid};
        let mut s = SessionCost::new(Uuid::NIL, 3);
        s.calls = 2;
        s.guest_exits = 5;
        let c = CallCounts {
            costs: CostReport {
                sessions: vec![s],
                not_kept: 4,
            },
            ..CallCounts::default()
        };
        let l = c.cost_lines();
        assert_eq!(l.len(), 2);
        assert!(
            l[0].starts_with(
                "cost: TA 00000000-0000-0000-0000-000000000000 session 0x3: 2 calls; per call: \
                 2.50 guest exits"
            ),
            "{}",
            l[0]
        );
        assert_eq!(l[1], "cost: 4 more sessions of at least 50 calls not kept");
        assert!(CallCounts::default().cost_lines().is_empty());
    }

    #[test]
    fn no_calls_is_a_short_line() {
        assert_eq!(CallCounts::default().summary(), "0 forwarded calls");
    }

    #[test]
    fn every_answered_function_has_an_optee_name() {
        for (id, _) in Function::ANSWERED {
            assert_ne!(function_name(id), "unknown", "{id:?}");
        }
        assert_eq!(
            function_name(abi::CALL_LOAD_IMAGE),
            "CALL_LOAD_IMAGE (refused)"
        );
    }
}
