// SPDX-License-Identifier: Apache-2.0 OR MIT
//! Standard calls on worker threads: a TEE ioctl blocks while OP-TEE runs,
//! so a VM's calls run on a [`Pool`] of workers that lives as long as the
//! VM, and the vCPU collects the result when the guest comes back
//! ([`Call::poll`]). A call nobody will collect ([`Call::abandon`]) cleans
//! up after itself: a session its OPEN_SESSION opened is closed, its
//! registrations released.
//!
//! The pool starts a worker only when every worker it has is busy, and
//! keeps up to `keep_idle` of them waiting for the next call, so that a VM
//! that makes one call after another creates one thread in all, not one per
//! call (each thread creation is a clone, a stack mapping and, on the
//! emulator, far more). It never makes a job wait for a busy worker: a
//! TEE_IOC_CANCEL queued behind the call it cancels would wait for ever.
//! The number of workers busy at once is bounded by the mediator, which
//! lets a VM have at most its thread count of calls in progress.

use std::collections::VecDeque;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::thread::JoinHandle;

use crate::device::{CallResult, ClientLogin, TeeDevice, TeeParam};
use crate::error::HostTeeError;
use crate::memory::{HostPtr, Pinned, Window};
use optee_mediator::{CallCost, Progress};

use crate::params::{materialize, outputs, setup_cost, Output, Planned, Temp};

/// What a worker does.
#[derive(Debug)]
pub(crate) enum Job<D: TeeDevice> {
    /// TEE_IOC_OPEN_SESSION.
    Open {
        /// The TA.
        uuid: [u8; 16],
        /// Who opens it.
        login: ClientLogin,
        /// Cancellation id.
        cancel_id: u32,
        /// Parameters.
        params: Vec<Planned>,
    },
    /// TEE_IOC_INVOKE.
    Invoke {
        /// Session.
        session: u32,
        /// The TA's function.
        func: u32,
        /// Cancellation id.
        cancel_id: u32,
        /// Parameters.
        params: Vec<Planned>,
    },
    /// TEE_IOC_CLOSE_SESSION.
    Close {
        /// Session.
        session: u32,
    },
    /// TEE_IOC_CANCEL.
    Cancel {
        /// Session (0: an OPEN_SESSION).
        session: u32,
        /// Cancellation id.
        cancel_id: u32,
    },
    /// TEE_IOC_SHM_REGISTER of a guest buffer, kept until unregistered.
    Register {
        /// Where in the VMM.
        ptr: HostPtr,
        /// How many bytes.
        len: usize,
        /// The window `ptr` is in, if the pages needed one.
        window: Option<Window>,
    },
    /// Release of a registration (closing its fd).
    Release(Pinned<D::Registered>),
}

/// What a worker found.
#[derive(Debug)]
pub(crate) enum Outcome<D: TeeDevice> {
    /// OPEN_SESSION: (session, verdict) and the output parameters.
    Opened(Result<(u32, CallResult), HostTeeError>, Vec<TeeParam>),
    /// INVOKE: the verdict and the output parameters.
    Invoked(Result<CallResult, HostTeeError>, Vec<TeeParam>),
    /// CLOSE_SESSION, CANCEL, a release.
    Done(Result<(), HostTeeError>),
    /// SHM_REGISTER.
    Registered(Result<Pinned<D::Registered>, HostTeeError>),
}

/// A finished call, and what the TEE wrote into its bounce buffers.
#[derive(Debug)]
pub(crate) struct Finished<D: TeeDevice> {
    /// The result.
    pub outcome: Outcome<D>,
    /// The bounce buffers' outputs (the buffers and the call's
    /// registrations are released by the worker).
    pub outputs: Vec<Output>,
    /// The ioctls made and the bytes copied in (the copies out are
    /// counted when they are made, by [`crate::params::write_back`]).
    pub cost: CallCost,
}

