//! A topic rule as the IoT control plane takes it — `TopicRulePayload`'s JSON
//! (<https://docs.aws.amazon.com/iot/latest/apireference/API_TopicRulePayload.html>)
//! — checked once: the name (`^[a-zA-Z0-9_]+$`, 1–128, no hyphens), the SQL and its
//! version, at most 10 actions, and only the actions the emulator runs (`lambda`,
//! `republish`); any other action is refused with "not emulated" rather than
//! silently ignored.
//!
//! Not here: running a rule ([`super::Engine`]), the HTTP API (`gateway::control`).

use serde::{Deserialize, Serialize};
use serde_json::Value as Json;

use super::sql::template::Template;
use super::sql::{Sql, SqlError, SqlVersion};

/// At most this many actions per rule.
pub const MAX_ACTIONS: usize = 10;

/// The payload of CreateTopicRule / ReplaceTopicRule, as sent.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct TopicRulePayload {
    pub sql: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    #[serde(default)]
    pub actions: Vec<Json>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rule_disabled: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub aws_iot_sql_version: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error_action: Option<Json>,
}

/// What an action does, once checked.
#[derive(Debug, Clone, PartialEq)]
pub enum Action {
    /// Invoke a function asynchronously with the rule's output as the event.
    Lambda { function_arn: String },
    /// Publish the output to a topic (a substitution template).
    Republish {
        topic: String,
        template: Template,
        qos: u8,
        headers: Option<Json>,
    },
}

impl Action {
    /// The action's name in an error-action message's `failedAction`.
    pub fn kind(&self) -> &'static str {
        match self {
            Self::Lambda { .. } => "LambdaAction",
            Self::Republish { .. } => "RepublishAction",
        }
    }

    /// What the action works on, for `failedResource`.
    pub fn resource(&self) -> &str {
        match self {
            Self::Lambda { function_arn } => function_arn,
            Self::Republish { topic, .. } => topic,
        }
    }
}

/// A refused rule: the AWS error type and its message.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RuleError {
    #[error("{0}")]
    Sql(#[from] SqlError),
    #[error("{0}")]
    Invalid(String),
}

impl RuleError {
    /// The AWS error type (`x-amzn-ErrorType`).
    pub fn kind(&self) -> &'static str {
        match self {
            Self::Sql(_) => "SqlParseException",
            Self::Invalid(_) => "InvalidRequestException",
        }
    }
}

/// A rule, checked and its SQL parsed.
#[derive(Debug, Clone)]
pub struct Rule {
    pub name: String,
    pub payload: TopicRulePayload,
    pub sql: Sql,
    pub actions: Vec<Action>,
    pub error_action: Option<Action>,
    pub created_at: u64,
}

impl Rule {
    /// Checks `payload` as the rule `name`, created at `created_at` (Unix seconds).
    pub fn new(name: &str, payload: TopicRulePayload, created_at: u64) -> Result<Self, RuleError> {
        check_name(name)?;
        if payload.actions.len() > MAX_ACTIONS {
            return Err(RuleError::Invalid(format!("a rule has at most {MAX_ACTIONS} actions")));
        }
        let version = SqlVersion::parse(payload.aws_iot_sql_version.as_deref())?;
        if payload.aws_iot_sql_version.is_none() {
            tracing::warn!(rule = %name, "rule {name} names no awsIotSqlVersion: IoT then reads its SQL as 2015-10-08, not 2016-03-23");
        }
        let sql = Sql::parse(&payload.sql, version)?;
        let actions = payload
            .actions
            .iter()
            .map(|a| action(a, version))
            .collect::<Result<_, _>>()?;
        let error_action = payload.error_action.as_ref().map(|a| action(a, version)).transpose()?;
        Ok(Self {
            name: name.to_owned(),
            sql,
            actions,
            error_action,
            created_at,
            payload,
        })
    }

    pub fn disabled(&self) -> bool {
        self.payload.rule_disabled.unwrap_or(false)
    }
}

/// `^[a-zA-Z0-9_]+$`, 1–128 characters.
pub fn check_name(name: &str) -> Result<(), RuleError> {
    let valid = (1..=128).contains(&name.len()) && name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_');
    if valid {
        Ok(())
    } else {
        Err(RuleError::Invalid(format!(
            "the rule name {name:?} must match ^[a-zA-Z0-9_]+$ (1 to 128 characters, no hyphens)"
        )))
    }
}

