//! Running one call: its arguments opened, the handler run (panics caught, cancellation
//! honoured) and the outcome framed as a reply.

use std::{future::Future, panic::AssertUnwindSafe, sync::Arc};

use futures_util::FutureExt;
use hardlight_core::{
    codec::{encode, Bytes},
    frame::{FrameHeader, Kind},
    message::{encode_frame, open_aligned_body},
    ErrorCode, Outcome, ProtocolError, Service,
};
use tokio::sync::OwnedSemaphorePermit;
use tracing::{debug, Instrument};

use super::CallContext;
use crate::handler::RpcHandler;

/// A call ready to run: its header, its body as received (aligned, maybe compressed), and
/// the share of the connection's byte budget it holds until the handler finishes.
pub(crate) struct Call {
    pub(crate) header: FrameHeader,
    raw: Bytes,
    _budget: OwnedSemaphorePermit,
}

/// Reserves `header.body_len` bytes of the connection's budget for a call (waiting for
/// earlier calls to release theirs if needed). Cancel-safe: dropped before it completes,
/// it holds nothing.
pub(crate) async fn reserve(
    context: &CallContext,
    header: &FrameHeader,
) -> Result<OwnedSemaphorePermit, ProtocolError> {
    Arc::clone(&context.budget)
        .acquire_many_owned(header.body_len)
        .await
        .map_err(|_| ProtocolError::Malformed)
}

impl Call {
    /// A received `Call` frame; its body is opened only once the call is admitted.
    pub(crate) fn open(
        header: FrameHeader,
        raw: Bytes,
        budget: OwnedSemaphorePermit,
    ) -> Result<Self, ProtocolError> {
        if header.kind != Kind::Call {
            return Err(ProtocolError::UnexpectedKind {
                expected: "Call",
                got: header.kind.name(),
            });
        }
        Ok(Self {
            header,
            raw,
            _budget: budget,
        })
    }

    /// Runs the handler, catching a panic, if the rate limit admits the call — checked
    /// before the body is decompressed or validated, so that refused calls cost no more
    /// than their reading. Returns `None` if `cancelled` completes first, in which case
    /// the handler future has been dropped.
    pub(crate) async fn run<H: RpcHandler>(
        self,
        handler: Arc<H>,
        context: &CallContext,
        cancelled: impl Future,
    ) -> Option<Outcome> {
        let Self {
            header,
            raw,
            _budget,
        } = self;
        if let Err(refused) = context.admit_call() {
            return Some(refused);
        }
        let args = match open_aligned_body(
            &header,
            raw,
            context.compression_negotiated(),
            context.limits.max_message_size(),
        ) {
            Ok(args) => args,
            Err(error) => return Some(refusal(&error)),
        };
        let span = tracing::debug_span!(
            "call",
            id = header.id,
            method = <H::Service as Service>::method_name(header.aux)
        );
        let mut running = Running::start(context);
        let dispatch = AssertUnwindSafe(handler.dispatch(header.aux, args)).catch_unwind();
        let outcome = async {
            tokio::select! {
                result = dispatch => Some(result.unwrap_or_else(|panic| {
                    let message = panic_message(panic.as_ref());
                    tracing::warn!(%message, "handler panicked");
                    Outcome::Failure(ErrorCode::HandlerPanicked, message)
                })),
                _ = cancelled => {
                    debug!("call cancelled by the client");
                    None
                }
            }
        }
        .instrument(span)
        .await;
        running.failed = matches!(outcome, Some(Outcome::Failure(..)));
        outcome
    }
}

/// A call counted as running until dropped: also when its task is aborted (cancelled by
/// the client, or at a shutdown deadline) before the handler returns.
struct Running<'a> {
    context: &'a CallContext,
    failed: bool,
}

impl<'a> Running<'a> {
    fn start(context: &'a CallContext) -> Self {
        context.meter.call_started();
        Self {
            context,
            failed: false,
        }
    }
}

impl Drop for Running<'_> {
    fn drop(&mut self) {
        self.context.meter.call_finished(self.failed);
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
pub(crate) fn reply_frame(id: u64, seq: u64, outcome: Outcome, context: &CallContext) -> Vec<u8> {
    let (header, body) = match outcome {
        Outcome::Ok(body) => (FrameHeader::new(Kind::ReplyOk, 0), body),
        Outcome::HandlerError(body) => (FrameHeader::new(Kind::ReplyHandlerError, 0), body),
        Outcome::Failure(code, message) => failure_parts(code, &message),
    };
    let header = header.with_id(id).with_seq(seq);
    let frame = encode_frame(header, &body, context.compression).unwrap_or_else(|error| {
        let (header, body) = failure_parts(ErrorCode::Internal, &error.to_string());
        // a failure frame carries a short message: it always fits a frame
        encode_frame(header.with_id(id).with_seq(seq), &body, context.compression)
            .unwrap_or_default()
    });
    context.meter.sent(frame.len());
    frame
}

/// The outcome for a call refused because of `error` in its frame.
pub(crate) fn refusal(error: &ProtocolError) -> Outcome {
    Outcome::Failure(error.code(), error.to_string())
}

fn failure_parts(code: ErrorCode, message: &str) -> (FrameHeader, Bytes) {
    let body = encode(&message.to_owned()).unwrap_or_default();
    (
        FrameHeader::new(Kind::ReplyFailure, 0).with_aux(code.to_u16()),
        body,
    )
}
