//! One MQTT connection (3.1.1 or 5) over WebSocket, from CONNECT to disconnect,
//! with AWS IoT Core's rules (<https://docs.aws.amazon.com/iot/latest/developerguide/mqtt.html>):
//! authorization on every CONNECT, SUBSCRIBE and PUBLISH, QoS 0 and 1 only, a
//! clamped keep-alive with a 1.5× timeout, 8 filters per SUBSCRIBE and 50
//! subscriptions per connection, and lifecycle events on connect and disconnect.
//!
//! Packets are decoded and encoded with `rumqttc`'s v4 or v5 codec, picked by the
//! protocol level of CONNECT (see [`super::packet`]); the WebSocket is a byte
//! stream (an MQTT packet may span messages, and one message may carry several).
//! With MQTT 5 every refusal is a reason code (CONNACK, SUBACK and PUBACK 0x87,
//! server DISCONNECT with its reason), properties travel end to end, topic aliases
//! from the client are resolved, and the session lives for its Session Expiry
//! Interval, capped by the gateway's. With `cleanSession = 0` the session (subscriptions, stored and
//! unacknowledged QoS 1 messages) outlives the connection; see [`super::broker`].
//! A Last Will, authorized at CONNECT, is published on every end that is not the
//! client's own (DISCONNECT or a WebSocket Close frame).

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use axum::extract::ws::Message as WsMessage;
use bytes::{Bytes, BytesMut};
use futures_util::{FutureExt, Sink, SinkExt, Stream, StreamExt};
use rumqttc::mqttbytes::QoS;
use rumqttc::v5::mqttbytes::v5::DisconnectReasonCode as Code5;
use tokio::time::{Instant, sleep_until};

use super::broker::{ConnectionInfo, DisconnectReason, Kick, Kicker, Left, Mailbox, Session};
use super::custom_auth::{self, Lease, LeaseStep, Requested};
use super::limits::{PublishLimits, Throttled};
use super::message::{Delivery, Message, Outgoing};
use super::negotiate::{self, PublishRefusal};
use super::packet::{
    self, Announced, ConnectCode, ConnectIn, FilterIn, Inbound, PubAckCode, PublishIn, ReadError, Version,
};
use super::state::{Gateway, Origin};
use super::{lifecycle, will};
use crate::identity::Identity;
use serverless_websockets_core::policy::Variables;
use serverless_websockets_core::quota::{self, MAX_PACKET_BYTES};

/// Deliveries written before one flush.
const WRITE_BATCH: usize = 64;
/// WebSocket messages read in one pass when they are already there.
const READ_BATCH: usize = 64;
/// A write that makes no progress for this long means the client stopped reading.
const WRITE_STALL: Duration = Duration::from_secs(10);

struct Connected {
    session: Arc<Session>,
    mailbox: Mailbox,
    attachment: u64,
    session_id: String,
    keep_alive: Duration,
    /// How long the session outlives this connection (0: not at all).
    session_expiry: Duration,
    /// Boxed: most clients set no will, and an idle connection stays small.
    will: Option<Box<packet::Will>>,
    /// MQTT 5 DISCONNECT 0x04: the client asks for its will on its own disconnect.
    will_on_disconnect: bool,
    /// MQTT 5 topic aliases the client set, at most [`quota::TOPIC_ALIAS_MAX`].
    aliases: Vec<(u16, String)>,
    /// MQTT 5 Maximum Packet Size of the client: larger deliveries are dropped.
    max_packet: Option<u32>,
    /// Its place on the usage meter (connection-minutes).
    metered: crate::usage::Metered,
}

/// How an upgraded WebSocket was authenticated, or is to be.
pub enum Admission {
    /// A SigV4-signed upgrade, verified.
    Signed(Arc<Identity>),
    /// Custom authentication (boxed: the request is kept only until it runs).
    Custom(Box<Requested>),
}

/// What handling a packet asks of the loop.
enum Step {
    Continue,
    Close(DisconnectReason),
    /// Closed from outside: takeover, overflow, `DeleteConnection`.
    Kicked(Kick),
    /// A custom authorizer's lease is due: refresh, or the end.
    Lease,
}

/// What a session reads packets from and writes them to: the upgraded WebSocket
/// in the gateway, an in-memory double in the fuzzer.
pub trait MessageSocket:
    Stream<Item = Result<WsMessage, axum::Error>> + Sink<WsMessage, Error = axum::Error> + Unpin + Send + 'static
{
}

impl<T> MessageSocket for T where
    T: Stream<Item = Result<WsMessage, axum::Error>> + Sink<WsMessage, Error = axum::Error> + Unpin + Send + 'static
{
}

pub struct Connection<S: MessageSocket> {
    gateway: Arc<Gateway>,
    identity: Arc<Identity>,
    peer: SocketAddr,
    socket: S,
    buffer: BytesMut,
    /// The protocol level of the CONNECT, once read.
    version: Option<Version>,
    connected: Option<Connected>,
    deadline: Instant,
    /// When the connection reaches IoT's maximum duration.
    expires: Instant,
    /// IoT's publish rate and throughput, from the first PUBLISH on.
    publish_limits: Option<Box<PublishLimits>>,
    /// Whether the last PUBLISH was throttled (one WARN per throttled run).
    throttling: bool,
    /// An MQTT 5 client's reason for a close caused by what it sent, more precise
    /// than its [`DisconnectReason`] (0x81 malformed, 0x94 topic alias, …).
    close_code: Option<Code5>,
    /// For a connection through a custom authorizer: when to ask it again, and
    /// when the connection ends.
    lease: Option<Box<Lease>>,
    /// Custom authentication still to run: at once when the upgrade named its
    /// authorizer, else at CONNECT (whose user name may name the authorizer and
    /// carry the token).
    pending_auth: Option<Box<Requested>>,
}

