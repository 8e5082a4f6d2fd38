//! Call latency and throughput from the page, over WebTransport and over WebSocket, in
//! alternating rounds against the server named in `HARDLIGHT_BENCH_SERVER` (its
//! certificate's SHA-256 in `HARDLIGHT_BENCH_CERT_HASH`). Prints one line per round and
//! transport, then the medians; `benchmarks/src/bin/browser.rs` runs it.

use futures_util::{stream::FuturesUnordered, StreamExt};
use hardlight::*;
use hardlight_browser_bench::EchoClient;
use wasm_bindgen_test::*;

wasm_bindgen_test_configure!(run_in_browser);

const ROUNDS: usize = 3;
const SEQUENTIAL: usize = 2_000;
const IN_FLIGHT: usize = 64;
const CLOSED_LOOP: usize = 20_000;

/// Milliseconds from the page's clock (`performance.now()`).
fn now() -> f64 {
    use js_sys::{Function, Reflect};
    use wasm_bindgen::JsCast;
    let performance = Reflect::get(&js_sys::global(), &"performance".into()).unwrap();
    let now: Function = Reflect::get(&performance, &"now".into())
        .unwrap()
        .dyn_into()
        .unwrap();
    now.call0(&performance).unwrap().as_f64().unwrap()
}

fn config(transport: Transport) -> ClientConfig {
    let hex = option_env!("HARDLIGHT_BENCH_CERT_HASH")
        .expect("run through `cargo run --release -p hardlight-benchmarks --bin browser`");
    let mut hash = [0u8; 32];
    for (byte, pair) in hash.iter_mut().zip(hex.as_bytes().chunks(2)) {
        *byte = u8::from_str_radix(std::str::from_utf8(pair).unwrap(), 16).unwrap();
    }
    let server = option_env!("HARDLIGHT_BENCH_SERVER")
        .expect("run through `cargo run --release -p hardlight-benchmarks --bin browser`");
    ClientConfig::new(format!("wss://{server}/"))
        .with_certificate_hash(hash)
        .with_transport(transport)
}

/// One round on one transport: (sequential p50 µs, sequential p99 µs, calls/s).
async fn round(transport: Transport) -> (f64, f64, f64) {
    let client = EchoClient::with_config(config(transport));
    client.connect().await.expect("connect");
    let payload = vec![7u8; 64];
    for _ in 0..200 {
        client.echo(payload.clone()).await.expect("echo");
    }
    let mut latencies = Vec::with_capacity(SEQUENTIAL);
    for _ in 0..SEQUENTIAL {
        let start = now();
        client.echo(payload.clone()).await.expect("echo");
        latencies.push((now() - start) * 1000.0);
    }
    latencies.sort_by(f64::total_cmp);
    let p50 = latencies[SEQUENTIAL / 2];
    let p99 = latencies[SEQUENTIAL * 99 / 100];

    let start = now();
    let mut sent = 0;
    let mut calls = FuturesUnordered::new();
    while sent < CLOSED_LOOP || !calls.is_empty() {
        while sent < CLOSED_LOOP && calls.len() < IN_FLIGHT {
            calls.push(client.echo(payload.clone()));
            sent += 1;
        }
        calls.next().await.unwrap().expect("echo");
    }
    drop(calls);
    let rate = CLOSED_LOOP as f64 / ((now() - start) / 1000.0);
    client.disconnect().await;
    (p50, p99, rate)
}

fn median(mut values: Vec<f64>) -> f64 {
    values.sort_by(f64::total_cmp);
    values[values.len() / 2]
}

#[wasm_bindgen_test]
async fn calls_over_webtransport_and_websocket() {
    let transports = [
        ("WebTransport", Transport::Quic),
        ("WebSocket", Transport::WebSocket),
    ];
    let mut results = vec![Vec::new(), Vec::new()];
    for round_no in 1..=ROUNDS {
        for (i, (name, transport)) in transports.iter().enumerate() {
            let (p50, p99, rate) = round(*transport).await;
            console_log!(
                "round {round_no} {name}: sequential p50 {p50:.0} µs, p99 {p99:.0} µs; {rate:.0} calls/s at {IN_FLIGHT} in flight"
            );
            results[i].push((p50, p99, rate));
        }
    }
    console_log!("| transport | seq p50 µs | seq p99 µs | calls/s, {IN_FLIGHT} in flight |");
    console_log!("|---|---:|---:|---:|");
    let mut medians = Vec::new();
    for ((name, _), rounds) in transports.iter().zip(&results) {
        let p50 = median(rounds.iter().map(|r| r.0).collect());
        let p99 = median(rounds.iter().map(|r| r.1).collect());
        let rate = median(rounds.iter().map(|r| r.2).collect());
        console_log!("| {name} | {p50:.0} | {p99:.0} | {rate:.0} |");
        medians.push((p50, rate));
    }
    console_log!(
        "WebTransport / WebSocket: p50 {:.2}x, calls/s {:.2}x (median of {ROUNDS} interleaved rounds)",
        medians[0].0 / medians[1].0,
        medians[0].1 / medians[1].1
    );
}
