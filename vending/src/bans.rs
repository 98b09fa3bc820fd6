//! The deny list: the client role's ban policy, which the vending API reads too.
//!
//! A ban is a `Deny` in one inline policy on the client role (`bans` unless
//! `BAN_POLICY_NAME` says otherwise), conditioned on `aws:SourceIdentity` (one
//! user) or `aws:TokenIssueTime` (every session issued before a moment). AWS
//! applies it to every live session of the role; this module makes the vending
//! API refuse, with a clear `403 Banned`, a caller that policy would deny, instead
//! of handing out credentials that cannot connect.
//!
//! Why the list lives there and nowhere else: it is the one place AWS itself
//! enforces, so the API and IoT cannot disagree; the operator changes it with
//! one `aws iam put-role-policy` (or `serverless-websockets ban`), no deploy; and
//! it needs no table or parameter of its own.
//!
//! The document is read with `iam:GetRolePolicy` and kept for `BAN_CACHE_SECONDS`
//! (10 by default): one read per instance per period, whatever the request rate
//! (IAM's API is not made for a read per request). Credentials vended inside
//! that window to a user just banned still cannot connect: the role's policy
//! denies them. When IAM cannot be read, the last document read is used (and a
//! warning logged); with none read yet, the request is refused as unavailable.

use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use async_trait::async_trait;
use aws_sdk_iam::error::{ProvideErrorMetadata, SdkError};

use serverless_websockets_core::arn::{IotArns, RoleArn};
use serverless_websockets_core::client_id::ClientId;
use serverless_websockets_core::policy::{Context, Evaluation, PolicyDocument};

use crate::issuer::{StsError, classify};

/// The inline policy on the client role that holds the bans, by default.
pub const DEFAULT_BAN_POLICY_NAME: &str = "bans";
/// How long a read of the ban policy is used, by default.
pub const DEFAULT_BAN_CACHE_SECS: u64 = 10;
/// The longest `BAN_CACHE_SECONDS` accepted: a ban must bite within minutes.
pub const MAX_BAN_CACHE_SECS: u64 = 300;

/// Where the ban policy's text comes from: IAM, or a test's fixed answer.
#[async_trait]
pub trait BanSource: Send + Sync + 'static {
    /// The policy document's JSON, or `None` when the role has no such policy.
    async fn fetch(&self) -> Result<Option<String>, StsError>;
}

/// `iam:GetRolePolicy` on the client role.
#[derive(Debug, Clone)]
pub struct RolePolicySource {
    client: aws_sdk_iam::Client,
    role_name: String,
    policy_name: String,
}

impl RolePolicySource {
    pub fn new(sdk_config: &aws_config::SdkConfig, role: &RoleArn, policy_name: &str) -> Self {
        Self {
            client: aws_sdk_iam::Client::new(sdk_config),
            role_name: role.name().to_owned(),
            policy_name: policy_name.to_owned(),
        }
    }
}

#[async_trait]
impl BanSource for RolePolicySource {
    async fn fetch(&self) -> Result<Option<String>, StsError> {
        let answer = self
            .client
            .get_role_policy()
            .role_name(&self.role_name)
            .policy_name(&self.policy_name)
            .send()
            .await;
        match answer {
            Ok(output) => decode_policy_document(output.policy_document())
                .map(Some)
                .ok_or_else(|| StsError::Unavailable("the ban policy is not UTF-8 once decoded".into())),
            Err(SdkError::ServiceError(service)) if service.err().is_no_such_entity_exception() => Ok(None),
            Err(SdkError::ServiceError(service)) => Err(classify(
                service.err().code(),
                service.err().message(),
                service.raw().status().as_u16(),
            )),
            Err(SdkError::TimeoutError(_)) => Err(StsError::Timeout("reading the ban policy from IAM".into())),
            Err(err) => Err(StsError::Unavailable(format!(
                "reading the ban policy from IAM: {err:?}"
            ))),
        }
    }
}

/// A policy document as IAM's `GetRolePolicy` returns it, URL-encoded (RFC
/// 3986), decoded; `None` when the bytes are not UTF-8.
pub fn decode_policy_document(encoded: &str) -> Option<String> {
    percent_encoding::percent_decode_str(encoded)
        .decode_utf8()
        .ok()
        .map(std::borrow::Cow::into_owned)
}

/// The ban policy as last read, and when.
struct Cached {
    at: Instant,
    policy: Option<Arc<PolicyDocument>>,
}

/// The vending API's view of the ban policy.
pub struct BanList {
    source: Arc<dyn BanSource>,
    role_arn: String,
    iot_arns: IotArns,
    ttl: Duration,
    cache: tokio::sync::Mutex<Option<Cached>>,
}

