//! What AWS would bill for the traffic the local stack saw: a meter of the units
//! each service bills, and a monthly projection at list prices.
//!
//! What counts, from AWS IoT Core's metering details
//! (<https://aws.amazon.com/iot-core/pricing/additional-details/>):
//! * **connection-minutes**: each connection's time, in whole minutes rounded up;
//! * **messages**, each in 5 KB steps (at least one): a PUBLISH a client sends
//!   (topic + payload + MQTT 5 properties), each PUBLISH the broker sends (every
//!   delivery: to each subscriber, retained messages on SUBSCRIBE, lifecycle
//!   events to their subscribers, direct messages, a rule's republish), a retained
//!   PUBLISH once more for the retained copy, CONNECT (with its will), SUBSCRIBE
//!   (its filters), a client's PUBACK (3.1.1: one message each), and HTTPS
//!   data-plane requests and responses by their bodies. Not metered: PINGREQ,
//!   PINGRESP, DISCONNECT, CONNACK, the broker's PUBACK, SUBACK, UNSUBSCRIBE;
//!   a Basic Ingest publish has no messaging charge
//!   (<https://docs.aws.amazon.com/iot/latest/developerguide/iot-basic-ingest.html>).
//! * **rules triggered** (each rule a message reaches, in 5 KB steps) and **actions
//!   executed** (at least one per triggered rule, as the pricing page says);
//! * **vends**: API Gateway HTTP API requests, and the vending Lambda's requests
//!   and GB-seconds at the template's memory and architecture, its duration
//!   measured here (a local machine is not Lambda: an estimate);
//! * **authorizer invocations**: the custom authorizer's Lambda requests and
//!   GB-seconds, the same way.
//!
//! Prices: [`PRICES_JSON`], one file naming its sources and date.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant, SystemTime};

use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

/// IoT Core meters messages in steps of this many bytes.
pub const MESSAGE_STEP_BYTES: u64 = 5 * 1024;
/// The template's vending and authorizer functions: memory in MB (both 256,
/// arm64; `tests/cloudformation.rs` checks the template still says so).
pub const TEMPLATE_LAMBDA_MEMORY_MB: u64 = 256;
/// The list prices the projection uses, with their sources and date.
pub const PRICES_JSON: &str = include_str!("usage/prices.json");
/// The hours AWS bills a month as.
const HOURS_PER_MONTH: f64 = 730.0;

/// How many billed messages `bytes` make: 5 KB steps, at least one.
pub fn message_units(bytes: usize) -> u64 {
    (bytes as u64).div_ceil(MESSAGE_STEP_BYTES).max(1)
}

/// The meter: counters every listener adds to, read at any time.
#[derive(Debug)]
pub struct Usage {
    started: Instant,
    started_at: SystemTime,
    connects: AtomicU64,
    /// Minutes of the connections that ended, each rounded up.
    ended_minutes: AtomicU64,
    /// Milliseconds of the connections that ended, exact (for the projection).
    ended_millis: AtomicU64,
    live: AtomicU64,
    /// The sum of the live connections' start times (ms since `started`).
    live_started_sum: AtomicU64,
    publish_in: AtomicU64,
    deliveries: AtomicU64,
    lifecycle_deliveries: AtomicU64,
    retained: AtomicU64,
    connect_messages: AtomicU64,
    subscribe_messages: AtomicU64,
    puback_in: AtomicU64,
    http_messages: AtomicU64,
    basic_ingest: AtomicU64,
    rules_triggered: AtomicU64,
    rule_actions: AtomicU64,
    api_requests: AtomicU64,
    vend_billed_ms: AtomicU64,
    authorizer_invocations: AtomicU64,
    authorizer_billed_ms: AtomicU64,
}

impl Default for Usage {
    fn default() -> Self {
        Self::new()
    }
}

/// A live connection's place on the meter; [`Usage::disconnected`] takes it back.
#[derive(Debug, Clone, Copy)]
pub struct Metered {
    since_ms: u64,
}

fn add(counter: &AtomicU64, n: u64) {
    counter.fetch_add(n, Ordering::Relaxed);
}

fn get(counter: &AtomicU64) -> u64 {
    counter.load(Ordering::Relaxed)
}

fn saturating_ms(duration: Duration) -> u64 {
    u64::try_from(duration.as_millis()).unwrap_or(u64::MAX)
}

