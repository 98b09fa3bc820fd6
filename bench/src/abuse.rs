//! The second outside audit's memory scenarios (issue 26), replayed against our
//! gateway process: what a holder of one credential, or an unauthenticated peer,
//! can make it hold. Each reports the process's resident-memory growth and passes
//! when it is bounded:
//!
//! * a client reconnecting in a loop with a persistent MQTT 5 session and a 63.5
//!   KiB will delayed an hour, dropping the connection each time: growth after 4N
//!   reconnects stays within 1.5× that after N plus 4 MiB (it was linear: every
//!   reconnect kept its will and a timer for the hour);
//! * QoS 1 messages of 100 KiB with 1,170 one-byte user properties (IoT's 8 KB
//!   quota) to an away MQTT 5 session: growth ≤ 3× the session's byte bound (8 MiB
//!   as counted; the allocator holds what the publisher's buffers churned);
//! * unauthenticated data-plane requests with 60 KB of headers and a 128 KiB body:
//!   growth ≤ 16 MiB for 300 of them held open.

use std::time::Duration;

use bytes::Bytes;
use rumqttc::v5::mqttbytes::QoS as QoS5;
use rumqttc::v5::mqttbytes::v5::{self, ConnectProperties, LastWill, LastWillProperties, PublishProperties};
use tokio::io::AsyncWriteExt;

use crate::brokers::{Broker, rss_bytes};
use crate::mqtt_ws::Connection;

const MIB: f64 = 1024.0 * 1024.0;

pub struct Outcome {
    /// MiB after N and after 4N reconnects.
    pub reconnects: (usize, f64, f64),
    /// Messages sent, MiB grown.
    pub stored: (usize, f64),
    /// Requests held, MiB grown.
    pub unauthenticated: (usize, f64),
}

impl Outcome {
    pub fn passes(&self) -> [bool; 3] {
        let (_, few, many) = self.reconnects;
        [
            many <= few * 1.5 + 4.0,
            self.stored.1 <= 24.0,
            self.unauthenticated.1 <= 16.0,
        ]
    }
}

/// The broker's resident memory once it settled, in bytes.
async fn settled_rss(broker: &Broker) -> anyhow::Result<u64> {
    tokio::time::sleep(Duration::from_millis(1000)).await;
    let pid = broker.pid().ok_or_else(|| anyhow::anyhow!("the gateway exited"))?;
    rss_bytes(pid).ok_or_else(|| anyhow::anyhow!("no RSS for {pid}"))
}

fn grown(before: u64, after: u64) -> f64 {
    after.saturating_sub(before) as f64 / MIB
}

/// CONNECT of a persistent MQTT 5 session of `client_id`, kept for an hour.
fn persistent(client_id: &str) -> v5::Connect {
    v5::Connect {
        keep_alive: 600,
        client_id: client_id.into(),
        clean_start: false,
        properties: Some(ConnectProperties {
            session_expiry_interval: Some(3600),
            ..ConnectProperties::new()
        }),
    }
}

fn tiny_pairs(count: usize) -> Vec<(String, String)> {
    vec![("k".to_owned(), "v".to_owned()); count]
}

/// `rounds` connections with a delayed will, each dropped without DISCONNECT.
async fn reconnect_loop(broker: &Broker, rounds: usize) -> anyhow::Result<()> {
    let will = LastWill::new(
        "wills/looper",
        Bytes::from(vec![b'x'; 65_000]),
        QoS5::AtLeastOnce,
        false,
        Some(LastWillProperties {
            delay_interval: Some(3600),
            payload_format_indicator: None,
            message_expiry_interval: None,
            content_type: None,
            response_topic: None,
            correlation_data: None,
            user_properties: Vec::new(),
        }),
    );
    for _ in 0..rounds {
        let connection = Connection::open_v5_with(&broker.url(), persistent("looper"), Some(will.clone())).await?;
        drop(connection);
    }
    Ok(())
}

async fn reconnects(binary: &std::path::Path, rounds: usize) -> anyhow::Result<(usize, f64, f64)> {
    let mut figures = Vec::new();
    for n in [rounds, rounds * 4] {
        let broker = crate::brokers::ours(binary).await?;
        let before = settled_rss(&broker).await?;
        reconnect_loop(&broker, n).await?;
        figures.push(grown(before, settled_rss(&broker).await?));
        broker.stop().await;
    }
    Ok((rounds, figures[0], figures[1]))
}

async fn stored(binary: &std::path::Path, messages: usize) -> anyhow::Result<f64> {
    let broker = crate::brokers::ours(binary).await?;
    let mut away = Connection::open_v5_with(&broker.url(), persistent("away"), None).await?;
    away.subscribe("chat/room", rumqttc::mqttbytes::QoS::AtLeastOnce)
        .await?;
    drop(away);
    let before = settled_rss(&broker).await?;
    let mut publisher = Connection::open_v5(&broker.url(), "chatter").await?;
    for pkid in 1..=messages {
        let mut publish = v5::Publish::new("chat/room", QoS5::AtLeastOnce, vec![b'x'; 100 * 1024], None);
        publish.pkid = u16::try_from(pkid % 60_000 + 1)?;
        publish.properties = Some(PublishProperties {
            user_properties: tiny_pairs(1_170),
            ..PublishProperties::default()
        });
        publisher.send_v5(v5::Packet::Publish(publish)).await?;
        publisher.next().await?; // its PUBACK
    }
    let after = settled_rss(&broker).await?;
    broker.stop().await;
    Ok(grown(before, after))
}

