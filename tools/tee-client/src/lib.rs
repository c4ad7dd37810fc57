// SPDX-License-Identifier: Apache-2.0 OR MIT
//! A small client of the Linux TEE subsystem (/dev/teeN), the way libteec
//! uses it: version, sessions, commands with value and memory reference
//! parameters, shared memory allocated by the driver (TEE_IOC_SHM_ALLOC)
//! or registered from user memory (TEE_IOC_SHM_REGISTER).
//!
//! The types and ioctl numbers come from the project's one copy of
//! include/uapi/linux/tee.h, the `tee-uapi` crate ([`sys`], [`ioc`]).

#![deny(missing_docs)]

use std::ffi::CString;
use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::path::Path;

pub use tee_uapi::{ioc, sys, MAX_PARAMS};

use sys::{
    tee_ioctl_close_session_arg, tee_ioctl_invoke_arg, tee_ioctl_open_session_arg, tee_ioctl_param,
    tee_ioctl_shm_alloc_data, tee_ioctl_shm_register_data, tee_ioctl_version_data,
};
use tee_uapi::{ArgBuf, ShmMapping};

/// A parameter of a call (the uapi's `struct tee_ioctl_param`).
pub type Param = tee_ioctl_param;

/// Parameter constructors.
pub mod param {
    use super::{sys, Param};

    /// No parameter.
    pub fn none() -> Param {
        Param::default()
    }

    /// A value parameter: `attr` is TEE_IOCTL_PARAM_ATTR_TYPE_VALUE_*.
    pub fn value(attr: u32, a: u64, b: u64, c: u64) -> Param {
        Param {
            attr: attr.into(),
            a,
            b,
            c,
        }
    }

    /// A value in/out parameter.
    pub fn value_inout(a: u64, b: u64) -> Param {
        value(sys::TEE_IOCTL_PARAM_ATTR_TYPE_VALUE_INOUT, a, b, 0)
    }

    /// A value output parameter.
    pub fn value_out() -> Param {
        value(sys::TEE_IOCTL_PARAM_ATTR_TYPE_VALUE_OUTPUT, 0, 0, 0)
    }

    /// A memory reference: `size` bytes at `offset` of shared memory `shm_id`;
    /// `attr` is TEE_IOCTL_PARAM_ATTR_TYPE_MEMREF_*.
    pub fn memref(attr: u32, shm_id: i32, offset: u64, size: u64) -> Param {
        Param {
            attr: attr.into(),
            a: offset,
            b: size,
            c: shm_id as u64,
        }
    }
}

/// The TEE's verdict on a call: `ret` (TEEC_*) and where it came from
/// (TEEC_ORIGIN_*).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TeeResult {
    /// TEEC_SUCCESS or a TEEC_ERROR_*.
    pub ret: u32,
    /// TEEC_ORIGIN_*.
    pub origin: u32,
}

/// `arg` followed by `params`, as OPEN_SESSION and INVOKE take them.
fn arg_buf<A>(arg: A, params: &[Param]) -> io::Result<ArgBuf<A>> {
    ArgBuf::new(arg, params).map_err(|e| io::Error::new(io::ErrorKind::InvalidInput, e.to_string()))
}

/// An open TEE device.
#[derive(Debug)]
pub struct Tee {
    fd: OwnedFd,
}

/// Shared memory allocated by the driver and mapped here.
#[derive(Debug)]
pub struct Shm {
    id: i32,
    map: ShmMapping,
}

/// User memory registered with the TEE; borrows the memory while it lives.
#[derive(Debug)]
pub struct RegisteredShm<'a> {
    _fd: OwnedFd,
    id: i32,
    _mem: std::marker::PhantomData<&'a mut [u8]>,
}

/// Whether failing to open the TEE device means there is no TEE (the
/// kselftest skip: no device node, or no driver behind it) rather than a
/// failure (a device that exists but refuses this client, EACCES, EBUSY...).
pub fn no_tee_device(e: &io::Error) -> bool {
    e.kind() == io::ErrorKind::NotFound
        || matches!(e.raw_os_error(), Some(libc::ENODEV) | Some(libc::ENXIO))
}