#[derive(Debug)]
enum Slot<D: TeeDevice> {
    /// Queued or running.
    Running,
    /// The result, to collect.
    Finished(Finished<D>),
    /// Collected, or abandoned and cleaned up: nothing more will happen.
    Done,
    /// Nobody will collect it; the worker has not finished it yet.
    Abandoned,
    /// The worker panicked while running it.
    Lost,
}

/// A call in progress on the pool.
#[derive(Debug)]
pub(crate) struct Call<D: TeeDevice> {
    slot: Arc<Mutex<Slot<D>>>,
    /// What TEE_IOC_CANCEL needs to stop it, if it can be stopped.
    pub cancel: Option<(u32, u32)>,
    /// Whether the pool started a worker for it.
    pub started_thread: bool,
}

/// An abandoned call, until its worker is done with it.
#[derive(Debug)]
pub(crate) struct Abandoned<D: TeeDevice> {
    slot: Arc<Mutex<Slot<D>>>,
    /// What TEE_IOC_CANCEL needs to stop it, if it can be stopped.
    pub cancel: Option<(u32, u32)>,
}

impl<D: TeeDevice> Abandoned<D> {
    /// Whether its worker is done with it (or never started it).
    pub fn is_done(&self) -> bool {
        matches!(*lock(&self.slot), Slot::Done | Slot::Lost)
    }
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

/// Runs `job` on `dev`.
///
/// # Safety
/// The host memory the job names ([`Job::Register`], [`Planned::Host`])
/// must stay mapped until the registrations made of it are dropped.
unsafe fn run<D: TeeDevice>(dev: &D, job: Job<D>) -> Finished<D> {
    let call = |planned| {
        // SAFETY: the caller's promise, passed on.
        unsafe { materialize(dev, planned) }
    };
    // The temporaries are released here, by the worker, once their
    // outputs are read: see crate::params::outputs.
    let finished = |outcome, temps: Vec<Temp<D>>| {
        let outputs = match &outcome {
            Outcome::Opened(_, out) | Outcome::Invoked(_, out) => outputs(out, &temps),
            _ => Vec::new(),
        };
        drop(temps);
        Finished {
            outcome,
            outputs,
            cost: CallCost::default(),
        }
    };
    // The job's own ioctl (a release closes a file descriptor), and what
    // its parameters need first.
    let mut cost = CallCost {
        tee_requests: u32::from(!matches!(job, Job::Release(_))),
        ..CallCost::default()
    };
    if let Job::Open { params, .. } | Job::Invoke { params, .. } = &job {
        let setup = setup_cost(params);
        cost.tee_requests += setup.tee_requests;
        cost.bytes_copied = setup.bytes_copied;
    }
    let mut fin = match job {
        Job::Open {
            uuid,
            login,
            cancel_id,
            params,
        } => match call(params) {
            Ok((mut p, temps)) => {
                let r = dev.open_session(uuid, login, cancel_id, &mut p);
                finished(Outcome::Opened(r, p), temps)
            }
            Err(e) => finished(Outcome::Opened(Err(e), Vec::new()), Vec::new()),
        },
        Job::Invoke {
            session,
            func,
            cancel_id,
            params,
        } => match call(params) {
            Ok((mut p, temps)) => {
                let r = dev.invoke(session, func, cancel_id, &mut p);
                finished(Outcome::Invoked(r, p), temps)
            }
            Err(e) => finished(Outcome::Invoked(Err(e), Vec::new()), Vec::new()),
        },
        Job::Close { session } => finished(Outcome::Done(dev.close_session(session)), Vec::new()),
        Job::Cancel { session, cancel_id } => {
            finished(Outcome::Done(dev.cancel(session, cancel_id)), Vec::new())
        }
        Job::Register { ptr, len, window } => {
            // SAFETY: the caller's promise, passed on (the window, if any,
            // lives as long as the registration).
            let r = unsafe { dev.shm_register(ptr.0, len) };
            finished(
                Outcome::Registered(r.map(|reg| Pinned::new(reg, window))),
                Vec::new(),
            )
        }
        Job::Release(reg) => {
            drop(reg);
            finished(Outcome::Done(Ok(())), Vec::new())
        }
    };
    fin.cost = cost;
    fin
}

/// Undoes what a result nobody will collect left behind: a session opened
/// is closed; registrations and bounce buffers are released on drop.
pub(crate) fn orphan<D: TeeDevice>(dev: &D, fin: Finished<D>) {
    if let Outcome::Opened(Ok((session, r)), _) = &fin.outcome {
        if r.ret == optee_mediator::msg::teec::SUCCESS {
            if let Err(e) = dev.close_session(*session) {
                log::warn!("host TEE: closing session {session} of an abandoned call: {e}");
            }
        }
    }
}

impl<D: TeeDevice> Call<D> {
    /// The result, if the worker is done.
    pub fn poll(&self) -> Option<Finished<D>> {
        let mut s = lock(&self.slot);
        match std::mem::replace(&mut *s, Slot::Done) {
            Slot::Finished(f) => Some(f),
            other => {
                *s = other;
                None
            }
        }
    }

