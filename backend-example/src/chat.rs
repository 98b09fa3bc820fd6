//! The chat function: rooms from the caller's token, messages stamped by the
//! server, arrivals and departures announced. Two rules feed it
//! (`backend-example/chat-rules.json`):
//!
//! * a client's message, `SELECT kind, text, topic(3) AS sender, topic(4) AS
//!   client, topic(5) AS room, clientid() AS connection, timestamp() AS at FROM
//!   'chat/from/+/+/+'`. The client may publish only to
//!   `chat/from/{sub}/{clientId}/{claims.rooms}` (its session policy): the
//!   topic names the user, the client and a room of the user's token, and IoT
//!   has checked all three before the rule runs.
//! * connection events, `SELECT eventType, clientId, timestamp FROM
//!   '$aws/events/presence/+/+'`.
//!
//! What it does:
//!
//! * `{"kind": "join"}` adds the room to the client's **presence record**, the
//!   retained message `chat/presence/<clientId>` = `{"sub", "rooms", "online"}`,
//!   and announces `joined` in the room. (The record is read, changed and
//!   written back: a client joins its rooms one after another, waiting for each
//!   announcement. `serverless-websockets ban --presence-prefix chat/presence/`
//!   reads the same records to close a banned user's connections.)
//! * `{"kind": "say", "text"}` is checked — the client joined the room as this
//!   user, the text is 1 to [`MAX_TEXT_CHARS`] characters with no control
//!   characters — then published to `chat/rooms/<room>` as
//!   `{"type": "message", "from": <sub>, "text", "at": <ms>}`: the sender and
//!   the time are the server's, never the client's.
//! * a `disconnected` event announces `left` in each room of the client's
//!   record; a `connected` event of a client with a record announces `joined`
//!   again (a reconnect).
//!
//! A refusal is logged and dropped (returning an error would make IoT's rule
//! retry nothing useful and fill the error action).

use serde::{Deserialize, Serialize};
use serde_json::json;

/// The longest message, in characters.
pub const MAX_TEXT_CHARS: usize = 500;

/// What the function needs from IoT's data plane, behind a trait for tests.
#[async_trait::async_trait]
pub trait Plane: Send + Sync {
    async fn publish(&self, topic: &str, payload: Vec<u8>, retain: bool) -> Result<(), lambda_runtime::Error>;
    /// The retained message on `topic`, if any.
    async fn retained(&self, topic: &str) -> Result<Option<Vec<u8>>, lambda_runtime::Error>;
}

#[async_trait::async_trait]
impl Plane for crate::IotData {
    async fn publish(&self, topic: &str, payload: Vec<u8>, retain: bool) -> Result<(), lambda_runtime::Error> {
        self.0
            .publish()
            .topic(topic)
            .qos(1)
            .retain(retain)
            .payload(aws_sdk_iotdataplane::primitives::Blob::new(payload))
            .send()
            .await?;
        Ok(())
    }

    async fn retained(&self, topic: &str) -> Result<Option<Vec<u8>>, lambda_runtime::Error> {
        use aws_sdk_iotdataplane::error::SdkError;
        match self.0.get_retained_message().topic(topic).send().await {
            Ok(found) => Ok(found.payload().map(|p| p.as_ref().to_vec())),
            Err(SdkError::ServiceError(e)) if e.err().is_resource_not_found_exception() => Ok(None),
            Err(e) => Err(e.into()),
        }
    }
}

/// What the rules send: a client's message or a connection event.
#[derive(Debug, Deserialize)]
#[serde(untagged)]
pub enum Event {
    Presence(Presence),
    Message(Message),
}

/// A lifecycle event, as the presence rule selects it.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Presence {
    pub event_type: String,
    pub client_id: String,
    #[serde(default)]
    pub timestamp: u64,
}

/// A client's message, as the message rule selects it.
#[derive(Debug, Deserialize)]
pub struct Message {
    #[serde(default)]
    pub kind: String,
    #[serde(default)]
    pub text: Option<serde_json::Value>,
    /// `topic(3)`: the user (`sub`).
    pub sender: String,
    /// `topic(4)`: the client the topic names.
    pub client: String,
    /// `topic(5)`: the room.
    pub room: String,
    /// `clientid()`: the client that published.
    pub connection: String,
    #[serde(default)]
    pub at: u64,
}

/// A client's presence record (`chat/presence/<clientId>`, retained).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct Record {
    pub sub: String,
    pub rooms: Vec<String>,
    pub online: bool,
}

