//! A message as the gateway carries it, whichever MQTT version sent it and
//! whichever receives it ([`Message`]), and what a connection is asked to write
//! ([`Outgoing`]): the broker routes these, the packet codec encodes them, and
//! neither imports the other.
//!
//! A routed message is encoded once per MQTT version and QoS with `rumqttc`'s
//! `mqttbytes` and shared by every receiver that takes that encoding
//! ([`Encodings`]); a QoS 1 frame carries a placeholder packet identifier that
//! each connection overwrites on its own copy of the few header bytes. A message
//! that expires is encoded by each receiving connection instead: its Message
//! Expiry Interval is the time left at delivery.
//!
//! Not here: routing (the [`super::broker`]), the rest of the packet codec
//! ([`super::packet`], which encodes a message for one connection with
//! [`encode_publish_v5`] or 3.1.1's `mqttbytes`).

use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use rumqttc::mqttbytes::QoS;
use rumqttc::mqttbytes::v4::Publish;
use rumqttc::v5::mqttbytes::{QoS as QoS5, v5};
use serverless_websockets_core::quota::MAX_MESSAGE_EXPIRY_SECS;
use tokio::sync::oneshot;

/// What became of a delivery whose PUBACK someone waits for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Delivery {
    /// The client acknowledged it.
    Acknowledged,
    /// Never written: larger than the client's MQTT 5 Maximum Packet Size.
    TooLarge,
}

/// A QoS 1 delivery whose PUBACK someone waits for (SendDirectMessage with confirmation).
#[derive(Debug)]
pub struct Confirm(Mutex<Option<oneshot::Sender<Delivery>>>);

impl Confirm {
    pub fn new() -> (Arc<Self>, oneshot::Receiver<Delivery>) {
        let (tx, rx) = oneshot::channel();
        (Arc::new(Self(Mutex::new(Some(tx)))), rx)
    }

    /// Tells whoever waits what became of the delivery (the first word counts).
    pub(crate) fn fire(&self, delivery: Delivery) {
        if let Some(tx) = self.0.lock().unwrap_or_else(|e| e.into_inner()).take() {
            let _ = tx.send(delivery);
        }
    }
}

/// MQTT 5 properties a message carries to MQTT 5 receivers.
pub use rumqttc::v5::mqttbytes::v5::PublishProperties as Properties;

/// A message as the router carries it, whichever MQTT version sent it and
/// whichever receives it.
#[derive(Debug, Clone, PartialEq)]
pub struct Message {
    pub topic: String,
    pub payload: Bytes,
    pub qos: QoS,
    pub retain: bool,
    /// MQTT 5 properties, for MQTT 5 receivers only (no topic alias, no
    /// subscription identifiers; the expiry is `expires`).
    pub properties: Option<Box<Properties>>,
    /// When the message expires (MQTT 5 message expiry): it is not delivered after.
    pub expires: Option<tokio::time::Instant>,
}

impl Message {
    pub fn new(topic: String, payload: Bytes, qos: QoS, retain: bool) -> Self {
        Self {
            topic,
            payload,
            qos,
            retain,
            properties: None,
            expires: None,
        }
    }

    /// The bytes IoT meters a PUBLISH of this message by: topic and payload, and
    /// the MQTT 5 user properties, response topic, correlation data and content
    /// type (<https://aws.amazon.com/iot-core/pricing/additional-details/>).
    pub fn metered_bytes(&self) -> usize {
        let properties = self.properties.as_deref().map_or(0, |p| {
            serverless_websockets_core::quota::user_properties_bytes(&p.user_properties)
                + p.response_topic.as_ref().map_or(0, String::len)
                + p.correlation_data.as_ref().map_or(0, Bytes::len)
                + p.content_type.as_ref().map_or(0, String::len)
        });
        self.topic.len() + self.payload.len() + properties
    }

