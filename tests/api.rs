//! The vending API through `Router::oneshot`, with a fake credential issuer:
//! every status code the API contract names.

mod common;

use std::sync::Arc;
use std::time::Duration;

use axum::body::Body;
use axum::http::{Request, StatusCode, header};
use common::vending::{BASE, FakeIssuer, config_from};
use http_body_util::BodyExt;
use serde_json::Value;
use serverless_websockets_core::policy::{Decision, PolicyDocument, evaluate};
use serverless_websockets_vending::api::{MAX_BODY_BYTES, build};
use serverless_websockets_vending::config::Config;
use serverless_websockets_vending::issuer::StsError;
use tower::ServiceExt;

fn config(extra: &[(&str, &str)]) -> Config {
    let base = [
        ("AWS_REGION", "eu-west-1"),
        ("IOT_ENDPOINT", "abc-ats.iot.eu-west-1.amazonaws.com"),
        ("CREDENTIAL_DURATION_SECONDS", "1800"),
    ];
    config_from(extra, &[&base[..], BASE].concat()).unwrap()
}

async fn send(issuer: FakeIssuer, request: Request<Body>) -> (StatusCode, axum::http::HeaderMap, Value) {
    send_with(config(&[]), issuer, request).await
}

async fn send_with(
    config: Config,
    issuer: FakeIssuer,
    request: Request<Body>,
) -> (StatusCode, axum::http::HeaderMap, Value) {
    let response = build(config, Arc::new(issuer)).unwrap().oneshot(request).await.unwrap();
    let status = response.status();
    let headers = response.headers().clone();
    let bytes = response.into_body().collect().await.unwrap().to_bytes();
    let body = if bytes.is_empty() {
        Value::Null
    } else {
        serde_json::from_slice(&bytes).unwrap()
    };
    (status, headers, body)
}

fn post(path: &str) -> axum::http::request::Builder {
    Request::builder().method("POST").uri(path)
}

fn error_code(body: &Value) -> &str {
    body["error"]["code"]
        .as_str()
        .unwrap_or_else(|| panic!("no error code in {body}"))
}

#[tokio::test]
async fn a_post_without_a_body_returns_credentials_a_presigned_url_and_no_store() {
    let issuer = FakeIssuer::default();
    let (status, headers, body) = send(issuer.clone(), post("/credentials").body(Body::empty()).unwrap()).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(headers[header::CACHE_CONTROL], "no-store");
    assert_eq!(headers[header::CONTENT_TYPE], "application/json");
    assert!(headers.contains_key("x-request-id"));

    let client_id = body["clientId"].as_str().unwrap();
    assert_eq!(client_id.len(), 32);
    assert_eq!(body["region"], "eu-west-1");
    assert_eq!(body["endpoint"], "wss://abc-ats.iot.eu-west-1.amazonaws.com");
    assert_eq!(body["topic"], format!("allowed/{client_id}"));
    assert_eq!(
        body["grants"]["subscribe"],
        serde_json::json!([format!("allowed/{client_id}")])
    );
    assert_eq!(body["grants"]["publish"], serde_json::json!([]));
    assert_eq!(body["credentials"]["accessKeyId"], "ASIAFAKE");
    assert_eq!(body["credentials"]["sessionToken"], "token/with+chars=");
    assert_eq!(body["credentials"]["expiration"], "2030-01-01T00:00:00Z");
    let url = body["url"].as_str().unwrap();
    assert!(url.starts_with("wss://abc-ats.iot.eu-west-1.amazonaws.com/mqtt?X-Amz-Algorithm=AWS4-HMAC-SHA256"));
    assert!(url.contains("%2Feu-west-1%2Fiotdevicegateway%2Faws4_request"));
    assert!(url.ends_with("&X-Amz-Security-Token=token%2Fwith%2Bchars%3D"));

    let issued = issuer.issued();
    assert_eq!(issued.len(), 1);
    let (issued_for, policy, duration) = (&issued[0].client_id, &issued[0].policy, &issued[0].duration);
    assert_eq!(issued_for, client_id);
    assert_eq!(*duration, Duration::from_secs(1800));
    let policy = PolicyDocument::parse(policy).unwrap();
    let p = std::slice::from_ref(&policy);
    let arn = "arn:aws:iot:eu-west-1:123456789012";
    assert_eq!(
        evaluate(p, "iot:Connect", &format!("{arn}:client/{client_id}")),
        Decision::Allow
    );
    assert_eq!(
        evaluate(p, "iot:Subscribe", &format!("{arn}:topicfilter/allowed/#")),
        Decision::NotApplicable
    );
}

