//! The checks on a JWT's claims that follow the signature and time checks,
//! shared by the vending API and the JWT custom authorizer: who the token is
//! for (`aud` of an ID token, `client_id` of a Cognito access token) and whose
//! it is (`sub`). Pure: the cryptography, the clock and the key sets are the
//! callers' (`serverless_websockets_vending::auth`).

use serde::Deserialize;

/// The claims read after the signature verified.
#[derive(Debug, Clone, Default, Deserialize)]
pub struct Claims {
    pub sub: Option<String>,
    #[serde(default)]
    pub aud: Option<Audience>,
    pub client_id: Option<String>,
    pub token_use: Option<String>,
    /// Seconds since the epoch (required and checked by the verifier).
    pub exp: Option<u64>,
}

/// `aud` is a string or an array of strings (RFC 7519 §4.1.3).
#[derive(Debug, Clone, Deserialize)]
#[serde(untagged)]
pub enum Audience {
    One(String),
    Many(Vec<String>),
}

impl Audience {
    fn contains(&self, wanted: &str) -> bool {
        match self {
            Audience::One(aud) => aud == wanted,
            Audience::Many(auds) => auds.iter().any(|aud| aud == wanted),
        }
    }
}

/// Why the claims were refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum ClaimError {
    #[error("the token's audience is not accepted")]
    WrongAudience,
    #[error("the token names no audience (aud, or client_id for an access token)")]
    MissingAudience,
    #[error("the token has no usable sub claim")]
    MissingSubject,
}

/// Who a token must be for.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Recipient {
    /// `aud` of an ID token.
    pub audience: Option<String>,
    /// `client_id` of a Cognito access token.
    pub client_id: Option<String>,
}

impl Recipient {
    /// Checks who the token is for, then returns its non-empty `sub`.
    pub fn check(&self, claims: &Claims) -> Result<String, ClaimError> {
        self.check_recipient(claims)?;
        claims
            .sub
            .clone()
            .filter(|s| !s.is_empty())
            .ok_or(ClaimError::MissingSubject)
    }

    fn check_recipient(&self, claims: &Claims) -> Result<(), ClaimError> {
        if self.audience.is_none() && self.client_id.is_none() {
            return Ok(());
        }
        let as_id_token = self.audience.as_deref().is_some_and(|wanted| {
            claims.aud.as_ref().is_some_and(|aud| aud.contains(wanted))
                && claims.token_use.as_deref().is_none_or(|use_| use_ == "id")
        });
        let as_access_token = self.client_id.as_deref().is_some_and(|wanted| {
            claims.client_id.as_deref() == Some(wanted) && claims.token_use.as_deref() == Some("access")
        });
        match (as_id_token || as_access_token, &claims.aud, &claims.client_id) {
            (true, _, _) => Ok(()),
            (false, None, None) => Err(ClaimError::MissingAudience),
            (false, _, _) => Err(ClaimError::WrongAudience),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn claims(json: &str) -> Claims {
        serde_json::from_str(json).unwrap()
    }

    #[test]
    fn an_id_token_needs_the_audience_and_an_access_token_the_app_client() {
        let recipient = Recipient {
            audience: Some("app".into()),
            client_id: Some("client".into()),
        };
        assert_eq!(recipient.check(&claims(r#"{"sub":"a","aud":"app"}"#)), Ok("a".into()));
        assert_eq!(
            recipient.check(&claims(r#"{"sub":"a","aud":["x","app"]}"#)),
            Ok("a".into())
        );
        assert_eq!(
            recipient.check(&claims(r#"{"sub":"a","client_id":"client","token_use":"access"}"#)),
            Ok("a".into())
        );
        assert_eq!(
            recipient.check(&claims(r#"{"sub":"a","aud":"app","token_use":"access"}"#)),
            Err(ClaimError::WrongAudience)
        );
        assert_eq!(
            recipient.check(&claims(r#"{"sub":"a"}"#)),
            Err(ClaimError::MissingAudience)
        );
        assert_eq!(
            recipient.check(&claims(r#"{"aud":"app","sub":""}"#)),
            Err(ClaimError::MissingSubject)
        );
    }

    #[test]
    fn without_a_configured_recipient_any_token_of_the_issuer_will_do() {
        assert_eq!(
            Recipient::default().check(&claims(r#"{"sub":"a","aud":"x"}"#)),
            Ok("a".into())
        );
    }
}
