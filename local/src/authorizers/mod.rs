//! AWS IoT custom authorizers, emulated
//! (<https://docs.aws.amazon.com/iot/latest/developerguide/custom-authentication.html>):
//! the authorizers the control plane creates, the default one, and what
//! happens when a client presents a token — the signature check, the Lambda
//! invocation, the answer's check.
//!
//! * [`signing`] — token signing keys and the RSA-SHA256 check.
//! * [`verdict`] — the function's answer, checked as IoT checks it.
//!
//! A function is invoked through the same Lambda Invoke endpoint as the rules
//! engine's (`--lambda-endpoint`), synchronously, with IoT's 5 s timeout; or,
//! for a function registered as built in ([`InProcess`], our JWT authorizer
//! in `--auth jwt` mode), in-process with the same event and answer as JSON.
//!
//! Not here: the HTTP control plane (`gateway::authorizers`), the WebSocket
//! handshake and the connection's refresh (`gateway::custom_auth`).

pub mod signing;
pub mod verdict;

use std::collections::{BTreeMap, HashMap};
use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, RwLock};
use std::time::Duration;

use serde::Deserialize;
use serde_json::{Value, json};

use crate::rules::invoke::{InvokeError, Invoker};
use signing::{SignatureError, SigningKey};
use verdict::Verdict;

/// How long IoT waits for an authorizer's function.
pub const TIMEOUT: Duration = Duration::from_secs(5);
/// The longest token (the model's `Token`).
pub const MAX_TOKEN_CHARS: usize = 6144;
/// How many signing keys one authorizer may hold. IoT's figure is not
/// documented; this is the emulator's choice.
pub const MAX_KEYS: usize = 10;

/// A function that runs in this process: the event in, the answer out, both
/// JSON as over the Invoke API.
pub trait InProcess: Send + Sync {
    fn invoke(&self, event: Value) -> Pin<Box<dyn Future<Output = Result<Value, String>> + Send + '_>>;
}

/// ACTIVE or INACTIVE.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Status {
    Active,
    Inactive,
}

impl Status {
    fn parse(value: &str) -> Result<Self, String> {
        match value {
            "ACTIVE" => Ok(Self::Active),
            "INACTIVE" => Ok(Self::Inactive),
            other => Err(format!("status {other:?} is neither ACTIVE nor INACTIVE")),
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Active => "ACTIVE",
            Self::Inactive => "INACTIVE",
        }
    }
}

/// One authorizer, checked.
#[derive(Debug, Clone)]
pub struct Authorizer {
    pub name: String,
    pub function_arn: String,
    pub token_key_name: Option<String>,
    pub keys: BTreeMap<String, SigningKey>,
    pub status: Status,
    pub signing_disabled: bool,
    pub caching_for_http: bool,
    pub tags: Option<Value>,
    /// Seconds since the epoch, as the control plane reports them.
    pub created: f64,
    pub modified: f64,
}

/// `CreateAuthorizer`'s and `UpdateAuthorizer`'s bodies.
#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct AuthorizerRequest {
    pub authorizer_function_arn: Option<String>,
    pub token_key_name: Option<String>,
    pub token_signing_public_keys: Option<BTreeMap<String, String>>,
    pub status: Option<String>,
    pub tags: Option<Value>,
    pub signing_disabled: Option<bool>,
    pub enable_caching_for_http: Option<bool>,
}

/// Whether `name` is an authorizer name IoT takes: `[\w=,@-]{1,128}`.
pub fn is_valid_name(name: &str) -> bool {
    (1..=128).contains(&name.len()) && name.chars().all(|c| c.is_ascii_alphanumeric() || "_=,@-".contains(c))
}

fn check_token_key_name(name: &str) -> Result<(), String> {
    if (1..=128).contains(&name.len()) && name.chars().all(|c| c.is_ascii_alphanumeric() || "_-".contains(c)) {
        Ok(())
    } else {
        Err(format!("tokenKeyName {name:?} must be 1 to 128 of [a-zA-Z0-9_-]"))
    }
}

fn check_function_arn(arn: &str) -> Result<(), String> {
    let parts: Vec<&str> = arn.split(':').collect();
    if arn.len() <= 2048 && parts.len() >= 7 && parts[0] == "arn" && parts[2] == "lambda" && parts[5] == "function" {
        Ok(())
    } else {
        Err(format!(
            "authorizerFunctionArn {arn:?} is not a Lambda function ARN (arn:aws:lambda:<region>:<account>:function:<name>)"
        ))
    }
}

