//! Caller authentication for the vending API: none (explicit opt-in) or a JWT in
//! `Authorization: Bearer …`, verified without a database lookup.
//!
//! `jsonwebtoken` does the cryptography and the time checks (`exp` required, `nbf`
//! when present, `iss`, with a small leeway). Which keys are acceptable is decided
//! here, by algorithm: HS256 only with the configured shared secret, RS256/ES256
//! only with a key from the JWKS — so a token can never choose its own
//! verification (no `alg: none`, no HS256 signed with a public key).
//!
//! Who the token is for is checked by the claim checks shared with the JWT
//! authorizer (`serverless_websockets_core::jwt`): with `JWT_AUDIENCE` an ID token's
//! `aud` must be present and match; with `JWT_CLIENT_ID` a Cognito *access* token
//! (`token_use: access`, which carries `client_id` instead of `aud`) must name that
//! app client. With neither, any token of the issuer is accepted (warned about at
//! start-up).
//!
//! A JWKS from a URL is fetched in the background: at start-up, then whenever the
//! cached set is older than its TTL, one fetch at a time. A request whose `kid` is
//! in the cached set never waits on the network, and while the issuer is down the
//! last good set keeps serving for up to [`MAX_KEY_AGE`] (each failed refresh is
//! logged). A request with an unknown `kid` (key rotation) waits for a fetch, at
//! most one per [`REFETCH_INTERVAL`], shared with every other waiter. Works with
//! Cognito user pools, Auth0 and any OIDC issuer's `jwks_uri`.
//!
//! Errors say which check failed, never the token. Not here: token revocation,
//! `Condition`-style claim rules, other algorithms.

use serverless_websockets_core::error_code as code;
use serverless_websockets_core::jwt::{ClaimError, Claims, Recipient};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use jsonwebtoken::errors::ErrorKind;
use jsonwebtoken::jwk::JwkSet;
use jsonwebtoken::{Algorithm, DecodingKey, Validation};
use tokio::sync::watch;

use crate::config::{AuthSettings, JwtSettings};

/// The least time between two JWKS fetches caused by unknown key IDs.
pub const REFETCH_INTERVAL: Duration = Duration::from_secs(30);
/// After a failed JWKS fetch, the next one starts no sooner than this.
pub const RETRY_AFTER_FAILURE: Duration = Duration::from_secs(10);
/// The oldest JWKS still used while the issuer cannot be reached.
pub const MAX_KEY_AGE: Duration = Duration::from_secs(24 * 3600);
/// One JWKS fetch: connection and whole response.
pub const FETCH_TIMEOUT: Duration = Duration::from_secs(5);
/// The largest JWKS document read.
pub const MAX_JWKS_BYTES: usize = 256 * 1024;

/// Who is calling, once authenticated.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Caller {
    /// The token's `sub`; `None` when authentication is off.
    pub sub: Option<String>,
    /// The token's `exp` (seconds since the epoch); `None` when authentication is off.
    pub expires_at: Option<u64>,
    /// Every claim of the token, for `{claims.NAME}` grants; `None` when
    /// authentication is off.
    pub claims: Option<Arc<serde_json::Map<String, serde_json::Value>>>,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AuthError {
    #[error("the Authorization header is missing")]
    MissingToken,
    #[error("the Authorization header is not `Bearer <token>`")]
    MalformedHeader,
    #[error(
        "the token is empty: the Authorization header is `Bearer` with nothing after it (was the variable holding the token set?)"
    )]
    EmptyToken,
    #[error("the token is not a well-formed JWT")]
    MalformedToken,
    #[error("the token's algorithm is not accepted")]
    Algorithm,
    #[error("the token's signing key is unknown")]
    UnknownKey,
    #[error("the token's signature is invalid")]
    BadSignature,
    #[error("the token has expired")]
    Expired,
    #[error("the token is not valid yet")]
    NotYetValid,
    #[error("the token's issuer is not accepted")]
    WrongIssuer,
    /// Who the token is for, and whose it is (`core::jwt`'s checks).
    #[error(transparent)]
    Claim(#[from] ClaimError),
    #[error("the token's signing keys could not be fetched: {0}")]
    KeysUnavailable(JwksError),
}

/// Why the JWKS could not be fetched (for the log; callers see `KeysUnavailable`).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum JwksError {
    #[error("the request failed: {0}")]
    Request(String),
    #[error("HTTP {0}")]
    Status(u16),
    #[error("the document is over {MAX_JWKS_BYTES} bytes")]
    TooLarge,
    #[error("not a JWKS: {0}")]
    NotAJwks(String),
    #[error("no answer within {0:?}")]
    NoAnswer(Duration),
    #[error("the fetch was abandoned")]
    Abandoned,
    #[error("a recent fetch failed")]
    RecentFailure,
    #[error("no key set")]
    NoKeySet,
}

