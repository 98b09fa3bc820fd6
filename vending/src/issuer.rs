//! Temporary credentials for one client, from STS `AssumeRole`.
//!
//! [`CredentialIssuer`] is the seam the API depends on; [`AssumeRoleIssuer`] is the
//! real implementation on `aws-sdk-sts`. It takes its endpoint, region and caller
//! credentials from the standard AWS SDK configuration, so `AWS_ENDPOINT_URL_STS`
//! points it at a local STS (the local stack, moto) with no code change.
//!
//! The client is built once per process with a timeout and the SDK's standard retry
//! (which backs off on `Throttling`, as AWS advises). Errors are sorted into what
//! the caller of the API should see: throttling → retry later, a refusal of our own
//! request → the deployment is misconfigured, anything else → STS is unavailable.
//! See <https://docs.aws.amazon.com/STS/latest/APIReference/API_AssumeRole.html>.

use std::fmt;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use async_trait::async_trait;
use aws_config::BehaviorVersion;
use aws_config::retry::RetryConfig;
use aws_config::timeout::TimeoutConfig;
use aws_sdk_sts::error::{ProvideErrorMetadata, SdkError};

use serverless_websockets_core::client_id::ClientId;

use crate::bans::BanList;
use serverless_websockets_core::sts::is_sts_name;
use serverless_websockets_core::wire::format_iso8601;

/// How long a throttled caller is asked to wait (`Retry-After`).
pub const THROTTLE_RETRY_AFTER: Duration = Duration::from_secs(1);

/// Credentials as STS returns them. `Debug` never prints the secret or the token.
#[derive(Clone, PartialEq, Eq)]
pub struct TemporaryCredentials {
    pub access_key_id: String,
    pub secret_access_key: String,
    pub session_token: String,
    pub expiration: SystemTime,
}

impl TemporaryCredentials {
    /// The expiration as ISO-8601 (`2026-01-01T00:00:00Z`).
    pub fn expiration_iso8601(&self) -> String {
        format_iso8601(self.expiration)
    }

    /// The same credentials as the AWS SDK's type, for signing.
    pub fn to_sdk(&self) -> aws_credential_types::Credentials {
        aws_credential_types::Credentials::new(
            &self.access_key_id,
            &self.secret_access_key,
            Some(self.session_token.clone()),
            Some(self.expiration),
            "serverless-websockets",
        )
    }
}

impl fmt::Debug for TemporaryCredentials {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TemporaryCredentials")
            .field("access_key_id", &self.access_key_id)
            .field("secret_access_key", &"** redacted **")
            .field("session_token", &"** redacted **")
            .field("expiration", &self.expiration_iso8601())
            .finish()
    }
}

/// What the API asks for: credentials for one client, narrowed by `policy`.
#[derive(Debug, Clone, Copy)]
pub struct IssueRequest<'a> {
    pub client_id: &'a ClientId,
    pub policy: &'a str,
    pub duration: Duration,
    /// Recorded by STS as the session's `SourceIdentity` (CloudTrail shows it).
    pub source_identity: Option<&'a str>,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum StsError {
    #[error("STS throttled the request ({code})")]
    Throttled { code: String },
    #[error("STS refused the request as misconfigured: {code}: {message}")]
    Misconfigured { code: String, message: String },
    #[error("STS did not answer in time: {0}")]
    Timeout(String),
    #[error("STS is unavailable: {0}")]
    Unavailable(String),
    /// The client role's ban policy denies this caller ([`crate::bans`]).
    #[error("the client role's ban policy denies source identity {source_identity:?}")]
    Banned { source_identity: Option<String> },
}

/// The STS `SourceIdentity` for a caller's `sub`: the sub itself when STS accepts
/// it (`[\w+=,.@-]{2,64}`), otherwise `sub-` and the first 32 hex digits of its
/// SHA-256 (Auth0's `auth0|123` is not accepted as is); the log line of each vend
/// shows both, so CloudTrail entries can be traced back to the sub.
pub fn source_identity(sub: &str) -> String {
    if is_sts_name(sub) && !sub.to_ascii_lowercase().starts_with("aws:") {
        sub.to_owned()
    } else {
        use sha2::Digest;
        format!("sub-{}", &hex::encode(sha2::Sha256::digest(sub.as_bytes()))[..32])
    }
}

#[async_trait]
pub trait CredentialIssuer: Send + Sync + 'static {
    async fn issue(&self, request: IssueRequest<'_>) -> Result<TemporaryCredentials, StsError>;
}

/// Sorts an STS error response by its code and HTTP status.
pub fn classify(code: Option<&str>, message: Option<&str>, status: u16) -> StsError {
    let code_str = code.unwrap_or("Unknown").to_owned();
    let message = message.unwrap_or_default().to_owned();
    match code.unwrap_or_default() {
        "Throttling" | "ThrottlingException" | "RequestLimitExceeded" | "TooManyRequestsException" => {
            StsError::Throttled { code: code_str }
        }
        _ if status >= 500 => StsError::Unavailable(format!("{code_str} (HTTP {status}): {message}")),
        // AccessDenied, MalformedPolicyDocument, PackedPolicyTooLarge, ValidationError,
        // RegionDisabledException, ExpiredToken…: our own request is wrong, and
        // retrying will not help until the deployment is fixed.
        _ => StsError::Misconfigured {
            code: code_str,
            message,
        },
    }
}

/// The real issuer: `sts:AssumeRole` on the client role.
#[derive(Clone, Debug)]
pub struct AssumeRoleIssuer {
    client: aws_sdk_sts::Client,
    role_arn: String,
    bans: Option<Arc<BanList>>,
}

