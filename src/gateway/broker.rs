//! Message routing between the gateway's connections: the subscription table, the
//! client-ID registry (a new connection takes the ID over), retained messages and
//! fan-out.
//!
//! Fan-out takes one read lock per *publish*, never per delivery, and never copies a
//! payload per subscriber: a QoS 0 message is encoded once (with `rumqttc`'s
//! `mqttbytes`) and the same `Bytes` goes to every recipient; a QoS 1 message is
//! encoded once with a placeholder packet identifier that each connection fills in
//! on its own copy of the few header bytes. Each connection has a bounded queue; a
//! subscriber whose queue is full is disconnected (`THROTTLED`) instead of growing
//! memory without bound. The queue is a `VecDeque` behind a mutex with a `Notify`,
//! not a channel: it allocates nothing until the first delivery and gives its
//! memory back once drained after a burst, which keeps idle connections small.
//!
//! `iot:Receive` is checked on every delivery as in IoT Core; for a subscription
//! without wildcards the topic is fixed, so the decision is made once at SUBSCRIBE.

use std::collections::{HashMap, VecDeque};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, RwLock};

use bytes::{Bytes, BytesMut};
use rumqttc::mqttbytes::QoS;
use rumqttc::mqttbytes::v4::Publish;
use tokio::sync::{Notify, watch};

use crate::identity::Identity;
use serverless_websockets_core::arn::IotArns;
use serverless_websockets_core::topic::{has_wildcards, matches};

pub type ConnId = u64;

/// What a connection is asked to write, besides its own acknowledgements.
#[derive(Debug, Clone)]
pub enum Outgoing {
    /// A complete encoded packet, shared by every recipient.
    Frame(Bytes),
    /// An encoded QoS 1 PUBLISH whose 2-byte packet identifier at `pkid_at` the
    /// connection replaces with its own.
    Qos1 { frame: Bytes, pkid_at: usize },
}

/// Why the gateway ended a connection: AWS's lifecycle `disconnectReason` values.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DisconnectReason {
    ClientInitiated,
    ConnectionLost,
    DuplicateClientId,
    ForbiddenAccess,
    KeepAliveTimeout,
    ClientError,
    ServerInitiated,
    Throttled,
}

impl DisconnectReason {
    pub fn as_aws(self) -> &'static str {
        match self {
            Self::ClientInitiated => "CLIENT_INITIATED_DISCONNECT",
            Self::ConnectionLost => "CONNECTION_LOST",
            Self::DuplicateClientId => "DUPLICATE_CLIENTID",
            Self::ForbiddenAccess => "FORBIDDEN_ACCESS",
            Self::KeepAliveTimeout => "MQTT_KEEP_ALIVE_TIMEOUT",
            Self::ClientError => "CLIENT_ERROR",
            Self::ServerInitiated => "SERVER_INITIATED_DISCONNECT",
            Self::Throttled => "THROTTLED",
        }
    }
}

/// One connected client, as seen by the router.
pub struct Subscriber {
    pub conn_id: ConnId,
    pub client_id: String,
    pub identity: Arc<Identity>,
    queue: Mutex<VecDeque<Outgoing>>,
    queue_len: usize,
    ready: Notify,
    kick: watch::Sender<Option<DisconnectReason>>,
}

/// A drained queue keeps at most this much capacity.
const KEPT_CAPACITY: usize = 16;

impl Subscriber {
    /// Asks the connection to close for `reason` (the first reason wins).
    pub fn kick(&self, reason: DisconnectReason) {
        self.kick.send_if_modified(|current| {
            if current.is_none() {
                *current = Some(reason);
                true
            } else {
                false
            }
        });
    }

    fn offer(&self, outgoing: Outgoing) {
        let mut queue = self.queue.lock().unwrap_or_else(|e| e.into_inner());
        if queue.len() >= self.queue_len {
            drop(queue);
            tracing::warn!(client_id = %self.client_id, "subscriber cannot keep up; disconnecting it");
            self.kick(DisconnectReason::Throttled);
            return;
        }
        queue.push_back(outgoing);
        drop(queue);
        self.ready.notify_one();
    }

    /// The next delivery, waiting for one.
    pub async fn next_delivery(&self) -> Outgoing {
        loop {
            if let Some(next) = self.try_next_delivery() {
                return next;
            }
            // `notify_one` leaves a permit when nobody waits, so an offer made
            // between the pop and this wait is not missed.
            self.ready.notified().await;
        }
    }

    /// The next delivery if one is queued.
    pub fn try_next_delivery(&self) -> Option<Outgoing> {
        let mut queue = self.queue.lock().unwrap_or_else(|e| e.into_inner());
        let next = queue.pop_front();
        if queue.is_empty() && queue.capacity() > KEPT_CAPACITY {
            queue.shrink_to(KEPT_CAPACITY);
        }
        next
    }
}

/// What a connection watches besides its deliveries: the request to close.
pub struct Mailbox {
    pub kicked: watch::Receiver<Option<DisconnectReason>>,
}

#[derive(Clone)]
struct Entry {
    subscriber: Arc<Subscriber>,
    qos: QoS,
    /// The `iot:Receive` decision when the filter has no wildcards.
    receive: Option<bool>,
}

#[derive(Default)]
struct Table {
    /// Filters without wildcards, keyed by the one topic they match.
    exact: HashMap<String, Vec<Entry>>,
    wildcard: Vec<(String, Entry)>,
}

#[derive(Clone)]
struct Retained {
    payload: Bytes,
    qos: QoS,
}