impl AuthError {
    /// A stable code for the JSON error body.
    pub fn code(&self) -> &'static str {
        match self {
            AuthError::MissingToken => code::MISSING_TOKEN,
            AuthError::MalformedHeader => code::MALFORMED_AUTHORIZATION,
            AuthError::EmptyToken => code::EMPTY_TOKEN,
            AuthError::MalformedToken => code::MALFORMED_TOKEN,
            AuthError::Algorithm => code::UNSUPPORTED_ALGORITHM,
            AuthError::UnknownKey => code::UNKNOWN_KEY,
            AuthError::BadSignature => code::INVALID_SIGNATURE,
            AuthError::Expired => code::TOKEN_EXPIRED,
            AuthError::NotYetValid => code::TOKEN_NOT_YET_VALID,
            AuthError::WrongIssuer => code::INVALID_ISSUER,
            AuthError::Claim(ClaimError::WrongAudience) => code::INVALID_AUDIENCE,
            AuthError::Claim(ClaimError::MissingAudience) => code::MISSING_AUDIENCE,
            AuthError::Claim(ClaimError::MissingSubject) => code::MISSING_SUBJECT,
            AuthError::KeysUnavailable(_) => code::KEYS_UNAVAILABLE,
        }
    }
}

pub struct JwtVerifier {
    validation: Validation,
    recipient: Recipient,
    hs256: Option<DecodingKey>,
    jwks: Option<Jwks>,
}

enum Jwks {
    Fixed(JwkSet),
    Remote(Arc<RemoteJwks>),
}

/// Why the configured authentication could not be built.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SetupError {
    #[error("JWT_HS256_SECRET_ARN has not been fetched from Secrets Manager")]
    SecretNotFetched,
    #[error("JWT_JWKS_FILE is not a JWKS: {0}")]
    JwksFile(String),
    #[error("JWT_JWKS_URL: {0}")]
    JwksUrl(String),
}

/// The configured authentication.
pub enum Authenticator {
    None,
    Jwt(Box<JwtVerifier>),
}

impl Authenticator {
    pub fn new(settings: &AuthSettings) -> Result<Self, SetupError> {
        match settings {
            AuthSettings::None => Ok(Self::None),
            AuthSettings::Jwt(jwt) => Ok(Self::Jwt(Box::new(JwtVerifier::new(jwt)?))),
        }
    }

    /// Authenticates a request by its `Authorization` header value.
    pub async fn authenticate(&self, authorization: Option<&str>) -> Result<Caller, AuthError> {
        match self {
            Self::None => Ok(Caller {
                sub: None,
                expires_at: None,
                claims: None,
            }),
            Self::Jwt(verifier) => {
                let header = authorization.ok_or(AuthError::MissingToken)?.trim();
                let token = match header.split_once(' ') {
                    Some((scheme, token)) if scheme.eq_ignore_ascii_case("bearer") => token.trim(),
                    None if header.eq_ignore_ascii_case("bearer") => "",
                    _ => return Err(AuthError::MalformedHeader),
                };
                if token.is_empty() {
                    return Err(AuthError::EmptyToken);
                }
                verifier.verify(token).await
            }
        }
    }
}

impl JwtVerifier {
    /// Builds the verifier; with a JWKS URL inside a Tokio runtime, the first fetch
    /// starts at once in the background.
    pub fn new(settings: &JwtSettings) -> Result<Self, SetupError> {
        let mut validation = Validation::new(Algorithm::RS256);
        validation.algorithms = Vec::new(); // chosen per token below, from the key's own kind
        validation.leeway = settings.leeway.as_secs();
        validation.validate_nbf = true;
        validation.set_required_spec_claims(&["exp", "iss"]);
        validation.set_issuer(&[&settings.issuer]);
        validation.validate_aud = false; // checked by `Recipient`, which knows access tokens
        if settings.hs256_secret_arn.is_some() && settings.hs256_secret.is_none() {
            return Err(SetupError::SecretNotFetched);
        }
        let hs256 = settings
            .hs256_secret
            .as_ref()
            .map(|s| DecodingKey::from_secret(s.expose().as_bytes()));
        let jwks = match (&settings.jwks_json, &settings.jwks_url) {
            (Some(json), _) => Some(Jwks::Fixed(
                serde_json::from_str(json).map_err(|e| SetupError::JwksFile(e.to_string()))?,
            )),
            (None, Some(url)) => {
                let remote = Arc::new(RemoteJwks::new(url, settings.jwks_ttl)?);
                if tokio::runtime::Handle::try_current().is_ok() {
                    drop(remote.refresh());
                }
                Some(Jwks::Remote(remote))
            }
            (None, None) => None,
        };
        Ok(Self {
            validation,
            recipient: Recipient {
                audience: settings.audience.clone(),
                client_id: settings.client_id.clone(),
            },
            hs256,
            jwks,
        })
    }

