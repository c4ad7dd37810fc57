// SPDX-License-Identifier: Apache-2.0 OR MIT
//! [`Relay`]: a VM partition's supplicant requests on their way to the
//! guest's own tee-supplicant (`--tee-supplicant guest`).
//!
//! OP-TEE asks the normal world's supplicant to load TAs, keep secure
//! storage's files, open sockets, call plugins. For a VM of its own, the
//! host kernel hands those requests to the VM's context, where the VMM
//! receives them (TEE_IOC_SUPPL_RECV). Served by the VMM, they happen in
//! the host's world: its files, its network. Relayed, they happen in the
//! guest's, as they would on a machine of the guest's own, and as Xen's
//! mediator does it: the VMM answers one of the guest's calls in progress
//! with OP-TEE's RPC return carrying the command (OPTEE_SMC_RETURN_RPC_CMD),
//! the guest's unmodified driver hands it to the guest's tee-supplicant,
//! and the guest's RETURN_FROM_RPC carries the answer back.
//!
//! Two sides, two threads:
//!
//! - the partition's supplicant thread ([`crate::supplicant`]'s forwarder)
//!   receives a request, translates it ([`Forwarded`]: values as they are,
//!   memory references from the host's shared memory to the guest buffer
//!   paired with it, input bytes copied) and [`Relay::ask`]s, waiting for
//!   the [`Answer`] outside every lock the vCPUs take;
//! - a vCPU, whose guest call is waiting for the TEE, [`Relay::take`]s the
//!   request (the backend's [`crate::HostTee`], under the mediator's lock:
//!   taking never blocks), delivers it as an RPC command and
//!   [`Relay::answer`]s with what the guest wrote back.
//!
//! Any of the guest's calls in progress can carry any request: the guest's
//! driver hands every supplicant command to its one tee-supplicant,
//! whichever thread it came on. A request is made by an OP-TEE thread that
//! serves one of the guest's calls, so while one is waiting, a call is
//! there to carry it. One request at a time: the supplicant thread answers
//! each before it receives the next, as a single-threaded tee-supplicant.
//!
//! Bounds: the guest answers within the host driver's bound on a VM's
//! supplicant requests (`vm_supp_timeout_ms`), or the kernel fails the
//! request and the call that made it; a guest that never answers holds
//! only its own calls. [`Relay::close`] (VM teardown) answers what is
//! pending with an error and refuses what comes after.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard, OnceLock};
use std::time::{Duration, Instant};

use optee_mediator::msg::Dir;
use optee_mediator::Progress;

/// How long a request may wait for the guest before the VMM says so (once
/// per request): the guest runs no tee-supplicant, most likely.
pub const SLOW_ANSWER: Duration = Duration::from_secs(10);

/// How often a waiting supplicant thread looks at its stop flag.
const STOP_POLL: Duration = Duration::from_millis(50);

/// A parameter of a relayed request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FwdParam {
    /// Unused (or a NULL memory reference).
    None,
    /// Values; outputs come back in [`FwdOut::Value`].
    Value {
        /// Direction.
        dir: Dir,
        /// a.
        a: u64,
        /// b.
        b: u64,
        /// c.
        c: u64,
    },
    /// A NULL memory reference of `size` (LOAD_TA asks the size of a TA
    /// with one): the guest sees a temporary reference to no buffer.
    NullMemref {
        /// Direction.
        dir: Dir,
        /// The size field.
        size: u64,
    },
    /// A range of a buffer the guest's supplicant allocated (its cookie):
    /// `data` is what the TEE put there (inputs; empty for an output
    /// only), at most `size` bytes.
    Memref {
        /// Direction.
        dir: Dir,
        /// The guest's cookie of the buffer.
        cookie: u64,
        /// Offset in the buffer.
        offs: u64,
        /// Size of the range.
        size: u64,
        /// The input bytes.
        data: Vec<u8>,
    },
}

/// A relayed request: OPTEE_RPC_CMD_* and its parameters.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Forwarded {
    /// The command.
    pub func: u32,
    /// Its parameters, at most [`crate::supplicant::RECV_PARAMS`] - 1.
    pub params: Vec<FwdParam>,
}

