//! Calls multiplexed by id on one ordered channel: a WebSocket connection, or the QUIC
//! call channel (the handshake stream, kept open). `Call`, `Cancel` and `Ack` frames come in;
//! replies (and over WebSocket the pushes) go out through one writer, which writes
//! whatever is queued as one batch: one flush, one stream write, for many replies. The
//! writer is driven by the connection's own task, once the peer has nothing more to read:
//! the replies to calls read together go out together, with no task between a call and
//! its reply.

use std::{
    future::{pending, Future},
    ops::Deref,
    pin::Pin,
    sync::Arc,
    task::{ready, Context, Poll},
    time::Duration,
};

use bytes::Bytes as Shared;
use futures_util::future::join;
use hardlight_core::{
    close::Close,
    frame::{FrameHeader, Kind, FLAG_STREAM, HEADER_LEN},
    message::Framed,
    queue::{queue, Queue, Reader, Refused, Room},
    quota::Closed,
    received::Received,
    stream::{no_items, Inbound},
    wait::WaitLimit,
    Priority, ProtocolError,
};
use tokio::time::timeout;

use super::{
    link::{CallIo, Incoming},
    streams::{Items, Streams, Window},
    Woken,
};
use crate::session::{
    dispatch::{connection_share, Call, Reservation, Unread},
    push::PushSink,
    CallEnv,
};

/// Entries a writer's queue holds beyond a reply for every call the connection may have
/// in flight: a streaming call's items and credits, pushes and keep-alives. The calls read
/// together are served before the writer writes; with room for each one's reply, none of
/// them waits for room (on a task of its own) unless the peer is slow to read.
const QUEUED_BESIDE_REPLIES: usize = 64;

/// What the writer sends.
pub(crate) enum Outgoing {
    /// A reply, a call's item or credit, or the handshake's answer, sent ahead of frames
    /// of lower priority queued at the same time. As built: a small one is copied into
    /// its batch, never made shared.
    Frame(Vec<u8>, Priority),
    /// A reply in pieces, its large blobs sent from where they lie ([`Framed::Pieces`]),
    /// with the same priority as a `Frame`.
    Pieces(Box<[Shared]>, Priority),
    /// Pushed frames (state updates and events), in order.
    Frames(Vec<Shared>),
    /// A keep-alive (WebSocket: the client, or browser, answers with a pong).
    Ping,
    /// The answer to the peer's keep-alive, with its payload (WebSocket).
    Pong(Shared),
    /// The last thing written.
    Close(Close, String),
}

impl Outgoing {
    /// A frame of normal priority.
    pub(crate) fn frame(frame: Vec<u8>) -> Self {
        Self::Frame(frame, Priority::Normal)
    }

    /// A reply of `priority`.
    fn reply(frame: Framed, priority: Priority) -> Self {
        match frame {
            Framed::Whole(frame) => Self::Frame(frame, priority),
            Framed::Pieces(pieces) => Self::Pieces(pieces, priority),
        }
    }

    fn priority(&self) -> Priority {
        match self {
            Self::Frame(_, priority) | Self::Pieces(_, priority) => *priority,
            _ => Priority::Normal,
        }
    }
}

/// What a writer writes into.
pub(crate) trait FrameSink: Send + 'static {
    /// Adds `out` to the batch being written; [`Fed::Closed`] once a close went out.
    fn feed(&mut self, out: Outgoing) -> impl Future<Output = Result<Fed, Broken>> + Send;

    /// Writes out the batch.
    fn flush(&mut self) -> impl Future<Output = Result<(), Broken>> + Send;
}

/// Whether the writer goes on after a write.
pub(crate) enum Fed {
    More,
    /// The close went out: nothing more to write.
    Closed,
}

/// A write failed: the peer is gone or refuses the data.
pub(crate) struct Broken;

/// A connection's writer and the queue in front of it. The link's task drives it
/// ([`Writer::poll_ended`]); others (calls that waited, the push loop) queue frames and
/// wake that task.
pub(crate) struct Writer {
    tx: Queue<Outgoing>,
    /// The write loop; `None` once it ended (a write failed or stalled, or the close went
    /// out).
    writing: Option<Pin<Box<dyn Future<Output = ()> + Send>>>,
    /// Polls the write loop only when it has woken: not at every turn of the link.
    woken: Woken,
    send_timeout: Duration,
}

