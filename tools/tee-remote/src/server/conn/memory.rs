// SPDX-License-Identifier: Apache-2.0 OR MIT
//! A call's memory in the service: by value, each buffer placed at
//! stand-in addresses ([`Space`]) and its span's bytes in the call's
//! [`Shadow`]; shared, the guest's own pages ([`super::shared`]).

use std::sync::Arc;

use optee_mediator::backend::RpcOut;
use optee_mediator::msg::{teec, PAGE_SIZE};
use optee_mediator::shm::{GuestBuffer, MemRef};

use super::{shared, Connection, Fault, Running, Violation, Vm, MAX_CALL_BYTES};
use crate::shadow::Shadow;
use crate::wire;

/// Where the service's stand-in addresses start (any value: the TEE
/// backends see them only through [`Shadow`]).
const SPACE_BASE: u64 = 1 << 32;

/// Where a buffer [`Space::place`]d starts: its first page (0 for an
/// empty buffer, which holds no span).
pub(super) fn base(buffer: &GuestBuffer) -> u64 {
    buffer.pages().first().copied().unwrap_or(0)
}

/// Hands out the stand-in addresses of buffers, never twice.
#[derive(Debug)]
pub(super) struct Space {
    next: u64,
}

impl Space {
    /// Where stand-in addresses start.
    pub(super) fn new() -> Space {
        Space { next: SPACE_BASE }
    }

    /// Places a buffer of this shape: its pages at fresh, contiguous
    /// addresses. Refused if it has more pages than `max_pages`.
    pub(super) fn place(
        &mut self,
        shape: wire::Buffer,
        max_pages: u64,
    ) -> Result<(Arc<GuestBuffer>, u64), Fault> {
        if shape.page_offset >= PAGE_SIZE {
            return Err(Violation::BadSpan(format!(
                "page offset {:#x} is not inside a page",
                shape.page_offset
            ))
            .into());
        }
        let too_big = || Fault::Refuse {
            ret: teec::ERROR_OUT_OF_MEMORY,
            why: format!(
                "a buffer of {:#x} bytes is over the {max_pages}-page limit",
                shape.size
            ),
        };
        let pages = shape
            .page_offset
            .checked_add(shape.size)
            .map(|end| end.div_ceil(PAGE_SIZE))
            .filter(|&p| p <= max_pages)
            .ok_or_else(too_big)?;
        let base = self.next;
        // A guard page between buffers; the space is 2^64 bytes and the
        // counter only grows by at most the limit each time.
        self.next = base
            .checked_add((pages + 1) * PAGE_SIZE)
            .ok_or_else(|| Violation::BadSpan("out of stand-in addresses".to_owned()))?;
        // The page list, sized by the peer within the policy's range: an
        // allocation that fails refuses the buffer, it does not abort.
        let mut list = Vec::new();
        usize::try_from(pages)
            .ok()
            .and_then(|n| list.try_reserve_exact(n).ok())
            .ok_or_else(too_big)?;
        list.extend((0..pages).map(|i| base + i * PAGE_SIZE));
        let buffer = GuestBuffer::new(list, shape.page_offset, shape.size)
            .ok_or_else(|| Violation::BadSpan("inconsistent buffer shape".to_owned()))?;
        Ok((Arc::new(buffer), base))
    }
}

impl Connection {
    /// A span, placed in `shadow` as `slot`, and its memory reference;
    /// refused if `shadow` would hold more than `budget` bytes.
    pub(super) fn span(
        space: &mut Space,
        vm: &Vm,
        max_pages: u64,
        budget: usize,
        s: wire::Span,
        slot: u32,
        shadow: &mut Shadow,
    ) -> Result<MemRef, Fault> {
        let (buffer, base) = match s.buffer {
            wire::SpanBuffer::Temporary(shape) => space.place(shape, max_pages)?,
            wire::SpanBuffer::Registered { cookie } => {
                let r = vm
                    .registered
                    .get(&cookie)
                    .ok_or(Violation::UnknownCookie(cookie))?;
                (r.clone(), base(r))
            }
        };
        let len = s.data.len() as u64;
        let mem = MemRef::new(buffer.clone(), s.offset, len).ok_or_else(|| {
            Violation::BadSpan(format!(
                "{len:#x} bytes at {:#x} are not inside a {:#x}-byte buffer",
                s.offset,
                buffer.size()
            ))
        })?;
        if shadow.bytes().saturating_add(s.data.len()) > MAX_CALL_BYTES {
            return Err(Violation::TooMuchData.into());
        }
        if shadow.bytes().saturating_add(s.data.len()) > budget {
            return Err(Fault::Refuse {
                ret: teec::ERROR_OUT_OF_MEMORY,
                why: "the peer's calls in progress hold max_call_bytes already".to_owned(),
            });
        }
        shadow.add(slot, base + buffer.offset() + s.offset, s.data);
        Ok(mem)
    }

