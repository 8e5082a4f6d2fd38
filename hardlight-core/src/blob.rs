//! Bytes that travel without being copied out of the frame they arrived in, nor into a
//! handler's reply.
//!
//! A `Vec<u8>` is decoded by copying its bytes out of the received frame into a new
//! allocation. A [`Blob`] of at least [`SHARED_FROM`] bytes, decoded from a call's
//! arguments or its reply, a streaming call's item or an event (durable or not), is
//! instead a slice of the buffer the frame's body lies in: no copy and no allocation,
//! however large. In a handler's reply that is not compressed, such a blob is sent from
//! where it lies, beside the rest of the frame, rather than copied into it. On the wire
//! it is a `Vec<u8>` (the same archive and the same schema fingerprint), so either end may
//! use either type.

use std::{cell::RefCell, fmt, ops::Deref};

use bytes::Bytes;
use rkyv::{
    rancor::Fallible,
    ser::{Allocator, Writer},
    vec::{ArchivedVec, VecResolver},
    Archive, Deserialize, Place, Serialize,
};

use crate::schema::{Layout, Schema};

/// The size from which a decoded [`Blob`] shares the buffer it arrived in, and one in a
/// handler's reply is sent from where it lies; a smaller one is copied. A shared blob
/// keeps that whole buffer alive, which may be larger than the blob: over QUIC it is the
/// body's own buffer, over WebSocket the connection's read buffer as the messages before
/// it grew it (at most the largest of them, within the read-ahead `read_growth` allows).
/// A blob kept long after its call is best copied out (`Vec::<u8>::from(blob)`).
pub const SHARED_FROM: usize = 16 * 1024;

/// Bytes for large payloads: decoded without a copy where a `Vec<u8>` would be copied.
///
/// Cloning a `Blob` shares its bytes (a reference count). As an argument, a return value,
/// a stream's item or an event of at least [`SHARED_FROM`] bytes, it is decoded as a slice
/// of the buffer its frame's body was received in, which it keeps alive for as long as it
/// lives (see [`SHARED_FROM`] for how large that buffer may be). Returned by a handler in
/// a reply that is not compressed, it is sent from where it lies; elsewhere (arguments,
/// stream items, events, a compressed reply) its bytes are copied into the frame, as a
/// `Vec<u8>`'s are. The two are the same on the wire, so one end may take a `Blob` where
/// the other sends a `Vec<u8>`.
///
/// ```
/// use hardlight_core::{codec::{decode, encode}, Blob};
/// let blob = Blob::from(vec![7u8; 100]);
/// assert_eq!(encode(&blob).unwrap()[..], encode(&vec![7u8; 100]).unwrap()[..]);
/// assert_eq!(decode::<Blob>(&encode(&blob).unwrap()).unwrap(), blob);
/// assert_eq!(blob.len(), 100);
/// ```
#[derive(Clone, Default, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Blob(Bytes);

impl Deref for Blob {
    type Target = [u8];

    fn deref(&self) -> &[u8] {
        &self.0
    }
}

impl AsRef<[u8]> for Blob {
    fn as_ref(&self) -> &[u8] {
        &self.0
    }
}

impl From<Vec<u8>> for Blob {
    fn from(bytes: Vec<u8>) -> Self {
        Self(bytes.into())
    }
}

impl From<Bytes> for Blob {
    fn from(bytes: Bytes) -> Self {
        Self(bytes)
    }
}

impl From<&'static [u8]> for Blob {
    fn from(bytes: &'static [u8]) -> Self {
        Self(Bytes::from_static(bytes))
    }
}

impl From<Blob> for Bytes {
    fn from(blob: Blob) -> Self {
        blob.0
    }
}

impl From<Blob> for Vec<u8> {
    fn from(blob: Blob) -> Self {
        blob.0.into()
    }
}

impl fmt::Debug for Blob {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Blob({} bytes)", self.0.len())
    }
}

impl Archive for Blob {
    type Archived = ArchivedVec<u8>;
    type Resolver = VecResolver;