impl Writer {
    /// A writer into `sink` for a connection of at most `max_calls` calls in flight;
    /// every batch must be written within `send_timeout`, or the writer stops.
    pub(crate) fn start(sink: impl FrameSink, send_timeout: Duration, max_calls: u32) -> Self {
        let (tx, rx) = queue((max_calls as usize).saturating_add(QUEUED_BESIDE_REPLIES));
        Self {
            tx,
            writing: Some(Box::pin(write_loop(sink, rx, send_timeout))),
            woken: Woken::new(),
            send_timeout,
        }
    }

    /// Queues `outgoing`, waiting at most `send_timeout` for room; `false` if the writer
    /// is gone or stalled. Only for a queue with room, or from another task than the
    /// link's: the link's task is what makes room.
    pub(crate) async fn send(&mut self, outgoing: Outgoing) -> bool {
        queue_within(&self.tx, outgoing, self.send_timeout).await
    }

    /// Queues `outgoing` if there is room at once; gives it back if the queue is full,
    /// drops it if the writer is gone.
    pub(crate) fn try_send(&self, outgoing: Outgoing) -> Result<(), Outgoing> {
        match self.tx.try_send(outgoing) {
            Ok(()) | Err(Refused::Closed(_)) => Ok(()),
            Err(Refused::Full(outgoing)) => Err(outgoing),
        }
    }

    /// Where the push loop writes.
    pub(crate) fn push_sink(&self) -> QueuedPush {
        QueuedPush {
            tx: self.tx.clone(),
        }
    }

    /// Writes what is queued; ready when the writer has ended, then never again.
    pub(crate) fn poll_ended(&mut self, cx: &mut Context<'_>) -> Poll<()> {
        let Some(writing) = &mut self.writing else {
            return Poll::Pending;
        };
        if self.tx.unannounced() {
            // replies this task queued ([`CallIo::reply_now`]) without waking it
            self.woken.renew();
        }
        ready!(self.woken.poll(cx, |cx| writing.as_mut().poll(cx)));
        self.writing = None;
        Poll::Ready(())
    }

    /// Writes what is queued, then `last` (a close the queue had no room for when it was
    /// made), until every sender is gone or the writer ends.
    pub(crate) async fn finish(self, last: Option<Outgoing>) {
        let Self { tx, writing, .. } = self;
        let Some(writing) = writing else {
            return;
        };
        let queued = async move {
            if let Some(last) = last {
                // room comes as the writer writes, meanwhile
                let _ = tx.send(last).await;
            }
        };
        join(queued, writing).await;
    }
}

/// Sends queued messages, one batch at a time; a batch that is not written within
/// `send_timeout` ends the writer.
async fn write_loop<W: FrameSink>(mut sink: W, mut rx: Reader<Outgoing>, send_timeout: Duration) {
    let mut limit = WaitLimit::new(send_timeout);
    while let Some(batch) = rx.next_batch().await {
        match limit.run(write_batch(&mut sink, batch)).await {
            Some(Ok(Fed::More)) => {}
            Some(Ok(Fed::Closed)) | Some(Err(Broken)) | None => return,
        }
    }
}

/// Writes what was queued, highest priority first (in the order queued within a
/// priority, so a call's items precede its reply and pushes stay in order), then
/// flushes. This is the connection's send scheduler: frames queued while the last batch
/// was being written go out by priority, so the reply of a high-priority call overtakes
/// the items of a low-priority transfer queued before it.
async fn write_batch<W: FrameSink>(sink: &mut W, batch: &mut Vec<Outgoing>) -> Result<Fed, Broken> {
    if batch.iter().any(|out| out.priority() != Priority::Normal) {
        batch.sort_by_key(|out| std::cmp::Reverse(out.priority()));
    }
    for out in batch.drain(..) {
        if let Fed::Closed = sink.feed(out).await? {
            return Ok(Fed::Closed);
        }
    }
    sink.flush().await?;
    Ok(Fed::More)
}