impl Authorizer {
    /// A new authorizer from `CreateAuthorizer`'s body, as IoT validates it.
    pub fn create(name: &str, request: AuthorizerRequest, now: f64) -> Result<Self, String> {
        if !is_valid_name(name) {
            return Err(format!("authorizerName {name:?} must be 1 to 128 of [a-zA-Z0-9_=,@-]"));
        }
        let function_arn = request
            .authorizer_function_arn
            .clone()
            .ok_or("authorizerFunctionArn is required")?;
        let mut authorizer = Self {
            name: name.to_owned(),
            function_arn,
            token_key_name: None,
            keys: BTreeMap::new(),
            status: Status::Active,
            signing_disabled: request.signing_disabled.unwrap_or(false),
            caching_for_http: false,
            tags: request.tags.clone(),
            created: now,
            modified: now,
        };
        authorizer.apply(request, now)?;
        Ok(authorizer)
    }

    /// `UpdateAuthorizer`: every field but the name and `signingDisabled`,
    /// which IoT fixes at creation.
    pub fn update(&self, request: AuthorizerRequest, now: f64) -> Result<Self, String> {
        if request.signing_disabled.is_some_and(|d| d != self.signing_disabled) {
            return Err("signingDisabled cannot be changed after the authorizer is created".into());
        }
        let mut updated = self.clone();
        updated.apply(request, now)?;
        Ok(updated)
    }

    fn apply(&mut self, request: AuthorizerRequest, now: f64) -> Result<(), String> {
        if let Some(arn) = request.authorizer_function_arn {
            check_function_arn(&arn)?;
            self.function_arn = arn;
        }
        if let Some(name) = request.token_key_name {
            check_token_key_name(&name)?;
            self.token_key_name = Some(name);
        }
        if let Some(keys) = request.token_signing_public_keys {
            if keys.len() > MAX_KEYS {
                return Err(format!("at most {MAX_KEYS} token signing keys"));
            }
            self.keys = keys
                .iter()
                .map(|(name, pem)| SigningKey::parse(name, pem).map(|key| (name.clone(), key)))
                .collect::<Result<_, _>>()?;
        }
        if let Some(status) = request.status {
            self.status = Status::parse(&status)?;
        }
        if let Some(caching) = request.enable_caching_for_http {
            self.caching_for_http = caching;
        }
        if !self.signing_disabled && (self.token_key_name.is_none() || self.keys.is_empty()) {
            return Err(
                "with token signing on (signingDisabled false, the default) tokenKeyName and tokenSigningPublicKeys are required"
                    .into(),
            );
        }
        self.modified = now;
        Ok(())
    }

    /// Checks the token's signature when signing is on; `Ok(verified)`.
    pub fn check_signature(&self, token: &str, signature: Option<&str>) -> Result<bool, SignatureError> {
        if self.signing_disabled {
            return Ok(false);
        }
        signing::verify(self.keys.values(), token, signature).map(|()| true)
    }
}

/// Why an invocation gave no usable answer.
#[derive(Debug, Clone, thiserror::Error)]
pub enum CallError {
    #[error(
        "no Lambda endpoint is configured: start the local stack with --lambda-endpoint (e.g. cargo lambda watch's http://127.0.0.1:9000)"
    )]
    NoEndpoint,
    #[error("{0}")]
    Invoke(InvokeError),
    #[error("the function failed: {0}")]
    InProcess(String),
    #[error("the function did not answer within {} s", TIMEOUT.as_secs())]
    Timeout,
    #[error("the function's answer is not valid: {0}")]
    Invalid(String),
}

/// The authorizers, the default, and how to call their functions.
pub struct Authorizers {
    by_name: RwLock<BTreeMap<String, Arc<Authorizer>>>,
    default: RwLock<Option<String>>,
    invoker: Option<Arc<Invoker>>,
    in_process: RwLock<HashMap<String, Arc<dyn InProcess>>>,
    /// IoT's 300 s minimum for the two intervals; tests shorten it.
    pub min_interval: u32,
    /// What AWS would bill: each invocation and its duration.
    usage: Arc<crate::usage::Usage>,
}

impl Authorizers {
    pub fn new(invoker: Option<Arc<Invoker>>, min_interval: u32, usage: Arc<crate::usage::Usage>) -> Self {
        Self {
            by_name: RwLock::default(),
            default: RwLock::default(),
            invoker,
            in_process: RwLock::default(),
            min_interval,
            usage,
        }
    }

