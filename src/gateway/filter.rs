//! MQTT topic names and filters with AWS IoT Core's rules
//! (<https://docs.aws.amazon.com/iot/latest/developerguide/topics.html>):
//! at most 7 slashes and 256 bytes, `+` a whole level, `#` the whole last level,
//! and — unlike the MQTT specification — `a/#` does *not* match `a` itself. As in
//! MQTT, a filter starting with a wildcard does not match a `$` topic.

use serverless_websockets_core::topic::{MAX_TOPIC_BYTES, MAX_TOPIC_SLASHES};

#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum FilterError {
    #[error("topic is empty")]
    Empty,
    #[error("topic is over {MAX_TOPIC_BYTES} bytes")]
    TooLong,
    #[error("topic has more than {MAX_TOPIC_SLASHES} slashes")]
    TooManyLevels,
    #[error("wildcard used where it is not allowed")]
    Wildcard,
    #[error("topic contains a NUL character")]
    Nul,
}

fn check_common(value: &str) -> Result<(), FilterError> {
    if value.is_empty() {
        return Err(FilterError::Empty);
    }
    if value.len() > MAX_TOPIC_BYTES {
        return Err(FilterError::TooLong);
    }
    if value.bytes().filter(|&b| b == b'/').count() > MAX_TOPIC_SLASHES {
        return Err(FilterError::TooManyLevels);
    }
    if value.contains('\0') {
        return Err(FilterError::Nul);
    }
    Ok(())
}

/// A topic a message is published to: no wildcards.
pub fn check_topic_name(topic: &str) -> Result<(), FilterError> {
    check_common(topic)?;
    if topic.contains(['+', '#']) {
        return Err(FilterError::Wildcard);
    }
    Ok(())
}

/// A subscription filter: `+` only as a whole level, `#` only as the whole last level.
pub fn check_filter(filter: &str) -> Result<(), FilterError> {
    check_common(filter)?;
    let levels: Vec<&str> = filter.split('/').collect();
    for (i, level) in levels.iter().enumerate() {
        let last = i + 1 == levels.len();
        let ok = match *level {
            "+" => true,
            "#" => last,
            other => !other.contains(['+', '#']),
        };
        if !ok {
            return Err(FilterError::Wildcard);
        }
    }
    Ok(())
}

pub fn has_wildcards(filter: &str) -> bool {
    filter.contains(['+', '#'])
}

/// Whether `filter` (already checked) matches `topic`, with IoT's `#` rule.
pub fn matches(filter: &str, topic: &str) -> bool {
    if topic.starts_with('$') && filter.starts_with(['+', '#']) {
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

#[cfg(test)]
mod tests {
    use super::*;

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
        assert_eq!(check_filter("a/b/c/d/e/f/g/h/i"), Err(FilterError::TooManyLevels));
        assert_eq!(check_filter(&"a".repeat(257)), Err(FilterError::TooLong));
    }

    #[test]
    fn topic_names_have_no_wildcards() {
        assert_eq!(check_topic_name("a/b"), Ok(()));
        assert_eq!(check_topic_name("a/+"), Err(FilterError::Wildcard));
        assert_eq!(check_topic_name("a/#"), Err(FilterError::Wildcard));
        assert_eq!(check_topic_name(""), Err(FilterError::Empty));
    }
}
