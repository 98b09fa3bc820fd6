//! A local AWS IoT Core device gateway: MQTT 3.1.1 over WebSocket with SigV4
//! presigned URLs, IoT policy enforcement, and the HTTPS publish API that
//! `aws iot-data publish` calls — on one port, plain or TLS.
//!
//! * [`auth`] — presigned-URL and `Authorization`-header authentication.
//! * [`session`] — one MQTT connection: CONNECT to disconnect, per-packet authorization.
//! * [`broker`] — subscriptions, client-ID takeover, retained messages, fan-out.
//! * [`filter`] — IoT topic and filter rules.
//! * [`lifecycle`] — `$aws/events/presence/…` events.
//! * [`tls`] — the throwaway CA and server certificate for `--tls`.
//!
//! The gateway routes between its own connections in-process; no external broker
//! is involved. What it does not emulate: persistent sessions, QoS 2 (refused, as
//! by IoT), MQTT 5, Last Will, shadows and other reserved `$aws` topics, custom
//! authorizers, and the 24-hour connection limit.

pub mod auth;
pub mod broker;
pub mod connection;
pub mod lifecycle;
pub mod tls;

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, SystemTime};

use axum::body::Bytes;
use axum::extract::ws::WebSocketUpgrade;
use axum::extract::{Extension, State};
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, Uri, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use rumqttc::mqttbytes::QoS;
use sha2::Digest;
use tokio::sync::watch;

use crate::identity::IdentityStore;
use broker::Broker;
use serverless_websockets_core::arn::IotArns;
use serverless_websockets_core::topic::is_publishable;
use serverless_websockets_vending::server::BodyError;

/// What the gateway does when a CONNECT or SUBSCRIBE is not authorized.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DenyMode {
    /// Close the connection without a reply (IoT Core's behaviour).
    Close,
    /// Reply with CONNACK return code 5, or SUBACK 0x80 for the filter.
    Reply,
}

#[derive(Debug, Clone)]
pub struct GatewayOptions {
    /// Keep-alives below this are raised to it (IoT: 30 s). Tests lower it.
    pub min_keep_alive: Duration,
    pub connect_deny: DenyMode,
    pub subscribe_deny: DenyMode,
    /// Deliveries queued per connection before it counts as too slow.
    pub queue_len: usize,
    /// How long a new WebSocket may take to send CONNECT before it is closed.
    pub connect_timeout: Duration,
}

impl Default for GatewayOptions {
    fn default() -> Self {
        Self {
            min_keep_alive: Duration::from_secs(30),
            connect_deny: DenyMode::Close,
            subscribe_deny: DenyMode::Close,
            queue_len: 1024,
            connect_timeout: connection::CONNECT_TIMEOUT,
        }
    }
}

/// State shared by every connection.
pub struct Gateway {
    auth: auth::SignatureCheck,
    pub broker: Broker,
    options: GatewayOptions,
    versions: AtomicU64,
    shutdown: watch::Receiver<bool>,
}

/// The WebSocket read buffer each connection keeps.
const READ_BUFFER_BYTES: usize = 512;

/// IoT's largest message, for the HTTPS publish API too.
pub const MAX_PUBLISH_BODY: usize = serverless_websockets_core::topic::MAX_PAYLOAD_BYTES;

impl Gateway {
    pub fn new(
        store: Arc<IdentityStore>,
        arns: IotArns,
        options: GatewayOptions,
        shutdown: watch::Receiver<bool>,
    ) -> Self {
        let auth = auth::SignatureCheck::new(store, arns.region());
        let broker = Broker::new(arns, options.queue_len);
        Self {
            auth,
            broker,
            options,
            versions: AtomicU64::new(1),
            shutdown,
        }
    }

    fn next_version(&self) -> u64 {
        self.versions.fetch_add(1, Ordering::Relaxed)
    }

    fn publish_event(&self, event: &str, client_id: &str, body: serde_json::Value) {
        let payload = Bytes::from(body.to_string());
        self.broker
            .publish(&lifecycle::topic(event, client_id), payload, QoS::AtMostOnce, false);
    }

    /// `GET /mqtt` (WebSocket) and `POST /topics/{topic}` (HTTPS publish).
    pub fn router(self: Arc<Self>) -> axum::Router {
        axum::Router::new()
            .route("/mqtt", get(websocket))
            .route("/topics/{*topic}", post(publish))
            .fallback(not_found)
            .with_state(self)
    }
}

fn trace_id() -> String {
    serverless_websockets_core::random::hex::<16>()
}

/// Anything but `/mqtt` and `/topics/…`: IoT's 404, and a log line that says
/// where the endpoints are (a client pointed at `/ws` or `/` otherwise learns nothing).
async fn not_found(method: Method, uri: Uri) -> Response {
    tracing::warn!(
        method = %method,
        path = %uri.path().escape_debug(),
        "no such endpoint on the IoT gateway: MQTT over WebSocket is GET /mqtt, the HTTPS publish API is POST /topics/<topic>"
    );
    aws_error(StatusCode::NOT_FOUND, "ResourceNotFoundException", "Not Found")
}

/// What to add to a refused handshake's log line: the host it was signed for is
/// part of the signature, so `localhost` and `127.0.0.1` are different hosts.
fn host_hint(denied: &crate::identity::Refusal, headers: &HeaderMap) -> String {
    use serverless_websockets_core::sigv4::SigError;
    match denied {
        crate::identity::Refusal::Signature(SigError::Mismatch) => {
            let host = headers.get(header::HOST).and_then(|h| h.to_str().ok()).unwrap_or("-");
            format!(
                " (the request came for host {host:?}; a URL presigned for another host name, e.g. localhost instead of 127.0.0.1, or with another port, does not match)"
            )
        }
        _ => String::new(),
    }
}

