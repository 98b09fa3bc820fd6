//! The vending service's settings, read once at start-up from environment variables.
//!
//! A missing or malformed value stops start-up with an error that names the variable
//! and says what it expects; nothing is re-read per request. The IoT resource ARNs
//! take their partition and account from `CLIENT_ROLE_ARN`, so there is no separate
//! account setting to get wrong.

use std::time::Duration;

use crate::secret::{Secret, SecretError, SecretsManager, Stage};
use serverless_websockets_core::arn::{IotArns, RoleArn};
use serverless_websockets_core::grants::{GrantTemplates, MAX_VARIABLE_BYTES, SubCharset, SubRule};
use serverless_websockets_core::presign::IotEndpoint;
use serverless_websockets_core::resume::{ResumeKey, ResumeKeys};
use serverless_websockets_core::topic::Topic;

/// STS accepts 900 s at least; role chaining (a Lambda role assuming the client
/// role) caps sessions at 3600 s.
pub use serverless_websockets_core::sts::{MIN_DURATION_SECS, ROLE_CHAINING_MAX_DURATION_SECS as MAX_DURATION_SECS};

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{variable} {problem}: expected {expected}")]
pub struct ConfigError {
    pub variable: &'static str,
    pub problem: String,
    pub expected: &'static str,
}

/// Which browser origins may call the API (CORS).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub enum CorsOrigins {
    /// No cross-origin browser access (the default).
    #[default]
    None,
    /// `*`: any web page may fetch credentials.
    Any,
    /// Exact origins such as `https://app.example.com`.
    List(Vec<String>),
}

/// How callers of the API are authenticated.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AuthSettings {
    /// Anyone may get credentials (explicit opt-in; warned about at start-up).
    None,
    Jwt(JwtSettings),
}

/// JWT verification: issuer and audience checks, keys from a shared HS256 secret
/// and/or a JWKS (URL or file) for RS256 and ES256.
#[derive(Clone, PartialEq, Eq)]
pub struct JwtSettings {
    pub issuer: String,
    /// `aud` an ID token must carry.
    pub audience: Option<String>,
    /// `client_id` a Cognito access token must carry.
    pub client_id: Option<String>,
    /// The HS256 key: given directly (local use), or fetched from
    /// [`Self::hs256_secret_arn`] by [`Config::fetch_secrets`].
    pub hs256_secret: Option<Secret>,
    /// `JWT_HS256_SECRET_ARN`: a Secrets Manager secret holding the HS256 key.
    pub hs256_secret_arn: Option<String>,
    pub jwks_url: Option<String>,
    /// A JWKS document read from `JWT_JWKS_FILE` at start-up.
    pub jwks_json: Option<String>,
    pub leeway: Duration,
    pub jwks_ttl: Duration,
}

impl std::fmt::Debug for JwtSettings {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("JwtSettings")
            .field("issuer", &self.issuer)
            .field("audience", &self.audience)
            .field("client_id", &self.client_id)
            .field("hs256_secret", &self.hs256_secret)
            .field("hs256_secret_arn", &self.hs256_secret_arn)
            .field("jwks_url", &self.jwks_url)
            .field("jwks_file", &self.jwks_json.is_some())
            .finish_non_exhaustive()
    }
}

#[derive(Debug, Clone)]
pub struct Config {
    pub client_role_arn: RoleArn,
    pub region: String,
    /// `arn:<partition>:iot:<region>:<account>`, from the role ARN and the region.
    pub iot_arns: IotArns,
    pub iot_endpoint: IotEndpoint,
    pub credential_duration: Duration,
    /// What each client may subscribe and publish to.
    pub grants: GrantTemplates,
    pub cors_allow_origins: CorsOrigins,
    pub auth: AuthSettings,
    /// Resume tokens: fresh credentials for the same client ID.
    pub resume: ResumeSettings,
    /// The ban policy on the client role, read to refuse banned callers.
    pub bans: BanSettings,
    /// `GRANTS_FUNCTION`: a Lambda function that gives claim values ([`crate::grants_fn`]).
    pub grants_function: Option<String>,
    /// `GRANTS_FUNCTION_TIMEOUT_MS`.
    pub grants_function_timeout: Duration,
}

/// `BAN_POLICY_NAME` and `BAN_CACHE_SECONDS` ([`crate::bans`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BanSettings {
    /// The client role's inline policy that holds the bans; `None` (the value
    /// `none`) when the API should not read one.
    pub policy_name: Option<String>,
    /// How long one read of it is used.
    pub cache: Duration,
}

