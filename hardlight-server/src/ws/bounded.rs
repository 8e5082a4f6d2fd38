//! A byte budget on what a peer may make the server read before it is known: the HTTP
//! upgrade (which tungstenite does not bound) and then the `Hello`.

use std::{
    io,
    pin::Pin,
    sync::{
        atomic::{AtomicUsize, Ordering},
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

/// The shared budget of a [`Bounded`] stream: the bytes it may still read.
#[derive(Debug, Clone)]
pub(crate) struct Budget(Arc<AtomicUsize>);

impl Budget {
    /// Allows `bytes` more to be read from now on.
    pub(crate) fn reset(&self, bytes: usize) {
        self.0.store(bytes, Ordering::Release);
    }

    /// Removes the limit.
    pub(crate) fn lift(&self) {
        self.0.store(usize::MAX, Ordering::Release);
    }
}

impl<S> Bounded<S> {
    pub(crate) fn new(inner: S, limit: usize) -> (Self, Budget) {
        let budget = Budget(Arc::new(AtomicUsize::new(limit)));
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
        let remaining = this.budget.0.load(Ordering::Acquire);
        if remaining == usize::MAX {
            return Poll::Ready(Ok(()));
        }
        match remaining.checked_sub(read) {
            Some(left) => {
                this.budget.0.store(left, Ordering::Release);
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
