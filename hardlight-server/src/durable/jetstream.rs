//! Durable topics on NATS JetStream (`DurableConfig::jetstream`), for servers of a
//! cluster: every server of the service stores in, and delivers from, one JetStream
//! stream, so that a consumer can go on through any server from the same ack floor.
//!
//! - the stream `<PREFIX>_DURABLE` (the cluster's subject prefix, `.` and `-` as `_`) holds
//!   events on `<prefix>.d.<topic token>` and dead letters on
//!   `<prefix>.x.<topic token>.<consumer token>`, file storage, limits retention, refusing
//!   new messages when full (`discard: new`), per-message TTL allowed;
//! - a consumer is a durable pull consumer named after a hash of its topic and name,
//!   filtered on the topic's subject, with explicit acks, `ack_wait`, `max_ack_pending` =
//!   `max_in_flight`, and `max_deliver` one above the configured one: a message delivered
//!   more often is moved to the dead letters by the server that receives it, then
//!   terminated;
//! - an emit's id is `Nats-Msg-Id` (deduplicated within the stream's duplicate window),
//!   its TTL `Nats-TTL` (whole seconds, rounded up);
//! - a position's seq is the stream sequence (increasing per topic, not consecutive) and
//!   its epoch a hash of the stream's creation time.

use std::{
    collections::BTreeMap,
    sync::{
        atomic::{AtomicU64, Ordering},
        Arc,
    },
    time::Duration,
};

use async_nats::jetstream::{
    self,
    consumer::{
        pull::{self, MessagesErrorKind},
        AckPolicy, DeliverPolicy,
    },
    message::PublishMessage,
    stream::{self, DiscardPolicy, StorageType},
};
use base64::{engine::general_purpose::URL_SAFE_NO_PAD, Engine};
use bytes::Bytes;
use futures_util::StreamExt;
use hardlight_core::{durable::Position, Topic};
use tokio::{sync::OnceCell, time::sleep};
use tracing::{debug, warn};

use super::{
    options::{EmitOptions, StartAt, TopicInfo},
    pump::{deliver, Attachment},
    record::StoredEvent,
    store::StoredDeadLetter,
    DurableConfig, DurableError, DurableSubscribeError, StoreError,
};
use crate::{cluster::ClusterConfig, topics::Outbox};

/// The header naming the consumer of a dead letter.
const CONSUMER_HEADER: &str = "Hardlight-Consumer";
/// The header giving a dead letter's deliveries.
const ATTEMPTS_HEADER: &str = "Hardlight-Attempts";
/// The header giving a dead letter's event seq.
const SEQ_HEADER: &str = "Hardlight-Seq";
/// The header giving a dead letter's emit id.
const ID_HEADER: &str = "Hardlight-Id";
/// How long a pump waits after JetStream failed before it tries again.
const RETRY: Duration = Duration::from_secs(1);
/// How often JetStream tells a waiting pull that it is still there.
const HEARTBEAT: Duration = Duration::from_secs(1);

/// A server's connection to JetStream, and the stream once made.
#[derive(Debug)]
pub(crate) struct JetStream {
    cluster: ClusterConfig,
    prefix: String,
    context: OnceCell<jetstream::Context>,
    stream: OnceCell<stream::Stream>,
    epoch: AtomicU64,
}

impl JetStream {
    pub(crate) fn new(cluster: ClusterConfig) -> Self {
        Self {
            prefix: cluster.prefix.clone(),
            cluster,
            context: OnceCell::new(),
            stream: OnceCell::new(),
            epoch: AtomicU64::new(0),
        }
    }

    /// The stream's epoch (0 until it is known).
    pub(crate) fn epoch(&self) -> u64 {
        self.epoch.load(Ordering::SeqCst)
    }