impl Usage {
    pub fn new() -> Self {
        Self {
            started: Instant::now(),
            started_at: SystemTime::now(),
            connects: AtomicU64::new(0),
            ended_minutes: AtomicU64::new(0),
            ended_millis: AtomicU64::new(0),
            live: AtomicU64::new(0),
            live_started_sum: AtomicU64::new(0),
            publish_in: AtomicU64::new(0),
            deliveries: AtomicU64::new(0),
            lifecycle_deliveries: AtomicU64::new(0),
            retained: AtomicU64::new(0),
            connect_messages: AtomicU64::new(0),
            subscribe_messages: AtomicU64::new(0),
            puback_in: AtomicU64::new(0),
            http_messages: AtomicU64::new(0),
            basic_ingest: AtomicU64::new(0),
            rules_triggered: AtomicU64::new(0),
            rule_actions: AtomicU64::new(0),
            api_requests: AtomicU64::new(0),
            vend_billed_ms: AtomicU64::new(0),
            authorizer_invocations: AtomicU64::new(0),
            authorizer_billed_ms: AtomicU64::new(0),
        }
    }

    fn now_ms(&self) -> u64 {
        saturating_ms(self.started.elapsed())
    }

    /// An accepted CONNECT of `bytes` (client ID and will): one connection and
    /// its CONNECT message.
    pub fn connected(&self, bytes: usize) -> Metered {
        let since_ms = self.now_ms();
        add(&self.connects, 1);
        add(&self.live, 1);
        add(&self.live_started_sum, since_ms);
        add(&self.connect_messages, message_units(bytes));
        Metered { since_ms }
    }

    /// The end of a connection: its minutes, rounded up.
    pub fn disconnected(&self, metered: Metered) {
        let millis = self.now_ms().saturating_sub(metered.since_ms);
        self.live.fetch_sub(1, Ordering::Relaxed);
        self.live_started_sum.fetch_sub(metered.since_ms, Ordering::Relaxed);
        add(&self.ended_millis, millis);
        add(&self.ended_minutes, millis.div_ceil(60_000).max(1));
    }

    /// A PUBLISH from a client of `bytes` (topic, payload, properties);
    /// `retained` adds the retained copy; Basic Ingest is not a message.
    pub fn published(&self, bytes: usize, retained: bool, basic_ingest: bool) {
        if basic_ingest {
            add(&self.basic_ingest, 1);
            return;
        }
        add(&self.publish_in, message_units(bytes));
        if retained {
            add(&self.retained, message_units(bytes));
        }
    }

    /// The retained copy of a message of `bytes` published over HTTPS (the
    /// request itself is metered by [`Usage::http`]).
    pub fn retained_copy(&self, bytes: usize) {
        add(&self.retained, message_units(bytes));
    }

    /// `count` PUBLISHes the broker sends of a message of `bytes`.
    pub fn delivered(&self, bytes: usize, count: usize) {
        add(&self.deliveries, message_units(bytes).saturating_mul(count as u64));
    }

    /// Of the deliveries [`Usage::delivered`] counted, `count` of a lifecycle event.
    pub fn lifecycle_delivered(&self, bytes: usize, count: usize) {
        add(
            &self.lifecycle_deliveries,
            message_units(bytes).saturating_mul(count as u64),
        );
    }

    /// A SUBSCRIBE whose filters take `bytes`.
    pub fn subscribed(&self, bytes: usize) {
        add(&self.subscribe_messages, message_units(bytes));
    }

    /// A PUBACK from a client.
    pub fn acknowledged(&self) {
        add(&self.puback_in, 1);
    }

    /// An HTTPS data-plane request and its response, by their bodies (an empty
    /// body is no message).
    pub fn http(&self, request_bytes: usize, response_bytes: usize) {
        let units = |bytes: usize| if bytes == 0 { 0 } else { message_units(bytes) };
        add(&self.http_messages, units(request_bytes) + units(response_bytes));
    }

    /// A rule a message of `bytes` reached, and how many actions it ran.
    pub fn rule(&self, bytes: usize, actions: usize) {
        add(&self.rules_triggered, message_units(bytes));
        add(&self.rule_actions, (actions as u64).max(1));
    }

