//! AWS IoT Core's quotas that a client or a backend can run into, in one place:
//! the gateway emulator enforces them, the vending service and the clients check
//! against them, and the docs' emulator table cites them from here.
//!
//! Source, unless a line says otherwise: the AWS IoT Core quotas page,
//! <https://docs.aws.amazon.com/general/latest/gr/iot-core.html#message-broker-limits>,
//! and the MQTT support page,
//! <https://docs.aws.amazon.com/iot/latest/developerguide/mqtt.html>.
//!
//! Not here: STS's limits (policy size, durations: [`crate::sts`]) and the
//! emulator's own tuning (queue lengths, timeouts), which are choices, not quotas.

use std::time::Duration;

/// A topic name or filter, in bytes (UTF-8).
pub const MAX_TOPIC_BYTES: usize = 256;
/// Forward slashes in a topic name or filter (eight levels).
pub const MAX_TOPIC_SLASHES: usize = 7;
/// An MQTT client ID, in bytes.
pub const MAX_CLIENT_ID_BYTES: usize = 128;
/// A message payload, in bytes.
pub const MAX_PAYLOAD_BYTES: usize = 128 * 1024;
/// The largest MQTT packet either side accepts: the largest payload plus room for
/// the topic and the headers.
pub const MAX_PACKET_BYTES: usize = MAX_PAYLOAD_BYTES + 1024;
/// Topic filters in one SUBSCRIBE.
pub const MAX_FILTERS_PER_SUBSCRIBE: usize = 8;
/// Subscriptions one connection holds.
pub const MAX_SUBSCRIPTIONS: usize = 50;
/// The keep-alive IoT raises shorter ones to.
pub const MIN_KEEP_ALIVE: Duration = Duration::from_secs(30);
/// The longest keep-alive; 0 and anything longer become this.
pub const MAX_KEEP_ALIVE: Duration = Duration::from_secs(1200);
/// QoS 1 deliveries awaiting PUBACK per client before the broker waits.
pub const MAX_INFLIGHT: usize = 100;
/// The MQTT 5 topic alias maximum IoT announces.
pub const TOPIC_ALIAS_MAX: u16 = 8;
/// The longest MQTT 5 message expiry, in seconds (seven days).
pub const MAX_MESSAGE_EXPIRY_SECS: u32 = 604_800;
/// MQTT 5 user properties of one message (a PUBLISH, a will, an HTTPS publish),
/// in bytes as encoded: the quotas page's "Maximum User Properties total size"
/// (Service Quotas code L-7201B389), 8 KB. The figure and how IoT counts it are
/// not confirmed from the page itself; the gateway counts every pair as encoded,
/// its key and value with their 2-byte lengths and the 1-byte identifier, which
/// also bounds how many pairs fit (see `docs/reference.md`).
pub const MAX_USER_PROPERTIES_BYTES: usize = 8 * 1024;
/// How long one WebSocket connection lasts at most; then IoT closes it with the
/// lifecycle reason `WEBSOCKET_TTL_EXPIRATION` (the quotas page: "Maximum
/// connection duration", 24 hours; aws-iot-device-sdk-js-v2#446 sees it happen).
pub const MAX_CONNECTION_DURATION: Duration = Duration::from_secs(24 * 3600);
/// CONNECTs per second per client ID (per account): the quotas page's "Connect
/// requests per second per client ID", 1, not adjustable (aws-greengrass-nucleus
/// PR #907 rate-limits its own connects for it).
pub const CONNECTS_PER_SECOND_PER_CLIENT_ID: u32 = 1;
/// How long a client waits between two CONNECTs with one client ID: a margin over
/// the quota's one second, for clock granularity on both sides.
pub const CLIENT_CONNECT_SPACING: Duration = Duration::from_millis(1100);
/// Inbound publishes per second per connection: the quotas page's "Publish
/// requests per second per connection", 100, not adjustable
/// (aws-iot-device-sdk-java#91 quotes it).
pub const PUBLISHES_PER_SECOND_PER_CONNECTION: u32 = 100;
/// Inbound bytes per second per connection: the quotas page's "Throughput per
/// connection", 512 KiB/s, not adjustable (aws-greengrass-nucleus PR #907 limits
/// its bandwidth to it).
pub const PUBLISH_BYTES_PER_SECOND_PER_CONNECTION: u32 = 512 * 1024;
/// The shortest `refreshAfterInSeconds` / `disconnectAfterInSeconds` a custom
/// authorizer may answer (<https://docs.aws.amazon.com/iot/latest/developerguide/custom-auth-lambda.html>).
pub const AUTHORIZER_MIN_INTERVAL_SECS: u32 = 300;
/// The longest.
pub const AUTHORIZER_MAX_INTERVAL_SECS: u32 = 86_400;
/// How long a persistent session outlives its client's disconnect by default.
pub const DEFAULT_SESSION_EXPIRY: Duration = Duration::from_secs(3600);
/// How long `GetConnection` still answers for a client that left without a
/// session (the iot-data API reference: "about 30 minutes").
pub const DEPARTED_RETENTION: Duration = Duration::from_secs(30 * 60);

/// The encoded size of MQTT 5 user properties, as [`MAX_USER_PROPERTIES_BYTES`]
/// counts it (saturating: never overflows whatever the input).
pub fn user_properties_bytes<K: AsRef<str>, V: AsRef<str>>(pairs: &[(K, V)]) -> usize {
    pairs.iter().fold(0usize, |total, (key, value)| {
        total.saturating_add(5 + key.as_ref().len() + value.as_ref().len())
    })
}

// The largest packet has room for the largest payload and a full topic.
const _: () = assert!(MAX_PACKET_BYTES > MAX_PAYLOAD_BYTES + MAX_TOPIC_BYTES);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn user_properties_count_as_encoded_five_bytes_a_pair_plus_key_and_value() {
        assert_eq!(user_properties_bytes::<&str, &str>(&[]), 0);
        assert_eq!(user_properties_bytes(&[("k", "v"), ("key", "value")]), 7 + 13);
        // 8 KB of one-byte pairs is 1,170 pairs, not 4,096.
        let pairs = vec![("k", "v"); MAX_USER_PROPERTIES_BYTES / 7 + 1];
        assert!(user_properties_bytes(&pairs) > MAX_USER_PROPERTIES_BYTES);
    }

    #[test]
    fn the_keep_alive_range_is_iots_thirty_seconds_to_twenty_minutes() {
        assert_eq!((MIN_KEEP_ALIVE.as_secs(), MAX_KEEP_ALIVE.as_secs()), (30, 1200));
    }
}
