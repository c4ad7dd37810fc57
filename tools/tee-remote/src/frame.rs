// SPDX-License-Identifier: Apache-2.0 OR MIT
//! Frames: a little-endian `u32` length, then a postcard-encoded message,
//! at most [`MAX_FRAME`] bytes. A frame that announces more is refused
//! before a byte of it is read.
//!
//! A connection's first frame, the greeting, has a limit of its own,
//! [`MAX_GREETING`]: a peer the service does not know yet gets a few
//! hundred bytes of its memory, not megabytes. [`Greeting`] reads it a
//! piece at a time, as a non-blocking socket gives it.

use std::io::{self, Read, Write};

use serde::de::DeserializeOwned;
use serde::Serialize;

use crate::wire::{Request, MAX_FRAME, MAX_NAME};

/// The longest greeting frame: a [`crate::wire::Hello`] with a name of
/// [`MAX_NAME`] bytes, and room to spare.
pub const MAX_GREETING: u32 = 2 * MAX_NAME as u32;

/// Why a frame could not be sent or received.
#[derive(Debug, thiserror::Error)]
pub enum FrameError {
    /// The peer closed the connection between frames.
    #[error("the peer closed the connection")]
    Closed,
    /// Reading or writing failed (a timeout included), or the peer closed
    /// the connection in the middle of a frame.
    #[error("{0}")]
    Io(#[from] io::Error),
    /// The frame is longer than the limit.
    #[error("a frame of {len} bytes is over the {max}-byte limit")]
    TooLarge {
        /// Its length.
        len: u64,
        /// The limit.
        max: u32,
    },
    /// The frame is not a message of this protocol.
    #[error("undecodable message: {0}")]
    Decode(#[from] postcard::Error),
    /// The message ends before the frame does.
    #[error("{0} bytes after the end of the message")]
    Trailing(usize),
}

/// Decodes one message from exactly `bytes` (a frame's contents).
pub fn decode<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, FrameError> {
    let (msg, rest) = postcard::take_from_bytes(bytes)?;
    if rest.is_empty() {
        Ok(msg)
    } else {
        Err(FrameError::Trailing(rest.len()))
    }
}

/// Encodes `msg` as a whole frame, length first.
pub fn encode<T: Serialize>(msg: &T) -> Result<Vec<u8>, FrameError> {
    let mut frame = postcard::to_extend(msg, vec![0u8; 4])?;
    let len = frame.len() - 4;
    let max = MAX_FRAME;
    let Ok(n) = u32::try_from(len) else {
        return Err(FrameError::TooLarge {
            len: len as u64,
            max,
        });
    };
    if n > max {
        return Err(FrameError::TooLarge {
            len: len as u64,
            max,
        });
    }
    frame[..4].copy_from_slice(&n.to_le_bytes());
    Ok(frame)
}

/// Sends `msg` as one frame.
pub fn send<W: Write, T: Serialize>(w: &mut W, msg: &T) -> Result<(), FrameError> {
    let frame = encode(msg)?;
    w.write_all(&frame)?;
    w.flush()?;
    Ok(())
}

/// The most a frame's body grows by at once while it is read.
const READ_CHUNK: usize = 64 << 10;

/// Receives one frame and decodes it. [`FrameError::Closed`] if the peer
/// closed the connection before the frame's first byte.
pub fn receive<R: Read, T: DeserializeOwned>(r: &mut R) -> Result<T, FrameError> {
    let mut len = [0u8; 4];
    let mut got = 0;
    while got < len.len() {
        match r.read(&mut len[got..]) {
            Ok(0) if got == 0 => return Err(FrameError::Closed),
            Ok(0) => return Err(io::Error::from(io::ErrorKind::UnexpectedEof).into()),
            Ok(n) => got += n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e.into()),
        }
    }
    let n = u32::from_le_bytes(len);
    if n > MAX_FRAME {
        return Err(FrameError::TooLarge {
            len: u64::from(n),
            max: MAX_FRAME,
        });
    }
    // Read what the peer sends, not what it announces: memory grows with
    // the bytes that arrive, a chunk at a time, each a fallible
    // allocation (a service short of memory drops the connection, it does
    // not abort).
    let mut body = Vec::new();
    let mut left = n as usize;
    while left > 0 {
        let chunk = left.min(READ_CHUNK);
        body.try_reserve(chunk)
            .map_err(|_| io::Error::from(io::ErrorKind::OutOfMemory))?;
        let got = r.by_ref().take(chunk as u64).read_to_end(&mut body)?;
        if got != chunk {
            return Err(io::Error::from(io::ErrorKind::UnexpectedEof).into());
        }
        left -= chunk;
    }
    decode(&body)
}

/// A greeting being read: at most 4 + [`MAX_GREETING`] bytes, taken as
/// they come.
#[derive(Debug, Default)]
pub struct Greeting {
    /// The length, then the frame's bytes, as far as they came.
    got: Vec<u8>,
}

impl Greeting {
    /// Nothing read yet.
    pub fn new() -> Greeting {
        Greeting::default()
    }

