//! NATS subjects for topics. Topics are arbitrary bytes; subjects are `.`-separated tokens
//! in which `*`, `>`, whitespace and empty tokens mean something else, and a `$` first
//! token belongs to the system. Every topic is mapped to one token of base64url
//! characters, which have none of those meanings (`docs/PROTOCOL.md` §10 Clusters over NATS).

use base64::{engine::general_purpose::URL_SAFE_NO_PAD, Engine};
use hardlight_core::Topic;

/// Topics of at most this many bytes travel in the subject itself (256 characters of
/// base64url); longer ones as their SHA-256 (43 characters), the topic itself being in the
/// event.
pub(crate) const INLINE_TOPIC_BYTES: usize = 192;

/// The longest subject prefix accepted.
const MAX_PREFIX: usize = 64;

/// The subjects of one cluster namespace.
#[derive(Debug, Clone)]
pub(crate) struct Subjects {
    prefix: String,
}

impl Subjects {
    /// The subjects under `prefix`, if it is one or more `.`-separated tokens of letters,
    /// digits, `-` and `_`, of at most 64 characters in all.
    pub(crate) fn new(prefix: &str) -> Option<Self> {
        let token_ok = |token: &str| {
            !token.is_empty()
                && token
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
        };
        (prefix.len() <= MAX_PREFIX && prefix.split('.').all(token_ok)).then(|| Self {
            prefix: prefix.to_owned(),
        })
    }

    /// The subject `topic`'s events are published on: `<prefix>.t<base64url(topic)>`, or
    /// `<prefix>.h<base64url(sha256(topic))>` for a topic above [`INLINE_TOPIC_BYTES`].
    pub(crate) fn topic(&self, topic: &Topic) -> String {
        let bytes = topic.as_bytes();
        if bytes.len() <= INLINE_TOPIC_BYTES {
            format!("{}.t{}", self.prefix, URL_SAFE_NO_PAD.encode(bytes))
        } else {
            let digest = ring::digest::digest(&ring::digest::SHA256, bytes);
            format!("{}.h{}", self.prefix, URL_SAFE_NO_PAD.encode(digest))
        }
    }

    /// The subject gap announcements are published on.
    pub(crate) fn gaps(&self) -> String {
        format!("{}._gap", self.prefix)
    }

    /// The subject a server sends its round trips to: nobody subscribes to it, so NATS
    /// answers each request with "no responders" once it has processed everything the
    /// server sent before.
    pub(crate) fn sync(&self, origin: u64) -> String {
        format!("{}._sync.{origin:016x}", self.prefix)
    }
}

#[cfg(test)]
mod tests {
    use std::collections::HashSet;

    use super::*;

    fn valid_subject(subject: &str) -> bool {
        !subject.starts_with('$')
            && subject.split('.').all(|token| {
                !token.is_empty()
                    && token != "*"
                    && token != ">"
                    && !token.bytes().any(|b| b.is_ascii_whitespace())
            })
    }

    #[test]
    fn every_topic_maps_to_a_valid_subject_of_its_own() {
        let subjects = Subjects::new("app.v1").unwrap();
        // every single byte, every pair of the bytes subjects give a meaning to, and
        // lengths around the inline limit
        let special = [b'.', b'*', b'>', b' ', b'\t', b'$', 0, 0xff];
        let mut topics: HashSet<Topic> = (0..=255u8).map(|b| Topic::from(vec![b])).collect();
        for a in special {
            for b in special {
                topics.insert(Topic::from(vec![a, b]));
            }
        }
        for len in [
            0,
            1,
            INLINE_TOPIC_BYTES - 1,
            INLINE_TOPIC_BYTES,
            INLINE_TOPIC_BYTES + 1,
            4096,
        ] {
            topics.insert(Topic::from(vec![b'x'; len]));
        }
        let mut seen = HashSet::new();
        for topic in &topics {
            let subject = subjects.topic(topic);
            assert!(valid_subject(&subject), "{topic:?} → {subject}");
            assert!(subject.starts_with("app.v1."), "{subject}");
            assert_eq!(subject.split('.').count(), 3, "one token for {topic:?}");
            assert!(subject.len() <= 64 + 2 + 256, "{subject} is too long");
            assert!(seen.insert(subject), "{topic:?} shares its subject");
        }
        assert!(!seen.contains(&subjects.gaps()));
        assert!(!seen.contains(&subjects.sync(7)));
    }

    #[test]
    fn prefixes_are_plain_tokens() {
        for good in ["hardlight", "a.b", "chat-prod_2"] {
            assert!(Subjects::new(good).is_some(), "{good}");
        }
        for bad in [
            "",
            "a..b",
            ".a",
            "a.",
            "a*",
            ">",
            "$SYS",
            "a b",
            &"x".repeat(65),
        ] {
            assert!(Subjects::new(bad).is_none(), "{bad:?}");
        }
    }
}
