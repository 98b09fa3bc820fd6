//! The JWT custom authorizer: an AWS IoT Core custom-authorizer function that
//! lets a browser connect with the token it already has — no vending round
//! trip, no AWS keys in the page
//! (<https://docs.aws.amazon.com/iot/latest/developerguide/custom-auth-lambda.html>).
//!
//! For each connection IoT sends the token; the function verifies it with the
//! vending API's own verifier (`serverless_websockets_vending::auth`: the same
//! algorithms, issuer, audience and JWKS cache, configured by the same `JWT_*`
//! variables) and answers with IoT policies built from the same grant templates
//! (`SUBSCRIBE_TOPICS`, `PUBLISH_TOPICS`) by
//! [`serverless_websockets_core::policy::authorizer`]: client IDs bound to the
//! caller by a per-subject prefix, `{clientId}` as `${iot:ClientId}`.
//!
//! * `principalId` is that prefix without its dash (`u` and 32 hex digits):
//!   the lifecycle events' `principalIdentifier`, which a backend can map back
//!   to its users' client IDs.
//! * `disconnectAfterInSeconds` is the token's remaining life, within IoT's 300
//!   to 86,400 s: a connection never outlives its token by more than IoT's
//!   minimum. `refreshAfterInSeconds` is `REFRESH_AFTER_SECONDS` (default 3600).
//! * A refusal (no token, a bad or expired one, a subject the grant rules
//!   refuse) is `isAuthenticated: false`, with a WARN line that says why and
//!   never the token.
//!
//! The same [`JwtAuthorizer`] runs as the Lambda (`main.rs`) and, in the local
//! stack's `--auth jwt` mode, in-process behind the emulated IoT gateway.

use std::time::{SystemTime, UNIX_EPOCH};

use aws_lambda_events::event::iam::IamPolicyDocument;
use aws_lambda_events::event::iot::{IoTCoreCustomAuthorizerRequest, IoTCoreCustomAuthorizerResponse};
use serde_json::Value;
use serverless_websockets_core::arn::IotArns;
use serverless_websockets_core::grants::GrantTemplates;
use serverless_websockets_core::policy::authorizer::{authorizer_policies, check_authorizer_fits, client_id_prefix};
use serverless_websockets_vending::auth::{JwtVerifier, SetupError};
use serverless_websockets_vending::config::{ConfigError, JwtSettings, read_shared};

/// IoT's bounds for both intervals.
pub use serverless_websockets_core::quota::{
    AUTHORIZER_MAX_INTERVAL_SECS as MAX_INTERVAL, AUTHORIZER_MIN_INTERVAL_SECS as MIN_INTERVAL,
};
/// How often IoT asks again by default: hourly.
pub const DEFAULT_REFRESH_AFTER: u32 = 3600;

/// The authorizer's settings.
#[derive(Debug, Clone)]
pub struct Settings {
    pub jwt: JwtSettings,
    pub grants: GrantTemplates,
    pub iot_arns: IotArns,
    /// `REFRESH_AFTER_SECONDS`.
    pub refresh_after: u32,
    /// IoT's 300 s minimum; the local stack's tests shorten it.
    pub min_interval: u32,
}

impl Settings {
    pub fn from_env() -> Result<Self, ConfigError> {
        Self::from_lookup(|name| std::env::var(name).ok())
    }

