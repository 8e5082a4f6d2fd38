//! A connection's topic subscriptions, as `self.subscriptions` in handlers.

use std::{
    collections::HashMap,
    sync::{Arc, Mutex, MutexGuard},
};

use hardlight_core::{durable::Position, Topic};

use super::{hub::Hub, outbox::Outbox};
use crate::{
    durable::{Attachment, DurableSubscribeError, StartAt},
    memory_budget::{Charge, SUBSCRIPTION_BYTES},
    sync::lock,
};

/// Why a subscription was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum SubscribeError {
    /// The connection already holds `ServerLimits::max_subscriptions` topics.
    #[error("the connection already holds {max} subscriptions (ServerLimits::max_subscriptions); remove one first or raise the limit")]
    TooMany {
        /// The limit.
        max: usize,
    },
    /// The server's memory budget (`ServerLimits::memory_budget`), which subscribed topic
    /// names are charged to, is spent. Retriable.
    #[error("server memory budget ({limit} bytes, ServerLimits::memory_budget) is spent; subscription refused")]
    Overloaded {
        /// The budget.
        limit: u64,
    },
}

/// The topics this connection receives events of. Cheap to clone.
///
/// Subscriptions end with the connection: when the client disconnects, every topic it was
/// the last subscriber of is reported as removed.
#[derive(Debug, Clone)]
pub struct Subscriptions {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    hub: Arc<Hub>,
    outbox: Arc<Outbox>,
    max: usize,
    /// `None` once the connection has ended. Each topic holds its charge to the server's
    /// memory budget: its name, twice (here and in the hub), and its entries.
    topics: Mutex<Option<HashMap<Topic, Charge>>>,
    /// The durable consumers attached to the connection, by slot (`None`: free).
    durable: Mutex<Vec<Option<Arc<Attachment>>>>,
    /// One durable subscription is made at a time.
    adding: tokio::sync::Mutex<()>,
}

impl Subscriptions {
    pub(crate) fn new(hub: Arc<Hub>, outbox: Arc<Outbox>, max: usize) -> Self {
        Self {
            inner: Arc::new(Inner {
                hub,
                outbox,
                max,
                topics: Mutex::new(Some(HashMap::new())),
                durable: Mutex::default(),
                adding: tokio::sync::Mutex::new(()),
            }),
        }
    }

    /// Subscribes the connection to `topic`; returns `false` if it already was, if the
    /// connection has ended, or if it holds `ServerLimits::max_subscriptions` topics already
    /// (logged; [`Subscriptions::try_add`] reports that as an error).
    pub fn add(&self, topic: &Topic) -> bool {
        self.try_add(topic).unwrap_or_else(|error| {
            tracing::warn!(%topic, %error, "subscription refused");
            false
        })
    }

    /// Subscribes the connection to `topic`: `Ok(false)` if it already was (or the
    /// connection has ended), an error if it holds `ServerLimits::max_subscriptions` topics
    /// or the server's memory budget cannot take the topic's name.
    ///
    /// ```no_run
    /// # fn demo(subscriptions: &hardlight_server::Subscriptions) {
    /// use hardlight_server::SubscribeError;
    /// match subscriptions.try_add(&"rooms/42".into()) {
    ///     Ok(added) => println!("subscribed: {added}"),
    ///     Err(SubscribeError::TooMany { max }) => println!("at most {max} topics"),
    ///     Err(error) => println!("{error}"),
    /// }
    /// # }
    /// ```
    pub fn try_add(&self, topic: &Topic) -> Result<bool, SubscribeError> {
        let mut topics = self.lock();
        let Some(topics) = topics.as_mut() else {
            return Ok(false);
        };
        if topics.contains_key(topic) {
            return Ok(false);
        }
        if topics.len() >= self.inner.max {
            return Err(SubscribeError::TooMany {
                max: self.inner.max,
            });
        }
        let bytes = 2 * topic.as_bytes().len() as u64 + SUBSCRIPTION_BYTES;
        let charge = self
            .inner
            .hub
            .memory()
            .charge(bytes)
            .map_err(|e| SubscribeError::Overloaded { limit: e.limit })?;
        topics.insert(topic.clone(), charge);
        self.inner.hub.subscribe(topic, &self.inner.outbox);
        Ok(true)
    }

    /// Unsubscribes the connection from `topic`; returns `false` if it was not subscribed.
    pub fn remove(&self, topic: &Topic) -> bool {
        let mut topics = self.lock();
        let Some(topics) = topics.as_mut() else {
            return false;
        };
        let removed = topics.remove(topic).is_some();
        if removed {
            self.inner.hub.unsubscribe(topic, &self.inner.outbox);
        }
        removed
    }