fn check(r: libc::c_int) -> io::Result<libc::c_int> {
    if r < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(r)
    }
}

impl Tee {
    /// Opens a TEE device such as /dev/tee0.
    pub fn open(path: &Path) -> io::Result<Tee> {
        let c = CString::new(path.as_os_str().as_encoded_bytes())
            .map_err(|e| io::Error::new(io::ErrorKind::InvalidInput, e))?;
        // SAFETY: `c` is a NUL-terminated path that outlives the call.
        let fd = check(unsafe { libc::open(c.as_ptr(), libc::O_RDWR | libc::O_CLOEXEC) })?;
        // SAFETY: `fd` was just opened and is owned by nobody else.
        Ok(Tee {
            fd: unsafe { OwnedFd::from_raw_fd(fd) },
        })
    }

    /// # Safety
    /// `arg` must point to what `request` expects, valid for the call.
    unsafe fn ioctl<T>(&self, request: u64, arg: *mut T) -> io::Result<libc::c_int> {
        // SAFETY: the fd is open; the caller vouches for `arg`.
        check(unsafe { libc::ioctl(self.fd.as_raw_fd(), request as _, arg) })
    }

    /// TEE_IOC_VERSION.
    pub fn version(&self) -> io::Result<tee_ioctl_version_data> {
        let mut v = tee_ioctl_version_data::default();
        // SAFETY: VERSION writes one tee_ioctl_version_data.
        unsafe { self.ioctl(ioc::VERSION, &mut v) }?;
        Ok(v)
    }

    /// TEE_IOC_OPEN_SESSION with `login` (TEE_IOCTL_LOGIN_*); on success of
    /// the ioctl returns the session id (meaningful when `ret` is success)
    /// and the TEE's verdict; `params` are updated with the outputs.
    pub fn open_session(
        &self,
        uuid: [u8; 16],
        login: u32,
        params: &mut [Param],
    ) -> io::Result<(u32, TeeResult)> {
        let arg = tee_ioctl_open_session_arg {
            uuid,
            clnt_login: login,
            num_params: params.len() as u32,
            ..Default::default()
        };
        let mut buf = arg_buf(arg, params)?;
        let mut data = buf.data(params.len());
        // SAFETY: `data` describes `buf`, a session argument followed by
        // its parameters, alive and exclusively borrowed for the call.
        unsafe { self.ioctl(ioc::OPEN_SESSION, &mut data) }?;
        params.copy_from_slice(&buf.params[..params.len()]);
        let r = TeeResult {
            ret: buf.arg.ret,
            origin: buf.arg.ret_origin,
        };
        Ok((buf.arg.session, r))
    }

    /// TEE_IOC_INVOKE of `func` in `session`; `params` are updated with
    /// the outputs.
    pub fn invoke(&self, session: u32, func: u32, params: &mut [Param]) -> io::Result<TeeResult> {
        let arg = tee_ioctl_invoke_arg {
            func,
            session,
            num_params: params.len() as u32,
            ..Default::default()
        };
        let mut buf = arg_buf(arg, params)?;
        let mut data = buf.data(params.len());
        // SAFETY: as for open_session.
        unsafe { self.ioctl(ioc::INVOKE, &mut data) }?;
        params.copy_from_slice(&buf.params[..params.len()]);
        Ok(TeeResult {
            ret: buf.arg.ret,
            origin: buf.arg.ret_origin,
        })
    }

    /// TEE_IOC_CLOSE_SESSION.
    pub fn close_session(&self, session: u32) -> io::Result<()> {
        let mut arg = tee_ioctl_close_session_arg { session };
        // SAFETY: CLOSE_SESSION reads one tee_ioctl_close_session_arg.
        unsafe { self.ioctl(ioc::CLOSE_SESSION, &mut arg) }.map(|_| ())
    }

