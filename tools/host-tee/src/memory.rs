// SPDX-License-Identifier: Apache-2.0 OR MIT
//! Where a guest buffer is in the VMM: one host-contiguous piece (so the
//! host driver can register, and pin, the guest's own pages), pages that
//! can be mapped side by side into one ([`Window`]: guest RAM backed by a
//! file, such as a memfd), or neither (so the call goes through a bounce
//! buffer).

use std::os::fd::AsRawFd;
use std::ptr::NonNull;
use std::sync::atomic::{AtomicUsize, Ordering};

use optee_mediator::msg::PAGE_SIZE;
use optee_mediator::shm::GuestBuffer;
use optee_mediator::GuestRam;

/// A host address handed to the TEE device.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct HostPtr(pub NonNull<u8>);

// SAFETY: the address is only passed to the TEE device (the kernel, or a
// fake under TeeDevice::shm_register's contract), from whichever thread
// makes the call; this process never dereferences it through this value.
unsafe impl Send for HostPtr {}

/// The guest pages that `len` bytes at `start` in `buffer` touch, and
/// where the range starts counted from the first page of the buffer; `None`
/// for an empty range or one past the buffer.
fn touched(buffer: &GuestBuffer, start: u64, len: u64) -> Option<(u64, &[u64])> {
    if len == 0 || start.checked_add(len)? > buffer.size() {
        return None;
    }
    let pos = buffer.offset().checked_add(start)?;
    let last = pos.checked_add(len - 1)?;
    let first_page = usize::try_from(pos / PAGE_SIZE).ok()?;
    let last_page = usize::try_from(last / PAGE_SIZE).ok()?;
    Some((pos, buffer.pages().get(first_page..=last_page)?))
}

/// Where `len` bytes at `start` in `buffer` are in this process, if they
/// are one contiguous piece of it: every guest page the range touches must
/// be mapped right after the one before. Guest RAM is one mapping per
/// region, so a guest-contiguous buffer is; a scattered one (a guest user
/// buffer's pages) is not. `None` for an empty range.
pub(crate) fn host_span(
    mem: &dyn GuestRam,
    buffer: &GuestBuffer,
    start: u64,
    len: u64,
) -> Option<HostPtr> {
    let (pos, pages) = touched(buffer, start, len)?;
    let (&head, tail) = pages.split_first()?;
    let base = mem.host_address(head, PAGE_SIZE)?.as_ptr() as usize;
    let page = usize::try_from(PAGE_SIZE).ok()?;
    for (i, &gpa) in tail.iter().enumerate() {
        let host = mem.host_address(gpa, PAGE_SIZE)?.as_ptr() as usize;
        if Some(host) != (i + 1).checked_mul(page).and_then(|d| base.checked_add(d)) {
            return None;
        }
    }
    let at = base.checked_add(usize::try_from(pos % PAGE_SIZE).ok()?)?;
    NonNull::new(at as *mut u8).map(HostPtr)
}

/// Scattered guest pages mapped side by side into one range of this
/// process, from the file behind guest RAM ([`GuestRam::file_offset`]):
/// the host's TEE driver can then register, and pin, the guest's own pages
/// as one buffer, where otherwise each call would copy them through a
/// bounce buffer. The pages are the guest's (a shared mapping of the same
/// file pages), so nothing is copied either way. Unmapped when dropped,
/// which must come after the registration made of it is released.
#[derive(Debug)]
pub(crate) struct Window {
    base: NonNull<u8>,
    len: usize,
    /// The mappings it counts in [`WINDOW_MAPPINGS`].
    counted: usize,
}

/// The most mappings the windows of this process hold at once. Each
/// scattered page is a mapping of its own (pages in the file's order merge,
/// others cannot), and a process has at most vm.max_map_count of them
/// (65530 by default): past half of that, a buffer is bounced rather than
/// windowed, so that guests (through the TEE service, VMMs that are
/// peers) cannot use up the mappings every allocation needs.
pub(crate) const MAX_WINDOW_MAPPINGS: usize = 32 * 1024;

/// The mappings live windows hold, in this process.
static WINDOW_MAPPINGS: AtomicUsize = AtomicUsize::new(0);

/// Counts `n` more in `held`, if that stays within `max`.
fn take_within(held: &AtomicUsize, n: usize, max: usize) -> bool {
    held.fetch_update(Ordering::AcqRel, Ordering::Acquire, |h| {
        h.checked_add(n).filter(|&t| t <= max)
    })
    .is_ok()
}

/// Counts `n` more window mappings, if that stays within
/// [`MAX_WINDOW_MAPPINGS`].
fn take_mappings(n: usize) -> bool {
    take_within(&WINDOW_MAPPINGS, n, MAX_WINDOW_MAPPINGS)
}

// SAFETY: the window is an address range this process owns; dropping it
// (munmap) is valid from any thread, and nothing here dereferences it.
unsafe impl Send for Window {}

