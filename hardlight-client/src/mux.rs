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
    ProtocolError,
};
use tokio::sync::{mpsc, oneshot, Semaphore};

use crate::{
    calls::{Calls, Exchange},
    config::ClientConfig,
    drain::Drain,
    error::{CallError, TransportError},
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

impl Exchange for Arc<Mux> {
    /// Gives the call an id, sends it and waits for its reply; waits for a slot past the
    /// in-flight limit. Dropping the future sends `Cancel`.
    async fn exchange(
        &self,
        mut frame: Vec<u8>,
        _reply_max: u32,
    ) -> Result<(FrameHeader, Bytes), CallError> {
        let _slot = self.slots.acquire().await.map_err(|_| self.closed())?;
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        FrameHeader::set_id(&mut frame, id);
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

/// A multiplexed connection's calls, and the switch that closes it.
#[derive(Debug)]
pub(crate) struct Channel {
    pub(crate) calls: Calls<Arc<Mux>>,
    /// Tells the transport's writer to send a close frame and stop.
    close: Mutex<Option<oneshot::Sender<()>>>,
}

impl Channel {
    /// The calls of a connection whose handshake returned `welcome`; frames to send go to
    /// `out`. After `GoAway` and the last reply, the connection's calls are failed.
    pub(crate) fn new(
        welcome: &Welcome,
        config: &ClientConfig,
        out: mpsc::UnboundedSender<Vec<u8>>,
        close: oneshot::Sender<()>,
    ) -> Self {
        let mux = Mux::new(welcome.max_concurrent_calls, out);
        let on_drained = Arc::clone(&mux);
        let drain = Drain::new(move || on_drained.close("server shut down".into()));
        Self {
            calls: Calls::new(mux, drain, welcome, config),
            close: Mutex::new(Some(close)),
        }
    }

    /// The multiplexer the transport's reader delivers replies to.
    pub(crate) fn mux(&self) -> &Arc<Mux> {
        &self.calls.transport
    }

    /// Closes the connection; calls in flight fail.
    pub(crate) fn close(&self) {
        if let Some(close) = lock(&self.close).take() {
            let _ = close.send(());
        }
        self.calls.transport.close("client disconnected".into());
    }
}
