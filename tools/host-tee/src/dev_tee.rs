// SPDX-License-Identifier: Apache-2.0 OR MIT
//! [`TeeDevice`] on an opened /dev/teeN: one file, one TEE context.

use std::ffi::CString;
use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::path::{Path, PathBuf};
use std::ptr::NonNull;
use std::sync::Arc;

use tee_uapi::sys::{
    tee_iocl_supp_recv_arg, tee_iocl_supp_send_arg, tee_ioctl_buf_data, tee_ioctl_cancel_arg,
    tee_ioctl_close_session_arg, tee_ioctl_invoke_arg, tee_ioctl_open_session_arg,
    tee_ioctl_shm_alloc_data, tee_ioctl_shm_register_data, tee_ioctl_version_data,
    TEE_IMPL_ID_OPTEE,
};
use tee_uapi::{ioc, ArgBuf, ShmMapping};

use crate::device::{AllocatedShm, CallResult, ClientLogin, Shm, TeeDevice, TeeParam};
use crate::error::HostTeeError;
use crate::partition::{Partition, PartitionConfig, PartitionError, SupplicantMode};
use crate::relay::Relay;
use crate::supplicant::SupplicantThread;
use crate::supplicant::{SupplicantChannel, RECV_PARAMS};

/// An open TEE device: one TEE context of the host's driver, and the
/// context's OP-TEE partition if it was made a VM of its own
/// ([`DevTee::make_vm`]).
#[derive(Debug)]
pub struct DevTee {
    fd: OwnedFd,
    path: PathBuf,
    /// Dropped after `fd` is closed: its supplicant then closes the
    /// context's last fd.
    partition: Option<Partition>,
}

/// A registration of process memory: released when dropped.
#[derive(Debug)]
pub struct DevRegistered {
    _fd: OwnedFd,
    id: i32,
}

/// Driver-allocated shared memory mapped into this process.
#[derive(Debug)]
pub struct DevAllocated {
    id: i32,
    map: ShmMapping,
}

impl DevTee {
    /// Opens `path` (such as /dev/tee0) and checks that OP-TEE is behind it.
    pub fn open(path: impl AsRef<Path>) -> Result<DevTee, HostTeeError> {
        let path = path.as_ref();
        let c = CString::new(path.as_os_str().as_encoded_bytes()).map_err(|e| {
            HostTeeError::open(path, io::Error::new(io::ErrorKind::InvalidInput, e))
        })?;
        // SAFETY: `c` is a NUL-terminated path that outlives the call.
        let fd = unsafe { libc::open(c.as_ptr(), libc::O_RDWR | libc::O_CLOEXEC) };
        if fd < 0 {
            return Err(HostTeeError::open(path, io::Error::last_os_error()));
        }
        let tee = DevTee {
            // SAFETY: `fd` was just opened and is owned by nobody else.
            fd: unsafe { OwnedFd::from_raw_fd(fd) },
            path: path.to_path_buf(),
            partition: None,
        };
        let v = tee.version().map_err(|e| match e {
            HostTeeError::Ioctl { errno, .. } => HostTeeError::NotATee {
                path: tee.path.clone(),
                errno,
            },
            other => other,
        })?;
        if v.impl_id != TEE_IMPL_ID_OPTEE {
            return Err(HostTeeError::NotOpTee {
                path: tee.path,
                impl_id: v.impl_id,
            });
        }
        Ok(tee)
    }

    /// The device's path.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Whether the device serves contexts as VMs of their own
    /// (TEE_GEN_CAP_VM: an OP-TEE built with NS-virtualization, under a
    /// kernel with patches/tee-VERSION).
    pub fn serves_vms(&self) -> Result<bool, HostTeeError> {
        Ok(self.version()?.gen_caps & tee_uapi::vm::TEE_GEN_CAP_VM != 0)
    }