/// How resume tokens are signed and how long they live.
#[derive(Debug, Clone)]
pub struct ResumeSettings {
    /// `RESUME_TOKEN_TTL_SECONDS`.
    pub ttl: Duration,
    /// `RESUME_MAX_LIFETIME_SECONDS`: how long a client ID can be resumed,
    /// counted from its first token, however often it is resumed.
    pub max_lifetime: Duration,
    /// `RESUME_KEY_SECRET_ARN`: a Secrets Manager secret whose current and
    /// previous versions are the keys, read by [`Config::fetch_secrets`].
    pub key_arn: Option<String>,
    /// The keys, once known: from `RESUME_KEY` (local use), from the secret, or a
    /// random key for this process when neither is set ([`Self::ephemeral`]).
    pub keys: Option<ResumeKeys>,
    /// The keys are random for this process: tokens stop working at a restart and
    /// are not accepted by another instance.
    pub ephemeral: bool,
}

/// Resume tokens live a day unless configured: long enough for a laptop's night.
pub const DEFAULT_RESUME_TTL_SECS: u64 = 86_400;
pub const MIN_RESUME_TTL_SECS: u64 = 300;
pub const MAX_RESUME_TTL_SECS: u64 = 7 * 86_400;
/// How long a client ID lives across resumes by default: 30 days.
pub const DEFAULT_RESUME_LIFETIME_SECS: u64 = 30 * 86_400;
/// The longest absolute lifetime `RESUME_MAX_LIFETIME_SECONDS` accepts: a year.
pub const MAX_RESUME_LIFETIME_SECS: u64 = 365 * 86_400;

impl Config {
    pub fn from_env() -> Result<Self, ConfigError> {
        Self::from_lookup(|name| std::env::var(name).ok())
    }

    /// Reads the settings through `lookup`, so tests need not touch the process environment.
    pub fn from_lookup(lookup: impl Fn(&str) -> Option<String>) -> Result<Self, ConfigError> {
        let env = Env(lookup);
        const ROLE: &str = "an IAM role ARN such as arn:aws:iam::123456789012:role/ClientRole";
        let client_role_arn = env.required("CLIENT_ROLE_ARN", ROLE, |v| RoleArn::parse(v).ok())?;

        const REGION: &str = "an AWS region such as us-east-1";
        let region = env
            .get("AWS_REGION")
            .or_else(|| env.get("AWS_DEFAULT_REGION"))
            .ok_or_else(|| missing("AWS_REGION", REGION))?;
        let iot_arns =
            IotArns::for_role(&client_role_arn, &region).map_err(|_| malformed("AWS_REGION", &region, REGION))?;

        const ENDPOINT: &str =
            "the IoT data endpoint host (aws iot describe-endpoint --endpoint-type iot:Data-ATS) or a wss:// URL";
        let iot_endpoint = env.required("IOT_ENDPOINT", ENDPOINT, |v| IotEndpoint::parse(v).ok())?;
        let credential_duration = env.seconds(
            "CREDENTIAL_DURATION_SECONDS",
            MAX_DURATION_SECS,
            MIN_DURATION_SECS..=MAX_DURATION_SECS,
            "a whole number of seconds from 900 to 3600",
        )?;
        let grants = read_grants(&env, &iot_arns)?;
        let cors_allow_origins = read_cors(&env)?;
        let auth = read_auth(&env)?;
        let resume = read_resume(&env)?;
        let bans = read_bans(&env)?;
        let (grants_function, grants_function_timeout) = read_grants_function(&env)?;
        if auth == AuthSettings::None && grants.uses_sub() {
            return Err(ConfigError {
                variable: "AUTH_MODE",
                problem: "is none, but the grant templates use {sub}".into(),
                expected: "jwt, so that there is a subject to put into topics",
            });
        }
        Ok(Self {
            client_role_arn,
            region,
            iot_arns,
            iot_endpoint,
            credential_duration,
            grants,
            cors_allow_origins,
            auth,
            resume,
            bans,
            grants_function,
            grants_function_timeout,
        })
    }
}

/// `GRANTS_FUNCTION` (a Lambda function name or ARN) and `GRANTS_FUNCTION_TIMEOUT_MS`.
fn read_grants_function<F: Fn(&str) -> Option<String>>(
    env: &Env<F>,
) -> Result<(Option<String>, Duration), ConfigError> {
    let function = env.optional(
        "GRANTS_FUNCTION",
        "a Lambda function name or ARN (name, name:alias, or arn:…:function:name)",
        |v| {
            let ok = v.len() <= 170 && v.bytes().all(|c| c.is_ascii_alphanumeric() || b"-_:.$".contains(&c));
            ok.then(|| v.to_owned())
        },
    )?;
    let timeout = env
        .optional(
            "GRANTS_FUNCTION_TIMEOUT_MS",
            "a whole number of milliseconds from 100 to 10000",
            |v| {
                v.parse::<u64>()
                    .ok()
                    .filter(|ms| (100..=crate::grants_fn::MAX_TIMEOUT_MS).contains(ms))
            },
        )?
        .unwrap_or(crate::grants_fn::DEFAULT_TIMEOUT_MS);
    Ok((function, Duration::from_millis(timeout)))
}

