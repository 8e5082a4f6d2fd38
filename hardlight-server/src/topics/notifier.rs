//! Notifications about topics gaining their first or losing their last subscriber.

use hardlight_core::Topic;
use tokio::sync::mpsc;

/// A change in the set of topics that have subscribers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TopicNotification {
    /// The topic gained its first subscriber.
    Created(Topic),
    /// The topic lost its last subscriber (unsubscribed or disconnected).
    Removed(Topic),
}

/// Receives [`TopicNotification`]s, in order per topic; from `Server::get_topic_notifier()`.
///
/// Notifications are kept until received: read them promptly (e.g. to mirror topics into
/// an external broker), or drop the notifier to stop collecting them.
#[derive(Debug)]
pub struct TopicNotifier {
    pub(crate) rx: mpsc::UnboundedReceiver<TopicNotification>,
}

impl TopicNotifier {
    /// The next notification; `None` once the server is gone.
    pub async fn recv(&mut self) -> Option<TopicNotification> {
        self.rx.recv().await
    }
}