    /// TEE_IOC_VM_CREATE: a new VM, in an OP-TEE partition of its own,
    /// whose context is the returned fd (this context is not changed):
    /// the VM goes when that fd's file is closed. Returns the fd and the
    /// VM's id in the TEE (for logs). EPERM without CAP_SYS_ADMIN; EDQUOT
    /// when this user has as many VMs as the driver allows; ENOSPC when
    /// the TEE holds no more VMs; EOPNOTSUPP on TEEs that serve none.
    pub fn vm_create(&self) -> Result<(OwnedFd, u32), HostTeeError> {
        let mut d = tee_uapi::vm::tee_ioctl_vm_create_arg::default();
        // SAFETY: VM_CREATE reads and writes one tee_ioctl_vm_create_arg,
        // alive for the call.
        unsafe { self.ioctl("VM_CREATE", ioc::VM_CREATE, &mut d) }?;
        if d.fd < 0 {
            return Err(HostTeeError::Ioctl {
                ioctl: "VM_CREATE",
                errno: libc::EBADF,
            });
        }
        // SAFETY: the kernel just installed `d.fd` for this process, and
        // nothing else owns it.
        let fd = unsafe { OwnedFd::from_raw_fd(d.fd) };
        Ok((fd, d.vm_id))
    }

    /// Another fd of the same open file: the same TEE context (dup(2)),
    /// without the partition (which stays with `self`).
    fn try_clone(&self) -> Result<DevTee, HostTeeError> {
        let fd = self
            .fd
            .try_clone()
            .map_err(|e| HostTeeError::open(&self.path, e))?;
        Ok(DevTee {
            fd,
            path: self.path.clone(),
            partition: None,
        })
    }

    /// Makes this `DevTee` an OP-TEE VM of its own: its context becomes
    /// a new VM's ([`DevTee::vm_create`]; the context it had is closed),
    /// whose partition's supplicant requests are served on a thread, as
    /// `config` says, until this `DevTee` is dropped. Returns the
    /// partition (its VM id, its configuration).
    pub fn make_vm(&mut self, config: PartitionConfig) -> Result<&Partition, PartitionError> {
        let (fd, id) = self.vm_create().map_err(|err| match err {
            HostTeeError::Ioctl { errno, .. } if errno == libc::ENOSPC => PartitionError::NoRoom {
                path: self.path.clone(),
            },
            HostTeeError::Ioctl { errno, .. } if errno == libc::EPERM => {
                PartitionError::NotPermitted {
                    path: self.path.clone(),
                }
            }
            HostTeeError::Ioctl { errno, .. } if errno == libc::EDQUOT => {
                PartitionError::UserLimit {
                    path: self.path.clone(),
                }
            }
            err => PartitionError::Create {
                path: self.path.clone(),
                err,
            },
        })?;
        // From here the context is the VM's: whatever fails, the partition
        // goes with it.
        self.fd = fd;
        let relay = (config.supplicant == SupplicantMode::Guest).then(|| {
            let bound =
                crate::relay::host_bound(std::path::Path::new(crate::relay::HOST_BOUND_PARAM));
            Arc::new(Relay::with_bound(bound))
        });
        let mut partition = Partition {
            id,
            config,
            supplicant: None,
            relay: relay.clone(),
        };
        let channel = self.try_clone().map_err(|err| PartitionError::Create {
            path: self.path.clone(),
            err,
        })?;
        let thread = match relay {
            Some(relay) => SupplicantThread::spawn_relay(channel, relay),
            None => {
                SupplicantThread::spawn(channel, Partition::supplicant_config(&partition.config))
            }
        };
        partition.supplicant = Some(thread.map_err(|err| PartitionError::Supplicant {
            path: self.path.clone(),
            err,
        })?);
        Ok(self.partition.insert(partition))
    }

