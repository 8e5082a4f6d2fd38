//! Calls multiplexed by id over one ordered channel (a WebSocket connection, the QUIC
//! call channel): ids, the replies they wait for, cancellation of dropped calls, and the
//! in-flight limit. No I/O here: the transport feeds replies in and sends what `out`
//! receives.

use std::{
    future::{poll_fn, Future},
    pin::Pin,
    sync::{Arc, Mutex, MutexGuard, Weak},
    task::{ready, Context, Poll, Waker},
};

use hardlight_core::{
    close::Close,
    coalesce::Coalesced,
    frame::{FrameHeader, Kind, HEADER_LEN},
    handshake::Welcome,
    queue::{queue, Queue, Reader, Refused},
    received::Received,
    stream::{take_window, window_cost, STREAM_WINDOW},
    ProtocolError,
};
use tokio::sync::{mpsc, oneshot, Semaphore};

use crate::{
    calls::{Calls, Exchange, Exchanged, Reply},
    config::ClientConfig,
    drain::Drain,
    error::{CallError, TransportError},
    outstanding::Outstanding,
    slots::Slots,
    streaming::ItemSource,
    sync::lock,
};

/// One of the connection's call slots, held by a call that does not go through the
/// multiplexer (a QUIC call or streaming call on a stream of its own) or by a streaming
/// call; given back when dropped. It does not keep the multiplexer (and its writer's
/// queue) alive: a slot outliving its connection has nobody to give it back to.
#[derive(Debug)]
pub(crate) struct Slot {
    mux: Weak<Mux>,
}

impl Drop for Slot {
    fn drop(&mut self) {
        if let Some(mux) = self.mux.upgrade() {
            mux.give_back();
        }
    }
}

/// What a call in the table waits with.
#[derive(Debug)]
enum Waiter {
    /// A call: its one reply.
    Reply(ReplySlot),
    /// A streaming call: its items, then its reply.
    Stream(StreamWaiter),
    /// A taker of a [`Slot`], in line.
    Slot(SlotTaker),
    /// A call dropped whose `Cancel` found the writer's queue full: the server runs it to
    /// its end, and its slot is free once its reply comes.
    Abandoned,
}

/// A call's reply once it came, and the waker of the call waiting for it: held in the
/// call table, so that a call allocates no channel of its own.
#[derive(Debug)]
struct ReplySlot {
    reply: Option<Reply>,
    waker: Option<Waker>,
    /// The call's frame, while it is not sent: in line for a slot, or given one while the
    /// writer's queue was full (then sent by the call itself).
    unsent: Option<Vec<u8>>,
    /// The call holds one of the connection's slots.
    slot: bool,
}

/// A taker of a [`Slot`] waiting in line.
#[derive(Debug)]
struct SlotTaker {
    /// Its turn came: the slot is its own.
    granted: bool,
    waker: Option<Waker>,
}

/// The calls of one multiplexed connection and its slots, under one lock.
#[derive(Debug)]
struct Table {
    calls: Outstanding<Waiter>,
    slots: Slots,
}

impl Table {
    /// A call or taker left the line before its turn.
    fn left_line(&mut self) {
        let Self { calls, slots } = self;
        slots.left(|&id| in_line(calls, id));
    }
}

/// Whether `id` is in line for a slot: a call holding none, or a taker whose turn has
/// not come.
fn in_line(calls: &Outstanding<Waiter>, id: u64) -> bool {
    match calls.get(id) {
        Some(Waiter::Reply(call)) => !call.slot,
        Some(Waiter::Slot(taker)) => !taker.granted,
        _ => false,
    }
}

/// What polling a call in the table gives.
enum Polled {
    /// Its reply.
    Reply(Reply),
    /// Its frame, to send: it was given a slot while the writer's queue was full.
    Send(Vec<u8>),
}

/// Wakes `waker`, if any.
fn wake(waker: Option<Waker>) {
    if let Some(waker) = waker {
        waker.wake();
    }
}

#[derive(Debug)]
struct StreamWaiter {
    frames: mpsc::UnboundedSender<Result<Reply, CallError>>,
    /// Room for the client's items ([`STREAM_WINDOW`] at first), granted back by the
    /// server's `StreamCredit`.
    credit: Arc<Semaphore>,
    /// Bytes of items received and not yet credited back ([`STREAM_WINDOW`] at most).
    outstanding: u32,
    /// Bytes of items the application took, to credit back.
    taken: u32,
}

/// The calls of one multiplexed connection.
#[derive(Debug)]
pub(crate) struct Mux {
    table: Mutex<Table>,
    out: Queue<Vec<u8>>,
    closed: Mutex<Option<TransportError>>,
}

/// Most calls a multiplexed connection keeps in flight, whatever the server allows.
const MAX_CALLS: u32 = 1 << 16;

/// The frames a multiplexed connection's writer sends, in order.
pub(crate) type Outgoing = Reader<Vec<u8>>;

/// Adds every frame queued to `batch`, once there are some: what the writer sends in one
/// write; `false` once the connection's calls are gone. Cancel-safe.
pub(crate) async fn gather(batch: &mut Coalesced, frames: &mut Outgoing) -> bool {
    let Some(queued) = frames.next_batch().await else {
        return false;
    };
    queued.drain(..).for_each(|frame| batch.push(frame));
    true
}