    /// Sets the expiry `secs` from now, capped at IoT's seven days.
    pub fn set_expiry(&mut self, secs: Option<u32>) {
        self.expires = secs.map(|secs| {
            let secs = secs.min(MAX_MESSAGE_EXPIRY_SECS);
            tokio::time::Instant::now() + Duration::from_secs(u64::from(secs))
        });
    }

    pub fn expired(&self, now: tokio::time::Instant) -> bool {
        self.expires.is_some_and(|expires| expires <= now)
    }

    /// Roughly what the message costs in memory, for the queues' byte bounds:
    /// its bytes plus what each string's allocation and pair costs beyond them
    /// (one-byte user properties weigh ~13× their wire size as `String`s).
    pub fn cost(&self) -> usize {
        let properties = self.properties.as_deref().map_or(0, |p| {
            let strings = [&p.content_type, &p.response_topic]
                .iter()
                .filter_map(|s| s.as_ref())
                .map(|s| s.len() + STRING_OVERHEAD)
                .sum::<usize>();
            let pairs = p
                .user_properties
                .iter()
                .map(|(k, v)| k.len() + v.len() + 2 * STRING_OVERHEAD)
                .sum::<usize>();
            std::mem::size_of::<Properties>() + strings + pairs + p.correlation_data.as_ref().map_or(0, Bytes::len)
        });
        std::mem::size_of::<Self>() + self.topic.len() + self.payload.len() + properties
    }
}

/// What a heap `String` costs beyond its bytes: its 24-byte header and the
/// allocator's smallest chunk.
const STRING_OVERHEAD: usize = 24 + 16;

/// MQTT 5 properties from a republish action's `headers`
/// (<https://docs.aws.amazon.com/iot/latest/developerguide/republish-rule-action.html>):
/// payload format, content type, response topic, correlation data (base64) and
/// user properties, taken as written (templates in headers are not expanded).
pub fn properties_from_headers(headers: &serde_json::Value) -> Option<Box<Properties>> {
    use base64::Engine as _;
    let text = |key: &str| headers.get(key).and_then(serde_json::Value::as_str).map(str::to_owned);
    let properties = Properties {
        payload_format_indicator: text("payloadFormatIndicator").map(|f| u8::from(f == "UTF8_DATA")),
        content_type: text("contentType"),
        response_topic: text("responseTopic"),
        correlation_data: text("correlationData")
            .and_then(|b| base64::engine::general_purpose::STANDARD.decode(b).ok())
            .map(Bytes::from),
        user_properties: headers
            .get("userProperties")
            .and_then(serde_json::Value::as_array)
            .map(|pairs| {
                pairs
                    .iter()
                    .filter_map(|p| Some((p.get("key")?.as_str()?.to_owned(), p.get("value")?.as_str()?.to_owned())))
                    .collect()
            })
            .unwrap_or_default(),
        ..Properties::default()
    };
    (properties != Properties::default()).then(|| Box::new(properties))
}

/// What a connection is asked to write, besides its own acknowledgements.
#[derive(Debug, Clone)]
pub enum Outgoing {
    /// A complete encoded packet, shared by every recipient.
    Frame(Bytes),
    /// An encoded QoS 1 PUBLISH whose 2-byte packet identifier at `pkid_at` the
    /// connection replaces with its own.
    Qos1 {
        frame: Bytes,
        pkid_at: usize,
        confirm: Option<Arc<Confirm>>,
    },
    /// A message encoded by the connection for its own MQTT version: MQTT 5
    /// receivers (properties) and messages that expire (the remaining interval).
    Message {
        message: Arc<Message>,
        qos: QoS,
        retain: bool,
        confirm: Option<Arc<Confirm>>,
        /// `message.cost()`, worked out once per routed message, not per receiver.
        cost: usize,
    },
}

impl Outgoing {
    pub fn is_qos1(&self) -> bool {
        match self {
            Self::Frame(_) => false,
            Self::Qos1 { .. } => true,
            Self::Message { qos, .. } => *qos == QoS::AtLeastOnce,
        }
    }

