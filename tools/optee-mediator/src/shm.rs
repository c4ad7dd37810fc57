// SPDX-License-Identifier: Apache-2.0 OR MIT
//! Shared memory as the TEE sees it: a buffer made of validated guest pages
//! (the translation of a page list), and a memory reference into one.

use std::sync::Arc;

use crate::mem::{GuestRam, MemError};
use crate::msg::PAGE_SIZE;

/// Why an access through a memory reference failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum ShmError {
    /// The access goes past the end of the reference.
    #[error("shared memory access of {len:#x} bytes at offset {offset:#x} exceeds the {size:#x}-byte buffer")]
    OutOfBounds {
        /// Offset of the access.
        offset: u64,
        /// Length of the access.
        len: u64,
        /// Size of the reference.
        size: u64,
    },
    /// A page of the buffer is no longer guest RAM.
    #[error(transparent)]
    Memory(#[from] MemError),
}

/// A guest buffer: 4 KiB guest pages, each checked to be guest RAM when
/// the page list was walked, the data starting `offset` bytes into the
/// first page and `size` bytes long.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GuestBuffer {
    pages: Vec<u64>,
    offset: u64,
    size: u64,
}

impl GuestBuffer {
    /// A buffer from its pages; `None` unless the pages (4 KiB aligned)
    /// cover exactly `offset + size` bytes rounded up to a page.
    pub fn new(pages: Vec<u64>, offset: u64, size: u64) -> Option<Self> {
        if offset >= PAGE_SIZE || pages.iter().any(|p| p % PAGE_SIZE != 0) {
            return None;
        }
        let need = offset.checked_add(size)?.div_ceil(PAGE_SIZE);
        (need == pages.len() as u64).then_some(GuestBuffer {
            pages,
            offset,
            size,
        })
    }

    /// The guest pages.
    pub fn pages(&self) -> &[u64] {
        &self.pages
    }

    /// Offset of the data in the first page.
    pub fn offset(&self) -> u64 {
        self.offset
    }

    /// Size in bytes.
    pub fn size(&self) -> u64 {
        self.size
    }

    /// Calls `f(gpa, range)` for each page-contiguous piece of
    /// `start..start+len`, `range` being the piece's place in the caller's slice.
    fn for_each_piece(
        &self,
        start: u64,
        len: u64,
        mut f: impl FnMut(u64, std::ops::Range<usize>) -> Result<(), MemError>,
    ) -> Result<(), ShmError> {
        let oob = ShmError::OutOfBounds {
            offset: start,
            len,
            size: self.size,
        };
        let end = start.checked_add(len).ok_or(oob)?;
        if end > self.size {
            return Err(oob);
        }
        let mut done = 0u64;
        while done < len {
            let pos = self.offset + start + done;
            let page = self
                .pages
                .get(usize::try_from(pos / PAGE_SIZE).map_err(|_| oob)?)
                .ok_or(oob)?;
            let in_page = pos % PAGE_SIZE;
            let n = (PAGE_SIZE - in_page).min(len - done);
            let from = usize::try_from(done).map_err(|_| oob)?;
            let to = usize::try_from(done + n).map_err(|_| oob)?;
            f(page + in_page, from..to)?;
            done += n;
        }
        Ok(())
    }

    /// Reads `buf.len()` bytes at `offset` in the buffer.
    pub fn read(&self, mem: &dyn GuestRam, offset: u64, buf: &mut [u8]) -> Result<(), ShmError> {
        let len = buf.len() as u64;
        self.for_each_piece(offset, len, |gpa, r| {
            let piece = buf.get_mut(r).ok_or(MemError::NotRam { gpa, len })?;
            mem.read(gpa, piece)
        })
    }

    /// Writes `data` at `offset` in the buffer.
    pub fn write(&self, mem: &dyn GuestRam, offset: u64, data: &[u8]) -> Result<(), ShmError> {
        let len = data.len() as u64;
        self.for_each_piece(offset, len, |gpa, r| {
            let piece = data.get(r).ok_or(MemError::NotRam { gpa, len })?;
            mem.write(gpa, piece)
        })
    }
}

/// A memory reference handed to the TEE: `size` bytes at `offset` in a
/// buffer. Registered buffers are shared (the registry keeps one
/// reference, each call using it another).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MemRef {
    buffer: Arc<GuestBuffer>,
    offset: u64,
    size: u64,
}

impl MemRef {
    /// A reference to `size` bytes at `offset` of `buffer`; `None` if the
    /// range is not inside the buffer.
    pub fn new(buffer: Arc<GuestBuffer>, offset: u64, size: u64) -> Option<Self> {
        (offset.checked_add(size)? <= buffer.size()).then_some(MemRef {
            buffer,
            offset,
            size,
        })
    }

    /// A reference to a whole buffer.
    pub fn whole(buffer: Arc<GuestBuffer>) -> Self {
        let size = buffer.size();
        MemRef {
            buffer,
            offset: 0,
            size,
        }
    }