impl Mux {
    /// A multiplexer allowing `max_calls` in flight, and the frames it queues for the
    /// writer: at most twice `max_calls` (each call's `Call`, and `Cancel`s), so that calls
    /// made while the socket is backed up wait instead of growing the queue. `max_calls`
    /// comes from the server's `Welcome`: beyond [`MAX_CALLS`] it counts as that (a queue
    /// that large would panic on 32-bit targets).
    pub(crate) fn new(max_calls: u32) -> (Arc<Self>, Outgoing) {
        let max_calls = max_calls.clamp(1, MAX_CALLS) as usize;
        let (out, frames) = queue(2 * max_calls);
        let mux = Arc::new(Self {
            table: Mutex::new(Table {
                calls: Outstanding::new(),
                slots: Slots::new(max_calls),
            }),
            out,
            closed: Mutex::new(None),
        });
        (mux, frames)
    }

    /// Routes a reply frame, or a streaming call's item, to its call; `Err` for an id no
    /// call is waiting on, or an item beyond its call's window.
    pub(crate) fn deliver(&self, header: FrameHeader, body: Received) -> Result<(), ProtocolError> {
        let mut table = lock(&self.table);
        if header.kind == Kind::StreamItem {
            let Some(Waiter::Stream(stream)) = table.calls.get_mut(header.id) else {
                // an item of a call dropped meanwhile, or of no call at all
                return match header.id {
                    0 => Err(ProtocolError::Malformed),
                    _ => Ok(()),
                };
            };
            let cost = window_cost(HEADER_LEN + header.body_len as usize);
            stream.outstanding = stream.outstanding.saturating_add(cost);
            if stream.outstanding > STREAM_WINDOW {
                return Err(ProtocolError::StreamWindowExceeded {
                    id: header.id,
                    window: STREAM_WINDOW,
                });
            }
            let _ = stream.frames.send(Ok((header, body)));
            return Ok(());
        }
        match table.calls.get_mut(header.id) {
            Some(Waiter::Reply(call)) => {
                // a second reply to the call is ignored, as is one to a call dropped
                // meanwhile or not sent yet
                if call.reply.is_none() && call.unsent.is_none() && call.slot {
                    call.reply = Some((header, body));
                    let waker = call.waker.take();
                    drop(table);
                    if let Some(waker) = waker {
                        waker.wake();
                    }
                }
                Ok(())
            }
            Some(Waiter::Stream(_)) => {
                if let Some(Waiter::Stream(stream)) = table.calls.remove(header.id) {
                    let _ = stream.frames.send(Ok((header, body)));
                }
                Ok(())
            }
            Some(Waiter::Abandoned) => {
                table.calls.remove(header.id);
                self.pass_on(table);
                Ok(())
            }
            // not a call's id: a slot taker's
            Some(Waiter::Slot(_)) => Ok(()),
            None if header.id == 0 => Err(ProtocolError::Malformed),
            None => Ok(()),
        }
    }

    /// Call `id`'s reply, taken out of the table with its call (its slot passed on);
    /// `Err` once the connection closed. A call given a slot while the writer's queue was
    /// full gets its frame back, to send.
    fn poll_reply(&self, id: u64, cx: &mut Context<'_>) -> Poll<Result<Polled, CallError>> {
        let mut table = lock(&self.table);
        let Some(Waiter::Reply(call)) = table.calls.get_mut(id) else {
            drop(table);
            return Poll::Ready(Err(self.closed()));
        };
        if let Some(reply) = call.reply.take() {
            table.calls.remove(id);
            self.pass_on(table);
            return Poll::Ready(Ok(Polled::Reply(reply)));
        }
        if call.slot {
            if let Some(frame) = call.unsent.take() {
                return Poll::Ready(Ok(Polled::Send(frame)));
            }
        }
        match &call.waker {
            Some(waker) if waker.will_wake(cx.waker()) => {}
            _ => call.waker = Some(cx.waker().clone()),
        }
        Poll::Pending
    }

    /// A slot given back goes to the first in line (see [`Mux::next_in_line`]); the
    /// table's lock is let go before the one whose turn came is woken.
    fn pass_on(&self, mut table: MutexGuard<'_, Table>) {
        let next = self.next_in_line(&mut table);
        drop(table);
        wake(next);
    }

    /// A slot given back goes to the first in line: a call is sent (or, with the writer's
    /// queue full or gone, woken to send itself), a taker is woken; with nobody in line
    /// it is free. Returns the waker to wake once the table's lock is let go.
    fn next_in_line(&self, table: &mut Table) -> Option<Waker> {
        let Table { calls, slots } = table;
        let next = slots.pass_on(|id| in_line(calls, id))?;
        match calls.get_mut(next)? {
            Waiter::Reply(call) => {
                call.slot = true;
                let frame = call.unsent.take()?;
                match self.out.try_send(frame) {
                    Ok(()) => None,
                    // the call sends it itself: it waits for room, or fails as the writer
                    // is gone
                    Err(Refused::Full(frame) | Refused::Closed(frame)) => {
                        call.unsent = Some(frame);
                        call.waker.clone()
                    }
                }
            }
            Waiter::Slot(taker) => {
                taker.granted = true;
                taker.waker.take()
            }
            Waiter::Stream(_) | Waiter::Abandoned => None,
        }
    }

    /// A [`Slot`] is given back.
    fn give_back(&self) {
        self.pass_on(lock(&self.table));
    }

