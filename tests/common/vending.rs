//! The vending service without AWS: an issuer that records what it was asked and
//! answers with fixed credentials (or a chosen STS fault), and configurations read
//! from name/value pairs instead of the environment.

use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use async_trait::async_trait;
use serverless_websockets_vending::config::{Config, ConfigError};
use serverless_websockets_vending::issuer::{CredentialIssuer, IssueRequest, StsError, TemporaryCredentials};

/// One `issue` call, as the fake issuer saw it.
#[derive(Debug, Clone)]
pub struct Issued {
    pub client_id: String,
    pub policy: String,
    pub duration: Duration,
    pub source_identity: Option<String>,
}

/// What the fake issuer hands out.
pub const ACCESS_KEY_ID: &str = "ASIAFAKE";
pub const SESSION_TOKEN: &str = "token/with+chars=";
/// 2030-01-01T00:00:00Z.
pub const EXPIRATION_SECS: u64 = 1_893_456_000;

#[derive(Clone, Default)]
pub struct FakeIssuer {
    pub issued: Arc<Mutex<Vec<Issued>>>,
    pub fail_with: Option<StsError>,
}

impl FakeIssuer {
    pub fn failing(err: StsError) -> Self {
        Self {
            fail_with: Some(err),
            ..Self::default()
        }
    }

    pub fn issued(&self) -> Vec<Issued> {
        self.issued.lock().unwrap().clone()
    }
}

#[async_trait]
impl CredentialIssuer for FakeIssuer {
    async fn issue(&self, request: IssueRequest<'_>) -> Result<TemporaryCredentials, StsError> {
        self.issued.lock().unwrap().push(Issued {
            client_id: request.client_id.to_string(),
            policy: request.policy.to_owned(),
            duration: request.duration,
            source_identity: request.source_identity.map(str::to_owned),
        });
        if let Some(err) = &self.fail_with {
            return Err(err.clone());
        }
        Ok(TemporaryCredentials {
            access_key_id: ACCESS_KEY_ID.into(),
            secret_access_key: "secret".into(),
            session_token: SESSION_TOKEN.into(),
            expiration: SystemTime::UNIX_EPOCH + Duration::from_secs(EXPIRATION_SECS),
        })
    }
}

/// The settings every configuration needs, for us-east-1.
pub const BASE: &[(&str, &str)] = &[
    ("CLIENT_ROLE_ARN", "arn:aws:iam::123456789012:role/ClientRole"),
    ("AWS_REGION", "us-east-1"),
    ("IOT_ENDPOINT", "abc-ats.iot.us-east-1.amazonaws.com"),
    ("AUTH_MODE", "none"),
];

/// A configuration read from `extra`, then `base` (the first pair with a name wins).
pub fn config_from<S: AsRef<str>>(extra: &[(&str, S)], base: &[(&str, &str)]) -> Result<Config, ConfigError> {
    Config::from_lookup(|name| {
        extra
            .iter()
            .map(|(k, v)| (*k, v.as_ref()))
            .chain(base.iter().copied())
            .find(|(k, _)| *k == name)
            .map(|(_, v)| v.to_owned())
    })
}
