//! The IoT control plane's topic-rule operations, as `aws iot … --endpoint-url`
//! and the SDKs call them (REST-JSON, SigV4 service `iot`;
//! <https://docs.aws.amazon.com/iot/latest/apireference/API_CreateTopicRule.html>):
//! CreateTopicRule (`POST /rules/{name}`), GetTopicRule (`GET`), ReplaceTopicRule
//! (`PATCH`), DeleteTopicRule (`DELETE`), EnableTopicRule and DisableTopicRule
//! (`POST /rules/{name}/enable|disable`) and ListTopicRules (`GET /rules`).
//!
//! Each is authorized as IoT authorizes it (`iot:CreateTopicRule` … on
//! `arn:aws:iot:<region>:<account>:rule/<name>`, `iot:ListTopicRules` on `*`). A
//! rule that does not exist is `UnauthorizedException` (401), which is what IoT
//! answers (its model has no not-found error for these operations); bad SQL is
//! `SqlParseException`.
//!
//! Not here: the rules themselves ([`crate::rules`]).

use std::sync::Arc;

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::IntoResponse;
use serde_json::json;

use super::signed::{Answer, DataPlaneError, Refused, Signed, invalid, ok, signed_as};
use super::state::Gateway;
use crate::rules::rule::{Rule, RuleError, TopicRulePayload};

/// The SigV4 service name of the IoT control plane.
pub const SERVICE: &[&str] = &["iot"];

/// ListTopicRules' page size: 1 to 10,000 in the model; 1,000 by default here.
const PAGE_DEFAULT: usize = 1000;

fn rule_arn(gateway: &Gateway, name: &str) -> String {
    let arns = gateway.broker.arns();
    format!("arn:aws:iot:{}:{}:rule/{name}", arns.region(), arns.account())
}

/// Authenticates and authorizes one operation on the rule `name`.
async fn authorized(
    gateway: &Gateway,
    operation: &str,
    action: &str,
    name: &str,
    request: axum::extract::Request,
) -> Result<Signed, DataPlaneError> {
    let signed = signed_as(gateway, operation, request, SERVICE).await?;
    signed.authorize(operation, action, &rule_arn(gateway, name), Refused::Unauthorized)?;
    Ok(signed)
}

/// What IoT answers for a rule that is not there.
fn no_such_rule(name: &str) -> DataPlaneError {
    DataPlaneError::new(
        StatusCode::UNAUTHORIZED,
        "UnauthorizedException",
        format!("There is no topic rule named {name}."),
    )
}

fn refused(error: &RuleError) -> DataPlaneError {
    DataPlaneError::new(StatusCode::BAD_REQUEST, error.kind(), error.to_string())
}

/// A rule from a request body (`TopicRulePayload`).
fn rule_from(name: &str, signed: &Signed) -> Result<Rule, DataPlaneError> {
    let payload: TopicRulePayload = serde_json::from_slice(&signed.body)
        .map_err(|e| invalid(format!("The body is not a TopicRulePayload: {e}")))?;
    Rule::new(name, payload, crate::rules::unix_seconds()).map_err(|e| refused(&e))
}

fn empty() -> Answer {
    Ok(StatusCode::OK.into_response())
}

/// `POST /rules/{ruleName}` — CreateTopicRule.
pub async fn create(
    State(gateway): State<Arc<Gateway>>,
    Path(name): Path<String>,
    request: axum::extract::Request,
) -> Answer {
    let signed = authorized(&gateway, "CreateTopicRule", "iot:CreateTopicRule", &name, request).await?;
    let rule = rule_from(&name, &signed)?;
    if !gateway.rules.create(rule) {
        return Err(DataPlaneError::new(
            StatusCode::CONFLICT,
            "ResourceAlreadyExistsException",
            format!("A topic rule named {name} already exists."),
        ));
    }
    empty()
}

/// `PATCH /rules/{ruleName}` — ReplaceTopicRule.
pub async fn replace(
    State(gateway): State<Arc<Gateway>>,
    Path(name): Path<String>,
    request: axum::extract::Request,
) -> Answer {
    let signed = authorized(&gateway, "ReplaceTopicRule", "iot:ReplaceTopicRule", &name, request).await?;
    let mut rule = rule_from(&name, &signed)?;
    if let Some(old) = gateway.rules.get(&name) {
        rule.created_at = old.created_at;
    }
    if !gateway.rules.replace(rule) {
        return Err(no_such_rule(&name));
    }
    empty()
}

