//! Unary RPC latency and throughput: HardLight over QUIC and over WebSocket against the
//! QUIC floor (raw quinn, one bidirectional stream per request, echoing the bytes).
//!
//! `cargo run --release -p hardlight-benchmarks --bin rpc [-- --rounds 5 --calls 5000]`
//!
//! Each server runs in its own child process; the client runs here on a current-thread
//! runtime. Per round and system: `--calls` sequential 64-byte echoes (p50 / p99 latency),
//! then calls/s with 64 in flight on one connection. Systems are interleaved round by round;
//! the median across rounds and the spread are reported.

// A benchmark aborts on any failure: a partial measurement would be misleading.
#![allow(clippy::expect_used)]

use std::{
    net::SocketAddr,
    sync::Arc,
    time::{Duration, Instant},
};

use futures_util::{stream, StreamExt};
use hardlight::*;
use hardlight_benchmarks::{ChildServer, Summary};

#[rpc(state = ())]
trait Echo {
    /// Returns `data`.
    async fn echo(&self, data: Vec<u8>) -> HandlerResult<Vec<u8>>;
}

#[rpc_handler]
impl Echo for Handler {
    async fn echo(&self, data: Vec<u8>) -> HandlerResult<Vec<u8>> {
        Ok(data)
    }
}

const PAYLOAD: usize = 64;
const IN_FLIGHT: usize = 64;

async fn serve_hardlight() -> Result<(), Box<dyn std::error::Error>> {
    let config = ServerConfig::new_self_signed("127.0.0.1:0").with_compression(Compression::None);
    let mut server = Server::new(config, factory!(Handler));
    println!("{}", server.bind()?);
    server.run().await?;
    Ok(())
}

async fn serve_quinn() -> Result<(), Box<dyn std::error::Error>> {
    let cert = rcgen::generate_simple_self_signed(vec!["localhost".to_owned()])?;
    let key = rustls::pki_types::PrivateKeyDer::Pkcs8(cert.key_pair.serialize_der().into());
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut tls = rustls::ServerConfig::builder_with_provider(provider)
        .with_protocol_versions(&[&rustls::version::TLS13])?
        .with_no_client_auth()
        .with_single_cert(vec![cert.cert.der().clone()], key)?;
    tls.alpn_protocols = vec![b"echo".to_vec()];
    let crypto = quinn::crypto::rustls::QuicServerConfig::try_from(tls)?;
    let mut config = quinn::ServerConfig::with_crypto(Arc::new(crypto));
    let mut transport = quinn::TransportConfig::default();
    transport.max_concurrent_bidi_streams(1024u32.into());
    config.transport_config(Arc::new(transport));
    let endpoint = quinn::Endpoint::server(config, "127.0.0.1:0".parse()?)?;
    println!("{}", endpoint.local_addr()?);
    while let Some(incoming) = endpoint.accept().await {
        tokio::spawn(async move {
            let Ok(conn) = incoming.await else { return };
            while let Ok((mut send, mut recv)) = conn.accept_bi().await {
                tokio::spawn(async move {
                    if let Ok(data) = recv.read_to_end(1 << 20).await {
                        let _ = send.write_all(&data).await;
                        let _ = send.finish();
                    }
                });
            }
        });
    }
    Ok(())
}