    /// Whether the worker died without a result (it panicked).
    pub fn is_lost(&self) -> bool {
        matches!(*lock(&self.slot), Slot::Lost)
    }

    /// Nobody will collect the result: it is cleaned up when it arrives
    /// (or now, if it is there).
    pub fn abandon(self, dev: &D) -> Abandoned<D> {
        let finished = {
            let mut s = lock(&self.slot);
            match std::mem::replace(&mut *s, Slot::Abandoned) {
                Slot::Finished(f) => {
                    *s = Slot::Done;
                    Some(f)
                }
                Slot::Running => None,
                other => {
                    *s = other;
                    None
                }
            }
        };
        if let Some(f) = finished {
            orphan(dev, f);
        }
        Abandoned {
            slot: self.slot,
            cancel: self.cancel,
        }
    }
}

/// A job and where its result goes.
struct Task<D: TeeDevice> {
    job: Job<D>,
    slot: Arc<Mutex<Slot<D>>>,
}

#[derive(Default)]
struct Queue<D: TeeDevice> {
    tasks: VecDeque<Task<D>>,
    /// Workers waiting for a task.
    idle: usize,
    /// Set when the pool is dropped: workers finish the queue and leave.
    stopping: bool,
}

struct Shared<D: TeeDevice> {
    dev: Arc<D>,
    progress: Arc<Progress>,
    queue: Mutex<Queue<D>>,
    ready: Condvar,
    keep_idle: usize,
    created: AtomicU64,
}

/// A VM's workers: see the module's documentation.
pub(crate) struct Pool<D: TeeDevice> {
    shared: Arc<Shared<D>>,
    workers: Mutex<Vec<JoinHandle<()>>>,
}

impl<D: TeeDevice> std::fmt::Debug for Pool<D> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Pool")
            .field("keep_idle", &self.shared.keep_idle)
            .field("created", &self.threads_created())
            .finish()
    }
}

impl<D: TeeDevice> Pool<D> {
    /// A pool running jobs on `dev`, advancing `progress` when a result is
    /// in, keeping up to `keep_idle` idle workers. No thread is started
    /// before the first job.
    pub fn new(dev: Arc<D>, progress: Arc<Progress>, keep_idle: usize) -> Self {
        Pool {
            shared: Arc::new(Shared {
                dev,
                progress,
                queue: Mutex::new(Queue {
                    tasks: VecDeque::new(),
                    idle: 0,
                    stopping: false,
                }),
                ready: Condvar::new(),
                keep_idle,
                created: AtomicU64::new(0),
            }),
            workers: Mutex::new(Vec::new()),
        }
    }

    /// Threads the pool has started so far.
    pub fn threads_created(&self) -> u64 {
        self.shared.created.load(Ordering::Relaxed)
    }

    /// Workers waiting for a call now.
    #[cfg(test)]
    pub fn idle(&self) -> usize {
        lock(&self.shared.queue).idle
    }

