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
//! Two sides:
//!
//! - the partition's supplicant threads (host-tee's `supplicant`
//!   forwarder, on the VM's TEE context): one receives a request, a worker
//!   translates it ([`Forwarded`]: values as they are, memory references
//!   from the host's shared memory to the guest buffer paired with it,
//!   input bytes copied) and [`Relay::ask`]s, waiting for the [`Answer`]
//!   outside every lock the vCPUs take;
//! - a vCPU, whose guest call is waiting for the TEE, [`Relay::take`]s the
//!   request (the backend, host-tee's `HostTee`, under the mediator's lock:
//!   taking never blocks), delivers it as an RPC command ([`carry`]) and
//!   [`Relay::answer`]s with what the guest wrote back. Behind a TEE
//!   service the taker is the service's connection instead
//!   ([`crate::Backend::relay`]), which sends the request to the VMM on
//!   one of the VM's calls, and the VMM's backend carries it with the same
//!   [`carry`] code.
//!
//! Any of the guest's calls in progress can carry any request: the guest's
//! driver hands every supplicant command to its one tee-supplicant,
//! whichever thread it came on. A request is made by an OP-TEE thread that
//! serves one of the guest's calls, so while one is waiting, a call is
//! there to carry it. Requests are concurrent, as with the host's own
//! tee-supplicant, which starts a thread whenever none waits: a request
//! that blocks in the guest (a socket's receive, waiting for its peer)
//! does not hold the ones after it (the storage its peer's TA writes
//! first, say). Each request waits in a slot of its own, taken by one
//! vCPU at a time; every waiting request has a call to carry it, as each
//! was made by a call of its own and a call carries one at a time.
//!
//! Bounds: the host driver fails a VM's supplicant request, and the call
//! that made it, after `vm_supp_timeout_ms`; the relay gives up a little
//! before that ([`Relay::with_bound`], host-tee's `host_bound`), withdrawing the
//! request or disowning it if a vCPU took it, so that the supplicant
//! thread goes on with the next request rather than answer one the kernel
//! has dropped. A late answer is not taken ([`Relay::answer`] says so,
//! and the carrying vCPU gives back a buffer the guest allocated for it).
//! Meanwhile the OP-TEE thread of the call that made the request waits in
//! the TEE, as a TA's own waits make it; the VM's calls, and so the OP-TEE
//! threads it can hold, are bounded by its thread count.
//! [`Relay::close`] (VM teardown) answers what is pending with an error
//! and refuses what comes after.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard, OnceLock};
use std::time::{Duration, Instant};

use crate::msg::Dir;
use crate::Progress;

pub mod carry;

/// How long a request may wait for the guest before the VMM says so (once
/// per request): the guest runs no tee-supplicant, most likely.
pub const SLOW_ANSWER: Duration = Duration::from_secs(10);

/// How often a waiting supplicant thread looks at its stop flag.
const STOP_POLL: Duration = Duration::from_millis(50);

/// The host driver's bound on a VM's supplicant request when its module
/// does not say (the TEE series' default `vm_supp_timeout_ms`).
pub const DEFAULT_HOST_BOUND: Duration = Duration::from_secs(60);

/// The most parameters a relayed request has: those a supplicant
/// receives (TEE_IOC_SUPPL_RECV with room for 8) less the meta one.
pub const MAX_PARAMS: usize = 7;

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
    /// Its parameters, at most [`MAX_PARAMS`].
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

impl Forwarded {
    /// SHM_FREE (type APPL) of the guest's buffer `cookie`.
    pub fn shm_free(cookie: u64) -> Forwarded {
        Forwarded {
            func: crate::msg::rpc_cmd::SHM_FREE,
            params: vec![FwdParam::Value {
                dir: Dir::In,
                a: crate::msg::rpc_cmd::SHM_TYPE_APPL,
                b: cookie,
                c: 0,
            }],
        }
    }
}

impl Answer {
    /// The guest buffer the answer hands over (SHM_ALLOC's, taken or
    /// refused), if any.
    pub fn buffer(&self) -> Option<u64> {
        self.params.iter().find_map(|p| match p {
            FwdOut::Allocated { cookie } | FwdOut::Refused { cookie } => Some(*cookie),
            _ => None,
        })
    }

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
    /// No answer within the bound: the host driver is about to give up.
    #[error(
        "no answer from the guest within {}s (the host driver's bound on a VM's supplicant \
         request is near): given up",
        .0.as_secs()
    )]
    TimedOut(Duration),
}

