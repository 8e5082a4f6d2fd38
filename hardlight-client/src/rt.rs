//! The little the client needs from a runtime — spawning, sleeping, timeouts — from tokio
//! natively and from the browser's event loop in wasm.

use std::{future::Future, time::Duration};

/// The deadline passed.
#[derive(Debug)]
pub(crate) struct Elapsed;

/// Runs `future` to completion unless `limit` passes first.
#[cfg(feature = "native")]
pub(crate) async fn timeout<F: Future>(limit: Duration, future: F) -> Result<F::Output, Elapsed> {
    tokio::time::timeout(limit, future)
        .await
        .map_err(|_| Elapsed)
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