    /// `AWS_REGION`, `IOT_ACCOUNT_ID` (the IoT resources' account),
    /// `REFRESH_AFTER_SECONDS`, and the variables the vending service reads
    /// for tokens and grants.
    pub fn from_lookup(lookup: impl Fn(&str) -> Option<String>) -> Result<Self, ConfigError> {
        let region = lookup("AWS_REGION")
            .or_else(|| lookup("AWS_DEFAULT_REGION"))
            .ok_or_else(|| error("AWS_REGION", "is not set", "an AWS region such as us-east-1"))?;
        let account = lookup("IOT_ACCOUNT_ID").ok_or_else(|| {
            error(
                "IOT_ACCOUNT_ID",
                "is not set",
                "the 12-digit account of the IoT endpoint (the template sets it)",
            )
        })?;
        let partition = lookup("IOT_PARTITION").unwrap_or_else(|| "aws".into());
        let iot_arns = IotArns::new(&partition, &region, &account).map_err(|e| {
            error(
                "IOT_ACCOUNT_ID",
                &format!("or AWS_REGION is not usable: {e}"),
                "a 12-digit account ID",
            )
        })?;
        let refresh_after = match lookup("REFRESH_AFTER_SECONDS") {
            None => DEFAULT_REFRESH_AFTER,
            Some(value) => value
                .parse::<u32>()
                .ok()
                .filter(|n| (MIN_INTERVAL..=MAX_INTERVAL).contains(n))
                .ok_or_else(|| {
                    error(
                        "REFRESH_AFTER_SECONDS",
                        &format!("is {value:?}"),
                        "a whole number of seconds from 300 to 86400",
                    )
                })?,
        };
        let (jwt, grants) = read_shared(&lookup, &iot_arns)?;
        check_authorizer_fits(&iot_arns, &grants).map_err(|e| {
            error(
                "SUBSCRIBE_TOPICS",
                &format!("and PUBLISH_TOPICS do not fit IoT's authorizer limits: {e}"),
                "fewer or shorter grant templates",
            )
        })?;
        Ok(Self {
            jwt,
            grants,
            iot_arns,
            refresh_after,
            min_interval: MIN_INTERVAL,
        })
    }
}

fn error(variable: &'static str, problem: &str, expected: &'static str) -> ConfigError {
    ConfigError {
        variable,
        problem: problem.to_owned(),
        expected,
    }
}

/// The authorizer, built once per process.
pub struct JwtAuthorizer {
    settings: Settings,
    verifier: JwtVerifier,
}

impl JwtAuthorizer {
    /// Builds the verifier; an HS256 key named by ARN must have been fetched
    /// (`AuthSettings::fetch_secrets`).
    pub fn new(settings: Settings) -> Result<Self, SetupError> {
        let verifier = JwtVerifier::new(&settings.jwt)?;
        Ok(Self { settings, verifier })
    }

    /// IoT's question, answered at `now`.
    pub async fn authorize(
        &self,
        request: &IoTCoreCustomAuthorizerRequest,
        now: SystemTime,
    ) -> IoTCoreCustomAuthorizerResponse {
        match self.allow(request, now).await {
            Ok(response) => response,
            Err(why) => {
                tracing::warn!(outcome = "refused", "custom authorization refused: {why}");
                refusal(self.settings.min_interval)
            }
        }
    }

    async fn allow(
        &self,
        request: &IoTCoreCustomAuthorizerRequest,
        now: SystemTime,
    ) -> Result<IoTCoreCustomAuthorizerResponse, String> {
        let token = token_of(request)
            .ok_or("the request carries no token (the authorizer's tokenKeyName, or the MQTT password)")?;
        let caller = self.verifier.verify(&token).await.map_err(|e| e.to_string())?;
        let sub = caller.sub.ok_or("the token has no sub")?;
        let grants = &self.settings.grants;
        let claims = grants
            .claim_values(caller.claims.as_deref(), None)
            .map_err(|e| e.to_string())?;
        let policies =
            authorizer_policies(&self.settings.iot_arns, grants, &sub, &claims).map_err(|e| e.to_string())?;
        let now = now.duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs());
        let remaining = caller.expires_at.map_or(0, |exp| exp.saturating_sub(now));
        let min = self.settings.min_interval;
        let disconnect = u32::try_from(remaining)
            .unwrap_or(MAX_INTERVAL)
            .clamp(min, MAX_INTERVAL);
        let prefix = client_id_prefix(&sub);
        let principal = prefix.trim_end_matches('-').to_owned();
        let mut response = IoTCoreCustomAuthorizerResponse::default();
        response.is_authenticated = true;
        response.principal_id = Some(principal.clone());
        response.disconnect_after_in_seconds = disconnect;
        response.refresh_after_in_seconds = self.settings.refresh_after.max(min);
        response.policy_documents = policies
            .iter()
            .map(|policy| serde_json::from_str::<IamPolicyDocument>(&policy.to_json()).map(Some))
            .collect::<Result<_, _>>()
            .map_err(|e| format!("a policy did not convert: {e}"))?;
        tracing::info!(outcome = "authorized", principal = %principal, sub = %sub, client_id_prefix = %prefix, disconnect_after_s = disconnect, "custom authorization allowed");
        Ok(response)
    }

    /// The same, JSON in and out, as over the Lambda Invoke API (the local
    /// stack's in-process function).
    pub async fn invoke_json(&self, event: Value) -> Result<Value, String> {
        let request: IoTCoreCustomAuthorizerRequest = serde_json::from_value(event)
            .map_err(|e| format!("the event is not an IoT custom authorizer request: {e}"))?;
        let response = self.authorize(&request, SystemTime::now()).await;
        serde_json::to_value(response).map_err(|e| e.to_string())
    }
}

