//! A bounded set of topics that may stand for all of them: what a gap concerns.

use std::collections::HashSet;

use hardlight_core::Topic;

/// Topics a set names before it stands for all topics instead, which bounds its memory
/// whatever the number of topics concerned.
pub(crate) const MAX_NAMED: usize = 1024;

/// Some topics, or all of them.
#[derive(Debug, Default)]
pub(crate) struct TopicSet {
    named: HashSet<Topic>,
    all: bool,
}

impl TopicSet {
    /// The set of every topic.
    pub(crate) fn all() -> Self {
        Self {
            named: HashSet::new(),
            all: true,
        }
    }

    /// Whether the set holds nothing.
    pub(crate) fn is_empty(&self) -> bool {
        !self.all && self.named.is_empty()
    }

    /// Adds `topic`; past [`MAX_NAMED`] topics the set becomes every topic.
    pub(crate) fn insert(&mut self, topic: &Topic) {
        if self.all || self.named.contains(topic) {
            return;
        }
        if self.named.len() >= MAX_NAMED {
            *self = Self::all();
        } else {
            self.named.insert(topic.clone());
        }
    }

    /// Adds every topic of `other`.
    pub(crate) fn extend(&mut self, other: Self) {
        if other.all {
            *self = Self::all();
        } else {
            other.named.iter().for_each(|topic| self.insert(topic));
        }
    }

    /// Empties the set, returning what it held.
    pub(crate) fn take(&mut self) -> Self {
        std::mem::take(self)
    }

    /// The topics named, or `None` for every topic.
    pub(crate) fn named(&self) -> Option<impl Iterator<Item = &Topic>> {
        (!self.all).then(|| self.named.iter())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn past_its_bound_a_set_stands_for_every_topic() {
        let mut set = TopicSet::default();
        assert!(set.is_empty());
        for n in 0..MAX_NAMED {
            set.insert(&Topic::from(n.to_string()));
        }
        set.insert(&Topic::from("0"));
        assert_eq!(set.named().map(Iterator::count), Some(MAX_NAMED));
        set.insert(&Topic::from("one more"));
        assert!(set.named().is_none());
        assert!(!set.is_empty());
        let mut other = TopicSet::default();
        other.insert(&Topic::from("a"));
        other.extend(set.take());
        assert!(other.named().is_none());
        assert!(set.is_empty());
    }
}
