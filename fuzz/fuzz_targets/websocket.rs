//! The WebSocket decoder: frames of any bytes, fed in pieces of any size, for both ends,
//! as the server and the native client run it on everything a peer sends.
#![no_main]

use bytes::BytesMut;
use hardlight::protocol::websocket::{Decoded, Decoder, Message, Role};
use libfuzzer_sys::fuzz_target;

const MAX: usize = 1 << 16;

fuzz_target!(|data: &[u8]| {
    let Some((&split, data)) = data.split_first() else {
        return;
    };
    for role in [Role::Server, Role::Client] {
        let mut decoder = Decoder::new(role, MAX);
        let mut read = BytesMut::new();
        // the bytes arrive in pieces of `split + 1`
        'pieces: for piece in data.chunks(usize::from(split) + 1) {
            read.extend_from_slice(piece);
            loop {
                let before = read.len();
                match decoder.decode(&mut read) {
                    Ok(Decoded::Message(message)) => {
                        if let Message::Binary(payload) | Message::Ping(payload) = &message {
                            assert!(payload.len() <= MAX);
                        }
                        assert!(read.len() < before, "a message took no bytes");
                    }
                    Ok(Decoded::Need(need)) => {
                        assert!(need > 0);
                        // only the fragments of a message not yet whole are taken
                        assert!(read.len() == before || decoder.in_message());
                        break;
                    }
                    Err(_) => break 'pieces,
                }
            }
        }
    }
});
