//! `Blob` arguments, replies, stream items and events over real QUIC and WebSocket: every
//! size round-trips, on either side of the `Blob`-or-`Vec<u8>` line, compressed or not.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::time::Duration;

use common::Running;
use futures_util::{stream, StreamExt};
use hardlight::{protocol::blob::SHARED_FROM, *};

/// The server's side: it takes and returns `Blob`s, and emits them.
mod blobs {
    use hardlight::*;

    #[rpc(state = (), events = Blob)]
    pub trait Blobs {
        /// Returns `data` and its length.
        async fn echo(&self, data: Blob) -> HandlerResult<(Blob, u64)>;
        /// Returns `pattern(0, size)`: a small call with a large reply.
        async fn fill(&self, size: u64) -> HandlerResult<Blob>;
        /// Streams a blob of each of `sizes`, the `i`th one filled by `pattern(i, _)`.
        async fn chunks(&self, sizes: Vec<u64>) -> HandlerResult<Streaming<Blob>>;
        /// Returns the blobs the caller streamed, in order.
        async fn gather(&self, items: Streaming<Blob>) -> HandlerResult<Vec<Blob>>;
        /// Subscribes this connection to `topic`.
        async fn join(&self, topic: String) -> HandlerResult<bool>;
    }
}

/// A client of the same service that sends and receives `Vec<u8>`s: the same wire.
mod vecs {
    use hardlight::*;

    #[rpc(state = (), events = Vec<u8>)]
    pub trait Blobs {
        /// Returns `data` and its length.
        async fn echo(&self, data: Vec<u8>) -> HandlerResult<(Vec<u8>, u64)>;
        /// Returns `pattern(0, size)`: a small call with a large reply.
        async fn fill(&self, size: u64) -> HandlerResult<Vec<u8>>;
        /// Streams a blob of each of `sizes`, the `i`th one filled by `pattern(i, _)`.
        async fn chunks(&self, sizes: Vec<u64>) -> HandlerResult<Streaming<Vec<u8>>>;
        /// Returns the blobs the caller streamed, in order.
        async fn gather(&self, items: Streaming<Vec<u8>>) -> HandlerResult<Vec<Vec<u8>>>;
        /// Subscribes this connection to `topic`.
        async fn join(&self, topic: String) -> HandlerResult<bool>;
    }
}

#[rpc_handler]
impl blobs::Blobs for Handler {
    async fn echo(&self, data: Blob) -> HandlerResult<(Blob, u64)> {
        let len = data.len() as u64;
        Ok((data, len))
    }

    async fn fill(&self, size: u64) -> HandlerResult<Blob> {
        Ok(Blob::from(pattern(0, size as usize)))
    }

    async fn chunks(&self, sizes: Vec<u64>) -> HandlerResult<Streaming<Blob>> {
        let blobs = sizes.into_iter().enumerate();
        Ok(Streaming::new(stream::iter(
            blobs.map(|(i, size)| Blob::from(pattern(i, size as usize))),
        )))
    }

    async fn gather(&self, items: Streaming<Blob>) -> HandlerResult<Vec<Blob>> {
        items.collect::<Vec<_>>().await.into_iter().collect()
    }

    async fn join(&self, topic: String) -> HandlerResult<bool> {
        Ok(self.subscriptions.add(&Topic::from(topic.as_str())))
    }
}

/// `size` bytes told apart from those of another `i`.
fn pattern(i: usize, size: usize) -> Vec<u8> {
    (0..size).map(|j| ((i * 31 + j) % 251) as u8).collect()
}

/// Sizes of stream items and events: around the size from which a blob shares its
/// buffer, and larger.
const SIZES: [usize; 5] = [0, 100, SHARED_FROM - 1, SHARED_FROM, (256 << 10) + 5];

fn start() -> Running<Blob> {
    start_with(Compression::default())
}

/// A server compressing bodies as `compression` says: a large blob in a reply is sent from
/// where it lies when it is not compressed.
fn start_with(compression: Compression) -> Running<Blob> {
    common::run(
        ServerConfig::new_self_signed("127.0.0.1:0").with_compression(compression),
        factory!(Handler),
    )
}

