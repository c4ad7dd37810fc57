// SPDX-License-Identifier: Apache-2.0 OR MIT
//! Non-contiguous page lists (OPTEE_MSG_ATTR_NONCONTIG): `buf_ptr` is the
//! address of the first 4 KiB list page, ORed with the offset of the data
//! in its first page; each list page holds 511 page addresses and then the
//! address of the next list page (optee_fill_pages_list in smc_abi.c).
//!
//! The walk is bounded by the page count the size implies, which is checked
//! against the quota before any guest memory is read: a list that loops
//! back on itself, or points into a hole, ends the walk with an error after
//! at most that many entries.

use crate::mem::{GuestRam, MemError};
use crate::msg::PAGE_SIZE;
use crate::shm::GuestBuffer;

/// Page addresses per list page; the last u64 links to the next list page.
pub const ENTRIES_PER_LIST_PAGE: usize = (PAGE_SIZE as usize / 8) - 1;

/// Why a page list was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum PageListError {
    /// The buffer needs more pages than allowed.
    #[error("buffer of {size:#x} bytes at page offset {offset:#x} needs {pages} pages, more than the {max} allowed")]
    TooManyPages {
        /// Size of the buffer.
        size: u64,
        /// Offset in the first page.
        offset: u64,
        /// Pages needed (saturated).
        pages: u64,
        /// The limit.
        max: u64,
    },
    /// A list page could not be read (hole, MMIO, past the end).
    #[error("page list page unreadable: {0}")]
    ListPage(MemError),
    /// A link to the next list page is not 4 KiB aligned.
    #[error("page list link {0:#x} is not 4 KiB aligned")]
    UnalignedLink(u64),
    /// An entry is not 4 KiB aligned.
    #[error("page list entry {index} ({addr:#x}) is not 4 KiB aligned")]
    UnalignedPage {
        /// Index of the entry in the buffer.
        index: usize,
        /// Its value.
        addr: u64,
    },
    /// An entry is not guest RAM.
    #[error("page list entry {index} ({addr:#x}) is not guest RAM")]
    NotRam {
        /// Index of the entry in the buffer.
        index: usize,
        /// Its value.
        addr: u64,
    },
}

/// How many 4 KiB pages hold `size` bytes starting `offset` bytes into the
/// first page (saturating).
pub fn pages_needed(offset: u64, size: u64) -> u64 {
    offset.saturating_add(size).div_ceil(PAGE_SIZE)
}

/// Walks the page list of a NONCONTIG memory parameter: `buf_ptr` is the
/// list's address with the data offset in its low 12 bits, `size` the
/// buffer's size. At most `max_pages` data pages; each entry must be
/// 4 KiB aligned guest RAM; each list page is read once.
pub fn walk(
    mem: &dyn GuestRam,
    buf_ptr: u64,
    size: u64,
    max_pages: u64,
) -> Result<GuestBuffer, PageListError> {
    let offset = buf_ptr % PAGE_SIZE;
    let count = pages_needed(offset, size);
    if count > max_pages {
        return Err(PageListError::TooManyPages {
            size,
            offset,
            pages: count,
            max: max_pages,
        });
    }
    // count <= max_pages, which the caller bounds (129 by default).
    let count = usize::try_from(count).map_err(|_| PageListError::TooManyPages {
        size,
        offset,
        pages: count,
        max: max_pages,
    })?;
    // Reserve a bounded amount: a policy may allow huge buffers.
    let mut pages = Vec::with_capacity(count.min(1024));
    let mut list_page = buf_ptr - offset;
    let mut raw = [0u8; PAGE_SIZE as usize];
    while pages.len() < count {
        mem.read(list_page, &mut raw)
            .map_err(PageListError::ListPage)?;
        let mut words = raw.chunks_exact(8).map(|c| {
            let mut w = [0u8; 8];
            w.copy_from_slice(c);
            u64::from_le_bytes(w)
        });
        for addr in words.by_ref().take(ENTRIES_PER_LIST_PAGE) {
            if pages.len() == count {
                break;
            }
            let index = pages.len();
            if addr % PAGE_SIZE != 0 {
                return Err(PageListError::UnalignedPage { index, addr });
            }
            if !mem.is_ram(addr, PAGE_SIZE) {
                return Err(PageListError::NotRam { index, addr });
            }
            pages.push(addr);
        }
        if pages.len() < count {
            let next = words.next().unwrap_or(0);
            if next % PAGE_SIZE != 0 {
                return Err(PageListError::UnalignedLink(next));
            }
            list_page = next;
        }
    }
    GuestBuffer::new(pages, offset, size).ok_or(PageListError::TooManyPages {
        size,
        offset,
        pages: count as u64,
        max: max_pages,
    })
}

