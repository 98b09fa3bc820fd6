//! The two MQTT versions the gateway speaks, behind one set of types: packets
//! from a client are decoded with `rumqttc`'s v4 (3.1.1) or v5 codec into
//! [`Inbound`], and the gateway's answers are encoded back for the connection's
//! version. The version is the protocol level of the connection's CONNECT.
//!
//! IoT's MQTT 5 rules (<https://docs.aws.amazon.com/iot/latest/developerguide/mqtt.html>):
//! QoS 0 and 1, topic aliases up to 8, no subscription identifiers, no AUTH, and
//! reason codes on CONNACK, PUBACK, SUBACK, UNSUBACK and server DISCONNECT.

use std::time::Duration;

use bytes::{Bytes, BytesMut};
use rumqttc::mqttbytes::{QoS, v4};
use rumqttc::v5::mqttbytes::{QoS as QoS5, v5};

use serverless_websockets_core::quota::{MAX_INFLIGHT, MAX_MESSAGE_EXPIRY_SECS, TOPIC_ALIAS_MAX};

use super::message::{Message, Properties, qos_to5};

/// The protocol level of a connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Version {
    /// MQTT 3.1.1 (protocol level 4).
    V4,
    /// MQTT 5 (protocol level 5).
    V5,
}

/// A Last Will as CONNECT carries it.
#[derive(Debug, Clone)]
pub struct Will {
    pub message: Message,
    /// MQTT 5 will delay interval.
    pub delay: Duration,
}

#[derive(Debug)]
pub struct ConnectIn {
    pub client_id: String,
    pub keep_alive: u16,
    /// 3.1.1 clean session, MQTT 5 clean start.
    pub clean_start: bool,
    /// MQTT 5 session expiry interval (absent = 0).
    pub session_expiry: u32,
    /// The largest packet the client accepts (MQTT 5).
    pub max_packet_size: Option<u32>,
    /// The client's receive maximum (MQTT 5): QoS 1 deliveries in flight at once.
    pub receive_maximum: Option<u16>,
    pub will: Option<Will>,
    /// MQTT 5 enhanced authentication was asked for (IoT does not support it).
    pub auth_method: bool,
    /// The user name and password, which a custom authorizer may read.
    pub login: Option<Login>,
}

/// CONNECT's user name and password (rumqttc reads the password as UTF-8).
#[derive(Debug, Clone)]
pub struct Login {
    pub username: String,
    pub password: String,
}

#[derive(Debug)]
pub struct PublishIn {
    /// Empty when the client names the topic by alias only.
    pub topic: String,
    pub alias: Option<u16>,
    /// `None` for QoS 2, which IoT does not support.
    pub qos: Option<QoS>,
    pub retain: bool,
    pub pkid: u16,
    pub payload: Bytes,
    /// MQTT 5 properties without the topic alias and the expiry.
    pub properties: Option<Box<Properties>>,
    pub expiry: Option<u32>,
}

#[derive(Debug)]
pub struct FilterIn {
    pub path: String,
    /// `None` for QoS 2: granted as QoS 1.
    pub qos: QoS,
    /// MQTT 5 retain handling 2: no retained message on subscribe.
    pub no_retained: bool,
}

