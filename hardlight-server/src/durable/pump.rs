//! A consumer attached to a connection: the task that delivers its events into the
//! connection's event queue. Each round redelivers what is due, gives up on what passed
//! `max_deliver`, reads new events into the room `max_in_flight` leaves, **stores** the
//! consumer's progress, and only then queues the frames; it then sleeps until an ack, a
//! new event or the next ack-wait deadline.

use std::sync::{
    atomic::{AtomicBool, Ordering},
    Arc, Mutex,
};

use bytes::Bytes;
use hardlight_core::{
    codec,
    durable::{Delivery, Position},
    Topic,
};
use tokio::{
    sync::{watch, Notify},
    task::JoinHandle,
    time::{sleep, sleep_until, Duration, Instant},
};
use tracing::warn;

use super::{
    consumer::{ConsumerState, Round},
    error::StoreError,
    record::StoredEvent,
    stats::DurableCounters,
    store::now_ms,
    Durable,
};
use crate::{
    sync::lock,
    topics::{EncodedEvent, Outbox},
};

/// How long a pump waits after the store failed before it tries again.
const RETRY: Duration = Duration::from_secs(1);

/// A named consumer of a topic, attached to one connection in slot `slot`.
#[derive(Debug)]
pub(crate) struct Attachment {
    pub(crate) topic: Topic,
    pub(crate) consumer: String,
    pub(crate) slot: u16,
    progress: Progress,
    counters: Arc<DurableCounters>,
    wake: Notify,
    stopped: AtomicBool,
    task: Mutex<Option<JoinHandle<()>>>,
}

/// Where a consumer's progress is kept.
#[derive(Debug)]
enum Progress {
    /// Here, stored in the embedded store by the pump.
    Local(Mutex<ConsumerState>),
    /// In JetStream: the acks the pump is to pass on, at most `max_in_flight` (more are
    /// dropped, and their events come again).
    #[cfg(feature = "nats")]
    Remote(Mutex<Vec<u64>>, usize),
}

impl Attachment {
    /// A consumer whose progress is `state`, kept in the embedded store.
    pub(crate) fn local(
        topic: Topic,
        consumer: String,
        slot: u16,
        state: ConsumerState,
        counters: Arc<DurableCounters>,
    ) -> Arc<Self> {
        let progress = Progress::Local(Mutex::new(state));
        Self::new(topic, consumer, slot, progress, counters)
    }

    /// A consumer whose progress JetStream keeps; it has at most `max_in_flight` events
    /// unacked.
    #[cfg(feature = "nats")]
    pub(crate) fn remote(
        topic: Topic,
        consumer: String,
        slot: u16,
        max_in_flight: usize,
        counters: Arc<DurableCounters>,
    ) -> Arc<Self> {
        let progress = Progress::Remote(Mutex::default(), max_in_flight);
        Self::new(topic, consumer, slot, progress, counters)
    }

    fn new(
        topic: Topic,
        consumer: String,
        slot: u16,
        progress: Progress,
        counters: Arc<DurableCounters>,
    ) -> Arc<Self> {
        Arc::new(Self {
            topic,
            consumer,
            slot,
            progress,
            counters,
            wake: Notify::new(),
            stopped: AtomicBool::new(false),
            task: Mutex::new(None),
        })
    }

    /// Starts delivering into `outbox` from the embedded store.
    pub(crate) fn start(self: &Arc<Self>, durable: Arc<Durable>, outbox: Arc<Outbox>) {
        let stored = durable.watch(&self.topic);
        self.run(pump(durable, Arc::clone(self), outbox, stored));
    }

    /// Runs `pump` as this consumer's delivery task.
    pub(crate) fn run(&self, pump: impl std::future::Future<Output = ()> + Send + 'static) {
        *lock(&self.task) = Some(tokio::spawn(pump));
    }

    /// The client processed event `seq`: it is not delivered again.
    pub(crate) fn ack(&self, seq: u64) {
        let woken = match &self.progress {
            Progress::Local(state) => lock(state).ack(seq),
            #[cfg(feature = "nats")]
            Progress::Remote(acks, max) => {
                let mut acks = lock(acks);
                let room = acks.len() < *max;
                if room {
                    acks.push(seq);
                }
                room
            }
        };
        if woken {
            self.counters.acked();
            self.wake.notify_one();
        }
    }

    /// `n` events went to the dead letters.
    pub(crate) fn buried(&self, n: usize) {
        self.counters.buried(n);
    }

    /// The acks received since last asked (JetStream consumers).
    #[cfg(feature = "nats")]
    pub(crate) fn take_acks(&self) -> Vec<u64> {
        match &self.progress {
            Progress::Remote(acks, _) => std::mem::take(&mut *lock(acks)),
            Progress::Local(_) => Vec::new(),
        }
    }

    /// Completes when an ack came in or the consumer was stopped.
    #[cfg(feature = "nats")]
    pub(crate) async fn woken(&self) {
        self.wake.notified().await;
    }

    /// Whether the consumer was stopped.
    pub(crate) fn is_stopped(&self) -> bool {
        self.stopped.load(Ordering::SeqCst)
    }

    /// The embedded consumer's state (every attachment the embedded pump runs has one).
    fn state(&self) -> Option<std::sync::MutexGuard<'_, ConsumerState>> {
        match &self.progress {
            Progress::Local(state) => Some(lock(state)),
            #[cfg(feature = "nats")]
            Progress::Remote(..) => None,
        }
    }

    /// Stops delivering; unacked events stay pending for the consumer's next attachment.
    /// Acks received so far are stored before the pump ends.
    pub(crate) fn stop(&self) {
        self.stopped.store(true, Ordering::SeqCst);
        self.wake.notify_one();
    }

    /// Stops delivering and waits until the pump has ended (and stored what it had).
    pub(crate) async fn stopped(&self) {
        self.stop();
        let task = lock(&self.task).take();
        if let Some(task) = task {
            let _ = task.await;
        }
    }
}

