// SPDX-License-Identifier: Apache-2.0 OR MIT
//! Guest RAM of a protected VM, as the mediator sees it.
//!
//! Under pKVM a protected guest's page becomes the guest's own when the
//! guest first touches it; the host may touch it again only while the guest
//! shares it (the guest's MEM_SHARE hypercall, behind Linux's
//! `set_memory_decrypted()`). A load or store of this process on a page it
//! may not touch is killed by SIGSEGV, and the guest chooses the addresses
//! the mediator follows. So no access here is a load or a store: every byte
//! goes through the kernel's user copy, from guest RAM into a bounce file
//! (`pwrite`) or from the file into guest RAM (`pread`), which stops with
//! EFAULT at such a page. The mediator gets [`MemError::NotShared`] and
//! answers the guest's call with the ABI's error.
//!
//! The memory is never handed to the host's TEE driver
//! ([`GuestRam::host_address`] is `None`): a registration would pin the
//! guest's pages for the secure world whether the guest shared them or not,
//! so the host backend copies through its own buffers instead.

use std::fs::File;
use std::io;
use std::os::fd::{AsRawFd, FromRawFd};
use std::sync::{Mutex, PoisonError};

use optee_mediator::{GuestRam, MemError};
use vm_memory::{GuestAddress, GuestMemory, GuestMemoryMmap, Permissions};

/// The largest piece copied through the bounce file at once (the file
/// grows to this size).
const CHUNK: usize = 64 * 1024;

/// Guest RAM accessed only through the kernel's checked user copies.
pub struct PrivateRam {
    mem: GuestMemoryMmap,
    /// A memfd at whose offset 0 each piece passes; one copy at a time.
    bounce: Mutex<File>,
}

impl PrivateRam {
    /// Wraps `mem` (a clone of the VM's RAM: the same mapping).
    pub fn new(mem: GuestMemoryMmap) -> io::Result<Self> {
        // SAFETY: the name is a NUL-terminated string; memfd_create returns
        // a new descriptor or -1 and touches nothing else.
        let fd = unsafe { libc::memfd_create(c"tosfwd-bounce".as_ptr(), libc::MFD_CLOEXEC) };
        if fd < 0 {
            return Err(io::Error::last_os_error());
        }
        // SAFETY: `fd` is a new descriptor that nothing else owns.
        let bounce = unsafe { File::from_raw_fd(fd) };
        Ok(PrivateRam {
            mem,
            bounce: Mutex::new(bounce),
        })
    }

    /// Calls `f(host_address, offset_in_access, len)` for each piece of
    /// `gpa..gpa+len` (at most [`CHUNK`] bytes, within one mapping).
    fn pieces(
        &self,
        gpa: u64,
        len: usize,
        mut f: impl FnMut(*mut u8, usize, usize) -> bool,
    ) -> Result<(), MemError> {
        let not_ram = MemError::NotRam {
            gpa,
            len: len as u64,
        };
        let not_shared = MemError::NotShared {
            gpa,
            len: len as u64,
        };
        if len == 0 {
            return Ok(());
        }
        if !self.is_ram(gpa, len as u64) {
            return Err(not_ram);
        }
        let slices = self
            .mem
            .get_slices(GuestAddress(gpa), len, Permissions::ReadWrite)
            .map_err(|_| not_ram)?;
        let mut done = 0;
        for slice in slices {
            let slice = slice.map_err(|_| not_ram)?;
            let base = slice.ptr_guard_mut().as_ptr();
            let mut at = 0;
            while at < slice.len() {
                let n = (slice.len() - at).min(CHUNK);
                // The pointer stays inside the slice: at + n <= len.
                if !f(base.wrapping_add(at), done + at, n) {
                    return Err(not_shared);
                }
                at += n;
            }
            done += slice.len();
        }
        Ok(())
    }
}

/// `pwrite(fd, from, n, 0)` in full, or false.
fn to_file(file: &File, from: *const u8, n: usize) -> bool {
    // SAFETY: the kernel reads `n` bytes at `from` with its checked user
    // copy: a page this process may not read is EFAULT (or a short count),
    // never a fault here. No Rust reference to that memory is made.
    let r = unsafe { libc::pwrite(file.as_raw_fd(), from.cast(), n, 0) };
    usize::try_from(r) == Ok(n)
}

/// `pread(fd, to, n, 0)` in full, or false.
fn from_file(file: &File, to: *mut u8, n: usize) -> bool {
    // SAFETY: the kernel writes `n` bytes at `to` with its checked user
    // copy (EFAULT, or a short count, at a page this process may not
    // write). `to` is guest RAM or a buffer of the caller's at least `n`
    // long; no Rust reference aliases guest RAM.
    let r = unsafe { libc::pread(file.as_raw_fd(), to.cast(), n, 0) };
    usize::try_from(r) == Ok(n)
}

