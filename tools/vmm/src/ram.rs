// SPDX-License-Identifier: Apache-2.0 OR MIT
//! Guest RAM. An ordinary guest's RAM is a memfd mapped shared, so that
//! the host TEE backend can map a buffer the guest scattered over its
//! pages side by side into one window and register the guest's own pages
//! with the host's TEE driver (host-tee's `Window`), rather than copying
//! them through a bounce buffer on every call. The pages are shmem, which
//! the driver may pin for as long as a registration lasts. A protected
//! guest's RAM stays anonymous: its pages are never handed to the host's
//! driver. The memfd is sealed at its size, so that it can also be shared
//! with the TEE service (`--tee-share-memory`), which maps it.

use std::fs::File;
use std::io;
use std::os::fd::{AsRawFd, FromRawFd};
use std::sync::Arc;

use tee_remote::client::SharedMemory;
use tee_remote::wire::MemRegion;
use vm_memory::{FileOffset, GuestAddress, GuestMemoryBackend, GuestMemoryMmap, GuestMemoryRegion};

/// Why guest RAM could not be made.
#[derive(Debug, thiserror::Error)]
pub enum RamError {
    /// memfd_create or ftruncate failed.
    #[error("cannot create the memfd behind guest RAM: {0}")]
    Memfd(io::Error),
    /// The mapping failed.
    #[error("{0}")]
    Map(#[from] vm_memory::mmap::FromRangesError),
}

/// `size` bytes of guest RAM at `base`, anonymous or (`file_backed`) from
/// a memfd of its own.
pub fn guest_ram(base: u64, size: usize, file_backed: bool) -> Result<GuestMemoryMmap, RamError> {
    let file = if file_backed {
        Some(FileOffset::new(memfd(size)?, 0))
    } else {
        None
    };
    Ok(GuestMemoryMmap::from_ranges_with_files([(
        GuestAddress(base),
        size,
        file,
    )])?)
}

fn memfd(size: usize) -> Result<File, RamError> {
    // SAFETY: the name is a NUL-terminated string; memfd_create returns a
    // new descriptor or -1 and touches no memory of ours.
    let fd = unsafe {
        libc::memfd_create(
            c"tosfwd-guest-ram".as_ptr(),
            libc::MFD_CLOEXEC | libc::MFD_ALLOW_SEALING,
        )
    };
    if fd < 0 {
        return Err(RamError::Memfd(io::Error::last_os_error()));
    }
    // SAFETY: `fd` was just created and is owned by nothing else.
    let file = unsafe { File::from_raw_fd(fd) };
    file.set_len(size as u64).map_err(RamError::Memfd)?;
    // Its size for good: a TEE service it is shared with maps it, and a
    // file shrunk under a mapping is a SIGBUS there.
    let seals = libc::F_SEAL_SHRINK | libc::F_SEAL_GROW | libc::F_SEAL_SEAL;
    // SAFETY: F_ADD_SEALS on the descriptor `file` owns.
    if unsafe { libc::fcntl(file.as_raw_fd(), libc::F_ADD_SEALS, seals) } != 0 {
        return Err(RamError::Memfd(io::Error::last_os_error()));
    }
    Ok(file)
}

/// `mem`'s regions as a TEE service maps them, if they are all in one
/// memfd (file-backed guest RAM).
pub fn shared_memory(mem: &GuestMemoryMmap) -> Option<SharedMemory> {
    let mut file: Option<Arc<File>> = None;
    let mut regions = Vec::new();
    for r in mem.iter() {
        let f = r.file_offset()?;
        match &file {
            Some(one) if !Arc::ptr_eq(one, f.arc()) => return None,
            Some(_) => {}
            None => file = Some(f.arc().clone()),
        }
        regions.push(MemRegion {
            gpa: r.start_addr().0,
            size: r.len(),
            offset: f.start(),
        });
    }
    Some(SharedMemory {
        file: file?,
        regions,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use optee_mediator::GuestRam;

    #[test]
    fn file_backed_ram_tells_where_each_page_is_in_its_memfd() {
        let m = guest_ram(0x4000_0000, 0x10000, true).unwrap();
        let (_, at) = m.file_offset(0x4000_3000, 0x1000).unwrap();
        assert_eq!(at, 0x3000);
        m.write(0x4000_3000, b"guest").unwrap();
        let mut back = [0u8; 5];
        m.read(0x4000_3000, &mut back).unwrap();
        assert_eq!(&back, b"guest");
    }

    #[test]
    fn anonymous_ram_has_no_file() {
        let m = guest_ram(0x4000_0000, 0x10000, false).unwrap();
        assert!(m.file_offset(0x4000_3000, 0x1000).is_none());
        assert!(m.host_address(0x4000_3000, 0x1000).is_some());
    }
}
