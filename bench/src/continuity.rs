//! Session continuity: N clients (`client-example`'s driver) each receive a
//! numbered QoS 1 stream from a backend while every client is kicked several times
//! (`DeleteConnection`, session kept) and refreshes its credentials mid-stream.
//! Run twice in the same process: with resume tokens and persistent sessions (the
//! driver's default) and with clean sessions and a fresh vend at every refresh (a
//! client without resume), whose backend keeps pushing to the client ID it knew.
//! Reports messages lost, duplicates, client-ID changes, and the time from a kick to
//! the client's next delivery.
//!
//! Everything runs on loopback against an in-process local stack; the backend
//! publishes over MQTT as the local admin and kicks through the HTTPS data plane.

use crate::signing;

use std::collections::HashMap;
use std::ops::ControlFlow;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime};

use aws_credential_types::Credentials;
use client_example::{CredentialSource, Driver, Event, FetchError, HttpSource, Options, ResumeToken, Vended};
use rumqttc::{AsyncClient, MqttOptions, QoS, Transport};
use serverless_websockets_core::presign::{DEFAULT_EXPIRES, IotEndpoint, presign};
use serverless_websockets_local::stack::{LocalOptions, LocalStack};
use tokio::sync::mpsc;

use crate::report::{Report, ms, quantile};

#[derive(Debug, Clone)]
pub struct Plan {
    pub clients: usize,
    /// Messages per second to each client.
    pub rate: u32,
    pub duration: Duration,
    pub kicks_per_client: usize,
    /// The credentials' pretended lifetime; refreshed at half of it.
    pub lifetime: Duration,
}

/// Hands out real credentials from the local API with a short pretended lifetime,
/// so that every client refreshes mid-stream.
struct ShortLived {
    api: HttpSource,
    lifetime: Duration,
}

impl CredentialSource for ShortLived {
    async fn fetch(&self, resume: Option<&ResumeToken>) -> Result<Vended, FetchError> {
        let mut vended = self.api.fetch(resume).await?;
        let expires = SystemTime::now() + self.lifetime;
        vended.credentials.expiration = serverless_websockets_core::wire::format_iso8601(expires);
        Ok(vended)
    }
}

#[derive(Debug, Default)]
struct Outcome {
    published: u64,
    received: u64,
    lost: u64,
    duplicates: u64,
    kicks: u64,
    refreshes: u64,
    id_changes: u64,
    kick_to_delivery: Vec<Duration>,
}

/// What the collector knows about one client.
#[derive(Default)]
struct Client {
    first_id: String,
    seen: HashMap<u32, u32>,
}

pub async fn run(plan: Plan) -> anyhow::Result<Report> {
    let persistent = one_mode(&plan, true).await?;
    let clean = one_mode(&plan, false).await?;
    let row = |name: &str, o: &mut Outcome| {
        vec![
            name.to_owned(),
            plan.clients.to_string(),
            o.published.to_string(),
            format!(
                "{} ({:.2} %)",
                o.lost,
                100.0 * o.lost as f64 / o.published.max(1) as f64
            ),
            o.duplicates.to_string(),
            o.kicks.to_string(),
            o.refreshes.to_string(),
            o.id_changes.to_string(),
            ms(quantile(&mut o.kick_to_delivery, 0.5)),
            ms(quantile(&mut o.kick_to_delivery, 0.99)),
        ]
    };
    let (mut persistent, mut clean) = (persistent, clean);
    let json = serde_json::json!({
        "plan": {"clients": plan.clients, "rate": plan.rate, "seconds": plan.duration.as_secs_f64(),
                 "kicks_per_client": plan.kicks_per_client, "lifetime_s": plan.lifetime.as_secs_f64()},
        "persistent": outcome_json(&mut persistent),
        "clean": outcome_json(&mut clean),
    });
    Ok(Report {
        title: "Session continuity: a QoS 1 stream per client across kicks and credential refreshes".into(),
        header: [
            "client",
            "clients",
            "published",
            "lost",
            "duplicates",
            "kicks",
            "refreshes",
            "client-ID changes",
            "kick → next delivery p50",
            "p99",
        ]
        .map(String::from)
        .to_vec(),
        rows: vec![
            row("resume + persistent session", &mut persistent),
            row("fresh vend + clean session (reference)", &mut clean),
        ],
        notes: vec![format!(
            "{} clients, {} QoS 1 messages/s to each for {:.0} s, each kicked {} times (DeleteConnection) and refreshing its credentials every {:.0} s; the reference's backend keeps publishing to the client ID it first knew. Pass: 0 lost with resume.",
            plan.clients,
            plan.rate,
            plan.duration.as_secs_f64(),
            plan.kicks_per_client,
            plan.lifetime.as_secs_f64() / 2.0
        )],
        json,
    })
}

