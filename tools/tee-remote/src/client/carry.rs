// SPDX-License-Identifier: Apache-2.0 OR MIT
//! The VMM's side of a relayed supplicant request (protocol version 3):
//! the service sends one on a call of the VM's ([`wire::RpcRequest::Supplicant`]),
//! this VMM carries it into its guest as OP-TEE would, on the same call
//! (RPC_ALLOC of an argument buffer the first time, then RPC_CMD), and
//! answers the service with what the guest's tee-supplicant wrote back
//! ([`wire::Reply::Supplicant`]). The translation is the mediator's
//! ([`optee_mediator::relay::carry`]): a request's memory references
//! name only buffers the guest's supplicant allocated, every range is
//! checked against its buffer, and the guest's sizes are bounded by the
//! range before anything is copied back.
//!
//! The argument buffer serves the call's later requests and is freed
//! (RPC_FREE) before the call's result is given to the guest; a call
//! given up keeps it for DISABLE_SHM_CACHE, as the host backend does.

use optee_mediator::backend::ClientId;
use optee_mediator::backend::{RpcReply, RpcRequest, StdCall, Step, ThreadId};
use optee_mediator::mem::GuestRam;
use optee_mediator::msg::teec;
use optee_mediator::relay::{carry, Answer, Forwarded};

use super::{RemoteTee, Thread};
use crate::relayed;
use crate::wire::{self, Request};

/// Where a call is in carrying a relayed request.
#[derive(Debug)]
pub(super) enum Phase {
    /// Not carrying.
    Idle,
    /// RPC_ALLOC asked for request `.0`.
    Allocating(u64, Forwarded),
    /// Request `.0` is with the guest (RPC_CMD).
    Asking(u64, Forwarded),
    /// The call is finished at the service: RPC_FREE of its argument
    /// buffer asked, the outcome kept until the guest has freed it.
    Freeing(wire::Outcome),
}

/// What a step of carrying comes to.
pub(super) enum Carried {
    /// The guest's step.
    Step(Step),
    /// An answer for the service, at once (`.0` goes on with it).
    Answer(Thread, Request),
}

impl RemoteTee {
    /// Starts carrying request `id` on `thread`'s call: into its RPC
    /// argument buffer, asked of the guest first if it has none.
    pub(super) fn carry_request(
        &mut self,
        client: ClientId,
        thread: ThreadId,
        mut t: Thread,
        id: u64,
        req: Forwarded,
        mem: &dyn GuestRam,
    ) -> Carried {
        match t.rpc_arg {
            Some(cookie) => self.deliver(client, thread, t, cookie, (id, req), mem),
            None => {
                t.carry = Phase::Allocating(id, req);
                self.park(client, thread, t);
                Carried::Step(Step::Rpc(RpcRequest::Alloc {
                    size: carry::rpc_arg_size(),
                }))
            }
        }
    }

    /// Sends request `id` to the guest in the argument buffer `cookie`; a
    /// request that cannot be (a range outside its buffer) is answered
    /// with the error at once.
    fn deliver(
        &mut self,
        client: ClientId,
        thread: ThreadId,
        mut t: Thread,
        cookie: u64,
        (id, req): (u64, Forwarded),
        mem: &dyn GuestRam,
    ) -> Carried {
        let vm = self.vms.entry(client).or_default();
        match carry::command(&req, &mut vm.guest_bufs, mem) {
            Ok(arg) => {
                t.carry = Phase::Asking(id, req);
                self.park(client, thread, t);
                Carried::Step(Step::Rpc(RpcRequest::Cmd { cookie, arg }))
            }
            Err(ret) => {
                log::warn!(
                    "supplicant request {} not relayed to the guest: TEEC {ret:#x}",
                    req.func
                );
                let answer = Answer::failed(ret, req.params.len());
                Carried::Answer(t, answered(client, thread, id, answer))
            }
        }
    }

    /// The guest's reply to an RPC `thread` made while carrying.
    pub(super) fn carried_reply(
        &mut self,
        client: ClientId,
        thread: ThreadId,
        mut t: Thread,
        call: &mut StdCall,
        reply: RpcReply,
        mem: &dyn GuestRam,
    ) -> Carried {
        match (std::mem::replace(&mut t.carry, Phase::Idle), reply) {
            (Phase::Allocating(id, req), RpcReply::Alloc(Some(cookie))) => {
                t.rpc_arg = Some(cookie);
                self.deliver(client, thread, t, cookie, (id, req), mem)
            }
            (Phase::Allocating(id, req), RpcReply::Alloc(None)) => {
                let answer = Answer::failed(teec::ERROR_OUT_OF_MEMORY, req.params.len());
                Carried::Answer(t, answered(client, thread, id, answer))
            }
            (Phase::Asking(id, req), RpcReply::Cmd(r)) => {
                if !r.delivered {
                    // The buffer is unusable: the mediator forgot it.
                    t.rpc_arg = None;
                }
                let vm = self.vms.entry(client).or_default();
                let answer = carry::answer(&req, &r, &mut vm.guest_bufs, mem);
                Carried::Answer(t, answered(client, thread, id, answer))
            }
            (Phase::Freeing(o), RpcReply::Free) => {
                self.finish(client, call, o);
                Carried::Step(Step::Done)
            }
            (phase, reply) => {
                // Not the answer to what was asked: the call (and the
                // request it carried) is given up.
                log::warn!(
                    "thread {thread}: {reply:?} while carrying a supplicant request ({phase:?})"
                );
                t.carry = phase;
                self.park(client, thread, t);
                optee_mediator::Backend::abandon(self, client, thread);
                call.finish(teec::ERROR_COMMUNICATION, teec::ORIGIN_COMMS);
                Carried::Step(Step::Done)
            }
        }
    }

    /// A call finished at the service: its result goes to the guest once
    /// the argument buffer it carried requests in is freed.
    pub(super) fn finished(
        &mut self,
        client: ClientId,
        thread: ThreadId,
        mut t: Thread,
        call: &mut StdCall,
        o: wire::Outcome,
    ) -> Step {
        match t.rpc_arg.take() {
            Some(cookie) => {
                t.carry = Phase::Freeing(o);
                self.park(client, thread, t);
                Step::Rpc(RpcRequest::Free { cookie })
            }
            None => {
                self.finish(client, call, o);
                Step::Done
            }
        }
    }
}

/// The resume that takes `answer` to request `id` to the service.
fn answered(client: ClientId, thread: ThreadId, id: u64, answer: Answer) -> Request {
    let (ret, params) = relayed::answer_to_wire(answer);
    Request::Resume {
        client: client.0,
        thread,
        reply: wire::Reply::Supplicant { id, ret, params },
    }
}
