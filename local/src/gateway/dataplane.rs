//! The HTTPS data plane of AWS IoT Core, on the gateway's port: what `aws
//! iot-data publish | send-direct-message | get-connection | list-subscriptions |
//! delete-connection | get-retained-message | list-retained-messages` call.
//!
//! Every request is SigV4-signed (service `iotdata` or `iotdevicegateway`) and
//! authorized with IoT's action on IoT's resource
//! (<https://docs.aws.amazon.com/service-authorization/latest/reference/list_awsiot.html>):
//!
//! | operation | action | resource |
//! |---|---|---|
//! | Publish | `iot:Publish` (+ `iot:RetainPublish`) | `topic/<t>` |
//! | SendDirectMessage | `iot:SendDirectMessage` | `client/<id>` |
//! | GetConnection | `iot:GetConnection` | `client/<id>` |
//! | ListSubscriptions | `iot:ListSubscriptions` | `client/<id>` |
//! | DeleteConnection | `iot:DeleteConnection` | `client/<id>` |
//! | GetRetainedMessage | `iot:GetRetainedMessage` | `topic/<t>` |
//! | ListRetainedMessages | `iot:ListRetainedMessages` | `*` |
//!
//! Answers and errors follow the service's API model (botocore's `iot-data`):
//! JSON bodies with the model's field names, `x-amzn-ErrorType` with the error
//! shape, 404 `ResourceNotFoundException` for a client that is not there, 504
//! `GatewayTimeoutException` for a direct message not acknowledged in time.

use std::sync::Arc;
use std::time::Duration;

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::IntoResponse;
use base64::Engine;
use rumqttc::mqttbytes::QoS;
use serde_json::json;

use super::aws_error::trace_id;
use super::broker::{DirectError, DisconnectReason, Kick};
use super::message::{Confirm, Delivery, Message, Properties};
use super::state::{Gateway, Origin};
use serverless_websockets_core::quota::{MAX_CLIENT_ID_BYTES, user_properties_bytes};
use serverless_websockets_core::topic::{check_topic_name, is_publishable};

pub use super::signed::MAX_PUBLISH_BODY;
use super::signed::{Answer, DataPlaneError, Refused, Signed, invalid, not_found, ok, signed};

/// `SendDirectMessage`'s `timeout`: 1 to 15 s, 5 s by default.
const DIRECT_TIMEOUT_DEFAULT: u64 = 5;
const DIRECT_TIMEOUT_MAX: u64 = 15;

/// The page size of the list operations: 1 to 200, 20 by default.
const PAGE_DEFAULT: usize = 20;
const PAGE_MAX: usize = 200;

fn parse_bool(value: Option<&str>, name: &str) -> Result<bool, DataPlaneError> {
    match value {
        None | Some("false") => Ok(false),
        Some("true") => Ok(true),
        Some(_) => Err(invalid(format!("{name} must be true or false."))),
    }
}

/// A client ID from the path: 1 to 128 bytes, not starting with `$` (the model's rule).
fn client_id_of(signed: &Signed, suffix: &str) -> Result<String, DataPlaneError> {
    let client_id = signed
        .path_label("/connections/", suffix)
        .ok_or_else(|| invalid("The client ID is not valid UTF-8 after percent-decoding."))?;
    if client_id.is_empty() || client_id.len() > MAX_CLIENT_ID_BYTES || client_id.starts_with('$') {
        return Err(invalid("A client ID has 1 to 128 bytes and does not start with $."));
    }
    Ok(client_id)
}

/// `maxResults` and `nextToken` of a list operation.
fn page_of(signed: &Signed) -> Result<(usize, Option<String>), DataPlaneError> {
    let limit = match signed.param("maxResults") {
        None => PAGE_DEFAULT,
        Some(text) => match text.parse::<usize>() {
            Ok(n) if (1..=PAGE_MAX).contains(&n) => n,
            _ => return Err(invalid("maxResults must be an integer from 1 to 200.")),
        },
    };
    let after = match signed.param("nextToken") {
        None => None,
        Some(token) => Some(decode_token(token).ok_or_else(|| invalid("The nextToken is not valid."))?),
    };
    Ok((limit, after))
}

/// Page tokens are opaque to callers: the last item of the page, base64url.
fn encode_token(last: &str) -> String {
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(last)
}

fn decode_token(token: &str) -> Option<String> {
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD.decode(token).ok()?;
    String::from_utf8(bytes).ok()
}

