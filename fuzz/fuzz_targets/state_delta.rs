//! State deltas: a `StateBatch` from the server applied to the client's mirror of a
//! `#[connection_state]` struct (unknown fields and mistyped values must be errors).
#![no_main]

use hardlight::{
    connection_state,
    protocol::{
        codec::{decode, realign},
        state::StateBatch,
    },
};
use libfuzzer_sys::fuzz_target;

#[connection_state]
struct Mirror {
    counter: u32,
    history: Vec<u32>,
    name: String,
    tags: Option<Vec<String>>,
}

fuzz_target!(|data: &[u8]| {
    let aligned = realign(data);
    if let Ok(batch) = decode::<StateBatch>(&aligned) {
        let mut mirror = Mirror::default();
        let _ = batch.apply_to(&mut mirror);
    }
});
