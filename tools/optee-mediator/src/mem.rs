// SPDX-License-Identifier: Apache-2.0 OR MIT
//! Guest memory, as the mediator sees it: fallible reads and writes at
//! guest physical addresses, and a RAM check. Implemented for every
//! `vm_memory::GuestMemory` (feature `vm-memory`, on by default) and by
//! [`FakeGuestMemory`], a sparse memory with holes for tests and fuzzing.

use std::cell::RefCell;

/// A guest memory access that failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum MemError {
    /// The range is not (all) guest RAM.
    #[error("guest memory access of {len:#x} bytes at {gpa:#x} is not in guest RAM")]
    NotRam {
        /// Guest physical address of the access.
        gpa: u64,
        /// Its length.
        len: u64,
    },
    /// The range is guest RAM the host may not touch: a protected guest's
    /// memory that the guest has not shared with the host.
    #[error(
        "guest memory access of {len:#x} bytes at {gpa:#x} touches memory the guest has not \
         shared with the host"
    )]
    NotShared {
        /// Guest physical address of the access.
        gpa: u64,
        /// Its length.
        len: u64,
    },
}

/// Guest physical memory. Every access is checked: an address outside guest
/// RAM (a hole, MMIO, beyond the end, or an overflowing range) is an error,
/// never a panic.
pub trait GuestRam {
    /// Reads `buf.len()` bytes at `gpa`.
    fn read(&self, gpa: u64, buf: &mut [u8]) -> Result<(), MemError>;
    /// Writes `data` at `gpa`.
    fn write(&self, gpa: u64, data: &[u8]) -> Result<(), MemError>;
    /// Whether `gpa..gpa+len` is entirely guest RAM.
    fn is_ram(&self, gpa: u64, len: u64) -> bool;
    /// Where `gpa..gpa+len` is mapped in this process, if it is guest RAM
    /// mapped in one piece (a backend that hands memory to the host's TEE
    /// driver registers it from there). `None` (the default) if the range
    /// is not RAM, spans mappings, or the memory has no host mapping.
    /// Using the pointer is the caller's business: it stays valid as long
    /// as the guest memory stays mapped.
    fn host_address(&self, gpa: u64, len: u64) -> Option<std::ptr::NonNull<u8>> {
        let _ = (gpa, len);
        None
    }
    /// Where `gpa..gpa+len` is in a file this process can map again (guest
    /// RAM backed by a memfd): the file and the offset of `gpa` in it, if
    /// the range is RAM within one region that has a file. A backend maps
    /// scattered guest pages side by side from there, to hand them to the
    /// host's TEE driver as one range. `None` (the default) otherwise; the
    /// file is borrowed for as long as the guest memory is.
    fn file_offset(&self, gpa: u64, len: u64) -> Option<(std::os::fd::BorrowedFd<'_>, u64)> {
        let _ = (gpa, len);
        None
    }
}

#[cfg(feature = "vm-memory")]
impl<T: vm_memory::GuestMemory + ?Sized> GuestRam for T {
    fn read(&self, gpa: u64, buf: &mut [u8]) -> Result<(), MemError> {
        let err = MemError::NotRam {
            gpa,
            len: buf.len() as u64,
        };
        vm_memory::Bytes::<vm_memory::GuestAddress>::read_slice(
            self,
            buf,
            vm_memory::GuestAddress(gpa),
        )
        .map_err(|_| err)
    }

    fn write(&self, gpa: u64, data: &[u8]) -> Result<(), MemError> {
        vm_memory::Bytes::<vm_memory::GuestAddress>::write_slice(
            self,
            data,
            vm_memory::GuestAddress(gpa),
        )
        .map_err(|_| MemError::NotRam {
            gpa,
            len: data.len() as u64,
        })
    }

    fn is_ram(&self, gpa: u64, len: u64) -> bool {
        let Ok(len) = usize::try_from(len) else {
            return false;
        };
        gpa.checked_add(len as u64).is_some()
            && vm_memory::GuestMemory::check_range(
                self,
                vm_memory::GuestAddress(gpa),
                len,
                vm_memory::Permissions::ReadWrite,
            )
    }

    fn host_address(&self, gpa: u64, len: u64) -> Option<std::ptr::NonNull<u8>> {
        let count = usize::try_from(len).ok()?;
        gpa.checked_add(len)?;
        let mut slices = vm_memory::GuestMemory::get_slices(
            self,
            vm_memory::GuestAddress(gpa),
            count,
            vm_memory::Permissions::ReadWrite,
        )
        .ok()?;
        // One mapping only: a single slice covering the whole range.
        let first = slices.next()?.ok()?;
        if first.len() != count || slices.next().is_some() {
            return None;
        }
        std::ptr::NonNull::new(first.ptr_guard_mut().as_ptr())
    }

