//! Server memory per idle connection: a fresh server, one warm-up connection, then N
//! connections that each made one call and stay open; the server process's resident set
//! size before and after.

use std::time::Duration;

use futures_util::{stream, StreamExt};

use crate::{
    child::ChildServer,
    systems::{Connection, System},
    tls::Certificate,
};

/// What N idle connections cost the server.
#[derive(Debug, Clone, Copy)]
pub struct IdleCost {
    /// RSS before, KiB.
    pub before_kib: u64,
    /// RSS with the connections open, KiB.
    pub after_kib: u64,
    /// (after − before) / N.
    pub per_connection_kib: f64,
}

/// Measures `count` idle connections to `server` (which runs `system`).
pub async fn measure(
    system: System,
    server: &ChildServer,
    cert: &Certificate,
    count: usize,
) -> IdleCost {
    let warm = system.connect(server.addr, cert).await;
    warm.call(vec![1; 16]).await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    let before_kib = server.rss_kib();
    let conns: Vec<Connection> = stream::iter(0..count)
        .map(|_| async move {
            let conn = system.connect(server.addr, cert).await;
            conn.call(vec![1; 16]).await;
            conn
        })
        .buffer_unordered(64)
        .collect()
        .await;
    tokio::time::sleep(Duration::from_secs(1)).await;
    let after_kib = server.rss_kib();
    drop(conns);
    IdleCost {
        before_kib,
        after_kib,
        per_connection_kib: after_kib.saturating_sub(before_kib) as f64 / count as f64,
    }
}