#[derive(Debug)]
pub enum Inbound {
    Connect(Box<ConnectIn>),
    Publish(PublishIn),
    Subscribe {
        pkid: u16,
        filters: Vec<FilterIn>,
        /// MQTT 5 subscription identifier, which IoT does not support.
        subscription_id: bool,
    },
    Unsubscribe {
        pkid: u16,
        filters: Vec<String>,
    },
    PubAck(u16),
    PingReq,
    Disconnect {
        /// MQTT 5 reason 0x04: publish the will all the same.
        with_will: bool,
        /// MQTT 5: a new session expiry interval.
        session_expiry: Option<u32>,
    },
    /// A packet a client may not send to a server here (QoS 2 flow, AUTH, acks).
    Unexpected(&'static str),
}

/// Why bytes did not make a packet.
#[derive(Debug, PartialEq, Eq)]
pub enum ReadError {
    /// Not a whole packet yet.
    Incomplete,
    /// Bigger than the gateway accepts (MQTT 5: 0x95).
    TooLarge,
    /// Not MQTT (MQTT 5: 0x81).
    Malformed(String),
    /// A CONNECT for a protocol level other than 4 or 5.
    Version(u8),
}

/// The protocol level of the CONNECT at the start of `buffer`, once it holds
/// enough bytes: `Ok(None)` until then.
pub fn connect_version(buffer: &[u8]) -> Result<Option<Version>, ReadError> {
    let Some(&first) = buffer.first() else {
        return Ok(None);
    };
    if first != 0x10 {
        return Err(ReadError::Malformed("the first packet is not a CONNECT".into()));
    }
    // The remaining length: 1 to 4 bytes, the high bit meaning "more".
    let mut at = 1;
    loop {
        let Some(&byte) = buffer.get(at) else {
            return Ok(None);
        };
        at += 1;
        if byte & 0x80 == 0 {
            break;
        }
        if at > 4 {
            return Err(ReadError::Malformed(
                "the remaining length is longer than 4 bytes".into(),
            ));
        }
    }
    // Protocol name (2-byte length + "MQTT"), then the level.
    let Some(name) = buffer.get(at..at + 6) else {
        return Ok(None);
    };
    if name != b"\x00\x04MQTT" {
        return Err(ReadError::Malformed("the protocol name is not MQTT".into()));
    }
    match buffer.get(at + 6) {
        None => Ok(None),
        Some(4) => Ok(Some(Version::V4)),
        Some(5) => Ok(Some(Version::V5)),
        Some(&level) => Err(ReadError::Version(level)),
    }
}

/// Decodes the next packet of `version` from `buffer`.
pub fn read(version: Version, buffer: &mut BytesMut, max: usize) -> Result<Inbound, ReadError> {
    match version {
        Version::V4 => read_v4(buffer, max),
        Version::V5 => read_v5(buffer, max),
    }
}

fn read_v4(buffer: &mut BytesMut, max: usize) -> Result<Inbound, ReadError> {
    use rumqttc::mqttbytes::Error;
    let packet = match v4::Packet::read(buffer, max) {
        Ok(packet) => packet,
        Err(Error::InsufficientBytes(_)) => return Err(ReadError::Incomplete),
        Err(Error::PayloadSizeLimitExceeded { .. }) => return Err(ReadError::TooLarge),
        Err(err) => return Err(ReadError::Malformed(format!("{err:?}"))),
    };
    Ok(match packet {
        v4::Packet::Connect(connect) => Inbound::Connect(Box::new(ConnectIn {
            client_id: connect.client_id,
            keep_alive: connect.keep_alive,
            clean_start: connect.clean_session,
            session_expiry: 0,
            max_packet_size: None,
            receive_maximum: None,
            will: connect.last_will.map(|will| Will {
                message: Message::new(will.topic, will.message, will.qos, will.retain),
                delay: Duration::ZERO,
            }),
            auth_method: false,
            login: connect.login.map(|l| Login {
                username: l.username,
                password: l.password,
            }),
        })),
        v4::Packet::Publish(publish) => Inbound::Publish(PublishIn {
            topic: publish.topic,
            alias: None,
            qos: (publish.qos != QoS::ExactlyOnce).then_some(publish.qos),
            retain: publish.retain,
            pkid: publish.pkid,
            payload: publish.payload,
            properties: None,
            expiry: None,
        }),
        v4::Packet::Subscribe(subscribe) => Inbound::Subscribe {
            pkid: subscribe.pkid,
            filters: subscribe
                .filters
                .into_iter()
                .map(|f| FilterIn {
                    path: f.path,
                    qos: f.qos,
                    no_retained: false,
                })
                .collect(),
            subscription_id: false,
        },
        v4::Packet::Unsubscribe(unsubscribe) => Inbound::Unsubscribe {
            pkid: unsubscribe.pkid,
            filters: unsubscribe.topics,
        },
        v4::Packet::PubAck(ack) => Inbound::PubAck(ack.pkid),
        v4::Packet::PingReq => Inbound::PingReq,
        v4::Packet::Disconnect => Inbound::Disconnect {
            with_will: false,
            session_expiry: None,
        },
        _ => Inbound::Unexpected("a packet a server does not take (QoS 2 flow or a server's packet)"),
    })
}

fn qos_from5(qos: QoS5) -> Option<QoS> {
    match qos {
        QoS5::AtMostOnce => Some(QoS::AtMostOnce),
        QoS5::AtLeastOnce => Some(QoS::AtLeastOnce),
        QoS5::ExactlyOnce => None,
    }
}

fn read_v5(buffer: &mut BytesMut, max: usize) -> Result<Inbound, ReadError> {
    use rumqttc::v5::mqttbytes::Error;
    // A DISCONNECT with no reason code (remaining length 0) is a normal
    // disconnect; rumqttc's reader wants a payload for it.
    if buffer.len() >= 2 && buffer[0] == 0xE0 && buffer[1] == 0 {
        let _ = buffer.split_to(2);
        return Ok(Inbound::Disconnect {
            with_will: false,
            session_expiry: None,
        });
    }
    let max = u32::try_from(max).unwrap_or(u32::MAX);
    let packet = match v5::Packet::read(buffer, Some(max)) {
        Ok(packet) => packet,
        Err(Error::InsufficientBytes(_)) => return Err(ReadError::Incomplete),
        Err(Error::PayloadSizeLimitExceeded { .. }) => return Err(ReadError::TooLarge),
        Err(err) => return Err(ReadError::Malformed(format!("{err:?}"))),
    };
    Ok(match packet {
        v5::Packet::Connect(connect, will, login) => {
            let mut connect = connect_of5(connect, will)?;
            connect.login = login.map(|l| Login {
                username: l.username,
                password: l.password,
            });
            Inbound::Connect(Box::new(connect))
        }
        v5::Packet::Publish(publish) => Inbound::Publish(publish_of5(publish)?),
        v5::Packet::Subscribe(subscribe) => Inbound::Subscribe {
            pkid: subscribe.pkid,
            subscription_id: subscribe.properties.is_some_and(|p| p.id.is_some()),
            filters: subscribe
                .filters
                .into_iter()
                .map(|f| FilterIn {
                    path: f.path,
                    // QoS 2 stays 2 here: SUBSCRIBE decides what a request for it gets.
                    qos: qos_from5(f.qos).unwrap_or(QoS::ExactlyOnce),
                    no_retained: f.retain_forward_rule == v5::RetainForwardRule::Never,
                })
                .collect(),
        },
        v5::Packet::Unsubscribe(unsubscribe) => Inbound::Unsubscribe {
            pkid: unsubscribe.pkid,
            filters: unsubscribe.filters,
        },
        v5::Packet::PubAck(ack) => Inbound::PubAck(ack.pkid),
        v5::Packet::PingReq(_) => Inbound::PingReq,
        v5::Packet::Disconnect(disconnect) => Inbound::Disconnect {
            with_will: disconnect.reason_code == v5::DisconnectReasonCode::DisconnectWithWillMessage,
            session_expiry: disconnect.properties.and_then(|p| p.session_expiry_interval),
        },
        v5::Packet::Auth(_) => Inbound::Unexpected("AUTH (IoT does not support enhanced authentication)"),
        _ => Inbound::Unexpected("a packet a server does not take (QoS 2 flow or a server's packet)"),
    })
}

/// An MQTT 5 CONNECT as the gateway sees it.
fn connect_of5(connect: v5::Connect, will: Option<v5::LastWill>) -> Result<ConnectIn, ReadError> {
    let properties = connect.properties.unwrap_or_default();
    let will = match will {
        None => None,
        Some(will) => Some(will_of(will)?),
    };
    Ok(ConnectIn {
        client_id: connect.client_id,
        keep_alive: connect.keep_alive,
        clean_start: connect.clean_start,
        session_expiry: properties.session_expiry_interval.unwrap_or(0),
        max_packet_size: properties.max_packet_size,
        receive_maximum: properties.receive_maximum,
        will,
        auth_method: properties.authentication_method.is_some(),
        login: None,
    })
}

/// An MQTT 5 PUBLISH: the topic alias and the expiry taken out of its properties
/// (the connection resolves the one, the router keeps the other as an instant).
fn publish_of5(publish: v5::Publish) -> Result<PublishIn, ReadError> {
    let topic =
        String::from_utf8(publish.topic.to_vec()).map_err(|_| ReadError::Malformed("the topic is not UTF-8".into()))?;
    let (properties, alias, expiry) = match publish.properties {
        None => (None, None, None),
        Some(mut properties) => {
            let alias = properties.topic_alias.take();
            let expiry = properties.message_expiry_interval.take();
            properties.subscription_identifiers.clear();
            (Some(Box::new(properties)), alias, expiry)
        }
    };
    Ok(PublishIn {
        topic,
        alias,
        qos: qos_from5(publish.qos),
        retain: publish.retain,
        pkid: publish.pkid,
        payload: publish.payload,
        properties: properties.filter(|p| !is_empty(p)),
        expiry,
    })
}

fn is_empty(properties: &Properties) -> bool {
    properties == &Properties::default()
}

fn will_of(will: v5::LastWill) -> Result<Will, ReadError> {
    let topic = String::from_utf8(will.topic.to_vec())
        .map_err(|_| ReadError::Malformed("the will topic is not UTF-8".into()))?;
    let qos = qos_from5(will.qos).unwrap_or(QoS::ExactlyOnce);
    let mut message = Message::new(topic, will.message, qos, will.retain);
    let mut delay = Duration::ZERO;
    if let Some(p) = will.properties {
        delay = Duration::from_secs(u64::from(p.delay_interval.unwrap_or(0)));
        message.set_expiry(p.message_expiry_interval);
        let properties = Properties {
            payload_format_indicator: p.payload_format_indicator,
            message_expiry_interval: None,
            topic_alias: None,
            response_topic: p.response_topic,
            correlation_data: p.correlation_data,
            user_properties: p.user_properties,
            subscription_identifiers: Vec::new(),
            content_type: p.content_type,
        };
        message.properties = Some(Box::new(properties)).filter(|p| !is_empty(p));
    }
    Ok(Will { message, delay })
}

/// How a CONNECT was answered.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ConnectCode {
    Accepted,
    NotAuthorized,
    ClientIdNotValid,
    BadAuthenticationMethod,
    QoSNotSupported,
    TopicNameInvalid,
    /// MQTT 5 0x82: a value the protocol forbids (Receive Maximum 0, …).
    ProtocolError,
    /// MQTT 5 0x97: over one of IoT's quotas (the will's user properties).
    QuotaExceeded,
    /// MQTT 5 0x9F: over IoT's CONNECTs per second per client ID.
    ConnectionRateExceeded,
}

