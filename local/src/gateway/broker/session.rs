//! One MQTT session, as the broker keeps it: its subscriptions, its queue of
//! deliveries, its QoS 1 messages in flight, and the connection serving it now.
//!
//! "Session" here always means the MQTT session (MQTT 3.1.1 §3.1.2.4, MQTT 5
//! §4.1): not an STS role session (the credentials, `crate::identity`), nor IoT's
//! `sessionIdentifier` in lifecycle events (one per connection).
//!
//! A clean session lives as long as its connection; a persistent one
//! (`cleanSession = 0`, or MQTT 5's Session Expiry Interval) stays while its client
//! is away, stores the QoS 1 messages that match it (bounded; QoS 0 is not
//! stored), and is taken up by the next connection with its client ID, which first
//! re-sends what was in flight (with DUP) and then the stored messages, in order.
//! A queue is bounded by count and by bytes ([`QueueBounds`]; a message counts at
//! what it costs in memory, user properties included), and what away clients'
//! sessions store is bounded gateway-wide too. A connected session whose queue is
//! full is disconnected (`THROTTLED`) instead of growing memory without bound; an
//! away one stores no more. At most [`MAX_INFLIGHT`] QoS 1 deliveries await a
//! PUBACK at once (IoT's limit, or less if the client's Receive Maximum asks).
//!
//! Not here: which sessions a message goes to ([`super::subscriptions`]), who is
//! connected by client ID ([`super::presence`]).

use std::collections::{HashMap, VecDeque};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, RwLock};

use rumqttc::mqttbytes::QoS;
pub use serverless_websockets_core::quota::MAX_INFLIGHT;
use tokio::sync::Notify;

use super::presence::DisconnectReason;
use crate::gateway::message::{Delivery, Outgoing};
use crate::identity::Identity;

/// A session's key in the subscription table; stable across the reconnects of a
/// persistent session.
pub type ConnId = u64;

/// A drained queue keeps at most this much capacity.
const KEPT_CAPACITY: usize = 16;

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(|e| e.into_inner())
}

/// How much a session's queue may hold, and the budget that the sessions of
/// away clients share.
#[derive(Debug)]
pub struct QueueBounds {
    /// Deliveries queued per session.
    pub len: usize,
    /// Bytes queued per session (see `Outgoing::cost`).
    pub bytes: usize,
    /// Bytes stored for away clients, all sessions together.
    pub stored_max: usize,
    stored: AtomicUsize,
}

impl QueueBounds {
    pub fn new(len: usize, bytes: usize, stored_max: usize) -> Self {
        Self {
            len,
            bytes,
            stored_max,
            stored: AtomicUsize::new(0),
        }
    }

    /// Bytes stored for away clients now, all sessions together.
    pub fn stored(&self) -> usize {
        self.stored.load(Ordering::Relaxed)
    }

    /// Takes `cost` from the shared budget; false when it would be over.
    fn reserve(&self, cost: usize) -> bool {
        self.stored
            .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |stored| {
                stored.checked_add(cost).filter(|&total| total <= self.stored_max)
            })
            .is_ok()
    }

    fn release(&self, cost: usize) {
        if cost > 0 {
            let _ = self
                .stored
                .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |stored| {
                    Some(stored.saturating_sub(cost))
                });
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

/// How a connection wants its session: see `Broker::connect`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
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
    pub kicked: Arc<Kicker>,
}

/// One connection's request to close: made once (the first request wins), by
/// whoever asks — a takeover, a full queue, `DeleteConnection` — and awaited by
/// the connection. Smaller than a `watch` channel, which an idle connection
/// would hold for its whole life.
#[derive(Default)]
pub struct Kicker {
    kick: Mutex<Option<Kick>>,
    wake: Notify,
}

impl Kicker {
    /// Asks the connection to close, unless it was asked already.
    pub fn kick(&self, kick: Kick) {
        let mut current = lock(&self.kick);
        if current.is_none() {
            *current = Some(kick);
            drop(current);
            self.wake.notify_waiters();
        }
    }

    /// The request to close, once made.
    pub fn get(&self) -> Option<Kick> {
        *lock(&self.kick)
    }

    /// Waits for the request to close.
    pub async fn kicked(&self) -> Kick {
        loop {
            let notified = self.wake.notified();
            tokio::pin!(notified);
            // Registered before the check, so a request made in between wakes it.
            notified.as_mut().enable();
            if let Some(kick) = self.get() {
                return kick;
            }
            notified.await;
        }
    }
}

