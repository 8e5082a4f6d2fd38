//! A received frame's body: read into an aligned buffer of its own, or the part of the
//! message it came in (a WebSocket message, a QUIC chunk), shared with the message's
//! other frames.

use std::ops::Deref;

use crate::{
    blob::{Sharing, SHARED_FROM},
    codec::{decode_with, deserialize, realign, Bytes, Codable},
    frame::FrameHeader,
    message::open_body,
    ProtocolError,
};

/// The body of a received frame.
///
/// ```
/// use hardlight_core::{codec::{decode, encode}, received::Received};
/// let archive = encode(&7u32).unwrap();
/// // a body in the middle of its message, wherever that puts it
/// let message = bytes::Bytes::from([&[0u8; 3][..], &archive].concat());
/// let body = Received::Shared(message.slice(3..));
/// assert_eq!(decode::<u32>(&body).unwrap(), 7);
/// ```
#[derive(Debug)]
pub enum Received {
    /// Read into a buffer of its own, aligned for decoding in place.
    Aligned(Bytes),
    /// Where it lies in its message: decoding copies a small one to the stack to align
    /// it, rather than into a buffer allocated for it. It holds the whole message: it is
    /// for bodies decoded before the next message is read.
    Shared(bytes::Bytes),
}

impl Received {
    /// The body in an aligned buffer of its own.
    pub fn into_aligned(self) -> Bytes {
        match self {
            Self::Aligned(body) => body,
            Self::Shared(body) => realign(&body),
        }
    }

    /// The archive the body carries: decompressed into a buffer of its own (bounded by
    /// `max`) when the header says it is compressed, which is only allowed if compression
    /// was negotiated; as it is otherwise.
    #[inline]
    pub fn open(
        self,
        header: &FrameHeader,
        compression_negotiated: bool,
        max: u32,
    ) -> Result<Self, ProtocolError> {
        if header.is_compressed() {
            open_body(header, &self, compression_negotiated, max).map(Self::Aligned)
        } else {
            Ok(self)
        }
    }

    /// Decodes the archive the body holds (as [`decode`](crate::codec::decode) does),
    /// sharing its buffer with the [`Blob`](crate::Blob)s in it of at least
    /// [`SHARED_FROM`] bytes instead of copying them; the rest of the buffer is let go.
    ///
    /// ```
    /// use hardlight_core::{codec::encode, received::Received, Blob};
    /// let archive = encode(&(Blob::from(vec![3u8; 1 << 20]), 5u8)).unwrap();
    /// let (blob, n) = Received::Aligned(archive).decode::<(Blob, u8)>().unwrap();
    /// assert_eq!((blob.len(), n), (1 << 20, 5));
    /// ```
    #[inline] // on every call: most bodies are small, and decoded as `decode` does
    pub fn decode<T: Codable>(self) -> Result<T, ProtocolError> {
        self.decode_with::<T, T>(deserialize)
    }

    /// Validates the archive the body holds and hands it to `read` (as [`decode_with`]
    /// does), sharing the body's buffer with the [`Blob`](crate::Blob)s `read`
    /// deserializes, as [`decode`](Self::decode) does.
    ///
    /// ```
    /// use hardlight_core::{codec::{deserialize, encode}, received::Received, Blob};
    /// let archive = encode(&(5u8, Blob::from(vec![3u8; 1 << 20]))).unwrap();
    /// let blob = Received::Aligned(archive)
    ///     .decode_with::<(u8, Blob), _>(|archived| deserialize::<Blob>(&archived.1))
    ///     .unwrap();
    /// assert_eq!(blob.len(), 1 << 20);
    /// ```
    #[inline]
    pub fn decode_with<T: Codable, R>(
        self,
        read: impl FnOnce(&T::Archived) -> Result<R, ProtocolError>,
    ) -> Result<R, ProtocolError> {
        if self.len() < SHARED_FROM {
            return decode_with::<T, R>(&self, read);
        }
        let (source, _sharing) = self.share();
        decode_with::<T, R>(&source, read)
    }

    /// The body's buffer, named as the one blobs are shared from while the returned
    /// [`Sharing`] lives.
    fn share(self) -> (bytes::Bytes, Sharing) {
        let source = match self {
            Self::Aligned(body) => bytes::Bytes::from_owner(body),
            Self::Shared(body) => body,
        };
        let sharing = Sharing::new(&source);
        (source, sharing)
    }

    /// Keeps the first `len` bytes.
    pub fn truncate(&mut self, len: usize) {
        match self {
            Self::Aligned(body) => body.resize(len.min(body.len()), 0),
            Self::Shared(body) => body.truncate(len),
        }
    }
}

impl Default for Received {
    fn default() -> Self {
        Self::Aligned(Bytes::new())
    }
}

impl Deref for Received {
    type Target = [u8];

    fn deref(&self) -> &[u8] {
        match self {
            Self::Aligned(body) => body,
            Self::Shared(body) => body,
        }
    }
}