impl Window {
    /// A window onto the pages of `len` bytes at `start` in `buffer`, and
    /// where that start is in it; `None` if a page has no file behind it or
    /// a mapping fails (the caller bounces instead).
    pub fn map(
        mem: &dyn GuestRam,
        buffer: &GuestBuffer,
        start: u64,
        len: u64,
    ) -> Option<(Window, HostPtr)> {
        let (pos, pages) = touched(buffer, start, len)?;
        let page = usize::try_from(PAGE_SIZE).ok()?;
        let size = pages.len().checked_mul(page)?;
        // A mapping per page, and the reservation's.
        let counted = pages.len() + 1;
        if !take_mappings(counted) {
            return None;
        }
        // SAFETY: a new private, inaccessible reservation at an address the
        // kernel chooses: it changes no existing mapping.
        let base = unsafe {
            libc::mmap(
                std::ptr::null_mut(),
                size,
                libc::PROT_NONE,
                libc::MAP_PRIVATE | libc::MAP_ANONYMOUS | libc::MAP_NORESERVE,
                -1,
                0,
            )
        };
        if base == libc::MAP_FAILED {
            WINDOW_MAPPINGS.fetch_sub(counted, Ordering::AcqRel);
            return None;
        }
        let Some(base) = NonNull::new(base.cast()) else {
            WINDOW_MAPPINGS.fetch_sub(counted, Ordering::AcqRel);
            return None;
        };
        // From here the window's drop gives the count back.
        let window = Window {
            base,
            len: size,
            counted,
        };
        for (i, &gpa) in pages.iter().enumerate() {
            let (fd, offset) = mem.file_offset(gpa, PAGE_SIZE)?;
            if offset % PAGE_SIZE != 0 {
                return None;
            }
            let offset = libc::off_t::try_from(offset).ok()?;
            // SAFETY: MAP_FIXED replaces one page of the reservation made
            // above, which this window owns, with a shared mapping of the
            // guest's page; no other mapping is touched.
            let at = unsafe {
                libc::mmap(
                    window.base.as_ptr().add(i * page).cast(),
                    page,
                    libc::PROT_READ | libc::PROT_WRITE,
                    libc::MAP_SHARED | libc::MAP_FIXED,
                    fd.as_raw_fd(),
                    offset,
                )
            };
            if at == libc::MAP_FAILED {
                return None;
            }
        }
        let inner = usize::try_from(pos % PAGE_SIZE).ok()?;
        // SAFETY: inner < PAGE_SIZE: inside the window's first page.
        let at = unsafe { window.base.as_ptr().add(inner) };
        Some((window, HostPtr(NonNull::new(at)?)))
    }
}

impl Drop for Window {
    fn drop(&mut self) {
        // SAFETY: the range is this window's own mapping, made in `map`.
        unsafe { libc::munmap(self.base.as_ptr().cast(), self.len) };
        WINDOW_MAPPINGS.fetch_sub(self.counted, Ordering::AcqRel);
    }
}

/// A registration of guest pages with the host's TEE, and the [`Window`]
/// they were mapped into for it, if they needed one: the registration is
/// released first, then the window unmapped.
#[derive(Debug)]
pub(crate) struct Pinned<R> {
    /// The registration.
    pub reg: R,
    window: Option<Window>,
}

impl<R> Pinned<R> {
    /// `reg`, made of `window`'s pages if there is one.
    pub fn new(reg: R, window: Option<Window>) -> Self {
        Pinned { reg, window }
    }

    /// Whether its pages were mapped into a window for it.
    pub fn windowed(&self) -> bool {
        self.window.is_some()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn window_mappings_are_counted_up_to_the_bound() {
        let held = AtomicUsize::new(0);
        assert!(take_within(&held, 30, 32));
        assert!(
            !take_within(&held, 3, 32),
            "past the bound: bounced instead"
        );
        assert!(take_within(&held, 2, 32));
        assert!(!take_within(&held, usize::MAX, usize::MAX), "no overflow");
        assert_eq!(held.load(Ordering::Acquire), 32);
    }
    use optee_mediator::FakeGuestMemory;
    use vm_memory::{GuestAddress, GuestMemoryMmap};

    fn ram() -> GuestMemoryMmap<()> {
        GuestMemoryMmap::from_ranges(&[(GuestAddress(0x4000_0000), 0x10000)]).unwrap()
    }

    #[test]
    fn a_guest_contiguous_buffer_is_one_host_span_at_its_offset() {
        let m = ram();
        let b = GuestBuffer::new(vec![0x4000_1000, 0x4000_2000], 0x10, 0x1800).unwrap();
        let base = m.host_address(0x4000_1000, 1).unwrap().as_ptr() as usize;
        let span = host_span(&m, &b, 0x20, 0x1000).unwrap();
        assert_eq!(span.0.as_ptr() as usize, base + 0x30);
    }

    #[test]
    fn a_scattered_buffer_is_no_host_span_but_its_pieces_within_a_page_are() {
        let m = ram();
        let b = GuestBuffer::new(vec![0x4000_3000, 0x4000_1000], 0, 0x2000).unwrap();
        assert!(host_span(&m, &b, 0, 0x2000).is_none());
        assert!(
            host_span(&m, &b, 0xff0, 0x20).is_none(),
            "straddles the jump"
        );
        assert!(host_span(&m, &b, 0x1000, 0x1000).is_some());
    }

    #[test]
    fn memory_without_a_host_mapping_or_an_empty_range_is_no_host_span() {
        let fake = FakeGuestMemory::new(&[(0x1000, 0x1000)]);
        let b = GuestBuffer::new(vec![0x1000], 0, 0x10).unwrap();
        assert!(host_span(&fake, &b, 0, 0x10).is_none());
        assert!(host_span(&ram(), &b, 0, 0).is_none());
        let m = ram();
        let inside = GuestBuffer::new(vec![0x4000_0000], 0, 0x10).unwrap();
        assert!(host_span(&m, &inside, 0, 0x11).is_none(), "past the buffer");
        assert!(host_span(&m, &inside, u64::MAX, 2).is_none());
    }
}
