//! `bench`: reproducible benchmarks. Every suite starts what it measures on
//! loopback, is bounded in count and time, stops by itself, and reports its
//! headline figure as a ratio against a reference measured in the same run (these
//! machines are noisy), with the absolute numbers for context.
//!
//! Suites: `vending`, `lambda-startup`, `sigv4`, `fanout`, `mqtt5`, `connections`, `scale`, `soak`, `rules`, `roundtrip`, `abuse`, `authorizer`.
//! `--smoke` runs a few iterations only, for CI.

#![allow(
    clippy::expect_used,
    reason = "a measurement that cannot do its work (a closure in a timed loop, a pipe it set up) stops with its reason; only developers run it"
)]

mod abuse;
mod authorizer;
mod brokers;
mod connections;
mod continuity;
mod fanout;
mod lambda_startup;
mod mqtt_ws;
mod report;
mod roundtrip;
mod rules;
mod scale;
/// SigV4 header signing, shared with the tests (`tests/common/sigv4.rs`).
#[allow(dead_code, reason = "the shared signing helpers; the suites sign headers only")]
#[path = "../../tests/common/sigv4.rs"]
mod signing;
mod sigv4;
mod soak;
mod vending;

mod gateway_suites {
    //! Runs the fan-out, connection and scale suites against our gateway and the
    //! references (mosquitto, rumqttd) in one process.

    use std::path::Path;

    use rumqttc::mqttbytes::QoS;

    use crate::brokers;
    use crate::fanout::{self, Load};
    use crate::report::{Report, ms};

    /// Deliveries/s, p50, p99 and losses of `a` against the reference `b`, with ratios.
    fn versus(a: &fanout::Outcome, b: &fanout::Outcome) -> [String; 4] {
        [
            format!(
                "{:.0}/s vs {:.0}/s ({:.2}×)",
                a.deliveries_per_s,
                b.deliveries_per_s,
                a.deliveries_per_s / b.deliveries_per_s.max(1e-9)
            ),
            format!("{} vs {}", ms(a.p50), ms(b.p50)),
            format!(
                "{} vs {} ({:.2}×)",
                ms(a.p99),
                ms(b.p99),
                a.p99.as_secs_f64() / b.p99.as_secs_f64().max(1e-9)
            ),
            format!("{} vs {}", a.lost, b.lost),
        ]
    }

    /// One table row per (ours, reference) pair of runs of `load`.
    fn pair_rows(outcomes: &[(&str, fanout::Outcome)], load: &Load) -> Vec<Vec<String>> {
        outcomes
            .chunks(2)
            .map(|pair| {
                let (ours, theirs) = (&pair[0].1, &pair[1].1);
                let mut row = vec![
                    pair[1].0.to_owned(),
                    load.subscribers.to_string(),
                    format!("QoS {}", if load.qos == QoS::AtLeastOnce { 1 } else { 0 }),
                    format!("{} B", load.payload),
                    load.rate.map_or("max".into(), |r| format!("{r}/s")),
                ];
                row.extend(versus(ours, theirs));
                row
            })
            .collect()
    }

    /// One fan-out run's raw figures.
    fn fanout_json(broker: &str, load: &Load, o: &fanout::Outcome) -> serde_json::Value {
        serde_json::json!({
            "broker": broker, "subscribers": load.subscribers, "qos": if load.qos == QoS::AtLeastOnce { 1 } else { 0 },
            "payload": load.payload, "rate": load.rate, "messages": load.messages,
            "deliveries_per_s": o.deliveries_per_s, "p50_ms": o.p50.as_secs_f64() * 1e3,
            "p99_ms": o.p99.as_secs_f64() * 1e3, "lost": o.lost,
        })
    }