    pub async fn verify(&self, token: &str) -> Result<Caller, AuthError> {
        let header = jsonwebtoken::decode_header(token).map_err(|_| AuthError::MalformedToken)?;
        let key = match header.alg {
            Algorithm::HS256 => self.hs256.clone().ok_or(AuthError::Algorithm)?,
            Algorithm::RS256 | Algorithm::ES256 => match self.jwks.as_ref().ok_or(AuthError::Algorithm)? {
                Jwks::Fixed(set) => pick(set, header.kid.as_deref(), header.alg).ok_or(AuthError::UnknownKey)?,
                Jwks::Remote(remote) => remote.key(header.kid.as_deref(), header.alg).await?,
            },
            _ => return Err(AuthError::Algorithm),
        };
        let mut validation = self.validation.clone();
        validation.algorithms = vec![header.alg];
        let data = jsonwebtoken::decode::<serde_json::Map<String, serde_json::Value>>(token, &key, &validation)
            .map_err(|err| match err.kind() {
                ErrorKind::ExpiredSignature => AuthError::Expired,
                ErrorKind::ImmatureSignature => AuthError::NotYetValid,
                ErrorKind::InvalidIssuer => AuthError::WrongIssuer,
                ErrorKind::InvalidAudience => AuthError::Claim(ClaimError::WrongAudience),
                ErrorKind::InvalidSignature => AuthError::BadSignature,
                ErrorKind::InvalidAlgorithm => AuthError::Algorithm,
                ErrorKind::MissingRequiredClaim(claim) if claim == "iss" => AuthError::WrongIssuer,
                ErrorKind::MissingRequiredClaim(_) => AuthError::Expired,
                _ => AuthError::MalformedToken,
            })?;
        let all = data.claims;
        let claims: Claims =
            serde_json::from_value(serde_json::Value::Object(all.clone())).map_err(|_| AuthError::MalformedToken)?;
        let sub = self.recipient.check(&claims)?;
        Ok(Caller {
            sub: Some(sub),
            expires_at: claims.exp,
            claims: Some(Arc::new(all)),
        })
    }
}

/// The key for `kid` and `alg` in `set`; without a kid, only a one-key set will do.
fn pick(set: &JwkSet, kid: Option<&str>, alg: Algorithm) -> Option<DecodingKey> {
    let jwk = match kid {
        Some(kid) => set.find(kid)?,
        None if set.keys.len() == 1 => &set.keys[0],
        None => return None,
    };
    let matches_alg = jwk
        .common
        .key_algorithm
        .is_none_or(|ka| ka.to_string() == format!("{alg:?}"));
    matches_alg.then(|| DecodingKey::from_jwk(jwk).ok()).flatten()
}

/// A fetch's end as its waiters see it: `Ok` or the reason it failed.
type FetchOutcome = Option<Result<(), JwksError>>;

/// A JWKS behind a URL, fetched in the background and shared by every request.
struct RemoteJwks {
    url: String,
    client: reqwest::Client,
    ttl: Duration,
    state: Mutex<JwksState>,
}

#[derive(Default)]
struct JwksState {
    keys: Option<(Arc<JwkSet>, Instant)>,
    /// The fetch in flight: every waiter watches the same one.
    inflight: Option<watch::Receiver<FetchOutcome>>,
    /// No fetch starts before this (set after a failure).
    not_before: Option<Instant>,
    last_failure: Option<JwksError>,
    /// When a request last waited for a fetch because of an unknown kid.
    last_unknown_kid: Option<Instant>,
}

impl RemoteJwks {
    fn new(url: &str, ttl: Duration) -> Result<Self, SetupError> {
        let client = reqwest::Client::builder()
            .connect_timeout(FETCH_TIMEOUT)
            .timeout(FETCH_TIMEOUT)
            .build()
            .map_err(|e| SetupError::JwksUrl(format!("no HTTP client: {e}")))?;
        Ok(Self {
            url: url.to_owned(),
            client,
            ttl,
            state: Mutex::new(JwksState::default()),
        })
    }

