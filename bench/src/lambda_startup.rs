//! Lambda cold start on this machine: the binary is started as Lambda would start
//! it, against a fake Runtime API on loopback
//! (<https://docs.aws.amazon.com/lambda/latest/dg/runtimes-api.html>), with STS being
//! the local stack's emulator. Measured per start: process spawn → first
//! `GET /runtime/invocation/next` (init), and → the first invocation's response.
//! Reference in the same run: `curl` doing the same first `GET /next`, i.e. the
//! floor of spawning a process and making one HTTP request.

use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::Context;
use axum::extract::{Path as UrlPath, State};
use axum::routing::{get, post};
use serverless_websockets_local::stack::{LocalOptions, LocalStack};
use tokio::sync::mpsc;

use crate::report::{Report, ms, quantile};

const EVENT: &str = r#"{"version":"2.0","routeKey":"POST /credentials","rawPath":"/credentials","rawQueryString":"",
"headers":{"content-type":"application/json","host":"api.example.com"},
"requestContext":{"accountId":"000000000000","apiId":"api","domainName":"api.example.com","domainPrefix":"api",
"http":{"method":"POST","path":"/credentials","protocol":"HTTP/1.1","sourceIp":"127.0.0.1","userAgent":"bench"},
"requestId":"bench","routeKey":"POST /credentials","stage":"$default","time":"22/Nov/2026:00:00:00 +0000","timeEpoch":0},
"body":"{}","isBase64Encoded":false}"#;

#[derive(Clone)]
struct Runtime {
    /// Each `/next` call: when it happened. The first gets the event, later ones wait.
    next: mpsc::UnboundedSender<Instant>,
    response: mpsc::UnboundedSender<(Instant, u16)>,
    served: Arc<Mutex<bool>>,
}

async fn next(State(rt): State<Runtime>) -> axum::response::Response {
    use axum::response::IntoResponse;
    let _ = rt.next.send(Instant::now());
    let first = !std::mem::replace(&mut *rt.served.lock().unwrap(), true);
    if !first {
        return std::future::pending().await;
    }
    (
        [
            ("lambda-runtime-aws-request-id", "bench-1"),
            ("lambda-runtime-deadline-ms", "4102444800000"),
            (
                "lambda-runtime-invoked-function-arn",
                "arn:aws:lambda:us-east-1:000000000000:function:bench",
            ),
            ("content-type", "application/json"),
        ],
        EVENT,
    )
        .into_response()
}

async fn response(State(rt): State<Runtime>, UrlPath(_id): UrlPath<String>, body: String) -> &'static str {
    let status = serde_json::from_str::<serde_json::Value>(&body)
        .ok()
        .and_then(|v| v["statusCode"].as_u64())
        .unwrap_or(0);
    let _ = rt.response.send((Instant::now(), status as u16));
    "{}"
}

struct Sample {
    init: Duration,
    first_response: Option<Duration>,
}

async fn one_start(command: &mut tokio::process::Command, wants_response: bool) -> anyhow::Result<Sample> {
    let (next_tx, mut next_rx) = mpsc::unbounded_channel();
    let (response_tx, mut response_rx) = mpsc::unbounded_channel();
    let runtime = Runtime {
        next: next_tx,
        response: response_tx,
        served: Arc::default(),
    };
    let router = axum::Router::new()
        .route("/2018-06-01/runtime/invocation/next", get(next))
        .route("/2018-06-01/runtime/invocation/{id}/response", post(response))
        .with_state(runtime);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let address = listener.local_addr()?;
    let server = tokio::spawn(async move { axum::serve(listener, router).await });
    command.env("AWS_LAMBDA_RUNTIME_API", address.to_string());
    command.env(
        "RUNTIME_URL",
        format!("http://{address}/2018-06-01/runtime/invocation/next"),
    );

    let started = Instant::now();
    let mut child = command.kill_on_drop(true).spawn().context("starting the process")?;
    let limit = Duration::from_secs(20);
    let at_next = tokio::time::timeout(limit, next_rx.recv())
        .await
        .context("no /next within 20 s")?
        .context("runtime closed")?;
    let first_response = if wants_response {
        let (at, status) = tokio::time::timeout(limit, response_rx.recv())
            .await
            .context("no response within 20 s")?
            .context("runtime closed")?;
        anyhow::ensure!(status == 200, "the function answered HTTP {status}");
        Some(at - started)
    } else {
        None
    };
    let _ = child.kill().await;
    server.abort();
    Ok(Sample {
        init: at_next - started,
        first_response,
    })
}

