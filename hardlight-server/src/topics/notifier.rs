//! Notifications about topics gaining their first or losing their last subscriber.

use std::{
    collections::{HashMap, VecDeque},
    sync::{Arc, Mutex},
};

use hardlight_core::Topic;
use tokio::sync::Notify;

use crate::sync::lock;

/// A change in the set of topics that have subscribers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TopicNotification {
    /// The topic gained its first subscriber.
    Created(Topic),
    /// The topic lost its last subscriber (unsubscribed or disconnected).
    Removed(Topic),
}

impl TopicNotification {
    fn topic(&self) -> &Topic {
        match self {
            Self::Created(topic) | Self::Removed(topic) => topic,
        }
    }
}

/// Receives [`TopicNotification`]s, in order per topic; from `Server::get_topic_notifier()`.
///
/// Changes not yet received are kept at most one per topic: a topic created and removed
/// again before the notifier reads either (or removed and created again) is not reported
/// at all, since the set of topics it shows is the same. So a notifier read late, or never,
/// holds no more than one entry per topic that exists or that it was last told exists;
/// reading it brings its view up to date. Drop it to stop collecting.
///
/// ```no_run
/// # async fn demo(mut notifier: hardlight_server::TopicNotifier) {
/// use hardlight_server::TopicNotification;
/// while let Some(change) = notifier.recv().await {
///     match change {
///         TopicNotification::Created(topic) => println!("{topic} has subscribers"),
///         TopicNotification::Removed(topic) => println!("{topic} has none"),
///     }
/// }
/// # }
/// ```
#[derive(Debug)]
pub struct TopicNotifier {
    pub(crate) pending: Arc<Pending>,
}

impl TopicNotifier {
    /// The next notification; `None` once the server is gone.
    pub async fn recv(&mut self) -> Option<TopicNotification> {
        loop {
            let ready = self.pending.ready.notified();
            {
                let mut changes = lock(&self.pending.changes);
                if let Some(change) = changes.pop() {
                    return Some(change);
                }
                if changes.closed {
                    return None;
                }
            }
            ready.await;
        }
    }
}

/// One notifier's changes not yet received, shared with the hub.
#[derive(Debug, Default)]
pub(crate) struct Pending {
    changes: Mutex<Changes>,
    ready: Notify,
}

#[derive(Debug, Default)]
struct Changes {
    /// Topics in the order their pending change was made; an entry whose number is not the
    /// topic's in `latest` was cancelled.
    order: VecDeque<(Topic, u64)>,
    /// The pending change of each topic, and its number.
    latest: HashMap<Topic, (TopicNotification, u64)>,
    next: u64,
    /// The hub is gone: nothing more will come.
    closed: bool,
}

impl Pending {
    /// Records `change`; it cancels an opposite change of the same topic still pending.
    pub(crate) fn push(&self, change: &TopicNotification) {
        let mut changes = lock(&self.changes);
        let topic = change.topic();
        if changes.latest.remove(topic).is_none() {
            let number = changes.next;
            changes.next += 1;
            changes.order.push_back((topic.clone(), number));
            changes
                .latest
                .insert(topic.clone(), (change.clone(), number));
        }
        changes.compact();
        drop(changes);
        self.ready.notify_one();
    }

    /// Nothing more will be pushed.
    pub(crate) fn close(&self) {
        lock(&self.changes).closed = true;
        self.ready.notify_one();
    }
}

impl Changes {
    fn pop(&mut self) -> Option<TopicNotification> {
        while let Some((topic, number)) = self.order.pop_front() {
            if self.latest.get(&topic).is_some_and(|(_, n)| *n == number) {
                return self.latest.remove(&topic).map(|(change, _)| change);
            }
        }
        None
    }

    /// Drops cancelled entries once they outnumber the live ones.
    fn compact(&mut self) {
        if self.order.len() > 2 * self.latest.len() + 64 {
            let latest = &self.latest;
            self.order
                .retain(|(topic, number)| latest.get(topic).is_some_and(|(_, n)| n == number));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn created(name: &str) -> TopicNotification {
        TopicNotification::Created(Topic::from(name))
    }

    fn removed(name: &str) -> TopicNotification {
        TopicNotification::Removed(Topic::from(name))
    }

    #[tokio::test]
    async fn changes_that_cancel_out_are_not_reported_and_memory_stays_bounded() {
        let mut notifier = TopicNotifier {
            pending: Arc::default(),
        };
        let pending = Arc::clone(&notifier.pending);
        pending.push(&created("a"));
        for i in 0..10_000 {
            let churn = format!("churn-{}", i % 3);
            pending.push(&created(&churn));
            pending.push(&removed(&churn));
        }
        pending.push(&created("b"));
        {
            let changes = lock(&pending.changes);
            assert_eq!(changes.latest.len(), 2);
            assert!(
                changes.order.len() <= 2 * 2 + 64 + 1,
                "{}",
                changes.order.len()
            );
        }
        assert_eq!(notifier.recv().await, Some(created("a")));
        assert_eq!(notifier.recv().await, Some(created("b")));
        // told that `a` exists, the notifier hears of its removal; a removal and a
        // re-creation before it reads cancel out
        pending.push(&removed("a"));
        pending.push(&removed("b"));
        pending.push(&created("b"));
        assert_eq!(notifier.recv().await, Some(removed("a")));
        pending.close();
        assert_eq!(notifier.recv().await, None);
    }
}