    /// Runs calls to `function_arn` in this process.
    pub fn register_in_process(&self, function_arn: &str, function: Arc<dyn InProcess>) {
        self.in_process
            .write()
            .unwrap_or_else(|e| e.into_inner())
            .insert(function_arn.to_owned(), function);
    }

    pub fn get(&self, name: &str) -> Option<Arc<Authorizer>> {
        self.by_name
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .get(name)
            .cloned()
    }

    /// Whether any authorizer exists.
    pub fn any(&self) -> bool {
        !self.by_name.read().unwrap_or_else(|e| e.into_inner()).is_empty()
    }

    pub fn list(&self) -> Vec<Arc<Authorizer>> {
        self.by_name
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .values()
            .cloned()
            .collect()
    }

    /// Adds `authorizer`; `false` if one of that name exists.
    pub fn create(&self, authorizer: Authorizer) -> bool {
        let mut map = self.by_name.write().unwrap_or_else(|e| e.into_inner());
        if map.contains_key(&authorizer.name) {
            return false;
        }
        map.insert(authorizer.name.clone(), Arc::new(authorizer));
        true
    }

    pub fn replace(&self, authorizer: Authorizer) {
        self.by_name
            .write()
            .unwrap_or_else(|e| e.into_inner())
            .insert(authorizer.name.clone(), Arc::new(authorizer));
    }

    /// Removes `name`; refused while it is the default.
    pub fn delete(&self, name: &str) -> Result<bool, String> {
        if self.default_name().as_deref() == Some(name) {
            return Err(format!(
                "{name} is the default authorizer: clear it first (aws iot clear-default-authorizer)"
            ));
        }
        Ok(self
            .by_name
            .write()
            .unwrap_or_else(|e| e.into_inner())
            .remove(name)
            .is_some())
    }

    pub fn default_name(&self) -> Option<String> {
        self.default.read().unwrap_or_else(|e| e.into_inner()).clone()
    }

    pub fn set_default(&self, name: Option<String>) {
        *self.default.write().unwrap_or_else(|e| e.into_inner()) = name;
    }

    /// Invokes `authorizer`'s function with `event` and checks the answer.
    pub async fn call(&self, authorizer: &Authorizer, event: &Value) -> Result<Verdict, CallError> {
        let started = std::time::Instant::now();
        let verdict = self.invoke(authorizer, event).await;
        self.usage.authorizer(started.elapsed());
        verdict
    }

    async fn invoke(&self, authorizer: &Authorizer, event: &Value) -> Result<Verdict, CallError> {
        let in_process = self
            .in_process
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .get(&authorizer.function_arn)
            .cloned();
        let body = match in_process {
            Some(function) => {
                let answer = tokio::time::timeout(TIMEOUT, function.invoke(event.clone()))
                    .await
                    .map_err(|_| CallError::Timeout)?
                    .map_err(CallError::InProcess)?;
                answer.to_string().into_bytes()
            }
            None => {
                let invoker = self.invoker.as_ref().ok_or(CallError::NoEndpoint)?;
                invoker
                    .request_response(&authorizer.function_arn, event.to_string().into_bytes(), TIMEOUT)
                    .await
                    .map_err(|e| match e {
                        InvokeError::Timeout(_) => CallError::Timeout,
                        other => CallError::Invoke(other),
                    })?
            }
        };
        verdict::parse(&body, self.min_interval).map_err(CallError::Invalid)
    }
}

/// What a client presented, for the event.
#[derive(Debug, Default)]
pub struct Presented<'a> {
    pub token: Option<&'a str>,
    pub signature_verified: bool,
    /// `tls.serverName`: the host the client connected to, over TLS.
    pub server_name: Option<&'a str>,
    pub headers: Option<BTreeMap<String, String>>,
    /// The query string, without its `?`.
    pub query: Option<&'a str>,
    pub mqtt: Option<MqttContext<'a>>,
}

/// The MQTT part of an event (TestInvokeAuthorizer's `mqttContext`).
#[derive(Debug, Default)]
pub struct MqttContext<'a> {
    pub username: Option<&'a str>,
    /// Already base64, as IoT hands it on.
    pub password: Option<&'a str>,
    pub client_id: Option<&'a str>,
}

