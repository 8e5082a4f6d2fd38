//! The frame decoder: a message split into its frames, header parsing, size checks and
//! body opening (with bounded zstd decompression), as the server and client run them on
//! every message a peer sends.
#![no_main]

use hardlight::protocol::{
    frame::{FrameHeader, HEADER_LEN},
    message::open_body,
};
use libfuzzer_sys::fuzz_target;

const MAX: u32 = 1 << 20;

fuzz_target!(|data: &[u8]| {
    // a WebSocket message: one or more frames, each checked and opened as it is taken
    let mut rest = data;
    while let Ok((header, body, after)) = FrameHeader::split_first(rest, MAX) {
        assert!(body.len() as u64 <= u64::from(MAX));
        assert_eq!(body.len(), header.body_len as usize);
        assert_eq!(after.len(), rest.len() - HEADER_LEN - body.len());
        for negotiated in [false, true] {
            if let Ok(opened) = open_body(&header, body, negotiated, MAX) {
                assert!(
                    opened.len() <= MAX as usize,
                    "decompression exceeded the limit"
                );
            }
        }
        // a parsed header encodes back to the bytes it came from
        let again = header.encode();
        assert_eq!(again[..], rest[..again.len()]);
        assert_eq!(FrameHeader::parse(&again, u32::MAX).ok(), Some(header));
        if after.is_empty() {
            break;
        }
        rest = after;
    }
});
