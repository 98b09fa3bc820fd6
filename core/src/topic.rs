//! Names that end up inside IAM/IoT policy resources: MQTT topic names, topic
//! levels and client IDs.
//!
//! In IoT policy matching `*` and `?` are wildcards and the MQTT wildcards `+` and
//! `#` are *literal* characters (a SUBSCRIBE to `allowed/#` is checked against the
//! resource string `topicfilter/allowed/#`). A name that carries any of them, or a
//! `/` where one level is expected, could widen a grant to other clients' topics, so
//! this module refuses them instead of escaping them (policy resources have no
//! escape syntax). See <https://docs.aws.amazon.com/iot/latest/developerguide/pub-sub-policy.html>.
//!
//! This module only validates; it does not match topics against filters.

use std::fmt;

/// IoT Core's limit on a topic name, in bytes (UTF-8).
/// <https://docs.aws.amazon.com/general/latest/gr/iot-core.html#message-broker-limits>
pub const MAX_TOPIC_BYTES: usize = 256;
/// IoT Core allows at most seven forward slashes in a topic name.
pub const MAX_TOPIC_SLASHES: usize = 7;
/// IoT Core's limit on an MQTT client ID, in bytes.
pub const MAX_CLIENT_ID_BYTES: usize = 128;

/// Why a name was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum NameError {
    #[error("{what} is empty")]
    Empty { what: &'static str },
    #[error("{what} is longer than {max} bytes")]
    TooLong { what: &'static str, max: usize },
    #[error("{what} contains the forbidden character {found:?}")]
    ForbiddenChar { what: &'static str, found: char },
    #[error("topic has an empty level")]
    EmptyLevel,
    #[error("topic has more than {MAX_TOPIC_SLASHES} slashes")]
    TooManyLevels,
}

/// Characters that are wildcards in policy resources (`*`, `?`), MQTT wildcards
/// (`+`, `#`), the level separator (`/`) or the reserved-topic marker (`$`).
const FORBIDDEN: &[char] = &['*', '?', '+', '#', '/', '$'];

/// Checks one topic level or client ID: non-empty, at most `max` bytes, and none of
/// the forbidden, whitespace or control characters.
pub fn check_level(value: &str, what: &'static str, max: usize) -> Result<(), NameError> {
    if value.is_empty() {
        return Err(NameError::Empty { what });
    }
    if value.len() > max {
        return Err(NameError::TooLong { what, max });
    }
    if let Some(found) = value
        .chars()
        .find(|c| FORBIDDEN.contains(c) || c.is_whitespace() || c.is_control())
    {
        return Err(NameError::ForbiddenChar { what, found });
    }
    Ok(())
}

/// A topic name that is safe to put into a policy resource verbatim: levels joined
/// by `/`, each level passing [`check_level`], at most 7 slashes and 256 bytes.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Topic(String);

impl Topic {
    pub fn parse(value: &str) -> Result<Self, NameError> {
        if value.is_empty() {
            return Err(NameError::Empty { what: "topic" });
        }
        if value.len() > MAX_TOPIC_BYTES {
            return Err(NameError::TooLong {
                what: "topic",
                max: MAX_TOPIC_BYTES,
            });
        }
        if value.matches('/').count() > MAX_TOPIC_SLASHES {
            return Err(NameError::TooManyLevels);
        }
        for level in value.split('/') {
            if level.is_empty() {
                return Err(NameError::EmptyLevel);
            }
            check_level(level, "topic level", MAX_TOPIC_BYTES)?;
        }
        Ok(Self(value.to_owned()))
    }

    /// `self/level`, validated as a whole.
    pub fn join(&self, level: &str) -> Result<Self, NameError> {
        check_level(level, "topic level", MAX_TOPIC_BYTES)?;
        Self::parse(&format!("{}/{level}", self.0))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for Topic {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// A topic filter an operator granted: like [`Topic`], except that a level may be
/// exactly `+`, or `#` as the last level — MQTT wildcards written literally in the
/// configuration, never produced by expanding a caller's value.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct TopicFilter(String);

impl TopicFilter {
    pub fn parse(value: &str) -> Result<Self, NameError> {
        if value.is_empty() {
            return Err(NameError::Empty { what: "topic filter" });
        }
        if value.len() > MAX_TOPIC_BYTES {
            return Err(NameError::TooLong {
                what: "topic filter",
                max: MAX_TOPIC_BYTES,
            });
        }
        if value.matches('/').count() > MAX_TOPIC_SLASHES {
            return Err(NameError::TooManyLevels);
        }
        let levels: Vec<&str> = value.split('/').collect();
        for (i, level) in levels.iter().enumerate() {
            match *level {
                "+" => {}
                "#" if i + 1 == levels.len() => {}
                "" => return Err(NameError::EmptyLevel),
                level => check_level(level, "topic level", MAX_TOPIC_BYTES)?,
            }
        }
        Ok(Self(value.to_owned()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    pub fn has_wildcards(&self) -> bool {
        self.0.split('/').any(|level| level == "+" || level == "#")
    }

    /// The policy resource pattern of the topics this filter matches: each `+` or
    /// `#` level becomes the policy wildcard `*`.
    pub fn topic_pattern(&self) -> String {
        self.0
            .split('/')
            .map(|level| if level == "+" || level == "#" { "*" } else { level })
            .collect::<Vec<_>>()
            .join("/")
    }
}

impl From<Topic> for TopicFilter {
    fn from(topic: Topic) -> Self {
        Self(topic.0)
    }
}

impl fmt::Display for TopicFilter {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plain_multi_level_topics_are_accepted() {
        assert_eq!(Topic::parse("allowed/abc-123").unwrap().as_str(), "allowed/abc-123");
        assert!(Topic::parse("a/b/c/d/e/f/g/h").is_ok());
    }

    #[test]
    fn wildcards_separators_and_reserved_markers_are_refused_in_a_level() {
        for bad in [
            "*", "a*", "?", "+", "#", "a/b", "$aws", "a b", "a\tb", "a\u{0}b", "a\u{7f}",
        ] {
            assert!(
                matches!(check_level(bad, "client ID", 128), Err(NameError::ForbiddenChar { .. })),
                "{bad:?} should be refused"
            );
        }
    }

    #[test]
    fn topics_with_wildcards_empty_levels_or_too_many_levels_are_refused() {
        assert!(Topic::parse("allowed/#").is_err());
        assert!(Topic::parse("allowed/+").is_err());
        assert!(Topic::parse("allowed/*").is_err());
        assert_eq!(Topic::parse("allowed//x"), Err(NameError::EmptyLevel));
        assert_eq!(Topic::parse("/x"), Err(NameError::EmptyLevel));
        assert_eq!(Topic::parse("a/b/c/d/e/f/g/h/i"), Err(NameError::TooManyLevels));
        assert_eq!(Topic::parse(""), Err(NameError::Empty { what: "topic" }));
    }

    #[test]
    fn over_long_names_are_refused() {
        let long = "a".repeat(MAX_CLIENT_ID_BYTES + 1);
        assert!(matches!(
            check_level(&long, "client ID", MAX_CLIENT_ID_BYTES),
            Err(NameError::TooLong { .. })
        ));
        assert!(Topic::parse(&"a".repeat(MAX_TOPIC_BYTES + 1)).is_err());
    }

    #[test]
    fn filters_allow_mqtt_wildcards_only_as_whole_levels() {
        assert_eq!(
            TopicFilter::parse("broadcast/#").unwrap().topic_pattern(),
            "broadcast/*"
        );
        assert_eq!(
            TopicFilter::parse("rooms/+/chat").unwrap().topic_pattern(),
            "rooms/*/chat"
        );
        assert!(!TopicFilter::parse("a/b").unwrap().has_wildcards());
        for bad in ["a/#/b", "a#", "a+/b", "a/*", "a/?", "$aws/x", "a//b", ""] {
            assert!(TopicFilter::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn join_refuses_a_level_that_would_add_levels() {
        let prefix = Topic::parse("allowed").unwrap();
        assert_eq!(prefix.join("abc").unwrap().as_str(), "allowed/abc");
        assert!(prefix.join("abc/def").is_err());
        assert!(prefix.join("#").is_err());
    }
}
