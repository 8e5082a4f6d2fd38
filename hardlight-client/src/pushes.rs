//! What the server pushes — state batches, events, losses, `GoAway` — delivered to the
//! mirror and the subscriptions, whatever the transport.

use std::sync::{
    atomic::{AtomicU64, Ordering},
    Arc,
};

use hardlight_core::{
    codec::{decode, Bytes},
    frame::{FrameHeader, Kind},
    message::open_aligned_body,
    state::StateBatch,
    ProtocolError, Service, Topic,
};
use tokio::sync::{broadcast, watch};

use crate::{
    drain::Drain,
    error::TransportError,
    events::{Event, Pushed},
    mirror::{apply, mark_disconnected, Mirror},
    rt::OnEnd,
    stats::Counters,
};

/// Where one connection's push frames go.
pub(crate) struct Pushes<S: Service> {
    pub(crate) mirror: Arc<watch::Sender<Mirror<S::State>>>,
    pub(crate) events: broadcast::Sender<Pushed<S::Event>>,
    pub(crate) drain: Arc<Drain>,
    pub(crate) generation: u64,
    pub(crate) compressed: bool,
    pub(crate) max: u32,
    /// Events accounted for in the session, for resuming it: one per `Event` and `Gap`,
    /// `n` per `Lagged` of `n`.
    pub(crate) received: Arc<AtomicU64>,
    /// The client's counters (events received and lost).
    pub(crate) counters: Arc<Counters>,
    /// Told when the connection ends.
    pub(crate) on_end: OnEnd,
}

impl<S: Service> Pushes<S> {
    /// Handles one push frame; an error means the server broke the protocol.
    pub(crate) fn handle(&self, header: &FrameHeader, body: Bytes) -> Result<(), ProtocolError> {
        let body = open_aligned_body(header, body, self.compressed, self.max)?;
        match header.kind {
            Kind::State => apply(
                &self.mirror,
                self.generation,
                header.seq,
                &decode::<StateBatch>(&body)?,
            ),
            Kind::Event => {
                self.received.fetch_add(1, Ordering::SeqCst);
                let (topic, payload) = decode::<(Topic, S::Event)>(&body)?;
                self.counters
                    .events_received
                    .fetch_add(1, Ordering::Relaxed);
                // with no subscription there is nobody to deliver to or tell
                let _ = self
                    .events
                    .send(Pushed::Event(Arc::new(Event { topic, payload })));
                Ok(())
            }
            Kind::Lagged => {
                self.received.fetch_add(header.id, Ordering::SeqCst);
                self.counters
                    .events_lost
                    .fetch_add(header.id, Ordering::Relaxed);
                let _ = self.events.send(Pushed::Lost(header.id));
                Ok(())
            }
            Kind::Gap => {
                self.received.fetch_add(1, Ordering::SeqCst);
                let topic = decode::<Topic>(&body)?;
                self.counters.gaps.fetch_add(1, Ordering::Relaxed);
                let _ = self.events.send(Pushed::Gap(topic));
                Ok(())
            }
            Kind::GoAway => {
                self.drain.go_away();
                Ok(())
            }
            other => Err(ProtocolError::UnexpectedKind {
                expected: "State, Event, Lagged, Gap or GoAway",
                got: other.name(),
            }),
        }
    }

    /// The connection ended (`reason` says how): wake calls waiting for its state, and let
    /// the client reconnect.
    pub(crate) fn disconnected(&self, reason: &TransportError) {
        mark_disconnected(&self.mirror, self.generation);
        (self.on_end)(reason.clone());
    }
}
