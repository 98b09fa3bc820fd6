//! One MQTT 3.1.1 connection over WebSocket, from CONNECT to disconnect, with AWS
//! IoT Core's rules (<https://docs.aws.amazon.com/iot/latest/developerguide/mqtt.html>):
//! authorization on every CONNECT, SUBSCRIBE and PUBLISH, QoS 0 and 1 only, a
//! clamped keep-alive with a 1.5× timeout, 8 filters per SUBSCRIBE and 50
//! subscriptions per connection, and lifecycle events on connect and disconnect.
//!
//! Packets are decoded and encoded with `rumqttc::mqttbytes::v4`; the WebSocket is
//! a byte stream (an MQTT packet may span messages, and one message may carry
//! several). With `cleanSession = 0` the session (subscriptions, stored and
//! unacknowledged QoS 1 messages) outlives the connection; see [`super::broker`].
//! A Last Will, authorized at CONNECT, is published on every end that is not the
//! client's own (DISCONNECT or a WebSocket Close frame).

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use axum::extract::ws::Message;
use bytes::{Bytes, BytesMut};
use futures_util::{Sink, SinkExt, Stream, StreamExt};
use rumqttc::mqttbytes::v4::{
    ConnAck, Connect, ConnectReturnCode, LastWill, Packet, PubAck, Publish, SubAck, Subscribe, SubscribeReasonCode,
    UnsubAck, Unsubscribe,
};
use rumqttc::mqttbytes::{Error as WireError, QoS};
use tokio::time::{Instant, sleep_until};

use super::broker::{ConnectionInfo, DisconnectReason, Kick, Mailbox, Outgoing, Subscriber};
use super::{DenyMode, Gateway, lifecycle};
use crate::identity::Identity;
use serverless_websockets_core::topic::{check_filter, has_wildcards, is_publishable};

pub use serverless_websockets_core::topic::MAX_PACKET_BYTES;
pub const MAX_FILTERS_PER_SUBSCRIBE: usize = 8;
pub const MAX_SUBSCRIPTIONS: usize = 50;
pub const MAX_KEEP_ALIVE: Duration = Duration::from_secs(1200);
/// How long a new connection may take to send CONNECT by default.
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
/// Deliveries written before one flush.
const WRITE_BATCH: usize = 64;
/// A write that makes no progress for this long means the client stopped reading.
const WRITE_STALL: Duration = Duration::from_secs(10);

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

struct Connected {
    subscriber: Arc<Subscriber>,
    mailbox: Mailbox,
    attachment: u64,
    session_id: String,
    keep_alive: Duration,
    /// Boxed: most clients set no will, and an idle connection stays small.
    will: Option<Box<LastWill>>,
}

/// What handling a packet asks of the loop.
enum Step {
    Continue,
    Close(DisconnectReason),
    /// Closed from outside: takeover, overflow, `DeleteConnection`.
    Kicked(Kick),
}

/// What a session reads packets from and writes them to: the upgraded WebSocket
/// in the gateway, an in-memory double in the fuzzer.
pub trait MessageSocket:
    Stream<Item = Result<Message, axum::Error>> + Sink<Message, Error = axum::Error> + Unpin + Send + 'static
{
}

impl<T> MessageSocket for T where
    T: Stream<Item = Result<Message, axum::Error>> + Sink<Message, Error = axum::Error> + Unpin + Send + 'static
{
}

pub struct Connection<S: MessageSocket> {
    gateway: Arc<Gateway>,
    identity: Arc<Identity>,
    peer: SocketAddr,
    socket: S,
    buffer: BytesMut,
    connected: Option<Connected>,
    deadline: Instant,
}

impl<S: MessageSocket> Connection<S> {
    pub fn new(gateway: Arc<Gateway>, identity: Arc<Identity>, peer: SocketAddr, socket: S) -> Self {
        let deadline = Instant::now() + gateway.options.connect_timeout;
        Self {
            gateway,
            identity,
            peer,
            socket,
            buffer: BytesMut::new(),
            connected: None,
            deadline,
        }
    }

