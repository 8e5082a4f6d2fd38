//! The embedded store: one redb file holding every durable topic's events, the consumers'
//! progress and their dead letters. Synchronous; the writer thread owns all writes and
//! groups them into one transaction per commit.

use std::{
    path::Path,
    time::{Duration, SystemTime, UNIX_EPOCH},
};

use hardlight_core::Topic;
use redb::{
    Database, Durability, ReadableDatabase, ReadableTable, Table, TableDefinition, WriteTransaction,
};

use super::{
    config::DurableConfig,
    error::{DurableError, StoreError},
    record::{decode_event, encode_event, event_expiry, ConsumerRecord, StoredEvent},
};

/// `epoch`, and `bytes`: what the store's events and dead letters hold in all.
const META: TableDefinition<&str, u64> = TableDefinition::new("meta");
/// Per topic: (last seq, first seq kept, events, bytes).
const TOPICS: TableDefinition<&[u8], (u64, u64, u64, u64)> = TableDefinition::new("topics");
/// (topic, seq) → event record.
const EVENTS: TableDefinition<(&[u8], u64), &[u8]> = TableDefinition::new("events");
/// (expires_at, topic, seq): the events that expire, in order.
const EXPIRY: TableDefinition<(u64, &[u8], u64), ()> = TableDefinition::new("expiry");
/// (topic, id) → (seq, stored_at): the ids emitted within the dedup window.
const DEDUP: TableDefinition<(&[u8], &str), (u64, u64)> = TableDefinition::new("dedup");
/// (stored_at, topic, id): the dedup entries in order of age.
const DEDUP_AGE: TableDefinition<(u64, &[u8], &str), ()> = TableDefinition::new("dedup_age");
/// (topic, consumer) → consumer record.
const CONSUMERS: TableDefinition<(&[u8], &str), &[u8]> = TableDefinition::new("consumers");
/// A dead letter's key: (topic, consumer, seq).
type DeadKey = (&'static [u8], &'static str, u64);
/// A dead letter: (attempts, event record).
type DeadValue = (u32, &'static [u8]);
/// The consumers' dead letters.
const DEAD: TableDefinition<DeadKey, DeadValue> = TableDefinition::new("dead");

/// Milliseconds since the Unix epoch now.
pub(crate) fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

/// An event stored by an emit (or found stored under its id).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Appended {
    pub(crate) seq: u64,
    /// An event with the same id was stored within the dedup window: this is its seq.
    pub(crate) duplicate: bool,
}

/// A dead letter as read back.
#[derive(Debug, Clone)]
pub(crate) struct StoredDeadLetter {
    pub(crate) consumer: String,
    pub(crate) attempts: u32,
    pub(crate) event: StoredEvent,
}

/// The store file, open.
#[derive(Debug)]
pub(crate) struct Store {
    db: Database,
    epoch: u64,
    durability: Durability,
}

impl Store {
    /// Opens the store at `path`, creating it (with a new epoch) if there is none.
    pub(crate) fn open(path: &Path, unsynced: bool) -> Result<Self, StoreError> {
        let db = Database::create(path)?;
        let txn = db.begin_write()?;
        let epoch = {
            let mut meta = txn.open_table(META)?;
            let existing = meta.get("epoch")?.map(|v| v.value());
            match existing {
                Some(epoch) => epoch,
                None => {
                    let epoch = rand::random::<u64>().max(1);
                    meta.insert("epoch", epoch)?;
                    meta.insert("bytes", 0)?;
                    epoch
                }
            }
        };
        // every table exists from the first commit on, for readers
        txn.open_table(TOPICS)?;
        txn.open_table(EVENTS)?;
        txn.open_table(EXPIRY)?;
        txn.open_table(DEDUP)?;
        txn.open_table(DEDUP_AGE)?;
        txn.open_table(CONSUMERS)?;
        txn.open_table(DEAD)?;
        txn.commit()?;
        let durability = if unsynced {
            Durability::None
        } else {
            Durability::Immediate
        };
        Ok(Self {
            db,
            epoch,
            durability,
        })
    }

    /// The store's epoch.
    pub(crate) fn epoch(&self) -> u64 {
        self.epoch
    }