/// What CONNACK tells an MQTT 5 client about the server and its adjustments.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Announced {
    /// The session expiry the server applies, when it differs from the request.
    pub session_expiry: Option<u32>,
    /// The keep-alive the server applies, when it differs from the request.
    pub keep_alive: Option<u16>,
    pub max_packet_size: u32,
    /// The client ID the server assigned to a CONNECT without one (`$GEN/<uuid>`).
    pub assigned_client_id: Option<String>,
}

/// CONNACK.
pub fn connack(version: Version, session_present: bool, code: ConnectCode, announced: &Announced) -> Bytes {
    let mut buffer = BytesMut::new();
    match version {
        Version::V4 => {
            // IoT itself just closes; with `--connack-on-deny` a refusal is 5
            // (not authorized), 2 for a client ID and 3 for a throttled CONNECT.
            let code = match code {
                ConnectCode::Accepted => v4::ConnectReturnCode::Success,
                ConnectCode::ClientIdNotValid => v4::ConnectReturnCode::BadClientId,
                ConnectCode::ConnectionRateExceeded => v4::ConnectReturnCode::ServiceUnavailable,
                _ => v4::ConnectReturnCode::NotAuthorized,
            };
            let _ = v4::ConnAck::new(code, session_present).write(&mut buffer);
        }
        Version::V5 => {
            let properties = (code == ConnectCode::Accepted).then(|| v5::ConnAckProperties {
                session_expiry_interval: announced.session_expiry,
                receive_max: Some(MAX_INFLIGHT as u16),
                max_qos: Some(1),
                retain_available: Some(1),
                max_packet_size: Some(announced.max_packet_size),
                assigned_client_identifier: announced.assigned_client_id.clone(),
                topic_alias_max: Some(TOPIC_ALIAS_MAX),
                reason_string: None,
                user_properties: Vec::new(),
                wildcard_subscription_available: Some(1),
                subscription_identifiers_available: Some(0),
                shared_subscription_available: Some(1),
                server_keep_alive: announced.keep_alive,
                response_information: None,
                server_reference: None,
                authentication_method: None,
                authentication_data: None,
            });
            let code = match code {
                ConnectCode::Accepted => v5::ConnectReturnCode::Success,
                ConnectCode::NotAuthorized => v5::ConnectReturnCode::NotAuthorized,
                ConnectCode::ClientIdNotValid => v5::ConnectReturnCode::ClientIdentifierNotValid,
                ConnectCode::BadAuthenticationMethod => v5::ConnectReturnCode::BadAuthenticationMethod,
                ConnectCode::QoSNotSupported => v5::ConnectReturnCode::QoSNotSupported,
                ConnectCode::TopicNameInvalid => v5::ConnectReturnCode::TopicNameInvalid,
                ConnectCode::ProtocolError => v5::ConnectReturnCode::ProtocolError,
                ConnectCode::QuotaExceeded => v5::ConnectReturnCode::QuotaExceeded,
                ConnectCode::ConnectionRateExceeded => v5::ConnectReturnCode::ConnectionRateExceeded,
            };
            let _ = v5::ConnAck {
                session_present,
                code,
                properties,
            }
            .write(&mut buffer);
        }
    }
    buffer.freeze()
}

