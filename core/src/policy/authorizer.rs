//! The IoT policies our JWT authorizer returns for one caller: what a custom
//! authorizer's Lambda hands IoT instead of a session policy.
//!
//! IoT does not tell an authorizer the client ID of a WebSocket connection, so
//! the policy cannot name it; it binds client IDs to the caller instead. Each
//! caller's client IDs must start with [`client_id_prefix`]: `u`, 32 hex digits of
//! SHA-256 of the `sub`, and `-`. Every prefix has the same length and no
//! wildcard character, so no caller's prefix is a prefix of another's, however
//! their subjects are spelled (`alice` and `alice2`, `a*`). `{clientId}` grants
//! become `${iot:ClientId}`, evaluated by IoT per connection, and so they stay
//! within the caller's prefix too. `{sub}` grants carry the subject, checked
//! against the grant rules as for vending.
//!
//! IoT takes at most [`MAX_DOCUMENTS`] documents of [`MAX_DOCUMENT_CHARS`]
//! characters (<https://docs.aws.amazon.com/iot/latest/developerguide/custom-auth-lambda.html>):
//! statements are packed into as few documents as fit, a statement too large for
//! one document split by resources.

use sha2::{Digest, Sha256};

use super::document::{PolicyDocument, Statement};
use crate::arn::IotArns;
use crate::claims::ClaimValues;
use crate::grants::{GrantError, GrantTemplates};

/// The most policy documents an authorizer may return.
pub const MAX_DOCUMENTS: usize = 10;
/// The most characters in one of them.
pub const MAX_DOCUMENT_CHARS: usize = 2048;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AuthorizerPolicyError {
    #[error(transparent)]
    Grants(#[from] GrantError),
    #[error(
        "the grants need {documents} policy documents; IoT takes at most {MAX_DOCUMENTS} of {MAX_DOCUMENT_CHARS} characters"
    )]
    TooLarge { documents: usize },
}

/// The prefix every client ID of the caller `sub` starts with.
pub fn client_id_prefix(sub: &str) -> String {
    let digest = Sha256::digest(sub.as_bytes());
    format!("u{}-", hex::encode(&digest[..16]))
}

/// The policies for the caller `sub` under `templates`.
pub fn authorizer_policies(
    arns: &IotArns,
    templates: &GrantTemplates,
    sub: &str,
    claims: &ClaimValues,
) -> Result<Vec<PolicyDocument>, AuthorizerPolicyError> {
    let grants = templates.for_authorizer(sub, claims)?;
    let prefix = client_id_prefix(sub);
    let mut statements = vec![Statement::allow(
        "iot:Connect",
        vec![arns.client(&format!("{prefix}*"))],
    )];
    if !grants.subscribe.is_empty() {
        let (filters, topics): (Vec<_>, Vec<_>) = grants
            .subscribe
            .iter()
            .map(|(filter, topics)| (arns.topic_filter(filter), arns.topic(topics)))
            .unzip();
        statements.push(Statement::allow("iot:Subscribe", filters));
        statements.push(Statement::allow("iot:Receive", topics));
    }
    if !grants.publish.is_empty() {
        let topics = grants.publish.iter().map(|(_, topics)| arns.topic(topics)).collect();
        statements.push(Statement::allow("iot:Publish", topics));
    }
    pack(statements)
}

/// Fails if the largest caller (the longest `sub` the rule accepts, of its most
/// expensive character) would need more than IoT takes: checked at start-up.
pub fn check_authorizer_fits(arns: &IotArns, templates: &GrantTemplates) -> Result<(), AuthorizerPolicyError> {
    let longest = templates.longest_sub();
    authorizer_policies(arns, templates, &longest, &templates.longest_claims()).map(|_| ())
}

fn chars(statements: &[Statement]) -> usize {
    PolicyDocument::of(statements.to_vec()).to_json().chars().count()
}

/// Packs statements into documents of at most [`MAX_DOCUMENT_CHARS`].
fn pack(statements: Vec<Statement>) -> Result<Vec<PolicyDocument>, AuthorizerPolicyError> {
    let mut pieces = Vec::new();
    for statement in statements {
        split(statement, &mut pieces);
    }
    let mut documents: Vec<Vec<Statement>> = Vec::new();
    for piece in pieces {
        match documents.last_mut() {
            Some(last) if chars(&[last.as_slice(), std::slice::from_ref(&piece)].concat()) <= MAX_DOCUMENT_CHARS => {
                last.push(piece);
            }
            _ => documents.push(vec![piece]),
        }
    }
    if documents.len() > MAX_DOCUMENTS || documents.iter().any(|d| chars(d) > MAX_DOCUMENT_CHARS) {
        return Err(AuthorizerPolicyError::TooLarge {
            documents: documents.len(),
        });
    }
    Ok(documents.into_iter().map(PolicyDocument::of).collect())
}

