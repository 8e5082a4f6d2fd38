//! The server's push stream: state batches (and the shutdown notice), in order.

use std::sync::Arc;

use hardlight_core::{
    codec::encode,
    frame::{FrameHeader, Kind},
    message::encode_frame,
    ConnectionState,
};
use quinn::SendStream;
use tokio::sync::watch;
use tracing::{debug, warn};

use crate::{connection::Session, state_handle::StateHandle};

/// Writes coalesced state batches as they become pending, and `GoAway` once shutdown
/// starts. Returns when the stream fails (the client went away).
///
/// Memory stays bounded while the client is slow to read: pending state holds at most one
/// value per field, and only one frame is in the writer at a time.
pub(crate) async fn push_loop<S: ConnectionState>(
    mut push: SendStream,
    state: StateHandle<S>,
    session: Arc<Session>,
    mut go_away: watch::Receiver<bool>,
) {
    let mut told = false;
    loop {
        let frame = tokio::select! {
            (version, batch) = state.next_batch() => {
                let frame = encode(&batch).and_then(|body| {
                    encode_frame(FrameHeader::new(Kind::State, 0).with_seq(version), &body, session.compression)
                });
                match frame {
                    Ok(frame) => frame,
                    Err(error) => {
                        warn!(%error, "state batch not sent");
                        continue;
                    }
                }
            }
            Ok(_) = go_away.wait_for(|shutting_down| *shutting_down), if !told => {
                told = true;
                FrameHeader::new(Kind::GoAway, 0).encode().to_vec()
            }
        };
        if let Err(error) = push.write_all(&frame).await {
            return debug!(%error, "push stream closed");
        }
    }
}