/// `BAN_POLICY_NAME` (an IAM policy name, `bans` by default, `none` for no
/// check) and `BAN_CACHE_SECONDS`.
fn read_bans<F: Fn(&str) -> Option<String>>(env: &Env<F>) -> Result<BanSettings, ConfigError> {
    let name = env
        .optional(
            "BAN_POLICY_NAME",
            "an IAM policy name ([A-Za-z0-9+=,.@_-], 1 to 128 characters), or none",
            |v| {
                let ok = v.len() <= 128 && v.bytes().all(|c| c.is_ascii_alphanumeric() || b"+=,.@_-".contains(&c));
                ok.then(|| v.to_owned())
            },
        )?
        .unwrap_or_else(|| crate::bans::DEFAULT_BAN_POLICY_NAME.to_owned());
    let cache = env.seconds(
        "BAN_CACHE_SECONDS",
        crate::bans::DEFAULT_BAN_CACHE_SECS,
        0..=crate::bans::MAX_BAN_CACHE_SECS,
        "a whole number of seconds from 0 to 300",
    )?;
    Ok(BanSettings {
        policy_name: (name != "none").then_some(name),
        cache,
    })
}

const SECRET_ARN: &str =
    "a Secrets Manager secret ARN such as arn:aws:secretsmanager:us-east-1:123456789012:secret:name-AbCdEf";

fn parse_secret_arn(value: &str) -> Option<String> {
    let parts: Vec<&str> = value.splitn(7, ':').collect();
    matches!(parts.as_slice(), ["arn", _, "secretsmanager", _, _, "secret", name] if !name.is_empty())
        .then(|| value.to_owned())
}

/// `RESUME_TOKEN_TTL_SECONDS`, and the key: `RESUME_KEY_SECRET_ARN` (AWS),
/// `RESUME_KEY` (local use), or a random key for this process.
fn read_resume<F: Fn(&str) -> Option<String>>(env: &Env<F>) -> Result<ResumeSettings, ConfigError> {
    let ttl = env.seconds(
        "RESUME_TOKEN_TTL_SECONDS",
        DEFAULT_RESUME_TTL_SECS,
        MIN_RESUME_TTL_SECS..=MAX_RESUME_TTL_SECS,
        "a whole number of seconds from 300 to 604800 (7 days)",
    )?;
    let max_lifetime = env.seconds(
        "RESUME_MAX_LIFETIME_SECONDS",
        DEFAULT_RESUME_LIFETIME_SECS,
        MIN_RESUME_TTL_SECS..=MAX_RESUME_LIFETIME_SECS,
        "a whole number of seconds from 300 to 31536000 (a year)",
    )?;
    let key_arn = env.optional("RESUME_KEY_SECRET_ARN", SECRET_ARN, parse_secret_arn)?;
    let value = env.optional(
        "RESUME_KEY",
        "a secret of at least 32 bytes (for local use; in AWS use RESUME_KEY_SECRET_ARN)",
        |v| ResumeKey::new(v.as_bytes().to_vec()).ok(),
    )?;
    if key_arn.is_some() && value.is_some() {
        return Err(ConfigError {
            variable: "RESUME_KEY_SECRET_ARN",
            problem: "is set together with RESUME_KEY".into(),
            expected: "one of the two: the ARN in AWS, the plain value only for local use",
        });
    }
    let ephemeral = key_arn.is_none() && value.is_none();
    let keys = match (value, &key_arn) {
        (Some(key), _) => Some(ResumeKeys::new(key, None)),
        (None, Some(_)) => None,
        (None, None) => Some(ResumeKeys::new(ResumeKey::random(), None)),
    };
    Ok(ResumeSettings {
        ttl,
        max_lifetime,
        key_arn,
        keys,
        ephemeral,
    })
}

/// Settings read by name: values trimmed, an empty value the same as none, and
/// every refusal worded the same way (the variable, what it is, what it should be).
struct Env<F>(F);

impl<F: Fn(&str) -> Option<String>> Env<F> {
    fn get(&self, name: &str) -> Option<String> {
        (self.0)(name).map(|v| v.trim().to_owned()).filter(|v| !v.is_empty())
    }

    /// A setting that must be present and pass `parse`.
    fn required<T>(
        &self,
        name: &'static str,
        expected: &'static str,
        parse: impl FnOnce(&str) -> Option<T>,
    ) -> Result<T, ConfigError> {
        self.optional(name, expected, parse)?
            .ok_or_else(|| missing(name, expected))
    }

