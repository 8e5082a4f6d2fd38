//! A limit on how long something may wait, its timer set only once it waits.
//!
//! Most writes complete when first polled and most messages arrive whole. A
//! `tokio::time::timeout` around each would read the clock and build a timer for every
//! one, and register that timer with the runtime whenever the operation waits at all. A
//! [`WaitLimit`] keeps one timer for its owner's life and sets it only once what it
//! bounds is found waiting: an operation that completes at once costs neither a clock
//! read nor a timer.
//!
//! The clock therefore starts at the first poll that finds the operation waiting, not
//! when the operation begins; the two differ by the operation's first poll, which does
//! not wait.
//!
//! An [`IdleLimit`] does the same for a connection's silence: one timer per quiet
//! period, moved on only when it fires, not one per message heard. Polled while its
//! connection waits, again and again, it looks at its timer only once that has fired
//! (or the task polling it has changed): a timer polled afresh at every wait would
//! renew its waker each time for nothing.

use std::{
    future::Future,
    pin::Pin,
    task::{Context, Poll, Waker},
    time::Duration,
};

use pin_project_lite::pin_project;
use tokio::time::{sleep, sleep_until, Instant, Sleep};

/// How long an operation may wait, with a timer of its own set only when it does.
///
/// ```
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() {
/// use std::time::Duration;
/// use hardlight_core::wait::WaitLimit;
///
/// let mut limit = WaitLimit::new(Duration::from_millis(10));
/// // complete at once: no timer is set
/// assert_eq!(limit.run(async { 7 }).await, Some(7));
/// // never completes: given up once it has waited the limit
/// assert_eq!(limit.run(std::future::pending::<u8>()).await, None);
/// # }
/// ```
pub struct WaitLimit {
    limit: Duration,
    /// Allocated the first time something waits; reset for every wait after.
    timer: Option<Pin<Box<Sleep>>>,
    /// The timer is set for the wait under way.
    armed: bool,
}

impl WaitLimit {
    /// Waits of at most `limit`.
    pub fn new(limit: Duration) -> Self {
        Self {
            limit,
            timer: None,
            armed: false,
        }
    }

    /// The limit.
    pub fn limit(&self) -> Duration {
        self.limit
    }

    /// The wait under way is over: the next one starts the clock afresh.
    pub fn stop(&mut self) {
        self.armed = false;
    }

    /// Ready once the limit has passed since the first poll after the last
    /// [`stop`](WaitLimit::stop); poll it only while the operation it bounds waits.
    pub fn poll_expired(&mut self, cx: &mut Context<'_>) -> Poll<()> {
        let limit = self.limit;
        let timer = self.timer.get_or_insert_with(|| Box::pin(sleep(limit)));
        if !self.armed {
            timer.as_mut().reset(Instant::now() + limit);
            self.armed = true;
        }
        timer.as_mut().poll(cx)
    }

    /// Runs `operation` to its end, or gives `None` once it has waited the limit, counted
    /// from the first poll that found it waiting (the operation is dropped with the
    /// returned future).
    pub fn run<F: Future>(&mut self, operation: F) -> Run<'_, F> {
        self.stop();
        Run {
            operation,
            limit: self,
        }
    }
}

pin_project! {
    /// An operation within a [`WaitLimit`]: see [`WaitLimit::run`].
    #[must_use = "futures do nothing unless polled"]
    pub struct Run<'a, F> {
        #[pin]
        operation: F,
        limit: &'a mut WaitLimit,
    }
}

impl<F: Future> Future for Run<'_, F> {
    type Output = Option<F::Output>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.project();
        if let Poll::Ready(output) = this.operation.poll(cx) {
            return Poll::Ready(Some(output));
        }
        this.limit.poll_expired(cx).map(|()| None)
    }
}