pub struct Broker {
    arns: IotArns,
    queue_len: usize,
    next_conn: AtomicU64,
    table: RwLock<Table>,
    sessions: Mutex<HashMap<String, Arc<Subscriber>>>,
    retained: Mutex<HashMap<String, Retained>>,
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

impl Broker {
    pub fn new(arns: IotArns, queue_len: usize) -> Self {
        Self {
            arns,
            queue_len,
            next_conn: AtomicU64::new(1),
            table: RwLock::default(),
            sessions: Mutex::default(),
            retained: Mutex::default(),
        }
    }

    pub fn arns(&self) -> &IotArns {
        &self.arns
    }

    /// Registers a connection under `client_id`; an older connection with the same
    /// ID is told to close (`DUPLICATE_CLIENTID`).
    pub fn register(&self, client_id: &str, identity: Arc<Identity>) -> (Arc<Subscriber>, Mailbox) {
        let (kick, kicked) = watch::channel(None);
        let subscriber = Arc::new(Subscriber {
            conn_id: self.next_conn.fetch_add(1, Ordering::Relaxed),
            client_id: client_id.to_owned(),
            identity,
            queue: Mutex::new(VecDeque::new()),
            queue_len: self.queue_len,
            ready: Notify::new(),
            kick,
        });
        let previous = self
            .sessions
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(client_id.to_owned(), subscriber.clone());
        if let Some(previous) = previous {
            previous.kick(DisconnectReason::DuplicateClientId);
        }
        (subscriber, Mailbox { kicked })
    }

    /// Forgets a connection and its subscriptions.
    pub fn unregister(&self, subscriber: &Subscriber, filters: impl IntoIterator<Item = String>) {
        for filter in filters {
            self.unsubscribe(subscriber.conn_id, &filter);
        }
        let mut sessions = self.sessions.lock().unwrap_or_else(|e| e.into_inner());
        if sessions
            .get(&subscriber.client_id)
            .is_some_and(|s| s.conn_id == subscriber.conn_id)
        {
            sessions.remove(&subscriber.client_id);
        }
    }

    /// Adds or replaces `subscriber`'s subscription to `filter` (already authorized).
    pub fn subscribe(&self, subscriber: &Arc<Subscriber>, filter: &str, qos: QoS) {
        let receive =
            (!has_wildcards(filter)).then(|| subscriber.identity.is_allowed("iot:Receive", &self.arns.topic(filter)));
        let entry = Entry {
            subscriber: subscriber.clone(),
            qos,
            receive,
        };
        let mut table = self.table.write().unwrap_or_else(|e| e.into_inner());
        let conn = subscriber.conn_id;
        if has_wildcards(filter) {
            table
                .wildcard
                .retain(|(f, e)| !(f == filter && e.subscriber.conn_id == conn));
            table.wildcard.push((filter.to_owned(), entry));
        } else {
            let list = table.exact.entry(filter.to_owned()).or_default();
            list.retain(|e| e.subscriber.conn_id != conn);
            list.push(entry);
        }
    }

    pub fn unsubscribe(&self, conn: ConnId, filter: &str) {
        let mut table = self.table.write().unwrap_or_else(|e| e.into_inner());
        if has_wildcards(filter) {
            table
                .wildcard
                .retain(|(f, e)| !(f == filter && e.subscriber.conn_id == conn));
        } else if let Some(list) = table.exact.get_mut(filter) {
            list.retain(|e| e.subscriber.conn_id != conn);
            if list.is_empty() {
                table.exact.remove(filter);
            }
        }
    }

    /// Routes a message to every matching subscription allowed to receive it, and
    /// stores or deletes it as the retained message of `topic` when `retain`.
    /// Returns how many deliveries were queued.
    pub fn publish(&self, topic: &str, payload: Bytes, qos: QoS, retain: bool) -> usize {
        if retain {
            let mut retained = self.retained.lock().unwrap_or_else(|e| e.into_inner());
            if payload.is_empty() {
                retained.remove(topic);
            } else {
                retained.insert(
                    topic.to_owned(),
                    Retained {
                        payload: payload.clone(),
                        qos,
                    },
                );
            }
        }
        let mut qos0: Option<Bytes> = None;
        let mut qos1: Option<(Bytes, usize)> = None;
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
            let allowed = entry.receive.unwrap_or_else(|| {
                let resource = receive_resource.get_or_insert_with(|| self.arns.topic(topic));
                entry.subscriber.identity.is_allowed("iot:Receive", resource)
            });
            if !allowed {
                continue;
            }
            let outgoing = if qos == QoS::AtLeastOnce && entry.qos == QoS::AtLeastOnce {
                let (frame, pkid_at) = qos1
                    .get_or_insert_with(|| encode_publish(topic, &payload, QoS::AtLeastOnce, false))
                    .clone();
                Outgoing::Qos1 { frame, pkid_at }
            } else {
                Outgoing::Frame(
                    qos0.get_or_insert_with(|| encode_publish(topic, &payload, QoS::AtMostOnce, false).0)
                        .clone(),
                )
            };
            entry.subscriber.offer(outgoing);
            delivered += 1;
        }
        delivered
    }

    /// The retained message for exactly `topic`, if any, as an encoded PUBLISH with
    /// the retain flag, at most `max_qos`.
    pub fn retained_for(&self, topic: &str, max_qos: QoS) -> Option<Outgoing> {
        let retained = self
            .retained
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get(topic)
            .cloned()?;
        let qos = if retained.qos == QoS::AtLeastOnce && max_qos == QoS::AtLeastOnce {
            QoS::AtLeastOnce
        } else {
            QoS::AtMostOnce
        };
        let (frame, pkid_at) = encode_publish(topic, &retained.payload, qos, true);
        Some(if qos == QoS::AtLeastOnce {
            Outgoing::Qos1 { frame, pkid_at }
        } else {
            Outgoing::Frame(frame)
        })
    }
}

#[cfg(test)]
mod tests {
    use rumqttc::mqttbytes::v4::Packet;

    use super::*;

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
