//! The browser client and its demo page, served by the local stack on the vending
//! API's port (same origin as the API, so no CORS is involved): `/demo`,
//! `/client.js` (the built bundle of `web/`, embedded at compile time; the web
//! tests check that the committed bundle matches its source) and
//! `/demo/config.json` (what the page needs to know about this stack; the
//! backend secret only to a browser on this machine, see `crate::door`).

use axum::Router;
use axum::http::header;
use axum::response::IntoResponse;
use axum::routing::get;
use serde::Serialize;

/// The built browser client (`cd web && npm run build`).
pub const CLIENT_JS: &str = include_str!("../../web/dist/serverless-websockets.js");
const DEMO_HTML: &str = include_str!("../../web/demo/index.html");

/// What the demo page reads from `/demo/config.json`.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct DemoConfig {
    pub credentials_url: String,
    pub iot_data_endpoint: String,
    pub region: String,
    /// The local backend identity, for the page's copy-paste commands.
    pub backend: DemoBackend,
    /// The API wants a bearer token.
    pub jwt: bool,
}

#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct DemoBackend {
    pub access_key_id: String,
    /// Left out for peers other than loopback.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub secret_access_key: Option<String>,
}

pub fn router(config: DemoConfig) -> Router {
    let gateway = config.iot_data_endpoint.clone();
    let wrong_port = move || {
        let gateway = gateway.clone();
        async move { wrong_port(&gateway) }
    };
    let mut router = Router::new();
    // The IoT data plane's and the gateway's paths, asked of this port by
    // mistake (`aws iot-data … --endpoint-url <the API>`): say where they are.
    for path in [
        "/mqtt",
        "/topics/{*rest}",
        "/connections/{*rest}",
        "/retainedMessage",
        "/retainedMessage/{*rest}",
        "/rules",
        "/rules/{*rest}",
        "/authorizer/{*rest}",
        "/authorizers/",
        "/default-authorizer",
    ] {
        router = router.route(path, axum::routing::any(wrong_port.clone()));
    }
    router
        .route(
            "/demo",
            get(|| async { ([(header::CONTENT_TYPE, "text/html; charset=utf-8")], DEMO_HTML) }),
        )
        .route(
            "/client.js",
            get(|| async {
                (
                    [
                        (header::CONTENT_TYPE, "text/javascript; charset=utf-8"),
                        (header::CACHE_CONTROL, "no-cache"),
                        // A page on another origin (your app's dev server) may
                        // import it: it is public code and carries no credentials.
                        (header::ACCESS_CONTROL_ALLOW_ORIGIN, "*"),
                        (
                            header::HeaderName::from_static("cross-origin-resource-policy"),
                            "cross-origin",
                        ),
                    ],
                    CLIENT_JS,
                )
            }),
        )
        .route(
            "/demo/config.json",
            get(move |request: axum::extract::Request| async move {
                let mut config = config;
                if !crate::door::is_loopback_peer(&request) {
                    config.backend.secret_access_key = None;
                }
                axum::Json(config).into_response()
            }),
        )
}

/// IoT's 404 shape (`x-amzn-ErrorType`, `{"message"}`), which the AWS CLI
/// prints, naming where the gateway is.
fn wrong_port(gateway: &str) -> axum::response::Response {
    let message = format!(
        "This is the local stack's vending API port; the IoT gateway and data plane are at {gateway} (use --endpoint-url {gateway})"
    );
    (
        axum::http::StatusCode::NOT_FOUND,
        [(
            header::HeaderName::from_static("x-amzn-errortype"),
            "ResourceNotFoundException",
        )],
        axum::Json(serde_json::json!({ "message": message })),
    )
        .into_response()
}

#[cfg(test)]
mod tests {
    use tower::ServiceExt as _;

    use super::*;

    async fn config_as_seen_from(peer: &str) -> serde_json::Value {
        let config = DemoConfig {
            credentials_url: "http://127.0.0.1:4601/credentials".into(),
            iot_data_endpoint: "http://127.0.0.1:8443".into(),
            region: "us-east-1".into(),
            backend: DemoBackend {
                access_key_id: "AKIALOCALBACKEND0000".into(),
                secret_access_key: Some("s3cret".into()),
            },
            jwt: false,
        };
        let mut request = axum::http::Request::get("/demo/config.json")
            .body(axum::body::Body::empty())
            .unwrap();
        request
            .extensions_mut()
            .insert(peer.parse::<std::net::SocketAddr>().unwrap());
        let response = router(config).oneshot(request).await.unwrap();
        let body = axum::body::to_bytes(response.into_body(), 1 << 16).await.unwrap();
        serde_json::from_slice(&body).unwrap()
    }

    #[tokio::test]
    async fn the_backend_secret_goes_to_this_machine_only() {
        let local = config_as_seen_from("127.0.0.1:50000").await;
        assert_eq!(local["backend"]["secretAccessKey"], "s3cret");
        let remote = config_as_seen_from("192.168.1.20:50000").await;
        assert!(remote["backend"].get("secretAccessKey").is_none(), "{remote}");
        assert_eq!(remote["backend"]["accessKeyId"], "AKIALOCALBACKEND0000");
    }
}