    async fn context(&self) -> Result<&jetstream::Context, StoreError> {
        self.context
            .get_or_try_init(|| async {
                let base = match &self.cluster.options {
                    Some(options) => options(async_nats::ConnectOptions::new()),
                    None => async_nats::ConnectOptions::new(),
                };
                let client = base
                    .retry_on_initial_connect()
                    .connect(self.cluster.servers.clone())
                    .await
                    .map_err(unavailable)?;
                Ok(jetstream::new(client))
            })
            .await
    }

    /// The stream, made (or found) on first use with `config`'s limits.
    async fn stream(&self, config: &DurableConfig) -> Result<&stream::Stream, StoreError> {
        let context = self.context().await?;
        self.stream
            .get_or_try_init(|| async {
                let policy = config.default_policy;
                let stream_config = stream::Config {
                    name: self.stream_name(),
                    subjects: vec![
                        format!("{}.d.>", self.prefix),
                        format!("{}.x.>", self.prefix),
                    ],
                    storage: StorageType::File,
                    discard: DiscardPolicy::New,
                    discard_new_per_subject: true,
                    max_messages_per_subject: clamp(policy.max_events.max(policy.max_dead_letters)),
                    max_bytes: clamp(config.max_bytes),
                    max_age: policy.max_age.unwrap_or_default(),
                    duplicate_window: config.dedup_window,
                    allow_message_ttl: true,
                    ..Default::default()
                };
                let mut stream = context
                    .get_or_create_stream(stream_config)
                    .await
                    .map_err(unavailable)?;
                let created = stream.info().await.map_err(unavailable)?.created;
                let epoch = epoch_of(created.unix_timestamp_nanos());
                self.epoch.store(epoch, Ordering::SeqCst);
                Ok(stream)
            })
            .await
    }

    fn stream_name(&self) -> String {
        format!(
            "{}_DURABLE",
            self.prefix.replace(['.', '-'], "_").to_uppercase()
        )
    }

    fn subject(&self, topic: &Topic) -> String {
        format!("{}.d.{}", self.prefix, token(topic.as_bytes()))
    }

    fn dead_subject(&self, topic: &Topic, consumer: &str) -> String {
        format!(
            "{}.x.{}.{}",
            self.prefix,
            token(topic.as_bytes()),
            token(consumer.as_bytes())
        )
    }

    /// Stores an event; returns once JetStream acknowledged it.
    pub(crate) async fn append(
        &self,
        config: &DurableConfig,
        topic: &Topic,
        options: EmitOptions,
        event: Vec<u8>,
    ) -> Result<(u64, bool), DurableError> {
        // the stream exists (and its epoch is known) before anything is published to it
        self.stream(config).await?;
        let mut message = PublishMessage::build().payload(Bytes::from(event));
        if let Some(id) = &options.id {
            message = message.message_id(id);
        }
        if let Some(ttl) = options.ttl {
            // JetStream counts TTLs in whole seconds
            let seconds = ttl.as_secs() + u64::from(ttl.subsec_nanos() > 0);
            message = message.ttl(Duration::from_secs(seconds.max(1)));
        }
        let context = self.context().await?;
        let published = context
            .send_publish(self.subject(topic), message)
            .await
            .map_err(|e| publish_error(topic, config, e.to_string()))?;
        let ack = published
            .await
            .map_err(|e| publish_error(topic, config, e.to_string()))?;
        Ok((ack.sequence, ack.duplicate))
    }

