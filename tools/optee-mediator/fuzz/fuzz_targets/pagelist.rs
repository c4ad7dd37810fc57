// SPDX-License-Identifier: Apache-2.0 OR MIT
//! The page-list walker: arbitrary lists (loops, holes, unaligned entries,
//! links past the end of the address space) in arbitrary guest memory.

#![no_main]

#[path = "common.rs"]
mod common;

use libfuzzer_sys::fuzz_target;
use optee_mediator::msg::PAGE_SIZE;
use optee_mediator::pagelist::{pages_needed, walk};
use optee_mediator::GuestRam;

fuzz_target!(|data: &[u8]| {
    let mut r = common::Reader::new(data);
    let buf_ptr = common::address(&mut r);
    let size = match r.u8() % 4 {
        0 => r.u64(),
        1 => u64::from(r.u8()),
        _ => u64::from(r.u32() % (1 << 22)),
    };
    let max = u64::from(r.u8()) * 8;
    let probe = (r.u64(), r.u32() as usize % 9000);
    let mem = common::memory(&mut r);
    match walk(&mem, buf_ptr, size, max) {
        Ok(buf) => {
            assert_eq!(buf.pages().len() as u64, pages_needed(buf_ptr % PAGE_SIZE, size));
            assert!(buf.pages().len() as u64 <= max);
            assert!(buf
                .pages()
                .iter()
                .all(|p| p % PAGE_SIZE == 0 && mem.is_ram(*p, PAGE_SIZE)));
            // Accesses through the buffer stay within it.
            let (off, len) = probe;
            let mut b = vec![0u8; len];
            let inside = off.checked_add(len as u64).is_some_and(|e| e <= size);
            match buf.read(&mem, off, &mut b) {
                Ok(()) => assert!(inside),
                Err(_) => assert!(!inside),
            }
            if inside {
                assert!(buf.write(&mem, off, &b).is_ok());
            }
        }
        Err(e) => {
            let _ = e.to_string();
        }
    }
});
