//! Message routing between the gateway's connections: sessions keyed by client
//! ID (a new connection takes the ID over), the subscription table, persistent
//! sessions that outlive their connection, retained messages and fan-out.
//!
//! A [`Subscriber`] is a *session*: its subscriptions, its queue of deliveries and
//! its unacknowledged QoS 1 messages. A clean session lives as long as its
//! connection; a persistent one (`cleanSession = 0`) stays in the table while its
//! client is away, stores the QoS 1 messages that match it (bounded; QoS 0 is not
//! stored), and is taken up again by the next connection with its client ID, which
//! first re-sends what was in flight (with DUP) and then the stored messages, in order.
//!
//! Fan-out takes one read lock per *publish*, never per delivery, and never copies a
//! payload per subscriber: a QoS 0 message is encoded once (with `rumqttc`'s
//! `mqttbytes`) and the same `Bytes` goes to every recipient; a QoS 1 message is
//! encoded once with a placeholder packet identifier that each connection fills in
//! on its own copy of the few header bytes. Each session has a bounded queue; a
//! connected subscriber whose queue is full is disconnected (`THROTTLED`) instead
//! of growing memory without bound. At most [`MAX_INFLIGHT`] QoS 1 deliveries await
//! a PUBACK at once (IoT's limit); the rest wait in the queue.
//!
//! `iot:Receive` is checked on every delivery as in IoT Core; for a subscription
//! without wildcards the topic is fixed, so the decision is made once at SUBSCRIBE
//! (and again when a persistent session resumes with new credentials).

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, RwLock};
use std::time::{Duration, SystemTime};

use bytes::{Bytes, BytesMut};
use rumqttc::mqttbytes::QoS;
use rumqttc::mqttbytes::v4::Publish;
use tokio::sync::{Notify, oneshot, watch};

use crate::identity::Identity;
use serverless_websockets_core::arn::IotArns;
use serverless_websockets_core::topic::{SHARED_PREFIX, has_wildcards, matches, split_shared};

/// A session's key in the subscription table; stable across the reconnects of a
/// persistent session.
pub type ConnId = u64;

/// QoS 1 deliveries awaiting PUBACK per client before the broker waits (IoT: 100).
pub const MAX_INFLIGHT: usize = 100;

/// How long `GetConnection` remembers a client that left without a session (IoT: ~30 min).
pub const DEPARTED_RETENTION: Duration = Duration::from_secs(30 * 60);
/// At most this many departed clients are remembered.
const MAX_DEPARTED: usize = 100_000;

/// A QoS 1 delivery whose PUBACK someone waits for (SendDirectMessage with confirmation).
#[derive(Debug)]
pub struct Confirm(Mutex<Option<oneshot::Sender<()>>>);

impl Confirm {
    pub fn new() -> (Arc<Self>, oneshot::Receiver<()>) {
        let (tx, rx) = oneshot::channel();
        (Arc::new(Self(Mutex::new(Some(tx)))), rx)
    }

    fn fire(&self) {
        if let Some(tx) = lock(&self.0).take() {
            let _ = tx.send(());
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

    /// Sets the expiry `secs` from now, capped at IoT's seven days.
    pub fn set_expiry(&mut self, secs: Option<u32>) {
        self.expires = secs.map(|secs| {
            let secs = secs.min(super::packet::MAX_MESSAGE_EXPIRY);
            tokio::time::Instant::now() + Duration::from_secs(u64::from(secs))
        });
    }

    pub fn expired(&self, now: tokio::time::Instant) -> bool {
        self.expires.is_some_and(|expires| expires <= now)
    }
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

    fn confirm(&self) -> Option<&Arc<Confirm>> {
        match self {
            Self::Frame(_) => None,
            Self::Qos1 { confirm, .. } | Self::Message { confirm, .. } => confirm.as_ref(),
        }
    }

    fn expired(&self) -> bool {
        matches!(self, Self::Message { message, .. } if message.expires.is_some_and(|at| at <= tokio::time::Instant::now()))
    }
}

/// Why the gateway ended a connection: AWS's lifecycle `disconnectReason` values
/// (<https://docs.aws.amazon.com/iot/latest/developerguide/life-cycle-events.html>).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DisconnectReason {
    /// MQTT DISCONNECT, or a WebSocket Close frame from the client.
    ClientInitiated,
    ConnectionLost,
    DuplicateClientId,
    /// Not allowed to connect at all.
    ForbiddenAccess,
    /// A SUBSCRIBE or PUBLISH the policy refuses ("authorization failed").
    AuthError,
    KeepAliveTimeout,
    ClientError,
    ServerInitiated,
    Throttled,
    /// `DeleteConnection`.
    ApiInitiated,
}

impl DisconnectReason {
    pub fn as_aws(self) -> &'static str {
        match self {
            Self::ClientInitiated => "CLIENT_INITIATED_DISCONNECT",
            Self::ConnectionLost => "CONNECTION_LOST",
            Self::DuplicateClientId => "DUPLICATE_CLIENTID",
            Self::ForbiddenAccess => "FORBIDDEN_ACCESS",
            Self::AuthError => "AUTH_ERROR",
            Self::KeepAliveTimeout => "MQTT_KEEP_ALIVE_TIMEOUT",
            Self::ClientError => "CLIENT_ERROR",
            Self::ServerInitiated => "SERVER_INITIATED_DISCONNECT",
            Self::Throttled => "THROTTLED",
            Self::ApiInitiated => "API_INITIATED_DISCONNECT",
        }
    }
}

