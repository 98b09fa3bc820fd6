//! The grants function: for apps whose membership lives in a database rather
//! than in the token. When `GRANTS_FUNCTION` names a Lambda function, the
//! vending API invokes it (synchronously, `GRANTS_FUNCTION_TIMEOUT_MS`) for
//! every vend, resumes included, with
//!
//! ```json
//! {"sub": "alice", "claims": {…the token's claims…}, "clientId": "…", "resumed": false,
//!  "narrowing": {"rooms": ["42"]} }
//! ```
//!
//! and it answers values for the grant templates' claims:
//! `{"claims": {"rooms": ["42", "7"]}}`. Those values replace the token's for
//! the claims it names; the templates (`{claims.rooms}`) turn them into topics,
//! and narrowing, the STS size budget and the client role bound them exactly as
//! they bound a token's claims.
//!
//! Why values and not topics: the templates stay the one place that says which
//! topics exist, the client role's policy (derived from the templates) stays
//! right, and a function's bug cannot grant a topic of another shape. Each
//! value is checked as a token's claim is (one topic level, no wildcard or
//! reserved characters, bounded length).
//!
//! A failed, slow, or malformed answer is `503 GrantsUnavailable` (the log says
//! which), never credentials without the function's say.

use std::time::Duration;

use async_trait::async_trait;
use aws_sdk_lambda::error::{ProvideErrorMetadata, SdkError};
use serde_json::{Map, Value, json};

use serverless_websockets_core::claims::ClaimValues;
use serverless_websockets_core::grants::GrantTemplates;

/// How long the API waits for the function, by default.
pub const DEFAULT_TIMEOUT_MS: u64 = 3000;
pub const MAX_TIMEOUT_MS: u64 = 10_000;

/// What the function is asked.
#[derive(Debug, Clone, Copy)]
pub struct GrantsRequest<'a> {
    pub sub: Option<&'a str>,
    pub claims: Option<&'a Map<String, Value>>,
    pub client_id: &'a str,
    pub resumed: bool,
    pub narrowing: Option<&'a Value>,
}

impl GrantsRequest<'_> {
    pub fn to_json(&self) -> Value {
        json!({
            "sub": self.sub,
            "claims": self.claims,
            "clientId": self.client_id,
            "resumed": self.resumed,
            "narrowing": self.narrowing,
        })
    }
}

/// Why the function gave no usable answer (the caller sees `503 GrantsUnavailable`).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum GrantsFnError {
    #[error("the grants function failed: {0}")]
    Failed(String),
    #[error("the grants function did not answer within {0:?}")]
    Timeout(Duration),
    #[error("the grants function's answer is not usable: {0}")]
    BadAnswer(String),
}

/// Where claim values come from: the Lambda function, or a test's.
#[async_trait]
pub trait GrantsSource: Send + Sync + 'static {
    /// The function's raw answer (JSON bytes).
    async fn invoke(&self, request: Value) -> Result<Vec<u8>, GrantsFnError>;
}

/// `lambda:InvokeFunction`, `RequestResponse`, on `GRANTS_FUNCTION`.
#[derive(Debug, Clone)]
pub struct LambdaGrants {
    client: aws_sdk_lambda::Client,
    function: String,
    timeout: Duration,
}

impl LambdaGrants {
    pub fn new(sdk_config: &aws_config::SdkConfig, function: &str, timeout: Duration) -> Self {
        Self {
            client: aws_sdk_lambda::Client::new(sdk_config),
            function: function.to_owned(),
            timeout,
        }
    }

    /// The same at another Lambda endpoint (the local stack's `--lambda-endpoint`).
    pub fn at(sdk_config: &aws_config::SdkConfig, endpoint: &str, function: &str, timeout: Duration) -> Self {
        let config = aws_sdk_lambda::config::Builder::from(sdk_config)
            .endpoint_url(endpoint)
            .build();
        Self {
            client: aws_sdk_lambda::Client::from_conf(config),
            function: function.to_owned(),
            timeout,
        }
    }

    /// The grants function `config` names, if any.
    pub fn for_config(
        config: &crate::config::Config,
        sdk_config: &aws_config::SdkConfig,
    ) -> Option<std::sync::Arc<dyn GrantsSource>> {
        let function = config.grants_function.as_deref()?;
        Some(std::sync::Arc::new(Self::new(
            sdk_config,
            function,
            config.grants_function_timeout,
        )))
    }
}