/// Where a request is.
#[derive(Debug)]
enum Slot {
    /// Asked, not taken by a vCPU yet.
    Posted(Forwarded),
    /// Taken by a vCPU, its answer not in yet.
    Taken,
    /// Answered, not collected yet.
    Answered(Answer),
}

#[derive(Debug)]
struct State {
    /// The requests waiting, by id: at most one per asking thread.
    slots: BTreeMap<u64, Slot>,
    next_id: u64,
    closed: bool,
}

/// The mailbox between a partition's supplicant threads and the VM's
/// vCPUs.
#[derive(Debug)]
pub struct Relay {
    state: Mutex<State>,
    answered: Condvar,
    /// How long a request may wait for its answer.
    bound: Duration,
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
    /// An open, empty relay whose requests wait nine tenths of
    /// [`DEFAULT_HOST_BOUND`] at most.
    pub fn new() -> Relay {
        Relay::with_bound(DEFAULT_HOST_BOUND * 9 / 10)
    }

    /// An open, empty relay whose requests wait `bound` at most (see
    /// host-tee's `host_bound`).
    pub fn with_bound(bound: Duration) -> Relay {
        Relay {
            bound,
            state: Mutex::new(State {
                slots: BTreeMap::new(),
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
        self.state()
            .slots
            .values()
            .any(|s| matches!(s, Slot::Posted(_)))
    }

    /// How many requests are with the relay (posted, taken or answered
    /// and not collected yet).
    pub fn pending(&self) -> usize {
        self.state().slots.len()
    }

    /// Supplicant side: posts `req` and waits for the guest's answer,
    /// until [`Relay::close`], `stop` or the bound. Says so once (a
    /// warning) if the answer takes longer than [`SLOW_ANSWER`]. Several
    /// threads may ask at once, each for its own request: the guest's
    /// tee-supplicant serves them concurrently, as the host's would.
    pub fn ask(&self, req: Forwarded, stop: &AtomicBool) -> Result<Answer, RelayError> {
        let func = req.func;
        let id = {
            let mut s = self.state();
            if s.closed {
                return Err(RelayError::Closed);
            }
            let id = s.next_id;
            s.next_id = s.next_id.wrapping_add(1).max(1);
            s.slots.insert(id, Slot::Posted(req));
            id
        };
        if let Some(p) = self.progress.get() {
            p.advance();
        }
        let started = Instant::now();
        let mut warned = false;
        let mut s = self.state();
        loop {
            if matches!(s.slots.get(&id), Some(Slot::Answered(_))) {
                if let Some(Slot::Answered(answer)) = s.slots.remove(&id) {
                    return Ok(answer);
                }
            }
            // Withdrawn if posted, disowned if taken: a late answer finds
            // no slot and is not taken.
            let gone = if s.closed {
                Some(RelayError::Closed)
            } else if stop.load(Ordering::SeqCst) {
                Some(RelayError::Stopped)
            } else if started.elapsed() >= self.bound {
                Some(RelayError::TimedOut(self.bound))
            } else {
                None
            };
            if let Some(e) = gone {
                s.slots.remove(&id);
                return Err(e);
            }
            if !warned && started.elapsed() >= SLOW_ANSWER {
                warned = true;
                let where_ = if matches!(s.slots.get(&id), Some(Slot::Posted(_))) {
                    "no call of the guest has come back to carry it"
                } else {
                    "the guest has it: is tee-supplicant running in the guest?"
                };
                log::warn!(
                    "supplicant request {func} relayed to the guest has waited {}s: {where_}",
                    started.elapsed().as_secs()
                );
            }
            let left = self.bound.saturating_sub(started.elapsed());
            s = self
                .answered
                .wait_timeout(s, STOP_POLL.min(left).max(Duration::from_millis(1)))
                .unwrap_or_else(|e| e.into_inner())
                .0;
        }
    }

    /// vCPU side: takes the oldest posted request, if any, to deliver it;
    /// the taker must [`Relay::answer`] it.
    pub fn take(&self) -> Option<(u64, Forwarded)> {
        let mut s = self.state();
        let (&id, slot) = s
            .slots
            .iter_mut()
            .find(|(_, slot)| matches!(slot, Slot::Posted(_)))?;
        match std::mem::replace(slot, Slot::Taken) {
            Slot::Posted(req) => Some((id, req)),
            _ => None,
        }
    }

    /// vCPU side: the answer to request `id`, taken before. Whether it
    /// was taken: not if that request no longer waits (given up, stopped,
    /// closed), and then what the answer holds (a buffer the guest
    /// allocated) is the caller's to give back.
    pub fn answer(&self, id: u64, answer: Answer) -> bool {
        let mut s = self.state();
        match s.slots.get_mut(&id) {
            Some(slot @ Slot::Taken) => {
                *slot = Slot::Answered(answer);
                drop(s);
                self.answered.notify_all();
                true
            }
            _ => false,
        }
    }

    /// The VM is going away: the request waiting (posted or taken) fails
    /// with [`RelayError::Closed`], and so does every later one.
    pub fn close(&self) {
        let mut s = self.state();
        s.closed = true;
        // Not to be taken now; their askers see the relay closed.
        s.slots.retain(|_, slot| !matches!(slot, Slot::Posted(_)));
        drop(s);
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
    use crate::msg::teec;
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
        assert!(!relay.answer(id + 1, Answer::failed(teec::ERROR_GENERIC, 1)));
        assert!(relay.answer(id, Answer::failed(teec::SUCCESS, 1)));
        let got = asker.join().unwrap().unwrap();
        assert_eq!(
            got.ret,
            teec::SUCCESS,
            "the answer to its own id, not another's"
        );
    }

    /// A request the guest holds (a socket's receive) does not hold the
    /// next: both are out at once, and each answer reaches its own asker
    /// in the order the guest gives them.
    #[test]
    fn requests_wait_side_by_side_and_are_answered_in_any_order() {
        let relay = Arc::new(Relay::new());
        let (r1, r2) = (relay.clone(), relay.clone());
        let first = thread::spawn(move || r1.ask(req(1), &AtomicBool::new(false)));
        while !relay.has_request() {
            thread::sleep(Duration::from_millis(1));
        }
        let (id1, got1) = relay.take().expect("the first is posted");
        assert_eq!(got1, req(1));
        let second = thread::spawn(move || r2.ask(req(2), &AtomicBool::new(false)));
        while !relay.has_request() {
            thread::sleep(Duration::from_millis(1));
        }
        let (id2, got2) = relay.take().expect("the second is posted beside it");
        assert_eq!(got2, req(2));
        assert_ne!(id1, id2);
        assert_eq!(relay.pending(), 2);
        assert!(relay.answer(id2, Answer::failed(teec::ERROR_ITEM_NOT_FOUND, 1)));
        assert_eq!(
            second.join().unwrap().unwrap().ret,
            teec::ERROR_ITEM_NOT_FOUND,
            "the second is answered while the first is still with the guest"
        );
        assert!(!first.is_finished());
        assert!(relay.answer(id1, Answer::failed(teec::SUCCESS, 1)));
        assert_eq!(first.join().unwrap().unwrap().ret, teec::SUCCESS);
        assert_eq!(relay.pending(), 0);
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
        assert!(
            !relay.answer(id, Answer::failed(teec::SUCCESS, 0)),
            "too late"
        );
        assert_eq!(
            relay.ask(req(0), &AtomicBool::new(false)),
            Err(RelayError::Closed)
        );
        assert!(relay.take().is_none(), "nothing left to take");
    }

    #[test]
    fn a_request_gives_up_at_its_bound_and_a_late_answer_is_not_taken() {
        let relay = Arc::new(Relay::with_bound(Duration::from_millis(100)));
        // Never taken: withdrawn.
        let t = std::time::Instant::now();
        assert_eq!(
            relay.ask(req(0), &AtomicBool::new(false)),
            Err(RelayError::TimedOut(Duration::from_millis(100)))
        );
        assert!(t.elapsed() < Duration::from_secs(5));
        assert!(!relay.has_request(), "withdrawn");
        // Taken, answered too late: disowned.
        let r = relay.clone();
        let asker = thread::spawn(move || r.ask(req(1), &AtomicBool::new(false)));
        while !relay.has_request() {
            thread::sleep(Duration::from_millis(1));
        }
        let (id, _) = relay.take().unwrap();
        assert!(matches!(
            asker.join().unwrap(),
            Err(RelayError::TimedOut(_))
        ));
        assert!(!relay.answer(id, Answer::failed(teec::SUCCESS, 1)));
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
