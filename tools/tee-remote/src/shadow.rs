// SPDX-License-Identifier: Apache-2.0 OR MIT
//! The service's stand-in for a call's guest memory: the spans a VMM sent,
//! each at an address of the service's choosing, readable and writable
//! through [`GuestRam`] like guest RAM, and nothing else. What the TEE
//! writes is recorded per span, to go back as [`Write`]s.

use std::cell::{Cell, RefCell};

use optee_mediator::mem::{GuestRam, MemError};

use crate::wire::Write;

/// One span: `data` at `gpa`, and the extent written since the last
/// [`Shadow::take_writes`].
#[derive(Debug)]
struct Segment {
    slot: u32,
    gpa: u64,
    data: RefCell<Vec<u8>>,
    dirty: Cell<Option<(usize, usize)>>,
}

impl Segment {
    fn end(&self) -> u64 {
        self.gpa + self.data.borrow().len() as u64
    }

    /// The range of `gpa..gpa+len` inside this segment, if it is all in it.
    fn within(&self, gpa: u64, len: usize) -> Option<std::ops::Range<usize>> {
        let end = gpa.checked_add(len as u64)?;
        (gpa >= self.gpa && end <= self.end()).then(|| {
            let start = (gpa - self.gpa) as usize;
            start..start + len
        })
    }
}

/// The spans of one thread's call. Spans may overlap (two parameters in
/// one registered buffer): a write goes to every span it touches, so that
/// they stay alike.
#[derive(Debug, Default)]
pub struct Shadow {
    segments: Vec<Segment>,
}

impl Shadow {
    /// Adds the span of `slot`: `data` at `gpa`. `gpa + data.len()` must
    /// not overflow (the service's addresses never come near).
    pub fn add(&mut self, slot: u32, gpa: u64, data: Vec<u8>) {
        self.segments.push(Segment {
            slot,
            gpa,
            data: RefCell::new(data),
            dirty: Cell::new(None),
        });
    }

    /// Bytes held, for the service's accounting.
    pub fn bytes(&self) -> usize {
        self.segments.iter().map(|s| s.data.borrow().len()).sum()
    }

    /// The bytes written since the last call, one [`Write`] per span
    /// written (its written extent), in slot order.
    pub fn take_writes(&self) -> Vec<Write> {
        let mut out = Vec::new();
        for s in &self.segments {
            if let Some((lo, hi)) = s.dirty.take() {
                out.push(Write {
                    slot: s.slot,
                    offset: lo as u64,
                    data: s.data.borrow()[lo..hi].to_vec(),
                });
            }
        }
        out
    }
}

impl GuestRam for Shadow {
    fn read(&self, gpa: u64, buf: &mut [u8]) -> Result<(), MemError> {
        let err = MemError::NotRam {
            gpa,
            len: buf.len() as u64,
        };
        let (s, r) = self
            .segments
            .iter()
            .find_map(|s| s.within(gpa, buf.len()).map(|r| (s, r)))
            .ok_or(err)?;
        buf.copy_from_slice(&s.data.borrow()[r]);
        Ok(())
    }

    fn write(&self, gpa: u64, data: &[u8]) -> Result<(), MemError> {
        if !self.is_ram(gpa, data.len() as u64) {
            return Err(MemError::NotRam {
                gpa,
                len: data.len() as u64,
            });
        }
        let end = gpa + data.len() as u64;
        for s in &self.segments {
            // The part of the write that falls in this span.
            let lo = gpa.max(s.gpa);
            let hi = end.min(s.end());
            if lo >= hi {
                continue;
            }
            let (from, to) = ((lo - s.gpa) as usize, (hi - s.gpa) as usize);
            let src = &data[(lo - gpa) as usize..(hi - gpa) as usize];
            s.data.borrow_mut()[from..to].copy_from_slice(src);
            let dirty = match s.dirty.get() {
                Some((a, b)) => (a.min(from), b.max(to)),
                None => (from, to),
            };
            s.dirty.set(Some(dirty));
        }
        Ok(())
    }

    fn is_ram(&self, gpa: u64, len: u64) -> bool {
        let Ok(len) = usize::try_from(len) else {
            return false;
        };
        self.segments.iter().any(|s| s.within(gpa, len).is_some())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_the_spans_are_memory() {
        let mut sh = Shadow::default();
        sh.add(0, 0x1000, vec![1, 2, 3, 4]);
        let mut b = [0u8; 2];
        sh.read(0x1001, &mut b).unwrap();
        assert_eq!(b, [2, 3]);
        assert!(sh.read(0x1003, &mut b).is_err());
        assert!(sh.read(0xfff, &mut b).is_err());
        assert!(sh.write(0x1004, &[0]).is_err());
        assert!(sh.is_ram(0x1000, 4));
        assert!(!sh.is_ram(0x1000, 5));
        assert!(!sh.is_ram(u64::MAX, 2));
        assert!(sh.take_writes().is_empty());
    }

    #[test]
    fn writes_come_back_as_the_written_extent_of_each_span() {
        let mut sh = Shadow::default();
        sh.add(0, 0x1000, vec![0; 16]);
        sh.add(1, 0x9000, vec![0; 16]);
        sh.write(0x1002, &[7, 7]).unwrap();
        sh.write(0x1008, &[9]).unwrap();
        let w = sh.take_writes();
        assert_eq!(w.len(), 1);
        assert_eq!((w[0].slot, w[0].offset), (0, 2));
        assert_eq!(w[0].data, [7, 7, 0, 0, 0, 0, 9]);
        // Taken: nothing new until the next write.
        assert!(sh.take_writes().is_empty());
        sh.write(0x900f, &[5]).unwrap();
        let w = sh.take_writes();
        assert_eq!(
            (w[0].slot, w[0].offset, w[0].data.clone()),
            (1, 15, vec![5])
        );
    }

    #[test]
    fn overlapping_spans_stay_alike() {
        let mut sh = Shadow::default();
        sh.add(0, 0x1000, vec![0; 8]);
        sh.add(1, 0x1004, vec![0; 8]);
        sh.write(0x1006, &[1, 2, 3, 4]).unwrap();
        let mut b = [0u8; 4];
        sh.read(0x1006, &mut b).unwrap();
        assert_eq!(b, [1, 2, 3, 4]);
        let w = sh.take_writes();
        assert_eq!(w.len(), 2);
        assert_eq!(
            (w[0].slot, w[0].offset, w[0].data.clone()),
            (0, 6, vec![1, 2])
        );
        assert_eq!(
            (w[1].slot, w[1].offset, w[1].data.clone()),
            (1, 2, vec![1, 2, 3, 4])
        );
        assert_eq!(sh.bytes(), 16);
    }
}