    pub async fn run(mut self) {
        let mut shutdown = self.gateway.shutdown.clone();
        let reason = loop {
            let step = tokio::select! {
                // Handlers are boxed: their state exists only while one runs, so an
                // idle connection's task stays small (the idle-memory benchmark).
                message = self.socket.next() => Box::pin(self.on_message(message)).await,
                event = mailbox_event(&mut self.connected) => match event {
                    MailboxEvent::Delivery(outgoing, pkid) => {
                        // A write blocked by a client that stopped reading still
                        // yields to a kick (queue overflow, takeover) or a stall limit.
                        let mut kicked = self.connected.as_ref().map(|c| c.mailbox.kicked.clone());
                        tokio::select! {
                            written = tokio::time::timeout(WRITE_STALL, Box::pin(self.write_outgoing(outgoing, pkid))) => {
                                written.unwrap_or(Step::Close(DisconnectReason::Throttled))
                            }
                            kick = kick_reason(&mut kicked) => Step::Kicked(kick),
                        }
                    }
                    MailboxEvent::Kicked(kick) => Step::Kicked(kick),
                },
                () = sleep_until(self.deadline) => Step::Close(DisconnectReason::KeepAliveTimeout),
                () = stopping(&mut shutdown) => Step::Close(DisconnectReason::ServerInitiated),
            };
            match step {
                Step::Continue => {}
                Step::Close(reason) => break Kick::because(reason),
                Step::Kicked(kick) => break kick,
            }
        };
        // A client that stopped reading must not hold the session open.
        let _ = tokio::time::timeout(Duration::from_secs(1), self.socket.send(Message::Close(None))).await;
        match self.connected.take() {
            Some(connected) => self.finish(connected, reason),
            None => {
                tracing::info!(peer = %self.peer, reason = reason.reason.as_aws(), "connection closed before CONNECT was accepted");
            }
        }
    }

    /// After the connection ended: the session kept or discarded, the will, the
    /// lifecycle event.
    fn finish(&self, connected: Connected, kick: Kick) {
        let reason = kick.reason;
        let client_id = &connected.subscriber.client_id;
        let expiry = self.gateway.options.session_expiry;
        let kept = self.gateway.broker.disconnect(
            &connected.subscriber,
            connected.attachment,
            reason,
            kick.discard_session,
            expiry,
        );
        if kept {
            let gateway = self.gateway.clone();
            let client_id = client_id.clone();
            tokio::spawn(async move {
                tokio::time::sleep(expiry).await;
                gateway.broker.expire(&client_id);
            });
        }
        tracing::info!(client_id = %client_id, reason = reason.as_aws(), session_kept = kept, "MQTT client disconnected");
        if let Some(will) = connected.will
            && reason != DisconnectReason::ClientInitiated
            && !kick.prevent_will
        {
            let delivered = self
                .gateway
                .broker
                .publish(&will.topic, will.message.clone(), will.qos, will.retain);
            tracing::info!(client_id = %client_id, topic = %will.topic, delivered, "published the Last Will");
        }
        let event = lifecycle::disconnected(
            client_id,
            &connected.session_id,
            &self.identity.user_id,
            reason,
            self.gateway.next_version(),
            SystemTime::now(),
        );
        self.gateway
            .publish_event(&lifecycle::topic("disconnected", client_id), client_id, event);
    }

    async fn on_message(&mut self, message: Option<Result<Message, axum::Error>>) -> Step {
        match message {
            Some(Ok(Message::Binary(bytes))) => self.buffer.extend_from_slice(&bytes),
            Some(Ok(Message::Ping(_) | Message::Pong(_))) => return Step::Continue,
            Some(Ok(Message::Text(_))) => return Step::Close(DisconnectReason::ClientError),
            // IoT counts a WebSocket Close frame as the client's own disconnect.
            Some(Ok(Message::Close(_))) => return Step::Close(DisconnectReason::ClientInitiated),
            Some(Err(_)) | None => return Step::Close(DisconnectReason::ConnectionLost),
        }
        loop {
            match Packet::read(&mut self.buffer, MAX_PACKET_BYTES) {
                Ok(packet) => {
                    if let Some(connected) = &self.connected {
                        self.deadline = Instant::now() + connected.keep_alive.mul_f32(1.5);
                    }
                    let step = self.on_packet(packet).await;
                    if !matches!(step, Step::Continue) {
                        return step;
                    }
                }
                Err(WireError::InsufficientBytes(_)) => return Step::Continue,
                Err(err) => {
                    tracing::warn!(peer = %self.peer, "malformed MQTT packet: {err:?}");
                    return Step::Close(DisconnectReason::ClientError);
                }
            }
        }
    }

