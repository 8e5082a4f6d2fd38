//! Which topics this server subscribes to in NATS — those with local subscribers, each
//! kept for a linger after its last one leaves — and the gaps its local subscribers are
//! told of.

use std::{
    collections::{HashMap, VecDeque},
    sync::{Arc, Mutex},
    time::Duration,
};

use async_nats::{Client, Subscriber};
use futures_util::{FutureExt, StreamExt};
use hardlight_core::Topic;
use tokio::{
    sync::{watch, Notify},
    task::{AbortHandle, JoinSet},
    time::{sleep_until, timeout, Instant},
};
use tracing::debug;

use super::{
    inbound::Inbound,
    link::{round_trip, LinkState},
    topic_set::TopicSet,
};
use crate::{
    sync::lock,
    topics::{TopicNotification, TopicNotifier},
};

/// Topics whose local subscribers are to be told of a gap: marked by whoever finds an
/// event lost, reported by the interest task.
#[derive(Debug, Default)]
pub(crate) struct Marks {
    topics: Mutex<TopicSet>,
    ready: Notify,
}

impl Marks {
    /// Marks `topic`.
    pub(crate) fn mark(&self, topic: &Topic) {
        lock(&self.topics).insert(topic);
        self.ready.notify_one();
    }

    /// Marks every topic.
    pub(crate) fn mark_all(&self) {
        *lock(&self.topics) = TopicSet::all();
        self.ready.notify_one();
    }

    async fn take(&self) -> TopicSet {
        loop {
            let ready = self.ready.notified();
            let topics = lock(&self.topics).take();
            if !topics.is_empty() {
                return topics;
            }
            ready.await;
        }
    }
}

/// A topic subscribed in NATS.
struct Linked {
    /// The task receiving its events; aborting it drops the NATS subscription.
    receiver: AbortHandle,
    /// When it is to be unsubscribed, having no local subscriber since.
    until: Option<Instant>,
}

/// What the interest task works with.
pub(crate) struct Interest {
    pub(crate) client: Client,
    pub(crate) inbound: Arc<Inbound>,
    pub(crate) linger: Duration,
    /// The longest a round trip to NATS is waited for.
    pub(crate) patience: Duration,
    pub(crate) origin: u64,
}

/// Follows the hub's topics and the link's state until the server stops.
pub(crate) async fn run(
    interest: Interest,
    mut notifier: TopicNotifier,
    mut link: watch::Receiver<LinkState>,
) {
    let mut state = State {
        interest,
        linked: HashMap::new(),
        expiries: VecDeque::new(),
        receivers: JoinSet::new(),
        unlinked: TopicSet::default(),
        seen: LinkState::default(),
        up: false,
        retry: None,
    };
    let marks = Arc::clone(&state.interest.inbound.marks);
    loop {
        let next = state.expiries.front().map(|(at, _)| *at);
        let mut subscribed = false;
        tokio::select! {
            change = notifier.recv() => {
                let Some(change) = change else { return };
                subscribed |= state.change(change).await;
                // take every change already waiting, then confirm them with one round trip
                while let Some(Some(change)) = notifier.recv().now_or_never() {
                    subscribed |= state.change(change).await;
                }
            }
            () = sleep_until(next.unwrap_or_else(Instant::now)), if next.is_some() => state.expire(),
            changed = link.changed() => {
                if changed.is_err() {
                    return;
                }
                state.link_changed(&mut link).await;
            }
            () = sleep_until(state.retry.unwrap_or_else(Instant::now)), if state.retry.is_some() => {
                if state.seen.connected {
                    state.relink(&link).await;
                } else {
                    state.retry = None;
                }
            }
            marked = marks.take() => state.gap(&marked),
            Some(_) = state.receivers.join_next() => {}
        }
        if subscribed && state.up {
            // the subscriptions count once NATS has processed them
            state.round_trip().await;
        }
        let counters = &state.interest.inbound.counters;
        counters.set_topics(state.linked.len());
    }
}

struct State {
    interest: Interest,
    linked: HashMap<Topic, Linked>,
    /// When lingering topics are to be unsubscribed, in order (the linger is fixed).
    expiries: VecDeque<(Instant, Topic)>,
    receivers: JoinSet<()>,
    /// Topics whose subscribers have not been told that the link is up again (or up for
    /// the first time).
    unlinked: TopicSet,
    seen: LinkState,
    /// Connected, with every subscription in place.
    up: bool,
    /// When to try [`State::relink`] again.
    retry: Option<Instant>,
}

