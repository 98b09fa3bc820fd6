//! Caller authentication through the router: every refusal, HS256 and RS256/ES256
//! happy paths, JWKS from a file and from a URL with key rotation, and grants
//! expanded from the token's `sub`.

mod common;

use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use axum::body::Body;
use axum::http::{Request, StatusCode, header};
use common::vending::{BASE, FakeIssuer, config_from};
use http_body_util::BodyExt;
use jsonwebtoken::jwk::{Jwk, JwkSet};
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use serde_json::{Value, json};
use serverless_websockets_vending::api::build;
use serverless_websockets_vending::config::Config;
use tower::ServiceExt;

const ISSUER: &str = "https://issuer.example";
const AUDIENCE: &str = "serverless-websockets-tests";
const SECRET: &str = "a-shared-secret-of-at-least-32-bytes!!";

fn now() -> u64 {
    SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

fn claims(sub: &str) -> Value {
    json!({"sub": sub, "iss": ISSUER, "aud": AUDIENCE, "exp": now() + 600, "iat": now()})
}

fn hs256(claims: &Value, secret: &str) -> String {
    jsonwebtoken::encode(
        &Header::new(Algorithm::HS256),
        claims,
        &EncodingKey::from_secret(secret.as_bytes()),
    )
    .unwrap()
}

/// A signing key and its public JWK with `kid`.
struct Signer {
    key: EncodingKey,
    alg: Algorithm,
    kid: String,
}

impl Signer {
    fn rsa(kid: &str) -> Self {
        let pair = rcgen::KeyPair::generate_for(&rcgen::PKCS_RSA_SHA256).unwrap();
        let pkcs1 = pkcs1_from_pkcs8(&pair.serialize_der());
        Self {
            key: EncodingKey::from_rsa_der(&pkcs1),
            alg: Algorithm::RS256,
            kid: kid.into(),
        }
    }

    fn ec(kid: &str) -> Self {
        let pair = rcgen::KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).unwrap();
        Self {
            key: EncodingKey::from_ec_der(&pair.serialize_der()),
            alg: Algorithm::ES256,
            kid: kid.into(),
        }
    }

    fn jwk(&self) -> Jwk {
        let mut jwk = Jwk::from_encoding_key(&self.key, self.alg).unwrap();
        jwk.common.key_id = Some(self.kid.clone());
        jwk
    }

    fn sign(&self, claims: &Value) -> String {
        let mut header = Header::new(self.alg);
        header.kid = Some(self.kid.clone());
        jsonwebtoken::encode(&header, claims, &self.key).unwrap()
    }
}

/// The RSAPrivateKey (PKCS#1) inside a PrivateKeyInfo (PKCS#8), which is what
/// rcgen produces and what `EncodingKey::from_rsa_der` does not take.
fn pkcs1_from_pkcs8(der: &[u8]) -> Vec<u8> {
    // (tag, header length, content length) of the DER element at the start of `d`.
    fn element(d: &[u8]) -> (u8, usize, usize) {
        let first = d[1] as usize;
        if first < 0x80 {
            return (d[0], 2, first);
        }
        let n = first & 0x7f;
        (
            d[0],
            2 + n,
            d[2..2 + n].iter().fold(0, |len, b| (len << 8) | *b as usize),
        )
    }
    let (_, header, _) = element(der); // PrivateKeyInfo SEQUENCE
    let mut rest = &der[header..];
    for _ in 0..2 {
        let (_, header, len) = element(rest); // version, algorithm: skipped
        rest = &rest[header + len..];
    }
    let (tag, header, len) = element(rest);
    assert_eq!(tag, 0x04, "privateKey OCTET STRING");
    rest[header..header + len].to_vec()
}

fn config(extra: &[(&str, String)]) -> Config {
    let base = [
        ("AUTH_MODE", "jwt"),
        ("JWT_ISSUER", ISSUER),
        ("JWT_AUDIENCE", AUDIENCE),
        ("SUBSCRIBE_TOPICS", "allowed/{clientId},users/{sub},broadcast/all"),
    ];
    config_from(extra, &[&base[..], BASE].concat()).unwrap()
}

