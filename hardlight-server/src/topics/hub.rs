//! The in-process topic hub: which connections are subscribed to which topics.

use std::{
    collections::HashMap,
    hash::{BuildHasher, RandomState},
    sync::{Arc, Mutex, OnceLock, RwLock, Weak},
};

use hardlight_core::Topic;

use super::{
    encoded::EncodedEvent,
    notifier::{Pending, TopicNotification, TopicNotifier},
    outbox::Outbox,
};
#[cfg(feature = "nats")]
use crate::cluster::Outbound;
use crate::{
    durable::Durable,
    memory_budget::MemoryBudget,
    sync::{lock, read, write},
    EmitError,
};

const SHARDS: usize = 16;

/// A topic's subscribers as an emit sends to them.
type Subscribers = Arc<[Arc<Outbox>]>;

/// One topic's subscribers: the list that subscribing and unsubscribing change in place,
/// and the snapshot emits share, made again by the first emit after a change. A burst of
/// N subscriptions to a hot topic costs O(N), not a copy of the list each.
#[derive(Debug, Default)]
struct Entry {
    list: Vec<Arc<Outbox>>,
    snapshot: OnceLock<Subscribers>,
}

impl Entry {
    fn changed(&mut self) {
        self.snapshot = OnceLock::new();
    }
}

/// Topics are spread over shards so that emitters and subscribers of different topics
/// rarely meet on a lock. An emit clones one `Arc` of the topic's snapshot under a brief
/// read lock and sends with no lock held.
#[derive(Debug)]
pub(crate) struct Hub {
    shards: Vec<RwLock<HashMap<Topic, Entry>>>,
    hasher: RandomState,
    notifiers: Mutex<Vec<Weak<Pending>>>,
    memory: Arc<MemoryBudget>,
    /// The durable topics, if configured.
    durable: OnceLock<Arc<Durable>>,
    /// Where events for the other servers of a cluster go.
    #[cfg(feature = "nats")]
    outbound: Option<Arc<Outbound>>,
}

impl Hub {
    /// A hub whose events and subscriptions are charged to `memory`.
    pub(crate) fn new(memory: Arc<MemoryBudget>) -> Arc<Self> {
        Arc::new(Self::local(memory))
    }

    /// A hub that also forwards every event to the other servers of a cluster through
    /// `outbound`.
    #[cfg(feature = "nats")]
    pub(crate) fn clustered(memory: Arc<MemoryBudget>, outbound: Arc<Outbound>) -> Arc<Self> {
        let mut hub = Self::local(memory);
        hub.outbound = Some(outbound);
        Arc::new(hub)
    }

    fn local(memory: Arc<MemoryBudget>) -> Self {
        Self {
            shards: (0..SHARDS).map(|_| RwLock::default()).collect(),
            hasher: RandomState::new(),
            notifiers: Mutex::default(),
            memory,
            durable: OnceLock::new(),
            #[cfg(feature = "nats")]
            outbound: None,
        }
    }

    /// Whether emitted events go to other servers too, whether or not this one has
    /// subscribers for them.
    pub(crate) fn forwards(&self) -> bool {
        #[cfg(feature = "nats")]
        return self.outbound.is_some();
        #[cfg(not(feature = "nats"))]
        false
    }

    /// Refuses an event of `size` bytes the cluster's NATS would refuse.
    pub(crate) fn check_forward(&self, size: usize) -> Result<(), EmitError> {
        #[cfg(feature = "nats")]
        if let Some(outbound) = &self.outbound {
            outbound.check_size(size)?;
        }
        let _ = size;
        Ok(())
    }

    /// Queues `event` for the other servers of the cluster, if any.
    pub(crate) fn forward(&self, topic: &Topic, event: &Arc<EncodedEvent>) {
        #[cfg(feature = "nats")]
        if let Some(outbound) = &self.outbound {
            outbound.forward(topic, event);
        }
        let _ = (topic, event);
    }

    /// Tells every subscriber of `topic` that events of it may be missing at this point of
    /// their stream; returns how many were told.
    #[cfg(feature = "nats")]
    pub(crate) fn gap(&self, topic: &Topic) -> usize {
        let Some(subscribers) = self.subscribers(topic) else {
            return 0;
        };
        let Ok(gap) = EncodedEvent::gap(topic, &self.memory) else {
            return 0;
        };
        let gap = Arc::new(gap);
        for outbox in subscribers.iter() {
            outbox.push(Arc::clone(&gap));
        }
        subscribers.len()
    }

