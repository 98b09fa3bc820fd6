//! What the gateway answers a CONNECT, a SUBSCRIBE or a PUBLISH, decided without
//! touching the network: the connection reads a packet, asks here, then does what
//! the answer says (attach, write, route). Every rule is a function of the packet,
//! the credentials and the gateway's options, so each is unit-tested without a
//! socket.
//!
//! IoT Core's rules (<https://docs.aws.amazon.com/iot/latest/developerguide/mqtt.html>):
//! `iot:Connect` on the client ID and the will authorized as a publish at CONNECT;
//! a keep-alive clamped to 30–1200 s; a persistent session for the gateway's expiry
//! (MQTT 5: the client's Session Expiry Interval, capped by it); 8 filters per
//! SUBSCRIBE and 50 subscriptions per connection; retained messages only to a
//! filter equal to the topic; QoS 0 and 1 only.
//!
//! Not here: the session itself and routing (`broker`), encoding (`packet`).

use std::collections::HashSet;
use std::time::Duration;

use rumqttc::mqttbytes::QoS;
use rumqttc::v5::mqttbytes::v5::DisconnectReasonCode as Code5;
use serverless_websockets_core::arn::IotArns;
use serverless_websockets_core::quota::{
    MAX_CLIENT_ID_BYTES, MAX_FILTERS_PER_SUBSCRIBE, MAX_INFLIGHT, MAX_KEEP_ALIVE, MAX_PACKET_BYTES, MAX_SUBSCRIPTIONS,
    TOPIC_ALIAS_MAX, user_properties_bytes,
};
use serverless_websockets_core::topic::{check_filter, check_topic_name, has_wildcards, is_publishable, split_shared};

use super::broker::{DisconnectReason, SessionOptions};
use super::message::{Message, Properties};
use super::options::{DenyMode, GatewayOptions, Limits};
use super::packet::{Announced, ConnectCode, ConnectIn, FilterIn, PublishIn, SubCode, Version};
use crate::identity::Identity;

/// The keep-alive IoT applies: below `min` becomes `min`, 0 and anything above
/// 1200 s become 1200 s.
pub fn effective_keep_alive(requested_secs: u16, min: Duration) -> Duration {
    let requested = Duration::from_secs(u64::from(requested_secs));
    if requested.is_zero() || requested > MAX_KEEP_ALIVE {
        MAX_KEEP_ALIVE
    } else {
        requested.max(min)
    }
}

/// A CONNECT that is not accepted.
#[derive(Debug, PartialEq, Eq)]
pub struct ConnectRefusal {
    pub code: ConnectCode,
    /// For the log.
    pub why: String,
    /// Whether to answer with a CONNACK before closing: MQTT 5 clients always get
    /// their reason code; 3.1.1 clients as `--connack-on-deny` says (IoT just closes).
    pub reply: bool,
}

/// The terms of an accepted CONNECT.
#[derive(Debug, PartialEq, Eq)]
pub struct ConnectTerms {
    pub keep_alive: Duration,
    /// How long the session outlives the connection (0: not at all).
    pub session_expiry: Duration,
    pub session: SessionOptions,
    /// What CONNACK announces (MQTT 5).
    pub announced: Announced,
}

/// Whether a refused CONNECT is answered with CONNACK before the close: MQTT 5
/// clients always get their reason code; 3.1.1 clients as `--connack-on-deny`
/// says (IoT just closes).
pub fn replies_to_refusal(version: Version, options: &GatewayOptions) -> bool {
    version == Version::V5 || options.connect_deny == DenyMode::Reply
}

