// SPDX-License-Identifier: Apache-2.0 OR MIT
//! The host's TEE device as the backend uses it: one small method per
//! ioctl of include/uapi/linux/tee.h. One value is one TEE context (one
//! open file of /dev/teeN); its methods take `&self` so that calls of one
//! context run on several threads at once, as the kernel allows.

use std::ptr::NonNull;

use tee_uapi::sys::tee_ioctl_version_data;

use crate::error::HostTeeError;

/// A parameter as the uapi carries it (`struct tee_ioctl_param`): for a
/// memory reference, `a` is the offset in the shared memory, `b` the size
/// and `c` the shared memory id (or [`tee_uapi::MEMREF_NULL`]).
pub type TeeParam = tee_uapi::sys::tee_ioctl_param;

/// Who opens a session: the login class (TEE_IOCTL_LOGIN_*) and the
/// client's UUID, as TEE_IOC_OPEN_SESSION takes them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ClientLogin {
    /// TEE_IOCTL_LOGIN_*.
    pub method: u32,
    /// The client's UUID (the connection data for a group login).
    pub uuid: [u8; 16],
}

impl ClientLogin {
    /// A public login with the nil client UUID.
    pub const PUBLIC: ClientLogin = ClientLogin {
        method: tee_uapi::sys::TEE_IOCTL_LOGIN_PUBLIC,
        uuid: [0; 16],
    };
}

/// The TEE's verdict on a call (the argument's `ret` and `ret_origin`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CallResult {
    /// TEEC_SUCCESS or a TEEC_ERROR_*.
    pub ret: u32,
    /// TEEC_ORIGIN_*.
    pub origin: u32,
}

/// Shared memory known to the TEE context; dropping it releases it (for
/// the kernel: closes the fd TEE_IOC_SHM_REGISTER / SHM_ALLOC returned).
pub trait Shm: std::fmt::Debug + Send + 'static {
    /// The id memory reference parameters carry in `c`.
    fn id(&self) -> i32;
}

/// Shared memory the driver allocated (TEE_IOC_SHM_ALLOC), mapped here:
/// the backend's bounce buffers.
pub trait AllocatedShm: Shm {
    /// Its size in bytes.
    fn len(&self) -> usize;
    /// Whether it is empty.
    fn is_empty(&self) -> bool {
        self.len() == 0
    }
    /// Copies `data` in at `offset`; false if it does not fit.
    fn write(&mut self, offset: usize, data: &[u8]) -> bool;
    /// Copies `buf.len()` bytes out from `offset`; false if out of range.
    fn read(&self, offset: usize, buf: &mut [u8]) -> bool;
}

/// A TEE context: the ioctls of include/uapi/linux/tee.h.
pub trait TeeDevice: std::fmt::Debug + Send + Sync + 'static {
    /// A registration of process memory.
    type Registered: Shm;
    /// Memory allocated by the driver.
    type Allocated: AllocatedShm;

    /// TEE_IOC_VERSION.
    fn version(&self) -> Result<tee_ioctl_version_data, HostTeeError>;
    /// Whether the context passes a session's login and client UUID to
    /// the TEE as given: a VM's context (TEE_IOC_VM_CREATE, whose logins
    /// the TEE series passes through to the VM's partition). On other
    /// contexts the kernel computes the client's identity from the
    /// caller's credentials and refuses REE kernel logins.
    fn passes_logins(&self) -> bool {
        false
    }
    /// Where the context's partition relays its supplicant requests to
    /// the guest (`--tee-supplicant guest`, [`crate::relay`]); `None`
    /// when they are served here or there is no partition.
    fn relay(&self) -> Option<std::sync::Arc<crate::relay::Relay>> {
        None
    }
    /// TEE_IOC_OPEN_SESSION of the TA `uuid` as `login`; `params` are
    /// updated with the outputs. Returns the session (meaningful when the
    /// result is success) and the TEE's verdict.
    fn open_session(
        &self,
        uuid: [u8; 16],
        login: ClientLogin,
        cancel_id: u32,
        params: &mut [TeeParam],
    ) -> Result<(u32, CallResult), HostTeeError>;
    /// TEE_IOC_INVOKE of `func` in `session`; `params` are updated.
    fn invoke(
        &self,
        session: u32,
        func: u32,
        cancel_id: u32,
        params: &mut [TeeParam],
    ) -> Result<CallResult, HostTeeError>;
    /// TEE_IOC_CANCEL of the call with `cancel_id` (in `session`, 0 for an
    /// OPEN_SESSION in progress).
    fn cancel(&self, session: u32, cancel_id: u32) -> Result<(), HostTeeError>;
    /// TEE_IOC_CLOSE_SESSION.
    fn close_session(&self, session: u32) -> Result<(), HostTeeError>;
    /// TEE_IOC_SHM_REGISTER of `len` bytes at `addr` in this process.
    ///
    /// # Safety
    /// `addr..addr+len` must stay mapped, readable and writable, until the
    /// registration is dropped: the TEE (or a fake of it) may access it
    /// during any call until then.
    unsafe fn shm_register(
        &self,
        addr: NonNull<u8>,
        len: usize,
    ) -> Result<Self::Registered, HostTeeError>;
    /// TEE_IOC_SHM_ALLOC of `size` bytes, mapped into this process.
    fn shm_alloc(&self, size: usize) -> Result<Self::Allocated, HostTeeError>;
}