    pub(crate) fn confirm(&self) -> Option<&Arc<Confirm>> {
        match self {
            Self::Frame(_) => None,
            Self::Qos1 { confirm, .. } | Self::Message { confirm, .. } => confirm.as_ref(),
        }
    }

    /// The topic this delivery is published on (read from the encoded frame for
    /// the shared 3.1.1 encodings).
    pub fn topic(&self) -> Option<&str> {
        match self {
            Self::Frame(frame) | Self::Qos1 { frame, .. } => publish_topic(frame),
            Self::Message { message, .. } => Some(&message.topic),
        }
    }

    /// Roughly what holding this delivery costs in memory (a shared message or
    /// frame counts in full for each holder: an upper bound).
    pub fn cost(&self) -> usize {
        std::mem::size_of::<Self>()
            + match self {
                Self::Frame(frame) | Self::Qos1 { frame, .. } => frame.len(),
                Self::Message { cost, .. } => *cost,
            }
    }

    pub(crate) fn expired(&self) -> bool {
        matches!(self, Self::Message { message, .. } if message.expires.is_some_and(|at| at <= tokio::time::Instant::now()))
    }
}

/// Where the topic name of an encoded PUBLISH starts and how long it is: after
/// the fixed header's first byte, its 1–4-byte remaining length and a 2-byte
/// length. MQTT 3.1.1 and 5 agree on this much.
fn topic_span(frame: &[u8]) -> Option<(usize, usize)> {
    let mut at = 1;
    loop {
        let byte = *frame.get(at)?;
        at += 1;
        if byte & 0x80 == 0 {
            break;
        }
        if at > 4 {
            return None;
        }
    }
    let len = usize::from(u16::from_be_bytes([*frame.get(at)?, *frame.get(at + 1)?]));
    Some((at + 2, len))
}

/// The topic name of an encoded PUBLISH.
pub(crate) fn publish_topic(frame: &[u8]) -> Option<&str> {
    let (start, len) = topic_span(frame)?;
    std::str::from_utf8(frame.get(start..start + len)?).ok()
}

/// Encodes a 3.1.1 PUBLISH once. Returns the frame and, for QoS 1, the offset
/// of its packet identifier.
pub fn encode_publish(topic: &str, payload: &Bytes, qos: QoS, retain: bool) -> (Bytes, usize) {
    let mut publish = Publish::from_bytes(topic, qos, payload.clone());
    publish.retain = retain;
    publish.pkid = if qos == QoS::AtMostOnce { 0 } else { 1 };
    let mut buffer = BytesMut::with_capacity(publish.size());
    // Writing to a growable buffer fails only for a topic or payload over MQTT's
    // 64 KiB / 256 MiB bounds, which the gateway refuses long before (IoT's quotas).
    if let Err(error) = publish.write(&mut buffer) {
        tracing::error!(%topic, "cannot encode a PUBLISH: {error:?}");
    }
    let pkid_at = buffer.len().saturating_sub(payload.len() + 2);
    (buffer.freeze(), pkid_at)
}

/// Encodes an MQTT 5 PUBLISH of `message` with its properties, and `expiry` as
/// its Message Expiry Interval in seconds if given.
pub fn encode_publish_v5(
    message: &Message,
    qos: QoS,
    retain: bool,
    pkid: u16,
    dup: bool,
    expiry: Option<u32>,
) -> Bytes {
    let mut properties = message.properties.as_deref().cloned();
    if let Some(secs) = expiry {
        properties
            .get_or_insert_with(Properties::default)
            .message_expiry_interval = Some(secs);
    }
    let mut publish = v5::Publish::new(
        message.topic.as_str(),
        qos_to5(qos),
        message.payload.clone(),
        properties,
    );
    publish.retain = retain;
    publish.pkid = if qos == QoS::AtMostOnce { 0 } else { pkid };
    publish.dup = dup;
    let mut buffer = BytesMut::new();
    // As for 3.1.1: only sizes the gateway refuses long before make this fail.
    if let Err(error) = publish.write(&mut buffer) {
        tracing::error!(topic = %message.topic, "cannot encode an MQTT 5 PUBLISH: {error:?}");
    }
    buffer.freeze()
}

