//! The subscription table: which sessions want which topics. Filters without
//! wildcards are keyed by the one topic they match, so a publish finds them with
//! one hash lookup; wildcard filters are matched in turn; each shared subscription
//! `$share/<group>/<filter>` is a group whose members take its messages in turn.
//!
//! An [`Entry`] carries the `iot:Receive` decision when its filter has no
//! wildcards (the topic is fixed, so it is decided once at SUBSCRIBE); for
//! wildcard filters the broker decides per delivery.
//!
//! Not here: authorization of the SUBSCRIBE itself (the connection does it), the
//! session's own list of its filters ([`super::session`]).

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use rumqttc::mqttbytes::QoS;
use serverless_websockets_core::topic::{SHARED_PREFIX, has_wildcards, matches};

use super::session::{ConnId, Session};

/// One session's subscription to one filter.
#[derive(Clone)]
pub(super) struct Entry {
    pub(super) session: Arc<Session>,
    pub(super) qos: QoS,
    /// The `iot:Receive` decision when the filter has no wildcards.
    pub(super) receive: Option<bool>,
}

/// The members of one shared subscription `$share/<group>/<filter>`: each message
/// goes to one of them, in turn.
pub(super) struct Shared {
    /// The whole `$share/…` filter, as the members subscribed to it.
    key: String,
    filter: String,
    members: Vec<Entry>,
    next: AtomicUsize,
}

impl Shared {
    /// The members in the order this message tries them: each message starts one
    /// further along than the last.
    pub(super) fn in_turn(&self) -> impl Iterator<Item = &Entry> {
        let count = self.members.len();
        let start = self.next.fetch_add(1, Ordering::Relaxed);
        (0..count).map(move |k| &self.members[start.wrapping_add(k) % count.max(1)])
    }
}

#[derive(Default)]
pub(super) struct Table {
    /// Filters without wildcards, keyed by the one topic they match.
    exact: HashMap<String, Vec<Entry>>,
    wildcard: Vec<(String, Entry)>,
    shared: Vec<Shared>,
}

impl Table {
    /// Adds `entry` under `filter`, replacing the session's earlier subscription to
    /// it. `shared_filter` is the filter inside `$share/<group>/…`, for a shared one.
    pub(super) fn insert(&mut self, filter: &str, shared_filter: Option<&str>, entry: Entry) {
        self.remove(entry.session.conn_id, filter);
        if let Some(inner) = shared_filter {
            match self.shared.iter_mut().find(|s| s.key == filter) {
                Some(group) => group.members.push(entry),
                None => self.shared.push(Shared {
                    key: filter.to_owned(),
                    filter: inner.to_owned(),
                    members: vec![entry],
                    next: AtomicUsize::new(0),
                }),
            }
        } else if has_wildcards(filter) {
            self.wildcard.push((filter.to_owned(), entry));
        } else {
            self.exact.entry(filter.to_owned()).or_default().push(entry);
        }
    }

    /// Removes the session `conn`'s subscription to `filter`, if any.
    pub(super) fn remove(&mut self, conn: ConnId, filter: &str) {
        if filter.starts_with(SHARED_PREFIX) {
            if let Some(at) = self.shared.iter().position(|s| s.key == filter) {
                self.shared[at].members.retain(|e| e.session.conn_id != conn);
                if self.shared[at].members.is_empty() {
                    self.shared.swap_remove(at);
                }
            }
        } else if has_wildcards(filter) {
            self.wildcard
                .retain(|(f, e)| !(f == filter && e.session.conn_id == conn));
        } else if let Some(list) = self.exact.get_mut(filter) {
            list.retain(|e| e.session.conn_id != conn);
            if list.is_empty() {
                self.exact.remove(filter);
            }
        }
    }

    /// The plain subscriptions (not shared) that match `topic`.
    pub(super) fn matching<'a>(&'a self, topic: &'a str) -> impl Iterator<Item = &'a Entry> {
        let exact = self.exact.get(topic).into_iter().flatten();
        let wildcard = self
            .wildcard
            .iter()
            .filter(move |(filter, _)| matches(filter, topic))
            .map(|(_, e)| e);
        exact.chain(wildcard)
    }

    /// The shared subscriptions whose filter matches `topic`.
    pub(super) fn groups<'a>(&'a self, topic: &'a str) -> impl Iterator<Item = &'a Shared> {
        self.shared.iter().filter(move |group| matches(&group.filter, topic))
    }
}
