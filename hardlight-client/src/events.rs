//! Receiving events: the typed subscription stream.

use std::sync::Arc;

use hardlight_core::Topic;

use crate::{
    durable::DurableEvent,
    event_buffer::{Missed, Receiver},
};

/// An event received on a topic.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub struct Event<E> {
    /// The topic it was emitted on.
    pub topic: Topic,
    /// The event itself, of the service's event type.
    pub payload: E,
    /// Sent unreliably (`EventEmitter::emit_unreliable`): such events may be lost or
    /// dropped, and may arrive out of order with the others; the reliable ones are all
    /// delivered, in order, whatever happens to these.
    pub unreliable: bool,
}

/// What the push-stream reader hands to subscriptions.
#[derive(Debug, Clone)]
pub(crate) enum Pushed<E> {
    Event(Event<E>),
    /// The server dropped this many events for this connection.
    Lost(u64),
    /// Events of this topic from other servers may be missing here.
    Gap(Topic),
    /// A durable event for one of the connection's consumers: boxed, being several times
    /// an event's size and rarer, so that every slot of the client's event buffer does not
    /// take its size.
    Durable(Arc<DurableEvent<E>>),
    /// A reconnection started a new server session: the old one's subscriptions are gone.
    Reset,
}

/// Why [`Subscription::recv`] returned no event.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum RecvError {
    /// This many events were lost (the server's queue for this connection overflowed, or
    /// this subscription fell behind the client's event buffer). The subscription
    /// continues: call `recv` again.
    #[error("{0} events were lost; the subscription continues")]
    Lagged(u64),
    /// The client was dropped; no more events will come.
    #[error("the client is gone; no more events")]
    Closed,
    /// The client reconnected but the server no longer had its session (it restarted, or
    /// the gap outlasted its grace period): the topics the old session was subscribed to,
    /// and events sent meanwhile, are gone. Subscribe again (the stream itself goes on).
    #[error(
        "the connection was re-established as a new session; its topic subscriptions were lost"
    )]
    SessionReset,
    /// Events of this topic may be missing at this point of the stream: the server's link
    /// to the other servers of its cluster was interrupted (a `Gap` is sent when the link
    /// goes down and again when it is back, so events emitted on other servers between
    /// the two may be missing), or an event from another server could not be delivered.
    /// Events emitted on the client's own server are not affected. The subscription
    /// continues: resynchronize the topic's data if it matters (e.g. fetch it by a call).
    #[error(
        "events of topic {0} from other servers may be missing here; the subscription continues"
    )]
    Gap(Topic),
    /// The server's durable store is not the one this consumer's events came from so far
    /// (it was deleted, lost or recreated): positions from before mean nothing now.
    /// Resynchronize what depends on them; the next `recv` returns the event that showed
    /// the change.
    #[error("the server's durable store changed for {topic} (consumer {consumer}): epoch {previous} became {epoch}; resynchronize")]
    EpochChanged {
        /// The topic.
        topic: Topic,
        /// The consumer.
        consumer: String,
        /// The epoch of the events before.
        previous: u64,
        /// The new epoch.
        epoch: u64,
    },
}

/// A stream of the events of the topics the server subscribed this connection to.
///
/// From `client.subscribe()`. Every subscription sees every event received after it was
/// created, in the order the server emitted them; losses are reported, never skipped over.
///
/// ```no_run
/// # async fn demo(mut events: hardlight_client::Subscription<String>) {
/// use hardlight_client::RecvError;
/// loop {
///     match events.recv().await {
///         Ok(event) => println!("{}: {}", event.topic, event.payload),
///         Err(RecvError::Lagged(n)) => eprintln!("missed {n} events"),
///         Err(RecvError::SessionReset) => eprintln!("new session: join the topics again"),
///         Err(RecvError::Gap(topic)) => eprintln!("{topic}: events may be missing"),
///         Err(RecvError::Closed) => break,
///         Err(_) => {}
///     }
/// }
/// # }
/// ```
#[derive(Debug)]
pub struct Subscription<E> {
    pub(crate) rx: Receiver<Pushed<E>>,
    pub(crate) topic: Option<Topic>,
}

impl<E: Clone> Subscription<E> {
    /// Keeps only the events of `topic` (losses counted for the whole connection are still
    /// reported, since they may concern it; gaps of other topics are not).
    pub fn only(mut self, topic: impl Into<Topic>) -> Self {
        self.topic = Some(topic.into());
        self
    }

    /// The next event.
    pub async fn recv(&mut self) -> Result<Event<E>, RecvError> {
        let only = self.topic.as_ref();
        let ours = |topic: &Topic| only.is_none_or(|t| t == topic);
        // the events of other topics and durable events are passed over, not copied
        let wanted = |pushed: &Pushed<E>| match pushed {
            Pushed::Event(event) => ours(&event.topic),
            Pushed::Gap(topic) => ours(topic),
            Pushed::Durable(_) => false,
            Pushed::Lost(_) | Pushed::Reset => true,
        };
        match self.rx.recv_where(wanted).await {
            Ok(Pushed::Event(event)) => Ok(event),
            Ok(Pushed::Lost(n)) | Err(Missed::Lagged(n)) => Err(RecvError::Lagged(n)),
            Ok(Pushed::Gap(topic)) => Err(RecvError::Gap(topic)),
            Ok(Pushed::Reset) => Err(RecvError::SessionReset),
            // (a durable event is never wanted here)
            Ok(Pushed::Durable(_)) | Err(Missed::Closed) => Err(RecvError::Closed),
        }
    }
}
