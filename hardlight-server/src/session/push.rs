//! The push stream: state batches, events, losses and the shutdown notice, in order, to
//! whichever transport carries them.

use std::{future::Future, sync::Arc};

use bytes::Bytes;
use hardlight_core::{
    codec::encode,
    frame::{FrameHeader, Kind},
    message::encode_frame,
    state::StateBatch,
    ConnectionState, ProtocolError,
};
use tokio::sync::watch;
use tracing::{debug, warn};

use super::Session;
use crate::{state_handle::StateHandle, topics::Outbox};

/// Events written per batch.
const EVENTS_PER_WRITE: usize = 64;

/// Where push frames go: a QUIC unidirectional stream or the WebSocket writer.
pub(crate) trait PushSink: Send {
    /// Writes frames in order; `false` once the peer is gone.
    fn write(&mut self, frames: Vec<Bytes>) -> impl Future<Output = bool> + Send;
    /// Ends the connection of a client that overflowed its event queue.
    fn disconnect_slow_consumer(&mut self);
}

/// Writes coalesced state batches as they become pending (first), queued events with any
/// loss count before them, and `GoAway` once shutdown starts. Returns when the sink fails
/// or the client overflowed its event queue under the `Disconnect` policy.
///
/// Memory stays bounded while the client is slow to read: pending state holds at most one
/// value per field, the outbox at most `max_queued_events`, and one batch is in the writer.
pub(crate) async fn push_loop<S: ConnectionState, P: PushSink>(
    mut sink: P,
    state: StateHandle<S>,
    outbox: Arc<Outbox>,
    session: Arc<Session>,
    mut go_away: watch::Receiver<bool>,
) {
    let compressed = session.compression_negotiated();
    let mut told = false;
    loop {
        let mut frames: Vec<Bytes> = Vec::new();
        tokio::select! {
            biased;
            (version, batch) = state.next_batch() => match state_frame(version, &batch, &session) {
                Ok(frame) => frames.push(frame.into()),
                Err(error) => warn!(%error, "state batch not sent"),
            },
            Ok(_) = go_away.wait_for(|shutting_down| *shutting_down), if !told => {
                told = true;
                frames.push(Bytes::copy_from_slice(&FrameHeader::new(Kind::GoAway, 0).encode()));
            }
            taken = outbox.take(EVENTS_PER_WRITE) => {
                if taken.overflowed {
                    debug!("event queue overflowed; disconnecting the slow client");
                    return sink.disconnect_slow_consumer();
                }
                if taken.lost > 0 {
                    let lagged = FrameHeader::new(Kind::Lagged, 0).with_id(taken.lost);
                    frames.push(Bytes::copy_from_slice(&lagged.encode()));
                }
                frames.extend(taken.events.iter().map(|event| event.frame(compressed)));
            }
        }
        session.meter.sent(frames.iter().map(Bytes::len).sum());
        // a client that stops reading blocks this write: the overflow must still be seen
        tokio::select! {
            written = sink.write(frames) => if !written {
                return debug!("push stream closed");
            },
            () = outbox.overflowed() => {
                debug!("event queue overflowed; disconnecting the slow client");
                return sink.disconnect_slow_consumer();
            }
        }
    }
}

fn state_frame(
    version: u64,
    batch: &StateBatch,
    session: &Session,
) -> Result<Vec<u8>, ProtocolError> {
    let body = encode(batch)?;
    encode_frame(
        FrameHeader::new(Kind::State, 0).with_seq(version),
        &body,
        session.compression,
    )
}