/// A request to close a connection, and what to do with its session and will.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Kick {
    pub reason: DisconnectReason,
    /// `DeleteConnection cleanSession=true`: discard a persistent session too.
    pub discard_session: bool,
    /// `DeleteConnection preventWillMessage=true`.
    pub prevent_will: bool,
}

impl Kick {
    pub fn because(reason: DisconnectReason) -> Self {
        Self {
            reason,
            discard_session: false,
            prevent_will: false,
        }
    }
}

/// What `GetConnection` reports about a connection.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConnectionInfo {
    pub clean_session: bool,
    pub keep_alive_secs: u64,
    /// Milliseconds since the epoch.
    pub connected_since: u64,
    pub session_expiry_secs: u64,
    /// The client's address (`includeSocketInformation`).
    pub source: std::net::SocketAddr,
}

/// A client's state as `GetConnection` reports it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Presence {
    pub connected: bool,
    pub info: ConnectionInfo,
    /// When and why it left, while it is not connected.
    pub departed: Option<(u64, DisconnectReason)>,
}

struct Link {
    attachment: u64,
    kick: watch::Sender<Option<Kick>>,
}

struct State {
    queue: VecDeque<Outgoing>,
    /// The connection currently serving this session; `None` while a persistent
    /// session's client is away.
    link: Option<Link>,
    filters: HashMap<String, QoS>,
    /// QoS 1 deliveries written and not yet acknowledged, oldest first.
    inflight: VecDeque<(u16, Outgoing)>,
    next_pkid: u16,
    /// Set once packet identifiers have wrapped past 65535: from then on a new one
    /// is checked against those still in flight.
    pkids_wrapped: bool,
    persistent: bool,
    /// QoS 1 deliveries in flight at most: [`MAX_INFLIGHT`], or less when an
    /// MQTT 5 client's Receive Maximum asks for less.
    inflight_max: usize,
    /// Set once the session is discarded: it takes no more deliveries.
    ended: bool,
}

/// One session, as seen by the router.
pub struct Subscriber {
    pub conn_id: ConnId,
    pub client_id: String,
    /// The session was made by an MQTT 5 connection (and only such resumes it).
    pub v5: bool,
    identity: RwLock<Arc<Identity>>,
    state: Mutex<State>,
    queue_len: usize,
    ready: Notify,
}

/// A drained queue keeps at most this much capacity.
const KEPT_CAPACITY: usize = 16;

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(|e| e.into_inner())
}

