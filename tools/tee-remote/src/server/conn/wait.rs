// SPDX-License-Identifier: Apache-2.0 OR MIT
//! The call wait (protocol version 4): a call still in the TEE waited for,
//! up to what the peer asked and its policy grants, before the peer is
//! answered FOREIGN_INTR.

use std::time::{Duration, Instant};

use optee_mediator::backend::{RpcReply, RpcRequest, Step};

use super::{Running, Vm};

/// A call's step once the connection's call wait is spent on it: while the
/// call is still in the TEE (FOREIGN_INTR) and no relayed request waits for
/// the VMM, wait (no lock held) for `vm`'s backend to make progress after
/// `seen`, and come back from the FOREIGN_INTR as the peer would, until
/// the step is something else or `wait` passed. Without a progress (a
/// backend whose calls return at once) or a wait, the step as it is.
pub(super) fn settle(
    vm: &mut Vm,
    thread: u32,
    running: &mut Running,
    mut step: Step,
    seen: Option<u64>,
    wait: Duration,
) -> Step {
    let (Some(progress), Some(mut seen)) = (vm.progress.clone(), seen) else {
        return step;
    };
    if wait.is_zero() {
        return step;
    }
    let deadline = Instant::now() + wait;
    while matches!(step, Step::Rpc(RpcRequest::ForeignIntr))
        && !vm.relay.as_ref().is_some_and(|r| r.has_request())
    {
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() || !progress.wait_past(seen, left) {
            break;
        }
        seen = progress.seen();
        let id = vm.id;
        let ram = Vm::ram(&vm.shared, &running.shadow);
        step = vm
            .tee
            .with(|b| b.resume(id, thread, &mut running.call, RpcReply::ForeignIntr, ram));
    }
    step
}