    /// Bytes read so far.
    pub fn len(&self) -> usize {
        self.got.len()
    }

    /// Whether nothing was read yet.
    pub fn is_empty(&self) -> bool {
        self.got.is_empty()
    }

    /// Reads once from `r`, no further than the greeting's end: the
    /// greeting's message once whole, `None` while it is not. A read that
    /// would block (a non-blocking socket with nothing more, or a read
    /// timeout) is an [`io::ErrorKind::WouldBlock`] error; the end of the
    /// stream before any byte is [`FrameError::Closed`]; a frame longer
    /// than [`MAX_GREETING`] is refused before its body is read.
    pub fn read_from<R: Read>(&mut self, r: &mut R) -> Result<Option<Request>, FrameError> {
        let need = match self.announced() {
            None => 4 - self.got.len(),
            Some(n) => 4 + n - self.got.len(),
        };
        let mut buf = [0u8; 4 + MAX_GREETING as usize];
        let n = loop {
            match r.read(&mut buf[..need]) {
                Ok(0) if self.got.is_empty() => return Err(FrameError::Closed),
                Ok(0) => return Err(io::Error::from(io::ErrorKind::UnexpectedEof).into()),
                Ok(n) => break n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(e.into()),
            }
        };
        self.got.extend_from_slice(&buf[..n]);
        if self.got.len() == 4 {
            let len = u32::from_le_bytes([self.got[0], self.got[1], self.got[2], self.got[3]]);
            if len > MAX_GREETING {
                return Err(FrameError::TooLarge {
                    len: u64::from(len),
                    max: MAX_GREETING,
                });
            }
        }
        match self.announced() {
            Some(n) if self.got.len() == 4 + n => decode(&self.got[4..]).map(Some),
            _ => Ok(None),
        }
    }

    /// The frame's length, once its four bytes are in (never over
    /// [`MAX_GREETING`]: checked when they come).
    fn announced(&self) -> Option<usize> {
        let len: [u8; 4] = self.got.get(..4)?.try_into().ok()?;
        Some(u32::from_le_bytes(len) as usize)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::wire::{Hello, Request, Response};

    #[test]
    fn a_message_survives_a_round_trip_through_a_frame() {
        let msg = Request::Hello(Hello::new("vmm 42"));
        let frame = encode(&msg).unwrap();
        assert_eq!(
            u32::from_le_bytes(frame[..4].try_into().unwrap()) as usize,
            frame.len() - 4
        );
        let back: Request = receive(&mut &frame[..]).unwrap();
        assert_eq!(back, msg);
    }

    #[test]
    fn an_oversized_length_is_refused_before_the_body_is_read() {
        let mut bytes = (MAX_FRAME + 1).to_le_bytes().to_vec();
        bytes.extend_from_slice(&[0; 16]);
        let e = receive::<_, Request>(&mut &bytes[..]).unwrap_err();
        assert!(matches!(e, FrameError::TooLarge { len, .. } if len == u64::from(MAX_FRAME) + 1));
        assert_eq!(
            e.to_string(),
            format!(
                "a frame of {} bytes is over the {MAX_FRAME}-byte limit",
                MAX_FRAME + 1
            )
        );
    }

    #[test]
    fn an_oversized_message_is_not_sent() {
        let big = Request::Hello(Hello {
            magic: *b"tosfwdTE",
            version: 1,
            name: "x".repeat(MAX_FRAME as usize),
        });
        assert!(matches!(encode(&big), Err(FrameError::TooLarge { .. })));
    }

    #[test]
    fn end_of_stream_between_frames_is_closed_and_within_one_is_an_error() {
        assert!(matches!(
            receive::<_, Request>(&mut &[][..]),
            Err(FrameError::Closed)
        ));
        let frame = encode(&Response::Ack).unwrap();
        for cut in 1..frame.len() {
            let e = receive::<_, Response>(&mut &frame[..cut]).unwrap_err();
            assert!(matches!(e, FrameError::Io(_)), "cut at {cut}: {e:?}");
        }
    }

    /// A reader that gives one byte at a time, then "would block" once.
    struct Trickle<'a>(&'a [u8], bool);

