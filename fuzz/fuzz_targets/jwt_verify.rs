//! JWT parsing and claim checks on arbitrary input: raw token strings, and tokens
//! correctly signed over arbitrary claims (so the claim checks themselves are
//! reached). A verdict, never a panic; a token is accepted only with the right
//! issuer, audience and a usable `sub`.
#![no_main]

use std::sync::LazyLock;
use std::time::Duration;

use libfuzzer_sys::fuzz_target;
use serverless_websockets_vending::auth::JwtVerifier;
use serverless_websockets_vending::config::JwtSettings;
use serverless_websockets_vending::secret::Secret;

const SECRET: &str = "a-fuzzing-secret-of-at-least-32-bytes!!";

static WORLD: LazyLock<(tokio::runtime::Runtime, JwtVerifier)> = LazyLock::new(|| {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let settings = JwtSettings {
        issuer: "https://issuer.example".into(),
        audience: Some("app".into()),
        client_id: Some("client".into()),
        hs256_secret: Some(Secret::new(SECRET)),
        hs256_secret_arn: None,
        jwks_url: None,
        jwks_json: Some(r#"{"keys":[]}"#.into()),
        leeway: Duration::from_secs(30),
        jwks_ttl: Duration::from_secs(600),
    };
    let verifier = JwtVerifier::new(&settings).unwrap();
    (runtime, verifier)
});

fuzz_target!(|data: &[u8]| {
    let (runtime, verifier) = &*WORLD;
    let Some((&mode, rest)) = data.split_first() else {
        return;
    };
    let text = String::from_utf8_lossy(rest);
    let token = if mode & 1 == 0 {
        text.into_owned()
    } else {
        let Ok(serde_json::Value::Object(claims)) = serde_json::from_str::<serde_json::Value>(&text) else {
            return;
        };
        jsonwebtoken::encode(
            &jsonwebtoken::Header::new(jsonwebtoken::Algorithm::HS256),
            &claims,
            &jsonwebtoken::EncodingKey::from_secret(SECRET.as_bytes()),
        )
        .unwrap()
    };
    if let Ok(caller) = runtime.block_on(verifier.verify(&token)) {
        // Accepted: then the claims really are ours.
        let payload = token.split('.').nth(1).unwrap();
        let claims: serde_json::Value =
            serde_json::from_slice(&base64_url_decode(payload).expect("an accepted token has a decodable payload"))
                .unwrap();
        assert_eq!(claims["iss"], "https://issuer.example");
        let for_us = claims["aud"] == "app"
            || claims["aud"].as_array().is_some_and(|a| a.iter().any(|v| v == "app"))
            || (claims["client_id"] == "client" && claims["token_use"] == "access");
        assert!(for_us, "accepted a token for someone else: {claims}");
        assert_eq!(caller.sub.as_deref(), claims["sub"].as_str());
    }
});

fn base64_url_decode(text: &str) -> Option<Vec<u8>> {
    const ALPHABET: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    let mut out = Vec::new();
    let (mut acc, mut bits) = (0u32, 0);
    for c in text.bytes().filter(|&c| c != b'=') {
        acc = (acc << 6) | ALPHABET.iter().position(|&a| a == c)? as u32;
        bits += 6;
        if bits >= 8 {
            bits -= 8;
            out.push((acc >> bits) as u8);
        }
    }
    Some(out)
}