    /// Starts streaming call `frame`: gives it an id and a slot, sends it, and returns
    /// where its items and reply arrive. Dropping that sends `Cancel`.
    pub(crate) async fn open_stream(
        self: &Arc<Self>,
        mut frame: Vec<u8>,
    ) -> Result<MuxStream, CallError> {
        let slot = self.slot().await?;
        let (tx, frames) = mpsc::unbounded_channel();
        let credit = Arc::new(Semaphore::new(STREAM_WINDOW as usize));
        let waiter = Waiter::Stream(StreamWaiter {
            frames: tx,
            credit: Arc::clone(&credit),
            outstanding: 0,
            taken: 0,
        });
        let id = lock(&self.table)
            .calls
            .insert(waiter)
            .map_err(|_| self.closed())?;
        FrameHeader::set_id(&mut frame, id);
        let stream = MuxStream {
            mux: Arc::clone(self),
            id,
            frames,
            credit: Some(credit),
            ended: false,
            _slot: slot,
        };
        self.out.send(frame).await.map_err(|_| self.closed())?;
        Ok(stream)
    }

    /// The server took `bytes` of streaming call `id`'s items: room for more. Credit for
    /// a call no longer waited for is late; more than was outstanding breaks the
    /// protocol.
    pub(crate) fn credit(&self, id: u64, bytes: u64) -> Result<(), ProtocolError> {
        let table = lock(&self.table);
        let Some(Waiter::Stream(stream)) = table.calls.get(id) else {
            return Ok(());
        };
        let outstanding = STREAM_WINDOW as usize - stream.credit.available_permits();
        match usize::try_from(bytes) {
            Ok(bytes) if bytes <= outstanding => {
                stream.credit.add_permits(bytes);
                Ok(())
            }
            _ => Err(ProtocolError::StreamWindowExceeded {
                id,
                window: STREAM_WINDOW,
            }),
        }
    }

    /// Streaming call `id` cannot go on: its items could not be sent. The server is told
    /// to cancel it and the application gets `error`.
    fn fail(&self, id: u64, error: CallError) {
        if let Some(Waiter::Stream(stream)) = lock(&self.table).calls.get(id) {
            let _ = stream.frames.send(Err(error));
        }
        self.cancel(id, false);
    }

    /// The application took an item of `cost` bytes of streaming call `id`: once half the
    /// window is taken, the server gets it back as credit.
    async fn took(&self, id: u64, cost: u32) -> Result<(), CallError> {
        let grant = {
            let mut table = lock(&self.table);
            match table.calls.get_mut(id) {
                Some(Waiter::Stream(stream)) => {
                    stream.taken = stream.taken.saturating_add(cost);
                    (stream.taken >= STREAM_WINDOW / 2).then(|| {
                        let grant = std::mem::take(&mut stream.taken);
                        stream.outstanding = stream.outstanding.saturating_sub(grant);
                        grant
                    })
                }
                _ => None,
            }
        };
        if let Some(grant) = grant {
            let credit = FrameHeader::new(Kind::StreamCredit, 0)
                .with_id(id)
                .with_seq(u64::from(grant));
            self.out
                .send(credit.encode().to_vec())
                .await
                .map_err(|_| self.closed())?;
        }
        Ok(())
    }

    /// Queues a frame that is not a call (an `Ack`) without waiting; `false` if the queue
    /// is full or the writer is gone.
    pub(crate) fn send(&self, frame: Vec<u8>) -> bool {
        self.out.try_send(frame).is_ok()
    }

    /// The connection ended: every waiting call fails with `reason`.
    pub(crate) fn close(&self, reason: TransportError) {
        lock(&self.closed).get_or_insert(reason);
        let waiters = {
            let mut table = lock(&self.table);
            table.slots.close();
            table.calls.close()
        };
        // the calls and takers wake to find themselves gone; dropping their senders fails
        // the streaming calls
        for waiter in waiters {
            match waiter {
                Waiter::Reply(ReplySlot { waker, .. }) | Waiter::Slot(SlotTaker { waker, .. }) => {
                    wake(waker)
                }
                Waiter::Stream(_) | Waiter::Abandoned => {}
            }
        }
    }

    /// One of the connection's call slots, for a call that does not go through the
    /// multiplexer (a QUIC call or streaming call on a stream of its own): all calls share
    /// the allowance, and wait for it in one line.
    pub(crate) async fn slot(self: &Arc<Self>) -> Result<Slot, CallError> {
        let id = {
            let mut table = lock(&self.table);
            if table.calls.is_closed() {
                return Err(self.closed());
            }
            if table.slots.take() {
                return Ok(Slot {
                    mux: Arc::downgrade(self),
                });
            }
            let taker = Waiter::Slot(SlotTaker {
                granted: false,
                waker: None,
            });
            let id = table.calls.insert(taker).map_err(|_| self.closed())?;
            table.slots.join(id);
            id
        };
        let mut in_line = InLine {
            mux: self,
            id,
            served: false,
        };
        poll_fn(|cx| in_line.poll_turn(cx)).await?;
        Ok(Slot {
            mux: Arc::downgrade(self),
        })
    }

    /// The drain of a connection whose calls all go through this multiplexer: after
    /// `GoAway` and the last reply, its calls fail and `switch` closes the transport, so
    /// that the server's shutdown need not wait for its deadline.
    pub(crate) fn drain(self: &Arc<Self>, switch: &Arc<CloseSwitch>) -> Arc<Drain> {
        let mux = Arc::clone(self);
        let switch = Arc::clone(switch);
        Drain::new(move || {
            mux.close(TransportError::closed(
                Some(Close::Shutdown),
                "server shut down",
            ));
            switch.flip();
        })
    }

