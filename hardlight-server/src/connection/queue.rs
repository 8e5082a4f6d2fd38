//! The frames waiting for a connection's writer task: a list behind a lock that the
//! writer empties in one go, with room for a fixed number of frames counted by a
//! [`Quota`]. A sender finds room with one atomic operation (or waits for it in a fair
//! line while the writer is backed up) and takes the lock once to add its frame; the
//! writer takes the lock once per batch and gives the batch's room back at once. (A
//! bounded channel takes a lock for every frame received, to give its room back.)

use std::{
    future::poll_fn,
    sync::{
        atomic::{AtomicUsize, Ordering},
        Arc, Mutex,
    },
    task::{Context, Poll},
};

use futures_util::task::AtomicWaker;
use hardlight_core::quota::{Closed, Quota, Share};

use super::mux::Outgoing;
use crate::sync::lock;

/// Entries a batch's list keeps while its connection is quiet (its memory, not its
/// frames): enough for the usual batch, without holding a burst's worth when idle.
const KEPT_WHILE_QUIET: usize = 8;

/// A queue for `capacity` frames: the senders' end and the writer's.
pub(crate) fn queue(capacity: usize) -> (Queue, Reader) {
    let shared = Arc::new(Shared {
        frames: Mutex::new(Vec::new()),
        room: Quota::new(capacity),
        writer: AtomicWaker::new(),
        senders: AtomicUsize::new(1),
    });
    (
        Queue {
            shared: Arc::clone(&shared),
        },
        Reader {
            shared,
            batch: Vec::new(),
        },
    )
}

struct Shared {
    frames: Mutex<Vec<Outgoing>>,
    /// Room for frames: taken by senders, given back by the writer as it takes them out.
    room: Arc<Quota>,
    writer: AtomicWaker,
    /// The senders' ends: the writer ends when the last is gone and the list is empty.
    senders: AtomicUsize,
}

/// Where frames are queued for the writer; cloned by everything that sends.
pub(crate) struct Queue {
    shared: Arc<Shared>,
}

/// Room for one frame in the queue, taken before the frame is added.
pub(crate) struct Room<'a> {
    shared: &'a Shared,
    share: Share,
}

impl Queue {
    /// Room for a frame, if there is some now and no sender is waiting for room.
    pub(crate) fn try_room(&self) -> Result<Option<Room<'_>>, Closed> {
        Ok(self.shared.room.try_take(1)?.map(|share| Room {
            shared: &self.shared,
            share,
        }))
    }

    /// Room for a frame, once the writer has made some and the senders that waited
    /// before have theirs; [`Closed`] once the writer has ended.
    pub(crate) async fn room(&self) -> Result<Room<'_>, Closed> {
        let share = self.shared.room.take(1).await?;
        Ok(Room {
            shared: &self.shared,
            share,
        })
    }

    /// Queues `out` if there is room now; `false` if not, or if the writer has ended.
    pub(crate) fn try_send(&self, out: Outgoing) -> bool {
        match self.try_room() {
            Ok(Some(room)) => {
                room.send(out);
                true
            }
            Ok(None) | Err(Closed) => false,
        }
    }

    /// Queues `out` once there is room; `false` if the writer has ended.
    pub(crate) async fn send(&self, out: Outgoing) -> bool {
        match self.room().await {
            Ok(room) => {
                room.send(out);
                true
            }
            Err(Closed) => false,
        }
    }
}

impl Clone for Queue {
    fn clone(&self) -> Self {
        self.shared.senders.fetch_add(1, Ordering::Relaxed);
        Self {
            shared: Arc::clone(&self.shared),
        }
    }
}

impl Drop for Queue {
    fn drop(&mut self) {
        if self.shared.senders.fetch_sub(1, Ordering::AcqRel) == 1 {
            self.shared.writer.wake();
        }
    }
}

impl Room<'_> {
    /// Adds `out` to the queue, in the room taken for it.
    pub(crate) fn send(self, out: Outgoing) {
        // the room is the writer's to give back, as it takes the frame out
        let _ = self.share.into_units();
        lock(&self.shared.frames).push(out);
        self.shared.writer.wake();
    }
}