    /// A request to the vending API and how long its handler took.
    pub fn vend(&self, took: Duration) {
        add(&self.api_requests, 1);
        add(&self.vend_billed_ms, billed_ms(took));
    }

    /// An invocation of a custom authorizer and how long it took.
    pub fn authorizer(&self, took: Duration) {
        add(&self.authorizer_invocations, 1);
        add(&self.authorizer_billed_ms, billed_ms(took));
    }

    /// The counts so far, and what they would cost in a month at list prices.
    pub fn report(&self) -> Report {
        let now_ms = self.now_ms();
        let live = get(&self.live);
        let live_millis = live.saturating_mul(now_ms).saturating_sub(get(&self.live_started_sum));
        let counts = Counts {
            connects: get(&self.connects),
            live_connections: live,
            connection_minutes: get(&self.ended_minutes) + live_millis.div_ceil(60_000).max(live),
            messages: Messages {
                published: get(&self.publish_in),
                delivered: get(&self.deliveries),
                lifecycle_deliveries: get(&self.lifecycle_deliveries),
                retained: get(&self.retained),
                connect: get(&self.connect_messages),
                subscribe: get(&self.subscribe_messages),
                puback: get(&self.puback_in),
                http: get(&self.http_messages),
                basic_ingest_unbilled: get(&self.basic_ingest),
            },
            rules_triggered: get(&self.rules_triggered),
            rule_actions: get(&self.rule_actions),
            vends: Lambda {
                api_gateway_requests: get(&self.api_requests),
                lambda_requests: get(&self.api_requests),
                gb_seconds: gb_seconds(get(&self.vend_billed_ms)),
            },
            authorizer: Lambda {
                api_gateway_requests: 0,
                lambda_requests: get(&self.authorizer_invocations),
                gb_seconds: gb_seconds(get(&self.authorizer_billed_ms)),
            },
        };
        let window = Duration::from_millis(now_ms.max(1));
        let connected = Duration::from_millis(get(&self.ended_millis).saturating_add(live_millis));
        Report {
            since: serverless_websockets_core::wire::format_iso8601(self.started_at),
            seconds: window.as_secs_f64(),
            month: project(&counts, window, connected, &prices()),
            counts,
        }
    }
}

/// Lambda bills whole milliseconds, at least one.
fn billed_ms(took: Duration) -> u64 {
    let micros = u64::try_from(took.as_micros()).unwrap_or(u64::MAX);
    micros.div_ceil(1000).max(1)
}

#[allow(clippy::cast_precision_loss, reason = "counts far below 2^53")]
fn gb_seconds(billed_ms: u64) -> f64 {
    billed_ms as f64 / 1000.0 * (TEMPLATE_LAMBDA_MEMORY_MB as f64 / 1024.0)
}

/// Everything the meter counted.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Counts {
    pub connects: u64,
    pub live_connections: u64,
    pub connection_minutes: u64,
    pub messages: Messages,
    pub rules_triggered: u64,
    pub rule_actions: u64,
    pub vends: Lambda,
    pub authorizer: Lambda,
}

/// Billed messages by what made them (each in 5 KB steps).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Messages {
    pub published: u64,
    pub delivered: u64,
    /// Of `delivered`: lifecycle events to their subscribers.
    pub lifecycle_deliveries: u64,
    pub retained: u64,
    pub connect: u64,
    pub subscribe: u64,
    pub puback: u64,
    pub http: u64,
    /// Basic Ingest publishes: counted, not billed as messages.
    pub basic_ingest_unbilled: u64,
}

impl Messages {
    /// The billed total.
    pub fn total(&self) -> u64 {
        self.published + self.delivered + self.retained + self.connect + self.subscribe + self.puback + self.http
    }
}

/// A Lambda function's requests and compute.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Lambda {
    pub api_gateway_requests: u64,
    pub lambda_requests: u64,
    pub gb_seconds: f64,
}

/// The meter's answer: at `usage_url` and in the summary at stop.
#[derive(Debug, Clone, Serialize)]
pub struct Report {
    /// When the stack started (RFC 3339).
    pub since: String,
    /// How long it has run.
    pub seconds: f64,
    pub counts: Counts,
    /// This traffic's rate kept up for a month (730 hours), at list prices.
    pub month: Value,
}