/// What the guest answered for one parameter.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FwdOut {
    /// Nothing.
    None,
    /// Output values.
    Value {
        /// a.
        a: u64,
        /// b.
        b: u64,
        /// c.
        c: u64,
    },
    /// An output memory reference: the size the guest reported (larger
    /// than the range for "short buffer") and the bytes it wrote (at most
    /// the range's size).
    Memref {
        /// The size field.
        size: u64,
        /// The bytes.
        data: Vec<u8>,
    },
    /// SHM_ALLOC: the guest's cookie for the buffer it allocated, which
    /// the VMM took (at least the size asked, pages checked).
    Allocated {
        /// The guest's cookie.
        cookie: u64,
    },
    /// SHM_ALLOC: a buffer the guest allocated that the VMM refused (too
    /// small, a bad page list): the supplicant thread frees it.
    Refused {
        /// The guest's cookie.
        cookie: u64,
    },
}

/// The guest's answer to a [`Forwarded`] request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Answer {
    /// TEEC_* result.
    pub ret: u32,
    /// One entry per parameter sent.
    pub params: Vec<FwdOut>,
}

impl Answer {
    /// An answer that delivered nothing: `ret` and no outputs.
    pub fn failed(ret: u32, params: usize) -> Answer {
        Answer {
            ret,
            params: vec![FwdOut::None; params],
        }
    }
}

/// Why a request got no answer from the guest.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum RelayError {
    /// The VM is going away: nothing more reaches it.
    #[error("the VM is going away: its supplicant requests are no longer relayed")]
    Closed,
    /// The supplicant thread was told to stop.
    #[error("the supplicant was stopped while a request waited for the guest")]
    Stopped,
}

#[derive(Debug)]
enum Slot {
    /// Nothing asked.
    Empty,
    /// Asked, not taken by a vCPU yet.
    Posted(u64, Forwarded),
    /// Taken by a vCPU, its answer not in yet.
    Taken(u64),
    /// Answered, not collected yet.
    Answered(u64, Answer),
}

#[derive(Debug)]
struct State {
    slot: Slot,
    next_id: u64,
    closed: bool,
}

/// The mailbox between a partition's supplicant thread and the VM's vCPUs.
#[derive(Debug)]
pub struct Relay {
    state: Mutex<State>,
    answered: Condvar,
    /// The backend's: advanced when a request is posted, so that a vCPU
    /// waiting for its call's result comes back to carry it.
    progress: OnceLock<Arc<Progress>>,
}

impl Default for Relay {
    fn default() -> Self {
        Relay::new()
    }
}

impl Relay {
    /// An open, empty relay.
    pub fn new() -> Relay {
        Relay {
            state: Mutex::new(State {
                slot: Slot::Empty,
                next_id: 1,
                closed: false,
            }),
            answered: Condvar::new(),
            progress: OnceLock::new(),
        }
    }