fn outcome_json(o: &mut Outcome) -> serde_json::Value {
    serde_json::json!({
        "published": o.published, "received": o.received, "lost": o.lost, "duplicates": o.duplicates,
        "kicks": o.kicks, "refreshes": o.refreshes, "client_id_changes": o.id_changes,
        "kick_to_delivery_p50_ms": quantile(&mut o.kick_to_delivery, 0.5).as_secs_f64() * 1000.0,
        "kick_to_delivery_p99_ms": quantile(&mut o.kick_to_delivery, 0.99).as_secs_f64() * 1000.0,
    })
}

type Events = mpsc::UnboundedReceiver<(usize, Event)>;

async fn one_mode(plan: &Plan, persistent: bool) -> anyhow::Result<Outcome> {
    // Kicks and reconnects measure continuity, not IoT's CONNECT rate (the
    // client spaces its own CONNECTs anyway).
    let mut options = LocalOptions::ephemeral();
    options.gateway.limits = serverless_websockets_local::gateway::Limits::relaxed();
    let stack = LocalStack::start(options).await?;
    let info = stack.info().clone();
    let (events_tx, mut events) = mpsc::unbounded_channel::<(usize, Event)>();
    let (stop_tx, stop) = tokio::sync::watch::channel(false);
    let drivers: Vec<_> = (0..plan.clients)
        .map(|index| spawn_driver(index, &info.api_url, plan, persistent, events_tx.clone(), stop.clone()))
        .collect();
    let mut outcome = Outcome::default();
    let mut clients = all_subscribed(plan, &mut events, &mut outcome).await?;
    let ids: Vec<String> = clients.iter().map(|c| c.first_id.clone()).collect();
    let admin = Credentials::new(
        &info.admin.access_key_id,
        &info.admin.secret_access_key,
        None,
        None,
        "bench",
    );
    let kicked_at: Arc<Mutex<HashMap<usize, Instant>>> = Arc::default();
    let publisher = publish_streams(&info.iot_endpoint, &info.region, &admin, &ids, plan);
    let kicker = kick_clients(
        &info.iot_data_endpoint,
        &info.region,
        &admin,
        &ids,
        plan,
        kicked_at.clone(),
    );
    let collect = collect(plan, &mut events, &mut clients, &kicked_at, &mut outcome);
    let (published, kicks, ()) = tokio::join!(publisher, kicker, collect);
    outcome.published = published?;
    outcome.kicks = kicks?;
    tally(plan, &clients, &mut outcome);
    let _ = stop_tx.send(true);
    for driver in drivers {
        let _ = driver.await;
    }
    stack.shutdown().await;
    Ok(outcome)
}

/// One client, driven as an app would drive it, reporting its events as `index`.
fn spawn_driver(
    index: usize,
    api_url: &str,
    plan: &Plan,
    persistent: bool,
    tx: mpsc::UnboundedSender<(usize, Event)>,
    mut stop: tokio::sync::watch::Receiver<bool>,
) -> tokio::task::JoinHandle<()> {
    let source = ShortLived {
        api: HttpSource::new(api_url, None),
        lifetime: plan.lifetime,
    };
    let options = Options {
        refresh_fraction: 0.5,
        persistent,
        backoff_min: Duration::from_millis(50),
        backoff_max: Duration::from_millis(500),
        ..Options::default()
    };
    tokio::spawn(async move {
        let mut driver = Driver::new(source, options);
        let on_event = |event| {
            let _ = tx.send((index, event));
            ControlFlow::Continue(())
        };
        let stopped = async move {
            let _ = stop.wait_for(|s| *s).await;
        };
        if let Err(err) = driver.run(on_event, stopped).await {
            eprintln!("client {index} stopped: {err}");
        }
    })
}

/// Waits until every client subscribed: its first client ID is the backend's
/// address for it.
async fn all_subscribed(plan: &Plan, events: &mut Events, outcome: &mut Outcome) -> anyhow::Result<Vec<Client>> {
    let mut clients: Vec<Client> = (0..plan.clients).map(|_| Client::default()).collect();
    let mut subscribed = vec![false; plan.clients];
    while !subscribed.iter().all(|s| *s) {
        let (index, event) = tokio::time::timeout(Duration::from_secs(60), events.recv())
            .await
            .map_err(|_| anyhow::anyhow!("not every client subscribed within 60 s"))?
            .ok_or_else(|| anyhow::anyhow!("drivers ended"))?;
        match event {
            Event::Connected { client_id, .. } if clients[index].first_id.is_empty() => {
                clients[index].first_id = client_id;
            }
            Event::Subscribed { .. } => subscribed[index] = true,
            Event::CredentialsRefreshed { .. } => outcome.refreshes += 1,
            _ => {}
        }
    }
    Ok(clients)
}