impl GuestRam for PrivateRam {
    fn read(&self, gpa: u64, buf: &mut [u8]) -> Result<(), MemError> {
        let file = self.bounce.lock().unwrap_or_else(PoisonError::into_inner);
        let out = buf.as_mut_ptr();
        let len = buf.len();
        self.pieces(gpa, len, |host, at, n| {
            // `at + n <= len`: pieces cover the access once, in order.
            to_file(&file, host, n) && from_file(&file, out.wrapping_add(at), n)
        })
    }

    fn write(&self, gpa: u64, data: &[u8]) -> Result<(), MemError> {
        let file = self.bounce.lock().unwrap_or_else(PoisonError::into_inner);
        let src = data.as_ptr();
        self.pieces(gpa, data.len(), |host, at, n| {
            to_file(&file, src.wrapping_add(at), n) && from_file(&file, host, n)
        })
    }

    fn is_ram(&self, gpa: u64, len: u64) -> bool {
        GuestRam::is_ram(&self.mem, gpa, len)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use vm_memory::GuestMemoryBackend;

    const PAGE: usize = 4096;
    const BASE: u64 = 0x4000_0000;

    /// Three pages of RAM, the middle one made inaccessible to this
    /// process, as a page the guest has not shared is.
    fn ram_with_a_private_page() -> PrivateRam {
        let mem = GuestMemoryMmap::<()>::from_ranges(&[(GuestAddress(BASE), 3 * PAGE)]).unwrap();
        let host = mem
            .get_host_address(GuestAddress(BASE + PAGE as u64))
            .unwrap();
        // SAFETY: `host` is the start of the mapping's second page, which
        // this test owns; no reference to it exists.
        assert_eq!(
            unsafe { libc::mprotect(host.cast(), PAGE, libc::PROT_NONE) },
            0
        );
        PrivateRam::new(mem).unwrap()
    }

    #[test]
    fn shared_pages_read_and_write_like_plain_ram() {
        let ram = ram_with_a_private_page();
        ram.write(BASE + 0x10, b"shared").unwrap();
        let mut b = [0u8; 6];
        ram.read(BASE + 0x10, &mut b).unwrap();
        assert_eq!(&b, b"shared");
        ram.write(BASE + 2 * PAGE as u64, &[7; PAGE]).unwrap();
        let mut p = [0u8; PAGE];
        ram.read(BASE + 2 * PAGE as u64, &mut p).unwrap();
        assert!(p.iter().all(|&x| x == 7));
    }

    #[test]
    fn a_private_page_is_an_error_and_not_a_crash() {
        let ram = ram_with_a_private_page();
        let mut b = [0u8; 16];
        assert_eq!(
            ram.read(BASE + PAGE as u64, &mut b),
            Err(MemError::NotShared {
                gpa: BASE + PAGE as u64,
                len: 16
            })
        );
        assert!(matches!(
            ram.write(BASE + PAGE as u64 + 8, b"x"),
            Err(MemError::NotShared { .. })
        ));
        // An access that only starts in shared memory fails as a whole.
        let mut across = [0u8; 32];
        assert!(matches!(
            ram.read(BASE + PAGE as u64 - 16, &mut across),
            Err(MemError::NotShared { .. })
        ));
    }

    #[test]
    fn outside_ram_is_still_not_ram() {
        let ram = ram_with_a_private_page();
        let mut b = [0u8; 4];
        assert!(matches!(
            ram.read(BASE - 4, &mut b),
            Err(MemError::NotRam { .. })
        ));
        assert!(matches!(
            ram.write(BASE + 3 * PAGE as u64, b"x"),
            Err(MemError::NotRam { .. })
        ));
    }

    #[test]
    fn long_accesses_cross_chunks() {
        let mem = GuestMemoryMmap::<()>::from_ranges(&[(GuestAddress(BASE), 4 * CHUNK)]).unwrap();
        let ram = PrivateRam::new(mem).unwrap();
        let data: Vec<u8> = (0..3 * CHUNK + 5).map(|i| (i % 251) as u8).collect();
        ram.write(BASE + 3, &data).unwrap();
        let mut back = vec![0u8; data.len()];
        ram.read(BASE + 3, &mut back).unwrap();
        assert_eq!(back, data);
    }

    #[test]
    fn the_host_tee_is_never_given_guest_pages() {
        let ram = ram_with_a_private_page();
        assert!(ram.host_address(BASE, 1).is_none());
    }
}
