//! Emitting events: serialized once, framed (and compressed) at most once per variant,
//! shared by every subscriber.

use std::{marker::PhantomData, sync::Arc, sync::OnceLock};

use bytes::Bytes;
use hardlight_core::{
    codec::{self, Codable},
    frame::{FrameHeader, Kind},
    message::encode_frame,
    Compression, ProtocolError, Topic,
};

use super::hub::Hub;
use crate::memory_budget::{Charge, Exhausted};

/// One emitted event as every subscriber will receive it, charged to the server's memory
/// budget until the last queue or replay window lets go of it.
#[derive(Debug)]
pub(crate) struct EncodedEvent {
    body: codec::Bytes,
    compression: Compression,
    plain: OnceLock<Bytes>,
    compressed: OnceLock<Bytes>,
    charge: Charge,
}

impl EncodedEvent {
    /// `charge` holds the body's bytes; the frames made from it are added when made.
    pub(crate) fn new(body: codec::Bytes, compression: Compression, charge: Charge) -> Self {
        Self {
            body,
            compression,
            plain: OnceLock::new(),
            compressed: OnceLock::new(),
            charge,
        }
    }

    /// The serialized event's size, what a queue counts it as.
    pub(crate) fn size(&self) -> usize {
        self.body.len()
    }

    /// The frame for a connection that negotiated `compressed` (or not).
    pub(crate) fn frame(&self, compressed: bool) -> Bytes {
        let (cell, compression) = if compressed {
            (&self.compressed, self.compression)
        } else {
            (&self.plain, Compression::None)
        };
        cell.get_or_init(|| {
            let frame = encode_frame(FrameHeader::new(Kind::Event, 0), &self.body, compression)
                .map(Bytes::from)
                .unwrap_or_default();
            self.charge.add(frame.len() as u64);
            frame
        })
        .clone()
    }
}

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
    /// connection, and returns how many connections it was queued for. Never waits for a
    /// slow client: a full queue applies the server's slow-consumer policy. An event that
    /// cannot be sent ([`EventEmitter::try_emit`]'s errors) is logged and counts 0.
    pub async fn emit(&self, topic: &Topic, event: E) -> usize {
        self.try_emit(topic, event).unwrap_or_else(|error| {
            tracing::warn!(%topic, %error, "event not sent");
            0
        })
    }

    /// Like [`EventEmitter::emit`], with the reason when the event is not sent: too large,
    /// not serializable, or refused because the server's memory budget is spent
    /// (`EmitError::Overloaded`, worth retrying once clients have caught up).
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
        let Some(subscribers) = self.hub.subscribers(topic) else {
            return Ok(0);
        };
        let body = codec::encode(&(topic.clone(), event)).map_err(EmitError::Encode)?;
        if body.len() > self.max_message_size as usize {
            return Err(EmitError::TooLarge {
                size: body.len(),
                max: self.max_message_size,
            });
        }
        let charge = self.hub.memory().charge(body.len() as u64)?;
        let event = Arc::new(EncodedEvent::new(body, self.compression, charge));
        for outbox in subscribers.iter() {
            outbox.push(Arc::clone(&event));
        }
        Ok(subscribers.len())
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
