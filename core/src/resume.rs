//! Resume tokens: a client asks for fresh credentials for the client ID it already
//! has, so its topic, its persistent session and its queued messages stay its own.
//!
//! A token is stateless: `v1.<payload>.<mac>`, where the payload is base64url JSON
//! `{"v":1,"cid":…,"sub":…|null,"iat":…,"exp":…,"born":…,"nw":{claim:[values]},"n":…}`
//! (seconds since the epoch; `born` the chain's first `iat`; `nw` the client's
//! narrowing of its claims, if any; `n` a random nonce, so that no two tokens are alike) and the
//! MAC is HMAC-SHA256 over `v1.<payload>` with a server key, base64url. It is a
//! bearer secret: whoever holds it may take the client ID over until it expires.
//!
//! Verification tries the current key, then the previous one, so rotating the key
//! does not log every client out; the MAC is compared in constant time; a token is
//! checked completely (format, MAC, version, client ID) before its expiry is looked
//! at, so an expired token is reported as expired only if it is genuine.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use hmac::{Hmac, Mac};
use serde::{Deserialize, Serialize};
use sha2::Sha256;

use crate::client_id::ClientId;

/// The shortest key accepted: the hash size (RFC 2104 §3).
pub const MIN_KEY_BYTES: usize = 32;

/// The token format this code writes and reads.
const VERSION: u8 = 1;
const PREFIX: &str = "v1.";

/// Longest token accepted before any decoding: far above what [`ResumeKeys::issue`]
/// writes for a 128-byte `sub` and the narrowing a session policy can hold.
pub const MAX_TOKEN_BYTES: usize = 8192;

/// A key for resume tokens; `Debug` never shows it.
#[derive(Clone, PartialEq, Eq)]
pub struct ResumeKey(Vec<u8>);

impl ResumeKey {
    /// A key from secret bytes (at least [`MIN_KEY_BYTES`]).
    pub fn new(bytes: impl Into<Vec<u8>>) -> Result<Self, ResumeError> {
        let bytes = bytes.into();
        if bytes.len() < MIN_KEY_BYTES {
            return Err(ResumeError::ShortKey(bytes.len()));
        }
        Ok(Self(bytes))
    }

    /// A fresh random key (the local stack's default).
    pub fn random() -> Self {
        Self(crate::random::bytes::<32>().to_vec())
    }

    #[allow(
        clippy::expect_used,
        reason = "HMAC takes keys of any length: the error cannot happen"
    )]
    fn mac(&self, signed: &str) -> Hmac<Sha256> {
        let mut mac = Hmac::<Sha256>::new_from_slice(&self.0).expect("HMAC takes keys of any length");
        mac.update(signed.as_bytes());
        mac
    }
}

impl std::fmt::Debug for ResumeKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("ResumeKey(** redacted **)")
    }
}

/// What a token says.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ResumeClaims {
    pub client_id: ClientId,
    /// The authenticated caller's `sub`, when the API runs with JWT authentication.
    pub sub: Option<String>,
    pub issued_at: u64,
    pub expires_at: u64,
    /// When the first token of this client ID was issued: resumes carry it, so
    /// a chain of resumes ends at an absolute lifetime however often it renews.
    pub first_issued_at: u64,
    /// The claim values the client narrowed its grants to, kept across resumes
    /// until it asks again.
    pub narrow: Option<crate::claims::Narrowing>,
}

#[derive(Serialize, Deserialize)]
struct Payload {
    v: u8,
    cid: String,
    sub: Option<String>,
    iat: u64,
    exp: u64,
    /// The chain's first `iat` (absent in tokens from before it was added: `iat`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    born: Option<u64>,
    /// The client's narrowing of its claims, if it asked for one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    nw: Option<crate::claims::Narrowing>,
    /// Random, so every token differs even when issued in the same second.
    n: String,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ResumeError {
    /// Not a token this service issued: malformed, tampered with, or signed with
    /// another key.
    #[error("the resume token is not valid")]
    Invalid,
    /// Genuine, but past its expiry.
    #[error("the resume token expired at {0}")]
    Expired(u64),
    #[error("a resume key must be at least {MIN_KEY_BYTES} bytes, not {0}")]
    ShortKey(usize),
}

/// The current key, which signs, and the previous one, which still verifies.
#[derive(Debug, Clone)]
pub struct ResumeKeys {
    pub current: ResumeKey,
    pub previous: Option<ResumeKey>,
}

impl ResumeKeys {
    pub fn new(current: ResumeKey, previous: Option<ResumeKey>) -> Self {
        Self { current, previous }
    }

    /// A token for `claims`, signed with the current key.
    pub fn issue(&self, claims: &ResumeClaims) -> String {
        let payload = Payload {
            v: VERSION,
            cid: claims.client_id.as_str().to_owned(),
            sub: claims.sub.clone(),
            iat: claims.issued_at,
            exp: claims.expires_at,
            born: Some(claims.first_issued_at),
            nw: claims.narrow.clone(),
            n: crate::random::hex::<8>(),
        };
        #[allow(clippy::expect_used, reason = "a struct of strings and integers always serialises")]
        let json = serde_json::to_vec(&payload).expect("the payload serialises");
        let signed = format!("{PREFIX}{}", URL_SAFE_NO_PAD.encode(json));
        let mac = self.current.mac(&signed).finalize().into_bytes();
        format!("{signed}.{}", URL_SAFE_NO_PAD.encode(mac))
    }