/// The MQTT 5 fields of Publish and SendDirectMessage, as the model carries them:
/// `x-amz-mqtt5-user-properties` (base64 of a JSON array of one-pair objects),
/// `x-amz-mqtt5-payload-format-indicator` (`UNSPECIFIED_BYTES` | `UTF8_DATA`),
/// `x-amz-mqtt5-correlation-data` (base64), and `contentType`, `responseTopic`
/// and (Publish only) `messageExpiry` in the query. `None` when there are none.
fn mqtt5_properties(signed: &Signed, max_user_properties: usize) -> Result<Option<Box<Properties>>, DataPlaneError> {
    let header = |name: &str| -> Result<Option<&str>, DataPlaneError> {
        match signed.headers.get(name) {
            None => Ok(None),
            Some(value) => value
                .to_str()
                .map(Some)
                .map_err(|_| invalid(format!("The {name} header is not ASCII."))),
        }
    };
    let base64 = base64::engine::general_purpose::STANDARD;
    let mut properties = Properties::default();
    if let Some(encoded) = header("x-amz-mqtt5-user-properties")? {
        properties.user_properties = user_properties(encoded, max_user_properties)?;
    }
    properties.payload_format_indicator = match header("x-amz-mqtt5-payload-format-indicator")? {
        None => None,
        Some("UNSPECIFIED_BYTES") => Some(0),
        Some("UTF8_DATA") => Some(1),
        Some(_) => {
            return Err(invalid(
                "payloadFormatIndicator must be UNSPECIFIED_BYTES or UTF8_DATA.",
            ));
        }
    };
    if properties.payload_format_indicator == Some(1) && std::str::from_utf8(&signed.body).is_err() {
        return Err(invalid(
            "The payload is not UTF-8 although payloadFormatIndicator is UTF8_DATA.",
        ));
    }
    if let Some(encoded) = header("x-amz-mqtt5-correlation-data")? {
        let data = base64
            .decode(encoded.trim())
            .map_err(|_| invalid("correlationData must be base64-encoded."))?;
        properties.correlation_data = Some(data.into());
    }
    properties.content_type = signed.param("contentType").map(str::to_owned);
    if let Some(topic) = signed.param("responseTopic") {
        check_topic_name(topic).map_err(|_| invalid("responseTopic must be a valid MQTT topic name."))?;
        properties.response_topic = Some(topic.to_owned());
    }
    Ok((properties != Properties::default()).then(|| Box::new(properties)))
}

/// `x-amz-mqtt5-user-properties`: base64 of a JSON array of one-pair objects,
/// within IoT's quota on user properties (`max` bytes).
fn user_properties(encoded: &str, max: usize) -> Result<Vec<(String, String)>, DataPlaneError> {
    let json = base64::engine::general_purpose::STANDARD
        .decode(encoded.trim())
        .map_err(|_| invalid("userProperties must be base64-encoded JSON."))?;
    let objects: Vec<serde_json::Map<String, serde_json::Value>> = serde_json::from_slice(&json).map_err(|_| {
        invalid("userProperties must be a JSON array of objects such as [{\"deviceName\": \"alpha\"}].")
    })?;
    let mut pairs = Vec::new();
    for object in objects {
        for (key, value) in object {
            let value = match value {
                serde_json::Value::String(text) => text,
                other => other.to_string(),
            };
            pairs.push((key, value));
        }
    }
    let bytes = user_properties_bytes(&pairs);
    if bytes > max {
        return Err(invalid(format!(
            "userProperties take {bytes} bytes as MQTT 5 encodes them, over IoT's {max}."
        )));
    }
    Ok(pairs)
}

/// `messageExpiry`: whole seconds, 1 to IoT's seven days.
fn message_expiry(signed: &Signed) -> Result<Option<u32>, DataPlaneError> {
    match signed.param("messageExpiry") {
        None => Ok(None),
        Some(text) => match text.parse::<u32>() {
            Ok(secs) if (1..=serverless_websockets_core::quota::MAX_MESSAGE_EXPIRY_SECS).contains(&secs) => {
                Ok(Some(secs))
            }
            _ => Err(invalid("messageExpiry must be an integer from 1 to 604800 (seconds).")),
        },
    }
}

/// User properties as GetRetainedMessage returns them: base64 of a JSON array.
fn user_properties_blob(message: &Message) -> Option<String> {
    let properties = message.properties.as_ref()?;
    if properties.user_properties.is_empty() {
        return None;
    }
    let pairs: Vec<serde_json::Value> = properties
        .user_properties
        .iter()
        .map(|(k, v)| json!({ k.as_str(): v }))
        .collect();
    Some(base64::engine::general_purpose::STANDARD.encode(serde_json::to_vec(&pairs).unwrap_or_default()))
}

