//! A local AWS IoT Core device gateway: MQTT 3.1.1 and 5 over WebSocket with
//! SigV4 presigned URLs, IoT policy enforcement, persistent sessions and Last Will,
//! and the HTTPS data plane that `aws iot-data` calls (publish, direct messages,
//! connections, retained messages) — on one port, plain or TLS. This file is the
//! HTTP surface: the routes and the WebSocket upgrade.
//!
//! * [`state`] — [`Gateway`]: what every connection and request shares.
//! * [`options`] — the gateway's settings ([`GatewayOptions`]).
//! * [`auth`] — presigned-URL and `Authorization`-header authentication.
//! * [`custom_auth`] — connecting with a token through a custom authorizer.
//! * [`connection`] — one MQTT connection: reads, calls [`negotiate`], writes.
//! * [`negotiate`] — what to answer a CONNECT or SUBSCRIBE, decided without I/O.
//! * [`packet`] — MQTT 3.1.1 and 5 packets behind one set of types.
//! * [`message`] — a message as routed, and its shared encodings.
//! * [`broker`] — sessions, subscriptions, retained messages, presence, fan-out.
//! * [`dataplane`] — the HTTPS operations of the data plane.
//! * [`control`] — the IoT control plane's topic-rule operations.
//! * [`authorizers`] — the IoT control plane's custom-authorizer operations.
//! * [`signed`] — a SigV4-signed HTTPS request, and AWS's error answer.
//! * [`lifecycle`] — `$aws/events/presence/…` and `$aws/events/subscriptions/…` events.
//! * [`limits`] — IoT's CONNECT and publish rates as token buckets.
//! * [`aws_error`] — AWS's JSON error bodies and trace IDs.
//! * [`will`] — a Last Will's publication, at once or after its delay.
//! * [`tls`] — the throwaway CA and server certificate for `--tls`.
//!
//! Modules import downwards only: nothing imports this file, and no two of them
//! import each other. The gateway routes between its own connections in-process;
//! no external broker is involved. What it does not emulate: QoS 2 (refused, as by
//! IoT), shadows and other reserved `$aws` topics, and policy condition keys.

pub mod auth;
pub mod authorizers;
pub mod aws_error;
pub mod broker;
pub mod connection;
pub mod control;
pub mod custom_auth;
pub mod dataplane;
pub mod lifecycle;
pub mod limits;
pub mod message;
pub mod negotiate;
pub mod options;
pub mod packet;
pub mod signed;
pub mod state;
pub mod tls;
pub mod will;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::SystemTime;

use axum::extract::ws::WebSocketUpgrade;
use axum::extract::{Extension, State};
use axum::http::{HeaderMap, Method, StatusCode, Uri, header};
use axum::response::Response;
use axum::routing::{get, post};
use serverless_websockets_core::quota::MAX_PACKET_BYTES;

use aws_error::aws_error;
pub use options::{DenyMode, GatewayOptions, Limits};
pub use state::Gateway;

/// The WebSocket read buffer each connection keeps.
const READ_BUFFER_BYTES: usize = 512;

impl Gateway {
    /// `GET /mqtt` (WebSocket) and the HTTPS data plane.
    pub fn router(self: Arc<Self>) -> axum::Router {
        use axum::routing::delete;
        // The data plane's requests are metered (usage_url); the control plane's
        // are not billed.
        let dataplane = axum::Router::new()
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
            .layer(axum::middleware::from_fn_with_state(self.clone(), dataplane::meter));
        axum::Router::new()
            .route("/mqtt", get(websocket))
            .merge(dataplane)
            .route("/rules", get(control::list))
            .route(
                "/rules/{rule_name}",
                post(control::create)
                    .merge(get(control::get))
                    .merge(axum::routing::patch(control::replace))
                    .merge(delete(control::delete)),
            )
            .route("/rules/{rule_name}/{verb}", post(control::enable_or_disable))
            .route("/authorizers/", get(authorizers::list))
            .route("/authorizers", get(authorizers::list))
            .route(
                "/authorizer/{authorizer_name}",
                post(authorizers::create)
                    .merge(get(authorizers::describe))
                    .merge(axum::routing::put(authorizers::update))
                    .merge(delete(authorizers::delete)),
            )
            .route("/authorizer/{authorizer_name}/test", post(authorizers::test_invoke))
            .route(
                "/default-authorizer",
                post(authorizers::set_default)
                    .merge(get(authorizers::describe_default))
                    .merge(delete(authorizers::clear_default)),
            )
            .fallback(not_found)
            .with_state(self)
    }
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
    let admission = match custom_auth::requested(&gateway, &uri, &headers) {
        // Custom authentication runs after the upgrade (or at CONNECT): its
        // refusals close the connection, as IoT's do.
        Some(requested) => connection::Admission::Custom(Box::new(requested)),
        None => match gateway.auth.presigned(&method, &uri, &headers, SystemTime::now()) {
            Ok(identity) => connection::Admission::Signed(identity),
            Err(denied) => {
                tracing::warn!(peer = %peer, "WebSocket handshake refused: {denied}{}", host_hint(&denied, &headers));
                return aws_error(StatusCode::FORBIDDEN, "ForbiddenException", "Forbidden");
            }
        },
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
        .max_frame_size(MAX_PACKET_BYTES)
        .max_message_size(MAX_PACKET_BYTES)
        // What the task keeps for the connection's life is the connection's own
        // future, nothing around it (the idle-memory benchmark).
        .on_upgrade(move |socket| connection::Connection::accept(gateway, admission, peer, socket))
}