/// One action of the API's shape (`{"lambda": {...}}`), checked.
fn action(json: &Json, version: SqlVersion) -> Result<Action, RuleError> {
    let Some((kind, body)) = json.as_object().filter(|o| o.len() == 1).and_then(|o| o.iter().next()) else {
        return Err(RuleError::Invalid("each action names exactly one action type".into()));
    };
    let field = |name: &str| body.get(name).and_then(Json::as_str).map(str::to_owned);
    match kind.as_str() {
        "lambda" => {
            let function_arn = field("functionArn")
                .ok_or_else(|| RuleError::Invalid("the lambda action needs a functionArn".into()))?;
            Ok(Action::Lambda { function_arn })
        }
        "republish" => {
            let topic =
                field("topic").ok_or_else(|| RuleError::Invalid("the republish action needs a topic".into()))?;
            field("roleArn").ok_or_else(|| RuleError::Invalid("the republish action needs a roleArn".into()))?;
            let qos = match body.get("qos").and_then(Json::as_u64) {
                None | Some(0) => 0,
                Some(1) => 1,
                Some(other) => return Err(RuleError::Invalid(format!("republish qos {other} is not 0 or 1"))),
            };
            if topic.starts_with("$aws/things/") && topic.contains("/jobs") {
                return Err(RuleError::Invalid("republish cannot target a jobs topic".into()));
            }
            Ok(Action::Republish {
                template: Template::parse(&topic, version)?,
                topic,
                qos,
                headers: body.get("headers").cloned(),
            })
        }
        other => Err(RuleError::Invalid(format!(
            "the {other} action is not emulated by the local rules engine (lambda and republish are)"
        ))),
    }
}

/// A Lambda function's name and qualifier from its ARN (or a plain name), as the
/// Invoke API's path and `Qualifier` take them.
pub fn function_name(arn: &str) -> (&str, Option<&str>) {
    match arn.strip_prefix("arn:") {
        Some(rest) => {
            let mut parts = rest.splitn(7, ':').skip(5);
            let name = parts.next().unwrap_or(arn);
            (name, parts.next())
        }
        None => match arn.split_once(':') {
            Some((name, qualifier)) => (name, Some(qualifier)),
            None => (arn, None),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn payload(sql: &str, actions: Vec<Json>) -> TopicRulePayload {
        TopicRulePayload {
            sql: sql.into(),
            description: None,
            actions,
            rule_disabled: None,
            aws_iot_sql_version: Some("2016-03-23".into()),
            error_action: None,
        }
    }

    #[test]
    fn names_with_hyphens_or_over_128_characters_are_refused() {
        assert!(check_name("echo_rule1").is_ok());
        for bad in ["echo-rule", "", "a b", &"a".repeat(129)] {
            assert_eq!(
                check_name(bad).unwrap_err().kind(),
                "InvalidRequestException",
                "{bad:?}"
            );
        }
    }

    #[test]
    fn lambda_and_republish_are_taken_and_other_actions_are_refused_as_not_emulated() {
        let lambda =
            serde_json::json!({"lambda": {"functionArn": "arn:aws:lambda:us-east-1:000000000000:function:echo"}});
        let republish = serde_json::json!({"republish": {"topic": "out/${topic(2)}", "roleArn": "arn:aws:iam::000000000000:role/r", "qos": 1}});
        let rule = Rule::new("r", payload("SELECT * FROM 'a/#'", vec![lambda, republish]), 0).unwrap();
        assert_eq!(rule.actions.len(), 2);
        let sqs = serde_json::json!({"sqs": {"queueUrl": "https://sqs", "roleArn": "r"}});
        let refused = Rule::new("r", payload("SELECT * FROM 'a/#'", vec![sqs]), 0).unwrap_err();
        assert!(refused.to_string().contains("not emulated"), "{refused}");
    }

    #[test]
    fn bad_sql_is_a_sql_parse_exception_and_eleven_actions_are_too_many() {
        assert_eq!(
            Rule::new("r", payload("SELEKT *", vec![]), 0).unwrap_err().kind(),
            "SqlParseException"
        );
        let lambda = serde_json::json!({"lambda": {"functionArn": "f"}});
        let eleven = vec![lambda; 11];
        assert_eq!(
            Rule::new("r", payload("SELECT * FROM 'a'", eleven), 0)
                .unwrap_err()
                .kind(),
            "InvalidRequestException"
        );
    }

    #[test]
    fn a_function_arn_gives_the_name_and_qualifier_the_invoke_api_takes() {
        assert_eq!(
            function_name("arn:aws:lambda:us-east-1:000000000000:function:echo"),
            ("echo", None)
        );
        assert_eq!(
            function_name("arn:aws:lambda:us-east-1:000000000000:function:echo:live"),
            ("echo", Some("live"))
        );
        assert_eq!(function_name("echo"), ("echo", None));
        assert_eq!(function_name("echo:3"), ("echo", Some("3")));
    }
}
