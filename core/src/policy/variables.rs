//! IoT policy variables (<https://docs.aws.amazon.com/iot/latest/developerguide/iot-policy-variables.html>):
//! `${iot:ClientId}` in a `Resource` is replaced by the connection's client ID
//! when the policy is evaluated, and `$(*)`, `$(?)`, `$($)` stand for the
//! characters themselves. Custom authorizers return policies that use them,
//! because the authorizer does not see the client ID of a WebSocket connection.
//!
//! Two choices where the docs are silent, both the stricter reading:
//! * a substituted value is **literal**: a client ID `a*` matches only `a*`,
//!   never acts as a wildcard;
//! * a pattern with a variable that has no value here (`${iot:ClientId}` before
//!   CONNECT, `${iot:Connection.Thing.ThingName}` always: things are not
//!   emulated) matches nothing, as IAM says an unresolved variable may make its
//!   statement invalid.
//!
//! Only patterns with a `$` take this path; everything else is [`super::eval::glob`].

/// The values the variables take for one connection.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Variables {
    /// `${iot:ClientId}`, once the client sent CONNECT.
    pub client_id: Option<String>,
}

/// One piece of an expanded pattern.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Piece {
    Any,
    One,
    Char(char),
}

impl Variables {
    /// Whether `text` matches `pattern` with the variables replaced; `false` when
    /// the pattern uses a variable that has no value.
    pub fn glob(&self, pattern: &str, text: &str) -> bool {
        self.expand(pattern).is_some_and(|pieces| matches(&pieces, text))
    }

    fn value(&self, name: &str) -> Option<&str> {
        match name {
            "iot:ClientId" => self.client_id.as_deref(),
            _ => None,
        }
    }

    fn expand(&self, pattern: &str) -> Option<Vec<Piece>> {
        let mut pieces = Vec::with_capacity(pattern.len());
        let mut rest = pattern;
        while let Some(c) = rest.chars().next() {
            if let Some(after) = rest.strip_prefix("${") {
                let close = after.find('}')?;
                pieces.extend(self.value(&after[..close])?.chars().map(Piece::Char));
                rest = &after[close + 1..];
                continue;
            }
            if let Some(after) = rest.strip_prefix("$(")
                && let Some(special @ ('*' | '?' | '$')) = after.chars().next()
                && after[1..].starts_with(')')
            {
                pieces.push(Piece::Char(special));
                rest = &after[2..];
                continue;
            }
            pieces.push(match c {
                '*' => Piece::Any,
                '?' => Piece::One,
                other => Piece::Char(other),
            });
            rest = &rest[c.len_utf8()..];
        }
        Some(pieces)
    }
}

/// Greedy matching with one backtrack point, as [`super::eval::glob`], over
/// pieces and characters.
fn matches(pattern: &[Piece], text: &str) -> bool {
    let text: Vec<char> = text.chars().collect();
    let (mut p, mut t) = (0, 0);
    let mut resume: Option<(usize, usize)> = None;
    while t < text.len() {
        match pattern.get(p) {
            Some(Piece::Any) => {
                p += 1;
                resume = Some((p, t));
                continue;
            }
            Some(Piece::One) => {
                p += 1;
                t += 1;
                continue;
            }
            Some(Piece::Char(c)) if *c == text[t] => {
                p += 1;
                t += 1;
                continue;
            }
            _ => {}
        }
        match resume {
            Some((after_star, from)) => {
                resume = Some((after_star, from + 1));
                p = after_star;
                t = from + 1;
            }
            None => return false,
        }
    }
    pattern[p.min(pattern.len())..].iter().all(|piece| *piece == Piece::Any)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::policy::eval::glob;
    use proptest::prelude::*;

    fn client(id: &str) -> Variables {
        Variables {
            client_id: Some(id.to_owned()),
        }
    }

    #[test]
    fn the_client_id_is_substituted_where_the_variable_stands() {
        let vars = client("u1-tab");
        assert!(vars.glob("client/${iot:ClientId}", "client/u1-tab"));
        assert!(!vars.glob("client/${iot:ClientId}", "client/u1-tab2"));
        assert!(vars.glob("topic/allowed/${iot:ClientId}/*", "topic/allowed/u1-tab/x/y"));
        assert!(!vars.glob("topic/allowed/${iot:ClientId}/*", "topic/allowed/u2-tab/x"));
    }

    #[test]
    fn wildcards_in_a_substituted_client_id_match_only_themselves() {
        let vars = client("a*");
        assert!(vars.glob("topic/${iot:ClientId}", "topic/a*"));
        assert!(!vars.glob("topic/${iot:ClientId}", "topic/abc"));
        let vars = client("a?");
        assert!(!vars.glob("topic/${iot:ClientId}", "topic/ab"));
    }

    #[test]
    fn a_variable_without_a_value_matches_nothing() {
        let none = Variables::default();
        assert!(!none.glob("client/${iot:ClientId}", "client/x"));
        assert!(!none.glob("*${iot:ClientId}*", ""));
        assert!(!client("x").glob("thing/${iot:Connection.Thing.ThingName}", "thing/x"));
        assert!(!client("x").glob("client/${iot:ClientId", "client/${iot:ClientId"));
    }

    #[test]
    fn special_characters_stand_for_themselves() {
        let vars = Variables::default();
        assert!(vars.glob("topic/$(*)", "topic/*"));
        assert!(!vars.glob("topic/$(*)", "topic/x"));
        assert!(vars.glob("topic/$(?)$($)", "topic/?$"));
        assert!(vars.glob("topic/$x", "topic/$x"));
    }

    proptest! {
        /// Without variables the expanded matcher agrees with `glob`, the matcher
        /// every other policy goes through.
        #[test]
        fn without_variables_it_agrees_with_glob(
            pattern in "[ab*?/é]{0,8}",
            text in "[ab/é]{0,8}",
        ) {
            prop_assert_eq!(Variables::default().glob(&pattern, &text), glob(&pattern, &text, false));
        }
    }
}
