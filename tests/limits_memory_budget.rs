//! The server-wide memory budget (`ServerLimits::memory_budget`) and the per-connection
//! byte budget charge what peers make the server hold by bytes — call bodies as received
//! and as decompressed, events, subscribed topic names — and work that would pass them is
//! refused with a retriable `Overloaded` instead of growing. Over QUIC and WebSocket.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::{sync::Arc, time::Duration};

use common::eventually;
use hardlight::*;
use tokio::sync::watch;

#[rpc(state = (), events = Vec<u8>)]
trait Vault {
    /// Holds `data` until the gate opens; returns its length.
    async fn keep(&self, data: Vec<u8>) -> HandlerResult<usize>;
    /// Opens the gate for every held call.
    async fn release(&self) -> HandlerResult<()>;
    /// Subscribes to `topic`; the refusal's message on failure.
    async fn join(&self, topic: String) -> HandlerResult<bool>;
    /// Unsubscribes from `topic`.
    async fn leave(&self, topic: String) -> HandlerResult<bool>;
    /// Emits `size` bytes to `topic`; the refusal's message on failure.
    async fn post(&self, topic: String, size: u32) -> HandlerResult<usize>;
}

struct Gate(watch::Sender<bool>);

#[rpc_handler(app = Gate)]
impl Vault for Handler {
    async fn keep(&self, data: Vec<u8>) -> HandlerResult<usize> {
        let mut open = self.app.0.subscribe();
        let _ = open.wait_for(|open| *open).await;
        Ok(data.len())
    }

    async fn release(&self) -> HandlerResult<()> {
        self.app.0.send_replace(true);
        Ok(())
    }

    async fn join(&self, topic: String) -> HandlerResult<bool> {
        self.subscriptions
            .try_add(&Topic::from(topic))
            .map_err(|e| HandlerError::new(e.to_string()))
    }

    async fn leave(&self, topic: String) -> HandlerResult<bool> {
        Ok(self.subscriptions.remove(&Topic::from(topic)))
    }

    async fn post(&self, topic: String, size: u32) -> HandlerResult<usize> {
        self.events
            .try_emit(&Topic::from(topic), vec![7; size as usize])
            .map_err(|e| HandlerError::new(e.to_string()))
    }
}

const KIB: usize = 1024;

struct Vaults {
    config: ClientConfig,
    stats: StatsHandle,
    _shutdown: ShutdownHandle,
}

impl Vaults {
    async fn start(limits: ServerLimits, transport: Transport) -> Self {
        let config = ServerConfig::new_self_signed("127.0.0.1:0")
            .with_limits(Limits::default().with_max_message_size(256 * KIB as u32))
            .with_server_limits(limits);
        let certificate = config.certificate_pem().unwrap();
        let gate = Arc::new(Gate(watch::channel(false).0));
        let mut server = Server::new(config, Factory::<Handler>::with_shared_app(gate));
        let addr = server.bind().unwrap();
        let (stats, shutdown) = (server.stats_handle(), server.shutdown_handle());
        tokio::spawn(server.run());
        let config = ClientConfig::new(addr.to_string())
            .with_ca_pem(certificate)
            .with_transport(transport);
        Self {
            config,
            stats,
            _shutdown: shutdown,
        }
    }

    /// A client that sends bodies as they are (`compressed` false) or zstd-compressed.
    async fn client(&self, compressed: bool) -> VaultClient {
        let compression = if compressed {
            Compression::Zstd {
                level: 1,
                min_size: 64,
            }
        } else {
            Compression::None
        };
        let client = VaultClient::with_config(self.config.clone().with_compression(compression));
        client.connect().await.unwrap();
        client
    }

    fn charged(&self) -> u64 {
        self.stats.snapshot().memory_charged
    }
}

/// Bytes zstd cannot shrink.
fn incompressible(len: usize) -> Vec<u8> {
    let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
    (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x as u8
        })
        .collect()
}

fn assert_overloaded<T: std::fmt::Debug>(result: Result<T, RpcError>, setting: &str) {
    match result {
        Err(
            error @ RpcError::Remote {
                code: ErrorCode::Overloaded,
                ..
            },
        ) => {
            assert!(error.is_retriable());
            assert!(error.to_string().contains(setting), "{error}");
        }
        other => panic!("expected Overloaded naming {setting}, got {other:?}"),
    }
}

/// A call that holds 150 KiB of a 256 KiB budget; a second one from another connection
/// does not fit and is refused; once the first returns, calls are served again.
async fn a_call_past_the_server_budget_is_refused(transport: Transport) {
    let limits = ServerLimits::default().with_memory_budget(256 * KIB as u64);
    let vaults = Vaults::start(limits, transport).await;
    let (first, second) = (vaults.client(false).await, vaults.client(false).await);
    let held = tokio::spawn(async move { first.keep(incompressible(150 * KIB)).await });
    eventually("the first call's body is charged", || {
        vaults.charged() >= 150 * KIB as u64
    })
    .await;
    assert_overloaded(
        second.keep(incompressible(150 * KIB)).await,
        "ServerLimits::memory_budget",
    );
    assert!(vaults.stats.snapshot().memory_refusals >= 1);
    second.release().await.unwrap();
    assert_eq!(held.await.unwrap().unwrap(), 150 * KIB);
    eventually("the body is released", || vaults.charged() == 0).await;
    assert_eq!(
        second.keep(incompressible(150 * KIB)).await.unwrap(),
        150 * KIB
    );
}

