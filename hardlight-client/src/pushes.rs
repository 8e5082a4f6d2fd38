//! What the server pushes — state batches, events, losses, `GoAway` — delivered to the
//! mirror and the subscriptions, whatever the transport.

use std::sync::Arc;

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
    events::{Event, Pushed},
    mirror::{apply, mark_disconnected, Mirror},
};

/// Where one session's push frames go.
pub(crate) struct Pushes<S: Service> {
    pub(crate) mirror: Arc<watch::Sender<Mirror<S::State>>>,
    pub(crate) events: broadcast::Sender<Pushed<S::Event>>,
    pub(crate) drain: Arc<Drain>,
    pub(crate) generation: u64,
    pub(crate) compressed: bool,
    pub(crate) max: u32,
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
                let (topic, payload) = decode::<(Topic, S::Event)>(&body)?;
                // with no subscription there is nobody to deliver to or tell
                let _ = self
                    .events
                    .send(Pushed::Event(Arc::new(Event { topic, payload })));
                Ok(())
            }
            Kind::Lagged => {
                let _ = self.events.send(Pushed::Lost(header.id));
                Ok(())
            }
            Kind::GoAway => {
                self.drain.go_away();
                Ok(())
            }
            other => Err(ProtocolError::UnexpectedKind {
                expected: "State, Event, Lagged or GoAway",
                got: other.name(),
            }),
        }
    }

    /// The session ended: wake calls waiting for its state.
    pub(crate) fn disconnected(&self) {
        mark_disconnected(&self.mirror, self.generation);
    }
}