/// Writes a page list for `pages` at the list pages `list` (test and fuzz
/// helper, the equivalent of the driver's optee_fill_pages_list): returns
/// the `buf_ptr` to pass, with `offset` in its low bits.
pub fn write_list(
    mem: &dyn GuestRam,
    list: &[u64],
    pages: &[u64],
    offset: u64,
) -> Result<u64, MemError> {
    let first = list
        .first()
        .copied()
        .ok_or(MemError::NotRam { gpa: 0, len: 0 })?;
    for (i, chunk) in pages.chunks(ENTRIES_PER_LIST_PAGE).enumerate() {
        let at = list
            .get(i)
            .copied()
            .ok_or(MemError::NotRam { gpa: 0, len: 0 })?;
        let mut raw = Vec::with_capacity(PAGE_SIZE as usize);
        for p in chunk {
            raw.extend_from_slice(&p.to_le_bytes());
        }
        raw.resize(PAGE_SIZE as usize - 8, 0);
        let next = list.get(i + 1).copied().unwrap_or(0);
        raw.extend_from_slice(&next.to_le_bytes());
        mem.write(at, &raw)?;
    }
    Ok(first | (offset % PAGE_SIZE))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::mem::FakeGuestMemory;

    const LIST: u64 = 0x8000_0000;

    fn mem() -> FakeGuestMemory {
        FakeGuestMemory::new(&[(0x4000_0000, 0x100_0000), (LIST, 0x10000)])
    }

    #[test]
    fn walk_translates_a_one_page_list() {
        let m = mem();
        let pages = [0x4000_3000, 0x4000_1000];
        let ptr = write_list(&m, &[LIST], &pages, 0x123).unwrap();
        let b = walk(&m, ptr, 0x1000, 129).unwrap();
        assert_eq!(b.pages(), &pages);
        assert_eq!((b.offset(), b.size()), (0x123, 0x1000));
    }

    #[test]
    fn walk_follows_links_across_list_pages() {
        let m = mem();
        let pages: Vec<u64> = (0..600u64)
            .map(|i| 0x4000_0000 + ((i * 7) % 4096) * 0x1000)
            .collect();
        let ptr = write_list(&m, &[LIST + 0x3000, LIST + 0x1000], &pages, 0).unwrap();
        let b = walk(&m, ptr, 600 * 0x1000, 1000).unwrap();
        assert_eq!(b.pages(), &pages[..]);
    }

    #[test]
    fn walk_refuses_more_pages_than_the_limit_before_reading() {
        let m = FakeGuestMemory::new(&[]);
        assert_eq!(
            walk(&m, LIST | 1, 129 * 0x1000, 129),
            Err(PageListError::TooManyPages {
                size: 129 * 0x1000,
                offset: 1,
                pages: 130,
                max: 129
            })
        );
        assert!(matches!(
            walk(&m, LIST, u64::MAX, 129),
            Err(PageListError::TooManyPages { .. })
        ));
    }

    #[test]
    fn walk_of_a_looping_list_ends_at_the_page_count() {
        let m = mem();
        // A list page whose link points to itself, with 511 valid entries.
        let pages = vec![0x4000_0000u64; ENTRIES_PER_LIST_PAGE];
        write_list(&m, &[LIST], &pages, 0).unwrap();
        m.write(LIST + PAGE_SIZE - 8, &LIST.to_le_bytes()).unwrap();
        let n = 3 * ENTRIES_PER_LIST_PAGE as u64;
        let b = walk(&m, LIST, n * PAGE_SIZE, n).unwrap();
        assert_eq!(b.pages().len() as u64, n);
    }

    #[test]
    fn walk_refuses_a_list_in_a_hole() {
        let m = mem();
        assert!(matches!(
            walk(&m, 0x9000_0000, 0x1000, 129),
            Err(PageListError::ListPage(_))
        ));
    }

    #[test]
    fn walk_refuses_a_link_into_a_hole_or_unaligned() {
        let m = mem();
        let pages = vec![0x4000_0000u64; 512];
        write_list(&m, &[LIST, LIST + 0x1000], &pages, 0).unwrap();
        m.write(LIST + PAGE_SIZE - 8, &0x9000_0000u64.to_le_bytes())
            .unwrap();
        assert!(matches!(
            walk(&m, LIST, 512 * PAGE_SIZE, 1000),
            Err(PageListError::ListPage(_))
        ));
        m.write(LIST + PAGE_SIZE - 8, &(LIST + 8).to_le_bytes())
            .unwrap();
        assert_eq!(
            walk(&m, LIST, 512 * PAGE_SIZE, 1000),
            Err(PageListError::UnalignedLink(LIST + 8))
        );
    }

    #[test]
    fn walk_refuses_entries_in_holes_or_unaligned() {
        let m = mem();
        let ptr = write_list(&m, &[LIST], &[0x4000_0000, 0x9000_0000], 0).unwrap();
        assert_eq!(
            walk(&m, ptr, 0x2000, 129),
            Err(PageListError::NotRam {
                index: 1,
                addr: 0x9000_0000
            })
        );
        let ptr = write_list(&m, &[LIST], &[0x4000_0010], 0).unwrap();
        assert_eq!(
            walk(&m, ptr, 0x10, 129),
            Err(PageListError::UnalignedPage {
                index: 0,
                addr: 0x4000_0010
            })
        );
        // The last page of guest RAM straddling its end is not RAM.
        let ptr = write_list(&m, &[LIST], &[!0xFFFu64], 0).unwrap();
        assert!(matches!(
            walk(&m, ptr, 1, 129),
            Err(PageListError::NotRam { .. })
        ));
    }

    #[test]
    fn walk_of_an_empty_buffer_reads_nothing() {
        let m = FakeGuestMemory::new(&[]);
        let b = walk(&m, 0x1000, 0, 129).unwrap();
        assert!(b.pages().is_empty());
    }
}
