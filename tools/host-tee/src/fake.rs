// SPDX-License-Identifier: Apache-2.0 OR MIT
//! [`FakeTee`]: an in-memory TEE device for tests. It keeps sessions and
//! shared memory like the kernel's context does (so tests can see what is
//! left), runs one fake TA ([`FAKE_TA`], commands in [`fake_cmd`]), and
//! has a gate that holds OPEN_SESSION and INVOKE in the "TEE" until opened
//! or cancelled, so that tests observe a call in progress.
//!
//! It reads and writes registered memory through the registered address,
//! as the TEE does: the contract of [`TeeDevice::shm_register`].

use std::collections::{HashMap, HashSet};
use std::ptr::NonNull;
use std::sync::{Arc, Condvar, Mutex, MutexGuard};

use optee_mediator::msg::teec;
use tee_uapi::sys::{
    tee_ioctl_version_data, TEE_IMPL_ID_OPTEE, TEE_IOCTL_PARAM_ATTR_TYPE_MEMREF_INOUT,
    TEE_IOCTL_PARAM_ATTR_TYPE_MEMREF_INPUT, TEE_IOCTL_PARAM_ATTR_TYPE_MEMREF_OUTPUT,
};
use tee_uapi::MEMREF_NULL;

use crate::device::{AllocatedShm, CallResult, ClientLogin, Shm, TeeDevice, TeeParam};
use crate::error::HostTeeError;

/// The UUID of the fake TA.
pub const FAKE_TA: [u8; 16] = [0x11; 16];

/// The fake TA's commands.
pub mod fake_cmd {
    /// Value parameter 0: a += 1.
    pub const INC: u32 = 0;
    /// Memory reference 0 reversed in place; value output 1 (if any): a = its size.
    pub const REVERSE: u32 = 1;
    /// Memory reference 0 (output) gets [`GREETING`](super::GREETING);
    /// SHORT_BUFFER with the size needed if it is smaller.
    pub const GREETING: u32 = 2;
    /// Memory reference 0 (output) gets as much of
    /// [`GREETING`](super::GREETING) as fits, and the size of the whole:
    /// SUCCESS with a size larger than the buffer, as a socket's truncated
    /// datagram.
    pub const TRUNCATED: u32 = 3;
}

/// What [`fake_cmd::GREETING`] writes.
pub const GREETING: &[u8] = b"fake-tee";

/// Memory the fake TEE knows by id.
#[derive(Debug)]
enum FakeMem {
    /// Registered process memory (address, length).
    Registered(usize, usize),
    /// Driver memory.
    Allocated(Arc<Mutex<Vec<u8>>>),
}

#[derive(Debug, Default)]
struct Inner {
    sessions: HashSet<u32>,
    next_session: u32,
    shms: HashMap<i32, FakeMem>,
    next_id: i32,
    gate_closed: bool,
    held: usize,
    cancels: Vec<(u32, u32)>,
    fail_next: Option<(&'static str, i32)>,
    logins: Vec<ClientLogin>,
    passes_logins: bool,
    cancel_calls: Vec<(u32, u32)>,
    relay: Option<Arc<crate::relay::Relay>>,
    /// The names of the threads that released shared memory (a real
    /// release is an unregistration in the TEE, which may wait).
    released_on: Vec<Option<String>>,
}

#[derive(Debug, Default)]
struct State {
    inner: Mutex<Inner>,
    changed: Condvar,
}

impl State {
    fn lock(&self) -> MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// The fake device; clones share one TEE context.
#[derive(Debug, Clone, Default)]
pub struct FakeTee {
    state: Arc<State>,
}

/// A fake registration or allocation; dropping it releases it.
#[derive(Debug)]
pub struct FakeShm {
    state: Arc<State>,
    id: i32,
    mem: Option<Arc<Mutex<Vec<u8>>>>,
}

impl FakeTee {
    /// An empty fake TEE, gate open.
    pub fn new() -> Self {
        Self::default()
    }

    /// Sessions open.
    pub fn session_count(&self) -> usize {
        self.state.lock().sessions.len()
    }

    /// Shared memory objects alive (registrations and allocations).
    pub fn shm_count(&self) -> usize {
        self.state.lock().shms.len()
    }