/// `statement`, or its resources over several statements when one document
/// cannot hold them all.
fn split(statement: Statement, out: &mut Vec<Statement>) {
    if chars(std::slice::from_ref(&statement)) <= MAX_DOCUMENT_CHARS {
        out.push(statement);
        return;
    }
    let resources = statement
        .resource
        .as_ref()
        .map(|r| r.as_slice().to_vec())
        .unwrap_or_default();
    let actions = statement
        .action
        .as_ref()
        .map(|a| a.as_slice().to_vec())
        .unwrap_or_default();
    if resources.len() < 2 {
        out.push(statement);
        return;
    }
    let (left, right) = resources.split_at(resources.len() / 2);
    for half in [left, right] {
        split(Statement::new(statement.effect, actions.clone(), half.to_vec()), out);
    }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;
    use crate::policy::Variables;
    use crate::policy::eval::is_allowed_with;

    fn arns() -> IotArns {
        IotArns::new("aws", "us-east-1", "123456789012").unwrap()
    }

    fn templates() -> GrantTemplates {
        GrantTemplates::parse("allowed/{clientId},users/{sub},broadcast/all", "from/{clientId}").unwrap()
    }

    fn allowed(policies: &[PolicyDocument], client_id: &str, action: &str, resource: &str) -> bool {
        let vars = Variables {
            client_id: Some(client_id.to_owned()),
        };
        is_allowed_with(policies, &vars, action, resource)
    }

    #[test]
    fn a_caller_connects_with_its_own_prefix_and_uses_its_own_topics() {
        let arns = arns();
        let policies = authorizer_policies(&arns, &templates(), "alice", &ClaimValues::none()).unwrap();
        let own = format!("{}tab1", client_id_prefix("alice"));
        assert!(allowed(&policies, &own, "iot:Connect", &arns.client(&own)));
        assert!(allowed(
            &policies,
            &own,
            "iot:Subscribe",
            &arns.topic_filter(&format!("allowed/{own}"))
        ));
        assert!(allowed(
            &policies,
            &own,
            "iot:Receive",
            &arns.topic(&format!("allowed/{own}"))
        ));
        assert!(allowed(
            &policies,
            &own,
            "iot:Subscribe",
            &arns.topic_filter("users/alice")
        ));
        assert!(allowed(
            &policies,
            &own,
            "iot:Publish",
            &arns.topic(&format!("from/{own}"))
        ));
        assert!(!allowed(&policies, &own, "iot:Connect", &arns.client("tab1")));
        assert!(!allowed(
            &policies,
            &own,
            "iot:Subscribe",
            &arns.topic_filter("allowed/#")
        ));
        assert!(!allowed(
            &policies,
            &own,
            "iot:Subscribe",
            &arns.topic_filter("users/bob")
        ));
    }

    #[test]
    fn every_document_fits_what_iot_takes() {
        let many: Vec<String> = (0..60)
            .map(|i| format!("rooms/room-number-{i:03}/{{clientId}}"))
            .collect();
        let templates = GrantTemplates::parse(&many.join(","), "").unwrap();
        let policies = authorizer_policies(&arns(), &templates, "alice", &ClaimValues::none()).unwrap();
        assert!(
            policies.len() > 1 && policies.len() <= MAX_DOCUMENTS,
            "{}",
            policies.len()
        );
        for policy in &policies {
            assert!(policy.to_json().chars().count() <= MAX_DOCUMENT_CHARS);
        }
        let too_many: Vec<String> = (0..400)
            .map(|i| format!("rooms/room-number-{i:03}/{{clientId}}"))
            .collect();
        let templates = GrantTemplates::parse(&too_many.join(","), "").unwrap();
        assert!(matches!(
            authorizer_policies(&arns(), &templates, "alice", &ClaimValues::none()),
            Err(AuthorizerPolicyError::TooLarge { .. })
        ));
        assert!(check_authorizer_fits(&arns(), &templates).is_err());
    }

    #[test]
    fn a_subject_that_would_widen_a_grant_is_refused() {
        for bad in ["a/b", "#", "*", "a?", "$x", ""] {
            assert!(
                authorizer_policies(&arns(), &templates(), bad, &ClaimValues::none()).is_err(),
                "{bad:?}"
            );
        }
    }

    proptest! {
        /// One caller's policies never allow a client ID, or a `{clientId}` topic,
        /// that another caller's allow, whatever the two subjects are.
        #[test]
        fn no_two_callers_share_a_client_id(
            a in "[a-z0-9|@._-]{1,12}",
            b in "[a-z0-9|@._-]{1,12}",
            suffix in "[a-z0-9*?#+/-]{0,8}",
        ) {
            prop_assume!(a != b);
            let arns = arns();
            let templates = GrantTemplates::parse("allowed/{clientId}", "").unwrap();
            let pa = authorizer_policies(&arns, &templates, &a, &ClaimValues::none()).unwrap();
            let pb = authorizer_policies(&arns, &templates, &b, &ClaimValues::none()).unwrap();
            let id = format!("{}{suffix}", client_id_prefix(&a));
            prop_assert!(allowed(&pa, &id, "iot:Connect", &arns.client(&id)));
            prop_assert!(!allowed(&pb, &id, "iot:Connect", &arns.client(&id)));
            let bs = format!("{}{suffix}", client_id_prefix(&b));
            prop_assert!(!allowed(&pa, &bs, "iot:Connect", &arns.client(&bs)));
        }
    }
}