    /// Gives the hub the server's durable topics (once, at the server's creation).
    pub(crate) fn set_durable(&self, durable: Arc<Durable>) {
        let _ = self.durable.set(durable);
    }

    /// The durable topics, if configured.
    pub(crate) fn durable(&self) -> Option<&Arc<Durable>> {
        self.durable.get()
    }

    /// The server's memory budget.
    pub(crate) fn memory(&self) -> &Arc<MemoryBudget> {
        &self.memory
    }

    /// A new receiver of topic notifications.
    pub(crate) fn notifier(&self) -> TopicNotifier {
        let pending = Arc::<Pending>::default();
        lock(&self.notifiers).push(Arc::downgrade(&pending));
        TopicNotifier { pending }
    }

    /// The current subscribers of `topic`.
    pub(crate) fn subscribers(&self, topic: &Topic) -> Option<Subscribers> {
        let shard = read(self.shard(topic));
        let entry = shard.get(topic)?;
        Some(Arc::clone(
            entry
                .snapshot
                .get_or_init(|| Arc::from(entry.list.as_slice())),
        ))
    }

    /// Adds `outbox` to `topic` (the caller ensures it is not there yet).
    pub(crate) fn subscribe(&self, topic: &Topic, outbox: &Arc<Outbox>) {
        let mut shard = write(self.shard(topic));
        let entry = shard.entry(topic.clone()).or_insert_with(|| {
            self.notify(TopicNotification::Created(topic.clone()));
            Entry::default()
        });
        entry.list.push(Arc::clone(outbox));
        entry.changed();
    }

    /// Removes `outbox` from `topic`.
    pub(crate) fn unsubscribe(&self, topic: &Topic, outbox: &Arc<Outbox>) {
        let mut shard = write(self.shard(topic));
        let Some(entry) = shard.get_mut(topic) else {
            return;
        };
        let Some(at) = entry.list.iter().position(|o| Arc::ptr_eq(o, outbox)) else {
            return;
        };
        entry.list.swap_remove(at);
        entry.changed();
        if entry.list.is_empty() {
            shard.remove(topic);
            self.notify(TopicNotification::Removed(topic.clone()));
        }
    }

    /// Sent while the topic's shard is locked, so notifications of a topic stay in order
    /// (and alternate: created, removed, created...).
    fn notify(&self, notification: TopicNotification) {
        lock(&self.notifiers).retain(|notifier| match notifier.upgrade() {
            Some(pending) => {
                pending.push(&notification);
                true
            }
            None => false,
        });
    }

    fn shard(&self, topic: &Topic) -> &RwLock<HashMap<Topic, Entry>> {
        let index = self.hasher.hash_one(topic) as usize % SHARDS;
        &self.shards[index]
    }
}

impl Drop for Hub {
    /// The server is gone: notifiers return `None` once they have read what is pending.
    fn drop(&mut self) {
        for notifier in lock(&self.notifiers).drain(..) {
            if let Some(pending) = notifier.upgrade() {
                pending.close();
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::topics::{outbox::Bounds, SlowConsumerPolicy};

    #[tokio::test]
    async fn every_notifier_sees_every_change_in_order() {
        let hub = Hub::new(Arc::default());
        let (mut first, mut second) = (hub.notifier(), hub.notifier());
        let outbox = || {
            let bounds = Bounds {
                events: 4,
                bytes: usize::MAX,
                replay: 0,
            };
            let meter = crate::stats::Meter::new(Arc::default());
            Outbox::new(bounds, SlowConsumerPolicy::DropOldest, meter)
        };
        let (a, b) = (outbox(), outbox());
        let topic = Topic::from("t");
        hub.subscribe(&topic, &a);
        hub.subscribe(&topic, &b);
        assert_eq!(hub.subscribers(&topic).map(|s| s.len()), Some(2));
        for notifier in [&mut first, &mut second] {
            assert_eq!(
                notifier.recv().await,
                Some(TopicNotification::Created(topic.clone()))
            );
        }
        hub.unsubscribe(&topic, &a);
        hub.unsubscribe(&topic, &b);
        assert!(hub.subscribers(&topic).is_none());
        for notifier in [&mut first, &mut second] {
            assert_eq!(
                notifier.recv().await,
                Some(TopicNotification::Removed(topic.clone()))
            );
        }
        drop(second);
        hub.subscribe(&topic, &a);
        assert_eq!(first.recv().await, Some(TopicNotification::Created(topic)));
    }
}
