//! The stream frame decoder, as the QUIC transports run it on every stream: arbitrary
//! bytes in arbitrary pieces give the same frames as whole-message parsing, and no header
//! above the size limit gets past it.
#![no_main]

use hardlight::protocol::{
    decoder::FrameDecoder,
    frame::{FrameHeader, HEADER_LEN},
};
use libfuzzer_sys::fuzz_target;

const MAX: u32 = 1 << 20;

fuzz_target!(|data: &[u8]| {
    // the first byte picks the size of the pieces the stream arrives in
    let Some((&step, stream)) = data.split_first() else {
        return;
    };
    let step = usize::from(step).max(1);
    let mut decoder = FrameDecoder::new(MAX);
    let mut frames = Vec::new();
    let mut failed = false;
    'pieces: for piece in stream.chunks(step) {
        let mut input = piece;
        while !input.is_empty() {
            match decoder.feed(&mut input) {
                Ok(Some(frame)) => frames.push(frame),
                Ok(None) => {}
                Err(_) => {
                    failed = true;
                    break 'pieces;
                }
            }
            let held = decoder.received();
            assert!(held <= HEADER_LEN + MAX as usize);
            if let Some(header) = decoder.header() {
                assert!(header.body_len <= MAX);
            }
        }
    }
    // every whole frame the decoder yielded is what splitting the stream gives
    let mut rest = stream;
    for (header, body) in &frames {
        let len = HEADER_LEN + body.len();
        let (parsed, parsed_body) = FrameHeader::split(&rest[..len], MAX).unwrap();
        assert_eq!(&parsed, header);
        assert_eq!(parsed_body, &body[..]);
        rest = &rest[len..];
    }
    if !failed {
        assert_eq!(decoder.received(), rest.len(), "unconsumed bytes are held");
    }
});