    /// Runs `f` in one write transaction and commits it (synced unless configured
    /// otherwise): what `f` did is stored once this returns `Ok`.
    pub(crate) fn write<T>(
        &self,
        f: impl FnOnce(&mut Batch<'_>) -> Result<T, StoreError>,
    ) -> Result<T, StoreError> {
        let mut txn = self.db.begin_write()?;
        txn.set_durability(self.durability)?;
        let result = {
            let mut batch = Batch::open(&txn)?;
            f(&mut batch)?
        };
        txn.commit()?;
        Ok(result)
    }

    /// Up to `max` events of `topic` after `after`, those expired at `now` left out, and
    /// the last seq looked at (expired events included).
    pub(crate) fn read(
        &self,
        topic: &Topic,
        after: u64,
        max: usize,
        now: u64,
    ) -> Result<(Vec<StoredEvent>, u64), StoreError> {
        let txn = self.db.begin_read()?;
        let events = txn.open_table(EVENTS)?;
        let key = topic.as_bytes();
        let mut out = Vec::new();
        let mut scanned = after;
        for entry in events.range((key, after.saturating_add(1))..=(key, u64::MAX))? {
            let (k, v) = entry?;
            let event = decode_event(k.value().1, v.value())?;
            scanned = event.seq;
            if !event.expired(now) {
                out.push(event);
                if out.len() >= max {
                    break;
                }
            }
        }
        Ok((out, scanned))
    }

    /// The event of `topic` at `seq`, if stored and not expired at `now`.
    pub(crate) fn get(
        &self,
        topic: &Topic,
        seq: u64,
        now: u64,
    ) -> Result<Option<StoredEvent>, StoreError> {
        let txn = self.db.begin_read()?;
        let events = txn.open_table(EVENTS)?;
        let Some(value) = events.get((topic.as_bytes(), seq))? else {
            return Ok(None);
        };
        let event = decode_event(seq, value.value())?;
        Ok((!event.expired(now)).then_some(event))
    }

    /// `topic`'s counters: (last seq, first seq kept, events, bytes).
    pub(crate) fn topic(&self, topic: &Topic) -> Result<(u64, u64, u64, u64), StoreError> {
        let txn = self.db.begin_read()?;
        let topics = txn.open_table(TOPICS)?;
        Ok(topics
            .get(topic.as_bytes())?
            .map_or((0, 1, 0, 0), |v| v.value()))
    }

    /// The last seq of `topic` (0 before its first event).
    pub(crate) fn last_seq(&self, topic: &Topic) -> Result<u64, StoreError> {
        let txn = self.db.begin_read()?;
        let topics = txn.open_table(TOPICS)?;
        Ok(topics.get(topic.as_bytes())?.map_or(0, |v| v.value().0))
    }

    /// The stored progress of `consumer` on `topic`.
    pub(crate) fn consumer(
        &self,
        topic: &Topic,
        consumer: &str,
    ) -> Result<Option<ConsumerRecord>, StoreError> {
        let txn = self.db.begin_read()?;
        let consumers = txn.open_table(CONSUMERS)?;
        let record = consumers.get((topic.as_bytes(), consumer))?;
        record
            .map(|v| ConsumerRecord::decode(v.value()))
            .transpose()
    }

    /// The dead letters of `topic` (of every consumer), oldest event first.
    pub(crate) fn dead_letters(&self, topic: &Topic) -> Result<Vec<StoredDeadLetter>, StoreError> {
        let txn = self.db.begin_read()?;
        let dead = txn.open_table(DEAD)?;
        let key = topic.as_bytes();
        let mut out = Vec::new();
        for entry in dead.range((key, "", 0)..)? {
            let (k, v) = entry?;
            let (t, consumer, seq) = k.value();
            if t != key {
                break;
            }
            let (attempts, record) = v.value();
            out.push(StoredDeadLetter {
                consumer: consumer.to_owned(),
                attempts,
                event: decode_event(seq, record)?,
            });
        }
        out.sort_by_key(|letter| letter.event.seq);
        Ok(out)
    }
}

/// The tables of one write transaction.
pub(crate) struct Batch<'txn> {
    meta: Table<'txn, &'static str, u64>,
    topics: Table<'txn, &'static [u8], (u64, u64, u64, u64)>,
    events: Table<'txn, (&'static [u8], u64), &'static [u8]>,
    expiry: Table<'txn, (u64, &'static [u8], u64), ()>,
    dedup: Table<'txn, (&'static [u8], &'static str), (u64, u64)>,
    dedup_age: Table<'txn, (u64, &'static [u8], &'static str), ()>,
    consumers: Table<'txn, (&'static [u8], &'static str), &'static [u8]>,
    dead: Table<'txn, DeadKey, DeadValue>,
}

/// A topic's counters: (last seq, first seq kept, events, bytes).
type TopicCounters = (u64, u64, u64, u64);

impl<'txn> Batch<'txn> {
    fn open(txn: &'txn WriteTransaction) -> Result<Self, StoreError> {
        Ok(Self {
            meta: txn.open_table(META)?,
            topics: txn.open_table(TOPICS)?,
            events: txn.open_table(EVENTS)?,
            expiry: txn.open_table(EXPIRY)?,
            dedup: txn.open_table(DEDUP)?,
            dedup_age: txn.open_table(DEDUP_AGE)?,
            consumers: txn.open_table(CONSUMERS)?,
            dead: txn.open_table(DEAD)?,
        })
    }

