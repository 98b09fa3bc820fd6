//! One MQTT 3.1.1 connection over WebSocket, from CONNECT to disconnect, with AWS
//! IoT Core's rules (<https://docs.aws.amazon.com/iot/latest/developerguide/mqtt.html>):
//! authorization on every CONNECT, SUBSCRIBE and PUBLISH, QoS 0 and 1 only, a
//! clamped keep-alive with a 1.5× timeout, 8 filters per SUBSCRIBE and 50
//! subscriptions per connection, and lifecycle events on connect and disconnect.
//!
//! Packets are decoded and encoded with `rumqttc::mqttbytes::v4`; the WebSocket is
//! a byte stream (an MQTT packet may span messages, and one message may carry
//! several). Sessions are clean: subscriptions and unacknowledged QoS 1 messages do
//! not outlive the connection.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use axum::extract::ws::Message;
use bytes::{Bytes, BytesMut};
use futures_util::{Sink, SinkExt, Stream, StreamExt};
use rumqttc::mqttbytes::v4::{
    ConnAck, ConnectReturnCode, Packet, PubAck, Publish, SubAck, Subscribe, SubscribeReasonCode, UnsubAck, Unsubscribe,
};
use rumqttc::mqttbytes::{Error as WireError, QoS};
use tokio::time::{Instant, sleep_until};

use super::broker::{DisconnectReason, Mailbox, Outgoing, Subscriber};
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
    filters: HashMap<String, QoS>,
    session_id: String,
    keep_alive: Duration,
}

