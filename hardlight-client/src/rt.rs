//! The little the client needs from a runtime — spawning, sleeping, timeouts — from tokio
//! natively and from the browser's event loop in wasm.

use std::{future::Future, time::Duration};

/// The deadline passed.
#[derive(Debug)]
pub(crate) struct Elapsed;

/// Runs `future` to completion unless `limit` passes first. Not an `async fn`: that would
/// hold `future` twice (its argument, and inside the timeout it awaits), and a call's
/// future is most of what a call allocates.
#[cfg(feature = "native")]
pub(crate) fn timeout<F: Future>(
    limit: Duration,
    future: F,
) -> impl Future<Output = Result<F::Output, Elapsed>> {
    use futures_util::FutureExt;
    tokio::time::timeout(limit, future).map(|timed| timed.map_err(|_| Elapsed))
}

/// Waits for `duration`.
#[cfg(feature = "native")]
pub(crate) async fn sleep(duration: Duration) {
    tokio::time::sleep(duration).await;
}

/// Runs `future` to completion unless `limit` passes first.
#[cfg(all(feature = "wasm", not(feature = "native")))]
pub(crate) async fn timeout<F: Future>(limit: Duration, future: F) -> Result<F::Output, Elapsed> {
    use futures_util::future::{select, Either};
    match select(std::pin::pin!(future), std::pin::pin!(sleep(limit))).await {
        Either::Left((output, _)) => Ok(output),
        Either::Right(((), _)) => Err(Elapsed),
    }
}

/// Waits for `duration`.
#[cfg(all(feature = "wasm", not(feature = "native")))]
pub(crate) async fn sleep(duration: Duration) {
    let millis = u32::try_from(duration.as_millis()).unwrap_or(u32::MAX);
    gloo_timers::future::TimeoutFuture::new(millis).await;
}

/// Runs `future` in the background.
#[cfg(feature = "native")]
pub(crate) fn spawn(future: impl Future<Output = ()> + Send + 'static) {
    tokio::spawn(future);
}

/// Runs `future` in the background.
#[cfg(all(feature = "wasm", not(feature = "native")))]
pub(crate) fn spawn(future: impl Future<Output = ()> + 'static) {
    wasm_bindgen_futures::spawn_local(future);
}

/// Lets the other tasks of the runtime run, and its I/O driver look for events, before
/// going on (tokio defers the yielding task until after the driver was polled: a task
/// that only re-queued itself would keep the I/O of the others waiting).
#[cfg(feature = "native")]
pub(crate) async fn yield_now() {
    tokio::task::yield_now().await
}

/// Lets the other tasks of the executor run once.
#[cfg(all(feature = "wasm", not(feature = "native")))]
pub(crate) async fn yield_now() {
    let mut yielded = false;
    std::future::poll_fn(|cx| {
        if yielded {
            return std::task::Poll::Ready(());
        }
        yielded = true;
        cx.waker().wake_by_ref();
        std::task::Poll::Pending
    })
    .await
}

/// A number in [0, 1) that differs between calls and between processes (for backoff
/// jitter; not for cryptography).
#[cfg(feature = "native")]
pub(crate) fn random() -> f64 {
    use std::hash::{BuildHasher, Hasher};
    let mut hasher = std::hash::RandomState::new().build_hasher();
    hasher.write_u128(
        std::time::SystemTime::UNIX_EPOCH
            .elapsed()
            .map_or(0, |d| d.as_nanos()),
    );
    (hasher.finish() >> 11) as f64 / (1u64 << 53) as f64
}

/// A number in [0, 1) that differs between calls (for backoff jitter).
#[cfg(all(feature = "wasm", not(feature = "native")))]
pub(crate) fn random() -> f64 {
    js_sys::Math::random()
}

/// What a session calls when it ends.
#[cfg(feature = "native")]
pub(crate) type OnEnd = std::sync::Arc<dyn Fn(crate::error::TransportError) + Send + Sync>;

/// What a session calls when it ends.
#[cfg(all(feature = "wasm", not(feature = "native")))]
pub(crate) type OnEnd = std::sync::Arc<dyn Fn(crate::error::TransportError)>;