impl Subscriber {
    fn state(&self) -> MutexGuard<'_, State> {
        lock(&self.state)
    }

    /// The credentials of the connection serving (or that last served) the session.
    pub fn identity(&self) -> Arc<Identity> {
        self.identity.read().unwrap_or_else(|e| e.into_inner()).clone()
    }

    /// `iot:Receive` on `resource` for the session's credentials, read in place
    /// (no `Arc` clone: this runs per delivery on wildcard subscriptions).
    fn may_receive(&self, resource: &str) -> bool {
        self.identity
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .is_allowed("iot:Receive", resource)
    }

    /// Asks the attached connection, if any, to close (the first request wins).
    pub fn kick(&self, kick: Kick) {
        if let Some(link) = &self.state().link {
            link.kick.send_if_modified(|current| {
                if current.is_none() {
                    *current = Some(kick);
                    true
                } else {
                    false
                }
            });
        }
    }

    pub fn is_connected(&self) -> bool {
        self.state().link.is_some()
    }

    /// The session's subscriptions, sorted by filter.
    pub fn filters(&self) -> Vec<(String, QoS)> {
        let mut filters: Vec<_> = self.state().filters.iter().map(|(f, q)| (f.clone(), *q)).collect();
        filters.sort_by(|a, b| a.0.cmp(&b.0));
        filters
    }

    pub fn subscription_count(&self) -> usize {
        self.state().filters.len()
    }

    pub fn has_filter(&self, filter: &str) -> bool {
        self.state().filters.contains_key(filter)
    }

    /// Queues a delivery. A connected session that cannot keep up is kicked; an
    /// offline persistent session stores QoS 1 messages up to its bound and drops
    /// the rest, as IoT does not store QoS 0.
    fn offer(&self, outgoing: Outgoing) -> bool {
        let mut state = self.state();
        if state.ended {
            return false;
        }
        if state.link.is_none() {
            if !outgoing.is_qos1() {
                return false;
            }
            if state.queue.len() >= self.queue_len {
                tracing::warn!(client_id = %self.client_id, "persistent session's queue is full; message not stored");
                return false;
            }
            state.queue.push_back(outgoing);
            return true;
        }
        if state.queue.len() >= self.queue_len {
            drop(state);
            tracing::warn!(client_id = %self.client_id, "subscriber cannot keep up; disconnecting it");
            self.kick(Kick::because(DisconnectReason::Throttled));
            return false;
        }
        state.queue.push_back(outgoing);
        drop(state);
        self.ready.notify_one();
        true
    }

    /// The next delivery for the connection `attachment`, waiting for one; a QoS 1
    /// delivery gets its packet identifier and is in flight from here on.
    pub async fn next_delivery(&self, attachment: u64) -> (Outgoing, Option<u16>) {
        loop {
            if let Some(next) = self.try_next_delivery(attachment) {
                return next;
            }
            // `notify_one` leaves a permit when nobody waits, so an offer made
            // between the pop and this wait is not missed.
            self.ready.notified().await;
        }
    }

    /// The next delivery if one is queued and may be sent now.
    pub fn try_next_delivery(&self, attachment: u64) -> Option<(Outgoing, Option<u16>)> {
        let mut state = self.state();
        if state.link.as_ref().is_none_or(|l| l.attachment != attachment) {
            return None;
        }
        // Expired messages are dropped, never sent (the clock is read only for
        // messages that expire).
        while state.queue.front()?.expired() {
            state.queue.pop_front();
        }
        let qos1 = state.queue.front()?.is_qos1();
        if qos1 && state.inflight.len() >= state.inflight_max {
            return None;
        }
        let next = state.queue.pop_front()?;
        if state.queue.is_empty() && state.queue.capacity() > KEPT_CAPACITY {
            state.queue.shrink_to(KEPT_CAPACITY);
        }
        let pkid = qos1.then(|| take_pkid(&mut state, next.clone()));
        Some((next, pkid))
    }

    /// A PUBACK: the delivery is no longer in flight; whoever waits for it is told.
    pub fn acknowledge(&self, pkid: u16) {
        let mut state = self.state();
        // Clients mostly acknowledge in order: the oldest first.
        let at = if state.inflight.front().is_some_and(|(id, _)| *id == pkid) {
            0
        } else {
            match state.inflight.iter().position(|(id, _)| *id == pkid) {
                Some(at) => at,
                None => return,
            }
        };
        let Some((_, outgoing)) = state.inflight.remove(at) else {
            return;
        };
        let was_full = state.inflight.len() + 1 == state.inflight_max;
        drop(state);
        if let Some(confirm) = outgoing.confirm() {
            confirm.fire();
        }
        if was_full {
            self.ready.notify_one();
        }
    }

    /// Puts a delivery written outside the queue (a retained message) in flight;
    /// returns its packet identifier.
    pub fn track(&self, outgoing: Outgoing) -> u16 {
        take_pkid(&mut self.state(), outgoing)
    }

    /// What the connection that takes the session up re-sends first, with DUP.
    pub fn in_flight(&self) -> Vec<(u16, Outgoing)> {
        self.state().inflight.iter().cloned().collect()
    }
}

/// Puts `outgoing` in flight under the packet identifier after the last one that
/// is not in flight (never 0); returns it.
fn take_pkid(state: &mut State, outgoing: Outgoing) -> u16 {
    let mut pkid = state.next_pkid;
    loop {
        pkid = match pkid.checked_add(1) {
            Some(next) => next,
            None => {
                state.pkids_wrapped = true;
                1
            }
        };
        if !state.pkids_wrapped || !state.inflight.iter().any(|(id, _)| *id == pkid) {
            break;
        }
    }
    state.next_pkid = pkid;
    state.inflight.push_back((pkid, outgoing));
    pkid
}

/// How a connection wants its session: see [`Broker::connect`].
#[derive(Debug, Clone, Copy)]
pub struct SessionOptions {
    /// MQTT 5 (only an MQTT 5 connection resumes an MQTT 5 session).
    pub v5: bool,
    /// Kept after the connection ends.
    pub persistent: bool,
    /// The client's Receive Maximum: QoS 1 deliveries in flight at once (capped
    /// at [`MAX_INFLIGHT`]).
    pub receive_maximum: usize,
}

/// What a connection watches besides its deliveries: the request to close.
pub struct Mailbox {
    pub kicked: watch::Receiver<Option<Kick>>,
}

/// A connection attached to its session by [`Broker::connect`].
pub struct Attached {
    pub subscriber: Arc<Subscriber>,
    pub mailbox: Mailbox,
    pub attachment: u64,
    /// CONNACK's session-present flag.
    pub session_present: bool,
    /// Filters of a resumed session that the new credentials may not subscribe to
    /// (dropped from the session), with the reason.
    pub refused: Vec<(String, String)>,
}

