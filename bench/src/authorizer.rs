//! Connecting with a token through a custom authorizer vs vending credentials,
//! measured in the same run against the same local stack (`--auth jwt`):
//!
//! * **vend**: POST the credentials API with the JWT (API → local STS), the
//!   presigned URL it returns, WebSocket, CONNECT, CONNACK;
//! * **token, in-process**: WebSocket with the authorizer's name and the JWT,
//!   our authorizer run in-process by the gateway, CONNECT, CONNACK;
//! * **token, via Invoke**: the same authorizer behind the Lambda Invoke API (an
//!   in-process HTTP stand-in hosting the very same handler), as on AWS and
//!   under `cargo lambda watch`, without a second process.
//!
//! Connect latency (p50 / p99) one at a time, and connects per second with 16
//! at once; the headline is each path's ratio to vending.

use std::sync::Arc;
use std::time::{Duration, Instant};

use serverless_websockets_core::policy::authorizer::client_id_prefix;
use serverless_websockets_local::authorizers::{Authorizer, AuthorizerRequest};
use serverless_websockets_local::stack::{LocalOptions, LocalStack};

use crate::mqtt_ws::Connection;
use crate::report::{Report, ms, quantile};

const VIA_INVOKE: &str = "via-invoke";

/// How a connect gets its URL.
#[derive(Clone, Copy, PartialEq)]
enum Path {
    Vend,
    InProcess,
    ViaInvoke,
}

impl Path {
    fn label(self) -> &'static str {
        match self {
            Path::Vend => "vend + presign + connect",
            Path::InProcess => "token, authorizer in-process",
            Path::ViaInvoke => "token, authorizer via the Invoke API",
        }
    }
}

struct Setup {
    stack: LocalStack,
    token: String,
    prefix: String,
    http: reqwest::Client,
}

/// The Invoke API stand-in: our authorizer's handler behind
/// `POST /2015-03-31/functions/{name}/invocations`.
async fn invoke_endpoint(options: &LocalOptions) -> anyhow::Result<String> {
    let lookup = |name: &str| match name {
        "AWS_REGION" => Some("us-east-1".to_owned()),
        "IOT_ACCOUNT_ID" => Some("000000000000".to_owned()),
        other => options.setting(other),
    };
    let handler = Arc::new(serverless_websockets_authorizer::JwtAuthorizer::new(
        serverless_websockets_authorizer::Settings::from_lookup(lookup)?,
    )?);
    async fn invoke(
        axum::extract::State(handler): axum::extract::State<Arc<serverless_websockets_authorizer::JwtAuthorizer>>,
        body: axum::body::Bytes,
    ) -> (axum::http::StatusCode, String) {
        let event = serde_json::from_slice(&body).unwrap_or_default();
        match handler.invoke_json(event).await {
            Ok(answer) => (axum::http::StatusCode::OK, answer.to_string()),
            Err(e) => (axum::http::StatusCode::INTERNAL_SERVER_ERROR, e),
        }
    }
    let router = axum::Router::new()
        .route("/2015-03-31/functions/{name}/invocations", axum::routing::post(invoke))
        .with_state(handler);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let url = format!("http://{}", listener.local_addr()?);
    tokio::spawn(async move { axum::serve(listener, router).await });
    Ok(url)
}

async fn setup() -> anyhow::Result<Setup> {
    let mut options = LocalOptions::ephemeral();
    options.gateway.limits = serverless_websockets_local::gateway::Limits::relaxed();
    options.settings = vec![("AUTH_MODE".into(), "jwt".into())];
    options.lambda_endpoint = Some(invoke_endpoint(&options).await?);
    let token = options.mint_token("bench", Duration::from_secs(3600))?;
    let stack = LocalStack::start(options).await?;
    let request = AuthorizerRequest {
        authorizer_function_arn: Some("arn:aws:lambda:us-east-1:000000000000:function:authorizer".into()),
        token_key_name: Some("token".into()),
        signing_disabled: Some(true),
        ..AuthorizerRequest::default()
    };
    let authorizer = Authorizer::create(VIA_INVOKE, request, 0.0).map_err(anyhow::Error::msg)?;
    stack.gateway().authorizers.create(authorizer);
    Ok(Setup {
        stack,
        token,
        prefix: client_id_prefix("bench"),
        http: reqwest::Client::new(),
    })
}

