//! What a transport gives the connection driver: a [`Link`] for the connection and a
//! [`CallIo`] for each call. QUIC and WebSocket implement them; everything they share —
//! the lifecycle, shutdown, takeover, slow consumers, the call table — is the driver's.

use std::{future::Future, ops::Deref, sync::Arc};

use hardlight_core::{
    close::Close, codec::Bytes, frame::FrameHeader, message::Framed, stream::Inbound,
};

use crate::session::{
    dispatch::{Call, Unread},
    push::PushSink,
    CallEnv,
};

/// How a connection ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Ended {
    /// Closed on purpose, by either side: the session ends with it.
    Closed,
    /// Lost (the network, an idle timeout, a takeover): the session is kept for the client
    /// to resume.
    Lost,
}

/// What a peer did next.
pub(crate) enum Incoming<C> {
    /// A call to serve, on its own task.
    Call(C),
    /// The peer cancelled call `id` (multiplexed calls; a call on a QUIC stream of its
    /// own is cancelled by stopping the stream instead).
    Cancel(u64),
    /// The peer acked durable event `seq` of the consumer in `slot`.
    Ack { slot: u16, seq: u64 },
    /// The peer broke the protocol outside any call: close with this code and reason.
    Violation(Close, String),
    /// The connection ended.
    Ended(Ended),
}

impl<C> Incoming<C> {
    /// The same, with the call as `f` makes it.
    pub(crate) fn map<D>(self, f: impl FnOnce(C) -> D) -> Incoming<D> {
        match self {
            Self::Call(call) => Incoming::Call(f(call)),
            Self::Cancel(id) => Incoming::Cancel(id),
            Self::Ack { slot, seq } => Incoming::Ack { slot, seq },
            Self::Violation(close, reason) => Incoming::Violation(close, reason),
            Self::Ended(ended) => Incoming::Ended(ended),
        }
    }
}

/// Why no `Hello` could be read.
pub(crate) enum NoHello {
    /// The connection ended before it: there is nobody to answer.
    Gone,
    /// The first message was not a frame: reject it with this reason.
    Invalid(String),
}

/// One connection, as the driver sees it.
///
/// Every method that waits on the peer is cancel-safe and bounded: the driver polls its
/// control arms (shutdown, takeover, the push stream's end) beside [`Link::next`], and
/// nothing here waits on a peer that stopped reading for longer than
/// `Limits::send_timeout`.
pub(crate) trait Link: Send + Sized + 'static {
    /// One call: a frame on a multiplexed channel, or a QUIC stream of its own; read
    /// against the connection's [`CallEnv`], borrowed for `'e` (see [`CallIo::keep`]).
    type Call<'e>: CallIo;
    /// Where the push loop writes.
    type Push: PushSink + 'static;

    /// Reads the client's first frame, of at most `max` body bytes.
    fn hello(
        &mut self,
        max: u32,
    ) -> impl Future<Output = Result<(FrameHeader, Bytes), NoHello>> + Send;

    /// Sends the `Welcome` frame; `false` if the peer is gone.
    fn welcome(&mut self, frame: Vec<u8>) -> impl Future<Output = bool> + Send;

    /// Sends the `Reject` frame, gives the peer a moment to read it, and closes.
    fn reject(&mut self, frame: Vec<u8>, reason: &str) -> impl Future<Output = ()> + Send;

    /// Starts the push stream after the `Welcome`.
    fn open_push(&mut self) -> impl Future<Output = Option<Self::Push>> + Send;

    /// The next call, cancellation or end; keeps the connection alive and notices a silent
    /// peer where the transport does not do so itself.
    fn next<'e>(
        &mut self,
        context: &'e CallEnv,
    ) -> impl Future<Output = Incoming<Self::Call<'e>>> + Send;

    /// The next call or cancellation, if it is read already (a frame of the message or
    /// chunk last read) and nothing of the link's own waits to be seen to first; `None`
    /// where [`Link::next`] is needed.
    fn next_now<'e>(&mut self, context: &'e CallEnv) -> Option<Incoming<Self::Call<'e>>>;

    /// Starts closing the connection with `close`, without waiting on the peer.
    fn close(&mut self, close: Close, reason: &str);

    /// After the end: gives the peer a bounded time to take a close the server sent, then
    /// lets go of the connection.
    fn finish(self, ended: Ended) -> impl Future<Output = ()> + Send;
}

/// One call on its transport.
pub(crate) trait CallIo: Send {
    /// How the call holds its connection's [`CallEnv`], where its share of the byte
    /// budgets goes back: borrowed while the connection's task serves it in its first
    /// poll, shared by a call that goes on ([`CallIo::keep`]).
    type Env: Deref<Target = CallEnv> + Send;

    /// The same call, held by a task of its own.
    type Kept: CallIo<Env = Arc<CallEnv>> + 'static;

    /// The call goes on beyond its first poll: it holds `env` from here on.
    fn keep(self, env: &Arc<CallEnv>) -> Self::Kept;

    /// The call's id, where the transport multiplexes calls by id.
    fn id(&self) -> Option<u64>;

    /// The bytes of the call read before it starts, which the connection's task counts
    /// received as it starts it: a multiplexed call's `Call` frame; none for a call on a
    /// QUIC stream of its own, whose task counts its frame as it reads it.
    fn arrived(&self) -> usize;

    /// Reads the call, on the call's own task: its header, its share of the connection's
    /// and the server's byte budgets, its body.
    fn read(
        &mut self,
        context: &Arc<CallEnv>,
    ) -> impl Future<Output = Result<Call<Arc<CallEnv>>, Unread>> + Send;

    /// The call, if it can be read at once (a multiplexed call, read with the frames
    /// before it, its share of the connection's budget taken then); `None` where
    /// reading it waits on the peer (a call on a QUIC stream of its own), which
    /// [`CallIo::read`] does.
    fn read_now(&mut self) -> Option<Result<Call<Self::Env>, Unread>>;

    /// Completes if the client gives up on the call before its reply (over QUIC: the
    /// stream is stopped; multiplexed calls are cancelled by `Cancel` instead).
    fn abandoned(&mut self) -> impl Future<Output = ()> + Send;

    /// The client's items of a streaming call that takes a stream, read as the handler
    /// takes them.
    fn inbound(&mut self, context: &Arc<CallEnv>) -> Inbound;

    /// Sends an item of a streaming call once the client has room for it (its stream's
    /// flow control, or the call's window on a multiplexed channel), or holds it to go
    /// with the next ones; `false` if the client is gone or does not take it within
    /// `Limits::send_timeout` once it has room.
    fn send_item(&mut self, frame: Vec<u8>) -> impl Future<Output = bool> + Send;

    /// Sends the items [`CallIo::send_item`] holds: the handler's stream has no item
    /// ready. `false` as for `send_item`.
    fn flush_items(&mut self) -> impl Future<Output = bool> + Send;

    /// Writes the reply frame after the items [`CallIo::send_item`] still holds, within
    /// `Limits::send_timeout`, calling `done` just before the client can have it: a call
    /// stops counting in flight before its client, which then makes its next call, learns
    /// that it ended.
    fn reply(self, frame: Framed, done: impl FnOnce() + Send) -> impl Future<Output = ()> + Send;

    /// Queues the reply frame of a call served in its first poll if the transport takes
    /// it without waiting; gives the frame back otherwise. Such a call is not counted in
    /// flight: there is nothing to end before the client can have its reply.
    fn reply_now(&mut self, frame: Framed) -> Result<(), Framed>;
}
