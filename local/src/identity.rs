//! Who may sign requests to the local stack: the admin credentials and every
//! temporary credential the local STS issued, with the policies that decide what
//! each may do.
//!
//! The STS emulator inserts; the STS emulator and the IoT gateway look up by access
//! key ID and then evaluate `role policies ∩ session policy` with
//! [`serverless_websockets_core::policy::is_allowed`]. Lookups check the session token and the
//! expiry the way AWS does: a temporary key used without its token, or with
//! another one, is refused, and so is an expired one.
//!
//! Session tokens are compared in constant time (`subtle`). Expired temporary
//! credentials leave the store as new ones arrive, oldest expiry first, through an
//! expiry-ordered index: each insert does O(log n) work, never a scan of the store.
//!
//! [`IdentityStore::verify_signed`] is the one "look up the key, then check the
//! signature with its secret" that the STS emulator and the gateway both use; each
//! turns a [`Refusal`] into its own service's error.
//!
//! In memory only; nothing survives a restart of the local stack.

use std::cmp::Reverse;
use std::collections::{BTreeMap, BinaryHeap, HashMap};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, RwLock};
use std::time::SystemTime;

use subtle::ConstantTimeEq;

use serverless_websockets_core::policy::{Context, Denial, Evaluation, PolicyDocument, Variables};
use serverless_websockets_core::sigv4::{Expectations, RequestParts, SigError, SignedClaims, Verifier};

/// One set of credentials and what it may do.
#[derive(Clone)]
pub struct Identity {
    pub access_key_id: String,
    pub secret_access_key: String,
    /// Present for temporary credentials; required with them on every request.
    pub session_token: Option<String>,
    pub expiration: Option<SystemTime>,
    /// `arn:aws:iam::<acct>:user/<name>` or `arn:aws:sts::<acct>:assumed-role/<role>/<session>`.
    pub arn: String,
    /// `AIDA…` for users, `AROA…:<session>` for assumed roles.
    pub user_id: String,
    pub account: String,
    /// The identity policies of the user or role.
    pub policies: Arc<[PolicyDocument]>,
    /// The session policies passed to `AssumeRole` (`Policy` and `PolicyArns`), if any.
    pub session_policies: Option<Arc<[PolicyDocument]>>,
    /// `SourceIdentity` given at `AssumeRole`, if any.
    pub source_identity: Option<String>,
    /// For a custom authorizer's connection: the values of the IoT policy
    /// variables its policies use (`${iot:ClientId}` once CONNECT named one).
    /// `None` for SigV4 credentials, whose policies use none.
    pub variables: Option<Variables>,
    /// When temporary credentials were issued (`aws:TokenIssueTime`).
    pub issued_at: Option<SystemTime>,
    /// The inline policies put on the session's role since (IAM
    /// `PutRolePolicy`): they apply to live sessions at once, as bans need.
    pub role_since: Option<Arc<RolePolicies>>,
}

/// Inline policies put on a role while the stack runs (`aws iam put-role-policy`):
/// every session of the role sees them from the next request on.
#[derive(Default)]
pub struct RolePolicies {
    by_name: RwLock<BTreeMap<String, PolicyDocument>>,
    snapshot: RwLock<Arc<[PolicyDocument]>>,
    /// Whether any policy is there: read on every authorization (each
    /// delivery's `iot:Receive`), so the usual case takes no lock.
    any: AtomicBool,
}

impl RolePolicies {
    /// Adds or replaces the policy `name`.
    pub fn put(&self, name: &str, policy: PolicyDocument) {
        let mut by_name = self.by_name.write().unwrap_or_else(|e| e.into_inner());
        by_name.insert(name.to_owned(), policy);
        self.publish(&by_name);
    }

    /// Removes the policy `name`; `false` if there was none.
    pub fn delete(&self, name: &str) -> bool {
        let mut by_name = self.by_name.write().unwrap_or_else(|e| e.into_inner());
        let removed = by_name.remove(name).is_some();
        self.publish(&by_name);
        removed
    }

    pub fn get(&self, name: &str) -> Option<PolicyDocument> {
        self.by_name
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .get(name)
            .cloned()
    }

    pub fn names(&self) -> Vec<String> {
        self.by_name
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .keys()
            .cloned()
            .collect()
    }