    async fn on_packet(&mut self, packet: Packet) -> Step {
        match (packet, self.connected.is_some()) {
            (Packet::Connect(connect), false) => self.on_connect(connect).await,
            (_, false) | (Packet::Connect(_), true) => Step::Close(DisconnectReason::ClientError),
            (Packet::Publish(publish), true) => self.on_publish(publish).await,
            (Packet::Subscribe(subscribe), true) => self.on_subscribe(subscribe).await,
            (Packet::Unsubscribe(unsubscribe), true) => self.on_unsubscribe(unsubscribe).await,
            (Packet::PingReq, true) => self.write_packet(Packet::PingResp).await,
            (Packet::PubAck(ack), true) => {
                if let Some(connected) = &self.connected {
                    connected.subscriber.acknowledge(ack.pkid);
                }
                Step::Continue
            }
            (Packet::Disconnect, true) => Step::Close(DisconnectReason::ClientInitiated),
            // QoS 2 flow and server-only packets.
            (_, true) => Step::Close(DisconnectReason::ClientError),
        }
    }

    async fn on_connect(&mut self, connect: Connect) -> Step {
        let arns = self.gateway.broker.arns();
        let client_id = connect.client_id;
        let valid = !client_id.is_empty() && client_id.len() <= serverless_websockets_core::topic::MAX_CLIENT_ID_BYTES;
        let refusal = if valid {
            self.identity
                .authorize("iot:Connect", &arns.client(&client_id))
                .err()
                .map(|denial| denial.to_string())
                .or_else(|| connect.last_will.as_ref().and_then(|will| self.will_refusal(will)))
        } else {
            Some("the client ID is empty or longer than 128 bytes".to_owned())
        };
        if let Some(refusal) = refusal {
            tracing::warn!(client_id = %client_id.escape_debug(), principal = %self.identity.arn, "CONNECT not authorized: {refusal}");
            if self.gateway.options.connect_deny == DenyMode::Reply {
                let _ = self
                    .write_packet(Packet::ConnAck(ConnAck::new(ConnectReturnCode::NotAuthorized, false)))
                    .await;
            }
            return Step::Close(DisconnectReason::ForbiddenAccess);
        }
        let keep_alive = effective_keep_alive(connect.keep_alive, self.gateway.options.min_keep_alive);
        let info = ConnectionInfo {
            clean_session: connect.clean_session,
            keep_alive_secs: keep_alive.as_secs(),
            connected_since: super::broker::millis(SystemTime::now()),
            session_expiry_secs: if connect.clean_session {
                0
            } else {
                self.gateway.options.session_expiry.as_secs()
            },
            source: self.peer,
        };
        let attached = self.gateway.broker.connect(&client_id, self.identity.clone(), info);
        for (filter, why) in &attached.refused {
            tracing::warn!(client_id = %client_id, filter = %filter, "resumed subscription dropped: {why}");
        }
        self.deadline = Instant::now() + keep_alive.mul_f32(1.5);
        let session_id = serverless_websockets_core::random::hex::<16>();
        let resend = attached.subscriber.in_flight();
        let session_present = attached.session_present;
        self.connected = Some(Connected {
            subscriber: attached.subscriber,
            mailbox: attached.mailbox,
            attachment: attached.attachment,
            session_id: session_id.clone(),
            keep_alive,
            will: connect.last_will.map(Box::new),
        });
        if let Step::Close(reason) = self
            .write_packet(Packet::ConnAck(ConnAck::new(
                ConnectReturnCode::Success,
                session_present,
            )))
            .await
        {
            return Step::Close(reason);
        }
        tracing::info!(client_id = %client_id, principal = %self.identity.arn, keep_alive_s = keep_alive.as_secs(), clean_session = connect.clean_session, session_present, "MQTT client connected");
        let event = lifecycle::connected(
            &client_id,
            &session_id,
            &self.identity.user_id,
            &self.peer.ip().to_string(),
            self.gateway.next_version(),
            SystemTime::now(),
        );
        self.gateway
            .publish_event(&lifecycle::topic("connected", &client_id), &client_id, event);
        // What the last connection left unacknowledged goes first, marked DUP.
        for (pkid, outgoing) in resend {
            let messages = Self::messages(outgoing, Some(pkid), true);
            if let Step::Close(reason) = self.send_all(messages).await {
                return Step::Close(reason);
            }
        }
        Step::Continue
    }

