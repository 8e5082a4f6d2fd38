//! Assembling frames for sending and opening received bodies.

use crate::{
    codec::{encode_into, realign, Bytes, Codable},
    compression::{self, Compression},
    error::ProtocolError,
    frame::{FrameHeader, FLAG_COMPRESSED, HEADER_LEN},
    received::Received,
    spare,
};

/// An archive encoded behind room for its frame header, so that framing it writes the
/// header in place: no second buffer, no copy.
///
/// ```
/// use hardlight_core::{codec::decode, frame::{FrameHeader, Kind, HEADER_LEN}, message::Body, Compression};
/// let body = Body::encode(&(7u32, String::from("seven"))).unwrap();
/// let len = body.len();
/// let frame = body.frame(FrameHeader::new(Kind::Call, 0).with_id(1), Compression::None).unwrap();
/// let (header, archive) = FrameHeader::split(&frame, 1024).unwrap();
/// assert_eq!(header.body_len as usize, len);
/// assert_eq!(decode::<(u32, String)>(archive).unwrap(), (7, "seven".into()));
/// ```
pub struct Body(Vec<u8>);

impl Body {
    /// Archives `value`.
    ///
    /// Fails only if the value's own serialization fails (see [`encode`](crate::codec::encode)).
    pub fn encode<T: Codable>(value: &T) -> Result<Self, ProtocolError> {
        spare::with_buffer(|mut buffer, arena| {
            buffer.resize(HEADER_LEN, 0);
            encode_into(value, buffer, arena).map(Self)
        })
    }

    /// The archive.
    pub fn archive(&self) -> &[u8] {
        &self.0[HEADER_LEN..]
    }

    /// The archive's length in bytes.
    pub fn len(&self) -> usize {
        self.0.len() - HEADER_LEN
    }

    /// Whether the archive is empty.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Pads the archive with zeros to `len` bytes, then appends `bytes`.
    pub(crate) fn pad_and_extend(&mut self, len: usize, bytes: &[&[u8]]) {
        self.0.resize(HEADER_LEN + len, 0);
        for bytes in bytes {
            self.0.extend_from_slice(bytes);
        }
    }

    /// The complete frame: `header` then the archive, compressed when `compression` says
    /// it pays. The header's `body_len` and compressed flag are set here.
    #[inline]
    pub fn frame(
        mut self,
        header: FrameHeader,
        compression: Compression,
    ) -> Result<Vec<u8>, ProtocolError> {
        if let Some(packed) = compression.compress(self.archive()) {
            spare::give_back(self.0);
            return assemble(header, header.flags | FLAG_COMPRESSED, &packed);
        }
        let header = header_of(header, self.len(), header.flags & !FLAG_COMPRESSED)?;
        self.0[..HEADER_LEN].copy_from_slice(&header);
        Ok(self.0)
    }
}

/// An empty archive.
impl Default for Body {
    fn default() -> Self {
        Self(vec![0; HEADER_LEN])
    }
}

impl std::fmt::Debug for Body {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_tuple("Body").field(&self.len()).finish()
    }
}

/// Builds a complete frame from an archive held elsewhere: header then body, compressed
/// when `compression` says it pays. [`Body::frame`] frames an archive without copying it.
///
/// The header's `body_len` and compressed flag are set here.
///
/// ```
/// use hardlight_core::{frame::{FrameHeader, Kind}, message::encode_frame, Compression};
/// let frame = encode_frame(FrameHeader::new(Kind::Call, 0).with_id(1), b"abc", Compression::None).unwrap();
/// assert_eq!(frame.len(), hardlight_core::frame::HEADER_LEN + 3);
/// ```
pub fn encode_frame(
    header: FrameHeader,
    body: &[u8],
    compression: Compression,
) -> Result<Vec<u8>, ProtocolError> {
    match compression.compress(body) {
        Some(packed) => assemble(header, header.flags | FLAG_COMPRESSED, &packed),
        None => assemble(header, header.flags & !FLAG_COMPRESSED, body),
    }
}

/// `header` (with `body_len` set, and `flags`) then `body`.
fn assemble(header: FrameHeader, flags: u8, body: &[u8]) -> Result<Vec<u8>, ProtocolError> {
    let header = header_of(header, body.len(), flags)?;
    let mut out = Vec::with_capacity(HEADER_LEN + body.len());
    out.extend_from_slice(&header);
    out.extend_from_slice(body);
    Ok(out)
}

/// The encoded `header` of a body of `len` bytes, with `flags`.
fn header_of(
    header: FrameHeader,
    len: usize,
    flags: u8,
) -> Result<[u8; HEADER_LEN], ProtocolError> {
    let body_len = u32::try_from(len).map_err(|_| ProtocolError::FrameTooLarge {
        len: len as u64,
        max: u32::MAX,
    })?;
    Ok(FrameHeader {
        body_len,
        flags,
        ..header
    }
    .encode())
}

/// Turns a received body into the aligned archive bytes: decompressed (bounded by `max`)
/// when flagged, which is only allowed if compression was negotiated.
pub fn open_body(
    header: &FrameHeader,
    raw: &[u8],
    compression_negotiated: bool,
    max: u32,
) -> Result<Bytes, ProtocolError> {
    if !header.is_compressed() {
        return Ok(realign(raw));
    }
    if !compression_negotiated {
        return Err(ProtocolError::CompressionNotNegotiated);
    }
    compression::decompress(raw, max)
}

/// [`Received::open`] for a body already read into an aligned buffer of its own.
pub fn open_aligned_body(
    header: &FrameHeader,
    raw: Bytes,
    compression_negotiated: bool,
    max: u32,
) -> Result<Bytes, ProtocolError> {
    Received::Aligned(raw)
        .open(header, compression_negotiated, max)
        .map(Received::into_aligned)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{
        codec::{decode, encode},
        frame::{FrameHeader, Kind},
    };

    /// Values whose archives pad for alignment: the frame header's room must not move
    /// the padding, which counts from the archive's start.
    #[test]
    fn a_body_archives_as_encode_does() {
        type Value = (u8, Vec<u64>, String, Option<(u16, u128)>);
        for value in [
            (
                1u8,
                vec![2u64, 3],
                String::from("four"),
                Some((5u16, 6u128)),
            ),
            (0, Vec::new(), String::new(), None),
            (7, vec![8; 100], "x".repeat(1000), Some((9, u128::MAX))),
        ] {
            let body = Body::encode(&value).unwrap();
            assert_eq!(body.archive(), &encode(&value).unwrap()[..]);
            let frame = body
                .frame(
                    FrameHeader::new(Kind::ReplyOk, 0).with_id(3),
                    Compression::None,
                )
                .unwrap();
            let (header, archive) = FrameHeader::split(&frame, u32::MAX).unwrap();
            assert_eq!((header.kind, header.id), (Kind::ReplyOk, 3));
            assert_eq!(decode::<Value>(archive).unwrap(), value);
        }
    }

    #[test]
    fn a_body_that_pays_to_compress_is_framed_compressed() {
        let body = Body::encode(&vec![0u8; 64 * 1024]).unwrap();
        let compression = Compression::Zstd {
            level: 1,
            min_size: 1024,
        };
        let frame = body
            .frame(FrameHeader::new(Kind::ReplyOk, 0), compression)
            .unwrap();
        let (header, raw) = FrameHeader::split(&frame, u32::MAX).unwrap();
        assert!(header.is_compressed() && raw.len() < 1024);
        let opened = open_body(&header, raw, true, u32::MAX).unwrap();
        assert_eq!(decode::<Vec<u8>>(&opened).unwrap(), vec![0u8; 64 * 1024]);
    }
}