/// Push frames, queued for the writer.
pub(crate) struct QueuedPush {
    tx: Queue<Outgoing>,
}

impl PushSink for QueuedPush {
    async fn write(&mut self, frames: Vec<Shared>) -> bool {
        self.tx.send(Outgoing::Frames(frames)).await.is_ok()
    }
}

/// The incoming side of a multiplexed channel: frames become calls, each within its
/// share of the connection's byte budget, or cancellations.
pub(crate) struct Demux {
    tx: Queue<Outgoing>,
    send_timeout: Duration,
    /// A call read and waiting for its share of the connection's byte budget; the peer is
    /// not read meanwhile (its transport holds back the rest).
    waiting: Option<(FrameHeader, Received)>,
    /// The streaming calls in flight; `None` where streaming calls go on streams of
    /// their own (the QUIC call channel).
    streams: Option<Streams>,
}

impl Demux {
    /// Calls whose replies go to `writer`; `streams`: whether streaming calls come on
    /// this channel too (WebSocket, in-process) or not (the QUIC call channel).
    pub(crate) fn new(writer: &Writer, streams: bool) -> Self {
        Self {
            tx: writer.tx.clone(),
            send_timeout: writer.send_timeout,
            waiting: None,
            streams: streams.then(Streams::default),
        }
    }

    /// A frame from the peer (its body decoded before the peer is read on, or given a
    /// buffer of its own where it waits longer): a call, a cancellation, a violation, or
    /// `None` when the call waits for its share of the budget ([`Demux::admitted`]).
    pub(crate) fn frame<'e>(
        &mut self,
        header: FrameHeader,
        body: Received,
        context: &'e CallEnv,
    ) -> Option<Incoming<MuxCall<&'e CallEnv>>> {
        match header.kind {
            Kind::Call => {
                // counted received as the call starts ([`CallIo::arrived`]); most calls fit
                // the budget at once; the others wait, and the peer with them
                match context.budget.try_lend(header.body_len) {
                    Ok(Some(lent)) => {
                        let share = Reservation::connection_share(context, lent);
                        Some(Incoming::Call(self.call(header, body, share)))
                    }
                    // the budget is never closed while the connection reads
                    Ok(None) | Err(_) => {
                        self.waiting = Some((header, body));
                        None
                    }
                }
            }
            Kind::Cancel => Some(Incoming::Cancel(header.id)),
            Kind::StreamCredit | Kind::StreamItem | Kind::StreamEnd => {
                let Some(streams) = &self.streams else {
                    return Some(Incoming::Violation(
                        Close::Protocol,
                        format!(
                            "{} on the QUIC call channel: streaming calls have streams of their own",
                            header.kind.name()
                        ),
                    ));
                };
                let routed = match header.kind {
                    Kind::StreamCredit if header.body_len == 0 => {
                        streams.credit(header.id, header.seq)
                    }
                    Kind::StreamEnd if header.body_len == 0 => {
                        streams.end(header.id);
                        Ok(())
                    }
                    Kind::StreamItem => {
                        context
                            .meter
                            .received(HEADER_LEN + header.body_len as usize);
                        if !streams.takes(header.id) {
                            // an item of a call that has ended
                            return None;
                        }
                        match context.budget.try_take(header.body_len) {
                            Ok(Some(share)) => streams.item(header, body.into_aligned(), share),
                            Ok(None) | Err(_) => {
                                self.waiting = Some((header, body));
                                return None;
                            }
                        }
                    }
                    other => Err(format!("{} frame with a body", other.name())),
                };
                routed
                    .err()
                    .map(|reason| Incoming::Violation(Close::Protocol, reason))
            }
            Kind::Ack if header.body_len == 0 => Some(Incoming::Ack {
                slot: header.aux,
                seq: header.id,
            }),
            other => Some(Incoming::Violation(
                Close::Protocol,
                format!("unexpected {} frame from a client", other.name()),
            )),
        }
    }

    /// Whether a call waits for its share of the budget.
    pub(crate) fn is_waiting(&self) -> bool {
        self.waiting.is_some()
    }

    /// Completes when the waiting call, or streaming call's item, has its share
    /// (cancel-safe); pending if none waits. `None` once an item is routed.
    pub(crate) async fn admitted<'e>(
        &mut self,
        context: &'e CallEnv,
    ) -> Option<Incoming<MuxCall<&'e CallEnv>>> {
        let Some((header, _)) = &self.waiting else {
            return pending().await;
        };
        let permit = connection_share(context, header).await;
        let Some((header, body)) = self.waiting.take() else {
            return pending().await;
        };
        let lent = match permit {
            Ok(lent) => lent,
            Err(error) => return Some(Incoming::Violation(Close::Protocol, error.to_string())),
        };
        match (&self.streams, header.kind) {
            (Some(streams), Kind::StreamItem) => streams
                .item(header, body.into_aligned(), context.budget.hold(lent))
                .err()
                .map(|reason| Incoming::Violation(Close::Protocol, reason)),
            _ => {
                let share = Reservation::connection_share(context, lent);
                Some(Incoming::Call(self.call(header, body, share)))
            }
        }
    }

    fn call<'e>(
        &self,
        header: FrameHeader,
        body: Received,
        share: Reservation<&'e CallEnv>,
    ) -> MuxCall<&'e CallEnv> {
        let opened = match &self.streams {
            Some(streams) if header.flags & FLAG_STREAM != 0 => streams.open(header.id),
            _ => None,
        };
        let (window, items) = opened.map_or((None, None), |o| {
            (Some(Box::new(o.window)), Some(Box::new(o.items)))
        });
        MuxCall {
            header,
            body,
            share: Some(share),
            tx: self.tx.clone(),
            send_timeout: self.send_timeout,
            window,
            items,
        }
    }
}

