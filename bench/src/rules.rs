//! The rules engine's cost, measured two ways in one run:
//!
//! * per message per rule: a typical rule (the chat rule of `backend-example`)
//!   evaluated over a JSON message — the payload parsed, WHERE and SELECT run,
//!   the output serialised — against the reference of parsing the same payload
//!   alone, which any rule that reads JSON pays;
//! * on the gateway's fan-out: the same load on our gateway without rules and
//!   with ten rules whose FROM matches nothing, started one after the other.
//!
//! Not measured here: publish → rule → function → reply round trips (the Lambda
//! side is `cargo lambda watch`, outside this process).

use std::path::Path;
use std::time::Instant;

use rumqttc::QoS;
use serverless_websockets_local::rules::sql::{Context, Sql, SqlVersion, payload_json};

use crate::brokers;
use crate::fanout::{self, Load};
use crate::report::{Report, ms};

const RULE: &str =
    "SELECT text, topic(2) AS sender, clientid() AS client, timestamp() AS at FROM 'from/+' WHERE kind = 'chat'";
const PAYLOAD: &[u8] = br#"{"kind":"chat","text":"hello there, how is everyone doing today?","room":"42","n":17}"#;

/// Nanoseconds per call of `f`, over `count` calls.
fn per_call(count: u32, mut f: impl FnMut()) -> f64 {
    let started = Instant::now();
    for _ in 0..count {
        f();
    }
    started.elapsed().as_secs_f64() * 1e9 / f64::from(count.max(1))
}

/// (evaluation, reference) in nanoseconds per message.
fn evaluation(count: u32) -> anyhow::Result<(f64, f64)> {
    let sql = Sql::parse(RULE, SqlVersion::V2016_03_23).map_err(|e| anyhow::anyhow!("{e}"))?;
    let reference = per_call(count, || {
        std::hint::black_box(payload_json(std::hint::black_box(PAYLOAD)));
    });
    let evaluate = per_call(count, || {
        let json = payload_json(std::hint::black_box(PAYLOAD));
        let context = Context {
            version: SqlVersion::V2016_03_23,
            topic: "from/c1",
            client_id: Some("c1"),
            principal: Some("AROABENCH:c1"),
            timestamp_ms: 1,
            account_id: "000000000000",
            trace_id: None,
            payload: PAYLOAD,
            json: json.as_ref(),
        };
        let output = sql.evaluate(&context).map(|o| o.to_bytes());
        std::hint::black_box(output);
    });
    Ok((evaluate, reference))
}

/// Ten rules on topics the load never publishes to.
fn idle_rules(dir: &Path) -> anyhow::Result<std::path::PathBuf> {
    let rules: Vec<serde_json::Value> = (0..10)
        .map(|n| {
            serde_json::json!({"ruleName": format!("idle{n}"), "topicRulePayload": {
                "sql": format!("SELECT * FROM 'elsewhere/{n}/+' WHERE kind = 'chat'"),
                "awsIotSqlVersion": "2016-03-23",
                "actions": [{"republish": {"topic": "nowhere", "roleArn": "arn:aws:iam::000000000000:role/r"}}],
            }})
        })
        .collect();
    let path = dir.join("rules.json");
    std::fs::write(&path, serde_json::to_string(&rules)?)?;
    Ok(path)
}

/// The run with more deliveries per second.
fn better(best: Option<fanout::Outcome>, outcome: fanout::Outcome) -> fanout::Outcome {
    match best {
        Some(best) if best.deliveries_per_s >= outcome.deliveries_per_s => best,
        _ => outcome,
    }
}

/// The fan-out `load` without rules and with the `rules` file, alternating the
/// two set-ups (plain, rules, plain, rules) and keeping each one's better run: the
/// machine's noise between consecutive broker starts is larger than the effect.
async fn fanout_both(binary: &Path, rules: &Path, load: Load) -> anyhow::Result<(fanout::Outcome, fanout::Outcome)> {
    let args = [std::ffi::OsStr::new("--rules"), rules.as_os_str()];
    let mut without: Option<fanout::Outcome> = None;
    let mut with: Option<fanout::Outcome> = None;
    for round in 0..2 {
        let plain = brokers::ours(binary).await?;
        let outcome = fanout::run(&plain, load, &format!("plain{round}")).await?;
        plain.stop().await;
        without = Some(better(without, outcome));
        let ruled = brokers::ours_with(binary, &args).await?;
        let outcome = fanout::run(&ruled, load, &format!("rules{round}")).await?;
        ruled.stop().await;
        with = Some(better(with, outcome));
    }
    let (Some(without), Some(with)) = (without, with) else {
        anyhow::bail!("no fan-out run");
    };
    Ok((without, with))
}

pub async fn run(binary: &Path, evaluations: u32, subscribers: usize, messages: usize) -> anyhow::Result<Report> {
    let (evaluate, reference) = evaluation(evaluations)?;
    let dir = tempfile::tempdir()?;
    let rules = idle_rules(dir.path())?;
    let load = Load {
        subscribers,
        messages,
        payload: 64,
        qos: QoS::AtMostOnce,
        rate: None,
        mqtt5: false,
    };
    let (without, with) = fanout_both(binary, &rules, load).await?;
    let us = |ns: f64| format!("{:.2} µs", ns / 1e3);
    let ratio = with.deliveries_per_s / without.deliveries_per_s.max(1e-9);
    Ok(Report {
        title: format!(
            "Rules engine cost ({evaluations} evaluations; fan-out to {subscribers} subscribers, {messages} messages)"
        ),
        header: ["measure", "figure", "reference", "ratio"].map(String::from).to_vec(),
        rows: vec![
            vec![
                "one rule over one JSON message (parse, WHERE, SELECT, output)".into(),
                us(evaluate),
                format!("{} (parsing the payload alone)", us(reference)),
                format!("{:.2}×", evaluate / reference.max(1e-9)),
            ],
            vec![
                "fan-out deliveries/s with 10 rules matching nothing".into(),
                format!("{:.0}/s", with.deliveries_per_s),
                format!("{:.0}/s without rules", without.deliveries_per_s),
                format!("{ratio:.2}×"),
            ],
            vec![
                "fan-out p99 with those rules".into(),
                ms(with.p99),
                format!("{} without rules", ms(without.p99)),
                format!("{:.2}×", with.p99.as_secs_f64() / without.p99.as_secs_f64().max(1e-9)),
            ],
        ],
        notes: vec![
            "Targets: a few microseconds per rule per message; fan-out within a few percent when no rule matches."
                .into(),
            format!(
                "Best of two alternating runs each. Lost in those runs: {} without rules, {} with rules (QoS 0; a subscriber that falls 1,024 messages behind is disconnected).",
                without.lost, with.lost
            ),
        ],
        json: serde_json::json!({
            "suite": "rules", "evaluate_ns": evaluate, "reference_ns": reference,
            "fanout_without": without.deliveries_per_s, "fanout_with": with.deliveries_per_s,
            "p99_without_ms": without.p99.as_secs_f64() * 1e3, "p99_with_ms": with.p99.as_secs_f64() * 1e3,
        }),
    })
}