impl<S: MessageSocket> Connection<S> {
    pub fn new(gateway: Arc<Gateway>, identity: Arc<Identity>, peer: SocketAddr, socket: S) -> Self {
        let now = Instant::now();
        let deadline = now + gateway.options.connect_timeout;
        let expires = now + gateway.options.limits.max_connection_duration;
        Self {
            gateway,
            identity,
            peer,
            socket,
            buffer: BytesMut::new(),
            version: None,
            connected: None,
            deadline,
            expires,
            publish_limits: None,
            throttling: false,
            close_code: None,
            lease: None,
            pending_auth: None,
        }
    }

    /// The connection for an upgraded WebSocket, and its whole life as one
    /// future. A plain function, as [`Self::run`] is: an `async fn` would keep
    /// a second copy of its arguments (the socket, the connection) in its state
    /// for as long as the connection lives.
    pub fn accept(
        gateway: Arc<Gateway>,
        admission: Admission,
        peer: SocketAddr,
        socket: S,
    ) -> impl Future<Output = ()> + Send {
        let connection = match admission {
            Admission::Signed(identity) => Self::new(gateway, identity, peer, socket),
            Admission::Custom(requested) => {
                // Refused until its authorizer says otherwise.
                let identity = Arc::new(custom_auth::refused(&gateway));
                let mut connection = Self::new(gateway, identity, peer, socket);
                connection.pending_auth = Some(requested);
                connection
            }
        };
        connection.run()
    }

    /// When the connection's one timer fires next.
    fn next_timer(&self) -> Instant {
        let at = self.deadline.min(self.expires);
        self.lease.as_deref().map_or(at, |lease| at.min(lease.next()))
    }

    /// The timer fired: which of its three deadlines is due.
    fn on_timer(&self) -> Step {
        let now = Instant::now();
        if now >= self.expires {
            Step::Close(DisconnectReason::WebsocketTtl)
        } else if now >= self.deadline {
            Step::Close(DisconnectReason::KeepAliveTimeout)
        } else if self.lease.as_deref().is_some_and(|lease| now >= lease.next()) {
            Step::Lease
        } else {
            // Woken early (the deadline moved): nothing to do yet.
            Step::Continue
        }
    }

    /// Writes a delivery; a write blocked by a client that stopped reading still
    /// yields to a kick (queue overflow, takeover) or a stall limit. Boxed by the
    /// caller: its timer exists only while a write is under way.
    async fn deliver(&mut self, outgoing: Outgoing, pkid: Option<u16>) -> Step {
        let kicked = self.connected.as_ref().map(|c| c.mailbox.kicked.clone());
        let write = self.write_outgoing(outgoing, pkid);
        tokio::pin!(write);
        // Mostly the socket takes the write at once: no stall timer is made then.
        if let Some(step) = write.as_mut().now_or_never() {
            return step;
        }
        tokio::select! {
            written = tokio::time::timeout(WRITE_STALL, write) => {
                written.unwrap_or(Step::Close(DisconnectReason::Throttled))
            }
            kick = kick_reason(kicked) => Step::Kicked(kick),
        }
    }

    /// The lease's next step: the end, or a refresh with the same event.
    async fn on_lease(&mut self) -> Step {
        let Some(lease) = self.lease.as_mut() else {
            return Step::Continue;
        };
        match lease.step(&self.gateway, &self.identity).await {
            LeaseStep::Renewed(identity) => {
                if let Some(connected) = &self.connected {
                    connected.session.set_identity(identity.clone());
                }
                self.identity = identity;
                Step::Continue
            }
            LeaseStep::Expired => {
                tracing::info!(peer = %self.peer, principal = %self.identity.arn, "disconnectAfterInSeconds is over: closing the connection");
                Step::Close(DisconnectReason::CustomAuthTtl)
            }
            LeaseStep::Failed(why) => {
                tracing::warn!(peer = %self.peer, principal = %self.identity.arn, "closing the connection: {why}");
                Step::Close(DisconnectReason::AuthError)
            }
        }
    }

    fn version(&self) -> Version {
        self.version.unwrap_or(Version::V4)
    }

    /// Ends the connection for something the client sent; an MQTT 5 client is told
    /// `code` in the server's DISCONNECT.
    fn refuse(&mut self, code: Code5, reason: DisconnectReason) -> Step {
        self.close_code = Some(code);
        Step::Close(reason)
    }

    /// Serves the connection to its end. Three steps, each its own future: the
    /// task holds the largest of them, not all (the idle-memory benchmark).
    /// Not an `async fn`: that would hold `self` twice (rust-lang/rust#62958).
    #[allow(clippy::manual_async_fn)]
    pub fn run(mut self) -> impl Future<Output = ()> + Send {
        async move {
            if self.pending_auth.as_deref().is_some_and(Requested::at_upgrade) {
                Box::pin(self.custom_auth_at_upgrade()).await;
            }
            let reason = self.serve().await;
            self.close_and_finish(reason).await;
        }
    }

    /// Custom authentication of an upgrade that named its authorizer: the
    /// connection waits for CONNECT from when it is done.
    async fn custom_auth_at_upgrade(&mut self) {
        if let Some(requested) = self.pending_auth.take() {
            let (identity, lease) = custom_auth::admit(&self.gateway, &requested, None, self.peer).await;
            self.identity = identity;
            self.lease = lease.map(Box::new);
            self.deadline = Instant::now() + self.gateway.options.connect_timeout;
        }
    }