const COMPRESSIONS: [Compression; 2] = [
    Compression::None,
    Compression::Zstd {
        level: 1,
        min_size: 1024,
    },
];

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
    for compression in COMPRESSIONS {
        let server = start_with(compression);
        for transport in TRANSPORTS {
            let config = common::config_via(server.addr, &server.certificate_pem, transport)
                .with_compression(compression);
            let of_blobs = blobs::BlobsClient::with_config(config.clone());
            let of_vecs = vecs::BlobsClient::with_config(config);
            of_blobs.connect().await.unwrap();
            of_vecs.connect().await.unwrap();
            let case = format!("{transport:?}, {compression:?}");
            for payload in payloads() {
                let size = payload.len();
                let (echoed, len) = of_blobs.echo(Blob::from(payload.clone())).await.unwrap();
                assert_eq!(len, size as u64, "{case}");
                assert!(echoed[..] == payload[..], "{case}, {size} bytes");
                let (echoed, len) = of_vecs.echo(payload.clone()).await.unwrap();
                assert_eq!(len, size as u64, "{case}");
                assert!(echoed == payload, "{case}, {size} bytes, as a Vec<u8>");
            }
            // small calls, large replies: over QUIC on the call channel, among other replies
            for size in SIZES.into_iter().chain([4 << 20]) {
                let expected = pattern(0, size);
                let (blob, vec) =
                    tokio::join!(of_blobs.fill(size as u64), of_vecs.fill(size as u64));
                assert!(blob.unwrap()[..] == expected[..], "{case}, {size} bytes");
                assert!(
                    vec.unwrap() == expected,
                    "{case}, {size} bytes, as a Vec<u8>"
                );
            }
        }
    }
}

#[tokio::test]
async fn blobs_stream_both_ways_whichever_type_the_client_uses() {
    let server = start();
    let sizes: Vec<u64> = SIZES.iter().map(|&size| size as u64).collect();
    let expected: Vec<Vec<u8>> = (0..SIZES.len()).map(|i| pattern(i, SIZES[i])).collect();
    for transport in TRANSPORTS {
        let config = common::config_via(server.addr, &server.certificate_pem, transport);
        let of_blobs = blobs::BlobsClient::with_config(config.clone());
        let of_vecs = vecs::BlobsClient::with_config(config);
        of_blobs.connect().await.unwrap();
        of_vecs.connect().await.unwrap();

        let items = of_blobs.chunks(sizes.clone()).await.unwrap();
        let items: Vec<Blob> = items.map(|item| item.unwrap()).collect().await;
        assert!(items
            .iter()
            .map(|b| &b[..])
            .eq(expected.iter().map(|v| &v[..])));
        let items = of_vecs.chunks(sizes.clone()).await.unwrap();
        let items: Vec<Vec<u8>> = items.map(|item| item.unwrap()).collect().await;
        assert!(items == expected, "{transport:?}, as Vec<u8>s");

        let sent: Vec<Blob> = expected.iter().map(|v| Blob::from(v.clone())).collect();
        let gathered = of_blobs.gather(stream::iter(sent)).await.unwrap();
        assert!(gathered
            .iter()
            .map(|b| &b[..])
            .eq(expected.iter().map(|v| &v[..])));
        let gathered = of_vecs
            .gather(stream::iter(expected.clone()))
            .await
            .unwrap();
        assert!(gathered == expected, "{transport:?}, as Vec<u8>s");
    }
}

#[tokio::test]
async fn blob_events_arrive_whole_whichever_type_the_client_uses() {
    let server = start();
    for transport in TRANSPORTS {
        let config = common::config_via(server.addr, &server.certificate_pem, transport)
            .with_connect_timeout(Duration::from_secs(60));
        let of_blobs = blobs::BlobsClient::with_config(config.clone());
        let of_vecs = vecs::BlobsClient::with_config(config);
        of_blobs.connect().await.unwrap();
        of_vecs.connect().await.unwrap();
        let mut blob_events = of_blobs.subscribe().await.unwrap();
        let mut vec_events = of_vecs.subscribe().await.unwrap();
        let topic = format!("blobs over {transport:?}");
        assert!(of_blobs.join(topic.clone()).await.unwrap());
        assert!(of_vecs.join(topic.clone()).await.unwrap());
        for (i, &size) in SIZES.iter().enumerate() {
            let payload = pattern(i, size);
            let emitted = server
                .emitter
                .emit(&Topic::from(topic.as_str()), Blob::from(payload.clone()))
                .await;
            assert_eq!(emitted, 2, "{transport:?}");
            let event = blob_events.recv().await.unwrap();
            assert!(
                event.payload[..] == payload[..],
                "{transport:?}, {size} bytes"
            );
            let event = vec_events.recv().await.unwrap();
            assert!(
                event.payload == payload,
                "{transport:?}, {size} bytes, as a Vec<u8>"
            );
        }
    }
}
