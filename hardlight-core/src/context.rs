//! What travels with a call besides its arguments: its time budget (in the `Call` header's
//! `seq`) and its [`CallContext`] (trace context and caller-supplied entries, at the end of
//! the body when the header has [`FLAG_CONTEXT`]).
//!
//! ```text
//! | arguments archive (A bytes) | zero padding to a multiple of 16 | context archive | A: u32 LE |
//! ```
//!
//! The arguments stay at offset 0, so a server opens them in place whether a context came
//! or not.

use std::{fmt, time::Duration};

use crate::{
    codec::{decode, encode, ALIGN},
    error::ProtocolError,
    frame::FLAG_CONTEXT,
    message::Body,
    received::Received,
};

/// Largest call context, as archived: 4 KiB.
pub const MAX_CONTEXT_LEN: usize = 4096;

/// Bytes of the trailer holding the arguments' length.
const TRAILER_LEN: usize = 4;

/// What a caller sends with a call besides its arguments: the W3C trace context and
/// entries of its own (e.g. a request id or a tenant), at most [`MAX_CONTEXT_LEN`] bytes
/// archived.
///
/// A handler reads it with `CurrentCall::context`; a call made from inside a handler
/// carries it on.
///
/// ```
/// use hardlight_core::context::CallContext;
/// let context = CallContext::new()
///     .with_traceparent("00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01")
///     .with_entry("request-id", "r-17");
/// assert_eq!(context.entry("request-id"), Some("r-17"));
/// assert_eq!(
///     context.trace().unwrap().trace_id(),
///     "4bf92f3577b34da6a3ce929d0e0e4736"
/// );
/// ```
#[derive(
    Debug, Clone, Default, PartialEq, Eq, rkyv::Archive, rkyv::Serialize, rkyv::Deserialize,
)]
#[non_exhaustive]
pub struct CallContext {
    /// The W3C Trace Context `traceparent` header's value.
    pub traceparent: Option<String>,
    /// The W3C Trace Context `tracestate` header's value, carried on unchanged.
    pub tracestate: Option<String>,
    /// Entries of the caller's, in order.
    pub entries: Vec<(String, String)>,
}

impl CallContext {
    /// An empty context.
    pub fn new() -> Self {
        Self::default()
    }

    /// Sets the `traceparent` (`00-<trace id>-<parent id>-<flags>`).
    pub fn with_traceparent(mut self, traceparent: impl Into<String>) -> Self {
        self.traceparent = Some(traceparent.into());
        self
    }

    /// Sets the `tracestate`.
    pub fn with_tracestate(mut self, tracestate: impl Into<String>) -> Self {
        self.tracestate = Some(tracestate.into());
        self
    }

    /// Adds an entry.
    pub fn with_entry(mut self, key: impl Into<String>, value: impl Into<String>) -> Self {
        self.entries.push((key.into(), value.into()));
        self
    }

    /// The value of the first entry named `key`.
    pub fn entry(&self, key: &str) -> Option<&str> {
        self.entries
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.as_str())
    }

    /// The `traceparent`, if it follows W3C Trace Context; one that does not is ignored,
    /// as the recommendation requires.
    pub fn trace(&self) -> Option<TraceParent> {
        self.traceparent.as_deref().and_then(TraceParent::parse)
    }

    /// Whether there is nothing to send.
    pub fn is_empty(&self) -> bool {
        self.traceparent.is_none() && self.tracestate.is_none() && self.entries.is_empty()
    }
}

/// A parsed W3C Trace Context `traceparent`, version `00`.
///
/// ```
/// use hardlight_core::context::TraceParent;
/// let parent = TraceParent::parse("00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01").unwrap();
/// assert_eq!(parent.parent_id(), "00f067aa0ba902b7");
/// assert!(parent.is_sampled());
/// let child = parent.child(0x1234);
/// assert_eq!(child.to_string(), "00-4bf92f3577b34da6a3ce929d0e0e4736-0000000000001234-01");
/// assert!(TraceParent::parse("00-00000000000000000000000000000000-00f067aa0ba902b7-01").is_none());
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct TraceParent {
    trace_id: u128,
    parent_id: u64,
    flags: u8,
}

