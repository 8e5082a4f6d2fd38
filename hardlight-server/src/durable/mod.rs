//! Durable topics: events stored before the emit returns, delivered at least once to named
//! consumers until they ack, redelivered after an ack wait, given up on (dead letters)
//! after `max_deliver` deliveries, expired by TTL, deduplicated by id. `docs/PROTOCOL.md`
//! §11 Durable topics specifies what clients see.
//!
//! - [`store`]: the embedded store (redb), synchronous;
//! - [`writer`]: the thread that groups every write into one synced commit;
//! - [`consumer`]: a consumer's delivery state, without I/O;
//! - [`pump`]: the task that delivers one attached consumer's events.

mod config;
mod consumer;
mod error;
#[cfg(feature = "nats")]
mod jetstream;
mod options;
mod pump;
mod record;
mod stats;
mod store;
mod writer;

pub use config::{DurableConfig, TopicPolicy};
pub use error::{DurableError, DurableSubscribeError, StoreError};
pub use options::{DeadLetter, EmitOptions, Emitted, StartAt, TopicInfo, MAX_ID_LEN};
pub(crate) use pump::Attachment;
pub(crate) use stats::DurableCounters;
pub use stats::DurableStats;

use std::{
    collections::HashMap,
    sync::{
        atomic::{AtomicU64, Ordering},
        Arc, Mutex, Weak,
    },
};

use hardlight_core::{durable::Position, Compression, Topic};
use tokio::{sync::watch, task::JoinHandle, time::Instant};

use self::{
    consumer::ConsumerState,
    record::ConsumerRecord,
    store::{Store, StoredDeadLetter},
    writer::Writer,
};
use crate::{memory_budget::MemoryBudget, sync::lock, topics::Outbox};

/// A server's durable topics: the store once opened, and the consumers attached to its
/// connections.
#[derive(Debug)]
pub(crate) struct Durable {
    pub(crate) config: Arc<DurableConfig>,
    pub(crate) memory: Arc<MemoryBudget>,
    pub(crate) compression: Compression,
    pub(crate) counters: Arc<DurableCounters>,
    opened: Mutex<Option<Opened>>,
    /// The store's epoch, once opened.
    epoch: AtomicU64,
    /// Each watched topic's last seq, announced by the writer after every commit.
    topics: Arc<Mutex<HashMap<Topic, watch::Sender<u64>>>>,
    /// The attachment of each consumer, wherever it is.
    attached: Mutex<HashMap<(Topic, String), Weak<Attachment>>>,
    /// One attachment at a time, so that a takeover waits for the consumer's last
    /// attachment to store its progress.
    attaching: tokio::sync::Mutex<()>,
    /// JetStream, when it stores the durable topics (`DurableConfig::jetstream`).
    #[cfg(feature = "nats")]
    jetstream: std::sync::OnceLock<Arc<jetstream::JetStream>>,
}

#[derive(Debug)]
struct Opened {
    store: Arc<Store>,
    writer: Writer,
    thread: std::thread::JoinHandle<()>,
}

impl Durable {
    pub(crate) fn new(
        config: DurableConfig,
        memory: Arc<MemoryBudget>,
        compression: Compression,
    ) -> Arc<Self> {
        Arc::new(Self {
            config: Arc::new(config),
            memory,
            compression,
            counters: Arc::default(),
            opened: Mutex::new(None),
            epoch: AtomicU64::new(0),
            topics: Arc::default(),
            attached: Mutex::default(),
            attaching: tokio::sync::Mutex::new(()),
            #[cfg(feature = "nats")]
            jetstream: std::sync::OnceLock::new(),
        })
    }

    /// Stores in the JetStream of the cluster `cluster`, if so configured.
    #[cfg(feature = "nats")]
    pub(crate) fn join_cluster(&self, cluster: &crate::ClusterConfig) {
        if self.config.jetstream {
            let _ = self
                .jetstream
                .set(Arc::new(jetstream::JetStream::new(cluster.clone())));
        }
    }

    /// JetStream, when it stores the durable topics.
    #[cfg(feature = "nats")]
    fn jetstream(&self) -> Option<&Arc<jetstream::JetStream>> {
        self.jetstream.get()
    }