    pub async fn fanout(binary: &Path, subscribers: &[usize], messages: usize, rate: u32) -> anyhow::Result<Report> {
        let mut rows = Vec::new();
        let mut json = Vec::new();
        let mut run = 0;
        for &n in subscribers {
            for (qos, payload, offered) in [
                (QoS::AtMostOnce, 64, None),
                (QoS::AtLeastOnce, 64, None),
                (QoS::AtMostOnce, 4096, None),
                (QoS::AtLeastOnce, 64, Some(rate)),
            ] {
                let load = Load {
                    subscribers: n,
                    messages,
                    payload,
                    qos,
                    rate: offered,
                    mqtt5: false,
                };
                let mut outcomes = Vec::new();
                for reference in [Reference::Mosquitto, Reference::Rumqttd] {
                    // Ours again beside each reference: the pair runs back to back.
                    for start in [brokers::ours(binary).await?, reference.start(n + 2).await?] {
                        run += 1;
                        let outcome = fanout::run(&start, load, &format!("r{run}")).await?;
                        outcomes.push((start.name, outcome));
                        start.stop().await;
                    }
                }
                rows.extend(pair_rows(&outcomes, &load));
                for (name, o) in &outcomes {
                    json.push(fanout_json(name, &load, o));
                }
            }
        }
        Ok(Report {
            title: format!("Gateway fan-out, ours vs mosquitto and vs rumqttd ({messages} messages per run)"),
            header: [
                "reference",
                "subscribers",
                "QoS",
                "payload",
                "offered",
                "deliveries/s (ours vs reference)",
                "p50",
                "p99",
                "lost",
            ]
            .map(String::from)
            .to_vec(),
            rows,
            notes: vec![
                "Targets: deliveries/s ≥ both references', p99 ≤ both, zero loss at QoS 1 — while ours verifies SigV4 at connect and checks the policy on every delivery, which neither reference does.".into(),
                "Each reference runs right after a run of ours with the same load (a fresh process each), so each row's ratio comes from one pair.".into(),
            ],
            json: serde_json::json!({"suite": "fanout", "runs": json}),
        })
    }

    /// The same fan-out on our gateway with 3.1.1 subscribers and with MQTT 5
    /// subscribers, in one run: what MQTT 5 (its frames, its client's decoding)
    /// costs against 3.1.1.
    pub async fn mqtt5(binary: &Path, subscribers: &[usize], messages: usize) -> anyhow::Result<Report> {
        let mut rows = Vec::new();
        let mut json = Vec::new();
        let mut run = 0;
        for &n in subscribers {
            for qos in [QoS::AtMostOnce, QoS::AtLeastOnce] {
                let mut outcomes = Vec::new();
                for mqtt5 in [false, true] {
                    let load = Load {
                        subscribers: n,
                        messages,
                        payload: 64,
                        qos,
                        rate: None,
                        mqtt5,
                    };
                    let start = brokers::ours(binary).await?;
                    run += 1;
                    let outcome = fanout::run(&start, load, &format!("v{run}")).await?;
                    start.stop().await;
                    json.push(serde_json::json!({
                        "subscribers": n, "qos": if qos == QoS::AtLeastOnce { 1 } else { 0 },
                        "mqtt": if mqtt5 { 5 } else { 4 }, "messages": messages,
                        "deliveries_per_s": outcome.deliveries_per_s, "p50_ms": outcome.p50.as_secs_f64() * 1e3,
                        "p99_ms": outcome.p99.as_secs_f64() * 1e3, "lost": outcome.lost,
                    }));
                    outcomes.push(outcome);
                }
                let (v4, v5) = (&outcomes[0], &outcomes[1]);
                let mut row = vec![
                    n.to_string(),
                    format!("QoS {}", if qos == QoS::AtLeastOnce { 1 } else { 0 }),
                ];
                row.extend(versus(v5, v4));
                rows.push(row);
            }
        }
        Ok(Report {
            title: format!("Gateway fan-out to MQTT 5 vs 3.1.1 subscribers, same gateway ({messages} messages of 64 B per run)"),
            header: ["subscribers", "QoS", "deliveries/s (5 vs 3.1.1)", "p50", "p99", "lost"]
                .map(String::from)
                .to_vec(),
            rows,
            notes: vec![
                "The publisher speaks 3.1.1 in both runs; each version's subscribers share one frame per message and QoS (a message that expires is encoded per connection, for its remaining interval; this load has none).".into(),
            ],
            json: serde_json::Value::Array(json),
        })
    }