/// The token IoT passes: under the authorizer's `tokenKeyName`, or as the MQTT
/// password (which IoT hands on base64-encoded; the crate decodes it).
fn token_of(request: &IoTCoreCustomAuthorizerRequest) -> Option<String> {
    if let Some(token) = request.token.as_deref().filter(|t| !t.is_empty()) {
        return Some(token.to_owned());
    }
    let password = &request.protocol_data.as_ref()?.mqtt.as_ref()?.password;
    String::from_utf8(password.to_vec()).ok().filter(|t| !t.is_empty())
}

/// `isAuthenticated: false`. The crate's type has required intervals and would
/// write a missing principal as `null`: both are filled.
fn refusal(min: u32) -> IoTCoreCustomAuthorizerResponse {
    let mut response = IoTCoreCustomAuthorizerResponse::default();
    response.is_authenticated = false;
    response.principal_id = Some("refused".into());
    response.disconnect_after_in_seconds = min;
    response.refresh_after_in_seconds = min;
    response
}

#[cfg(test)]
mod tests {
    #![allow(clippy::expect_used, reason = "test code")]

    use std::time::Duration;

    use jsonwebtoken::{EncodingKey, Header, encode};
    use serde_json::json;
    use serverless_websockets_core::policy::{PolicyDocument, Variables, is_allowed_with};

    use super::*;

    const SECRET: &str = "a-test-secret-of-at-least-thirty-two-bytes";

    fn settings() -> Settings {
        Settings::from_lookup(|name| match name {
            "AWS_REGION" => Some("us-east-1".into()),
            "IOT_ACCOUNT_ID" => Some("123456789012".into()),
            "AUTH_MODE" => Some("jwt".into()),
            "JWT_ISSUER" => Some("https://issuer.example".into()),
            "JWT_HS256_SECRET" => Some(SECRET.into()),
            "SUBSCRIBE_TOPICS" => Some("allowed/{clientId},users/{sub}".into()),
            _ => None,
        })
        .unwrap()
    }

    fn token(sub: &str, exp: u64) -> String {
        let claims = json!({"sub": sub, "iss": "https://issuer.example", "exp": exp});
        encode(
            &Header::default(),
            &claims,
            &EncodingKey::from_secret(SECRET.as_bytes()),
        )
        .unwrap()
    }

    fn now() -> (SystemTime, u64) {
        let now = SystemTime::now();
        (now, now.duration_since(UNIX_EPOCH).unwrap().as_secs())
    }

    fn request(event: Value) -> IoTCoreCustomAuthorizerRequest {
        serde_json::from_value(event).unwrap()
    }

    fn policies(response: &IoTCoreCustomAuthorizerResponse) -> Vec<PolicyDocument> {
        response
            .policy_documents
            .iter()
            .map(|d| PolicyDocument::parse(&serde_json::to_string(d.as_ref().unwrap()).unwrap()).unwrap())
            .collect()
    }

    #[tokio::test]
    async fn a_valid_token_gets_policies_bound_to_its_subject_for_the_tokens_life() {
        let authorizer = JwtAuthorizer::new(settings()).unwrap();
        let (now, secs) = now();
        let event =
            json!({"token": token("alice", secs + 1800), "signatureVerified": false, "protocols": ["tls", "http"]});
        let response = authorizer.authorize(&request(event), now).await;
        assert!(response.is_authenticated);
        let principal = response.principal_id.clone().unwrap();
        assert!(
            principal.len() == 33 && principal.chars().all(|c| c.is_ascii_alphanumeric()),
            "{principal}"
        );
        assert!((1795..=1800).contains(&response.disconnect_after_in_seconds));
        assert_eq!(response.refresh_after_in_seconds, DEFAULT_REFRESH_AFTER);
        let docs = policies(&response);
        let arns = IotArns::new("aws", "us-east-1", "123456789012").unwrap();
        let own = format!("{}tab", client_id_prefix("alice"));
        let vars = Variables {
            client_id: Some(own.clone()),
        };
        assert!(is_allowed_with(&docs, &vars, "iot:Connect", &arns.client(&own)));
        assert!(is_allowed_with(
            &docs,
            &vars,
            "iot:Subscribe",
            &arns.topic_filter("users/alice")
        ));
        let bobs = format!("{}tab", client_id_prefix("bob"));
        assert!(!is_allowed_with(&docs, &vars, "iot:Connect", &arns.client(&bobs)));
    }

