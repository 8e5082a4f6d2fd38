//! A service whose calls report what they see of their deadline and context, and relay
//! to another server: deadline and trace propagation over two hops.

use std::sync::{
    atomic::{AtomicUsize, Ordering},
    Arc, OnceLock,
};

use hardlight::*;

use super::Running;

/// The caller's trace context in the two-hop tests.
pub const TRACEPARENT: &str = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";
/// Its trace id.
pub const TRACE_ID: &str = "4bf92f3577b34da6a3ce929d0e0e4736";

/// What a handler saw of its call.
#[codable]
#[derive(Debug, Clone, PartialEq)]
pub struct Seen {
    pub remaining_micros: Option<u64>,
    pub trace_id: Option<String>,
    pub parent_id: Option<String>,
    pub span_id: String,
    pub entries: Vec<(String, String)>,
}

/// Calls that report what they see of their deadline and context, and relay to another server.
#[rpc(state = ())]
pub trait Relay {
    /// Never returns; counts its drops.
    async fn hold(&self) -> HandlerResult<()>;
    /// What this call sees.
    async fn seen(&self) -> HandlerResult<Seen>;
    /// What this call sees, and what the downstream server's call sees when this one makes
    /// it.
    async fn relay(&self) -> HandlerResult<(Seen, Seen)>;
    /// Calls `hold` downstream.
    async fn relay_hold(&self) -> HandlerResult<()>;
}

/// What every handler of a server shares.
#[derive(Default)]
pub struct Shared {
    dropped: AtomicUsize,
    downstream: OnceLock<RelayClient>,
}

struct CountDrop<'a>(&'a AtomicUsize);

impl Drop for CountDrop<'_> {
    fn drop(&mut self) {
        self.0.fetch_add(1, Ordering::SeqCst);
    }
}

fn seen_now() -> Seen {
    let call = CurrentCall::get().expect("inside a call");
    let trace = call.trace();
    Seen {
        remaining_micros: call.remaining().map(|r| r.as_micros() as u64),
        trace_id: trace.map(|t| t.trace_id()),
        parent_id: trace.map(|t| t.parent_id()),
        span_id: format!("{:016x}", call.span_id()),
        entries: call
            .context()
            .map(|c| c.entries.clone())
            .unwrap_or_default(),
    }
}

fn downstream_failed(error: RpcError) -> HandlerError {
    HandlerError::new(match error {
        RpcError::DeadlineExceeded(_) => "downstream: deadline exceeded".to_owned(),
        other => format!("downstream: {other}"),
    })
}

#[rpc_handler(pub, app = Shared)]
impl Relay for RelayHandler {
    async fn hold(&self) -> HandlerResult<()> {
        let _counted = CountDrop(&self.app.dropped);
        std::future::pending::<()>().await;
        Ok(())
    }

    async fn seen(&self) -> HandlerResult<Seen> {
        Ok(seen_now())
    }

    async fn relay(&self) -> HandlerResult<(Seen, Seen)> {
        let mine = seen_now();
        let downstream = self.app.downstream.get().expect("a downstream server");
        let theirs = downstream.seen().await.map_err(downstream_failed)?;
        Ok((mine, theirs))
    }

    async fn relay_hold(&self) -> HandlerResult<()> {
        let downstream = self.app.downstream.get().expect("a downstream server");
        downstream.hold().await.map_err(downstream_failed)
    }
}

/// A relay server and what its handlers share.
pub struct Node {
    pub running: Running<()>,
    pub shared: Arc<Shared>,
}

impl Node {
    /// Starts a relay server on loopback.
    pub fn start() -> Self {
        let shared = Arc::new(Shared::default());
        let running = super::run(
            ServerConfig::new_self_signed("127.0.0.1:0"),
            Factory::<RelayHandler>::with_shared_app(Arc::clone(&shared)),
        );
        Self { running, shared }
    }

    /// A client over `transport`, connected.
    pub async fn client(&self, transport: Transport) -> RelayClient {
        let client = RelayClient::with_config(super::config_via(
            self.running.addr,
            &self.running.certificate_pem,
            transport,
        ));
        client.connect().await.expect("connect");
        client
    }

    /// This node's handlers call `downstream` over `transport`.
    pub async fn relay_to(&self, downstream: &Node, transport: Transport) {
        let client = downstream.client(transport).await;
        assert!(self.shared.downstream.set(client).is_ok());
    }

    /// Handlers of `hold` dropped so far.
    pub fn dropped(&self) -> usize {
        self.shared.dropped.load(Ordering::SeqCst)
    }
}

/// The network transports.
pub const TRANSPORTS: [Transport; 2] = [Transport::Quic, Transport::WebSocket];