/// The MQTT 5 name of a QoS.
pub(crate) fn qos_to5(qos: QoS) -> QoS5 {
    match qos {
        QoS::AtMostOnce => QoS5::AtMostOnce,
        QoS::AtLeastOnce => QoS5::AtLeastOnce,
        QoS::ExactlyOnce => QoS5::ExactlyOnce,
    }
}

/// The shared MQTT 5 encoding of a message that does not expire at `qos`, and
/// for QoS 1 the offset of its placeholder packet identifier (right after the
/// topic; the properties follow it).
fn encode_shared_v5(message: &Message, qos: QoS) -> (Bytes, usize) {
    let frame = encode_publish_v5(message, qos, false, 1, false, None);
    let pkid_at = topic_span(&frame).map_or(0, |(start, len)| start + len);
    (frame, pkid_at)
}

/// An encoded delivery at `qos`.
pub fn outgoing(topic: &str, payload: &Bytes, qos: QoS, retain: bool, confirm: Option<Arc<Confirm>>) -> Outgoing {
    let (frame, pkid_at) = encode_publish(topic, payload, qos, retain);
    if qos == QoS::AtLeastOnce {
        Outgoing::Qos1 {
            frame,
            pkid_at,
            confirm,
        }
    } else {
        Outgoing::Frame(frame)
    }
}

/// The encodings of one routed message, made once and shared by every receiver
/// that takes the same one.
#[derive(Default)]
pub struct Encodings {
    /// 3.1.1 at QoS 0 and 1, then MQTT 5 at QoS 0 and 1: each frame and, for
    /// QoS 1, the offset of its placeholder packet identifier.
    frames: [Option<(Bytes, usize)>; 4],
    /// The message's memory cost, for MQTT 5 receivers' queues.
    cost: Option<usize>,
}

impl Encodings {
    /// The delivery for a subscription granted `granted`: the shared frames of
    /// the session's MQTT version (`v5`), or the message itself if it expires.
    pub fn for_receiver(&mut self, message: &Arc<Message>, granted: QoS, v5: bool) -> Outgoing {
        let qos = if message.qos == QoS::AtLeastOnce && granted == QoS::AtLeastOnce {
            QoS::AtLeastOnce
        } else {
            QoS::AtMostOnce
        };
        if message.expires.is_some() {
            return Outgoing::Message {
                cost: *self.cost.get_or_insert_with(|| message.cost()),
                message: message.clone(),
                qos,
                retain: false,
                confirm: None,
            };
        }
        let slot = usize::from(v5) * 2 + usize::from(qos == QoS::AtLeastOnce);
        let (frame, pkid_at) = self.frames[slot]
            .get_or_insert_with(|| {
                if v5 {
                    encode_shared_v5(message, qos)
                } else {
                    encode_publish(&message.topic, &message.payload, qos, false)
                }
            })
            .clone();
        if qos == QoS::AtLeastOnce {
            Outgoing::Qos1 {
                frame,
                pkid_at,
                confirm: None,
            }
        } else {
            Outgoing::Frame(frame)
        }
    }
}

#[cfg(test)]
mod tests {
    use rumqttc::mqttbytes::v4::Packet;

    use super::*;

    #[test]
    fn the_topic_of_an_encoded_publish_is_read_back_whatever_its_length() {
        let long = "t".repeat(200);
        for (topic, payload) in [("a/b", 5), (long.as_str(), 200_000)] {
            let payload = Bytes::from(vec![0u8; payload]);
            for qos in [QoS::AtMostOnce, QoS::AtLeastOnce] {
                let outgoing = outgoing(topic, &payload, qos, false, None);
                assert_eq!(outgoing.topic(), Some(topic));
            }
        }
    }

