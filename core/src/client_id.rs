//! MQTT client IDs chosen by the vending service.
//!
//! Each vended credential is bound to one client ID, so the ID must be
//! unguessable (128 bits from the operating system's RNG) and must never contain a
//! character that means something in a policy resource (see [`crate::topic`]). IDs
//! are lower-case hex, which also makes them valid STS `RoleSessionName`s
//! (`[\w+=,.@-]{2,64}`), so CloudTrail shows which client a session belongs to.

use std::fmt;

use crate::quota::MAX_CLIENT_ID_BYTES;
use crate::topic::{NameError, check_level};

#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct ClientId(String);

impl ClientId {
    /// A fresh ID: 16 bytes from the OS RNG as 32 lower-case hex characters.
    pub fn generate() -> Self {
        Self(crate::random::hex::<16>())
    }

    /// Accepts an externally supplied ID only if it is safe inside a policy resource.
    pub fn parse(value: &str) -> Result<Self, NameError> {
        check_level(value, "client ID", MAX_CLIENT_ID_BYTES)?;
        Ok(Self(value.to_owned()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for ClientId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generated_ids_are_32_lowercase_hex_characters_and_differ() {
        let a = ClientId::generate();
        let b = ClientId::generate();
        assert_eq!(a.as_str().len(), 32);
        assert!(
            a.as_str()
                .bytes()
                .all(|c| c.is_ascii_digit() || (b'a'..=b'f').contains(&c))
        );
        assert_ne!(a, b);
    }

    #[test]
    fn generated_ids_are_accepted_by_parse() {
        let id = ClientId::generate();
        assert_eq!(ClientId::parse(id.as_str()).unwrap(), id);
    }

    #[test]
    fn parse_refuses_policy_wildcards() {
        assert!(ClientId::parse("*").is_err());
        assert!(ClientId::parse("a/b").is_err());
        assert!(ClientId::parse("").is_err());
    }
}