/// Decides a CONNECT from `identity` at protocol `version`.
pub fn connect(
    connect: &ConnectIn,
    version: Version,
    identity: &Identity,
    arns: &IotArns,
    options: &GatewayOptions,
) -> Result<ConnectTerms, ConnectRefusal> {
    let v5 = version == Version::V5;
    let max_user_properties = options.limits.max_user_properties_bytes;
    if let Some((code, why)) = connect_refusal(connect, identity, arns, max_user_properties) {
        let reply = replies_to_refusal(version, options);
        return Err(ConnectRefusal { code, why, reply });
    }
    let keep_alive = effective_keep_alive(connect.keep_alive, options.min_keep_alive);
    let (session_expiry, announced_expiry) = session_expiry(connect, v5, options.session_expiry);
    Ok(ConnectTerms {
        keep_alive,
        session_expiry,
        session: SessionOptions {
            v5,
            persistent: !session_expiry.is_zero(),
            receive_maximum: connect.receive_maximum.map_or(MAX_INFLIGHT, usize::from),
        },
        announced: Announced {
            session_expiry: announced_expiry,
            keep_alive: (u64::from(connect.keep_alive) != keep_alive.as_secs())
                .then(|| u16::try_from(keep_alive.as_secs()).unwrap_or(u16::MAX)),
            max_packet_size: u32::try_from(MAX_PACKET_BYTES).unwrap_or(u32::MAX),
            assigned_client_id: None,
        },
    })
}

/// The prefix of the client IDs the server assigns, as IoT does
/// (aws-iot-device-sdk-js-v2#446).
pub const ASSIGNED_CLIENT_ID_PREFIX: &str = "$GEN/";

/// The client ID a CONNECT asking for `requested` connects as: its own; for an
/// empty one, a `$GEN/<uuid>` the server assigns (MQTT 5 always, as IoT does;
/// MQTT 3.1.1 only with a clean session, as MQTT 3.1.1 §3.1.3.1 allows). A
/// client may not name an assigned ID itself: IoT answers `0x85` when a client
/// reconnects with one (aws-iot-device-sdk-js-v2#446).
pub fn client_id(
    requested: &str,
    clean_start: bool,
    version: Version,
) -> Result<Option<String>, (ConnectCode, String)> {
    if requested.starts_with(ASSIGNED_CLIENT_ID_PREFIX) {
        return Err((
            ConnectCode::ClientIdNotValid,
            format!("client IDs starting with {ASSIGNED_CLIENT_ID_PREFIX} are assigned by the server, never chosen"),
        ));
    }
    if !requested.is_empty() {
        return Ok(None);
    }
    if version == Version::V5 || clean_start {
        return Ok(Some(format!(
            "{ASSIGNED_CLIENT_ID_PREFIX}{}",
            serverless_websockets_core::random::uuid()
        )));
    }
    Err((
        ConnectCode::ClientIdNotValid,
        "an empty client ID needs a clean session (MQTT 3.1.1 §3.1.3.1)".to_owned(),
    ))
}

/// Why a CONNECT may not be accepted, if it may not: the client ID, enhanced
/// authentication, `iot:Connect`, then the will.
fn connect_refusal(
    connect: &ConnectIn,
    identity: &Identity,
    arns: &IotArns,
    max_user_properties: usize,
) -> Option<(ConnectCode, String)> {
    let client_id = &connect.client_id;
    if client_id.is_empty() || client_id.len() > MAX_CLIENT_ID_BYTES {
        return Some((
            ConnectCode::ClientIdNotValid,
            format!("the client ID is empty or longer than {MAX_CLIENT_ID_BYTES} bytes"),
        ));
    }
    // MQTT 5 §3.1.2.11.3 and §3.1.2.11.4: either being 0 is a protocol error.
    if connect.receive_maximum == Some(0) || connect.max_packet_size == Some(0) {
        return Some((
            ConnectCode::ProtocolError,
            "Receive Maximum 0 or Maximum Packet Size 0".to_owned(),
        ));
    }
    if connect.auth_method {
        return Some((
            ConnectCode::BadAuthenticationMethod,
            "MQTT 5 enhanced authentication (AUTH) is not supported".to_owned(),
        ));
    }
    if let Err(denial) = identity.authorize("iot:Connect", &arns.client(client_id)) {
        return Some((ConnectCode::NotAuthorized, denial.to_string()));
    }
    connect
        .will
        .as_ref()
        .and_then(|will| will_refusal(&will.message, identity, arns, max_user_properties))
}

