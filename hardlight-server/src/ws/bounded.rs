//! A byte budget on what a peer may make the server read before it is known: the HTTP
//! upgrade (which tungstenite does not bound) and then the `Hello`; and, for the
//! connection's life, whether bytes arrived that no whole message has used up yet (for
//! `Limits::frame_read_timeout`).

use std::{
    io,
    pin::Pin,
    sync::{
        atomic::{AtomicBool, AtomicUsize, Ordering},
        Arc,
    },
    task::{ready, Context, Poll},
};

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

/// Passes bytes through, failing reads once more than the budget has been read; lift the
/// budget (with [`Budget::lift`]) once the upgrade is done.
#[derive(Debug)]
pub(crate) struct Bounded<S> {
    inner: S,
    budget: Budget,
}

/// The shared budget of a [`Bounded`] stream, and its arrivals.
#[derive(Debug, Clone)]
pub(crate) struct Budget(Arc<Shared>);

#[derive(Debug)]
struct Shared {
    left: AtomicUsize,
    /// Bytes were read since [`Budget::message_read`] was last called.
    arrived: AtomicBool,
}

impl Budget {
    /// Allows `bytes` more to be read from now on.
    pub(crate) fn reset(&self, bytes: usize) {
        self.0.left.store(bytes, Ordering::Release);
    }

    /// Removes the limit.
    pub(crate) fn lift(&self) {
        self.0.left.store(usize::MAX, Ordering::Release);
    }

    /// A whole message was read: the bytes so far are accounted for.
    pub(crate) fn message_read(&self) {
        self.0.arrived.store(false, Ordering::Relaxed);
    }

    /// Whether bytes arrived since the last whole message: the peer is in the middle of
    /// one.
    pub(crate) fn partial(&self) -> bool {
        self.0.arrived.load(Ordering::Relaxed)
    }
}

impl<S> Bounded<S> {
    pub(crate) fn new(inner: S, limit: usize) -> (Self, Budget) {
        let budget = Budget(Arc::new(Shared {
            left: AtomicUsize::new(limit),
            arrived: AtomicBool::new(false),
        }));
        (
            Self {
                inner,
                budget: budget.clone(),
            },
            budget,
        )
    }
}

impl<S: AsyncRead + Unpin> AsyncRead for Bounded<S> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        let before = buf.filled().len();
        ready!(Pin::new(&mut this.inner).poll_read(cx, buf))?;
        let read = buf.filled().len() - before;
        if read > 0 {
            this.budget.0.arrived.store(true, Ordering::Relaxed);
        }
        let remaining = this.budget.0.left.load(Ordering::Acquire);
        if remaining == usize::MAX {
            return Poll::Ready(Ok(()));
        }
        match remaining.checked_sub(read) {
            Some(left) => {
                this.budget.0.left.store(left, Ordering::Release);
                Poll::Ready(Ok(()))
            }
            None => Poll::Ready(Err(io::Error::new(
                io::ErrorKind::InvalidData,
                "WebSocket upgrade request exceeds its size limit",
            ))),
        }
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for Bounded<S> {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.get_mut().inner).poll_write(cx, buf)
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_shutdown(cx)
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.get_mut().inner).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }
}