    /// Why the will of a CONNECT may not be accepted: IoT authorizes it at CONNECT
    /// as a publish (and a retained publish when it is retained).
    fn will_refusal(&self, will: &LastWill) -> Option<String> {
        if !is_publishable(&will.topic) || will.qos == QoS::ExactlyOnce {
            return Some(format!(
                "the will topic {:?} is not a valid topic or its QoS is 2",
                will.topic
            ));
        }
        let resource = self.gateway.broker.arns().topic(&will.topic);
        let publish = self.identity.authorize("iot:Publish", &resource);
        let retain = if will.retain {
            self.identity.authorize("iot:RetainPublish", &resource)
        } else {
            Ok(())
        };
        publish.and(retain).err().map(|denial| format!("the will: {denial}"))
    }

    async fn on_publish(&mut self, publish: Publish) -> Step {
        let arns = self.gateway.broker.arns();
        if !is_publishable(&publish.topic) || publish.qos == QoS::ExactlyOnce {
            tracing::warn!(topic = %publish.topic.escape_debug(), "PUBLISH refused: invalid or reserved topic, or QoS 2");
            return Step::Close(DisconnectReason::ClientError);
        }
        let resource = arns.topic(&publish.topic);
        let allowed = self.identity.authorize("iot:Publish", &resource).and_then(|()| {
            if publish.retain {
                self.identity.authorize("iot:RetainPublish", &resource)
            } else {
                Ok(())
            }
        });
        if let Err(denial) = allowed {
            tracing::warn!(topic = %publish.topic, principal = %self.identity.arn, "PUBLISH not authorized: {denial}");
            return Step::Close(DisconnectReason::AuthError);
        }
        let delivered = self
            .gateway
            .broker
            .publish(&publish.topic, publish.payload, publish.qos, publish.retain);
        if delivered == 0 {
            tracing::warn!(topic = %publish.topic, "no subscriber for topic {}", publish.topic);
        }
        if publish.qos == QoS::AtLeastOnce {
            return self.write_packet(Packet::PubAck(PubAck::new(publish.pkid))).await;
        }
        Step::Continue
    }

