//! Topics: the names events are published under.

use std::fmt;

use bytes::Bytes;

/// The name of an event topic: arbitrary bytes, usually UTF-8. Cloning one shares its
/// bytes (a reference count), as every event and subscription of the topic does.
///
/// ```
/// use hardlight_core::Topic;
/// let a = Topic::from("chat/general");
/// let b = Topic::from(b"chat/general".to_vec());
/// assert_eq!(a, b);
/// assert_eq!(a.to_string(), "chat/general");
/// assert_eq!(Topic::from(vec![0xff, 0x00]).to_string(), "0xff00");
/// ```
#[derive(
    Clone,
    Default,
    PartialEq,
    Eq,
    Hash,
    PartialOrd,
    Ord,
    rkyv::Archive,
    rkyv::Serialize,
    rkyv::Deserialize,
)]
#[rkyv(derive(Debug))]
pub struct Topic(Bytes);

impl crate::schema::Schema for Topic {
    fn describe(layout: &mut crate::schema::Layout) {
        layout.named::<Self>("Topic", |l| {
            l.structure(&[("0", <Vec<u8> as crate::schema::Schema>::describe)])
        });
    }
}

impl Topic {
    /// The topic's bytes.
    pub fn as_bytes(&self) -> &[u8] {
        &self.0
    }

    /// Whether the topic is empty (the default topic, which nothing is published on).
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

impl ArchivedTopic {
    /// The archived topic's bytes.
    ///
    /// ```
    /// use hardlight_core::{codec::{access, encode}, Topic};
    /// let bytes = encode(&Topic::from("rooms/1")).unwrap();
    /// assert_eq!(access::<Topic>(&bytes).unwrap().as_bytes(), b"rooms/1");
    /// ```
    pub fn as_bytes(&self) -> &[u8] {
        self.0.as_slice()
    }
}

impl From<&str> for Topic {
    fn from(value: &str) -> Self {
        Self(Bytes::copy_from_slice(value.as_bytes()))
    }
}

impl From<String> for Topic {
    fn from(value: String) -> Self {
        Self(value.into_bytes().into())
    }
}

impl From<Vec<u8>> for Topic {
    fn from(value: Vec<u8>) -> Self {
        Self(value.into())
    }
}

impl From<&[u8]> for Topic {
    fn from(value: &[u8]) -> Self {
        Self(Bytes::copy_from_slice(value))
    }
}

impl fmt::Debug for Topic {
    /// `Topic("text")` for UTF-8 topics, `Topic(0x…)` otherwise.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match std::str::from_utf8(&self.0) {
            Ok(text) => write!(f, "Topic({text:?})"),
            Err(_) => write!(f, "Topic({self})"),
        }
    }
}

impl fmt::Display for Topic {
    /// UTF-8 topics print as text; others as `0x` followed by hex.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match std::str::from_utf8(&self.0) {
            Ok(text) => f.write_str(text),
            Err(_) => {
                f.write_str("0x")?;
                self.0.iter().try_for_each(|b| write!(f, "{b:02x}"))
            }
        }
    }
}

/// Validates an event body — an archived `(Topic, E)`, as the `Event` frame carries it —
/// and tells whether its topic is `topic`, without deserializing anything. `body` must be
/// aligned to [`codec::ALIGN`](crate::codec::ALIGN).
///
/// ```
/// use hardlight_core::{codec::encode, topic::is_event_of, Topic};
/// let body = encode(&(Topic::from("rooms/1"), 42u64)).unwrap();
/// assert_eq!(is_event_of::<u64>(&body, &Topic::from("rooms/1")), Ok(true));
/// assert_eq!(is_event_of::<u64>(&body, &Topic::from("rooms/2")), Ok(false));
/// assert!(is_event_of::<u64>(&body[..body.len() - 1], &Topic::from("rooms/1")).is_err());
/// ```
pub fn is_event_of<E: crate::Codable>(
    body: &[u8],
    topic: &Topic,
) -> Result<bool, crate::ProtocolError> {
    let archived = crate::codec::access::<(Topic, E)>(body)?;
    Ok(archived.0.as_bytes() == topic.as_bytes())
}