    /// Opens (or creates) the store and starts its writer, unless open. JetStream is
    /// connected to on first use.
    pub(crate) fn open(&self) -> Result<(), StoreError> {
        #[cfg(feature = "nats")]
        if self.config.jetstream {
            return match self.jetstream() {
                Some(_) => Ok(()),
                None => Err(StoreError::NoCluster),
            };
        }
        let mut opened = lock(&self.opened);
        if opened.is_some() {
            return Ok(());
        }
        let store = Arc::new(Store::open(&self.config.path, self.config.unsynced)?);
        let topics = Arc::clone(&self.topics);
        let stored = move |topic: &Topic, seq| {
            if let Some(tx) = lock(&topics).get(topic) {
                tx.send_replace(seq);
            }
        };
        let (writer, thread) = Writer::start(Arc::clone(&store), Arc::clone(&self.config), stored)?;
        self.epoch.store(store.epoch(), Ordering::SeqCst);
        *opened = Some(Opened {
            store,
            writer,
            thread,
        });
        Ok(())
    }

    /// Stops every consumer (each stores its progress), then the writer, and closes the
    /// store file, so that another server may open it.
    pub(crate) async fn close(&self) {
        let attached: Vec<_> = lock(&self.attached)
            .drain()
            .filter_map(|(_, attachment)| attachment.upgrade())
            .collect();
        for attachment in attached {
            attachment.stopped().await;
        }
        let Some(Opened {
            store,
            writer,
            thread,
        }) = lock(&self.opened).take()
        else {
            return;
        };
        drop(writer);
        // the writer ends once every handle on its queue is gone (the pumps have ended)
        let _ = tokio::task::spawn_blocking(move || thread.join()).await;
        // readers finish their short reads
        for _ in 0..500 {
            if Arc::strong_count(&store) == 1 {
                break;
            }
            tokio::time::sleep(std::time::Duration::from_millis(10)).await;
        }
    }

