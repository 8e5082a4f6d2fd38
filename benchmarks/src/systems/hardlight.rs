//! HardLight itself: an echo method, plus the fan-out methods.

use std::{net::SocketAddr, sync::Arc};

use futures_util::{future::BoxFuture, FutureExt, StreamExt};
use hardlight::*;

use super::{Connection, Target};
use crate::{child::announce, tls::Certificate};

/// One fan-out event.
#[codable]
#[derive(Debug, Clone)]
pub struct Tick {
    /// Its sequence number.
    pub seq: u64,
    /// Its payload.
    pub data: Vec<u8>,
    /// When it was emitted, in µs since the Unix epoch (latency workloads; 0 otherwise).
    pub emitted_us: u64,
}

impl Tick {
    /// Event `seq` with `size` payload bytes, stamped `emitted_us`.
    pub fn new(seq: u64, size: u32, emitted_us: u64) -> Self {
        Self {
            seq,
            data: vec![(seq % 251) as u8; size as usize],
            emitted_us,
        }
    }
}

/// The topic of the emit → deliver latency workloads.
const TIMED: &str = "bench-timed";

/// Microseconds since the Unix epoch now: comparable between processes of one machine.
pub fn now_us() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_micros() as u64)
}

/// The benchmark service.
#[rpc(state = (), events = Tick)]
pub trait Bench {
    /// Returns `data`.
    async fn echo(&self, data: Vec<u8>) -> HandlerResult<Vec<u8>>;
    /// Streams `count` items of `size` bytes.
    async fn items(&self, count: u64, size: u32) -> HandlerResult<Streaming<Vec<u8>>>;
    /// Takes the client's items and returns how many there were.
    async fn upload(&self, items: Streaming<Vec<u8>>) -> HandlerResult<u64>;
    /// Subscribes this connection to the fan-out topic.
    async fn join(&self) -> HandlerResult<()>;
    /// Emits `count` events of `size` payload bytes to the fan-out topic, in the background.
    async fn start(&self, count: u64, size: u32) -> HandlerResult<()>;
    /// Subscribes this connection to the timed topic: in memory, or durably as its consumer.
    async fn join_timed(&self, durable: bool) -> HandlerResult<()>;
    /// Emits `count` timestamped events of `size` payload bytes to the timed topic from
    /// `emitters` concurrent emitters, each waiting for its emit to return (a durable emit
    /// returns once stored) and, with `pace_us` above 0, emitting at most once per
    /// `pace_us` µs; returns how long that took, in ns.
    async fn emit_timed(
        &self,
        count: u64,
        size: u32,
        emitters: u32,
        durable: bool,
        pace_us: u64,
    ) -> HandlerResult<u64>;
    /// Returns `data`, received and sent as a `Blob`.
    async fn echo_blob(&self, data: Blob) -> HandlerResult<Blob>;
}

#[rpc_handler]
impl Bench for Handler {
    async fn echo(&self, data: Vec<u8>) -> HandlerResult<Vec<u8>> {
        Ok(data)
    }

    async fn items(&self, count: u64, size: u32) -> HandlerResult<Streaming<Vec<u8>>> {
        let item = vec![7u8; size as usize];
        Ok(Streaming::new(futures_util::stream::iter(
            (0..count).map(move |_| item.clone()),
        )))
    }

    async fn upload(&self, mut items: Streaming<Vec<u8>>) -> HandlerResult<u64> {
        let mut count = 0;
        while items.next().await.transpose()?.is_some() {
            count += 1;
        }
        Ok(count)
    }

    async fn join(&self) -> HandlerResult<()> {
        self.subscriptions.add(&Topic::from("bench"));
        Ok(())
    }

    async fn start(&self, count: u64, size: u32) -> HandlerResult<()> {
        let events = self.events.clone();
        tokio::spawn(async move {
            let topic = Topic::from("bench");
            for seq in 0..count {
                events.emit(&topic, Tick::new(seq, size, 0)).await;
            }
        });
        Ok(())
    }

    async fn join_timed(&self, durable: bool) -> HandlerResult<()> {
        let topic = Topic::from(TIMED);
        if durable {
            self.subscriptions
                .add_durable(&topic, "bench", StartAt::Newest)
                .await?;
        } else {
            self.subscriptions.add(&topic);
        }
        Ok(())
    }