    /// The policies as one slice, cheap to take per request; `None` when there
    /// are none (no lock taken).
    pub fn snapshot(&self) -> Option<Arc<[PolicyDocument]>> {
        self.any
            .load(Ordering::Acquire)
            .then(|| self.snapshot.read().unwrap_or_else(|e| e.into_inner()).clone())
    }

    fn publish(&self, by_name: &BTreeMap<String, PolicyDocument>) {
        *self.snapshot.write().unwrap_or_else(|e| e.into_inner()) = by_name.values().cloned().collect();
        self.any.store(!by_name.is_empty(), Ordering::Release);
    }
}

impl std::fmt::Debug for RolePolicies {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_list().entries(self.names()).finish()
    }
}

impl Identity {
    pub fn is_assumed_role(&self) -> bool {
        self.session_token.is_some()
    }

    /// IAM evaluation of `action` on `resource` for this identity.
    pub fn is_allowed(&self, action: &str, resource: &str) -> bool {
        self.authorize(action, resource).is_ok()
    }

    /// [`Identity::is_allowed`], saying which rule refused (for the refusal's log
    /// line): its policies, what its role gained since, its session policies,
    /// IoT policy variables and the condition keys bans use.
    pub fn authorize(&self, action: &str, resource: &str) -> Result<(), Denial> {
        let role_since = self.role_since.as_ref().and_then(|r| r.snapshot());
        let context = Context {
            source_identity: self.source_identity.as_deref(),
            token_issue_time: self
                .issued_at
                .and_then(|t| t.duration_since(SystemTime::UNIX_EPOCH).ok())
                .map(|d| d.as_secs()),
            principal_arn: Some(&self.arn),
        };
        Evaluation {
            identity: &self.policies,
            role_since: role_since.as_deref(),
            session: self.session_policies.as_deref(),
            vars: self.variables.as_ref(),
            context: Some(&context),
        }
        .authorize(action, resource)
    }
}

impl std::fmt::Debug for Identity {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Identity")
            .field("access_key_id", &self.access_key_id)
            .field("arn", &self.arn)
            .finish()
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum CredentialError {
    #[error("unknown access key")]
    UnknownKey,
    #[error("the session token is missing or does not belong to the access key")]
    BadToken,
    #[error("the credentials have expired")]
    Expired,
}

/// Why a signed request was refused: its credential, or its signature.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Refusal {
    #[error("{0}")]
    Credential(CredentialError),
    #[error("{0}")]
    Signature(SigError),
}

#[derive(Default)]
pub struct IdentityStore {
    inner: RwLock<Inner>,
}

#[derive(Default)]
struct Inner {
    by_key: HashMap<String, Arc<Identity>>,
    /// Temporary credentials by expiry, soonest first.
    by_expiry: BinaryHeap<Reverse<(SystemTime, String)>>,
}

impl IdentityStore {
    pub fn new() -> Self {
        Self::default()
    }

    /// Records `identity`, first dropping every credential that expired by `now`.
    pub fn insert(&self, identity: Identity, now: SystemTime) {
        let mut inner = self.inner.write().unwrap_or_else(|e| e.into_inner());
        while let Some(Reverse((expiry, _))) = inner.by_expiry.peek()
            && *expiry <= now
        {
            let Some(Reverse((expiry, key))) = inner.by_expiry.pop() else {
                break;
            };
            if inner.by_key.get(&key).is_some_and(|id| id.expiration == Some(expiry)) {
                inner.by_key.remove(&key);
            }
        }
        if let Some(expiry) = identity.expiration {
            inner.by_expiry.push(Reverse((expiry, identity.access_key_id.clone())));
        }
        inner.by_key.insert(identity.access_key_id.clone(), Arc::new(identity));
    }