impl TraceParent {
    /// Parses a version-`00` `traceparent`; `None` if it is not one (wrong lengths,
    /// upper-case or non-hex digits, an all-zero id).
    pub fn parse(value: &str) -> Option<Self> {
        let mut parts = value.split('-');
        let (version, trace, parent, flags) =
            (parts.next()?, parts.next()?, parts.next()?, parts.next()?);
        if parts.next().is_some()
            || version != "00"
            || trace.len() != 32
            || parent.len() != 16
            || flags.len() != 2
        {
            return None;
        }
        let hex = |s: &str| {
            s.bytes()
                .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
        };
        if !(hex(trace) && hex(parent) && hex(flags)) {
            return None;
        }
        let trace_id = u128::from_str_radix(trace, 16).ok()?;
        let parent_id = u64::from_str_radix(parent, 16).ok()?;
        let flags = u8::from_str_radix(flags, 16).ok()?;
        (trace_id != 0 && parent_id != 0).then_some(Self {
            trace_id,
            parent_id,
            flags,
        })
    }

    /// The trace id, 32 lower-case hex digits.
    pub fn trace_id(&self) -> String {
        format!("{:032x}", self.trace_id)
    }

    /// The caller's span id, 16 lower-case hex digits.
    pub fn parent_id(&self) -> String {
        format!("{:016x}", self.parent_id)
    }

    /// Whether the caller records this trace (flag bit 0).
    pub fn is_sampled(&self) -> bool {
        self.flags & 1 != 0
    }

    /// The `traceparent` of a call made from the span `span_id` of this trace.
    pub fn child(&self, span_id: u64) -> Self {
        Self {
            parent_id: span_id.max(1),
            ..*self
        }
    }
}

impl fmt::Display for TraceParent {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "00-{:032x}-{:016x}-{:02x}",
            self.trace_id, self.parent_id, self.flags
        )
    }
}

/// A call's time budget as the `Call` header's `seq`: microseconds, at least 1 (0 means
/// no deadline).
///
/// ```
/// use std::time::Duration;
/// use hardlight_core::context::{budget_from_seq, budget_to_seq};
/// assert_eq!(budget_to_seq(None), 0);
/// assert_eq!(budget_to_seq(Some(Duration::from_millis(250))), 250_000);
/// assert_eq!(budget_to_seq(Some(Duration::ZERO)), 1);
/// assert_eq!(budget_from_seq(250_000), Some(Duration::from_millis(250)));
/// assert_eq!(budget_from_seq(0), None);
/// ```
pub fn budget_to_seq(budget: Option<Duration>) -> u64 {
    budget.map_or(0, |budget| {
        u64::try_from(budget.as_micros()).unwrap_or(u64::MAX).max(1)
    })
}

/// The time budget a `Call` header's `seq` gives; `None` for no deadline.
#[inline]
pub fn budget_from_seq(seq: u64) -> Option<Duration> {
    (seq != 0).then(|| Duration::from_micros(seq))
}

/// Appends `context` to the archived arguments `args` (the body of a `Call` frame with
/// [`FLAG_CONTEXT`]). Fails if the context archives to more than [`MAX_CONTEXT_LEN`].
///
/// ```
/// use hardlight_core::{codec::{decode, realign}, context::{append_context, split_context, CallContext}, frame::{FrameHeader, Kind}, message::Body, received::Received};
/// let mut args = Body::encode(&(7u32,)).unwrap();
/// let context = CallContext::new().with_entry("tenant", "a");
/// let flags = append_context(&mut args, &context).unwrap();
/// let mut body = Received::Aligned(realign(args.archive()));
/// let header = FrameHeader::new(Kind::Call, body.len() as u32).with_flags(flags);
/// let back = split_context(&header, &mut body).unwrap();
/// assert_eq!(back, Some(context));
/// assert_eq!(decode::<(u32,)>(&body).unwrap(), (7,));
/// ```
pub fn append_context(args: &mut Body, context: &CallContext) -> Result<u8, ProtocolError> {
    let archive = encode(context)?;
    if archive.len() > MAX_CONTEXT_LEN {
        return Err(too_large(archive.len()));
    }
    let args_len = u32::try_from(args.len()).map_err(|_| ProtocolError::Malformed)?;
    args.pad_and_extend(
        args.len().next_multiple_of(ALIGN),
        &[&archive, &args_len.to_le_bytes()],
    );
    Ok(FLAG_CONTEXT)
}

