//! `client-example`: get credentials, connect, print every message; reconnects and
//! refreshes credentials on its own.
//!
//! Exit codes: 0 success (`--count` reached, Ctrl-C, or stdout closed), 2 bad usage,
//! 3 could not get credentials, 4 the IoT endpoint refused or forbade the connection
//! (or refused the same SUBSCRIBE/PUBLISH twice), 1 anything else.
//!
//! With `--json`, a message's payload is the text itself when it is UTF-8
//! (`"encoding": "utf-8"`), otherwise its bytes in base64 (`"encoding": "base64"`).

use std::io::Write;
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
    /// Refresh credentials (resuming: same client ID) after this fraction of their
    /// lifetime, 0.01–1 (demos and tests use a small one).
    #[arg(long, default_value_t = 0.8, value_parser = refresh_fraction)]
    refresh_fraction: f64,
}

fn refresh_fraction(value: &str) -> Result<f64, String> {
    match value.parse::<f64>() {
        Ok(f) if (0.01..=1.0).contains(&f) => Ok(f),
        _ => Err(format!("{value:?} is not a number from 0.01 to 1")),
    }
}

/// A payload as JSON: the text when it is UTF-8, else base64, and which it is.
fn payload_json(payload: &[u8]) -> (String, &'static str) {
    match std::str::from_utf8(payload) {
        Ok(text) => (text.to_owned(), "utf-8"),
        Err(_) => {
            use base64::Engine;
            (base64::engine::general_purpose::STANDARD.encode(payload), "base64")
        }
    }
}

fn json_of(event: &Event) -> serde_json::Value {
    match event {
        Event::Message { topic, payload } => {
            let (payload, encoding) = payload_json(payload);
            serde_json::json!({"event": "message", "topic": topic, "payload": payload, "encoding": encoding})
        }
        Event::CredentialsRefreshed { client_id, expiration } => {
            serde_json::json!({"event": "credentials", "clientId": client_id, "expiration": expiration})
        }
        Event::RefreshFailed { reason } => serde_json::json!({"event": "refresh-failed", "reason": reason}),
        Event::Connecting { client_id, attempt, .. } => {
            serde_json::json!({"event": "connecting", "clientId": client_id, "attempt": attempt})
        }
        Event::Connected {
            client_id,
            session_present,
        } => serde_json::json!({"event": "connected", "clientId": client_id, "sessionPresent": session_present}),
        Event::NewClientId {
            previous,
            client_id,
            reason,
        } => {
            serde_json::json!({"event": "new-client-id", "previous": previous, "clientId": client_id, "reason": reason})
        }
        Event::Subscribed { topics } => serde_json::json!({"event": "subscribed", "topics": topics}),
        Event::Published { topic } => serde_json::json!({"event": "published", "topic": topic}),
        Event::Disconnected { reason } => serde_json::json!({"event": "disconnected", "reason": reason}),
        Event::Reconnecting { delay } => {
            serde_json::json!({"event": "reconnecting", "delayMs": delay.as_millis() as u64})
        }
    }
}

/// Prints `event`: JSON lines on stdout, or messages on stdout and the rest on
/// stderr. An error means stdout is closed (`| head -1`): time to stop, quietly.
fn print(json: bool, event: &Event) -> std::io::Result<()> {
    let mut stdout = std::io::stdout().lock();
    if json {
        writeln!(stdout, "{}", json_of(event))?;
        return stdout.flush();
    }
    let mut stderr = std::io::stderr().lock();
    let _ = match event {
        Event::Message { topic, payload } => {
            writeln!(stdout, "{topic} {}", String::from_utf8_lossy(payload))?;
            return stdout.flush();
        }
        Event::CredentialsRefreshed { client_id, expiration } => {
            writeln!(stderr, "credentials for client {client_id}, valid until {expiration}")
        }
        Event::RefreshFailed { reason } => writeln!(stderr, "could not refresh credentials (will retry): {reason}"),
        Event::Connecting { attempt, .. } => writeln!(stderr, "connecting (attempt {attempt})"),
        Event::Connected {
            client_id,
            session_present: true,
        } => writeln!(
            stderr,
            "connected as {client_id} (session resumed: subscriptions kept; anything queued while away arrives now)"
        ),
        Event::Connected { client_id, .. } => writeln!(stderr, "connected as {client_id}"),
        Event::NewClientId {
            previous,
            client_id,
            reason,
        } => writeln!(
            stderr,
            "new client ID {client_id}: the API refused to resume {previous} ({reason}); queued messages for the old one are lost"
        ),
        Event::Subscribed { topics } => writeln!(stderr, "subscribed to {}; waiting for messages", topics.join(", ")),
        Event::Published { topic } => writeln!(stderr, "published to {topic}"),
        Event::Disconnected { reason } => writeln!(stderr, "disconnected: {reason}"),
        Event::Reconnecting { delay } => writeln!(stderr, "reconnecting in {:.1} s", delay.as_secs_f64()),
    };
    Ok(())
}

