//! Raw byte streams over streaming calls, for bulk transfer: a stream of byte chunks read
//! as an [`AsyncRead`], an `AsyncRead` sent as chunks, a pipe whose writing half becomes a
//! call's stream, and per-operation deadlines for any of them ([`WithDeadline`]).
//!
//! ```
//! # #[tokio::main(flavor = "current_thread")] async fn main() -> std::io::Result<()> {
//! use hardlight_core::{byte_stream::{byte_pipe, byte_reader}, HandlerError};
//! use futures_util::StreamExt;
//! use tokio::io::{AsyncReadExt, AsyncWriteExt};
//! let (mut writer, chunks) = byte_pipe(64 * 1024);
//! tokio::spawn(async move {
//!     writer.write_all(b"raw bytes").await?;
//!     writer.shutdown().await
//! });
//! // on the other side of a call, the chunks are read back as bytes
//! let mut reader = byte_reader(chunks.map(Ok::<_, HandlerError>));
//! let mut received = String::new();
//! reader.read_to_string(&mut received).await?;
//! assert_eq!(received, "raw bytes");
//! # Ok(()) }
//! ```

use std::{
    fmt,
    future::Future,
    io,
    pin::Pin,
    task::{Context, Poll},
    time::Duration,
};

use futures_util::{Stream, StreamExt};
use tokio::io::{AsyncRead, AsyncWrite, DuplexStream, ReadBuf};
use tokio_util::io::{ReaderStream, StreamReader};

use crate::{stream::Streaming, HandlerError};

/// Chunks of at most this size when an `AsyncRead` is sent as a stream: 64 KiB.
pub const CHUNK: usize = 64 * 1024;

/// Reads a stream of byte chunks as bytes; an `Err` chunk is an [`io::Error`] of kind
/// `Other` carrying its message.
pub fn byte_reader<E: fmt::Display>(
    chunks: impl Stream<Item = Result<Vec<u8>, E>> + Send + 'static,
) -> impl AsyncRead + Send + Unpin {
    StreamReader::new(Box::pin(chunks.map(|chunk| {
        chunk
            .map(io::Cursor::new)
            .map_err(|error| io::Error::other(error.to_string()))
    })))
}

/// The bytes of `reader` as a stream of chunks of at most [`CHUNK`] bytes.
pub fn byte_chunks(
    reader: impl AsyncRead + Send + 'static,
) -> impl Stream<Item = io::Result<Vec<u8>>> + Send {
    ReaderStream::with_capacity(reader, CHUNK).map(|chunk| chunk.map(|bytes| bytes.to_vec()))
}

/// A pipe: what is written to its writing half comes out of the stream as chunks,
/// `capacity` bytes at most in between (a writer waits while the pipe is full); shutting
/// the writer down ends the stream. Give the stream to a call that takes `Streaming<Vec<u8>>`.
pub fn byte_pipe(capacity: usize) -> (DuplexStream, impl Stream<Item = Vec<u8>> + Send + 'static) {
    let (writer, reader) = tokio::io::duplex(capacity.max(1));
    let chunks = byte_chunks(reader).take_while(|chunk| std::future::ready(chunk.is_ok()));
    (
        writer,
        chunks.filter_map(|chunk| std::future::ready(chunk.ok())),
    )
}

impl Streaming<Vec<u8>> {
    /// The bytes of `reader`, sent as chunks of at most [`CHUNK`] bytes; a read error
    /// ends the call with the handler's error.
    pub fn from_reader(reader: impl AsyncRead + Send + 'static) -> Self {
        Self::try_new(
            byte_chunks(reader).map(|chunk| chunk.map_err(|e| HandlerError::new(e.to_string()))),
        )
    }

    /// The chunks read as bytes.
    pub fn into_reader(self) -> impl AsyncRead + Send + Unpin {
        byte_reader(self)
    }
}

pin_project_lite::pin_project! {
    /// An `AsyncRead` / `AsyncWrite` whose every operation — one read, one write, a flush,
    /// a shutdown — must complete within its deadline, or fails with
    /// [`io::ErrorKind::TimedOut`]. The clock of an operation starts when it first has to
    /// wait.
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")] async fn main() {
    /// use std::time::Duration;
    /// use hardlight_core::byte_stream::WithDeadline;
    /// use tokio::io::AsyncReadExt;
    /// let (_writer, reader) = tokio::io::duplex(16);
    /// let mut reader = WithDeadline::new(reader).with_read_timeout(Duration::from_millis(10));
    /// let error = reader.read(&mut [0; 8]).await.unwrap_err();
    /// assert_eq!(error.kind(), std::io::ErrorKind::TimedOut);
    /// # }
    /// ```
    #[derive(Debug)]
    pub struct WithDeadline<T> {
        #[pin]
        inner: T,
        read_timeout: Option<Duration>,
        write_timeout: Option<Duration>,
        waiting: Option<Pin<Box<tokio::time::Sleep>>>,
    }
}

impl<T> WithDeadline<T> {
    /// `inner`, without deadlines yet.
    pub fn new(inner: T) -> Self {
        Self {
            inner,
            read_timeout: None,
            write_timeout: None,
            waiting: None,
        }
    }

    /// Each read must complete within `timeout`.
    pub fn with_read_timeout(mut self, timeout: Duration) -> Self {
        self.read_timeout = Some(timeout);
        self
    }

    /// Each write, flush and shutdown must complete within `timeout`.
    pub fn with_write_timeout(mut self, timeout: Duration) -> Self {
        self.write_timeout = Some(timeout);
        self
    }

    /// The wrapped reader or writer.
    pub fn into_inner(self) -> T {
        self.inner
    }
}

/// Polls one operation under `timeout`: `Ready` ends it (and its clock), `Pending` starts
/// its clock if it has none, and a clock run out fails it.
fn within<R>(
    waiting: &mut Option<Pin<Box<tokio::time::Sleep>>>,
    timeout: Option<Duration>,
    cx: &mut Context<'_>,
    poll: Poll<io::Result<R>>,
) -> Poll<io::Result<R>> {
    let Some(timeout) = timeout else {
        return poll;
    };
    if poll.is_ready() {
        *waiting = None;
        return poll;
    }
    let clock = waiting.get_or_insert_with(|| Box::pin(tokio::time::sleep(timeout)));
    match clock.as_mut().poll(cx) {
        Poll::Ready(()) => {
            *waiting = None;
            Poll::Ready(Err(io::Error::new(
                io::ErrorKind::TimedOut,
                format!("the operation took longer than its deadline ({timeout:?})"),
            )))
        }
        Poll::Pending => Poll::Pending,
    }
}

impl<T: AsyncRead> AsyncRead for WithDeadline<T> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.project();
        let poll = this.inner.poll_read(cx, buf);
        within(this.waiting, *this.read_timeout, cx, poll)
    }
}

impl<T: AsyncWrite> AsyncWrite for WithDeadline<T> {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let this = self.project();
        let poll = this.inner.poll_write(cx, buf);
        within(this.waiting, *this.write_timeout, cx, poll)
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = self.project();
        let poll = this.inner.poll_flush(cx);
        within(this.waiting, *this.write_timeout, cx, poll)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = self.project();
        let poll = this.inner.poll_shutdown(cx);
        within(this.waiting, *this.write_timeout, cx, poll)
    }
}
