//! Raw byte streams over streaming calls, for bulk transfer: a handler sends an
//! `AsyncRead` and the client reads the call as one; the client writes into a pipe whose
//! other end is the call's stream; each read and write can have its own deadline.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::time::Duration;

use common::Running;
use hardlight::{
    byte_stream::{byte_pipe, WithDeadline},
    *,
};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// Bytes both ways.
#[rpc(state = ())]
pub trait Files {
    /// `size` bytes of `b'x'`, read from an `AsyncRead`.
    async fn download(&self, size: u64) -> HandlerResult<Streaming<Vec<u8>>>;
    /// How many bytes the client sent, and their sum.
    async fn upload(&self, data: Streaming<Vec<u8>>) -> HandlerResult<(u64, u64)>;
    /// One chunk, then nothing for ever.
    async fn trickle(&self) -> HandlerResult<Streaming<Vec<u8>>>;
    /// Reads none of the client's bytes, and never returns.
    async fn black_hole(&self, data: Streaming<Vec<u8>>) -> HandlerResult<()>;
}

#[rpc_handler(pub)]
impl Files for FilesHandler {
    async fn download(&self, size: u64) -> HandlerResult<Streaming<Vec<u8>>> {
        Ok(Streaming::from_reader(tokio::io::repeat(b'x').take(size)))
    }

    async fn upload(&self, data: Streaming<Vec<u8>>) -> HandlerResult<(u64, u64)> {
        let mut bytes = Vec::new();
        data.into_reader()
            .read_to_end(&mut bytes)
            .await
            .map_err(|e| HandlerError::new(e.to_string()))?;
        let sum = bytes.iter().map(|&b| u64::from(b)).sum();
        Ok((bytes.len() as u64, sum))
    }

    async fn trickle(&self) -> HandlerResult<Streaming<Vec<u8>>> {
        let first = futures_util::stream::iter([vec![1u8; 10]]);
        Ok(Streaming::new(futures_util::StreamExt::chain(
            first,
            futures_util::stream::pending(),
        )))
    }

    async fn black_hole(&self, _data: Streaming<Vec<u8>>) -> HandlerResult<()> {
        std::future::pending().await
    }
}

fn start() -> Running<()> {
    common::run(
        ServerConfig::new_self_signed("127.0.0.1:0"),
        factory!(FilesHandler),
    )
}

async fn client(server: &Running<()>, transport: Transport) -> FilesClient {
    let client = FilesClient::with_config(common::config_via(
        server.addr,
        &server.certificate_pem,
        transport,
    ));
    client.connect().await.unwrap();
    client
}

const TRANSPORTS: [Transport; 2] = [Transport::Quic, Transport::WebSocket];

#[tokio::test]
async fn a_download_reads_as_bytes() {
    let server = start();
    for transport in TRANSPORTS {
        let client = client(&server, transport).await;
        let size = 1 << 20;
        let mut reader = client.download(size).await.unwrap().into_reader();
        let mut bytes = Vec::new();
        reader.read_to_end(&mut bytes).await.unwrap();
        assert_eq!(bytes.len() as u64, size, "{transport:?}");
        assert!(bytes.iter().all(|&b| b == b'x'));
    }
}

#[tokio::test]
async fn an_upload_is_written_into_a_pipe() {
    let server = start();
    for transport in TRANSPORTS {
        let client = client(&server, transport).await;
        let (mut writer, chunks) = byte_pipe(64 * 1024);
        let size: u64 = 3 << 20;
        let writing = tokio::spawn(async move {
            let pattern: Vec<u8> = (0..size).map(|i| (i % 251) as u8).collect();
            // in odd-sized writes, so that chunks and writes never line up
            for block in pattern.chunks(4_093) {
                writer.write_all(block).await?;
            }
            writer.shutdown().await
        });
        let (received, sum) = client.upload(chunks).await.unwrap();
        writing.await.unwrap().unwrap();
        let expected: u64 = (0..size).map(|i| i % 251).sum();
        assert_eq!((received, sum), (size, expected), "{transport:?}");
    }
}

/// A read that waits past its deadline fails with `TimedOut`, and so does a write into a
/// call whose handler reads nothing.
#[tokio::test]
async fn each_read_and_write_has_its_deadline() {
    let server = start();
    for transport in TRANSPORTS {
        let client = client(&server, transport).await;
        let trickle = client.trickle().await.unwrap().into_reader();
        let mut reader = WithDeadline::new(trickle).with_read_timeout(Duration::from_millis(200));
        let mut buf = [0u8; 64];
        assert_eq!(reader.read(&mut buf).await.unwrap(), 10, "{transport:?}");
        let late = reader.read(&mut buf).await.unwrap_err();
        assert_eq!(late.kind(), std::io::ErrorKind::TimedOut, "{transport:?}");
    }
    // the writer's deadline is the pipe's, whatever carries the call; over WebSocket the
    // call's window fills after 256 KiB (over QUIC after the server's 1 MiB stream window)
    let client = client(&server, Transport::WebSocket).await;
    let (writer, chunks) = byte_pipe(64 * 1024);
    let call = tokio::spawn(async move { client.black_hole(chunks).await });
    let mut writer = WithDeadline::new(writer).with_write_timeout(Duration::from_millis(200));
    let block = vec![0u8; 64 * 1024];
    let stuck = loop {
        if let Err(error) = writer.write_all(&block).await {
            break error;
        }
    };
    assert_eq!(stuck.kind(), std::io::ErrorKind::TimedOut);
    call.abort();
}
