//! IAM `Condition` blocks, for the keys that take a user out **now**
//! (<https://docs.aws.amazon.com/IAM/latest/UserGuide/reference_policies_elements_condition.html>):
//! `aws:SourceIdentity` (the `sub` the vending API passes to STS, one user),
//! `aws:TokenIssueTime` (what IAM's "revoke active sessions" compares: every
//! session issued before a time) and `aws:PrincipalArn`.
//!
//! Operators: `StringEquals`, `StringNotEquals`, `StringEqualsIgnoreCase`,
//! `StringLike`, `StringNotLike`, `DateLessThan(Equals)`, `DateGreaterThan(Equals)`,
//! each with `…IfExists`. A condition is true when every operator's every key
//! matches one of its values (negated operators: none of them). A key missing
//! from the request is false, except for `…IfExists` and the negated operators
//! (true), as IAM evaluates them. Anything else is [`Outcome::Unsupported`]: the
//! evaluator then lets a Deny apply and an Allow grant nothing, which can only be
//! stricter than AWS.

use serde_json::Value;

use super::eval::glob;

/// What a request brings for the condition keys.
#[derive(Debug, Clone, Copy, Default)]
pub struct Context<'a> {
    pub source_identity: Option<&'a str>,
    /// Seconds since the epoch.
    pub token_issue_time: Option<u64>,
    pub principal_arn: Option<&'a str>,
}

/// What a `Condition` block says for one request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    True,
    False,
    /// An operator or key this evaluator does not know.
    Unsupported,
}

/// Evaluates a statement's `Condition` for `context`.
pub fn evaluate(condition: &Value, context: &Context<'_>) -> Outcome {
    let Some(operators) = condition.as_object() else {
        return Outcome::Unsupported;
    };
    for (operator, keys) in operators {
        let Some(keys) = keys.as_object() else {
            return Outcome::Unsupported;
        };
        for (key, wanted) in keys {
            match test(operator, key, wanted, context) {
                Outcome::True => {}
                other => return other,
            }
        }
    }
    Outcome::True
}

/// One operator on one key.
fn test(operator: &str, key: &str, wanted: &Value, context: &Context<'_>) -> Outcome {
    let (base, if_exists) = match operator.strip_suffix("IfExists") {
        Some(base) => (base, true),
        None => (operator, false),
    };
    let negated = matches!(base, "StringNotEquals" | "StringNotLike");
    let values: Vec<&str> = match wanted {
        Value::String(one) => vec![one.as_str()],
        Value::Array(many) => match many.iter().map(Value::as_str).collect::<Option<Vec<_>>>() {
            Some(values) => values,
            None => return Outcome::Unsupported,
        },
        _ => return Outcome::Unsupported,
    };
    let actual = match key.to_ascii_lowercase().as_str() {
        "aws:sourceidentity" => context.source_identity.map(Actual::Text),
        "aws:principalarn" => context.principal_arn.map(Actual::Text),
        "aws:tokenissuetime" => context.token_issue_time.map(Actual::Time),
        _ => return Outcome::Unsupported,
    };
    let Some(actual) = actual else {
        return bool_outcome(if_exists || negated);
    };
    let matched = match (base, actual) {
        ("StringEquals" | "StringNotEquals", Actual::Text(text)) => values.contains(&text),
        ("StringEqualsIgnoreCase", Actual::Text(text)) => values.iter().any(|v| v.eq_ignore_ascii_case(text)),
        ("StringLike" | "StringNotLike", Actual::Text(text)) => values.iter().any(|v| glob(v, text, false)),
        (date_operator, Actual::Time(time)) if date_operator.starts_with("Date") => {
            let mut any = false;
            for value in values {
                let Some(bound) = parse_time(value) else {
                    return Outcome::Unsupported;
                };
                any |= match date_operator {
                    "DateLessThan" => time < bound,
                    "DateLessThanEquals" => time <= bound,
                    "DateGreaterThan" => time > bound,
                    "DateGreaterThanEquals" => time >= bound,
                    _ => return Outcome::Unsupported,
                };
            }
            any
        }
        _ => return Outcome::Unsupported,
    };
    bool_outcome(matched != negated)
}

#[derive(Clone, Copy)]
enum Actual<'a> {
    Text(&'a str),
    Time(u64),
}

fn bool_outcome(value: bool) -> Outcome {
    if value { Outcome::True } else { Outcome::False }
}

/// `2026-12-05T09:00:00Z` ([`crate::wire::parse_iso8601`]) or seconds since the epoch.
fn parse_time(text: &str) -> Option<u64> {
    if let Ok(seconds) = text.parse::<u64>() {
        return Some(seconds);
    }
    crate::wire::parse_iso8601(text)?
        .duration_since(std::time::UNIX_EPOCH)
        .ok()
        .map(|d| d.as_secs())
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn alice_at(time: u64) -> Context<'static> {
        Context {
            source_identity: Some("alice"),
            token_issue_time: Some(time),
            principal_arn: Some("arn:aws:sts::1:assumed-role/r/s"),
        }
    }

    #[test]
    fn a_ban_by_source_identity_matches_that_user_only() {
        let ban = json!({"StringEquals": {"aws:SourceIdentity": ["alice", "mallory"]}});
        assert_eq!(evaluate(&ban, &alice_at(0)), Outcome::True);
        let bob = Context {
            source_identity: Some("bob"),
            ..alice_at(0)
        };
        assert_eq!(evaluate(&ban, &bob), Outcome::False);
        assert_eq!(
            evaluate(&ban, &Context::default()),
            Outcome::False,
            "no source identity, no match"
        );
        let not = json!({"StringNotEquals": {"aws:SourceIdentity": "alice"}});
        assert_eq!(evaluate(&not, &bob), Outcome::True);
        assert_eq!(evaluate(&not, &Context::default()), Outcome::True);
        let like = json!({"StringLike": {"aws:SourceIdentity": "ali*"}});
        assert_eq!(evaluate(&like, &alice_at(0)), Outcome::True);
    }

    #[test]
    fn revoking_sessions_compares_the_token_issue_time() {
        // What IAM's "revoke active sessions" writes.
        let revoke = json!({"DateLessThan": {"aws:TokenIssueTime": "2026-12-05T09:00:00Z"}});
        let at = 1_796_461_200; // 2026-12-05T09:00:00Z
        assert_eq!(parse_time("2026-12-05T09:00:00Z"), Some(at));
        assert_eq!(parse_time("2026-12-05T09:00:00.123Z"), Some(at));
        assert_eq!(evaluate(&revoke, &alice_at(at - 1)), Outcome::True);
        assert_eq!(evaluate(&revoke, &alice_at(at)), Outcome::False);
        let if_exists = json!({"DateLessThanIfExists": {"aws:TokenIssueTime": "2026-12-05T09:00:00Z"}});
        assert_eq!(evaluate(&if_exists, &Context::default()), Outcome::True);
    }

    #[test]
    fn unknown_operators_keys_and_values_are_unsupported() {
        for condition in [
            json!({"NumericLessThan": {"aws:SourceIdentity": "1"}}),
            json!({"StringEquals": {"aws:SourceIp": "1.2.3.4"}}),
            json!({"DateLessThan": {"aws:TokenIssueTime": "yesterday"}}),
            json!({"StringEquals": {"aws:SourceIdentity": 5}}),
            json!("nope"),
        ] {
            assert_eq!(evaluate(&condition, &alice_at(0)), Outcome::Unsupported, "{condition}");
        }
    }
}