struct Link {
    attachment: u64,
    kick: Arc<Kicker>,
}

struct State {
    queue: VecDeque<Outgoing>,
    /// What the queue costs in memory (see `Outgoing::cost`).
    queued_bytes: usize,
    /// The part of it stored while the client was away, taken from the shared
    /// budget until a connection takes the session up.
    stored_bytes: usize,
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

impl State {
    fn new() -> Self {
        Self {
            queue: VecDeque::new(),
            queued_bytes: 0,
            stored_bytes: 0,
            link: None,
            filters: HashMap::new(),
            inflight: VecDeque::new(),
            next_pkid: 0,
            pkids_wrapped: false,
            persistent: false,
            inflight_max: MAX_INFLIGHT,
            ended: false,
        }
    }
}

/// One MQTT session, as seen by the router.
pub struct Session {
    pub conn_id: ConnId,
    pub client_id: String,
    /// The session was made by an MQTT 5 connection (and only such resumes it).
    pub v5: bool,
    identity: RwLock<Arc<Identity>>,
    state: Mutex<State>,
    bounds: Arc<QueueBounds>,
    ready: Notify,
}

impl Session {
    /// A new session for `client_id`, not yet attached to a connection.
    pub(super) fn new(
        conn_id: ConnId,
        client_id: &str,
        v5: bool,
        identity: Arc<Identity>,
        bounds: Arc<QueueBounds>,
    ) -> Self {
        Self {
            conn_id,
            client_id: client_id.to_owned(),
            v5,
            identity: RwLock::new(identity),
            state: Mutex::new(State::new()),
            bounds,
            ready: Notify::new(),
        }
    }

    fn state(&self) -> MutexGuard<'_, State> {
        lock(&self.state)
    }

    /// Whether a connection of this MQTT version may take the session up.
    pub(super) fn resumable_by(&self, v5: bool) -> bool {
        self.v5 == v5 && self.state().persistent
    }

    /// The credentials of the connection serving the session: taking it up, or
    /// renewed by a custom authorizer.
    pub fn set_identity(&self, identity: Arc<Identity>) {
        *self.identity.write().unwrap_or_else(|e| e.into_inner()) = identity;
    }

    /// The connection `attachment` serves the session from now on; stored
    /// messages wait for it.
    pub(super) fn attach(&self, attachment: u64, kick: Arc<Kicker>, how: SessionOptions) {
        {
            let mut state = self.state();
            state.link = Some(Link { attachment, kick });
            // Stored while the client was away: now the connection's to deliver.
            self.bounds.release(std::mem::take(&mut state.stored_bytes));
            state.persistent = how.persistent;
            state.inflight_max = how.receive_maximum.clamp(1, MAX_INFLIGHT);
        }
        self.ready.notify_one();
    }

    /// The connection `attachment` has ended; returns whether it was the one
    /// serving the session (a newer one may have taken it up since).
    pub(super) fn detach(&self, attachment: u64) -> bool {
        let mut state = self.state();
        let current = state.link.as_ref().is_some_and(|l| l.attachment == attachment);
        if current {
            state.link = None;
        }
        current
    }

    pub(super) fn is_persistent(&self) -> bool {
        self.state().persistent
    }

    /// Ends the session for good: it takes no more deliveries, and whoever waits
    /// for a confirmation from it is released. Returns its filters.
    pub(super) fn end(&self) -> Vec<String> {
        let mut state = self.state();
        state.ended = true;
        state.queue.clear();
        state.queued_bytes = 0;
        self.bounds.release(std::mem::take(&mut state.stored_bytes));
        state.inflight.clear();
        state.filters.keys().cloned().collect()
    }

    /// Records the session's subscription to `filter` (the table is the broker's).
    pub(super) fn add_filter(&self, filter: &str, qos: QoS) {
        self.state().filters.insert(filter.to_owned(), qos);
    }

    /// Forgets the session's subscription to `filter`; returns whether it had one.
    pub(super) fn remove_filter(&self, filter: &str) -> bool {
        self.state().filters.remove(filter).is_some()
    }

    /// The credentials of the connection serving (or that last served) the session.
    pub fn identity(&self) -> Arc<Identity> {
        self.identity.read().unwrap_or_else(|e| e.into_inner()).clone()
    }

