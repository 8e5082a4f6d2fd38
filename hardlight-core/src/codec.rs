//! The rkyv codec: every value on the wire is an rkyv archive, validated before use.

use std::num::NonZeroUsize;

use rkyv::{
    api::high::{HighDeserializer, HighSerializer, HighValidator},
    bytecheck::CheckBytes,
    de::Pool,
    rancor,
    ser::{
        allocator::{Arena, ArenaHandle},
        Positional, Writer,
    },
    util::AlignedVec,
    validation::{archive::ArchiveValidator, shared::SharedValidator, Validator},
    Archive, Deserialize, Serialize,
};

use crate::{
    blob::{self, SHARED_FROM},
    error::ProtocolError,
    spare,
};

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
    > + for<'a> Serialize<HighSerializer<Archiver, ArenaHandle<'a>, rancor::Error>>
    + for<'a> Serialize<HighSerializer<Archiver<Vec<u8>>, ArenaHandle<'a>, rancor::Error>>
    + Sized
{
}

impl<T> Codable for T where
    T: Archive<
            Archived: for<'a> CheckBytes<HighValidator<'a, rancor::Error>>
                          + Deserialize<T, HighDeserializer<rancor::Error>>,
        > + for<'a> Serialize<HighSerializer<Archiver, ArenaHandle<'a>, rancor::Error>>
        + for<'a> Serialize<HighSerializer<Archiver<Vec<u8>>, ArenaHandle<'a>, rancor::Error>>
{
}

/// Serializes a value into an aligned archive.
///
/// Fails only if the value's own serialization fails (rare: e.g. a length overflowing
/// the archive's 32-bit offsets).
pub fn encode<T: Codable>(value: &T) -> Result<Bytes, ProtocolError> {
    // Small values (most arguments and replies) fit without growing the buffer.
    spare::with_arena(|arena| encode_into(value, Bytes::with_capacity(ENCODE_CAPACITY), arena))
}

/// Serializes a value after what `buffer` already holds (a frame header's room, say),
/// as if the archive started the buffer: its positions, and so its padding, count from
/// there.
#[inline]
pub(crate) fn encode_into<T, B>(value: &T, buffer: B, arena: &mut Arena) -> Result<B, ProtocolError>
where
    T: for<'a> Serialize<HighSerializer<Archiver<B>, ArenaHandle<'a>, rancor::Error>>,
    B: Buffer,
{
    archive(value, Archiver::new(buffer, None), arena).map(|archiver| archiver.buffer)
}

/// [`encode_into`], with the [`Blob`](crate::Blob)s of at least
/// [`SHARED_FROM`](crate::blob::SHARED_FROM) bytes lent rather than copied: each left out
/// of the buffer, and given with the place in it where its bytes belong.
#[inline]
pub(crate) fn encode_lending<T: Codable>(
    value: &T,
    buffer: Vec<u8>,
    arena: &mut Arena,
) -> Result<(Vec<u8>, Vec<LentBlob>), ProtocolError> {
    let archiver = archive(value, Archiver::new(buffer, Some(Vec::new())), arena)?;
    Ok((archiver.buffer, archiver.lent.unwrap_or_default()))
}

/// Serializes `value` with `archiver`.
#[inline]
fn archive<T, B>(
    value: &T,
    archiver: Archiver<B>,
    arena: &mut Arena,
) -> Result<Archiver<B>, ProtocolError>
where
    T: for<'a> Serialize<HighSerializer<Archiver<B>, ArenaHandle<'a>, rancor::Error>>,
    B: Buffer,
{
    rkyv::api::high::to_bytes_in_with_alloc::<_, _, rancor::Error>(value, archiver, arena.acquire())
        .map_err(|e| ProtocolError::InvalidPayload(format!("cannot serialize: {e}")))
}

/// A blob's bytes lent to an archive, and where in the archive's buffer they belong.
pub(crate) type LentBlob = (usize, bytes::Bytes);

/// The buffer [`encode`] starts with: an archive this small is written without
/// reallocating.
pub(crate) const ENCODE_CAPACITY: usize = 256;

/// Room left past what a write needs when the buffer grows. rkyv writes a value's
/// out-of-line data (a `Vec`'s elements) before the value itself: without room, a
/// payload that exactly fills the grown buffer (any power of two: the buffer's own
/// growth rounds up to one) would make the few bytes of its root double the buffer and
/// copy the whole archive.
const GROWTH_SLACK: usize = 256;

