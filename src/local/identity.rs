//! Who may sign requests to the local stack: the admin credentials and every
//! temporary credential the local STS issued, with the policies that decide what
//! each may do.
//!
//! The STS emulator inserts; the STS emulator and the IoT gateway look up by access
//! key ID and then evaluate `role policies ∩ session policy` with
//! [`crate::policy::is_allowed`]. Lookups check the session token and the
//! expiry the way AWS does: a temporary key used without its token, or with
//! another one, is refused, and so is an expired one.
//!
//! In memory only; nothing survives a restart of the local stack.

use std::collections::HashMap;
use std::sync::{Arc, RwLock};
use std::time::SystemTime;

use crate::policy::{PolicyDocument, is_allowed};

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
    /// The session policy passed to `AssumeRole`, if any.
    pub session_policy: Option<Arc<PolicyDocument>>,
    /// `SourceIdentity` given at `AssumeRole`, if any.
    pub source_identity: Option<String>,
}

impl Identity {
    pub fn is_assumed_role(&self) -> bool {
        self.session_token.is_some()
    }

    /// IAM evaluation of `action` on `resource` for this identity.
    pub fn is_allowed(&self, action: &str, resource: &str) -> bool {
        is_allowed(&self.policies, self.session_policy.as_deref(), action, resource)
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
pub enum AuthError {
    #[error("unknown access key")]
    UnknownKey,
    #[error("the session token is missing or does not belong to the access key")]
    BadToken,
    #[error("the credentials have expired")]
    Expired,
}

#[derive(Default)]
pub struct IdentityStore {
    by_key: RwLock<HashMap<String, Arc<Identity>>>,
}

/// Expired temporary credentials are swept once the store holds this many.
const SWEEP_AT: usize = 50_000;

impl IdentityStore {
    pub fn new() -> Self {
        Self::default()
    }

    pub fn insert(&self, identity: Identity, now: SystemTime) {
        let mut map = self.by_key.write().unwrap_or_else(|e| e.into_inner());
        if map.len() >= SWEEP_AT {
            map.retain(|_, id| id.expiration.is_none_or(|exp| exp > now));
        }
        map.insert(identity.access_key_id.clone(), Arc::new(identity));
    }

    /// The identity for `access_key_id`, if `token` is the one it was issued with
    /// and it has not expired at `now`.
    pub fn authenticate(
        &self,
        access_key_id: &str,
        token: Option<&str>,
        now: SystemTime,
    ) -> Result<Arc<Identity>, AuthError> {
        let identity = self
            .by_key
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .get(access_key_id)
            .cloned()
            .ok_or(AuthError::UnknownKey)?;
        match (&identity.session_token, token) {
            (None, None) => {}
            (Some(expected), Some(given)) if expected == given => {}
            _ => return Err(AuthError::BadToken),
        }
        if identity.expiration.is_some_and(|exp| exp <= now) {
            return Err(AuthError::Expired);
        }
        Ok(identity)
    }

    /// Lookup without authentication, for tests and diagnostics.
    pub fn get(&self, access_key_id: &str) -> Option<Arc<Identity>> {
        self.by_key
            .read()
            .unwrap_or_else(|e| e.into_inner())
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
            session_policy: None,
            source_identity: None,
        }
    }

    #[test]
    fn temporary_credentials_need_their_own_token_and_expire() {
        let now = SystemTime::now();
        let store = IdentityStore::new();
        store.insert(identity("ASIA1", Some("tok"), Some(now + Duration::from_secs(60))), now);
        assert!(store.authenticate("ASIA1", Some("tok"), now).is_ok());
        assert_eq!(store.authenticate("ASIA1", None, now).unwrap_err(), AuthError::BadToken);
        assert_eq!(
            store.authenticate("ASIA1", Some("other"), now).unwrap_err(),
            AuthError::BadToken
        );
        assert_eq!(
            store
                .authenticate("ASIA1", Some("tok"), now + Duration::from_secs(61))
                .unwrap_err(),
            AuthError::Expired
        );
        assert_eq!(
            store.authenticate("ASIA2", Some("tok"), now).unwrap_err(),
            AuthError::UnknownKey
        );
    }

    #[test]
    fn long_term_credentials_refuse_a_token() {
        let now = SystemTime::now();
        let store = IdentityStore::new();
        store.insert(identity("AKIA1", None, None), now);
        assert!(store.authenticate("AKIA1", None, now).is_ok());
        assert_eq!(
            store.authenticate("AKIA1", Some("x"), now).unwrap_err(),
            AuthError::BadToken
        );
    }
}