/// List prices, from [`PRICES_JSON`].
#[derive(Debug, Clone, Deserialize)]
pub struct Prices {
    pub as_of: String,
    pub region: String,
    pub sources: Vec<String>,
    pub iot_connection_minutes_per_million: f64,
    /// Messaging tiers: up to `up_to` messages a month (the last has none).
    pub iot_messages_per_million: Vec<Tier>,
    pub iot_rules_triggered_per_million: f64,
    pub iot_rule_actions_per_million: f64,
    pub http_api_requests_per_million: f64,
    pub lambda_requests_per_million: f64,
    pub lambda_arm64_gb_second: f64,
}

#[derive(Debug, Clone, Deserialize)]
pub struct Tier {
    pub up_to: Option<f64>,
    pub price_per_million: f64,
}

/// The prices file, parsed.
#[allow(clippy::expect_used, reason = "a constant file, parsed by a unit test")]
pub fn prices() -> Prices {
    serde_json::from_str(PRICES_JSON).expect("usage/prices.json is valid")
}

/// What `messages` a month cost across the tiers.
fn tiered(messages: f64, tiers: &[Tier]) -> f64 {
    let mut left = messages;
    let mut below = 0.0;
    let mut cost = 0.0;
    for tier in tiers {
        let room = tier.up_to.map_or(f64::INFINITY, |up_to| up_to - below);
        let here = left.min(room).max(0.0);
        cost += here / 1e6 * tier.price_per_million;
        left -= here;
        below = tier.up_to.unwrap_or(below);
    }
    cost
}

/// `counts` over `window` kept up for a month; connection time from the exact
/// `connected` time (a short run's rounded-up minutes would inflate it).
#[allow(clippy::cast_precision_loss, reason = "counts far below 2^53")]
fn project(counts: &Counts, window: Duration, connected: Duration, prices: &Prices) -> Value {
    let scale = HOURS_PER_MONTH * 3600.0 / window.as_secs_f64();
    let minutes = connected.as_secs_f64() / 60.0 * scale;
    let messages = counts.messages.total() as f64 * scale;
    let triggered = counts.rules_triggered as f64 * scale;
    let actions = counts.rule_actions as f64 * scale;
    let lambda = |l: &Lambda| {
        l.api_gateway_requests as f64 * scale / 1e6 * prices.http_api_requests_per_million
            + l.lambda_requests as f64 * scale / 1e6 * prices.lambda_requests_per_million
            + l.gb_seconds * scale * prices.lambda_arm64_gb_second
    };
    let cost = [
        (
            "connectivity",
            minutes / 1e6 * prices.iot_connection_minutes_per_million,
        ),
        ("messaging", tiered(messages, &prices.iot_messages_per_million)),
        (
            "rules",
            triggered / 1e6 * prices.iot_rules_triggered_per_million
                + actions / 1e6 * prices.iot_rule_actions_per_million,
        ),
        ("vending", lambda(&counts.vends)),
        ("authorizer", lambda(&counts.authorizer)),
    ];
    let total: f64 = cost.iter().map(|(_, usd)| usd).sum();
    let round = |usd: f64| (usd * 100.0).round() / 100.0;
    json!({
        "connection_minutes": minutes.round(),
        "messages": messages.round(),
        "rules_triggered": triggered.round(),
        "rule_actions": actions.round(),
        "usd": cost.iter().map(|(k, usd)| ((*k).to_owned(), json!(round(*usd)))).collect::<serde_json::Map<_, _>>(),
        "usd_total": round(total),
        "prices": {"as_of": prices.as_of, "region": prices.region, "sources": prices.sources},
        "note": "list prices, no free tier, no taxes; STS is free",
    })
}

/// The shortest run whose rate the summary projects into a month: a few seconds
/// of start-up traffic (a burst of vends, a reconnect) would read as a fortune.
pub const SHORTEST_PROJECTED: Duration = Duration::from_secs(60);