/// The writer every archive is serialized with ([`Codable`] names it): a buffer that,
/// when it grows, keeps 256 bytes to spare past what it needs, so that a value's root,
/// written after its out-of-line data, does not double the buffer. An aligned [`Bytes`]
/// for an archive read in place, a `Vec` behind a frame header's room for one sent
/// ([`Body`](crate::message::Body)).
#[derive(Debug)]
pub struct Archiver<B = Bytes> {
    buffer: B,
    /// Where the archive starts in `buffer`, less the bytes of the blobs lent: positions
    /// count those as written.
    start: usize,
    /// The blobs lent rather than copied; `None` where every blob is copied.
    lent: Option<Vec<LentBlob>>,
}

impl<B: Buffer> Archiver<B> {
    fn new(buffer: B, lent: Option<Vec<LentBlob>>) -> Self {
        let start = buffer.written();
        Self {
            buffer,
            start,
            lent,
        }
    }

    /// Takes the blob whose bytes `bytes` are in place of writing them, if it is offered
    /// and this archiver lends.
    #[cold]
    #[inline(never)]
    fn lend(&mut self, bytes: &[u8]) -> bool {
        let Some(lent) = &mut self.lent else {
            return false;
        };
        let Some(blob) = blob::take_offered(bytes) else {
            return false;
        };
        self.start = self.start.wrapping_sub(blob.len());
        lent.push((self.buffer.written(), blob));
        true
    }
}

/// What an [`Archiver`] writes into: an aligned [`Bytes`] or a `Vec<u8>`.
pub trait Buffer: sealed::Sealed {
    /// Bytes written so far.
    #[doc(hidden)]
    fn written(&self) -> usize;
    /// Bytes that can be written without growing.
    #[doc(hidden)]
    fn spare(&self) -> usize;
    /// Makes room for exactly `more` bytes past those written.
    #[doc(hidden)]
    fn reserve(&mut self, more: usize);
    /// Appends `bytes`.
    #[doc(hidden)]
    fn append(&mut self, bytes: &[u8]);
}

mod sealed {
    pub trait Sealed {}
    impl Sealed for super::Bytes {}
    impl Sealed for Vec<u8> {}
}

/// [`Buffer`] for a type with `Vec`'s methods.
macro_rules! buffer {
    ($buffer:ty) => {
        impl Buffer for $buffer {
            #[inline]
            fn written(&self) -> usize {
                self.len()
            }
            #[inline]
            fn spare(&self) -> usize {
                self.capacity() - self.len()
            }
            fn reserve(&mut self, more: usize) {
                self.reserve_exact(more)
            }
            #[inline]
            fn append(&mut self, bytes: &[u8]) {
                self.extend_from_slice(bytes)
            }
        }
    };
}
buffer!(Bytes);
buffer!(Vec<u8>);

impl<B: Buffer> Positional for Archiver<B> {
    #[inline]
    fn pos(&self) -> usize {
        self.buffer.written().wrapping_sub(self.start)
    }
}

impl<E, B: Buffer> Writer<E> for Archiver<B> {
    #[inline]
    fn write(&mut self, bytes: &[u8]) -> Result<(), E> {
        if bytes.len() >= SHARED_FROM && self.lend(bytes) {
            return Ok(());
        }
        let buffer = &mut self.buffer;
        if buffer.spare() < bytes.len() {
            grow(buffer, bytes.len());
        }
        buffer.append(bytes);
        Ok(())
    }
}

/// Makes room in `buffer` for `more` bytes that do not fit: at least double, and
/// [`GROWTH_SLACK`] past what they need.
#[cold]
fn grow<B: Buffer>(buffer: &mut B, more: usize) {
    let written = buffer.written();
    let needed = written.saturating_add(more).saturating_add(GROWTH_SLACK);
    let capacity = written + buffer.spare();
    let target = needed.max(capacity.saturating_mul(2));
    buffer.reserve(target - written);
}

/// Validates an archive and deserializes it.
///
/// `bytes` need not be aligned. A misaligned slice of at most 512 bytes is copied to an
/// aligned place on the stack; a larger one is decoded where it lies if what it holds
/// needs no more alignment than it has, and copied to an aligned buffer otherwise. Invalid
/// bytes give [`ProtocolError::InvalidPayload`], never undefined behaviour.
pub fn decode<T: Codable>(bytes: &[u8]) -> Result<T, ProtocolError> {
    decode_with::<T, T>(bytes, deserialize)
}

