//! `Blob` arguments and replies over real QUIC and WebSocket: every size round-trips, on
//! either side of the `Blob`-or-`Vec<u8>` line, compressed or not.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::Running;
use hardlight::{protocol::blob::SHARED_FROM, *};

/// The server's side: it takes and returns `Blob`s.
mod blobs {
    use hardlight::*;

    #[rpc(state = ())]
    pub trait Blobs {
        /// Returns `data` and its length.
        async fn echo(&self, data: Blob) -> HandlerResult<(Blob, u64)>;
    }
}

/// A client of the same service that sends and receives `Vec<u8>`s: the same wire.
mod vecs {
    use hardlight::*;

    #[rpc(state = ())]
    pub trait Blobs {
        /// Returns `data` and its length.
        async fn echo(&self, data: Vec<u8>) -> HandlerResult<(Vec<u8>, u64)>;
    }
}

#[rpc_handler]
impl blobs::Blobs for Handler {
    async fn echo(&self, data: Blob) -> HandlerResult<(Blob, u64)> {
        let len = data.len() as u64;
        Ok((data, len))
    }
}

fn start() -> Running<()> {
    common::run(
        ServerConfig::new_self_signed("127.0.0.1:0"),
        factory!(Handler),
    )
}

const TRANSPORTS: [Transport; 2] = [Transport::Quic, Transport::WebSocket];

/// Payloads around the size from which a blob shares its buffer, and large ones, both
/// incompressible and compressible (which travel zstd-compressed and are decoded from
/// the buffer they are inflated into).
fn payloads() -> Vec<Vec<u8>> {
    let mut payloads = Vec::new();
    for size in [0, 100, SHARED_FROM - 1, SHARED_FROM, (1 << 20) + 3, 4 << 20] {
        payloads.push((0..size).map(|_| rand::random::<u8>()).collect());
        payloads.push((0..size).map(|i| (i % 251) as u8).collect());
    }
    payloads
}

#[tokio::test]
async fn blobs_of_every_size_round_trip_whichever_type_the_client_uses() {
    let server = start();
    for transport in TRANSPORTS {
        let config = common::config_via(server.addr, &server.certificate_pem, transport);
        let of_blobs = blobs::BlobsClient::with_config(config.clone());
        let of_vecs = vecs::BlobsClient::with_config(config);
        of_blobs.connect().await.unwrap();
        of_vecs.connect().await.unwrap();
        for payload in payloads() {
            let size = payload.len();
            let (echoed, len) = of_blobs.echo(Blob::from(payload.clone())).await.unwrap();
            assert_eq!(len, size as u64, "{transport:?}");
            assert!(echoed[..] == payload[..], "{transport:?}, {size} bytes");
            let (echoed, len) = of_vecs.echo(payload.clone()).await.unwrap();
            assert_eq!(len, size as u64, "{transport:?}");
            assert!(
                echoed == payload,
                "{transport:?}, {size} bytes, as a Vec<u8>"
            );
        }
    }
}
