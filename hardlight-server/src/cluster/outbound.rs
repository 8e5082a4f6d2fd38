//! Events on their way to the other servers: the bounded queue emitters fill without
//! waiting, and the task that publishes them to NATS and works out which may have been
//! lost, to announce them as gaps.

use std::{
    collections::VecDeque,
    sync::{Arc, Mutex, OnceLock},
};

use async_nats::{Client, HeaderMap};
use bytes::Bytes;
use hardlight_core::{codec, Topic};
use tokio::sync::{mpsc, watch, Notify};
use tracing::debug;

use super::{
    link::{round_trip, LinkState},
    stats::ClusterCounters,
    subject::Subjects,
    topic_set::TopicSet,
};
use crate::{sync::lock, topics::EncodedEvent, EmitError};

/// NATS's default `max_payload`, assumed until the NATS server has said its own.
const DEFAULT_MAX_PAYLOAD: usize = 1 << 20;

/// Events published between two looks at the link's state.
const BATCH: usize = 256;

/// The forward queue of one server.
#[derive(Debug)]
pub(crate) struct Outbound {
    max: usize,
    queue: Mutex<Queue>,
    ready: Notify,
    client: OnceLock<Client>,
    header_len: usize,
    counters: Arc<ClusterCounters>,
}

#[derive(Debug, Default)]
struct Queue {
    items: VecDeque<(Topic, Arc<EncodedEvent>)>,
    /// Topics of events the full queue turned away.
    dropped: TopicSet,
}

impl Outbound {
    /// A queue of at most `max` events, published with headers of `header_len` bytes.
    pub(crate) fn new(max: usize, header_len: usize, counters: Arc<ClusterCounters>) -> Self {
        Self {
            max,
            queue: Mutex::default(),
            ready: Notify::new(),
            client: OnceLock::new(),
            header_len,
            counters,
        }
    }

    /// Refuses an event body NATS would refuse: its headers and body above the NATS
    /// server's `max_payload`.
    pub(crate) fn check_size(&self, body: usize) -> Result<(), EmitError> {
        let max = self
            .client
            .get()
            .map_or(DEFAULT_MAX_PAYLOAD, Client::max_payload);
        let size = body + self.header_len;
        if size > max {
            return Err(EmitError::TooLargeForCluster { size, max });
        }
        Ok(())
    }

    /// Queues `event` for the other servers, without waiting: a full queue drops it, and
    /// the other servers' subscribers of `topic` are told of a gap.
    pub(crate) fn forward(&self, topic: &Topic, event: &Arc<EncodedEvent>) {
        let mut queue = lock(&self.queue);
        if queue.items.len() >= self.max {
            queue.dropped.insert(topic);
            drop(queue);
            self.counters.dropped();
        } else {
            queue.items.push_back((topic.clone(), Arc::clone(event)));
            drop(queue);
        }
        self.ready.notify_one();
    }

    /// Waits for queued events (or drops), and takes up to [`BATCH`] of them.
    async fn take(&self) -> (Vec<(Topic, Arc<EncodedEvent>)>, TopicSet) {
        loop {
            let ready = self.ready.notified();
            {
                let mut queue = lock(&self.queue);
                if !queue.items.is_empty() || !queue.dropped.is_empty() {
                    let n = queue.items.len().min(BATCH);
                    let items = queue.items.drain(..n).collect();
                    return (items, queue.dropped.take());
                }
            }
            ready.await;
        }
    }
}

/// What the forwarding task publishes with: the connection, the subjects and headers, and
/// this server's random identity in gap announcements.
pub(crate) struct Publisher {
    pub(crate) client: Client,
    pub(crate) subjects: Subjects,
    pub(crate) headers: HeaderMap,
    pub(crate) origin: u64,
}

/// Publishes queued events until the server stops.
///
/// NATS's client reports a publish as done once it is queued, and bytes written to a
/// connection that then fails are lost without a word. So the task asks NATS for a round
/// trip after it publishes ([`round_trip`]): when the answer comes on the same connection,
/// everything published before it has reached NATS. Topics published since the last
/// answered round trip, when the connection is lost, and topics of events that could not
/// be published at all, are announced to the other servers once connected again (on the
/// gaps subject), so that their subscribers are told of a gap. An announcement is itself
/// confirmed by the next round trip, and repeated until it is.
pub(crate) async fn run(
    outbound: Arc<Outbound>,
    publisher: Publisher,
    mut link: watch::Receiver<LinkState>,
) {
    let _ = outbound.client.set(publisher.client.clone());
    let (synced_tx, mut synced) = mpsc::channel(1);
    let mut syncing = false;
    // published (or announced) before the round trip in flight; published since
    let (mut covered, mut current) = (TopicSet::default(), TopicSet::default());
    let mut lost = TopicSet::default();
    let mut seen = link.borrow().interruptions;
    loop {
        // while NATS is away, events wait in the forward queue (and what it cannot hold is
        // dropped and announced), not in NATS's client: its command queue stays free for
        // the subscriptions the interest task makes meanwhile
        let connected = link.borrow().connected;
        tokio::select! {
            (batch, dropped) = outbound.take(), if connected => {
                lost.extend(dropped);
                for (topic, event) in batch {
                    let subject = publisher.subjects.topic(&topic);
                    let body = event.body().clone();
                    match publisher.client.publish_with_headers(subject, publisher.headers.clone(), body).await {
                        Ok(()) => {
                            current.insert(&topic);
                            outbound.counters.forwarded();
                        }
                        Err(error) => {
                            debug!(%error, %topic, "event not forwarded");
                            lost.insert(&topic);
                            outbound.counters.dropped();
                        }
                    }
                }
            }
            Some((during, answered)) = synced.recv() => {
                syncing = false;
                if answered && during == link.borrow().interruptions {
                    covered = TopicSet::default();
                } else {
                    lost.extend(covered.take());
                }
            }
            changed = link.changed() => if changed.is_err() {
                return;
            },
        }
        let state = *link.borrow();
        if state.interruptions != seen {
            seen = state.interruptions;
            lost.extend(covered.take());
            lost.extend(current.take());
        }
        if syncing || !state.connected {
            continue;
        }
        if !lost.is_empty() && announce(&publisher, &lost).await {
            covered.extend(lost.take());
        }
        if !current.is_empty() || !covered.is_empty() {
            covered.extend(current.take());
            syncing = true;
            let (client, subject) = (
                publisher.client.clone(),
                publisher.subjects.sync(publisher.origin),
            );
            let synced_tx = synced_tx.clone();
            tokio::spawn(async move {
                let answered = round_trip(&client, subject).await;
                let _ = synced_tx.send((seen, answered)).await;
            });
        }
    }
}

/// Publishes a gap announcement for `lost`: `(origin, Some(topics))`, or `None` for every
/// topic.
async fn announce(publisher: &Publisher, lost: &TopicSet) -> bool {
    let topics: Option<Vec<Topic>> = lost.named().map(|topics| topics.cloned().collect());
    let Ok(body) = codec::encode(&(publisher.origin, topics)) else {
        return false;
    };
    let subject = publisher.subjects.gaps();
    let headers = publisher.headers.clone();
    publisher
        .client
        .publish_with_headers(subject, headers, Bytes::from_owner(body))
        .await
        .is_ok()
}