impl std::fmt::Debug for BanList {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BanList")
            .field("role_arn", &self.role_arn)
            .field("ttl", &self.ttl)
            .finish_non_exhaustive()
    }
}

impl BanList {
    pub fn new(source: Arc<dyn BanSource>, role: &RoleArn, iot_arns: IotArns, ttl: Duration) -> Self {
        Self {
            source,
            role_arn: role.as_str().to_owned(),
            iot_arns,
            ttl,
            cache: tokio::sync::Mutex::new(None),
        }
    }

    /// The ban list `config` asks for, read from IAM with `sdk_config`'s
    /// credentials and endpoint; `None` when `BAN_POLICY_NAME` is `none`.
    pub fn for_config(config: &crate::config::Config, sdk_config: &aws_config::SdkConfig) -> Option<Self> {
        let name = config.bans.policy_name.as_deref()?;
        let source = RolePolicySource::new(sdk_config, &config.client_role_arn, name);
        Some(Self::new(
            Arc::new(source),
            &config.client_role_arn,
            config.iot_arns.clone(),
            config.bans.cache,
        ))
    }

    /// `Err(StsError::Banned)` when the ban policy denies a session for this
    /// client and source identity issued `now`: what IoT would do with it.
    pub async fn check(
        &self,
        client_id: &ClientId,
        source_identity: Option<&str>,
        now: SystemTime,
    ) -> Result<(), StsError> {
        let Some(policy) = self.policy().await? else {
            return Ok(());
        };
        let issued = now.duration_since(SystemTime::UNIX_EPOCH).map_or(0, |d| d.as_secs());
        let context = Context {
            source_identity,
            token_issue_time: Some(issued),
            principal_arn: Some(&self.role_arn),
        };
        let evaluation = Evaluation {
            identity: std::slice::from_ref(&*policy),
            context: Some(&context),
            ..Evaluation::default()
        };
        match evaluation.authorize("iot:Connect", &self.iot_arns.client(client_id.as_str())) {
            Err(denial) if denial.explicit => Err(StsError::Banned {
                source_identity: source_identity.map(str::to_owned),
            }),
            _ => Ok(()),
        }
    }

    /// The policy, read again once the cached read is `ttl` old. One read at a
    /// time: concurrent requests wait for it rather than each asking IAM.
    async fn policy(&self) -> Result<Option<Arc<PolicyDocument>>, StsError> {
        let mut cache = self.cache.lock().await;
        if let Some(cached) = cache.as_ref().filter(|c| c.at.elapsed() < self.ttl) {
            return Ok(cached.policy.clone());
        }
        match self.read().await {
            Ok(policy) => {
                *cache = Some(Cached {
                    at: Instant::now(),
                    policy: policy.clone(),
                });
                Ok(policy)
            }
            Err(err) => match cache.as_ref() {
                Some(stale) => {
                    tracing::warn!(error = %err, "the ban policy could not be read; using the last one read");
                    Ok(stale.policy.clone())
                }
                None => Err(err),
            },
        }
    }

    async fn read(&self) -> Result<Option<Arc<PolicyDocument>>, StsError> {
        let Some(text) = self.source.fetch().await? else {
            return Ok(None);
        };
        PolicyDocument::parse(&text)
            .map(|policy| Some(Arc::new(policy)))
            .map_err(|e| StsError::Misconfigured {
                code: "MalformedBanPolicy".into(),
                message: format!("the client role's ban policy is not a policy document: {e}"),
            })
    }
}

/// The `Sid` of the statement [`edit`] maintains in the ban policy.
pub const BANNED_USERS_SID: &str = "BannedUsers";

/// IAM's limit on all of a role's inline policies together, in characters
/// (whitespace not counted): what bounds how many users one policy can ban.
pub const MAX_ROLE_INLINE_POLICY_CHARS: usize = 10_240;

/// Why the ban policy cannot be edited.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum EditError {
    #[error("the ban policy on the role is not a JSON policy document: {0}")]
    NotAPolicy(String),
    #[error(
        "the ban policy would be {chars} characters, over IAM's {MAX_ROLE_INLINE_POLICY_CHARS} for a role's inline policies; ban at your identity provider (no new tokens) and lift bans whose tokens have expired"
    )]
    TooLarge { chars: usize },
}