#[tokio::test]
async fn every_request_gets_a_fresh_client_id() {
    let app = build(config(&[]), Arc::new(FakeIssuer::default())).unwrap();
    let mut ids = std::collections::HashSet::new();
    for _ in 0..20 {
        let response = app
            .clone()
            .oneshot(post("/credentials").body(Body::empty()).unwrap())
            .await
            .unwrap();
        let body: Value = serde_json::from_slice(&response.into_body().collect().await.unwrap().to_bytes()).unwrap();
        assert!(ids.insert(body["clientId"].as_str().unwrap().to_owned()));
    }
}

#[tokio::test]
async fn the_original_projects_paths_also_vend() {
    for path in ["/iotkeys", "/"] {
        let (status, _, body) = send(FakeIssuer::default(), post(path).body(Body::empty()).unwrap()).await;
        assert_eq!(status, StatusCode::OK, "{path}");
        assert!(body["clientId"].is_string());
    }
}

#[tokio::test]
async fn a_json_object_with_unknown_fields_is_accepted() {
    let request = post("/credentials")
        .header(header::CONTENT_TYPE, "application/json; charset=utf-8")
        .body(Body::from(r#"{"someFutureOption": true}"#))
        .unwrap();
    let (status, _, _) = send(FakeIssuer::default(), request).await;
    assert_eq!(status, StatusCode::OK);
}

#[tokio::test]
async fn malformed_json_is_a_400_and_nothing_is_issued() {
    for body in ["{", "[1,2]", "\"text\"", "{\"a\":}"] {
        let issuer = FakeIssuer::default();
        let request = post("/credentials")
            .header(header::CONTENT_TYPE, "application/json")
            .body(Body::from(body))
            .unwrap();
        let (status, headers, json) = send(issuer.clone(), request).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
        assert_eq!(error_code(&json), "InvalidJson");
        assert!(headers.contains_key("x-request-id"));
        assert!(issuer.issued().is_empty());
    }
}

#[tokio::test]
async fn a_body_that_is_not_declared_json_is_a_415() {
    for content_type in [Some("text/plain"), Some("application/x-www-form-urlencoded"), None] {
        let mut request = post("/credentials");
        if let Some(ct) = content_type {
            request = request.header(header::CONTENT_TYPE, ct);
        }
        let (status, _, json) = send(FakeIssuer::default(), request.body(Body::from("{}")).unwrap()).await;
        assert_eq!(status, StatusCode::UNSUPPORTED_MEDIA_TYPE, "{content_type:?}");
        assert_eq!(error_code(&json), "UnsupportedMediaType");
    }
}

#[tokio::test]
async fn a_body_over_16_kib_is_a_413_whether_or_not_its_length_is_declared() {
    let big = format!("{{\"pad\":\"{}\"}}", "x".repeat(MAX_BODY_BYTES));
    let declared = post("/credentials")
        .header(header::CONTENT_TYPE, "application/json")
        .body(Body::from(big.clone()))
        .unwrap();
    let (status, _, json) = send(FakeIssuer::default(), declared).await;
    assert_eq!(status, StatusCode::PAYLOAD_TOO_LARGE);
    assert_eq!(error_code(&json), "PayloadTooLarge");

    let chunks = futures_stream(big.into_bytes());
    let streamed = post("/credentials")
        .header(header::CONTENT_TYPE, "application/json")
        .body(Body::from_stream(chunks))
        .unwrap();
    let (status, _, _) = send(FakeIssuer::default(), streamed).await;
    assert_eq!(status, StatusCode::PAYLOAD_TOO_LARGE);
}

/// A body without `Content-Length`, delivered in 1 KiB chunks.
fn futures_stream(bytes: Vec<u8>) -> impl futures_core::Stream<Item = Result<Vec<u8>, std::io::Error>> + Send {
    let chunks: Vec<Result<Vec<u8>, std::io::Error>> = bytes.chunks(1024).map(|c| Ok(c.to_vec())).collect();
    tokio_stream::iter(chunks)
}

#[tokio::test]
async fn a_wrong_method_is_a_405_that_names_the_allowed_ones() {
    for method in ["GET", "PUT", "DELETE", "PATCH"] {
        let request = Request::builder()
            .method(method)
            .uri("/credentials")
            .body(Body::empty())
            .unwrap();
        let (status, headers, json) = send(FakeIssuer::default(), request).await;
        assert_eq!(status, StatusCode::METHOD_NOT_ALLOWED, "{method}");
        assert_eq!(headers[header::ALLOW], "POST, OPTIONS");
        assert_eq!(error_code(&json), "MethodNotAllowed");
    }
}

#[tokio::test]
async fn an_unknown_path_is_a_json_404() {
    let (status, headers, json) = send(FakeIssuer::default(), post("/nope").body(Body::empty()).unwrap()).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert_eq!(error_code(&json), "NotFound");
    assert!(headers.contains_key("x-request-id"));
}

#[tokio::test]
async fn sts_throttling_is_a_503_with_retry_after() {
    let issuer = FakeIssuer::failing(StsError::Throttled {
        code: "Throttling".into(),
    });
    let (status, headers, json) = send(issuer, post("/credentials").body(Body::empty()).unwrap()).await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(headers[header::RETRY_AFTER], "1");
    assert_eq!(error_code(&json), "Throttled");
}

#[tokio::test]
async fn sts_refusing_our_request_is_a_500_misconfigured_without_the_detail() {
    let issuer = FakeIssuer::failing(StsError::Misconfigured {
        code: "AccessDenied".into(),
        message: "User arn:aws:sts::123456789012:assumed-role/secret-detail is not authorized".into(),
    });
    let (status, _, json) = send(issuer, post("/credentials").body(Body::empty()).unwrap()).await;
    assert_eq!(status, StatusCode::INTERNAL_SERVER_ERROR);
    assert_eq!(error_code(&json), "Misconfigured");
    assert!(
        !json.to_string().contains("secret-detail"),
        "internal detail leaked: {json}"
    );
}

#[tokio::test]
async fn sts_timeouts_and_faults_are_a_502() {
    for err in [
        StsError::Timeout("t".into()),
        StsError::Unavailable("InternalFailure".into()),
    ] {
        let issuer = FakeIssuer::failing(err);
        let (status, _, json) = send(issuer, post("/credentials").body(Body::empty()).unwrap()).await;
        assert_eq!(status, StatusCode::BAD_GATEWAY);
        assert_eq!(error_code(&json), "UpstreamUnavailable");
        assert!(!json.to_string().contains("InternalFailure"));
    }
}

#[tokio::test]
async fn health_answers_get() {
    let request = Request::builder().uri("/health").body(Body::empty()).unwrap();
    let (status, _, json) = send(FakeIssuer::default(), request).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(json["status"], "ok");
}

#[tokio::test]
async fn a_cors_preflight_from_an_allowed_origin_is_answered() {
    let config = config(&[("CORS_ALLOW_ORIGINS", "https://app.example")]);
    let preflight = Request::builder()
        .method("OPTIONS")
        .uri("/credentials")
        .header(header::ORIGIN, "https://app.example")
        .header(header::ACCESS_CONTROL_REQUEST_METHOD, "POST")
        .header(header::ACCESS_CONTROL_REQUEST_HEADERS, "content-type")
        .body(Body::empty())
        .unwrap();
    let (status, headers, _) = send_with(config.clone(), FakeIssuer::default(), preflight).await;
    assert!(status.is_success(), "{status}");
    assert_eq!(headers[header::ACCESS_CONTROL_ALLOW_ORIGIN], "https://app.example");
    assert!(
        headers[header::ACCESS_CONTROL_ALLOW_METHODS]
            .to_str()
            .unwrap()
            .contains("POST")
    );

    let actual = post("/credentials")
        .header(header::ORIGIN, "https://app.example")
        .body(Body::empty())
        .unwrap();
    let (status, headers, _) = send_with(config, FakeIssuer::default(), actual).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(headers[header::ACCESS_CONTROL_ALLOW_ORIGIN], "https://app.example");
}

#[tokio::test]
async fn a_cors_preflight_from_another_origin_gets_no_allow_origin() {
    let config = config(&[("CORS_ALLOW_ORIGINS", "https://app.example")]);
    let preflight = Request::builder()
        .method("OPTIONS")
        .uri("/credentials")
        .header(header::ORIGIN, "https://evil.example")
        .header(header::ACCESS_CONTROL_REQUEST_METHOD, "POST")
        .body(Body::empty())
        .unwrap();
    let (_, headers, _) = send_with(config, FakeIssuer::default(), preflight).await;
    assert!(!headers.contains_key(header::ACCESS_CONTROL_ALLOW_ORIGIN));
}

#[tokio::test]
async fn without_cors_origins_options_is_answered_but_grants_no_origin() {
    let preflight = Request::builder()
        .method("OPTIONS")
        .uri("/credentials")
        .header(header::ORIGIN, "https://app.example")
        .header(header::ACCESS_CONTROL_REQUEST_METHOD, "POST")
        .body(Body::empty())
        .unwrap();
    let (status, headers, _) = send(FakeIssuer::default(), preflight).await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    assert_eq!(headers[header::ALLOW], "POST, OPTIONS");
    assert!(!headers.contains_key(header::ACCESS_CONTROL_ALLOW_ORIGIN));
}
