//! The frame decoder: header parsing, size checks and body opening (with bounded zstd
//! decompression), as the server and client run them on every frame a peer sends.
#![no_main]

use hardlight::protocol::{frame::FrameHeader, message::open_body};
use libfuzzer_sys::fuzz_target;

const MAX: u32 = 1 << 20;

fuzz_target!(|data: &[u8]| {
    if let Ok((header, body)) = FrameHeader::split(data, MAX) {
        assert!(body.len() as u64 <= u64::from(MAX));
        assert_eq!(body.len(), header.body_len as usize);
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
        assert_eq!(again[..], data[..again.len()]);
        assert_eq!(FrameHeader::parse(&again, u32::MAX).ok(), Some(header));
    }
});