    /// Makes (or finds) `consumer`'s JetStream consumer from `start`; returns it with the
    /// consumer's ack floor.
    pub(crate) async fn consumer(
        &self,
        config: &DurableConfig,
        topic: &Topic,
        consumer: &str,
        start: StartAt,
    ) -> Result<(jetstream::consumer::Consumer<pull::Config>, u64), DurableSubscribeError> {
        let stream = self.stream(config).await?;
        let name = consumer_name(topic, consumer);
        let epoch = self.epoch();
        let deliver_policy = match start {
            StartAt::AckFloor => None,
            StartAt::After(asked) => {
                if asked.epoch != epoch {
                    return Err(DurableSubscribeError::EpochMismatch { asked, epoch });
                }
                Some(DeliverPolicy::ByStartSequence {
                    start_sequence: asked.seq + 1,
                })
            }
            StartAt::Newest => Some(DeliverPolicy::New),
        };
        if deliver_policy.is_some() {
            // repositioned: the consumer starts again from there
            let _ = stream.delete_consumer(&name).await;
        }
        let consumer_config = pull::Config {
            durable_name: Some(name.clone()),
            filter_subject: self.subject(topic),
            deliver_policy: deliver_policy.unwrap_or(DeliverPolicy::All),
            ack_policy: AckPolicy::Explicit,
            ack_wait: config.ack_wait,
            max_deliver: i64::from(config.max_deliver) + 1,
            max_ack_pending: config.max_in_flight as i64,
            ..Default::default()
        };
        let mut made = stream
            .get_or_create_consumer(&name, consumer_config)
            .await
            .map_err(unavailable)?;
        let floor = made
            .info()
            .await
            .map_err(unavailable)?
            .ack_floor
            .stream_sequence;
        Ok((made, floor))
    }