/// Counts what every client received until all have the whole stream (or the
/// run's end plus 15 s).
async fn collect(
    plan: &Plan,
    events: &mut Events,
    clients: &mut [Client],
    kicked_at: &Mutex<HashMap<usize, Instant>>,
    outcome: &mut Outcome,
) {
    let deadline = tokio::time::Instant::now() + plan.duration + Duration::from_secs(15);
    let expected = u64::from(plan.rate) * plan.duration.as_secs();
    loop {
        let all_in = clients.iter().all(|c| c.seen.len() as u64 >= expected);
        if all_in && tokio::time::Instant::now() > deadline - Duration::from_secs(15) {
            break;
        }
        let Ok(Some((index, event))) = tokio::time::timeout_at(deadline, events.recv()).await else {
            break;
        };
        match event {
            Event::Message { payload, .. } => {
                if let Some(n) = std::str::from_utf8(&payload).ok().and_then(|t| t.parse::<u32>().ok()) {
                    *clients[index].seen.entry(n).or_default() += 1;
                    outcome.received += 1;
                }
                if let Some(at) = kicked_at.lock().unwrap_or_else(|e| e.into_inner()).remove(&index) {
                    outcome.kick_to_delivery.push(at.elapsed());
                }
            }
            Event::CredentialsRefreshed { .. } => outcome.refreshes += 1,
            Event::NewClientId { .. } => outcome.id_changes += 1,
            Event::Connected { client_id, .. } if client_id != clients[index].first_id => {
                outcome.id_changes += 1;
                clients[index].first_id = client_id;
            }
            _ => {}
        }
    }
}

/// Losses and duplicates per client, against the numbered stream each was sent.
fn tally(plan: &Plan, clients: &[Client], outcome: &mut Outcome) {
    // The initial fetches are not refreshes.
    outcome.refreshes = outcome.refreshes.saturating_sub(plan.clients as u64);
    let per_client = u64::from(plan.rate) * plan.duration.as_secs();
    for client in clients {
        let unique = client.seen.keys().filter(|n| u64::from(**n) <= per_client).count() as u64;
        outcome.lost += per_client.saturating_sub(unique);
        outcome.duplicates += client
            .seen
            .values()
            .map(|c| u64::from(c.saturating_sub(1)))
            .sum::<u64>();
    }
}

/// The backend: message `n` to every client's topic each 1/rate seconds, at QoS 1,
/// over one MQTT connection as the local admin. Returns how many were published.
async fn publish_streams(
    iot_endpoint: &str,
    region: &str,
    admin: &Credentials,
    ids: &[String],
    plan: &Plan,
) -> anyhow::Result<u64> {
    let endpoint = IotEndpoint::parse(iot_endpoint)?;
    let url = presign(&endpoint, region, admin, SystemTime::now(), DEFAULT_EXPIRES)?;
    let mut options = MqttOptions::new("bench-backend", url, 0);
    options.set_transport(Transport::Ws);
    options.set_keep_alive(Duration::from_secs(60));
    let (client, mut eventloop) = AsyncClient::new(options, 1024);
    let pump = tokio::spawn(async move { while eventloop.poll().await.is_ok() {} });
    let per_client = plan.rate as usize * plan.duration.as_secs() as usize;
    let mut ticks = tokio::time::interval(Duration::from_secs(1) / plan.rate);
    let mut published = 0u64;
    for n in 1..=per_client {
        ticks.tick().await;
        for id in ids {
            client
                .publish(format!("allowed/{id}"), QoS::AtLeastOnce, false, n.to_string())
                .await?;
            published += 1;
        }
    }
    // Let the last PUBACKs arrive before the connection goes.
    let _ = client.disconnect().await;
    let _ = tokio::time::timeout(Duration::from_secs(10), pump).await;
    Ok(published)
}

/// Kicks every client `kicks_per_client` times, spread over the run.
async fn kick_clients(
    data_endpoint: &str,
    region: &str,
    admin: &Credentials,
    ids: &[String],
    plan: &Plan,
    kicked_at: Arc<Mutex<HashMap<usize, Instant>>>,
) -> anyhow::Result<u64> {
    let start = tokio::time::Instant::now();
    let mut schedule: Vec<(Duration, usize)> = Vec::new();
    for (index, _) in ids.iter().enumerate() {
        for k in 0..plan.kicks_per_client {
            let slot = plan.duration.mul_f64(
                (k as f64 + 0.5 + index as f64 / ids.len() as f64 * 0.5) / (plan.kicks_per_client as f64 + 1.0),
            );
            schedule.push((slot, index));
        }
    }
    schedule.sort();
    let http = reqwest::Client::new();
    let mut kicks = 0;
    for (at, index) in schedule {
        tokio::time::sleep_until(start + at).await;
        let url = format!("{data_endpoint}/connections/{}", ids[index]);
        let headers = [("host", signing::host_of(&url))];
        let signed = signing::sign_headers(
            &signing::ToSign {
                method: "DELETE",
                url: &url,
                headers: &headers,
                body: b"",
                service: "iotdata",
                region,
                content_sha256_header: false,
            },
            admin,
            SystemTime::now(),
        );
        let mut request = http.delete(&url);
        for (name, value) in signed {
            request = request.header(name, value);
        }
        kicked_at.lock().unwrap().insert(index, Instant::now());
        if request.send().await?.status().is_success() {
            kicks += 1;
        } else {
            // Not connected at that moment (between a kick and its reconnect).
            kicked_at.lock().unwrap().remove(&index);
        }
    }
    Ok(kicks)
}
