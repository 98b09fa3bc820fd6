//! Vending latency and throughput: POSTs to the local stack's vending API at
//! concurrency 1, 8 and 64, and the same number of `AssumeRole` calls straight to its
//! STS emulator (with `aws-sdk-sts`, as the API makes them) — the reference, so the
//! report shows the API's own overhead as a ratio of the STS round trip. Also the
//! handler's CPU cost per request with STS faked (policy build, presign, JSON).

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant, SystemTime};

use async_trait::async_trait;
use serverless_websockets_local::stack::{LocalOptions, LocalStack, ReadyInfo};
use serverless_websockets_vending::config::Config;
use serverless_websockets_vending::issuer::{CredentialIssuer, IssueRequest, StsError, TemporaryCredentials};
use tower::ServiceExt;

use crate::report::{Report, ms, quantile};

/// Runs `total` calls of `call` on `concurrency` tasks; returns latencies and wall time.
async fn load<F, Fut>(total: usize, concurrency: usize, call: F) -> anyhow::Result<(Vec<Duration>, Duration)>
where
    F: Fn() -> Fut + Send + Sync + 'static,
    Fut: std::future::Future<Output = anyhow::Result<()>> + Send,
{
    let call = Arc::new(call);
    let next = Arc::new(AtomicUsize::new(0));
    let started = Instant::now();
    let mut workers = Vec::new();
    for _ in 0..concurrency {
        let (call, next) = (call.clone(), next.clone());
        workers.push(tokio::spawn(async move {
            let mut samples = Vec::new();
            while next.fetch_add(1, Ordering::Relaxed) < total {
                let at = Instant::now();
                call().await?;
                samples.push(at.elapsed());
            }
            anyhow::Ok(samples)
        }));
    }
    let mut samples = Vec::with_capacity(total);
    for worker in workers {
        samples.extend(worker.await??);
    }
    Ok((samples, started.elapsed()))
}

struct Instant0;

#[async_trait]
impl CredentialIssuer for Instant0 {
    async fn issue(&self, _: IssueRequest<'_>) -> Result<TemporaryCredentials, StsError> {
        Ok(TemporaryCredentials {
            access_key_id: "ASIABENCHMARK0000001".into(),
            secret_access_key: "bench-secret-bench-secret-bench-secret00".into(),
            session_token: "bench-token".repeat(30),
            expiration: SystemTime::now() + Duration::from_secs(3600),
        })
    }
}

/// µs of one request through the router with STS answered instantly.
async fn handler_cost(count: usize) -> anyhow::Result<f64> {
    let config = Config::from_lookup(|name| {
        match name {
            "CLIENT_ROLE_ARN" => Some("arn:aws:iam::123456789012:role/ClientRole"),
            "AWS_REGION" => Some("us-east-1"),
            "IOT_ENDPOINT" => Some("abc123-ats.iot.us-east-1.amazonaws.com"),
            "AUTH_MODE" => Some("none"),
            _ => None,
        }
        .map(str::to_owned)
    })?;
    let app = serverless_websockets_vending::api::build(config, Arc::new(Instant0))?;
    let request = || {
        axum::http::Request::builder()
            .method("POST")
            .uri("/credentials")
            .body(axum::body::Body::empty())
    };
    for _ in 0..100 {
        app.clone().oneshot(request()?).await?; // warm-up
    }
    let started = Instant::now();
    for _ in 0..count {
        let response = app.clone().oneshot(request()?).await?;
        anyhow::ensure!(response.status() == 200);
        std::hint::black_box(axum::body::to_bytes(response.into_body(), usize::MAX).await?);
    }
    Ok(started.elapsed().as_secs_f64() * 1e6 / count as f64)
}

/// The handler-CPU figure alone.
pub async fn handler_report(count: usize) -> anyhow::Result<Report> {
    let handler_us = handler_cost(count).await?;
    Ok(Report {
        title: format!("Vending handler CPU ({count} requests, STS faked)"),
        header: vec!["measure".into(), "per request".into()],
        rows: vec![vec![
            "policy build + presign + JSON through the router".into(),
            format!("{handler_us:.1} µs"),
        ]],
        notes: vec!["Target: ≤ 20 µs.".into()],
        json: serde_json::json!({"suite": "vending-handler", "requests": count, "handler_us": handler_us}),
    })
}

