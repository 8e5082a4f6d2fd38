//! Call priorities: with a 16 MiB low-priority transfer in flight, a burst of small
//! high-priority calls on the same connection completes before the transfer, over QUIC
//! (stream send priorities on both sides) and WebSocket (the server's send scheduler);
//! the priority comes from the method (`#[rpc(priority = ..)]`) or the call
//! (`with_priority`). Asserted by order of completion, not by time. The transfers do
//! not compress, so that they are as large on the wire as they are.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::sync::{Arc, Mutex};

use futures_util::{stream, StreamExt};
use hardlight::*;

const CHUNK: usize = 64 * 1024;
/// 16 MiB in all.
const CHUNKS: u32 = 256;
const BURST: u32 = 32;

/// No state.
#[connection_state]
pub struct State {}

/// A bulk transfer and small calls.
#[rpc]
pub trait Bulk {
    /// `chunks` items of 64 KiB.
    #[rpc(priority = low)]
    async fn download(&self, chunks: u32) -> HandlerResult<Streaming<Vec<u8>>>;
    /// `chunks` items of 64 KiB of zeros, which compress to almost nothing: the stream is
    /// always ready, and the transport always takes more.
    async fn zeros(&self, chunks: u32) -> HandlerResult<Streaming<Vec<u8>>>;
    /// One reply of `bytes` bytes (low priority only when the client says so).
    async fn blob(&self, bytes: u32) -> HandlerResult<Vec<u8>>;
    /// A small call.
    #[rpc(priority = high)]
    async fn ping(&self, n: u32) -> HandlerResult<u32>;
}

/// `len` bytes that do not compress: a transfer is as large on the wire as it is.
fn noise(len: usize) -> Vec<u8> {
    let mut state = 0x9e37_79b9_7f4a_7c15_u64;
    (0..len)
        .map(|_| {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            state as u8
        })
        .collect()
}

#[rpc_handler(pub)]
impl Bulk for BulkHandler {
    async fn download(&self, chunks: u32) -> HandlerResult<Streaming<Vec<u8>>> {
        let chunk = noise(CHUNK);
        Ok(Streaming::new(
            stream::iter(0..chunks).map(move |_| chunk.clone()),
        ))
    }

    async fn zeros(&self, chunks: u32) -> HandlerResult<Streaming<Vec<u8>>> {
        Ok(Streaming::new(
            stream::iter(0..chunks).map(|_| vec![0; CHUNK]),
        ))
    }

    async fn blob(&self, bytes: u32) -> HandlerResult<Vec<u8>> {
        Ok(noise(bytes as usize))
    }

    async fn ping(&self, n: u32) -> HandlerResult<u32> {
        Ok(n + 1)
    }
}

fn start() -> common::Running<()> {
    common::run(
        ServerConfig::new_self_signed("127.0.0.1:0"),
        factory!(BulkHandler),
    )
}

async fn client(server: &common::Running<()>, transport: Transport) -> BulkClient {
    let client = BulkClient::with_config(common::config_via(
        server.addr,
        &server.certificate_pem,
        transport,
    ));
    client.connect().await.unwrap();
    client
}

/// Runs `transfer` (which calls `started` once its first bytes arrived), fires the burst
/// of pings once it has started, and returns what finished first.
async fn race<F>(client: &BulkClient, transfer: impl FnOnce(tokio::sync::oneshot::Sender<()>) -> F)
where
    F: std::future::Future<Output = ()> + Send + 'static,
{
    let order = Arc::new(Mutex::new(Vec::new()));
    let (started, begun) = tokio::sync::oneshot::channel();
    let finished = Arc::clone(&order);
    let transfer = transfer(started);
    let transfer = tokio::spawn(async move {
        transfer.await;
        finished.lock().unwrap().push("transfer");
    });
    begun.await.unwrap();
    let pings = (0..BURST).map(|n| {
        let client = client.clone();
        async move { client.ping(n).await.unwrap() }
    });
    let answers = futures_util::future::join_all(pings).await;
    order.lock().unwrap().push("burst");
    assert_eq!(answers, (1..=BURST).collect::<Vec<_>>());
    transfer.await.unwrap();
    assert_eq!(*order.lock().unwrap(), ["burst", "transfer"]);
}

async fn small_calls_overtake_a_low_priority_stream(transport: Transport) {
    let server = start();
    let client = client(&server, transport).await;
    let downloader = client.clone();
    race(&client, move |started| async move {
        let mut items = downloader.download(CHUNKS).await.unwrap();
        let mut started = Some(started);
        let mut bytes = 0;
        while let Some(item) = items.next().await {
            bytes += item.unwrap().len();
            if let Some(started) = started.take() {
                started.send(()).unwrap();
            }
        }
        assert_eq!(bytes, CHUNKS as usize * CHUNK);
    })
    .await;
}

over_both_transports!(multi_thread: small_calls_overtake_a_low_priority_stream);

/// On one thread with the server, as on a server's worker thread: a stream whose items
/// are always ready, into a transport that always takes them (they compress to almost
/// nothing), does not hold the thread until it ends, on either side: another
/// connection's calls get in.
#[tokio::test]
async fn a_stream_that_is_always_ready_lets_other_connections_in() {
    let server = start();
    let bulk = client(&server, Transport::Quic).await;
    let other = client(&server, Transport::Quic).await;
    race(&other, move |started| async move {
        let mut items = bulk.zeros(CHUNKS).await.unwrap();
        let mut started = Some(started);
        while let Some(item) = items.next().await {
            item.unwrap();
            if let Some(started) = started.take() {
                started.send(()).unwrap();
            }
        }
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn small_calls_overtake_a_low_priority_reply_over_quic() {
    let server = start();
    let client = client(&server, Transport::Quic).await;
    let bulk = client.with_priority(Priority::Low);
    // the large reply goes on a stream of its own at low priority; the burst starts once
    // the handler has it (a call made after this one)
    race(&client, move |started| async move {
        let blob = bulk.blob(15 << 20);
        let signal = async {
            bulk.ping(0).await.unwrap();
            started.send(()).unwrap();
        };
        let (blob, ()) = tokio::join!(blob, signal);
        assert_eq!(blob.unwrap().len(), 15 << 20);
    })
    .await;
}