async fn unauthenticated(binary: &std::path::Path, count: usize) -> anyhow::Result<f64> {
    let broker = crate::brokers::ours(binary).await?;
    let address = broker.url();
    let host = address
        .trim_start_matches("ws://")
        .split('/')
        .next()
        .unwrap_or_default()
        .to_owned();
    let before = settled_rss(&broker).await?;
    let date = serverless_websockets_core::sigv4::format_amz_date(std::time::SystemTime::now());
    let mut head = format!(
        "POST /topics/a HTTP/1.1\r\nHost: {host}\r\nX-Amz-Date: {date}\r\nAuthorization: AWS4-HMAC-SHA256 \
         Credential=AKIAUNKNOWN000000000/{}/us-east-1/iotdata/aws4_request, SignedHeaders=host;x-amz-date, \
         Signature={}\r\n",
        &date[..8],
        "0".repeat(64)
    );
    for i in 0..60 {
        head.push_str(&format!("X-Pad-{i}: {}\r\n", "p".repeat(1000)));
    }
    head.push_str("Content-Length: 131072\r\n\r\n");
    let body = vec![b'b'; 130_000];
    let mut held = Vec::with_capacity(count);
    for _ in 0..count {
        let mut stream = tokio::net::TcpStream::connect(&host).await?;
        // The gateway may answer and close before the body is written.
        let _ = stream.write_all(head.as_bytes()).await;
        let _ = stream.write_all(&body).await;
        held.push(stream);
    }
    let after = settled_rss(&broker).await?;
    drop(held);
    broker.stop().await;
    Ok(grown(before, after))
}

pub async fn run(binary: &std::path::Path, rounds: usize, messages: usize, requests: usize) -> anyhow::Result<Outcome> {
    Ok(Outcome {
        reconnects: reconnects(binary, rounds).await?,
        stored: (messages, stored(binary, messages).await?),
        unauthenticated: (requests, unauthenticated(binary, requests).await?),
    })
}

/// The suite's report; with `enforce`, an error when a scenario is not bounded
/// (a smoke run only checks that the suite runs: its sizes are too small to judge).
pub async fn report(
    binary: &std::path::Path,
    (rounds, messages, requests): (usize, usize, usize),
    enforce: bool,
) -> anyhow::Result<crate::report::Report> {
    let outcome = run(binary, rounds, messages, requests).await?;
    let verdict = |pass: bool| if pass { "pass" } else { "FAIL" }.to_owned();
    let [reconnects_ok, stored_ok, unauthenticated_ok] = outcome.passes();
    let (n, few, many) = outcome.reconnects;
    let report = crate::report::Report {
        title: "The second audit's memory scenarios (gateway RSS growth)".into(),
        header: ["scenario", "growth", "bound", "verdict"].map(String::from).to_vec(),
        rows: vec![
            vec![
                format!(
                    "reconnect loop with a 63.5 KiB will delayed 1 h: {n} vs {} reconnects",
                    n * 4
                ),
                format!("{few:.1} MiB vs {many:.1} MiB"),
                "4N ≤ 1.5 × N + 4 MiB (not linear)".into(),
                verdict(reconnects_ok),
            ],
            vec![
                format!(
                    "{} QoS 1 messages of 100 KiB + 1,170 user properties to one away MQTT 5 session",
                    outcome.stored.0
                ),
                format!("{:.1} MiB", outcome.stored.1),
                "≤ 24 MiB (3× the 8 MiB queue bound)".into(),
                verdict(stored_ok),
            ],
            vec![
                format!(
                    "{} unauthenticated data-plane requests (60 KB of headers + 128 KiB body) held open",
                    outcome.unauthenticated.0
                ),
                format!("{:.1} MiB", outcome.unauthenticated.1),
                "≤ 16 MiB".into(),
                verdict(unauthenticated_ok),
            ],
        ],
        notes: vec![
            "Each scenario on a fresh gateway; growth is the process's RSS 1 s after the load minus 1 s before it."
                .into(),
        ],
        json: serde_json::json!({
            "reconnects": {"n": n, "mib_after_n": few, "mib_after_4n": many},
            "stored": {"messages": outcome.stored.0, "mib": outcome.stored.1},
            "unauthenticated": {"requests": outcome.unauthenticated.0, "mib": outcome.unauthenticated.1},
        }),
    };
    if enforce && !(reconnects_ok && stored_ok && unauthenticated_ok) {
        anyhow::bail!("a scenario is not bounded:\n{}", report.markdown());
    }
    Ok(report)
}
