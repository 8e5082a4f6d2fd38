//! Closed-loop echo: each caller sends its next request when the previous reply arrives.
//! Measures service time: sequential latency, calls/s at a fixed number in flight, and
//! MB/s for large payloads.

use std::time::Instant;

use futures_util::{future::join_all, stream, StreamExt};

use crate::{stats::Latencies, systems::Connection};

/// `calls` sequential echoes of `size` bytes; the latency of each.
pub async fn sequential(conn: &Connection, size: usize, calls: usize) -> Latencies {
    let data = vec![7u8; size];
    let mut latencies = Latencies::default();
    for _ in 0..calls {
        let started = Instant::now();
        let reply = conn.call(data.clone()).await;
        latencies.record(started.elapsed());
        assert_eq!(reply.len(), size, "echo returned the wrong length");
    }
    latencies
}

/// Calls per second completed with `in_flight` calls outstanding on each of `conns`
/// (`calls` in total, split evenly).
pub async fn calls_per_second(
    conns: &[Connection],
    size: usize,
    in_flight: usize,
    calls: usize,
) -> f64 {
    let data = vec![7u8; size];
    let per_conn = calls / conns.len();
    let started = Instant::now();
    join_all(conns.iter().map(|conn| {
        let data = &data;
        stream::iter(0..per_conn)
            .map(move |_| conn.call(data.clone()))
            .buffer_unordered(in_flight)
            .for_each(|reply| {
                assert_eq!(reply.len(), size, "echo returned the wrong length");
                async {}
            })
    }))
    .await;
    (per_conn * conns.len()) as f64 / started.elapsed().as_secs_f64()
}

/// Megabytes per second echoed (request bytes; the replies carry as many again), with
/// `in_flight` calls of `size` bytes outstanding.
pub async fn megabytes_per_second(
    conn: &Connection,
    size: usize,
    in_flight: usize,
    calls: usize,
) -> f64 {
    let rate = calls_per_second(std::slice::from_ref(conn), size, in_flight, calls).await;
    rate * size as f64 / 1e6
}

/// Warms a connection up (connection windows, allocator, branch predictors).
pub async fn warm_up(conn: &Connection) {
    let _ = sequential(conn, 64, 200).await;
    let _ = calls_per_second(std::slice::from_ref(conn), 64, 64, 2_000).await;
}
