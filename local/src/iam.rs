//! IAM's role-policy operations, served on the STS emulator's port (the IAM
//! Query API, SigV4 service `iam`; <https://docs.aws.amazon.com/IAM/latest/APIReference/API_PutRolePolicy.html>):
//! `PutRolePolicy`, `DeleteRolePolicy`, `GetRolePolicy` and `ListRolePolicies`
//! on the stack's roles, so `aws iam put-role-policy --endpoint-url <sts>` works.
//!
//! What it is for: **bans**. A policy put on the client role applies to every
//! live session of the role from its next request on, as on AWS — a `Deny`
//! conditioned on `aws:SourceIdentity` takes one user's credentials out, one on
//! `aws:TokenIssueTime` every session issued before a time (what IAM's "revoke
//! active sessions" writes). The conditions are evaluated by
//! `serverless_websockets_core::policy::condition`.
//!
//! Not here: managed policies, role creation, users and groups.

use std::collections::HashMap;

use axum::http::StatusCode;

use crate::identity::Identity;
use crate::sts::{Fault, LocalRole, escape};
use serverless_websockets_core::policy::PolicyDocument;

/// The IAM Query API's XML namespace.
pub const NAMESPACE: &str = "https://iam.amazonaws.com/doc/2010-05-08/";
/// IAM's limit on one role's inline policies, all together (characters).
pub const MAX_ROLE_POLICY_CHARS: usize = 10_240;

/// Runs `action` (one of the four) for `caller` on the role `RoleName` names.
pub fn role_policy(
    roles: &[LocalRole],
    caller: &Identity,
    action: &str,
    params: &HashMap<String, String>,
) -> Result<String, Fault> {
    let request = Request { params };
    let role_name = request.param("RoleName")?;
    let role = roles.iter().find(|r| r.name == role_name).ok_or_else(|| {
        Fault::new(
            StatusCode::NOT_FOUND,
            "NoSuchEntity",
            format!("The role with name {role_name} cannot be found."),
        )
    })?;
    if !caller.is_allowed(&format!("iam:{action}"), &role.arn) {
        return Err(Fault::new(
            StatusCode::FORBIDDEN,
            "AccessDenied",
            format!(
                "User: {} is not authorized to perform: iam:{action} on resource: {}",
                caller.arn, role.arn
            ),
        ));
    }
    match action {
        "PutRolePolicy" => put(role, &request),
        "DeleteRolePolicy" => {
            let name = request.param("PolicyName")?;
            if !role.inline.delete(name) {
                return Err(no_such_policy(name));
            }
            tracing::info!(role = %role.name, policy = %name, "role policy deleted");
            Ok(String::new())
        }
        "GetRolePolicy" => get(role, &request),
        _ => {
            let members: String = role
                .inline
                .names()
                .iter()
                .map(|n| format!("<member>{}</member>", escape(n)))
                .collect();
            Ok(format!(
                "<ListRolePoliciesResult><PolicyNames>{members}</PolicyNames><IsTruncated>false</IsTruncated></ListRolePoliciesResult>"
            ))
        }
    }
}

struct Request<'a> {
    params: &'a HashMap<String, String>,
}

impl Request<'_> {
    fn param(&self, name: &str) -> Result<&str, Fault> {
        self.params.get(name).map(String::as_str).ok_or_else(|| {
            Fault::new(
                StatusCode::BAD_REQUEST,
                "ValidationError",
                format!("{name} is required"),
            )
        })
    }
}

fn no_such_policy(name: &str) -> Fault {
    Fault::new(
        StatusCode::NOT_FOUND,
        "NoSuchEntity",
        format!("The role policy with name {name} cannot be found."),
    )
}

/// `PutRolePolicy`: checked as IAM checks it (grammar, the role's size budget).
fn put(role: &LocalRole, request: &Request<'_>) -> Result<String, Fault> {
    let (name, text) = (request.param("PolicyName")?, request.param("PolicyDocument")?);
    let policy = PolicyDocument::parse(text).map_err(|e| {
        Fault::new(
            StatusCode::BAD_REQUEST,
            "MalformedPolicyDocument",
            format!("Syntax errors in policy: {e}"),
        )
    })?;
    let others: usize = role
        .inline
        .names()
        .iter()
        .filter(|n| n.as_str() != name)
        .filter_map(|n| role.inline.get(n))
        .map(|p| p.to_json().chars().count())
        .sum();
    if others + policy.to_json().chars().count() > MAX_ROLE_POLICY_CHARS {
        return Err(Fault::new(
            StatusCode::CONFLICT,
            "LimitExceeded",
            format!(
                "Maximum policy size of {MAX_ROLE_POLICY_CHARS} bytes exceeded for role {}",
                role.name
            ),
        ));
    }
    role.inline.put(name, policy);
    tracing::info!(role = %role.name, policy = %name, "role policy put: live sessions of the role see it from their next request");
    Ok(String::new())
}

/// `GetRolePolicy`: the document URL-encoded, as IAM returns it.
fn get(role: &LocalRole, request: &Request<'_>) -> Result<String, Fault> {
    let name = request.param("PolicyName")?;
    let policy = role.inline.get(name).ok_or_else(|| no_such_policy(name))?;
    let document: String = url::form_urlencoded::byte_serialize(policy.to_json().as_bytes())
        .collect::<String>()
        .replace('+', "%20");
    Ok(format!(
        "<GetRolePolicyResult><RoleName>{}</RoleName><PolicyName>{}</PolicyName><PolicyDocument>{}</PolicyDocument></GetRolePolicyResult>",
        escape(&role.name),
        escape(name),
        escape(&document)
    ))
}
