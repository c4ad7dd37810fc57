// SPDX-License-Identifier: Apache-2.0 OR MIT
//! The console's output side: the UART model flushes after every byte; this
//! writer passes whole lines on (one write per line is kinder to a slow
//! console, such as the emulated host's serial port).

use std::io::{self, Write};

/// Longest partial line kept before it is written anyway.
pub const MAX_LINE: usize = 4096;

/// Buffers bytes until a newline (or [`MAX_LINE`] bytes), then writes them
/// to the inner writer; `flush` does nothing, [`LineOut::drain`] writes
/// what is left.
#[derive(Debug)]
pub struct LineOut<W: Write> {
    out: W,
    line: Vec<u8>,
}

impl<W: Write> LineOut<W> {
    /// A line writer on `out`.
    pub fn new(out: W) -> Self {
        LineOut {
            out,
            line: Vec::new(),
        }
    }

    /// Writes the pending partial line, if any.
    pub fn drain(&mut self) {
        if !self.line.is_empty() {
            let _ = self.out.write_all(&self.line);
            let _ = self.out.flush();
            self.line.clear();
        }
    }

    /// The inner writer.
    pub fn get_ref(&self) -> &W {
        &self.out
    }
}

impl<W: Write> Write for LineOut<W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.line.extend_from_slice(buf);
        if buf.contains(&b'\n') || self.line.len() >= MAX_LINE {
            self.drain();
        }
        Ok(buf.len())
    }

    /// Does nothing: output goes on at line ends and on [`LineOut::drain`].
    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bytes_go_out_a_line_at_a_time() {
        let mut w = LineOut::new(Vec::new());
        for b in b"ab" {
            w.write_all(&[*b]).unwrap();
            w.flush().unwrap();
        }
        assert!(w.get_ref().is_empty());
        w.write_all(b"\n").unwrap();
        assert_eq!(w.get_ref(), b"ab\n");
        w.write_all(b"tail").unwrap();
        assert_eq!(w.get_ref(), b"ab\n");
        w.drain();
        assert_eq!(w.get_ref(), b"ab\ntail");
    }

    #[test]
    fn a_long_line_without_newline_is_written_at_the_limit() {
        let mut w = LineOut::new(Vec::new());
        for _ in 0..MAX_LINE {
            w.write_all(b"x").unwrap();
        }
        assert_eq!(w.get_ref().len(), MAX_LINE);
    }
}
