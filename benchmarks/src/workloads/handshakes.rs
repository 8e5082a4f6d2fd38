//! Connection establishment: connect (including TLS and the system's own handshake), make
//! one call, close; `concurrency` at a time.

use std::{net::SocketAddr, time::Instant};

use futures_util::{stream, StreamExt};

use crate::{systems::System, tls::Certificate};

/// Connections per second established (and used once) to `system`'s server at `addr`.
pub async fn per_second(
    system: System,
    addr: SocketAddr,
    cert: &Certificate,
    count: usize,
    concurrency: usize,
) -> f64 {
    let started = Instant::now();
    stream::iter(0..count)
        .map(|_| async move {
            let conn = system.connect(addr, cert).await;
            assert_eq!(conn.call(vec![1; 16]).await.len(), 16);
        })
        .buffer_unordered(concurrency)
        .for_each(|()| async {})
        .await;
    count as f64 / started.elapsed().as_secs_f64()
}
