//! Caller authentication for the vending API: none (explicit opt-in) or a JWT in
//! `Authorization: Bearer …`, verified without a database lookup.
//!
//! `jsonwebtoken` does the cryptography and the claim checks (`exp` required, `nbf`
//! when present, `iss`, and `aud` when configured, with a small leeway). Which keys
//! are acceptable is decided here, by algorithm: HS256 only with the configured
//! shared secret, RS256/ES256 only with a key from the JWKS — so a token can never
//! choose its own verification (no `alg: none`, no HS256 signed with a public key).
//! A JWKS from a URL is cached for a TTL and fetched again when a token names an
//! unknown `kid` (key rotation), at most every [`REFETCH_INTERVAL`]. Works with
//! Cognito user pools, Auth0 and any OIDC issuer's `jwks_uri`.
//!
//! Errors say which check failed, never the token. Not here: token revocation,
//! `Condition`-style claim rules, other algorithms.

use std::time::{Duration, Instant};

use jsonwebtoken::errors::ErrorKind;
use jsonwebtoken::jwk::JwkSet;
use jsonwebtoken::{Algorithm, DecodingKey, Validation};
use serde::Deserialize;
use tokio::sync::{Mutex, RwLock};

use crate::config::{AuthSettings, JwtSettings};

/// The least time between two JWKS fetches caused by unknown key IDs.
pub const REFETCH_INTERVAL: Duration = Duration::from_secs(30);

/// Who is calling, once authenticated.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Caller {
    /// The token's `sub`; `None` when authentication is off.
    pub sub: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AuthError {
    #[error("the Authorization header is missing")]
    MissingToken,
    #[error("the Authorization header is not `Bearer <token>`")]
    MalformedHeader,
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
    #[error("the token's audience is not accepted")]
    WrongAudience,
    #[error("the token has no usable sub claim")]
    MissingSubject,
    #[error("the token's signing keys could not be fetched: {0}")]
    KeysUnavailable(String),
}

impl AuthError {
    /// A stable code for the JSON error body.
    pub fn code(&self) -> &'static str {
        match self {
            AuthError::MissingToken => "MissingToken",
            AuthError::MalformedHeader => "MalformedAuthorization",
            AuthError::MalformedToken => "MalformedToken",
            AuthError::Algorithm => "UnsupportedAlgorithm",
            AuthError::UnknownKey => "UnknownKey",
            AuthError::BadSignature => "InvalidSignature",
            AuthError::Expired => "TokenExpired",
            AuthError::NotYetValid => "TokenNotYetValid",
            AuthError::WrongIssuer => "InvalidIssuer",
            AuthError::WrongAudience => "InvalidAudience",
            AuthError::MissingSubject => "MissingSubject",
            AuthError::KeysUnavailable(_) => "KeysUnavailable",
        }
    }
}

#[derive(Deserialize)]
struct Claims {
    sub: Option<String>,
}

enum Jwks {
    Fixed(JwkSet),
    Url {
        url: String,
        client: reqwest::Client,
        ttl: Duration,
        cache: RwLock<Option<(JwkSet, Instant)>>,
        fetching: Mutex<Option<Instant>>,
    },
}

pub struct JwtVerifier {
    validation: Validation,
    hs256: Option<DecodingKey>,
    jwks: Option<Jwks>,
}

/// The configured authentication.
pub enum Authenticator {
    None,
    Jwt(Box<JwtVerifier>),
}

impl Authenticator {
    pub fn new(settings: &AuthSettings) -> Result<Self, String> {
        match settings {
            AuthSettings::None => Ok(Self::None),
            AuthSettings::Jwt(jwt) => Ok(Self::Jwt(Box::new(JwtVerifier::new(jwt)?))),
        }
    }

    /// Authenticates a request by its `Authorization` header value.
    pub async fn authenticate(&self, authorization: Option<&str>) -> Result<Caller, AuthError> {
        match self {
            Self::None => Ok(Caller { sub: None }),
            Self::Jwt(verifier) => {
                let header = authorization.ok_or(AuthError::MissingToken)?;
                let token = header
                    .strip_prefix("Bearer ")
                    .or_else(|| header.strip_prefix("bearer "))
                    .map(str::trim)
                    .filter(|t| !t.is_empty())
                    .ok_or(AuthError::MalformedHeader)?;
                verifier.verify(token).await
            }
        }
    }
}

impl JwtVerifier {
    pub fn new(settings: &JwtSettings) -> Result<Self, String> {
        let mut validation = Validation::new(Algorithm::RS256);
        validation.algorithms = Vec::new(); // chosen per token below, from the key's own kind
        validation.leeway = settings.leeway.as_secs();
        validation.validate_nbf = true;
        validation.set_required_spec_claims(&["exp", "iss"]);
        validation.set_issuer(&[&settings.issuer]);
        match &settings.audience {
            Some(audience) => validation.set_audience(&[audience]),
            None => validation.validate_aud = false,
        }
        let hs256 = settings
            .hs256_secret
            .as_ref()
            .map(|s| DecodingKey::from_secret(s.as_bytes()));
        let jwks = match (&settings.jwks_json, &settings.jwks_url) {
            (Some(json), _) => Some(Jwks::Fixed(
                serde_json::from_str(json).map_err(|e| format!("JWT_JWKS_FILE is not a JWKS: {e}"))?,
            )),
            (None, Some(url)) => Some(Jwks::Url {
                url: url.clone(),
                client: reqwest::Client::builder()
                    .connect_timeout(Duration::from_secs(2))
                    .timeout(Duration::from_secs(5))
                    .build()
                    .map_err(|e| e.to_string())?,
                ttl: settings.jwks_ttl,
                cache: RwLock::new(None),
                fetching: Mutex::new(None),
            }),
            (None, None) => None,
        };
        Ok(Self {
            validation,
            hs256,
            jwks,
        })
    }