    /// The ioctl `request` named `name`, returning its non-negative result.
    ///
    /// # Safety
    /// `arg` must point to what `request` expects, valid for the call.
    unsafe fn ioctl<T>(
        &self,
        name: &'static str,
        request: u64,
        arg: *mut T,
    ) -> Result<libc::c_int, HostTeeError> {
        // SAFETY: the fd is open; the caller vouches for `arg`.
        let r = unsafe { libc::ioctl(self.fd.as_raw_fd(), request as _, arg) };
        if r < 0 {
            Err(HostTeeError::Ioctl {
                ioctl: name,
                errno: io::Error::last_os_error()
                    .raw_os_error()
                    .unwrap_or(libc::EIO),
            })
        } else {
            Ok(r)
        }
    }
}

impl TeeDevice for DevTee {
    type Registered = DevRegistered;
    type Allocated = DevAllocated;

    fn version(&self) -> Result<tee_ioctl_version_data, HostTeeError> {
        let mut v = tee_ioctl_version_data::default();
        // SAFETY: VERSION writes one tee_ioctl_version_data, alive for the call.
        unsafe { self.ioctl("VERSION", ioc::VERSION, &mut v) }?;
        Ok(v)
    }

    fn passes_logins(&self) -> bool {
        self.partition.is_some()
    }

    fn relay(&self) -> Option<std::sync::Arc<crate::relay::Relay>> {
        self.partition.as_ref().and_then(|p| p.relay.clone())
    }

    fn open_session(
        &self,
        uuid: [u8; 16],
        login: ClientLogin,
        cancel_id: u32,
        params: &mut [TeeParam],
    ) -> Result<(u32, CallResult), HostTeeError> {
        let arg = tee_ioctl_open_session_arg {
            uuid,
            clnt_login: login.method,
            clnt_uuid: login.uuid,
            cancel_id,
            num_params: params.len() as u32,
            ..Default::default()
        };
        let mut buf = ArgBuf::new(arg, params)?;
        let mut data = buf.data(params.len());
        // SAFETY: `data` describes `buf`, a session argument followed by
        // `num_params` parameters, alive and exclusively borrowed for the
        // call; the memory references in it name shared memory of this
        // context, which the kernel checks.
        unsafe { self.ioctl("OPEN_SESSION", ioc::OPEN_SESSION, &mut data) }?;
        params.copy_from_slice(&buf.params[..params.len()]);
        let r = CallResult {
            ret: buf.arg.ret,
            origin: buf.arg.ret_origin,
        };
        Ok((buf.arg.session, r))
    }

    fn invoke(
        &self,
        session: u32,
        func: u32,
        cancel_id: u32,
        params: &mut [TeeParam],
    ) -> Result<CallResult, HostTeeError> {
        let arg = tee_ioctl_invoke_arg {
            func,
            session,
            cancel_id,
            num_params: params.len() as u32,
            ..Default::default()
        };
        let mut buf = ArgBuf::new(arg, params)?;
        let mut data = buf.data(params.len());
        // SAFETY: as for open_session, with an invoke argument.
        unsafe { self.ioctl("INVOKE", ioc::INVOKE, &mut data) }?;
        params.copy_from_slice(&buf.params[..params.len()]);
        Ok(CallResult {
            ret: buf.arg.ret,
            origin: buf.arg.ret_origin,
        })
    }

    fn cancel(&self, session: u32, cancel_id: u32) -> Result<(), HostTeeError> {
        let mut arg = tee_ioctl_cancel_arg { cancel_id, session };
        // SAFETY: CANCEL reads one tee_ioctl_cancel_arg, alive for the call.
        unsafe { self.ioctl("CANCEL", ioc::CANCEL, &mut arg) }.map(|_| ())
    }

    fn close_session(&self, session: u32) -> Result<(), HostTeeError> {
        let mut arg = tee_ioctl_close_session_arg { session };
        // SAFETY: CLOSE_SESSION reads one tee_ioctl_close_session_arg.
        unsafe { self.ioctl("CLOSE_SESSION", ioc::CLOSE_SESSION, &mut arg) }.map(|_| ())
    }