/// The event IoT sends the function, with only the fields that apply
/// (<https://docs.aws.amazon.com/iot/latest/developerguide/custom-auth-lambda.html>).
pub fn event(presented: &Presented<'_>) -> Value {
    let mut protocols = Vec::new();
    let mut data = serde_json::Map::new();
    if let Some(server_name) = presented.server_name {
        protocols.push("tls");
        data.insert("tls".into(), json!({"serverName": server_name}));
    }
    if presented.headers.is_some() || presented.query.is_some() {
        protocols.push("http");
        let mut http = serde_json::Map::new();
        if let Some(headers) = &presented.headers {
            http.insert("headers".into(), json!(headers));
        }
        if let Some(query) = presented.query.filter(|q| !q.is_empty()) {
            http.insert("queryString".into(), json!(format!("?{query}")));
        }
        data.insert("http".into(), Value::Object(http));
    }
    if let Some(mqtt) = &presented.mqtt {
        protocols.push("mqtt");
        let mut fields = serde_json::Map::new();
        for (key, value) in [
            ("username", mqtt.username),
            ("password", mqtt.password),
            ("clientId", mqtt.client_id),
        ] {
            if let Some(value) = value {
                fields.insert(key.into(), json!(value));
            }
        }
        data.insert("mqtt".into(), Value::Object(fields));
    }
    let mut event = json!({
        "signatureVerified": presented.signature_verified,
        "protocols": protocols,
        "protocolData": data,
        "connectionMetadata": {"id": serverless_websockets_core::random::uuid()},
    });
    if let Some(token) = presented.token {
        event["token"] = json!(token);
    }
    event
}

#[cfg(test)]
mod tests {
    use super::*;

    fn request(body: Value) -> AuthorizerRequest {
        serde_json::from_value(body).unwrap()
    }

    const FUNCTION: &str = "arn:aws:lambda:us-east-1:000000000000:function:auth";

    #[test]
    fn signing_on_needs_a_token_key_name_and_keys_and_cannot_be_turned_off_later() {
        let error = Authorizer::create("a", request(json!({"authorizerFunctionArn": FUNCTION})), 0.0).unwrap_err();
        assert!(
            error.contains("tokenKeyName and tokenSigningPublicKeys are required"),
            "{error}"
        );
        let open = Authorizer::create(
            "a",
            request(json!({"authorizerFunctionArn": FUNCTION, "signingDisabled": true, "tokenKeyName": "token"})),
            0.0,
        )
        .unwrap();
        assert!(open.signing_disabled && open.status == Status::Active);
        let error = open
            .update(request(json!({"signingDisabled": false})), 1.0)
            .unwrap_err();
        assert!(error.contains("cannot be changed"), "{error}");
        let inactive = open.update(request(json!({"status": "INACTIVE"})), 1.0).unwrap();
        assert_eq!(inactive.status, Status::Inactive);
    }

    #[test]
    fn names_token_key_names_and_function_arns_are_checked() {
        assert!(is_valid_name("my-authorizer_1=,@"));
        assert!(!is_valid_name("bad name") && !is_valid_name("") && !is_valid_name(&"a".repeat(129)));
        let base = |extra: Value| {
            let mut body = json!({"authorizerFunctionArn": FUNCTION, "signingDisabled": true});
            body.as_object_mut().unwrap().extend(extra.as_object().unwrap().clone());
            Authorizer::create("a", request(body), 0.0)
        };
        assert!(
            base(json!({"tokenKeyName": "bad key"}))
                .unwrap_err()
                .contains("tokenKeyName")
        );
        assert!(
            base(json!({"authorizerFunctionArn": "auth"}))
                .unwrap_err()
                .contains("Lambda function ARN")
        );
        assert!(base(json!({"status": "ON"})).unwrap_err().contains("ACTIVE"));
    }

    #[test]
    fn the_event_carries_only_what_applies() {
        let headers = BTreeMap::from([("host".to_owned(), "localhost".to_owned())]);
        let event = event(&Presented {
            token: Some("tok"),
            signature_verified: true,
            headers: Some(headers),
            query: Some("x-amz-customauthorizer-name=a&token=tok"),
            ..Presented::default()
        });
        assert_eq!(event["token"], "tok");
        assert_eq!(event["signatureVerified"], true);
        assert_eq!(event["protocols"], json!(["http"]));
        assert_eq!(
            event["protocolData"]["http"]["queryString"],
            "?x-amz-customauthorizer-name=a&token=tok"
        );
        assert!(event["protocolData"].get("mqtt").is_none() && event["protocolData"].get("tls").is_none());
        let id = event["connectionMetadata"]["id"].as_str().unwrap();
        assert_eq!((id.len(), &id[14..15]), (36, "4"));
        let bare = super::event(&Presented::default());
        assert!(bare.get("token").is_none());
    }
}