/// One filter's answer in SUBACK.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SubCode {
    Granted(QoS),
    NotAuthorized,
    FilterInvalid,
    QuotaExceeded,
    SubscriptionIdNotSupported,
}

pub fn suback(version: Version, pkid: u16, codes: &[SubCode]) -> Bytes {
    let mut buffer = BytesMut::new();
    match version {
        Version::V4 => {
            let codes = codes
                .iter()
                .map(|code| match code {
                    SubCode::Granted(qos) => v4::SubscribeReasonCode::Success(*qos),
                    _ => v4::SubscribeReasonCode::Failure,
                })
                .collect();
            let _ = v4::SubAck::new(pkid, codes).write(&mut buffer);
        }
        Version::V5 => {
            let return_codes = codes
                .iter()
                .map(|code| match code {
                    SubCode::Granted(qos) => v5::SubscribeReasonCode::Success(qos_to5(*qos)),
                    SubCode::NotAuthorized => v5::SubscribeReasonCode::NotAuthorized,
                    SubCode::FilterInvalid => v5::SubscribeReasonCode::TopicFilterInvalid,
                    SubCode::QuotaExceeded => v5::SubscribeReasonCode::QuotaExceeded,
                    SubCode::SubscriptionIdNotSupported => v5::SubscribeReasonCode::SubscriptionIdNotSupported,
                })
                .collect();
            let _ = v5::SubAck {
                pkid,
                return_codes,
                properties: None,
            }
            .write(&mut buffer);
        }
    }
    buffer.freeze()
}