    /// Stores an event, unless one with the same `id` was stored within the dedup window
    /// or a limit refuses it.
    pub(crate) fn append(
        &mut self,
        config: &DurableConfig,
        topic: &Topic,
        id: Option<&str>,
        ttl: Option<Duration>,
        event: &[u8],
        now: u64,
    ) -> Result<Result<Appended, DurableError>, StoreError> {
        let key = topic.as_bytes();
        if let Some(id) = id {
            if let Some(found) = self.dedup.get((key, id))? {
                let (seq, stored_at) = found.value();
                if stored_at.saturating_add(millis(config.dedup_window)) > now {
                    return Ok(Ok(Appended {
                        seq,
                        duplicate: true,
                    }));
                }
            }
        }
        let policy = config.policy(topic);
        let (last, first, events, bytes) = self.counters(topic)?;
        let record = encode_event(id, expiry(now, ttl, policy.max_age), event);
        let size = record.len() as u64;
        if events >= policy.max_events || bytes + size > policy.max_bytes {
            return Ok(Err(DurableError::TopicFull {
                topic: topic.clone(),
                events,
                bytes,
            }));
        }
        let total = self.meta.get("bytes")?.map_or(0, |v| v.value());
        if total + size > config.max_bytes {
            return Ok(Err(DurableError::StoreFull {
                max: config.max_bytes,
            }));
        }
        let seq = last + 1;
        self.events.insert((key, seq), record.as_slice())?;
        let expires_at = event_expiry(&record);
        if expires_at != 0 {
            self.expiry.insert((expires_at, key, seq), ())?;
        }
        if let Some(id) = id {
            if let Some(old) = self.dedup.insert((key, id), (seq, now))? {
                let (_, stored_at) = old.value();
                drop(old);
                self.dedup_age.remove((stored_at, key, id))?;
            }
            self.dedup_age.insert((now, key, id), ())?;
        }
        let first = if events == 0 { seq } else { first };
        self.topics
            .insert(key, (seq, first, events + 1, bytes + size))?;
        self.meta.insert("bytes", total + size)?;
        Ok(Ok(Appended {
            seq,
            duplicate: false,
        }))
    }

    /// Stores a consumer's progress, moves its `dead` events (seq, attempts) to its dead
    /// letters, and removes the events every consumer of the topic is past.
    pub(crate) fn save_consumer(
        &mut self,
        config: &DurableConfig,
        topic: &Topic,
        consumer: &str,
        record: &ConsumerRecord,
        dead: &[(u64, u32)],
    ) -> Result<(), StoreError> {
        let key = topic.as_bytes();
        for &(seq, attempts) in dead {
            self.bury(config, topic, consumer, seq, attempts)?;
        }
        self.consumers
            .insert((key, consumer), record.encode().as_slice())?;
        self.release(topic)
    }

    /// Forgets a consumer: its progress and dead letters, and what it held back.
    pub(crate) fn delete_consumer(
        &mut self,
        topic: &Topic,
        consumer: &str,
    ) -> Result<(), StoreError> {
        let key = topic.as_bytes();
        self.consumers.remove((key, consumer))?;
        let letters: Vec<(u64, u64)> = self
            .dead
            .range((key, consumer, 0)..=(key, consumer, u64::MAX))?
            .map(|entry| entry.map(|(k, v)| (k.value().2, v.value().1.len() as u64)))
            .collect::<Result<_, _>>()?;
        for (seq, size) in letters {
            self.dead.remove((key, consumer, seq))?;
            self.sub_bytes(size)?;
        }
        self.release(topic)
    }

    /// Removes the events and dedup entries expired at `now`.
    pub(crate) fn sweep(&mut self, config: &DurableConfig, now: u64) -> Result<(), StoreError> {
        loop {
            let expired: Vec<(u64, Vec<u8>, u64)> = self
                .expiry
                .range((0, &[][..], 0)..(now.saturating_add(1), &[][..], 0))?
                .take(1024)
                .map(|entry| {
                    entry.map(|(k, _)| {
                        let (at, topic, seq) = k.value();
                        (at, topic.to_vec(), seq)
                    })
                })
                .collect::<Result<_, _>>()?;
            if expired.is_empty() {
                break;
            }
            for (at, topic, seq) in expired {
                self.expiry.remove((at, topic.as_slice(), seq))?;
                self.remove_event(&Topic::from(topic), seq)?;
            }
        }
        let horizon = now.saturating_sub(millis(config.dedup_window));
        loop {
            let old: Vec<(u64, Vec<u8>, String)> = self
                .dedup_age
                .range((0, &[][..], "")..(horizon, &[][..], ""))?
                .take(1024)
                .map(|entry| {
                    entry.map(|(k, _)| {
                        let (at, topic, id) = k.value();
                        (at, topic.to_vec(), id.to_owned())
                    })
                })
                .collect::<Result<_, _>>()?;
            if old.is_empty() {
                break;
            }
            for (at, topic, id) in old {
                self.dedup_age.remove((at, topic.as_slice(), id.as_str()))?;
                self.dedup.remove((topic.as_slice(), id.as_str()))?;
            }
        }
        Ok(())
    }