/// `--api` must be a whole http(s) URL; say so instead of "builder error".
fn check_api_url(api: &str) -> Result<(), String> {
    match reqwest::Url::parse(api) {
        Ok(url) if matches!(url.scheme(), "http" | "https") && url.host().is_some() => Ok(()),
        _ => Err(format!(
            "--api {api:?} is not an http:// or https:// URL; use the full URL, e.g. http://127.0.0.1:4601/credentials"
        )),
    }
}

#[tokio::main]
async fn main() -> ExitCode {
    let args = Args::parse();
    let options = match options(&args) {
        Ok(options) => options,
        Err(problem) => {
            eprintln!("error: {problem}");
            return ExitCode::from(2);
        }
    };
    let mut driver = Driver::new(HttpSource::new(&args.api, args.token.as_deref()), options);
    let mut received = 0u64;
    let (json, count) = (args.json, args.count);
    // Set when stdout is closed; stops the client like Ctrl-C does.
    let stdout_closed = std::sync::Arc::new(tokio::sync::Notify::new());
    let closed = stdout_closed.clone();
    let mut closed_seen = false;
    let on_event = |event: Event| {
        if closed_seen || print(json, &event).is_err() {
            closed_seen = true;
            closed.notify_one();
            return ControlFlow::Break(());
        }
        if matches!(event, Event::Message { .. }) {
            received += 1;
            if count.is_some_and(|n| received >= n) {
                return ControlFlow::Break(());
            }
        }
        ControlFlow::Continue(())
    };
    let interrupted = std::sync::atomic::AtomicBool::new(false);
    let stop = async {
        tokio::select! {
            _ = tokio::signal::ctrl_c() => interrupted.store(true, std::sync::atomic::Ordering::Relaxed),
            () = stdout_closed.notified() => {}
        }
    };
    let outcome = driver.run(on_event, stop).await;
    if interrupted.load(std::sync::atomic::Ordering::Relaxed) {
        let reason = "stopped by Ctrl-C".into();
        let _ = print(json, &Event::Disconnected { reason });
    }
    exit_code(outcome)
}

/// The driver's options from the flags, or what is wrong with them.
fn options(args: &Args) -> Result<Options, String> {
    check_api_url(&args.api)?;
    let trust = match &args.ca_cert {
        None => TrustRoots::WebPki,
        Some(path) => TrustRoots::Pem(
            std::fs::read(path).map_err(|err| format!("cannot read --ca-cert {}: {err}", path.display()))?,
        ),
    };
    Ok(Options {
        keep_alive: Duration::from_secs(args.keep_alive),
        extra_topics: args.topics.clone(),
        publish_on_connect: args
            .publish
            .as_ref()
            .map(|p| vec![(p[0].clone(), bytes::Bytes::from(p[1].clone()))])
            .unwrap_or_default(),
        trust,
        refresh_fraction: args.refresh_fraction,
        ..Options::default()
    })
}

/// The exit status the README documents for each way the client can end.
fn exit_code(outcome: Result<(), DriverError>) -> ExitCode {
    match outcome {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("error: {err}");
            ExitCode::from(match err {
                DriverError::Credentials(_) => 3,
                DriverError::Forbidden | DriverError::Refused(_) | DriverError::PolicyRefused(_) => 4,
                DriverError::Tls(_) => 2,
                DriverError::Presign(_) => 1,
            })
        }
    }
}
