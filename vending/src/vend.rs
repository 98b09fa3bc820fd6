//! The vend path's decisions, apart from its I/O: [`plan`] decides the client ID
//! (new, or the one a resume token names), the grants, the session policy, the
//! source identity and the next resume token; [`render`] turns the credentials
//! STS issued into the response. Both are functions of their arguments (time is
//! passed in), so they are tested without a network; the handler in [`crate::api`]
//! reads the request, calls STS in between, and writes the answer.
//!
//! Not here: authentication ([`crate::auth`]), the STS call ([`crate::issuer`]),
//! status codes and error bodies ([`crate::api::ApiError`]).

use std::time::{Duration, SystemTime};

use serverless_websockets_core::claims::Narrowing;
use serverless_websockets_core::client_id::ClientId;
use serverless_websockets_core::grants::GrantError;
use serverless_websockets_core::policy::{Grants, SessionPolicyError, session_policy};
use serverless_websockets_core::presign::{DEFAULT_EXPIRES, presign};
use serverless_websockets_core::resume::{ResumeClaims, ResumeError, ResumeKeys};
use serverless_websockets_core::topic::TopicFilter;
use serverless_websockets_core::wire::{ResumeToken, Vended, VendedCredentials, VendedGrants, format_iso8601};

use crate::api::ApiError;
use crate::auth::Caller;
use crate::config::Config;
use crate::issuer::{IssueRequest, TemporaryCredentials, source_identity};

/// What one vend will issue, decided before STS is called.
#[derive(Debug)]
pub struct Plan {
    pub client_id: ClientId,
    /// The client ID came from a resume token.
    pub resumed: bool,
    pub grants: Grants,
    /// The session policy, as STS will get it.
    pub policy: String,
    pub sub: Option<String>,
    pub source_identity: Option<String>,
    /// The resume token the answer carries, and when it expires (Unix seconds).
    pub resume_token: String,
    pub resume_expires: u64,
}

/// Decides a vend for `caller`, whose request body is `body`, at `now`, from
/// the token's claims alone ([`start`] then [`finish`]).
pub fn plan(
    config: &Config,
    caller: &Caller,
    body: Option<&serde_json::Map<String, serde_json::Value>>,
    now: SystemTime,
) -> Result<Plan, ApiError> {
    let started = start(config, caller, body, now)?;
    finish(config, caller, started, None)
}

/// What a vend is about before its grants: the client ID (a resume keeps the
/// one its token names), since when it exists, and the narrowing asked for.
#[derive(Debug, Clone)]
pub struct Start {
    pub client_id: ClientId,
    pub first_issued_at: u64,
    pub narrow: Option<Narrowing>,
    pub resumed: bool,
    now: u64,
}

/// The first half of [`plan`]: the client ID and the narrowing.
pub fn start(
    config: &Config,
    caller: &Caller,
    body: Option<&serde_json::Map<String, serde_json::Value>>,
    now: SystemTime,
) -> Result<Start, ApiError> {
    let keys = resume_keys(config)?;
    let now = unix_seconds(now);
    let sub = caller.sub.as_deref();
    let resumed = match body.and_then(|b| b.get("resumeToken")) {
        None => None,
        Some(serde_json::Value::String(token)) => Some(resume(keys, token, sub, now)?),
        Some(_) => return Err(ApiError::Resume(ResumeError::Invalid)),
    };
    let is_resume = resumed.is_some();
    // A resumed client ID keeps the day it was first issued: its chain of
    // tokens ends at that plus the absolute lifetime, however often it resumes.
    let (client_id, first_issued_at, resumed_narrow) = resumed.unwrap_or_else(|| (ClientId::generate(), now, None));
    // A narrowing in the body replaces the one the resume token carries.
    let narrow = match body.and_then(|b| b.get("claims")) {
        None => resumed_narrow,
        Some(value) => Some(narrowing(value)?),
    };
    Ok(Start {
        client_id,
        first_issued_at,
        narrow,
        resumed: is_resume,
        now,
    })
}

fn resume_keys(config: &Config) -> Result<&ResumeKeys, ApiError> {
    config
        .resume
        .keys
        .as_ref()
        .ok_or_else(|| ApiError::Internal("the resume keys were not fetched at start-up".into()))
}