/// AWS's JSON error shape with `x-amzn-ErrorType`.
fn aws_error(status: StatusCode, kind: &str, message: &str) -> Response {
    let body = serde_json::json!({"message": message, "traceId": trace_id()});
    let mut response = (status, axum::Json(body)).into_response();
    if let Ok(value) = HeaderValue::from_str(&format!("{kind}:")) {
        response.headers_mut().insert("x-amzn-errortype", value);
    }
    response
}

/// The MQTT subprotocol the client offered, if any.
fn offered_subprotocol(headers: &HeaderMap) -> Option<&'static str> {
    let offered = headers
        .get_all(header::SEC_WEBSOCKET_PROTOCOL)
        .iter()
        .filter_map(|v| v.to_str().ok());
    for value in offered {
        for protocol in value.split(',').map(str::trim) {
            match protocol {
                "mqtt" => return Some("mqtt"),
                "mqttv3.1" => return Some("mqttv3.1"),
                _ => {}
            }
        }
    }
    None
}

async fn websocket(
    State(gateway): State<Arc<Gateway>>,
    Extension(peer): Extension<SocketAddr>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    upgrade: Result<WebSocketUpgrade, axum::extract::ws::rejection::WebSocketUpgradeRejection>,
) -> Response {
    let (Ok(upgrade), Some(protocol)) = (upgrade, offered_subprotocol(&headers)) else {
        return aws_error(
            StatusCode::UPGRADE_REQUIRED,
            "UpgradeRequired",
            "Connect with a WebSocket upgrade offering the mqtt subprotocol.",
        );
    };
    let identity = match gateway.auth.presigned(&method, &uri, &headers, SystemTime::now()) {
        Ok(identity) => identity,
        Err(denied) => {
            tracing::warn!(peer = %peer, "WebSocket handshake refused: {denied}{}", host_hint(&denied, &headers));
            return aws_error(StatusCode::FORBIDDEN, "ForbiddenException", "Forbidden");
        }
    };
    upgrade
        .protocols([protocol])
        // Small: an idle connection holds this buffer for its whole life, and MQTT
        // packets from clients are mostly tiny; a larger frame reserves its own size.
        .read_buffer_size(READ_BUFFER_BYTES)
        .write_buffer_size(8 * 1024)
        // A frame's length is known from its header: one over the packet limit is
        // refused there, before any buffer for it is reserved (tungstenite's own
        // default would accept 16 MiB frames).
        .max_frame_size(connection::MAX_PACKET_BYTES)
        .max_message_size(connection::MAX_PACKET_BYTES)
        .on_upgrade(move |socket| connection::Connection::new(gateway, identity, peer, socket).run())
}

async fn publish(State(gateway): State<Arc<Gateway>>, request: axum::extract::Request) -> Response {
    let invalid = |message: &str| aws_error(StatusCode::BAD_REQUEST, "InvalidRequestException", message);
    let (parts, body) = request.into_parts();
    let (method, uri, headers) = (&parts.method, &parts.uri, &parts.headers);
    let body = match serverless_websockets_vending::server::read_body(&parts, body, MAX_PUBLISH_BODY).await {
        Ok(body) => body,
        Err(BodyError::TooLarge { .. }) => {
            return aws_error(
                StatusCode::PAYLOAD_TOO_LARGE,
                "RequestEntityTooLargeException",
                "The payload exceeds the maximum size allowed",
            );
        }
        Err(err) => {
            tracing::warn!("HTTPS publish body not read: {err}");
            return invalid("The request body could not be read in time.");
        }
    };
    let payload_hash = hex::encode(sha2::Sha256::digest(&body));
    // One parse of the query, for the signature and for the handler alike.
    let query = serverless_websockets_core::sigv4::query_pairs(uri.query().unwrap_or(""));
    let param = |name: &str| query.iter().find(|(n, _)| n == name).map(|(_, v)| v.as_str());
    let identity = match gateway
        .auth
        .signed_header(method, uri, &query, headers, &payload_hash, SystemTime::now())
    {
        Ok(identity) => identity,
        Err(denied) => {
            tracing::warn!("HTTPS publish refused: {denied}");
            return aws_error(StatusCode::FORBIDDEN, "ForbiddenException", "Forbidden");
        }
    };
    // botocore sends `/` inside the topic as %2F: decode the raw path segment.
    let raw = uri.path().strip_prefix("/topics/").unwrap_or_default();
    let topic = percent_encoding::percent_decode_str(raw)
        .decode_utf8_lossy()
        .into_owned();
    if !is_publishable(&topic) {
        return invalid("The topic is not a valid MQTT topic name.");
    }
    let qos = match param("qos") {
        None | Some("0") => QoS::AtMostOnce,
        Some("1") => QoS::AtLeastOnce,
        Some(_) => return invalid("qos must be 0 or 1."),
    };
    let retain = match param("retain") {
        None | Some("false") => false,
        Some("true") => true,
        Some(_) => return invalid("retain must be true or false."),
    };
    let resource = gateway.broker.arns().topic(&topic);
    if !identity.is_allowed("iot:Publish", &resource)
        || (retain && !identity.is_allowed("iot:RetainPublish", &resource))
    {
        tracing::warn!(topic = %topic, principal = %identity.arn, "HTTPS publish not authorized");
        return aws_error(StatusCode::FORBIDDEN, "ForbiddenException", "Forbidden");
    }
    let delivered = gateway.broker.publish(&topic, body, qos, retain);
    tracing::info!(topic = %topic, principal = %identity.arn, delivered, "HTTPS publish");
    (
        StatusCode::OK,
        axum::Json(serde_json::json!({"message": "OK", "traceId": trace_id()})),
    )
        .into_response()
}