    /// Runs `job` on an idle worker, or on a new one if none is idle.
    ///
    /// # Safety
    /// As for [`run`]: the host memory the job names stays mapped until
    /// the pool is dropped (which waits for every job) or the call's
    /// result has been collected and dropped.
    pub unsafe fn submit(&self, job: Job<D>) -> std::io::Result<Call<D>> {
        let cancel = match &job {
            Job::Open { cancel_id, .. } => Some((0, *cancel_id)),
            Job::Invoke {
                session, cancel_id, ..
            } => Some((*session, *cancel_id)),
            _ => None,
        };
        let slot = Arc::new(Mutex::new(Slot::Running));
        let mut q = lock(&self.shared.queue);
        q.tasks.push_back(Task {
            job,
            slot: slot.clone(),
        });
        let mut started_thread = false;
        if q.tasks.len() <= q.idle {
            drop(q);
            self.shared.ready.notify_one();
        } else {
            drop(q);
            match self.start_worker() {
                Ok(()) => started_thread = true,
                Err(e) => {
                    // Take the task back, unless a worker that was busy took
                    // it meanwhile: then it runs, and the call is the
                    // caller's as usual.
                    let mut q = lock(&self.shared.queue);
                    if let Some(i) = q.tasks.iter().position(|t| Arc::ptr_eq(&t.slot, &slot)) {
                        q.tasks.remove(i);
                        return Err(e);
                    }
                }
            }
        }
        Ok(Call {
            slot,
            cancel,
            started_thread,
        })
    }

    fn start_worker(&self) -> std::io::Result<()> {
        let shared = self.shared.clone();
        let handle = std::thread::Builder::new()
            .name("host-tee-call".into())
            .spawn(move || shared.work())?;
        self.shared.created.fetch_add(1, Ordering::Relaxed);
        let mut w = lock(&self.workers);
        w.retain(|h| !h.is_finished());
        w.push(handle);
        Ok(())
    }
}

impl<D: TeeDevice> Shared<D> {
    /// A worker: runs tasks until the pool stops, or until enough others
    /// are idle.
    fn work(&self) {
        let mut q = lock(&self.queue);
        loop {
            if let Some(task) = q.tasks.pop_front() {
                drop(q);
                self.execute(task);
                q = lock(&self.queue);
                continue;
            }
            if q.stopping || q.idle >= self.keep_idle {
                return;
            }
            q.idle += 1;
            q = self.ready.wait(q).unwrap_or_else(|e| e.into_inner());
            q.idle -= 1;
        }
    }

    fn execute(&self, task: Task<D>) {
        if matches!(*lock(&task.slot), Slot::Abandoned) {
            // Abandoned before it started: nothing to run or undo (a
            // release's registration is dropped with the job).
            *lock(&task.slot) = Slot::Done;
            return;
        }
        // SAFETY: the promise of submit's caller.
        let fin = catch_unwind(AssertUnwindSafe(|| unsafe { run(&*self.dev, task.job) }));
        let mut s = lock(&task.slot);
        match fin {
            Ok(fin) if matches!(*s, Slot::Abandoned) => {
                *s = Slot::Done;
                drop(s);
                orphan(&*self.dev, fin);
            }
            Ok(fin) => {
                *s = Slot::Finished(fin);
                drop(s);
                self.progress.advance();
            }
            Err(_) => {
                log::warn!("host TEE: a call's worker panicked");
                *s = Slot::Lost;
                drop(s);
                self.progress.advance();
            }
        }
    }
}

impl<D: TeeDevice> Drop for Pool<D> {
    /// Waits for every job, queued or running.
    fn drop(&mut self) {
        lock(&self.shared.queue).stopping = true;
        self.shared.ready.notify_all();
        for h in lock(&self.workers).drain(..) {
            if h.join().is_err() {
                log::warn!("host TEE: a call's worker panicked");
            }
        }
    }
}
