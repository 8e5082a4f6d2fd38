//! Reading whole frames from an async byte stream (a QUIC stream, a TCP socket).
//!
//! This opens no socket and spawns no task: it only pulls bytes from whatever
//! `AsyncRead` the runtime crates hand it into a [`FrameDecoder`], which checks the size
//! limit before anything is allocated for the body and grows the body with the bytes that
//! arrive.

use std::{
    future::poll_fn,
    pin::Pin,
    task::{ready, Context, Poll},
};

use tokio::io::{AsyncRead, AsyncReadExt, ReadBuf};

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

impl ReadError {
    /// A stream ended where `decoder` is: finished between frames, cut short inside one.
    pub fn ended(decoder: &FrameDecoder) -> Self {
        let got = decoder.received();
        if got == 0 {
            return Self::Finished;
        }
        let expected = decoder
            .header()
            .map_or(HEADER_LEN, |header| HEADER_LEN + header.body_len as usize);
        Self::Protocol(ProtocolError::Truncated {
            expected: expected as u64,
            got: got as u64,
        })
    }
}

/// Reads one frame: the header, checked against `max_body`, then exactly its body
/// (still compressed if flagged; see [`crate::received::Received::open`]).
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
    loop {
        if let Some(frame) = decoder.take() {
            return Ok(frame);
        }
        read_some(reader, &mut decoder).await?;
    }
}

/// One read into the decoder's buffer.
async fn read_some<R: AsyncRead + Unpin + ?Sized>(
    reader: &mut R,
    decoder: &mut FrameDecoder,
) -> Result<(), ReadError> {
    let n = reader.read(decoder.buffer()).await?;
    if n == 0 {
        return Err(ReadError::ended(decoder));
    }
    Ok(decoder.filled(n)?)
}

/// Bytes read ahead at a time from a stream that carries many frames.
const READ_AHEAD: usize = 4 * 1024;

/// Reads the frames of a stream that carries many, one after another (a QUIC call
/// channel): small frames are read ahead, several per read, and a large body straight
/// into its buffer. Reading is cancel-safe: a read dropped before it completes loses no
/// bytes, and the next one goes on where it stopped. The read-ahead buffer is held only
/// while bytes arrive: waiting on a quiet stream, the reader holds none.
///
/// ```
/// use hardlight_core::{frame::{FrameHeader, Kind}, io::{FrameReader, ReadError}, message::encode_frame, Compression};
/// # let waker = std::task::Waker::noop();
/// # let mut cx = std::task::Context::from_waker(&waker);
/// # let mut fut = std::pin::pin!(async {
/// let mut input = Vec::new();
/// for id in 1..=2 {
///     let header = FrameHeader::new(Kind::Call, 0).with_id(id);
///     input.extend(encode_frame(header, b"hi", Compression::None).unwrap());
/// }
/// let mut input = &input[..];
/// let mut reader = FrameReader::new(1024);
/// assert_eq!(reader.next(&mut input).await.unwrap().0.id, 1);
/// assert_eq!(reader.next(&mut input).await.unwrap().0.id, 2);
/// assert!(matches!(reader.next(&mut input).await, Err(ReadError::Finished)));
/// # });
/// # assert!(std::future::Future::poll(fut.as_mut(), &mut cx).is_ready());
/// ```
#[derive(Debug)]
pub struct FrameReader {
    decoder: FrameDecoder,
    /// `ahead[start..end]` was read and not yet decoded; empty (unallocated) while the
    /// stream is quiet.
    ahead: Box<[u8]>,
    start: usize,
    end: usize,
}

impl FrameReader {
    /// A reader refusing bodies above `max_body` bytes.
    pub fn new(max_body: u32) -> Self {
        Self {
            decoder: FrameDecoder::new(max_body),
            ahead: Box::default(),
            start: 0,
            end: 0,
        }
    }

    /// Whether bytes arrived that no whole frame has used up yet: a frame is on its way.
    pub fn partial(&self) -> bool {
        self.decoder.received() > 0 || self.start < self.end
    }

    /// The next frame from `reader` (still compressed if flagged).
    pub async fn next<R: AsyncRead + Unpin + ?Sized>(
        &mut self,
        reader: &mut R,
    ) -> Result<(FrameHeader, Bytes), ReadError> {
        poll_fn(|cx| self.poll_next(cx, reader)).await
    }