/// UNSUBACK; `removed` says, per filter, whether there was such a subscription.
pub fn unsuback(version: Version, pkid: u16, removed: &[bool]) -> Bytes {
    let mut buffer = BytesMut::new();
    match version {
        Version::V4 => {
            let _ = v4::UnsubAck::new(pkid).write(&mut buffer);
        }
        Version::V5 => {
            let reasons = removed
                .iter()
                .map(|&had| {
                    if had {
                        v5::UnsubAckReason::Success
                    } else {
                        v5::UnsubAckReason::NoSubscriptionExisted
                    }
                })
                .collect();
            let _ = v5::UnsubAck {
                pkid,
                reasons,
                properties: None,
            }
            .write(&mut buffer);
        }
    }
    buffer.freeze()
}

/// What a PUBACK says (MQTT 5; a 3.1.1 PUBACK says only "received").
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PubAckCode {
    Accepted,
    /// 0x87.
    NotAuthorized,
    /// 0x97: over a rate limit (MQTT 5 has no PUBACK code for "rate too high").
    QuotaExceeded,
}

/// PUBACK.
pub fn puback(version: Version, pkid: u16, code: PubAckCode) -> Bytes {
    let mut buffer = BytesMut::new();
    match version {
        Version::V4 => {
            let _ = v4::PubAck::new(pkid).write(&mut buffer);
        }
        Version::V5 => {
            let mut ack = v5::PubAck::new(pkid, None);
            ack.reason = match code {
                PubAckCode::Accepted => v5::PubAckReason::Success,
                PubAckCode::NotAuthorized => v5::PubAckReason::NotAuthorized,
                PubAckCode::QuotaExceeded => v5::PubAckReason::QuotaExceeded,
            };
            let _ = ack.write(&mut buffer);
        }
    }
    buffer.freeze()
}

pub fn pingresp() -> Bytes {
    Bytes::from_static(&[0xD0, 0x00])
}

/// A server DISCONNECT (MQTT 5 only) with its reason code and a reason string.
pub fn disconnect(code: v5::DisconnectReasonCode, reason: Option<String>) -> Bytes {
    let mut buffer = BytesMut::new();
    let mut packet = v5::Disconnect::new(code);
    if let Some(reason) = reason {
        packet.properties = Some(v5::DisconnectProperties {
            session_expiry_interval: None,
            reason_string: Some(reason),
            user_properties: Vec::new(),
            server_reference: None,
        });
    }
    let _ = packet.write(&mut buffer);
    buffer.freeze()
}