    /// A shared reference's memory: a buffer of guest pages, or one
    /// registered.
    pub(super) fn shared_ref(
        vm: &Vm,
        ram: &shared::SharedRam,
        r: wire::SharedRef,
        max_pages: u64,
    ) -> Result<MemRef, Fault> {
        let buffer = match r.buffer {
            wire::SharedBuffer::Pages(list) => shared::buffer(ram, list, max_pages)?,
            wire::SharedBuffer::Registered { cookie } => vm
                .registered
                .get(&cookie)
                .cloned()
                .ok_or(Violation::UnknownCookie(cookie))?,
        };
        Ok(shared::range(buffer, r.offset, r.len)?)
    }

    /// Refuses a registration of `cookie` if it is registered already or
    /// the peer has `max` buffers.
    pub(super) fn check_register(
        vm: &Vm,
        cookie: u64,
        buffers: usize,
        max: u32,
    ) -> Result<(), Fault> {
        if vm.registered.contains_key(&cookie) {
            return Err(Fault::Refuse {
                ret: teec::ERROR_BAD_PARAMETERS,
                why: format!("buffer {cookie:#x} is registered already"),
            });
        }
        if buffers >= max as usize {
            return Err(Fault::Refuse {
                ret: teec::ERROR_OUT_OF_MEMORY,
                why: format!("{buffers} buffers registered already"),
            });
        }
        Ok(())
    }

    /// An RPC parameter's answer from the wire's: a buffer the guest
    /// allocated becomes memory of the call (by value, a span in its
    /// shadow; shared, the guest's pages), or none if it is refused as the
    /// mediator refuses one.
    pub(super) fn rpc_out(
        space: &mut Space,
        vm: &Vm,
        running: &mut Running,
        p: wire::RpcOut,
        max_pages: u64,
        budget: usize,
    ) -> Result<RpcOut, Violation> {
        let in_registered =
            || Violation::BadSpan("an RPC buffer in a registered buffer".to_owned());
        let (cookie, size, mem) = match p {
            wire::RpcOut::None => return Ok(RpcOut::None),
            wire::RpcOut::Value { a, b, c } => return Ok(RpcOut::Value { a, b, c }),
            wire::RpcOut::SharedMemref { cookie, size, mem } => {
                let shared = vm.shared_ram()?;
                let mem = match mem {
                    Some(r) if matches!(r.buffer, wire::SharedBuffer::Pages(_)) => {
                        Some(Self::shared_ref(vm, shared, r, max_pages))
                    }
                    Some(_) => return Err(in_registered()),
                    None => None,
                };
                (cookie, size, mem)
            }
            wire::RpcOut::Memref { cookie, size, mem } => {
                vm.by_value()?;
                let mem = match mem {
                    Some(s) if matches!(s.buffer, wire::SpanBuffer::Temporary(_)) => {
                        let slot = running.slots;
                        let m =
                            Self::span(space, vm, max_pages, budget, s, slot, &mut running.shadow);
                        if m.is_ok() {
                            running.slots += 1;
                        }
                        Some(m)
                    }
                    Some(_) => return Err(in_registered()),
                    None => None,
                };
                (cookie, size, mem)
            }
        };
        let mem = match mem {
            Some(Ok(m)) => Some(m),
            // A refused RPC buffer is one the mediator refused: no memory.
            Some(Err(Fault::Refuse { .. })) | None => None,
            Some(Err(Fault::Violation(v))) => return Err(v),
        };
        Ok(RpcOut::Memref { cookie, size, mem })
    }
}