    /// A frame of a QUIC or WebTransport call channel, which carries replies only: to
    /// its call; anything else breaks the protocol.
    pub(crate) fn deliver_reply(
        &self,
        header: FrameHeader,
        body: Received,
    ) -> Result<(), ProtocolError> {
        match header.kind {
            Kind::ReplyOk | Kind::ReplyHandlerError | Kind::ReplyFailure => {
                self.deliver(header, body)
            }
            other => Err(ProtocolError::UnexpectedKind {
                expected: "a reply",
                got: other.name(),
            }),
        }
    }

    /// The error of a call on a closed connection: why it closed.
    pub(crate) fn closed(&self) -> CallError {
        let error = lock(&self.closed)
            .clone()
            .unwrap_or_else(|| TransportError::closed(None, "connection closed"));
        CallError::Transport(error)
    }
}

impl Exchange for Arc<Mux> {
    async fn open_stream(
        &self,
        frame: Vec<u8>,
        _reply_max: u32,
        _sends_items: bool,
    ) -> Result<ItemSource, CallError> {
        Ok(ItemSource::Channel(Mux::open_stream(self, frame).await?))
    }

    fn exchange(&self, frame: Vec<u8>, _reply_max: u32, waker: Waker) -> Exchanged<'_> {
        self.call(frame, waker)
    }
}

impl Mux {
    /// Gives call `frame` an id and sends it, or puts it in line for a slot, and gives the
    /// future of its reply, which `waker` is woken for. The call takes its slot and its
    /// place in the table under one lock; one that waits for its slot is sent by the call
    /// that gives one back.
    pub(crate) fn call(&self, mut frame: Vec<u8>, waker: Waker) -> Exchanged<'_> {
        let mut table = lock(&self.table);
        if table.calls.is_closed() {
            drop(table);
            return Exchanged::failed(self.closed());
        }
        let slot = table.slots.take();
        let waiter = Waiter::Reply(ReplySlot {
            reply: None,
            waker: Some(waker),
            unsent: None,
            slot,
        });
        let Ok(id) = table.calls.insert(waiter) else {
            drop(table);
            return Exchanged::failed(self.closed());
        };
        FrameHeader::set_id(&mut frame, id);
        let mut reply = MuxReply {
            mux: self,
            id,
            answered: false,
            look: false,
            sending: None,
        };
        if !slot {
            if let Some(Waiter::Reply(call)) = table.calls.get_mut(id) {
                call.unsent = Some(frame);
            }
            table.slots.join(id);
            return Exchanged::Mux(reply);
        }
        drop(table);
        // The call waits with `waker` from the start, so that the poll that sends it need
        // not look for a reply as well: one that came meanwhile (from another thread) woke
        // this waker, and the call is polled again.
        match self.out.try_send(frame) {
            Ok(()) => Exchanged::Mux(reply),
            Err(Refused::Full(frame)) => {
                reply.send(frame);
                Exchanged::Mux(reply)
            }
            Err(Refused::Closed(_)) => Exchanged::failed(self.closed()),
        }
    }
}

/// A call on a multiplexed connection, in the call table: sent and waiting for its reply,
/// or in line for a slot (sent by the call that gives one back), or, rarely, sending its
/// frame itself once the writer's queue has room. Dropped before the reply came, it
/// cancels the call.
pub(crate) struct MuxReply<'a> {
    mux: &'a Mux,
    id: u64,
    answered: bool,
    /// The call table is looked at from the second poll on (see [`Mux::call`]).
    look: bool,
    /// Its frame on its way into the writer's queue, which was full.
    sending: Option<Sending<'a>>,
}

/// A frame on its way into the writer's queue: boxed, so that a call that finds room does
/// not carry the room of this.
type Sending<'a> = Pin<Box<dyn Future<Output = Result<(), CallError>> + Send + 'a>>;

impl<'a> MuxReply<'a> {
    /// Sends `frame` once the writer's queue has room.
    fn send(&mut self, frame: Vec<u8>) {
        let mux = self.mux;
        self.sending = Some(Box::pin(async move {
            mux.out.send(frame).await.map_err(|_| mux.closed())
        }));
        // polled since, perhaps with another waker
        self.look = true;
    }
}

impl Future for MuxReply<'_> {
    type Output = Result<Reply, CallError>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.get_mut();
        if !std::mem::replace(&mut this.look, true) {
            return Poll::Pending;
        }
        loop {
            if let Some(sending) = &mut this.sending {
                if let Poll::Ready(sent) = sending.as_mut().poll(cx) {
                    sent?;
                    this.sending = None;
                }
            }
            // also while its frame waits for room: a connection that closes fails the call
            // then, not once its backed-up writer gives up
            match ready!(this.mux.poll_reply(this.id, cx)) {
                Ok(Polled::Reply(reply)) => {
                    this.answered = true;
                    return Poll::Ready(Ok(reply));
                }
                Ok(Polled::Send(frame)) => this.send(frame),
                Err(error) => return Poll::Ready(Err(error)),
            }
        }
    }
}

impl Drop for MuxReply<'_> {
    fn drop(&mut self) {
        if self.answered {
            return;
        }
        self.mux.cancel(self.id, self.sending.is_some());
    }
}

