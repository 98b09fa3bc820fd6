//! The client role's identity policy: what *any* vended credential could do before
//! its session policy narrows it to one client.
//!
//! It spans clients (`client/*`, `topicfilter/<prefix>/*`), which is safe only
//! because every `AssumeRole` call passes a session policy naming exact resources
//! and the effective permission is the intersection of the two. The CloudFormation
//! template gives the deployed role the same document, and the local stack uses it
//! for its default client role.

use super::document::{Effect, OneOrMany, PolicyDocument, Statement};
use super::session::IotArns;
use crate::topic::Topic;

/// The client role's identity policy for topics under `prefix`.
pub fn client_role_policy(arns: &IotArns, prefix: &Topic) -> PolicyDocument {
    let allow = |action: &str, resource: String| Statement::new(Effect::Allow, vec![action.to_owned()], vec![resource]);
    PolicyDocument {
        version: Some(PolicyDocument::VERSION.to_owned()),
        id: None,
        statement: OneOrMany::Many(vec![
            allow("iot:Connect", arns.client("*")),
            allow("iot:Subscribe", arns.topic_filter(&format!("{prefix}/*"))),
            allow("iot:Receive", arns.topic(&format!("{prefix}/*"))),
        ]),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::client_id::ClientId;
    use crate::policy::{Grants, is_allowed, session_policy};

    #[test]
    fn role_and_session_policy_together_allow_only_the_own_client() {
        let arns = IotArns::new("aws", "us-east-1", "123456789012").unwrap();
        let prefix = Topic::parse("allowed").unwrap();
        let role = [client_role_policy(&arns, &prefix)];
        let id = ClientId::generate();
        let own = prefix.join(id.as_str()).unwrap();
        let grants = Grants {
            subscribe: vec![own.clone()],
            publish: vec![],
        };
        let session = PolicyDocument::parse(&session_policy(&arns, &id, &grants).unwrap()).unwrap();

        assert!(is_allowed(
            &role,
            Some(&session),
            "iot:Connect",
            &arns.client(id.as_str())
        ));
        assert!(is_allowed(
            &role,
            Some(&session),
            "iot:Subscribe",
            &arns.topic_filter(own.as_str())
        ));
        assert!(is_allowed(
            &role,
            Some(&session),
            "iot:Receive",
            &arns.topic(own.as_str())
        ));
        assert!(!is_allowed(
            &role,
            Some(&session),
            "iot:Subscribe",
            &arns.topic_filter("allowed/#")
        ));
        assert!(!is_allowed(
            &role,
            Some(&session),
            "iot:Connect",
            &arns.client("someone-else")
        ));
        assert!(!is_allowed(
            &role,
            Some(&session),
            "iot:Publish",
            &arns.topic(own.as_str())
        ));
        // Without the session policy the role alone would leak every client's topic:
        assert!(is_allowed(
            &role,
            None,
            "iot:Subscribe",
            &arns.topic_filter("allowed/#")
        ));
    }
}
