//! Getting credentials from the vending API, and knowing when to get new ones.
//!
//! [`CredentialSource`] is the seam: [`HttpSource`] POSTs to the API with
//! `reqwest` (rustls, timeouts, optional bearer token); tests hand out credentials
//! of their own. The API's JSON error body is surfaced in [`FetchError::Api`].
//!
//! A fetch may carry the resume token of the credentials in use: the API then
//! answers with fresh credentials for the *same* client ID, so the client keeps
//! its topic and its persistent session ([`obtain`] falls back to a new client ID
//! when the API refuses the resume).

use std::time::{Duration, SystemTime};

/// The vending API's 200 body and its credentials: the service's own wire types.
pub use serverless_websockets_core::wire::{
    ResumeToken, Vended, VendedCredentials as Credentials, VendedGrants as Grants,
};

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

impl FetchError {
    /// Whether the API refused a resume token (invalid, expired, another caller's).
    pub fn is_resume_refused(&self) -> bool {
        matches!(self, FetchError::Api { code, .. }
            if serverless_websockets_core::error_code::is_resume_refusal(code))
    }
}

/// Something that hands out credentials: for a new client, or with `resume` for
/// the client ID that token names.
pub trait CredentialSource: Send + Sync + 'static {
    fn fetch(
        &self,
        resume: Option<&ResumeToken>,
    ) -> impl std::future::Future<Output = Result<Vended, FetchError>> + Send;
}

/// Credentials and whether the client ID changed against the caller's wish.
#[derive(Debug)]
pub struct Obtained {
    pub vended: Vended,
    /// The resume was refused and a new client ID was vended instead: the old
    /// client ID and why.
    pub replaced: Option<(String, String)>,
}

/// Fresh credentials for the client `current` names (by its resume token), or
/// for a new client when there is none, or when the API refuses the resume.
pub async fn obtain<S: CredentialSource>(source: &S, current: Option<&Vended>) -> Result<Obtained, FetchError> {
    let Some((old, token)) = current.and_then(|v| v.resume_token.as_ref().map(|t| (v.client_id.clone(), t))) else {
        return Ok(Obtained {
            vended: source.fetch(None).await?,
            replaced: None,
        });
    };
    match source.fetch(Some(token)).await {
        Ok(vended) => Ok(Obtained { vended, replaced: None }),
        Err(err) if err.is_resume_refused() => Ok(Obtained {
            vended: source.fetch(None).await?,
            replaced: Some((old, err.to_string())),
        }),
        Err(err) => Err(err),
    }
}

/// The vending API over HTTPS.
#[derive(Clone, Debug)]
pub struct HttpSource {
    client: reqwest::Client,
    url: String,
    bearer_token: Option<String>,
}

impl HttpSource {
    #[allow(
        clippy::expect_used,
        reason = "the builder fails only when the TLS backend cannot start, and then no client can be built at all"
    )]
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
    async fn fetch(&self, resume: Option<&ResumeToken>) -> Result<Vended, FetchError> {
        // The token travels in the body only, never in a URL.
        let body = match resume {
            Some(token) => serde_json::json!({ "resumeToken": token }).to_string(),
            None => "{}".to_owned(),
        };
        let mut request = self
            .client
            .post(&self.url)
            .header("content-type", "application/json")
            .body(body);
        if let Some(token) = &self.bearer_token {
            request = request.bearer_auth(token);
        }
        let unreachable = |e: reqwest::Error| FetchError::Unreachable {
            url: self.url.clone(),
            reason: root_causes(&e),
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
    HttpSource::new(api_url, bearer_token).fetch(None).await
}

/// An error and what caused it, innermost last: reqwest's own text ("error
/// sending request for url …") says nothing of why; the causes do ("Connection
/// refused"). A refused connection adds what usually fixes it.
fn root_causes(error: &(dyn std::error::Error + 'static)) -> String {
    let mut parts = vec![error.to_string()];
    let mut source = error.source();
    let mut refused = false;
    while let Some(cause) = source {
        if let Some(io) = cause.downcast_ref::<std::io::Error>() {
            refused |= io.kind() == std::io::ErrorKind::ConnectionRefused;
        }
        let text = cause.to_string();
        if !parts.iter().any(|p| p.contains(&text)) {
            parts.push(text);
        }
        source = cause.source();
    }
    let mut reason = parts.join(": ");
    if refused {
        reason.push_str(" (nothing listens there: is the API, or the local stack, running?)");
    }
    reason
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