    /// The names of the threads that released shared memory so far, in
    /// order (`None` for an unnamed thread).
    pub fn released_on(&self) -> Vec<Option<String>> {
        self.state.lock().released_on.clone()
    }

    /// Shared memory alive by kind: (registrations, driver allocations).
    pub fn shm_kinds(&self) -> (usize, usize) {
        let g = self.state.lock();
        let reg = g
            .shms
            .values()
            .filter(|m| matches!(m, FakeMem::Registered(..)))
            .count();
        (reg, g.shms.len() - reg)
    }

    /// Closes the gate: later OPEN_SESSION and INVOKE calls wait in the TEE.
    pub fn close_gate(&self) {
        self.state.lock().gate_closed = true;
    }

    /// Opens the gate, releasing the calls waiting at it.
    pub fn open_gate(&self) {
        self.state.lock().gate_closed = false;
        self.state.changed.notify_all();
    }

    /// Waits until `n` calls wait at the gate.
    pub fn wait_held(&self, n: usize) {
        let mut g = self.state.lock();
        while g.held < n {
            g = self
                .state
                .changed
                .wait(g)
                .unwrap_or_else(|e| e.into_inner());
        }
    }

    /// Makes the next `ioctl` (VERSION, INVOKE, ...) fail with `errno`.
    pub fn fail_next(&self, ioctl: &'static str, errno: i32) {
        self.state.lock().fail_next = Some((ioctl, errno));
    }

    /// Makes the context pass logins through, as a VM's context does
    /// ([`TeeDevice::passes_logins`]).
    pub fn pass_logins(&self) {
        self.state.lock().passes_logins = true;
    }

    /// Makes the context relay its partition's supplicant requests
    /// through `relay` ([`TeeDevice::relay`]).
    pub fn set_relay(&self, relay: Arc<crate::relay::Relay>) {
        self.state.lock().relay = Some(relay);
    }

    /// The logins of every OPEN_SESSION so far.
    pub fn logins(&self) -> Vec<ClientLogin> {
        self.state.lock().logins.clone()
    }

    /// The (session, cancel id) of every CANCEL so far.
    pub fn cancel_calls(&self) -> Vec<(u32, u32)> {
        self.state.lock().cancel_calls.clone()
    }

    fn injected(&self, name: &'static str) -> Result<(), HostTeeError> {
        let mut g = self.state.lock();
        match g.fail_next {
            Some((n, errno)) if n == name => {
                g.fail_next = None;
                Err(HostTeeError::Ioctl { ioctl: name, errno })
            }
            _ => Ok(()),
        }
    }

    /// Waits at the gate; false if the call was cancelled meanwhile.
    fn gate(&self, session: u32, cancel_id: u32) -> bool {
        let mut g = self.state.lock();
        g.held += 1;
        self.state.changed.notify_all();
        let mut cancelled = false;
        while g.gate_closed {
            if let Some(i) = g.cancels.iter().position(|&c| c == (session, cancel_id)) {
                g.cancels.remove(i);
                cancelled = true;
                break;
            }
            g = self
                .state
                .changed
                .wait(g)
                .unwrap_or_else(|e| e.into_inner());
        }
        g.held -= 1;
        !cancelled
    }

    /// The bytes of memory reference `p`, or EINVAL as the kernel checks.
    fn memref_read(&self, p: &TeeParam) -> Result<Option<Vec<u8>>, HostTeeError> {
        if p.c == MEMREF_NULL {
            return Ok(None);
        }
        let einval = || HostTeeError::Ioctl {
            ioctl: "INVOKE",
            errno: libc::EINVAL,
        };
        let g = self.state.lock();
        let mem = g.shms.get(&(p.c as i32)).ok_or_else(einval)?;
        let (off, len) = (p.a as usize, p.b as usize);
        let end = off.checked_add(len).ok_or_else(einval)?;
        match mem {
            FakeMem::Registered(addr, size) => {
                if end > *size {
                    return Err(einval());
                }
                let mut v = vec![0u8; len];
                // SAFETY: `addr..addr+size` was registered and stays mapped
                // while registered (the contract of shm_register); the range
                // read is inside it.
                unsafe {
                    std::ptr::copy_nonoverlapping((addr + off) as *const u8, v.as_mut_ptr(), len)
                };
                Ok(Some(v))
            }
            FakeMem::Allocated(m) => {
                let m = m.lock().unwrap_or_else(|e| e.into_inner());
                Ok(Some(m.get(off..end).ok_or_else(einval)?.to_vec()))
            }
        }
    }

