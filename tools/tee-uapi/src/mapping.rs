// SPDX-License-Identifier: Apache-2.0 OR MIT
//! [`ShmMapping`]: shared memory the driver allocated (TEE_IOC_SHM_ALLOC
//! returns an fd) mapped into the process, unmapped when dropped.

use std::io;
use std::os::fd::{AsRawFd, OwnedFd};
use std::ptr::NonNull;

/// A read-write shared mapping of a TEE shared-memory fd, which it keeps
/// open.
#[derive(Debug)]
pub struct ShmMapping {
    fd: OwnedFd,
    ptr: NonNull<u8>,
    len: usize,
}

// SAFETY: the mapping belongs to this value alone (no other Rust reference
// to it exists); it can be used and unmapped from any thread.
unsafe impl Send for ShmMapping {}

impl ShmMapping {
    /// Maps the first `len` bytes of `fd` (shared, read-write).
    pub fn new(fd: OwnedFd, len: usize) -> io::Result<ShmMapping> {
        // SAFETY: a new shared mapping of `fd`, no address hint; the result
        // is checked.
        let p = unsafe {
            libc::mmap(
                std::ptr::null_mut(),
                len,
                libc::PROT_READ | libc::PROT_WRITE,
                libc::MAP_SHARED,
                fd.as_raw_fd(),
                0,
            )
        };
        if p == libc::MAP_FAILED {
            return Err(io::Error::last_os_error());
        }
        let ptr = NonNull::new(p.cast::<u8>()).ok_or_else(|| io::Error::other("mmap gave NULL"))?;
        Ok(ShmMapping { fd, ptr, len })
    }

    /// The memory. The TEE writes it only during the calls that reference
    /// it, which borrow nothing of this value.
    pub fn as_slice(&self) -> &[u8] {
        // SAFETY: `ptr` maps `len` bytes for as long as `self` lives.
        unsafe { std::slice::from_raw_parts(self.ptr.as_ptr(), self.len) }
    }

    /// The memory, mutably.
    pub fn as_mut_slice(&mut self) -> &mut [u8] {
        // SAFETY: as for as_slice, and `&mut self` makes this the only view.
        unsafe { std::slice::from_raw_parts_mut(self.ptr.as_ptr(), self.len) }
    }

    /// The fd (open as long as the mapping).
    pub fn fd(&self) -> &OwnedFd {
        &self.fd
    }
}

impl Drop for ShmMapping {
    fn drop(&mut self) {
        // SAFETY: unmaps exactly the mapping made in new.
        unsafe { libc::munmap(self.ptr.as_ptr().cast(), self.len) };
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::fd::FromRawFd;

    #[test]
    fn a_mapping_reads_back_what_was_written_through_another() {
        // SAFETY: a new anonymous file; the result is checked.
        let raw = unsafe { libc::memfd_create(c"shm".as_ptr(), libc::MFD_CLOEXEC) };
        assert!(raw >= 0, "{}", io::Error::last_os_error());
        // SAFETY: `raw` was just created and is owned by nobody else.
        let fd = unsafe { OwnedFd::from_raw_fd(raw) };
        // SAFETY: sizes the file `fd` owns.
        assert_eq!(unsafe { libc::ftruncate(fd.as_raw_fd(), 8192) }, 0);
        let other = fd.try_clone().unwrap();
        let mut a = ShmMapping::new(fd, 8192).unwrap();
        let b = ShmMapping::new(other, 8192).unwrap();
        a.as_mut_slice()[4095..4097].copy_from_slice(&[7, 9]);
        assert_eq!(&b.as_slice()[4094..4098], &[0, 7, 9, 0]);
        assert_eq!(b.as_slice().len(), 8192);
    }

    #[test]
    fn an_fd_that_cannot_be_mapped_is_an_error() {
        let fd: OwnedFd = std::fs::File::open("/dev/null").unwrap().into();
        assert!(ShmMapping::new(fd, 4096).is_err());
    }
}