    /// A setting that, when present, must pass `parse`.
    fn optional<T>(
        &self,
        name: &'static str,
        expected: &'static str,
        parse: impl FnOnce(&str) -> Option<T>,
    ) -> Result<Option<T>, ConfigError> {
        match self.get(name) {
            None => Ok(None),
            Some(value) => parse(&value).map(Some).ok_or_else(|| malformed(name, &value, expected)),
        }
    }

    /// A whole number of seconds within `range`, `default` when unset.
    fn seconds(
        &self,
        name: &'static str,
        default: u64,
        range: std::ops::RangeInclusive<u64>,
        expected: &'static str,
    ) -> Result<Duration, ConfigError> {
        let secs = self.optional(name, expected, |v| v.parse::<u64>().ok().filter(|s| range.contains(s)))?;
        Ok(Duration::from_secs(secs.unwrap_or(default)))
    }
}

fn missing(variable: &'static str, expected: &'static str) -> ConfigError {
    ConfigError {
        variable,
        problem: "is not set".into(),
        expected,
    }
}

fn malformed(variable: &'static str, value: &str, expected: &'static str) -> ConfigError {
    ConfigError {
        variable,
        problem: format!("is {value:?}"),
        expected,
    }
}

/// The topic prefix when `TOPIC_PREFIX` is not set.
fn default_prefix() -> Result<Topic, ConfigError> {
    Topic::parse("allowed").map_err(|e| ConfigError {
        variable: "TOPIC_PREFIX",
        problem: format!("has no valid default: {e}"),
        expected: "one or more topic levels",
    })
}

/// `SUBSCRIBE_TOPICS` and `PUBLISH_TOPICS` (or the older `TOPIC_PREFIX`), checked
/// to fit STS's session-policy limit for any client ID and `sub`.
fn read_grants<F: Fn(&str) -> Option<String>>(env: &Env<F>, iot_arns: &IotArns) -> Result<GrantTemplates, ConfigError> {
    const PREFIX: &str = "one or more topic levels without wildcards, e.g. allowed or app/push";
    let topic_prefix = env
        .optional("TOPIC_PREFIX", PREFIX, |v| Topic::parse(v).ok())?
        .map_or_else(default_prefix, Ok)?;
    const GRANTS: &str =
        "comma-separated topic templates with {clientId} and {sub}, e.g. allowed/{clientId},users/{sub}";
    let subscribe = env
        .get("SUBSCRIBE_TOPICS")
        .unwrap_or_else(|| format!("{topic_prefix}/{{clientId}}"));
    let publish = env.get("PUBLISH_TOPICS").unwrap_or_default();
    let mut grants = GrantTemplates::parse(&subscribe, &publish).map_err(|e| ConfigError {
        variable: if GrantTemplates::parse(&subscribe, "").is_err() {
            "SUBSCRIBE_TOPICS"
        } else {
            "PUBLISH_TOPICS"
        },
        problem: format!("is not usable: {e}"),
        expected: GRANTS,
    })?;
    grants.sub_rule = read_sub_rule(env)?;
    grants.check_fits(iot_arns).map_err(|e| ConfigError {
        variable: "SUBSCRIBE_TOPICS",
        problem: format!(
            "and PUBLISH_TOPICS are too many for a sub of up to {} bytes ({}): {e}",
            grants.sub_rule.max_bytes,
            grants.sub_rule.charset.as_str()
        ),
        expected: "fewer or shorter grant templates, or a lower SUB_MAX_BYTES (the session policy must stay under 2048 characters)",
    })?;
    Ok(grants)
}

/// `SUB_MAX_BYTES` and `SUB_CHARACTERS`: which `sub` values go into topics.
fn read_sub_rule<F: Fn(&str) -> Option<String>>(env: &Env<F>) -> Result<SubRule, ConfigError> {
    let max_bytes = env.optional("SUB_MAX_BYTES", "a whole number of bytes from 1 to 128", |v| {
        v.parse::<usize>().ok().filter(|n| (1..=MAX_VARIABLE_BYTES).contains(n))
    })?;
    let charset = env.optional(
        "SUB_CHARACTERS",
        "safe (letters, digits and - _ . @ | : = ~) or latin1 (U+0020 to U+00FF)",
        |v| match v {
            "safe" => Some(SubCharset::Safe),
            "latin1" => Some(SubCharset::Latin1),
            _ => None,
        },
    )?;
    let default = SubRule::default();
    Ok(SubRule {
        max_bytes: max_bytes.unwrap_or(default.max_bytes),
        charset: charset.unwrap_or(default.charset),
    })
}