/// Meters a data-plane request and its response by their bodies, as IoT meters
/// HTTPS requests (<https://aws.amazon.com/iot-core/pricing/additional-details/>).
pub async fn meter(
    State(gateway): State<Arc<Gateway>>,
    request: axum::extract::Request,
    next: axum::middleware::Next,
) -> axum::response::Response {
    use axum::body::HttpBody;
    let request_bytes = request
        .headers()
        .get(axum::http::header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<usize>().ok())
        .unwrap_or(0);
    let response = next.run(request).await;
    let response_bytes = response
        .body()
        .size_hint()
        .exact()
        .and_then(|n| usize::try_from(n).ok())
        .unwrap_or(0);
    gateway.usage.http(request_bytes, response_bytes);
    response
}

/// `POST /topics/{topic}?qos=&retain=` — Publish.
pub async fn publish(State(gateway): State<Arc<Gateway>>, request: axum::extract::Request) -> Answer {
    let signed = signed(&gateway, "HTTPS publish", request).await?;
    let Some(topic) = signed.path_label("/topics/", "") else {
        return Err(invalid("The topic is not valid UTF-8 after percent-decoding."));
    };
    if !super::negotiate::may_be_published(&topic) {
        return Err(invalid("The topic is not a valid MQTT topic name."));
    }
    let qos = match signed.param("qos") {
        None | Some("0") => QoS::AtMostOnce,
        Some("1") => QoS::AtLeastOnce,
        Some(_) => return Err(invalid("qos must be 0 or 1.")),
    };
    let retain = parse_bool(signed.param("retain"), "retain")?;
    let properties = mqtt5_properties(&signed, gateway.options.limits.max_user_properties_bytes)?;
    let expiry = message_expiry(&signed)?;
    let resource = gateway.broker.arns().topic(&topic);
    let mut allowed = signed.authorize("HTTPS publish", "iot:Publish", &resource, Refused::Forbidden);
    if retain && allowed.is_ok() {
        allowed = signed.authorize("HTTPS publish", "iot:RetainPublish", &resource, Refused::Forbidden);
    }
    allowed?;
    let mut message = Message::new(topic, signed.body.clone(), qos, retain);
    message.properties = properties;
    message.set_expiry(expiry);
    let message = Arc::new(message);
    let origin = Origin {
        client_id: None,
        principal: Some(&signed.identity.user_id),
        depth: 0,
    };
    let routed = gateway.publish(message.clone(), origin);
    if message.retain {
        gateway.usage.retained_copy(message.metered_bytes());
    }
    let topic = &message.topic;
    if routed.unheard() {
        tracing::warn!(topic = %topic, principal = %signed.identity.arn, "HTTPS publish: no subscriber for topic {topic}");
    } else {
        tracing::info!(topic = %topic, principal = %signed.identity.arn, delivered = routed.delivered, retain = message.retain, "HTTPS publish");
    }
    ok(json!({"message": "OK", "traceId": trace_id()}))
}

/// `POST /connections/{clientId}/messages?topic=&confirmation=&timeout=` — SendDirectMessage.
pub async fn send_direct_message(State(gateway): State<Arc<Gateway>>, request: axum::extract::Request) -> Answer {
    const OP: &str = "SendDirectMessage";
    let signed = signed(&gateway, OP, request).await?;
    let client_id = client_id_of(&signed, "/messages")?;
    let topic = signed
        .param("topic")
        .map(str::to_owned)
        .ok_or_else(|| invalid("topic is required."))?;
    if !is_publishable(&topic) {
        return Err(invalid("The topic is not a valid MQTT topic name."));
    }
    let confirmation = parse_bool(signed.param("confirmation"), "confirmation")?;
    let properties = mqtt5_properties(&signed, gateway.options.limits.max_user_properties_bytes)?;
    let timeout = direct_timeout(signed.param("timeout"))?;
    let resource = gateway.broker.arns().client(&client_id);
    signed.authorize(OP, "iot:SendDirectMessage", &resource, Refused::Forbidden)?;
    let (confirm, confirmed) = if confirmation {
        let (confirm, confirmed) = Confirm::new();
        (Some(confirm), Some(confirmed))
    } else {
        (None, None)
    };
    let mut message = Message::new(topic.clone(), signed.body.clone(), QoS::AtMostOnce, false);
    message.properties = properties;
    let bytes = message.metered_bytes();
    gateway
        .broker
        .direct(&client_id, message, confirm)
        .map_err(|refused| direct_refused(&client_id, &topic, refused))?;
    gateway.usage.delivered(bytes, 1);
    if let Some(confirmed) = confirmed {
        match tokio::time::timeout(Duration::from_secs(timeout), confirmed).await {
            Ok(Ok(Delivery::Acknowledged)) => {
                tracing::info!(client_id = %client_id.escape_debug(), topic = %topic.escape_debug(), principal = %signed.identity.arn, "{OP}: delivered and acknowledged");
            }
            Ok(Ok(Delivery::TooLarge)) => {
                tracing::warn!(client_id = %client_id.escape_debug(), topic = %topic.escape_debug(), "{OP}: not delivered: larger than the client's Maximum Packet Size");
                return Err(DataPlaneError::new(
                    StatusCode::PAYLOAD_TOO_LARGE,
                    "RequestEntityTooLargeException",
                    "The message is larger than the receiving client's MQTT 5 Maximum Packet Size; it was not delivered.",
                ));
            }
            Ok(Err(_)) | Err(_) => {
                tracing::warn!(client_id = %client_id, topic = %topic, "{OP}: no PUBACK within {timeout} s");
                return Err(DataPlaneError::new(
                    StatusCode::GATEWAY_TIMEOUT,
                    "GatewayTimeoutException",
                    "The delivery confirmation was not received from the client within the timeout.",
                ));
            }
        }
    } else {
        tracing::info!(client_id = %client_id, topic = %topic, principal = %signed.identity.arn, "{OP}: delivered");
    }
    ok(json!({"message": "OK", "traceId": trace_id()}))
}