/// The ban policy with the source identities `ban` added to, and `lift` taken
/// from, its `BannedUsers` statement (a `Deny` of `iot:*` conditioned on
/// `aws:SourceIdentity`); every other statement kept as it is. `None` when
/// nothing is left: delete the policy.
pub fn edit(current: Option<&str>, ban: &[String], lift: &[String]) -> Result<Option<String>, EditError> {
    use serde_json::{Value, json};
    let mut document = match current {
        Some(text) => serde_json::from_str::<Value>(text).map_err(|e| EditError::NotAPolicy(e.to_string()))?,
        None => json!({"Version": "2012-10-17", "Statement": []}),
    };
    let statements = match document.get_mut("Statement") {
        Some(Value::Array(list)) => list,
        Some(one @ Value::Object(_)) => {
            *one = Value::Array(vec![one.take()]);
            one.as_array_mut()
                .ok_or_else(|| EditError::NotAPolicy("Statement".into()))?
        }
        _ => return Err(EditError::NotAPolicy("no Statement".into())),
    };
    let ours = statements
        .iter()
        .position(|s| s.get("Sid").and_then(Value::as_str) == Some(BANNED_USERS_SID));
    let mut banned: Vec<String> = ours
        .and_then(|i| statements[i].pointer("/Condition/StringEquals/aws:SourceIdentity"))
        .map(|v| match v {
            Value::String(one) => vec![one.clone()],
            Value::Array(list) => list.iter().filter_map(|v| v.as_str().map(str::to_owned)).collect(),
            _ => Vec::new(),
        })
        .unwrap_or_default();
    for id in ban {
        if !banned.contains(id) {
            banned.push(id.clone());
        }
    }
    banned.retain(|id| !lift.contains(id));
    let statement = json!({
        "Sid": BANNED_USERS_SID, "Effect": "Deny", "Action": "iot:*", "Resource": "*",
        "Condition": {"StringEquals": {"aws:SourceIdentity": banned}},
    });
    match (ours, banned.is_empty()) {
        (Some(i), true) => {
            statements.remove(i);
        }
        (Some(i), false) => statements[i] = statement,
        (None, false) => statements.push(statement),
        (None, true) => {}
    }
    if statements.is_empty() {
        return Ok(None);
    }
    let text = document.to_string();
    let chars = text.chars().filter(|c| !c.is_whitespace()).count();
    if chars > MAX_ROLE_INLINE_POLICY_CHARS {
        return Err(EditError::TooLarge { chars });
    }
    Ok(Some(text))
}

#[cfg(test)]
mod tests {
    use std::sync::Mutex;
    use std::sync::atomic::{AtomicUsize, Ordering};

    use super::*;

    struct Fixed {
        text: Mutex<Result<Option<String>, StsError>>,
        reads: AtomicUsize,
    }

    #[async_trait]
    impl BanSource for Fixed {
        async fn fetch(&self) -> Result<Option<String>, StsError> {
            self.reads.fetch_add(1, Ordering::SeqCst);
            self.text.lock().unwrap().clone()
        }
    }

    fn list(text: Result<Option<String>, StsError>, ttl: Duration) -> (BanList, Arc<Fixed>) {
        let source = Arc::new(Fixed {
            text: Mutex::new(text),
            reads: AtomicUsize::new(0),
        });
        let role = RoleArn::parse("arn:aws:iam::123456789012:role/serverless-websockets-client").unwrap();
        let arns = IotArns::for_role(&role, "us-east-1").unwrap();
        (BanList::new(source.clone(), &role, arns, ttl), source)
    }

    fn deny(condition: &str) -> Result<Option<String>, StsError> {
        Ok(Some(format!(
            r#"{{"Version":"2012-10-17","Statement":[{{"Effect":"Deny","Action":"iot:*","Resource":"*","Condition":{condition}}}]}}"#
        )))
    }

    fn id() -> ClientId {
        ClientId::generate()
    }