async fn post(
    config: Config,
    issuer: FakeIssuer,
    authorization: Option<&str>,
) -> (StatusCode, axum::http::HeaderMap, Value) {
    let mut request = Request::builder().method("POST").uri("/credentials");
    if let Some(value) = authorization {
        request = request.header(header::AUTHORIZATION, value);
    }
    let response = build(config, Arc::new(issuer))
        .unwrap()
        .oneshot(request.body(Body::empty()).unwrap())
        .await
        .unwrap();
    let status = response.status();
    let headers = response.headers().clone();
    let bytes = response.into_body().collect().await.unwrap().to_bytes();
    (status, headers, serde_json::from_slice(&bytes).unwrap_or(Value::Null))
}

fn hs_config() -> Config {
    config(&[("JWT_HS256_SECRET", SECRET.into())])
}

#[tokio::test]
async fn an_hs256_token_gets_credentials_with_grants_from_its_sub() {
    let issuer = FakeIssuer::default();
    let token = hs256(&claims("alice"), SECRET);
    let (status, _, body) = post(hs_config(), issuer.clone(), Some(&format!("Bearer {token}"))).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let client_id = body["clientId"].as_str().unwrap();
    assert_eq!(body["topic"], format!("allowed/{client_id}"));
    assert_eq!(
        body["grants"]["subscribe"],
        json!([format!("allowed/{client_id}"), "users/alice", "broadcast/all"])
    );
    assert_eq!(
        issuer
            .issued()
            .into_iter()
            .map(|i| i.source_identity)
            .collect::<Vec<_>>(),
        vec![Some("alice".to_owned())]
    );
}