    /// How many credentials the store holds (expired ones included until swept).
    pub fn len(&self) -> usize {
        self.inner.read().unwrap_or_else(|e| e.into_inner()).by_key.len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The identity for `access_key_id`, if `token` is the one it was issued with
    /// and it has not expired at `now`.
    pub fn authenticate(
        &self,
        access_key_id: &str,
        token: Option<&str>,
        now: SystemTime,
    ) -> Result<Arc<Identity>, CredentialError> {
        let identity = self.get(access_key_id).ok_or(CredentialError::UnknownKey)?;
        match (&identity.session_token, token) {
            (None, None) => {}
            (Some(expected), Some(given)) if bool::from(expected.as_bytes().ct_eq(given.as_bytes())) => {}
            _ => return Err(CredentialError::BadToken),
        }
        if identity.expiration.is_some_and(|exp| exp <= now) {
            return Err(CredentialError::Expired);
        }
        Ok(identity)
    }

    /// Authenticates a signed request: looks up the signer's credential (session
    /// token and expiry checked), then verifies the signature with its secret.
    pub fn verify_signed(
        &self,
        verifier: &Verifier,
        claims: &SignedClaims,
        parts: RequestParts<'_>,
        expect: Expectations<'_>,
        now: SystemTime,
    ) -> Result<Arc<Identity>, Refusal> {
        let identity = self
            .authenticate(&claims.access_key_id, claims.security_token.as_deref(), now)
            .map_err(Refusal::Credential)?;
        verifier
            .verify(claims, parts, &identity.secret_access_key, expect, now)
            .map_err(Refusal::Signature)?;
        Ok(identity)
    }

    /// Lookup without authentication, for tests and diagnostics.
    pub fn get(&self, access_key_id: &str) -> Option<Arc<Identity>> {
        self.inner
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .by_key
            .get(access_key_id)
            .cloned()
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    fn identity(key: &str, token: Option<&str>, expiration: Option<SystemTime>) -> Identity {
        Identity {
            access_key_id: key.into(),
            secret_access_key: "s".into(),
            session_token: token.map(Into::into),
            expiration,
            arn: "arn".into(),
            user_id: "u".into(),
            account: "000000000000".into(),
            policies: Arc::from(vec![]),
            session_policies: None,
            source_identity: None,
            variables: None,
            issued_at: None,
            role_since: None,
        }
    }

    #[test]
    fn temporary_credentials_need_their_own_token_and_expire() {
        let now = SystemTime::now();
        let store = IdentityStore::new();
        store.insert(identity("ASIA1", Some("tok"), Some(now + Duration::from_secs(60))), now);
        assert!(store.authenticate("ASIA1", Some("tok"), now).is_ok());
        assert_eq!(
            store.authenticate("ASIA1", None, now).unwrap_err(),
            CredentialError::BadToken
        );
        assert_eq!(
            store.authenticate("ASIA1", Some("other"), now).unwrap_err(),
            CredentialError::BadToken
        );
        assert_eq!(
            store
                .authenticate("ASIA1", Some("tok"), now + Duration::from_secs(61))
                .unwrap_err(),
            CredentialError::Expired
        );
        assert_eq!(
            store.authenticate("ASIA2", Some("tok"), now).unwrap_err(),
            CredentialError::UnknownKey
        );
    }

    #[test]
    fn expired_credentials_leave_the_store_as_new_ones_arrive() {
        let now = SystemTime::now();
        let store = IdentityStore::new();
        store.insert(identity("AKIA", None, None), now);
        for i in 0..1000 {
            let expiry = now + Duration::from_secs(1 + i % 10);
            store.insert(identity(&format!("ASIA{i}"), Some("t"), Some(expiry)), now);
        }
        assert_eq!(store.len(), 1001);
        store.insert(
            identity("ASIANEW", Some("t"), Some(now + Duration::from_secs(60))),
            now + Duration::from_secs(5),
        );
        // Those expiring at +1 … +5 s are gone, the rest and the long-term key stay.
        assert_eq!(store.len(), 1 + 500 + 1);
        assert!(store.get("AKIA").is_some());
        store.insert(
            identity("ASIALAST", Some("t"), Some(now + Duration::from_secs(90))),
            now + Duration::from_secs(61),
        );
        assert_eq!(store.len(), 2);
    }

    #[test]
    fn long_term_credentials_refuse_a_token() {
        let now = SystemTime::now();
        let store = IdentityStore::new();
        store.insert(identity("AKIA1", None, None), now);
        assert!(store.authenticate("AKIA1", None, now).is_ok());
        assert_eq!(
            store.authenticate("AKIA1", Some("x"), now).unwrap_err(),
            CredentialError::BadToken
        );
    }
}
