//! A QUIC connection as a [`Link`]: the handshake on the first bidirectional stream, one
//! bidirectional stream per call, a server-opened unidirectional push stream.

use std::{sync::Arc, time::Duration};

use bytes::Bytes as Shared;
use hardlight_core::{
    close::Close,
    codec::Bytes,
    decoder::FrameDecoder,
    frame::{FrameHeader, HEADER_LEN},
    io::{read_frame, read_header, read_rest},
    ErrorCode, ProtocolError,
};
use quinn::{Connection, ConnectionError, RecvStream, SendStream, VarInt};
use tokio::time::{timeout, timeout_at, Instant};

use crate::{
    connection::{CallIo, Ended, Incoming, Link, NoHello},
    session::{
        dispatch::{reserve, Call, Reservation, Unread},
        push::PushSink,
        CallContext,
    },
};

/// How long a rejected client gets to read its `Reject` before the connection closes.
const REJECT_LINGER: Duration = Duration::from_secs(2);

/// One QUIC connection after its TLS handshake.
pub(crate) struct QuicLink {
    conn: Connection,
    /// The handshake stream's sending half, until the answer is written.
    answer: Option<SendStream>,
    send_timeout: Duration,
}

impl QuicLink {
    pub(crate) fn new(conn: Connection, send_timeout: Duration) -> Self {
        Self {
            conn,
            answer: None,
            send_timeout,
        }
    }

    async fn answer(&mut self, frame: &[u8]) -> Option<SendStream> {
        let mut send = self.answer.take()?;
        timeout(self.send_timeout, send.write_all(frame))
            .await
            .ok()?
            .ok()?;
        send.finish().ok()?;
        Some(send)
    }
}

fn code(close: Close) -> VarInt {
    VarInt::from_u32(close.quic_code())
}

impl Link for QuicLink {
    type Call = QuicCall;
    type Push = QuicPush;

    async fn hello(&mut self, max: u32) -> Result<(FrameHeader, Bytes), NoHello> {
        let (send, mut recv) = self.conn.accept_bi().await.map_err(|_| NoHello::Gone)?;
        self.answer = Some(send);
        read_frame(&mut recv, max)
            .await
            .map_err(|e| NoHello::Invalid(format!("handshake: {e}")))
    }

    async fn welcome(&mut self, frame: Vec<u8>) -> bool {
        self.answer(&frame).await.is_some()
    }

    async fn reject(&mut self, frame: Vec<u8>, reason: &str) {
        // wait (briefly) until the client has the reason, then close
        if let Some(send) = self.answer(&frame).await {
            let _ = timeout(REJECT_LINGER, send.stopped()).await;
        }
        self.close(Close::Rejected, reason);
    }

    async fn open_push(&mut self) -> Option<QuicPush> {
        self.conn
            .open_uni()
            .await
            .ok()
            .map(|stream| QuicPush { stream })
    }

    async fn next(&mut self, _context: &CallContext) -> Incoming<QuicCall> {
        match self.conn.accept_bi().await {
            Ok((send, recv)) => Incoming::Call(QuicCall {
                send,
                recv,
                send_timeout: self.send_timeout,
            }),
            Err(error) => {
                tracing::debug!(%error, "connection ended");
                Incoming::Ended(ended(&error))
            }
        }
    }

    fn close(&mut self, close: Close, reason: &str) {
        self.conn.close(code(close), reason.as_bytes());
    }

    async fn finish(self, _ended: Ended) {}
}

/// Whether a connection that failed with `error` was lost (so its session is kept for
/// resumption) rather than closed on purpose by either side.
fn ended(error: &ConnectionError) -> Ended {
    match error {
        ConnectionError::ApplicationClosed(_) | ConnectionError::LocallyClosed => Ended::Closed,
        _ => Ended::Lost,
    }
}

/// One call: a bidirectional stream carrying one `Call` frame in and the reply out.
pub(crate) struct QuicCall {
    send: SendStream,
    recv: RecvStream,
    send_timeout: Duration,
}

impl QuicCall {
    /// The call frame did not arrive within `limit`: the peer is told to stop sending it,
    /// and the call fails with `FrameTimeout`.
    fn late(&mut self, limit: Duration) -> Unread {
        self.stop(ErrorCode::FrameTimeout);
        ProtocolError::FrameTimeout { limit }.into()
    }

    /// The call's body is not read: the peer is told to stop sending it, with `code`.
    fn stop(&mut self, code: ErrorCode) {
        let _ = self.recv.stop(VarInt::from_u32(code.to_u16().into()));
    }
}

impl CallIo for QuicCall {
    fn id(&self) -> Option<u64> {
        None
    }

    async fn read(&mut self, context: &CallContext) -> Result<Call, Unread> {
        let limit = context.limits.frame_read_timeout();
        let mut deadline = Instant::now() + limit;
        let mut decoder = FrameDecoder::new(context.limits.max_message_size());
        let header = timeout_at(deadline, read_header(&mut self.recv, &mut decoder))
            .await
            .map_err(|_| self.late(limit))??;
        context
            .meter
            .received(HEADER_LEN + header.body_len as usize);
        let reserved = match Arc::clone(&context.budget).try_acquire_many_owned(header.body_len) {
            Ok(share) => Reservation::new(share, context).map_err(Unread::Overloaded),
            Err(_) => {
                // the wait for the budget is the server's, not the peer's
                let waiting = Instant::now();
                let reserved = reserve(context, &header).await;
                deadline += waiting.elapsed();
                reserved
            }
        };
        let reserved = reserved.inspect_err(|unread| {
            if matches!(unread, Unread::Overloaded(_)) {
                self.stop(ErrorCode::Overloaded);
            }
        })?;
        let (header, raw) = timeout_at(deadline, read_rest(&mut self.recv, &mut decoder))
            .await
            .map_err(|_| self.late(limit))??;
        Ok(Call::open(header, raw, reserved)?)
    }

    async fn abandoned(&mut self) {
        let _ = self.send.stopped().await;
    }

    async fn reply(mut self, frame: Vec<u8>) {
        if let Ok(Ok(())) = timeout(self.send_timeout, self.send.write_all(&frame)).await {
            let _ = self.send.finish();
        }
    }
}

/// The push stream.
pub(crate) struct QuicPush {
    stream: SendStream,
}

impl PushSink for QuicPush {
    async fn write(&mut self, mut frames: Vec<Shared>) -> bool {
        self.stream.write_all_chunks(&mut frames).await.is_ok()
    }
}
