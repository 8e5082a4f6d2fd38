//! Topics and events: the hub that maps topics to subscribed connections, per-connection
//! outboxes, emitters, handler subscriptions and topic notifications.

mod emitter;
mod encoded;
mod hub;
mod notifier;
mod outbox;
mod subscriptions;

pub use emitter::{EmitError, EventEmitter};
pub(crate) use encoded::EncodedEvent;
pub(crate) use hub::Hub;
pub use notifier::{TopicNotification, TopicNotifier};
pub use outbox::SlowConsumerPolicy;
pub(crate) use outbox::{Bounds, Outbox};
pub use subscriptions::{SubscribeError, Subscriptions};