    /// A reference broker the gateway suites compare against.
    #[derive(Clone, Copy)]
    enum Reference {
        Mosquitto,
        Rumqttd,
    }

    impl Reference {
        async fn start(self, connections: usize) -> anyhow::Result<brokers::Broker> {
            match self {
                Self::Mosquitto => brokers::mosquitto().await,
                Self::Rumqttd => brokers::rumqttd(connections).await,
            }
        }
    }

    /// N idle subscribed connections and one message to all of them: ours vs rumqttd.
    pub async fn scale(binary: &Path, wanted: usize) -> anyhow::Result<Report> {
        let (_, limit) = serverless_websockets_local::listen::raise_file_limit(wanted as u64 + 10_000)?;
        // Each process holds one file per connection (the load generator here, the
        // broker there): a limit below what was asked caps the count, and says so.
        let count = wanted
            .min(usize::try_from(limit.saturating_sub(1_000)).unwrap_or(usize::MAX))
            .max(1);
        if count < wanted {
            eprintln!(
                "the open-file limit is {limit} and cannot be raised here (setrlimit refused): {count} connections instead of {wanted}"
            );
        }
        let mut rows = Vec::new();
        let mut json = Vec::new();
        for (run, start) in [
            (1, brokers::ours(binary).await?),
            (2, brokers::rumqttd(count + 2).await?),
        ] {
            // A broker that cannot hold the count is a result too: its row says
            // where it failed, and the other broker's run still happens.
            let outcome = match crate::scale::run(&start, count, run).await {
                Ok(outcome) => outcome,
                Err(err) => {
                    rows.push(vec![start.name.to_owned(), format!("failed: {err:#}")]);
                    json.push(serde_json::json!({"broker": start.name, "failed": format!("{err:#}")}));
                    start.stop().await;
                    continue;
                }
            };
            rows.push(vec![
                start.name.to_owned(),
                outcome.connections.to_string(),
                format!("{:.1} KiB", outcome.bytes_per_connection / 1024.0),
                format!("{:.0}/s", outcome.connects_per_s),
                ms(outcome.fanout),
                format!("{:.0} MiB", outcome.rss_after as f64 / 1048576.0),
            ]);
            json.push(serde_json::json!({
                "broker": start.name, "connections": outcome.connections,
                "bytes_per_connection": outcome.bytes_per_connection, "connects_per_s": outcome.connects_per_s,
                "fanout_ms": outcome.fanout.as_secs_f64() * 1e3, "rss_after": outcome.rss_after,
            }));
            start.stop().await;
        }
        Ok(Report {
            title: format!("Scale: {count} idle subscribed connections, one message to all"),
            header: ["broker", "connections", "memory per connection", "connect + subscribe rate", "fan-out of one message to all", "broker RSS"]
                .map(String::from)
                .to_vec(),
            rows,
            notes: vec![
                format!("Open-file limit {limit} per process ({wanted} asked); connections from 127.0.<run>.2 onwards, 10,000 per source address."),
                "Targets: memory per connection ≤ rumqttd's; connects/s ≥ 2× rumqttd's; ours verifies SigV4 and a policy at each connect and checks iot:Receive on each delivery.".into(),
            ],
            json: serde_json::json!({"suite": "scale", "rows": json}),
        })
    }

