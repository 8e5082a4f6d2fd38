//! One push item as every subscriber receives it: an event, serialized once and framed (and
//! compressed) at most once per variant, a gap notice, or a durable event's delivery.

#[cfg(feature = "nats")]
use std::sync::Arc;
use std::sync::OnceLock;

use bytes::Bytes;
#[cfg(feature = "nats")]
use hardlight_core::{codec, ProtocolError, Topic};
use hardlight_core::{
    frame::{FrameHeader, Kind},
    message::encode_frame,
    Compression,
};

use crate::memory_budget::Charge;
#[cfg(feature = "nats")]
use crate::memory_budget::MemoryBudget;

/// An event (or a gap notice) as every subscriber will receive it, charged to the server's
/// memory budget until the last queue or replay window lets go of it.
#[derive(Debug)]
pub(crate) struct EncodedEvent {
    kind: Kind,
    /// The frame header's `aux` and `id` (a durable event's slot and seq).
    aux: u16,
    id: u64,
    body: Bytes,
    compression: Compression,
    plain: OnceLock<Bytes>,
    compressed: OnceLock<Bytes>,
    charge: Charge,
}

impl EncodedEvent {
    /// An event whose body, an archived `(Topic, E)`, `charge` holds; the frames made from
    /// it are added when made.
    pub(crate) fn event(body: Bytes, compression: Compression, charge: Charge) -> Self {
        Self {
            kind: Kind::Event,
            aux: 0,
            id: 0,
            body,
            compression,
            plain: OnceLock::new(),
            compressed: OnceLock::new(),
            charge,
        }
    }

    /// A gap notice for `topic`: events of it may be missing at this point of the stream.
    /// Charged to `memory` without a check, so that a notice of loss is never itself lost
    /// to the budget; what gaps hold is bounded by the subscribers' queues
    /// (`max_queued_events`), and a run of losses on one topic is one gap.
    #[cfg(feature = "nats")]
    pub(crate) fn gap(topic: &Topic, memory: &Arc<MemoryBudget>) -> Result<Self, ProtocolError> {
        let body = Bytes::from_owner(codec::encode(topic)?);
        let charge = memory.charge_unchecked(body.len() as u64);
        Ok(Self {
            kind: Kind::Gap,
            aux: 0,
            id: 0,
            body,
            compression: Compression::None,
            plain: OnceLock::new(),
            compressed: OnceLock::new(),
            charge,
        })
    }

    /// One delivery of a durable event, an archived `Delivery`, to the consumer in `slot`.
    pub(crate) fn durable(
        slot: u16,
        seq: u64,
        body: Bytes,
        compression: Compression,
        charge: Charge,
    ) -> Self {
        Self {
            kind: Kind::Durable,
            aux: slot,
            id: seq,
            body,
            compression,
            plain: OnceLock::new(),
            compressed: OnceLock::new(),
            charge,
        }
    }

    /// The serialized body's size, what a queue counts it as.
    pub(crate) fn size(&self) -> usize {
        self.body.len()
    }

    /// The serialized body, shared.
    #[cfg(feature = "nats")]
    pub(crate) fn body(&self) -> &Bytes {
        &self.body
    }

    /// The event as the `seq`-th unreliable event of a connection that negotiated
    /// `compressed` (or not): its frame, as an `Unreliable` frame numbered `seq`.
    pub(crate) fn unreliable_frame(&self, compressed: bool, seq: u64) -> Bytes {
        let mut frame = self.frame(compressed).to_vec();
        if let Some(kind) = frame.get_mut(4) {
            *kind = Kind::Unreliable as u8;
        }
        FrameHeader::set_id(&mut frame, seq);
        frame.into()
    }

    /// The frame for a connection that negotiated `compressed` (or not).
    pub(crate) fn frame(&self, compressed: bool) -> Bytes {
        let (cell, compression) = if compressed {
            (&self.compressed, self.compression)
        } else {
            (&self.plain, Compression::None)
        };
        cell.get_or_init(|| {
            let frame = encode_frame(
                FrameHeader::new(self.kind, 0)
                    .with_aux(self.aux)
                    .with_id(self.id),
                &self.body,
                compression,
            )
            .map(Bytes::from)
            .unwrap_or_default();
            self.charge.add(frame.len() as u64);
            frame
        })
        .clone()
    }
}
