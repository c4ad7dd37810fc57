// SPDX-License-Identifier: Apache-2.0 OR MIT
//! Shared guest memory (protocol version 4): a VM's guest RAM mapped from
//! the memfd its VMM passed, and the buffers its calls name by guest page.
//!
//! What the service takes on by mapping a peer's file, and how each is
//! bounded: the peer could shrink the file under the mapping (a SIGBUS in
//! the service, every peer's loss), so the file must be sealed against
//! shrinking (F_SEAL_SHRINK, which only a memfd can be); a hole in a
//! hugetlbfs file faults with SIGBUS when no huge page is left, so the file
//! must be on tmpfs (a hole there reads as zeroes); the regions must lie
//! within the file, page-aligned and apart. The peer may still change its
//! pages at any time: they are its guest's memory, which the service only
//! hands to the TEE, as the VMM would (nothing the service itself relies
//! on is read from them). What it costs the service: address space for
//! the mappings, and a page of memory (charged to the service's memory
//! cgroup, kept in the peer's file) for each page of a hole the service or
//! the TEE touches; over the VM's life that can be every page it shares.
//! Both are bounded by the policy's `max_shared_bytes` (all the peer's
//! VMs together) and the service's connection limit; the service's memory
//! budget must allow for them.

use std::fs::File;
use std::os::fd::{AsRawFd, OwnedFd};
use std::sync::Arc;

use optee_mediator::mem::GuestRam;
use optee_mediator::msg::{teec, PAGE_SIZE};
use optee_mediator::shm::{GuestBuffer, MemRef};
use vm_memory::{FileOffset, GuestAddress, GuestMemoryMmap};

use super::{Fault, Violation};
use crate::wire::{MemRegion, PageList, MAX_SHARED_REGIONS};

/// The most guest RAM one VM shares: its mappings take address space
/// only, but a bound keeps every sum in range.
pub(super) const MAX_SHARED_BYTES: u64 = 1 << 40;

/// tmpfs's magic number (statfs(2)): where memfds without MFD_HUGETLB live.
const TMPFS_MAGIC: i64 = 0x0102_1994;

/// A VM's guest RAM, mapped in the service.
pub(super) type SharedRam = Arc<GuestMemoryMmap>;

fn aligned(v: u64) -> bool {
    v.is_multiple_of(PAGE_SIZE)
}

/// Checks `regions` alone: how many, aligned, not empty, apart, in range.
fn check_regions(regions: &[MemRegion]) -> Result<(), String> {
    if regions.is_empty() || regions.len() > MAX_SHARED_REGIONS {
        return Err(format!(
            "{} regions: want 1 to {MAX_SHARED_REGIONS}",
            regions.len()
        ));
    }
    let mut total = 0u64;
    for (i, r) in regions.iter().enumerate() {
        if r.size == 0 || !aligned(r.gpa) || !aligned(r.size) || !aligned(r.offset) {
            return Err(format!(
                "region {i} ({:#x} bytes at {:#x}, file offset {:#x}) is empty or not page-aligned",
                r.size, r.gpa, r.offset
            ));
        }
        if r.gpa.checked_add(r.size).is_none() || r.offset.checked_add(r.size).is_none() {
            return Err(format!("region {i} overflows"));
        }
        total = total.saturating_add(r.size);
        for (j, o) in regions[..i].iter().enumerate() {
            if r.gpa < o.gpa + o.size && o.gpa < r.gpa + r.size {
                return Err(format!("regions {j} and {i} overlap"));
            }
        }
    }
    if total > MAX_SHARED_BYTES {
        return Err(format!(
            "{total:#x} bytes shared, over the {MAX_SHARED_BYTES:#x} allowed"
        ));
    }
    Ok(())
}

