//! `client-example`: get credentials, connect, print every message; reconnects and
//! refreshes credentials on its own.
//!
//! Exit codes: 0 success (`--count` reached or Ctrl-C), 2 bad usage, 3 could not get
//! credentials, 4 the IoT endpoint refused or forbade the connection, 1 anything else.

use std::ops::ControlFlow;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use clap::Parser;
use client_example::tls::TrustRoots;
use client_example::{Driver, DriverError, Event, HttpSource, Options};

#[derive(Parser)]
#[command(
    name = "client-example",
    version,
    about = "Connect to serverless-websockets and print what arrives"
)]
struct Args {
    /// The vending API's URL, e.g. https://abc123.execute-api.us-east-1.amazonaws.com/credentials.
    #[arg(long, env = "CREDENTIALS_API")]
    api: String,
    /// Bearer token (JWT) for the vending API.
    #[arg(long, env = "CREDENTIALS_TOKEN", hide_env_values = true)]
    token: Option<String>,
    /// Trust this CA certificate (PEM) instead of the public web PKI, e.g. the local stack's with --tls.
    #[arg(long)]
    ca_cert: Option<PathBuf>,
    /// Also subscribe to this topic (repeatable); the vended topic is always subscribed.
    #[arg(long = "topic")]
    topics: Vec<String>,
    /// Publish MSG to TOPIC once connected (needs a publish grant).
    #[arg(long, num_args = 2, value_names = ["TOPIC", "MSG"])]
    publish: Option<Vec<String>>,
    /// Exit after this many messages.
    #[arg(long)]
    count: Option<u64>,
    /// Print one JSON object per line instead of text.
    #[arg(long)]
    json: bool,
    /// MQTT keep-alive in seconds (30–1200).
    #[arg(long, default_value_t = 60, value_parser = clap::value_parser!(u64).range(30..=1200))]
    keep_alive: u64,
}

fn print(json: bool, event: &Event) {
    if json {
        let value = match event {
            Event::Message { topic, payload } => serde_json::json!({
                "event": "message", "topic": topic, "payload": String::from_utf8_lossy(payload)
            }),
            Event::CredentialsRefreshed { client_id, expiration } => {
                serde_json::json!({"event": "credentials", "clientId": client_id, "expiration": expiration})
            }
            Event::RefreshFailed { reason } => serde_json::json!({"event": "refresh-failed", "reason": reason}),
            Event::Connecting { client_id, attempt, .. } => {
                serde_json::json!({"event": "connecting", "clientId": client_id, "attempt": attempt})
            }
            Event::Connected { client_id } => serde_json::json!({"event": "connected", "clientId": client_id}),
            Event::Subscribed { topics } => serde_json::json!({"event": "subscribed", "topics": topics}),
            Event::Published { topic } => serde_json::json!({"event": "published", "topic": topic}),
            Event::Disconnected { reason } => serde_json::json!({"event": "disconnected", "reason": reason}),
            Event::Reconnecting { delay } => {
                serde_json::json!({"event": "reconnecting", "delayMs": delay.as_millis() as u64})
            }
        };
        println!("{value}");
        return;
    }
    match event {
        Event::Message { topic, payload } => println!("{topic} {}", String::from_utf8_lossy(payload)),
        Event::CredentialsRefreshed { client_id, expiration } => {
            eprintln!("credentials for client {client_id}, valid until {expiration}")
        }
        Event::RefreshFailed { reason } => eprintln!("could not refresh credentials (will retry): {reason}"),
        Event::Connecting { attempt, .. } => eprintln!("connecting (attempt {attempt})"),
        Event::Connected { client_id } => eprintln!("connected as {client_id}"),
        Event::Subscribed { topics } => eprintln!("subscribed to {}", topics.join(", ")),
        Event::Published { topic } => eprintln!("published to {topic}"),
        Event::Disconnected { reason } => eprintln!("disconnected: {reason}"),
        Event::Reconnecting { delay } => eprintln!("reconnecting in {:.1} s", delay.as_secs_f64()),
    }
}

#[tokio::main]
async fn main() -> ExitCode {
    let args = Args::parse();
    let trust = match &args.ca_cert {
        None => TrustRoots::WebPki,
        Some(path) => match std::fs::read(path) {
            Ok(pem) => TrustRoots::Pem(pem),
            Err(err) => {
                eprintln!("error: cannot read --ca-cert {}: {err}", path.display());
                return ExitCode::from(2);
            }
        },
    };
    let options = Options {
        keep_alive: Duration::from_secs(args.keep_alive),
        extra_topics: args.topics.clone(),
        publish_on_connect: args
            .publish
            .as_ref()
            .map(|p| vec![(p[0].clone(), bytes::Bytes::from(p[1].clone()))])
            .unwrap_or_default(),
        trust,
        ..Options::default()
    };
    let mut driver = Driver::new(HttpSource::new(&args.api, args.token.as_deref()), options);
    let mut received = 0u64;
    let json = args.json;
    let count = args.count;
    let on_event = |event: Event| {
        print(json, &event);
        if matches!(event, Event::Message { .. }) {
            received += 1;
            if count.is_some_and(|n| received >= n) {
                return ControlFlow::Break(());
            }
        }
        ControlFlow::Continue(())
    };
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    match driver.run(on_event, ctrl_c).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("error: {err}");
            ExitCode::from(match err {
                DriverError::Credentials(_) => 3,
                DriverError::Forbidden | DriverError::Refused(_) => 4,
                DriverError::Tls(_) => 2,
                DriverError::Presign(_) => 1,
            })
        }
    }
}
