//! Secrets the service needs at start-up (the HS256 key, and later others), read
//! from AWS Secrets Manager by ARN — never through an environment variable, which
//! anyone with `lambda:GetFunctionConfiguration` can read in plain text.
//!
//! [`SecretsManager`] wraps one `aws-sdk-secretsmanager` client, built once per
//! process from the standard SDK configuration (so `AWS_ENDPOINT_URL_SECRETS_MANAGER`
//! points it at a local emulator), and caches each value it fetched: a Lambda
//! fetches a secret once per execution environment, at init. A version stage can
//! be asked for, so a key can be rotated while tokens signed with the previous
//! version stay valid. [`Secret`] never prints its value.
//!
//! Not here: rotation itself (Secrets Manager's job), binary secrets, JSON fields
//! inside a secret.
//! See <https://docs.aws.amazon.com/secretsmanager/latest/apireference/API_GetSecretValue.html>.

use std::collections::HashMap;
use std::fmt;

use aws_sdk_secretsmanager::error::{ProvideErrorMetadata, SdkError};
use tokio::sync::Mutex;

/// A secret value; `Debug` and `Display` never show it.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    pub fn new(value: impl Into<String>) -> Self {
        Self(value.into())
    }

    /// The value itself, for the one place that uses it.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Secret(** redacted **)")
    }
}

/// Which version of a secret: Secrets Manager's staging labels.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Stage {
    Current,
    Previous,
}

impl Stage {
    fn label(self) -> &'static str {
        match self {
            Stage::Current => "AWSCURRENT",
            Stage::Previous => "AWSPREVIOUS",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SecretError {
    #[error("secret {arn} ({stage}) does not exist")]
    NotFound { arn: String, stage: &'static str },
    #[error("secret {arn} could not be read: {code}: {message}")]
    Refused { arn: String, code: String, message: String },
    #[error("secret {arn} has no text value (binary secrets are not supported)")]
    NotText { arn: String },
    #[error("Secrets Manager could not be reached for {arn}: {reason}")]
    Unavailable { arn: String, reason: String },
}

/// Reads secrets by ARN through one client, caching what it read.
pub struct SecretsManager {
    client: aws_sdk_secretsmanager::Client,
    cache: Mutex<HashMap<(String, Stage), Secret>>,
}

impl SecretsManager {
    pub fn new(sdk_config: &aws_config::SdkConfig) -> Self {
        Self {
            client: aws_sdk_secretsmanager::Client::new(sdk_config),
            cache: Mutex::new(HashMap::new()),
        }
    }

    /// The text value of `arn` at `stage`, fetched on first use and then cached.
    pub async fn get(&self, arn: &str, stage: Stage) -> Result<Secret, SecretError> {
        let key = (arn.to_owned(), stage);
        let mut cache = self.cache.lock().await;
        if let Some(secret) = cache.get(&key) {
            return Ok(secret.clone());
        }
        let output = self
            .client
            .get_secret_value()
            .secret_id(arn)
            .version_stage(stage.label())
            .send()
            .await
            .map_err(|err| classify(arn, stage, err))?;
        let value = output
            .secret_string()
            .ok_or_else(|| SecretError::NotText { arn: arn.to_owned() })?;
        let secret = Secret::new(value);
        cache.insert(key, secret.clone());
        tracing::info!(secret_arn = %arn, stage = stage.label(), "read a secret from Secrets Manager");
        Ok(secret)
    }
}

fn classify<E: ProvideErrorMetadata + std::fmt::Debug, R: std::fmt::Debug>(
    arn: &str,
    stage: Stage,
    err: SdkError<E, R>,
) -> SecretError {
    match err {
        SdkError::ServiceError(service) => match service.err().code() {
            Some("ResourceNotFoundException") => SecretError::NotFound {
                arn: arn.to_owned(),
                stage: stage.label(),
            },
            code => SecretError::Refused {
                arn: arn.to_owned(),
                code: code.unwrap_or("Unknown").to_owned(),
                message: service.err().message().unwrap_or_default().to_owned(),
            },
        },
        other => SecretError::Unavailable {
            arn: arn.to_owned(),
            reason: format!("{other:?}").chars().take(300).collect(),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_secret_never_shows_its_value() {
        let secret = Secret::new("hunter2-hunter2-hunter2-hunter2!");
        assert!(!format!("{secret:?}").contains("hunter2"));
        assert_eq!(secret.expose(), "hunter2-hunter2-hunter2-hunter2!");
    }
}
