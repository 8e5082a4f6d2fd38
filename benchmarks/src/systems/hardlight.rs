//! HardLight itself: an echo method, plus the fan-out methods.

use std::{net::SocketAddr, sync::Arc};

use futures_util::{future::BoxFuture, FutureExt};
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
}

/// The benchmark service.
#[rpc(state = (), events = Tick)]
pub trait Bench {
    /// Returns `data`.
    async fn echo(&self, data: Vec<u8>) -> HandlerResult<Vec<u8>>;
    /// Subscribes this connection to the fan-out topic.
    async fn join(&self) -> HandlerResult<()>;
    /// Emits `count` events of `size` payload bytes to the fan-out topic, in the background.
    async fn start(&self, count: u64, size: u32) -> HandlerResult<()>;
}

#[rpc_handler]
impl Bench for Handler {
    async fn echo(&self, data: Vec<u8>) -> HandlerResult<Vec<u8>> {
        Ok(data)
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
                let data = vec![(seq % 251) as u8; size as usize];
                events.emit(&topic, Tick { seq, data }).await;
            }
        });
        Ok(())
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
        limits = limits.with_max_queued_events(queue);
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

pub(super) async fn connect(
    addr: SocketAddr,
    cert: &Certificate,
    transport: Transport,
) -> Connection {
    let client = BenchClient::with_config(client_config(addr, cert, transport));
    client.connect().await.expect("connect");
    Arc::new(HardLightTarget(client))
}

struct HardLightTarget(BenchClient);

impl Target for HardLightTarget {
    fn call(&self, data: Vec<u8>) -> BoxFuture<'static, Vec<u8>> {
        let client = self.0.clone();
        async move { client.echo(data).await.expect("echo") }.boxed()
    }
}
