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
        }
    }
}

/// How long a new connection may take to send CONNECT by default.
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
