//! Resume tokens through the vending API's router: the same client ID with fresh
//! credentials, every refusal (malformed, tampered, foreign, expired, another
//! caller's), in both auth modes, and the token kept out of logs and caches.

mod common;

use std::sync::Arc;
use std::time::{Duration, SystemTime};

use axum::body::Body;
use axum::http::{Request, StatusCode, header};
use common::vending::{BASE, FakeIssuer, config_from};
use http_body_util::BodyExt;
use serde_json::{Value, json};
use serverless_websockets_core::client_id::ClientId;
use serverless_websockets_core::resume::{ResumeClaims, ResumeKey, ResumeKeys};
use serverless_websockets_vending::api::build;
use serverless_websockets_vending::config::Config;
use tower::ServiceExt;

const KEY: &str = "a-resume-key-of-at-least-32-bytes-long!!";
const OTHER_KEY: &str = "another-resume-key-of-at-least-32-bytes!";
const ISSUER: &str = "https://issuer.example";
const JWT_SECRET: &str = "a-shared-secret-of-at-least-32-bytes!!";

fn now() -> u64 {
    SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

fn config(extra: &[(&str, &str)]) -> Config {
    let base = [("RESUME_KEY", KEY)];
    config_from(extra, &[&base[..], BASE].concat()).unwrap()
}

fn jwt_config() -> Config {
    config(&[
        ("AUTH_MODE", "jwt"),
        ("JWT_ISSUER", ISSUER),
        ("JWT_HS256_SECRET", JWT_SECRET),
        ("SUBSCRIBE_TOPICS", "allowed/{clientId},users/{sub}"),
    ])
}

fn bearer(sub: &str) -> String {
    let claims = json!({"sub": sub, "iss": ISSUER, "exp": now() + 600, "iat": now()});
    let token = jsonwebtoken::encode(
        &jsonwebtoken::Header::new(jsonwebtoken::Algorithm::HS256),
        &claims,
        &jsonwebtoken::EncodingKey::from_secret(JWT_SECRET.as_bytes()),
    )
    .unwrap();
    format!("Bearer {token}")
}

/// A router that lives across requests (the resume key is per configuration).
struct Api(axum::Router);

impl Api {
    fn new(config: Config) -> Self {
        Self(build(config, Arc::new(FakeIssuer::default())).unwrap())
    }

    async fn post(
        &self,
        authorization: Option<&str>,
        body: Option<Value>,
    ) -> (StatusCode, axum::http::HeaderMap, Value) {
        let mut request = Request::builder().method("POST").uri("/credentials");
        if let Some(value) = authorization {
            request = request.header(header::AUTHORIZATION, value);
        }
        let body = match body {
            Some(json) => {
                request = request.header(header::CONTENT_TYPE, "application/json");
                Body::from(json.to_string())
            }
            None => Body::empty(),
        };
        let response = self.0.clone().oneshot(request.body(body).unwrap()).await.unwrap();
        let status = response.status();
        let headers = response.headers().clone();
        let bytes = response.into_body().collect().await.unwrap().to_bytes();
        (status, headers, serde_json::from_slice(&bytes).unwrap_or(Value::Null))
    }

    async fn resume(&self, authorization: Option<&str>, token: &str) -> (StatusCode, axum::http::HeaderMap, Value) {
        self.post(authorization, Some(json!({"resumeToken": token}))).await
    }
}

fn code(body: &Value) -> &str {
    body["error"]["code"]
        .as_str()
        .unwrap_or_else(|| panic!("no error code in {body}"))
}

#[tokio::test]
async fn a_resume_gives_fresh_credentials_for_the_same_client_id_and_a_new_token() {
    let api = Api::new(config(&[]));
    let (status, headers, first) = api.post(None, None).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(headers[header::CACHE_CONTROL], "no-store");
    let token = first["resumeToken"].as_str().expect("a resume token").to_owned();
    let expires = first["resumeExpiration"].as_str().unwrap();
    let expires = serverless_websockets_core::wire::parse_iso8601(expires).unwrap();
    let day = expires.duration_since(SystemTime::now()).unwrap();
    assert!(
        day > Duration::from_secs(86_000) && day <= Duration::from_secs(86_400),
        "{day:?}"
    );

    let (status, headers, second) = api.resume(None, &token).await;
    assert_eq!(status, StatusCode::OK, "{second}");
    assert_eq!(headers[header::CACHE_CONTROL], "no-store");
    assert_eq!(second["clientId"], first["clientId"]);
    assert_eq!(second["topic"], first["topic"]);
    assert_eq!(second["grants"], first["grants"]);
    assert!(second["url"].as_str().unwrap().starts_with("wss://"));
    let next = second["resumeToken"].as_str().unwrap();
    assert_ne!(next, token, "every resume hands out a new token");
    // The new token works too.
    let (status, _, third) = api.resume(None, next).await;
    assert_eq!((status, &third["clientId"]), (StatusCode::OK, &first["clientId"]));
}

#[tokio::test]
async fn malformed_tampered_and_foreign_tokens_are_401_invalid_resume_token() {
    let api = Api::new(config(&[]));
    let (_, _, vended) = api.post(None, None).await;
    let token = vended["resumeToken"].as_str().unwrap();
    let mut tampered = token.to_owned();
    let last = tampered.pop().unwrap();
    tampered.push(if last == 'A' { 'B' } else { 'A' });
    let foreign = Api::new(config(&[("RESUME_KEY", OTHER_KEY)]));
    let (_, _, foreign_vended) = foreign.post(None, None).await;
    for bad in [
        "",
        "garbage",
        "v1.e30.AAAA",
        &tampered,
        foreign_vended["resumeToken"].as_str().unwrap(),
    ] {
        let (status, headers, body) = api.resume(None, bad).await;
        assert_eq!(
            (status, code(&body)),
            (StatusCode::UNAUTHORIZED, "InvalidResumeToken"),
            "{bad:?}"
        );
        assert_eq!(headers[header::CACHE_CONTROL], "no-store");
    }
    let (status, _, body) = api.post(None, Some(json!({"resumeToken": 42}))).await;
    assert_eq!((status, code(&body)), (StatusCode::UNAUTHORIZED, "InvalidResumeToken"));
}

#[tokio::test]
async fn an_expired_token_is_401_resume_token_expired() {
    let api = Api::new(config(&[]));
    let keys = ResumeKeys::new(ResumeKey::new(KEY.as_bytes().to_vec()).unwrap(), None);
    let expired = keys.issue(&ResumeClaims {
        client_id: ClientId::generate(),
        sub: None,
        issued_at: now() - 100_000,
        expires_at: now() - 10,
        first_issued_at: now() - 100_000,
        narrow: None,
    });
    let (status, _, body) = api.resume(None, &expired).await;
    assert_eq!((status, code(&body)), (StatusCode::UNAUTHORIZED, "ResumeTokenExpired"));
}

#[tokio::test]
async fn in_jwt_mode_a_resume_needs_a_valid_token_of_the_same_sub() {
    let api = Api::new(jwt_config());
    let alice = bearer("alice");
    let (status, _, vended) = api.post(Some(&alice), None).await;
    assert_eq!(status, StatusCode::OK, "{vended}");
    let token = vended["resumeToken"].as_str().unwrap();

    let (status, _, resumed) = api.resume(Some(&alice), token).await;
    assert_eq!(status, StatusCode::OK, "{resumed}");
    assert_eq!(resumed["clientId"], vended["clientId"]);
    assert_eq!(resumed["grants"], vended["grants"]);

    let (status, _, body) = api.resume(Some(&bearer("mallory")), token).await;
    assert_eq!((status, code(&body)), (StatusCode::FORBIDDEN, "ResumeForbidden"));
    let (status, _, body) = api.resume(None, token).await;
    assert_eq!((status, code(&body)), (StatusCode::UNAUTHORIZED, "MissingToken"));
}

#[tokio::test]
async fn a_token_issued_without_a_sub_does_not_resume_for_an_authenticated_caller() {
    let keys = ResumeKeys::new(ResumeKey::new(KEY.as_bytes().to_vec()).unwrap(), None);
    let anonymous = keys.issue(&ResumeClaims {
        client_id: ClientId::generate(),
        sub: None,
        issued_at: now(),
        expires_at: now() + 600,
        first_issued_at: now(),
        narrow: None,
    });
    let api = Api::new(jwt_config());
    let (status, _, body) = api.resume(Some(&bearer("alice")), &anonymous).await;
    assert_eq!((status, code(&body)), (StatusCode::FORBIDDEN, "ResumeForbidden"));
}

#[tokio::test]
async fn the_resume_token_ttl_is_configurable_and_bounded() {
    let api = Api::new(config(&[("RESUME_TOKEN_TTL_SECONDS", "600")]));
    let (_, _, vended) = api.post(None, None).await;
    let expires =
        serverless_websockets_core::wire::parse_iso8601(vended["resumeExpiration"].as_str().unwrap()).unwrap();
    assert!(expires.duration_since(SystemTime::now()).unwrap() <= Duration::from_secs(600));
    for bad in ["0", "299", "604801", "soon"] {
        let err = config_from(&[("RESUME_TOKEN_TTL_SECONDS", bad)], BASE).unwrap_err();
        assert_eq!(err.variable, "RESUME_TOKEN_TTL_SECONDS", "{bad}");
    }
    let short = config_from(&[("RESUME_KEY", "too short")], BASE).unwrap_err();
    assert_eq!(short.variable, "RESUME_KEY");
}

#[tokio::test]
async fn serve_reads_the_resume_key_by_arn_and_a_token_survives_a_key_rotation() {
    use common::tools::{Moto, ServeProcess, secretsmanager};
    let moto = Moto::start();
    let first_key = "the-first-resume-key-from-secrets-manager-0123";
    let created = secretsmanager(
        &moto,
        &["create-secret", "--name", "resume", "--secret-string", first_key],
    );
    let arn = created["ARN"].as_str().unwrap().to_owned();
    let settings = [("AUTH_MODE", "none"), ("RESUME_KEY_SECRET_ARN", arn.as_str())];

    let serve = ServeProcess::start(&moto, &settings);
    let client = reqwest::Client::new();
    let vended: Value = client.post(&serve.url).send().await.unwrap().json().await.unwrap();
    let token = vended["resumeToken"].as_str().unwrap().to_owned();
    let log = serve.stop();

    // Rotate: the new value becomes AWSCURRENT, the first one AWSPREVIOUS.
    let second_key = "the-second-resume-key-from-secrets-manager-456";
    secretsmanager(
        &moto,
        &["put-secret-value", "--secret-id", &arn, "--secret-string", second_key],
    );
    let serve = ServeProcess::start(&moto, &settings);
    let resumed = client
        .post(&serve.url)
        .json(&json!({"resumeToken": token}))
        .send()
        .await
        .unwrap();
    assert_eq!(resumed.status(), StatusCode::OK.as_u16());
    let resumed: Value = resumed.json().await.unwrap();
    assert_eq!(
        resumed["clientId"], vended["clientId"],
        "same client ID after the rotation"
    );
    let next = resumed["resumeToken"].as_str().unwrap().to_owned();
    let log = log + &serve.stop();
    assert!(log.contains("read a secret from Secrets Manager"), "{log}");
    for secret in [first_key, second_key, token.as_str(), next.as_str()] {
        assert!(!log.contains(secret), "a key or a resume token reached the log");
    }
}
