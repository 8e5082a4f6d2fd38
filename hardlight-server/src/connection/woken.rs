//! Futures polled only once one of them has woken. A connection's control arms (the
//! shutdown, a takeover, the end of its push stream or of its writer) wait beside its
//! reads; polled afresh for every frame read, each would check its state and renew its
//! waker every time, at a few hundred instructions per call (BENCHMARKS.md, "Control arms
//! polled when woken"). Behind a [`Woken`] they are polled when one of them has been woken
//! since, and at first.

use std::{
    future::poll_fn,
    sync::{
        atomic::{AtomicBool, Ordering},
        Arc,
    },
    task::{Context, Poll, Wake, Waker},
};

use futures_util::task::AtomicWaker;

/// The waker the arms are polled with, and whether it was woken.
pub(crate) struct Woken {
    flag: Arc<Flag>,
    waker: Waker,
}

struct Flag {
    woken: AtomicBool,
    /// The task polling the arms.
    task: AtomicWaker,
}

impl Wake for Flag {
    fn wake(self: Arc<Self>) {
        self.wake_by_ref();
    }

    fn wake_by_ref(self: &Arc<Self>) {
        self.woken.store(true, Ordering::Release);
        self.task.wake();
    }
}

impl Woken {
    pub(crate) fn new() -> Self {
        let flag = Arc::new(Flag {
            woken: AtomicBool::new(true),
            task: AtomicWaker::new(),
        });
        Self {
            waker: Waker::from(Arc::clone(&flag)),
            flag,
        }
    }

    /// Polls `arms` with this gate's waker if one of them has woken since they were last
    /// polled (or they never were); otherwise `Pending` at once, the calling task to be
    /// woken when one of them is. Whatever `arms` polls must live across these calls: a
    /// future dropped after `Pending` would never wake them again.
    pub(crate) fn poll<T>(
        &self,
        cx: &mut Context<'_>,
        arms: impl FnOnce(&mut Context<'_>) -> Poll<T>,
    ) -> Poll<T> {
        self.flag.task.register(cx.waker());
        if !self.flag.woken.swap(false, Ordering::AcqRel) {
            return Poll::Pending;
        }
        let polled = arms(&mut Context::from_waker(&self.waker));
        if polled.is_ready() {
            // the arms after the one that completed were not polled: all of them are, next
            self.flag.woken.store(true, Ordering::Release);
        }
        polled
    }

    /// Whether one of the arms has woken since they were last polled (or they never
    /// were): the next poll polls them.
    pub(crate) fn is_woken(&self) -> bool {
        self.flag.woken.load(Ordering::Acquire)
    }

    /// Has the arms polled at the next turn, woken or not: what one of them looks at
    /// changed without waking it.
    pub(crate) fn renew(&self) {
        self.flag.woken.store(true, Ordering::Release);
    }

    /// Completes with the first arm that completes; see [`Woken::poll`]. Cancel-safe when
    /// each arm is.
    pub(crate) async fn next<T>(&self, mut arms: impl FnMut(&mut Context<'_>) -> Poll<T>) -> T {
        poll_fn(|cx| self.poll(cx, &mut arms)).await
    }
}

#[cfg(test)]
mod tests {
    use std::{future::Future, pin::pin};

    use futures_util::FutureExt;

    use tokio::sync::Notify;

    use super::Woken;

    #[tokio::test]
    async fn an_arm_is_polled_again_only_once_woken() {
        let notify = Notify::new();
        let woken = Woken::new();
        let mut notified = pin!(notify.notified());
        let mut polls = 0;
        let mut arms = |cx: &mut std::task::Context<'_>| {
            polls += 1;
            notified.as_mut().poll(cx)
        };
        {
            let mut next = pin!(woken.next(&mut arms));
            // the first poll polls the arm; the next ones, with nothing woken, do not
            for _ in 0..3 {
                assert!(next.as_mut().now_or_never().is_none());
            }
            notify.notify_one();
            assert_eq!(next.as_mut().now_or_never(), Some(()));
        }
        assert_eq!(polls, 2);
    }
}