/// SendDirectMessage's `timeout`: 1–15 seconds, 5 when absent.
fn direct_timeout(param: Option<&str>) -> Result<u64, DataPlaneError> {
    match param {
        None => Ok(DIRECT_TIMEOUT_DEFAULT),
        Some(text) => match text.parse::<u64>() {
            Ok(n) if (1..=DIRECT_TIMEOUT_MAX).contains(&n) => Ok(n),
            _ => Err(invalid("timeout must be an integer from 1 to 15 (seconds).")),
        },
    }
}

/// The answer when the broker did not take a direct message.
fn direct_refused(client_id: &str, topic: &str, refused: DirectError) -> DataPlaneError {
    const OP: &str = "SendDirectMessage";
    match refused {
        DirectError::NotConnected => {
            tracing::warn!(client_id = %client_id, "{OP}: the client is not connected (direct messages are not queued)");
            not_found(format!("The client {client_id} is not connected."))
        }
        DirectError::Forbidden(why) => {
            tracing::warn!(client_id = %client_id, "{OP}: the receiver may not receive on {topic}: {why}");
            DataPlaneError::new(
                StatusCode::FORBIDDEN,
                "ForbiddenException",
                "The receiving client is not authorized to receive on this topic.",
            )
        }
        DirectError::Throttled => DataPlaneError::new(
            StatusCode::TOO_MANY_REQUESTS,
            "ThrottlingException",
            "The receiving client cannot keep up.",
        ),
    }
}

/// `GET /connections/{clientId}[?includeSocketInformation=]` — GetConnection.
pub async fn get_connection(State(gateway): State<Arc<Gateway>>, request: axum::extract::Request) -> Answer {
    const OP: &str = "GetConnection";
    let signed = signed(&gateway, OP, request).await?;
    let client_id = client_id_of(&signed, "")?;
    let socket = parse_bool(signed.param("includeSocketInformation"), "includeSocketInformation")?;
    let resource = gateway.broker.arns().client(&client_id);
    signed.authorize(OP, "iot:GetConnection", &resource, Refused::Forbidden)?;
    let Some(presence) = gateway.broker.presence(&client_id) else {
        return Err(not_found(format!(
            "No connection or session is known for client {client_id}."
        )));
    };
    let info = &presence.info;
    let mut body = json!({
        "connected": presence.connected,
        "clientId": client_id,
        "cleanSession": info.clean_session,
        "keepAliveDuration": info.keep_alive_secs,
        "sessionExpiry": info.session_expiry_secs,
    });
    match presence.departed {
        None => body["connectedSince"] = info.connected_since.into(),
        Some((at, reason)) => {
            body["disconnectedSince"] = at.into();
            body["disconnectReason"] = reason.as_aws().into();
        }
    }
    if socket {
        body["sourceIp"] = info.source.ip().to_string().into();
        body["sourcePort"] = info.source.port().into();
    }
    ok(body)
}