    fn file_offset(&self, gpa: u64, len: u64) -> Option<(std::os::fd::BorrowedFd<'_>, u64)> {
        use std::os::fd::AsFd;
        use vm_memory::{GuestMemoryBackend, GuestMemoryRegion};
        let end = gpa.checked_add(len)?;
        let ram = vm_memory::GuestMemory::physical_memory(self)?;
        let (region, at) = ram.to_region_addr(vm_memory::GuestAddress(gpa))?;
        if len == 0 || end - region.start_addr().0 > region.len() {
            return None;
        }
        let file = region.file_offset()?;
        Some((file.file().as_fd(), file.start().checked_add(at.0)?))
    }
}

/// Sparse guest memory made of regions with holes between them: the fake
/// guest memory of the tests, fuzz targets and benchmark.
#[derive(Debug, Default)]
pub struct FakeGuestMemory {
    regions: Vec<(u64, RefCell<Vec<u8>>)>,
}

impl FakeGuestMemory {
    /// Memory made of `(base, size)` regions, zero-filled. Overlapping or
    /// overflowing regions are skipped.
    pub fn new(regions: &[(u64, u64)]) -> Self {
        let mut m = FakeGuestMemory::default();
        for &(base, size) in regions {
            m.add_region(base, size);
        }
        m
    }

    /// Adds a zero-filled region; returns false (and adds nothing) if it
    /// overflows, is empty, is larger than 64 MiB or overlaps another.
    pub fn add_region(&mut self, base: u64, size: u64) -> bool {
        let Some(end) = base.checked_add(size) else {
            return false;
        };
        if size == 0 || size > 64 << 20 {
            return false;
        }
        let overlaps = self.regions.iter().any(|(b, r)| {
            let e = b.saturating_add(r.borrow().len() as u64);
            base < e && *b < end
        });
        if overlaps {
            return false;
        }
        let Ok(len) = usize::try_from(size) else {
            return false;
        };
        self.regions.push((base, RefCell::new(vec![0u8; len])));
        true
    }

    /// Removes the region starting at `base` (memory hot-unplug, or a
    /// guest page that stopped being RAM); false if there is none.
    pub fn remove_region(&mut self, base: u64) -> bool {
        let before = self.regions.len();
        self.regions.retain(|(b, _)| *b != base);
        self.regions.len() != before
    }

    /// The region holding all of `gpa..gpa+len` and the offset in it.
    fn locate(&self, gpa: u64, len: u64) -> Option<(&RefCell<Vec<u8>>, usize)> {
        let end = gpa.checked_add(len)?;
        self.regions.iter().find_map(|(base, r)| {
            let rlen = r.borrow().len() as u64;
            (gpa >= *base && end <= base.checked_add(rlen)?)
                .then(|| usize::try_from(gpa - base).ok().map(|off| (r, off)))
                .flatten()
        })
    }
}

impl GuestRam for FakeGuestMemory {
    fn read(&self, gpa: u64, buf: &mut [u8]) -> Result<(), MemError> {
        let err = MemError::NotRam {
            gpa,
            len: buf.len() as u64,
        };
        let (r, off) = self.locate(gpa, buf.len() as u64).ok_or(err)?;
        let r = r.borrow();
        let src = r.get(off..off + buf.len()).ok_or(err)?;
        buf.copy_from_slice(src);
        Ok(())
    }

    fn write(&self, gpa: u64, data: &[u8]) -> Result<(), MemError> {
        let err = MemError::NotRam {
            gpa,
            len: data.len() as u64,
        };
        let (r, off) = self.locate(gpa, data.len() as u64).ok_or(err)?;
        let mut r = r.borrow_mut();
        let dst = r.get_mut(off..off + data.len()).ok_or(err)?;
        dst.copy_from_slice(data);
        Ok(())
    }