    async fn on_subscribe(&mut self, subscribe: Subscribe) -> Step {
        if subscribe.filters.is_empty() || subscribe.filters.len() > MAX_FILTERS_PER_SUBSCRIBE {
            return Step::Close(DisconnectReason::ClientError);
        }
        let arns = self.gateway.broker.arns().clone();
        let connected = self.connected.as_ref().expect("subscribe after connect");
        let subscriber = connected.subscriber.clone();
        let mut codes = Vec::with_capacity(subscribe.filters.len());
        let mut retained = Vec::new();
        let mut subscribed = Vec::new();
        for wanted in &subscribe.filters {
            let filter = wanted.path.as_str();
            if check_filter(filter).is_err() {
                codes.push(SubscribeReasonCode::Failure);
                continue;
            }
            if let Err(denial) = self.identity.authorize("iot:Subscribe", &arns.topic_filter(filter)) {
                tracing::warn!(filter = %filter, principal = %self.identity.arn, "SUBSCRIBE not authorized: {denial}");
                if self.gateway.options.subscribe_deny == DenyMode::Close {
                    return Step::Close(DisconnectReason::AuthError);
                }
                codes.push(SubscribeReasonCode::Failure);
                continue;
            }
            if !subscriber.has_filter(filter) && subscriber.subscription_count() >= MAX_SUBSCRIPTIONS {
                tracing::warn!(filter = %filter, "SUBSCRIBE refused: {MAX_SUBSCRIPTIONS} subscriptions per connection at most");
                codes.push(SubscribeReasonCode::Failure);
                continue;
            }
            let qos = if wanted.qos == QoS::AtMostOnce {
                QoS::AtMostOnce
            } else {
                QoS::AtLeastOnce
            };
            self.gateway.broker.subscribe(&subscriber, filter, qos);
            subscribed.push(filter.to_owned());
            codes.push(SubscribeReasonCode::Success(qos));
            // IoT delivers a retained message only to a filter equal to its topic.
            if !has_wildcards(filter)
                && self.identity.is_allowed("iot:Receive", &arns.topic(filter))
                && let Some(message) = self.gateway.broker.retained_for(filter, qos)
            {
                retained.push(message);
            }
        }
        if let Step::Close(reason) = self
            .write_packet(Packet::SubAck(SubAck::new(subscribe.pkid, codes)))
            .await
        {
            return Step::Close(reason);
        }
        self.subscription_event("subscribed", subscribed);
        for message in retained {
            // Retained messages go straight out; a QoS 1 one takes the session's
            // next packet identifier like any delivery.
            let pkid = match &message {
                Outgoing::Qos1 { .. } => Some(subscriber.track(message.clone())),
                Outgoing::Frame(_) => None,
            };
            if let Step::Close(reason) = self.send_all(Self::messages(message, pkid, false)).await {
                return Step::Close(reason);
            }
        }
        Step::Continue
    }

    async fn on_unsubscribe(&mut self, unsubscribe: Unsubscribe) -> Step {
        let connected = self.connected.as_ref().expect("unsubscribe after connect");
        let removed: Vec<String> = unsubscribe
            .topics
            .iter()
            .filter(|filter| self.gateway.broker.unsubscribe(&connected.subscriber, filter))
            .cloned()
            .collect();
        let step = self
            .write_packet(Packet::UnsubAck(UnsubAck::new(unsubscribe.pkid)))
            .await;
        self.subscription_event("unsubscribed", removed);
        step
    }

    /// `$aws/events/subscriptions/{subscribed,unsubscribed}/<clientId>`.
    fn subscription_event(&self, event: &str, topics: Vec<String>) {
        let Some(connected) = &self.connected else { return };
        if topics.is_empty() {
            return;
        }
        let client_id = &connected.subscriber.client_id;
        let body = lifecycle::subscriptions(
            event,
            client_id,
            &connected.session_id,
            &self.identity.user_id,
            &topics,
            SystemTime::now(),
        );
        self.gateway
            .publish_event(&lifecycle::subscription_topic(event, client_id), client_id, body);
    }

    async fn write_packet(&mut self, packet: Packet) -> Step {
        let mut buffer = BytesMut::with_capacity(packet.size() + 4);
        if packet.write(&mut buffer, MAX_PACKET_BYTES).is_err() {
            return Step::Close(DisconnectReason::ClientError);
        }
        match self.socket.send(Message::Binary(buffer.freeze())).await {
            Ok(()) => Step::Continue,
            Err(_) => Step::Close(DisconnectReason::ConnectionLost),
        }
    }

    /// Writes messages and flushes once.
    async fn send_all(&mut self, messages: impl Iterator<Item = Message>) -> Step {
        for message in messages {
            if self.socket.feed(message).await.is_err() {
                return Step::Close(DisconnectReason::ConnectionLost);
            }
        }
        match self.socket.flush().await {
            Ok(()) => Step::Continue,
            Err(_) => Step::Close(DisconnectReason::ConnectionLost),
        }
    }