    pub async fn verify(&self, token: &str) -> Result<Caller, AuthError> {
        let header = jsonwebtoken::decode_header(token).map_err(|_| AuthError::MalformedToken)?;
        let key = match header.alg {
            Algorithm::HS256 => self.hs256.clone().ok_or(AuthError::Algorithm)?,
            Algorithm::RS256 | Algorithm::ES256 => self.jwks_key(header.kid.as_deref(), header.alg).await?,
            _ => return Err(AuthError::Algorithm),
        };
        let mut validation = self.validation.clone();
        validation.algorithms = vec![header.alg];
        let data = jsonwebtoken::decode::<Claims>(token, &key, &validation).map_err(|err| match err.kind() {
            ErrorKind::ExpiredSignature => AuthError::Expired,
            ErrorKind::ImmatureSignature => AuthError::NotYetValid,
            ErrorKind::InvalidIssuer => AuthError::WrongIssuer,
            ErrorKind::InvalidAudience => AuthError::WrongAudience,
            ErrorKind::InvalidSignature => AuthError::BadSignature,
            ErrorKind::InvalidAlgorithm => AuthError::Algorithm,
            ErrorKind::MissingRequiredClaim(claim) if claim == "iss" => AuthError::WrongIssuer,
            ErrorKind::MissingRequiredClaim(_) => AuthError::Expired,
            _ => AuthError::MalformedToken,
        })?;
        let sub = data
            .claims
            .sub
            .filter(|s| !s.is_empty())
            .ok_or(AuthError::MissingSubject)?;
        Ok(Caller { sub: Some(sub) })
    }

    async fn jwks_key(&self, kid: Option<&str>, alg: Algorithm) -> Result<DecodingKey, AuthError> {
        let jwks = self.jwks.as_ref().ok_or(AuthError::Algorithm)?;
        let pick = |set: &JwkSet| -> Option<DecodingKey> {
            let jwk = match kid {
                Some(kid) => set.find(kid)?,
                // Without a kid, only an unambiguous set will do.
                None if set.keys.len() == 1 => &set.keys[0],
                None => return None,
            };
            let matches_alg = jwk
                .common
                .key_algorithm
                .is_none_or(|ka| ka.to_string() == format!("{alg:?}"));
            matches_alg.then(|| DecodingKey::from_jwk(jwk).ok()).flatten()
        };
        match jwks {
            Jwks::Fixed(set) => pick(set).ok_or(AuthError::UnknownKey),
            Jwks::Url {
                url,
                client,
                ttl,
                cache,
                fetching,
            } => {
                if let Some((set, at)) = cache.read().await.as_ref()
                    && at.elapsed() < *ttl
                    && let Some(key) = pick(set)
                {
                    return Ok(key);
                }
                // Stale, missing, or an unknown kid: fetch again, one fetch at a time.
                // Fetches caused by unknown kids are limited to one per REFETCH_INTERVAL,
                // so a stream of made-up kids cannot hammer the issuer.
                let mut last_unknown = fetching.lock().await;
                let fresh = match cache.read().await.as_ref() {
                    Some((set, at)) if at.elapsed() < *ttl => {
                        if let Some(key) = pick(set) {
                            return Ok(key); // another request fetched it meanwhile
                        }
                        true
                    }
                    _ => false,
                };
                if fresh {
                    if last_unknown.is_some_and(|at| at.elapsed() < REFETCH_INTERVAL) {
                        return Err(AuthError::UnknownKey);
                    }
                    *last_unknown = Some(Instant::now());
                }
                let fetched = fetch_jwks(client, url).await;
                match fetched {
                    Ok(set) => {
                        let key = pick(&set);
                        *cache.write().await = Some((set, Instant::now()));
                        key.ok_or(AuthError::UnknownKey)
                    }
                    Err(reason) => {
                        tracing::error!(jwks_url = %url, "cannot fetch the JWKS: {reason}");
                        Err(AuthError::KeysUnavailable(reason))
                    }
                }
            }
        }
    }
}

async fn fetch_jwks(client: &reqwest::Client, url: &str) -> Result<JwkSet, String> {
    let response = client.get(url).send().await.map_err(|e| e.to_string())?;
    if !response.status().is_success() {
        return Err(format!("HTTP {}", response.status()));
    }
    response.json::<JwkSet>().await.map_err(|e| format!("not a JWKS: {e}"))
}
