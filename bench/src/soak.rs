//! Soak: the gateway under hours-in-minutes of ordinary abuse, then the vending API
//! with STS slow and STS down. Not part of the test command; bounded in count and
//! time, loopback only.
//!
//! Gateway phase: C idle connections held open, S subscribers each on its own topic
//! at QoS 1, one publisher sending numbered QoS 1 messages round-robin to them, and
//! a churn loop closing and reopening idle connections (half with DISCONNECT, half
//! by dropping the socket) for the whole duration. Pass: the gateway process is
//! alive, every message published was delivered (0 lost), and its resident memory
//! after the churn is within 5 % of the baseline taken after warm-up.
//!
//! API phase: `serverless-websockets serve` against an STS that answers after 2 s,
//! then against an STS that is down, under concurrent load: every answer arrives
//! within the API's deadline with the expected status, the server's memory stays
//! bounded, and no secret from STS reaches its log.

use std::collections::HashSet;
use std::path::Path;
use std::process::Stdio;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use bytes::Bytes;
use rumqttc::mqttbytes::QoS;
use rumqttc::mqttbytes::v4::Packet;
use tokio::io::AsyncBufReadExt;
use tokio::sync::Mutex;

use crate::brokers::{Broker, rss_bytes};
use crate::mqtt_ws::{Connection, publish};
use crate::report::{Report, ms, quantile};

#[derive(Debug, Clone, Copy)]
pub struct Plan {
    pub connections: usize,
    pub subscribers: usize,
    pub duration: Duration,
    /// The same load before the baseline is taken, so that the baseline is the
    /// steady state of the process (allocator arenas, runtime slabs), not a cold heap.
    pub warm_up: Duration,
    /// Messages per second from the publisher.
    pub rate: u32,
    /// Idle connections closed and reopened per second.
    pub churn: usize,
    /// Concurrent callers in the API phase, and its length per STS condition.
    pub api_callers: usize,
    pub api_duration: Duration,
}

#[derive(Debug, Default)]
pub struct GatewayOutcome {
    /// Median RSS over the last 30 s of the warm-up.
    pub baseline_rss: u64,
    pub peak_rss: u64,
    /// Median RSS over the 10 s after the churn stopped.
    pub after_rss: u64,
    /// (seconds since the measured phase began, RSS) every 10 s, warm-up included
    /// with negative times.
    pub rss_series: Vec<(i64, u64)>,
    /// Per-second RSS from the end of the churn to the last "after" sample.
    pub after_series: Vec<u64>,
    pub cycles: u64,
    pub published: u64,
    pub delivered: u64,
    pub duplicates: u64,
    pub lost: u64,
    pub alive: bool,
}

/// The gateway phase: subscribers and idle connections opened, then the same
/// load (publishing, churn) through the warm-up and the measured phase, RSS
/// sampled each second; then every delivery counted and RSS sampled after.
pub async fn gateway(broker: &mut Broker, plan: Plan) -> anyhow::Result<GatewayOutcome> {
    let pid = broker.pid().ok_or_else(|| anyhow::anyhow!("broker has exited"))?;
    let received = spawn_subscribers(broker, plan.subscribers).await?;
    let idle = Arc::new(Mutex::new(open_idle(broker, plan.connections).await?));
    let mut outcome = GatewayOutcome::default();
    let stop = Arc::new(AtomicBool::new(false));
    let published = Arc::new(AtomicU64::new(0));
    let publisher = spawn_publisher(broker, plan, stop.clone(), published.clone()).await?;

    churn_and_sample(broker, &idle, plan, pid, &mut outcome).await?;
    stop.store(true, Ordering::Relaxed);
    outcome.after_series.push(rss_bytes(pid).unwrap_or(0));
    publisher.await??;
    outcome.published = published.load(Ordering::Relaxed);
    (outcome.delivered, outcome.duplicates) = wait_for_deliveries(&received, outcome.published).await;
    outcome.lost = outcome.published.saturating_sub(outcome.delivered);

    // After the churn: the median of ten per-second samples, connections still held.
    let mut after = Vec::new();
    for _ in 0..10 {
        tokio::time::sleep(Duration::from_secs(1)).await;
        after.push(rss_bytes(pid).unwrap_or(0));
    }
    outcome.after_series.extend(&after);
    outcome.after_rss = median(&mut after);
    outcome.alive = broker.pid().is_some() && rss_bytes(pid).is_some();
    drop(idle);
    Ok(outcome)
}

