//! QUIC's own strengths, against a HardLight server on a thread of its own: reconnection
//! to first reply (0-RTT, 1-RTT, WebSocket), a small call's latency with and without a
//! bulk transfer on the same connection (priorities on and off), and the share of
//! unreliable events delivered.

use std::{
    net::SocketAddr,
    time::{Duration, Instant},
};

use futures_util::{stream, StreamExt};
use hardlight::*;

use crate::{stats::Latencies, tls::Certificate};

/// Items of the bulk transfer.
const CHUNK: usize = 64 * 1024;

/// The feature service.
#[rpc(state = (), events = u64)]
pub trait Features {
    /// A small call.
    #[rpc(priority = high)]
    async fn ping(&self, n: u32) -> HandlerResult<u32>;
    /// `chunks` items of 64 KiB.
    #[rpc(priority = low)]
    async fn bulk(&self, chunks: u32) -> HandlerResult<Streaming<Vec<u8>>>;
    /// Subscribes the connection to the updates.
    async fn join(&self) -> HandlerResult<()>;
}

#[rpc_handler(pub)]
impl Features for FeaturesHandler {
    async fn ping(&self, n: u32) -> HandlerResult<u32> {
        Ok(n)
    }

    async fn bulk(&self, chunks: u32) -> HandlerResult<Streaming<Vec<u8>>> {
        Ok(Streaming::new(
            stream::iter(0..chunks).map(|_| vec![1; CHUNK]),
        ))
    }

    async fn join(&self) -> HandlerResult<()> {
        self.subscriptions.add(&Topic::from("updates"));
        Ok(())
    }
}

/// A server on a thread (and runtime) of its own, and its emitter.
pub fn serve(cert: &Certificate) -> (SocketAddr, EventEmitter<u64>) {
    let config = ServerConfig::from_pem(
        "127.0.0.1:0",
        cert.cert_pem.as_bytes(),
        cert.key_pem.as_bytes(),
    )
    .expect("the benchmark certificate");
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("runtime");
        runtime.block_on(async move {
            let mut server = Server::new(config, factory!(FeaturesHandler));
            let addr = server.bind().expect("bind");
            let _ = tx.send((addr, server.get_event_emitter()));
            let _ = server.run().await;
        });
    });
    rx.recv().expect("server started")
}

fn settings(
    addr: SocketAddr,
    cert: &Certificate,
    transport: Transport,
    zero_rtt: bool,
) -> ClientConfig {
    ClientConfig::new(addr.to_string())
        .with_ca_pem(cert.cert_pem.clone())
        .with_server_name("localhost")
        .with_transport(transport)
        .with_reconnect(None)
        .with_zero_rtt(zero_rtt)
}

fn client(
    addr: SocketAddr,
    cert: &Certificate,
    transport: Transport,
    zero_rtt: bool,
) -> FeaturesClient {
    FeaturesClient::with_config(settings(addr, cert, transport, zero_rtt))
}

/// Median and p99 in µs of `count` reconnections, each timed from `connect` to the first
/// reply (the client held a session ticket from the connection before).
pub async fn reconnect(
    addr: SocketAddr,
    cert: &Certificate,
    transport: Transport,
    zero_rtt: bool,
    count: usize,
) -> (f64, f64) {
    let client = client(addr, cert, transport, zero_rtt);
    client.connect().await.expect("connect");
    client.ping(0).await.expect("ping");
    let mut latencies = Latencies::default();
    for n in 0..count {
        client.disconnect().await;
        let started = Instant::now();
        client.connect().await.expect("reconnect");
        client.ping(n as u32).await.expect("ping");
        latencies.record(started.elapsed());
    }
    client.disconnect().await;
    (latencies.quantile_us(0.5), latencies.quantile_us(0.99))
}

/// What runs beside the small calls.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Beside {
    /// Nothing.
    Nothing,
    /// 16 MiB transfers one after another on the same connection, with priorities (the
    /// methods' own: pings high, the transfer low) or without (everything normal).
    Bulk {
        /// Whether the calls keep their methods' priorities.
        priorities: bool,
    },
    /// The same transfers on another connection of the same client process.
    BulkElsewhere,
}

/// p50 and p99 in µs of `calls` sequential small calls, with `beside` running.
pub async fn small_calls(
    addr: SocketAddr,
    cert: &Certificate,
    transport: Transport,
    beside: Beside,
    calls: usize,
) -> (f64, f64) {
    let client = client(addr, cert, transport, true);
    client.connect().await.expect("connect");
    let caller = match beside {
        Beside::Bulk { priorities: false } => client.with_priority(Priority::Normal),
        _ => client.clone(),
    };
    let downloader = match beside {
        Beside::Nothing => None,
        Beside::Bulk { .. } => Some(caller.clone()),
        Beside::BulkElsewhere => {
            let other = self::client(addr, cert, transport, true);
            other.connect().await.expect("connect");
            Some(other)
        }
    };
    let transfer = downloader.map(|downloader| {
        tokio::spawn(async move {
            loop {
                let mut items = downloader.bulk(256).await.expect("bulk");
                while let Some(item) = items.next().await {
                    item.expect("item");
                }
            }
        })
    });
    if transfer.is_some() {
        // the transfer under way first
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let mut latencies = Latencies::default();
    for n in 0..calls {
        let started = Instant::now();
        caller.ping(n as u32).await.expect("ping");
        latencies.record(started.elapsed());
    }
    if let Some(transfer) = transfer {
        transfer.abort();
    }
    client.disconnect().await;
    (latencies.quantile_us(0.5), latencies.quantile_us(0.99))
}

/// The share (%) of `count` unreliable events delivered, emitted as fast as the emitter
/// can, each followed by a reliable one (so the connection is busy as often as not).
pub async fn unreliable(
    addr: SocketAddr,
    cert: &Certificate,
    emitter: &EventEmitter<u64>,
    transport: Transport,
    count: u64,
) -> f64 {
    // room for every event: they are read once all are emitted
    let config = settings(addr, cert, transport, true).with_event_buffer(2 * count as usize + 16);
    let client = FeaturesClient::with_config(config);
    client.connect().await.expect("connect");
    let mut events = client.subscribe().await.expect("subscribe");
    client.join().await.expect("join");
    for n in 0..count {
        emitter.emit_unreliable(&Topic::from("updates"), n);
        emitter.emit(&Topic::from("updates"), n).await;
        if n % 16 == 0 {
            tokio::time::sleep(Duration::from_micros(100)).await;
        }
    }
    let mut reliable = 0;
    while reliable < count {
        match events.recv().await {
            Ok(event) if !event.unreliable => reliable += 1,
            Ok(_) => {}
            Err(error) => panic!("reliable events lost: {error}"),
        }
    }
    // what is still in flight of the unreliable ones has had the time the reliable took
    let received = client.stats().unreliable_received;
    client.disconnect().await;
    100.0 * received as f64 / count as f64
}