/// One connect by `path`, timed from the first request to CONNACK.
async fn connect(setup: &Setup, path: Path, n: usize) -> anyhow::Result<Duration> {
    let info = setup.stack.info();
    let started = Instant::now();
    let connection = match path {
        Path::Vend => {
            let vended: serverless_websockets_core::wire::Vended = setup
                .http
                .post(&info.api_url)
                .bearer_auth(&setup.token)
                .send()
                .await?
                .error_for_status()?
                .json()
                .await?;
            Connection::open(&vended.url, &vended.client_id).await?
        }
        Path::InProcess | Path::ViaInvoke => {
            let name = match path {
                Path::ViaInvoke => VIA_INVOKE.to_owned(),
                _ => info.authorizer.as_ref().map(|a| a.name.clone()).unwrap_or_default(),
            };
            let url = format!(
                "{}/mqtt?x-amz-customauthorizer-name={name}&token={}",
                info.iot_endpoint, setup.token
            );
            Connection::open(&url, &format!("{}c{n}", setup.prefix)).await?
        }
    };
    let elapsed = started.elapsed();
    drop(connection);
    Ok(elapsed)
}

/// `count` connects one at a time, the paths interleaved so drift hits all alike.
async fn latencies(setup: &Setup, count: usize) -> anyhow::Result<[Vec<Duration>; 3]> {
    let mut out: [Vec<Duration>; 3] = Default::default();
    for n in 0..count {
        for (i, path) in [Path::Vend, Path::InProcess, Path::ViaInvoke].into_iter().enumerate() {
            out[i].push(connect(setup, path, n).await?);
        }
    }
    Ok(out)
}

/// Connects per second with `parallel` at once, `count` in all.
async fn rate(setup: &Arc<Setup>, path: Path, count: usize, parallel: usize) -> anyhow::Result<f64> {
    let started = Instant::now();
    let mut tasks = tokio::task::JoinSet::new();
    for worker in 0..parallel {
        let setup = setup.clone();
        tasks.spawn(async move {
            for n in (worker..count).step_by(parallel) {
                connect(&setup, path, 10_000 + n).await?;
            }
            anyhow::Ok(())
        });
    }
    while let Some(done) = tasks.join_next().await {
        done??;
    }
    Ok(count as f64 / started.elapsed().as_secs_f64())
}

pub async fn run(count: usize) -> anyhow::Result<Report> {
    let setup = Arc::new(setup().await?);
    // Warm-up: first connections pay one-off costs (JWKS-free here, but TLS-free
    // sockets, the STS emulator's first role lookup, the allocator).
    latencies(&setup, 3).await?;
    let mut samples = latencies(&setup, count).await?;
    let parallel = 16;
    let mut rates = [0.0; 3];
    for (i, path) in [Path::Vend, Path::InProcess, Path::ViaInvoke].into_iter().enumerate() {
        rates[i] = rate(&setup, path, count.max(parallel), parallel).await?;
    }
    let base50 = quantile(&mut samples[0], 0.5);
    let base99 = quantile(&mut samples[0], 0.99);
    let mut rows = Vec::new();
    let mut json = Vec::new();
    for (i, path) in [Path::Vend, Path::InProcess, Path::ViaInvoke].into_iter().enumerate() {
        let (p50, p99) = (quantile(&mut samples[i], 0.5), quantile(&mut samples[i], 0.99));
        rows.push(vec![
            path.label().to_owned(),
            format!("{} / {}", ms(p50), ms(p99)),
            format!(
                "{:.2}× / {:.2}×",
                p50.as_secs_f64() / base50.as_secs_f64().max(1e-9),
                p99.as_secs_f64() / base99.as_secs_f64().max(1e-9)
            ),
            format!("{:.0}/s ({:.2}×)", rates[i], rates[i] / rates[0].max(1e-9)),
        ]);
        json.push(serde_json::json!({"path": path.label(), "p50_ms": p50.as_secs_f64() * 1e3, "p99_ms": p99.as_secs_f64() * 1e3, "connects_per_s": rates[i]}));
    }
    let setup = Arc::into_inner(setup).ok_or_else(|| anyhow::anyhow!("a connect task outlived the suite"))?;
    setup.stack.shutdown().await;
    Ok(Report {
        title: format!("Connect with a token vs vend credentials ({count} connects each, one at a time; then {parallel} at once)"),
        header: ["path", "connect latency (p50 / p99)", "vs vending", "connects/s, 16 at once"]
            .map(String::from)
            .to_vec(),
        rows,
        notes: vec!["Everything on loopback in one process: the figures are the gateway's, the API's, the STS emulator's and the authorizer's own work, not AWS's network. On AWS the vend path adds a round trip to API Gateway and the Lambda's STS call; the token path a Lambda invocation inside the handshake.".into()],
        json: serde_json::json!({"suite": "authorizer", "runs": json}),
    })
}
