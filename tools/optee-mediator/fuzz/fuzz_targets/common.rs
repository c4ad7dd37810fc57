// SPDX-License-Identifier: Apache-2.0 OR MIT
//! Shared helpers of the fuzz targets: a byte reader and guest memory
//! built from fuzz input.

#![allow(dead_code)]

use optee_mediator::{FakeGuestMemory, GuestRam};

/// Reads values from the fuzz input, yielding zeros once it runs out.
pub struct Reader<'a> {
    data: &'a [u8],
}

impl<'a> Reader<'a> {
    pub fn new(data: &'a [u8]) -> Self {
        Reader { data }
    }
    pub fn is_empty(&self) -> bool {
        self.data.is_empty()
    }
    pub fn u8(&mut self) -> u8 {
        match self.data.split_first() {
            Some((b, rest)) => {
                self.data = rest;
                *b
            }
            None => 0,
        }
    }
    pub fn u32(&mut self) -> u32 {
        u32::from_le_bytes([self.u8(), self.u8(), self.u8(), self.u8()])
    }
    pub fn u64(&mut self) -> u64 {
        u64::from(self.u32()) | (u64::from(self.u32()) << 32)
    }
    pub fn bytes(&mut self, n: usize) -> &'a [u8] {
        let n = n.min(self.data.len());
        let (a, b) = self.data.split_at(n);
        self.data = b;
        a
    }
}

/// Guest RAM layout of the fuzz targets: regions with holes between them,
/// one at the top of the address space.
pub const REGIONS: [(u64, u64); 5] = [
    (0x1000, 0x1000),
    (0x4000_0000, 0x8000),
    (0x4000_9000, 0x2000),
    (0x8000_0000, 0x1000),
    (0xFFFF_FFFF_FFFF_D000, 0x2000),
];

/// Memory of [`REGIONS`]. The pages of the big region start as valid page
/// lists naming its own pages (so walks get deep); then the input patches
/// it with up to 8 writes at chosen addresses.
pub fn memory(r: &mut Reader) -> FakeGuestMemory {
    let m = FakeGuestMemory::new(&REGIONS);
    let (base, size) = REGIONS[1];
    let pages = size / 0x1000;
    let mut raw = Vec::with_capacity(size as usize);
    for p in 0..pages {
        for i in 0..512u64 {
            raw.extend_from_slice(&(base + ((p + i + 1) % pages) * 0x1000).to_le_bytes());
        }
    }
    let _ = m.write(base, &raw);
    for _ in 0..r.u8() % 9 {
        let at = address(r);
        let len = usize::from(r.u8()) * 4;
        let bytes = r.bytes(len);
        let _ = m.write(at, bytes);
    }
    m
}

/// An address biased towards the interesting ones: in or near a region,
/// page aligned or not.
pub fn address(r: &mut Reader) -> u64 {
    let sel = r.u8();
    let (base, size) = REGIONS[usize::from(sel % REGIONS.len() as u8)];
    match sel >> 5 {
        0 => r.u64(),
        1 => base.wrapping_add(u64::from(r.u8()) * 0x1000 % size.max(1)),
        2 => base.wrapping_add(u64::from(r.u32()) % (size + 0x2000)),
        _ => base.wrapping_add((u64::from(r.u8()) % (size / 0x1000 + 1)) * 0x1000),
    }
}