    /// Whether the connection is subscribed to `topic`.
    pub fn contains(&self, topic: &Topic) -> bool {
        self.lock().as_ref().is_some_and(|t| t.contains_key(topic))
    }

    /// The topics the connection is subscribed to.
    pub fn topics(&self) -> Vec<Topic> {
        self.lock()
            .as_ref()
            .map(|t| t.keys().cloned().collect())
            .unwrap_or_default()
    }

    /// Subscribes the connection to durable topic `topic` as consumer `consumer`, from
    /// `start`, and returns the consumer's ack floor (every event up to it is acked). The
    /// client receives each event with its position and delivery attempt, and acks it;
    /// unacked events come again after the ack wait. A consumer is attached to one
    /// connection at a time: attaching it here detaches it from any other, whose unacked
    /// events come here at once. Needs `ServerConfig::with_durable`.
    ///
    /// ```no_run
    /// # async fn demo(subscriptions: &hardlight_server::Subscriptions) -> Result<(), hardlight_server::DurableSubscribeError> {
    /// use hardlight_server::StartAt;
    /// let floor = subscriptions.add_durable(&"inbox/bob".into(), "bob", StartAt::AckFloor).await?;
    /// println!("bob has processed everything up to {floor}");
    /// # Ok(()) }
    /// ```
    pub async fn add_durable(
        &self,
        topic: &Topic,
        consumer: &str,
        start: StartAt,
    ) -> Result<Position, DurableSubscribeError> {
        let durable = self
            .inner
            .hub
            .durable()
            .ok_or(DurableSubscribeError::NotConfigured)?;
        let _one = self.inner.adding.lock().await;
        if self.lock().is_none() {
            return Err(DurableSubscribeError::Ended);
        }
        let max = durable
            .config
            .max_consumers_per_connection
            .min(usize::from(u16::MAX));
        let slot = {
            let mut slots = lock(&self.inner.durable);
            let same = slots.iter().position(|slot| {
                slot.as_ref()
                    .is_some_and(|a| a.topic == *topic && a.consumer == consumer)
            });
            match same.or_else(|| slots.iter().position(Option::is_none)) {
                Some(slot) => {
                    if let Some(previous) = slots[slot].take() {
                        previous.stop();
                    }
                    slot
                }
                None if slots.len() < max => {
                    slots.push(None);
                    slots.len() - 1
                }
                None => return Err(DurableSubscribeError::TooMany { max }),
            }
        };
        let outbox = Arc::clone(&self.inner.outbox);
        let (attachment, floor) = durable
            .attach(topic, consumer, start, slot as u16, outbox)
            .await?;
        let ended = self.lock().is_none();
        if ended {
            attachment.stop();
            return Err(DurableSubscribeError::Ended);
        }
        lock(&self.inner.durable)[slot] = Some(attachment);
        Ok(floor)
    }

    /// Detaches consumer `consumer` of durable topic `topic` from the connection; its
    /// unacked events stay pending for its next attachment. `false` if it was not
    /// attached here.
    pub fn remove_durable(&self, topic: &Topic, consumer: &str) -> bool {
        let mut slots = lock(&self.inner.durable);
        let found = slots.iter_mut().find(|slot| {
            slot.as_ref()
                .is_some_and(|a| a.topic == *topic && a.consumer == consumer)
        });
        match found.and_then(Option::take) {
            Some(attachment) => {
                attachment.stop();
                true
            }
            None => false,
        }
    }

    /// The client acked event `seq` of the consumer in `slot` (an unknown slot or event is
    /// ignored: it was acked before, or its consumer detached).
    pub(crate) fn ack(&self, slot: u16, seq: u64) {
        let attachment = lock(&self.inner.durable)
            .get(usize::from(slot))
            .and_then(Clone::clone);
        if let Some(attachment) = attachment {
            attachment.ack(seq);
        }
    }

    /// Ends every subscription; later `add`s are ignored.
    pub(crate) fn close(&self) {
        let topics = self.lock().take();
        for (topic, _charge) in topics.into_iter().flatten() {
            self.inner.hub.unsubscribe(&topic, &self.inner.outbox);
        }
        let attachments = std::mem::take(&mut *lock(&self.inner.durable));
        for attachment in attachments.into_iter().flatten() {
            attachment.stop();
        }
    }

    fn lock(&self) -> MutexGuard<'_, Option<HashMap<Topic, Charge>>> {
        lock(&self.inner.topics)
    }
}