    fn is_ram(&self, gpa: u64, len: u64) -> bool {
        self.locate(gpa, len).is_some()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fake_memory_reads_back_what_was_written() {
        let m = FakeGuestMemory::new(&[(0x1000, 0x2000)]);
        m.write(0x1ffe, &[1, 2, 3, 4]).unwrap();
        let mut b = [0u8; 4];
        m.read(0x1ffe, &mut b).unwrap();
        assert_eq!(b, [1, 2, 3, 4]);
    }

    #[test]
    fn fake_memory_refuses_holes_ends_and_overflow() {
        let m = FakeGuestMemory::new(&[(0x1000, 0x1000), (0x3000, 0x1000)]);
        let mut b = [0u8; 8];
        assert!(m.read(0x2000, &mut b).is_err());
        assert!(m.read(0x1ffc, &mut b).is_err(), "straddles the hole");
        assert!(m.write(u64::MAX - 3, &b).is_err());
        assert!(!m.is_ram(0x1800, 0x1000));
        assert!(m.is_ram(0x3000, 0x1000));
        assert!(!m.is_ram(u64::MAX, 2));
    }

    #[test]
    fn fake_memory_refuses_overlapping_regions() {
        let mut m = FakeGuestMemory::new(&[(0x1000, 0x1000)]);
        assert!(!m.add_region(0x1800, 0x1000));
        assert!(!m.add_region(u64::MAX - 10, 100));
        assert!(m.add_region(0x2000, 0x1000));
    }

    #[test]
    fn vm_memory_guest_memory_is_guest_ram() {
        use vm_memory::{GuestAddress, GuestMemoryMmap};
        let m: GuestMemoryMmap<()> =
            GuestMemoryMmap::from_ranges(&[(GuestAddress(0x4000_0000), 0x2000)]).unwrap();
        m.write(0x4000_0ffe, &[9, 8, 7]).unwrap();
        let mut b = [0u8; 3];
        m.read(0x4000_0ffe, &mut b).unwrap();
        assert_eq!(b, [9, 8, 7]);
        assert!(m.is_ram(0x4000_0000, 0x2000));
        assert!(!m.is_ram(0x4000_0000, 0x2001));
        assert!(m.read(0x3fff_ffff, &mut b).is_err());
        assert!(!m.is_ram(u64::MAX, 2));
    }

    #[test]
    fn file_backed_guest_ram_tells_each_ranges_file_and_offset() {
        use std::os::fd::AsRawFd;
        use vm_memory::{FileOffset, GuestAddress, GuestMemoryMmap};
        let file = tempfile::tempfile().unwrap();
        file.set_len(0x5000).unwrap();
        let raw = file.as_raw_fd();
        let m: GuestMemoryMmap<()> = GuestMemoryMmap::from_ranges_with_files([
            (
                GuestAddress(0x4000_0000),
                0x2000,
                Some(FileOffset::new(file.try_clone().unwrap(), 0x1000)),
            ),
            (GuestAddress(0x4000_2000), 0x1000, None),
        ])
        .unwrap();
        let (fd, at) = m.file_offset(0x4000_1010, 0xff0).unwrap();
        assert_eq!(at, 0x2010, "the region starts 0x1000 into the file");
        assert_ne!(fd.as_raw_fd(), raw, "the region's own copy of the file");
        assert!(
            m.file_offset(0x4000_1010, 0xff1).is_none(),
            "past its region"
        );
        assert!(m.file_offset(0x4000_2000, 0x10).is_none(), "anonymous");
        assert!(m.file_offset(0x4000_0000, 0).is_none());
        assert!(m.file_offset(0x5000_0000, 1).is_none());
        assert!(m.file_offset(0x4000_0000, u64::MAX).is_none());
        assert!(FakeGuestMemory::new(&[(0x1000, 0x1000)])
            .file_offset(0x1000, 1)
            .is_none());
    }

    #[test]
    fn vm_memory_host_addresses_cover_only_ranges_inside_one_region() {
        use vm_memory::{GuestAddress, GuestMemoryMmap};
        let m: GuestMemoryMmap<()> = GuestMemoryMmap::from_ranges(&[
            (GuestAddress(0x4000_0000), 0x2000),
            (GuestAddress(0x4000_2000), 0x1000),
        ])
        .unwrap();
        let base = m.host_address(0x4000_0000, 0x2000).unwrap();
        let inner = m.host_address(0x4000_0ffe, 2).unwrap();
        assert_eq!(inner.as_ptr() as usize - base.as_ptr() as usize, 0xffe);
        m.write(0x4000_0ffe, &[5, 6]).unwrap();
        // SAFETY: two bytes of the region just written, mapped while `m` lives.
        let seen = unsafe { std::slice::from_raw_parts(inner.as_ptr(), 2) }.to_vec();
        assert_eq!(seen, [5, 6]);
        assert!(
            m.host_address(0x4000_1000, 0x1001).is_none(),
            "spans two regions"
        );
        assert!(m.host_address(0x3000_0000, 1).is_none());
        assert!(m.host_address(0x4000_0000, u64::MAX).is_none());
        assert!(FakeGuestMemory::new(&[(0x1000, 0x1000)])
            .host_address(0x1000, 1)
            .is_none());
    }
}
