//! zstd compression of frame bodies, with bounded decompression.

use crate::{codec::Bytes, error::ProtocolError};

/// Largest zstd window a peer may ask us to allocate when decompressing (2^20 = 1 MiB).
///
/// Frames produced by HardLight's compressor stay within it; a frame that needs a larger
/// window is refused instead of allocating what the peer asked for.
pub const MAX_WINDOW_LOG: u32 = 20;

/// Wire identifier of zstd in the handshake's compression offers.
pub const ZSTD: u8 = 1;

/// Whether and how to compress message bodies.
///
/// Compression is negotiated in the handshake: it is used only when both sides offer it.
///
/// ```
/// use hardlight_core::Compression;
/// let c = Compression::default();
/// assert!(matches!(c, Compression::Zstd { .. }));
/// assert!(Compression::None.offers().is_empty());
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Compression {
    /// Never compress; do not offer compression.
    None,
    /// zstd at `level` for bodies of at least `min_size` bytes, kept only when smaller.
    Zstd {
        /// zstd level (1 is fastest; 3 is zstd's default).
        level: i32,
        /// Bodies smaller than this are sent as they are.
        min_size: usize,
    },
}

impl Default for Compression {
    /// zstd level 1 for bodies of 1 KiB or more, when this build has zstd; otherwise none.
    fn default() -> Self {
        if cfg!(feature = "zstd") {
            Self::Zstd {
                level: 1,
                min_size: 1024,
            }
        } else {
            Self::None
        }
    }
}

impl Compression {
    /// The algorithm ids this setting offers in the handshake.
    pub fn offers(&self) -> Vec<u8> {
        match self {
            Self::Zstd { .. } if cfg!(feature = "zstd") => vec![ZSTD],
            _ => Vec::new(),
        }
    }

    /// Whether a body of `len` bytes is compressed (if that pays).
    #[inline]
    pub fn applies_to(&self, len: usize) -> bool {
        match *self {
            Self::Zstd { min_size, .. } => cfg!(feature = "zstd") && len >= min_size,
            Self::None => false,
        }
    }

    /// Compresses `body` if this setting says so and it pays; returns `None` to send it as is.
    #[inline] // most calls compress nothing: a comparison where the frame is built
    pub fn compress(&self, body: &[u8]) -> Option<Vec<u8>> {
        match *self {
            Self::Zstd { level, .. } if self.applies_to(body.len()) => {
                compress_zstd(body, level).filter(|c| c.len() < body.len())
            }
            _ => None,
        }
    }
}

#[cfg(feature = "zstd")]
fn compress_zstd(body: &[u8], level: i32) -> Option<Vec<u8>> {
    use zstd::zstd_safe::CParameter;
    let mut compressor = zstd::bulk::Compressor::new(level).ok()?;
    compressor
        .set_parameter(CParameter::WindowLog(MAX_WINDOW_LOG))
        .ok()?;
    compressor.compress(body).ok()
}

#[cfg(not(feature = "zstd"))]
fn compress_zstd(_body: &[u8], _level: i32) -> Option<Vec<u8>> {
    None
}

/// Decompresses a zstd body into an aligned buffer, failing once it passes `max` bytes.
///
/// Memory is bounded by `max` plus the decoder's window (at most 2^[`MAX_WINDOW_LOG`]),
/// whatever the frame claims.
#[cfg(feature = "zstd")]
pub fn decompress(body: &[u8], max: u32) -> Result<Bytes, ProtocolError> {
    use std::io::Read;
    if let Ok(Some(size)) = zstd::zstd_safe::get_frame_content_size(body) {
        if size > u64::from(max) {
            return Err(ProtocolError::DecompressedTooLarge { max });
        }
    }
    let mut decoder = zstd::stream::read::Decoder::with_buffer(body)
        .map_err(|e| ProtocolError::Compression(e.to_string()))?;
    decoder
        .window_log_max(MAX_WINDOW_LOG)
        .map_err(|e| ProtocolError::Compression(e.to_string()))?;
    let mut out = Bytes::new();
    let mut limited = decoder.take(u64::from(max) + 1);
    let mut chunk = [0u8; 16 * 1024];
    loop {
        let n = limited
            .read(&mut chunk)
            .map_err(|e| ProtocolError::Compression(e.to_string()))?;
        if n == 0 {
            return Ok(out);
        }
        if out.len() + n > max as usize {
            return Err(ProtocolError::DecompressedTooLarge { max });
        }
        out.extend_from_slice(&chunk[..n]);
    }
}

/// Without zstd in this build, compressed bodies are refused.
#[cfg(not(feature = "zstd"))]
pub fn decompress(_body: &[u8], _max: u32) -> Result<Bytes, ProtocolError> {
    Err(ProtocolError::CompressionNotNegotiated)
}

#[cfg(all(test, feature = "zstd"))]
mod tests {
    use super::*;

    #[test]
    fn round_trip_and_bomb() {
        let c = Compression::default();
        let body = vec![7u8; 100_000];
        let packed = c.compress(&body).unwrap();
        assert!(packed.len() < 1000);
        assert_eq!(&decompress(&packed, 100_000).unwrap()[..], &body[..]);
        assert_eq!(
            decompress(&packed, 99_999).unwrap_err(),
            ProtocolError::DecompressedTooLarge { max: 99_999 }
        );
        assert!(c.compress(&[1, 2, 3]).is_none());
    }

    #[test]
    fn bomb_without_content_size_is_bounded() {
        use std::io::Write;
        let mut enc = zstd::stream::write::Encoder::new(Vec::new(), 1).unwrap();
        enc.include_contentsize(false).unwrap();
        enc.write_all(&vec![0u8; 10 << 20]).unwrap();
        let packed = enc.finish().unwrap();
        assert_eq!(
            decompress(&packed, 1 << 20).unwrap_err(),
            ProtocolError::DecompressedTooLarge { max: 1 << 20 }
        );
    }

    #[test]
    fn garbage_is_an_error() {
        assert!(matches!(
            decompress(&[1, 2, 3, 4, 5], 100),
            Err(ProtocolError::Compression(_))
        ));
    }
}
