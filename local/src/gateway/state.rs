//! What every connection and data-plane request shares: the broker, the
//! signature check, the gateway's options, the lifecycle-event version counter and
//! the shutdown signal.
//!
//! Not here: the HTTP routes (the gateway's `mod.rs`), one connection's protocol
//! state (`connection`).

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use axum::body::Bytes;
use rumqttc::mqttbytes::QoS;
use serverless_websockets_core::arn::IotArns;
use tokio::sync::watch;

use super::auth::SignatureCheck;
use super::broker::Broker;
use super::lifecycle;
use super::options::GatewayOptions;
use crate::identity::IdentityStore;

/// State shared by every connection.
pub struct Gateway {
    pub(crate) auth: SignatureCheck,
    pub broker: Broker,
    pub(crate) options: GatewayOptions,
    versions: AtomicU64,
    pub(crate) shutdown: watch::Receiver<bool>,
}

impl Gateway {
    pub fn new(
        store: Arc<IdentityStore>,
        arns: IotArns,
        options: GatewayOptions,
        shutdown: watch::Receiver<bool>,
    ) -> Self {
        let auth = SignatureCheck::new(store, arns.region());
        let broker = Broker::new(arns, options.queue_len);
        Self {
            auth,
            broker,
            options,
            versions: AtomicU64::new(1),
            shutdown,
        }
    }

    pub(crate) fn next_version(&self) -> u64 {
        self.versions.fetch_add(1, Ordering::Relaxed)
    }

    /// Publishes a lifecycle event on `topic` (see [`lifecycle`]), unless the
    /// client ID is one IoT sends no events for.
    pub(crate) fn publish_event(&self, topic: &str, client_id: &str, body: serde_json::Value) {
        if lifecycle::has_events(client_id) {
            let payload = Bytes::from(body.to_string());
            self.broker.publish(topic, payload, QoS::AtMostOnce, false);
        }
    }
}