/// Validates an archive of `T` and hands it to `read`, which takes what it needs of it
/// ([`decode`] deserializes all of it). `bytes` need not be aligned: they are aligned as
/// [`decode`] aligns them.
///
/// ```
/// use hardlight_core::codec::{decode_with, deserialize, encode};
/// let bytes = encode(&(7u32, String::from("seven"))).unwrap();
/// // the number alone: the string is validated, not deserialized
/// let seven = decode_with::<(u32, String), _>(&bytes, |archived| Ok(archived.0.to_native()));
/// assert_eq!(seven.unwrap(), 7);
/// ```
pub fn decode_with<T: Codable, R>(
    bytes: &[u8],
    read: impl FnOnce(&T::Archived) -> Result<R, ProtocolError>,
) -> Result<R, ProtocolError> {
    if (bytes.as_ptr() as usize).is_multiple_of(ALIGN) {
        read(access::<T>(bytes)?)
    } else if bytes.len() <= 128 {
        read_on_stack::<T, R, 128>(bytes, read)
    } else if bytes.len() <= 512 {
        read_on_stack::<T, R, 512>(bytes, read)
    } else {
        // The validation checks every pointer's alignment, so a misaligned archive either
        // passes (its values need no more alignment than the slice has: a body behind
        // the 24-byte frame header is 8-aligned) or fails, mostly at its root, and is
        // then copied. A large body's copy is a buffer of its size, freshly allocated
        // and faulted in; the failed attempt is at most one more validation.
        match access::<T>(bytes) {
            Ok(archived) => read(archived),
            Err(_) => read(access::<T>(&realign(bytes))?),
        }
    }
}

/// Reads `bytes` (at most `N`) copied to an aligned place on the stack: no buffer
/// allocated for a small misaligned archive. Two sizes, so that a small one does not
/// clear the room a larger one needs.
fn read_on_stack<T: Codable, R, const N: usize>(
    bytes: &[u8],
    read: impl FnOnce(&T::Archived) -> Result<R, ProtocolError>,
) -> Result<R, ProtocolError> {
    let mut stack = StackAligned([0; N]);
    let copy = &mut stack.0[..bytes.len()];
    copy.copy_from_slice(bytes);
    read(access::<T>(copy)?)
}

/// Room on the stack, aligned as [`Bytes`] is.
#[repr(C, align(16))]
struct StackAligned<const N: usize>([u8; N]);

const _: () = assert!(std::mem::align_of::<StackAligned<128>>() == ALIGN);

/// The deepest nesting of out-of-line data (a `Box`, a `Vec`'s or a map's elements, a
/// `String`'s bytes, each inside the last) that [`decode`] accepts; deeper archives are
/// refused with [`ProtocolError::InvalidPayload`] before anything recurses.
///
/// Validating, deserializing and dropping a value each recurse once per level, so without
/// a bound a peer could overflow a thread's stack with a small archive of a type that
/// contains itself (`Box<Self>`, `Vec<Self>`): 8 bytes a level, 2 million levels in a
/// 16 MiB message. 128, as serde_json's recursion limit, is far deeper than data types
/// nest and far shallower than a 2 MiB stack allows (`codec` tests).
pub const MAX_DEPTH: usize = 128;

/// Validates an archive of `T` and returns it without deserializing it, for a reader that
/// needs only part of a value. `bytes` must be aligned to [`ALIGN`] (as [`Bytes`] is);
/// misaligned or invalid bytes give [`ProtocolError::InvalidPayload`].
///
/// ```
/// use hardlight_core::codec::{access, encode};
/// let bytes = encode(&(7u32, String::from("seven"))).unwrap();
/// assert_eq!(access::<(u32, String)>(&bytes).unwrap().0, 7);
/// ```
pub fn access<T: Codable>(bytes: &[u8]) -> Result<&T::Archived, ProtocolError> {
    let mut validator = Validator::new(
        // rkyv's count takes in the root's own range, and fails on reaching its bound
        ArchiveValidator::with_max_depth(bytes, NonZeroUsize::new(MAX_DEPTH + 2)),
        SharedValidator::new(),
    );
    rkyv::api::access_with_context::<T::Archived, _, rancor::Error>(bytes, &mut validator)
        .map_err(invalid)
}

/// Deserializes an archived value that [`access`] validated.
pub fn deserialize<T: Codable>(archived: &T::Archived) -> Result<T, ProtocolError> {
    rkyv::api::deserialize_using::<T, _, rancor::Error>(archived, &mut Pool::new()).map_err(invalid)
}

