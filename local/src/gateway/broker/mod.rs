//! Message routing between the gateway's connections, behind one facade,
//! [`Broker`]: sessions keyed by client ID (a new connection takes the ID over),
//! the subscription table, persistent sessions that outlive their connection,
//! retained messages and fan-out. One concept per file:
//!
//! * [`session`] — one MQTT session: subscriptions, queue, in-flight window.
//! * [`subscriptions`] — the subscription table, shared subscriptions included.
//! * [`retained`] — retained messages by topic.
//! * [`presence`] — sessions by client ID, departed clients, disconnect reasons.
//!
//! Fan-out takes one read lock per *publish*, never per delivery, and never copies
//! a payload per receiver (see `gateway::message` for the shared encodings).
//! `iot:Receive` is checked on every delivery as in IoT Core; for a subscription
//! without wildcards the topic is fixed, so the decision is made once at SUBSCRIBE
//! (and again when a persistent session resumes with new credentials).
//!
//! Not here: MQTT packets and the network (`gateway::connection`), authorization
//! of what a client asks for (the connection checks it before calling in).

pub mod presence;
pub mod retained;
pub mod session;
pub mod subscriptions;

use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, RwLock, RwLockWriteGuard};
use std::time::{Duration, SystemTime};

use bytes::Bytes;
use rumqttc::mqttbytes::QoS;
use serverless_websockets_core::arn::IotArns;
use serverless_websockets_core::topic::{has_wildcards, split_shared};

pub use presence::{ConnectionInfo, DEPARTED_RETENTION, DisconnectReason, Presence, millis};
pub use retained::Retained;
pub use session::{ConnId, Kick, Kicker, MAX_INFLIGHT, Mailbox, QueueBounds, Session, SessionOptions};

use super::message::{Confirm, Encodings, Message, Outgoing, outgoing};
use crate::identity::Identity;
use presence::{Record, Registry};
use retained::RetainedStore;
use subscriptions::{Entry, Table};

pub struct Broker {
    arns: IotArns,
    bounds: Arc<QueueBounds>,
    next_conn: AtomicU64,
    next_attachment: AtomicU64,
    table: RwLock<Table>,
    registry: Mutex<Registry>,
    retained: RetainedStore,
    pending: Arc<PendingCounts>,
}

/// What waits for a client that is away: see [`Broker::pending`].
#[derive(Debug, Default)]
struct PendingCounts {
    timers: AtomicUsize,
    wills: AtomicUsize,
}

/// How many away timers and delayed wills are waiting, gateway-wide.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Pending {
    pub timers: usize,
    pub wills: usize,
}

/// Counts one away timer or delayed will for as long as it is held: dropping it
/// (the will published, the task ended or stopped) uncounts it.
pub struct Counted {
    counts: Arc<PendingCounts>,
    will: bool,
}

impl Drop for Counted {
    fn drop(&mut self) {
        let counter = if self.will {
            &self.counts.wills
        } else {
            &self.counts.timers
        };
        counter.fetch_sub(1, Ordering::Relaxed);
    }
}

/// A connection attached to its session by [`Broker::connect`].
pub struct Attached {
    pub session: Arc<Session>,
    pub mailbox: Mailbox,
    pub attachment: u64,
    /// CONNACK's session-present flag.
    pub session_present: bool,
    /// Filters of a resumed session that the new credentials may not subscribe to
    /// (dropped from the session), with the reason.
    pub refused: Vec<(String, String)>,
}

/// What became of a session when its connection ended: see [`Broker::disconnect`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Left {
    /// Kept for its client, who is away.
    Kept,
    /// A newer connection serves it now (the client is back).
    TakenUp,
    /// Gone, or replaced by a new session of the same client ID.
    Ended,
}

/// Why a direct message was not delivered.
#[derive(Debug, PartialEq, Eq)]
pub enum DirectError {
    NotConnected,
    Forbidden(String),
    Throttled,
}

impl Broker {
    pub fn new(arns: IotArns, bounds: QueueBounds) -> Self {
        Self {
            arns,
            bounds: Arc::new(bounds),
            next_conn: AtomicU64::new(1),
            next_attachment: AtomicU64::new(1),
            table: RwLock::default(),
            registry: Mutex::default(),
            retained: RetainedStore::default(),
            pending: Arc::default(),
        }
    }

    /// Counts an away timer (`will: false`) or a delayed will while the result lives.
    pub fn count(&self, will: bool) -> Counted {
        let counter = if will {
            &self.pending.wills
        } else {
            &self.pending.timers
        };
        counter.fetch_add(1, Ordering::Relaxed);
        Counted {
            counts: self.pending.clone(),
            will,
        }
    }

    /// The queues' bounds, and what away clients' sessions store now.
    pub fn bounds(&self) -> &QueueBounds {
        &self.bounds
    }