/// Each refused token, by name, beside the code the API must answer with.
#[allow(clippy::too_many_lines, reason = "one table: every refused token beside its code")]
fn refused_tokens() -> Vec<(&'static str, Option<String>, &'static str)> {
    let mut expired = claims("alice");
    expired["exp"] = json!(now() - 3600);
    let mut early = claims("alice");
    early["nbf"] = json!(now() + 3600);
    let mut wrong_issuer = claims("alice");
    wrong_issuer["iss"] = json!("https://evil.example");
    let mut wrong_audience = claims("alice");
    wrong_audience["aud"] = json!("another-app");
    let mut no_sub = claims("alice");
    no_sub.as_object_mut().unwrap().remove("sub");
    let unknown_kid = Signer {
        kid: "rsa-unknown".into(),
        ..Signer::rsa("x")
    }
    .sign(&claims("alice"));
    let unsigned = format!(
        "{}.{}.",
        base64_url(br#"{"alg":"none","typ":"JWT"}"#),
        base64_url(claims("alice").to_string().as_bytes())
    );

    let token = hs256(&claims("alice"), SECRET);
    vec![
        ("no header", None, "MissingToken"),
        (
            "basic auth",
            Some("Basic YWxpY2U6cGFzcw==".into()),
            "MalformedAuthorization",
        ),
        ("empty bearer", Some("Bearer ".into()), "EmptyToken"),
        ("bare bearer", Some("Bearer".into()), "EmptyToken"),
        ("not a JWT", Some("Bearer not-a-jwt".into()), "MalformedToken"),
        (
            "wrong secret",
            Some(format!(
                "Bearer {}",
                hs256(&claims("alice"), "another-secret-of-at-least-32-bytes!!")
            )),
            "InvalidSignature",
        ),
        ("tampered", Some(format!("Bearer {}x", token)), "InvalidSignature"),
        (
            "expired",
            Some(format!("Bearer {}", hs256(&expired, SECRET))),
            "TokenExpired",
        ),
        (
            "not yet valid",
            Some(format!("Bearer {}", hs256(&early, SECRET))),
            "TokenNotYetValid",
        ),
        (
            "wrong issuer",
            Some(format!("Bearer {}", hs256(&wrong_issuer, SECRET))),
            "InvalidIssuer",
        ),
        (
            "wrong audience",
            Some(format!("Bearer {}", hs256(&wrong_audience, SECRET))),
            "InvalidAudience",
        ),
        (
            "no sub",
            Some(format!("Bearer {}", hs256(&no_sub, SECRET))),
            "MissingSubject",
        ),
        ("unknown key", Some(format!("Bearer {unknown_kid}")), "UnknownKey"),
        ("alg none", Some(format!("Bearer {unsigned}")), "MalformedToken"),
    ]
}

#[tokio::test]
async fn every_refused_token_is_a_401_that_names_the_failed_check() {
    let rsa = Signer::rsa("rsa-1");
    let dir = tempfile::tempdir().unwrap();
    let jwks = dir.path().join("jwks.json");
    std::fs::write(&jwks, serde_json::to_string(&JwkSet { keys: vec![rsa.jwk()] }).unwrap()).unwrap();
    let config = config(&[
        ("JWT_HS256_SECRET", SECRET.into()),
        ("JWT_JWKS_FILE", jwks.display().to_string()),
    ]);

    let cases = refused_tokens();
    for (name, authorization, code) in cases {
        let issuer = FakeIssuer::default();
        let (status, headers, body) = post(config.clone(), issuer.clone(), authorization.as_deref()).await;
        assert_eq!(status, StatusCode::UNAUTHORIZED, "{name}: {body}");
        assert_eq!(
            headers[header::WWW_AUTHENTICATE],
            "Bearer error=\"invalid_token\"",
            "{name}"
        );
        assert_eq!(body["error"]["code"], code, "{name}: {body}");
        if let Some(value) = &authorization
            && let Some(token) = value.strip_prefix("Bearer ")
            && token.len() > 10
        {
            assert!(!body.to_string().contains(token), "{name}: the token is echoed");
        }
        assert!(issuer.issued().is_empty(), "{name}: credentials were issued");
    }
}

fn base64_url(bytes: &[u8]) -> String {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    let mut out = String::new();
    for chunk in bytes.chunks(3) {
        let n = chunk
            .iter()
            .enumerate()
            .fold(0u32, |acc, (i, b)| acc | (u32::from(*b) << (16 - 8 * i)));
        for i in 0..=chunk.len() {
            out.push(ALPHABET[((n >> (18 - 6 * i)) & 63) as usize] as char);
        }
    }
    out
}

#[tokio::test]
async fn an_hs256_token_is_refused_when_only_public_keys_are_configured() {
    // Algorithm confusion: an HS256 token "signed" with a public key must not pass.
    let rsa = Signer::rsa("rsa-1");
    let dir = tempfile::tempdir().unwrap();
    let jwks = dir.path().join("jwks.json");
    std::fs::write(&jwks, serde_json::to_string(&JwkSet { keys: vec![rsa.jwk()] }).unwrap()).unwrap();
    let config = config(&[("JWT_JWKS_FILE", jwks.display().to_string())]);
    let forged = hs256(&claims("mallory"), &serde_json::to_string(&rsa.jwk()).unwrap());
    let (status, _, body) = post(config.clone(), FakeIssuer::default(), Some(&format!("Bearer {forged}"))).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert_eq!(body["error"]["code"], "UnsupportedAlgorithm");
    let (status, _, _) = post(
        config,
        FakeIssuer::default(),
        Some(&format!("Bearer {}", rsa.sign(&claims("alice")))),
    )
    .await;
    assert_eq!(status, StatusCode::OK);
}

/// A JWKS endpoint on port 0 whose key set the test can rotate, and which can be
/// switched to hang like an issuer having a bad day; counts fetches.
#[derive(Clone, Default)]
struct JwksServer {
    keys: Arc<Mutex<Vec<Jwk>>>,
    fetches: Arc<Mutex<u32>>,
    hang: Arc<std::sync::atomic::AtomicBool>,
}

impl JwksServer {
    async fn start(&self) -> String {
        let server = self.clone();
        let app = axum::Router::new().route(
            "/.well-known/jwks.json",
            axum::routing::get(move || {
                let server = server.clone();
                async move {
                    *server.fetches.lock().unwrap() += 1;
                    if server.hang.load(std::sync::atomic::Ordering::SeqCst) {
                        std::future::pending::<()>().await;
                    }
                    axum::Json(JwkSet {
                        keys: server.keys.lock().unwrap().clone(),
                    })
                }
            }),
        );
        format!("http://{}/.well-known/jwks.json", common::serve(app).await)
    }
}

#[tokio::test]
async fn a_jwks_url_is_cached_and_refetched_when_a_new_key_appears() {
    let (old, new) = (Signer::ec("ec-old"), Signer::rsa("rsa-new"));
    let jwks = JwksServer::default();
    jwks.keys.lock().unwrap().push(old.jwk());
    let url = jwks.start().await;
    let app = build(config(&[("JWT_JWKS_URL", url)]), Arc::new(FakeIssuer::default())).unwrap();
    let send = |token: String| {
        let app = app.clone();
        async move {
            let request = Request::builder()
                .method("POST")
                .uri("/credentials")
                .header(header::AUTHORIZATION, format!("Bearer {token}"))
                .body(Body::empty())
                .unwrap();
            app.oneshot(request).await.unwrap().status()
        }
    };
    assert_eq!(send(old.sign(&claims("alice"))).await, StatusCode::OK);
    assert_eq!(send(old.sign(&claims("bob"))).await, StatusCode::OK);
    assert_eq!(*jwks.fetches.lock().unwrap(), 1, "the key set is cached");

    // The issuer rotates: a token with the new kid makes the verifier fetch again.
    jwks.keys.lock().unwrap().push(new.jwk());
    assert_eq!(send(new.sign(&claims("carol"))).await, StatusCode::OK);
    assert_eq!(*jwks.fetches.lock().unwrap(), 2);

    // Made-up kids do not cause a fetch each.
    let made_up = Signer {
        kid: "made-up".into(),
        ..Signer::rsa("x")
    };
    assert_eq!(send(made_up.sign(&claims("eve"))).await, StatusCode::UNAUTHORIZED);
    assert_eq!(send(made_up.sign(&claims("eve"))).await, StatusCode::UNAUTHORIZED);
    assert!(*jwks.fetches.lock().unwrap() <= 3);
}

#[tokio::test]
async fn an_unreachable_jwks_is_a_503() {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let config = config(&[("JWT_JWKS_URL", format!("http://127.0.0.1:{port}/jwks.json"))]);
    let token = Signer::rsa("k").sign(&claims("alice"));
    let (status, headers, body) = post(config, FakeIssuer::default(), Some(&format!("Bearer {token}"))).await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE, "{body}");
    assert_eq!(body["error"]["code"], "AuthUnavailable");
    assert!(!headers.contains_key(header::WWW_AUTHENTICATE));
}