/// The vending binary as Lambda starts it: its environment, pointed at the local stack.
fn lambda_command(binary: &Path, info: &serverless_websockets_local::stack::ReadyInfo) -> tokio::process::Command {
    let mut command = tokio::process::Command::new(binary);
    command
        .env_clear()
        .env("AWS_LAMBDA_FUNCTION_NAME", "bench")
        .env("AWS_LAMBDA_FUNCTION_MEMORY_SIZE", "256")
        .env("AWS_LAMBDA_FUNCTION_VERSION", "$LATEST")
        .env("AWS_LAMBDA_LOG_GROUP_NAME", "/aws/lambda/bench")
        .env("AWS_LAMBDA_LOG_STREAM_NAME", "bench")
        .env("AWS_REGION", &info.region)
        .env("AWS_ACCESS_KEY_ID", &info.admin.access_key_id)
        .env("AWS_SECRET_ACCESS_KEY", &info.admin.secret_access_key)
        .env("AWS_ENDPOINT_URL_STS", &info.sts_endpoint)
        // The ban policy is read at the first request (IAM answers on the STS port).
        .env("AWS_ENDPOINT_URL_IAM", &info.sts_endpoint)
        .env("CLIENT_ROLE_ARN", &info.client_role_arn)
        .env("IOT_ENDPOINT", &info.iot_endpoint)
        .env("AUTH_MODE", "none")
        .env("RUST_LOG", "warn")
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null());
    command
}

pub async fn run(binary: &Path, runs: usize) -> anyhow::Result<Report> {
    anyhow::ensure!(
        binary.is_file(),
        "{} not found: build it with cargo build --release",
        binary.display()
    );
    let stack = LocalStack::start(LocalOptions::ephemeral()).await?;
    let info = stack.info().clone();
    let size = std::fs::metadata(binary)?.len();

    let (mut ours_init, mut ours_response, mut curl_init) = (Vec::new(), Vec::new(), Vec::new());
    for _ in 0..runs {
        let mut command = lambda_command(binary, &info);
        let sample = one_start(&mut command, true).await?;
        ours_init.push(sample.init);
        let first_response = sample
            .first_response
            .ok_or_else(|| anyhow::anyhow!("no response was measured"))?;
        ours_response.push(first_response);

        let mut curl = tokio::process::Command::new("sh");
        curl.args(["-c", "exec curl -s -o /dev/null --max-time 1 \"$RUNTIME_URL\""])
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null());
        curl_init.push(one_start(&mut curl, false).await?.init);
    }
    stack.shutdown().await;

    let (init50, init90) = (quantile(&mut ours_init, 0.5), quantile(&mut ours_init, 0.9));
    let (resp50, resp90) = (quantile(&mut ours_response, 0.5), quantile(&mut ours_response, 0.9));
    let curl50 = quantile(&mut curl_init, 0.5);
    let ratio = init50.as_secs_f64() / curl50.as_secs_f64().max(1e-9);
    Ok(Report {
        title: format!("Lambda start-up ({runs} starts, median and p90)"),
        header: ["measure", "p50", "p90", "vs reference"].map(String::from).to_vec(),
        rows: vec![
            vec!["start → first /next (init)".into(), ms(init50), ms(init90), format!("{ratio:.2}× curl")],
            vec!["start → first response (init + one vend through STS)".into(), ms(resp50), ms(resp90), String::new()],
            vec!["reference: curl start → first /next".into(), ms(curl50), String::new(), "1.00×".into()],
            vec!["binary size".into(), format!("{:.2} MiB", size as f64 / 1048576.0), String::new(), String::new()],
        ],
        notes: vec![
            "Target: ≤ 20 ms to the first /next on this machine. Published reference: hello-world Rust on provided.al2023 initialises in ~13–19 ms; the original Node/Python implementation took ~1 s.".into(),
        ],
        json: serde_json::json!({
            "suite": "lambda-startup",
            "runs": runs,
            "binary_bytes": size,
            "init_ms": ours_init.iter().map(|d| d.as_secs_f64() * 1000.0).collect::<Vec<_>>(),
            "first_response_ms": ours_response.iter().map(|d| d.as_secs_f64() * 1000.0).collect::<Vec<_>>(),
            "reference_curl_ms": curl_init.iter().map(|d| d.as_secs_f64() * 1000.0).collect::<Vec<_>>(),
        }),
    })
}