/// Checks that `file` is a memfd on tmpfs sealed against shrinking, at
/// least `len` bytes long.
fn check_file(file: &File, len: u64) -> Result<(), String> {
    let fd = file.as_raw_fd();
    // SAFETY: F_GET_SEALS reads the seals of a descriptor we own.
    let seals = unsafe { libc::fcntl(fd, libc::F_GET_SEALS) };
    if seals < 0 {
        return Err(format!(
            "the file has no seals ({}): want a memfd sealed with F_SEAL_SHRINK",
            std::io::Error::last_os_error()
        ));
    }
    if seals & libc::F_SEAL_SHRINK == 0 {
        return Err("the file is not sealed against shrinking (F_SEAL_SHRINK)".to_owned());
    }
    // SAFETY: an all-zero statfs is a valid out-parameter; fstatfs fills
    // it for a descriptor we own.
    let mut fs: libc::statfs = unsafe { std::mem::zeroed() };
    // SAFETY: as above.
    if unsafe { libc::fstatfs(fd, &mut fs) } != 0 {
        return Err(format!("fstatfs: {}", std::io::Error::last_os_error()));
    }
    #[allow(clippy::unnecessary_cast)]
    if fs.f_type as i64 != TMPFS_MAGIC {
        return Err(format!(
            "the file is on file system {:#x}, not tmpfs (hugetlbfs is refused: a hole there is a SIGBUS)",
            fs.f_type
        ));
    }
    let size = file.metadata().map_err(|e| format!("fstat: {e}"))?.len();
    if size < len {
        return Err(format!(
            "the file has {size:#x} bytes, the regions need {len:#x}"
        ));
    }
    Ok(())
}

/// Maps the guest RAM of `regions` from `fd`, after checking both.
pub(super) fn map(fd: OwnedFd, regions: &[MemRegion]) -> Result<SharedRam, String> {
    check_regions(regions)?;
    let file = File::from(fd);
    let need = regions.iter().map(|r| r.offset + r.size).max().unwrap_or(0);
    check_file(&file, need)?;
    // One descriptor for every region: a VM costs the service one more
    // (its backend holds one for /dev/tee already).
    let file = Arc::new(file);
    let mut ranges = Vec::with_capacity(regions.len());
    for r in regions {
        let size = usize::try_from(r.size).map_err(|_| "a region too large".to_owned())?;
        let at = FileOffset::from_arc(file.clone(), r.offset);
        ranges.push((GuestAddress(r.gpa), size, Some(at)));
    }
    let ram = GuestMemoryMmap::from_ranges_with_files(ranges).map_err(|e| format!("mmap: {e}"))?;
    Ok(Arc::new(ram))
}

/// A buffer of guest pages of `ram`; refused (OUT_OF_MEMORY) if it has
/// more pages than `max_pages`.
pub(super) fn buffer(
    ram: &GuestMemoryMmap,
    list: PageList,
    max_pages: u64,
) -> Result<Arc<GuestBuffer>, Fault> {
    if list.pages.len() as u64 > max_pages {
        return Err(Fault::Refuse {
            ret: teec::ERROR_OUT_OF_MEMORY,
            why: format!(
                "a buffer of {} pages is over the {max_pages}-page limit",
                list.pages.len()
            ),
        });
    }
    if let Some(p) = list
        .pages
        .iter()
        .find(|&&p| !aligned(p) || !ram.is_ram(p, PAGE_SIZE))
    {
        return Err(
            Violation::BadSpan(format!("page {p:#x} is not a page of the shared memory")).into(),
        );
    }
    let (offset, size) = (list.page_offset, list.size);
    GuestBuffer::new(list.pages, offset, size)
        .map(Arc::new)
        .ok_or_else(|| Violation::BadSpan("inconsistent buffer shape".to_owned()).into())
}

