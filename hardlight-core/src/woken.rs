//! Futures polled only once one of them has woken. A connection's control arms (on the
//! server its shutdown, a takeover, the end of its push stream or of its writer; on the
//! client its writer's close and the server's pings) wait beside its reads or writes;
//! polled afresh at every frame, each would check its state and renew its waker every
//! time, at a few hundred instructions per call (BENCHMARKS.md, "Control arms polled when
//! woken"). Behind a [`Woken`] they are polled when one of them has been woken since, and
//! at first.

use std::{
    future::poll_fn,
    mem,
    sync::{
        atomic::{AtomicBool, Ordering},
        Arc,
    },
    task::{Context, Poll, Wake, Waker},
};

use futures_util::task::AtomicWaker;

/// The waker the arms are polled with, and whether it was woken.
///
/// The polling task's waker is registered with the arms' waker only when a wake may have
/// taken it: polled again and again while nothing woke, the gate costs a flag's load.
pub struct Woken {
    flag: Arc<Flag>,
    waker: Waker,
    /// The polling task's waker, while the flag's registration of it stands: no wake has
    /// taken it since, or one did and set the flag first.
    registered: Option<Waker>,
    /// The arms are polled at the next turn, woken or not.
    renewed: bool,
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
        // the flag first: a poll that finds it clear still holds its registration
        self.woken.store(true, Ordering::Release);
        self.task.wake();
    }
}

impl Default for Woken {
    fn default() -> Self {
        Self::new()
    }
}

impl std::fmt::Debug for Woken {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Woken")
            .field("woken", &self.is_woken())
            .finish_non_exhaustive()
    }
}

impl Woken {
    /// A gate whose arms are polled at its first poll.
    pub fn new() -> Self {
        let flag = Arc::new(Flag {
            woken: AtomicBool::new(false),
            task: AtomicWaker::new(),
        });
        Self {
            waker: Waker::from(Arc::clone(&flag)),
            flag,
            registered: None,
            renewed: true,
        }
    }

    /// Polls `arms` with this gate's waker if one of them has woken since they were last
    /// polled (or they never were); otherwise `Pending` at once, the calling task to be
    /// woken when one of them is. Whatever `arms` polls must live across these calls: a
    /// future dropped after `Pending` would never wake them again.
    pub fn poll<T>(
        &mut self,
        cx: &mut Context<'_>,
        arms: impl FnOnce(&mut Context<'_>) -> Poll<T>,
    ) -> Poll<T> {
        let task = cx.waker();
        if !self.registered.as_ref().is_some_and(|r| r.will_wake(task)) {
            self.flag.task.register(task);
            self.registered = Some(task.clone());
        }
        if self.flag.woken.swap(false, Ordering::AcqRel) {
            // the wake took the registration, or is about to (and wakes the task with
            // it): registered afresh now, and at the next poll
            self.flag.task.register(task);
            self.registered = None;
        } else if !mem::take(&mut self.renewed) {
            return Poll::Pending;
        }
        let polled = arms(&mut Context::from_waker(&self.waker));
        if polled.is_ready() {
            // the arms after the one that completed were not polled: all of them are, next
            self.renewed = true;
        }
        polled
    }

    /// Whether one of the arms has woken since they were last polled (or they never
    /// were): the next poll polls them.
    #[inline]
    pub fn is_woken(&self) -> bool {
        self.renewed || self.flag.woken.load(Ordering::Acquire)
    }

    /// Has the arms polled at the next turn, woken or not: what one of them looks at
    /// changed without waking it.
    #[inline]
    pub fn renew(&mut self) {
        self.renewed = true;
    }

    /// Completes with the first arm that completes; see [`Woken::poll`]. Cancel-safe when
    /// each arm is.
    pub async fn next<T>(&mut self, mut arms: impl FnMut(&mut Context<'_>) -> Poll<T>) -> T {
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
        let mut woken = Woken::new();
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

    /// Woken from another thread again and again, at any point of its task's polls (the
    /// wake racing the registration): no wake is lost, or the task would wait forever.
    #[test]
    fn wakes_from_another_thread_are_never_lost() {
        const ROUNDS: u32 = 20_000;
        let (done_tx, done_rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .build()
                .unwrap();
            runtime.block_on(async {
                let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel::<u32>();
                let (back_tx, back_rx) = std::sync::mpsc::channel::<()>();
                let sender = std::thread::spawn(move || {
                    for round in 0..ROUNDS {
                        tx.send(round).unwrap();
                        back_rx.recv().unwrap();
                    }
                });
                let mut woken = Woken::new();
                for round in 0..ROUNDS {
                    assert_eq!(woken.next(|cx| rx.poll_recv(cx)).await, Some(round));
                    back_tx.send(()).unwrap();
                }
                sender.join().unwrap();
            });
            done_tx.send(()).unwrap();
        });
        // a lost wake leaves the task waiting forever: far longer than the rounds take
        done_rx
            .recv_timeout(std::time::Duration::from_secs(300))
            .expect("a wake was lost");
    }
}