/// Why a message was dropped.
#[derive(Debug, PartialEq, Eq)]
pub enum Refusal {
    /// A topic level the rule took is not one level (a misconfigured rule).
    BadTopic(&'static str),
    /// The publishing connection is not the client the topic names.
    NotTheSender,
    /// The client has not joined this room as this user.
    NotAMember,
    /// Empty, too long, or with control characters.
    BadText,
    UnknownKind,
}

pub fn presence_topic(client: &str) -> String {
    format!("chat/presence/{client}")
}

pub fn room_topic(room: &str) -> String {
    format!("chat/rooms/{room}")
}

fn one_level(value: &str) -> bool {
    !value.is_empty() && !value.contains(['/', '+', '#'])
}

/// Handles one event; a refused message is logged and dropped.
pub async fn handle(plane: &dyn Plane, event: Event) -> Result<(), lambda_runtime::Error> {
    match event {
        Event::Presence(presence) => on_presence(plane, presence).await,
        Event::Message(message) => match on_message(plane, &message).await? {
            Ok(()) => Ok(()),
            Err(refusal) => {
                tracing::warn!(sender = %message.sender, client = %message.client, room = %message.room, ?refusal, "message dropped");
                Ok(())
            }
        },
    }
}

async fn record(plane: &dyn Plane, client: &str) -> Result<Option<Record>, lambda_runtime::Error> {
    Ok(plane
        .retained(&presence_topic(client))
        .await?
        .and_then(|bytes| serde_json::from_slice(&bytes).ok()))
}

async fn save(plane: &dyn Plane, client: &str, record: &Record) -> Result<(), lambda_runtime::Error> {
    plane
        .publish(&presence_topic(client), serde_json::to_vec(record)?, true)
        .await
}

async fn announce(plane: &dyn Plane, room: &str, kind: &str, from: &str, at: u64) -> Result<(), lambda_runtime::Error> {
    let body = json!({"type": kind, "from": from, "at": at});
    plane
        .publish(&room_topic(room), serde_json::to_vec(&body)?, false)
        .await
}

async fn on_message(plane: &dyn Plane, message: &Message) -> Result<Result<(), Refusal>, lambda_runtime::Error> {
    for (name, value) in [
        ("sender", &message.sender),
        ("client", &message.client),
        ("room", &message.room),
    ] {
        if !one_level(value) {
            return Ok(Err(Refusal::BadTopic(name)));
        }
    }
    if message.connection != message.client {
        return Ok(Err(Refusal::NotTheSender));
    }
    let existing = record(plane, &message.client).await?;
    if existing.as_ref().is_some_and(|r| r.sub != message.sender) {
        return Ok(Err(Refusal::NotTheSender));
    }
    match message.kind.as_str() {
        "join" => {
            let mut record = existing.unwrap_or_else(|| Record {
                sub: message.sender.clone(),
                rooms: Vec::new(),
                online: true,
            });
            if !record.rooms.contains(&message.room) {
                record.rooms.push(message.room.clone());
            }
            record.online = true;
            save(plane, &message.client, &record).await?;
            announce(plane, &message.room, "joined", &message.sender, message.at).await?;
            Ok(Ok(()))
        }
        "say" => {
            if !existing.is_some_and(|r| r.rooms.contains(&message.room)) {
                return Ok(Err(Refusal::NotAMember));
            }
            let Some(text) = message.text.as_ref().and_then(|t| t.as_str()).filter(|t| good_text(t)) else {
                return Ok(Err(Refusal::BadText));
            };
            let body = json!({"type": "message", "from": message.sender, "text": text, "at": message.at});
            plane
                .publish(&room_topic(&message.room), serde_json::to_vec(&body)?, false)
                .await?;
            tracing::info!(sender = %message.sender, room = %message.room, "message published");
            Ok(Ok(()))
        }
        _ => Ok(Err(Refusal::UnknownKind)),
    }
}

fn good_text(text: &str) -> bool {
    let chars = text.chars().count();
    (1..=MAX_TEXT_CHARS).contains(&chars) && !text.trim().is_empty() && !text.chars().any(char::is_control)
}

async fn on_presence(plane: &dyn Plane, presence: Presence) -> Result<(), lambda_runtime::Error> {
    let online = match presence.event_type.as_str() {
        "connected" => true,
        "disconnected" => false,
        _ => return Ok(()),
    };
    if !one_level(&presence.client_id) {
        return Ok(());
    }
    let Some(mut record) = record(plane, &presence.client_id).await? else {
        return Ok(());
    };
    if record.online == online {
        return Ok(());
    }
    record.online = online;
    save(plane, &presence.client_id, &record).await?;
    let kind = if online { "joined" } else { "left" };
    for room in &record.rooms {
        announce(plane, room, kind, &record.sub, presence.timestamp).await?;
    }
    tracing::info!(client = %presence.client_id, sub = %record.sub, kind, "presence announced");
    Ok(())
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;
    use std::sync::Mutex;

    use super::*;

    /// IoT's data plane in memory: retained messages, and every publish.
    #[derive(Default)]
    struct Memory {
        retained: Mutex<HashMap<String, Vec<u8>>>,
        published: Mutex<Vec<(String, serde_json::Value)>>,
    }

    #[async_trait::async_trait]
    impl Plane for Memory {
        async fn publish(&self, topic: &str, payload: Vec<u8>, retain: bool) -> Result<(), lambda_runtime::Error> {
            if retain {
                self.retained.lock().unwrap().insert(topic.to_owned(), payload.clone());
            }
            let value = serde_json::from_slice(&payload)?;
            self.published.lock().unwrap().push((topic.to_owned(), value));
            Ok(())
        }

        async fn retained(&self, topic: &str) -> Result<Option<Vec<u8>>, lambda_runtime::Error> {
            Ok(self.retained.lock().unwrap().get(topic).cloned())
        }
    }

    impl Memory {
        fn room(&self, room: &str) -> Vec<serde_json::Value> {
            let topic = room_topic(room);
            self.published
                .lock()
                .unwrap()
                .iter()
                .filter(|(t, _)| *t == topic)
                .map(|(_, v)| v.clone())
                .collect()
        }
    }

    fn event(value: serde_json::Value) -> Event {
        serde_json::from_value(value).unwrap()
    }

    fn message(kind: &str, sender: &str, client: &str, room: &str, text: &str) -> Event {
        event(
            json!({"kind": kind, "text": text, "sender": sender, "client": client, "room": room, "connection": client, "at": 7}),
        )
    }

    #[tokio::test]
    async fn a_member_s_message_is_stamped_with_the_sender_and_time_the_server_knows() {
        let plane = Memory::default();
        handle(&plane, message("join", "alice", "c1", "42", "")).await.unwrap();
        let said = event(
            json!({"kind": "say", "text": "hi", "from": "mallory", "sender": "alice", "client": "c1", "room": "42", "connection": "c1", "at": 9}),
        );
        handle(&plane, said).await.unwrap();
        assert_eq!(
            plane.room("42"),
            [
                json!({"type": "joined", "from": "alice", "at": 7}),
                json!({"type": "message", "from": "alice", "text": "hi", "at": 9}),
            ]
        );
    }

    #[tokio::test]
    async fn messages_from_outside_the_room_or_of_bad_length_are_dropped() {
        let plane = Memory::default();
        handle(&plane, message("join", "alice", "c1", "42", "")).await.unwrap();
        let too_long = "x".repeat(MAX_TEXT_CHARS + 1);
        for dropped in [
            message("say", "alice", "c1", "7", "not joined there"),
            message("say", "alice", "c1", "42", ""),
            message("say", "alice", "c1", "42", &too_long),
            message("say", "alice", "c1", "42", "bell\u{7}"),
            message("say", "bob", "c1", "42", "another user's client"),
            message("say", "alice", "c2", "42", "a client that never joined"),
            message("dance", "alice", "c1", "42", ""),
        ] {
            handle(&plane, dropped).await.unwrap();
        }
        let spoofed = event(
            json!({"kind": "say", "text": "x", "sender": "alice", "client": "c1", "room": "42", "connection": "c9"}),
        );
        handle(&plane, spoofed).await.unwrap();
        assert_eq!(plane.room("42").len(), 1, "only the join: {:?}", plane.room("42"));
        assert!(plane.room("7").is_empty());
        let longest = "é".repeat(MAX_TEXT_CHARS);
        handle(&plane, message("say", "alice", "c1", "42", &longest))
            .await
            .unwrap();
        assert_eq!(plane.room("42").len(), 2, "500 characters, not bytes");
    }

    #[tokio::test]
    async fn departures_and_returns_are_announced_in_every_room_of_the_client() {
        let plane = Memory::default();
        handle(&plane, message("join", "alice", "c1", "42", "")).await.unwrap();
        handle(&plane, message("join", "alice", "c1", "7", "")).await.unwrap();
        let presence = |kind: &str| event(json!({"eventType": kind, "clientId": "c1", "timestamp": 11}));
        handle(&plane, presence("disconnected")).await.unwrap();
        handle(&plane, presence("disconnected")).await.unwrap();
        handle(&plane, presence("connected")).await.unwrap();
        for room in ["42", "7"] {
            let kinds: Vec<_> = plane.room(room).iter().map(|v| v["type"].clone()).collect();
            assert_eq!(kinds, [json!("joined"), json!("left"), json!("joined")], "{room}");
        }
        let record: Record =
            serde_json::from_slice(&plane.retained(&presence_topic("c1")).await.unwrap().unwrap()).unwrap();
        assert_eq!(
            record,
            Record {
                sub: "alice".into(),
                rooms: vec!["42".into(), "7".into()],
                online: true
            }
        );
        // A client with no record (it never joined) is nobody's business.
        let unknown = event(json!({"eventType": "disconnected", "clientId": "c2"}));
        handle(&plane, unknown).await.unwrap();
    }
}
