//! Head-of-line blocking under packet loss: HardLight QUIC with its small calls on the
//! call channel, against every call on a stream of its own, through the test suite's UDP
//! proxy dropping packets both ways (from a fixed seed).

use std::{net::SocketAddr, sync::Arc, time::Instant};

use futures_util::{stream, StreamExt};

use crate::{
    stats::Latencies,
    systems::{hardlight_config, BenchClient},
    tls::Certificate,
};

#[allow(dead_code, unreachable_pub, missing_docs, clippy::unwrap_used)]
#[path = "../../../tests/common/udp_proxy.rs"]
mod udp_proxy;

use udp_proxy::{Faults, UdpProxy};

/// One measurement: per-call latency and calls/s.
pub struct Lossy {
    /// Each call's latency, from its send to its reply.
    pub latencies: Latencies,
    /// Calls completed per second.
    pub calls_per_second: f64,
}

/// `calls` 64 B echoes with `in_flight` outstanding, over a proxy to `server` that drops
/// each packet with probability `drop`; every call on its own stream if
/// `stream_per_call`, else small calls on the call channel.
pub async fn measure(
    server: SocketAddr,
    cert: &Certificate,
    drop: f64,
    stream_per_call: bool,
    (calls, in_flight): (usize, usize),
) -> Lossy {
    let proxy = UdpProxy::start(server, 7).await;
    let config = hardlight_config(proxy.addr, cert, hardlight::Transport::Quic)
        .with_stream_per_call(stream_per_call);
    let client = BenchClient::with_config(config);
    client.connect().await.expect("connect through the proxy");
    for _ in 0..200 {
        client.echo(vec![7; 64]).await.expect("warm-up echo");
    }
    proxy.set(Faults {
        drop,
        ..Faults::default()
    });
    let client = Arc::new(client);
    let started = Instant::now();
    let latencies = stream::iter(0..calls)
        .map(|_| {
            let client = Arc::clone(&client);
            async move {
                let sent = Instant::now();
                let reply = client.echo(vec![7; 64]).await.expect("echo");
                assert_eq!(reply.len(), 64, "echo returned the wrong length");
                sent.elapsed()
            }
        })
        .buffer_unordered(in_flight)
        .fold(Latencies::default(), |mut all, latency| async move {
            all.record(latency);
            all
        })
        .await;
    let calls_per_second = calls as f64 / started.elapsed().as_secs_f64();
    client.disconnect().await;
    Lossy {
        latencies,
        calls_per_second,
    }
}