    /// Delivers `attachment`'s consumer into `outbox` until stopped: each message as a
    /// `Durable` frame (attempt = JetStream's delivery count), acks as the client sends
    /// them, messages past `max_deliver` to the dead letters.
    pub(crate) async fn pump(
        self: Arc<Self>,
        durable: Arc<super::Durable>,
        attachment: Arc<Attachment>,
        outbox: Arc<Outbox>,
        consumer: jetstream::consumer::Consumer<pull::Config>,
    ) {
        let mut pending: BTreeMap<u64, jetstream::Message> = BTreeMap::new();
        'connect: loop {
            // heartbeats every second: a pull lost with a NATS restart is noticed within
            // two; the stream makes it again itself once NATS is back
            let messages = consumer
                .stream()
                .max_messages_per_batch(durable.config.max_in_flight)
                .heartbeat(HEARTBEAT)
                .expires(HEARTBEAT * 10)
                .messages()
                .await;
            let mut messages = match messages {
                Ok(messages) => messages,
                Err(error) => {
                    warn!(%error, topic = %attachment.topic, "durable consumer not reachable");
                    sleep(RETRY).await;
                    continue;
                }
            };
            loop {
                if attachment.is_stopped() {
                    for (_, message) in std::mem::take(&mut pending) {
                        // not processed here: redelivered at once elsewhere
                        let _ = message.ack_with(jetstream::AckKind::Nak(None)).await;
                    }
                    return;
                }
                tokio::select! {
                    () = attachment.woken() => {
                        for seq in attachment.take_acks() {
                            if let Some(message) = pending.remove(&seq) {
                                if let Err(error) = message.ack().await {
                                    warn!(%error, "durable ack not sent to JetStream");
                                }
                            }
                        }
                    }
                    next = messages.next() => match next {
                        Some(Ok(message)) => {
                            if let Some((seq, attempt, event)) = self.received(&durable, &attachment, &message).await {
                                deliver(&durable, &attachment, &outbox, event, attempt);
                                pending.insert(seq, message);
                            }
                        }
                        // the stream goes on with the same inbox, pulling again when NATS
                        // is back: what JetStream delivered to the last pull still comes.
                        // (Made anew, the stream would leave those messages to the ack
                        // wait.)
                        Some(Err(error)) if error.kind() == MessagesErrorKind::MissingHeartbeat => {
                            debug!(topic = %attachment.topic, "durable consumer: heartbeats missed; NATS unreachable");
                        }
                        Some(Err(error)) => {
                            warn!(%error, topic = %attachment.topic, "durable consumer interrupted");
                            sleep(RETRY).await;
                            continue 'connect;
                        }
                        None => continue 'connect,
                    },
                }
            }
        }
    }

    /// A message for the client, or `None` once moved to the dead letters (or unreadable).
    async fn received(
        &self,
        durable: &super::Durable,
        attachment: &Attachment,
        message: &jetstream::Message,
    ) -> Option<(u64, u32, StoredEvent)> {
        let info = message.info().ok()?;
        let (seq, delivered) = (info.stream_sequence, info.delivered);
        let attempt = u32::try_from(delivered).unwrap_or(u32::MAX);
        if attempt > durable.config.max_deliver {
            self.bury(attachment, seq, attempt - 1, message).await;
            return None;
        }
        let id = message
            .headers
            .as_ref()
            .and_then(|h| h.get(async_nats::header::NATS_MESSAGE_ID))
            .map(|v| v.as_str().to_owned());
        let event = StoredEvent {
            seq,
            id,
            expires_at: 0,
            event: message.payload.to_vec(),
        };
        Some((seq, attempt, event))
    }

    /// Copies a message its consumer gave up on to the consumer's dead letters, then
    /// stops its redelivery.
    async fn bury(
        &self,
        attachment: &Attachment,
        seq: u64,
        attempts: u32,
        message: &jetstream::Message,
    ) {
        let Ok(context) = self.context().await else {
            return;
        };
        let mut letter = PublishMessage::build()
            .payload(message.payload.clone())
            .message_id(format!(
                "dead:{}:{seq}",
                token(attachment.consumer.as_bytes())
            ))
            .header(CONSUMER_HEADER, attachment.consumer.as_str())
            .header(ATTEMPTS_HEADER, attempts.to_string().as_str())
            .header(SEQ_HEADER, seq.to_string().as_str());
        if let Some(id) = message
            .headers
            .as_ref()
            .and_then(|h| h.get(async_nats::header::NATS_MESSAGE_ID))
        {
            letter = letter.header(ID_HEADER, id.clone());
        }
        let subject = self.dead_subject(&attachment.topic, &attachment.consumer);
        let stored = match context.send_publish(subject, letter).await {
            Ok(ack) => ack.await.is_ok(),
            Err(_) => false,
        };
        if stored {
            attachment.buried(1);
            let _ = message.ack_with(jetstream::AckKind::Term).await;
        }
    }

    /// The dead letters of `topic`, oldest event first.
    pub(crate) async fn dead_letters(
        &self,
        config: &DurableConfig,
        topic: &Topic,
    ) -> Result<Vec<StoredDeadLetter>, StoreError> {
        let stream = self.stream(config).await?;
        let filter = format!("{}.x.{}.>", self.prefix, token(topic.as_bytes()));
        let consumer = stream
            .create_consumer(jetstream::consumer::pull::OrderedConfig {
                filter_subject: filter,
                ..Default::default()
            })
            .await
            .map_err(unavailable)?;
        let mut out = Vec::new();
        let mut remaining = consumer.cached_info().num_pending;
        if remaining == 0 {
            return Ok(out);
        }
        let mut messages = consumer.messages().await.map_err(unavailable)?;
        while remaining > 0 {
            let Some(Ok(message)) = messages.next().await else {
                break;
            };
            remaining -= 1;
            let header = |name: &str| {
                message
                    .headers
                    .as_ref()
                    .and_then(|h| h.get(name))
                    .map(|v| v.as_str().to_owned())
            };
            out.push(StoredDeadLetter {
                consumer: header(CONSUMER_HEADER).unwrap_or_default(),
                attempts: header(ATTEMPTS_HEADER)
                    .and_then(|a| a.parse().ok())
                    .unwrap_or(0),
                event: StoredEvent {
                    seq: header(SEQ_HEADER).and_then(|s| s.parse().ok()).unwrap_or(0),
                    id: header(ID_HEADER),
                    expires_at: 0,
                    event: message.payload.to_vec(),
                },
            });
        }
        out.sort_by_key(|letter| letter.event.seq);
        Ok(out)
    }

    /// What `topic` holds: its last event's seq and its events (bytes are not counted per
    /// subject by JetStream: 0).
    pub(crate) async fn topic(
        &self,
        config: &DurableConfig,
        topic: &Topic,
    ) -> Result<TopicInfo, StoreError> {
        let stream = self.stream(config).await?;
        let subject = self.subject(topic);
        let last = match stream.get_last_raw_message_by_subject(&subject).await {
            Ok(message) => message.sequence,
            Err(_) => 0,
        };
        let mut events = 0;
        let mut subjects = stream
            .info_with_subjects(&subject)
            .await
            .map_err(unavailable)?;
        while let Some(Ok((_, count))) = subjects.next().await {
            events += count as u64;
        }
        Ok(TopicInfo {
            last: Position {
                epoch: self.epoch(),
                seq: last,
            },
            events,
            bytes: 0,
        })
    }

    /// Deletes `consumer`'s JetStream consumer and its dead letters.
    pub(crate) async fn delete_consumer(
        &self,
        config: &DurableConfig,
        topic: &Topic,
        consumer: &str,
    ) -> Result<(), StoreError> {
        let stream = self.stream(config).await?;
        let _ = stream
            .delete_consumer(&consumer_name(topic, consumer))
            .await;
        stream
            .purge()
            .filter(self.dead_subject(topic, consumer))
            .await
            .map_err(unavailable)?;
        Ok(())
    }
}

