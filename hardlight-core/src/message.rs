//! Assembling frames for sending and opening received bodies.

use crate::{
    codec::{realign, Bytes},
    compression::{self, Compression},
    error::ProtocolError,
    frame::{FrameHeader, FLAG_COMPRESSED, HEADER_LEN},
};

/// Builds a complete frame: header then body, compressed when `compression` says it pays.
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
    let packed = compression.compress(body);
    let (body, flags) = match &packed {
        Some(packed) => (&packed[..], header.flags | FLAG_COMPRESSED),
        None => (body, header.flags & !FLAG_COMPRESSED),
    };
    let body_len = u32::try_from(body.len()).map_err(|_| ProtocolError::FrameTooLarge {
        len: body.len() as u64,
        max: u32::MAX,
    })?;
    let mut out = Vec::with_capacity(HEADER_LEN + body.len());
    out.extend_from_slice(
        &FrameHeader {
            body_len,
            flags,
            ..header
        }
        .encode(),
    );
    out.extend_from_slice(body);
    Ok(out)
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

/// Like [`open_body`] for a body already read into an aligned buffer: avoids a copy when
/// it is not compressed.
pub fn open_aligned_body(
    header: &FrameHeader,
    raw: Bytes,
    compression_negotiated: bool,
    max: u32,
) -> Result<Bytes, ProtocolError> {
    if header.is_compressed() {
        open_body(header, &raw, compression_negotiated, max)
    } else {
        Ok(raw)
    }
}
