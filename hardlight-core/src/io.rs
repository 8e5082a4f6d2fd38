//! Reading whole frames from an async byte stream (a QUIC stream, a TCP socket).
//!
//! This opens no socket and spawns no task: it only pulls bytes from whatever
//! `AsyncRead` the runtime crates hand it, checking the size limit before the body
//! buffer is allocated.

use tokio::io::{AsyncRead, AsyncReadExt};

use crate::{
    codec::Bytes,
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
    let header = read_header(reader, max_body).await?;
    let body = read_body(reader, &header).await?;
    Ok((header, body))
}

/// Reads and checks one frame header; nothing is allocated for the body yet.
pub async fn read_header<R: AsyncRead + Unpin + ?Sized>(
    reader: &mut R,
    max_body: u32,
) -> Result<FrameHeader, ReadError> {
    let mut head = [0u8; HEADER_LEN];
    match fill(reader, &mut head).await? {
        0 => Err(ReadError::Finished),
        HEADER_LEN => Ok(FrameHeader::parse(&head, max_body)?),
        got => Err(truncated(HEADER_LEN, got)),
    }
}

/// Reads exactly the body announced by `header` (already checked by [`read_header`]).
pub async fn read_body<R: AsyncRead + Unpin + ?Sized>(
    reader: &mut R,
    header: &FrameHeader,
) -> Result<Bytes, ReadError> {
    let len = header.body_len as usize;
    let mut body = Bytes::with_capacity(len);
    body.resize(len, 0);
    let got = fill(reader, &mut body[..]).await?;
    if got < len {
        return Err(truncated(HEADER_LEN + len, HEADER_LEN + got));
    }
    Ok(body)
}

fn truncated(expected: usize, got: usize) -> ReadError {
    ReadError::Protocol(ProtocolError::Truncated {
        expected: expected as u64,
        got: got as u64,
    })
}

/// Reads until `buf` is full or the stream ends; returns how much was read.
async fn fill<R: AsyncRead + Unpin + ?Sized>(
    reader: &mut R,
    buf: &mut [u8],
) -> Result<usize, std::io::Error> {
    let mut filled = 0;
    while filled < buf.len() {
        match reader.read(&mut buf[filled..]).await? {
            0 => break,
            n => filled += n,
        }
    }
    Ok(filled)
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