    /// TEE_IOC_SHM_ALLOC of `size` bytes, mapped into this process.
    pub fn shm_alloc(&self, size: usize) -> io::Result<Shm> {
        let mut d = tee_ioctl_shm_alloc_data {
            size: size as u64,
            ..Default::default()
        };
        // SAFETY: SHM_ALLOC reads and writes one tee_ioctl_shm_alloc_data.
        let raw = unsafe { self.ioctl(ioc::SHM_ALLOC, &mut d) }?;
        // SAFETY: the ioctl returned a new fd that nobody else owns.
        let fd = unsafe { OwnedFd::from_raw_fd(raw) };
        Ok(Shm {
            id: d.id,
            map: ShmMapping::new(fd, size)?,
        })
    }

    /// TEE_IOC_SHM_REGISTER of `mem` (any alignment, any length).
    pub fn shm_register<'a>(&self, mem: &'a mut [u8]) -> io::Result<RegisteredShm<'a>> {
        let mut d = tee_ioctl_shm_register_data {
            addr: mem.as_mut_ptr() as u64,
            length: mem.len() as u64,
            ..Default::default()
        };
        // SAFETY: SHM_REGISTER reads and writes one
        // tee_ioctl_shm_register_data; the memory it names stays borrowed
        // (and so alive) as long as the registration.
        let raw = unsafe { self.ioctl(ioc::SHM_REGISTER, &mut d) }?;
        Ok(RegisteredShm {
            // SAFETY: the ioctl returned a new fd that nobody else owns.
            _fd: unsafe { OwnedFd::from_raw_fd(raw) },
            id: d.id,
            _mem: std::marker::PhantomData,
        })
    }
}

impl Shm {
    /// The shared memory id parameters name.
    pub fn id(&self) -> i32 {
        self.id
    }

    /// The memory.
    pub fn as_slice(&self) -> &[u8] {
        self.map.as_slice()
    }

    /// The memory, mutably.
    pub fn as_mut_slice(&mut self) -> &mut [u8] {
        self.map.as_mut_slice()
    }

    /// The fd (kept open as long as the memory is used).
    pub fn fd(&self) -> &OwnedFd {
        self.map.fd()
    }
}

impl RegisteredShm<'_> {
    /// The shared memory id parameters name.
    pub fn id(&self) -> i32 {
        self.id
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn argument_buffers_hold_at_most_four_parameters() {
        assert!(arg_buf(tee_ioctl_invoke_arg::default(), &[param::none(); 4]).is_ok());
        let e = arg_buf(tee_ioctl_invoke_arg::default(), &[param::none(); 5]).unwrap_err();
        assert_eq!(e.kind(), io::ErrorKind::InvalidInput);
    }

    #[test]
    fn memrefs_carry_offset_size_and_shm_id() {
        // Four different numbers: a swap of any two fields shows.
        let attr = sys::TEE_IOCTL_PARAM_ATTR_TYPE_MEMREF_INOUT;
        assert_eq!(attr, 7);
        let p = param::memref(attr, 11, 100, 5000);
        assert_eq!((p.attr, p.a, p.b, p.c), (7, 100, 5000, 11));
        // A negative id keeps its bits (the kernel reads c as an int).
        assert_eq!(param::memref(attr, -1, 0, 1).c as i32, -1);
    }

    #[test]
    fn a_missing_device_is_an_error() {
        let e = Tee::open(Path::new("/nonexistent/tee0")).unwrap_err();
        assert_eq!(e.kind(), io::ErrorKind::NotFound);
        assert!(no_tee_device(&e));
    }

    #[test]
    fn only_a_missing_device_or_driver_is_no_tee() {
        for errno in [libc::ENOENT, libc::ENODEV, libc::ENXIO] {
            assert!(
                no_tee_device(&io::Error::from_raw_os_error(errno)),
                "{errno}"
            );
        }
        for errno in [libc::EACCES, libc::EBUSY, libc::EINVAL, libc::ENOMEM] {
            assert!(
                !no_tee_device(&io::Error::from_raw_os_error(errno)),
                "{errno}"
            );
        }
        // Opening something that is not a TEE works; its ioctls then fail.
        let not_tee = Tee::open(Path::new("/dev/null")).unwrap();
        assert!(not_tee.version().is_err());
    }
}
