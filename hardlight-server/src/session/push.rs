//! The push stream: state batches, events, losses and the shutdown notice, in order, to
//! whichever transport carries them.

use std::{future::Future, sync::Arc};

use bytes::Bytes;
use hardlight_core::{
    codec::encode,
    frame::{FrameHeader, Kind},
    message::encode_frame,
    state::StateBatch,
    wait::WaitLimit,
    ConnectionState, ProtocolError,
};
use tokio::sync::watch;
use tracing::{debug, warn};

use super::CallEnv;
use crate::{state_handle::StateHandle, topics::Outbox};

/// Events taken from the outbox per write: a subscriber behind a burst catches up in few
/// writes (each one a flush), and one write still holds a bounded share of what the
/// outbox may queue (`max_queued_events`, 1,024 by default).
const EVENTS_PER_WRITE: usize = 256;

/// Where push frames go: a QUIC unidirectional stream or the WebSocket writer.
pub(crate) trait PushSink: Send {
    /// Writes frames in order; `false` once the peer is gone.
    fn write(&mut self, frames: Vec<Bytes>) -> impl Future<Output = bool> + Send;

    /// Where unreliable events go as datagrams, if the client takes them.
    fn datagrams(&self) -> Option<crate::quic::Datagrams> {
        None
    }
}

/// Stops unreliable events going to the connection once its push loop ends.
struct Detach<'a>(&'a Outbox);

impl Drop for Detach<'_> {
    fn drop(&mut self) {
        self.0.detach();
    }
}

/// Why the push loop ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum PushEnd {
    /// The connection is gone.
    Gone,
    /// The client's event queue overflowed under [`SlowConsumerPolicy::Disconnect`].
    ///
    /// [`SlowConsumerPolicy::Disconnect`]: crate::SlowConsumerPolicy::Disconnect
    SlowConsumer,
    /// A write took longer than `Limits::send_timeout`: the client stopped reading.
    Stalled,
}

/// Writes coalesced state batches as they become pending (first), queued events with any
/// loss count before them, and `GoAway` once shutdown starts, until the sink fails, a
/// write stalls past `Limits::send_timeout`, or the client overflows its event queue
/// under the `Disconnect` policy.
///
/// Memory stays bounded while the client is slow to read: pending state holds at most one
/// value per field, the outbox at most `max_queued_events`, and one batch is in the writer.
pub(crate) async fn push_loop<S: ConnectionState, P: PushSink>(
    mut sink: P,
    state: StateHandle<S>,
    outbox: Arc<Outbox>,
    context: Arc<CallEnv>,
    mut go_away: watch::Receiver<bool>,
) -> PushEnd {
    let compressed = context.compression_negotiated();
    let mut send_limit = WaitLimit::new(context.limits.send_timeout());
    outbox.attach(sink.datagrams(), compressed);
    let _detach = Detach(&outbox);
    let mut told = false;
    loop {
        let mut frames: Vec<Bytes> = Vec::new();
        tokio::select! {
            biased;
            (version, batch) = state.next_batch() => match state_frame(version, &batch, &context) {
                Ok(frame) => frames.push(frame.into()),
                Err(error) => warn!(%error, "state batch not sent"),
            },
            Ok(_) = go_away.wait_for(|shutting_down| *shutting_down), if !told => {
                told = true;
                frames.push(Bytes::copy_from_slice(&FrameHeader::new(Kind::GoAway, 0).encode()));
            }
            taken = outbox.take(EVENTS_PER_WRITE) => {
                if taken.overflowed {
                    return PushEnd::SlowConsumer;
                }
                if taken.lost > 0 {
                    let lagged = FrameHeader::new(Kind::Lagged, 0).with_id(taken.lost);
                    frames.push(Bytes::copy_from_slice(&lagged.encode()));
                }
                frames.extend(taken.events.iter().map(|event| event.frame(compressed)));
                if let Some((seq, event)) = taken.unreliable {
                    frames.push(event.unreliable_frame(compressed, seq));
                    outbox.unreliable_inline();
                }
            }
        }
        context.meter.sent(frames.iter().map(Bytes::len).sum());
        // a client that stops reading blocks this write: the overflow must still be seen
        tokio::select! {
            written = send_limit.run(sink.write(frames)) => match written {
                Some(true) => {}
                Some(false) => {
                    debug!("push stream closed");
                    return PushEnd::Gone;
                }
                None => return PushEnd::Stalled,
            },
            () = outbox.overflowed() => return PushEnd::SlowConsumer,
        }
    }
}

fn state_frame(
    version: u64,
    batch: &StateBatch,
    context: &CallEnv,
) -> Result<Vec<u8>, ProtocolError> {
    let body = encode(batch)?;
    encode_frame(
        FrameHeader::new(Kind::State, 0).with_seq(version),
        &body,
        context.compression,
    )
}