/// How long the session outlives the connection, and what CONNACK announces of
/// it. 3.1.1: a persistent session lives for the gateway's expiry; MQTT 5: for the
/// client's Session Expiry Interval, capped by it (as IoT caps it by the account's
/// persistent-session expiry), and the cap is announced when it applied.
fn session_expiry(connect: &ConnectIn, v5: bool, cap: Duration) -> (Duration, Option<u32>) {
    if v5 {
        let requested = Duration::from_secs(u64::from(connect.session_expiry));
        let applied = requested.min(cap);
        let announced = (applied != requested).then(|| u32::try_from(applied.as_secs()).unwrap_or(u32::MAX));
        (applied, announced)
    } else if connect.clean_start {
        (Duration::ZERO, None)
    } else {
        (cap, None)
    }
}

/// Why the will of a CONNECT may not be accepted: IoT authorizes it at CONNECT as
/// a publish (and a retained publish when it is retained).
fn will_refusal(
    will: &Message,
    identity: &Identity,
    arns: &IotArns,
    max_user_properties: usize,
) -> Option<(ConnectCode, String)> {
    if will.qos == QoS::ExactlyOnce {
        return Some((ConnectCode::QoSNotSupported, "the will's QoS is 2".to_owned()));
    }
    if let Some(why) = user_properties_over_quota(will.properties.as_deref(), max_user_properties) {
        return Some((ConnectCode::QuotaExceeded, format!("the will: {why}")));
    }
    if !is_publishable(&will.topic) {
        return Some((
            ConnectCode::TopicNameInvalid,
            format!("the will topic {:?} is not a valid topic", will.topic),
        ));
    }
    may_publish(identity, arns, &will.topic, will.retain)
        .err()
        .map(|denial| (ConnectCode::NotAuthorized, format!("the will: {denial}")))
}

/// Why MQTT 5 user properties are over IoT's quota (`max` bytes), if they are.
fn user_properties_over_quota(properties: Option<&Properties>, max: usize) -> Option<String> {
    let pairs = &properties?.user_properties;
    let bytes = user_properties_bytes(pairs);
    (bytes > max).then(|| format!("{} user properties take {bytes} bytes, over IoT's {max}", pairs.len()))
}

/// `iot:Publish` on `topic`, and `iot:RetainPublish` too for a retained message.
fn may_publish(identity: &Identity, arns: &IotArns, topic: &str, retain: bool) -> Result<(), String> {
    let resource = arns.topic(topic);
    identity
        .authorize("iot:Publish", &resource)
        .and_then(|()| {
            if retain {
                identity.authorize("iot:RetainPublish", &resource)
            } else {
                Ok(())
            }
        })
        .map_err(|denial| denial.to_string())
}

/// A packet that ends the connection: why (for the lifecycle event and the log)
/// and, for an MQTT 5 client, the DISCONNECT reason code when it is more precise
/// than the reason's own.
#[derive(Debug, PartialEq, Eq)]
pub struct Close {
    pub reason: DisconnectReason,
    pub code: Option<Code5>,
    pub why: String,
}

impl Close {
    fn client_error(code: Code5, why: impl Into<String>) -> Self {
        Self {
            reason: DisconnectReason::ClientError,
            code: Some(code),
            why: why.into(),
        }
    }
}

/// One filter of a SUBSCRIBE that was granted: the connection subscribes it.
#[derive(Debug, PartialEq, Eq)]
pub struct Granted {
    pub filter: String,
    pub qos: QoS,
    /// Whether the retained message of the filter's topic, if any, goes out now:
    /// IoT sends one only to a filter equal to its topic (never to a shared
    /// subscription, nor with MQTT 5 retain handling 2), if the client may receive it.
    pub send_retained: bool,
}

/// The answer to a SUBSCRIBE: SUBACK's codes, in the filters' order, and the
/// filters to subscribe.
#[derive(Debug, PartialEq, Eq)]
pub struct SubscribeAnswer {
    pub codes: Vec<SubCode>,
    pub granted: Vec<Granted>,
}