/// `len` bytes at `offset` of `buffer`.
pub(super) fn range(buffer: Arc<GuestBuffer>, offset: u64, len: u64) -> Result<MemRef, Violation> {
    let size = buffer.size();
    MemRef::new(buffer, offset, len).ok_or_else(|| {
        Violation::BadSpan(format!(
            "{len:#x} bytes at {offset:#x} are not inside a {size:#x}-byte buffer"
        ))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn region(gpa: u64, size: u64, offset: u64) -> MemRegion {
        MemRegion { gpa, size, offset }
    }

    #[test]
    fn regions_must_be_few_aligned_apart_and_in_range() {
        let ok = [
            region(0x4000_0000, 0x10000, 0),
            region(0x8000_0000, 0x1000, 0x10000),
        ];
        assert_eq!(check_regions(&ok), Ok(()));
        for (bad, why) in [
            (vec![], "0 regions"),
            (vec![region(0, 0x1000, 0); 9], "9 regions"),
            (vec![region(0x1001, 0x1000, 0)], "not page-aligned"),
            (vec![region(0x1000, 0x1000, 0x10)], "not page-aligned"),
            (vec![region(0x1000, 0, 0)], "empty"),
            (vec![region(u64::MAX - 0xfff, 0x2000, 0)], "overflows"),
            (
                vec![region(0x1000, 0x2000, 0), region(0x2000, 0x1000, 0x4000)],
                "regions 0 and 1 overlap",
            ),
            (vec![region(0, 1 << 41, 0)], "over the"),
        ] {
            let e = check_regions(&bad).unwrap_err();
            assert!(e.contains(why), "{bad:?}: {e}");
        }
    }

    fn memfd(len: u64, seals: i32) -> File {
        // SAFETY: the name is NUL-terminated; the result is checked.
        let fd = unsafe {
            libc::memfd_create(
                c"shared-test".as_ptr(),
                libc::MFD_CLOEXEC | libc::MFD_ALLOW_SEALING,
            )
        };
        assert!(fd >= 0);
        // SAFETY: `fd` is new and ours.
        let f = unsafe { <File as std::os::fd::FromRawFd>::from_raw_fd(fd) };
        f.set_len(len).unwrap();
        // SAFETY: F_ADD_SEALS on a descriptor we own.
        assert_eq!(unsafe { libc::fcntl(fd, libc::F_ADD_SEALS, seals) }, 0);
        f
    }

    #[test]
    fn only_a_memfd_sealed_against_shrinking_and_long_enough_is_mapped() {
        let r = [region(0x4000_0000, 0x2000, 0)];
        let ram = map(memfd(0x2000, libc::F_SEAL_SHRINK).into(), &r).unwrap();
        assert!(ram.is_ram(0x4000_1000, 0x1000));
        assert!(!ram.is_ram(0x4000_2000, 1));
        // What the VMM writes in its file, the service reads.
        let f = memfd(0x2000, libc::F_SEAL_SHRINK);
        std::os::unix::fs::FileExt::write_at(&f, b"guest", 0x1000).unwrap();
        let ram = map(f.into(), &r).unwrap();
        let mut b = [0; 5];
        ram.read(0x4000_1000, &mut b).unwrap();
        assert_eq!(&b, b"guest");

        let e = map(memfd(0x2000, 0).into(), &r).unwrap_err();
        assert!(e.contains("not sealed against shrinking"), "{e}");
        let e = map(memfd(0x1000, libc::F_SEAL_SHRINK).into(), &r).unwrap_err();
        assert!(
            e.contains("the file has 0x1000 bytes, the regions need 0x2000"),
            "{e}"
        );
        let tmp = std::env::temp_dir().join(format!("shared-test-{}", std::process::id()));
        let plain = File::create(&tmp).unwrap();
        plain.set_len(0x2000).unwrap();
        std::fs::remove_file(&tmp).unwrap();
        let e = map(plain.into(), &r).unwrap_err();
        assert!(e.contains("no seals"), "{e}");
    }

    #[test]
    fn a_buffer_is_of_shared_pages_only() {
        let r = [region(0x4000_0000, 0x2000, 0)];
        let ram = map(memfd(0x2000, libc::F_SEAL_SHRINK).into(), &r).unwrap();
        let list = |pages: Vec<u64>| PageList {
            page_offset: 0x10,
            size: 0x1000,
            pages,
        };
        let b = buffer(&ram, list(vec![0x4000_1000, 0x4000_0000]), 2).unwrap();
        assert_eq!(b.pages(), [0x4000_1000, 0x4000_0000]);
        assert!(range(b.clone(), 0xff0, 0x10).is_ok());
        assert!(range(b, 0xff0, 0x11).is_err());
        for (pages, why) in [
            (vec![0x4000_1000, 0x4000_2000], "page 0x40002000 is not"),
            (vec![0x4000_1000, 0x4000_0800], "page 0x40000800 is not"),
            (vec![0x4000_1000], "inconsistent"),
        ] {
            match buffer(&ram, list(pages), 2) {
                Err(Fault::Violation(v)) => assert!(v.to_string().contains(why), "{v}"),
                other => panic!("{other:?}"),
            }
        }
        assert!(matches!(
            buffer(&ram, list(vec![0x4000_1000, 0x4000_0000]), 1),
            Err(Fault::Refuse { .. })
        ));
    }
}
