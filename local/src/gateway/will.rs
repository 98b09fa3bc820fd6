//! A Last Will's publication after its connection ended: at once, or — MQTT 5's
//! Will Delay Interval — when the delay or the session ends, whichever is first,
//! unless the client is back by then (MQTT 5 §3.1.3.2.2). Wills go through the
//! gateway like any publish, so topic rules see them too.
//!
//! Not here: when a will is due (the connection decides: not on the client's own
//! DISCONNECT, nor after `DeleteConnection preventWillMessage=true`).

use std::sync::Arc;
use std::time::Duration;

use super::packet::Will;
use super::state::{Gateway, Origin};

/// Publishes `will` of `client_id` (whose IAM user ID is `principal`) now, or
/// after its delay capped by `session_left`.
pub fn publish(gateway: &Arc<Gateway>, client_id: &str, principal: &str, will: Will, session_left: Duration) {
    let delay = will.delay.min(session_left);
    if delay.is_zero() {
        let message = Arc::new(will.message);
        let origin = Origin {
            client_id: Some(client_id),
            principal: Some(principal),
            depth: 0,
        };
        let delivered = gateway.publish(message.clone(), origin);
        tracing::info!(client_id = %client_id, topic = %message.topic, delivered, "published the Last Will");
        return;
    }
    let gateway = gateway.clone();
    let (client_id, principal) = (client_id.to_owned(), principal.to_owned());
    tokio::spawn(async move {
        tokio::time::sleep(delay).await;
        if gateway.broker.connected(&client_id).is_some() {
            tracing::info!(client_id = %client_id, "the client reconnected within its will delay; the will is not published");
            return;
        }
        let message = Arc::new(will.message);
        let origin = Origin {
            client_id: Some(&client_id),
            principal: Some(&principal),
            depth: 0,
        };
        let delivered = gateway.publish(message.clone(), origin);
        tracing::info!(client_id = %client_id, topic = %message.topic, delivered, delay_s = delay.as_secs(), "published the Last Will after its delay");
    });
}