#[tokio::test]
async fn a_sub_that_cannot_be_a_topic_level_is_refused_with_403() {
    for sub in ["a/b", "#", "+", "*", "alice bob", "$aws"] {
        let issuer = FakeIssuer::default();
        let token = hs256(&claims(sub), SECRET);
        let (status, _, body) = post(hs_config(), issuer.clone(), Some(&format!("Bearer {token}"))).await;
        assert_eq!(status, StatusCode::FORBIDDEN, "{sub:?}: {body}");
        assert_eq!(body["error"]["code"], "InvalidSubject");
        assert!(issuer.issued().is_empty());
    }
}

#[tokio::test]
async fn a_sub_sts_would_refuse_is_recorded_as_a_hashed_source_identity() {
    let issuer = FakeIssuer::default();
    let config = config(&[
        ("JWT_HS256_SECRET", SECRET.into()),
        ("SUBSCRIBE_TOPICS", "allowed/{clientId}".into()),
    ]);
    let token = hs256(&claims("auth0|5f7c8ec7c33c6c004bbafe82"), SECRET);
    let (status, _, _) = post(config, issuer.clone(), Some(&format!("Bearer {token}"))).await;
    assert_eq!(status, StatusCode::OK);
    let recorded = issuer.issued()[0].source_identity.clone().unwrap();
    assert!(recorded.starts_with("sub-") && recorded.len() == 36, "{recorded}");
}

// ---- Security audit regressions (issue 11) ----