    #[tokio::test]
    async fn the_policies_survive_the_crates_policy_type_unchanged() {
        // IamPolicyStatement keeps Action, Effect, Resource and Condition only
        // (NotAction, NotResource and Sid would be dropped): ours use no other.
        let settings = settings();
        let none = serverless_websockets_core::claims::ClaimValues::none();
        let ours = authorizer_policies(&settings.iot_arns, &settings.grants, "alice", &none).unwrap();
        let authorizer = JwtAuthorizer::new(settings).unwrap();
        let (now, secs) = now();
        let event = json!({"token": token("alice", secs + 600), "signatureVerified": false, "protocols": []});
        let response = authorizer.authorize(&request(event), now).await;
        // The same document, a single action or resource as a one-element list.
        let normalized = |policies: &[PolicyDocument]| {
            let mut value = serde_json::to_value(policies).unwrap();
            for statement in value
                .as_array_mut()
                .unwrap()
                .iter_mut()
                .flat_map(|d| d["Statement"].as_array_mut().unwrap())
            {
                for field in ["Action", "Resource"] {
                    if statement[field].is_string() {
                        statement[field] = json!([statement[field].take()]);
                    }
                }
            }
            value
        };
        assert_eq!(normalized(&policies(&response)), normalized(&ours));
    }

    #[tokio::test]
    async fn a_short_lived_token_still_gets_iots_minimum_and_a_long_one_its_maximum() {
        let authorizer = JwtAuthorizer::new(settings()).unwrap();
        let (now, secs) = now();
        let short = authorizer
            .authorize(
                &request(json!({"token": token("a", secs + 60), "signatureVerified": false, "protocols": []})),
                now,
            )
            .await;
        assert_eq!(short.disconnect_after_in_seconds, MIN_INTERVAL);
        let long = authorizer
            .authorize(
                &request(json!({"token": token("a", secs + 200_000), "signatureVerified": false, "protocols": []})),
                now,
            )
            .await;
        assert_eq!(long.disconnect_after_in_seconds, MAX_INTERVAL);
    }

    #[tokio::test]
    async fn bad_expired_and_missing_tokens_and_unusable_subjects_are_refused() {
        let authorizer = JwtAuthorizer::new(settings()).unwrap();
        let (now, secs) = now();
        for event in [
            json!({"token": token("alice", secs - 3600), "signatureVerified": false, "protocols": []}),
            json!({"token": "not.a.jwt", "signatureVerified": false, "protocols": []}),
            json!({"token": token("a/#", secs + 600), "signatureVerified": false, "protocols": []}),
            json!({"signatureVerified": false, "protocols": []}),
        ] {
            let response = authorizer
                .authorize(&request(event.clone()), now + Duration::ZERO)
                .await;
            assert!(!response.is_authenticated, "{event}");
            // The crate's pitfalls: no null principal, intervals present.
            let json = serde_json::to_value(&response).unwrap();
            assert!(json["principalId"].is_string() && json["refreshAfterInSeconds"].is_u64());
        }
    }

    #[tokio::test]
    async fn the_token_may_come_as_the_mqtt_password_which_iot_passes_base64() {
        let authorizer = JwtAuthorizer::new(settings()).unwrap();
        let (_, secs) = now();
        use base64::Engine as _;
        let password = base64::engine::general_purpose::STANDARD.encode(token("alice", secs + 600));
        let event = json!({"signatureVerified": false, "protocols": ["tls", "mqtt"],
            "protocolData": {"mqtt": {"username": "u?x-amz-customauthorizer-name=jwt", "password": password}}});
        let answer = authorizer.invoke_json(event).await.unwrap();
        assert_eq!(answer["isAuthenticated"], true);
        assert!(answer["policyDocuments"][0]["Statement"].is_array());
    }
}
