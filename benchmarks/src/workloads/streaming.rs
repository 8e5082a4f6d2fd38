//! Server-streaming calls: how long a stream takes to open — from the call to its first
//! item, over a connection already up — and how fast one stream carries items.

use std::time::Duration;

use crate::systems::streams::Streamer;

/// One system's figures in one round.
#[derive(Debug, Clone)]
pub struct Figures {
    /// Median time from opening a one-item stream to its item, µs.
    pub open_p50_us: f64,
    /// MB/s through one stream, for each item size asked for.
    pub mb_per_sec: Vec<f64>,
}

/// Measures `streamer`: `opens` one-item streams of 16 B one after another, then one
/// stream of `bytes` bytes for each item size in `sizes`.
pub async fn measure(streamer: &Streamer, opens: usize, bytes: u64, sizes: &[u32]) -> Figures {
    // warm-up: connection state, allocator, congestion window
    streamer.drain(64, 1024).await;
    let mut open: Vec<Duration> = Vec::with_capacity(opens);
    for _ in 0..opens {
        open.push(streamer.drain(1, 16).await.0);
    }
    open.sort();
    let open_p50_us = open
        .get(open.len() / 2)
        .map_or(0.0, |d| d.as_secs_f64() * 1e6);
    let mut mb_per_sec = Vec::with_capacity(sizes.len());
    for &size in sizes {
        let count = (bytes / u64::from(size)).max(1);
        let (_, all) = streamer.drain(count, size).await;
        mb_per_sec.push((count * u64::from(size)) as f64 / all.as_secs_f64() / 1e6);
    }
    Figures {
        open_p50_us,
        mb_per_sec,
    }
}
