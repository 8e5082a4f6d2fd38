//! A raw QUIC peer sends what no client would; each gets a typed error, the server never
//! panics, and a well-behaved client connected at the same time keeps being served.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::{
    io::Write,
    sync::atomic::{AtomicUsize, Ordering},
};

use common::{raw::RawPeer, TestServer};
use hardlight::{
    protocol::{
        codec::encode,
        frame::{FrameHeader, Kind, FLAG_COMPRESSED},
        message::encode_frame,
        Compression, ErrorCode,
    },
    Limits,
};

static PANICS: AtomicUsize = AtomicUsize::new(0);

fn count_panics() {
    let default = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| {
        PANICS.fetch_add(1, Ordering::SeqCst);
        default(info);
    }));
}

const MAX: u32 = 1 << 20;

fn call(method: u16, body: &[u8]) -> Vec<u8> {
    encode_frame(
        FrameHeader::new(Kind::Call, 0).with_aux(method).with_id(1),
        body,
        Compression::None,
    )
    .unwrap()
}

fn compressed_call(method: u16, packed: &[u8]) -> Vec<u8> {
    let header = FrameHeader::new(Kind::Call, packed.len() as u32)
        .with_aux(method)
        .with_flags(FLAG_COMPRESSED);
    let mut frame = header.encode().to_vec();
    frame.extend_from_slice(packed);
    frame
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn malformed_input_gets_typed_errors_and_harms_no_one() {
    count_panics();
    let server =
        TestServer::start_with(|c| c.with_limits(Limits::default().with_max_message_size(MAX)))
            .await;
    let good = server.client().await;
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let background = {
        let (good, stop) = (good.clone(), stop.clone());
        tokio::spawn(async move {
            let mut calls = 0i64;
            while !stop.load(Ordering::SeqCst) {
                assert_eq!(good.add(calls, 1, 1).await.unwrap(), calls + 2);
                calls += 1;
            }
            calls
        })
    };
    let raw = RawPeer::connect(&server).await;

    // a frame cut short: header promises 100 bytes, 10 arrive, stream finishes
    let mut truncated = FrameHeader::new(Kind::Call, 100).encode().to_vec();
    truncated.extend_from_slice(&[0u8; 10]);
    let (code, message) = raw.expect_failure(&truncated).await;
    assert_eq!(code, ErrorCode::Malformed);
    assert!(message.contains("truncated"), "{message}");

    // a header cut short
    let (code, _) = raw.expect_failure(&[1, 2, 3]).await;
    assert_eq!(code, ErrorCode::Malformed);

    // a length prefix over the limit: refused before any body is read or allocated
    let oversized = FrameHeader::new(Kind::Call, MAX + 1).encode();
    let (code, message) = raw.expect_failure(&oversized).await;
    assert_eq!(code, ErrorCode::FrameTooLarge);
    assert!(message.contains("max_message_size"), "{message}");
    let (code, _) = raw
        .expect_failure(&FrameHeader::new(Kind::Call, u32::MAX).encode())
        .await;
    assert_eq!(code, ErrorCode::FrameTooLarge);

    // invalid rkyv bytes for `add(i64, i64, i64)` (method 1)
    let (code, message) = raw.expect_failure(&call(1, &[0xff; 7])).await;
    assert_eq!(code, ErrorCode::InvalidPayload);
    assert!(message.contains("add"), "{message}");
    // valid rkyv of the wrong type: a String where three i64 are expected
    let wrong = encode(&String::from("not numbers at all, but long enough")).unwrap();
    let (code, _) = raw.expect_failure(&call(1, &wrong)).await;
    assert_eq!(code, ErrorCode::InvalidPayload);

    // an unknown method
    let (code, message) = raw.expect_failure(&call(999, &[])).await;
    assert_eq!(code, ErrorCode::UnknownMethod);
    assert!(message.contains("999"), "{message}");

    // unknown frame kind, unknown flags, a frame that is not a call
    let mut bad_kind = call(1, &[]);
    bad_kind[4] = 200;
    assert_eq!(raw.expect_failure(&bad_kind).await.0, ErrorCode::Malformed);
    let mut bad_flags = call(1, &[]);
    bad_flags[5] = 0x40;
    assert_eq!(raw.expect_failure(&bad_flags).await.0, ErrorCode::Malformed);
    let not_a_call = FrameHeader::new(Kind::ReplyOk, 0).encode();
    assert_eq!(
        raw.expect_failure(&not_a_call).await.0,
        ErrorCode::Malformed
    );
    assert_eq!(raw.expect_failure(&[]).await.0, ErrorCode::Malformed);

    // a zstd bomb: 64 MiB of zeros in a few KiB, declared content size
    let bomb = zstd::bulk::compress(&vec![0u8; 64 << 20], 3).unwrap();
    assert!(bomb.len() < u64::from(MAX) as usize);
    let (code, _) = raw.expect_failure(&compressed_call(0, &bomb)).await;
    assert_eq!(code, ErrorCode::DecompressedTooLarge);
    // the same without a content size in the header: stopped while inflating
    let mut encoder = zstd::stream::write::Encoder::new(Vec::new(), 3).unwrap();
    encoder.include_contentsize(false).unwrap();
    encoder.window_log(20).unwrap();
    encoder.write_all(&vec![0u8; 64 << 20]).unwrap();
    let sneaky = encoder.finish().unwrap();
    let (code, _) = raw.expect_failure(&compressed_call(0, &sneaky)).await;
    assert_eq!(code, ErrorCode::DecompressedTooLarge);
    // a frame that asks for a 128 MiB decoder window is refused before allocating it
    let mut encoder = zstd::stream::write::Encoder::new(Vec::new(), 1).unwrap();
    encoder.include_contentsize(false).unwrap();
    encoder.window_log(27).unwrap();
    encoder.write_all(&vec![1u8; 4 << 20]).unwrap();
    let greedy = encoder.finish().unwrap();
    let (code, message) = raw.expect_failure(&compressed_call(0, &greedy)).await;
    assert_eq!(code, ErrorCode::Compression);
    assert!(
        message.contains("memory") || message.contains("window"),
        "{message}"
    );
    // garbage flagged as compressed
    let (code, _) = raw.expect_failure(&compressed_call(0, &[1, 2, 3, 4])).await;
    assert_eq!(code, ErrorCode::Compression);

    // the raw connection itself still works for a valid call
    let (header, _) = raw
        .exchange(&call(1, &encode(&(1i64, 2i64, 3i64)).unwrap()))
        .await;
    assert_eq!(header.kind, Kind::ReplyOk);

    stop.store(true, Ordering::SeqCst);
    let served = background.await.unwrap();
    assert!(served >= 1);
    assert_eq!(good.increment(1).await.unwrap(), 1);
    assert_eq!(PANICS.load(Ordering::SeqCst), 0, "the server panicked");
}

#[tokio::test]
async fn compressed_frames_need_negotiated_compression() {
    let server = TestServer::start_with(|c| c.with_compression(Compression::None)).await;
    let raw = RawPeer::connect(&server).await;
    let packed = zstd::bulk::compress(&encode(&(1i64, 2i64, 3i64)).unwrap(), 1).unwrap();
    let (code, message) = raw.expect_failure(&compressed_call(1, &packed)).await;
    assert_eq!(code, ErrorCode::Compression);
    assert!(message.contains("not negotiated"), "{message}");
}