/// `CORS_ALLOW_ORIGINS`: unset, `*`, or a list of exact origins.
fn read_cors<F: Fn(&str) -> Option<String>>(env: &Env<F>) -> Result<CorsOrigins, ConfigError> {
    const ORIGINS: &str = "a comma-separated list of origins such as https://app.example.com, or *";
    let origins = env.optional("CORS_ALLOW_ORIGINS", ORIGINS, |v| {
        if v == "*" {
            return Some(CorsOrigins::Any);
        }
        let origins: Vec<String> = v
            .split(',')
            .map(|o| o.trim().trim_end_matches('/').to_owned())
            .collect();
        origins
            .iter()
            .all(|o| is_origin(o))
            .then_some(CorsOrigins::List(origins))
    })?;
    Ok(origins.unwrap_or_default())
}

impl Config {
    /// Fetches the secrets the settings name by ARN (the HS256 key), once, at
    /// start-up; a value given directly is kept as it is.
    pub async fn fetch_secrets(&mut self, secrets: &SecretsManager) -> Result<(), SecretError> {
        self.auth.fetch_secrets(secrets).await?;
        if let Some(arn) = &self.resume.key_arn {
            let key = |secret: Secret| {
                ResumeKey::new(secret.expose().as_bytes().to_vec()).map_err(|e| SecretError::Refused {
                    arn: arn.clone(),
                    code: "TooShort".into(),
                    message: e.to_string(),
                })
            };
            let current = key(secrets.get(arn, Stage::Current).await?)?;
            // A secret that was never rotated has no previous version.
            let previous = match secrets.get(arn, Stage::Previous).await {
                Ok(secret) => Some(key(secret)?),
                Err(SecretError::NotFound { .. }) => None,
                Err(other) => return Err(other),
            };
            self.resume.keys = Some(ResumeKeys::new(current, previous));
        }
        Ok(())
    }
}

impl AuthSettings {
    /// Fetches the HS256 key when the settings name it by ARN.
    pub async fn fetch_secrets(&mut self, secrets: &SecretsManager) -> Result<(), SecretError> {
        if let AuthSettings::Jwt(jwt) = self
            && let Some(arn) = &jwt.hs256_secret_arn
        {
            let secret = secrets.get(arn, Stage::Current).await?;
            if secret.expose().len() < MIN_HS256_SECRET_BYTES {
                return Err(SecretError::Refused {
                    arn: arn.clone(),
                    code: "TooShort".into(),
                    message: format!("the HS256 secret must be at least {MIN_HS256_SECRET_BYTES} bytes"),
                });
            }
            jwt.hs256_secret = Some(secret);
        }
        Ok(())
    }
}

/// What the JWT custom authorizer shares with the vending service, read from
/// the same variables: `AUTH_MODE` (which must be `jwt`) with the `JWT_*`
/// settings, and the grant templates (`SUBSCRIBE_TOPICS`, `PUBLISH_TOPICS`,
/// `SUB_MAX_BYTES`, `SUB_CHARACTERS`) for resources in `iot_arns`.
pub fn read_shared(
    lookup: impl Fn(&str) -> Option<String>,
    iot_arns: &IotArns,
) -> Result<(JwtSettings, GrantTemplates), ConfigError> {
    let env = Env(lookup);
    let jwt = match read_auth(&env)? {
        AuthSettings::Jwt(jwt) => jwt,
        AuthSettings::None => {
            return Err(ConfigError {
                variable: "AUTH_MODE",
                problem: "is none".into(),
                expected: "jwt: the authorizer exists to check tokens",
            });
        }
    };
    Ok((jwt, read_grants(&env, iot_arns)?))
}

/// The shortest HS256 secret accepted (RFC 7518 §3.2: at least the hash size).
pub const MIN_HS256_SECRET_BYTES: usize = 32;
/// The JWKS cache TTL's bounds: short enough to see rotations, never a fetch per request.
pub const MIN_JWKS_TTL_SECS: u64 = 60;
pub const MAX_JWKS_TTL_SECS: u64 = 86_400;

/// A JWKS URL must be `https://`, except on a loopback host (tests, local IdPs).
fn is_acceptable_jwks_url(value: &str) -> bool {
    let Ok(url) = url::Url::parse(value) else {
        return false;
    };
    let loopback = match url.host() {
        Some(url::Host::Domain(name)) => name.eq_ignore_ascii_case("localhost"),
        Some(url::Host::Ipv4(ip)) => ip.is_loopback(),
        Some(url::Host::Ipv6(ip)) => ip.is_loopback(),
        None => false,
    };
    url.host().is_some() && (url.scheme() == "https" || (url.scheme() == "http" && loopback))
}