impl Report {
    /// The lines printed when the stack stops.
    pub fn summary(&self) -> String {
        let c = &self.counts;
        let m = &c.messages;
        let counted = format!(
            "Usage over {:.0} s, as AWS would bill it:\n  connections: {} ({} connection-minutes)\n  messages: {} (published {}, delivered {} of which lifecycle events {}, retained {}, CONNECT {}, SUBSCRIBE {}, PUBACK {}, HTTPS {}; Basic Ingest {} unbilled)\n  rules: {} triggered, {} actions\n  vending API: {} requests, {:.3} GB-s; authorizer: {} invocations, {:.3} GB-s",
            self.seconds,
            c.connects,
            c.connection_minutes,
            m.total(),
            m.published,
            m.delivered,
            m.lifecycle_deliveries,
            m.retained,
            m.connect,
            m.subscribe,
            m.puback,
            m.http,
            m.basic_ingest_unbilled,
            c.rules_triggered,
            c.rule_actions,
            c.vends.api_gateway_requests,
            c.vends.gb_seconds,
            c.authorizer.lambda_requests,
            c.authorizer.gb_seconds,
        );
        format!("{counted}\n  {}", self.projection())
    }

    /// The summary's last line: the month at this rate, once the run is long
    /// enough to have a rate.
    fn projection(&self) -> String {
        if self.seconds < SHORTEST_PROJECTED.as_secs_f64() {
            return format!(
                "this rate for a month: not projected from under {} s of traffic",
                SHORTEST_PROJECTED.as_secs()
            );
        }
        let usd = |k: &str| self.month["usd"][k].as_f64().unwrap_or(0.0);
        format!(
            "this rate for a month: ${:.2} (connectivity ${:.2}, messaging ${:.2}, rules ${:.2}, vending ${:.2}, authorizer ${:.2}) at {} list prices of {}",
            self.month["usd_total"].as_f64().unwrap_or(0.0),
            usd("connectivity"),
            usd("messaging"),
            usd("rules"),
            usd("vending"),
            usd("authorizer"),
            self.month["prices"]["region"].as_str().unwrap_or("-"),
            self.month["prices"]["as_of"].as_str().unwrap_or("-"),
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn messages_are_metered_in_five_kilobyte_steps_at_least_one() {
        assert_eq!(message_units(0), 1);
        assert_eq!(message_units(5120), 1);
        assert_eq!(message_units(5121), 2);
        assert_eq!(message_units(128 * 1024), 26);
    }

    #[test]
    fn the_prices_file_parses_and_names_its_sources_and_date() {
        let prices = prices();
        assert!(!prices.sources.is_empty());
        assert!(prices.as_of.starts_with("20"));
        assert!(prices.iot_messages_per_million.last().unwrap().up_to.is_none());
    }

    #[test]
    fn messaging_tiers_price_each_message_at_its_tier() {
        let tiers = prices().iot_messages_per_million;
        let first = tiered(1e6, &tiers);
        assert!((first - tiers[0].price_per_million).abs() < 1e-9);
        let past = tiered(tiers[0].up_to.unwrap() + 1e6, &tiers) - tiered(tiers[0].up_to.unwrap(), &tiers);
        assert!((past - tiers[1].price_per_million).abs() < 1e-6);
    }

    #[test]
    fn a_connection_is_billed_whole_minutes_and_a_rule_at_least_one_action() {
        let usage = Usage::new();
        let metered = usage.connected(10);
        usage.disconnected(metered);
        usage.rule(10, 0);
        usage.rule(6000, 2);
        let counts = usage.report().counts;
        assert_eq!(
            (counts.connects, counts.connection_minutes, counts.live_connections),
            (1, 1, 0)
        );
        assert_eq!((counts.rules_triggered, counts.rule_actions), (3, 3));
    }

    #[test]
    fn the_summary_projects_a_month_only_from_a_minute_or_more_of_traffic() {
        let usage = Usage::new();
        let metered = usage.connected(10);
        usage.disconnected(metered);
        let mut report = usage.report();
        assert!(
            report
                .summary()
                .ends_with("this rate for a month: not projected from under 60 s of traffic"),
            "{}",
            report.summary()
        );
        report.seconds = 60.0;
        let last = report.summary().lines().last().unwrap_or_default().to_owned();
        assert!(
            last.starts_with("  this rate for a month: $") && last.contains("list prices of 20"),
            "{last}"
        );
    }

    #[test]
    fn a_basic_ingest_publish_is_counted_but_not_billed_as_a_message() {
        let usage = Usage::new();
        usage.published(100, false, true);
        usage.published(100, true, false);
        let m = usage.report().counts.messages;
        assert_eq!(
            (m.basic_ingest_unbilled, m.published, m.retained, m.total()),
            (1, 1, 1, 2)
        );
    }
}