    /// `iot:Receive` on `resource` for the session's credentials, read in place
    /// (no `Arc` clone: this runs per delivery on wildcard subscriptions).
    pub(super) fn may_receive(&self, resource: &str) -> bool {
        self.identity
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .is_allowed("iot:Receive", resource)
    }

    /// Asks the attached connection, if any, to close (the first request wins).
    pub fn kick(&self, kick: Kick) {
        if let Some(link) = &self.state().link {
            link.kick.kick(kick);
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
    /// away client's persistent session stores QoS 1 messages within its bounds
    /// and the shared budget, and drops the rest, as IoT does not store QoS 0.
    pub(super) fn offer(&self, outgoing: Outgoing) -> bool {
        let cost = outgoing.cost();
        let mut state = self.state();
        if state.ended {
            return false;
        }
        let full = state.queue.len() >= self.bounds.len || state.queued_bytes.saturating_add(cost) > self.bounds.bytes;
        if state.link.is_none() {
            if !outgoing.is_qos1() {
                return false;
            }
            if full {
                tracing::warn!(client_id = %self.client_id.escape_debug(), queued = state.queue.len(), queued_bytes = state.queued_bytes, "persistent session's queue is full; message not stored");
                return false;
            }
            if !self.bounds.reserve(cost) {
                tracing::warn!(client_id = %self.client_id.escape_debug(), stored_bytes = self.bounds.stored(), "the budget for away clients' stored messages is spent; message not stored");
                return false;
            }
            state.stored_bytes += cost;
            state.queued_bytes += cost;
            state.queue.push_back(outgoing);
            return true;
        }
        if full {
            drop(state);
            tracing::warn!(client_id = %self.client_id.escape_debug(), "subscriber cannot keep up; disconnecting it");
            self.kick(Kick::because(DisconnectReason::Throttled));
            return false;
        }
        state.queued_bytes += cost;
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
            pop(&mut state);
        }
        let qos1 = state.queue.front()?.is_qos1();
        if qos1 && state.inflight.len() >= state.inflight_max {
            return None;
        }
        let next = pop(&mut state)?;
        if state.queue.is_empty() && state.queue.capacity() > KEPT_CAPACITY {
            state.queue.shrink_to(KEPT_CAPACITY);
        }
        let pkid = qos1.then(|| take_pkid(&mut state, next.clone()));
        Some((next, pkid))
    }

    /// A PUBACK: the delivery is no longer in flight; whoever waits for it is told.
    pub fn acknowledge(&self, pkid: u16) {
        self.settle(pkid, Delivery::Acknowledged);
    }

    /// A delivery that was never written (see [`Delivery`]): no longer in flight,
    /// and whoever waits for it is told why.
    pub fn drop_in_flight(&self, pkid: u16, why: Delivery) {
        self.settle(pkid, why);
    }

    fn settle(&self, pkid: u16, delivery: Delivery) {
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
            confirm.fire(delivery);
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

    /// Drops the queued and in-flight deliveries on topics `allowed` refuses (the
    /// credentials that take a session up may receive less than those that
    /// filled it); returns how many were dropped. A waiting confirmation is
    /// released as for an ended session.
    pub(super) fn recheck(&self, allowed: impl Fn(&str) -> bool) -> usize {
        let mut state = self.state();
        let keep = |outgoing: &Outgoing| outgoing.topic().is_some_and(&allowed);
        let before = state.queue.len() + state.inflight.len();
        let mut freed = 0;
        state.queue.retain(|outgoing| {
            let kept = keep(outgoing);
            if !kept {
                freed += outgoing.cost();
            }
            kept
        });
        state.queued_bytes = state.queued_bytes.saturating_sub(freed);
        state.inflight.retain(|(_, outgoing)| keep(outgoing));
        before - state.queue.len() - state.inflight.len()
    }

    /// What the connection that takes the session up re-sends first, with DUP.
    pub fn in_flight(&self) -> Vec<(u16, Outgoing)> {
        self.state().inflight.iter().cloned().collect()
    }
}

/// The queue's first delivery, out of the queue and its byte count.
fn pop(state: &mut State) -> Option<Outgoing> {
    let next = state.queue.pop_front()?;
    state.queued_bytes = state.queued_bytes.saturating_sub(next.cost());
    Some(next)
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

#[cfg(test)]
mod tests {
    use bytes::Bytes;

    use super::*;

    fn empty_state(next_pkid: u16) -> State {
        State {
            next_pkid,
            ..State::new()
        }
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
}