    /// How many away timers and delayed wills wait now: at most one of each per
    /// persistent session whose client is away.
    pub fn pending(&self) -> Pending {
        Pending {
            timers: self.pending.timers.load(Ordering::Relaxed),
            wills: self.pending.wills.load(Ordering::Relaxed),
        }
    }

    pub fn arns(&self) -> &IotArns {
        &self.arns
    }

    fn registry(&self) -> MutexGuard<'_, Registry> {
        self.registry.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn table(&self) -> RwLockWriteGuard<'_, Table> {
        self.table.write().unwrap_or_else(|e| e.into_inner())
    }

    /// Attaches a connection to the session of `client_id`: takes an existing
    /// connection's place (it is told to close, `DUPLICATE_CLIENTID`), resumes a
    /// persistent session of the same MQTT version unless `info.clean_session`
    /// (MQTT 5: clean start), else starts a new one, kept after the connection
    /// ends if `how.persistent`.
    pub fn connect(
        &self,
        client_id: &str,
        identity: Arc<Identity>,
        info: ConnectionInfo,
        how: SessionOptions,
    ) -> Attached {
        let kicked = Arc::new(Kicker::default());
        let attachment = self.next_attachment.fetch_add(1, Ordering::Relaxed);
        let mut registry = self.registry();
        registry.forget_departed(client_id);
        let previous = registry.sessions.remove(client_id).map(|mut record| {
            // Taken up or replaced: its delayed will is not published, and its
            // expiry is re-armed when this connection ends (MQTT 5 §3.1.3.2.2).
            record.stop_timer();
            record.session
        });
        if let Some(previous) = &previous {
            previous.kick(Kick::because(DisconnectReason::DuplicateClientId));
        }
        let (session, session_present, refused) = match previous {
            Some(previous) if !info.clean_session && previous.resumable_by(how.v5) => {
                previous.set_identity(identity.clone());
                let refused = self.reauthorize(&previous);
                let dropped = previous.recheck(|topic| identity.is_allowed("iot:Receive", &self.arns.topic(topic)));
                if dropped > 0 {
                    tracing::warn!(client_id = %client_id.escape_debug(), dropped, "stored messages the new credentials may not receive were dropped");
                }
                (previous, true, refused)
            }
            previous => {
                if let Some(previous) = previous {
                    self.discard(&previous);
                }
                let conn_id = self.next_conn.fetch_add(1, Ordering::Relaxed);
                let session = Session::new(conn_id, client_id, how.v5, identity, self.bounds.clone());
                (Arc::new(session), false, Vec::new())
            }
        };
        session.attach(attachment, kicked.clone(), how);
        let record = Record {
            session: session.clone(),
            info,
            away: None,
            timer: None,
        };
        registry.sessions.insert(client_id.to_owned(), record);
        Attached {
            session,
            mailbox: Mailbox { kicked },
            attachment,
            session_present,
            refused,
        }
    }

    /// Re-authorizes a resumed session's subscriptions against its new credentials:
    /// refused filters are dropped, the others' `iot:Receive` decisions recomputed.
    fn reauthorize(&self, session: &Arc<Session>) -> Vec<(String, String)> {
        let identity = session.identity();
        let mut refused = Vec::new();
        for (filter, qos) in session.filters() {
            match identity.authorize("iot:Subscribe", &self.arns.topic_filter(&filter)) {
                Ok(()) => self.subscribe(session, &filter, qos),
                Err(denial) => {
                    self.unsubscribe(session, &filter);
                    refused.push((filter, denial.to_string()));
                }
            }
        }
        refused
    }

    /// Ends a session for good: out of the table, nothing more queued; whoever
    /// waits for a confirmation from it is released.
    fn discard(&self, session: &Arc<Session>) {
        let filters = session.end();
        let mut table = self.table();
        for filter in filters {
            table.remove(session.conn_id, &filter);
        }
    }

    /// The connection `attachment` has ended. A persistent session stays (until
    /// `expiry`) unless `discard`, and `away` starts its one timer (expiry, delayed
    /// will), kept with the session and stopped when a connection takes it up; a
    /// clean one is gone. Returns what became of the session.
    pub fn disconnect(
        &self,
        session: &Arc<Session>,
        attachment: u64,
        reason: DisconnectReason,
        discard: bool,
        expiry: Duration,
        away: impl FnOnce() -> tokio::task::AbortHandle,
    ) -> Left {
        let now = millis(SystemTime::now());
        let mut registry = self.registry();
        let current = session.detach(attachment);
        let is_registered = registry
            .sessions
            .get(&session.client_id)
            .is_some_and(|r| Arc::ptr_eq(&r.session, session));
        if !is_registered {
            // Replaced by a new session of the same client ID: this one is over.
            drop(registry);
            self.discard(session);
            return Left::Ended;
        }
        if !current {
            // Resumed by a newer connection, which now serves it.
            return Left::TakenUp;
        }
        if session.is_persistent() && !discard {
            if let Some(record) = registry.sessions.get_mut(&session.client_id) {
                record.away = Some((now, reason, tokio::time::Instant::now() + expiry));
                record.stop_timer();
                record.timer = Some(away());
            }
            return Left::Kept;
        }
        if let Some(record) = registry.sessions.remove(&session.client_id) {
            registry.remember_departed(&session.client_id, record.info, now, reason);
        }
        drop(registry);
        self.discard(session);
        Left::Ended
    }

    /// Discards the persistent session of `client_id` if its client is still away
    /// after its expiry.
    pub fn expire(&self, client_id: &str) {
        let mut registry = self.registry();
        let Some((at, reason, expires)) = registry.sessions.get(client_id).and_then(|r| r.away) else {
            return;
        };
        if expires > tokio::time::Instant::now() {
            return;
        }
        if let Some(record) = registry.sessions.remove(client_id) {
            registry.remember_departed(client_id, record.info, at, reason);
            drop(registry);
            tracing::info!(client_id = %client_id, "persistent session expired");
            self.discard(&record.session);
        }
    }

    /// `GetConnection`: the client's connection, its offline persistent session, or
    /// how it left (for [`DEPARTED_RETENTION`]).
    pub fn presence(&self, client_id: &str) -> Option<Presence> {
        self.registry().presence(client_id)
    }

    /// The session of `client_id`, connected or not.
    pub fn session(&self, client_id: &str) -> Option<Arc<Session>> {
        self.registry().sessions.get(client_id).map(|r| r.session.clone())
    }

    /// The session of `client_id` if a connection serves it now.
    pub fn connected(&self, client_id: &str) -> Option<Arc<Session>> {
        self.session(client_id).filter(|s| s.is_connected())
    }

    /// Adds or replaces `session`'s subscription to `filter` (already authorized).
    pub fn subscribe(&self, session: &Arc<Session>, filter: &str, qos: QoS) {
        let shared = split_shared(filter).ok().flatten().map(|(_, inner)| inner);
        let matched = shared.unwrap_or(filter);
        let receive =
            (!has_wildcards(matched)).then(|| session.identity().is_allowed("iot:Receive", &self.arns.topic(matched)));
        let entry = Entry {
            session: session.clone(),
            qos,
            receive,
        };
        session.add_filter(filter, qos);
        self.table().insert(filter, shared, entry);
    }

    /// Removes a subscription; returns whether there was one.
    pub fn unsubscribe(&self, session: &Session, filter: &str) -> bool {
        let had = session.remove_filter(filter);
        if had {
            self.table().remove(session.conn_id, filter);
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
            self.retained.keep(&message);
        }
        let mut encodings = Encodings::default();
        let mut receive_resource: Option<String> = None;
        let mut offer = |entry: &Entry| {
            self.may_deliver(entry, topic, &mut receive_resource)
                && entry
                    .session
                    .offer(encodings.for_receiver(&message, entry.qos, entry.session.v5))
        };
        let table = self.table.read().unwrap_or_else(|e| e.into_inner());
        let mut delivered = table.matching(topic).filter(|entry| offer(entry)).count();
        for group in table.groups(topic) {
            // Each message to one member, in turn; one that may not receive it or
            // cannot take it passes it to the next.
            if group.in_turn().any(&mut offer) {
                delivered += 1;
            }
        }
        delivered
    }

    /// Whether `entry`'s session may receive on `topic` (`iot:Receive`), logging a refusal.
    fn may_deliver(&self, entry: &Entry, topic: &str, resource: &mut Option<String>) -> bool {
        let allowed = entry.receive.unwrap_or_else(|| {
            let resource = resource.get_or_insert_with(|| self.arns.topic(topic));
            entry.session.may_receive(resource)
        });
        if !allowed {
            let identity = entry.session.identity();
            if let Err(denial) = identity.authorize("iot:Receive", &self.arns.topic(topic)) {
                tracing::warn!(client_id = %entry.session.client_id, principal = %identity.arn, "delivery dropped: {denial}");
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
        let session = self.connected(client_id).ok_or(DirectError::NotConnected)?;
        session
            .identity()
            .authorize("iot:Receive", &self.arns.topic(&message.topic))
            .map_err(|denial| DirectError::Forbidden(denial.to_string()))?;
        message.qos = if confirm.is_some() {
            QoS::AtLeastOnce
        } else {
            QoS::AtMostOnce
        };
        let outgoing = if session.v5 || message.expires.is_some() {
            Outgoing::Message {
                qos: message.qos,
                retain: false,
                cost: message.cost(),
                message: Arc::new(message),
                confirm,
            }
        } else {
            outgoing(&message.topic, &message.payload, message.qos, false, confirm)
        };
        if session.offer(outgoing) {
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
                cost: message.cost(),
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
        self.retained.get(topic)
    }

    /// `ListRetainedMessages`: up to `limit` retained topics after `after`, in topic order.
    pub fn retained_page(&self, after: Option<&str>, limit: usize) -> (Vec<(String, Retained)>, bool) {
        self.retained.page(after, limit)
    }
}
