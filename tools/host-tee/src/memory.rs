// SPDX-License-Identifier: Apache-2.0 OR MIT
//! Where a guest buffer is in the VMM: one host-contiguous piece (so the
//! host driver can register, and pin, the guest's own pages) or not (so
//! the call goes through a bounce buffer).

use std::ptr::NonNull;

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
    if len == 0 || start.checked_add(len)? > buffer.size() {
        return None;
    }
    let pos = buffer.offset().checked_add(start)?;
    let last = pos.checked_add(len - 1)?;
    let first_page = usize::try_from(pos / PAGE_SIZE).ok()?;
    let last_page = usize::try_from(last / PAGE_SIZE).ok()?;
    let pages = buffer.pages().get(first_page..=last_page)?;
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

#[cfg(test)]
mod tests {
    use super::*;
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