    /// Polls for the next frame from `reader`.
    pub fn poll_next<R: AsyncRead + Unpin + ?Sized>(
        &mut self,
        cx: &mut Context<'_>,
        reader: &mut R,
    ) -> Poll<Result<(FrameHeader, Bytes), ReadError>> {
        loop {
            if self.start < self.end {
                let mut input = &self.ahead[self.start..self.end];
                let before = input.len();
                let frame = self.decoder.feed(&mut input);
                self.start += before - input.len();
                if let Some(frame) = frame? {
                    return Poll::Ready(Ok(frame));
                }
            } else if let Some(frame) = self.decoder.take() {
                return Poll::Ready(Ok(frame));
            }
            // everything read ahead is decoded
            let remaining = self
                .decoder
                .header()
                .map(|header| HEADER_LEN + header.body_len as usize - self.decoder.received());
            let n = if remaining.is_some_and(|n| n >= READ_AHEAD) {
                let mut buffer = ReadBuf::new(self.decoder.buffer());
                ready!(Pin::new(&mut *reader).poll_read(cx, &mut buffer))?;
                let n = buffer.filled().len();
                self.decoder.filled(n)?;
                n
            } else {
                if self.ahead.is_empty() {
                    self.ahead = vec![0; READ_AHEAD].into_boxed_slice();
                }
                let mut buffer = ReadBuf::new(&mut self.ahead);
                let read = Pin::new(&mut *reader).poll_read(cx, &mut buffer);
                let n = buffer.filled().len();
                match read {
                    Poll::Ready(read) => read?,
                    Poll::Pending => {
                        // nothing is buffered: a quiet stream holds no read-ahead memory
                        self.ahead = Box::default();
                        return Poll::Pending;
                    }
                }
                (self.start, self.end) = (0, n);
                n
            };
            if n == 0 {
                return Poll::Ready(Err(ReadError::ended(&self.decoder)));
            }
        }
    }
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

    /// Hands out its bytes `step` at a time, pending before every other read.
    struct Trickle<'a> {
        bytes: &'a [u8],
        step: usize,
        pend: bool,
    }

    impl AsyncRead for Trickle<'_> {
        fn poll_read(
            mut self: Pin<&mut Self>,
            cx: &mut Context<'_>,
            buf: &mut ReadBuf<'_>,
        ) -> Poll<std::io::Result<()>> {
            self.pend = !self.pend;
            if self.pend {
                cx.waker().wake_by_ref();
                return Poll::Pending;
            }
            let n = self.step.min(self.bytes.len()).min(buf.remaining());
            buf.put_slice(&self.bytes[..n]);
            self.bytes = &self.bytes[n..];
            Poll::Ready(Ok(()))
        }
    }

    #[test]
    fn a_reader_dropped_while_pending_loses_nothing() {
        use crate::{message::encode_frame, Compression};
        let mut stream = Vec::new();
        let bodies = [0, 5, READ_AHEAD - 30, 3 * READ_AHEAD + 7, 1];
        for (id, len) in bodies.iter().enumerate() {
            let header = FrameHeader::new(Kind::Call, 0).with_id(id as u64);
            stream.extend(encode_frame(header, &vec![id as u8; *len], Compression::None).unwrap());
        }
        for step in [1, 13, READ_AHEAD, stream.len()] {
            let mut input = Trickle {
                bytes: &stream,
                step,
                pend: false,
            };
            let mut reader = FrameReader::new(1 << 20);
            let waker = std::task::Waker::noop();
            let mut cx = Context::from_waker(waker);
            let mut got = Vec::new();
            loop {
                // a new read each poll: what a `select!` that loses the race does
                match reader.poll_next(&mut cx, &mut input) {
                    Poll::Pending => continue,
                    Poll::Ready(Ok((header, body))) => {
                        assert!(body.iter().all(|b| *b == header.id as u8));
                        got.push(body.len());
                    }
                    Poll::Ready(Err(ReadError::Finished)) => break,
                    Poll::Ready(Err(error)) => panic!("{error}"),
                }
            }
            assert_eq!(got, bodies, "step {step}");
            assert!(!reader.partial());
        }
    }

    #[test]
    fn a_channel_that_ends_mid_frame_is_truncated() {
        let mut frame = FrameHeader::new(Kind::Call, 10).encode().to_vec();
        frame.extend_from_slice(&[1, 2, 3]);
        let mut reader = FrameReader::new(100);
        let err = block_on(reader.next(&mut &frame[..])).unwrap_err();
        assert!(matches!(
            err,
            ReadError::Protocol(ProtocolError::Truncated {
                expected: 34,
                got: 27
            })
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