/// A raw quinn client that trusts any certificate (benchmark only).
async fn quinn_client(addr: SocketAddr) -> quinn::Connection {
    #[derive(Debug)]
    struct AnyCert(Arc<rustls::crypto::CryptoProvider>);
    impl rustls::client::danger::ServerCertVerifier for AnyCert {
        fn verify_server_cert(
            &self,
            _: &rustls::pki_types::CertificateDer<'_>,
            _: &[rustls::pki_types::CertificateDer<'_>],
            _: &rustls::pki_types::ServerName<'_>,
            _: &[u8],
            _: rustls::pki_types::UnixTime,
        ) -> Result<rustls::client::danger::ServerCertVerified, rustls::Error> {
            Ok(rustls::client::danger::ServerCertVerified::assertion())
        }
        fn verify_tls12_signature(
            &self,
            m: &[u8],
            c: &rustls::pki_types::CertificateDer<'_>,
            d: &rustls::DigitallySignedStruct,
        ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
            rustls::crypto::verify_tls12_signature(
                m,
                c,
                d,
                &self.0.signature_verification_algorithms,
            )
        }
        fn verify_tls13_signature(
            &self,
            m: &[u8],
            c: &rustls::pki_types::CertificateDer<'_>,
            d: &rustls::DigitallySignedStruct,
        ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
            rustls::crypto::verify_tls13_signature(
                m,
                c,
                d,
                &self.0.signature_verification_algorithms,
            )
        }
        fn supported_verify_schemes(&self) -> Vec<rustls::SignatureScheme> {
            self.0.signature_verification_algorithms.supported_schemes()
        }
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut tls = rustls::ClientConfig::builder_with_provider(Arc::clone(&provider))
        .with_protocol_versions(&[&rustls::version::TLS13])
        .expect("tls13")
        .dangerous()
        .with_custom_certificate_verifier(Arc::new(AnyCert(provider)))
        .with_no_client_auth();
    tls.alpn_protocols = vec![b"echo".to_vec()];
    let crypto = quinn::crypto::rustls::QuicClientConfig::try_from(tls).expect("quic tls");
    let mut endpoint =
        quinn::Endpoint::client("127.0.0.1:0".parse().expect("addr")).expect("endpoint");
    endpoint.set_default_client_config(quinn::ClientConfig::new(Arc::new(crypto)));
    endpoint
        .connect(addr, "localhost")
        .expect("connect")
        .await
        .expect("handshake")
}

async fn quinn_echo(conn: &quinn::Connection, data: &[u8]) -> Vec<u8> {
    let (mut send, mut recv) = conn.open_bi().await.expect("open");
    send.write_all(data).await.expect("write");
    send.finish().expect("finish");
    recv.read_to_end(1 << 20).await.expect("read")
}

/// One system's client.
enum Target {
    HardLight(EchoClient),
    Quinn(quinn::Connection),
}

impl Target {
    async fn call(&self, data: Vec<u8>) -> Vec<u8> {
        match self {
            Self::HardLight(client) => client.echo(data).await.expect("echo"),
            Self::Quinn(conn) => quinn_echo(conn, &data).await,
        }
    }
}

struct Round {
    p50_us: f64,
    p99_us: f64,
    calls_per_s: f64,
}

async fn round(target: &Target, calls: usize) -> Round {
    let data = vec![7u8; PAYLOAD];
    for _ in 0..100 {
        target.call(data.clone()).await;
    }
    let mut latencies = Vec::with_capacity(calls);
    for _ in 0..calls {
        let started = Instant::now();
        assert_eq!(target.call(data.clone()).await.len(), PAYLOAD);
        latencies.push(started.elapsed());
    }
    latencies.sort_unstable();
    let at = |q: f64| latencies[((latencies.len() as f64 * q) as usize).min(latencies.len() - 1)];
    let total = calls * 4;
    let started = Instant::now();
    stream::iter(0..total)
        .map(|_| target.call(data.clone()))
        .buffer_unordered(IN_FLIGHT)
        .for_each(|_| async {})
        .await;
    Round {
        p50_us: at(0.50).as_secs_f64() * 1e6,
        p99_us: at(0.99).as_secs_f64() * 1e6,
        calls_per_s: total as f64 / started.elapsed().as_secs_f64(),
    }
}

fn option(name: &str, default: usize) -> usize {
    let args: Vec<String> = std::env::args().collect();
    args.iter()
        .position(|a| a == name)
        .and_then(|i| args.get(i + 1))
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let role = std::env::args().nth(1).unwrap_or_default();
    if role == "serve-hardlight" || role == "serve-quinn" {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()?;
        return runtime.block_on(async {
            if role == "serve-hardlight" {
                serve_hardlight().await
            } else {
                serve_quinn().await
            }
        });
    }
    let (rounds, calls) = (option("--rounds", 5), option("--calls", 5000));
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    runtime.block_on(async {
        let hardlight = ChildServer::spawn(&["serve-hardlight"])?;
        let quinn_server = ChildServer::spawn(&["serve-quinn"])?;
        let client = |transport| {
            EchoClient::with_config(
                ClientConfig::new(hardlight.addr.to_string())
                    .insecure_accept_any_certificate()
                    .with_compression(Compression::None)
                    .with_transport(transport),
            )
        };
        let (over_quic, over_ws) = (client(Transport::Quic), client(Transport::WebSocket));
        over_quic.connect().await?;
        over_ws.connect().await?;
        let targets = [
            ("raw quinn, stream per request (QUIC floor)", Target::Quinn(quinn_client(quinn_server.addr).await)),
            ("HardLight over QUIC", Target::HardLight(over_quic)),
            ("HardLight over WebSocket", Target::HardLight(over_ws)),
        ];
        let mut results: Vec<Vec<Round>> = targets.iter().map(|_| Vec::new()).collect();
        for _ in 0..rounds {
            for (i, (_, target)) in targets.iter().enumerate() {
                results[i].push(round(target, calls).await);
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        }
        println!("unary {PAYLOAD} B echo, {rounds} interleaved rounds, {calls} sequential calls per round; median (min–max)\n");
        println!("| system | p50 µs | p99 µs | calls/s at {IN_FLIGHT} in flight | p50 vs floor | calls/s vs floor |");
        println!("|---|---:|---:|---:|---:|---:|");
        let summary = |i: usize, f: fn(&Round) -> f64| Summary::of(&results[i].iter().map(f).collect::<Vec<_>>());
        let (floor_p50, floor_rate) = (summary(0, |r| r.p50_us).median, summary(0, |r| r.calls_per_s).median);
        for (i, (name, _)) in targets.iter().enumerate() {
            let (p50, p99, rate) = (summary(i, |r| r.p50_us), summary(i, |r| r.p99_us), summary(i, |r| r.calls_per_s));
            println!(
                "| {name} | {:.0} ({:.0}–{:.0}) | {:.0} ({:.0}–{:.0}) | {:.0} ({:.0}–{:.0}) | {:.2}× | {:.2}× |",
                p50.median, p50.min, p50.max, p99.median, p99.min, p99.max, rate.median, rate.min, rate.max,
                p50.median / floor_p50, rate.median / floor_rate
            );
        }
        Ok(())
    })
}
