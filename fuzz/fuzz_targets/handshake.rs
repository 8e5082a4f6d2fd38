//! The handshake: `Hello` (what an unauthenticated client sends first), `Welcome` and
//! `Reject` bodies, validated archives only.
#![no_main]

use hardlight::{
    protocol::{
        codec::{decode, realign},
        handshake::{check_hello, Hello, Welcome},
        schema::{SchemaItem, ServiceSchema},
    },
    Compression,
};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let aligned = realign(data);
    if let Ok(hello) = decode::<Hello>(&aligned) {
        let schema = ServiceSchema {
            hash: 42,
            items: vec![SchemaItem {
                name: "method add".into(),
                fingerprint: 7,
            }],
        };
        let _ = check_hello(&hello, "Counter", &schema, Compression::default());
    }
    if let Ok(welcome) = decode::<Welcome>(&aligned) {
        let _ = welcome.compression_for(Compression::default());
    }
    let _ = decode::<String>(&aligned);
});