#[tokio::test]
async fn with_an_audience_configured_a_token_without_aud_is_refused() {
    let mut no_aud = claims("alice");
    no_aud.as_object_mut().unwrap().remove("aud");
    let token = hs256(&no_aud, SECRET);
    let (status, _, body) = post(hs_config(), FakeIssuer::default(), Some(&format!("Bearer {token}"))).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED, "{body}");
    assert_eq!(body["error"]["code"], "MissingAudience");

    let mut other = claims("alice");
    other["aud"] = json!(["someone-else", "another"]);
    let token = hs256(&other, SECRET);
    let (status, _, body) = post(hs_config(), FakeIssuer::default(), Some(&format!("Bearer {token}"))).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED, "{body}");
    assert_eq!(body["error"]["code"], "InvalidAudience");

    let mut listed = claims("alice");
    listed["aud"] = json!(["someone-else", AUDIENCE]);
    let token = hs256(&listed, SECRET);
    let (status, _, body) = post(hs_config(), FakeIssuer::default(), Some(&format!("Bearer {token}"))).await;
    assert_eq!(status, StatusCode::OK, "an aud array naming us is accepted: {body}");
}

/// Claims shaped like a Cognito user pool access token: `client_id`, no `aud`.
fn cognito_access(sub: &str, client_id: &str) -> Value {
    json!({"sub": sub, "iss": ISSUER, "client_id": client_id, "token_use": "access", "exp": now() + 600, "iat": now()})
}

#[tokio::test]
async fn cognito_access_tokens_are_accepted_by_client_id_and_nothing_else() {
    let with_client = || {
        config(&[
            ("JWT_HS256_SECRET", SECRET.into()),
            ("JWT_AUDIENCE", String::new()),
            ("JWT_CLIENT_ID", "app-client-1".into()),
        ])
    };
    let send = |claims: Value| {
        let token = hs256(&claims, SECRET);
        async move { post(with_client(), FakeIssuer::default(), Some(&format!("Bearer {token}"))).await }
    };
    let (status, _, body) = send(cognito_access("alice", "app-client-1")).await;
    assert_eq!(status, StatusCode::OK, "{body}");

    let (status, _, body) = send(cognito_access("alice", "app-client-2")).await;
    assert_eq!(
        (status, body["error"]["code"].clone()),
        (StatusCode::UNAUTHORIZED, json!("InvalidAudience"))
    );

    let mut id_token_use = cognito_access("alice", "app-client-1");
    id_token_use["token_use"] = json!("id");
    let (status, _, _) = send(id_token_use).await;
    assert_eq!(
        status,
        StatusCode::UNAUTHORIZED,
        "client_id counts only on an access token"
    );

    let (status, _, body) = send(claims("alice")).await;
    assert_eq!(
        (status, body["error"]["code"].clone()),
        (StatusCode::UNAUTHORIZED, json!("InvalidAudience")),
        "an ID token for another audience"
    );
}

#[tokio::test]
async fn a_sub_sts_cannot_carry_in_a_policy_gets_a_403_never_a_5xx() {
    for sub in ["用户", "alice😀", "Ωmega"] {
        let issuer = FakeIssuer::default();
        let token = hs256(&claims(sub), SECRET);
        let (status, _, body) = post(hs_config(), issuer.clone(), Some(&format!("Bearer {token}"))).await;
        assert_eq!(status, StatusCode::FORBIDDEN, "{sub:?}: {body}");
        assert_eq!(body["error"]["code"], "InvalidSubject");
        assert!(issuer.issued().is_empty(), "STS was not asked");
    }
}

#[test]
fn jwks_urls_must_be_https_except_on_loopback_and_the_ttl_has_a_floor() {
    let read = |extra: &[(&str, &str)]| {
        config_from(
            extra,
            &[&[("AUTH_MODE", "jwt"), ("JWT_ISSUER", ISSUER)][..], BASE].concat(),
        )
    };
    for bad in [
        "http://issuer.example/jwks.json",
        "http://10.0.0.1/jwks.json",
        "ftp://x/jwks",
        "jwks.json",
    ] {
        let err = read(&[("JWT_JWKS_URL", bad)]).unwrap_err();
        assert_eq!(err.variable, "JWT_JWKS_URL", "{bad}");
    }
    for good in [
        "https://issuer.example/jwks.json",
        "http://127.0.0.1:9/jwks.json",
        "http://localhost:9/jwks.json",
        "http://[::1]:9/j",
    ] {
        assert!(read(&[("JWT_JWKS_URL", good)]).is_ok(), "{good}");
    }
    for ttl in ["0", "59", "86401"] {
        let err = read(&[("JWT_JWKS_URL", "https://i.example/j"), ("JWT_JWKS_TTL_SECONDS", ttl)]).unwrap_err();
        assert_eq!(err.variable, "JWT_JWKS_TTL_SECONDS", "{ttl}");
    }
    let err = read(&[("JWT_HS256_SECRET_ARN", "not-an-arn")]).unwrap_err();
    assert_eq!(err.variable, "JWT_HS256_SECRET_ARN");
    let err = read(&[
        (
            "JWT_HS256_SECRET_ARN",
            "arn:aws:secretsmanager:us-east-1:123456789012:secret:k-AbCdEf",
        ),
        ("JWT_HS256_SECRET", SECRET),
    ])
    .unwrap_err();
    assert_eq!(err.variable, "JWT_HS256_SECRET_ARN", "one key source, not both");
}

