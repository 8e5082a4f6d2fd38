//! Server memory per idle connection: holds N idle connections (QUIC, then WebSocket) and
//! reads the server process's resident set size.
//!
//! `cargo run --release -p hardlight-benchmarks --bin idle [-- --connections 1000]`

// A benchmark aborts on any failure: a partial measurement would be misleading.
#![allow(clippy::expect_used)]

use std::time::Duration;

use futures_util::{stream, StreamExt};
use hardlight::*;
use hardlight_benchmarks::ChildServer;

#[rpc(state = ())]
trait Idle {
    /// Does nothing.
    async fn ping(&self) -> HandlerResult<()>;
}

#[rpc_handler]
impl Idle for Handler {
    async fn ping(&self) -> HandlerResult<()> {
        Ok(())
    }
}

async fn serve() -> Result<(), Box<dyn std::error::Error>> {
    let config = ServerConfig::new_self_signed("127.0.0.1:0").with_compression(Compression::None);
    let mut server = Server::new(config, factory!(Handler));
    println!("{}", server.bind()?);
    server.run().await?;
    Ok(())
}

/// KiB per connection added by `count` idle connections over `transport`.
async fn measure(transport: Transport, count: usize) -> (u64, u64, f64) {
    let server = ChildServer::spawn(&["serve"]).expect("server");
    let config = ClientConfig::new(server.addr.to_string())
        .insecure_accept_any_certificate()
        .with_compression(Compression::None)
        .with_transport(transport);
    // one warm-up connection so the baseline includes the runtime's fixed costs
    let warm = IdleClient::with_config(config.clone());
    warm.connect().await.expect("connect");
    warm.ping().await.expect("ping");
    tokio::time::sleep(Duration::from_millis(500)).await;
    let before = server.rss_kib().expect("rss");
    let clients: Vec<IdleClient> = stream::iter(0..count)
        .map(|_| {
            let config = config.clone();
            async move {
                let client = IdleClient::with_config(config);
                client.connect().await.expect("connect");
                client.ping().await.expect("ping");
                client
            }
        })
        .buffer_unordered(32)
        .collect()
        .await;
    tokio::time::sleep(Duration::from_secs(2)).await;
    let after = server.rss_kib().expect("rss");
    drop(clients);
    (
        before,
        after,
        (after.saturating_sub(before)) as f64 / count as f64,
    )
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    if std::env::args().nth(1).as_deref() == Some("serve") {
        return runtime.block_on(serve());
    }
    let args: Vec<String> = std::env::args().collect();
    let count = args
        .iter()
        .position(|a| a == "--connections")
        .and_then(|i| args.get(i + 1))
        .and_then(|v| v.parse().ok())
        .unwrap_or(1000usize);
    runtime.block_on(async {
        println!("server RSS with {count} idle connections (each made one call)\n");
        println!("| transport | RSS before, KiB | RSS after, KiB | KiB per connection |");
        println!("|---|---:|---:|---:|");
        for (name, transport) in [
            ("QUIC", Transport::Quic),
            ("WebSocket", Transport::WebSocket),
        ] {
            let (before, after, per) = measure(transport, count).await;
            println!("| {name} | {before} | {after} | {per:.1} |");
        }
    });
    Ok(())
}