/// The writer's end: takes out everything queued at once. Dropped, it closes the queue:
/// senders waiting for room, and later ones, are refused.
pub(crate) struct Reader {
    shared: Arc<Shared>,
    /// The batch taken out last, kept for its memory: the next batch is swapped into it.
    batch: Vec<Outgoing>,
}

impl Reader {
    /// The frames queued, in the order queued, once there are some; `None` once every
    /// sender is gone and nothing is left.
    pub(crate) async fn next_batch(&mut self) -> Option<&mut Vec<Outgoing>> {
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
        if self.shared.senders.load(Ordering::Acquire) == 0 {
            return Poll::Ready(None);
        }
        if self.batch.capacity() > KEPT_WHILE_QUIET {
            // quiet after a burst: what it grew the lists to goes
            self.batch.shrink_to(KEPT_WHILE_QUIET);
            lock(&self.shared.frames).shrink_to(KEPT_WHILE_QUIET);
        }
        Poll::Pending
    }

    /// Swaps the queued frames into the batch (empty, its memory kept); `false` if none.
    fn take(&mut self) -> bool {
        let mut frames = lock(&self.shared.frames);
        if frames.is_empty() {
            return false;
        }
        std::mem::swap(&mut *frames, &mut self.batch);
        drop(frames);
        self.shared.room.give_back(self.batch.len());
        true
    }
}

impl Drop for Reader {
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

    fn ids(batch: &[Outgoing]) -> Vec<u64> {
        batch
            .iter()
            .map(|out| match out {
                Outgoing::Frame(frame, _) => frame[0].into(),
                _ => u64::MAX,
            })
            .collect()
    }

    #[test]
    fn frames_come_out_in_batches_in_the_order_queued() {
        let (queue, mut reader) = queue(4);
        for id in 0..3 {
            assert!(queue.try_send(Outgoing::frame(vec![id])));
        }
        let mut next = pin!(reader.next_batch());
        let Poll::Ready(Some(batch)) = poll_once(next.as_mut()) else {
            panic!("three frames are queued");
        };
        assert_eq!(ids(batch), [0, 1, 2]);
    }

    #[test]
    fn a_full_queue_refuses_at_once_and_makes_senders_wait_in_line() {
        let (queue, mut reader) = queue(2);
        assert!(queue.try_send(Outgoing::frame(vec![0])));
        assert!(queue.try_send(Outgoing::frame(vec![1])));
        assert!(!queue.try_send(Outgoing::frame(vec![9])), "full");
        let mut first = pin!(queue.send(Outgoing::frame(vec![2])));
        let mut second = pin!(queue.send(Outgoing::frame(vec![3])));
        assert!(poll_once(first.as_mut()).is_pending());
        assert!(poll_once(second.as_mut()).is_pending());
        {
            let mut next = pin!(reader.next_batch());
            let Poll::Ready(Some(batch)) = poll_once(next.as_mut()) else {
                panic!("two frames are queued");
            };
            assert_eq!(ids(batch), [0, 1]);
        }
        // room made: the waiting senders have it, in order, before any newcomer
        assert!(!queue.try_send(Outgoing::frame(vec![9])));
        assert_eq!(poll_once(second.as_mut()), Poll::Ready(true));
        assert_eq!(poll_once(first.as_mut()), Poll::Ready(true));
        let mut next = pin!(reader.next_batch());
        let Poll::Ready(Some(batch)) = poll_once(next.as_mut()) else {
            panic!("two more are queued");
        };
        // both had their room; each frame went in as its sender was polled
        assert_eq!(ids(batch), [3, 2]);
    }

    #[test]
    fn the_writer_ends_when_every_sender_is_gone_and_the_queue_is_empty() {
        let (queue, mut reader) = queue(2);
        let other = queue.clone();
        assert!(other.try_send(Outgoing::frame(vec![0])));
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
    fn senders_are_refused_once_the_writer_is_gone() {
        let (queue, reader) = queue(1);
        assert!(queue.try_send(Outgoing::frame(vec![0])));
        let mut waiting = pin!(queue.send(Outgoing::frame(vec![1])));
        assert!(poll_once(waiting.as_mut()).is_pending());
        drop(reader);
        assert_eq!(poll_once(waiting.as_mut()), Poll::Ready(false));
        assert!(!queue.try_send(Outgoing::frame(vec![2])));
    }
}