/// What one round sends.
struct Batch {
    /// Redeliveries first, then first deliveries: (event, attempt).
    events: Vec<(StoredEvent, u32)>,
    dead: Vec<(u64, u32)>,
}

async fn pump(
    durable: Arc<Durable>,
    attachment: Arc<Attachment>,
    outbox: Arc<Outbox>,
    mut stored: watch::Receiver<u64>,
) {
    let mut more = true;
    loop {
        if attachment.is_stopped() {
            let _ = save(&durable, &attachment, Vec::new(), false).await;
            return;
        }
        match round(&durable, &attachment, more).await {
            Ok((batch, read_all)) => {
                more = !read_all;
                let changed = !batch.events.is_empty() || !batch.dead.is_empty();
                let buried = batch.dead.len();
                if let Err(error) = save(&durable, &attachment, batch.dead, changed).await {
                    warn!(%error, topic = %attachment.topic, "durable consumer progress not stored");
                    sleep(RETRY).await;
                    continue;
                }
                attachment.buried(buried);
                for (event, attempt) in batch.events {
                    deliver(&durable, &attachment, &outbox, event, attempt);
                }
            }
            Err(error) => {
                warn!(%error, topic = %attachment.topic, "durable events not read");
                sleep(RETRY).await;
                continue;
            }
        }
        let next_due = attachment.state().and_then(|state| state.next_due());
        tokio::select! {
            () = attachment.wake.notified() => {}
            changed = stored.changed(), if !more => {
                if changed.is_ok() {
                    more = true;
                }
            }
            () = sleep_until(next_due.unwrap_or_else(Instant::now)), if next_due.is_some() => {}
        }
    }
}

/// Decides a round and reads its events; `true` beside the batch when every stored event
/// was read.
async fn round(
    durable: &Arc<Durable>,
    attachment: &Attachment,
    more: bool,
) -> Result<(Batch, bool), StoreError> {
    let config = &durable.config;
    let now = Instant::now();
    let (
        Round {
            redeliver,
            dead,
            room,
        },
        delivered,
    ) = {
        let mut state = attachment.state().ok_or(StoreError::Closed)?;
        let round = state.round(
            now,
            config.ack_wait,
            config.max_deliver,
            config.max_in_flight,
        );
        (round, state.delivered())
    };
    let want = if more { room } else { 0 };
    let store = durable.store()?;
    let topic = attachment.topic.clone();
    let (again, fresh, scanned) = tokio::task::spawn_blocking(move || {
        let now = now_ms();
        let again = redeliver
            .into_iter()
            .map(|(seq, attempt)| Ok((seq, store.get(&topic, seq, now)?, attempt)))
            .collect::<Result<Vec<_>, StoreError>>()?;
        let (fresh, scanned) = if want > 0 {
            store.read(&topic, delivered, want, now)?
        } else {
            (Vec::new(), delivered)
        };
        Ok::<_, StoreError>((again, fresh, scanned))
    })
    .await
    .map_err(|_| StoreError::Closed)??;
    let read_all = if want == 0 { !more } else { fresh.len() < want };
    let mut events = Vec::with_capacity(again.len() + fresh.len());
    {
        let mut state = attachment.state().ok_or(StoreError::Closed)?;
        for (seq, event, attempt) in again {
            match event {
                Some(event) => events.push((event, attempt)),
                None => state.forget(seq),
            }
        }
        let seqs: Vec<u64> = fresh.iter().map(|e| e.seq).collect();
        state.deliver(&seqs, now, config.ack_wait);
        state.skip_to(scanned);
    }
    events.extend(fresh.into_iter().map(|event| (event, 1)));
    Ok((Batch { events, dead }, read_all))
}

/// Stores the consumer's progress if it changed (`changed`, or acks since the last
/// save), with the events it gave up on.
async fn save(
    durable: &Durable,
    attachment: &Attachment,
    dead: Vec<(u64, u32)>,
    changed: bool,
) -> Result<(), StoreError> {
    let record = {
        let Some(mut state) = attachment.state() else {
            return Ok(());
        };
        if !changed && !state.dirty() {
            return Ok(());
        }
        state.snapshot()
    };
    durable
        .writer()?
        .save(
            attachment.topic.clone(),
            attachment.consumer.clone(),
            record,
            dead,
        )
        .await
}

/// Queues one delivery of `event` for the connection.
pub(crate) fn deliver(
    durable: &Durable,
    attachment: &Attachment,
    outbox: &Outbox,
    event: StoredEvent,
    attempt: u32,
) {
    let seq = event.seq;
    let delivery = Delivery {
        topic: attachment.topic.clone(),
        consumer: attachment.consumer.clone(),
        epoch: durable.epoch(),
        attempt,
        id: event.id,
        event: event.event,
    };
    let body = match codec::encode(&delivery) {
        Ok(body) => body,
        Err(error) => {
            warn!(%error, "durable delivery not encoded");
            return;
        }
    };
    attachment.counters.delivered(attempt);
    // bounded by `max_in_flight` per consumer, like the event queue it joins
    let charge = durable.memory.charge_unchecked(body.len() as u64);
    let encoded = EncodedEvent::durable(
        attachment.slot,
        seq,
        Bytes::from_owner(body),
        durable.compression,
        charge,
    );
    outbox.push(Arc::new(encoded));
}

/// The position of `seq` in `durable`'s store.
pub(crate) fn position(durable: &Durable, seq: u64) -> Position {
    Position {
        epoch: durable.epoch(),
        seq,
    }
}