    impl Read for Trickle<'_> {
        fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
            self.1 = !self.1;
            if self.1 {
                return Err(io::ErrorKind::WouldBlock.into());
            }
            let n = self.0.len().min(1).min(buf.len());
            buf[..n].copy_from_slice(&self.0[..n]);
            self.0 = &self.0[n..];
            Ok(n)
        }
    }

    #[test]
    fn a_greeting_is_read_a_piece_at_a_time_and_no_further() {
        let hello = Request::Hello(Hello::new("vmm"));
        let mut bytes = encode(&hello).unwrap();
        let end = bytes.len();
        bytes.extend_from_slice(&encode(&Response::Ack).unwrap());
        let mut r = Trickle(&bytes, false);
        let mut g = Greeting::new();
        let got = loop {
            match g.read_from(&mut r) {
                Ok(Some(m)) => break m,
                Ok(None) => {}
                Err(FrameError::Io(e)) if e.kind() == io::ErrorKind::WouldBlock => {}
                Err(e) => panic!("{e}"),
            }
        };
        assert_eq!(got, hello);
        assert_eq!(g.len(), end);
        assert_eq!(r.0.len(), bytes.len() - end, "nothing read past it");
    }

    #[test]
    fn a_greeting_over_its_limit_is_refused_from_its_length() {
        let mut bytes = (MAX_GREETING + 1).to_le_bytes().to_vec();
        bytes.extend_from_slice(&[0; 16]);
        let e = Greeting::new().read_from(&mut &bytes[..]).unwrap_err();
        assert!(
            matches!(
                e,
                FrameError::TooLarge {
                    max: MAX_GREETING,
                    ..
                }
            ),
            "{e}"
        );
        // The longest name fits.
        let hello = Request::Hello(Hello::new(&"n".repeat(MAX_NAME)));
        let frame = encode(&hello).unwrap();
        assert!(frame.len() - 4 <= MAX_GREETING as usize);
        let mut g = Greeting::new();
        let mut r = &frame[..];
        let got = loop {
            if let Some(m) = g.read_from(&mut r).unwrap() {
                break m;
            }
        };
        assert_eq!(got, hello);
        assert!(matches!(
            Greeting::new().read_from(&mut &[][..]),
            Err(FrameError::Closed)
        ));
    }

    #[test]
    fn garbage_and_trailing_bytes_are_refused() {
        let mut frame = 2u32.to_le_bytes().to_vec();
        frame.extend_from_slice(&[0xff, 0xff]);
        assert!(matches!(
            receive::<_, Request>(&mut &frame[..]),
            Err(FrameError::Decode(_))
        ));
        let mut body = postcard::to_stdvec(&Response::Ack).unwrap();
        body.push(0);
        assert!(matches!(
            decode::<Response>(&body),
            Err(FrameError::Trailing(1))
        ));
    }
}