    fn counters(&self, topic: &Topic) -> Result<TopicCounters, StoreError> {
        Ok(self
            .topics
            .get(topic.as_bytes())?
            .map_or((0, 1, 0, 0), |v| v.value()))
    }

    fn add_bytes(&mut self, size: u64) -> Result<(), StoreError> {
        let total = self.meta.get("bytes")?.map_or(0, |v| v.value());
        self.meta.insert("bytes", total.saturating_add(size))?;
        Ok(())
    }

    fn sub_bytes(&mut self, size: u64) -> Result<(), StoreError> {
        let total = self.meta.get("bytes")?.map_or(0, |v| v.value());
        self.meta.insert("bytes", total.saturating_sub(size))?;
        Ok(())
    }

    /// Copies event `seq` to `consumer`'s dead letters, removing its oldest past the
    /// topic's `max_dead_letters`.
    fn bury(
        &mut self,
        config: &DurableConfig,
        topic: &Topic,
        consumer: &str,
        seq: u64,
        attempts: u32,
    ) -> Result<(), StoreError> {
        let key = topic.as_bytes();
        let Some(record) = self.events.get((key, seq))?.map(|v| v.value().to_vec()) else {
            return Ok(()); // expired meanwhile
        };
        self.dead
            .insert((key, consumer, seq), (attempts, record.as_slice()))?;
        self.add_bytes(record.len() as u64)?;
        let max = config.policy(topic).max_dead_letters;
        let letters: Vec<(u64, u64)> = self
            .dead
            .range((key, consumer, 0)..=(key, consumer, u64::MAX))?
            .map(|entry| entry.map(|(k, v)| (k.value().2, v.value().1.len() as u64)))
            .collect::<Result<_, _>>()?;
        let excess = (letters.len() as u64).saturating_sub(max) as usize;
        for &(old, size) in &letters[..excess] {
            self.dead.remove((key, consumer, old))?;
            self.sub_bytes(size)?;
        }
        Ok(())
    }

    /// Removes the events of `topic` that every one of its consumers is past; a topic
    /// without consumers keeps its events.
    fn release(&mut self, topic: &Topic) -> Result<(), StoreError> {
        let key = topic.as_bytes();
        let mut floor: Option<u64> = None;
        for entry in self.consumers.range((key, "")..)? {
            let (k, v) = entry?;
            if k.value().0 != key {
                break;
            }
            let consumer_floor = ConsumerRecord::decode(v.value())?.floor();
            floor = Some(floor.map_or(consumer_floor, |f| f.min(consumer_floor)));
        }
        let Some(floor) = floor else {
            return Ok(());
        };
        let (_, first, _, _) = self.counters(topic)?;
        if floor < first {
            return Ok(());
        }
        for seq in first..=floor {
            self.remove_event(topic, seq)?;
        }
        let (last, _, events, bytes) = self.counters(topic)?;
        self.topics.insert(key, (last, floor + 1, events, bytes))?;
        Ok(())
    }

    /// Removes one event (if still stored) and its expiry entry, and counts it out.
    fn remove_event(&mut self, topic: &Topic, seq: u64) -> Result<(), StoreError> {
        let key = topic.as_bytes();
        let Some(record) = self.events.remove((key, seq))? else {
            return Ok(());
        };
        let (size, expires_at) = (record.value().len() as u64, event_expiry(record.value()));
        drop(record);
        if expires_at != 0 {
            self.expiry.remove((expires_at, key, seq))?;
        }
        let (last, first, events, bytes) = self.counters(topic)?;
        self.topics.insert(
            key,
            (
                last,
                first,
                events.saturating_sub(1),
                bytes.saturating_sub(size),
            ),
        )?;
        self.sub_bytes(size)
    }
}

/// When an event stored at `now` expires: the shorter of the emit's TTL and the topic's
/// `max_age`; 0 = never.
fn expiry(now: u64, ttl: Option<Duration>, max_age: Option<Duration>) -> u64 {
    match (ttl, max_age) {
        (None, None) => 0,
        (Some(a), Some(b)) => now.saturating_add(millis(a.min(b))).max(1),
        (Some(d), None) | (None, Some(d)) => now.saturating_add(millis(d)).max(1),
    }
}

fn millis(duration: Duration) -> u64 {
    u64::try_from(duration.as_millis()).unwrap_or(u64::MAX)
}