impl Mux {
    /// Call `id` is dropped before its reply (`sending`: while its frame waited for room
    /// in the writer's queue): the server is told to cancel it, unless it never sent it,
    /// and its slot goes to the next in line after the `Cancel`, so that the server reads
    /// the `Cancel` first. With the queue full, the `Cancel` is dropped: the server runs
    /// the call to its end, and the slot is given back when the reply comes.
    fn cancel(&self, id: u64, sending: bool) {
        let mut table = lock(&self.table);
        let Some(waiter) = table.calls.get_mut(id) else {
            return;
        };
        match waiter {
            Waiter::Reply(call) if call.slot => {
                // not for a call whose reply came, unread
                if call.unsent.is_none() && !sending && call.reply.is_none() {
                    if let Err(Refused::Full(_)) = self.out.try_send(cancel_frame(id)) {
                        *waiter = Waiter::Abandoned;
                        return;
                    }
                }
                table.calls.remove(id);
                self.pass_on(table);
            }
            Waiter::Reply(_) => {
                // in line: nothing was sent
                table.calls.remove(id);
                table.left_line();
            }
            Waiter::Stream(_) => {
                table.calls.remove(id);
                drop(table);
                // with the queue full the `Cancel` is dropped: the server then runs the
                // call to its end, and its items and reply, for an id no longer waited
                // for, are discarded
                let _ = self.out.try_send(cancel_frame(id));
            }
            Waiter::Slot(_) | Waiter::Abandoned => {}
        }
    }
}

/// The `Cancel` of call `id`.
fn cancel_frame(id: u64) -> Vec<u8> {
    FrameHeader::new(Kind::Cancel, 0)
        .with_id(id)
        .encode()
        .to_vec()
}

/// A taker of a [`Slot`] in line: dropped before its turn, it leaves the line; dropped
/// once its turn came, before it took the slot, it passes the slot on.
struct InLine<'a> {
    mux: &'a Mux,
    id: u64,
    /// Out of the table: with its slot, or failed.
    served: bool,
}

impl InLine<'_> {
    /// Ready once the taker's turn came (its slot is then its own); `Err` once the
    /// connection closed.
    fn poll_turn(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), CallError>> {
        let mut table = lock(&self.mux.table);
        let Some(Waiter::Slot(taker)) = table.calls.get_mut(self.id) else {
            drop(table);
            self.served = true;
            return Poll::Ready(Err(self.mux.closed()));
        };
        if taker.granted {
            table.calls.remove(self.id);
            self.served = true;
            return Poll::Ready(Ok(()));
        }
        match &taker.waker {
            Some(waker) if waker.will_wake(cx.waker()) => {}
            _ => taker.waker = Some(cx.waker().clone()),
        }
        Poll::Pending
    }
}

impl Drop for InLine<'_> {
    fn drop(&mut self) {
        if self.served {
            return;
        }
        let mut table = lock(&self.mux.table);
        match table.calls.remove(self.id) {
            Some(Waiter::Slot(SlotTaker { granted: true, .. })) => {
                self.mux.pass_on(table);
            }
            Some(_) => {
                table.left_line();
            }
            None => {}
        }
    }
}

/// A streaming call on a multiplexed connection: its items and reply as they arrive.
/// Dropped before the reply, it cancels the call.
#[derive(Debug)]
pub(crate) struct MuxStream {
    mux: Arc<Mux>,
    id: u64,
    frames: mpsc::UnboundedReceiver<Result<Reply, CallError>>,
    /// Room for the client's items, until a sender takes it.
    credit: Option<Arc<Semaphore>>,
    ended: bool,
    _slot: Slot,
}

impl MuxStream {
    /// The next item or the reply.
    pub(crate) async fn next(&mut self) -> Result<Reply, CallError> {
        let frame = self.frames.recv().await.ok_or_else(|| self.mux.closed());
        let frame = frame.and_then(|frame| frame);
        self.ended = !matches!(&frame, Ok((header, _)) if header.kind == Kind::StreamItem);
        frame
    }

    /// What sends the client's items of this call.
    pub(crate) fn sender(&mut self) -> Option<MuxSender> {
        Some(MuxSender {
            mux: Arc::clone(&self.mux),
            id: self.id,
            credit: self.credit.take()?,
        })
    }

    /// The application took an item of `frame_len` bytes.
    pub(crate) async fn took(&mut self, frame_len: usize) -> Result<(), CallError> {
        self.mux.took(self.id, window_cost(frame_len)).await
    }
}

/// Sends the client's items of a streaming call on a multiplexed connection, each once
/// the server has room for it.
#[derive(Debug)]
pub(crate) struct MuxSender {
    mux: Arc<Mux>,
    id: u64,
    credit: Arc<Semaphore>,
}

impl MuxSender {
    /// Sends an item's frame once it fits the call's window.
    pub(crate) async fn send(&mut self, mut frame: Vec<u8>) -> Result<(), CallError> {
        if !take_window(&self.credit, frame.len()).await {
            return Err(self.mux.closed());
        }
        FrameHeader::set_id(&mut frame, self.id);
        self.mux
            .out
            .send(frame)
            .await
            .map_err(|_| self.mux.closed())
    }

    /// The items are all sent.
    pub(crate) async fn end(self) {
        let end = FrameHeader::new(Kind::StreamEnd, 0).with_id(self.id);
        let _ = self.mux.out.send(end.encode().to_vec()).await;
    }

    /// The items cannot all be sent: the call fails with `error`.
    pub(crate) fn fail(self, error: CallError) {
        self.mux.fail(self.id, error);
    }
}

impl Drop for MuxStream {
    fn drop(&mut self) {
        if !self.ended {
            self.mux.cancel(self.id, false);
        }
    }
}

/// What tells a multiplexed transport to send its close and stop: flipped by the
/// client's `close`, or by the drain once the server's `GoAway` and the last reply came.
#[derive(Debug)]
pub(crate) struct CloseSwitch(Mutex<Option<oneshot::Sender<()>>>);