/// A PUBLISH of `message` for one receiver, at `qos` with `retain`: MQTT 5 with
/// the message's properties and its remaining expiry in whole seconds (at least
/// 1), 3.1.1 without properties.
pub fn publish(
    version: Version,
    message: &Message,
    qos: QoS,
    retain: bool,
    pkid: u16,
    dup: bool,
    now: tokio::time::Instant,
) -> Bytes {
    let pkid = if qos == QoS::AtMostOnce { 0 } else { pkid };
    match version {
        Version::V4 => {
            let mut publish = v4::Publish::from_bytes(&message.topic, qos, message.payload.clone());
            publish.retain = retain;
            publish.pkid = pkid;
            publish.dup = dup;
            let mut buffer = BytesMut::new();
            let _ = publish.write(&mut buffer);
            buffer.freeze()
        }
        Version::V5 => {
            let expiry = message.expires.map(|expires| {
                let left = expires.saturating_duration_since(now);
                u32::try_from(left.as_secs().saturating_add(u64::from(left.subsec_nanos() > 0)))
                    .unwrap_or(MAX_MESSAGE_EXPIRY_SECS)
                    .max(1)
            });
            super::message::encode_publish_v5(message, qos, retain, pkid, dup, expiry)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn connect_bytes(level: u8) -> BytesMut {
        let mut buffer = BytesMut::new();
        match level {
            4 => {
                v4::Connect::new("c").write(&mut buffer).unwrap();
            }
            _ => {
                v5::Connect {
                    keep_alive: 30,
                    client_id: "c".into(),
                    clean_start: true,
                    properties: None,
                }
                .write(&None, &None, &mut buffer)
                .unwrap();
            }
        }
        buffer
    }

    #[test]
    fn the_protocol_level_of_a_connect_picks_the_codec() {
        assert_eq!(connect_version(&connect_bytes(4)), Ok(Some(Version::V4)));
        assert_eq!(connect_version(&connect_bytes(5)), Ok(Some(Version::V5)));
        let whole = connect_bytes(5);
        for cut in 0..9 {
            assert_eq!(connect_version(&whole[..cut]), Ok(None), "{cut} bytes");
        }
        let mut level3 = connect_bytes(4);
        level3[8] = 3;
        assert_eq!(connect_version(&level3), Err(ReadError::Version(3)));
        assert!(matches!(connect_version(&[0x30, 0]), Err(ReadError::Malformed(_))));
    }

    #[test]
    fn an_mqtt5_disconnect_without_a_reason_code_is_a_normal_disconnect() {
        let mut buffer = BytesMut::from(&[0xE0, 0x00][..]);
        assert!(matches!(
            read(Version::V5, &mut buffer, 1024),
            Ok(Inbound::Disconnect {
                with_will: false,
                session_expiry: None
            })
        ));
        assert!(buffer.is_empty());
    }

    #[test]
    fn an_mqtt5_publish_carries_its_properties_and_the_remaining_expiry() {
        let mut message = Message::new("a/b".into(), Bytes::from_static(b"hi"), QoS::AtLeastOnce, false);
        message.properties = Some(Box::new(Properties {
            user_properties: vec![("k".into(), "v".into())],
            correlation_data: Some(Bytes::from_static(b"id")),
            ..Properties::default()
        }));
        let now = tokio::time::Instant::now();
        message.expires = Some(now + Duration::from_millis(9_500));
        let mut frame = BytesMut::from(&publish(Version::V5, &message, QoS::AtLeastOnce, false, 7, true, now)[..]);
        let v5::Packet::Publish(decoded) = v5::Packet::read(&mut frame, None).unwrap() else {
            panic!("not a PUBLISH");
        };
        assert_eq!((decoded.pkid, decoded.dup, &decoded.topic[..]), (7, true, &b"a/b"[..]));
        let properties = decoded.properties.unwrap();
        assert_eq!(properties.message_expiry_interval, Some(10));
        assert_eq!(properties.user_properties, vec![("k".to_owned(), "v".to_owned())]);
        assert_eq!(properties.correlation_data.as_deref(), Some(&b"id"[..]));
        // The same message to a 3.1.1 receiver has no properties at all.
        let mut frame = BytesMut::from(&publish(Version::V4, &message, QoS::AtLeastOnce, false, 7, false, now)[..]);
        let v4::Packet::Publish(decoded) = v4::Packet::read(&mut frame, 4096).unwrap() else {
            panic!("not a PUBLISH");
        };
        assert_eq!((decoded.topic.as_str(), &decoded.payload[..]), ("a/b", &b"hi"[..]));
    }
}
