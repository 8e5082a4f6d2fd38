//! Reading whole frames from an async byte stream (a QUIC stream, a TCP socket).
//!
//! This opens no socket and spawns no task: it only pulls bytes from whatever
//! `AsyncRead` the runtime crates hand it into a [`FrameDecoder`], which checks the size
//! limit before anything is allocated for the body and grows the body with the bytes that
//! arrive.

use tokio::io::{AsyncRead, AsyncReadExt};

use crate::{
    codec::Bytes,
    decoder::FrameDecoder,
    error::ProtocolError,
    frame::{FrameHeader, HEADER_LEN},
};

/// Why reading a frame stopped.
#[derive(Debug, thiserror::Error)]
pub enum ReadError {
    /// The stream ended cleanly before the first byte of a frame.
    #[error("stream finished")]
    Finished,
    /// The bytes violate the protocol (including a stream that ends mid-frame).
    #[error(transparent)]
    Protocol(#[from] ProtocolError),
    /// The transport failed (reset, connection lost).
    #[error("transport: {0}")]
    Io(#[from] std::io::Error),
}

/// Reads one frame: the header, checked against `max_body`, then exactly its body
/// (still compressed if flagged; see [`crate::message::open_aligned_body`]).
///
/// ```
/// use hardlight_core::{frame::{FrameHeader, Kind}, io::{read_frame, ReadError}, message::encode_frame, Compression};
/// # let waker = std::task::Waker::noop();
/// # let mut cx = std::task::Context::from_waker(&waker);
/// # let mut fut = std::pin::pin!(async {
/// let frame = encode_frame(FrameHeader::new(Kind::Call, 0), b"hi", Compression::None).unwrap();
/// let mut input = &frame[..];
/// let (header, body) = read_frame(&mut input, 1024).await.unwrap();
/// assert_eq!((header.kind, &body[..]), (Kind::Call, &b"hi"[..]));
/// assert!(matches!(read_frame(&mut input, 1024).await, Err(ReadError::Finished)));
/// # });
/// # assert!(std::future::Future::poll(fut.as_mut(), &mut cx).is_ready());
/// ```
pub async fn read_frame<R: AsyncRead + Unpin + ?Sized>(
    reader: &mut R,
    max_body: u32,
) -> Result<(FrameHeader, Bytes), ReadError> {
    let mut decoder = FrameDecoder::new(max_body);
    read_header(reader, &mut decoder).await?;
    read_rest(reader, &mut decoder).await
}

/// Reads into `decoder` until its frame's header is whole and checked, and returns it;
/// nothing is allocated for the body yet.
pub async fn read_header<R: AsyncRead + Unpin + ?Sized>(
    reader: &mut R,
    decoder: &mut FrameDecoder,
) -> Result<FrameHeader, ReadError> {
    loop {
        if let Some(header) = decoder.header() {
            return Ok(*header);
        }
        read_some(reader, decoder).await?;
    }
}

/// Reads into `decoder` until its frame is whole.
pub async fn read_rest<R: AsyncRead + Unpin + ?Sized>(
    reader: &mut R,
    decoder: &mut FrameDecoder,
) -> Result<(FrameHeader, Bytes), ReadError> {
    loop {
        if let Some(frame) = decoder.take() {
            return Ok(frame);
        }
        read_some(reader, decoder).await?;
    }
}

/// One read into the decoder's buffer.
async fn read_some<R: AsyncRead + Unpin + ?Sized>(
    reader: &mut R,
    decoder: &mut FrameDecoder,
) -> Result<(), ReadError> {
    let n = reader.read(decoder.buffer()).await?;
    if n == 0 {
        return Err(match decoder.received() {
            0 => ReadError::Finished,
            got => truncated(decoder, got),
        });
    }
    Ok(decoder.filled(n)?)
}

fn truncated(decoder: &FrameDecoder, got: usize) -> ReadError {
    let expected = decoder
        .header()
        .map_or(HEADER_LEN, |h| HEADER_LEN + h.body_len as usize);
    ReadError::Protocol(ProtocolError::Truncated {
        expected: expected as u64,
        got: got as u64,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::frame::Kind;

    fn block_on<F: std::future::Future>(f: F) -> F::Output {
        let waker = std::task::Waker::noop();
        let mut cx = std::task::Context::from_waker(waker);
        let mut f = std::pin::pin!(f);
        loop {
            if let std::task::Poll::Ready(v) = f.as_mut().poll(&mut cx) {
                return v;
            }
        }
    }

    #[test]
    fn truncated_body_and_header() {
        let mut frame = FrameHeader::new(Kind::Call, 10).encode().to_vec();
        frame.extend_from_slice(&[1, 2, 3]);
        let err = block_on(read_frame(&mut &frame[..], 100)).unwrap_err();
        assert!(matches!(
            err,
            ReadError::Protocol(ProtocolError::Truncated {
                expected: 34,
                got: 27
            })
        ));
        let err = block_on(read_frame(&mut &frame[..5], 100)).unwrap_err();
        assert!(matches!(
            err,
            ReadError::Protocol(ProtocolError::Truncated { .. })
        ));
    }

    #[test]
    fn oversized_is_refused_before_reading_body() {
        let frame = FrameHeader::new(Kind::Call, u32::MAX).encode();
        let err = block_on(read_frame(&mut &frame[..], 1 << 20)).unwrap_err();
        assert!(matches!(
            err,
            ReadError::Protocol(ProtocolError::FrameTooLarge { .. })
        ));
    }
}
