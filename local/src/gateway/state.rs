//! What every connection and data-plane request shares: the broker, the
//! signature check, the rules and the custom authorizers, the gateway's options, the lifecycle-event version counter and
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
use super::broker::{Broker, QueueBounds};
use super::lifecycle;
use super::message::Message;
use super::options::GatewayOptions;
use crate::authorizers::Authorizers;
use crate::identity::IdentityStore;
use crate::rules::{Engine, Inbound, Republish};

/// Where a published message went.
#[derive(Debug, Clone, Copy)]
pub struct Routed {
    /// Deliveries queued or stored.
    pub delivered: usize,
    /// Rules its topic reached.
    pub rules: usize,
    /// Whether it was kept as the topic's retained message.
    pub retained: bool,
}

impl Routed {
    /// Whether it went nowhere at all: no subscriber, no rule reading its topic,
    /// and not kept as the retained message. The log warns of those only (a
    /// typo in a topic, another client's ID).
    pub fn unheard(&self) -> bool {
        self.delivered == 0 && self.rules == 0 && !self.retained
    }
}

/// Who published a message, for the rules engine's `clientid()` and `principal()`.
#[derive(Debug, Clone, Copy, Default)]
pub struct Origin<'a> {
    /// The publisher's client ID; `None` off MQTT (HTTPS publish, events).
    pub client_id: Option<&'a str>,
    /// Its IAM user ID (`AROA…:<session>` for STS credentials).
    pub principal: Option<&'a str>,
    /// How many republishes led to the message.
    pub depth: u8,
}

/// State shared by every connection.
pub struct Gateway {
    pub(crate) auth: SignatureCheck,
    pub broker: Broker,
    /// The topic rules every routed message is offered to.
    pub rules: Arc<Engine>,
    /// The custom authorizers clients may connect through.
    pub authorizers: Arc<Authorizers>,
    pub(crate) options: GatewayOptions,
    versions: AtomicU64,
    /// When each client ID last connected, for IoT's CONNECT rate per client ID.
    pub(crate) connect_rate: super::limits::ConnectRate,
    /// What AWS would bill for the traffic (`usage_url`).
    pub usage: Arc<crate::usage::Usage>,
    pub(crate) shutdown: watch::Receiver<bool>,
}

impl Gateway {
    pub fn new(
        store: Arc<IdentityStore>,
        arns: IotArns,
        options: GatewayOptions,
        shutdown: watch::Receiver<bool>,
    ) -> Self {
        let rules = Arc::new(Engine::new(arns.account(), None));
        Self::with_rules(store, arns, options, rules, shutdown)
    }

    /// A gateway whose routed messages also go to `rules`. The engine's
    /// republished messages come back here, so it must not outlive the gateway
    /// usefully: it holds only a weak reference.
    pub fn with_rules(
        store: Arc<IdentityStore>,
        arns: IotArns,
        options: GatewayOptions,
        rules: Arc<Engine>,
        shutdown: watch::Receiver<bool>,
    ) -> Self {
        let auth = SignatureCheck::new(store, arns.region());
        let broker = Broker::new(
            arns,
            QueueBounds::new(options.queue_len, options.queue_bytes, options.stored_bytes),
        );
        let usage = Arc::new(crate::usage::Usage::new());
        rules.set_usage(usage.clone());
        let authorizers = Arc::new(Authorizers::new(
            rules.invoker(),
            options.authorizer_min_interval,
            usage.clone(),
        ));
        Self {
            auth,
            broker,
            rules,
            authorizers,
            connect_rate: super::limits::ConnectRate::new(options.limits.connects_per_second),
            usage,
            options,
            versions: AtomicU64::new(1),
            shutdown,
        }
    }

    /// Makes the rules engine's republished messages go through this gateway.
    pub fn attach_rules(self: &Arc<Self>) {
        let gateway = Arc::downgrade(self);
        self.rules.set_sink(move |republish| {
            if let Some(gateway) = gateway.upgrade() {
                gateway.republish(republish);
            }
        });
    }

    /// Routes `message` to its subscribers and offers it to the rules; a Basic
    /// Ingest message (`$aws/rules/<name>/…`) goes to that rule only.
    pub fn publish(&self, message: Arc<Message>, origin: Origin<'_>) -> Routed {
        let reached = self.rules.on_message(Inbound {
            topic: &message.topic,
            payload: &message.payload,
            client_id: origin.client_id,
            principal: origin.principal,
            depth: origin.depth,
        });
        let mut routed = Routed {
            delivered: 0,
            rules: reached.rules,
            retained: message.retain,
        };
        if reached.ingest {
            return routed;
        }
        routed.delivered = self.broker.route(message.clone());
        if routed.delivered > 0 {
            self.usage.delivered(message.metered_bytes(), routed.delivered);
        }
        routed
    }

    /// A rule's republish: QoS 0 or 1, no retain, MQTT 5 headers as the action says.
    fn republish(&self, republish: Republish) {
        let qos = if republish.qos == 1 {
            QoS::AtLeastOnce
        } else {
            QoS::AtMostOnce
        };
        let mut message = Message::new(republish.topic, Bytes::from(republish.payload), qos, false);
        message.properties = republish
            .headers
            .as_ref()
            .and_then(super::message::properties_from_headers);
        let origin = Origin {
            depth: republish.depth,
            ..Origin::default()
        };
        let routed = self.publish(Arc::new(message), origin);
        tracing::debug!(delivered = routed.delivered, "rule republished a message");
    }

    pub(crate) fn next_version(&self) -> u64 {
        self.versions.fetch_add(1, Ordering::Relaxed)
    }

    /// Publishes a lifecycle event on `topic` (see [`lifecycle`]), unless the
    /// client ID is one IoT sends no events for.
    pub(crate) fn publish_event(&self, topic: &str, client_id: &str, body: serde_json::Value) {
        if lifecycle::has_events(client_id) {
            let payload = Bytes::from(body.to_string());
            let message = Arc::new(Message::new(topic.to_owned(), payload, QoS::AtMostOnce, false));
            let routed = self.publish(message.clone(), Origin::default());
            // Of the deliveries just metered: the lifecycle events' share.
            self.usage
                .lifecycle_delivered(message.metered_bytes(), routed.delivered);
        }
    }
}
