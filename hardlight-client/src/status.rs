//! The connection's status, for applications that show it or react to reconnections.

use tokio::sync::watch;

use crate::{
    config::TransportKind,
    error::{ConnectError, TransportError},
};

/// Where the client's connection stands.
///
/// ```
/// use hardlight_client::ConnectionStatus;
/// let status = ConnectionStatus::Disconnected { error: None };
/// assert!(!status.is_connected());
/// ```
#[derive(Debug, Clone)]
#[non_exhaustive]
pub enum ConnectionStatus {
    /// Not connected: before `connect()`, after `disconnect()`, or after reconnecting
    /// gave up (`error` says why).
    Disconnected {
        /// Why the client stopped trying, if it did not stop on request.
        error: Option<StatusError>,
    },
    /// Connected.
    Connected {
        /// The transport in use.
        transport: TransportKind,
        /// Whether this connection resumed the previous session (state, subscriptions and
        /// missed events intact) rather than starting a new one.
        resumed: bool,
    },
    /// The connection was lost; the client is trying again.
    Reconnecting {
        /// The attempt about to be made (from 1).
        attempt: u32,
        /// Why the connection was lost or the last attempt failed.
        error: StatusError,
    },
}

/// Why a client is not connected, in its [`ConnectionStatus`].
#[derive(Debug, Clone, thiserror::Error)]
#[non_exhaustive]
pub enum StatusError {
    /// The connection was lost (or closed by the server, `TransportError::Closed` says
    /// why).
    #[error("connection lost")]
    Lost(#[source] TransportError),
    /// A connection attempt failed.
    #[error("connection attempt failed")]
    Connect(#[source] ConnectError),
    /// Reconnecting stopped after `ClientConfig::with_reconnect`'s `max_attempts`.
    #[error("gave up reconnecting after {attempts} attempts")]
    GaveUp {
        /// Attempts made.
        attempts: u32,
        /// Why the last one failed.
        #[source]
        last: Box<StatusError>,
    },
}

impl ConnectionStatus {
    /// Whether this is [`ConnectionStatus::Connected`].
    pub fn is_connected(&self) -> bool {
        matches!(self, Self::Connected { .. })
    }
}

/// Watches a client's [`ConnectionStatus`] (`client.watch_status()`).
#[derive(Debug, Clone)]
pub struct StatusWatcher {
    pub(crate) rx: watch::Receiver<ConnectionStatus>,
}

impl StatusWatcher {
    /// The status now.
    pub fn current(&self) -> ConnectionStatus {
        self.rx.borrow().clone()
    }

    /// Waits for the next change and returns the new status; `None` once the client is
    /// gone.
    pub async fn changed(&mut self) -> Option<ConnectionStatus> {
        self.rx.changed().await.ok()?;
        Some(self.current())
    }

    /// Waits until `f` holds for the status and returns it; `None` once the client is
    /// gone.
    pub async fn wait_for(
        &mut self,
        f: impl FnMut(&ConnectionStatus) -> bool,
    ) -> Option<ConnectionStatus> {
        self.rx.wait_for(f).await.ok().map(|s| s.clone())
    }
}
