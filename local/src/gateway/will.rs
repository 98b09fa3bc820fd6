//! A Last Will's publication after its connection ended, and the one timer of a
//! persistent session whose client is away.
//!
//! A will is published at once, or — MQTT 5's Will Delay Interval — when the
//! delay or the session ends, whichever is first (MQTT 5 §3.1.3.2.2). A delayed
//! will waits in its session's away timer ([`away`]), the only task a departed
//! client leaves behind: it publishes the will when due, then expires the
//! session. The broker stops it when a connection takes the session up, so a
//! will is never published for a client that came back, and reconnecting in a
//! loop leaves at most one timer and one will per session. Wills go through the
//! gateway like any publish, so topic rules see them too.
//!
//! Not here: when a will is due (the connection decides: not on the client's own
//! DISCONNECT, nor after `DeleteConnection preventWillMessage=true`).

use std::sync::Arc;
use std::time::Duration;

use super::packet::Will;
use super::state::{Gateway, Origin};

/// Publishes `will` of `client_id` (whose IAM user ID is `principal`) now.
pub fn publish(gateway: &Gateway, client_id: &str, principal: &str, will: Will) {
    let message = Arc::new(will.message);
    let origin = Origin {
        client_id: Some(client_id),
        principal: Some(principal),
        depth: 0,
    };
    let routed = gateway.publish(message.clone(), origin);
    tracing::info!(client_id = %client_id.escape_debug(), topic = %message.topic.escape_debug(), delivered = routed.delivered, "published the Last Will");
}

/// Starts the away timer of the persistent session of `client_id`, kept for
/// `expiry`: publishes `will`, if any, after its delay (at most `expiry`), then
/// expires the session. The broker keeps the returned handle with the session.
pub fn away(
    gateway: &Arc<Gateway>,
    client_id: &str,
    principal: &str,
    will: Option<Will>,
    expiry: Duration,
) -> tokio::task::AbortHandle {
    let timer = gateway.broker.count(false);
    let will = will.map(|will| {
        let delay = will.delay.min(expiry);
        (will, delay, gateway.broker.count(true))
    });
    let gateway = gateway.clone();
    let (client_id, principal) = (client_id.to_owned(), principal.to_owned());
    let task = tokio::spawn(async move {
        let _timer = timer;
        let mut waited = Duration::ZERO;
        if let Some((will, delay, counted)) = will {
            tokio::time::sleep(delay).await;
            waited = delay;
            publish(&gateway, &client_id, &principal, will);
            drop(counted);
        }
        tokio::time::sleep(expiry.saturating_sub(waited)).await;
        gateway.broker.expire(&client_id);
    });
    task.abort_handle()
}