    unsafe fn shm_register(
        &self,
        addr: NonNull<u8>,
        len: usize,
    ) -> Result<DevRegistered, HostTeeError> {
        let mut d = tee_ioctl_shm_register_data {
            addr: addr.as_ptr() as u64,
            length: len as u64,
            ..Default::default()
        };
        // SAFETY: SHM_REGISTER reads and writes one
        // tee_ioctl_shm_register_data; the kernel pins the pages it names,
        // which the caller keeps mapped as long as the registration.
        let raw = unsafe { self.ioctl("SHM_REGISTER", ioc::SHM_REGISTER, &mut d) }?;
        Ok(DevRegistered {
            // SAFETY: the ioctl returned a new fd that nobody else owns.
            _fd: unsafe { OwnedFd::from_raw_fd(raw) },
            id: d.id,
        })
    }

    fn shm_alloc(&self, size: usize) -> Result<DevAllocated, HostTeeError> {
        let mut d = tee_ioctl_shm_alloc_data {
            size: size as u64,
            ..Default::default()
        };
        // SAFETY: SHM_ALLOC reads and writes one tee_ioctl_shm_alloc_data.
        let raw = unsafe { self.ioctl("SHM_ALLOC", ioc::SHM_ALLOC, &mut d) }?;
        // SAFETY: the ioctl returned a new fd that nobody else owns.
        let fd = unsafe { OwnedFd::from_raw_fd(raw) };
        let map = ShmMapping::new(fd, size).map_err(|e| HostTeeError::Ioctl {
            ioctl: "SHM_ALLOC",
            errno: e.raw_os_error().unwrap_or(libc::EIO),
        })?;
        Ok(DevAllocated { id: d.id, map })
    }
}

/// A supplicant's argument (`tee_iocl_supp_recv_arg` or
/// `tee_iocl_supp_send_arg`, whose parameter arrays take no room)
/// followed by its parameters: the buffer of SUPPL_RECV and SUPPL_SEND.
#[repr(C)]
struct SuppBuf<A> {
    arg: A,
    params: [TeeParam; RECV_PARAMS],
}

// The parameters follow the 8-byte header without padding, as the kernel
// reads them (`uarg->params`).
const _: () = assert!(std::mem::offset_of!(SuppBuf<tee_iocl_supp_recv_arg>, params) == 8);
const _: () = assert!(std::mem::offset_of!(SuppBuf<tee_iocl_supp_send_arg>, params) == 8);

impl<A> SuppBuf<A> {
    /// The descriptor of the header and its first `n` parameters, pointing
    /// at `self`: valid while `self` stays where it is.
    fn data(&mut self, n: usize) -> tee_ioctl_buf_data {
        tee_ioctl_buf_data {
            buf_ptr: self as *mut Self as u64,
            buf_len: (std::mem::size_of::<A>() + n * std::mem::size_of::<TeeParam>()) as u64,
        }
    }
}

impl SupplicantChannel for DevTee {
    type Allocated = DevAllocated;

    fn supp_recv(
        &self,
        params: &mut [TeeParam; RECV_PARAMS],
    ) -> Result<(u32, usize), HostTeeError> {
        let mut buf = SuppBuf {
            arg: tee_iocl_supp_recv_arg {
                num_params: RECV_PARAMS as u32,
                ..Default::default()
            },
            params: *params,
        };
        let mut data = buf.data(RECV_PARAMS);
        // SAFETY: `data` describes `buf`, a receive argument followed by
        // RECV_PARAMS parameters (the length the kernel checks against
        // num_params), alive and exclusively borrowed for the call.
        unsafe { self.ioctl("SUPPL_RECV", ioc::SUPPL_RECV, &mut data) }?;
        *params = buf.params;
        Ok((buf.arg.func, (buf.arg.num_params as usize).min(RECV_PARAMS)))
    }