/// `AUTH_MODE` and, for `jwt`, the JWT_* settings.
fn read_auth<F: Fn(&str) -> Option<String>>(env: &Env<F>) -> Result<AuthSettings, ConfigError> {
    const MODE: &str = "none (anyone may get credentials) or jwt";
    match env.get("AUTH_MODE").as_deref() {
        None => Err(missing("AUTH_MODE", MODE)),
        Some("none") => Ok(AuthSettings::None),
        Some("jwt") => read_jwt(env).map(AuthSettings::Jwt),
        Some(other) => Err(malformed("AUTH_MODE", other, MODE)),
    }
}

fn read_jwt<F: Fn(&str) -> Option<String>>(env: &Env<F>) -> Result<JwtSettings, ConfigError> {
    let issuer = env.required(
        "JWT_ISSUER",
        "the token issuer (iss), e.g. https://cognito-idp.us-east-1.amazonaws.com/us-east-1_AbCdEf",
        |v| Some(v.to_owned()),
    )?;
    let (hs256_secret, hs256_secret_arn) = read_hs256(env)?;
    let jwks_url = env.optional(
        "JWT_JWKS_URL",
        "an https:// URL of a JWKS document (http:// only on a loopback host)",
        |v| is_acceptable_jwks_url(v).then(|| v.to_owned()),
    )?;
    let jwks_json = read_jwks_file(env)?;
    if hs256_secret.is_none() && hs256_secret_arn.is_none() && jwks_url.is_none() && jwks_json.is_none() {
        return Err(ConfigError {
            variable: "JWT_JWKS_URL",
            problem: "is not set (nor JWT_JWKS_FILE, nor JWT_HS256_SECRET)".into(),
            expected: "a key source for jwt mode: a JWKS URL or file (RS256/ES256) or an HS256 secret (JWT_HS256_SECRET_ARN)",
        });
    }
    Ok(JwtSettings {
        issuer,
        audience: env.get("JWT_AUDIENCE"),
        client_id: env.get("JWT_CLIENT_ID"),
        hs256_secret: hs256_secret.map(Secret::new),
        hs256_secret_arn,
        jwks_url,
        jwks_json,
        leeway: env.seconds(
            "JWT_LEEWAY_SECONDS",
            30,
            0..=300,
            "a whole number of seconds from 0 to 300",
        )?,
        jwks_ttl: env.seconds(
            "JWT_JWKS_TTL_SECONDS",
            600,
            MIN_JWKS_TTL_SECS..=MAX_JWKS_TTL_SECS,
            "a whole number of seconds from 60 to 86400",
        )?,
    })
}

/// `JWT_HS256_SECRET` (local use) or `JWT_HS256_SECRET_ARN` (in AWS), not both.
fn read_hs256<F: Fn(&str) -> Option<String>>(env: &Env<F>) -> Result<(Option<String>, Option<String>), ConfigError> {
    let secret = env.get("JWT_HS256_SECRET");
    if let Some(secret) = &secret
        && secret.len() < MIN_HS256_SECRET_BYTES
    {
        return Err(ConfigError {
            variable: "JWT_HS256_SECRET",
            problem: format!("is {} bytes", secret.len()),
            expected: "a shared secret of at least 32 bytes",
        });
    }
    let arn = env.optional(
        "JWT_HS256_SECRET_ARN",
        "a Secrets Manager secret ARN such as arn:aws:secretsmanager:us-east-1:123456789012:secret:jwt-key-AbCdEf",
        |v| {
            let parts: Vec<&str> = v.splitn(7, ':').collect();
            matches!(parts.as_slice(), ["arn", _, "secretsmanager", _, _, "secret", name] if !name.is_empty())
                .then(|| v.to_owned())
        },
    )?;
    if arn.is_some() && secret.is_some() {
        return Err(ConfigError {
            variable: "JWT_HS256_SECRET_ARN",
            problem: "is set together with JWT_HS256_SECRET".into(),
            expected: "one of the two: the ARN in AWS, the plain value only for local use",
        });
    }
    Ok((secret, arn))
}

/// `JWT_JWKS_FILE`: a JWKS document read (and checked) once, at start-up.
fn read_jwks_file<F: Fn(&str) -> Option<String>>(env: &Env<F>) -> Result<Option<String>, ConfigError> {
    let Some(path) = env.get("JWT_JWKS_FILE") else {
        return Ok(None);
    };
    let unusable = |why: String| ConfigError {
        variable: "JWT_JWKS_FILE",
        problem: format!("is {path:?}, which {why}"),
        expected: "the path of a JWKS JSON document ({\"keys\": [...]})",
    };
    let json = std::fs::read_to_string(&path).map_err(|e| unusable(format!("cannot be read ({e})")))?;
    serde_json::from_str::<jsonwebtoken::jwk::JwkSet>(&json).map_err(|e| unusable(format!("is not a JWKS ({e})")))?;
    Ok(Some(json))
}

