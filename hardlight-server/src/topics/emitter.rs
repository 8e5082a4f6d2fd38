//! Emitting events: serialized once, framed (and compressed) at most once per variant,
//! shared by every subscriber, and forwarded once to the other servers of a cluster.

use std::{marker::PhantomData, sync::Arc};

use bytes::Bytes;
use hardlight_core::{
    codec::{self, Codable},
    durable::Position,
    Compression, ProtocolError, Topic,
};

use super::{encoded::EncodedEvent, hub::Hub};
use crate::{
    durable::{DeadLetter, DurableError, EmitOptions, Emitted, TopicInfo},
    memory_budget::Exhausted,
};

/// Publishes events of type `E` to topics. Cheap to clone; usable from any task.
///
/// Get one from `Server::get_event_emitter()`, or use `self.events` in a handler.
///
/// ```no_run
/// # async fn demo(emitter: hardlight_server::EventEmitter<String>) {
/// let delivered = emitter.emit(&"chat/general".into(), "hello".to_owned()).await;
/// println!("queued for {delivered} connections");
/// # }
/// ```
pub struct EventEmitter<E> {
    hub: Arc<Hub>,
    compression: Compression,
    max_message_size: u32,
    _event: PhantomData<fn(E)>,
}

impl<E> Clone for EventEmitter<E> {
    fn clone(&self) -> Self {
        Self {
            hub: Arc::clone(&self.hub),
            compression: self.compression,
            max_message_size: self.max_message_size,
            _event: PhantomData,
        }
    }
}

impl<E> std::fmt::Debug for EventEmitter<E> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EventEmitter").finish_non_exhaustive()
    }
}

impl<E: Codable> EventEmitter<E> {
    pub(crate) fn new(hub: Arc<Hub>, compression: Compression, max_message_size: u32) -> Self {
        Self {
            hub,
            compression,
            max_message_size,
            _event: PhantomData,
        }
    }

    /// Queues `event` for every connection subscribed to `topic`, in emission order per
    /// connection, and returns how many connections of this server it was queued for.
    /// Never waits for a slow client: a full queue applies the server's slow-consumer
    /// policy. With a cluster (`ServerConfig::with_cluster`) the event is also queued, once,
    /// for the other servers. An event that cannot be sent ([`EventEmitter::try_emit`]'s
    /// errors) is logged and counts 0.
    pub async fn emit(&self, topic: &Topic, event: E) -> usize {
        self.try_emit(topic, event).unwrap_or_else(|error| {
            tracing::warn!(%topic, %error, "event not sent");
            0
        })
    }

    /// Like [`EventEmitter::emit`], with the reason when the event is not sent: too large
    /// (for this server, or for the cluster's NATS), not serializable, or refused because
    /// the server's memory budget is spent (`EmitError::Overloaded`, worth retrying once
    /// clients have caught up).
    ///
    /// ```no_run
    /// # fn demo(emitter: hardlight_server::EventEmitter<String>) {
    /// use hardlight_server::EmitError;
    /// match emitter.try_emit(&"prices".into(), "42".to_owned()) {
    ///     Ok(connections) => println!("queued for {connections}"),
    ///     Err(EmitError::Overloaded { .. }) => println!("server busy; try again"),
    ///     Err(error) => println!("{error}"),
    /// }
    /// # }
    /// ```
    pub fn try_emit(&self, topic: &Topic, event: E) -> Result<usize, EmitError> {
        let subscribers = self.hub.subscribers(topic);
        if subscribers.is_none() && !self.hub.forwards() {
            return Ok(0);
        }
        let event = self.encode(topic, event)?;
        self.hub.check_forward(event.size())?;
        let queued = subscribers.map_or(0, |subscribers| {
            for outbox in subscribers.iter() {
                outbox.push(Arc::clone(&event));
            }
            subscribers.len()
        });
        self.hub.forward(topic, &event);
        Ok(queued)
    }

    /// Sends `event` unreliably to every connection of this server subscribed to `topic`,
    /// for latest-value updates (positions, cursors, presence) where a newer event makes
    /// an older one worthless. Over QUIC it goes as a datagram when the client takes them
    /// and it fits the path's datagram size; otherwise (and over WebSocket) it is sent
    /// only when nothing else waits for the connection, a newer unreliable event replacing
    /// one not sent yet. It is never queued behind other events: it may be lost or
    /// dropped, is counted then (`TrafficStats::unreliable_dropped`), and never reported
    /// as lost events (`Lagged`). The client receives it marked `unreliable`. Not
    /// forwarded to the other servers of a cluster. Returns how many connections it was
    /// offered to; errors as [`EventEmitter::try_emit`]'s.
    ///
    /// ```no_run
    /// # fn demo(emitter: hardlight_server::EventEmitter<(f32, f32)>) {
    /// let offered = emitter.emit_unreliable(&"cursor/alice".into(), (0.5, 0.25));
    /// # }
    /// ```
    pub fn emit_unreliable(&self, topic: &Topic, event: E) -> usize {
        let Some(subscribers) = self.hub.subscribers(topic) else {
            return 0;
        };
        match self.encode(topic, event) {
            Ok(event) => {
                for outbox in subscribers.iter() {
                    outbox.offer(&event);
                }
                subscribers.len()
            }
            Err(error) => {
                tracing::warn!(%topic, %error, "unreliable event not sent");
                0
            }
        }
    }