    /// Removes expired events and dedup entries every `sweep_interval`, until aborted.
    pub(crate) fn sweeper(self: &Arc<Self>) -> JoinHandle<()> {
        let durable = Arc::clone(self);
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(durable.config.sweep_interval);
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                tick.tick().await;
                if let Ok(writer) = durable.writer() {
                    writer.sweep();
                }
            }
        })
    }

    pub(crate) fn store(&self) -> Result<Arc<Store>, StoreError> {
        lock(&self.opened)
            .as_ref()
            .map(|o| Arc::clone(&o.store))
            .ok_or(StoreError::Closed)
    }

    pub(crate) fn writer(&self) -> Result<Writer, StoreError> {
        lock(&self.opened)
            .as_ref()
            .map(|o| o.writer.clone())
            .ok_or(StoreError::Closed)
    }

    /// The store's epoch (0 before it is opened).
    pub(crate) fn epoch(&self) -> u64 {
        #[cfg(feature = "nats")]
        if let Some(jetstream) = self.jetstream() {
            return jetstream.epoch();
        }
        self.epoch.load(Ordering::SeqCst)
    }

    /// Stops the attachment of consumer `key` wherever it is, and waits until it has
    /// stored its progress.
    async fn detach(&self, key: &(Topic, String)) {
        let previous = lock(&self.attached).remove(key).and_then(|w| w.upgrade());
        if let Some(previous) = previous {
            previous.stopped().await;
        }
    }

    /// Follows `topic`'s last seq.
    pub(crate) fn watch(&self, topic: &Topic) -> watch::Receiver<u64> {
        let mut topics = lock(&self.topics);
        topics.retain(|_, tx| tx.receiver_count() > 0);
        topics
            .entry(topic.clone())
            .or_insert_with(|| watch::Sender::new(0))
            .subscribe()
    }

    /// Stores an event (an archive of the service's event type); returns once it is
    /// committed.
    pub(crate) async fn append(
        &self,
        topic: &Topic,
        options: EmitOptions,
        event: Vec<u8>,
    ) -> Result<Emitted, DurableError> {
        if let Some(id) = &options.id {
            if id.len() > MAX_ID_LEN {
                return Err(DurableError::IdTooLong {
                    len: id.len(),
                    max: MAX_ID_LEN,
                });
            }
        }
        #[cfg(feature = "nats")]
        if let Some(jetstream) = self.jetstream() {
            let (seq, duplicate) = jetstream
                .append(&self.config, topic, options, event)
                .await?;
            self.counters.emitted(duplicate);
            return Ok(Emitted {
                position: pump::position(self, seq),
                duplicate,
            });
        }
        let appended = self
            .writer()
            .map_err(|_| DurableError::NotConfigured)?
            .append(topic.clone(), options.id, options.ttl, event)
            .await?;
        self.counters.emitted(appended.duplicate);
        Ok(Emitted {
            position: pump::position(self, appended.seq),
            duplicate: appended.duplicate,
        })
    }

    /// Attaches `consumer` of `topic` to a connection (slot `slot`, events into
    /// `outbox`), from `start`; an attachment of the same consumer elsewhere is stopped
    /// first. Returns the attachment and the consumer's ack floor.
    pub(crate) async fn attach(
        self: &Arc<Self>,
        topic: &Topic,
        consumer: &str,
        start: StartAt,
        slot: u16,
        outbox: Arc<Outbox>,
    ) -> Result<(Arc<Attachment>, Position), DurableSubscribeError> {
        let _one = self.attaching.lock().await;
        let key = (topic.clone(), consumer.to_owned());
        self.detach(&key).await;
        #[cfg(feature = "nats")]
        if let Some(jetstream) = self.jetstream() {
            let (made, floor) = jetstream
                .consumer(&self.config, topic, consumer, start)
                .await?;
            let (topic, name) = key.clone();
            let max = self.config.max_in_flight;
            let attachment = Attachment::remote(topic, name, slot, max, Arc::clone(&self.counters));
            lock(&self.attached).insert(key, Arc::downgrade(&attachment));
            let pump =
                Arc::clone(jetstream).pump(Arc::clone(self), Arc::clone(&attachment), outbox, made);
            attachment.run(pump);
            return Ok((attachment, pump::position(self, floor)));
        }
        let store = self
            .store()
            .map_err(|_| DurableSubscribeError::NotConfigured)?;
        let (t, c) = key.clone();
        let (record, last) = tokio::task::spawn_blocking(move || {
            Ok::<_, StoreError>((store.consumer(&t, &c)?, store.last_seq(&t)?))
        })
        .await
        .map_err(|_| StoreError::Closed)??;
        let epoch = self.epoch();
        let (record, changed) = match start {
            StartAt::AckFloor => match record {
                Some(record) => (record, false),
                None => (ConsumerRecord::default(), true),
            },
            StartAt::After(asked) => {
                if asked.epoch != epoch {
                    return Err(DurableSubscribeError::EpochMismatch { asked, epoch });
                }
                if asked.seq > last {
                    let last = pump::position(self, last);
                    return Err(DurableSubscribeError::PositionAhead { asked, last });
                }
                (after(asked.seq), true)
            }
            StartAt::Newest => (after(last), true),
        };
        if changed {
            self.writer()?
                .save(
                    topic.clone(),
                    consumer.to_owned(),
                    record.clone(),
                    Vec::new(),
                )
                .await?;
        }
        let floor = pump::position(self, record.floor());
        let state = ConsumerState::new(record, Instant::now());
        let attachment = Attachment::local(
            topic.clone(),
            consumer.to_owned(),
            slot,
            state,
            Arc::clone(&self.counters),
        );
        lock(&self.attached).insert(key, Arc::downgrade(&attachment));
        attachment.start(Arc::clone(self), outbox);
        Ok((attachment, floor))
    }

    /// What `topic` holds now.
    pub(crate) async fn topic(&self, topic: &Topic) -> Result<TopicInfo, StoreError> {
        #[cfg(feature = "nats")]
        if let Some(jetstream) = self.jetstream() {
            return jetstream.topic(&self.config, topic).await;
        }
        let store = self.store()?;
        let t = topic.clone();
        let (last, _, events, bytes) = tokio::task::spawn_blocking(move || store.topic(&t))
            .await
            .map_err(|_| StoreError::Closed)??;
        Ok(TopicInfo {
            last: pump::position(self, last),
            events,
            bytes,
        })
    }

    /// The dead letters of `topic`, oldest event first.
    pub(crate) async fn dead_letters(
        &self,
        topic: &Topic,
    ) -> Result<Vec<StoredDeadLetter>, StoreError> {
        #[cfg(feature = "nats")]
        if let Some(jetstream) = self.jetstream() {
            return jetstream.dead_letters(&self.config, topic).await;
        }
        let store = self.store()?;
        let topic = topic.clone();
        tokio::task::spawn_blocking(move || store.dead_letters(&topic))
            .await
            .map_err(|_| StoreError::Closed)?
    }

    /// Forgets `consumer` of `topic`: its progress, its dead letters, and the events only
    /// it held back. An attachment of it stops first.
    pub(crate) async fn delete_consumer(
        &self,
        topic: &Topic,
        consumer: &str,
    ) -> Result<(), StoreError> {
        let key = (topic.clone(), consumer.to_owned());
        self.detach(&key).await;
        #[cfg(feature = "nats")]
        if let Some(jetstream) = self.jetstream() {
            return jetstream
                .delete_consumer(&self.config, topic, consumer)
                .await;
        }
        self.writer()?.delete(key.0, key.1).await
    }
}

/// A consumer's progress when it starts after `seq`.
fn after(seq: u64) -> ConsumerRecord {
    ConsumerRecord {
        delivered: seq,
        pending: Default::default(),
    }
}
