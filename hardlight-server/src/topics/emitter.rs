//! Emitting events: serialized once, framed (and compressed) at most once per variant,
//! shared by every subscriber.

use std::{marker::PhantomData, sync::Arc, sync::OnceLock};

use bytes::Bytes;
use hardlight_core::{
    codec::{self, Codable},
    frame::{FrameHeader, Kind},
    message::encode_frame,
    Compression, Topic,
};

use super::hub::Hub;

/// One emitted event as every subscriber will receive it.
#[derive(Debug)]
pub(crate) struct EncodedEvent {
    body: codec::Bytes,
    compression: Compression,
    plain: OnceLock<Bytes>,
    compressed: OnceLock<Bytes>,
}

impl EncodedEvent {
    pub(crate) fn new(body: codec::Bytes, compression: Compression) -> Self {
        Self {
            body,
            compression,
            plain: OnceLock::new(),
            compressed: OnceLock::new(),
        }
    }

    /// The frame for a connection that negotiated `compressed` (or not).
    pub(crate) fn frame(&self, compressed: bool) -> Bytes {
        let (cell, compression) = if compressed {
            (&self.compressed, self.compression)
        } else {
            (&self.plain, Compression::None)
        };
        cell.get_or_init(|| {
            encode_frame(FrameHeader::new(Kind::Event, 0), &self.body, compression)
                .map(Bytes::from)
                .unwrap_or_default()
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
    /// slow client: a full queue applies the server's slow-consumer policy.
    pub async fn emit(&self, topic: &Topic, event: E) -> usize {
        let Some(subscribers) = self.hub.subscribers(topic) else {
            return 0;
        };
        let body = match codec::encode(&(topic.clone(), event)) {
            Ok(body) if body.len() <= self.max_message_size as usize => body,
            Ok(body) => {
                tracing::warn!(%topic, size = body.len(), "event larger than max_message_size; not sent");
                return 0;
            }
            Err(error) => {
                tracing::warn!(%topic, %error, "event failed to serialize; not sent");
                return 0;
            }
        };
        let event = Arc::new(EncodedEvent::new(body, self.compression));
        for outbox in subscribers.iter() {
            outbox.push(Arc::clone(&event));
        }
        subscribers.len()
    }
}
