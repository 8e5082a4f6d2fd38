//! A server and a client in one process: typed calls and the synced connection state.
//!
//! Run with `cargo run --example counter`.

use std::time::Duration;

use hardlight::*;

/// What the counter service can do.
#[rpc]
trait Counter {
    /// Adds `amount` and returns the new value.
    async fn increment(&self, amount: u32) -> HandlerResult<u32>;
    /// Subtracts `amount`; fails if the counter would go below zero.
    async fn decrement(&self, amount: u32) -> HandlerResult<u32, CounterError>;
    /// The current value.
    async fn get(&self) -> HandlerResult<u32>;
}

/// The handler's own error type: the client receives it typed.
#[codable]
#[derive(Debug, Clone, PartialEq)]
enum CounterError {
    /// The counter cannot go below zero.
    WouldUnderflow { current: u32, requested: u32 },
}

impl std::fmt::Display for CounterError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::WouldUnderflow { current, requested } => {
                write!(f, "cannot subtract {requested} from {current}")
            }
        }
    }
}

/// Per-connection state, owned by the server and mirrored by the client.
#[connection_state]
struct State {
    counter: u32,
    last_op: String,
}

#[rpc_handler]
impl Counter for Handler {
    async fn increment(&self, amount: u32) -> HandlerResult<u32> {
        let mut state = self.state.write().await;
        state.counter += amount;
        state.last_op = format!("+{amount}");
        Ok(state.counter)
    }

    async fn decrement(&self, amount: u32) -> HandlerResult<u32, CounterError> {
        let mut state = self.state.write().await;
        let current = state.counter;
        let next = current
            .checked_sub(amount)
            .ok_or(CounterError::WouldUnderflow {
                current,
                requested: amount,
            })?;
        state.counter = next;
        state.last_op = format!("-{amount}");
        Ok(next)
    }

    async fn get(&self) -> HandlerResult<u32> {
        Ok(self.state.read().await.counter)
    }
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
        .init();

    let mut server = Server::new(
        ServerConfig::new_self_signed("127.0.0.1:0"),
        factory!(Handler),
    );
    let addr = server.bind()?;
    let shutdown = server.shutdown_handle();
    let running = tokio::spawn(server.run());
    println!("server listening on {addr} (QUIC)");

    let client = CounterClient::new_self_signed(addr.to_string(), Compression::default());
    client.connect().await?;
    println!("connected; initial state: {:?}", client.state().await?);

    let value = client.increment(5).await?;
    println!(
        "increment(5) -> {value}; state: {:?}",
        client.state().await?
    );
    let value = client.decrement(2).await?;
    println!(
        "decrement(2) -> {value}; state: {:?}",
        client.state().await?
    );
    match client.decrement(10).await {
        Err(RpcError::Handler(error)) => println!("decrement(10) -> handler error: {error}"),
        other => return Err(format!("expected a handler error, got {other:?}").into()),
    }
    println!("get() -> {}", client.get().await?);

    client.disconnect().await;
    shutdown.shutdown(Duration::from_secs(5)).await;
    running.await??;
    println!("done");
    Ok(())
}