/// What handling a packet asks of the loop.
enum Step {
    Continue,
    Close(DisconnectReason),
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
    next_pkid: u16,
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
            next_pkid: 0,
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
                    MailboxEvent::Delivery(outgoing) => {
                        // A write blocked by a client that stopped reading still
                        // yields to a kick (queue overflow, takeover) or a stall limit.
                        let mut kicked = self.connected.as_ref().map(|c| c.mailbox.kicked.clone());
                        tokio::select! {
                            written = tokio::time::timeout(WRITE_STALL, Box::pin(self.write_outgoing(outgoing))) => {
                                written.unwrap_or(Step::Close(DisconnectReason::Throttled))
                            }
                            reason = kick_reason(&mut kicked) => Step::Close(reason),
                        }
                    }
                    MailboxEvent::Kicked(reason) => Step::Close(reason),
                },
                () = sleep_until(self.deadline) => Step::Close(DisconnectReason::KeepAliveTimeout),
                () = stopping(&mut shutdown) => Step::Close(DisconnectReason::ServerInitiated),
            };
            if let Step::Close(reason) = step {
                break reason;
            }
        };
        // A client that stopped reading must not hold the session open.
        let _ = tokio::time::timeout(Duration::from_secs(1), self.socket.send(Message::Close(None))).await;
        if let Some(connected) = self.connected.take() {
            let filters = connected.filters.into_keys();
            self.gateway.broker.unregister(&connected.subscriber, filters);
            tracing::info!(client_id = %connected.subscriber.client_id, reason = reason.as_aws(), "MQTT client disconnected");
            let event = lifecycle::disconnected(
                &connected.subscriber.client_id,
                &connected.session_id,
                &self.identity.user_id,
                reason,
                self.gateway.next_version(),
                SystemTime::now(),
            );
            self.gateway
                .publish_event("disconnected", &connected.subscriber.client_id, event);
        } else {
            tracing::info!(peer = %self.peer, reason = reason.as_aws(), "connection closed before CONNECT was accepted");
        }
    }

    async fn on_message(&mut self, message: Option<Result<Message, axum::Error>>) -> Step {
        match message {
            Some(Ok(Message::Binary(bytes))) => self.buffer.extend_from_slice(&bytes),
            Some(Ok(Message::Ping(_) | Message::Pong(_))) => return Step::Continue,
            Some(Ok(Message::Text(_))) => return Step::Close(DisconnectReason::ClientError),
            Some(Ok(Message::Close(_))) | Some(Err(_)) | None => return Step::Close(DisconnectReason::ConnectionLost),
        }
        loop {
            match Packet::read(&mut self.buffer, MAX_PACKET_BYTES) {
                Ok(packet) => {
                    if let Some(connected) = &self.connected {
                        self.deadline = Instant::now() + connected.keep_alive.mul_f32(1.5);
                    }
                    if let Step::Close(reason) = self.on_packet(packet).await {
                        return Step::Close(reason);
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
            (Packet::Connect(connect), false) => self.on_connect(connect.client_id, connect.keep_alive).await,
            (_, false) | (Packet::Connect(_), true) => Step::Close(DisconnectReason::ClientError),
            (Packet::Publish(publish), true) => self.on_publish(publish).await,
            (Packet::Subscribe(subscribe), true) => self.on_subscribe(subscribe).await,
            (Packet::Unsubscribe(unsubscribe), true) => self.on_unsubscribe(unsubscribe).await,
            (Packet::PingReq, true) => self.write_packet(Packet::PingResp).await,
            (Packet::PubAck(_), true) => Step::Continue,
            (Packet::Disconnect, true) => Step::Close(DisconnectReason::ClientInitiated),
            // QoS 2 flow and server-only packets.
            (_, true) => Step::Close(DisconnectReason::ClientError),
        }
    }

    async fn on_connect(&mut self, client_id: String, keep_alive_secs: u16) -> Step {
        let arns = self.gateway.broker.arns();
        let valid = !client_id.is_empty() && client_id.len() <= serverless_websockets_core::topic::MAX_CLIENT_ID_BYTES;
        if !valid || !self.identity.is_allowed("iot:Connect", &arns.client(&client_id)) {
            tracing::warn!(client_id = %client_id.escape_debug(), principal = %self.identity.arn, "CONNECT not authorized");
            if self.gateway.options.connect_deny == DenyMode::Reply {
                let _ = self
                    .write_packet(Packet::ConnAck(ConnAck::new(ConnectReturnCode::NotAuthorized, false)))
                    .await;
            }
            return Step::Close(DisconnectReason::ForbiddenAccess);
        }
        let (subscriber, mailbox) = self.gateway.broker.register(&client_id, self.identity.clone());
        let keep_alive = effective_keep_alive(keep_alive_secs, self.gateway.options.min_keep_alive);
        self.deadline = Instant::now() + keep_alive.mul_f32(1.5);
        let session_id = serverless_websockets_core::random::hex::<16>();
        self.connected = Some(Connected {
            subscriber,
            mailbox,
            filters: HashMap::new(),
            session_id: session_id.clone(),
            keep_alive,
        });
        if let Step::Close(reason) = self
            .write_packet(Packet::ConnAck(ConnAck::new(ConnectReturnCode::Success, false)))
            .await
        {
            return Step::Close(reason);
        }
        tracing::info!(client_id = %client_id, principal = %self.identity.arn, keep_alive_s = keep_alive.as_secs(), "MQTT client connected");
        let event = lifecycle::connected(
            &client_id,
            &session_id,
            &self.identity.user_id,
            &self.peer.ip().to_string(),
            self.gateway.next_version(),
            SystemTime::now(),
        );
        self.gateway.publish_event("connected", &client_id, event);
        Step::Continue
    }

    async fn on_publish(&mut self, publish: Publish) -> Step {
        let arns = self.gateway.broker.arns();
        if !is_publishable(&publish.topic) || publish.qos == QoS::ExactlyOnce {
            tracing::warn!(topic = %publish.topic.escape_debug(), "PUBLISH refused: invalid or reserved topic, or QoS 2");
            return Step::Close(DisconnectReason::ClientError);
        }
        let resource = arns.topic(&publish.topic);
        let allowed = self.identity.is_allowed("iot:Publish", &resource)
            && (!publish.retain || self.identity.is_allowed("iot:RetainPublish", &resource));
        if !allowed {
            tracing::warn!(topic = %publish.topic, principal = %self.identity.arn, "PUBLISH not authorized");
            return Step::Close(DisconnectReason::ForbiddenAccess);
        }
        self.gateway
            .broker
            .publish(&publish.topic, publish.payload, publish.qos, publish.retain);
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
        let connected = self.connected.as_mut().expect("subscribe after connect");
        let mut codes = Vec::with_capacity(subscribe.filters.len());
        let mut retained = Vec::new();
        for wanted in &subscribe.filters {
            let filter = wanted.path.as_str();
            if check_filter(filter).is_err() {
                codes.push(SubscribeReasonCode::Failure);
                continue;
            }
            if !self.identity.is_allowed("iot:Subscribe", &arns.topic_filter(filter)) {
                tracing::warn!(filter = %filter, principal = %self.identity.arn, "SUBSCRIBE not authorized");
                if self.gateway.options.subscribe_deny == DenyMode::Close {
                    return Step::Close(DisconnectReason::ForbiddenAccess);
                }
                codes.push(SubscribeReasonCode::Failure);
                continue;
            }
            if !connected.filters.contains_key(filter) && connected.filters.len() >= MAX_SUBSCRIPTIONS {
                codes.push(SubscribeReasonCode::Failure);
                continue;
            }
            let qos = if wanted.qos == QoS::AtMostOnce {
                QoS::AtMostOnce
            } else {
                QoS::AtLeastOnce
            };
            self.gateway.broker.subscribe(&connected.subscriber, filter, qos);
            connected.filters.insert(filter.to_owned(), qos);
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
        for message in retained {
            if let Step::Close(reason) = self.write_outgoing(message).await {
                return Step::Close(reason);
            }
        }
        Step::Continue
    }

    async fn on_unsubscribe(&mut self, unsubscribe: Unsubscribe) -> Step {
        let connected = self.connected.as_mut().expect("unsubscribe after connect");
        for filter in &unsubscribe.topics {
            if connected.filters.remove(filter).is_some() {
                self.gateway.broker.unsubscribe(connected.subscriber.conn_id, filter);
            }
        }
        self.write_packet(Packet::UnsubAck(UnsubAck::new(unsubscribe.pkid)))
            .await
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

    /// Writes one delivery and whatever else is already queued, then flushes once.
    async fn write_outgoing(&mut self, first: Outgoing) -> Step {
        let mut next = Some(first);
        let mut written = 0;
        while let Some(outgoing) = next.take() {
            for message in self.messages(outgoing) {
                if self.socket.feed(message).await.is_err() {
                    return Step::Close(DisconnectReason::ConnectionLost);
                }
            }
            written += 1;
            if written < WRITE_BATCH
                && let Some(connected) = self.connected.as_mut()
            {
                next = connected.subscriber.try_next_delivery();
            }
        }
        match self.socket.flush().await {
            Ok(()) => Step::Continue,
            Err(_) => Step::Close(DisconnectReason::ConnectionLost),
        }
    }

    /// The WebSocket messages for one delivery: the shared frame as is, or for QoS 1
    /// this connection's header bytes followed by the shared payload.
    fn messages(&mut self, outgoing: Outgoing) -> impl Iterator<Item = Message> + use<S> {
        match outgoing {
            Outgoing::Frame(frame) => [Some(Message::Binary(frame)), None].into_iter().flatten(),
            Outgoing::Qos1 { frame, pkid_at } => {
                self.next_pkid = self.next_pkid.checked_add(1).unwrap_or(1);
                let mut head = BytesMut::from(&frame[..pkid_at + 2]);
                head[pkid_at..pkid_at + 2].copy_from_slice(&self.next_pkid.to_be_bytes());
                let rest: Bytes = frame.slice(pkid_at + 2..);
                let payload = (!rest.is_empty()).then(|| Message::Binary(rest));
                [Some(Message::Binary(head.freeze())), payload].into_iter().flatten()
            }
        }
    }
}

async fn kick_reason(kicked: &mut Option<tokio::sync::watch::Receiver<Option<DisconnectReason>>>) -> DisconnectReason {
    match kicked {
        Some(kicked) => match kicked.wait_for(Option::is_some).await {
            Ok(reason) => reason.unwrap_or(DisconnectReason::ServerInitiated),
            Err(_) => DisconnectReason::ServerInitiated,
        },
        None => std::future::pending().await,
    }
}

async fn stopping(shutdown: &mut tokio::sync::watch::Receiver<bool>) {
    let _ = shutdown.wait_for(|stop| *stop).await;
}

enum MailboxEvent {
    Delivery(Outgoing),
    Kicked(DisconnectReason),
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
            MailboxEvent::Kicked(kicked.ok().and_then(|reason| *reason).unwrap_or(DisconnectReason::ServerInitiated))
        }
        outgoing = subscriber.next_delivery() => MailboxEvent::Delivery(outgoing),
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
