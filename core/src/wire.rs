//! The vending API's JSON contract, in one place: the 200 body the service writes
//! and the clients (and tests) read, and the ISO-8601 timestamps it carries.
//!
//! Field names are camelCase on the wire. Readers ignore unknown fields and
//! default `grants`, so a client keeps working against a newer service.

use std::time::{Duration, SystemTime};

use aws_smithy_types::date_time::{DateTime, Format};
use serde::{Deserialize, Serialize};

/// The vending API's 200 body.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct Vended {
    pub client_id: String,
    pub region: String,
    /// `wss://host` (or `ws://host:port` locally).
    pub endpoint: String,
    /// A URL presigned at vending time, valid for 15 minutes.
    pub url: String,
    /// The client's own topic (its first subscribe grant).
    pub topic: String,
    #[serde(default)]
    pub grants: VendedGrants,
    pub credentials: VendedCredentials,
    /// Send back as `{"resumeToken": …}` for fresh credentials for the same client
    /// ID. A bearer secret: `Debug` does not show it. Absent from older services.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resume_token: Option<ResumeToken>,
    /// When the resume token expires, ISO-8601 UTC.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resume_expiration: Option<String>,
}

/// A resume token as it travels: opaque to clients; `Debug` never shows it.
#[derive(Clone, Serialize, Deserialize, PartialEq, Eq)]
#[serde(transparent)]
pub struct ResumeToken(pub String);

impl std::fmt::Debug for ResumeToken {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("ResumeToken(** redacted **)")
    }
}

/// The topic filters the credentials allow, after expansion for this client.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq, Eq)]
pub struct VendedGrants {
    #[serde(default)]
    pub subscribe: Vec<String>,
    #[serde(default)]
    pub publish: Vec<String>,
}

/// Temporary AWS credentials. `Debug` shows neither the secret nor the token.
#[derive(Clone, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct VendedCredentials {
    pub access_key_id: String,
    pub secret_access_key: String,
    pub session_token: String,
    /// ISO-8601 UTC, e.g. `2026-11-22T06:31:41Z`.
    pub expiration: String,
}

impl std::fmt::Debug for VendedCredentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("VendedCredentials")
            .field("access_key_id", &self.access_key_id)
            .field("expiration", &self.expiration)
            .finish_non_exhaustive()
    }
}

impl VendedCredentials {
    /// When the credentials expire; `None` if `expiration` is not ISO-8601.
    pub fn expires_at(&self) -> Option<SystemTime> {
        parse_iso8601(&self.expiration)
    }

    /// The credentials as the AWS SDKs (and [`crate::presign`]) take them.
    pub fn to_sdk(&self) -> aws_credential_types::Credentials {
        aws_credential_types::Credentials::new(
            &self.access_key_id,
            &self.secret_access_key,
            Some(self.session_token.clone()),
            self.expires_at(),
            "serverless-websockets",
        )
    }
}

/// `2026-11-22T06:31:41Z`: whole seconds, UTC — how STS and this API write times.
/// Times before 1970 are written as the epoch.
pub fn format_iso8601(time: SystemTime) -> String {
    let secs = time.duration_since(SystemTime::UNIX_EPOCH).map_or(0, |d| d.as_secs());
    DateTime::from_secs(i64::try_from(secs).unwrap_or(i64::MAX))
        .fmt(Format::DateTime)
        .unwrap_or_else(|_| "1970-01-01T00:00:00Z".to_owned())
}

/// Parses an ISO-8601 UTC time such as `2026-11-22T06:31:41Z`.
pub fn parse_iso8601(value: &str) -> Option<SystemTime> {
    let time = DateTime::from_str(value, Format::DateTime).ok()?;
    let secs = u64::try_from(time.secs()).ok()?;
    SystemTime::UNIX_EPOCH.checked_add(Duration::from_secs(secs))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn iso8601_round_trips_whole_seconds() {
        let time = SystemTime::UNIX_EPOCH + Duration::from_secs(1_795_329_101);
        assert_eq!(format_iso8601(time), "2026-11-22T06:31:41Z");
        assert_eq!(parse_iso8601("2026-11-22T06:31:41Z"), Some(time));
        assert_eq!(parse_iso8601("yesterday"), None);
        assert_eq!(
            format_iso8601(SystemTime::UNIX_EPOCH - Duration::from_secs(5)),
            "1970-01-01T00:00:00Z"
        );
    }

    #[test]
    fn the_debug_form_hides_the_secret_and_the_token() {
        let credentials = VendedCredentials {
            access_key_id: "ASIAEXAMPLE".into(),
            secret_access_key: "very-secret".into(),
            session_token: "token-value".into(),
            expiration: "2026-11-22T06:31:41Z".into(),
        };
        let shown = format!("{credentials:?}");
        assert!(shown.contains("ASIAEXAMPLE"));
        assert!(!shown.contains("very-secret") && !shown.contains("token-value"));
    }

    #[test]
    fn a_body_without_grants_still_reads() {
        let body = r#"{"clientId":"c","region":"r","endpoint":"wss://h","url":"wss://h/mqtt","topic":"allowed/c",
            "credentials":{"accessKeyId":"A","secretAccessKey":"S","sessionToken":"T","expiration":"2026-11-22T06:31:41Z"},"extra":1}"#;
        let vended: Vended = serde_json::from_str(body).unwrap();
        assert_eq!(vended.grants, VendedGrants::default());
    }
}