#[async_trait]
impl GrantsSource for LambdaGrants {
    async fn invoke(&self, request: Value) -> Result<Vec<u8>, GrantsFnError> {
        let call = self
            .client
            .invoke()
            .function_name(&self.function)
            .payload(aws_sdk_lambda::primitives::Blob::new(request.to_string()))
            .send();
        let output = match tokio::time::timeout(self.timeout, call).await {
            Err(_) => return Err(GrantsFnError::Timeout(self.timeout)),
            Ok(Err(SdkError::ServiceError(e))) => {
                return Err(GrantsFnError::Failed(format!(
                    "{}: {}",
                    e.err().code().unwrap_or("Unknown"),
                    e.err().message().unwrap_or_default()
                )));
            }
            Ok(Err(e)) => return Err(GrantsFnError::Failed(format!("{e:?}"))),
            Ok(Ok(output)) => output,
        };
        let payload = output.payload().map(|p| p.as_ref().to_vec()).unwrap_or_default();
        if let Some(kind) = output.function_error() {
            let detail = String::from_utf8_lossy(&payload);
            return Err(GrantsFnError::Failed(format!("{kind}: {detail}")));
        }
        Ok(payload)
    }
}

/// The token's claims with the function's values for the templates' claims in
/// place of the token's; every value checked as a token's would be.
pub async fn claims_with(
    source: &dyn GrantsSource,
    grants: &GrantTemplates,
    request: GrantsRequest<'_>,
) -> Result<Map<String, Value>, GrantsFnError> {
    let answer = source.invoke(request.to_json()).await?;
    let answer: Value =
        serde_json::from_slice(&answer).map_err(|e| GrantsFnError::BadAnswer(format!("not JSON: {e}")))?;
    let Some(Value::Object(given)) = answer.get("claims") else {
        return Err(GrantsFnError::BadAnswer(
            "no \"claims\" object, as in {\"claims\": {\"rooms\": [\"42\"]}}".into(),
        ));
    };
    let names = grants.claim_names();
    let mut merged = request.claims.cloned().unwrap_or_default();
    for (name, value) in given {
        if !names.contains(&name.as_str()) {
            tracing::debug!(claim = %name, "the grants function named a claim no template uses; ignored");
            continue;
        }
        let one: Map<String, Value> = [(name.clone(), value.clone())].into_iter().collect();
        ClaimValues::read(&[name.as_str()], Some(&one), grants.sub_rule, None)
            .map_err(|e| GrantsFnError::BadAnswer(e.to_string()))?;
        merged.insert(name.clone(), value.clone());
    }
    Ok(merged)
}

#[cfg(test)]
mod tests {
    use super::*;

    struct Answer(Result<Vec<u8>, GrantsFnError>);

    #[async_trait]
    impl GrantsSource for Answer {
        async fn invoke(&self, _: Value) -> Result<Vec<u8>, GrantsFnError> {
            self.0.clone()
        }
    }

    fn templates() -> GrantTemplates {
        GrantTemplates::parse("allowed/{clientId},rooms/{claims.rooms}", "").unwrap()
    }

    fn request<'a>(claims: &'a Map<String, Value>) -> GrantsRequest<'a> {
        GrantsRequest {
            sub: Some("alice"),
            claims: Some(claims),
            client_id: "c1",
            resumed: false,
            narrowing: None,
        }
    }

    #[tokio::test]
    async fn the_function_s_values_replace_the_token_s_for_the_claims_it_names() {
        let token: Map<String, Value> =
            serde_json::from_value(json!({"sub": "alice", "rooms": ["1"], "x": 1})).unwrap();
        let source = Answer(Ok(br#"{"claims": {"rooms": ["42", "7"], "unused": ["z"]}}"#.to_vec()));
        let merged = claims_with(&source, &templates(), request(&token)).await.unwrap();
        assert_eq!(merged["rooms"], json!(["42", "7"]));
        assert_eq!(merged["x"], json!(1));
        assert!(!merged.contains_key("unused"));
    }

    #[tokio::test]
    async fn a_value_a_token_could_not_carry_is_a_bad_answer_not_a_grant() {
        let token = Map::new();
        for answer in [
            r#"{"claims": {"rooms": ["a/b"]}}"#,
            r##"{"claims": {"rooms": ["#"]}}"##,
            r#"{"claims": {"rooms": [{"id": 42}]}}"#,
            r#"{"rooms": ["42"]}"#,
            "not json",
        ] {
            let source = Answer(Ok(answer.as_bytes().to_vec()));
            assert!(
                matches!(
                    claims_with(&source, &templates(), request(&token)).await,
                    Err(GrantsFnError::BadAnswer(_))
                ),
                "{answer}"
            );
        }
    }

    #[test]
    fn the_request_carries_who_asks_and_for_what() {
        let token: Map<String, Value> = serde_json::from_value(json!({"sub": "alice"})).unwrap();
        let narrowing = json!({"rooms": ["42"]});
        let mut asked = request(&token);
        asked.narrowing = Some(&narrowing);
        assert_eq!(
            asked.to_json(),
            json!({"sub": "alice", "claims": {"sub": "alice"}, "clientId": "c1", "resumed": false, "narrowing": {"rooms": ["42"]}})
        );
    }
}
