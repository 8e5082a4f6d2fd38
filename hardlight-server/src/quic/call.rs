//! Serving one call: a bidirectional stream carrying one `Call` frame in and the reply out.

use std::sync::Arc;

use hardlight_core::{
    io::{read_body, read_header, ReadError},
    ErrorCode, Outcome,
};
use quinn::{RecvStream, SendStream};
use tracing::debug;

use crate::{
    handler::{RpcHandler, StateOf},
    session::{
        dispatch::{refusal, reply_frame, reserve, Call},
        Session,
    },
    state_handle::StateHandle,
};

/// Serves one call stream to completion. Never panics on peer input: every failure becomes
/// a `ReplyFailure` frame, except a reset by the peer, which ends the call silently.
pub(crate) async fn serve_call<H: RpcHandler>(
    handler: Arc<H>,
    state: StateHandle<StateOf<H>>,
    session: Arc<Session>,
    mut send: SendStream,
    mut recv: RecvStream,
) {
    let (id, outcome) = match read_call(&session, &mut recv).await {
        Ok(call) => {
            let id = call.header.id;
            match call.run(handler, &session, send.stopped()).await {
                Some(outcome) => (id, outcome),
                None => return,
            }
        }
        Err(ReadError::Io(error)) => {
            return debug!(%error, "call stream failed before the call was read");
        }
        Err(ReadError::Finished) => (
            0,
            Outcome::Failure(ErrorCode::Malformed, "call stream carried no frame".into()),
        ),
        Err(ReadError::Protocol(error)) => {
            debug!(%error, "rejected call frame");
            (0, refusal(&error))
        }
    };
    let frame = reply_frame(id, state.version(), outcome, &session);
    if send.write_all(&frame).await.is_ok() {
        let _ = send.finish();
    }
}

async fn read_call(session: &Session, recv: &mut RecvStream) -> Result<Call, ReadError> {
    let header = read_header(recv, session.limits.max_message_size).await?;
    let budget = reserve(session, &header).await?;
    let raw = read_body(recv, &header).await?;
    Ok(Call::open(session, header, raw, budget)?)
}
