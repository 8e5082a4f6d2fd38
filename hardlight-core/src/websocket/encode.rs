//! The frames HardLight writes: each message one final frame.

use bytes::BufMut;

use super::MAX_CONTROL_PAYLOAD;
use crate::text::truncated;

/// The most bytes a frame header takes: two, eight of extended length and four of mask.
pub const MAX_HEADER: usize = 14;

/// The kind of a frame written.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Opcode {
    /// A binary message (HardLight's frames).
    Binary,
    /// A close (payload: [`close_payload`]).
    Close,
    /// A keep-alive the peer answers.
    Ping,
    /// The answer to a ping, with its payload.
    Pong,
}

impl Opcode {
    const fn bits(self) -> u8 {
        match self {
            Self::Binary => 0x2,
            Self::Close => 0x8,
            Self::Ping => 0x9,
            Self::Pong => 0xA,
        }
    }
}

/// Writes the header of a final frame of `len` payload bytes, masked with `key` (a
/// client's frames) or not (a server's). The payload follows it, masked with the same key
/// by [`mask`].
///
/// ```
/// use hardlight_core::websocket::{header, Opcode};
/// let mut out = Vec::new();
/// header(&mut out, Opcode::Binary, 300, None);
/// assert_eq!(out, [0x82, 126, 0x01, 0x2c]);
/// ```
pub fn header(out: &mut impl BufMut, opcode: Opcode, len: usize, key: Option<[u8; 4]>) {
    out.put_u8(0x80 | opcode.bits());
    let masked = if key.is_some() { 0x80 } else { 0 };
    match len {
        0..=125 => out.put_u8(masked | len as u8),
        126..=0xFFFF => {
            out.put_u8(masked | 126);
            out.put_u16(len as u16);
        }
        _ => {
            out.put_u8(masked | 127);
            out.put_u64(len as u64);
        }
    }
    if let Some(key) = key {
        out.put_slice(&key);
    }
}

/// Writes a whole final frame of `payload`: its header, then the payload, masked with
/// `key` if given.
///
/// ```
/// use hardlight_core::websocket::{frame, Opcode};
/// let mut out = Vec::new();
/// frame(&mut out, Opcode::Pong, b"hi", None);
/// assert_eq!(out, [0x8a, 2, b'h', b'i']);
/// ```
pub fn frame(out: &mut Vec<u8>, opcode: Opcode, payload: &[u8], key: Option<[u8; 4]>) {
    header(out, opcode, payload.len(), key);
    let at = out.len();
    out.extend_from_slice(payload);
    if let Some(key) = key {
        mask(&mut out[at..], key);
    }
}

/// Masks (or unmasks: the operation is its own inverse) a frame's payload with `key`.
///
/// ```
/// use hardlight_core::websocket::mask;
/// let mut bytes = *b"hello, websocket";
/// mask(&mut bytes, [9, 8, 7, 6]);
/// assert_ne!(&bytes, b"hello, websocket");
/// mask(&mut bytes, [9, 8, 7, 6]);
/// assert_eq!(&bytes, b"hello, websocket");
/// ```
pub fn mask(bytes: &mut [u8], key: [u8; 4]) {
    // sixteen bytes at a time (one SSE2 register): the key repeats every four, so every
    // block takes the same
    let wide = u128::from_ne_bytes([
        key[0], key[1], key[2], key[3], key[0], key[1], key[2], key[3], key[0], key[1], key[2],
        key[3], key[0], key[1], key[2], key[3],
    ]);
    let mut blocks = bytes.chunks_exact_mut(16);
    for block in &mut blocks {
        let mut value = [0u8; 16];
        value.copy_from_slice(block);
        block.copy_from_slice(&(u128::from_ne_bytes(value) ^ wide).to_ne_bytes());
    }
    // what is left starts at a multiple of sixteen, at the key's first byte: eight bytes
    // at a time, then one
    let mut words = blocks.into_remainder().chunks_exact_mut(8);
    for word in &mut words {
        let mut value = [0u8; 8];
        value.copy_from_slice(word);
        word.copy_from_slice(&(u64::from_ne_bytes(value) ^ wide as u64).to_ne_bytes());
    }
    for (byte, k) in words.into_remainder().iter_mut().zip(key.iter().cycle()) {
        *byte ^= k;
    }
}

/// A close frame's payload: `code`, then as much of `reason` as fits in a control frame
/// (cut at a character boundary).
///
/// ```
/// use hardlight_core::websocket::close_payload;
/// let payload = close_payload(1009, &"x".repeat(500));
/// assert_eq!(payload.len(), 125);
/// assert_eq!(&payload[..2], &1009u16.to_be_bytes());
/// ```
pub fn close_payload(code: u16, reason: &str) -> Vec<u8> {
    let reason = truncated(reason, MAX_CONTROL_PAYLOAD - 2);
    let mut payload = Vec::with_capacity(2 + reason.len());
    payload.put_u16(code);
    payload.put_slice(reason.as_bytes());
    payload
}

#[cfg(test)]
mod tests {
    use super::mask;

    #[test]
    fn masking_xors_each_byte_with_the_key_byte_of_its_place() {
        let key = [0x12, 0x34, 0x56, 0x78];
        for len in 0..100 {
            let plain: Vec<u8> = (0..len).map(|i| (i * 7) as u8).collect();
            let mut masked = plain.clone();
            mask(&mut masked, key);
            let expected: Vec<u8> = plain
                .iter()
                .enumerate()
                .map(|(i, b)| b ^ key[i % 4])
                .collect();
            assert_eq!(masked, expected, "{len} bytes");
        }
    }
}
