//! The browser client and its demo page, served by the local stack on the vending
//! API's port (same origin as the API, so no CORS is involved): `/demo`,
//! `/client.js` (the built bundle of `web/`, embedded at compile time; the web
//! tests check that the committed bundle matches its source) and
//! `/demo/config.json` (what the page needs to know about this stack).

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
    pub secret_access_key: String,
}

pub fn router(config: DemoConfig) -> Router {
    Router::new()
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
                    ],
                    CLIENT_JS,
                )
            }),
        )
        .route(
            "/demo/config.json",
            get(move || async move { axum::Json(config).into_response() }),
        )
}
