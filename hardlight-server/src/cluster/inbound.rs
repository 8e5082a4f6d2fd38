//! Events and gap announcements from the other servers, checked and handed to local
//! subscribers.

use std::sync::Arc;

use async_nats::Message;
use bytes::Bytes;
use hardlight_core::{codec, Compression, ProtocolError, Topic};
use tracing::{debug, warn};

use super::{interest::Marks, stats::ClusterCounters, subject::Subjects};
use crate::topics::{EncodedEvent, Hub};

/// The header naming the schema hash of the service that published a message.
pub(crate) const SCHEMA_HEADER: &str = "Hardlight-Schema";

/// Validates an event body of the service's event type and tells whether it is of the
/// topic given.
pub(crate) type IsEventOf = fn(&[u8], &Topic) -> Result<bool, ProtocolError>;

/// Where messages from NATS go.
pub(crate) struct Inbound {
    pub(crate) hub: Arc<Hub>,
    pub(crate) subjects: Subjects,
    /// This server's [`SCHEMA_HEADER`] value.
    pub(crate) schema: String,
    pub(crate) is_event_of: IsEventOf,
    pub(crate) compression: Compression,
    pub(crate) counters: Arc<ClusterCounters>,
    pub(crate) marks: Arc<Marks>,
}

impl Inbound {
    /// Delivers an event of `topic`, received on its subscription, to this server's
    /// subscribers of it, once it has checked the sender's schema and that the archive is
    /// a valid event of that topic. An event the memory budget cannot take is reported as
    /// a gap, in its place; `gapped` (kept by the subscription's task) makes a run of them
    /// one gap.
    pub(crate) fn deliver(&self, topic: &Topic, message: Message, gapped: &mut bool) {
        self.counters.received();
        if !self.same_schema(&message) {
            return;
        }
        let Some(subscribers) = self.hub.subscribers(topic) else {
            return; // the topic lingers with no subscriber left
        };
        let body = codec::realign(&message.payload);
        match (self.is_event_of)(&body, topic) {
            Ok(true) => {}
            Ok(false) => {
                warn!(subject = %message.subject, %topic, "cluster event refused: of another topic than its subject's");
                self.counters.rejected();
                return;
            }
            Err(error) => {
                warn!(subject = %message.subject, %error, "cluster event refused: not a valid event");
                self.counters.rejected();
                return;
            }
        }
        let Ok(charge) = self.hub.memory().charge(body.len() as u64) else {
            self.counters.dropped();
            if !std::mem::replace(gapped, true) {
                self.counters.gaps(self.hub.gap(topic));
            }
            return;
        };
        *gapped = false;
        let event = EncodedEvent::event(Bytes::from_owner(body), self.compression, charge);
        let event = Arc::new(event);
        for outbox in subscribers.iter() {
            outbox.push(Arc::clone(&event));
        }
    }

    /// Marks the topics another server announces it may have failed to forward.
    pub(crate) fn announced(&self, message: Message) {
        if !self.same_schema(&message) {
            return;
        }
        match codec::decode::<(u64, Option<Vec<Topic>>)>(&message.payload) {
            Ok((origin, topics)) => {
                debug!(origin = format_args!("{origin:016x}"), "gap announced");
                match topics {
                    Some(topics) => topics.iter().for_each(|topic| self.marks.mark(topic)),
                    None => self.marks.mark_all(),
                }
            }
            Err(error) => {
                warn!(%error, "gap announcement refused: not valid");
                self.counters.rejected();
            }
        }
    }

    /// Whether `message` comes from a server of this service's schema; counted as rejected
    /// if not.
    fn same_schema(&self, message: &Message) -> bool {
        let theirs = message.headers.as_ref().and_then(|h| h.get(SCHEMA_HEADER));
        let same = theirs.is_some_and(|value| value.as_str() == self.schema);
        if !same {
            debug!(subject = %message.subject, schema = ?theirs.map(|v| v.as_str()), "cluster message from another schema dropped");
            self.counters.rejected();
        }
        same
    }
}