/// `count` QoS 1 subscribers, one topic each, recording what arrives.
async fn spawn_subscribers(broker: &Broker, count: usize) -> anyhow::Result<Arc<Vec<Mutex<Seen>>>> {
    let received: Arc<Vec<Mutex<Seen>>> = Arc::new((0..count).map(|_| Mutex::default()).collect());
    for index in 0..count {
        let mut connection = Connection::open(&broker.url(), &format!("soak-sub-{index}")).await?;
        connection.subscribe(&format!("soak/{index}"), QoS::AtLeastOnce).await?;
        let received = received.clone();
        tokio::spawn(async move {
            while let Ok(Some(packet)) = connection.next().await {
                if let Packet::Publish(message) = packet {
                    let seq = u64::from_be_bytes(message.payload[..8].try_into().unwrap_or_default());
                    let mut seen = received[index].lock().await;
                    if !seen.0.insert(seq) {
                        seen.1 += 1;
                    }
                    drop(seen);
                    if connection.puback(message.pkid).await.is_err() {
                        break;
                    }
                }
            }
        });
    }
    Ok(received)
}

/// Publishes numbered QoS 1 messages round-robin to the subscribers' topics at
/// `plan.rate`, each waiting for its PUBACK, until `stop`.
async fn spawn_publisher(
    broker: &Broker,
    plan: Plan,
    stop: Arc<AtomicBool>,
    published: Arc<AtomicU64>,
) -> anyhow::Result<tokio::task::JoinHandle<anyhow::Result<()>>> {
    let mut connection = Connection::open(&broker.url(), "soak-publisher").await?;
    let (subscribers, rate) = (plan.subscribers, plan.rate);
    Ok(tokio::spawn(async move {
        let mut tick = tokio::time::interval(Duration::from_secs(1) / rate.max(1));
        let mut seq = 0u64;
        while !stop.load(Ordering::Relaxed) {
            tick.tick().await;
            let topic = format!("soak/{}", seq as usize % subscribers);
            let payload = Bytes::copy_from_slice(&seq.to_be_bytes());
            let pkid = (seq % 65_535) as u16 + 1;
            connection
                .send(publish(&topic, QoS::AtLeastOnce, pkid, payload))
                .await?;
            loop {
                match connection.next().await? {
                    Some(Packet::PubAck(ack)) if ack.pkid == pkid => break,
                    Some(_) => continue,
                    None => anyhow::bail!("the gateway closed the publisher"),
                }
            }
            seq += 1;
            published.store(seq, Ordering::Relaxed);
        }
        anyhow::Ok(())
    }))
}

/// Churns `plan.churn` idle connections a second through the warm-up and the
/// measured phase, sampling RSS each second: the baseline is the median of the
/// warm-up's last 30 samples (RSS moves by ±2 MiB from second to second under
/// churn), the peak the largest measured sample.
async fn churn_and_sample(
    broker: &Broker,
    idle: &Arc<Mutex<Vec<Option<Connection>>>>,
    plan: Plan,
    pid: u32,
    outcome: &mut GatewayOutcome,
) -> anyhow::Result<()> {
    let started = Instant::now();
    let measured_from = started + plan.warm_up;
    let mut second = tokio::time::interval(Duration::from_secs(1));
    let mut ticks = 0u64;
    let mut end_of_warm_up = std::collections::VecDeque::new();
    while started.elapsed() < plan.warm_up + plan.duration {
        second.tick().await;
        outcome.cycles += churn(broker, idle, plan.churn, outcome.cycles).await?;
        let rss = rss_bytes(pid).unwrap_or(0);
        let now = Instant::now();
        if now < measured_from {
            end_of_warm_up.push_back(rss);
            if end_of_warm_up.len() > 30 {
                end_of_warm_up.pop_front();
            }
        } else {
            if outcome.baseline_rss == 0 {
                let mut samples: Vec<u64> = end_of_warm_up.iter().copied().collect();
                samples.push(rss);
                outcome.baseline_rss = median(&mut samples);
            }
            outcome.peak_rss = outcome.peak_rss.max(rss);
        }
        if ticks.is_multiple_of(10) {
            let at = now.duration_since(started).as_secs() as i64 - plan.warm_up.as_secs() as i64;
            outcome.rss_series.push((at, rss));
        }
        ticks += 1;
    }
    Ok(())
}

