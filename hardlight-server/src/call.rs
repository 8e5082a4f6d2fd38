//! Serving one call: a bidirectional stream carrying one `Call` frame in and the reply out.

use std::{panic::AssertUnwindSafe, sync::Arc};

use futures_util::FutureExt;
use hardlight_core::{
    codec::encode,
    frame::{FrameHeader, Kind},
    io::{read_body, read_header, ReadError},
    message::{encode_frame, open_aligned_body},
    ErrorCode, Outcome, ProtocolError, Service,
};
use quinn::{RecvStream, SendStream};
use tokio::sync::Semaphore;
use tracing::{debug, Instrument};

use crate::{
    connection::Session,
    handler::{Handler, StateOf},
    state_handle::StateHandle,
};

/// Serves one call stream to completion. Never panics on peer input: every failure becomes
/// a `ReplyFailure` frame, except a reset by the peer, which ends the call silently.
pub(crate) async fn serve_call<H: Handler>(
    handler: Arc<H>,
    state: StateHandle<StateOf<H>>,
    session: Arc<Session>,
    mut send: SendStream,
    mut recv: RecvStream,
) {
    let (id, outcome) = match read_call(&session, &mut recv).await {
        Ok(call) => {
            let id = call.header.id;
            let method = call.header.aux;
            let name = H::Service::method_name(method);
            let span = tracing::debug_span!("call", id, method = name);
            let run = run_handler(handler, call, &send).instrument(span);
            match run.await {
                Some(outcome) => (id, outcome),
                None => return,
            }
        }
        Err(ReadError::Io(error)) => {
            debug!(%error, "call stream failed before the call was read");
            return;
        }
        Err(ReadError::Finished) => (
            0,
            Outcome::Failure(ErrorCode::Malformed, "call stream carried no frame".into()),
        ),
        Err(ReadError::Protocol(error)) => {
            debug!(%error, "rejected call frame");
            (0, Outcome::Failure(error.code(), error.to_string()))
        }
    };
    let frame = reply_frame(id, state.version(), outcome, &session);
    if send.write_all(&frame).await.is_ok() {
        let _ = send.finish();
    }
}

struct Call {
    header: FrameHeader,
    args: hardlight_core::codec::Bytes,
    _budget: tokio::sync::OwnedSemaphorePermit,
}

async fn read_call(session: &Session, recv: &mut RecvStream) -> Result<Call, ReadError> {
    let max = session.limits.max_message_size;
    let header = read_header(recv, max).await?;
    if header.kind != Kind::Call {
        return Err(ProtocolError::UnexpectedKind {
            expected: "Call",
            got: header.kind.name(),
        }
        .into());
    }
    let budget = Arc::clone(&session.budget)
        .acquire_many_owned(header.body_len)
        .await
        .map_err(|_| ProtocolError::Malformed)?;
    let raw = read_body(recv, &header).await?;
    let args = open_aligned_body(&header, raw, session.compression_negotiated(), max)?;
    Ok(Call {
        header,
        args,
        _budget: budget,
    })
}

/// Runs the handler, catching a panic; `None` if the client cancelled (stopped the stream),
/// in which case the handler future has been dropped.
async fn run_handler<H: Handler>(
    handler: Arc<H>,
    call: Call,
    send: &SendStream,
) -> Option<Outcome> {
    let Call {
        header,
        args,
        _budget,
    } = call;
    let dispatch = AssertUnwindSafe(handler.dispatch(header.aux, args)).catch_unwind();
    tokio::select! {
        result = dispatch => Some(result.unwrap_or_else(|panic| {
            let message = panic_message(panic.as_ref());
            tracing::warn!(%message, "handler panicked");
            Outcome::Failure(ErrorCode::HandlerPanicked, message)
        })),
        _ = send.stopped() => {
            debug!("call cancelled by the client");
            None
        }
    }
}

fn panic_message(panic: &(dyn std::any::Any + Send)) -> String {
    panic
        .downcast_ref::<&str>()
        .map(|s| (*s).to_owned())
        .or_else(|| panic.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "handler panicked".into())
}

/// Frames an outcome as the reply to call `id`, tagged with state version `seq`.
pub(crate) fn reply_frame(id: u64, seq: u64, outcome: Outcome, session: &Session) -> Vec<u8> {
    let (header, body) = match outcome {
        Outcome::Ok(body) => (FrameHeader::new(Kind::ReplyOk, 0), body),
        Outcome::HandlerError(body) => (FrameHeader::new(Kind::ReplyHandlerError, 0), body),
        Outcome::Failure(code, message) => failure_parts(code, &message),
    };
    let header = header.with_id(id).with_seq(seq);
    encode_frame(header, &body, session.compression).unwrap_or_else(|error| {
        let (header, body) = failure_parts(ErrorCode::Internal, &error.to_string());
        // A failure frame carries a short message: it always fits a frame.
        encode_frame(header.with_id(id).with_seq(seq), &body, session.compression)
            .unwrap_or_default()
    })
}

fn failure_parts(code: ErrorCode, message: &str) -> (FrameHeader, hardlight_core::codec::Bytes) {
    let body = encode(&message.to_owned()).unwrap_or_default();
    (
        FrameHeader::new(Kind::ReplyFailure, 0).with_aux(code.to_u16()),
        body,
    )
}

/// A fresh per-connection byte budget.
pub(crate) fn budget(bytes: u64) -> Arc<Semaphore> {
    Arc::new(Semaphore::new(
        bytes.min(Semaphore::MAX_PERMITS as u64) as usize
    ))
}
