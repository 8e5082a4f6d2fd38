//! Group commit: one thread owns every write to the store. It takes whatever is queued
//! (appends, consumer progress, sweeps), applies it in one transaction, syncs once, and
//! only then answers each waiter: a burst of emits pays one sync, not one each.

use std::{sync::Arc, time::Duration};

use hardlight_core::Topic;
use tokio::sync::{mpsc, oneshot};
use tracing::warn;

use super::{
    config::DurableConfig,
    error::{DurableError, StoreError},
    record::ConsumerRecord,
    store::{now_ms, Appended, Store},
};

/// Writes queued before writers wait: each holds at most one event (`max_message_size`).
const QUEUE: usize = 1024;
/// Writes applied in one transaction at most.
const MAX_BATCH: usize = 1024;

/// One write, and who waits for it.
enum Op {
    Append {
        topic: Topic,
        id: Option<String>,
        ttl: Option<Duration>,
        event: Vec<u8>,
        reply: oneshot::Sender<Result<Appended, DurableError>>,
    },
    Save {
        topic: Topic,
        consumer: String,
        record: ConsumerRecord,
        dead: Vec<(u64, u32)>,
        reply: oneshot::Sender<Result<(), StoreError>>,
    },
    Delete {
        topic: Topic,
        consumer: String,
        reply: oneshot::Sender<Result<(), StoreError>>,
    },
    Sweep,
}

/// What an op's part of the transaction came to.
enum Done {
    Appended(Result<Appended, DurableError>),
    Written,
}

/// The queue in front of the writer thread; the thread ends when every handle is gone.
#[derive(Debug, Clone)]
pub(crate) struct Writer {
    tx: mpsc::Sender<Op>,
}

impl Writer {
    /// Starts the writer thread; `stored` is told of each topic's new last seq after
    /// every commit that appended to it.
    pub(crate) fn start(
        store: Arc<Store>,
        config: Arc<DurableConfig>,
        stored: impl Fn(&Topic, u64) + Send + 'static,
    ) -> Result<(Self, std::thread::JoinHandle<()>), StoreError> {
        let (tx, rx) = mpsc::channel(QUEUE);
        let thread = std::thread::Builder::new()
            .name("hardlight-durable-writer".into())
            .spawn(move || run(&store, &config, rx, stored))
            .map_err(|e| StoreError::from(redb::Error::Io(e)))?;
        Ok((Self { tx }, thread))
    }

    /// Stores an event; returns once it is committed.
    pub(crate) async fn append(
        &self,
        topic: Topic,
        id: Option<String>,
        ttl: Option<Duration>,
        event: Vec<u8>,
    ) -> Result<Appended, DurableError> {
        self.request(|reply| Op::Append {
            topic,
            id,
            ttl,
            event,
            reply,
        })
        .await
        .map_err(DurableError::from)?
    }

    /// Stores a consumer's progress and moves its `dead` events to its dead letters;
    /// returns once committed.
    pub(crate) async fn save(
        &self,
        topic: Topic,
        consumer: String,
        record: ConsumerRecord,
        dead: Vec<(u64, u32)>,
    ) -> Result<(), StoreError> {
        self.request(|reply| Op::Save {
            topic,
            consumer,
            record,
            dead,
            reply,
        })
        .await?
    }

    /// Forgets a consumer; returns once committed.
    pub(crate) async fn delete(&self, topic: Topic, consumer: String) -> Result<(), StoreError> {
        self.request(|reply| Op::Delete {
            topic,
            consumer,
            reply,
        })
        .await?
    }

    /// Queues the op `make` builds around its reply channel and waits for the answer.
    async fn request<T>(
        &self,
        make: impl FnOnce(oneshot::Sender<T>) -> Op,
    ) -> Result<T, StoreError> {
        let (reply, answer) = oneshot::channel();
        self.tx
            .send(make(reply))
            .await
            .map_err(|_| StoreError::Closed)?;
        answer.await.map_err(|_| StoreError::Closed)
    }

    /// Asks for expired events and dedup entries to be removed (skipped if the writer is
    /// busy: the next sweep does it).
    pub(crate) fn sweep(&self) {
        let _ = self.tx.try_send(Op::Sweep);
    }
}

fn run(
    store: &Arc<Store>,
    config: &DurableConfig,
    mut rx: mpsc::Receiver<Op>,
    stored: impl Fn(&Topic, u64),
) {
    let mut ops = Vec::with_capacity(MAX_BATCH);
    while let Some(first) = rx.blocking_recv() {
        ops.push(first);
        while ops.len() < MAX_BATCH {
            match rx.try_recv() {
                Ok(op) => ops.push(op),
                Err(_) => break,
            }
        }
        let now = now_ms();
        let applied = store.write(|batch| {
            let mut done = Vec::with_capacity(ops.len());
            for op in &ops {
                done.push(match op {
                    Op::Append {
                        topic,
                        id,
                        ttl,
                        event,
                        ..
                    } => Done::Appended(batch.append(
                        config,
                        topic,
                        id.as_deref(),
                        *ttl,
                        event,
                        now,
                    )?),
                    Op::Save {
                        topic,
                        consumer,
                        record,
                        dead,
                        ..
                    } => {
                        batch.save_consumer(config, topic, consumer, record, dead)?;
                        Done::Written
                    }
                    Op::Delete {
                        topic, consumer, ..
                    } => {
                        batch.delete_consumer(topic, consumer)?;
                        Done::Written
                    }
                    Op::Sweep => {
                        batch.sweep(config, now)?;
                        Done::Written
                    }
                });
            }
            Ok(done)
        });
        match applied {
            Ok(done) => answer(&mut ops, done, &stored),
            Err(error) => {
                warn!(%error, "durable store write failed");
                fail(&mut ops, &error);
            }
        }
    }
}

/// The transaction is committed: every waiter gets its result, and the topics appended
/// to are announced.
fn answer(ops: &mut Vec<Op>, done: Vec<Done>, stored: &impl Fn(&Topic, u64)) {
    let mut last: Vec<(Topic, u64)> = Vec::new();
    for (op, done) in ops.drain(..).zip(done) {
        match (op, done) {
            (Op::Append { topic, reply, .. }, Done::Appended(result)) => {
                if let Ok(appended) = &result {
                    match last.iter_mut().find(|(t, _)| *t == topic) {
                        Some((_, seq)) => *seq = (*seq).max(appended.seq),
                        None => last.push((topic, appended.seq)),
                    }
                }
                let _ = reply.send(result);
            }
            (Op::Save { reply, .. } | Op::Delete { reply, .. }, _) => {
                let _ = reply.send(Ok(()));
            }
            _ => {}
        }
    }
    for (topic, seq) in last {
        stored(&topic, seq);
    }
}

/// The transaction failed: nothing of it is stored.
fn fail(ops: &mut Vec<Op>, error: &StoreError) {
    for op in ops.drain(..) {
        match op {
            Op::Append { reply, .. } => {
                let _ = reply.send(Err(error.clone().into()));
            }
            Op::Save { reply, .. } | Op::Delete { reply, .. } => {
                let _ = reply.send(Err(error.clone()));
            }
            Op::Sweep => {}
        }
    }
}