    /// Writes `data` at the start of memory reference `p`.
    fn memref_write(&self, p: &TeeParam, data: &[u8]) {
        let g = self.state.lock();
        let Some(mem) = g.shms.get(&(p.c as i32)) else {
            return;
        };
        let off = p.a as usize;
        match mem {
            FakeMem::Registered(addr, size) => {
                if off.saturating_add(data.len()) <= *size {
                    // SAFETY: as in memref_read, writing inside the range.
                    unsafe {
                        std::ptr::copy_nonoverlapping(
                            data.as_ptr(),
                            (addr + off) as *mut u8,
                            data.len(),
                        )
                    };
                }
            }
            FakeMem::Allocated(m) => {
                let mut m = m.lock().unwrap_or_else(|e| e.into_inner());
                if let Some(dst) = m.get_mut(off..off.saturating_add(data.len())) {
                    dst.copy_from_slice(data);
                }
            }
        }
    }

    fn add_shm(&self, mem: FakeMem) -> i32 {
        let mut g = self.state.lock();
        g.next_id += 1;
        let id = g.next_id;
        g.shms.insert(id, mem);
        id
    }

    /// Checks every memory reference as the kernel does.
    fn check_params(&self, params: &[TeeParam]) -> Result<(), HostTeeError> {
        for p in params {
            let t = p.attr as u32;
            if t == TEE_IOCTL_PARAM_ATTR_TYPE_MEMREF_INPUT
                || t == TEE_IOCTL_PARAM_ATTR_TYPE_MEMREF_OUTPUT
                || t == TEE_IOCTL_PARAM_ATTR_TYPE_MEMREF_INOUT
            {
                self.memref_read(p)?;
            }
        }
        Ok(())
    }
}

fn ta(ret: u32) -> CallResult {
    CallResult {
        ret,
        origin: teec::ORIGIN_TRUSTED_APP,
    }
}

impl TeeDevice for FakeTee {
    type Registered = FakeShm;
    type Allocated = FakeShm;

    fn version(&self) -> Result<tee_ioctl_version_data, HostTeeError> {
        self.injected("VERSION")?;
        Ok(tee_ioctl_version_data {
            impl_id: TEE_IMPL_ID_OPTEE,
            ..Default::default()
        })
    }

    fn passes_logins(&self) -> bool {
        self.state.lock().passes_logins
    }

    fn relay(&self) -> Option<Arc<crate::relay::Relay>> {
        self.state.lock().relay.clone()
    }

    fn open_session(
        &self,
        uuid: [u8; 16],
        login: ClientLogin,
        cancel_id: u32,
        params: &mut [TeeParam],
    ) -> Result<(u32, CallResult), HostTeeError> {
        self.injected("OPEN_SESSION")?;
        self.check_params(params)?;
        self.state.lock().logins.push(login);
        if !self.gate(0, cancel_id) {
            return Ok((
                0,
                CallResult {
                    ret: teec::ERROR_CANCEL,
                    origin: teec::ORIGIN_TEE,
                },
            ));
        }
        if uuid != FAKE_TA {
            return Ok((
                0,
                CallResult {
                    ret: teec::ERROR_ITEM_NOT_FOUND,
                    origin: teec::ORIGIN_TEE,
                },
            ));
        }
        let mut g = self.state.lock();
        g.next_session += 1;
        let s = g.next_session;
        g.sessions.insert(s);
        Ok((s, ta(teec::SUCCESS)))
    }