    pub async fn connections(binary: &Path, count: usize) -> anyhow::Result<Report> {
        let mut rows = Vec::new();
        let mut json = Vec::new();
        for start in [
            brokers::ours(binary).await?,
            brokers::mosquitto().await?,
            brokers::rumqttd(count + 2).await?,
        ] {
            let outcome = crate::connections::run(&start, count).await?;
            rows.push(vec![
                start.name.to_owned(),
                format!("{:.1} KiB", outcome.bytes_per_connection / 1024.0),
                format!("{:.0}/s", outcome.connects_per_s),
                format!(
                    "{:.1} → {:.1} MiB",
                    outcome.rss_before as f64 / 1048576.0,
                    outcome.rss_after as f64 / 1048576.0
                ),
            ]);
            json.push(serde_json::json!({
                "broker": start.name, "connections": count, "bytes_per_connection": outcome.bytes_per_connection,
                "connects_per_s": outcome.connects_per_s, "rss_before": outcome.rss_before, "rss_after": outcome.rss_after,
            }));
            start.stop().await;
        }
        Ok(Report {
            title: format!("Idle connections ({count} per broker)"),
            header: ["broker", "resident memory per connection", "connect rate", "broker RSS"].map(String::from).to_vec(),
            rows,
            notes: vec!["Targets: idle memory ≤ both references' per connection; connects/s ≥ 2× both (ours: WebSocket handshake + SigV4 verification + a policy check + CONNACK; theirs: anonymous).".into()],
            json: serde_json::json!({"suite": "connections", "rows": json}),
        })
    }
}

use std::path::PathBuf;

use clap::{Parser, Subcommand};

#[derive(Parser)]
#[command(name = "bench", about = "serverless-websockets benchmarks")]
struct Cli {
    #[command(subcommand)]
    suite: Suite,
    /// A few iterations only: checks that the suite still runs (CI).
    #[arg(long, global = true)]
    smoke: bool,
    /// Write the raw figures here as JSON.
    #[arg(long, global = true)]
    json: Option<PathBuf>,
}

