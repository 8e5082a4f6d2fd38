//! Choosing a transport: QUIC, WebSocket, or both raced with a head start for QUIC.

use std::{future::Future, pin::pin};

use futures_util::future::{select, Either};
use hardlight_core::Service;

use crate::{
    config::{ClientConfig, Transport},
    error::ConnectError,
    quic::QuicSession,
    session::Connected,
    ws::WsSession,
};

/// Connects over the configured transport within the connect timeout.
pub(crate) async fn connect<S: Service>(config: &ClientConfig) -> Result<Connected, ConnectError> {
    let attempt = async {
        match config.transport {
            Transport::Quic => QuicSession::connect::<S>(config).await,
            Transport::WebSocket => WsSession::connect::<S>(config).await,
            Transport::Auto => {
                let websocket = async {
                    tokio::time::sleep(config.quic_head_start).await;
                    WsSession::connect::<S>(config).await
                };
                race(QuicSession::connect::<S>(config), websocket).await
            }
        }
    };
    tokio::time::timeout(config.connect_timeout, attempt)
        .await
        .map_err(|_| ConnectError::Timeout(config.connect_timeout))?
}

/// The first success of `a` and `b`; if both fail, the more telling error: a refusal by
/// the server beats a transport failure, and otherwise `a`'s error is kept.
async fn race<T>(
    a: impl Future<Output = Result<T, ConnectError>>,
    b: impl Future<Output = Result<T, ConnectError>>,
) -> Result<T, ConnectError> {
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
