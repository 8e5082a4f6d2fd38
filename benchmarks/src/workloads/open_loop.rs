//! Open-loop echo: requests are sent at a fixed offered rate whatever the replies do, and
//! each latency is measured from the request's scheduled send time, so a stall delays every
//! request scheduled behind it (no coordinated omission).

use std::time::{Duration, Instant};

use futures_util::{stream::FuturesUnordered, StreamExt};

use crate::{stats::Latencies, systems::Connection};

/// Offers `rate` calls/s of `size` bytes for `duration`; the latencies from schedule to
/// reply.
pub async fn run(conn: &Connection, size: usize, rate: f64, duration: Duration) -> Latencies {
    let total = (rate * duration.as_secs_f64()).round() as usize;
    let (due_tx, mut due_rx) = tokio::sync::mpsc::unbounded_channel::<Instant>();
    let start = Instant::now() + Duration::from_millis(5);
    // An OS thread paces the schedule: its sleep is finer than the runtime's 1 ms timer.
    let pacer = std::thread::spawn(move || {
        for i in 0..total {
            let due = start + Duration::from_secs_f64(i as f64 / rate);
            if let Some(wait) = due.checked_duration_since(Instant::now()) {
                std::thread::sleep(wait);
            }
            if due_tx.send(due).is_err() {
                return;
            }
        }
    });
    let data = vec![7u8; size];
    let mut latencies = Latencies::default();
    let mut calls = FuturesUnordered::new();
    let mut scheduling = true;
    while scheduling || !calls.is_empty() {
        tokio::select! {
            due = due_rx.recv(), if scheduling => match due {
                Some(due) => {
                    let call = conn.call(data.clone());
                    calls.push(async move {
                        let reply = call.await;
                        (due.elapsed(), reply.len())
                    });
                }
                None => scheduling = false,
            },
            Some((latency, len)) = calls.next(), if !calls.is_empty() => {
                assert_eq!(len, size, "echo returned the wrong length");
                latencies.record(latency);
            }
        }
    }
    let _ = pacer.join();
    latencies
}
