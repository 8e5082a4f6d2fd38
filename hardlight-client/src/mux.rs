//! Calls multiplexed by id over one message channel (WebSocket): ids, the replies they
//! wait for, cancellation of dropped calls, and the in-flight limit. No I/O here: the
//! transport feeds replies in and sends what `out` receives.

use std::{
    collections::HashMap,
    sync::{
        atomic::{AtomicU64, Ordering},
        Arc, Mutex,
    },
};

use hardlight_core::{
    codec::Bytes,
    frame::{FrameHeader, Kind},
    handshake::Welcome,
    message::{encode_frame, open_aligned_body},
    Compression, ProtocolError,
};
use tokio::sync::{mpsc, oneshot, Semaphore};

use crate::{
    config::ClientConfig,
    drain::Drain,
    error::{CallError, TransportError},
    session::check_size,
    sync::lock,
};

type Reply = (FrameHeader, Bytes);

/// The calls of one multiplexed session.
#[derive(Debug)]
pub(crate) struct Mux {
    pending: Mutex<Option<HashMap<u64, oneshot::Sender<Reply>>>>,
    next_id: AtomicU64,
    slots: Semaphore,
    out: mpsc::UnboundedSender<Vec<u8>>,
    closed_reason: Mutex<Option<String>>,
}

impl Mux {
    /// A multiplexer allowing `max_calls` in flight; frames to send go to `out`.
    pub(crate) fn new(max_calls: u32, out: mpsc::UnboundedSender<Vec<u8>>) -> Arc<Self> {
        Arc::new(Self {
            pending: Mutex::new(Some(HashMap::new())),
            next_id: AtomicU64::new(1),
            slots: Semaphore::new(max_calls.max(1) as usize),
            out,
            closed_reason: Mutex::new(None),
        })
    }

    /// Sends a call and waits for its reply. Waits for a slot past the in-flight limit.
    /// Dropping the future sends `Cancel`.
    pub(crate) async fn call(
        self: &Arc<Self>,
        method: u16,
        args: &[u8],
        compression: Compression,
        server_max: u32,
    ) -> Result<Reply, CallError> {
        let _slot = self.slots.acquire().await.map_err(|_| self.closed())?;
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        let frame = encode_frame(
            FrameHeader::new(Kind::Call, 0).with_aux(method).with_id(id),
            args,
            compression,
        )?;
        check_size(&frame, server_max)?;
        let (tx, rx) = oneshot::channel();
        match lock(&self.pending).as_mut() {
            Some(pending) => pending.insert(id, tx),
            None => return Err(self.closed()),
        };
        let mut guard = Pending {
            mux: self,
            id,
            answered: false,
        };
        self.out.send(frame).map_err(|_| self.closed())?;
        let reply = rx.await.map_err(|_| self.closed())?;
        guard.answered = true;
        Ok(reply)
    }

    /// Routes a reply frame to its call; `Err` for an id no call is waiting on.
    pub(crate) fn deliver(&self, header: FrameHeader, body: Bytes) -> Result<(), ProtocolError> {
        let waiting = lock(&self.pending)
            .as_mut()
            .and_then(|p| p.remove(&header.id));
        match waiting {
            // the call may have been dropped meanwhile: its reply is not needed
            Some(tx) => {
                let _ = tx.send((header, body));
                Ok(())
            }
            None if header.id == 0 => Err(ProtocolError::Malformed),
            None => Ok(()),
        }
    }

    /// The connection ended: every waiting call fails with `reason`.
    pub(crate) fn close(&self, reason: String) {
        lock(&self.closed_reason).get_or_insert(reason);
        lock(&self.pending).take();
        self.slots.close();
    }

    fn closed(&self) -> CallError {
        let reason = lock(&self.closed_reason)
            .clone()
            .unwrap_or_else(|| "connection closed".into());
        CallError::Transport(TransportError::Closed(reason))
    }
}

/// A call awaiting its reply: dropped before the reply came, it cancels the call.
struct Pending<'a> {
    mux: &'a Mux,
    id: u64,
    answered: bool,
}

impl Drop for Pending<'_> {
    fn drop(&mut self) {
        if self.answered {
            return;
        }
        let removed = lock(&self.mux.pending)
            .as_mut()
            .and_then(|p| p.remove(&self.id));
        if removed.is_some() {
            let cancel = FrameHeader::new(Kind::Cancel, 0).with_id(self.id);
            let _ = self.mux.out.send(cancel.encode().to_vec());
        }
    }
}

/// A multiplexed session's call side: the multiplexer plus what the handshake settled.
#[derive(Debug)]
pub(crate) struct Channel {
    pub(crate) mux: Arc<Mux>,
    pub(crate) drain: Arc<Drain>,
    compression: Compression,
    server_max: u32,
    reply_max: u32,
    /// Tells the transport's writer to send a close frame and stop.
    close: Mutex<Option<oneshot::Sender<()>>>,
}

impl Channel {
    /// The call side of a session whose handshake returned `welcome`; frames to send go to
    /// `out`. After `GoAway` and the last reply, the session's calls are failed.
    pub(crate) fn new(
        welcome: &Welcome,
        config: &ClientConfig,
        out: mpsc::UnboundedSender<Vec<u8>>,
        close: oneshot::Sender<()>,
    ) -> Self {
        let mux = Mux::new(welcome.max_concurrent_calls, out);
        let on_drained = Arc::clone(&mux);
        Self {
            drain: Drain::new(move || on_drained.close("server shut down".into())),
            mux,
            compression: welcome.compression_for(config.compression),
            server_max: welcome.max_message_size,
            reply_max: config.limits.max_message_size,
            close: Mutex::new(Some(close)),
        }
    }

    /// Closes the connection; calls in flight fail.
    pub(crate) fn close(&self) {
        if let Some(close) = lock(&self.close).take() {
            let _ = close.send(());
        }
        self.mux.close("client disconnected".into());
    }

    /// Largest reply (and push) accepted.
    pub(crate) fn reply_max(&self) -> u32 {
        self.reply_max
    }

    /// Sends a call and waits for its reply; dropping the future sends `Cancel`.
    pub(crate) async fn call(&self, method: u16, args: &[u8]) -> Result<Reply, CallError> {
        let _in_flight = self.drain.enter()?;
        let (header, body) = self
            .mux
            .call(method, args, self.compression, self.server_max)
            .await?;
        let compressed = self.compression != Compression::None;
        Ok((
            header,
            open_aligned_body(&header, body, compressed, self.reply_max)?,
        ))
    }
}
