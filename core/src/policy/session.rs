//! The session policy passed to STS `AssumeRole` for one client.
//!
//! It names exact resources only — `client/<clientId>`, `topicfilter/<topic>`,
//! `topic/<topic>` — and never a wildcard: in IoT policy matching `#` and `+` are
//! literal, so a grant such as `topicfilter/allowed/*` would let a client subscribe
//! to `allowed/#` and read every other client's traffic
//! (<https://docs.aws.amazon.com/iot/latest/developerguide/pub-sub-policy.html>).
//! The names come in as [`ClientId`] and [`Topic`], which cannot hold a wildcard.
//!
//! STS refuses session policies over 2048 characters
//! (<https://docs.aws.amazon.com/STS/latest/APIReference/API_AssumeRole.html>); the
//! builder refuses them first so the caller gets a typed error, not an STS fault.

use serde::Serialize;

use super::document::{PolicyDocument, Statement};
use crate::arn::IotArns;
use crate::client_id::ClientId;
use crate::topic::TopicFilter;

pub use crate::sts::MAX_SESSION_POLICY_CHARS;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SessionPolicyError {
    #[error("session policy is {len} characters, over STS's limit of {MAX_SESSION_POLICY_CHARS}")]
    TooLarge { len: usize },
}

/// The topics one client may use, already expanded for that client.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Grants {
    /// Filters the client may subscribe to (exactly that filter string), and whose
    /// matching topics it may receive.
    #[serde(serialize_with = "filters")]
    pub subscribe: Vec<TopicFilter>,
    /// Topics (or operator-written filters) the client may publish to.
    #[serde(serialize_with = "filters")]
    pub publish: Vec<TopicFilter>,
}

fn filters<S: serde::Serializer>(filters: &[TopicFilter], serializer: S) -> Result<S::Ok, S::Error> {
    serializer.collect_seq(filters.iter().map(TopicFilter::as_str))
}

/// Builds the compact JSON session policy for `client_id` with `grants`.
pub fn session_policy(arns: &IotArns, client_id: &ClientId, grants: &Grants) -> Result<String, SessionPolicyError> {
    let mut statements = vec![Statement::allow("iot:Connect", vec![arns.client(client_id.as_str())])];
    if !grants.subscribe.is_empty() {
        // `+` and `#` are literal in `topicfilter/` resources: the grant is to subscribe
        // to exactly this filter. Receiving needs the topics it matches, where an
        // operator-written wildcard level becomes `*`.
        statements.extend(subscribe_and_receive(
            arns,
            grants
                .subscribe
                .iter()
                .map(|f| (f.as_str().to_owned(), f.topic_pattern())),
        ));
    }
    if !grants.publish.is_empty() {
        let topics = grants.publish.iter().map(|f| arns.topic(&f.topic_pattern())).collect();
        statements.push(Statement::allow("iot:Publish", topics));
    }
    let json = PolicyDocument::of(statements).to_json();
    let len = json.chars().count();
    if len > MAX_SESSION_POLICY_CHARS {
        return Err(SessionPolicyError::TooLarge { len });
    }
    Ok(json)
}

