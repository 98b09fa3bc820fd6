//! Token signing keys of a custom authorizer and the signature check IoT makes
//! before it invokes anything (<https://docs.aws.amazon.com/iot/latest/developerguide/custom-auth.html#custom-auth-token-signature>):
//! RSA with SHA-256 (PKCS#1 v1.5, what `openssl dgst -sha256 -sign` makes) over
//! the exact token, base64-encoded, checked against each of the authorizer's
//! keys. Keys are PEM (`PUBLIC KEY` or `RSA PUBLIC KEY`) of at least 2048 bits,
//! parsed once when the authorizer is created or updated. The cryptography is
//! aws-lc-rs's, already in the tree through rustls.

use aws_lc_rs::signature::{RSA_PKCS1_2048_8192_SHA256, UnparsedPublicKey};
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;

/// The smallest key IoT takes.
pub const MIN_KEY_BITS: usize = 2048;
/// The longest PEM value (the model's `KeyValue`).
pub const MAX_PEM_CHARS: usize = 5120;
/// The longest key name (the model's `KeyName`).
pub const MAX_KEY_NAME: usize = 128;
/// The longest signature (the model's `TokenSignature`).
pub const MAX_SIGNATURE_CHARS: usize = 2560;

/// One public key, as given and as DER.
#[derive(Clone)]
pub struct SigningKey {
    pub pem: String,
    der: Vec<u8>,
}

impl std::fmt::Debug for SigningKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SigningKey")
            .field("der_bytes", &self.der.len())
            .finish()
    }
}

impl SigningKey {
    /// Parses a PEM public key, refusing anything but RSA of at least 2048 bits.
    pub fn parse(name: &str, pem: &str) -> Result<Self, String> {
        if name.is_empty()
            || name.len() > MAX_KEY_NAME
            || !name.chars().all(|c| c.is_ascii_alphanumeric() || ":_-".contains(c))
        {
            return Err(format!(
                "the key name {name:?} must be 1 to {MAX_KEY_NAME} of [a-zA-Z0-9:_-]"
            ));
        }
        if pem.chars().count() > MAX_PEM_CHARS {
            return Err(format!("the key {name} is longer than {MAX_PEM_CHARS} characters"));
        }
        let der = pem_body(pem).ok_or_else(|| format!("the key {name} is not a PEM public key"))?;
        let key = aws_lc_rs::rsa::PublicKey::from_der(&der)
            .map_err(|e| format!("the key {name} is not an RSA public key: {e}"))?;
        let bits = key.modulus_len() * 8;
        if bits < MIN_KEY_BITS {
            return Err(format!(
                "the key {name} has {bits} bits; token signing keys need at least {MIN_KEY_BITS}"
            ));
        }
        Ok(Self {
            pem: pem.to_owned(),
            der,
        })
    }

    fn verifies(&self, token: &str, signature: &[u8]) -> bool {
        UnparsedPublicKey::new(&RSA_PKCS1_2048_8192_SHA256, &self.der)
            .verify(token.as_bytes(), signature)
            .is_ok()
    }
}

/// Why a token's signature was not accepted.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SignatureError {
    #[error("the authorizer has token signing on and the request carries no x-amz-customauthorizer-signature")]
    Missing,
    #[error(
        "x-amz-customauthorizer-signature is not base64 (standard alphabet, with padding; URL-encode + / = in a query string): {0}"
    )]
    NotBase64(String),
    #[error("x-amz-customauthorizer-signature has more than {MAX_SIGNATURE_CHARS} characters")]
    TooLong,
    #[error(
        "the signature does not verify against any of the authorizer's {keys} key(s): it must be RSA-SHA256 (PKCS#1 v1.5) over the exact token"
    )]
    NoKeyVerifies { keys: usize },
}

/// Checks `signature` (base64) over `token` against `keys`.
pub fn verify<'k>(
    keys: impl ExactSizeIterator<Item = &'k SigningKey>,
    token: &str,
    signature: Option<&str>,
) -> Result<(), SignatureError> {
    let signature = signature.ok_or(SignatureError::Missing)?;
    if signature.len() > MAX_SIGNATURE_CHARS {
        return Err(SignatureError::TooLong);
    }
    let raw = STANDARD
        .decode(signature)
        .map_err(|e| SignatureError::NotBase64(e.to_string()))?;
    let count = keys.len();
    let mut keys = keys;
    if keys.any(|key| key.verifies(token, &raw)) {
        Ok(())
    } else {
        Err(SignatureError::NoKeyVerifies { keys: count })
    }
}

