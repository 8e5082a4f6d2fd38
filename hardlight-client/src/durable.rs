//! Receiving durable events: each with its position and delivery attempt, acked by the
//! application once processed.

use std::{
    collections::HashMap,
    sync::{Arc, Mutex},
};

use hardlight_core::{
    codec::{decode, Codable},
    durable::{ArchivedDelivery, Position},
    frame::{FrameHeader, Kind},
    ProtocolError, Topic,
};

use crate::{
    connection::Connection,
    event_buffer::{Missed, Receiver},
    events::{Pushed, RecvError},
    sync::lock,
};

/// A durable event, delivered for one of the connection's consumers.
///
/// Call [`DurableEvent::ack`] once it is processed: until then the server delivers it
/// again after its ack wait (marked by `attempt` > 1), also to a later connection of the
/// same consumer, until it is acked or has been delivered `max_deliver` times. A
/// redelivery has the same `position` and `id`, so duplicates are easy to recognize.
#[derive(Debug, Clone)]
pub struct DurableEvent<E> {
    /// The topic it was emitted on.
    pub topic: Topic,
    /// The consumer it is delivered for.
    pub consumer: String,
    /// Where it is stored.
    pub position: Position,
    /// 1 for its first delivery to this consumer, then 2, 3, …
    pub attempt: u32,
    /// The id its emitter gave it, if any.
    pub id: Option<String>,
    /// The event itself.
    pub payload: E,
    ack: AckHandle,
}

impl<E> DurableEvent<E> {
    /// Whether this event was delivered to this consumer before.
    pub fn is_redelivery(&self) -> bool {
        self.attempt > 1
    }

    /// Tells the server the event is processed: it is not delivered to this consumer
    /// again. If the ack cannot be sent (no connection now, or the session it came on has
    /// ended), the event comes again: acks are at least once, like deliveries.
    ///
    /// ```no_run
    /// # async fn demo(mut inbox: hardlight_client::DurableSubscription<String>) {
    /// while let Ok(message) = inbox.recv().await {
    ///     println!("{} (attempt {})", message.payload, message.attempt);
    ///     let _ = message.ack();
    /// }
    /// # }
    /// ```
    pub fn ack(&self) -> Result<(), AckError> {
        self.ack.send()
    }
}

/// Why an ack was not sent. The event is then delivered again after its ack wait.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum AckError {
    /// The client has no connection now, or its queue to the server is full.
    #[error(
        "not connected (or the connection's queue is full): the event will be delivered again"
    )]
    NotConnected,
    /// The event came in a server session that has ended (the client reconnected as a new
    /// session): subscribe again, and the event will be delivered again.
    #[error("the session the event came in has ended: the event will be delivered again")]
    SessionEnded,
}

/// Where acks go: the live connection of the current server session.
#[derive(Debug, Default)]
pub(crate) struct AckRoute {
    current: Mutex<Option<([u8; 16], Connection)>>,
}

impl AckRoute {
    /// The connection of session `session` is `connection` from now on.
    pub(crate) fn set(&self, session: [u8; 16], connection: Connection) {
        *lock(&self.current) = Some((session, connection));
    }

    /// There is no connection.
    pub(crate) fn clear(&self) {
        *lock(&self.current) = None;
    }

    fn send(&self, session: [u8; 16], slot: u16, seq: u64) -> Result<(), AckError> {
        let current = lock(&self.current).clone();
        let (live, connection) = current.ok_or(AckError::NotConnected)?;
        if live != session {
            return Err(AckError::SessionEnded);
        }
        let frame = FrameHeader::new(Kind::Ack, 0).with_aux(slot).with_id(seq);
        if connection.send(frame.encode().to_vec()) {
            Ok(())
        } else {
            Err(AckError::NotConnected)
        }
    }
}

/// What an ack needs: the route, the session the event came in, its consumer's slot and
/// its seq.
#[derive(Debug, Clone)]
pub(crate) struct AckHandle {
    pub(crate) route: Arc<AckRoute>,
    pub(crate) session: [u8; 16],
    pub(crate) slot: u16,
    pub(crate) seq: u64,
}

