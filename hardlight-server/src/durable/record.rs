//! The stored forms of an event and of a consumer's progress: small fixed layouts,
//! little-endian, read back with every length checked.
//!
//! ```text
//! event:    expires_at u64 (ms since the Unix epoch, 0 = never) | id_len u16 | id | event
//! consumer: delivered u64 | pending_len u32 | (seq u64, attempts u32) × pending_len
//! ```

use std::collections::BTreeMap;

use super::error::StoreError;

/// A stored event, as read back.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct StoredEvent {
    /// Its number in its topic.
    pub(crate) seq: u64,
    /// The emitter's id, if any.
    pub(crate) id: Option<String>,
    /// When it expires, in ms since the Unix epoch; 0 = never.
    pub(crate) expires_at: u64,
    /// The archived event.
    pub(crate) event: Vec<u8>,
}

impl StoredEvent {
    /// Whether it has expired at `now` (ms since the Unix epoch).
    pub(crate) fn expired(&self, now: u64) -> bool {
        self.expires_at != 0 && self.expires_at <= now
    }
}

/// Encodes an event record (without its sequence number, which is the key's).
pub(crate) fn encode_event(id: Option<&str>, expires_at: u64, event: &[u8]) -> Vec<u8> {
    let id = id.unwrap_or_default().as_bytes();
    let mut out = Vec::with_capacity(10 + id.len() + event.len());
    out.extend_from_slice(&expires_at.to_le_bytes());
    // ids are bounded well below 64 KiB by `EmitOptions::with_id`
    out.extend_from_slice(&(id.len() as u16).to_le_bytes());
    out.extend_from_slice(id);
    out.extend_from_slice(event);
    out
}

/// Decodes the event record stored under `seq`.
pub(crate) fn decode_event(seq: u64, bytes: &[u8]) -> Result<StoredEvent, StoreError> {
    let corrupt = || StoreError::Corrupt("event");
    let (expires_at, rest) = take_u64(bytes).ok_or_else(corrupt)?;
    let (len, rest) = rest.split_first_chunk::<2>().ok_or_else(corrupt)?;
    let len = usize::from(u16::from_le_bytes(*len));
    let (id, event) = rest.split_at_checked(len).ok_or_else(corrupt)?;
    let id = std::str::from_utf8(id).map_err(|_| corrupt())?;
    Ok(StoredEvent {
        seq,
        id: (!id.is_empty()).then(|| id.to_owned()),
        expires_at,
        event: event.to_vec(),
    })
}

/// When a stored event expires, read from its record.
pub(crate) fn event_expiry(bytes: &[u8]) -> u64 {
    take_u64(bytes).map_or(0, |(expires_at, _)| expires_at)
}

/// A consumer's progress as stored: every event up to `delivered` was delivered, and
/// those in `pending` (with their delivery attempts so far) are not acked yet.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct ConsumerRecord {
    pub(crate) delivered: u64,
    pub(crate) pending: BTreeMap<u64, u32>,
}

impl ConsumerRecord {
    /// The ack floor: every event up to it is acked (or was skipped, expired or
    /// dead-lettered).
    pub(crate) fn floor(&self) -> u64 {
        self.pending
            .keys()
            .next()
            .map_or(self.delivered, |first| first - 1)
    }

    pub(crate) fn encode(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(12 + 12 * self.pending.len());
        out.extend_from_slice(&self.delivered.to_le_bytes());
        out.extend_from_slice(&(self.pending.len() as u32).to_le_bytes());
        for (seq, attempts) in &self.pending {
            out.extend_from_slice(&seq.to_le_bytes());
            out.extend_from_slice(&attempts.to_le_bytes());
        }
        out
    }

    pub(crate) fn decode(bytes: &[u8]) -> Result<Self, StoreError> {
        let corrupt = || StoreError::Corrupt("consumer");
        let (delivered, rest) = take_u64(bytes).ok_or_else(corrupt)?;
        let (len, mut rest) = rest.split_first_chunk::<4>().ok_or_else(corrupt)?;
        let mut pending = BTreeMap::new();
        for _ in 0..u32::from_le_bytes(*len) {
            let (seq, after) = take_u64(rest).ok_or_else(corrupt)?;
            let (attempts, after) = after.split_first_chunk::<4>().ok_or_else(corrupt)?;
            pending.insert(seq, u32::from_le_bytes(*attempts));
            rest = after;
        }
        Ok(Self { delivered, pending })
    }
}

fn take_u64(bytes: &[u8]) -> Option<(u64, &[u8])> {
    let (head, rest) = bytes.split_first_chunk::<8>()?;
    Some((u64::from_le_bytes(*head), rest))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn records_round_trip_and_truncations_are_refused() {
        let bytes = encode_event(Some("order-7"), 99, b"payload");
        let event = decode_event(3, &bytes).unwrap();
        assert_eq!(event.id.as_deref(), Some("order-7"));
        assert_eq!(
            (event.seq, event.expires_at, &event.event[..]),
            (3, 99, &b"payload"[..])
        );
        assert_eq!(event_expiry(&bytes), 99);
        assert!(decode_event(3, &bytes[..9]).is_err());
        assert_eq!(
            decode_event(1, &encode_event(None, 0, b"")).unwrap().id,
            None
        );

        let record = ConsumerRecord {
            delivered: 10,
            pending: BTreeMap::from([(7, 2), (9, 1)]),
        };
        assert_eq!(ConsumerRecord::decode(&record.encode()).unwrap(), record);
        assert_eq!(record.floor(), 6);
        assert!(ConsumerRecord::decode(&record.encode()[..15]).is_err());
        assert_eq!(ConsumerRecord::default().floor(), 0);
    }
}
