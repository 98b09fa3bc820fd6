//! Lifecycle events the broker publishes when a client connects, disconnects,
//! subscribes or unsubscribes
//! (<https://docs.aws.amazon.com/iot/latest/developerguide/life-cycle-events.html>),
//! on `$aws/events/presence/{connected,disconnected,connect_failed}/<clientId>` and
//! `$aws/events/subscriptions/{subscribed,unsubscribed}/<clientId>`. Client IDs
//! containing `#` or `+` get none (IoT's rule).

use std::time::SystemTime;

use serde_json::{Value, json};

use super::broker::DisconnectReason;

use super::broker::millis;

/// Whether IoT publishes lifecycle events for this client ID.
pub fn has_events(client_id: &str) -> bool {
    !client_id.contains(['#', '+'])
}

pub fn topic(event: &str, client_id: &str) -> String {
    format!("$aws/events/presence/{event}/{client_id}")
}

pub fn subscription_topic(event: &str, client_id: &str) -> String {
    format!("$aws/events/subscriptions/{event}/{client_id}")
}

/// A `subscribed` or `unsubscribed` event for the filters of one request.
pub fn subscriptions(
    event: &str,
    client_id: &str,
    session: &str,
    principal: &str,
    topics: &[String],
    now: SystemTime,
) -> Value {
    json!({
        "clientId": client_id,
        "timestamp": millis(now),
        "eventType": event,
        "sessionIdentifier": session,
        "principalIdentifier": principal,
        "topics": topics,
    })
}

pub fn connected(client_id: &str, session: &str, principal: &str, ip: &str, version: u64, now: SystemTime) -> Value {
    json!({
        "clientId": client_id,
        "timestamp": millis(now),
        "eventType": "connected",
        "sessionIdentifier": session,
        "principalIdentifier": principal,
        "ipAddress": ip,
        "versionNumber": version,
    })
}

/// A CONNECT the policy refused (the client ID, or the will): `connect_failed`
/// with reason `AUTHORIZATION_FAILED`.
pub fn connect_failed(client_id: &str, session: &str, principal: &str, ip: &str, now: SystemTime) -> Value {
    json!({
        "clientId": client_id,
        "timestamp": millis(now),
        "eventType": "connect_failed",
        "connectFailureReason": "AUTHORIZATION_FAILED",
        "principalIdentifier": principal,
        "sessionIdentifier": session,
        "ipAddress": ip,
    })
}

pub fn disconnected(
    client_id: &str,
    session: &str,
    principal: &str,
    reason: DisconnectReason,
    version: u64,
    now: SystemTime,
) -> Value {
    json!({
        "clientId": client_id,
        "timestamp": millis(now),
        "eventType": "disconnected",
        "clientInitiatedDisconnect": reason == DisconnectReason::ClientInitiated,
        "sessionIdentifier": session,
        "principalIdentifier": principal,
        "disconnectReason": reason.as_aws(),
        "versionNumber": version,
    })
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    #[test]
    fn events_carry_the_fields_aws_documents() {
        let t = SystemTime::UNIX_EPOCH + Duration::from_millis(1_700_000_000_123);
        let c = connected("c1", "s1", "AROA:c1", "127.0.0.1", 3, t);
        assert_eq!(c["timestamp"], 1_700_000_000_123u64);
        assert_eq!(c["eventType"], "connected");
        assert_eq!(c["ipAddress"], "127.0.0.1");
        let d = disconnected("c1", "s1", "AROA:c1", DisconnectReason::DuplicateClientId, 4, t);
        assert_eq!(d["disconnectReason"], "DUPLICATE_CLIENTID");
        assert_eq!(d["clientInitiatedDisconnect"], false);
        assert!(d.get("ipAddress").is_none());
        assert_eq!(topic("connected", "c1"), "$aws/events/presence/connected/c1");
        let s = subscriptions("subscribed", "c1", "s1", "AROA:c1", &["a/b".into()], t);
        assert_eq!(s["eventType"], "subscribed");
        assert_eq!(s["topics"], json!(["a/b"]));
        assert_eq!(
            subscription_topic("unsubscribed", "c1"),
            "$aws/events/subscriptions/unsubscribed/c1"
        );
        assert!(has_events("c1") && !has_events("a#") && !has_events("a+b"));
    }
}
