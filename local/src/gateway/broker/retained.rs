//! Retained messages, one per topic, as IoT keeps them
//! (<https://docs.aws.amazon.com/iot/latest/developerguide/mqtt.html#mqtt-retain>):
//! a retained publish replaces the topic's message, an empty one deletes it, an
//! expired one is gone. Kept in topic order, for `ListRetainedMessages`' pages.
//!
//! Not here: which subscriptions get a retained message on SUBSCRIBE (IoT sends
//! it only to a filter equal to the topic; the connection asks for it by topic).

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::SystemTime;

use super::presence::millis;
use crate::gateway::message::Message;

/// A retained message, as the retained-message APIs report it.
#[derive(Clone, Debug)]
pub struct Retained {
    /// As it was published: topic, payload, QoS, MQTT 5 properties and expiry.
    pub message: Arc<Message>,
    /// Milliseconds since the epoch.
    pub last_modified: u64,
}

/// The retained messages by topic.
#[derive(Default)]
pub(super) struct RetainedStore(Mutex<BTreeMap<String, Retained>>);

impl RetainedStore {
    fn map(&self) -> MutexGuard<'_, BTreeMap<String, Retained>> {
        self.0.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Keeps a retained `message` as its topic's, or deletes the topic's when the
    /// payload is empty.
    pub(super) fn keep(&self, message: &Arc<Message>) {
        let mut map = self.map();
        if message.payload.is_empty() {
            map.remove(&message.topic);
        } else {
            map.insert(
                message.topic.clone(),
                Retained {
                    message: message.clone(),
                    last_modified: millis(SystemTime::now()),
                },
            );
        }
    }

    /// The retained message of exactly `topic`, unless it has expired (then it is gone).
    pub(super) fn get(&self, topic: &str) -> Option<Retained> {
        let mut map = self.map();
        if map
            .get(topic)
            .is_some_and(|r| r.message.expired(tokio::time::Instant::now()))
        {
            map.remove(topic);
        }
        map.get(topic).cloned()
    }

    /// Up to `limit` unexpired retained topics after `after`, in topic order, and
    /// whether there are more.
    pub(super) fn page(&self, after: Option<&str>, limit: usize) -> (Vec<(String, Retained)>, bool) {
        let map = self.map();
        let now = tokio::time::Instant::now();
        let mut page: Vec<(String, Retained)> = map
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
