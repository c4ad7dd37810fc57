// SPDX-License-Identifier: Apache-2.0 OR MIT
//! The input format of the `service` target, shared with the seed
//! generator (`examples/service_seeds.rs`): frames, each a little-endian
//! `u16` length then that many bytes of a frame's contents (a postcard
//! message, without the wire's own `u32` length). A length past the end
//! takes what is left; a lone last byte is ignored.

#![allow(dead_code)]

/// The frames' contents of a `service` input, in order.
pub struct Chunks<'a> {
    data: &'a [u8],
}

impl<'a> Chunks<'a> {
    pub fn new(data: &'a [u8]) -> Self {
        Chunks { data }
    }
}

impl<'a> Iterator for Chunks<'a> {
    type Item = &'a [u8];

    fn next(&mut self) -> Option<&'a [u8]> {
        let (len, rest) = match self.data {
            [a, b, rest @ ..] => (usize::from(u16::from_le_bytes([*a, *b])), rest),
            _ => return None,
        };
        let (chunk, rest) = rest.split_at(len.min(rest.len()));
        self.data = rest;
        Some(chunk)
    }
}

/// Appends one frame's contents, `body`, to a `service` input; `None` if
/// it is longer than a `u16` can say.
pub fn push(input: &mut Vec<u8>, body: &[u8]) -> Option<()> {
    let len = u16::try_from(body.len()).ok()?;
    input.extend_from_slice(&len.to_le_bytes());
    input.extend_from_slice(body);
    Some(())
}