    fn invoke(
        &self,
        session: u32,
        func: u32,
        cancel_id: u32,
        params: &mut [TeeParam],
    ) -> Result<CallResult, HostTeeError> {
        self.injected("INVOKE")?;
        if !self.state.lock().sessions.contains(&session) {
            return Err(HostTeeError::Ioctl {
                ioctl: "INVOKE",
                errno: libc::EINVAL,
            });
        }
        self.check_params(params)?;
        if !self.gate(session, cancel_id) {
            return Ok(CallResult {
                ret: teec::ERROR_CANCEL,
                origin: teec::ORIGIN_TEE,
            });
        }
        match (func, params) {
            (fake_cmd::INC, [p, ..]) => {
                p.a = p.a.wrapping_add(1);
                Ok(ta(teec::SUCCESS))
            }
            (fake_cmd::REVERSE, [m, rest @ ..]) => {
                let Some(mut data) = self.memref_read(m)? else {
                    return Ok(ta(teec::ERROR_BAD_PARAMETERS));
                };
                data.reverse();
                self.memref_write(m, &data);
                if let Some(v) = rest.first_mut() {
                    v.a = data.len() as u64;
                }
                Ok(ta(teec::SUCCESS))
            }
            (fake_cmd::GREETING, [m, ..]) => {
                let room = m.b;
                m.b = GREETING.len() as u64;
                if room < m.b || m.c == MEMREF_NULL {
                    return Ok(ta(teec::ERROR_SHORT_BUFFER));
                }
                self.memref_write(m, GREETING);
                Ok(ta(teec::SUCCESS))
            }
            (fake_cmd::TRUNCATED, [m, ..]) => {
                let fits = usize::try_from(m.b)
                    .unwrap_or(usize::MAX)
                    .min(GREETING.len());
                m.b = GREETING.len() as u64;
                if m.c != MEMREF_NULL {
                    self.memref_write(m, &GREETING[..fits]);
                }
                Ok(ta(teec::SUCCESS))
            }
            _ => Ok(ta(teec::ERROR_NOT_SUPPORTED)),
        }
    }

    fn cancel(&self, session: u32, cancel_id: u32) -> Result<(), HostTeeError> {
        self.injected("CANCEL")?;
        let mut g = self.state.lock();
        g.cancel_calls.push((session, cancel_id));
        if g.held > 0 {
            g.cancels.push((session, cancel_id));
        }
        drop(g);
        self.state.changed.notify_all();
        Ok(())
    }

    fn close_session(&self, session: u32) -> Result<(), HostTeeError> {
        self.injected("CLOSE_SESSION")?;
        if self.state.lock().sessions.remove(&session) {
            Ok(())
        } else {
            Err(HostTeeError::Ioctl {
                ioctl: "CLOSE_SESSION",
                errno: libc::EINVAL,
            })
        }
    }

    unsafe fn shm_register(&self, addr: NonNull<u8>, len: usize) -> Result<FakeShm, HostTeeError> {
        self.injected("SHM_REGISTER")?;
        let id = self.add_shm(FakeMem::Registered(addr.as_ptr() as usize, len));
        Ok(FakeShm {
            state: self.state.clone(),
            id,
            mem: None,
        })
    }

    fn shm_alloc(&self, size: usize) -> Result<FakeShm, HostTeeError> {
        self.injected("SHM_ALLOC")?;
        let mem = Arc::new(Mutex::new(vec![0u8; size]));
        let id = self.add_shm(FakeMem::Allocated(mem.clone()));
        Ok(FakeShm {
            state: self.state.clone(),
            id,
            mem: Some(mem),
        })
    }
}

impl Shm for FakeShm {
    fn id(&self) -> i32 {
        self.id
    }
}

impl AllocatedShm for FakeShm {
    fn len(&self) -> usize {
        self.mem
            .as_ref()
            .map_or(0, |m| m.lock().unwrap_or_else(|e| e.into_inner()).len())
    }

    fn write(&mut self, offset: usize, data: &[u8]) -> bool {
        let Some(m) = &self.mem else { return false };
        let mut m = m.lock().unwrap_or_else(|e| e.into_inner());
        match m.get_mut(offset..offset.saturating_add(data.len())) {
            Some(dst) => {
                dst.copy_from_slice(data);
                true
            }
            None => false,
        }
    }

    fn read(&self, offset: usize, buf: &mut [u8]) -> bool {
        let Some(m) = &self.mem else { return false };
        let m = m.lock().unwrap_or_else(|e| e.into_inner());
        match m.get(offset..offset.saturating_add(buf.len())) {
            Some(src) => {
                buf.copy_from_slice(src);
                true
            }
            None => false,
        }
    }
}

impl Drop for FakeShm {
    fn drop(&mut self) {
        let mut s = self.state.lock();
        s.shms.remove(&self.id);
        s.released_on
            .push(std::thread::current().name().map(str::to_owned));
    }
}