    /// `event` on `topic`, serialized once for every subscriber and charged to the
    /// server's memory budget.
    fn encode(&self, topic: &Topic, event: E) -> Result<Arc<EncodedEvent>, EmitError> {
        let body = codec::encode(&(topic.clone(), event)).map_err(EmitError::Encode)?;
        if body.len() > self.max_message_size as usize {
            return Err(EmitError::TooLarge {
                size: body.len(),
                max: self.max_message_size,
            });
        }
        let charge = self.hub.memory().charge(body.len() as u64)?;
        Ok(Arc::new(EncodedEvent::event(
            Bytes::from_owner(body),
            self.compression,
            charge,
        )))
    }
}

impl<E: Codable> EventEmitter<E> {
    /// Stores `event` in the durable topic `topic` and returns once it is stored (synced
    /// to disk): from then on it reaches every consumer of the topic at least once until
    /// acked, unless it expires (`EmitOptions::with_ttl`, `TopicPolicy::max_age`). With an
    /// id (`EmitOptions::with_id`) an emit repeated within the dedup window stores nothing
    /// and returns the first one's position. Needs `ServerConfig::with_durable`.
    ///
    /// ```no_run
    /// # async fn demo(emitter: hardlight_server::EventEmitter<String>) -> Result<(), hardlight_server::DurableError> {
    /// use hardlight_server::EmitOptions;
    /// let options = EmitOptions::default().with_id("msg-1");
    /// let emitted = emitter.emit_durable(&"inbox/bob".into(), "hi".to_owned(), options).await?;
    /// println!("stored at {}", emitted.position);
    /// # Ok(()) }
    /// ```
    pub async fn emit_durable(
        &self,
        topic: &Topic,
        event: E,
        options: EmitOptions,
    ) -> Result<Emitted, DurableError> {
        let durable = self.hub.durable().ok_or(DurableError::NotConfigured)?;
        let body = codec::encode(&event).map_err(DurableError::Encode)?;
        if body.len() > self.max_message_size as usize {
            return Err(DurableError::TooLarge {
                size: body.len(),
                max: self.max_message_size,
            });
        }
        durable.append(topic, options, body.to_vec()).await
    }

    /// The events of durable topic `topic` that a consumer did not ack in
    /// `DurableConfig::with_max_deliver` deliveries, oldest first (at most
    /// `TopicPolicy::max_dead_letters` per consumer).
    pub async fn dead_letters(&self, topic: &Topic) -> Result<Vec<DeadLetter<E>>, DurableError> {
        let durable = self.hub.durable().ok_or(DurableError::NotConfigured)?;
        let epoch = durable.epoch();
        durable
            .dead_letters(topic)
            .await?
            .into_iter()
            .map(|letter| {
                Ok(DeadLetter {
                    consumer: letter.consumer,
                    position: Position {
                        epoch,
                        seq: letter.event.seq,
                    },
                    attempts: letter.attempts,
                    id: letter.event.id,
                    event: codec::decode(&letter.event.event).map_err(DurableError::Decode)?,
                })
            })
            .collect()
    }

    /// What durable topic `topic` holds now: its last position, its events and their
    /// bytes.
    pub async fn topic_info(&self, topic: &Topic) -> Result<TopicInfo, DurableError> {
        let durable = self.hub.durable().ok_or(DurableError::NotConfigured)?;
        Ok(durable.topic(topic).await?)
    }

    /// Forgets consumer `consumer` of durable topic `topic`: its progress and dead letters.
    /// The events it alone held back are removed; a connection it is attached to stops
    /// receiving them.
    pub async fn delete_consumer(&self, topic: &Topic, consumer: &str) -> Result<(), DurableError> {
        let durable = self.hub.durable().ok_or(DurableError::NotConfigured)?;
        Ok(durable.delete_consumer(topic, consumer).await?)
    }
}

/// Why an event was not sent.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum EmitError {
    /// The serialized event is larger than `Limits::max_message_size`.
    #[error("event of {size} bytes is larger than Limits::max_message_size ({max})")]
    TooLarge {
        /// The serialized event's size.
        size: usize,
        /// The limit.
        max: u32,
    },
    /// The event failed to serialize.
    #[error("event failed to serialize")]
    Encode(#[source] ProtocolError),
    /// The event, with the headers the cluster adds, is larger than the NATS servers'
    /// `max_payload` (1 MiB by default): NATS would refuse it. Raise `max_payload` in the
    /// NATS servers' configuration, or send smaller events.
    #[cfg(feature = "nats")]
    #[error("event of {size} bytes (with its NATS headers) is larger than the NATS servers' max_payload ({max}); raise max_payload in the NATS configuration")]
    TooLargeForCluster {
        /// The event's size as NATS counts it.
        size: usize,
        /// The NATS servers' `max_payload`.
        max: usize,
    },
    /// The server's memory budget (`ServerLimits::memory_budget`) is spent: queued events,
    /// calls in flight and parked sessions hold it. Retriable.
    #[error("server memory budget ({limit} bytes, ServerLimits::memory_budget) is spent; event not queued")]
    Overloaded {
        /// The budget.
        limit: u64,
    },
}

impl From<Exhausted> for EmitError {
    fn from(exhausted: Exhausted) -> Self {
        Self::Overloaded {
            limit: exhausted.limit,
        }
    }
}