/// A subject token for any bytes: base64url, or its SHA-256's above 192 bytes.
fn token(bytes: &[u8]) -> String {
    if bytes.len() <= 192 {
        format!("t{}", URL_SAFE_NO_PAD.encode(bytes))
    } else {
        let digest = ring::digest::digest(&ring::digest::SHA256, bytes);
        format!("h{}", URL_SAFE_NO_PAD.encode(digest))
    }
}

/// A JetStream consumer name for `consumer` of `topic`: a hash, so that any topic and
/// name fit JetStream's name rules.
fn consumer_name(topic: &Topic, consumer: &str) -> String {
    let mut input = Vec::with_capacity(topic.as_bytes().len() + consumer.len() + 1);
    input.extend_from_slice(topic.as_bytes());
    input.push(0);
    input.extend_from_slice(consumer.as_bytes());
    let digest = ring::digest::digest(&ring::digest::SHA256, &input);
    format!("hl{}", URL_SAFE_NO_PAD.encode(&digest.as_ref()[..18]))
}

/// The epoch of a stream created at `nanos`: a hash, never 0.
fn epoch_of(nanos: i128) -> u64 {
    let digest = ring::digest::digest(&ring::digest::SHA256, &nanos.to_le_bytes());
    let mut first = [0u8; 8];
    first.copy_from_slice(&digest.as_ref()[..8]);
    u64::from_le_bytes(first).max(1)
}

fn clamp(value: u64) -> i64 {
    i64::try_from(value).unwrap_or(i64::MAX)
}

/// JetStream could not be reached or refused.
fn unavailable(error: impl std::error::Error + Send + Sync + 'static) -> StoreError {
    StoreError::Unavailable(Arc::new(error))
}

/// A refusal JetStream gave as a message.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
struct Refused(String);

/// A refused publish: a full topic or stream, or JetStream unreachable.
fn publish_error(topic: &Topic, config: &DurableConfig, description: String) -> DurableError {
    if description.contains("maximum messages per subject") {
        DurableError::TopicFull {
            topic: topic.clone(),
            events: config.default_policy.max_events,
            bytes: 0,
        }
    } else if description.contains("maximum bytes") || description.contains("maximum messages") {
        DurableError::StoreFull {
            max: config.max_bytes,
        }
    } else {
        DurableError::Store(unavailable(Refused(description)))
    }
}
