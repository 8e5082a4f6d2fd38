//! What the server pushes — state batches, events, losses, durable events, `GoAway` — delivered to the
//! mirror and the subscriptions, whatever the transport.

use std::sync::{
    atomic::{AtomicU64, Ordering},
    Arc,
};

use hardlight_core::{
    codec::{decode, deserialize},
    durable::Delivery,
    frame::{FrameHeader, Kind},
    received::Received,
    state::StateBatch,
    topic::ArchivedTopic,
    ProtocolError, Service, Topic,
};
use tokio::sync::watch;

use crate::{
    drain::Drain,
    durable::{durable_event, AckHandle, AckRoute},
    error::TransportError,
    event_buffer::Sender,
    events::{Event, Pushed},
    mirror::{apply, mark_disconnected, Mirror},
    rt::OnEnd,
    stats::Counters,
};

/// Where one connection's push frames go.
pub(crate) struct Pushes<S: Service> {
    pub(crate) mirror: Arc<watch::Sender<Mirror<S::State>>>,
    pub(crate) events: Sender<Pushed<S::Event>>,
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
    /// Where acks of durable events go, and the session they are for.
    pub(crate) acks: Arc<AckRoute>,
    pub(crate) session: [u8; 16],
    /// The highest number of an unreliable event received on this connection.
    pub(crate) unreliable_seen: AtomicU64,
}

/// The topic of the last event a reader of pushes decoded, handed to the next events of
/// the same topic (shared, not allocated again). Each reader of a connection's pushes
/// (its push stream or messages, its datagrams) keeps its own: none waits on another's.
#[derive(Default)]
pub(crate) struct LastTopic(Topic);

impl LastTopic {
    /// The topic `archived` holds: the last one, if it is the same.
    fn of(&mut self, archived: &ArchivedTopic) -> Topic {
        if self.0.as_bytes() != archived.as_bytes() {
            self.0 = Topic::from(archived.as_bytes());
        }
        self.0.clone()
    }
}

impl<S: Service> Pushes<S> {
    /// Handles one push frame, read by the reader whose `last` topic it is; an error means
    /// the server broke the protocol. It is decoded here, at once: a body that is part of
    /// a larger message (a WebSocket message, a QUIC chunk) is decoded where it lies, and
    /// does not keep its message.
    pub(crate) fn handle(
        &self,
        last: &mut LastTopic,
        header: &FrameHeader,
        body: Received,
    ) -> Result<(), ProtocolError> {
        let body = body.open(header, self.compressed, self.max)?;
        match header.kind {
            Kind::State => apply(
                &self.mirror,
                self.generation,
                header.seq,
                &decode::<StateBatch>(&body)?,
            ),
            Kind::Event => {
                self.received.fetch_add(1, Ordering::SeqCst);
                let (topic, payload) = self.event(last, body)?;
                self.counters
                    .events_received
                    .fetch_add(1, Ordering::Relaxed);
                // with no subscription there is nobody to deliver to or tell
                self.events.send(Pushed::Event(Event {
                    topic,
                    payload,
                    unreliable: false,
                }));
                Ok(())
            }
            Kind::Unreliable => {
                let (topic, payload) = self.event(last, body)?;
                self.unreliable(header.id);
                self.events.send(Pushed::Event(Event {
                    topic,
                    payload,
                    unreliable: true,
                }));
                Ok(())
            }
            Kind::Lagged => {
                self.received.fetch_add(header.id, Ordering::SeqCst);
                self.counters
                    .events_lost
                    .fetch_add(header.id, Ordering::Relaxed);
                self.events.send(Pushed::Lost(header.id));
                Ok(())
            }
            Kind::Gap => {
                self.received.fetch_add(1, Ordering::SeqCst);
                let topic = decode::<Topic>(&body)?;
                self.counters.gaps.fetch_add(1, Ordering::Relaxed);
                self.events.send(Pushed::Gap(topic));
                Ok(())
            }
            Kind::Durable => {
                self.received.fetch_add(1, Ordering::SeqCst);
                let ack = AckHandle {
                    route: Arc::clone(&self.acks),
                    session: self.session,
                    slot: header.aux,
                    seq: header.id,
                };
                let event = body.decode_with::<Delivery, _>(|delivery| {
                    durable_event::<S::Event>(delivery, header.id, ack)
                })?;
                self.counters
                    .durable_received
                    .fetch_add(1, Ordering::Relaxed);
                self.events.send(Pushed::Durable(Arc::new(event)));
                Ok(())
            }
            Kind::GoAway => {
                self.drain.go_away();
                Ok(())
            }
            other => Err(ProtocolError::UnexpectedKind {
                expected: "State, Event, Lagged, Gap, Durable or GoAway",
                got: other.name(),
            }),
        }
    }

    /// Decodes an event's topic and payload; the topic is the `last` one if it is the
    /// same.
    fn event(
        &self,
        last: &mut LastTopic,
        body: Received,
    ) -> Result<(Topic, S::Event), ProtocolError> {
        body.decode_with::<(Topic, S::Event), _>(|archived| {
            Ok((last.of(&archived.0), deserialize::<S::Event>(&archived.1)?))
        })
    }

    /// Counts unreliable event `seq` of the connection, and those its number shows lost:
    /// the ones between the highest seen before and it. One that arrives after a higher
    /// one (datagrams may be reordered) was counted lost, and no longer is.
    fn unreliable(&self, seq: u64) {
        self.counters
            .unreliable_received
            .fetch_add(1, Ordering::Relaxed);
        let highest = self.unreliable_seen.fetch_max(seq, Ordering::Relaxed);
        let lost = &self.counters.unreliable_lost;
        if seq > highest {
            lost.fetch_add(seq - highest - 1, Ordering::Relaxed);
        } else {
            let _ = lost.fetch_update(Ordering::Relaxed, Ordering::Relaxed, |n| n.checked_sub(1));
        }
    }

    /// Handles one QUIC or WebTransport datagram: an `Unreliable` frame, whole, read by
    /// the reader whose `last` topic it is.
    pub(crate) fn datagram(
        &self,
        last: &mut LastTopic,
        datagram: bytes::Bytes,
    ) -> Result<(), ProtocolError> {
        let (header, body) = FrameHeader::split(&datagram, self.max)?;
        if header.kind != Kind::Unreliable {
            return Err(ProtocolError::UnexpectedKind {
                expected: "Unreliable",
                got: header.kind.name(),
            });
        }
        self.counters
            .unreliable_datagrams
            .fetch_add(1, Ordering::Relaxed);
        self.handle(last, &header, Received::Shared(datagram.slice_ref(body)))
    }

    /// The connection ended (`reason` says how): wake calls waiting for its state, and let
    /// the client reconnect.
    pub(crate) fn disconnected(&self, reason: &TransportError) {
        // the client lets go of the connection first: one the mirror shows gone is no
        // longer the client's to call on
        (self.on_end)(reason.clone());
        mark_disconnected(&self.mirror, self.generation);
    }
}