    /// Serves the connection until it ends; returns why it ended.
    async fn serve(&mut self) -> Kick {
        let shutdown = stopping(self.gateway.shutdown.clone());
        tokio::pin!(shutdown);
        // One timer for all three: the keep-alive (or CONNECT) deadline, the
        // connection's maximum duration and a custom authorizer's lease (an idle
        // connection's task holds one timer, not three). It lives as long as the
        // loop and moves only when a deadline comes earlier than it or it fired:
        // a keep-alive pushed later by traffic is seen when it fires early.
        let timer = sleep_until(self.next_timer());
        tokio::pin!(timer);
        loop {
            let due = self.next_timer();
            if due < timer.deadline() || (timer.is_elapsed() && due != timer.deadline()) {
                timer.as_mut().reset(due);
            }
            let step = tokio::select! {
                // Handlers are boxed: their state exists only while one runs, so an
                // idle connection's task stays small (the idle-memory benchmark).
                message = self.socket.next() => Box::pin(self.on_messages(message)).await,
                event = mailbox_event(&mut self.connected) => match event {
                    MailboxEvent::Delivery(outgoing, pkid) => Box::pin(self.deliver(outgoing, pkid)).await,
                    MailboxEvent::Kicked(kick) => Step::Kicked(kick),
                },
                () = &mut timer => self.on_timer(),
                () = &mut shutdown => Step::Close(DisconnectReason::ServerInitiated),
            };
            let step = match step {
                Step::Lease => Box::pin(self.on_lease()).await,
                other => other,
            };
            match step {
                Step::Continue | Step::Lease => {}
                Step::Close(reason) => break Kick::because(reason),
                Step::Kicked(kick) => break kick,
            }
        }
    }