    /// Size of the referenced range.
    pub fn size(&self) -> u64 {
        self.size
    }

    /// Offset of the referenced range in its buffer.
    pub fn offset(&self) -> u64 {
        self.offset
    }

    /// The underlying buffer.
    pub fn buffer(&self) -> &Arc<GuestBuffer> {
        &self.buffer
    }

    fn check(&self, offset: u64, len: u64) -> Result<u64, ShmError> {
        let oob = ShmError::OutOfBounds {
            offset,
            len,
            size: self.size,
        };
        match offset.checked_add(len) {
            Some(end) if end <= self.size => Ok(self.offset + offset),
            _ => Err(oob),
        }
    }

    /// Reads `buf.len()` bytes at `offset` in the referenced range.
    pub fn read(&self, mem: &dyn GuestRam, offset: u64, buf: &mut [u8]) -> Result<(), ShmError> {
        let at = self.check(offset, buf.len() as u64)?;
        self.buffer.read(mem, at, buf)
    }

    /// Writes `data` at `offset` in the referenced range.
    pub fn write(&self, mem: &dyn GuestRam, offset: u64, data: &[u8]) -> Result<(), ShmError> {
        let at = self.check(offset, data.len() as u64)?;
        self.buffer.write(mem, at, data)
    }

    /// Reads the whole referenced range.
    pub fn read_all(&self, mem: &dyn GuestRam) -> Result<Vec<u8>, ShmError> {
        let len = usize::try_from(self.size).map_err(|_| ShmError::OutOfBounds {
            offset: 0,
            len: self.size,
            size: self.size,
        })?;
        let mut v = vec![0u8; len];
        self.read(mem, 0, &mut v)?;
        Ok(v)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::mem::FakeGuestMemory;

    fn scattered() -> (FakeGuestMemory, GuestBuffer) {
        let mem = FakeGuestMemory::new(&[(0x10000, 0x1000), (0x30000, 0x1000), (0x20000, 0x1000)]);
        let buf = GuestBuffer::new(vec![0x30000, 0x10000, 0x20000], 0xF00, 0x1200).unwrap();
        (mem, buf)
    }

    #[test]
    fn buffer_accesses_follow_the_pages_in_list_order() {
        let (mem, buf) = scattered();
        let data: Vec<u8> = (0..0x1200u32).map(|i| i as u8).collect();
        buf.write(&mem, 0, &data).unwrap();
        let mut first = [0u8; 0x100];
        mem.read(0x30F00, &mut first).unwrap();
        assert_eq!(first[..], data[..0x100]);
        let mut second = [0u8; 0x1000];
        mem.read(0x10000, &mut second).unwrap();
        assert_eq!(second[..], data[0x100..0x1100]);
        let mut back = vec![0u8; 0x1200];
        buf.read(&mem, 0, &mut back).unwrap();
        assert_eq!(back, data);
    }

    #[test]
    fn buffer_refuses_accesses_past_its_end() {
        let (mem, buf) = scattered();
        let mut b = [0u8; 2];
        assert_eq!(
            buf.read(&mem, 0x11FF, &mut b),
            Err(ShmError::OutOfBounds {
                offset: 0x11FF,
                len: 2,
                size: 0x1200
            })
        );
        assert!(buf.read(&mem, u64::MAX, &mut b).is_err());
    }

    #[test]
    fn buffer_new_refuses_pages_that_do_not_cover_the_size() {
        assert!(GuestBuffer::new(vec![0x1000], 0, 0x1001).is_none());
        assert!(GuestBuffer::new(vec![0x1000, 0x2000], 0, 0x1000).is_none());
        assert!(GuestBuffer::new(vec![0x1001], 0, 0x10).is_none());
        assert!(GuestBuffer::new(vec![0x1000], 0x1000, 0).is_none());
        assert!(GuestBuffer::new(vec![], 0, 0).is_some());
    }

    #[test]
    fn memref_is_confined_to_its_range() {
        let (mem, buf) = scattered();
        let r = MemRef::new(Arc::new(buf), 0x100, 0x10).unwrap();
        r.write(&mem, 0, &[0xAA; 0x10]).unwrap();
        assert!(r.write(&mem, 1, &[0xAA; 0x10]).is_err());
        let mut b = [0u8; 1];
        mem.read(0x10000, &mut b).unwrap();
        assert_eq!(b, [0xAA]);
        assert!(MemRef::new(r.buffer().clone(), 0x1100, 0x101).is_none());
        assert!(MemRef::new(r.buffer().clone(), u64::MAX, 2).is_none());
    }

    #[test]
    fn a_page_that_left_guest_ram_is_a_memory_error() {
        let mem = FakeGuestMemory::new(&[(0x10000, 0x1000)]);
        let buf = GuestBuffer::new(vec![0x10000, 0x50000], 0, 0x2000).unwrap();
        let mut b = [0u8; 0x2000];
        assert!(matches!(
            buf.read(&mem, 0, &mut b),
            Err(ShmError::Memory(_))
        ));
    }
}
