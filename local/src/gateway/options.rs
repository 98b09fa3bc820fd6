//! How the gateway is set up: the knobs of `serverless-websockets local` that
//! change the gateway's behaviour, with IoT Core's values as defaults.
//!
//! Not here: the quotas themselves (`serverless_websockets_core::quota`).

use std::time::Duration;

use serverless_websockets_core::quota;

/// What the gateway does when a CONNECT or SUBSCRIBE is not authorized.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DenyMode {
    /// Close the connection without a reply (IoT Core's behaviour).
    Close,
    /// Reply with CONNACK return code 5, or SUBACK 0x80 for the filter.
    Reply,
}

#[derive(Debug, Clone)]
pub struct GatewayOptions {
    /// Keep-alives below this are raised to it (IoT: 30 s). Tests lower it.
    pub min_keep_alive: Duration,
    pub connect_deny: DenyMode,
    pub subscribe_deny: DenyMode,
    /// Deliveries queued per session: a connected client with more is too slow,
    /// an away client's session stores no more.
    pub queue_len: usize,
    /// The same bound in bytes, each message counted at what it costs in memory.
    pub queue_bytes: usize,
    /// Bytes that the sessions of away clients store, all together.
    pub stored_bytes: usize,
    /// How long a new WebSocket may take to send CONNECT before it is closed.
    pub connect_timeout: Duration,
    /// How long a persistent session outlives its client's disconnect (IoT: 1 hour).
    pub session_expiry: Duration,
    /// The shortest `refreshAfterInSeconds` / `disconnectAfterInSeconds` a custom
    /// authorizer may answer (IoT: 300). Tests shorten it to see refresh and expiry.
    pub authorizer_min_interval: u32,
    /// IoT's limits a client can trip over, each with its relaxation for tests.
    pub limits: Limits,
}

/// AWS IoT Core's per-connection and per-client-ID limits (the quotas page,
/// see `serverless_websockets_core::quota`). A rate of 0 means no limit.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Limits {
    /// How long one WebSocket connection lasts (IoT: 24 h), then it is closed
    /// with `WEBSOCKET_TTL_EXPIRATION`.
    pub max_connection_duration: Duration,
    /// CONNECTs per second per client ID (IoT: 1).
    pub connects_per_second: u32,
    /// Inbound PUBLISHes per second per connection (IoT: 100).
    pub publishes_per_second: u32,
    /// Inbound payload bytes per second per connection (IoT: 512 KiB).
    pub publish_bytes_per_second: u32,
    /// MQTT 5 user properties of one message, in bytes as encoded (IoT: 8 KB).
    pub max_user_properties_bytes: usize,
    /// Grant a SUBSCRIBE asking for QoS 2 as QoS 1, as generic MQTT brokers do;
    /// IoT closes the connection without SUBACK.
    pub grant_qos2_as_qos1: bool,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            max_connection_duration: quota::MAX_CONNECTION_DURATION,
            connects_per_second: quota::CONNECTS_PER_SECOND_PER_CLIENT_ID,
            publishes_per_second: quota::PUBLISHES_PER_SECOND_PER_CONNECTION,
            publish_bytes_per_second: quota::PUBLISH_BYTES_PER_SECOND_PER_CONNECTION,
            max_user_properties_bytes: quota::MAX_USER_PROPERTIES_BYTES,
            grant_qos2_as_qos1: false,
        }
    }
}

impl Limits {
    /// No rate limits and no QoS 2 refusal: for load tests and benchmarks, which
    /// measure the gateway, not IoT's quotas. The duration and sizes stay.
    pub fn relaxed() -> Self {
        Self {
            connects_per_second: 0,
            publishes_per_second: 0,
            publish_bytes_per_second: 0,
            ..Self::default()
        }
    }
}

impl Default for GatewayOptions {
    fn default() -> Self {
        Self {
            min_keep_alive: quota::MIN_KEEP_ALIVE,
            connect_deny: DenyMode::Close,
            subscribe_deny: DenyMode::Close,
            queue_len: 1024,
            queue_bytes: 8 * 1024 * 1024,
            stored_bytes: 256 * 1024 * 1024,
            connect_timeout: CONNECT_TIMEOUT,
            session_expiry: quota::DEFAULT_SESSION_EXPIRY,
            authorizer_min_interval: crate::authorizers::verdict::MIN_INTERVAL_SECONDS,
            limits: Limits::default(),
        }
    }
}

/// How long a new connection may take to send CONNECT by default.
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