    fn resolve(&self, resolver: Self::Resolver, out: Place<Self::Archived>) {
        ArchivedVec::resolve_from_slice(&self.0, resolver, out);
    }
}

impl<S: Fallible + Allocator + Writer + ?Sized> Serialize<S> for Blob {
    fn serialize(&self, serializer: &mut S) -> Result<Self::Resolver, S::Error> {
        if self.0.len() < SHARED_FROM {
            return ArchivedVec::serialize_from_slice(&self.0, serializer);
        }
        // an archiver that sends blobs from where they lie takes it when it is to write
        // these bytes; any other copies them
        let _offered = Offer::new(&self.0);
        ArchivedVec::serialize_from_slice(&self.0, serializer)
    }
}

impl<D: Fallible + ?Sized> Deserialize<Blob, D> for ArchivedVec<u8> {
    fn deserialize(&self, _: &mut D) -> Result<Blob, D::Error> {
        Ok(Blob(shared(self.as_slice())))
    }
}

impl Schema for Blob {
    fn describe(layout: &mut Layout) {
        <Vec<u8> as Schema>::describe(layout);
    }
}

thread_local! {
    /// The buffer a frame's body lies in while it is decoded ([`Sharing`]).
    static SOURCE: RefCell<Option<Bytes>> = const { RefCell::new(None) };
    /// The blob being serialized, while it is ([`Offer`]).
    static OFFERED: RefCell<Option<Bytes>> = const { RefCell::new(None) };
}

/// A blob offered to the archiver serializing it, until this is dropped.
struct Offer;

impl Offer {
    fn new(blob: &Bytes) -> Self {
        let _ = OFFERED.try_with(|offered| offered.replace(Some(blob.clone())));
        Self
    }
}

impl Drop for Offer {
    fn drop(&mut self) {
        // gone only while the thread ends: nothing is serialized then
        let _ = OFFERED.try_with(|offered| offered.take());
    }
}

/// The blob being serialized, if `bytes` are its bytes: taken, so that one archiver
/// lends it once; the archiver then leaves it out of its buffer and sends it from where
/// it lies.
pub(crate) fn take_offered(bytes: &[u8]) -> Option<Bytes> {
    OFFERED
        .try_with(|offered| {
            let mut offered = offered.try_borrow_mut().ok()?;
            let same = offered
                .as_ref()
                .is_some_and(|blob| blob.as_ptr() == bytes.as_ptr() && blob.len() == bytes.len());
            same.then(|| offered.take()).flatten()
        })
        .ok()
        .flatten()
}

/// `source` named as the buffer that blobs of at least [`SHARED_FROM`] bytes lying in it
/// are shared from, until this is dropped (the buffer named before is named again then).
pub(crate) struct Sharing(Option<Bytes>);

impl Sharing {
    pub(crate) fn new(source: &Bytes) -> Self {
        let outer = SOURCE
            .try_with(|current| current.replace(Some(source.clone())))
            .ok()
            .flatten();
        Self(outer)
    }
}

impl Drop for Sharing {
    fn drop(&mut self) {
        let outer = self.0.take();
        // gone only while the thread ends: nothing is decoded then
        let _ = SOURCE.try_with(|current| current.replace(outer));
    }
}

/// `bytes` as a slice of the buffer being decoded, if they are large enough and lie in
/// it; a copy otherwise.
fn shared(bytes: &[u8]) -> Bytes {
    if bytes.len() >= SHARED_FROM {
        let slice = SOURCE
            .try_with(|current| {
                current
                    .borrow()
                    .as_ref()
                    .and_then(|source| within(source, bytes))
            })
            .ok()
            .flatten();
        if let Some(slice) = slice {
            return slice;
        }
    }
    Bytes::copy_from_slice(bytes)
}

