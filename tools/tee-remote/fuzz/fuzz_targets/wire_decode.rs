// SPDX-License-Identifier: Apache-2.0 OR MIT
//! The wire protocol from arbitrary bytes: a frame's contents decoded as a
//! request and as a response; whatever decodes re-encodes as a frame that
//! decodes (and is received) back to an equal message. The same bytes as a
//! stream of frames, read whole and in dribbles with interruptions, never
//! make `frame::receive` panic.

#![no_main]

use std::io::{self, Read};

use libfuzzer_sys::fuzz_target;
use serde::de::DeserializeOwned;
use serde::Serialize;
use tee_remote::frame::{self, FrameError};
use tee_remote::wire::{Request, Response, MAX_FRAME};

/// `msg` as a frame, and back.
fn round_trip<T>(msg: &T)
where
    T: Serialize + DeserializeOwned + PartialEq + std::fmt::Debug,
{
    let bytes = match frame::encode(msg) {
        Ok(b) => b,
        Err(e) => panic!("{msg:?} decoded but does not encode: {e}"),
    };
    assert!(bytes.len() >= 4);
    let (len, body) = bytes.split_at(4);
    assert_eq!(
        u32::from_le_bytes([len[0], len[1], len[2], len[3]]) as usize,
        body.len()
    );
    assert!(body.len() <= MAX_FRAME as usize);
    assert_eq!(frame::decode::<T>(body).ok().as_ref(), Some(msg));
    assert_eq!(
        frame::receive::<_, T>(&mut &bytes[..]).ok().as_ref(),
        Some(msg)
    );
}

/// Reads at most `step` bytes at a time, and is interrupted before every
/// other read.
struct Dribble<'a> {
    data: &'a [u8],
    step: usize,
    interrupt: bool,
}

impl Read for Dribble<'_> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        self.interrupt = !self.interrupt;
        if self.interrupt {
            return Err(io::ErrorKind::Interrupted.into());
        }
        let n = buf.len().min(self.step).min(self.data.len());
        let (head, rest) = self.data.split_at(n);
        buf[..n].copy_from_slice(head);
        self.data = rest;
        Ok(n)
    }
}

/// Receives frames from `r` until the first error; each message received
/// survives a round trip.
fn drain<R: Read, T>(r: &mut R)
where
    T: Serialize + DeserializeOwned + PartialEq + std::fmt::Debug,
{
    // Each frame takes at least its 4-byte length: this ends.
    loop {
        match frame::receive::<_, T>(r) {
            Ok(msg) => round_trip(&msg),
            Err(e) => {
                let _ = e.to_string();
                if let FrameError::TooLarge { len, max } = e {
                    assert!(len > u64::from(max));
                }
                break;
            }
        }
    }
}

fuzz_target!(|data: &[u8]| {
    // 1. The bytes as one frame's contents.
    if let Ok(req) = frame::decode::<Request>(data) {
        round_trip(&req);
    }
    if let Ok(resp) = frame::decode::<Response>(data) {
        round_trip(&resp);
    }

    // 2. The bytes as a stream of frames.
    drain::<_, Request>(&mut &data[..]);
    drain::<_, Response>(&mut &data[..]);
    let step = usize::from(data.first().copied().unwrap_or(0) % 8) + 1;
    drain::<_, Request>(&mut Dribble {
        data,
        step,
        interrupt: false,
    });
    drain::<_, Response>(&mut Dribble {
        data,
        step,
        interrupt: false,
    });
});
