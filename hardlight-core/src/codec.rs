//! The rkyv codec: every value on the wire is an rkyv archive, validated before use.

use rkyv::{
    api::high::{HighDeserializer, HighSerializer, HighValidator},
    bytecheck::CheckBytes,
    rancor,
    ser::allocator::ArenaHandle,
    util::AlignedVec,
    Archive, Deserialize, Serialize,
};

use crate::error::ProtocolError;

/// Alignment HardLight guarantees for archive bodies it decodes.
pub const ALIGN: usize = 16;

/// An owned, aligned buffer holding one archive.
pub type Bytes = AlignedVec<ALIGN>;

/// A type that can travel over HardLight: rkyv-serializable, and validated on decode.
///
/// Implemented automatically for every type that derives rkyv's traits through
/// `#[codable]`, and for the standard types rkyv supports (integers, `String`,
/// `Vec`, `Option`, maps, tuples up to 12 elements, ...).
///
/// ```
/// use hardlight_core::codec::{decode, encode};
/// let bytes = encode(&(7u32, String::from("seven"))).unwrap();
/// let back: (u32, String) = decode(&bytes).unwrap();
/// assert_eq!(back, (7, "seven".into()));
/// ```
#[diagnostic::on_unimplemented(
    message = "`{Self}` cannot travel over HardLight",
    label = "not codable",
    note = "add `#[codable]` to the definition of `{Self}` (and of every type inside it)"
)]
pub trait Codable:
    Archive<
        Archived: for<'a> CheckBytes<HighValidator<'a, rancor::Error>>
                      + Deserialize<Self, HighDeserializer<rancor::Error>>,
    > + for<'a> Serialize<HighSerializer<AlignedVec, ArenaHandle<'a>, rancor::Error>>
    + Sized
{
}

impl<T> Codable for T where
    T: Archive<
            Archived: for<'a> CheckBytes<HighValidator<'a, rancor::Error>>
                          + Deserialize<T, HighDeserializer<rancor::Error>>,
        > + for<'a> Serialize<HighSerializer<AlignedVec, ArenaHandle<'a>, rancor::Error>>
{
}

/// Serializes a value into an aligned archive.
///
/// Fails only if the value's own serialization fails (rare: e.g. a length overflowing
/// the archive's 32-bit offsets).
pub fn encode<T: Codable>(value: &T) -> Result<Bytes, ProtocolError> {
    // Small values (most arguments and replies) fit without growing the buffer.
    let buffer = Bytes::with_capacity(ENCODE_CAPACITY);
    rkyv::api::high::to_bytes_in::<_, rancor::Error>(value, buffer)
        .map_err(|e| ProtocolError::InvalidPayload(format!("cannot serialize: {e}")))
}

/// The buffer [`encode`] starts with: an archive this small is written without
/// reallocating.
const ENCODE_CAPACITY: usize = 256;

/// Validates an archive and deserializes it.
///
/// `bytes` need not be aligned; a misaligned slice is copied into an aligned buffer first.
/// Invalid bytes give [`ProtocolError::InvalidPayload`], never undefined behaviour.
pub fn decode<T: Codable>(bytes: &[u8]) -> Result<T, ProtocolError> {
    if (bytes.as_ptr() as usize) % ALIGN == 0 {
        decode_aligned(bytes)
    } else {
        decode_aligned(&realign(bytes))
    }
}

fn decode_aligned<T: Codable>(bytes: &[u8]) -> Result<T, ProtocolError> {
    rkyv::from_bytes::<T, rancor::Error>(bytes)
        .map_err(|e| ProtocolError::InvalidPayload(e.to_string()))
}

/// Copies bytes into a fresh aligned buffer.
pub fn realign(bytes: &[u8]) -> Bytes {
    let mut out = Bytes::with_capacity(bytes.len());
    out.extend_from_slice(bytes);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn garbage_is_an_error_not_a_panic() {
        let garbage = realign(&[0xff; 64]);
        assert!(matches!(
            decode::<(String, Vec<u64>)>(&garbage),
            Err(ProtocolError::InvalidPayload(_))
        ));
        assert!(decode::<String>(&[]).is_err());
    }

    #[test]
    fn misaligned_input_is_handled() {
        let bytes = encode(&vec![1u64, 2, 3]).unwrap();
        let mut shifted = vec![0u8];
        shifted.extend_from_slice(&bytes);
        assert_eq!(decode::<Vec<u64>>(&shifted[1..]).unwrap(), vec![1, 2, 3]);
    }
}
