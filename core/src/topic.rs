//! MQTT topic names and filters, in two layers.
//!
//! **IoT Core's rules** — what the message broker accepts
//! (<https://docs.aws.amazon.com/iot/latest/developerguide/topics.html>): at most 7
//! slashes and 256 bytes, no NUL, `+` a whole level, `#` the whole last level; a
//! publish names no wildcard and no reserved (`$`) topic; and — unlike the MQTT
//! specification — `a/#` does *not* match `a` itself. As in MQTT, a filter starting
//! with a wildcard does not match a `$` topic. [`check_topic_name`],
//! [`check_filter`], [`is_publishable`], [`has_wildcards`], [`matches`].
//!
//! **Policy-safe names** on top — what may go into an IAM/IoT policy resource
//! verbatim ([`Topic`], [`TopicFilter`], [`check_level`]). In policy matching `*`
//! and `?` are wildcards and the MQTT wildcards `+` and `#` are *literal*
//! characters (a SUBSCRIBE to `allowed/#` is checked against the resource string
//! `topicfilter/allowed/#`). A name that carries any of them, or a `/` where one
//! level is expected, could widen a grant to other clients' topics, so these types
//! refuse them instead of escaping them (policy resources have no escape syntax).
//! See <https://docs.aws.amazon.com/iot/latest/developerguide/pub-sub-policy.html>.

use std::fmt;

use crate::quota::{MAX_TOPIC_BYTES, MAX_TOPIC_SLASHES};

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
    #[error("wildcard used where it is not allowed")]
    Wildcard,
}

/// Length, slash count and NUL: what every topic name and filter must pass.
fn check_shape(value: &str, what: &'static str) -> Result<(), NameError> {
    if value.is_empty() {
        return Err(NameError::Empty { what });
    }
    if value.len() > MAX_TOPIC_BYTES {
        return Err(NameError::TooLong {
            what,
            max: MAX_TOPIC_BYTES,
        });
    }
    if value.bytes().filter(|&b| b == b'/').count() > MAX_TOPIC_SLASHES {
        return Err(NameError::TooManyLevels);
    }
    if value.contains('\0') {
        return Err(NameError::ForbiddenChar { what, found: '\0' });
    }
    Ok(())
}

/// A topic name IoT accepts in a PUBLISH: no wildcards.
pub fn check_topic_name(topic: &str) -> Result<(), NameError> {
    check_shape(topic, "topic")?;
    if has_wildcards(topic) {
        return Err(NameError::Wildcard);
    }
    Ok(())
}

/// A subscription filter IoT accepts: `+` only as a whole level, `#` only as the
/// whole last level.
pub fn check_filter(filter: &str) -> Result<(), NameError> {
    check_shape(filter, "topic filter")?;
    let mut levels = filter.split('/').peekable();
    while let Some(level) = levels.next() {
        let allowed = match level {
            "+" => true,
            "#" => levels.peek().is_none(),
            other => !has_wildcards(other),
        };
        if !allowed {
            return Err(NameError::Wildcard);
        }
    }
    Ok(())
}

/// The prefix of a shared subscription, `$share/<group>/<filter>`: each message
/// matching `<filter>` goes to one member of the group
/// (<https://docs.aws.amazon.com/iot/latest/developerguide/mqtt.html#mqtt5-shared-subscription>).
pub const SHARED_PREFIX: &str = "$share/";

/// The group and the filter of a shared subscription; `Ok(None)` for any other
/// filter. The group is one non-empty level without wildcards; the filter follows
/// [`check_filter`]'s rules.
pub fn split_shared(filter: &str) -> Result<Option<(&str, &str)>, NameError> {
    let Some(rest) = filter.strip_prefix(SHARED_PREFIX) else {
        return Ok(None);
    };
    let (group, inner) = rest.split_once('/').ok_or(NameError::EmptyLevel)?;
    if group.is_empty() {
        return Err(NameError::EmptyLevel);
    }
    if has_wildcards(group) {
        return Err(NameError::Wildcard);
    }
    check_shape(filter, "topic filter")?;
    check_filter(inner)?;
    Ok(Some((group, inner)))
}

/// Whether a topic is reserved for IoT itself (`$aws/…`): clients do not publish there.
pub fn is_reserved(topic: &str) -> bool {
    topic.starts_with('$')
}