#[derive(Subcommand)]
enum Suite {
    /// Vending API latency and throughput at concurrency 1, 8, 64 vs STS alone; handler CPU.
    Vending {
        /// Requests per concurrency level.
        #[arg(long, default_value_t = 2000)]
        requests: usize,
        /// Only the handler-CPU loop (for profiling with callgrind or perf).
        #[arg(long)]
        handler_only: bool,
    },
    /// Gateway fan-out vs mosquitto: N subscribers on one topic, one publisher.
    Fanout {
        /// The serverless-websockets binary to start (release build).
        #[arg(long, default_value = "target/release/serverless-websockets")]
        binary: PathBuf,
        /// Subscriber counts to run.
        #[arg(long, value_delimiter = ',', default_value = "100,1000")]
        subscribers: Vec<usize>,
        /// Messages per run.
        #[arg(long, default_value_t = 1000)]
        messages: usize,
        /// The fixed offered rate, messages per second (runs at max rate too).
        #[arg(long, default_value_t = 200)]
        rate: u32,
    },
    /// Fan-out to MQTT 5 subscribers vs 3.1.1 subscribers on our gateway, same run.
    Mqtt5 {
        #[arg(long, default_value = "target/release/serverless-websockets")]
        binary: PathBuf,
        #[arg(long, value_delimiter = ',', default_value = "100,1000")]
        subscribers: Vec<usize>,
        #[arg(long, default_value_t = 1000)]
        messages: usize,
    },
    /// Idle connections vs mosquitto: memory per connection and connect rate.
    Connections {
        #[arg(long, default_value = "target/release/serverless-websockets")]
        binary: PathBuf,
        /// Connections to open to each broker.
        #[arg(long, default_value_t = 10_000)]
        count: usize,
    },
    /// N idle subscribed connections (several loopback source addresses, file
    /// limit raised) and one message fanned out to all: ours vs rumqttd.
    Scale {
        #[arg(long, default_value = "target/release/serverless-websockets")]
        binary: PathBuf,
        #[arg(long, default_value_t = 100_000)]
        count: usize,
    },
    /// SigV4 presign and verify operations per second on one core.
    Sigv4 {
        #[arg(long, default_value_t = 20_000)]
        count: u64,
    },
    /// Soak: ≥ 10,000 connections held, churned and published to for ≥ 10 minutes,
    /// then the API with STS slow and STS down (not part of the test command).
    Soak {
        #[arg(long, default_value = "target/release/serverless-websockets")]
        binary: PathBuf,
        #[arg(long, default_value_t = 10_000)]
        connections: usize,
        #[arg(long, default_value_t = 50)]
        subscribers: usize,
        /// Gateway phase length, seconds, after the warm-up.
        #[arg(long, default_value_t = 600)]
        seconds: u64,
        /// The same load before the memory baseline is taken, seconds.
        #[arg(long, default_value_t = 60)]
        warm_up: u64,
        /// QoS 1 messages per second.
        #[arg(long, default_value_t = 200)]
        rate: u32,
        /// Idle connections closed and reopened per second.
        #[arg(long, default_value_t = 100)]
        churn: usize,
    },
    /// Session continuity: a QoS 1 stream per client across kicks and credential
    /// refreshes, with resume + persistent sessions vs fresh vends + clean sessions.
    Continuity {
        #[arg(long, default_value_t = 100)]
        clients: usize,
        /// Messages per second to each client.
        #[arg(long, default_value_t = 10)]
        rate: u32,
        #[arg(long, default_value_t = 15)]
        seconds: u64,
        #[arg(long, default_value_t = 3)]
        kicks: usize,
    },
    /// The rules engine: one rule's evaluation vs parsing the payload; fan-out with idle rules vs none.
    Rules {
        /// The serverless-websockets binary to start (release build).
        #[arg(long, default_value = "target/release/serverless-websockets")]
        binary: PathBuf,
        /// Rule evaluations to time.
        #[arg(long, default_value_t = 200_000)]
        evaluations: u32,
        #[arg(long, default_value_t = 100)]
        subscribers: usize,
        #[arg(long, default_value_t = 2000)]
        messages: usize,
    },
    /// The second audit's memory scenarios: a reconnect loop with delayed wills,
    /// user-property-padded messages to an away session, unauthenticated requests.
    Abuse {
        #[arg(long, default_value = "target/release/serverless-websockets")]
        binary: PathBuf,
        /// Reconnects in the first round (the second makes 4×).
        #[arg(long, default_value_t = 100)]
        reconnects: usize,
        /// Messages to the away session.
        #[arg(long, default_value_t = 300)]
        messages: usize,
        /// Unauthenticated requests held open.
        #[arg(long, default_value_t = 300)]
        requests: usize,
    },
    /// The two-way round trip through a rule and a function vs a direct publish, at 1 and 64 clients.
    Roundtrip {
        /// Round trips per client.
        #[arg(long, default_value_t = 50)]
        count: usize,
    },
    /// Connect through the JWT custom authorizer (in-process and via the Invoke API) vs vend + presign + connect.
    Authorizer {
        /// Connects per path.
        #[arg(long, default_value_t = 200)]
        count: usize,
    },
    /// Lambda cold start: process start → first /runtime/invocation/next, and → first response.
    LambdaStartup {
        /// The Lambda artifact to start (build it with --release first).
        #[arg(long, default_value = "target/release/serverless-websockets-vending")]
        binary: PathBuf,
        /// Starts to measure.
        #[arg(long, default_value_t = 25)]
        runs: usize,
    },
}

/// A fan-out suite's subscriber counts and messages per run: tiny with `--smoke`.
fn fanout_size(smoke: bool, subscribers: Vec<usize>, messages: usize) -> (Vec<usize>, usize) {
    if smoke { (vec![5], 20) } else { (subscribers, messages) }
}

/// The soak's sizes: a few seconds with `--smoke`, else as given.
fn soak_plan(
    smoke: bool,
    connections: usize,
    subscribers: usize,
    seconds: u64,
    warm_up: u64,
    rate: u32,
    churn: usize,
) -> soak::Plan {
    use std::time::Duration;
    if smoke {
        return soak::Plan {
            connections: 100,
            subscribers: 5,
            duration: Duration::from_secs(3),
            warm_up: Duration::from_secs(2),
            rate: 50,
            churn: 10,
            api_callers: 4,
            api_duration: Duration::from_secs(3),
        };
    }
    soak::Plan {
        connections,
        subscribers,
        duration: Duration::from_secs(seconds),
        warm_up: Duration::from_secs(warm_up),
        rate,
        churn,
        api_callers: 50,
        api_duration: Duration::from_secs(30),
    }
}