    fn state(&self) -> MutexGuard<'_, JwksState> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    async fn key(self: &Arc<Self>, kid: Option<&str>, alg: Algorithm) -> Result<DecodingKey, AuthError> {
        let cached = self.usable_keys();
        if let Some((set, age)) = &cached {
            if *age >= self.ttl {
                drop(self.refresh()); // in the background; this request does not wait
            }
            if let Some(key) = pick(set, kid, alg) {
                return Ok(key);
            }
            // An unknown kid: the issuer may have rotated its keys.
            let mut state = self.state();
            if state.last_unknown_kid.is_some_and(|at| at.elapsed() < REFETCH_INTERVAL) {
                return Err(AuthError::UnknownKey);
            }
            state.last_unknown_kid = Some(Instant::now());
        }
        match self.wait_for(self.refresh()).await {
            Ok(()) => {}
            Err(reason) if cached.is_none() => return Err(AuthError::KeysUnavailable(reason)),
            Err(_) => return Err(AuthError::UnknownKey),
        }
        let (set, _) = self
            .usable_keys()
            .ok_or(AuthError::KeysUnavailable(JwksError::NoKeySet))?;
        pick(&set, kid, alg).ok_or(AuthError::UnknownKey)
    }

    /// The cached set and its age, unless it is older than [`MAX_KEY_AGE`].
    fn usable_keys(&self) -> Option<(Arc<JwkSet>, Duration)> {
        let state = self.state();
        let (set, at) = state.keys.as_ref()?;
        let age = at.elapsed();
        (age < MAX_KEY_AGE).then(|| (set.clone(), age))
    }

    /// Starts a fetch unless one is in flight or a failure is too recent; the
    /// receiver sees the end of the fetch in flight (or the recent failure).
    fn refresh(self: &Arc<Self>) -> watch::Receiver<FetchOutcome> {
        let mut state = self.state();
        if let Some(inflight) = &state.inflight {
            return inflight.clone();
        }
        if state.not_before.is_some_and(|at| Instant::now() < at) {
            let reason = state.last_failure.clone().unwrap_or(JwksError::RecentFailure);
            return watch::channel(Some(Err(reason))).1;
        }
        let (done, outcome) = watch::channel(None);
        state.inflight = Some(outcome.clone());
        drop(state);
        let this = self.clone();
        tokio::spawn(async move {
            let fetched = fetch_jwks(&this.client, &this.url).await;
            let result = this.record(fetched);
            let _ = done.send(Some(result));
        });
        outcome
    }

    fn record(&self, fetched: Result<JwkSet, JwksError>) -> Result<(), JwksError> {
        let mut state = self.state();
        state.inflight = None;
        match fetched {
            Ok(set) => {
                tracing::info!(jwks_url = %self.url, keys = set.keys.len(), "fetched the JWKS");
                state.keys = Some((Arc::new(set), Instant::now()));
                state.not_before = None;
                state.last_failure = None;
                Ok(())
            }
            Err(reason) => {
                match &state.keys {
                    Some((_, at)) => tracing::error!(
                        jwks_url = %self.url,
                        keys_age_s = at.elapsed().as_secs(),
                        "cannot refresh the JWKS, still using the keys fetched earlier: {reason}"
                    ),
                    None => tracing::error!(jwks_url = %self.url, "cannot fetch the JWKS: {reason}"),
                }
                state.not_before = Some(Instant::now() + RETRY_AFTER_FAILURE);
                state.last_failure = Some(reason.clone());
                Err(reason)
            }
        }
    }

    async fn wait_for(&self, mut outcome: watch::Receiver<FetchOutcome>) -> Result<(), JwksError> {
        let waited = tokio::time::timeout(
            FETCH_TIMEOUT + Duration::from_secs(1),
            outcome.wait_for(Option::is_some),
        )
        .await;
        match waited {
            Ok(Ok(result)) => result.clone().unwrap_or(Err(JwksError::Abandoned)),
            Ok(Err(_)) => Err(JwksError::Abandoned),
            Err(_) => Err(JwksError::NoAnswer(FETCH_TIMEOUT)),
        }
    }
}

async fn fetch_jwks(client: &reqwest::Client, url: &str) -> Result<JwkSet, JwksError> {
    let request_failed = |e: reqwest::Error| JwksError::Request(e.to_string());
    let mut response = client.get(url).send().await.map_err(request_failed)?;
    if !response.status().is_success() {
        return Err(JwksError::Status(response.status().as_u16()));
    }
    if response.content_length().is_some_and(|len| len > MAX_JWKS_BYTES as u64) {
        return Err(JwksError::TooLarge);
    }
    let mut body = Vec::new();
    while let Some(chunk) = response.chunk().await.map_err(request_failed)? {
        if body.len() + chunk.len() > MAX_JWKS_BYTES {
            return Err(JwksError::TooLarge);
        }
        body.extend_from_slice(&chunk);
    }
    serde_json::from_slice::<JwkSet>(&body).map_err(|e| JwksError::NotAJwks(e.to_string()))
}