#[derive(Clone)]
struct Entry {
    subscriber: Arc<Subscriber>,
    qos: QoS,
    /// The `iot:Receive` decision when the filter has no wildcards.
    receive: Option<bool>,
}

/// The members of one shared subscription `$share/<group>/<filter>`: each message
/// goes to one of them, in turn.
struct Shared {
    /// The whole `$share/…` filter, as the members subscribed to it.
    key: String,
    filter: String,
    members: Vec<Entry>,
    next: AtomicUsize,
}

#[derive(Default)]
struct Table {
    /// Filters without wildcards, keyed by the one topic they match.
    exact: HashMap<String, Vec<Entry>>,
    wildcard: Vec<(String, Entry)>,
    shared: Vec<Shared>,
}

/// A retained message, as the retained-message APIs report it.
#[derive(Clone, Debug)]
pub struct Retained {
    /// As it was published: topic, payload, QoS, MQTT 5 properties and expiry.
    pub message: Arc<Message>,
    /// Milliseconds since the epoch.
    pub last_modified: u64,
}

struct Record {
    subscriber: Arc<Subscriber>,
    info: ConnectionInfo,
    /// While a persistent session's client is away: when it left, why, and when
    /// the session expires.
    away: Option<(u64, DisconnectReason, tokio::time::Instant)>,
}

struct Departed {
    info: ConnectionInfo,
    at: u64,
    reason: DisconnectReason,
    /// Its key in [`Registry::departures`].
    order: (tokio::time::Instant, u64),
}

/// Sessions by client ID, and clients that left without one (for `GetConnection`),
/// one entry per client ID however often it comes and goes.
#[derive(Default)]
struct Registry {
    sessions: HashMap<String, Record>,
    departed: HashMap<String, Departed>,
    /// Departures in time order, for forgetting them after the retention.
    departures: BTreeMap<(tokio::time::Instant, u64), String>,
    next_departure: u64,
}

impl Registry {
    fn forget_departed(&mut self, client_id: &str) {
        if let Some(departed) = self.departed.remove(client_id) {
            self.departures.remove(&departed.order);
        }
    }
}

pub struct Broker {
    arns: IotArns,
    queue_len: usize,
    next_conn: AtomicU64,
    next_attachment: AtomicU64,
    table: RwLock<Table>,
    registry: Mutex<Registry>,
    retained: Mutex<BTreeMap<String, Retained>>,
}