/// Decides a SUBSCRIBE from `identity`, whose session holds the filters `held`.
/// A refused filter gets its SUBACK code, except that a 3.1.1 connection is
/// closed for an unauthorized one unless `--suback-on-deny` (IoT's behaviour).
pub fn subscribe(
    filters: &[FilterIn],
    subscription_id: bool,
    version: Version,
    identity: &Identity,
    arns: &IotArns,
    options: &GatewayOptions,
    mut held: HashSet<String>,
) -> Result<SubscribeAnswer, Close> {
    if subscription_id {
        return Err(Close::client_error(
            Code5::SubscriptionIdentifiersNotSupported,
            "SUBSCRIBE refused: subscription identifiers are not supported",
        ));
    }
    if filters.is_empty() || filters.len() > MAX_FILTERS_PER_SUBSCRIBE {
        return Err(Close::client_error(
            Code5::ProtocolError,
            format!("SUBSCRIBE refused: 1 to {MAX_FILTERS_PER_SUBSCRIBE} filters per SUBSCRIBE"),
        ));
    }
    if !options.limits.grant_qos2_as_qos1
        && let Some(wanted) = filters.iter().find(|f| f.qos == QoS::ExactlyOnce)
    {
        // IoT sends no SUBACK for QoS 2 and closes the connection (its list of
        // differences from MQTT; aws-iot-device-sdk-embedded-C PR #1941).
        return Err(Close::client_error(
            Code5::QoSNotSupported,
            format!(
                "SUBSCRIBE refused: {:?} asks for QoS 2, which IoT does not support (no SUBACK; --grant-qos2-as-qos1 grants it as 1)",
                wanted.path
            ),
        ));
    }
    let mut answer = SubscribeAnswer {
        codes: Vec::with_capacity(filters.len()),
        granted: Vec::new(),
    };
    for wanted in filters {
        let code = match grant(wanted, identity, arns, &held) {
            Ok(granted) => {
                held.insert(granted.filter.clone());
                let code = SubCode::Granted(granted.qos);
                answer.granted.push(granted);
                code
            }
            Err(SubCode::NotAuthorized) if version == Version::V4 && options.subscribe_deny == DenyMode::Close => {
                return Err(Close {
                    reason: DisconnectReason::AuthError,
                    code: None,
                    why: format!("SUBSCRIBE to {:?} not authorized", wanted.path),
                });
            }
            Err(code) => code,
        };
        answer.codes.push(code);
    }
    Ok(answer)
}

/// One filter: valid, authorized, within the subscription quota.
fn grant(wanted: &FilterIn, identity: &Identity, arns: &IotArns, held: &HashSet<String>) -> Result<Granted, SubCode> {
    let filter = wanted.path.as_str();
    let shared = split_shared(filter).map_err(|_| SubCode::FilterInvalid)?;
    if shared.is_none() && check_filter(filter).is_err() {
        return Err(SubCode::FilterInvalid);
    }
    // A shared subscription is authorized as the whole `$share/…` filter, as in
    // IoT's policy examples.
    if let Err(denial) = identity.authorize("iot:Subscribe", &arns.topic_filter(filter)) {
        tracing::warn!(filter = %filter, principal = %identity.arn, "SUBSCRIBE not authorized: {denial}");
        return Err(SubCode::NotAuthorized);
    }
    if !held.contains(filter) && held.len() >= MAX_SUBSCRIPTIONS {
        tracing::warn!(filter = %filter, "SUBSCRIBE refused: {MAX_SUBSCRIPTIONS} subscriptions per connection at most");
        return Err(SubCode::QuotaExceeded);
    }
    let qos = if wanted.qos == QoS::AtMostOnce {
        QoS::AtMostOnce
    } else {
        QoS::AtLeastOnce
    };
    let send_retained = shared.is_none()
        && !wanted.no_retained
        && !has_wildcards(filter)
        && identity.is_allowed("iot:Receive", &arns.topic(filter));
    Ok(Granted {
        filter: filter.to_owned(),
        qos,
        send_retained,
    })
}

