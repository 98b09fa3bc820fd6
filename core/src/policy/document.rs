//! The IAM policy language's JSON shape, as far as IoT authorization uses it.
//!
//! `Statement`, `Action`, `NotAction`, `Resource` and `NotResource` may each be a
//! single value or an array
//! (<https://docs.aws.amazon.com/IAM/latest/UserGuide/reference_policies_grammar.html>).
//! `Condition` is kept but not interpreted; [`super::eval`] treats a conditional
//! Allow as not granting and a conditional Deny as denying, which can only be
//! stricter than AWS. `Principal` is ignored (identity and session policies have
//! none).

use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum OneOrMany<T> {
    One(T),
    Many(Vec<T>),
}

impl<T> OneOrMany<T> {
    pub fn as_slice(&self) -> &[T] {
        match self {
            OneOrMany::One(one) => std::slice::from_ref(one),
            OneOrMany::Many(many) => many,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum Effect {
    Allow,
    Deny,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase", deny_unknown_fields)]
pub struct Statement {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sid: Option<String>,
    pub effect: Effect,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub principal: Option<serde_json::Value>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub action: Option<OneOrMany<String>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub not_action: Option<OneOrMany<String>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resource: Option<OneOrMany<String>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub not_resource: Option<OneOrMany<String>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub condition: Option<serde_json::Value>,
}

impl Statement {
    /// An unconditional statement over exact actions and resources.
    pub fn new(effect: Effect, actions: Vec<String>, resources: Vec<String>) -> Self {
        fn one_or_many(mut values: Vec<String>) -> OneOrMany<String> {
            if values.len() == 1 {
                OneOrMany::One(values.remove(0))
            } else {
                OneOrMany::Many(values)
            }
        }
        Self {
            sid: None,
            effect,
            principal: None,
            action: Some(one_or_many(actions)),
            not_action: None,
            resource: Some(one_or_many(resources)),
            not_resource: None,
            condition: None,
        }
    }

    /// `Allow` of one action on these resources: every statement this project builds.
    pub fn allow(action: &str, resources: Vec<String>) -> Self {
        Self::new(Effect::Allow, vec![action.to_owned()], resources)
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase", deny_unknown_fields)]
pub struct PolicyDocument {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub version: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub id: Option<String>,
    pub statement: OneOrMany<Statement>,
}

/// Why a policy document was refused.
#[derive(Debug, thiserror::Error)]
pub enum PolicyParseError {
    #[error("policy is not valid JSON of the policy grammar: {0}")]
    Syntax(#[from] serde_json::Error),
    #[error("unsupported policy Version {0:?} (expected 2012-10-17 or 2008-10-17)")]
    Version(String),
    #[error("statement {index} needs exactly one of Action and NotAction")]
    Action { index: usize },
    #[error("statement {index} needs exactly one of Resource and NotResource")]
    Resource { index: usize },
    #[error("policy has no statements")]
    NoStatements,
}

impl PolicyDocument {
    pub const VERSION: &'static str = "2012-10-17";

    /// A current-version document of these statements.
    pub fn of(statements: Vec<Statement>) -> Self {
        Self {
            version: Some(Self::VERSION.to_owned()),
            id: None,
            statement: OneOrMany::Many(statements),
        }
    }

    /// Parses and checks the structural rules IAM enforces on a policy.
    pub fn parse(json: &str) -> Result<Self, PolicyParseError> {
        let document: PolicyDocument = serde_json::from_str(json)?;
        if let Some(version) = &document.version
            && version != "2012-10-17"
            && version != "2008-10-17"
        {
            return Err(PolicyParseError::Version(version.clone()));
        }
        let statements = document.statement.as_slice();
        if statements.is_empty() {
            return Err(PolicyParseError::NoStatements);
        }
        for (index, statement) in statements.iter().enumerate() {
            if statement.action.is_some() == statement.not_action.is_some() {
                return Err(PolicyParseError::Action { index });
            }
            if statement.resource.is_some() == statement.not_resource.is_some() {
                return Err(PolicyParseError::Resource { index });
            }
        }
        Ok(document)
    }

    pub fn statements(&self) -> &[Statement] {
        self.statement.as_slice()
    }

    /// Compact JSON, the form sent to STS (whose limit counts characters).
    #[allow(clippy::expect_used, reason = "a document of strings and lists always serialises")]
    pub fn to_json(&self) -> String {
        serde_json::to_string(self).expect("policy documents always serialise")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn single_values_and_arrays_both_parse() {
        let doc = PolicyDocument::parse(
            r#"{"Version":"2012-10-17","Statement":{"Effect":"Allow","Action":"iot:*","Resource":["a","b"]}}"#,
        )
        .unwrap();
        assert_eq!(doc.statements().len(), 1);
        assert_eq!(doc.statements()[0].resource.as_ref().unwrap().as_slice(), ["a", "b"]);
    }

    #[test]
    fn statements_need_exactly_one_of_action_and_not_action() {
        let both = r#"{"Statement":[{"Effect":"Allow","Action":"a","NotAction":"b","Resource":"*"}]}"#;
        assert!(matches!(
            PolicyDocument::parse(both),
            Err(PolicyParseError::Action { index: 0 })
        ));
        let neither = r#"{"Statement":[{"Effect":"Allow","Resource":"*"}]}"#;
        assert!(matches!(
            PolicyDocument::parse(neither),
            Err(PolicyParseError::Action { .. })
        ));
        let no_resource = r#"{"Statement":[{"Effect":"Allow","Action":"a"}]}"#;
        assert!(matches!(
            PolicyDocument::parse(no_resource),
            Err(PolicyParseError::Resource { .. })
        ));
    }

    #[test]
    fn malformed_documents_are_refused() {
        for bad in [
            "",
            "not json",
            "{}",
            r#"{"Statement":[]}"#,
            r#"{"Version":"2020-01-01","Statement":{"Effect":"Allow","Action":"a","Resource":"*"}}"#,
            r#"{"Statement":{"Effect":"Maybe","Action":"a","Resource":"*"}}"#,
            r#"{"Statement":{"Effect":"Allow","Action":"a","Resource":"*","Bogus":1}}"#,
        ] {
            assert!(PolicyDocument::parse(bad).is_err(), "{bad:?} should be refused");
        }
    }
}