/// A verifier whose cached keys are always stale (TTL 0, which the configuration
/// refuses but the verifier must survive), so every request would refresh.
fn stale_verifier(url: String) -> serverless_websockets_vending::auth::JwtVerifier {
    let Config {
        auth: serverless_websockets_vending::config::AuthSettings::Jwt(mut jwt),
        ..
    } = config(&[("JWT_JWKS_URL", url)])
    else {
        panic!("jwt mode")
    };
    jwt.jwks_ttl = Duration::ZERO;
    serverless_websockets_vending::auth::JwtVerifier::new(&jwt).unwrap()
}

/// Verifies `n` tokens of different users at once; the verdicts, in completion order.
async fn verify_concurrently(
    verifier: &Arc<serverless_websockets_vending::auth::JwtVerifier>,
    signer: &Signer,
    n: usize,
) -> Vec<Result<serverless_websockets_vending::auth::Caller, serverless_websockets_vending::auth::AuthError>> {
    let mut tasks = tokio::task::JoinSet::new();
    for i in 0..n {
        let (verifier, token) = (verifier.clone(), signer.sign(&claims(&format!("user{i}"))));
        tasks.spawn(async move { verifier.verify(&token).await });
    }
    tasks.join_all().await
}

#[tokio::test]
async fn a_known_kid_never_waits_for_a_hanging_issuer() {
    let signer = Signer::rsa("k1");
    let jwks = JwksServer::default();
    jwks.keys.lock().unwrap().push(signer.jwk());
    let verifier = Arc::new(stale_verifier(jwks.start().await));
    assert!(verifier.verify(&signer.sign(&claims("alice"))).await.is_ok());

    jwks.hang.store(true, std::sync::atomic::Ordering::SeqCst);
    let started = std::time::Instant::now();
    for result in verify_concurrently(&verifier, &signer, 4).await {
        assert!(result.is_ok(), "the cached key serves while the issuer hangs");
    }
    // Before the fix each request refetched behind a lock with a 5 s timeout: 5, 10, 15, 20 s.
    assert!(
        started.elapsed() < Duration::from_secs(4),
        "took {:?}",
        started.elapsed()
    );
    assert!(
        *jwks.fetches.lock().unwrap() <= 2,
        "one background refresh in flight at a time"
    );
}

#[tokio::test]
async fn without_cached_keys_concurrent_requests_share_one_fetch_and_fail_together() {
    let jwks = JwksServer::default();
    jwks.hang.store(true, std::sync::atomic::Ordering::SeqCst);
    let verifier = Arc::new(stale_verifier(jwks.start().await));
    let signer = Signer::ec("k1");
    let started = std::time::Instant::now();
    for result in verify_concurrently(&verifier, &signer, 4).await {
        assert_eq!(result.unwrap_err().code(), "KeysUnavailable");
    }
    assert!(
        started.elapsed() < Duration::from_secs(9),
        "all waited on one fetch: {:?}",
        started.elapsed()
    );
    assert_eq!(*jwks.fetches.lock().unwrap(), 1, "single flight");
    // Right after the failure, a request does not start another fetch: it fails fast.
    let again = std::time::Instant::now();
    assert!(verifier.verify(&signer.sign(&claims("late"))).await.is_err());
    assert!(again.elapsed() < Duration::from_secs(1));
}