/// `scheme://host[:port]` with nothing after it, as browsers send in `Origin`.
fn is_origin(value: &str) -> bool {
    match url::Url::parse(value) {
        Ok(url) => {
            matches!(url.scheme(), "http" | "https")
                && url.host_str().is_some()
                && url.path() == "/"
                && url.query().is_none()
                && url.username().is_empty()
                && !value.ends_with('/')
        }
        Err(_) => false,
    }
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use super::*;

    fn read(vars: &[(&str, &str)]) -> Result<Config, ConfigError> {
        let map: HashMap<String, String> = vars.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
        Config::from_lookup(|name| map.get(name).cloned())
    }

    const GOOD: &[(&str, &str)] = &[
        ("CLIENT_ROLE_ARN", "arn:aws:iam::123456789012:role/ClientRole"),
        ("AWS_REGION", "eu-west-1"),
        ("IOT_ENDPOINT", "abc-ats.iot.eu-west-1.amazonaws.com"),
        ("AUTH_MODE", "none"),
    ];

    fn with(extra: &[(&'static str, &'static str)]) -> Vec<(&'static str, &'static str)> {
        let mut vars: Vec<_> = GOOD
            .iter()
            .filter(|(k, _)| !extra.iter().any(|(e, _)| e == k))
            .copied()
            .collect();
        vars.extend(extra.iter().filter(|(_, v)| !v.is_empty()));
        vars
    }

    #[test]
    fn defaults_apply_when_only_the_required_variables_are_set() {
        let config = read(GOOD).unwrap();
        assert_eq!(config.credential_duration, Duration::from_secs(3600));
        assert_eq!(config.grants, GrantTemplates::parse("allowed/{clientId}", "").unwrap());
        assert_eq!(config.auth, AuthSettings::None);
        assert_eq!(config.cors_allow_origins, CorsOrigins::None);
        assert_eq!(
            config.iot_arns.client("x"),
            "arn:aws:iot:eu-west-1:123456789012:client/x"
        );
    }

    #[test]
    fn each_missing_required_variable_is_named() {
        for name in ["CLIENT_ROLE_ARN", "AWS_REGION", "IOT_ENDPOINT", "AUTH_MODE"] {
            let err = read(&with(&[(name, "")])).unwrap_err();
            assert_eq!(err.variable, name);
            assert!(
                err.to_string().starts_with(&format!("{name} is not set: expected ")),
                "{err}"
            );
        }
    }

    #[test]
    fn malformed_values_are_named_with_what_was_expected() {
        let cases: &[(&str, &str)] = &[
            ("CLIENT_ROLE_ARN", "arn:aws:iam::123:role/x"),
            ("CLIENT_ROLE_ARN", "arn:aws:iam::123456789012:user/x"),
            ("AWS_REGION", "Not A Region"),
            ("IOT_ENDPOINT", "ftp://x"),
            ("CREDENTIAL_DURATION_SECONDS", "899"),
            ("CREDENTIAL_DURATION_SECONDS", "3601"),
            ("CREDENTIAL_DURATION_SECONDS", "an hour"),
            ("TOPIC_PREFIX", "allowed/#"),
            ("TOPIC_PREFIX", "a//b"),
            ("CORS_ALLOW_ORIGINS", "https://a.example/path"),
            ("CORS_ALLOW_ORIGINS", "app.example.com"),
            ("AUTH_MODE", "maybe"),
            ("SUBSCRIBE_TOPICS", "users/{user}"),
            ("PUBLISH_TOPICS", "from/*"),
        ];
        for &(name, value) in cases {
            let err = read(&with(&[(name, value)])).unwrap_err();
            assert_eq!(err.variable, name, "{value:?}");
            assert!(err.to_string().contains(&format!("{value:?}")), "{err}");
        }
    }

    #[test]
    fn optional_variables_are_honoured() {
        let config = read(&with(&[
            ("CREDENTIAL_DURATION_SECONDS", "900"),
            ("TOPIC_PREFIX", "app/push"),
            ("CORS_ALLOW_ORIGINS", "https://a.example, http://localhost:5173/"),
            ("IOT_ENDPOINT", "ws://127.0.0.1:8443"),
        ]))
        .unwrap();
        assert_eq!(config.credential_duration, Duration::from_secs(900));
        assert_eq!(config.grants.subscribe[0].as_str(), "app/push/{clientId}");
        assert_eq!(
            config.cors_allow_origins,
            CorsOrigins::List(vec!["https://a.example".into(), "http://localhost:5173".into()])
        );
        assert_eq!(config.iot_endpoint.websocket_base(), "ws://127.0.0.1:8443");
        assert_eq!(
            read(&with(&[("CORS_ALLOW_ORIGINS", "*")])).unwrap().cors_allow_origins,
            CorsOrigins::Any
        );
    }

    #[test]
    fn a_grants_function_is_named_and_given_a_bounded_timeout() {
        let config = read(&with(&[])).unwrap();
        assert_eq!(
            (config.grants_function, config.grants_function_timeout),
            (None, Duration::from_millis(3000))
        );
        let config = read(&with(&[
            ("GRANTS_FUNCTION", "rooms:live"),
            ("GRANTS_FUNCTION_TIMEOUT_MS", "500"),
        ]))
        .unwrap();
        assert_eq!(config.grants_function.as_deref(), Some("rooms:live"));
        assert_eq!(config.grants_function_timeout, Duration::from_millis(500));
        for (name, value) in [("GRANTS_FUNCTION", "a b"), ("GRANTS_FUNCTION_TIMEOUT_MS", "20000")] {
            assert_eq!(read(&with(&[(name, value)])).unwrap_err().variable, name);
        }
    }

    #[test]
    fn the_ban_policy_is_bans_unless_named_or_turned_off() {
        let config = read(&with(&[])).unwrap();
        assert_eq!(config.bans.policy_name.as_deref(), Some("bans"));
        assert_eq!(config.bans.cache, Duration::from_secs(10));
        let config = read(&with(&[
            ("BAN_POLICY_NAME", "blocked-users"),
            ("BAN_CACHE_SECONDS", "0"),
        ]))
        .unwrap();
        assert_eq!(config.bans.policy_name.as_deref(), Some("blocked-users"));
        assert_eq!(config.bans.cache, Duration::ZERO);
        assert_eq!(
            read(&with(&[("BAN_POLICY_NAME", "none")])).unwrap().bans.policy_name,
            None
        );
        for (name, value) in [("BAN_POLICY_NAME", "a b"), ("BAN_CACHE_SECONDS", "301")] {
            assert_eq!(read(&with(&[(name, value)])).unwrap_err().variable, name);
        }
    }

    #[test]
    fn jwt_mode_needs_an_issuer_and_a_key_source() {
        let err = read(&with(&[("AUTH_MODE", "jwt")])).unwrap_err();
        assert_eq!(err.variable, "JWT_ISSUER");
        let err = read(&with(&[("AUTH_MODE", "jwt"), ("JWT_ISSUER", "https://issuer.example")])).unwrap_err();
        assert_eq!(err.variable, "JWT_JWKS_URL");
        let err = read(&with(&[
            ("AUTH_MODE", "jwt"),
            ("JWT_ISSUER", "i"),
            ("JWT_HS256_SECRET", "short"),
        ]))
        .unwrap_err();
        assert_eq!(err.variable, "JWT_HS256_SECRET");
        let config = read(&with(&[
            ("AUTH_MODE", "jwt"),
            ("JWT_ISSUER", "https://issuer.example"),
            ("JWT_AUDIENCE", "my-app"),
            ("JWT_JWKS_URL", "https://issuer.example/.well-known/jwks.json"),
        ]))
        .unwrap();
        let AuthSettings::Jwt(jwt) = config.auth else {
            panic!("jwt mode")
        };
        assert_eq!(jwt.audience.as_deref(), Some("my-app"));
        assert_eq!(jwt.leeway, Duration::from_secs(30));
    }

    #[test]
    fn too_many_grants_stop_start_up() {
        let many = (0..12)
            .map(|i| format!("shared/topic-{i}/{{sub}}"))
            .collect::<Vec<_>>()
            .join(",");
        let vars = vec![
            ("CLIENT_ROLE_ARN", "arn:aws:iam::123456789012:role/ClientRole"),
            ("AWS_REGION", "eu-west-1"),
            ("IOT_ENDPOINT", "abc-ats.iot.eu-west-1.amazonaws.com"),
            ("AUTH_MODE", "none"),
            ("SUBSCRIBE_TOPICS", many.as_str()),
        ];
        let err = read(&vars).unwrap_err();
        assert_eq!(err.variable, "SUBSCRIBE_TOPICS");
        assert!(err.to_string().contains("2048"), "{err}");
    }

    #[test]
    fn the_region_falls_back_to_aws_default_region() {
        let mut vars = with(&[("AWS_REGION", "")]);
        vars.push(("AWS_DEFAULT_REGION", "ap-south-1"));
        assert_eq!(read(&vars).unwrap().region, "ap-south-1");
    }
}
