//! What waits for a connection's writer (frames, on either side): a list behind a
//! lock that the writer empties in one go, with room for a fixed number of entries
//! counted by a [`Quota`]. A sender finds room with one atomic operation (or waits for it
//! in a fair line while the writer is backed up) and takes the lock once to add its
//! entry; the writer takes the lock once per batch and gives the batch's room back at
//! once. (A bounded channel takes a lock for every entry received, to give its room back.)
//! A sender's end is one count of an `Arc` the senders share: cloned and dropped with one
//! atomic operation each, and the last one dropped tells the writer.
//!
//! ```
//! use hardlight_core::queue::queue;
//! # futures_util::FutureExt::now_or_never(async {
//! let (sender, mut writer) = queue(64);
//! sender.try_send(1).unwrap();
//! sender.try_send(2).unwrap();
//! assert_eq!(writer.next_batch().await.unwrap(), &[1, 2]);
//! drop(sender);
//! assert!(writer.next_batch().await.is_none(), "every sender is gone");
//! # }).unwrap();
//! ```

use std::{
    fmt,
    future::poll_fn,
    sync::{
        atomic::{AtomicBool, Ordering},
        Arc, Mutex,
    },
    task::{Context, Poll},
};

use futures_util::task::AtomicWaker;

use crate::{
    quota::{Closed, Lent, Quota},
    sync::lock,
};

/// Entries a batch's list keeps room for while its connection is quiet: enough for the
/// usual batch, without holding a burst's worth when idle.
const KEPT_WHILE_QUIET: usize = 8;

/// A queue for `capacity` entries: the senders' end and the writer's.
pub fn queue<T>(capacity: usize) -> (Queue<T>, Reader<T>) {
    let shared = Arc::new(Shared {
        entries: Mutex::new(Vec::new()),
        room: Quota::new(capacity),
        writer: AtomicWaker::new(),
        unannounced: AtomicBool::new(false),
        senders_gone: AtomicBool::new(false),
    });
    (
        Queue {
            senders: Arc::new(Senders {
                shared: Arc::clone(&shared),
            }),
        },
        Reader {
            shared,
            batch: Vec::new(),
        },
    )
}

struct Shared<T> {
    entries: Mutex<Vec<T>>,
    /// Room for entries: taken by senders, given back by the writer as it takes them out.
    room: Arc<Quota>,
    writer: AtomicWaker,
    /// Entries were added without waking the writer ([`Room::queue`]).
    unannounced: AtomicBool,
    /// The last sender's end is gone: the writer ends once the list is empty.
    senders_gone: AtomicBool,
}

/// What the senders' ends share: the last one dropped tells the writer.
struct Senders<T> {
    shared: Arc<Shared<T>>,
}

impl<T> Drop for Senders<T> {
    fn drop(&mut self) {
        self.shared.senders_gone.store(true, Ordering::Release);
        self.shared.writer.wake();
    }
}

/// Where entries are queued for the writer; cloned by everything that sends.
pub struct Queue<T> {
    senders: Arc<Senders<T>>,
}

/// Room for one entry in the queue, taken before the entry is added; given back if
/// dropped unused.
pub struct Room<'a, T> {
    shared: &'a Shared<T>,
    unit: Lent<'a>,
}

impl<T> Queue<T> {
    /// Whether entries were added with [`Room::queue`] since the writer last took the
    /// queue's entries out.
    pub fn unannounced(&self) -> bool {
        self.senders.shared.unannounced.load(Ordering::Acquire)
    }

    /// Room for an entry, if there is some now (none is while senders wait for room,
    /// unless the writer made more than they need).
    pub fn try_room(&self) -> Result<Option<Room<'_, T>>, Closed> {
        Ok(self.senders.shared.room.try_lend(1)?.map(|unit| Room {
            shared: &self.senders.shared,
            unit,
        }))
    }

    /// Room for an entry, once the writer has made some and the senders that waited
    /// before have theirs; [`Closed`] once the writer has ended.
    pub async fn room(&self) -> Result<Room<'_, T>, Closed> {
        let unit = self.senders.shared.room.lend(1).await?;
        Ok(Room {
            shared: &self.senders.shared,
            unit,
        })
    }

    /// Queues `entry` if there is room now; back if not, or if the writer has ended.
    pub fn try_send(&self, entry: T) -> Result<(), Refused<T>> {
        match self.try_room() {
            Ok(Some(room)) => {
                room.send(entry);
                Ok(())
            }
            Ok(None) => Err(Refused::Full(entry)),
            Err(Closed) => Err(Refused::Closed(entry)),
        }
    }

    /// Queues `entry` once there is room; [`Closed`] if the writer has ended.
    pub async fn send(&self, entry: T) -> Result<(), Closed> {
        self.room().await?.send(entry);
        Ok(())
    }
}