    /// Writes one delivery and whatever else is already queued, then flushes once.
    async fn write_outgoing(&mut self, first: Outgoing, pkid: Option<u16>) -> Step {
        let mut next = Some((first, pkid));
        let mut written = 0;
        while let Some((outgoing, pkid)) = next.take() {
            for message in Self::messages(outgoing, pkid, false) {
                if self.socket.feed(message).await.is_err() {
                    return Step::Close(DisconnectReason::ConnectionLost);
                }
            }
            written += 1;
            if written < WRITE_BATCH
                && let Some(connected) = self.connected.as_ref()
            {
                next = connected.subscriber.try_next_delivery(connected.attachment);
            }
        }
        match self.socket.flush().await {
            Ok(()) => Step::Continue,
            Err(_) => Step::Close(DisconnectReason::ConnectionLost),
        }
    }

    /// The WebSocket messages for one delivery: the shared frame as is, or for QoS 1
    /// this delivery's header bytes (packet identifier, DUP when re-sent) followed
    /// by the shared payload.
    fn messages(outgoing: Outgoing, pkid: Option<u16>, dup: bool) -> impl Iterator<Item = Message> {
        match (outgoing, pkid) {
            (Outgoing::Qos1 { frame, pkid_at, .. }, Some(pkid)) => {
                let mut head = BytesMut::from(&frame[..pkid_at + 2]);
                head[pkid_at..pkid_at + 2].copy_from_slice(&pkid.to_be_bytes());
                if dup {
                    head[0] |= 0x08;
                }
                let rest: Bytes = frame.slice(pkid_at + 2..);
                let payload = (!rest.is_empty()).then(|| Message::Binary(rest));
                [Some(Message::Binary(head.freeze())), payload].into_iter().flatten()
            }
            (Outgoing::Qos1 { frame, .. } | Outgoing::Frame(frame), _) => {
                [Some(Message::Binary(frame)), None].into_iter().flatten()
            }
        }
    }
}

async fn kick_reason(kicked: &mut Option<tokio::sync::watch::Receiver<Option<Kick>>>) -> Kick {
    let server = Kick::because(DisconnectReason::ServerInitiated);
    match kicked {
        Some(kicked) => match kicked.wait_for(Option::is_some).await {
            Ok(kick) => kick.unwrap_or(server),
            Err(_) => server,
        },
        None => std::future::pending().await,
    }
}

async fn stopping(shutdown: &mut tokio::sync::watch::Receiver<bool>) {
    let _ = shutdown.wait_for(|stop| *stop).await;
}

enum MailboxEvent {
    Delivery(Outgoing, Option<u16>),
    Kicked(Kick),
}

/// The next delivery or request to close; never resolves before CONNECT.
async fn mailbox_event(connected: &mut Option<Connected>) -> MailboxEvent {
    let Some(connected) = connected else {
        return std::future::pending().await;
    };
    let subscriber = &connected.subscriber;
    tokio::select! {
        biased;
        kicked = connected.mailbox.kicked.wait_for(Option::is_some) => {
            MailboxEvent::Kicked(
                kicked
                    .ok()
                    .and_then(|kick| *kick)
                    .unwrap_or(Kick::because(DisconnectReason::ServerInitiated)),
            )
        }
        (outgoing, pkid) = subscriber.next_delivery(connected.attachment) => MailboxEvent::Delivery(outgoing, pkid),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keep_alive_is_clamped_like_iot_core() {
        let min = Duration::from_secs(30);
        assert_eq!(effective_keep_alive(0, min), MAX_KEEP_ALIVE);
        assert_eq!(effective_keep_alive(5, min), min);
        assert_eq!(effective_keep_alive(60, min), Duration::from_secs(60));
        assert_eq!(effective_keep_alive(1200, min), MAX_KEEP_ALIVE);
        assert_eq!(effective_keep_alive(4000, min), MAX_KEEP_ALIVE);
        assert_eq!(effective_keep_alive(1, Duration::from_secs(1)), Duration::from_secs(1));
    }
}