fn invalid(e: rancor::Error) -> ProtocolError {
    // rkyv shows the innermost cause only; its trace names the depth bound
    if format!("{e:?}").contains("ExceededMaximumSubtreeDepth") {
        ProtocolError::InvalidPayload(format!(
            "the archive nests deeper than {MAX_DEPTH} levels (codec::MAX_DEPTH)"
        ))
    } else {
        ProtocolError::InvalidPayload(e.to_string())
    }
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
        // aligned on the stack, and in a buffer of its own
        for len in [3, 60, 1000] {
            // 32, 488 and 8,008 bytes: each way a misaligned archive is aligned
            let value: Vec<u64> = (0..len).collect();
            let bytes = encode(&value).unwrap();
            let mut shifted = vec![0u8];
            shifted.extend_from_slice(&bytes);
            assert_eq!(decode::<Vec<u64>>(&shifted[1..]).unwrap(), value);
        }
    }

    #[test]
    fn a_large_archive_decodes_at_every_offset_whatever_alignment_its_values_need() {
        // where it lies when the offset suits its values, copied when not
        let narrow: Vec<u64> = (0..1000).collect();
        let wide: Vec<u128> = (0..1000).collect();
        let (narrow_bytes, wide_bytes) = (encode(&narrow).unwrap(), encode(&wide).unwrap());
        for offset in 0..ALIGN {
            let mut shifted = realign(&vec![0u8; offset]);
            shifted.extend_from_slice(&narrow_bytes);
            assert_eq!(decode::<Vec<u64>>(&shifted[offset..]).unwrap(), narrow);
            let mut shifted = realign(&vec![0u8; offset]);
            shifted.extend_from_slice(&wide_bytes);
            assert_eq!(decode::<Vec<u128>>(&shifted[offset..]).unwrap(), wide);
            // and garbage is refused either way
            let mut garbage = realign(&vec![0u8; offset]);
            garbage.extend_from_slice(&[0xff; 1000]);
            assert!(matches!(
                decode::<Vec<u64>>(&garbage[offset..]),
                Err(ProtocolError::InvalidPayload(_))
            ));
        }
    }

    /// Nests inside itself: `Nest(vec![Nest(vec![...])])`.
    #[derive(Archive, Serialize, Deserialize, Debug, PartialEq)]
    #[rkyv(serialize_bounds(__S: rkyv::ser::Writer + rkyv::ser::Allocator, __S::Error: rancor::Source))]
    #[rkyv(deserialize_bounds(__D::Error: rancor::Source))]
    #[rkyv(bytecheck(bounds(__C: rkyv::validation::ArchiveContext, __C::Error: rancor::Source)))]
    struct Nest(#[rkyv(omit_bounds)] Vec<Nest>);

    /// `levels` nested vectors (encoded and dropped on a thread with room for any depth).
    fn nested(levels: usize) -> Bytes {
        std::thread::Builder::new()
            .stack_size(1 << 30)
            .spawn(move || {
                let mut nest = Nest(Vec::new());
                for _ in 0..levels {
                    nest = Nest(vec![nest]);
                }
                let bytes = encode(&nest).unwrap();
                // dropped level by level, not recursively
                let mut next = nest.0.pop();
                while let Some(mut inner) = next {
                    next = inner.0.pop();
                }
                bytes
            })
            .unwrap()
            .join()
            .unwrap()
    }

    #[test]
    fn archives_nest_at_most_max_depth_levels() {
        // `nested(n)` is n + 1 levels deep: the innermost, empty vector is one too
        assert!(decode::<Nest>(&nested(MAX_DEPTH - 1)).is_ok());
        let error = decode::<Nest>(&nested(MAX_DEPTH)).unwrap_err();
        assert!(
            matches!(&error, ProtocolError::InvalidPayload(m) if m.contains("nests deeper than 128")),
            "{error}"
        );
        // a million levels in 8 MiB: refused, on this test thread's own stack
        assert!(decode::<Nest>(&nested(1_000_000)).is_err());
    }

    #[test]
    fn a_payload_that_fills_the_buffer_leaves_room_for_its_root() {
        // rkyv writes the 64 KiB of elements, then the vector's 8-byte root: the buffer
        // grows once, with room for the root, not to the next power of two
        let bytes = encode(&vec![7u8; 1 << 16]).unwrap();
        assert!(bytes.capacity() < 1 << 17, "{}", bytes.capacity());
        assert_eq!(decode::<Vec<u8>>(&bytes).unwrap(), vec![7u8; 1 << 16]);
    }
}