/// The second half of [`plan`]: the grants from `claims` (the grants
/// function's, merged into the token's) or else the token's, the session
/// policy, and the resume token.
pub fn finish(
    config: &Config,
    caller: &Caller,
    started: Start,
    claims: Option<&serde_json::Map<String, serde_json::Value>>,
) -> Result<Plan, ApiError> {
    let keys = resume_keys(config)?;
    let Start {
        client_id,
        first_issued_at,
        narrow,
        resumed,
        now,
    } = started;
    let sub = caller.sub.as_deref();
    let claims = config
        .grants
        .claim_values(claims.or(caller.claims.as_deref()), narrow.as_ref())?;
    let grants = config.grants.expand_with(&client_id, sub, &claims)?;
    let policy = session_policy(&config.iot_arns, &client_id, &grants).map_err(|e| match e {
        SessionPolicyError::TooLarge { len } => ApiError::Grant(GrantError::PolicyTooLarge { len }),
    })?;
    let resume_expires = now
        .saturating_add(config.resume.ttl.as_secs())
        .min(first_issued_at.saturating_add(config.resume.max_lifetime.as_secs()));
    let resume_token = keys.issue(&ResumeClaims {
        client_id: client_id.clone(),
        sub: caller.sub.clone(),
        issued_at: now,
        expires_at: resume_expires,
        first_issued_at,
        narrow,
    });
    Ok(Plan {
        source_identity: sub.map(source_identity),
        sub: caller.sub.clone(),
        client_id,
        resumed,
        grants,
        policy,
        resume_token,
        resume_expires,
    })
}

impl Plan {
    /// What STS is asked for.
    pub fn issue_request<'a>(&'a self, config: &Config) -> IssueRequest<'a> {
        IssueRequest {
            client_id: &self.client_id,
            policy: &self.policy,
            duration: config.credential_duration,
            source_identity: self.source_identity.as_deref(),
        }
    }

    /// The one line per vend that answers "who got credentials"
    /// (docs/operating.md); `outcome` is also what the template's metric filters count.
    pub fn log_issued(&self, expiration: &str) {
        tracing::info!(
            outcome = "issued",
            client_id = %self.client_id,
            sub = self.sub.as_deref().unwrap_or("-"),
            source_identity = self.source_identity.as_deref().unwrap_or("-"),
            grants = self.grants.subscribe.len() + self.grants.publish.len(),
            expiration = %expiration,
            resumed = self.resumed,
            "issued credentials"
        );
    }
}

/// The answer for `plan` once STS issued `credentials`: the credentials, a URL
/// presigned at `now`, the grants and the resume token.
pub fn render(
    config: &Config,
    plan: &Plan,
    credentials: TemporaryCredentials,
    now: SystemTime,
) -> Result<Vended, ApiError> {
    let url = presign(
        &config.iot_endpoint,
        &config.region,
        &credentials.to_sdk(),
        now,
        DEFAULT_EXPIRES,
    )
    .map_err(|e| ApiError::Internal(format!("presign: {e}")))?;
    let as_strings = |filters: &[TopicFilter]| filters.iter().map(|f| f.as_str().to_owned()).collect();
    Ok(Vended {
        client_id: plan.client_id.as_str().to_owned(),
        region: config.region.clone(),
        endpoint: config.iot_endpoint.websocket_base(),
        url,
        topic: config.grants.own_topic(&plan.grants, &plan.client_id).to_owned(),
        grants: VendedGrants {
            subscribe: as_strings(&plan.grants.subscribe),
            publish: as_strings(&plan.grants.publish),
        },
        credentials: VendedCredentials {
            expiration: format_iso8601(credentials.expiration),
            access_key_id: credentials.access_key_id,
            secret_access_key: credentials.secret_access_key,
            session_token: credentials.session_token,
        },
        resume_token: Some(ResumeToken(plan.resume_token.clone())),
        resume_expiration: Some(format_iso8601(
            SystemTime::UNIX_EPOCH + Duration::from_secs(plan.resume_expires),
        )),
    })
}

fn unix_seconds(time: SystemTime) -> u64 {
    time.duration_since(SystemTime::UNIX_EPOCH).map_or(0, |d| d.as_secs())
}

/// The client ID a resume token names, when its first token was issued, and
/// the narrowing it carries, if the token is genuine, unexpired, and was issued
/// to this caller's `sub` (or to no `sub` when there is none).
fn resume(
    keys: &ResumeKeys,
    token: &str,
    sub: Option<&str>,
    now: u64,
) -> Result<(ClientId, u64, Option<Narrowing>), ApiError> {
    let claims = keys.verify(token, now).map_err(ApiError::Resume)?;
    if claims.sub.as_deref() != sub {
        return Err(ApiError::ResumeForbidden {
            client_id: claims.client_id.as_str().to_owned(),
        });
    }
    Ok((claims.client_id, claims.first_issued_at, claims.narrow))
}