/// How a PUBLISH the policy refuses is answered.
#[derive(Debug, PartialEq, Eq)]
pub enum PublishRefusal {
    /// MQTT 5 QoS 1: PUBACK 0x87, and the connection stays.
    NegativeAck(String),
    /// Anything else ends the connection.
    Close(Close),
}

/// Decides a PUBLISH to `topic` (its alias already resolved): QoS, the topic, the
/// response topic, then `iot:Publish` (and `iot:RetainPublish`). Returns its QoS.
pub fn publish(
    publish: &PublishIn,
    topic: &str,
    version: Version,
    identity: &Identity,
    arns: &IotArns,
    limits: &Limits,
) -> Result<QoS, PublishRefusal> {
    let Some(qos) = publish.qos else {
        return Err(PublishRefusal::Close(Close::client_error(
            Code5::QoSNotSupported,
            "PUBLISH refused: QoS 2 is not supported",
        )));
    };
    if !may_be_published(topic) {
        return Err(PublishRefusal::Close(Close::client_error(
            Code5::TopicNameInvalid,
            "PUBLISH refused: invalid or reserved topic",
        )));
    }
    if let Some(why) = user_properties_over_quota(publish.properties.as_deref(), limits.max_user_properties_bytes) {
        return Err(PublishRefusal::Close(Close::client_error(
            Code5::QuotaExceeded,
            format!("PUBLISH refused: {why}"),
        )));
    }
    let response_topic = publish.properties.as_ref().and_then(|p| p.response_topic.as_deref());
    if response_topic.is_some_and(|t| check_topic_name(t).is_err()) {
        return Err(PublishRefusal::Close(Close::client_error(
            Code5::ProtocolError,
            "PUBLISH refused: the response topic is not a valid topic name",
        )));
    }
    if let Err(denial) = may_publish(identity, arns, topic, publish.retain) {
        let why = format!("PUBLISH not authorized: {denial}");
        if version == Version::V5 && qos == QoS::AtLeastOnce {
            return Err(PublishRefusal::NegativeAck(why));
        }
        return Err(PublishRefusal::Close(Close {
            reason: DisconnectReason::AuthError,
            code: Some(Code5::NotAuthorized),
            why,
        }));
    }
    Ok(qos)
}

/// The MQTT 5 DISCONNECT reason the gateway sends when it ends a connection
/// for `reason`; `None` when the client ended it.
pub fn disconnect_code(reason: DisconnectReason) -> Option<Code5> {
    Some(match reason {
        DisconnectReason::ClientInitiated | DisconnectReason::ConnectionLost | DisconnectReason::ForbiddenAccess => {
            return None;
        }
        DisconnectReason::DuplicateClientId => Code5::SessionTakenOver,
        DisconnectReason::AuthError => Code5::NotAuthorized,
        DisconnectReason::KeepAliveTimeout => Code5::KeepAliveTimeout,
        DisconnectReason::ClientError => Code5::ProtocolError,
        DisconnectReason::ServerInitiated => Code5::ServerShuttingDown,
        DisconnectReason::Throttled => Code5::QuotaExceeded,
        DisconnectReason::ApiInitiated => Code5::AdministrativeAction,
        DisconnectReason::CustomAuthTtl | DisconnectReason::WebsocketTtl => Code5::MaximumConnectTime,
    })
}

/// Whether a client may publish to `topic`: a valid, unreserved topic, or a
/// Basic Ingest topic `$aws/rules/<rule>/<topic>` whose own topic is (the prefix
/// does not count toward IoT's limits; <https://docs.aws.amazon.com/iot/latest/developerguide/iot-basic-ingest.html>).
pub fn may_be_published(topic: &str) -> bool {
    match crate::rules::basic_ingest(topic) {
        Some((_, rest)) => is_publishable(rest),
        None => is_publishable(topic),
    }
}

/// Whether an MQTT 5 topic alias is one the client may set (1 to IoT's maximum).
pub fn alias_in_range(alias: u16) -> bool {
    (1..=TOPIC_ALIAS_MAX).contains(&alias)
}

#[cfg(test)]
mod tests;