impl CloseSwitch {
    /// The switch that fires `close`.
    pub(crate) fn new(close: oneshot::Sender<()>) -> Arc<Self> {
        Arc::new(Self(Mutex::new(Some(close))))
    }

    /// Closes the transport, the first time.
    pub(crate) fn flip(&self) {
        if let Some(close) = lock(&self.0).take() {
            let _ = close.send(());
        }
    }
}

/// A multiplexed connection's calls, and the switch that closes it.
#[derive(Debug)]
pub(crate) struct Channel {
    pub(crate) calls: Calls<Arc<Mux>>,
    /// Tells the transport's writer to send a close frame and stop.
    close: Arc<CloseSwitch>,
}

impl Channel {
    /// The calls of a connection whose handshake returned `welcome`, and the frames for
    /// its writer to send. After `GoAway` and the last reply, the connection's calls are
    /// failed.
    pub(crate) fn new(
        welcome: &Welcome,
        config: &ClientConfig,
        close: oneshot::Sender<()>,
    ) -> (Self, Outgoing) {
        let (mux, frames) = Mux::new(welcome.max_concurrent_calls);
        let close = CloseSwitch::new(close);
        let drain = mux.drain(&close);
        let channel = Self {
            calls: Calls::new(mux, drain, welcome, config),
            close,
        };
        (channel, frames)
    }

    /// The multiplexer the transport's reader delivers replies to.
    pub(crate) fn mux(&self) -> &Arc<Mux> {
        &self.calls.transport
    }

    /// Closes the connection; calls in flight fail.
    pub(crate) fn close(&self) {
        self.close.flip();
        self.calls.transport.close(TransportError::closed(
            Some(Close::Normal),
            "client disconnected",
        ));
    }
}

#[cfg(test)]
mod tests {
    use std::{
        future::Future,
        sync::atomic::{AtomicBool, Ordering},
        task::Wake,
    };

    use hardlight_core::codec::Bytes;

    use super::*;

    /// A waker that records being woken.
    #[derive(Default)]
    struct Woken(AtomicBool);

    impl Wake for Woken {
        fn wake(self: Arc<Self>) {
            self.0.store(true, Ordering::SeqCst);
        }
    }

    impl Woken {
        fn take(&self) -> bool {
            self.0.swap(false, Ordering::SeqCst)
        }
    }

    /// The frames the writer would send, one at a time.
    struct Sent {
        frames: Outgoing,
        taken: std::collections::VecDeque<Vec<u8>>,
    }

    impl Sent {
        fn new(frames: Outgoing) -> Self {
            Self {
                frames,
                taken: Default::default(),
            }
        }

        /// The next frame the writer would send: its header.
        fn next(&mut self) -> Option<FrameHeader> {
            if self.taken.is_empty() {
                let mut cx = Context::from_waker(Waker::noop());
                let mut next = Box::pin(self.frames.next_batch());
                if let Poll::Ready(Some(batch)) = next.as_mut().poll(&mut cx) {
                    self.taken.extend(batch.drain(..));
                }
            }
            let frame = self.taken.pop_front()?;
            FrameHeader::split(&frame, u32::MAX)
                .ok()
                .map(|(header, _)| header)
        }
    }

    fn reply(id: u64) -> FrameHeader {
        FrameHeader::new(Kind::ReplyOk, 0).with_id(id)
    }

    fn call() -> Vec<u8> {
        FrameHeader::new(Kind::Call, 0).encode().to_vec()
    }

    /// A multiplexer of `slots` slots, the frames its writer would send, and a waker that
    /// records being woken.
    fn setup(slots: u32) -> (Arc<Mux>, Sent, Arc<Woken>, Waker) {
        let (mux, frames) = Mux::new(slots);
        let woken = Arc::new(Woken::default());
        let waker = Waker::from(Arc::clone(&woken));
        (mux, Sent::new(frames), woken, waker)
    }