/// Queues `outgoing` on `tx`, waiting at most `limit` for room; `false` if the writer is
/// gone or stalled. Most find room at once: the clock is read and a timer built only for
/// one that must wait.
pub(crate) async fn queue_within(
    tx: &Queue<Outgoing>,
    outgoing: Outgoing,
    limit: Duration,
) -> bool {
    match tx.try_send(outgoing) {
        Ok(()) => true,
        Err(Refused::Closed(_)) => false,
        Err(Refused::Full(outgoing)) => {
            matches!(timeout(limit, tx.send(outgoing)).await, Ok(Ok(())))
        }
    }
}

/// One multiplexed call: its frame, read and within the byte budget, whose share it
/// holds through `E` ([`CallIo::Env`]).
pub(crate) struct MuxCall<E: Deref<Target = CallEnv>> {
    header: FrameHeader,
    body: Received,
    /// The call's share of the connection's budget, until the call is read.
    share: Option<Reservation<E>>,
    tx: Queue<Outgoing>,
    send_timeout: Duration,
    /// A streaming call's send window (boxed, as the next: most calls do not stream, and
    /// every call's task holds its `MuxCall`).
    window: Option<Box<Window>>,
    /// A streaming call's items from the client.
    items: Option<Box<Items>>,
}

impl<E: Deref<Target = CallEnv>> MuxCall<E> {
    /// The call's priority, from its `Call` frame.
    fn priority(&self) -> Priority {
        Priority::from_flags(self.header.flags)
    }

    /// Queues the reply with `send` if the writer has room now, calling `done` first (or
    /// only `done`, if the writer is gone); gives the frame and `done` back otherwise.
    fn queue_reply<D: FnOnce()>(
        &mut self,
        frame: Framed,
        done: D,
        send: impl FnOnce(Room<'_, Outgoing>, Outgoing),
    ) -> Result<(), (Framed, D)> {
        match self.tx.try_room() {
            Ok(Some(room)) => {
                done();
                send(room, Outgoing::reply(frame, self.priority()));
                Ok(())
            }
            Ok(None) => Err((frame, done)),
            // the writer is gone: there is nobody to reply to
            Err(Closed) => {
                done();
                Ok(())
            }
        }
    }

    /// The call, as read with its frame: the server's share of its bytes taken now.
    fn take(&mut self) -> Result<Call<E>, Unread> {
        let share = self.share.take().ok_or(ProtocolError::Malformed)?;
        let reserved = share.with_server_share().map_err(Unread::Overloaded)?;
        let body = std::mem::take(&mut self.body);
        Ok(Call::open(self.header, body, reserved)?)
    }
}

impl<E: Deref<Target = CallEnv> + Send> CallIo for MuxCall<E> {
    type Env = E;
    type Kept = MuxCall<Arc<CallEnv>>;