/// Delivered and duplicate counts once every published message arrived, or
/// after 30 s of waiting for stragglers.
async fn wait_for_deliveries(received: &[Mutex<Seen>], published: u64) -> (u64, u64) {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let mut delivered = 0;
        let mut duplicates = 0;
        for seen in received {
            let seen = seen.lock().await;
            delivered += seen.0.len() as u64;
            duplicates += seen.1;
        }
        if delivered >= published || Instant::now() > deadline {
            return (delivered, duplicates);
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// What one subscriber received: the sequence numbers, and how many came twice.
type Seen = (HashSet<u64>, u64);

fn median(samples: &mut [u64]) -> u64 {
    samples.sort_unstable();
    samples.get(samples.len() / 2).copied().unwrap_or(0)
}

async fn open_idle(broker: &Broker, count: usize) -> anyhow::Result<Vec<Option<Connection>>> {
    let open = crate::connections::open_many(broker, count, "soak-idle").await?;
    Ok(open.into_iter().map(Some).collect())
}

/// Closes and reopens `count` idle connections, starting after the last round's.
async fn churn(
    broker: &Broker,
    idle: &Arc<Mutex<Vec<Option<Connection>>>>,
    count: usize,
    done: u64,
) -> anyhow::Result<u64> {
    let mut idle = idle.lock().await;
    let len = idle.len().max(1);
    let mut reopening = Vec::with_capacity(count);
    for k in 0..count {
        let index = (done as usize + k) % len;
        if let Some(mut connection) = idle[index].take()
            && k % 2 == 0
        {
            let _ = connection.send(Packet::Disconnect).await;
        }
        let url = broker.url();
        reopening.push((
            index,
            tokio::spawn(async move { Connection::open(&url, &format!("soak-idle-{index}")).await }),
        ));
    }
    for (index, connection) in reopening {
        idle[index] = Some(connection.await??);
    }
    Ok(count as u64)
}

#[derive(Debug, Default)]
pub struct ApiOutcome {
    pub condition: &'static str,
    pub requests: usize,
    pub statuses: Vec<(u16, usize)>,
    pub p50: Duration,
    pub p99: Duration,
    pub max: Duration,
    pub rss_before: u64,
    pub rss_after: u64,
    pub secret_in_log: bool,
}

/// The secret a fake STS hands out; it must never reach the API's log.
const FAKE_SECRET: &str = "soakFakeSecretAccessKeyNeverLogged0123456";

/// A fake STS that answers AssumeRole after `delay`.
async fn slow_sts(delay: Duration) -> anyhow::Result<String> {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let url = format!("http://{}", listener.local_addr()?);
    let app = axum::Router::new().fallback(move || async move {
        tokio::time::sleep(delay).await;
        let expiration = "2099-01-01T00:00:00Z";
        (
            [("content-type", "text/xml")],
            format!(
                r#"<AssumeRoleResponse xmlns="https://sts.amazonaws.com/doc/2011-06-15/"><AssumeRoleResult><AssumedRoleUser><AssumedRoleId>AROA:s</AssumedRoleId><Arn>arn:aws:sts::123456789012:assumed-role/r/s</Arn></AssumedRoleUser><Credentials><AccessKeyId>ASIASOAKSOAKSOAKSOAK</AccessKeyId><SecretAccessKey>{FAKE_SECRET}</SecretAccessKey><SessionToken>soakFakeSessionTokenNeverLogged</SessionToken><Expiration>{expiration}</Expiration></Credentials></AssumeRoleResult><ResponseMetadata><RequestId>r</RequestId></ResponseMetadata></AssumeRoleResponse>"#
            ),
        )
    });
    tokio::spawn(async move { axum::serve(listener, app).await });
    Ok(url)
}

/// `callers` concurrent clients POSTing to `url` for `duration`: every latency,
/// and how many answers had each status (0: no answer).
async fn call_for(
    url: &str,
    count: usize,
    duration: Duration,
) -> anyhow::Result<(Vec<Duration>, std::collections::BTreeMap<u16, usize>)> {
    let client = reqwest::Client::new();
    let started = Instant::now();
    let mut callers = tokio::task::JoinSet::new();
    for _ in 0..count {
        let (client, url) = (client.clone(), url.to_owned());
        callers.spawn(async move {
            let mut seen = Vec::new();
            while started.elapsed() < duration {
                let at = Instant::now();
                let status = client.post(&url).send().await.map_or(0, |r| r.status().as_u16());
                seen.push((status, at.elapsed()));
            }
            seen
        });
    }
    let mut latencies = Vec::new();
    let mut statuses = std::collections::BTreeMap::new();
    while let Some(seen) = callers.join_next().await {
        for (status, latency) in seen? {
            *statuses.entry(status).or_insert(0) += 1;
            latencies.push(latency);
        }
    }
    Ok((latencies, statuses))
}

/// `serve` against `sts_url` under `callers` concurrent clients for `duration`.
pub async fn api(binary: &Path, condition: &'static str, sts_url: &str, plan: Plan) -> anyhow::Result<ApiOutcome> {
    let mut child = tokio::process::Command::new(binary)
        .args(["serve", "--listen", "127.0.0.1:0"])
        .env_clear()
        .env("AWS_ENDPOINT_URL_STS", sts_url)
        // The soak is the API against STS's faults; the fake STS is no IAM, so
        // the ban check is off (lambda_startup measures it).
        .env("BAN_POLICY_NAME", "none")
        .env("AWS_ACCESS_KEY_ID", "AKIASOAKSOAKSOAKSOAK")
        .env("AWS_SECRET_ACCESS_KEY", "soak")
        .env("AWS_REGION", "us-east-1")
        .env("CLIENT_ROLE_ARN", "arn:aws:iam::123456789012:role/ClientRole")
        .env("IOT_ENDPOINT", "abc-ats.iot.us-east-1.amazonaws.com")
        .env("AUTH_MODE", "none")
        .env("RUST_LOG", "info")
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()?;
    let pid = child.id().ok_or_else(|| anyhow::anyhow!("serve exited"))?;
    let mut lines = tokio::io::BufReader::new(child.stderr.take().expect("piped")).lines();
    let url = loop {
        let line = lines
            .next_line()
            .await?
            .ok_or_else(|| anyhow::anyhow!("serve exited"))?;
        if let Some(at) = line.find("http://") {
            break line[at..].trim().to_owned();
        }
    };
    let log = tokio::spawn(async move {
        let mut all = String::new();
        while let Ok(Some(line)) = lines.next_line().await {
            all.push_str(&line);
            all.push('\n');
        }
        all
    });
    let rss_before = rss_bytes(pid).unwrap_or(0);
    let (mut latencies, statuses) = call_for(&url, plan.api_callers, plan.api_duration).await?;
    let rss_after = rss_bytes(pid).unwrap_or(0);
    let _ = child.start_kill();
    let _ = child.wait().await;
    let log = log.await?;
    Ok(ApiOutcome {
        condition,
        requests: latencies.len(),
        statuses: statuses.into_iter().collect(),
        p50: quantile(&mut latencies, 0.5),
        p99: quantile(&mut latencies, 0.99),
        max: latencies.iter().max().copied().unwrap_or_default(),
        rss_before,
        rss_after,
        secret_in_log: log.contains(FAKE_SECRET) || log.contains("soakFakeSessionTokenNeverLogged"),
    })
}

pub async fn run(binary: &Path, plan: Plan) -> anyhow::Result<Report> {
    let mut broker = crate::brokers::ours(binary).await?;
    let gateway = gateway(&mut broker, plan).await?;
    broker.stop().await;

    let slow = slow_sts(Duration::from_secs(2)).await?;
    let down = {
        let port = std::net::TcpListener::bind("127.0.0.1:0")?.local_addr()?.port();
        format!("http://127.0.0.1:{port}")
    };
    let api = [
        api(binary, "STS answers in 2 s", &slow, plan).await?,
        api(binary, "STS down", &down, plan).await?,
    ];

    let mut rows = vec![gateway_row(&gateway, plan)];
    rows.extend(api.iter().map(|outcome| api_row(outcome, plan)));
    Ok(Report {
        title: "Soak: gateway churn and load, then the API with STS slow and down".into(),
        header: ["phase", "traffic", "latency and memory", "verdict"].map(String::from).to_vec(),
        rows,
        notes: vec![
            format!(
                "Gateway RSS every 10 s (s since the baseline: MiB): {}",
                gateway
                    .rss_series
                    .iter()
                    .map(|(at, rss)| format!("{at}: {:.1}", mib(*rss)))
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
            format!(
                "Gateway RSS from the end of the churn, then each second of the after-churn sample (MiB): {}",
                gateway
                    .after_series
                    .iter()
                    .map(|rss| format!("{:.1}", mib(*rss)))
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
            "Pass: gateway alive, 0 QoS 1 messages lost, RSS after churn (median of 10 s) ≤ 1.05× the post-warm-up baseline (median of its last 30 s); API answers 200/502/503 well inside the Lambda's 15 s timeout with no STS secret in its log.".into(),
        ],
        json: serde_json::json!({
            "suite": "soak",
            "gateway": {
                "connections": plan.connections, "subscribers": plan.subscribers, "duration_s": plan.duration.as_secs(),
                "cycles": gateway.cycles, "published": gateway.published, "delivered": gateway.delivered,
                "lost": gateway.lost, "duplicates": gateway.duplicates, "baseline_rss": gateway.baseline_rss,
                "peak_rss": gateway.peak_rss, "after_rss": gateway.after_rss, "rss_series": gateway.rss_series,
                "after_series": gateway.after_series,
            },
            "api": api.iter().map(|o| serde_json::json!({
                "condition": o.condition, "requests": o.requests, "statuses": o.statuses,
                "p50_ms": o.p50.as_secs_f64() * 1e3, "p99_ms": o.p99.as_secs_f64() * 1e3,
                "max_ms": o.max.as_secs_f64() * 1e3, "rss_before": o.rss_before, "rss_after": o.rss_after,
                "secret_in_log": o.secret_in_log,
            })).collect::<Vec<_>>(),
        }),
    })
}

fn mib(bytes: u64) -> f64 {
    bytes as f64 / 1_048_576.0
}

/// The gateway phase's row: traffic, memory against the baseline, verdict.
fn gateway_row(gateway: &GatewayOutcome, plan: Plan) -> Vec<String> {
    let ratio = gateway.after_rss as f64 / gateway.baseline_rss.max(1) as f64;
    vec![
        format!(
            "gateway: {} idle + {} subscribers, {:.0} s warm-up + {:.0} s, {} churn cycles",
            plan.connections,
            plan.subscribers,
            plan.warm_up.as_secs_f64(),
            plan.duration.as_secs_f64(),
            gateway.cycles
        ),
        format!(
            "{} published, {} delivered, {} lost, {} duplicates",
            gateway.published, gateway.delivered, gateway.lost, gateway.duplicates
        ),
        format!(
            "baseline {:.1} MiB, peak {:.1} MiB, after {:.1} MiB ({ratio:.3}× baseline)",
            mib(gateway.baseline_rss),
            mib(gateway.peak_rss),
            mib(gateway.after_rss)
        ),
        if gateway.alive && gateway.lost == 0 && ratio <= 1.05 {
            "pass".into()
        } else {
            "FAIL".into()
        },
    ]
}

/// One API phase's row: statuses, latency, memory, whether a secret was logged.
fn api_row(outcome: &ApiOutcome, plan: Plan) -> Vec<String> {
    let statuses = outcome
        .statuses
        .iter()
        .map(|(s, n)| format!("{n}× {s}"))
        .collect::<Vec<_>>()
        .join(", ");
    let expected = if outcome.condition == "STS down" {
        outcome.statuses.iter().all(|(s, _)| *s == 502 || *s == 503)
    } else {
        outcome
            .statuses
            .iter()
            .all(|(s, _)| *s == 200 || *s == 502 || *s == 503)
    };
    vec![
        format!("API, {}: {} callers", outcome.condition, plan.api_callers),
        format!("{} requests: {statuses}", outcome.requests),
        format!(
            "p50 {}, p99 {}, max {}; RSS {:.1} → {:.1} MiB; secret in log: {}",
            ms(outcome.p50),
            ms(outcome.p99),
            ms(outcome.max),
            mib(outcome.rss_before),
            mib(outcome.rss_after),
            outcome.secret_in_log
        ),
        if expected && !outcome.secret_in_log && outcome.max < Duration::from_secs(15) {
            "pass".into()
        } else {
            "FAIL".into()
        },
    ]
}
