//! Getting credentials from the vending API, and knowing when to get new ones.
//!
//! [`CredentialSource`] is the seam: [`HttpSource`] POSTs to the API with
//! `reqwest` (rustls, timeouts, optional bearer token); tests hand out credentials
//! of their own. The API's JSON error body is surfaced in [`FetchError::Api`].

use std::time::{Duration, SystemTime};

/// The vending API's 200 body and its credentials: the service's own wire types.
pub use serverless_websockets_core::wire::{Vended, VendedCredentials as Credentials, VendedGrants as Grants};

/// When to fetch new credentials: after `fraction` of the time from `fetched_at` to
/// the expiration has passed. Unknown expirations refresh after 5 minutes.
pub fn refresh_due(fetched_at: SystemTime, expires_at: Option<SystemTime>, fraction: f64) -> SystemTime {
    match expires_at.and_then(|exp| exp.duration_since(fetched_at).ok()) {
        Some(lifetime) => fetched_at + lifetime.mul_f64(fraction.clamp(0.0, 1.0)),
        None => fetched_at + Duration::from_secs(300),
    }
}

#[derive(Debug, thiserror::Error)]
pub enum FetchError {
    #[error("could not reach the credentials API at {url}: {reason}")]
    Unreachable { url: String, reason: String },
    #[error("the credentials API answered {status}: {code}: {message}")]
    Api { status: u16, code: String, message: String },
    #[error("the credentials API answered with an unexpected body: {0}")]
    Body(String),
}

impl FetchError {
    /// Whether trying again later may help (network trouble, throttling, 5xx).
    pub fn is_transient(&self) -> bool {
        match self {
            FetchError::Unreachable { .. } => true,
            FetchError::Api { status, .. } => *status == 429 || *status >= 500,
            FetchError::Body(_) => false,
        }
    }
}

/// Something that hands out credentials for a new client.
pub trait CredentialSource: Send + Sync + 'static {
    fn fetch(&self) -> impl std::future::Future<Output = Result<Vended, FetchError>> + Send;
}

/// The vending API over HTTPS.
#[derive(Clone, Debug)]
pub struct HttpSource {
    client: reqwest::Client,
    url: String,
    bearer_token: Option<String>,
}

impl HttpSource {
    pub fn new(api_url: &str, bearer_token: Option<&str>) -> Self {
        let client = reqwest::Client::builder()
            .connect_timeout(Duration::from_secs(5))
            .timeout(Duration::from_secs(15))
            .build()
            .expect("the HTTP client configuration is valid");
        Self {
            client,
            url: api_url.to_owned(),
            bearer_token: bearer_token.map(str::to_owned),
        }
    }
}

impl CredentialSource for HttpSource {
    async fn fetch(&self) -> Result<Vended, FetchError> {
        let mut request = self
            .client
            .post(&self.url)
            .header("content-type", "application/json")
            .body("{}");
        if let Some(token) = &self.bearer_token {
            request = request.bearer_auth(token);
        }
        let unreachable = |e: reqwest::Error| FetchError::Unreachable {
            url: self.url.clone(),
            reason: e.to_string(),
        };
        let response = request.send().await.map_err(unreachable)?;
        let status = response.status();
        let body = response.bytes().await.map_err(unreachable)?;
        if !status.is_success() {
            let error: serde_json::Value = serde_json::from_slice(&body).unwrap_or_default();
            let text = |key: &str| error["error"][key].as_str().unwrap_or("").to_owned();
            return Err(FetchError::Api {
                status: status.as_u16(),
                code: Some(text("code"))
                    .filter(|c| !c.is_empty())
                    .unwrap_or_else(|| "Error".into()),
                message: Some(text("message"))
                    .filter(|m| !m.is_empty())
                    .unwrap_or_else(|| String::from_utf8_lossy(&body).chars().take(200).collect()),
            });
        }
        serde_json::from_slice(&body).map_err(|e| FetchError::Body(e.to_string()))
    }
}

/// Fetches credentials once from the vending API at `api_url`.
pub async fn fetch_credentials(api_url: &str, bearer_token: Option<&str>) -> Result<Vended, FetchError> {
    HttpSource::new(api_url, bearer_token).fetch().await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn refresh_happens_at_the_given_fraction_of_the_lifetime() {
        let t0 = SystemTime::UNIX_EPOCH + Duration::from_secs(1_000_000);
        let due = refresh_due(t0, Some(t0 + Duration::from_secs(3600)), 0.8);
        assert_eq!(due, t0 + Duration::from_secs(2880));
        assert_eq!(refresh_due(t0, None, 0.8), t0 + Duration::from_secs(300));
        assert_eq!(
            refresh_due(t0, Some(t0 - Duration::from_secs(1)), 0.8),
            t0 + Duration::from_secs(300)
        );
    }

    #[test]
    fn expirations_parse_as_iso_8601() {
        let creds = Credentials {
            access_key_id: "ASIAKEY".into(),
            secret_access_key: "SECRETVALUE".into(),
            session_token: "TOKENVALUE".into(),
            expiration: "2026-01-01T00:00:00Z".into(),
        };
        assert_eq!(
            creds.expires_at(),
            Some(SystemTime::UNIX_EPOCH + Duration::from_secs(1_767_225_600))
        );
        let shown = format!("{creds:?}");
        assert!(
            !shown.contains("SECRETVALUE") && !shown.contains("TOKENVALUE"),
            "{shown}"
        );
    }
}