    #[tokio::test]
    async fn a_source_identity_the_policy_names_is_banned_and_others_are_not() {
        let (bans, _) = list(
            deny(r#"{"StringEquals":{"aws:SourceIdentity":["alice"]}}"#),
            Duration::ZERO,
        );
        let now = SystemTime::now();
        assert!(matches!(
            bans.check(&id(), Some("alice"), now).await,
            Err(StsError::Banned { source_identity: Some(s) }) if s == "alice"
        ));
        bans.check(&id(), Some("bob"), now).await.unwrap();
        bans.check(&id(), None, now).await.unwrap();
    }

    #[tokio::test]
    async fn revoking_sessions_issued_before_a_moment_does_not_refuse_new_ones() {
        let (bans, _) = list(
            deny(r#"{"DateLessThan":{"aws:TokenIssueTime":"2026-01-01T00:00:00Z"}}"#),
            Duration::ZERO,
        );
        bans.check(&id(), Some("alice"), SystemTime::now()).await.unwrap();
        let before = SystemTime::UNIX_EPOCH + Duration::from_secs(1_700_000_000);
        assert!(bans.check(&id(), Some("alice"), before).await.is_err());
    }

    #[tokio::test]
    async fn no_policy_bans_nobody() {
        let (bans, _) = list(Ok(None), Duration::ZERO);
        bans.check(&id(), Some("alice"), SystemTime::now()).await.unwrap();
    }

    #[tokio::test]
    async fn one_read_serves_every_request_until_it_is_older_than_the_ttl() {
        let (bans, source) = list(
            deny(r#"{"StringEquals":{"aws:SourceIdentity":"x"}}"#),
            Duration::from_secs(60),
        );
        for _ in 0..5 {
            bans.check(&id(), Some("bob"), SystemTime::now()).await.unwrap();
        }
        assert_eq!(source.reads.load(Ordering::SeqCst), 1);
        let (uncached, source) = list(Ok(None), Duration::ZERO);
        for _ in 0..3 {
            uncached.check(&id(), None, SystemTime::now()).await.unwrap();
        }
        assert_eq!(source.reads.load(Ordering::SeqCst), 3);
    }

    #[tokio::test]
    async fn an_unreadable_policy_falls_back_to_the_last_read_else_refuses_as_unavailable() {
        let (bans, source) = list(
            deny(r#"{"StringEquals":{"aws:SourceIdentity":"alice"}}"#),
            Duration::ZERO,
        );
        bans.check(&id(), Some("bob"), SystemTime::now()).await.unwrap();
        *source.text.lock().unwrap() = Err(StsError::Unavailable("IAM down".into()));
        assert!(matches!(
            bans.check(&id(), Some("alice"), SystemTime::now()).await,
            Err(StsError::Banned { .. })
        ));
        let (never, _) = list(Err(StsError::Unavailable("IAM down".into())), Duration::ZERO);
        assert!(matches!(
            never.check(&id(), Some("bob"), SystemTime::now()).await,
            Err(StsError::Unavailable(_))
        ));
    }

    #[tokio::test]
    async fn an_edited_policy_bans_exactly_who_it_names() {
        let ids = |v: &[&str]| v.iter().map(|s| (*s).to_owned()).collect::<Vec<_>>();
        let once = edit(None, &ids(&["alice", "bob"]), &[]).unwrap();
        let (bans, _) = list(Ok(once.clone()), Duration::ZERO);
        for banned in ["alice", "bob"] {
            assert!(bans.check(&id(), Some(banned), SystemTime::now()).await.is_err());
        }
        bans.check(&id(), Some("carol"), SystemTime::now()).await.unwrap();
        let lifted = edit(once.as_deref(), &ids(&["alice"]), &ids(&["bob"]))
            .unwrap()
            .unwrap();
        assert!(lifted.contains("alice") && !lifted.contains("bob"), "{lifted}");
        assert_eq!(lifted.matches("alice").count(), 1, "banning twice lists once");
        assert_eq!(
            edit(Some(&lifted), &[], &ids(&["alice"])).unwrap(),
            None,
            "empty: delete it"
        );
    }

    #[test]
    fn editing_keeps_the_operators_other_statements_and_refuses_what_iam_would() {
        let revoke = r#"{"Version":"2012-10-17","Statement":{"Effect":"Deny","Action":"*","Resource":"*","Condition":{"DateLessThan":{"aws:TokenIssueTime":"2026-01-01T00:00:00Z"}}}}"#;
        let edited = edit(Some(revoke), &["alice".into()], &[]).unwrap().unwrap();
        assert!(
            edited.contains("aws:TokenIssueTime") && edited.contains("alice"),
            "{edited}"
        );
        let kept = edit(Some(&edited), &[], &["alice".into()]).unwrap().unwrap();
        assert!(
            kept.contains("aws:TokenIssueTime") && !kept.contains("BannedUsers"),
            "{kept}"
        );
        assert!(matches!(edit(Some("[1]"), &[], &[]), Err(EditError::NotAPolicy(_))));
        let many: Vec<String> = (0..200).map(|i| format!("user-{i:0>56}")).collect();
        assert!(matches!(edit(None, &many, &[]), Err(EditError::TooLarge { .. })));
    }

    #[tokio::test]
    async fn a_malformed_ban_policy_is_a_misconfiguration_not_a_pass() {
        let (bans, _) = list(Ok(Some("{not json".into())), Duration::ZERO);
        assert!(matches!(
            bans.check(&id(), Some("bob"), SystemTime::now()).await,
            Err(StsError::Misconfigured { .. })
        ));
    }
}