/// The DER inside a PEM block (`-----BEGIN … KEY-----`), whitespace ignored.
fn pem_body(pem: &str) -> Option<Vec<u8>> {
    let pem = pem.trim();
    let after_begin = pem.strip_prefix("-----BEGIN ")?;
    let (label, rest) = after_begin.split_once("-----")?;
    if label != "PUBLIC KEY" && label != "RSA PUBLIC KEY" {
        return None;
    }
    let (body, end) = rest.split_once("-----END ")?;
    if end.trim_end().trim_end_matches('-') != label {
        return None;
    }
    let body: String = body.chars().filter(|c| !c.is_whitespace()).collect();
    STANDARD.decode(body).ok()
}

#[cfg(test)]
mod tests {
    use aws_lc_rs::encoding::AsDer;
    use aws_lc_rs::rand::SystemRandom;
    use aws_lc_rs::rsa::{KeyPair, KeySize};
    use aws_lc_rs::signature::{KeyPair as _, RSA_PKCS1_SHA256};

    use super::*;

    fn pem_of(der: &[u8], label: &str) -> String {
        let body = STANDARD.encode(der);
        let lines: Vec<&str> = body
            .as_bytes()
            .chunks(64)
            .map(|c| std::str::from_utf8(c).unwrap())
            .collect();
        format!("-----BEGIN {label}-----\n{}\n-----END {label}-----\n", lines.join("\n"))
    }

    fn sign(pair: &KeyPair, token: &str) -> String {
        let mut signature = vec![0; pair.public_modulus_len()];
        pair.sign(
            &RSA_PKCS1_SHA256,
            &SystemRandom::new(),
            token.as_bytes(),
            &mut signature,
        )
        .unwrap();
        STANDARD.encode(signature)
    }

    #[test]
    fn a_signature_verifies_against_the_key_that_made_it_only() {
        let pair = KeyPair::generate(KeySize::Rsa2048).unwrap();
        let other = KeyPair::generate(KeySize::Rsa2048).unwrap();
        let spki = pair.public_key().as_der().unwrap();
        let key = SigningKey::parse("k1", &pem_of(spki.as_ref(), "PUBLIC KEY")).unwrap();
        let pkcs1 = SigningKey::parse("k2", &pem_of(pair.public_key().as_ref(), "RSA PUBLIC KEY")).unwrap();
        let signature = sign(&pair, "tok");
        assert_eq!(verify([&key].into_iter(), "tok", Some(&signature)), Ok(()));
        assert_eq!(verify([&pkcs1].into_iter(), "tok", Some(&signature)), Ok(()));
        assert_eq!(
            verify([&key].into_iter(), "tok2", Some(&signature)),
            Err(SignatureError::NoKeyVerifies { keys: 1 })
        );
        let theirs = sign(&other, "tok");
        assert!(verify([&key].into_iter(), "tok", Some(&theirs)).is_err());
        assert_eq!(verify([&key].into_iter(), "tok", None), Err(SignatureError::Missing));
        assert!(matches!(
            verify([&key].into_iter(), "tok", Some("not base64!")),
            Err(SignatureError::NotBase64(_))
        ));
    }

    #[test]
    fn keys_that_are_not_rsa_2048_pem_are_refused_with_the_reason() {
        assert!(SigningKey::parse("k", "not a pem").unwrap_err().contains("not a PEM"));
        assert!(SigningKey::parse("bad name!", "x").unwrap_err().contains("key name"));
        let garbage = pem_of(b"garbage", "PUBLIC KEY");
        assert!(SigningKey::parse("k", &garbage).unwrap_err().contains("not an RSA"));
        let mismatched = "-----BEGIN PUBLIC KEY-----\nAAAA\n-----END RSA PUBLIC KEY-----";
        assert!(SigningKey::parse("k", mismatched).is_err());
    }
}