    #[test]
    fn a_qos1_frame_carries_its_packet_identifier_at_the_reported_offset() {
        let payload = Bytes::from_static(b"hello");
        let (frame, at) = encode_publish("a/b", &payload, QoS::AtLeastOnce, false);
        let mut patched = BytesMut::from(&frame[..]);
        patched[at..at + 2].copy_from_slice(&0x1234u16.to_be_bytes());
        match Packet::read(&mut patched, 1024).unwrap() {
            Packet::Publish(p) => {
                assert_eq!(p.pkid, 0x1234);
                assert_eq!(p.topic, "a/b");
                assert_eq!(&p.payload[..], b"hello");
                assert_eq!(p.qos, QoS::AtLeastOnce);
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn mqtt5_receivers_share_one_frame_per_qos_with_the_packet_identifier_after_the_topic() {
        let mut message = Message::new("a/b".into(), Bytes::from_static(b"hello"), QoS::AtLeastOnce, false);
        message.properties = Some(Box::new(Properties {
            user_properties: vec![("k".into(), "v".into())],
            content_type: Some("text/plain".into()),
            ..Properties::default()
        }));
        let message = Arc::new(message);
        let mut encodings = Encodings::default();
        let first = encodings.for_receiver(&message, QoS::AtLeastOnce, true);
        let second = encodings.for_receiver(&message, QoS::AtLeastOnce, true);
        let (Outgoing::Qos1 { frame, pkid_at, .. }, Outgoing::Qos1 { frame: other, .. }) = (first, second) else {
            panic!("QoS 1 frames to patch");
        };
        assert_eq!(frame.as_ptr(), other.as_ptr(), "encoded once, shared");
        let mut patched = BytesMut::from(&frame[..]);
        patched[pkid_at..pkid_at + 2].copy_from_slice(&0x1234u16.to_be_bytes());
        match v5::Packet::read(&mut patched, None).unwrap() {
            v5::Packet::Publish(p) => {
                assert_eq!(
                    (p.pkid, &p.topic[..], &p.payload[..]),
                    (0x1234, &b"a/b"[..], &b"hello"[..])
                );
                let properties = p.properties.unwrap();
                assert_eq!(properties.user_properties, [("k".to_owned(), "v".to_owned())]);
                assert_eq!(properties.content_type.as_deref(), Some("text/plain"));
                assert_eq!(properties.message_expiry_interval, None);
            }
            other => panic!("{other:?}"),
        }
        // A QoS 0 subscription: its own shared frame, no packet identifier.
        let Outgoing::Frame(frame) = encodings.for_receiver(&message, QoS::AtMostOnce, true) else {
            panic!("a QoS 0 frame");
        };
        match v5::Packet::read(&mut BytesMut::from(&frame[..]), None).unwrap() {
            v5::Packet::Publish(p) => assert_eq!((p.qos, p.pkid), (QoS5::AtMostOnce, 0)),
            other => panic!("{other:?}"),
        }
        // A 3.1.1 receiver of the same message still gets the 3.1.1 frame.
        let Outgoing::Qos1 { frame, .. } = encodings.for_receiver(&message, QoS::AtLeastOnce, false) else {
            panic!("a 3.1.1 QoS 1 frame");
        };
        assert!(Packet::read(&mut BytesMut::from(&frame[..]), 1024).is_ok());
    }

    #[test]
    fn a_message_that_expires_is_left_to_each_connection_to_encode() {
        let mut message = Message::new("a/b".into(), Bytes::from_static(b"x"), QoS::AtLeastOnce, false);
        message.set_expiry(Some(60));
        let message = Arc::new(message);
        for v5 in [false, true] {
            let outgoing = Encodings::default().for_receiver(&message, QoS::AtLeastOnce, v5);
            assert!(matches!(outgoing, Outgoing::Message { .. }), "v5: {v5}");
        }
    }
}
