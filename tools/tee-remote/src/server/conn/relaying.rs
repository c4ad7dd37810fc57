// SPDX-License-Identifier: Apache-2.0 OR MIT
//! A connection's side of the relay (protocol version 3): a VM's
//! partition's supplicant requests sent to the VMM on the VM's calls
//! parked in a FOREIGN_INTR, and the guest's answers handed back.

use optee_mediator::msg::teec;
use optee_mediator::relay::{Answer, Forwarded};

use super::{Running, Vm};
use crate::relayed;
use crate::wire::{self, MAX_FRAME};

/// A relayed request sent to the VMM, not answered yet.
#[derive(Debug, Clone, Copy)]
pub(super) struct Carrying {
    /// Its id in the relay; 0 for a buffer given back to the guest,
    /// whose answer nobody waits for.
    pub(super) id: u64,
    /// Its parameter count: the answer has at most as many.
    pub(super) params: usize,
}

/// The most input bytes a relayed request takes to the VMM: what a frame
/// holds, with room for the rest of the answer.
const MAX_RELAYED_BYTES: usize = MAX_FRAME as usize / 2;

/// The relayed request waiting for `vm`'s guest, if any, to carry on a
/// call parked in a FOREIGN_INTR; one too large for a frame is failed
/// here (OUT_OF_MEMORY) and the next taken.
pub(super) fn take_relayed(vm: &Vm) -> Option<(Carrying, u32, Vec<wire::RelayParam>)> {
    let relay = vm.relay.as_ref()?;
    loop {
        let (id, req) = relay.take()?;
        let params = req.params.len();
        let bytes: usize = req
            .params
            .iter()
            .map(|p| match p {
                optee_mediator::relay::FwdParam::Memref { data, .. } => data.len(),
                _ => 0,
            })
            .sum();
        if bytes > MAX_RELAYED_BYTES {
            log::warn!(
                "supplicant request {} of {bytes} bytes is too large to relay: failed",
                req.func
            );
            relay.answer(id, Answer::failed(teec::ERROR_OUT_OF_MEMORY, params));
            continue;
        }
        let (func, wire_params) = relayed::request_to_wire(req);
        return Some((Carrying { id, params }, func, wire_params));
    }
}

/// Hands the guest's answer to the relay. If nobody waits for it any
/// more and it holds a buffer the guest allocated, the request that
/// gives that buffer back to the guest.
pub(super) fn answered(
    vm: &Vm,
    c: Carrying,
    answer: Answer,
) -> Option<(u32, Vec<wire::RelayParam>)> {
    if c.id == 0 {
        return None;
    }
    let buffer = answer.buffer();
    if vm.relay.as_ref().is_some_and(|r| r.answer(c.id, answer)) {
        return None;
    }
    buffer.map(|cookie| relayed::request_to_wire(Forwarded::shm_free(cookie)))
}

/// A call given up while it carried a relayed request: the request
/// fails, so that the supplicant goes on.
pub(super) fn give_up(vm: &Vm, running: &Running) {
    if let (Some(c), Some(relay)) = (running.carrying, &vm.relay) {
        if c.id != 0 {
            relay.answer(c.id, Answer::failed(teec::ERROR_COMMUNICATION, c.params));
        }
    }
}