/// An entry [`Queue::try_send`] did not queue, given back.
#[derive(Debug, PartialEq, Eq)]
pub enum Refused<T> {
    /// No room now.
    Full(T),
    /// The writer has ended.
    Closed(T),
}

impl<T> fmt::Debug for Queue<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Queue")
            .field("room", &self.senders.shared.room.available())
            .field("senders", &Arc::strong_count(&self.senders))
            .finish()
    }
}

impl<T> fmt::Debug for Reader<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Reader")
            .field("room", &self.shared.room.available())
            .finish()
    }
}

impl<T> Clone for Queue<T> {
    fn clone(&self) -> Self {
        Self {
            senders: Arc::clone(&self.senders),
        }
    }
}

impl<T> Room<'_, T> {
    /// Adds `entry` to the queue, in the room taken for it.
    pub fn send(self, entry: T) {
        // the room is the writer's to give back, as it takes the entry out
        let _ = self.unit.into_units();
        lock(&self.shared.entries).push(entry);
        self.shared.writer.wake();
    }

    /// Adds `entry` without waking the writer: for the task that drives the writer
    /// itself, which looks at [`Queue::unannounced`] before it waits (waking the task
    /// that is running would only have it polled once more for nothing).
    pub fn queue(self, entry: T) {
        let _ = self.unit.into_units();
        lock(&self.shared.entries).push(entry);
        self.shared.unannounced.store(true, Ordering::Release);
    }
}

/// The writer's end: takes out everything queued at once. Dropped, it closes the queue:
/// senders waiting for room, and later ones, are refused.
pub struct Reader<T> {
    shared: Arc<Shared<T>>,
    /// The batch taken out last, kept for its memory: the next batch is swapped into it.
    batch: Vec<T>,
}

impl<T> Reader<T> {
    /// The entries queued, in the order queued, once there are some; `None` once every
    /// sender is gone and nothing is left. Cancel-safe: dropped before it completes, it
    /// has taken nothing.
    pub async fn next_batch(&mut self) -> Option<&mut Vec<T>> {
        self.batch.clear();
        poll_fn(|cx| self.poll_take(cx)).await?;
        Some(&mut self.batch)
    }

    fn poll_take(&mut self, cx: &mut Context<'_>) -> Poll<Option<()>> {
        if self.take() {
            return Poll::Ready(Some(()));
        }
        // registered before looking again: a frame queued from now on wakes this task
        self.shared.writer.register(cx.waker());
        if self.take() {
            return Poll::Ready(Some(()));
        }
        if self.shared.senders_gone.load(Ordering::Acquire) {
            // what the last senders queued before they went is taken out first
            return Poll::Ready(self.take().then_some(()));
        }
        if self.batch.capacity() > KEPT_WHILE_QUIET {
            // quiet after a burst: what it grew the lists to goes
            self.batch.shrink_to(KEPT_WHILE_QUIET);
            lock(&self.shared.entries).shrink_to(KEPT_WHILE_QUIET);
        }
        Poll::Pending
    }

    /// Swaps the queued entries into the batch (empty, its memory kept); `false` if none.
    fn take(&mut self) -> bool {
        self.shared.unannounced.store(false, Ordering::Relaxed);
        let mut entries = lock(&self.shared.entries);
        if entries.is_empty() {
            return false;
        }
        std::mem::swap(&mut *entries, &mut self.batch);
        drop(entries);
        self.shared.room.give_back(self.batch.len());
        true
    }
}

impl<T> Drop for Reader<T> {
    fn drop(&mut self) {
        self.shared.room.close();
    }
}

#[cfg(test)]
mod tests {
    use std::{future::Future, pin::pin};

    use super::*;

    fn poll_once<F: Future>(future: std::pin::Pin<&mut F>) -> Poll<F::Output> {
        let mut cx = Context::from_waker(std::task::Waker::noop());
        future.poll(&mut cx)
    }

    #[test]
    fn room_taken_and_not_used_is_given_back() {
        let (sender, _writer) = queue::<u8>(1);
        let room = sender.try_room().unwrap().expect("room for one");
        assert!(sender.try_room().unwrap().is_none());
        drop(room);
        let room = sender.try_room().unwrap().expect("the room given back");
        room.send(1);
        assert!(sender.try_room().unwrap().is_none(), "the entry holds it");
    }

    #[test]
    fn entries_come_out_in_batches_in_the_order_queued() {
        let (queue, mut reader) = queue(4);
        for id in 0..3 {
            queue.try_send(id).unwrap();
        }
        let mut next = pin!(reader.next_batch());
        let Poll::Ready(Some(batch)) = poll_once(next.as_mut()) else {
            panic!("three entries are queued");
        };
        assert_eq!(batch, &[0, 1, 2]);
    }