/// The body's `claims`: `{"NAME": ["value", …]}` (a single string is one value).
fn narrowing(value: &serde_json::Value) -> Result<Narrowing, ApiError> {
    let invalid = || ApiError::InvalidNarrowing;
    let object = value.as_object().ok_or_else(invalid)?;
    object
        .iter()
        .map(|(claim, values)| {
            let values = match values {
                serde_json::Value::String(one) => vec![one.clone()],
                serde_json::Value::Array(many) => many
                    .iter()
                    .map(|v| v.as_str().map(str::to_owned).ok_or_else(invalid))
                    .collect::<Result<_, _>>()?,
                _ => return Err(invalid()),
            };
            Ok((claim.clone(), values))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config() -> Config {
        Config::from_lookup(|name| match name {
            "CLIENT_ROLE_ARN" => Some("arn:aws:iam::123456789012:role/client".into()),
            "AWS_REGION" => Some("us-east-1".into()),
            "IOT_ENDPOINT" => Some("abc-ats.iot.us-east-1.amazonaws.com".into()),
            "SUBSCRIBE_TOPICS" => Some("allowed/{clientId},users/{sub}".into()),
            "AUTH_MODE" => Some("jwt".into()),
            "JWT_ISSUER" => Some("https://issuer.example".into()),
            "JWT_HS256_SECRET" => Some("a-test-secret-of-at-least-thirty-two-bytes".into()),
            _ => None,
        })
        .unwrap()
    }

    fn caller(sub: &str) -> Caller {
        Caller {
            sub: Some(sub.into()),
            expires_at: None,
            claims: None,
        }
    }

    fn body(resume_token: &str) -> serde_json::Map<String, serde_json::Value> {
        let mut body = serde_json::Map::new();
        body.insert("resumeToken".into(), resume_token.into());
        body
    }

    #[test]
    fn a_fresh_vend_gets_a_new_client_id_its_own_grants_and_a_resume_token_for_it() {
        let config = config();
        let now = SystemTime::now();
        let plan = plan(&config, &caller("alice"), None, now).unwrap();
        assert!(!plan.resumed);
        let subscribe: Vec<_> = plan.grants.subscribe.iter().map(|f| f.as_str().to_owned()).collect();
        assert_eq!(
            subscribe,
            [format!("allowed/{}", plan.client_id), "users/alice".to_owned()]
        );
        assert!(plan.policy.contains(&format!("client/{}", plan.client_id)));
        assert_eq!(plan.source_identity.as_deref(), Some("alice"));
        let again = super::plan(&config, &caller("alice"), None, now).unwrap();
        assert_ne!(again.client_id, plan.client_id);
    }

    #[test]
    fn a_resume_token_keeps_its_client_id_for_the_same_caller_only() {
        let config = config();
        let now = SystemTime::now();
        let first = plan(&config, &caller("alice"), None, now).unwrap();
        let resumed = plan(&config, &caller("alice"), Some(&body(&first.resume_token)), now).unwrap();
        assert!(resumed.resumed);
        assert_eq!(resumed.client_id, first.client_id);
        let stolen = plan(&config, &caller("mallory"), Some(&body(&first.resume_token)), now).unwrap_err();
        assert!(matches!(stolen, ApiError::ResumeForbidden { .. }));
        let forged = plan(&config, &caller("alice"), Some(&body("v1.forged")), now).unwrap_err();
        assert!(matches!(forged, ApiError::Resume(_)));
    }

    #[test]
    fn resuming_again_and_again_ends_at_the_absolute_lifetime_of_the_first_token() {
        let mut config = config();
        config.resume.ttl = Duration::from_secs(600);
        config.resume.max_lifetime = Duration::from_secs(1_000);
        let start = SystemTime::now();
        let at = |secs: u64| start + Duration::from_secs(secs);
        let first = plan(&config, &caller("alice"), None, start).unwrap();
        // Each resume renews the token, but never past start + 1000 s.
        let mut token = first.resume_token;
        for (when, expires) in [(500, 1_000), (900, 1_000), (990, 1_000)] {
            let resumed = plan(&config, &caller("alice"), Some(&body(&token)), at(when)).unwrap();
            assert_eq!(resumed.client_id, first.client_id);
            assert_eq!(
                resumed.resume_expires,
                unix_seconds(at(expires)),
                "resumed at +{when} s"
            );
            token = resumed.resume_token;
        }
        let ended = plan(&config, &caller("alice"), Some(&body(&token)), at(1_000)).unwrap_err();
        assert!(matches!(ended, ApiError::Resume(ResumeError::Expired(_))), "{ended:?}");
    }

    fn caller_with(sub: &str, claims: serde_json::Value) -> Caller {
        Caller {
            sub: Some(sub.into()),
            expires_at: None,
            claims: claims.as_object().cloned().map(std::sync::Arc::new),
        }
    }

    fn rooms_config() -> Config {
        let mut config = config();
        config.grants = serverless_websockets_core::grants::GrantTemplates::parse(
            "allowed/{clientId},rooms/{claims.rooms}/+",
            "rooms/{claims.rooms}/{clientId}",
        )
        .unwrap();
        config
    }

    fn names(filters: &[TopicFilter]) -> Vec<String> {
        filters.iter().map(|f| f.as_str().to_owned()).collect()
    }

    #[test]
    fn claims_become_grants_and_a_body_narrows_them_to_values_the_token_carries() {
        let config = rooms_config();
        let now = SystemTime::now();
        let alice = caller_with("alice", serde_json::json!({"rooms": ["42", "7", "9"]}));
        let all = plan(&config, &alice, None, now).unwrap();
        let id = all.client_id.as_str().to_owned();
        assert_eq!(
            names(&all.grants.subscribe),
            [
                format!("allowed/{id}"),
                "rooms/42/+".into(),
                "rooms/7/+".into(),
                "rooms/9/+".into()
            ]
        );
        assert_eq!(
            names(&all.grants.publish),
            [
                format!("rooms/42/{id}"),
                format!("rooms/7/{id}"),
                format!("rooms/9/{id}")
            ]
        );
        let mut narrowing = serde_json::Map::new();
        narrowing.insert("claims".into(), serde_json::json!({"rooms": ["7"]}));
        let narrowed = plan(&config, &alice, Some(&narrowing), now).unwrap();
        assert_eq!(names(&narrowed.grants.subscribe)[1..], ["rooms/7/+".to_owned()]);
        // The resume keeps the narrowing, and re-reads the token: a room gone is gone.
        let fewer = caller_with("alice", serde_json::json!({"rooms": ["42"]}));
        let resumed = plan(&config, &fewer, Some(&body(&narrowed.resume_token)), now);
        assert!(
            matches!(resumed, Err(ApiError::Grant(GrantError::ClaimNotInToken { .. }))),
            "{resumed:?}"
        );
        let kept = plan(&config, &alice, Some(&body(&narrowed.resume_token)), now).unwrap();
        assert_eq!(names(&kept.grants.subscribe)[1..], ["rooms/7/+".to_owned()]);
        narrowing.insert("claims".into(), serde_json::json!({"rooms": ["5"]}));
        assert!(matches!(
            plan(&config, &alice, Some(&narrowing), now),
            Err(ApiError::Grant(GrantError::ClaimNotInToken { .. }))
        ));
        narrowing.insert("claims".into(), serde_json::json!({"rooms": 5}));
        assert!(matches!(
            plan(&config, &alice, Some(&narrowing), now),
            Err(ApiError::InvalidNarrowing)
        ));
    }

    #[test]
    fn a_token_in_too_many_rooms_is_told_to_narrow_and_a_bad_room_names_the_claim() {
        let config = rooms_config();
        let now = SystemTime::now();
        let rooms: Vec<String> = (0..300).map(|i| format!("room-{i}")).collect();
        let busy = caller_with("alice", serde_json::json!({ "rooms": rooms }));
        let refused = plan(&config, &busy, None, now).unwrap_err();
        assert!(
            matches!(
                refused,
                ApiError::Grant(GrantError::TooManyGrants { .. } | GrantError::PolicyTooLarge { .. })
            ),
            "{refused:?}"
        );
        let mut body = serde_json::Map::new();
        body.insert("claims".into(), serde_json::json!({"rooms": ["room-1", "room-2"]}));
        assert!(plan(&config, &busy, Some(&body), now).is_ok());
        let sneaky = caller_with("mallory", serde_json::json!({"rooms": ["#"]}));
        assert!(matches!(
            plan(&config, &sneaky, None, now),
            Err(ApiError::Grant(GrantError::BadClaim { claim, .. })) if claim == "rooms"
        ));
    }

    #[test]
    fn the_answer_carries_the_credentials_a_presigned_url_and_the_planned_grants() {
        let config = config();
        let now = SystemTime::now();
        let plan = plan(&config, &caller("alice"), None, now).unwrap();
        let credentials = TemporaryCredentials {
            access_key_id: "ASIATEST".into(),
            secret_access_key: "secret".into(),
            session_token: "token".into(),
            expiration: now + Duration::from_secs(3600),
        };
        let vended = render(&config, &plan, credentials, now).unwrap();
        assert_eq!(vended.client_id, plan.client_id.as_str());
        assert_eq!(vended.topic, format!("allowed/{}", plan.client_id));
        assert!(
            vended
                .url
                .starts_with("wss://abc-ats.iot.us-east-1.amazonaws.com/mqtt?")
        );
        assert!(vended.url.contains("X-Amz-Security-Token=token"));
        assert_eq!(vended.resume_token.map(|t| t.0), Some(plan.resume_token.clone()));
    }
}