impl State {
    /// Subscribes to a topic that gained local subscribers (`true` if newly subscribed in
    /// NATS), or schedules one that lost them for unsubscribing.
    async fn change(&mut self, change: TopicNotification) -> bool {
        match change {
            TopicNotification::Created(topic) => {
                if !self.up {
                    self.unlinked.insert(&topic);
                }
                if let Some(linked) = self.linked.get_mut(&topic) {
                    linked.until = None;
                    return false;
                }
                let subject = self.interest.inbound.subjects.topic(&topic);
                match self.interest.client.subscribe(subject).await {
                    Ok(subscriber) => {
                        let inbound = Arc::clone(&self.interest.inbound);
                        let receiving = receive(inbound, topic.clone(), subscriber);
                        let receiver = self.receivers.spawn(receiving);
                        self.linked.insert(
                            topic,
                            Linked {
                                receiver,
                                until: None,
                            },
                        );
                        true
                    }
                    Err(error) => {
                        debug!(%error, %topic, "not subscribed in NATS: the server is stopping");
                        false
                    }
                }
            }
            TopicNotification::Removed(topic) => {
                if let Some(linked) = self.linked.get_mut(&topic) {
                    let until = Instant::now() + self.interest.linger;
                    linked.until = Some(until);
                    self.expiries.push_back((until, topic));
                }
                false
            }
        }
    }

    /// Unsubscribes the topics whose linger is over and that gained no subscriber since.
    fn expire(&mut self) {
        let now = Instant::now();
        while let Some((at, topic)) = self.expiries.front() {
            if *at > now {
                break;
            }
            if self.linked.get(topic).is_some_and(|l| l.until == Some(*at)) {
                if let Some(linked) = self.linked.remove(topic) {
                    linked.receiver.abort();
                }
            }
            self.expiries.pop_front();
        }
    }

    /// A lost connection is a gap in every linked topic, reported at once and again when
    /// the link is back (events from other servers between the two may be missing), as is
    /// a subscription NATS's client dropped messages of.
    async fn link_changed(&mut self, link: &mut watch::Receiver<LinkState>) {
        let now = *link.borrow_and_update();
        let before = std::mem::replace(&mut self.seen, now);
        let interrupted = now.interruptions != before.interruptions;
        if interrupted {
            self.up = false;
            self.interest.inbound.counters.set_connected(false);
            self.unlinked = TopicSet::all();
            self.gap(&TopicSet::all());
        } else if now.overflows != before.overflows {
            self.gap(&TopicSet::all());
        }
        if now.connected && (interrupted || !before.connected) {
            self.relink(link).await;
        }
    }

    /// Once NATS has processed the (re)subscriptions, the link is up: the subscribers that
    /// were told of a gap when it went down are told again, as events flow from here on.
    /// Tried again after a while if NATS does not answer.
    async fn relink(&mut self, link: &watch::Receiver<LinkState>) {
        let epoch = link.borrow().interruptions;
        if !self.round_trip().await {
            self.retry = Some(Instant::now() + self.interest.patience);
            return;
        }
        self.retry = None;
        if link.borrow().interruptions == epoch {
            let unlinked = self.unlinked.take();
            self.gap(&unlinked);
            self.up = true;
            self.interest.inbound.counters.set_connected(true);
        }
    }

    /// Waits (boundedly) until NATS has processed everything sent so far.
    async fn round_trip(&self) -> bool {
        let subject = self.interest.inbound.subjects.sync(self.interest.origin);
        let trip = round_trip(&self.interest.client, subject);
        timeout(self.interest.patience, trip).await.unwrap_or(false)
    }

    /// Tells the local subscribers of `topics` (of every linked topic, for all) of a gap.
    fn gap(&self, topics: &TopicSet) {
        let hub = &self.interest.inbound.hub;
        let told: usize = match topics.named() {
            Some(named) => named.map(|topic| hub.gap(topic)).sum(),
            None => self.linked.keys().map(|topic| hub.gap(topic)).sum(),
        };
        self.interest.inbound.counters.gaps(told);
    }
}

/// Hands `topic`'s events from NATS to its local subscribers.
async fn receive(inbound: Arc<Inbound>, topic: Topic, mut subscriber: Subscriber) {
    let mut gapped = false;
    while let Some(message) = subscriber.next().await {
        inbound.deliver(&topic, message, &mut gapped);
    }
}