    /// The claims of a token this service issued (with either key) that has not
    /// expired at `now` (seconds since the epoch).
    pub fn verify(&self, token: &str, now: u64) -> Result<ResumeClaims, ResumeError> {
        if token.len() > MAX_TOKEN_BYTES || !token.starts_with(PREFIX) {
            return Err(ResumeError::Invalid);
        }
        let (signed, mac) = token.rsplit_once('.').ok_or(ResumeError::Invalid)?;
        let mac = URL_SAFE_NO_PAD.decode(mac).map_err(|_| ResumeError::Invalid)?;
        let genuine = std::iter::once(&self.current)
            .chain(self.previous.as_ref())
            .any(|key| key.mac(signed).verify_slice(&mac).is_ok());
        if !genuine {
            return Err(ResumeError::Invalid);
        }
        let json = URL_SAFE_NO_PAD
            .decode(&signed[PREFIX.len()..])
            .map_err(|_| ResumeError::Invalid)?;
        let payload: Payload = serde_json::from_slice(&json).map_err(|_| ResumeError::Invalid)?;
        if payload.v != VERSION {
            return Err(ResumeError::Invalid);
        }
        let client_id = ClientId::parse(&payload.cid).map_err(|_| ResumeError::Invalid)?;
        if payload.exp <= now {
            return Err(ResumeError::Expired(payload.exp));
        }
        Ok(ResumeClaims {
            client_id,
            sub: payload.sub,
            issued_at: payload.iat,
            expires_at: payload.exp,
            first_issued_at: payload.born.unwrap_or(payload.iat),
            narrow: payload.nw,
        })
    }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    fn keys(seed: u8) -> ResumeKeys {
        ResumeKeys::new(ResumeKey::new(vec![seed; 32]).unwrap(), None)
    }

    fn claims(sub: Option<&str>) -> ResumeClaims {
        ResumeClaims {
            client_id: ClientId::generate(),
            sub: sub.map(str::to_owned),
            issued_at: 1_000,
            expires_at: 2_000,
            first_issued_at: 1_000,
            narrow: None,
        }
    }

    #[test]
    fn a_token_round_trips_its_claims_until_it_expires() {
        let keys = keys(7);
        let claims = claims(Some("alice"));
        let token = keys.issue(&claims);
        assert!(token.starts_with("v1."));
        assert_ne!(keys.issue(&claims), token, "two tokens for the same claims differ");
        assert_eq!(keys.verify(&token, 1_500), Ok(claims));
        assert_eq!(keys.verify(&token, 2_000), Err(ResumeError::Expired(2_000)));
    }

    #[test]
    fn a_token_from_the_previous_key_still_verifies_after_rotation() {
        let old = keys(1);
        let token = old.issue(&claims(None));
        let rotated = ResumeKeys::new(ResumeKey::new(vec![2; 32]).unwrap(), Some(old.current.clone()));
        assert!(rotated.verify(&token, 1_500).is_ok());
        let forgotten = ResumeKeys::new(ResumeKey::new(vec![2; 32]).unwrap(), None);
        assert_eq!(forgotten.verify(&token, 1_500), Err(ResumeError::Invalid));
    }

    #[test]
    fn short_keys_are_refused_and_keys_never_print() {
        assert_eq!(ResumeKey::new(vec![0; 31]), Err(ResumeError::ShortKey(31)));
        assert!(!format!("{:?}", ResumeKey::new(vec![b'k'; 32]).unwrap()).contains('k'));
    }

    #[test]
    fn an_expired_forgery_is_invalid_not_expired() {
        let token = keys(1).issue(&claims(None));
        assert_eq!(keys(2).verify(&token, 5_000), Err(ResumeError::Invalid));
    }

    proptest! {
        /// No string the server did not issue is accepted.
        #[test]
        fn arbitrary_strings_are_never_accepted(token in ".{0,300}") {
            prop_assert!(keys(3).verify(&token, 1_500).is_err());
        }

        /// Changing any byte of a genuine token makes it invalid.
        #[test]
        fn a_tampered_token_is_invalid(at in any::<prop::sample::Index>(), byte in any::<u8>()) {
            let keys = keys(4);
            let token = keys.issue(&claims(Some("bob")));
            let mut bytes = token.clone().into_bytes();
            let i = at.index(bytes.len());
            prop_assume!(bytes[i] != byte);
            bytes[i] = byte;
            let tampered = String::from_utf8_lossy(&bytes).into_owned();
            prop_assume!(tampered != token);
            prop_assert!(keys.verify(&tampered, 1_500).is_err());
        }

        /// A token names exactly the client ID and sub it was issued for: no token
        /// issued for one client ID or sub verifies as another's.
        #[test]
        fn a_token_carries_only_its_own_client_id_and_sub(sub in proptest::option::of("[a-z0-9|@.-]{1,40}")) {
            let keys = keys(5);
            let issued = claims(sub.as_deref());
            let verified = keys.verify(&keys.issue(&issued), 1_500).unwrap();
            prop_assert_eq!(&verified.client_id, &issued.client_id);
            prop_assert_eq!(&verified.sub, &issued.sub);
        }
    }
}