/// Loads the standard AWS SDK configuration (environment, profile, container or
/// instance credentials; `AWS_ENDPOINT_URL_STS`) with our timeouts and retries.
/// No network I/O happens here: credentials resolve on first use.
pub async fn load_sdk_config() -> aws_config::SdkConfig {
    sdk_config_loader().load().await
}

/// The loader behind [`load_sdk_config`], for callers that override a setting.
pub fn sdk_config_loader() -> aws_config::ConfigLoader {
    aws_config::defaults(BehaviorVersion::latest())
        .timeout_config(
            TimeoutConfig::builder()
                .connect_timeout(Duration::from_secs(2))
                .operation_attempt_timeout(Duration::from_secs(4))
                .operation_timeout(Duration::from_secs(10))
                .build(),
        )
        .retry_config(RetryConfig::standard().with_max_attempts(3))
}

impl AssumeRoleIssuer {
    pub fn new(sdk_config: &aws_config::SdkConfig, role_arn: &str) -> Self {
        Self {
            client: aws_sdk_sts::Client::new(sdk_config),
            role_arn: role_arn.to_owned(),
            bans: None,
        }
    }

    /// Refuses, before asking STS, a caller the role's ban policy denies.
    #[must_use]
    pub fn with_bans(mut self, bans: Option<BanList>) -> Self {
        self.bans = bans.map(Arc::new);
        self
    }
}

#[async_trait]
impl CredentialIssuer for AssumeRoleIssuer {
    async fn issue(&self, request: IssueRequest<'_>) -> Result<TemporaryCredentials, StsError> {
        if let Some(bans) = &self.bans {
            bans.check(request.client_id, request.source_identity, SystemTime::now())
                .await?;
        }
        let output = self
            .client
            .assume_role()
            .role_arn(&self.role_arn)
            .role_session_name(request.client_id.as_str())
            .duration_seconds(i32::try_from(request.duration.as_secs()).unwrap_or(i32::MAX))
            .policy(request.policy)
            .set_source_identity(request.source_identity.map(str::to_owned))
            .send()
            .await
            .map_err(|err| match &err {
                SdkError::ServiceError(service) => classify(
                    service.err().code(),
                    service.err().message(),
                    service.raw().status().as_u16(),
                ),
                SdkError::TimeoutError(_) => StsError::Timeout(format!("{err:?}")),
                SdkError::DispatchFailure(failure) if failure.is_timeout() => StsError::Timeout(format!("{err:?}")),
                SdkError::ConstructionFailure(_) => StsError::Misconfigured {
                    code: "ConstructionFailure".into(),
                    message: format!("{err:?}"),
                },
                _ => StsError::Unavailable(format!("{err:?}")),
            })?;
        let credentials = output
            .credentials()
            .ok_or_else(|| StsError::Unavailable("AssumeRole response has no Credentials".into()))?;
        let expiration = SystemTime::try_from(*credentials.expiration())
            .map_err(|_| StsError::Unavailable("AssumeRole Expiration is out of range".into()))?;
        Ok(TemporaryCredentials {
            access_key_id: credentials.access_key_id().to_owned(),
            secret_access_key: credentials.secret_access_key().to_owned(),
            session_token: credentials.session_token().to_owned(),
            expiration,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn throttling_codes_are_classified_as_throttled() {
        for code in ["Throttling", "ThrottlingException", "RequestLimitExceeded"] {
            assert!(
                matches!(classify(Some(code), None, 400), StsError::Throttled { .. }),
                "{code}"
            );
        }
    }

    #[test]
    fn refusals_of_our_own_request_are_misconfiguration() {
        for code in [
            "AccessDenied",
            "MalformedPolicyDocument",
            "PackedPolicyTooLarge",
            "ValidationError",
        ] {
            assert!(
                matches!(classify(Some(code), Some("m"), 400), StsError::Misconfigured { .. }),
                "{code}"
            );
        }
        assert!(matches!(
            classify(Some("AccessDenied"), None, 403),
            StsError::Misconfigured { .. }
        ));
    }

    #[test]
    fn server_faults_are_unavailability() {
        assert!(matches!(
            classify(Some("InternalFailure"), None, 500),
            StsError::Unavailable(_)
        ));
        assert!(matches!(classify(None, None, 503), StsError::Unavailable(_)));
    }

    #[test]
    fn subjects_become_source_identities_sts_accepts() {
        assert_eq!(source_identity("alice@example.com"), "alice@example.com");
        let hashed = source_identity("auth0|5f7c8ec7c33c6c004bbafe82");
        assert!(hashed.starts_with("sub-") && hashed.len() == 36, "{hashed}");
        assert_eq!(hashed, source_identity("auth0|5f7c8ec7c33c6c004bbafe82"));
        assert!(source_identity("x").starts_with("sub-"));
        assert!(source_identity("aws:root").starts_with("sub-"));
    }

    #[test]
    fn debug_output_never_shows_the_secret_or_the_token() {
        let creds = TemporaryCredentials {
            access_key_id: "ASIAKEY".into(),
            secret_access_key: "SUPERSECRET".into(),
            session_token: "TOKENVALUE".into(),
            expiration: SystemTime::UNIX_EPOCH + Duration::from_secs(1_767_225_600),
        };
        let shown = format!("{creds:?}");
        assert!(
            !shown.contains("SUPERSECRET") && !shown.contains("TOKENVALUE"),
            "{shown}"
        );
        assert!(shown.contains("2026-01-01T00:00:00Z"));
    }
}