/// `GET /connections/{clientId}/subscriptions?maxResults=&nextToken=` — ListSubscriptions.
pub async fn list_subscriptions(State(gateway): State<Arc<Gateway>>, request: axum::extract::Request) -> Answer {
    const OP: &str = "ListSubscriptions";
    let signed = signed(&gateway, OP, request).await?;
    let client_id = client_id_of(&signed, "/subscriptions")?;
    let (limit, after) = page_of(&signed)?;
    let resource = gateway.broker.arns().client(&client_id);
    signed.authorize(OP, "iot:ListSubscriptions", &resource, Refused::Forbidden)?;
    let Some(session) = gateway.broker.session(&client_id) else {
        return Err(not_found(format!("No active session is known for client {client_id}.")));
    };
    let filters = session.filters();
    let rest: Vec<_> = filters
        .iter()
        .filter(|(filter, _)| after.as_deref().is_none_or(|after| filter.as_str() > after))
        .collect();
    let page: Vec<_> = rest.iter().take(limit).collect();
    let mut body = json!({
        "subscriptions": page
            .iter()
            .map(|(filter, qos)| json!({"topicFilter": filter, "qos": *qos as u8}))
            .collect::<Vec<_>>(),
    });
    if rest.len() > limit
        && let Some((last, _)) = page.last()
    {
        body["nextToken"] = encode_token(last).into();
    }
    ok(body)
}

/// `DELETE /connections/{clientId}?cleanSession=&preventWillMessage=` — DeleteConnection.
pub async fn delete_connection(State(gateway): State<Arc<Gateway>>, request: axum::extract::Request) -> Answer {
    const OP: &str = "DeleteConnection";
    let signed = signed(&gateway, OP, request).await?;
    let client_id = client_id_of(&signed, "")?;
    let discard_session = parse_bool(signed.param("cleanSession"), "cleanSession")?;
    let prevent_will = parse_bool(signed.param("preventWillMessage"), "preventWillMessage")?;
    let resource = gateway.broker.arns().client(&client_id);
    signed.authorize(OP, "iot:DeleteConnection", &resource, Refused::Forbidden)?;
    let Some(session) = gateway.broker.connected(&client_id) else {
        return Err(not_found(format!("The client {client_id} is not connected.")));
    };
    session.kick(Kick {
        reason: DisconnectReason::ApiInitiated,
        discard_session,
        prevent_will,
    });
    tracing::info!(client_id = %client_id, principal = %signed.identity.arn, discard_session, prevent_will, "{OP}: disconnecting the client");
    Ok(StatusCode::OK.into_response())
}

/// `GET /retainedMessage/{topic}` — GetRetainedMessage.
pub async fn get_retained_message(State(gateway): State<Arc<Gateway>>, request: axum::extract::Request) -> Answer {
    const OP: &str = "GetRetainedMessage";
    let signed = signed(&gateway, OP, request).await?;
    let Some(topic) = signed.path_label("/retainedMessage/", "") else {
        return Err(invalid("The topic is not valid UTF-8 after percent-decoding."));
    };
    if !is_publishable(&topic) {
        return Err(invalid("The topic is not a valid MQTT topic name."));
    }
    let resource = gateway.broker.arns().topic(&topic);
    signed.authorize(OP, "iot:GetRetainedMessage", &resource, Refused::Unauthorized)?;
    let Some(retained) = gateway.broker.retained(&topic) else {
        return Err(not_found(format!("No retained message for topic {topic}.")));
    };
    let mut body = json!({
        "topic": topic,
        "payload": base64::engine::general_purpose::STANDARD.encode(&retained.message.payload),
        "qos": retained.message.qos as u8,
        "lastModifiedTime": retained.last_modified,
    });
    if let Some(blob) = user_properties_blob(&retained.message) {
        body["userProperties"] = blob.into();
    }
    ok(body)
}

/// `GET /retainedMessage?maxResults=&nextToken=` — ListRetainedMessages.
pub async fn list_retained_messages(State(gateway): State<Arc<Gateway>>, request: axum::extract::Request) -> Answer {
    const OP: &str = "ListRetainedMessages";
    let signed = signed(&gateway, OP, request).await?;
    let (limit, after) = page_of(&signed)?;
    signed.authorize(OP, "iot:ListRetainedMessages", "*", Refused::Unauthorized)?;
    let (page, more) = gateway.broker.retained_page(after.as_deref(), limit);
    let mut body = json!({
        "retainedTopics": page
            .iter()
            .map(|(topic, r)| json!({
                "topic": topic,
                "payloadSize": r.message.payload.len(),
                "qos": r.message.qos as u8,
                "lastModifiedTime": r.last_modified,
            }))
            .collect::<Vec<_>>(),
    });
    if more && let Some((last, _)) = page.last() {
        body["nextToken"] = encode_token(last).into();
    }
    ok(body)
}
