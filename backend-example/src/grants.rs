//! A grants function (`GRANTS_FUNCTION`, `docs/authorization.md`): the vending
//! API asks it, at every vend, which rooms the caller is in, and the grant
//! templates (`chat/rooms/{claims.rooms}`) turn its answer into topics.
//!
//! Membership lives in your database; here it is a [`Membership`] trait with
//! one implementation read from `ROOM_MEMBERS` (`{"alice": ["42", "7"]}`), so
//! that the example runs anywhere. Replace it with your query (DynamoDB, SQL…):
//! the handler does not change.
//!
//! The answer is claim values, `{"claims": {"rooms": [...]}}`, which replace
//! the token's `rooms`; the vending API checks each value as it checks a
//! token's, and the caller's narrowing still applies.

use std::collections::HashMap;

use serde::{Deserialize, Serialize};
use serde_json::json;

/// Who is in which room.
pub trait Membership: Send + Sync {
    fn rooms(&self, sub: &str) -> Vec<String>;
}

/// Membership from a JSON object of `sub` → rooms.
#[derive(Debug, Default, Deserialize)]
pub struct Table(HashMap<String, Vec<String>>);

impl Table {
    /// `ROOM_MEMBERS`, or nobody in any room when it is unset.
    pub fn from_env() -> Result<Self, serde_json::Error> {
        match std::env::var("ROOM_MEMBERS") {
            Ok(text) => serde_json::from_str(&text),
            Err(_) => Ok(Self::default()),
        }
    }
}

impl Membership for Table {
    fn rooms(&self, sub: &str) -> Vec<String> {
        self.0.get(sub).cloned().unwrap_or_default()
    }
}

/// What the vending API sends (the fields this function reads).
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Request {
    pub sub: Option<String>,
    #[serde(default)]
    pub client_id: String,
}

/// The answer: values for the templates' claims.
#[derive(Debug, Serialize, PartialEq, Eq)]
pub struct Answer {
    pub claims: serde_json::Value,
}

pub fn handle(members: &dyn Membership, request: &Request) -> Answer {
    let rooms = request.sub.as_deref().map(|sub| members.rooms(sub)).unwrap_or_default();
    tracing::info!(sub = request.sub.as_deref().unwrap_or("-"), client_id = %request.client_id, rooms = rooms.len(), "rooms granted");
    Answer {
        claims: json!({ "rooms": rooms }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_member_gets_their_rooms_and_a_stranger_none() {
        let table: Table = serde_json::from_value(json!({"alice": ["42", "7"]})).unwrap();
        let ask = |sub: Option<&str>| Request {
            sub: sub.map(str::to_owned),
            client_id: "c1".into(),
        };
        assert_eq!(
            handle(&table, &ask(Some("alice"))).claims,
            json!({"rooms": ["42", "7"]})
        );
        assert_eq!(handle(&table, &ask(Some("mallory"))).claims, json!({"rooms": []}));
        assert_eq!(handle(&table, &ask(None)).claims, json!({"rooms": []}));
    }
}
