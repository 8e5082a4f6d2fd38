//! The in-process topic hub: which connections are subscribed to which topics.

use std::{
    collections::HashMap,
    hash::{BuildHasher, RandomState},
    sync::{Arc, Mutex, RwLock},
};

use hardlight_core::Topic;
use tokio::sync::mpsc;

use super::{
    notifier::{TopicNotification, TopicNotifier},
    outbox::Outbox,
};
use crate::sync::{lock, read, write};

const SHARDS: usize = 16;

type Subscribers = Arc<[Arc<Outbox>]>;

/// Topics are spread over shards so that emitters and subscribers of different topics
/// rarely meet on a lock. Each topic's subscriber list is copy-on-write: an emit clones one
/// `Arc` under a brief read lock and sends with no lock held.
#[derive(Debug)]
pub(crate) struct Hub {
    shards: Vec<RwLock<HashMap<Topic, Subscribers>>>,
    hasher: RandomState,
    notifiers: Mutex<Vec<mpsc::UnboundedSender<TopicNotification>>>,
}

impl Hub {
    pub(crate) fn new() -> Arc<Self> {
        Arc::new(Self {
            shards: (0..SHARDS).map(|_| RwLock::default()).collect(),
            hasher: RandomState::new(),
            notifiers: Mutex::default(),
        })
    }

    /// A new receiver of topic notifications.
    pub(crate) fn notifier(&self) -> TopicNotifier {
        let (tx, rx) = mpsc::unbounded_channel();
        lock(&self.notifiers).push(tx);
        TopicNotifier { rx }
    }

    /// The current subscribers of `topic`.
    pub(crate) fn subscribers(&self, topic: &Topic) -> Option<Subscribers> {
        let shard = read(self.shard(topic));
        shard.get(topic).cloned()
    }

    /// Adds `outbox` to `topic` (the caller ensures it is not there yet).
    pub(crate) fn subscribe(&self, topic: &Topic, outbox: &Arc<Outbox>) {
        let mut shard = write(self.shard(topic));
        let list = match shard.get(topic) {
            Some(list) => list.iter().cloned().chain([Arc::clone(outbox)]).collect(),
            None => {
                self.notify(TopicNotification::Created(topic.clone()));
                Arc::from([Arc::clone(outbox)])
            }
        };
        shard.insert(topic.clone(), list);
    }

    /// Removes `outbox` from `topic`.
    pub(crate) fn unsubscribe(&self, topic: &Topic, outbox: &Arc<Outbox>) {
        let mut shard = write(self.shard(topic));
        let Some(list) = shard.get(topic) else { return };
        let rest: Subscribers = list
            .iter()
            .filter(|o| !Arc::ptr_eq(o, outbox))
            .cloned()
            .collect();
        if rest.is_empty() {
            shard.remove(topic);
            self.notify(TopicNotification::Removed(topic.clone()));
        } else {
            shard.insert(topic.clone(), rest);
        }
    }

    /// Sent while the topic's shard is locked, so notifications of a topic stay in order.
    fn notify(&self, notification: TopicNotification) {
        lock(&self.notifiers).retain(|tx| tx.send(notification.clone()).is_ok());
    }

    fn shard(&self, topic: &Topic) -> &RwLock<HashMap<Topic, Subscribers>> {
        let index = self.hasher.hash_one(topic) as usize % SHARDS;
        &self.shards[index]
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::topics::SlowConsumerPolicy;

    #[tokio::test]
    async fn every_notifier_sees_every_change_in_order() {
        let hub = Hub::new();
        let (mut first, mut second) = (hub.notifier(), hub.notifier());
        let (a, b) = (
            Outbox::new(
                4,
                0,
                SlowConsumerPolicy::DropOldest,
                crate::stats::Meter::new(Arc::default()),
            ),
            Outbox::new(
                4,
                0,
                SlowConsumerPolicy::DropOldest,
                crate::stats::Meter::new(Arc::default()),
            ),
        );
        let topic = Topic::from("t");
        hub.subscribe(&topic, &a);
        hub.subscribe(&topic, &b);
        assert_eq!(hub.subscribers(&topic).map(|s| s.len()), Some(2));
        hub.unsubscribe(&topic, &a);
        hub.unsubscribe(&topic, &b);
        assert!(hub.subscribers(&topic).is_none());
        for notifier in [&mut first, &mut second] {
            assert_eq!(
                notifier.recv().await,
                Some(TopicNotification::Created(topic.clone()))
            );
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
