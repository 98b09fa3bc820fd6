//! The client role's identity policy: what *any* vended credential could do before
//! its session policy narrows it to one client.
//!
//! It spans clients (`client/*`, `topicfilter/<prefix>/*`), which is safe only
//! because every `AssumeRole` call passes a session policy naming exact resources
//! and the effective permission is the intersection of the two. The CloudFormation
//! template gives the deployed role the same document, and the local stack uses it
//! for its default client role.

use super::document::{PolicyDocument, Statement};
use super::session::subscribe_and_receive;
use crate::arn::IotArns;
use crate::grants::{GrantTemplate, GrantTemplates};

/// The client role's identity policy for the configured grant templates: each
/// template with its variables and wildcards as `*` (see
/// [`GrantTemplate::role_pattern`]), so the role covers exactly the configured
/// prefixes.
pub fn client_role_policy(arns: &IotArns, templates: &GrantTemplates) -> PolicyDocument {
    let patterns = |list: &[GrantTemplate]| list.iter().map(GrantTemplate::role_pattern).collect::<Vec<_>>();
    let mut statements = vec![Statement::allow("iot:Connect", vec![arns.client("*")])];
    statements.extend(subscribe_and_receive(
        arns,
        patterns(&templates.subscribe).into_iter().map(|p| (p.clone(), p)),
    ));
    let publish = patterns(&templates.publish);
    if !publish.is_empty() {
        statements.push(Statement::allow(
            "iot:Publish",
            publish.iter().map(|p| arns.topic(p)).collect(),
        ));
    }
    PolicyDocument::of(statements)
}

/// The actions a backend needs to reach clients through IoT's data plane, on
/// `client/*`: push to one client, check presence, list its subscriptions, kick it.
pub const BACKEND_CLIENT_ACTIONS: [&str; 4] = [
    "iot:SendDirectMessage",
    "iot:GetConnection",
    "iot:DeleteConnection",
    "iot:ListSubscriptions",
];

/// The least privilege of a backend that pushes to clients: `iot:Publish` on the
/// topics clients receive on (the subscribe templates' role patterns) and the
/// data-plane actions of [`BACKEND_CLIENT_ACTIONS`] on `client/*`. The
/// CloudFormation template's `BackendPolicy` is the same document; the local
/// stack's backend identity has it.
pub fn backend_policy(arns: &IotArns, templates: &GrantTemplates) -> PolicyDocument {
    let publish: Vec<String> = templates
        .subscribe
        .iter()
        .map(|t| arns.topic(&t.role_pattern()))
        .collect();
    let mut statements = vec![Statement::allow("iot:Publish", publish)];
    for action in BACKEND_CLIENT_ACTIONS {
        statements.push(Statement::allow(action, vec![arns.client("*")]));
    }
    PolicyDocument::of(statements)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::client_id::ClientId;
    use crate::policy::{Grants, is_allowed, session_policy};
    use crate::topic::Topic;

    #[test]
    fn the_backend_policy_publishes_to_client_topics_and_reaches_clients_but_cannot_connect() {
        let arns = IotArns::new("aws", "us-east-1", "123456789012").unwrap();
        let backend = [backend_policy(
            &arns,
            &GrantTemplates::parse("allowed/{clientId},broadcast/all", "").unwrap(),
        )];
        let allowed = |action: &str, resource: String| is_allowed(&backend, None, action, &resource);
        assert!(allowed("iot:Publish", arns.topic("allowed/abc")));
        assert!(allowed("iot:Publish", arns.topic("broadcast/all")));
        assert!(!allowed("iot:Publish", arns.topic("elsewhere")));
        for action in BACKEND_CLIENT_ACTIONS {
            assert!(allowed(action, arns.client("any-client")), "{action}");
        }
        assert!(!allowed("iot:Connect", arns.client("any-client")));
        assert!(!allowed("iot:Subscribe", arns.topic_filter("allowed/abc")));
        assert!(!allowed("iot:GetRetainedMessage", arns.topic("allowed/abc")));
    }

    #[test]
    fn role_and_session_policy_together_allow_only_the_own_client() {
        let arns = IotArns::new("aws", "us-east-1", "123456789012").unwrap();
        let prefix = Topic::parse("allowed").unwrap();
        let role = [client_role_policy(
            &arns,
            &GrantTemplates::parse("allowed/{clientId}", "").unwrap(),
        )];
        let id = ClientId::generate();
        let own = prefix.join(id.as_str()).unwrap();
        let grants = Grants {
            subscribe: vec![own.clone().into()],
            publish: vec![],
        };
        let session = PolicyDocument::parse(&session_policy(&arns, &id, &grants).unwrap()).unwrap();

        assert!(is_allowed(
            &role,
            Some(std::slice::from_ref(&session)),
            "iot:Connect",
            &arns.client(id.as_str())
        ));
        assert!(is_allowed(
            &role,
            Some(std::slice::from_ref(&session)),
            "iot:Subscribe",
            &arns.topic_filter(own.as_str())
        ));
        assert!(is_allowed(
            &role,
            Some(std::slice::from_ref(&session)),
            "iot:Receive",
            &arns.topic(own.as_str())
        ));
        assert!(!is_allowed(
            &role,
            Some(std::slice::from_ref(&session)),
            "iot:Subscribe",
            &arns.topic_filter("allowed/#")
        ));
        assert!(!is_allowed(
            &role,
            Some(std::slice::from_ref(&session)),
            "iot:Connect",
            &arns.client("someone-else")
        ));
        assert!(!is_allowed(
            &role,
            Some(std::slice::from_ref(&session)),
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