impl AckHandle {
    fn send(&self) -> Result<(), AckError> {
        self.route.send(self.session, self.slot, self.seq)
    }
}

/// The durable event as the push reader hands it on (before its payload is typed for the
/// application), read from its validated archive: the event's own archive is decoded where
/// it lies, not copied out first.
pub(crate) fn durable_event<E: Codable>(
    delivery: &ArchivedDelivery,
    seq: u64,
    ack: AckHandle,
) -> Result<DurableEvent<E>, ProtocolError> {
    Ok(DurableEvent {
        topic: Topic::from(delivery.topic.as_bytes()),
        consumer: delivery.consumer.as_str().to_owned(),
        position: Position {
            epoch: delivery.epoch.to_native(),
            seq,
        },
        attempt: delivery.attempt.to_native(),
        id: delivery.id.as_ref().map(|id| id.as_str().to_owned()),
        payload: decode::<E>(&delivery.event)?,
        ack,
    })
}

/// A stream of the durable events of the consumers the server attached to this connection
/// (`Subscriptions::add_durable` in a handler).
///
/// From `client.durable()`. Events of a consumer come in position order, redeliveries
/// (`attempt` > 1) as they fall due. Lost events are not reported as such: whatever is
/// not acked comes again.
///
/// ```no_run
/// # async fn demo(mut events: hardlight_client::DurableSubscription<String>) {
/// use hardlight_client::RecvError;
/// loop {
///     match events.recv().await {
///         Ok(event) => {
///             println!("{} at {}: {}", event.topic, event.position, event.payload);
///             let _ = event.ack();
///         }
///         Err(RecvError::EpochChanged { topic, .. }) => {
///             eprintln!("{topic}: the server's store is new; resynchronize")
///         }
///         Err(RecvError::SessionReset) => eprintln!("new session: subscribe again"),
///         Err(RecvError::Closed) => break,
///         Err(_) => {}
///     }
/// }
/// # }
/// ```
#[derive(Debug)]
pub struct DurableSubscription<E> {
    pub(crate) rx: Receiver<Pushed<E>>,
    /// The epoch each (topic, consumer) was last delivered from.
    epochs: HashMap<(Topic, String), u64>,
    /// An event held back while its epoch change is reported.
    held: Option<DurableEvent<E>>,
}

impl<E: Clone> DurableSubscription<E> {
    pub(crate) fn new(rx: Receiver<Pushed<E>>) -> Self {
        Self {
            rx,
            epochs: HashMap::new(),
            held: None,
        }
    }

    /// The next durable event. `Err(RecvError::EpochChanged)` comes once, before the first
    /// event of a consumer from a store other than the one its events came from so far
    /// (the server's store was deleted or lost): positions kept from the old store mean
    /// nothing in the new one.
    pub async fn recv(&mut self) -> Result<DurableEvent<E>, RecvError> {
        if let Some(event) = self.held.take() {
            return Ok(event);
        }
        // events and losses of the connection's topics are passed over, not copied
        let wanted = |pushed: &Pushed<E>| matches!(pushed, Pushed::Durable(_) | Pushed::Reset);
        let event = match self.rx.recv_where(wanted).await {
            Ok(Pushed::Durable(event)) => Arc::unwrap_or_clone(event),
            Ok(Pushed::Reset) => return Err(RecvError::SessionReset),
            Err(Missed::Lagged(n)) => return Err(RecvError::Lagged(n)),
            // (nothing else is wanted here)
            Ok(_) | Err(Missed::Closed) => return Err(RecvError::Closed),
        };
        let key = (event.topic.clone(), event.consumer.clone());
        let epoch = event.position.epoch;
        match self.epochs.insert(key, epoch) {
            Some(previous) if previous != epoch => {
                let changed = RecvError::EpochChanged {
                    topic: event.topic.clone(),
                    consumer: event.consumer.clone(),
                    previous,
                    epoch,
                };
                self.held = Some(event);
                Err(changed)
            }
            _ => Ok(event),
        }
    }
}