    async fn emit_timed(
        &self,
        count: u64,
        size: u32,
        emitters: u32,
        durable: bool,
        pace_us: u64,
    ) -> HandlerResult<u64> {
        let started = std::time::Instant::now();
        let emitters = u64::from(emitters.max(1));
        let tasks: Vec<_> = (0..emitters)
            .map(|e| {
                let events = self.events.clone();
                tokio::spawn(async move {
                    let topic = Topic::from(TIMED);
                    let mut pace = (pace_us > 0).then(|| {
                        let mut pace =
                            tokio::time::interval(std::time::Duration::from_micros(pace_us));
                        pace.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
                        pace
                    });
                    for seq in (e..count).step_by(emitters as usize) {
                        if let Some(pace) = &mut pace {
                            pace.tick().await;
                        }
                        let tick = Tick::new(seq, size, now_us());
                        if durable {
                            let stored = events
                                .emit_durable(&topic, tick, EmitOptions::default())
                                .await;
                            stored.expect("stored");
                        } else {
                            events.emit(&topic, tick).await;
                        }
                    }
                })
            })
            .collect();
        for task in tasks {
            task.await.map_err(|e| HandlerError::new(e.to_string()))?;
        }
        Ok(started.elapsed().as_nanos() as u64)
    }

    async fn echo_blob(&self, data: Blob) -> HandlerResult<Blob> {
        Ok(data)
    }
}

/// How a benchmark's HardLight server departs from the default limits (besides the
/// connection caps, lifted since every benchmark client comes from 127.0.0.1 and the idle
/// workload holds 10,000 connections).
#[derive(Debug, Clone, Default)]
pub struct Serving {
    /// An event queue this long, so that no fan-out subscriber lags.
    pub queue: Option<usize>,
    /// QUIC streams for calls of their own (`ServerLimits::max_call_streams`).
    pub call_streams: Option<u32>,
    /// The file of a durable store (`ServerConfig::with_durable`).
    pub durable: Option<std::path::PathBuf>,
    /// The NATS server to share topics through (`ServerConfig::with_cluster`).
    #[cfg(feature = "cluster")]
    pub cluster: Option<String>,
}

/// Serves HardLight (QUIC and WebSocket on one port).
pub async fn serve(cert: Certificate, serving: Serving) {
    let mut limits = ServerLimits::default()
        .with_max_connections(100_000)
        .with_max_connections_per_ip(100_000);
    if let Some(queue) = serving.queue {
        // in events and in bytes (a queued 64 B event is about 100 B): a subscriber that
        // falls behind the emitter (unpinned, it shares a core with the server) catches up
        // instead of lagging
        limits = limits
            .with_max_queued_events(queue)
            .with_max_queued_bytes(queue.saturating_mul(256));
    }
    if let Some(streams) = serving.call_streams {
        limits = limits.with_max_call_streams(streams);
    }
    let config = ServerConfig::from_pem(
        "127.0.0.1:0",
        cert.cert_pem.as_bytes(),
        cert.key_pem.as_bytes(),
    )
    .expect("server identity")
    .with_compression(Compression::None)
    .with_server_limits(limits);
    let config = match serving.durable {
        Some(path) => config.with_durable(DurableConfig::new(path)),
        None => config,
    };
    #[cfg(feature = "cluster")]
    let config = match serving.cluster {
        Some(url) => config.with_cluster(ClusterConfig::nats(url).with_subject_prefix("bench")),
        None => config,
    };
    let mut server = Server::new(config, factory!(Handler));
    announce(server.bind().expect("bind"));
    server.run().await.expect("serve");
}

/// A client configuration for the server at `addr`.
pub fn client_config(addr: SocketAddr, cert: &Certificate, transport: Transport) -> ClientConfig {
    ClientConfig::new(addr.to_string())
        .with_ca_pem(cert.cert_pem.as_bytes())
        .with_server_name("localhost")
        .with_compression(Compression::None)
        .with_transport(transport)
}

/// A connection whose calls echo their bytes as a `Vec<u8>`, or as a `Blob` with `blob`.
pub(super) async fn connect(
    addr: SocketAddr,
    cert: &Certificate,
    transport: Transport,
    blob: bool,
) -> Connection {
    let client = BenchClient::with_config(client_config(addr, cert, transport));
    client.connect().await.expect("connect");
    match blob {
        false => Arc::new(HardLightTarget(client)),
        true => Arc::new(BlobTarget(client)),
    }
}

struct HardLightTarget(BenchClient);

impl Target for HardLightTarget {
    fn call(&self, data: Vec<u8>) -> BoxFuture<'static, Vec<u8>> {
        let client = self.0.clone();
        async move { client.echo(data).await.expect("echo") }.boxed()
    }
}

/// Echoes a [`Blob`].
struct BlobTarget(BenchClient);

impl Target for BlobTarget {
    fn call(&self, data: Vec<u8>) -> BoxFuture<'static, Vec<u8>> {
        let client = self.0.clone();
        async move { client.echo_blob(data.into()).await.expect("echo").into() }.boxed()
    }
}