    fn keep(self, env: &Arc<CallEnv>) -> MuxCall<Arc<CallEnv>> {
        MuxCall {
            header: self.header,
            body: self.body,
            share: self.share.map(|share| share.held_by(Arc::clone(env))),
            tx: self.tx,
            send_timeout: self.send_timeout,
            window: self.window,
            items: self.items,
        }
    }

    fn id(&self) -> Option<u64> {
        Some(self.header.id)
    }

    fn arrived(&self) -> usize {
        HEADER_LEN + self.header.body_len as usize
    }

    async fn read(&mut self, context: &Arc<CallEnv>) -> Result<Call<Arc<CallEnv>>, Unread> {
        Ok(self.take()?.held_by(Arc::clone(context)))
    }

    fn read_now(&mut self) -> Option<Result<Call<E>, Unread>> {
        Some(self.take())
    }

    async fn abandoned(&mut self) {
        // cancelled by `Cancel`, which aborts the call's task
        pending().await
    }

    fn inbound(&mut self, context: &Arc<CallEnv>) -> Inbound {
        match self.items.take() {
            Some(items) => (*items).into_inbound(context, self.tx.clone(), self.send_timeout),
            None => no_items(),
        }
    }

    async fn send_item(&mut self, frame: Vec<u8>) -> bool {
        let Some(window) = &self.window else {
            return false;
        };
        if !window.take(frame.len()).await {
            return false;
        }
        let item = Outgoing::Frame(frame, self.priority());
        queue_within(&self.tx, item, self.send_timeout).await
    }

    async fn flush_items(&mut self) -> bool {
        // each item is queued for the writer, which writes what is queued together
        true
    }

    fn reply(
        mut self,
        frame: Framed,
        done: impl FnOnce() + Send,
    ) -> impl Future<Output = ()> + Send {
        // room in the writer's queue first, then `done`, then the reply: the call is still
        // counted while it waits for room, and no longer once the client can have it. Most
        // replies find room at once and are queued here: the future returned holds only
        // the rare wait (boxed), not the call.
        let unsent = self.queue_reply(frame, done, |room, reply| room.send(reply));
        // only a writer backed up on a peer that does not read needs the deadline
        let wait = unsent.err().map(|(frame, done)| {
            let reply = Outgoing::reply(frame, self.priority());
            Box::pin(async move {
                let room = timeout(self.send_timeout, self.tx.room()).await;
                done();
                if let Ok(Ok(room)) = room {
                    room.send(reply);
                }
            })
        });
        async move {
            if let Some(wait) = wait {
                wait.await;
            }
        }
    }

    fn reply_now(&mut self, frame: Framed) -> Result<(), Framed> {
        // queued by the connection's task, which drives the writer: no need to wake it
        self.queue_reply(frame, || (), |room, reply| room.queue(reply))
            .map_err(|(frame, _)| frame)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A peer that takes nothing: what is queued stays queued.
    struct Stalled;

    impl FrameSink for Stalled {
        async fn feed(&mut self, _: Outgoing) -> Result<Fed, Broken> {
            std::future::pending().await
        }

        async fn flush(&mut self) -> Result<(), Broken> {
            std::future::pending().await
        }
    }

    #[test]
    fn a_writer_has_room_for_the_reply_of_every_call_in_flight_and_more() {
        for max_calls in [1, 128, 1000] {
            let writer = Writer::start(Stalled, Duration::from_secs(30), max_calls);
            let room = max_calls as usize + QUEUED_BESIDE_REPLIES;
            for _ in 0..room {
                assert!(writer.try_send(Outgoing::frame(vec![0; 8])).is_ok());
            }
            assert!(
                writer.try_send(Outgoing::frame(vec![0; 8])).is_err(),
                "{room} entries, and no more"
            );
        }
    }
}