over_both_transports!(a_call_past_the_server_budget_is_refused);

/// A compressed call is charged what it decompresses to: two bodies of 150 KiB that
/// arrive as a few hundred bytes each do not both fit a 256 KiB connection budget.
async fn a_compressed_call_is_charged_its_decompressed_size(transport: Transport) {
    let limits = ServerLimits::default().with_max_inflight_bytes(256 * KIB as u64);
    let vaults = Vaults::start(limits, transport).await;
    let client = vaults.client(true).await;
    let first = client.clone();
    let held = tokio::spawn(async move { first.keep(vec![0; 150 * KIB]).await });
    eventually("the first call is charged as decompressed", || {
        vaults.charged() >= 150 * KIB as u64
    })
    .await;
    assert_overloaded(
        client.keep(vec![0; 150 * KIB]).await,
        "ServerLimits::max_inflight_bytes",
    );
    client.release().await.unwrap();
    assert_eq!(held.await.unwrap().unwrap(), 150 * KIB);
    eventually("the call's bytes are released", || vaults.charged() == 0).await;
}

over_both_transports!(a_compressed_call_is_charged_its_decompressed_size);

/// Calls whose handlers return at once (served in the connection's task) give both
/// budgets back before their reply: with room for one body at a time in each, calls one
/// after the other all fit, compressed (charged as decompressed) or not. A share not
/// given back would make the next call wait (the connection's) or be refused (the
/// server's).
async fn calls_served_at_once_give_both_budgets_back(transport: Transport) {
    let limits = ServerLimits::default()
        .with_max_inflight_bytes(256 * KIB as u64)
        .with_memory_budget(256 * KIB as u64);
    let vaults = Vaults::start(limits, transport).await;
    for compressed in [false, true] {
        let client = vaults.client(compressed).await;
        client.release().await.unwrap();
        for _ in 0..20 {
            let body = match compressed {
                true => vec![0; 150 * KIB],
                false => incompressible(150 * KIB),
            };
            let kept = tokio::time::timeout(Duration::from_secs(120), client.keep(body))
                .await
                .expect("the last call's share of the connection's budget was given back");
            assert_eq!(kept.unwrap(), 150 * KIB);
        }
    }
    eventually("every call's bytes are released", || vaults.charged() == 0).await;
}

over_both_transports!(calls_served_at_once_give_both_budgets_back);

/// An emit that does not fit the budget is refused with `EmitError::Overloaded`; the
/// next one, once memory is free, is delivered.
#[tokio::test]
async fn an_emit_past_the_budget_is_refused_and_a_later_one_delivered() {
    let limits = ServerLimits::default().with_memory_budget(256 * KIB as u64);
    let vaults = Vaults::start(limits, Transport::Quic).await;
    let (holder, listener) = (vaults.client(false).await, vaults.client(false).await);
    let mut events = listener.subscribe().await.unwrap();
    assert!(listener.join("t".into()).await.unwrap());
    let held = tokio::spawn(async move { holder.keep(incompressible(150 * KIB)).await });
    eventually("the held call is charged", || {
        vaults.charged() >= 150 * KIB as u64
    })
    .await;
    match listener.post("t".into(), 120 * KIB as u32).await {
        Err(RpcError::Handler(error)) => assert!(
            error.to_string().contains("ServerLimits::memory_budget"),
            "{error}"
        ),
        other => panic!("expected the emit's refusal, got {other:?}"),
    }
    listener.release().await.unwrap();
    held.await.unwrap().unwrap();
    eventually("the held call is released", || {
        vaults.charged() < 100 * KIB as u64
    })
    .await;
    assert_eq!(
        listener.post("t".into(), 120 * KIB as u32).await.unwrap(),
        1
    );
    let event = tokio::time::timeout(Duration::from_secs(60), events.recv())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(event.payload.len(), 120 * KIB);
    // kept for replay (and charged) until the session ends
    assert!(vaults.charged() >= 120 * KIB as u64);
    listener.disconnect().await;
    eventually("the session's event and topic are released", || {
        vaults.charged() == 0
    })
    .await;
}

/// Subscribed topic names are charged: long names stop fitting before
/// `max_subscriptions`, and leaving one makes room for another.
#[tokio::test]
async fn subscribed_topic_names_are_charged_to_the_budget() {
    let limits = ServerLimits::default().with_memory_budget(64 * KIB as u64);
    let vaults = Vaults::start(limits, Transport::WebSocket).await;
    let client = vaults.client(false).await;
    let topic = |i: usize| format!("{i:04}{}", "x".repeat(4 * KIB));
    let mut joined = 0;
    let refusal = loop {
        match client.join(topic(joined)).await {
            Ok(added) => {
                assert!(added);
                joined += 1;
                assert!(joined < 64, "64 names of 4 KiB cannot fit 64 KiB");
            }
            Err(refusal) => break refusal,
        }
    };
    assert!(joined >= 4, "{joined} topics joined");
    // the handler's own refusal (`SubscribeError::Overloaded`), not the call's
    match refusal {
        RpcError::Handler(error) => assert!(
            error.to_string().contains("ServerLimits::memory_budget"),
            "{error}"
        ),
        other => panic!("expected the subscription's refusal, got {other:?}"),
    }
    assert!(vaults.charged() <= 64 * KIB as u64);
    assert!(client.leave(topic(0)).await.unwrap());
    assert!(client.join(topic(joined)).await.unwrap());
}