    /// `N` calls on `mux`, each polled once with `waker`: sent, or in line.
    fn calls<'a, const N: usize>(mux: &'a Mux, waker: &Waker) -> [Pin<Box<Exchanged<'a>>>; N] {
        let mut cx = Context::from_waker(waker);
        std::array::from_fn(|_| {
            let mut made = Box::pin(mux.call(call(), waker.clone()));
            assert!(made.as_mut().poll(&mut cx).is_pending());
            made
        })
    }

    #[test]
    fn a_reply_wakes_its_call_once_and_closing_fails_the_rest() {
        let (mux, mut sent, woken, waker) = setup(4);
        let mut cx = Context::from_waker(&waker);
        let [mut first, mut second] = calls(&mux, &waker);
        let Some(first_id) = sent.next().map(|header| header.id) else {
            panic!("the first call was sent");
        };
        assert!(sent.next().is_some(), "the second call was sent");

        mux.deliver(reply(first_id), Received::Aligned(Bytes::new()))
            .unwrap();
        assert!(woken.take());
        // a second reply to the same call is ignored
        mux.deliver(reply(first_id), Received::Aligned(Bytes::new()))
            .unwrap();
        assert!(!woken.take());
        let Poll::Ready(Ok((header, _))) = first.as_mut().poll(&mut cx) else {
            panic!("the first call has its reply");
        };
        assert_eq!(header.id, first_id);

        mux.close(TransportError::closed(None, "gone"));
        assert!(woken.take());
        assert!(matches!(
            second.as_mut().poll(&mut cx),
            Poll::Ready(Err(CallError::Transport(_)))
        ));
        drop((first, second));
        // neither call is cancelled: one was answered, the other's connection closed
        assert!(sent.next().is_none());
    }

    #[test]
    fn a_call_dropped_before_its_reply_is_cancelled_and_after_it_is_not() {
        let (mux, mut sent, _, waker) = setup(4);
        let [waiting] = calls(&mux, &waker);
        let id = sent.next().map(|header| header.id);
        drop(waiting);
        let cancel = sent.next();
        assert_eq!(
            cancel.map(|header| (header.kind, header.id)),
            id.map(|id| (Kind::Cancel, id))
        );

        let [answered] = calls(&mux, &waker);
        let Some(id) = sent.next().map(|header| header.id) else {
            panic!("the call was sent");
        };
        mux.deliver(reply(id), Received::Aligned(Bytes::new()))
            .unwrap();
        drop(answered);
        assert!(sent.next().is_none());
        // its reply went with it
        assert!(lock(&mux.table).calls.get(id).is_none());
    }

    #[test]
    fn a_huge_call_allowance_from_the_server_is_capped() {
        let free = |mux: &Mux| lock(&mux.table).slots.free();
        let (mux, _frames) = Mux::new(u32::MAX);
        assert_eq!(free(&mux), MAX_CALLS as usize);
        let (mux, _frames) = Mux::new(0);
        assert_eq!(free(&mux), 1);
    }

    #[test]
    fn calls_past_the_slots_wait_in_line_and_are_sent_by_the_calls_that_give_theirs_back() {
        let (mux, mut sent, woken, waker) = setup(2);
        let mut cx = Context::from_waker(&waker);
        let mut made: [_; 5] = calls(&mux, &waker);
        let mut ids = std::iter::from_fn(|| sent.next().map(|header| header.id));
        let mut in_flight: std::collections::VecDeque<u64> = ids.by_ref().collect();
        assert_eq!(
            in_flight.len(),
            2,
            "two slots: two calls sent, three in line"
        );
        for (answered, call) in made.iter_mut().enumerate() {
            let id = in_flight.pop_front().expect("a call in flight");
            mux.deliver(reply(id), Received::Aligned(Bytes::new()))
                .unwrap();
            assert!(woken.take());
            let Poll::Ready(Ok((header, _))) = call.as_mut().poll(&mut cx) else {
                panic!("call {answered} has its reply");
            };
            assert_eq!(header.id, id, "calls are sent in the order they came");
            // its slot went to the next in line, sent at once: no task was woken for it
            in_flight.extend(std::iter::from_fn(|| sent.next().map(|header| header.id)));
            assert!(!woken.take());
        }
        assert!(in_flight.is_empty());
        assert_eq!(lock(&mux.table).slots.free(), 2);
    }

    #[test]
    fn a_call_dropped_in_line_is_neither_sent_nor_cancelled() {
        let (mux, mut sent, _, waker) = setup(1);
        let mut cx = Context::from_waker(&waker);
        let [mut first, waiting, last] = calls(&mux, &waker);
        let first_id = sent.next().expect("the first call is sent").id;
        assert!(sent.next().is_none());
        drop(waiting);
        assert!(
            sent.next().is_none(),
            "nothing to cancel: the server never saw it"
        );
        mux.deliver(reply(first_id), Received::Aligned(Bytes::new()))
            .unwrap();
        assert!(matches!(first.as_mut().poll(&mut cx), Poll::Ready(Ok(_))));
        // the slot passes over the call gone to the one behind it
        let next = sent.next().expect("the last call is sent");
        assert_eq!(next.id, first_id + 2);
        assert!(sent.next().is_none());
        drop(last);
        assert_eq!(sent.next().map(|header| header.kind), Some(Kind::Cancel));
    }

    #[tokio::test]
    async fn slot_takers_wait_in_the_calls_line_and_closing_fails_those_in_it() {
        let (mux, mut sent, _, waker) = setup(1);
        let mut cx = Context::from_waker(&waker);
        let held = mux.slot().await.unwrap();
        let [mut waiting_call] = calls(&mux, &waker);
        let mut taker = Box::pin(mux.slot());
        assert!(taker.as_mut().poll(&mut cx).is_pending());
        let mut late = Box::pin(mux.slot());
        assert!(late.as_mut().poll(&mut cx).is_pending());
        assert!(sent.next().is_none());
        // the slot goes to the call that came first, then to the taker
        drop(held);
        let id = sent.next().expect("the call in line is sent").id;
        assert!(taker.as_mut().poll(&mut cx).is_pending());
        mux.deliver(reply(id), Received::Aligned(Bytes::new()))
            .unwrap();
        assert!(matches!(
            waiting_call.as_mut().poll(&mut cx),
            Poll::Ready(Ok(_))
        ));
        let Poll::Ready(Ok(slot)) = taker.as_mut().poll(&mut cx) else {
            panic!("the taker has the slot");
        };
        assert!(late.as_mut().poll(&mut cx).is_pending());
        mux.close(TransportError::closed(None, "gone"));
        assert!(matches!(
            late.as_mut().poll(&mut cx),
            Poll::Ready(Err(CallError::Transport(_)))
        ));
        drop(slot);
        assert!(mux.slot().await.is_err(), "no slot once closed");
    }

    #[test]
    fn a_call_given_its_slot_while_the_queue_is_full_sends_itself() {
        let (mux, mut sent, woken, waker) = setup(1);
        let mut cx = Context::from_waker(&waker);
        let [mut first, mut waiting] = calls(&mux, &waker);
        let first_id = sent.next().expect("the first call is sent").id;
        // the writer's queue (room for two frames) fills up meanwhile
        assert!(mux.send(call()));
        assert!(mux.send(call()));
        mux.deliver(reply(first_id), Received::Aligned(Bytes::new()))
            .unwrap();
        woken.take();
        assert!(matches!(first.as_mut().poll(&mut cx), Poll::Ready(Ok(_))));
        assert!(woken.take(), "the call in line is woken to send itself");
        assert!(waiting.as_mut().poll(&mut cx).is_pending());
        // the writer takes the two frames: room for the waiting call's
        assert!(sent.next().is_some() && sent.next().is_some());
        assert!(waiting.as_mut().poll(&mut cx).is_pending());
        let frame = sent.next().expect("the call sent itself");
        assert_eq!((frame.kind, frame.id), (Kind::Call, first_id + 1));
    }

    #[test]
    fn a_cancelled_calls_cancel_goes_before_the_call_its_slot_goes_to() {
        let (mux, mut sent, _, waker) = setup(1);
        let [first, _waiting] = calls(&mux, &waker);
        let first_id = sent.next().expect("the first call is sent").id;
        drop(first);
        let frames: Vec<_> = std::iter::from_fn(|| sent.next())
            .map(|header| (header.kind, header.id))
            .collect();
        assert_eq!(
            frames,
            [(Kind::Cancel, first_id), (Kind::Call, first_id + 1)],
            "the server reads the Cancel, which frees the slot, before the call that takes it"
        );
    }

    #[test]
    fn a_cancel_that_finds_the_queue_full_keeps_the_slot_until_the_reply() {
        let (mux, mut sent, _, waker) = setup(1);
        let [first, _waiting] = calls(&mux, &waker);
        let first_id = sent.next().expect("the first call is sent").id;
        // the writer's queue (room for two frames) is full: the `Cancel` cannot go
        assert!(mux.send(call()) && mux.send(call()));
        drop(first);
        assert!(sent.next().is_some() && sent.next().is_some());
        assert!(
            sent.next().is_none(),
            "the server still runs the first call"
        );
        // its reply, which nobody waits for, gives the slot back
        mux.deliver(reply(first_id), Received::Aligned(Bytes::new()))
            .unwrap();
        let next = sent.next().expect("the call in line is sent");
        assert_eq!((next.kind, next.id), (Kind::Call, first_id + 1));
    }

    #[tokio::test]
    async fn a_taker_whose_turn_came_and_that_is_dropped_passes_the_slot_on() {
        let (mux, mut sent, _, waker) = setup(1);
        let mut cx = Context::from_waker(&waker);
        let held = mux.slot().await.unwrap();
        let mut taker = Box::pin(mux.slot());
        assert!(taker.as_mut().poll(&mut cx).is_pending());
        let [_waiting] = calls(&mux, &waker);
        drop(held);
        assert!(sent.next().is_none(), "the slot is the taker's");
        drop(taker);
        assert_eq!(sent.next().map(|header| header.kind), Some(Kind::Call));
    }

    #[test]
    fn a_call_given_its_slot_after_the_writer_ended_fails_and_passes_it_on() {
        let (mux, mut sent, woken, waker) = setup(1);
        let mut cx = Context::from_waker(&waker);
        let [mut first, mut waiting] = calls(&mux, &waker);
        // the writer ends, and the first call's reply had come before
        let first_id = sent.next().expect("the first call is sent").id;
        drop(sent);
        mux.deliver(reply(first_id), Received::Aligned(Bytes::new()))
            .unwrap();
        woken.take();
        assert!(matches!(first.as_mut().poll(&mut cx), Poll::Ready(Ok(_))));
        assert!(woken.take(), "the call in line is woken to send itself");
        assert!(matches!(
            waiting.as_mut().poll(&mut cx),
            Poll::Ready(Err(CallError::Transport(_)))
        ));
        drop(waiting);
        assert_eq!(lock(&mux.table).slots.free(), 1);
    }

    #[test]
    fn a_call_whose_frame_waits_for_room_fails_as_the_connection_closes() {
        let (mux, mut sent, woken, waker) = setup(1);
        let mut cx = Context::from_waker(&waker);
        // the writer's queue (room for two frames) is full, and the writer takes nothing
        assert!(mux.send(call()) && mux.send(call()));
        let [mut sending] = calls(&mux, &waker);
        assert!(
            sending.as_mut().poll(&mut cx).is_pending(),
            "waiting for room"
        );
        woken.take();
        mux.close(TransportError::closed(None, "gone"));
        assert!(woken.take());
        assert!(matches!(
            sending.as_mut().poll(&mut cx),
            Poll::Ready(Err(CallError::Transport(_)))
        ));
        drop(sending);
        let kinds: Vec<_> = std::iter::from_fn(|| sent.next())
            .map(|header| header.kind)
            .collect();
        assert_eq!(kinds, [Kind::Call, Kind::Call], "its frame never went");
    }

    #[test]
    fn a_call_dropped_while_its_frame_waits_for_room_is_not_cancelled() {
        let (mux, mut sent, _, waker) = setup(1);
        assert!(mux.send(call()) && mux.send(call()));
        let [sending] = calls(&mux, &waker);
        drop(sending);
        let kinds: Vec<_> = std::iter::from_fn(|| sent.next())
            .map(|header| header.kind)
            .collect();
        assert_eq!(
            kinds,
            [Kind::Call, Kind::Call],
            "the two queued before; no Cancel"
        );
        assert_eq!(lock(&mux.table).slots.free(), 1);
    }
}