pub async fn run(total: usize) -> anyhow::Result<Report> {
    // Measured first, on a quiet process: after the load phases the HTTP pools and
    // SDK clients still hold threads and caches that skew a CPU figure.
    let handler_us = handler_cost(total.max(2000)).await?;
    let stack = LocalStack::start(LocalOptions::ephemeral()).await?;
    let info = stack.info().clone();
    let http = reqwest::Client::builder().pool_max_idle_per_host(128).build()?;
    let sts = admin_sts_client(&info).await;
    let mut rows = Vec::new();
    let mut json = Vec::new();
    for concurrency in [1, 8, 64] {
        let mut row = measure_row(&http, &sts, &info, total, concurrency).await?;
        rows.push(row.cells(total));
        json.push(row.json(total));
    }
    stack.shutdown().await;
    Ok(Report {
        title: format!("Vending on the local stack ({total} requests per row)"),
        header: [
            "concurrency",
            "vend throughput",
            "p50",
            "p99",
            "p99.9",
            "STS AssumeRole alone",
            "vend p50 / STS p50",
        ]
        .map(String::from)
        .to_vec(),
        rows,
        notes: vec![format!(
            "Handler CPU per request with STS faked (policy build + presign + JSON, through the router): {handler_us:.1} µs. Targets: local p50 ≤ 1 ms at concurrency 1; handler ≤ 20 µs."
        )],
        json: serde_json::json!({"suite": "vending", "requests": total, "rows": json, "handler_us": handler_us}),
    })
}

/// An STS client of the local stack, signing as its admin: the reference.
async fn admin_sts_client(info: &ReadyInfo) -> aws_sdk_sts::Client {
    let config = aws_config::defaults(aws_config::BehaviorVersion::latest())
        .region(aws_config::Region::new(info.region.clone()))
        .credentials_provider(aws_credential_types::Credentials::new(
            &info.admin.access_key_id,
            &info.admin.secret_access_key,
            None,
            None,
            "bench",
        ))
        .endpoint_url(&info.sts_endpoint)
        .load()
        .await;
    aws_sdk_sts::Client::new(&config)
}

/// One concurrency level: vends through the API, then `AssumeRole` alone.
struct Row {
    concurrency: usize,
    api: Vec<Duration>,
    api_wall: Duration,
    sts: Vec<Duration>,
    sts_wall: Duration,
}

async fn measure_row(
    http: &reqwest::Client,
    sts: &aws_sdk_sts::Client,
    info: &ReadyInfo,
    total: usize,
    concurrency: usize,
) -> anyhow::Result<Row> {
    const POLICY: &str = r#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Action":"iot:Connect","Resource":"arn:aws:iot:us-east-1:000000000000:client/bench"}]}"#;
    let (client, url) = (http.clone(), info.api_url.clone());
    let (api, api_wall) = load(total, concurrency, move || {
        let (client, url) = (client.clone(), url.clone());
        async move {
            let response = client.post(&url).send().await?;
            anyhow::ensure!(response.status() == 200, "vend answered {}", response.status());
            response.bytes().await?;
            Ok(())
        }
    })
    .await?;
    let (sts, role) = (sts.clone(), info.client_role_arn.clone());
    let (direct, sts_wall) = load(total, concurrency, move || {
        let (sts, role) = (sts.clone(), role.clone());
        async move {
            sts.assume_role()
                .role_arn(role)
                .role_session_name("bench")
                .policy(POLICY)
                .send()
                .await?;
            Ok(())
        }
    })
    .await?;
    Ok(Row {
        concurrency,
        api,
        api_wall,
        sts: direct,
        sts_wall,
    })
}

impl Row {
    fn cells(&mut self, total: usize) -> Vec<String> {
        let (p50, p99, p999) = (
            quantile(&mut self.api, 0.5),
            quantile(&mut self.api, 0.99),
            quantile(&mut self.api, 0.999),
        );
        let sts50 = quantile(&mut self.sts, 0.5);
        vec![
            self.concurrency.to_string(),
            format!("{:.0}/s", total as f64 / self.api_wall.as_secs_f64()),
            ms(p50),
            ms(p99),
            ms(p999),
            format!("{:.0}/s, p50 {}", total as f64 / self.sts_wall.as_secs_f64(), ms(sts50)),
            format!("{:.2}×", p50.as_secs_f64() / sts50.as_secs_f64()),
        ]
    }

    fn json(&mut self, total: usize) -> serde_json::Value {
        let (p50, p99, p999) = (
            quantile(&mut self.api, 0.5),
            quantile(&mut self.api, 0.99),
            quantile(&mut self.api, 0.999),
        );
        serde_json::json!({
            "concurrency": self.concurrency,
            "vend_per_s": total as f64 / self.api_wall.as_secs_f64(),
            "vend_ms": {"p50": p50.as_secs_f64() * 1e3, "p99": p99.as_secs_f64() * 1e3, "p999": p999.as_secs_f64() * 1e3},
            "sts_per_s": total as f64 / self.sts_wall.as_secs_f64(),
            "sts_p50_ms": quantile(&mut self.sts, 0.5).as_secs_f64() * 1e3,
        })
    }
}
