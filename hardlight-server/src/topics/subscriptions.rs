//! A connection's topic subscriptions, as `self.subscriptions` in handlers.

use std::{
    collections::HashSet,
    sync::{Arc, Mutex, MutexGuard},
};

use hardlight_core::Topic;

use super::{hub::Hub, outbox::Outbox};
use crate::sync::lock;

/// A connection already holds `ServerLimits::max_subscriptions` topics.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("the connection already holds {max} subscriptions (ServerLimits::max_subscriptions); remove one first or raise the limit")]
pub struct SubscriptionLimit {
    /// The limit.
    pub max: usize,
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
    /// `None` once the connection has ended.
    topics: Mutex<Option<HashSet<Topic>>>,
}

impl Subscriptions {
    pub(crate) fn new(hub: Arc<Hub>, outbox: Arc<Outbox>, max: usize) -> Self {
        Self {
            inner: Arc::new(Inner {
                hub,
                outbox,
                max,
                topics: Mutex::new(Some(HashSet::new())),
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
    /// connection has ended), an error if it holds `ServerLimits::max_subscriptions` topics.
    pub fn try_add(&self, topic: &Topic) -> Result<bool, SubscriptionLimit> {
        let mut topics = self.lock();
        let Some(topics) = topics.as_mut() else {
            return Ok(false);
        };
        if topics.contains(topic) {
            return Ok(false);
        }
        if topics.len() >= self.inner.max {
            return Err(SubscriptionLimit {
                max: self.inner.max,
            });
        }
        topics.insert(topic.clone());
        self.inner.hub.subscribe(topic, &self.inner.outbox);
        Ok(true)
    }

    /// Unsubscribes the connection from `topic`; returns `false` if it was not subscribed.
    pub fn remove(&self, topic: &Topic) -> bool {
        let mut topics = self.lock();
        let Some(topics) = topics.as_mut() else {
            return false;
        };
        let removed = topics.remove(topic);
        if removed {
            self.inner.hub.unsubscribe(topic, &self.inner.outbox);
        }
        removed
    }

    /// Whether the connection is subscribed to `topic`.
    pub fn contains(&self, topic: &Topic) -> bool {
        self.lock().as_ref().is_some_and(|t| t.contains(topic))
    }

    /// The topics the connection is subscribed to.
    pub fn topics(&self) -> Vec<Topic> {
        self.lock()
            .as_ref()
            .map(|t| t.iter().cloned().collect())
            .unwrap_or_default()
    }

    /// Ends every subscription; later `add`s are ignored.
    pub(crate) fn close(&self) {
        let topics = self.lock().take();
        for topic in topics.into_iter().flatten() {
            self.inner.hub.unsubscribe(&topic, &self.inner.outbox);
        }
    }

    fn lock(&self) -> MutexGuard<'_, Option<HashSet<Topic>>> {
        lock(&self.inner.topics)
    }
}