/// `GET /rules/{ruleName}` — GetTopicRule.
pub async fn get(
    State(gateway): State<Arc<Gateway>>,
    Path(name): Path<String>,
    request: axum::extract::Request,
) -> Answer {
    authorized(&gateway, "GetTopicRule", "iot:GetTopicRule", &name, request).await?;
    let rule = gateway.rules.get(&name).ok_or_else(|| no_such_rule(&name))?;
    let mut body = serde_json::to_value(&rule.payload).unwrap_or_default();
    body["ruleName"] = json!(rule.name);
    body["createdAt"] = json!(rule.created_at);
    body["ruleDisabled"] = json!(rule.disabled());
    ok(json!({"ruleArn": rule_arn(&gateway, &name), "rule": body}))
}

/// `DELETE /rules/{ruleName}` — DeleteTopicRule.
pub async fn delete(
    State(gateway): State<Arc<Gateway>>,
    Path(name): Path<String>,
    request: axum::extract::Request,
) -> Answer {
    authorized(&gateway, "DeleteTopicRule", "iot:DeleteTopicRule", &name, request).await?;
    if !gateway.rules.delete(&name) {
        return Err(no_such_rule(&name));
    }
    empty()
}

/// `POST /rules/{ruleName}/enable` and `/disable`.
pub async fn enable_or_disable(
    State(gateway): State<Arc<Gateway>>,
    Path((name, verb)): Path<(String, String)>,
    request: axum::extract::Request,
) -> Answer {
    let (operation, action, disabled) = match verb.as_str() {
        "enable" => ("EnableTopicRule", "iot:EnableTopicRule", false),
        "disable" => ("DisableTopicRule", "iot:DisableTopicRule", true),
        _ => return Err(invalid(format!("No such operation: /rules/{name}/{verb}"))),
    };
    authorized(&gateway, operation, action, &name, request).await?;
    let rule = gateway.rules.get(&name).ok_or_else(|| no_such_rule(&name))?;
    let mut changed = (*rule).clone();
    changed.payload.rule_disabled = Some(disabled);
    gateway.rules.replace(changed);
    empty()
}

/// `GET /rules[?topic=&ruleDisabled=&maxResults=&nextToken=]` — ListTopicRules.
pub async fn list(State(gateway): State<Arc<Gateway>>, request: axum::extract::Request) -> Answer {
    let signed = signed_as(&gateway, "ListTopicRules", request, SERVICE).await?;
    signed.authorize("ListTopicRules", "iot:ListTopicRules", "*", Refused::Unauthorized)?;
    let limit = match signed.param("maxResults") {
        None => PAGE_DEFAULT,
        Some(n) => match n.parse::<usize>() {
            Ok(n @ 1..=10_000) => n,
            _ => return Err(invalid("maxResults must be from 1 to 10000.")),
        },
    };
    let after = signed.param("nextToken").map(str::to_owned);
    let disabled = signed.param("ruleDisabled").map(|v| v == "true");
    let topic = signed.param("topic").map(str::to_owned);
    let rules: Vec<_> = gateway
        .rules
        .list()
        .into_iter()
        .filter(|r| after.as_deref().is_none_or(|after| r.name.as_str() > after))
        .filter(|r| disabled.is_none_or(|d| r.disabled() == d))
        .filter(|r| topic.as_deref().is_none_or(|t| r.sql.from() == Some(t)))
        .collect();
    let page: Vec<_> = rules.iter().take(limit).collect();
    let mut body = json!({"rules": page.iter().map(|r| json!({
        "ruleArn": rule_arn(&gateway, &r.name),
        "ruleName": r.name,
        "topicPattern": r.sql.from(),
        "createdAt": r.created_at,
        "ruleDisabled": r.disabled(),
    })).collect::<Vec<_>>()});
    if rules.len() > limit
        && let Some(last) = page.last()
    {
        body["nextToken"] = json!(last.name);
    }
    ok(body)
}