/// How long a connection may go without hearing from its peer.
///
/// ```
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() {
/// use std::{future::poll_fn, time::Duration};
/// use hardlight_core::wait::IdleLimit;
///
/// let mut idle = IdleLimit::new(Duration::from_millis(10));
/// idle.heard(); // a message came
/// poll_fn(|cx| idle.poll_expired(cx)).await; // then nothing for 10 ms
/// # }
/// ```
pub struct IdleLimit {
    limit: Duration,
    /// When the peer was last heard from.
    heard: Instant,
    /// Fires at the deadline as it stood when last set; moved on only when it fires.
    timer: Pin<Box<Sleep>>,
    /// The waker `timer` holds, which it wakes when it fires: until then, polling the
    /// timer with it again changes nothing.
    waiting_with: Option<Waker>,
}

impl IdleLimit {
    /// A connection idle for at most `limit`, its peer heard from now.
    pub fn new(limit: Duration) -> Self {
        let heard = Instant::now();
        Self {
            limit,
            heard,
            timer: Box::pin(sleep_until(heard + limit)),
            waiting_with: None,
        }
    }

    /// The limit.
    pub fn limit(&self) -> Duration {
        self.limit
    }

    /// The peer was heard from: its silence starts again now.
    pub fn heard(&mut self) {
        self.heard = Instant::now();
    }

    /// Ready once the peer has not been heard from for the limit.
    pub fn poll_expired(&mut self, cx: &mut Context<'_>) -> Poll<()> {
        let waker = cx.waker();
        let registered = self
            .waiting_with
            .as_ref()
            .is_some_and(|w| w.will_wake(waker));
        // a timer that fired is no longer registered; one that still is will wake `waker`
        if registered && !self.timer.is_elapsed() {
            return Poll::Pending;
        }
        loop {
            if self.timer.as_mut().poll(cx).is_pending() {
                if !registered {
                    self.waiting_with = Some(waker.clone());
                }
                return Poll::Pending;
            }
            let deadline = self.heard + self.limit;
            if deadline <= Instant::now() {
                return Poll::Ready(());
            }
            self.timer.as_mut().reset(deadline);
        }
    }
}

#[cfg(test)]
mod tests {
    use std::{
        future::poll_fn,
        sync::{
            atomic::{AtomicUsize, Ordering},
            Arc,
        },
    };

    use super::*;

    /// A future that waits `polls` times (waking itself) before it completes.
    fn after(polls: usize) -> impl Future<Output = usize> {
        let mut left = polls;
        poll_fn(move |cx| {
            if left == 0 {
                return Poll::Ready(polls);
            }
            left -= 1;
            cx.waker().wake_by_ref();
            Poll::Pending
        })
    }

    #[tokio::test(start_paused = true)]
    async fn an_operation_that_completes_at_once_sets_no_timer() {
        let mut limit = WaitLimit::new(Duration::from_secs(1));
        assert_eq!(limit.run(after(0)).await, Some(0));
        assert!(limit.timer.is_none());
    }

    #[tokio::test(start_paused = true)]
    async fn an_operation_that_waits_within_the_limit_completes() {
        let mut limit = WaitLimit::new(Duration::from_secs(1));
        assert_eq!(limit.run(after(3)).await, Some(3));
        assert!(limit.timer.is_some());
    }

    #[tokio::test(start_paused = true)]
    async fn each_wait_gets_the_whole_limit() {
        let mut limit = WaitLimit::new(Duration::from_secs(1));
        for _ in 0..3 {
            let slow = async {
                tokio::time::sleep(Duration::from_millis(900)).await;
                1
            };
            assert_eq!(limit.run(slow).await, Some(1));
        }
        let too_slow = tokio::time::sleep(Duration::from_millis(1100));
        assert_eq!(limit.run(too_slow).await, None);
    }

    #[tokio::test(start_paused = true)]
    async fn idle_expires_the_limit_after_the_peer_was_last_heard() {
        let mut idle = IdleLimit::new(Duration::from_secs(10));
        let started = Instant::now();
        for _ in 0..3 {
            tokio::time::sleep(Duration::from_secs(6)).await;
            idle.heard();
        }
        poll_fn(|cx| idle.poll_expired(cx)).await;
        assert_eq!(started.elapsed(), Duration::from_secs(28));
    }

    /// Polled at every wait, as a connection polls it: the timer that fires mid-silence
    /// is moved on, and the limit still counts from the last message.
    #[tokio::test(start_paused = true)]
    async fn idle_polled_at_every_wait_expires_the_limit_after_the_last_message() {
        let mut idle = IdleLimit::new(Duration::from_secs(10));
        let started = Instant::now();
        for _ in 0..3 {
            for _ in 0..3 {
                tokio::select! {
                    biased;
                    () = tokio::time::sleep(Duration::from_secs(2)) => {}
                    () = poll_fn(|cx| idle.poll_expired(cx)) => panic!("expired while heard from"),
                }
            }
            idle.heard();
        }
        poll_fn(|cx| idle.poll_expired(cx)).await;
        assert_eq!(started.elapsed(), Duration::from_secs(28));
    }

    /// Counts its wakes.
    struct Counted(AtomicUsize);

    impl std::task::Wake for Counted {
        fn wake(self: Arc<Self>) {
            self.0.fetch_add(1, Ordering::SeqCst);
        }
    }

    /// A limit polled by another task than before wakes that one when it expires.
    #[tokio::test(start_paused = true)]
    async fn idle_wakes_the_task_that_polled_it_last() {
        let mut idle = IdleLimit::new(Duration::from_secs(10));
        let (first, second) = (
            Arc::new(Counted(AtomicUsize::new(0))),
            Arc::new(Counted(AtomicUsize::new(0))),
        );
        for counted in [&first, &second] {
            let waker = Waker::from(Arc::clone(counted));
            assert!(idle
                .poll_expired(&mut Context::from_waker(&waker))
                .is_pending());
        }
        tokio::time::sleep(Duration::from_secs(11)).await;
        assert_eq!(first.0.load(Ordering::SeqCst), 0);
        assert_eq!(second.0.load(Ordering::SeqCst), 1);
        let waker = Waker::from(second);
        assert!(idle
            .poll_expired(&mut Context::from_waker(&waker))
            .is_ready());
    }
}