/// The part of `source` that `part` is, if it is one.
fn within(source: &Bytes, part: &[u8]) -> Option<Bytes> {
    let start = (part.as_ptr() as usize).checked_sub(source.as_ptr() as usize)?;
    let end = start.checked_add(part.len())?;
    (end <= source.len()).then(|| source.slice(start..end))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{
        codec::{decode, encode},
        received::Received,
        schema::fingerprint,
    };

    /// Where `bytes` lie, as addresses.
    fn span(bytes: &[u8]) -> std::ops::Range<usize> {
        let start = bytes.as_ptr() as usize;
        start..start + bytes.len()
    }

    fn inside(part: &[u8], whole: &std::ops::Range<usize>) -> bool {
        let part = span(part);
        whole.start <= part.start && part.end <= whole.end
    }

    #[test]
    fn a_large_blob_shares_the_buffer_its_body_was_read_into() {
        let payload: Vec<u8> = (0..SHARED_FROM as u32 * 2).map(|i| i as u8).collect();
        let archive = encode(&(Blob::from(payload.clone()), 7u32)).unwrap();
        let buffer = span(&archive);
        let (blob, n) = Received::Aligned(archive).decode::<(Blob, u32)>().unwrap();
        assert_eq!((&blob[..], n), (&payload[..], 7));
        assert!(inside(&blob, &buffer), "shared, not copied");
    }

    #[test]
    fn a_large_blob_shares_the_message_its_body_lies_in() {
        let payload = vec![5u8; SHARED_FROM];
        let archive = encode(&(Blob::from(payload.clone()),)).unwrap();
        // behind a frame header, as in a WebSocket message
        let message = Bytes::from([&[0u8; 24][..], &archive].concat());
        let whole = span(&message);
        let (blob,) = Received::Shared(message.slice(24..))
            .decode::<(Blob,)>()
            .unwrap();
        assert_eq!(&blob[..], &payload[..]);
        assert!(inside(&blob, &whole), "shared, not copied");
    }

    #[test]
    fn a_large_blob_read_out_of_an_archive_shares_its_buffer() {
        // as an event's payload is read beside its topic
        let payload = vec![6u8; SHARED_FROM];
        let archive = encode(&(String::from("topic"), Blob::from(payload.clone()))).unwrap();
        let buffer = span(&archive);
        let blob = Received::Aligned(archive)
            .decode_with::<(String, Blob), _>(|archived| {
                crate::codec::deserialize::<Blob>(&archived.1)
            })
            .unwrap();
        assert_eq!(&blob[..], &payload[..]);
        assert!(inside(&blob, &buffer), "shared, not copied");
    }

    #[test]
    fn a_small_blob_or_one_decoded_from_a_plain_slice_is_copied() {
        let small = encode(&(Blob::from(vec![1u8; SHARED_FROM - 1]),)).unwrap();
        let buffer = span(&small);
        let (blob,) = Received::Aligned(small).decode::<(Blob,)>().unwrap();
        assert_eq!(blob.len(), SHARED_FROM - 1);
        assert!(!inside(&blob, &buffer));
        let large = encode(&Blob::from(vec![2u8; SHARED_FROM])).unwrap();
        let blob = decode::<Blob>(&large).unwrap();
        assert_eq!(&blob[..], &[2u8; SHARED_FROM][..]);
        assert!(!inside(&blob, &span(&large)));
    }

    #[test]
    fn a_blob_is_a_vec_of_bytes_on_the_wire() {
        assert_eq!(fingerprint::<Blob>(), fingerprint::<Vec<u8>>());
        let bytes = vec![9u8; 300];
        let archive = encode(&bytes).unwrap();
        assert_eq!(encode(&Blob::from(bytes.clone())).unwrap()[..], archive[..]);
        assert_eq!(decode::<Blob>(&archive).unwrap(), Blob::from(bytes));
        let nested = encode(&vec![Blob::from(vec![1u8, 2]), Blob::default()]).unwrap();
        assert_eq!(
            decode::<Vec<Vec<u8>>>(&nested).unwrap(),
            vec![vec![1u8, 2], vec![]]
        );
    }
}
