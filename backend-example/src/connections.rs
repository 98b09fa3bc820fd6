//! The connections function: IoT's `connected` and `disconnected` lifecycle
//! events (<https://docs.aws.amazon.com/iot/latest/developerguide/life-cycle-events.html>),
//! as a rule on `$aws/events/presence/+/+` hands them over. It logs each one;
//! a presence feature would store them (keyed by client ID, ordered by
//! `versionNumber`, since events may arrive out of order or twice).

use serde::Deserialize;

/// A lifecycle event, the fields a presence feature needs.
#[derive(Debug, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct Lifecycle {
    pub client_id: String,
    pub event_type: String,
    #[serde(default)]
    pub disconnect_reason: Option<String>,
    #[serde(default)]
    pub version_number: Option<u64>,
}

/// What a presence store would record: `(client ID, online?)`.
pub fn handle(event: &Lifecycle) -> (String, bool) {
    let online = event.event_type == "connected";
    tracing::info!(
        client_id = %event.client_id,
        event = %event.event_type,
        reason = event.disconnect_reason.as_deref().unwrap_or("-"),
        version = event.version_number.unwrap_or(0),
        "connection event"
    );
    (event.client_id.clone(), online)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn connected_is_online_and_anything_else_is_not() {
        let event: Lifecycle = serde_json::from_str(
            r#"{"clientId":"c1","eventType":"disconnected","disconnectReason":"CLIENT_INITIATED_DISCONNECT","versionNumber":2,"timestamp":1}"#,
        )
        .unwrap();
        assert_eq!(handle(&event), ("c1".to_owned(), false));
        let event: Lifecycle = serde_json::from_str(r#"{"clientId":"c1","eventType":"connected"}"#).unwrap();
        assert_eq!(handle(&event), ("c1".to_owned(), true));
    }
}