    fn supp_send(&self, ret: u32, params: &[TeeParam]) -> Result<(), HostTeeError> {
        let mut buf = SuppBuf {
            arg: tee_iocl_supp_send_arg {
                ret,
                num_params: params.len() as u32,
                ..Default::default()
            },
            params: [TeeParam::default(); RECV_PARAMS],
        };
        // An answer has the parameters of a request, which fit the same room.
        buf.params
            .get_mut(..params.len())
            .ok_or(HostTeeError::Ioctl {
                ioctl: "SUPPL_SEND",
                errno: libc::EINVAL,
            })?
            .copy_from_slice(params);
        let mut data = buf.data(params.len());
        // SAFETY: `data` describes `buf`, a send argument followed by
        // `num_params` parameters, alive for the call; the kernel only
        // reads it.
        unsafe { self.ioctl("SUPPL_SEND", ioc::SUPPL_SEND, &mut data) }.map(|_| ())
    }

    fn supp_alloc(&self, size: usize) -> Result<DevAllocated, HostTeeError> {
        TeeDevice::shm_alloc(self, size)
    }
}

impl Shm for DevRegistered {
    fn id(&self) -> i32 {
        self.id
    }
}

impl Shm for DevAllocated {
    fn id(&self) -> i32 {
        self.id
    }
}

impl AllocatedShm for DevAllocated {
    fn len(&self) -> usize {
        self.map.as_slice().len()
    }

    // The backend copies only before and after the call that uses the
    // memory, never during.
    fn write(&mut self, offset: usize, data: &[u8]) -> bool {
        let end = offset.checked_add(data.len());
        match end.and_then(|end| self.map.as_mut_slice().get_mut(offset..end)) {
            Some(dst) => {
                dst.copy_from_slice(data);
                true
            }
            None => false,
        }
    }

    fn read(&self, offset: usize, buf: &mut [u8]) -> bool {
        let end = offset.checked_add(buf.len());
        match end.and_then(|end| self.map.as_slice().get(offset..end)) {
            Some(src) => {
                buf.copy_from_slice(src);
                true
            }
            None => false,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn opening_a_missing_device_says_there_is_no_such_device() {
        let e = DevTee::open("/nonexistent/tee0").unwrap_err();
        assert!(matches!(e, HostTeeError::NoDevice { .. }), "{e}");
        assert!(e
            .to_string()
            .starts_with("/nonexistent/tee0: no such TEE device"));
    }

    #[test]
    fn supplicant_buffers_have_the_length_the_kernel_checks() {
        // sizeof(*uarg) + TEE_IOCTL_PARAM_SIZE(num_params) (tee_core.c).
        let mut r = SuppBuf {
            arg: tee_iocl_supp_recv_arg::default(),
            params: [TeeParam::default(); RECV_PARAMS],
        };
        assert_eq!(r.data(RECV_PARAMS).buf_len, 8 + 32 * RECV_PARAMS as u64);
        assert_eq!(r.data(RECV_PARAMS).buf_ptr, &r as *const _ as u64);
        let mut s = SuppBuf {
            arg: tee_iocl_supp_send_arg::default(),
            params: [TeeParam::default(); RECV_PARAMS],
        };
        assert_eq!(s.data(3).buf_len, 8 + 3 * 32);
    }

    #[test]
    fn opening_something_that_is_not_a_tee_names_it_and_the_failed_version_ioctl() {
        let e = DevTee::open("/dev/null").unwrap_err();
        assert!(
            matches!(
                e,
                HostTeeError::NotATee {
                    errno: libc::ENOTTY,
                    ..
                }
            ),
            "{e}"
        );
        assert_eq!(
            e.to_string(),
            "/dev/null: not a TEE device (TEE_IOC_VERSION failed: Inappropriate ioctl for device \
             (os error 25))"
        );
    }
}