    #[test]
    fn an_entry_queued_quietly_wakes_nobody_and_is_announced_until_taken() {
        use std::sync::atomic::AtomicUsize;
        struct Count(AtomicUsize);
        impl std::task::Wake for Count {
            fn wake(self: Arc<Self>) {
                self.0.fetch_add(1, Ordering::Relaxed);
            }
        }
        let woken = Arc::new(Count(AtomicUsize::new(0)));
        let waker = std::task::Waker::from(Arc::clone(&woken));
        let (queue, mut reader) = queue(4);
        {
            let mut next = pin!(reader.next_batch());
            let mut cx = Context::from_waker(&waker);
            assert!(next.as_mut().poll(&mut cx).is_pending());
        }
        assert!(!queue.unannounced());
        queue.try_room().unwrap().unwrap().queue(1);
        assert_eq!(woken.0.load(Ordering::Relaxed), 0, "queued without a wake");
        assert!(queue.unannounced());
        queue.try_room().unwrap().unwrap().send(2);
        assert_eq!(woken.0.load(Ordering::Relaxed), 1, "sent with one");
        let mut next = pin!(reader.next_batch());
        let Poll::Ready(Some(batch)) = poll_once(next.as_mut()) else {
            panic!("two entries are queued");
        };
        assert_eq!(batch, &[1, 2]);
        assert!(!queue.unannounced(), "taken out");
    }

    #[test]
    fn a_full_queue_refuses_at_once_and_makes_senders_wait_in_line() {
        let (queue, mut reader) = queue(2);
        queue.try_send(0).unwrap();
        queue.try_send(1).unwrap();
        assert_eq!(queue.try_send(9), Err(Refused::Full(9)));
        let mut first = pin!(queue.send(2));
        let mut second = pin!(queue.send(3));
        assert!(poll_once(first.as_mut()).is_pending());
        assert!(poll_once(second.as_mut()).is_pending());
        {
            let mut next = pin!(reader.next_batch());
            let Poll::Ready(Some(batch)) = poll_once(next.as_mut()) else {
                panic!("two entries are queued");
            };
            assert_eq!(batch, &[0, 1]);
        }
        // room made: the waiting senders have it, before any newcomer
        assert_eq!(queue.try_send(9), Err(Refused::Full(9)));
        assert_eq!(poll_once(second.as_mut()), Poll::Ready(Ok(())));
        assert_eq!(poll_once(first.as_mut()), Poll::Ready(Ok(())));
        let mut next = pin!(reader.next_batch());
        let Poll::Ready(Some(batch)) = poll_once(next.as_mut()) else {
            panic!("two more are queued");
        };
        // each entry went in as its sender was polled
        assert_eq!(batch, &[3, 2]);
    }

    #[test]
    fn the_writer_ends_when_every_sender_is_gone_and_the_queue_is_empty() {
        let (queue, mut reader) = queue(2);
        let other = queue.clone();
        other.try_send(0).unwrap();
        drop(other);
        drop(queue);
        {
            let mut next = pin!(reader.next_batch());
            assert!(matches!(poll_once(next.as_mut()), Poll::Ready(Some(_))));
        }
        let mut next = pin!(reader.next_batch());
        assert!(matches!(poll_once(next.as_mut()), Poll::Ready(None)));
    }

    #[test]
    fn what_the_last_sender_queued_as_it_went_is_taken_out_before_the_end() {
        // the sender queues and goes on another thread, while the writer looks
        let runtime = tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap();
        for _ in 0..1_000 {
            let (queue, mut reader) = queue(2);
            let sender = std::thread::spawn(move || queue.try_send(7).unwrap());
            let mut taken = Vec::new();
            runtime.block_on(async {
                while let Some(batch) = reader.next_batch().await {
                    taken.append(batch);
                }
            });
            sender.join().unwrap();
            assert_eq!(taken, [7]);
        }
    }

    #[test]
    fn senders_are_refused_once_the_writer_is_gone() {
        let (queue, reader) = queue(1);
        queue.try_send(0).unwrap();
        let mut waiting = pin!(queue.send(1));
        assert!(poll_once(waiting.as_mut()).is_pending());
        drop(reader);
        assert_eq!(poll_once(waiting.as_mut()), Poll::Ready(Err(Closed)));
        assert_eq!(queue.try_send(2), Err(Refused::Closed(2)));
    }

    #[test]
    fn a_quiet_writer_lets_a_burst_s_memory_go() {
        let (queue, mut reader) = queue(64);
        for id in 0..64 {
            queue.try_send(id).unwrap();
        }
        {
            let mut next = pin!(reader.next_batch());
            assert!(matches!(poll_once(next.as_mut()), Poll::Ready(Some(_))));
        }
        {
            let mut next = pin!(reader.next_batch());
            assert!(poll_once(next.as_mut()).is_pending());
        }
        assert!(reader.batch.capacity() <= KEPT_WHILE_QUIET);
        assert!(lock(&reader.shared.entries).capacity() <= KEPT_WHILE_QUIET);
    }
}