/// Takes the call context off the end of an opened `Call` body, leaving the arguments
/// archive; `None` when the header has no [`FLAG_CONTEXT`].
#[inline] // on every call, most of them without a context
pub fn split_context(
    header: &crate::frame::FrameHeader,
    body: &mut Received,
) -> Result<Option<CallContext>, ProtocolError> {
    if header.flags & FLAG_CONTEXT == 0 {
        return Ok(None);
    }
    take_context(body).map(Some)
}

/// The call context off the end of `body`, which has one.
fn take_context(body: &mut Received) -> Result<CallContext, ProtocolError> {
    let invalid = |what: &str| ProtocolError::InvalidPayload(format!("call context: {what}"));
    let end = body
        .len()
        .checked_sub(TRAILER_LEN)
        .ok_or_else(|| invalid("no trailer"))?;
    let mut trailer = [0u8; TRAILER_LEN];
    trailer.copy_from_slice(&body[end..]);
    let args_len = u32::from_le_bytes(trailer) as usize;
    let start = args_len
        .checked_next_multiple_of(ALIGN)
        .filter(|&start| start <= end)
        .ok_or_else(|| invalid("the arguments' length runs past the body"))?;
    if end - start > MAX_CONTEXT_LEN {
        return Err(too_large(end - start));
    }
    let context = decode::<CallContext>(&body[start..end])?;
    body.truncate(args_len);
    Ok(context)
}

fn too_large(len: usize) -> ProtocolError {
    ProtocolError::InvalidPayload(format!(
        "call context of {len} bytes exceeds MAX_CONTEXT_LEN ({MAX_CONTEXT_LEN} bytes): send fewer or shorter entries"
    ))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{
        codec::Bytes,
        frame::{FrameHeader, Kind},
    };

    fn header() -> FrameHeader {
        FrameHeader::new(Kind::Call, 0).with_flags(FLAG_CONTEXT)
    }

    #[test]
    fn a_trailer_pointing_past_the_body_is_refused() {
        let mut body = Bytes::new();
        body.extend_from_slice(&[0; 16]);
        body.extend_from_slice(&1000u32.to_le_bytes());
        let mut body = Received::Aligned(body);
        assert!(matches!(
            split_context(&header(), &mut body),
            Err(ProtocolError::InvalidPayload(_))
        ));
        let mut short = Bytes::new();
        short.extend_from_slice(&[1, 2]);
        let mut short = Received::Aligned(short);
        assert!(split_context(&header(), &mut short).is_err());
    }

    #[test]
    fn a_context_above_the_limit_is_refused_both_ways() {
        let big = CallContext::new().with_entry("k", "v".repeat(MAX_CONTEXT_LEN));
        let mut args = Body::encode(&()).unwrap();
        assert!(append_context(&mut args, &big).is_err());
        // built by hand, as a hostile peer would
        let archive = encode(&big).unwrap();
        let mut body = Bytes::new();
        body.extend_from_slice(&archive);
        body.extend_from_slice(&0u32.to_le_bytes());
        let mut body = Received::Aligned(body);
        assert!(matches!(
            split_context(&header(), &mut body),
            Err(ProtocolError::InvalidPayload(message)) if message.contains("MAX_CONTEXT_LEN")
        ));
    }

    #[test]
    fn without_the_flag_the_body_is_left_alone() {
        let mut body = Received::Aligned(encode(&(1u8,)).unwrap());
        let before = body.to_vec();
        let plain = FrameHeader::new(Kind::Call, 0);
        assert_eq!(split_context(&plain, &mut body), Ok(None));
        assert_eq!(body.to_vec(), before);
    }
}