    /// Tells the client why its connection ends (MQTT 5), closes the WebSocket,
    /// then settles the session, the will and the lifecycle event.
    async fn close_and_finish(&mut self, reason: Kick) {
        // An MQTT 5 client is told why the server ends its connection.
        if self.version == Some(Version::V5)
            && self.connected.is_some()
            && let Some(code) = self.close_code.or_else(|| negotiate::disconnect_code(reason.reason))
        {
            let frame = packet::disconnect(code, Some(reason.reason.as_aws().to_owned()));
            let _ = tokio::time::timeout(Duration::from_secs(1), self.socket.send(WsMessage::Binary(frame))).await;
        }
        // A client that stopped reading must not hold the session open.
        let _ = tokio::time::timeout(Duration::from_secs(1), self.socket.send(WsMessage::Close(None))).await;
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
        self.gateway.usage.disconnected(connected.metered);
        let client_id = &connected.session.client_id;
        let expiry = connected.session_expiry;
        let will_due = reason != DisconnectReason::ClientInitiated || connected.will_on_disconnect;
        let mut will = connected.will.filter(|_| will_due && !kick.prevent_will).map(|w| *w);
        let left = self.gateway.broker.disconnect(
            &connected.session,
            connected.attachment,
            reason,
            kick.discard_session || expiry.is_zero(),
            expiry,
            || {
                // A delayed will waits with the session; one due now goes below.
                let delayed = will.take_if(|w| !w.delay.is_zero());
                will::away(&self.gateway, client_id, &self.identity.user_id, delayed, expiry)
            },
        );
        let kept = left == Left::Kept;
        tracing::info!(client_id = %client_id.escape_debug(), reason = reason.as_aws(), session_kept = kept, "MQTT client disconnected");
        // Taken up by a newer connection: a delayed will is not published (MQTT 5
        // §3.1.3.2.2); one without delay is, as on any takeover.
        if let Some(will) = will.filter(|w| left == Left::Ended || w.delay.is_zero()) {
            will::publish(&self.gateway, client_id, &self.identity.user_id, will);
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

    /// Handles a WebSocket message, then those already waiting behind it (a few
    /// dozen at most, so deliveries still get their turn): a subscriber's PUBACKs
    /// arrive in bursts, and each pass through the loop costs more than reading one.
    async fn on_messages(&mut self, first: Option<Result<WsMessage, axum::Error>>) -> Step {
        let mut step = self.on_message(first).await;
        for _ in 1..READ_BATCH {
            if !matches!(step, Step::Continue) {
                break;
            }
            match self.socket.next().now_or_never() {
                Some(message) => step = self.on_message(message).await,
                None => break,
            }
        }
        step
    }

    async fn on_message(&mut self, message: Option<Result<WsMessage, axum::Error>>) -> Step {
        match message {
            Some(Ok(WsMessage::Binary(bytes))) => self.buffer.extend_from_slice(&bytes),
            Some(Ok(WsMessage::Ping(_) | WsMessage::Pong(_))) => return Step::Continue,
            Some(Ok(WsMessage::Text(_))) => return Step::Close(DisconnectReason::ClientError),
            // IoT counts a WebSocket Close frame as the client's own disconnect.
            Some(Ok(WsMessage::Close(_))) => return Step::Close(DisconnectReason::ClientInitiated),
            Some(Err(_)) | None => return Step::Close(DisconnectReason::ConnectionLost),
        }
        loop {
            let version = match self.version {
                Some(version) => version,
                None => match packet::connect_version(&self.buffer) {
                    Ok(Some(version)) => {
                        self.version = Some(version);
                        version
                    }
                    Ok(None) => return Step::Continue,
                    Err(ReadError::Version(level)) => {
                        tracing::warn!(peer = %self.peer, "CONNECT refused: MQTT protocol level {level} is not supported (4 and 5 are)");
                        return Step::Close(DisconnectReason::ClientError);
                    }
                    Err(err) => {
                        tracing::warn!(peer = %self.peer, "malformed MQTT packet: {err:?}");
                        return Step::Close(DisconnectReason::ClientError);
                    }
                },
            };
            match packet::read(version, &mut self.buffer, MAX_PACKET_BYTES) {
                Ok(inbound) => {
                    if let Some(connected) = &self.connected {
                        self.deadline = Instant::now() + connected.keep_alive.mul_f32(1.5);
                    }
                    let step = self.on_packet(inbound).await;
                    if !matches!(step, Step::Continue) {
                        return step;
                    }
                }
                Err(ReadError::Incomplete) => return Step::Continue,
                Err(ReadError::TooLarge) => {
                    tracing::warn!(peer = %self.peer, "MQTT packet larger than {MAX_PACKET_BYTES} bytes");
                    return self.refuse(Code5::PacketTooLarge, DisconnectReason::ClientError);
                }
                Err(err) => {
                    tracing::warn!(peer = %self.peer, "malformed MQTT packet: {err:?}");
                    return self.refuse(Code5::MalformedPacket, DisconnectReason::ClientError);
                }
            }
        }
    }

    async fn on_packet(&mut self, packet: Inbound) -> Step {
        match (packet, self.connected.is_some()) {
            (Inbound::Connect(connect), false) => self.on_connect(*connect).await,
            (_, false) | (Inbound::Connect(_), true) => {
                self.refuse(Code5::ProtocolError, DisconnectReason::ClientError)
            }
            (Inbound::Publish(publish), true) => self.on_publish(publish).await,
            (
                Inbound::Subscribe {
                    pkid,
                    filters,
                    subscription_id,
                },
                true,
            ) => self.on_subscribe(pkid, filters, subscription_id).await,
            (Inbound::Unsubscribe { pkid, filters }, true) => self.on_unsubscribe(pkid, filters).await,
            (Inbound::PingReq, true) => self.write_bytes(packet::pingresp()).await,
            (Inbound::PubAck(pkid), true) => {
                self.gateway.usage.acknowledged();
                if let Some(connected) = &self.connected {
                    connected.session.acknowledge(pkid);
                }
                Step::Continue
            }
            (
                Inbound::Disconnect {
                    with_will,
                    session_expiry,
                },
                true,
            ) => self.on_disconnect(with_will, session_expiry),
            (Inbound::Unexpected(what), true) => {
                tracing::warn!(peer = %self.peer, "unexpected MQTT packet: {what}");
                self.refuse(Code5::ProtocolError, DisconnectReason::ClientError)
            }
        }
    }

    fn on_disconnect(&mut self, with_will: bool, session_expiry: Option<u32>) -> Step {
        let cap = self.gateway.options.session_expiry;
        let Some(connected) = self.connected.as_mut() else {
            return Step::Close(DisconnectReason::ClientInitiated);
        };
        connected.will_on_disconnect = with_will;
        if let Some(secs) = session_expiry {
            if connected.session_expiry.is_zero() && secs > 0 {
                // MQTT 5: a session that was to end with its connection cannot be
                // kept by the DISCONNECT.
                return self.refuse(Code5::ProtocolError, DisconnectReason::ClientError);
            }
            connected.session_expiry = Duration::from_secs(u64::from(secs)).min(cap);
        }
        Step::Close(DisconnectReason::ClientInitiated)
    }

    /// Refuses a CONNECT: the log line, `connect_failed` for an authorization
    /// failure, CONNACK when the client is to be told, then the close.
    async fn refuse_connect(&mut self, client_id: &str, refusal: negotiate::ConnectRefusal) -> Step {
        tracing::warn!(client_id = %client_id.escape_debug(), principal = %self.identity.arn, "CONNECT refused: {}", refusal.why);
        if refusal.code == ConnectCode::NotAuthorized {
            self.connect_failed_event(client_id);
        }
        if refusal.reply {
            let connack = packet::connack(self.version(), false, refusal.code, &Announced::default());
            let _ = self.write_bytes(connack).await;
        }
        Step::Close(if refusal.code == ConnectCode::ConnectionRateExceeded {
            DisconnectReason::Throttled
        } else {
            DisconnectReason::ForbiddenAccess
        })
    }

    /// Whether a CONNECT is accepted, and on which terms: the client ID (an
    /// empty one assigned), custom authentication, the policy, then IoT's
    /// CONNECT rate per client ID. `Err` is what the loop does next.
    async fn admit(&mut self, connect: &mut ConnectIn) -> Result<negotiate::ConnectTerms, Step> {
        let version = self.version();
        let reply = negotiate::replies_to_refusal(version, &self.gateway.options);
        let assigned = match negotiate::client_id(&connect.client_id, connect.clean_start, version) {
            Ok(assigned) => assigned,
            Err((code, why)) => {
                let client_id = std::mem::take(&mut connect.client_id);
                let refusal = negotiate::ConnectRefusal { code, why, reply };
                return Err(self.refuse_connect(&client_id, refusal).await);
            }
        };
        if let Some(assigned) = &assigned {
            connect.client_id.clone_from(assigned);
        }
        self.custom_auth_at_connect(connect).await;
        let gateway = self.gateway.clone();
        let arns = gateway.broker.arns();
        let mut terms = match negotiate::connect(connect, version, &self.identity, arns, &gateway.options) {
            Ok(terms) => terms,
            Err(refusal) => return Err(self.refuse_connect(&connect.client_id, refusal).await),
        };
        // Only a CONNECT the policy allows counts toward the client ID's rate, so
        // nobody can keep a client out by connecting as it.
        if let Err(wait) = gateway
            .connect_rate
            .admit(&connect.client_id, std::time::Instant::now())
        {
            let refusal = negotiate::ConnectRefusal {
                code: ConnectCode::ConnectionRateExceeded,
                why: format!(
                    "over IoT's {} CONNECT(s) per second per client ID; the next is allowed in {} ms",
                    gateway.options.limits.connects_per_second,
                    wait.as_millis()
                ),
                reply,
            };
            return Err(self.refuse_connect(&connect.client_id, refusal).await);
        }
        terms.announced.assigned_client_id = assigned;
        Ok(terms)
    }

    async fn on_connect(&mut self, mut connect: ConnectIn) -> Step {
        let version = self.version();
        let terms = match self.admit(&mut connect).await {
            Ok(terms) => terms,
            Err(step) => return step,
        };
        let gateway = self.gateway.clone();
        let info = ConnectionInfo {
            clean_session: connect.clean_start,
            keep_alive_secs: terms.keep_alive.as_secs(),
            connected_since: super::broker::millis(SystemTime::now()),
            session_expiry_secs: terms.session_expiry.as_secs(),
            source: self.peer,
        };
        let client_id = connect.client_id;
        let attached = gateway
            .broker
            .connect(&client_id, self.identity.clone(), info, terms.session);
        for (filter, why) in &attached.refused {
            tracing::warn!(client_id = %client_id, filter = %filter, "resumed subscription dropped: {why}");
        }
        self.deadline = Instant::now() + terms.keep_alive.mul_f32(1.5);
        let session_id = serverless_websockets_core::random::hex::<16>();
        let connect_bytes = client_id.len() + connect.will.as_ref().map_or(0, |w| w.message.metered_bytes());
        let metered = gateway.usage.connected(connect_bytes);
        let resend = attached.session.in_flight();
        let session_present = attached.session_present;
        self.connected = Some(Connected {
            session: attached.session,
            mailbox: attached.mailbox,
            attachment: attached.attachment,
            session_id: session_id.clone(),
            keep_alive: terms.keep_alive,
            session_expiry: terms.session_expiry,
            will: connect.will.map(Box::new),
            will_on_disconnect: false,
            aliases: Vec::new(),
            max_packet: connect.max_packet_size,
            metered,
        });
        let connack = packet::connack(version, session_present, ConnectCode::Accepted, &terms.announced);
        if let Step::Close(reason) = self.write_bytes(connack).await {
            return Step::Close(reason);
        }
        tracing::info!(client_id = %client_id, principal = %self.identity.arn, mqtt = if version == Version::V5 { 5 } else { 4 }, keep_alive_s = terms.keep_alive.as_secs(), clean_session = connect.clean_start, session_expiry_s = terms.session_expiry.as_secs(), session_present, "MQTT client connected");
        self.connected_event(&client_id, &session_id);
        self.resend(resend).await
    }

    /// Custom authentication that waited for CONNECT runs now; a custom
    /// authorizer's policies may name `${iot:ClientId}`, bound now.
    async fn custom_auth_at_connect(&mut self, connect: &ConnectIn) {
        if let Some(requested) = self.pending_auth.take() {
            let (identity, lease) = custom_auth::admit(&self.gateway, &requested, Some(connect), self.peer).await;
            self.identity = identity;
            self.lease = lease.map(Box::new);
        }
        if self.identity.variables.is_some() {
            let mut bound = (*self.identity).clone();
            bound.variables = Some(Variables {
                client_id: Some(connect.client_id.clone()),
            });
            self.identity = Arc::new(bound);
        }
    }

    /// What the last connection left unacknowledged goes first, marked DUP.
    async fn resend(&mut self, in_flight: Vec<(u16, Outgoing)>) -> Step {
        let mut outbox = Outbox::default();
        for (pkid, outgoing) in in_flight {
            self.gather(outgoing, Some(pkid), true, &mut outbox);
        }
        self.send_all(outbox.messages()).await
    }

    /// `$aws/events/presence/connect_failed/<clientId>`.
    fn connect_failed_event(&self, client_id: &str) {
        let session_id = serverless_websockets_core::random::hex::<16>();
        let ip = self.peer.ip().to_string();
        let event = lifecycle::connect_failed(client_id, &session_id, &self.identity.user_id, &ip, SystemTime::now());
        self.gateway
            .publish_event(&lifecycle::topic("connect_failed", client_id), client_id, event);
    }

    /// `$aws/events/presence/connected/<clientId>`.
    fn connected_event(&self, client_id: &str, session_id: &str) {
        let event = lifecycle::connected(
            client_id,
            session_id,
            &self.identity.user_id,
            &self.peer.ip().to_string(),
            self.gateway.next_version(),
            SystemTime::now(),
        );
        self.gateway
            .publish_event(&lifecycle::topic("connected", client_id), client_id, event);
    }

    /// Ends the connection as `close` says, logging why.
    fn close(&mut self, close: negotiate::Close) -> Step {
        tracing::warn!(peer = %self.peer, "{}", close.why);
        self.close_code = close.code;
        Step::Close(close.reason)
    }

    /// The topic of a PUBLISH, its MQTT 5 topic alias resolved or recorded.
    fn resolve_alias(&mut self, topic: String, alias: Option<u16>) -> Result<String, Code5> {
        let Some(alias) = alias else {
            return Ok(topic);
        };
        if !negotiate::alias_in_range(alias) {
            return Err(Code5::TopicAliasInvalid);
        }
        let connected = self.connected.as_mut().ok_or(Code5::ProtocolError)?;
        if topic.is_empty() {
            return connected
                .aliases
                .iter()
                .find(|(a, _)| *a == alias)
                .map(|(_, t)| t.clone())
                .ok_or(Code5::ProtocolError);
        }
        match connected.aliases.iter_mut().find(|(a, _)| *a == alias) {
            Some(entry) => entry.1.clone_from(&topic),
            None => connected.aliases.push((alias, topic.clone())),
        }
        Ok(topic)
    }

    async fn on_publish(&mut self, mut publish: PublishIn) -> Step {
        let version = self.version();
        let topic = match self.resolve_alias(std::mem::take(&mut publish.topic), publish.alias) {
            Ok(topic) => topic,
            Err(code) => {
                tracing::warn!(peer = %self.peer, alias = ?publish.alias, "PUBLISH refused: topic alias 0, above {} or never set", quota::TOPIC_ALIAS_MAX);
                return self.refuse(code, DisconnectReason::ClientError);
            }
        };
        let arns = self.gateway.broker.arns();
        let limits = &self.gateway.options.limits;
        let qos = match negotiate::publish(&publish, &topic, version, &self.identity, arns, limits) {
            Ok(qos) => qos,
            Err(PublishRefusal::NegativeAck(why)) => {
                tracing::warn!(topic = %topic, principal = %self.identity.arn, "{why}");
                return self
                    .write_bytes(packet::puback(version, publish.pkid, PubAckCode::NotAuthorized))
                    .await;
            }
            Err(PublishRefusal::Close(close)) => {
                tracing::warn!(topic = %topic.escape_debug(), principal = %self.identity.arn, "{}", close.why);
                self.close_code = close.code;
                return Step::Close(close.reason);
            }
        };
        if self.admit_publish(publish.payload.len(), &topic).is_err() {
            if version == Version::V5 && qos == QoS::AtLeastOnce {
                return self
                    .write_bytes(packet::puback(version, publish.pkid, PubAckCode::QuotaExceeded))
                    .await;
            }
            return Step::Continue;
        }
        let mut message = Message::new(topic, publish.payload, qos, publish.retain);
        message.properties = publish.properties;
        message.set_expiry(publish.expiry);
        let message = Arc::new(message);
        let ingest = crate::rules::basic_ingest(&message.topic).is_some();
        self.gateway
            .usage
            .published(message.metered_bytes(), message.retain, ingest);
        let origin = Origin {
            client_id: self.connected.as_ref().map(|c| c.session.client_id.as_str()),
            principal: Some(&self.identity.user_id),
            depth: 0,
        };
        if self.gateway.publish(message.clone(), origin).unheard() {
            tracing::warn!(topic = %message.topic, "no subscriber for topic {}", message.topic);
        }
        if qos == QoS::AtLeastOnce {
            return self
                .write_bytes(packet::puback(version, publish.pkid, PubAckCode::Accepted))
                .await;
        }
        Step::Continue
    }

    /// Counts a PUBLISH against IoT's per-connection rates; a throttled one is
    /// dropped (logged once per run of throttled publishes).
    fn admit_publish(&mut self, payload_bytes: usize, topic: &str) -> Result<(), Throttled> {
        let limits = &self.gateway.options.limits;
        let now = std::time::Instant::now();
        let bucket = self.publish_limits.get_or_insert_with(|| {
            Box::new(PublishLimits::new(
                limits.publishes_per_second,
                limits.publish_bytes_per_second,
                now,
            ))
        });
        if bucket.is_unlimited() {
            return Ok(());
        }
        match bucket.admit(payload_bytes, now) {
            Ok(()) => {
                self.throttling = false;
                Ok(())
            }
            Err(throttled) => {
                if !self.throttling {
                    let (what, limit) = match throttled {
                        Throttled::Rate => ("publishes", limits.publishes_per_second),
                        Throttled::Throughput => ("payload bytes", limits.publish_bytes_per_second),
                    };
                    let client_id = self.connected.as_ref().map_or("-", |c| c.session.client_id.as_str());
                    tracing::warn!(client_id = %client_id.escape_debug(), topic = %topic.escape_debug(), "PUBLISH throttled: over IoT's {limit} {what} per second per connection; dropped, as IoT drops them (no more lines until one passes)");
                }
                self.throttling = true;
                Err(throttled)
            }
        }
    }

    async fn on_subscribe(&mut self, pkid: u16, filters: Vec<FilterIn>, subscription_id: bool) -> Step {
        let version = self.version();
        let Some(session) = self.connected.as_ref().map(|c| c.session.clone()) else {
            return self.refuse(Code5::ProtocolError, DisconnectReason::ClientError);
        };
        self.gateway
            .usage
            .subscribed(filters.iter().map(|f| f.path.len()).sum());
        let held = session.filters().into_iter().map(|(filter, _)| filter).collect();
        let gateway = self.gateway.clone();
        let (arns, options) = (gateway.broker.arns(), &gateway.options);
        let answer = match negotiate::subscribe(&filters, subscription_id, version, &self.identity, arns, options, held)
        {
            Ok(answer) => answer,
            Err(close) => return self.close(close),
        };
        let mut retained = Vec::new();
        for granted in &answer.granted {
            gateway.broker.subscribe(&session, &granted.filter, granted.qos);
            if granted.send_retained
                && let Some(message) = gateway.broker.retained_for(&granted.filter, granted.qos, session.v5)
            {
                retained.push(message);
            }
        }
        if let Step::Close(reason) = self.write_bytes(packet::suback(version, pkid, &answer.codes)).await {
            return Step::Close(reason);
        }
        let subscribed = answer.granted.into_iter().map(|g| g.filter).collect();
        self.subscription_event("subscribed", subscribed);
        let mut outbox = Outbox::default();
        for message in retained {
            // Retained messages go straight out; a QoS 1 one takes the session's
            // next packet identifier like any delivery.
            if let Outgoing::Message { message, .. } = &message {
                gateway.usage.delivered(message.metered_bytes(), 1);
            }
            let pkid = message.is_qos1().then(|| session.track(message.clone()));
            self.gather(message, pkid, false, &mut outbox);
        }
        self.send_all(outbox.messages()).await
    }

    async fn on_unsubscribe(&mut self, pkid: u16, filters: Vec<String>) -> Step {
        let Some(connected) = self.connected.as_ref() else {
            return self.refuse(Code5::ProtocolError, DisconnectReason::ClientError);
        };
        let removed: Vec<bool> = filters
            .iter()
            .map(|filter| self.gateway.broker.unsubscribe(&connected.session, filter))
            .collect();
        let step = self.write_bytes(packet::unsuback(self.version(), pkid, &removed)).await;
        let gone = filters
            .into_iter()
            .zip(removed)
            .filter_map(|(filter, had)| had.then_some(filter))
            .collect();
        self.subscription_event("unsubscribed", gone);
        step
    }

    /// `$aws/events/subscriptions/{subscribed,unsubscribed}/<clientId>`.
    fn subscription_event(&self, event: &str, topics: Vec<String>) {
        let Some(connected) = &self.connected else { return };
        if topics.is_empty() {
            return;
        }
        let client_id = &connected.session.client_id;
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

    async fn write_bytes(&mut self, frame: Bytes) -> Step {
        match self.socket.send(WsMessage::Binary(frame)).await {
            Ok(()) => Step::Continue,
            Err(_) => Step::Close(DisconnectReason::ConnectionLost),
        }
    }

    /// Writes messages and flushes once.
    async fn send_all(&mut self, messages: impl Iterator<Item = WsMessage>) -> Step {
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

    /// Writes one delivery and whatever else is already queued (up to
    /// [`WRITE_BATCH`]), gathered into few WebSocket messages, then flushes once.
    async fn write_outgoing(&mut self, first: Outgoing, pkid: Option<u16>) -> Step {
        let mut outbox = Outbox::default();
        let mut next = Some((first, pkid));
        let mut written = 0;
        while let Some((outgoing, pkid)) = next.take() {
            self.gather(outgoing, pkid, false, &mut outbox);
            written += 1;
            if written < WRITE_BATCH
                && let Some(connected) = self.connected.as_ref()
            {
                next = connected.session.try_next_delivery(connected.attachment);
            }
        }
        self.send_all(outbox.messages()).await
    }

    /// Adds one delivery to `outbox`: a shared frame as is, or for QoS 1 with this
    /// delivery's packet identifier (and DUP when re-sent) written into its copy
    /// of the header; a message that expires encoded for this connection. A
    /// delivery larger than an MQTT 5 client's Maximum Packet Size is dropped (and
    /// no longer in flight), as MQTT 5 asks.
    fn gather(&self, outgoing: Outgoing, pkid: Option<u16>, dup: bool, outbox: &mut Outbox) {
        match (outgoing, pkid) {
            (Outgoing::Qos1 { frame, pkid_at, .. }, Some(pkid)) => {
                if !self.too_large(&frame, Some(pkid)) {
                    outbox.qos1(&frame, pkid_at, pkid, dup);
                }
            }
            (Outgoing::Qos1 { frame, .. } | Outgoing::Frame(frame), pkid) => {
                if !self.too_large(&frame, pkid) {
                    outbox.add(frame);
                }
            }
            (
                Outgoing::Message {
                    message, qos, retain, ..
                },
                pkid,
            ) => {
                let frame = packet::publish(
                    self.version(),
                    &message,
                    qos,
                    retain,
                    pkid.unwrap_or(0),
                    dup,
                    Instant::now(),
                );
                if !self.too_large(&frame, pkid) {
                    outbox.add(frame);
                }
            }
        }
    }

    /// Whether `frame` is over the client's MQTT 5 Maximum Packet Size; if so it
    /// is logged and its packet identifier no longer in flight.
    fn too_large(&self, frame: &[u8], pkid: Option<u16>) -> bool {
        let Some(connected) = self.connected.as_ref() else {
            return false;
        };
        if connected.max_packet.is_none_or(|max| frame.len() <= max as usize) {
            return false;
        }
        let topic = super::message::publish_topic(frame).unwrap_or("?");
        tracing::warn!(topic = %topic.escape_debug(), size = frame.len(), "delivery dropped: larger than the client's Maximum Packet Size");
        if let Some(pkid) = pkid {
            connected.session.drop_in_flight(pkid, Delivery::TooLarge);
        }
        true
    }
}

/// Packets gathered for one write. Small packets share WebSocket messages (MQTT
/// over WebSocket lets a message carry several packets, and a packet span
/// messages: MQTT 3.1.1 §6, MQTT 5 §6), which saves the client one message event
/// per packet and the gateway one frame per packet; a large packet goes as its
/// own message, uncopied.
#[derive(Default)]
struct Outbox {
    /// Small packets not yet cut into a message.
    pending: BytesMut,
    messages: Vec<Bytes>,
}

/// A packet up to this size is copied into a shared message.
const GATHER_MAX: usize = 1024;
/// A shared message is cut once it reaches this size.
const MESSAGE_TARGET: usize = 16 * 1024;

impl Outbox {
    /// Adds a packet: copied when small, else shared as its own message.
    fn add(&mut self, packet: Bytes) {
        if packet.len() <= GATHER_MAX {
            self.copy(&packet);
        } else {
            self.share(packet);
        }
    }

    /// Adds a shared QoS 1 frame with this delivery's packet identifier (at
    /// `pkid_at`) and DUP flag, written into its copy of the header: the payload
    /// is copied too when small, else it follows as its own message, shared.
    fn qos1(&mut self, frame: &Bytes, pkid_at: usize, pkid: u16, dup: bool) {
        let head = if frame.len() <= GATHER_MAX {
            frame.len()
        } else {
            pkid_at + 2
        };
        let at = self.copy(&frame[..head]);
        self.patch(at + pkid_at, &pkid.to_be_bytes());
        if dup {
            self.patch(at, &[frame[0] | 0x08]);
        }
        if head < frame.len() {
            self.share(frame.slice(head..));
        }
    }

    /// Copies bytes into the pending message; returns where they start.
    fn copy(&mut self, bytes: &[u8]) -> usize {
        if self.pending.len() + bytes.len() > MESSAGE_TARGET {
            self.cut();
        }
        let at = self.pending.len();
        self.pending.extend_from_slice(bytes);
        at
    }

    /// Overwrites copied bytes at `at` (a packet identifier, a DUP flag).
    fn patch(&mut self, at: usize, bytes: &[u8]) {
        self.pending[at..at + bytes.len()].copy_from_slice(bytes);
    }

    /// Sends `bytes` as its own message, after what is pending.
    fn share(&mut self, bytes: Bytes) {
        self.cut();
        self.messages.push(bytes);
    }

    fn cut(&mut self) {
        if !self.pending.is_empty() {
            self.messages.push(self.pending.split().freeze());
        }
    }

    /// The WebSocket messages, in order.
    fn messages(self) -> impl Iterator<Item = WsMessage> {
        self.into_payloads().into_iter().map(WsMessage::Binary)
    }

    fn into_payloads(mut self) -> Vec<Bytes> {
        self.cut();
        self.messages
    }
}

async fn kick_reason(kicked: Option<Arc<Kicker>>) -> Kick {
    match kicked {
        Some(kicked) => kicked.kicked().await,
        None => std::future::pending().await,
    }
}

async fn stopping(mut shutdown: tokio::sync::watch::Receiver<bool>) {
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
    let session = &connected.session;
    tokio::select! {
        biased;
        kick = connected.mailbox.kicked.kicked() => MailboxEvent::Kicked(kick),
        (outgoing, pkid) = session.next_delivery(connected.attachment) => MailboxEvent::Delivery(outgoing, pkid),
    }
}

#[cfg(test)]
mod tests {
    use rumqttc::mqttbytes::v4::Packet as Packet4;

    use super::*;

    fn output_size<A, F>(_: fn(A) -> F) -> usize {
        std::mem::size_of::<F>()
    }

    /// An idle connection's task holds this future for its whole life: it is most
    /// of what a connection costs in memory (BENCHMARKS.md, idle connections).
    /// An `async fn` taking the connection by value would hold it twice.
    #[test]
    fn an_idle_connections_future_holds_the_connection_once_and_little_else() {
        type Socket = axum::extract::ws::WebSocket;
        let connection = std::mem::size_of::<Connection<Socket>>();
        let future = output_size(Connection::<Socket>::run);
        // The connection, and the serving loop's state beside it (its timer, the
        // shutdown signal, the mailbox): not a second copy of the connection.
        assert!(
            future <= connection + 768,
            "the connection's future is {future} bytes for a {connection}-byte connection"
        );
        assert!(future <= 1536, "the connection's future grew to {future} bytes");
    }

    /// A QoS 1 PUBLISH as the router shares it: packet identifier 0 at
    /// `pkid_at` as a placeholder, then the payload.
    fn qos1_frame(payload: usize) -> (Bytes, usize) {
        let mut publish = rumqttc::mqttbytes::v4::Publish::new("a/b", QoS::AtLeastOnce, vec![b'p'; payload]);
        publish.pkid = 1;
        let mut frame = BytesMut::new();
        publish.write(&mut frame).unwrap_or_default();
        let pkid_at = frame.len() - payload - 2;
        frame[pkid_at..pkid_at + 2].copy_from_slice(&[0, 0]);
        (frame.freeze(), pkid_at)
    }

    fn decoded(messages: &[Bytes]) -> Vec<Packet4> {
        let mut stream = BytesMut::new();
        for message in messages {
            stream.extend_from_slice(message);
        }
        let mut packets = Vec::new();
        while !stream.is_empty() {
            packets.push(Packet4::read(&mut stream, 1 << 20).unwrap_or_else(|e| panic!("{e:?}")));
        }
        packets
    }

    #[test]
    fn small_deliveries_share_one_websocket_message_each_with_its_own_packet_identifier() {
        let (frame, pkid_at) = qos1_frame(20);
        let mut outbox = Outbox::default();
        for pkid in 1..=3 {
            outbox.qos1(&frame, pkid_at, pkid, pkid == 3);
        }
        outbox.add(Bytes::from_static(&[0xd0, 0]));
        let messages = outbox.into_payloads();
        assert_eq!(messages.len(), 1);
        let packets = decoded(&messages);
        let ids: Vec<_> = packets
            .iter()
            .filter_map(|p| match p {
                Packet4::Publish(p) => Some((p.pkid, p.dup)),
                _ => None,
            })
            .collect();
        assert_eq!(ids, [(1, false), (2, false), (3, true)]);
        assert!(matches!(packets[3], Packet4::PingResp));
        // The shared frame is untouched: other subscribers still get the placeholder.
        assert_eq!(&frame[pkid_at..pkid_at + 2], &[0, 0]);
    }

    #[test]
    fn a_large_qos1_delivery_is_split_after_its_header_and_its_payload_is_not_copied() {
        let (frame, pkid_at) = qos1_frame(GATHER_MAX + 1);
        let mut outbox = Outbox::default();
        outbox.add(Bytes::from_static(&[0xd0, 0]));
        outbox.qos1(&frame, pkid_at, 7, false);
        let messages = outbox.into_payloads();
        assert_eq!(messages.len(), 2, "what was pending and the header, then the payload");
        assert_eq!(
            messages[1].as_ptr(),
            frame[pkid_at + 2..].as_ptr(),
            "the payload is shared, not copied"
        );
        let packets = decoded(&messages);
        assert!(matches!(&packets[1], Packet4::Publish(p) if p.pkid == 7 && p.payload.len() == GATHER_MAX + 1));
    }

    #[test]
    fn a_shared_message_is_cut_before_it_passes_the_target_size() {
        let packet = Bytes::from(vec![0u8; GATHER_MAX]);
        let mut outbox = Outbox::default();
        for _ in 0..40 {
            outbox.add(packet.clone());
        }
        let messages = outbox.into_payloads();
        assert!(messages.iter().all(|m| m.len() <= MESSAGE_TARGET));
        assert_eq!(messages.iter().map(Bytes::len).sum::<usize>(), 40 * GATHER_MAX);
        assert_eq!(messages.len(), 40usize.div_ceil(MESSAGE_TARGET / GATHER_MAX));
    }
}