    fn state(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The backend's progress, to advance when a request is posted (set
    /// once, when the VM's backend takes the context).
    pub fn attach(&self, progress: Arc<Progress>) {
        let _ = self.progress.set(progress);
    }

    /// Whether a request waits for a vCPU to take it.
    pub fn has_request(&self) -> bool {
        matches!(self.state().slot, Slot::Posted(..))
    }

    /// Supplicant side: posts `req` and waits for the guest's answer,
    /// until [`Relay::close`] or `stop`. Says so once (a warning) if the
    /// answer takes longer than [`SLOW_ANSWER`].
    pub fn ask(&self, req: Forwarded, stop: &AtomicBool) -> Result<Answer, RelayError> {
        let func = req.func;
        let id = {
            let mut s = self.state();
            if s.closed {
                return Err(RelayError::Closed);
            }
            let id = s.next_id;
            s.next_id = s.next_id.wrapping_add(1).max(1);
            s.slot = Slot::Posted(id, req);
            id
        };
        if let Some(p) = self.progress.get() {
            p.advance();
        }
        let started = Instant::now();
        let mut warned = false;
        let mut s = self.state();
        loop {
            match std::mem::replace(&mut s.slot, Slot::Empty) {
                Slot::Answered(got, answer) if got == id => return Ok(answer),
                other => s.slot = other,
            }
            if s.closed {
                s.slot = Slot::Empty;
                return Err(RelayError::Closed);
            }
            if stop.load(Ordering::SeqCst) {
                s.slot = Slot::Empty;
                return Err(RelayError::Stopped);
            }
            if !warned && started.elapsed() >= SLOW_ANSWER {
                warned = true;
                let where_ = if matches!(s.slot, Slot::Posted(..)) {
                    "no call of the guest has come back to carry it"
                } else {
                    "the guest has it: is tee-supplicant running in the guest?"
                };
                log::warn!(
                    "supplicant request {func} relayed to the guest has waited {}s: {where_}",
                    started.elapsed().as_secs()
                );
            }
            s = self
                .answered
                .wait_timeout(s, STOP_POLL)
                .unwrap_or_else(|e| e.into_inner())
                .0;
        }
    }

    /// vCPU side: takes the posted request, if any, to deliver it; the
    /// taker must [`Relay::answer`] it.
    pub fn take(&self) -> Option<(u64, Forwarded)> {
        let mut s = self.state();
        match std::mem::replace(&mut s.slot, Slot::Empty) {
            Slot::Posted(id, req) => {
                s.slot = Slot::Taken(id);
                Some((id, req))
            }
            other => {
                s.slot = other;
                None
            }
        }
    }

    /// vCPU side: the answer to request `id`, taken before; ignored if
    /// that request is no longer waiting (stopped, closed).
    pub fn answer(&self, id: u64, answer: Answer) {
        let mut s = self.state();
        if matches!(s.slot, Slot::Taken(t) if t == id) {
            s.slot = Slot::Answered(id, answer);
            drop(s);
            self.answered.notify_all();
        }
    }

    /// The VM is going away: the request waiting (posted or taken) fails
    /// with [`RelayError::Closed`], and so does every later one.
    pub fn close(&self) {
        self.state().closed = true;
        self.answered.notify_all();
    }

    /// Whether [`Relay::close`] was called.
    pub fn is_closed(&self) -> bool {
        self.state().closed
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use optee_mediator::msg::teec;
    use std::thread;

    fn req(func: u32) -> Forwarded {
        Forwarded {
            func,
            params: vec![FwdParam::Value {
                dir: Dir::In,
                a: 1,
                b: 2,
                c: 3,
            }],
        }
    }

    #[test]
    fn a_request_is_taken_once_and_its_answer_reaches_the_asker() {
        let relay = Arc::new(Relay::new());
        let progress = Arc::new(Progress::new());
        relay.attach(progress.clone());
        let seen = progress.seen();
        let r = relay.clone();
        let asker = thread::spawn(move || r.ask(req(2), &AtomicBool::new(false)));
        assert!(
            progress.wait_past(seen, Duration::from_secs(5)),
            "posting wakes the vCPUs"
        );
        let (id, got) = relay.take().expect("posted");
        assert_eq!(got, req(2));
        assert_eq!(relay.take(), None, "taken once");
        assert!(!relay.has_request());
        relay.answer(id + 1, Answer::failed(teec::ERROR_GENERIC, 1));
        relay.answer(id, Answer::failed(teec::SUCCESS, 1));
        let got = asker.join().unwrap().unwrap();
        assert_eq!(
            got.ret,
            teec::SUCCESS,
            "the answer to its own id, not another's"
        );
    }

    #[test]
    fn closing_fails_the_waiting_request_and_refuses_later_ones() {
        let relay = Arc::new(Relay::new());
        let r = relay.clone();
        let asker = thread::spawn(move || r.ask(req(0), &AtomicBool::new(false)));
        while !relay.has_request() {
            thread::sleep(Duration::from_millis(1));
        }
        let (id, _) = relay.take().unwrap();
        relay.close();
        assert_eq!(asker.join().unwrap(), Err(RelayError::Closed));
        relay.answer(id, Answer::failed(teec::SUCCESS, 0));
        assert_eq!(
            relay.ask(req(0), &AtomicBool::new(false)),
            Err(RelayError::Closed)
        );
        assert!(relay.take().is_none(), "nothing left to take");
    }

    #[test]
    fn a_stopped_supplicant_stops_waiting() {
        let relay = Arc::new(Relay::new());
        let stop = Arc::new(AtomicBool::new(false));
        let (r, s) = (relay.clone(), stop.clone());
        let asker = thread::spawn(move || r.ask(req(0), &s));
        while !relay.has_request() {
            thread::sleep(Duration::from_millis(1));
        }
        stop.store(true, Ordering::SeqCst);
        assert_eq!(asker.join().unwrap(), Err(RelayError::Stopped));
        assert!(!relay.has_request(), "the request is withdrawn");
    }
}