/// The continuity suite's sizes: a few seconds with `--smoke`, else as given.
fn continuity_plan(smoke: bool, clients: usize, rate: u32, seconds: u64, kicks: usize) -> continuity::Plan {
    use std::time::Duration;
    if smoke {
        return continuity::Plan {
            clients: 5,
            rate: 5,
            duration: Duration::from_secs(4),
            kicks_per_client: 1,
            lifetime: Duration::from_secs(4),
        };
    }
    continuity::Plan {
        clients,
        rate,
        duration: Duration::from_secs(seconds),
        kicks_per_client: kicks,
        lifetime: Duration::from_secs(seconds).max(Duration::from_secs(4)),
    }
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    let report = run_suite(cli.suite, cli.smoke).await?;
    println!("{}", report.markdown());
    if let Some(path) = cli.json {
        std::fs::write(&path, serde_json::to_string_pretty(&report.json)?)?;
        eprintln!("raw figures written to {}", path.display());
    }
    Ok(())
}

/// Runs one suite, smoke-sized with `smoke`.
#[allow(
    clippy::too_many_lines,
    reason = "one dispatch table: each suite beside its arguments"
)]
async fn run_suite(suite: Suite, smoke: bool) -> anyhow::Result<report::Report> {
    let cli = SmokeOnly { smoke };
    Ok(match suite {
        Suite::Vending {
            requests,
            handler_only: true,
        } => vending::handler_report(requests).await?,
        Suite::Vending {
            requests,
            handler_only: false,
        } => vending::run(if cli.smoke { 20 } else { requests }).await?,
        Suite::Sigv4 { count } => sigv4::run(if cli.smoke { 200 } else { count })?,
        Suite::Fanout {
            binary,
            subscribers,
            messages,
            rate,
        } => {
            let (subscribers, messages) = fanout_size(cli.smoke, subscribers, messages);
            gateway_suites::fanout(&binary, &subscribers, messages, rate).await?
        }
        Suite::Mqtt5 {
            binary,
            subscribers,
            messages,
        } => {
            let (subscribers, messages) = fanout_size(cli.smoke, subscribers, messages);
            gateway_suites::mqtt5(&binary, &subscribers, messages).await?
        }
        Suite::Connections { binary, count } => {
            gateway_suites::connections(&binary, if cli.smoke { 50 } else { count }).await?
        }
        Suite::Scale { binary, count } => gateway_suites::scale(&binary, if cli.smoke { 500 } else { count }).await?,
        Suite::Soak {
            binary,
            connections,
            subscribers,
            seconds,
            warm_up,
            rate,
            churn,
        } => {
            let plan = soak_plan(cli.smoke, connections, subscribers, seconds, warm_up, rate, churn);
            soak::run(&binary, plan).await?
        }
        Suite::Continuity {
            clients,
            rate,
            seconds,
            kicks,
        } => {
            let plan = continuity_plan(cli.smoke, clients, rate, seconds, kicks);
            continuity::run(plan).await?
        }
        Suite::Rules {
            binary,
            evaluations,
            subscribers,
            messages,
        } => {
            let (subscribers, messages) = fanout_size(cli.smoke, vec![subscribers], messages);
            let evaluations = if cli.smoke { 1000 } else { evaluations };
            rules::run(&binary, evaluations, subscribers[0], messages).await?
        }
        Suite::Abuse {
            binary,
            reconnects,
            messages,
            requests,
        } => {
            let (reconnects, messages, requests) = if cli.smoke {
                (5, 5, 5)
            } else {
                (reconnects, messages, requests)
            };
            abuse::report(&binary, (reconnects, messages, requests), !cli.smoke).await?
        }
        Suite::Roundtrip { count } => roundtrip::run(if cli.smoke { 3 } else { count }).await?,
        Suite::Authorizer { count } => authorizer::run(if cli.smoke { 5 } else { count }).await?,
        Suite::LambdaStartup { binary, runs } => lambda_startup::run(&binary, if cli.smoke { 3 } else { runs }).await?,
    })
}

/// What the suites read of the command line besides their own arguments.
struct SmokeOnly {
    smoke: bool,
}
