//! A connection's topic subscriptions, as `self.subscriptions` in handlers.

use std::{
    collections::HashMap,
    sync::{Arc, Mutex, MutexGuard},
};

use hardlight_core::Topic;

use super::{hub::Hub, outbox::Outbox};
use crate::{
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
}

impl Subscriptions {
    pub(crate) fn new(hub: Arc<Hub>, outbox: Arc<Outbox>, max: usize) -> Self {
        Self {
            inner: Arc::new(Inner {
                hub,
                outbox,
                max,
                topics: Mutex::new(Some(HashMap::new())),
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

    /// Ends every subscription; later `add`s are ignored.
    pub(crate) fn close(&self) {
        let topics = self.lock().take();
        for (topic, _charge) in topics.into_iter().flatten() {
            self.inner.hub.unsubscribe(&topic, &self.inner.outbox);
        }
    }

    fn lock(&self) -> MutexGuard<'_, Option<HashMap<Topic, Charge>>> {
        lock(&self.inner.topics)
    }
}