/// Encodes a PUBLISH once. Returns the frame and, for QoS 1, the offset of its
/// packet identifier.
pub fn encode_publish(topic: &str, payload: &Bytes, qos: QoS, retain: bool) -> (Bytes, usize) {
    let mut publish = Publish::from_bytes(topic, qos, payload.clone());
    publish.retain = retain;
    publish.pkid = if qos == QoS::AtMostOnce { 0 } else { 1 };
    let mut buffer = BytesMut::with_capacity(publish.size());
    publish.write(&mut buffer).expect("a checked topic and payload encode");
    let pkid_at = buffer.len() - payload.len() - 2;
    (buffer.freeze(), pkid_at)
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

pub fn millis(time: SystemTime) -> u64 {
    time.duration_since(SystemTime::UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}

/// Why a direct message was not delivered.
#[derive(Debug, PartialEq, Eq)]
pub enum DirectError {
    NotConnected,
    Forbidden(String),
    Throttled,
}

impl Broker {
    pub fn new(arns: IotArns, queue_len: usize) -> Self {
        Self {
            arns,
            queue_len,
            next_conn: AtomicU64::new(1),
            next_attachment: AtomicU64::new(1),
            table: RwLock::default(),
            registry: Mutex::default(),
            retained: Mutex::default(),
        }
    }

    pub fn arns(&self) -> &IotArns {
        &self.arns
    }

    fn registry(&self) -> MutexGuard<'_, Registry> {
        lock(&self.registry)
    }

    /// Attaches a connection to the session of `client_id`: takes an existing
    /// connection's place (it is told to close, `DUPLICATE_CLIENTID`), resumes a
    /// persistent session of the same MQTT version unless `info.clean_session`
    /// (MQTT 5: clean start), else starts a new one, kept after the connection
    /// ends if `persistent`.
    pub fn connect(
        &self,
        client_id: &str,
        identity: Arc<Identity>,
        info: ConnectionInfo,
        how: SessionOptions,
    ) -> Attached {
        let SessionOptions {
            v5,
            persistent,
            receive_maximum,
        } = how;
        let clean_session = info.clean_session;
        let (kick, kicked) = watch::channel(None);
        let attachment = self.next_attachment.fetch_add(1, Ordering::Relaxed);
        let mut registry = self.registry();
        registry.forget_departed(client_id);
        let previous = registry.sessions.remove(client_id);
        if let Some(previous) = &previous {
            previous
                .subscriber
                .kick(Kick::because(DisconnectReason::DuplicateClientId));
        }
        let resume = previous
            .as_ref()
            .is_some_and(|p| !clean_session && p.subscriber.v5 == v5 && p.subscriber.state().persistent);
        let (subscriber, session_present, refused) = match previous {
            Some(previous) if resume => {
                let subscriber = previous.subscriber;
                *subscriber.identity.write().unwrap_or_else(|e| e.into_inner()) = identity;
                let refused = self.reauthorize(&subscriber);
                (subscriber, true, refused)
            }
            previous => {
                if let Some(previous) = previous {
                    self.discard(&previous.subscriber);
                }
                let subscriber = Arc::new(Subscriber {
                    conn_id: self.next_conn.fetch_add(1, Ordering::Relaxed),
                    client_id: client_id.to_owned(),
                    v5,
                    identity: RwLock::new(identity),
                    state: Mutex::new(State {
                        queue: VecDeque::new(),
                        link: None,
                        filters: HashMap::new(),
                        inflight: VecDeque::new(),
                        next_pkid: 0,
                        pkids_wrapped: false,
                        persistent,
                        inflight_max: MAX_INFLIGHT,
                        ended: false,
                    }),
                    queue_len: self.queue_len,
                    ready: Notify::new(),
                });
                (subscriber, false, Vec::new())
            }
        };
        {
            let mut state = subscriber.state();
            state.link = Some(Link { attachment, kick });
            state.persistent = persistent;
            state.inflight_max = receive_maximum.clamp(1, MAX_INFLIGHT);
        }
        registry.sessions.insert(
            client_id.to_owned(),
            Record {
                subscriber: subscriber.clone(),
                info,
                away: None,
            },
        );
        drop(registry);
        // Stored messages wait for this connection.
        subscriber.ready.notify_one();
        Attached {
            subscriber,
            mailbox: Mailbox { kicked },
            attachment,
            session_present,
            refused,
        }
    }

    /// Re-authorizes a resumed session's subscriptions against its new credentials:
    /// refused filters are dropped, the others' `iot:Receive` decisions recomputed.
    fn reauthorize(&self, subscriber: &Arc<Subscriber>) -> Vec<(String, String)> {
        let identity = subscriber.identity();
        let mut refused = Vec::new();
        for (filter, qos) in subscriber.filters() {
            match identity.authorize("iot:Subscribe", &self.arns.topic_filter(&filter)) {
                Ok(()) => self.subscribe(subscriber, &filter, qos),
                Err(denial) => {
                    self.unsubscribe(subscriber, &filter);
                    refused.push((filter, denial.to_string()));
                }
            }
        }
        refused
    }

    /// Ends a session for good: out of the table, nothing more queued; whoever
    /// waits for a confirmation from it is released.
    fn discard(&self, subscriber: &Arc<Subscriber>) {
        let filters: Vec<String> = {
            let mut state = subscriber.state();
            state.ended = true;
            state.queue.clear();
            state.inflight.clear();
            state.filters.keys().cloned().collect()
        };
        let mut table = self.table.write().unwrap_or_else(|e| e.into_inner());
        for filter in filters {
            table.remove(subscriber.conn_id, &filter);
        }
    }

    /// The connection `attachment` has ended. A persistent session stays (until
    /// `expiry`) unless `discard`; a clean one is gone. Returns whether the session
    /// was kept.
    pub fn disconnect(
        &self,
        subscriber: &Arc<Subscriber>,
        attachment: u64,
        reason: DisconnectReason,
        discard: bool,
        expiry: Duration,
    ) -> bool {
        let now = millis(SystemTime::now());
        let mut registry = self.registry();
        let current = {
            let mut state = subscriber.state();
            let current = state.link.as_ref().is_some_and(|l| l.attachment == attachment);
            if current {
                state.link = None;
            }
            current
        };
        let is_registered = registry
            .sessions
            .get(&subscriber.client_id)
            .is_some_and(|r| Arc::ptr_eq(&r.subscriber, subscriber));
        if !is_registered {
            // Replaced by a new session of the same client ID: this one is over.
            drop(registry);
            self.discard(subscriber);
            return false;
        }
        if !current {
            // Resumed by a newer connection, which now serves it.
            return false;
        }
        let keep = subscriber.state().persistent && !discard;
        if keep {
            if let Some(record) = registry.sessions.get_mut(&subscriber.client_id) {
                record.away = Some((now, reason, tokio::time::Instant::now() + expiry));
            }
            return true;
        }
        if let Some(record) = registry.sessions.remove(&subscriber.client_id) {
            remember_departed(&mut registry, &subscriber.client_id, record.info, now, reason);
        }
        drop(registry);
        self.discard(subscriber);
        false
    }

    /// Discards the persistent session of `client_id` if its client is still away
    /// after its expiry.
    pub fn expire(&self, client_id: &str) {
        let mut registry = self.registry();
        let expired = registry
            .sessions
            .get(client_id)
            .and_then(|r| r.away)
            .is_some_and(|(_, _, expires)| expires <= tokio::time::Instant::now());
        if !expired {
            return;
        }
        if let Some(record) = registry.sessions.remove(client_id) {
            let (at, reason, _) = record.away.expect("expired means away");
            remember_departed(&mut registry, client_id, record.info, at, reason);
            drop(registry);
            tracing::info!(client_id = %client_id, "persistent session expired");
            self.discard(&record.subscriber);
        }
    }

    /// `GetConnection`: the client's connection, its offline persistent session, or
    /// how it left (for [`DEPARTED_RETENTION`]).
    pub fn presence(&self, client_id: &str) -> Option<Presence> {
        let registry = self.registry();
        if let Some(record) = registry.sessions.get(client_id) {
            return Some(Presence {
                connected: record.away.is_none(),
                info: record.info.clone(),
                departed: record.away.map(|(at, reason, _)| (at, reason)),
            });
        }
        registry.departed.get(client_id).map(|d| Presence {
            connected: false,
            info: d.info.clone(),
            departed: Some((d.at, d.reason)),
        })
    }

    /// The session of `client_id`, connected or not.
    pub fn session(&self, client_id: &str) -> Option<Arc<Subscriber>> {
        self.registry().sessions.get(client_id).map(|r| r.subscriber.clone())
    }

    /// The session of `client_id` if a connection serves it now.
    pub fn connected(&self, client_id: &str) -> Option<Arc<Subscriber>> {
        self.session(client_id).filter(|s| s.is_connected())
    }

    /// Adds or replaces `subscriber`'s subscription to `filter` (already authorized).
    pub fn subscribe(&self, subscriber: &Arc<Subscriber>, filter: &str, qos: QoS) {
        let identity = subscriber.identity();
        let shared = split_shared(filter).ok().flatten();
        let matched = shared.map_or(filter, |(_, inner)| inner);
        let receive = (!has_wildcards(matched)).then(|| identity.is_allowed("iot:Receive", &self.arns.topic(matched)));
        let entry = Entry {
            subscriber: subscriber.clone(),
            qos,
            receive,
        };
        subscriber.state().filters.insert(filter.to_owned(), qos);
        let mut table = self.table.write().unwrap_or_else(|e| e.into_inner());
        let conn = subscriber.conn_id;
        table.remove(conn, filter);
        if shared.is_some() {
            match table.shared.iter_mut().find(|s| s.key == filter) {
                Some(group) => group.members.push(entry),
                None => table.shared.push(Shared {
                    key: filter.to_owned(),
                    filter: matched.to_owned(),
                    members: vec![entry],
                    next: AtomicUsize::new(0),
                }),
            }
        } else if has_wildcards(filter) {
            table.wildcard.push((filter.to_owned(), entry));
        } else {
            table.exact.entry(filter.to_owned()).or_default().push(entry);
        }
    }

    /// Removes a subscription; returns whether there was one.
    pub fn unsubscribe(&self, subscriber: &Subscriber, filter: &str) -> bool {
        let had = subscriber.state().filters.remove(filter).is_some();
        if had {
            self.table
                .write()
                .unwrap_or_else(|e| e.into_inner())
                .remove(subscriber.conn_id, filter);
        }
        had
    }

    /// Routes a message without MQTT 5 properties; see [`Self::route`].
    pub fn publish(&self, topic: &str, payload: Bytes, qos: QoS, retain: bool) -> usize {
        self.route(Arc::new(Message::new(topic.to_owned(), payload, qos, retain)))
    }

    /// Routes a message to every matching subscription allowed to receive it (to
    /// one member of each matching shared subscription), and stores or deletes it
    /// as the retained message of its topic when it is retained. Returns how many
    /// deliveries were queued or stored.
    pub fn route(&self, message: Arc<Message>) -> usize {
        let topic = message.topic.as_str();
        if message.retain {
            let mut retained = lock(&self.retained);
            if message.payload.is_empty() {
                retained.remove(topic);
            } else {
                retained.insert(
                    topic.to_owned(),
                    Retained {
                        message: message.clone(),
                        last_modified: millis(SystemTime::now()),
                    },
                );
            }
        }
        let mut frames = Frames::default();
        let mut delivered = 0;
        let table = self.table.read().unwrap_or_else(|e| e.into_inner());
        let exact = table.exact.get(topic).into_iter().flatten();
        let wildcard = table
            .wildcard
            .iter()
            .filter(|(filter, _)| matches(filter, topic))
            .map(|(_, e)| e);
        let mut receive_resource: Option<String> = None;
        for entry in exact.chain(wildcard) {
            if self.may_deliver(entry, topic, &mut receive_resource)
                && entry.subscriber.offer(frames.for_entry(&message, entry))
            {
                delivered += 1;
            }
        }
        for group in table.shared.iter().filter(|group| matches(&group.filter, topic)) {
            // Each message to one member, in turn; one that may not receive it or
            // cannot take it passes it to the next.
            let count = group.members.len();
            let start = group.next.fetch_add(1, Ordering::Relaxed);
            for k in 0..count {
                let entry = &group.members[start.wrapping_add(k) % count];
                if self.may_deliver(entry, topic, &mut receive_resource)
                    && entry.subscriber.offer(frames.for_entry(&message, entry))
                {
                    delivered += 1;
                    break;
                }
            }
        }
        delivered
    }

    /// Whether `entry`'s session may receive on `topic` (`iot:Receive`), logging a refusal.
    fn may_deliver(&self, entry: &Entry, topic: &str, resource: &mut Option<String>) -> bool {
        let allowed = entry.receive.unwrap_or_else(|| {
            let resource = resource.get_or_insert_with(|| self.arns.topic(topic));
            entry.subscriber.may_receive(resource)
        });
        if !allowed {
            let identity = entry.subscriber.identity();
            if let Err(denial) = identity.authorize("iot:Receive", &self.arns.topic(topic)) {
                tracing::warn!(client_id = %entry.subscriber.client_id, principal = %identity.arn, "delivery dropped: {denial}");
            }
        }
        allowed
    }

    /// `SendDirectMessage`: one PUBLISH to the connected client `client_id`, no
    /// subscription needed, if its credentials may receive on `topic`. With a
    /// confirmation, at QoS 1, and the receiver resolves when its PUBACK arrives.
    pub fn direct(
        &self,
        client_id: &str,
        mut message: Message,
        confirm: Option<Arc<Confirm>>,
    ) -> Result<(), DirectError> {
        let subscriber = self.connected(client_id).ok_or(DirectError::NotConnected)?;
        subscriber
            .identity()
            .authorize("iot:Receive", &self.arns.topic(&message.topic))
            .map_err(|denial| DirectError::Forbidden(denial.to_string()))?;
        message.qos = if confirm.is_some() {
            QoS::AtLeastOnce
        } else {
            QoS::AtMostOnce
        };
        let outgoing = if subscriber.v5 || message.expires.is_some() {
            Outgoing::Message {
                qos: message.qos,
                retain: false,
                message: Arc::new(message),
                confirm,
            }
        } else {
            outgoing(&message.topic, &message.payload, message.qos, false, confirm)
        };
        if subscriber.offer(outgoing) {
            Ok(())
        } else {
            Err(DirectError::Throttled)
        }
    }

    /// The retained message for exactly `topic`, if any, as an encoded PUBLISH with
    /// the retain flag, at most `max_qos`.
    pub fn retained_for(&self, topic: &str, max_qos: QoS, v5: bool) -> Option<Outgoing> {
        let message = self.retained(topic)?.message;
        let qos = if message.qos == QoS::AtLeastOnce && max_qos == QoS::AtLeastOnce {
            QoS::AtLeastOnce
        } else {
            QoS::AtMostOnce
        };
        if v5 || message.expires.is_some() {
            return Some(Outgoing::Message {
                message,
                qos,
                retain: true,
                confirm: None,
            });
        }
        Some(outgoing(topic, &message.payload, qos, true, None))
    }

    /// `GetRetainedMessage`.
    pub fn retained(&self, topic: &str) -> Option<Retained> {
        let mut retained = lock(&self.retained);
        // An expired retained message is gone.
        if retained
            .get(topic)
            .is_some_and(|r| r.message.expired(tokio::time::Instant::now()))
        {
            retained.remove(topic);
        }
        retained.get(topic).cloned()
    }

    /// `ListRetainedMessages`: up to `limit` retained topics after `after`, in topic order.
    pub fn retained_page(&self, after: Option<&str>, limit: usize) -> (Vec<(String, Retained)>, bool) {
        let retained = lock(&self.retained);
        let now = tokio::time::Instant::now();
        let mut page: Vec<(String, Retained)> = retained
            .iter()
            .filter(|(topic, r)| after.is_none_or(|after| topic.as_str() > after) && !r.message.expired(now))
            .take(limit.saturating_add(1))
            .map(|(t, r)| (t.clone(), r.clone()))
            .collect();
        let more = page.len() > limit;
        page.truncate(limit);
        (page, more)
    }
}

/// The encodings of one routed message, made once and shared by every receiver
/// that takes the same one.
#[derive(Default)]
struct Frames {
    qos0: Option<Bytes>,
    qos1: Option<(Bytes, usize)>,
}

impl Frames {
    /// The delivery for `entry`: the shared 3.1.1 frames, or the message itself for
    /// an MQTT 5 session or a message that expires.
    fn for_entry(&mut self, message: &Arc<Message>, entry: &Entry) -> Outgoing {
        let qos = if message.qos == QoS::AtLeastOnce && entry.qos == QoS::AtLeastOnce {
            QoS::AtLeastOnce
        } else {
            QoS::AtMostOnce
        };
        if entry.subscriber.v5 || message.expires.is_some() {
            return Outgoing::Message {
                message: message.clone(),
                qos,
                retain: false,
                confirm: None,
            };
        }
        let (topic, payload) = (&message.topic, &message.payload);
        if qos == QoS::AtLeastOnce {
            let (frame, pkid_at) = self
                .qos1
                .get_or_insert_with(|| encode_publish(topic, payload, QoS::AtLeastOnce, false))
                .clone();
            Outgoing::Qos1 {
                frame,
                pkid_at,
                confirm: None,
            }
        } else {
            Outgoing::Frame(
                self.qos0
                    .get_or_insert_with(|| encode_publish(topic, payload, QoS::AtMostOnce, false).0)
                    .clone(),
            )
        }
    }
}

fn remember_departed(
    registry: &mut Registry,
    client_id: &str,
    info: ConnectionInfo,
    at: u64,
    reason: DisconnectReason,
) {
    let now = tokio::time::Instant::now();
    registry.forget_departed(client_id);
    while let Some((&(when, seq), _)) = registry.departures.first_key_value() {
        if now.duration_since(when) < DEPARTED_RETENTION && registry.departures.len() < MAX_DEPARTED {
            break;
        }
        if let Some(old) = registry.departures.remove(&(when, seq)) {
            registry.departed.remove(&old);
        }
    }
    let order = (now, registry.next_departure);
    registry.next_departure += 1;
    registry.departures.insert(order, client_id.to_owned());
    registry.departed.insert(
        client_id.to_owned(),
        Departed {
            info,
            at,
            reason,
            order,
        },
    );
}

impl Table {
    fn remove(&mut self, conn: ConnId, filter: &str) {
        if filter.starts_with(SHARED_PREFIX) {
            if let Some(at) = self.shared.iter().position(|s| s.key == filter) {
                self.shared[at].members.retain(|e| e.subscriber.conn_id != conn);
                if self.shared[at].members.is_empty() {
                    self.shared.swap_remove(at);
                }
            }
        } else if has_wildcards(filter) {
            self.wildcard
                .retain(|(f, e)| !(f == filter && e.subscriber.conn_id == conn));
        } else if let Some(list) = self.exact.get_mut(filter) {
            list.retain(|e| e.subscriber.conn_id != conn);
            if list.is_empty() {
                self.exact.remove(filter);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use rumqttc::mqttbytes::v4::Packet;

    use super::*;

    fn empty_state(next_pkid: u16) -> State {
        State {
            queue: VecDeque::new(),
            link: None,
            filters: HashMap::new(),
            inflight: VecDeque::new(),
            next_pkid,
            pkids_wrapped: false,
            persistent: false,
            inflight_max: MAX_INFLIGHT,
            ended: false,
        }
    }

    #[test]
    fn a_client_that_comes_and_goes_is_remembered_once_however_often_it_leaves() {
        let mut registry = Registry::default();
        let info = ConnectionInfo {
            clean_session: true,
            keep_alive_secs: 30,
            connected_since: 0,
            session_expiry_secs: 0,
            source: "127.0.0.1:1".parse().unwrap(),
        };
        for n in 0..1000 {
            remember_departed(
                &mut registry,
                "churner",
                info.clone(),
                n,
                DisconnectReason::ConnectionLost,
            );
            remember_departed(
                &mut registry,
                &format!("other-{}", n % 3),
                info.clone(),
                n,
                DisconnectReason::ClientInitiated,
            );
        }
        assert_eq!(registry.departed.len(), 4);
        assert_eq!(registry.departures.len(), 4);
        assert_eq!(registry.departed["churner"].at, 999);
        registry.forget_departed("churner");
        assert_eq!((registry.departed.len(), registry.departures.len()), (3, 3));
    }

    #[test]
    fn packet_identifiers_wrap_past_65535_to_1_and_skip_those_still_in_flight() {
        let frame = Outgoing::Frame(Bytes::from_static(b"x"));
        let mut state = empty_state(0);
        assert_eq!(take_pkid(&mut state, frame.clone()), 1);
        assert_eq!(take_pkid(&mut state, frame.clone()), 2);
        state.next_pkid = 65534;
        assert_eq!(take_pkid(&mut state, frame.clone()), 65535);
        // 1 and 2 are still in flight: after the wrap the next free one is 3.
        assert_eq!(take_pkid(&mut state, frame.clone()), 3);
        assert!(state.pkids_wrapped);
        assert_eq!(
            state.inflight.iter().map(|(id, _)| *id).collect::<Vec<_>>(),
            [1, 2, 65535, 3]
        );
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
}
