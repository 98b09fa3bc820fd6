//! A local AWS IoT Core device gateway: MQTT 3.1.1 over WebSocket with SigV4
//! presigned URLs, IoT policy enforcement, persistent sessions and Last Will, and
//! the HTTPS data plane that `aws iot-data` calls (publish, direct messages,
//! connections, retained messages) — on one port, plain or TLS.
//!
//! * [`auth`] — presigned-URL and `Authorization`-header authentication.
//! * [`connection`] — one MQTT connection: CONNECT to disconnect, per-packet authorization.
//! * [`broker`] — sessions, subscriptions, client-ID takeover, retained messages, fan-out.
//! * [`dataplane`] — the HTTPS operations.
//! * [`lifecycle`] — `$aws/events/presence/…` and `$aws/events/subscriptions/…` events.
//! * [`tls`] — the throwaway CA and server certificate for `--tls`.
//!
//! The gateway routes between its own connections in-process; no external broker
//! is involved. What it does not emulate: QoS 2 (refused, as by IoT), MQTT 5,
//! shadows and other reserved `$aws` topics, custom authorizers, policy condition
//! keys, and the 24-hour connection limit.

pub mod auth;
pub mod broker;
pub mod connection;
pub mod dataplane;
pub mod lifecycle;
pub mod packet;
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
use tokio::sync::watch;

use crate::identity::IdentityStore;
use broker::Broker;
use serverless_websockets_core::arn::IotArns;

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
    /// How long a persistent session outlives its client's disconnect (IoT: 1 hour).
    pub session_expiry: Duration,
}

impl Default for GatewayOptions {
    fn default() -> Self {
        Self {
            min_keep_alive: Duration::from_secs(30),
            connect_deny: DenyMode::Close,
            subscribe_deny: DenyMode::Close,
            queue_len: 1024,
            connect_timeout: connection::CONNECT_TIMEOUT,
            session_expiry: DEFAULT_SESSION_EXPIRY,
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

pub use dataplane::MAX_PUBLISH_BODY;

/// IoT's default persistent-session expiry.
pub const DEFAULT_SESSION_EXPIRY: Duration = Duration::from_secs(3600);

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

    /// Publishes a lifecycle event on `topic` (see [`lifecycle`]), unless the
    /// client ID is one IoT sends no events for.
    fn publish_event(&self, topic: &str, client_id: &str, body: serde_json::Value) {
        if lifecycle::has_events(client_id) {
            let payload = Bytes::from(body.to_string());
            self.broker.publish(topic, payload, QoS::AtMostOnce, false);
        }
    }

    /// `GET /mqtt` (WebSocket) and the HTTPS data plane.
    pub fn router(self: Arc<Self>) -> axum::Router {
        use axum::routing::delete;
        axum::Router::new()
            .route("/mqtt", get(websocket))
            .route("/topics/{*topic}", post(dataplane::publish))
            .route(
                "/connections/{client_id}/messages",
                post(dataplane::send_direct_message),
            )
            .route(
                "/connections/{client_id}/subscriptions",
                get(dataplane::list_subscriptions),
            )
            .route(
                "/connections/{client_id}",
                get(dataplane::get_connection).merge(delete(dataplane::delete_connection)),
            )
            .route("/retainedMessage", get(dataplane::list_retained_messages))
            .route("/retainedMessage/{*topic}", get(dataplane::get_retained_message))
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
        "no such endpoint on the IoT gateway: MQTT over WebSocket is GET /mqtt; the HTTPS data plane is POST /topics/<topic>, /connections/<clientId>[/messages|/subscriptions], /retainedMessage[/<topic>]"
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
