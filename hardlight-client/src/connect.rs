//! Choosing a transport: QUIC (WebTransport in the browser), WebSocket, or both raced
//! with a head start for QUIC.

use hardlight_core::Service;

use crate::{config::ClientConfig, connection::Connected, error::ConnectError, rt};

/// Connects over the configured transport within the connect timeout.
pub(crate) async fn connect<S: Service>(config: &ClientConfig) -> Result<Connected, ConnectError> {
    rt::timeout(config.connect_timeout, attempt::<S>(config))
        .await
        .map_err(|_| ConnectError::Timeout(config.connect_timeout))?
}

#[cfg(feature = "native")]
async fn attempt<S: Service>(config: &ClientConfig) -> Result<Connected, ConnectError> {
    use crate::{config::Transport, quic::QuicConnection, ws::WsConnection};
    if let Some(memory) = &config.memory {
        return WsConnection::connect_in_memory::<S>(memory, config).await;
    }
    match config.transport {
        Transport::Quic => QuicConnection::connect::<S>(config).await,
        Transport::WebSocket => WsConnection::connect::<S>(config).await,
        Transport::Auto => {
            let websocket = async {
                rt::sleep(config.quic_head_start).await;
                WsConnection::connect::<S>(config).await
            };
            race(QuicConnection::connect::<S>(config), websocket).await
        }
    }
}

/// In the browser QUIC is WebTransport: tried first, WebSocket racing it after the head
/// start, or at once where the browser has no WebTransport.
#[cfg(all(feature = "wasm", not(feature = "native")))]
async fn attempt<S: Service>(config: &ClientConfig) -> Result<Connected, ConnectError> {
    use crate::{config::Transport, webtransport::WtConnection, ws::BrowserConnection};
    match config.transport {
        Transport::Quic => WtConnection::connect::<S>(config).await,
        Transport::WebSocket => BrowserConnection::connect::<S>(config).await,
        Transport::Auto if !WtConnection::available(config) => {
            BrowserConnection::connect::<S>(config).await
        }
        Transport::Auto => {
            let websocket = async {
                rt::sleep(config.quic_head_start).await;
                BrowserConnection::connect::<S>(config).await
            };
            race(WtConnection::connect::<S>(config), websocket).await
        }
    }
}

/// The first success of `a` and `b`; if both fail, the more telling error: a refusal by
/// the server beats a transport failure, and otherwise `a`'s error is kept.
async fn race<T>(
    a: impl std::future::Future<Output = Result<T, ConnectError>>,
    b: impl std::future::Future<Output = Result<T, ConnectError>>,
) -> Result<T, ConnectError> {
    use futures_util::future::{select, Either};
    use std::pin::pin;
    match select(pin!(a), pin!(b)).await {
        Either::Left((Ok(won), _)) | Either::Right((Ok(won), _)) => Ok(won),
        Either::Left((Err(a_error), b)) => b.await.map_err(|b_error| telling(a_error, b_error)),
        Either::Right((Err(b_error), a)) => a.await.map_err(|a_error| telling(a_error, b_error)),
    }
}

fn telling(a: ConnectError, b: ConnectError) -> ConnectError {
    let answered = |e: &ConnectError| {
        matches!(
            e,
            ConnectError::Rejected { .. } | ConnectError::VersionMismatch { .. }
        )
    };
    if !answered(&a) && answered(&b) {
        b
    } else {
        a
    }
}