/// `iot:Subscribe` on each `(filter, topic pattern)` pair's filter and
/// `iot:Receive` on its topics: a subscription is useless without both.
pub(super) fn subscribe_and_receive(arns: &IotArns, pairs: impl Iterator<Item = (String, String)>) -> [Statement; 2] {
    let (filters, topics): (Vec<_>, Vec<_>) = pairs
        .map(|(filter, topics)| (arns.topic_filter(&filter), arns.topic(&topics)))
        .unzip();
    [
        Statement::allow("iot:Subscribe", filters),
        Statement::allow("iot:Receive", topics),
    ]
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;
    use crate::policy::eval::{Decision, evaluate};
    use crate::topic::Topic;

    fn arns() -> IotArns {
        IotArns::new("aws", "us-east-1", "123456789012").unwrap()
    }

    fn private(prefix: &str, id: &ClientId) -> Grants {
        Grants {
            subscribe: vec![Topic::parse(prefix).unwrap().join(id.as_str()).unwrap().into()],
            publish: vec![],
        }
    }

    #[test]
    fn the_default_policy_matches_the_golden_file() {
        let id = ClientId::parse("0123456789abcdef0123456789abcdef").unwrap();
        let json = session_policy(&arns(), &id, &private("allowed", &id)).unwrap();
        let golden = include_str!("../../tests/data/session-policy.json");
        let expected: serde_json::Value = serde_json::from_str(golden).unwrap();
        assert_eq!(serde_json::from_str::<serde_json::Value>(&json).unwrap(), expected);
        assert!(
            !json.contains(char::is_whitespace),
            "sent compact to save STS's character budget"
        );
    }

    #[test]
    fn publish_grants_add_a_publish_statement() {
        let id = ClientId::generate();
        let grants = Grants {
            publish: vec![TopicFilter::parse("from/me").unwrap()],
            ..private("allowed", &id)
        };
        let policy = PolicyDocument::parse(&session_policy(&arns(), &id, &grants).unwrap()).unwrap();
        let p = std::slice::from_ref(&policy);
        assert_eq!(evaluate(p, "iot:Publish", &arns().topic("from/me")), Decision::Allow);
        assert_eq!(
            evaluate(p, "iot:Publish", &arns().topic(&format!("allowed/{id}"))),
            Decision::NotApplicable
        );
    }

    #[test]
    fn a_policy_over_2048_characters_is_refused() {
        let id = ClientId::generate();
        let subscribe = (0..40)
            .map(|i| TopicFilter::parse(&format!("shared/topic-number-{i}")).unwrap())
            .collect();
        let grants = Grants {
            subscribe,
            publish: vec![],
        };
        assert!(matches!(
            session_policy(&arns(), &id, &grants),
            Err(SessionPolicyError::TooLarge { .. })
        ));
    }

    #[test]
    fn arns_refuse_malformed_parts() {
        assert!(IotArns::new("aws", "us-east-1", "12345").is_err());
        assert!(IotArns::new("aws", "us east", "123456789012").is_err());
        assert!(IotArns::new("", "us-east-1", "123456789012").is_err());
        assert!(IotArns::new("aws-cn", "cn-north-1", "123456789012").is_ok());
    }

    /// Strings an attacker might try as client IDs, filters or topics.
    fn attacker_strings(own: String) -> impl Strategy<Value = String> {
        let own2 = own.clone();
        let own3 = own.clone();
        prop_oneof![
            Just("#".to_owned()),
            Just("+".to_owned()),
            Just("*".to_owned()),
            Just("allowed/#".to_owned()),
            Just("allowed/+".to_owned()),
            Just("allowed/*".to_owned()),
            Just(format!("allowed/{own}/#")),
            Just(format!("allowed/{own}/x")),
            Just(format!("{own}/#")),
            (0..own.len()).prop_map(move |n| own2[..n].to_owned()),
            (0..own.len()).prop_map(move |n| own3[n + 1..].to_owned()),
            "[a-z0-9/#+*?$-]{0,40}",
            "[a-z0-9]{32}".prop_map(|other| format!("allowed/{other}")),
        ]
    }

    proptest! {
        #[test]
        fn the_built_policy_allows_exactly_the_own_client_filter_and_topic(
            own in "[a-z0-9]{1,64}",
            other in "[a-z0-9-]{1,64}",
            suffix in "[a-z0-9/#+*?$-]{1,10}",
        ) {
            let id = ClientId::parse(&own).unwrap();
            let policy = PolicyDocument::parse(&session_policy(&arns(), &id, &private("allowed", &id)).unwrap()).unwrap();
            let p = std::slice::from_ref(&policy);
            let a = arns();
            let own_topic = format!("allowed/{own}");
            prop_assert_eq!(evaluate(p, "iot:Connect", &a.client(&own)), Decision::Allow);
            prop_assert_eq!(evaluate(p, "iot:Subscribe", &a.topic_filter(&own_topic)), Decision::Allow);
            prop_assert_eq!(evaluate(p, "iot:Receive", &a.topic(&own_topic)), Decision::Allow);
            prop_assert_eq!(evaluate(p, "iot:Publish", &a.topic(&own_topic)), Decision::NotApplicable);
            if other != own {
                prop_assert_eq!(evaluate(p, "iot:Connect", &a.client(&other)), Decision::NotApplicable);
            }
            let widened = format!("{own_topic}{suffix}");
            prop_assert_eq!(evaluate(p, "iot:Subscribe", &a.topic_filter(&widened)), Decision::NotApplicable);
            prop_assert_eq!(evaluate(p, "iot:Receive", &a.topic(&widened)), Decision::NotApplicable);
        }

        #[test]
        fn attacker_chosen_names_are_never_allowed(
            (own, attempt) in "[a-z0-9]{2,40}".prop_flat_map(|own| (Just(own.clone()), attacker_strings(own)))
        ) {
            let id = ClientId::parse(&own).unwrap();
            let policy = PolicyDocument::parse(&session_policy(&arns(), &id, &private("allowed", &id)).unwrap()).unwrap();
            let p = std::slice::from_ref(&policy);
            let a = arns();
            let own_topic = format!("allowed/{own}");
            for action in ["iot:Connect", "iot:Subscribe", "iot:Receive", "iot:Publish", "iot:RetainPublish"] {
                for resource in [a.client(&attempt), a.topic_filter(&attempt), a.topic(&attempt)] {
                    let expected = (action == "iot:Connect" && resource == a.client(&own))
                        || (action == "iot:Subscribe" && resource == a.topic_filter(&own_topic))
                        || (action == "iot:Receive" && resource == a.topic(&own_topic));
                    prop_assert_eq!(
                        evaluate(p, action, &resource) == Decision::Allow,
                        expected,
                        "{} on {}", action, resource
                    );
                }
            }
        }
    }
}