/// Whether a client may publish to `topic` at all (before any policy): a valid
/// topic name outside the reserved `$` space.
pub fn is_publishable(topic: &str) -> bool {
    check_topic_name(topic).is_ok() && !is_reserved(topic)
}

/// Whether a topic name or filter carries an MQTT wildcard.
pub fn has_wildcards(value: &str) -> bool {
    value.contains(['+', '#'])
}

/// Whether `filter` (already checked) matches `topic`, with IoT's `#` rule.
pub fn matches(filter: &str, topic: &str) -> bool {
    if is_reserved(topic) && filter.starts_with(['+', '#']) {
        return false;
    }
    let mut topic_levels = topic.split('/');
    for level in filter.split('/') {
        match level {
            // IoT: `#` needs at least one more level.
            "#" => return topic_levels.next().is_some(),
            "+" => {
                if topic_levels.next().is_none() {
                    return false;
                }
            }
            exact => {
                if topic_levels.next() != Some(exact) {
                    return false;
                }
            }
        }
    }
    topic_levels.next().is_none()
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
        check_shape(value, "topic")?;
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
        check_shape(value, "topic filter")?;
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
        has_wildcards(&self.0)
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
    use crate::quota::MAX_CLIENT_ID_BYTES;

    #[test]
    fn a_shared_subscription_splits_into_its_group_and_filter() {
        assert_eq!(split_shared("$share/workers/jobs/+"), Ok(Some(("workers", "jobs/+"))));
        assert_eq!(split_shared("jobs/+"), Ok(None));
        assert_eq!(split_shared("$share/workers"), Err(NameError::EmptyLevel));
        assert_eq!(split_shared("$share//jobs"), Err(NameError::EmptyLevel));
        assert_eq!(split_shared("$share/w+/jobs"), Err(NameError::Wildcard));
        assert_eq!(split_shared("$share/workers/jobs/#/x"), Err(NameError::Wildcard));
    }

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

    #[test]
    fn iot_filter_matching_table() {
        let cases = [
            ("a/b", "a/b", true),
            ("a/b", "a/c", false),
            ("a/+", "a/b", true),
            ("a/+", "a/b/c", false),
            ("a/+", "a", false),
            ("a/+/c", "a/b/c", true),
            ("a/#", "a/b", true),
            ("a/#", "a/b/c/d", true),
            ("a/#", "a", false),
            ("#", "a", true),
            ("#", "a/b", true),
            ("+", "a", true),
            ("+/+", "a/b", true),
            ("#", "$aws/events/presence/connected/x", false),
            ("+/events/#", "$aws/events/x", false),
            (
                "$aws/events/presence/connected/+",
                "$aws/events/presence/connected/x",
                true,
            ),
            ("$aws/events/presence/+/x", "$aws/events/presence/disconnected/x", true),
            ("a/+", "a/", true),
        ];
        for (filter, topic, expected) in cases {
            assert_eq!(matches(filter, topic), expected, "{filter} vs {topic}");
        }
    }

    #[test]
    fn filters_put_wildcards_only_where_mqtt_allows() {
        for ok in [
            "a",
            "a/b",
            "+",
            "#",
            "a/+/c",
            "a/#",
            "+/+/#",
            "$aws/events/presence/connected/+",
        ] {
            assert_eq!(check_filter(ok), Ok(()), "{ok}");
        }
        for bad in ["a#", "a/#/b", "a+/b", "#/a", ""] {
            assert!(check_filter(bad).is_err(), "{bad}");
        }
        assert_eq!(check_filter("a/b/c/d/e/f/g/h/i"), Err(NameError::TooManyLevels));
        assert_eq!(
            check_filter(&"a".repeat(257)),
            Err(NameError::TooLong {
                what: "topic filter",
                max: MAX_TOPIC_BYTES
            })
        );
    }

    #[test]
    fn topic_names_have_no_wildcards() {
        assert_eq!(check_topic_name("a/b"), Ok(()));
        assert_eq!(check_topic_name("a/+"), Err(NameError::Wildcard));
        assert_eq!(check_topic_name("a/#"), Err(NameError::Wildcard));
        assert_eq!(check_topic_name(""), Err(NameError::Empty { what: "topic" }));
    }

    #[test]
    fn reserved_and_wildcard_topics_are_not_publishable() {
        assert!(is_publishable("allowed/abc"));
        for bad in ["$aws/things/x/shadow/update", "a/+", "a/#", "", "a\0b"] {
            assert!(!is_publishable(bad), "{bad:?}");
        }
    }
}
