// SPDX-License-Identifier: Apache-2.0 OR MIT
//! Standard calls on worker threads: a TEE ioctl blocks while OP-TEE runs,
//! so each call runs on its own thread, and the vCPU collects the result
//! when the guest comes back ([`Call::poll`]). A call nobody will collect
//! ([`Call::abandon`]) cleans up after itself: a session its OPEN_SESSION
//! opened is closed, its registrations released.

use std::sync::{Arc, Mutex, MutexGuard};
use std::thread::JoinHandle;

use crate::device::{CallResult, ClientLogin, TeeDevice, TeeParam};
use crate::error::HostTeeError;
use crate::memory::HostPtr;
use optee_mediator::Progress;

use crate::params::{materialize, Planned, Temp};

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
    },
    /// Release of a registration (closing its fd).
    Release(D::Registered),
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
    Registered(Result<D::Registered, HostTeeError>),
}

/// A finished call and the memory it held for its parameters.
#[derive(Debug)]
pub(crate) struct Finished<D: TeeDevice> {
    /// The result.
    pub outcome: Outcome<D>,
    /// Registrations and bounce buffers, released when dropped.
    pub temps: Vec<Temp<D>>,
}

#[derive(Debug)]
enum Slot<D: TeeDevice> {
    Running,
    Finished(Finished<D>),
    Abandoned,
}

/// A call in progress on a worker.
#[derive(Debug)]
pub(crate) struct Call<D: TeeDevice> {
    slot: Arc<Mutex<Slot<D>>>,
    handle: JoinHandle<()>,
    /// What TEE_IOC_CANCEL needs to stop it, if it can be stopped.
    pub cancel: Option<(u32, u32)>,
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
    match job {
        Job::Open {
            uuid,
            login,
            cancel_id,
            params,
        } => match call(params) {
            Ok((mut p, temps)) => {
                let r = dev.open_session(uuid, login, cancel_id, &mut p);
                Finished {
                    outcome: Outcome::Opened(r, p),
                    temps,
                }
            }
            Err(e) => Finished {
                outcome: Outcome::Opened(Err(e), Vec::new()),
                temps: Vec::new(),
            },
        },
        Job::Invoke {
            session,
            func,
            cancel_id,
            params,
        } => match call(params) {
            Ok((mut p, temps)) => {
                let r = dev.invoke(session, func, cancel_id, &mut p);
                Finished {
                    outcome: Outcome::Invoked(r, p),
                    temps,
                }
            }
            Err(e) => Finished {
                outcome: Outcome::Invoked(Err(e), Vec::new()),
                temps: Vec::new(),
            },
        },
        Job::Close { session } => Finished {
            outcome: Outcome::Done(dev.close_session(session)),
            temps: Vec::new(),
        },
        Job::Cancel { session, cancel_id } => Finished {
            outcome: Outcome::Done(dev.cancel(session, cancel_id)),
            temps: Vec::new(),
        },
        Job::Register { ptr, len } => Finished {
            // SAFETY: the caller's promise, passed on.
            outcome: Outcome::Registered(unsafe { dev.shm_register(ptr.0, len) }),
            temps: Vec::new(),
        },
        Job::Release(reg) => {
            drop(reg);
            Finished {
                outcome: Outcome::Done(Ok(())),
                temps: Vec::new(),
            }
        }
    }
}

/// Undoes what a result nobody will collect left behind: a session opened
/// is closed; registrations and bounce buffers are released on drop.
fn orphan<D: TeeDevice>(dev: &D, fin: Finished<D>) {
    if let Outcome::Opened(Ok((session, r)), _) = &fin.outcome {
        if r.ret == optee_mediator::msg::teec::SUCCESS {
            if let Err(e) = dev.close_session(*session) {
                log::warn!("host TEE: closing session {session} of an abandoned call: {e}");
            }
        }
    }
}

impl<D: TeeDevice> Call<D> {
    /// Starts `job` on a new worker thread, which advances `progress`
    /// once its result is there to collect.
    ///
    /// # Safety
    /// As for [`run`]: the host memory the job names stays mapped until
    /// the worker has finished (joined) and its result is dropped.
    pub unsafe fn spawn(
        dev: Arc<D>,
        job: Job<D>,
        progress: Arc<Progress>,
    ) -> std::io::Result<Call<D>> {
        let cancel = match &job {
            Job::Open { cancel_id, .. } => Some((0, *cancel_id)),
            Job::Invoke {
                session, cancel_id, ..
            } => Some((*session, *cancel_id)),
            _ => None,
        };
        let slot = Arc::new(Mutex::new(Slot::Running));
        let theirs = slot.clone();
        let handle = std::thread::Builder::new()
            .name("host-tee-call".into())
            .spawn(move || {
                // SAFETY: the promise of spawn's caller.
                let fin = unsafe { run(&*dev, job) };
                let mut s = lock(&theirs);
                if matches!(*s, Slot::Abandoned) {
                    drop(s);
                    orphan(&*dev, fin);
                } else {
                    *s = Slot::Finished(fin);
                    drop(s);
                    progress.advance();
                }
            })?;
        Ok(Call {
            slot,
            handle,
            cancel,
        })
    }

    /// The result, if the worker is done.
    pub fn poll(&self) -> Option<Finished<D>> {
        let mut s = lock(&self.slot);
        match std::mem::replace(&mut *s, Slot::Running) {
            Slot::Finished(f) => {
                *s = Slot::Abandoned;
                Some(f)
            }
            other => {
                *s = other;
                None
            }
        }
    }

    /// Whether the worker died without a result (it panicked).
    pub fn is_lost(&self) -> bool {
        self.handle.is_finished() && matches!(*lock(&self.slot), Slot::Running)
    }

    /// Nobody will collect the result: it is cleaned up when it arrives
    /// (or now, if it is there). Returns the worker, to join.
    pub fn abandon(self, dev: &D) -> JoinHandle<()> {
        let prev = std::mem::replace(&mut *lock(&self.slot), Slot::Abandoned);
        if let Slot::Finished(f) = prev {
            orphan(dev, f);
        }
        self.handle
    }
}
