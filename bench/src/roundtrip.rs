//! The two-way round trip, measured against its floor in the same run: a client
//! publishes a chat message to `from/<clientId>`; an IoT rule invokes the echo
//! function through the Lambda Invoke API; the function publishes the echo back
//! through the HTTPS data plane to `allowed/<clientId>`; the client receives it.
//! The floor is the same client publishing straight to `allowed/<clientId>` and
//! receiving it. p50 and p99 at 1 and 64 concurrent clients.
//!
//! The function here is an in-process stand-in for `cargo lambda watch` + the
//! example's echo (the same Invoke API and data-plane calls, without a second
//! process), so the figures are the gateway's, the rules engine's and the
//! network's, not a Lambda runtime's.

use crate::signing;

use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use aws_credential_types::Credentials;
use rumqttc::{AsyncClient, Event, MqttOptions, Packet, QoS, Transport};
use serverless_websockets_local::stack::{LocalOptions, LocalStack};

use crate::report::{Report, ms, quantile};

const RULE: &str = r#"[{"ruleName": "echo", "topicRulePayload": {"sql": "SELECT text, topic(2) AS sender FROM 'from/+' WHERE kind = 'chat'", "awsIotSqlVersion": "2016-03-23", "actions": [{"lambda": {"functionArn": "arn:aws:lambda:us-east-1:000000000000:function:echo"}}]}}]"#;

/// What the stand-in function needs: where to publish and as whom.
struct Function {
    data_endpoint: String,
    credentials: Credentials,
    http: reqwest::Client,
}

/// The echo function behind the Invoke API: the text back to the sender's topic.
async fn invoke(
    axum::extract::State(function): axum::extract::State<Arc<tokio::sync::OnceCell<Function>>>,
    body: axum::body::Bytes,
) -> axum::http::StatusCode {
    let Some(function) = function.get() else {
        return axum::http::StatusCode::SERVICE_UNAVAILABLE;
    };
    let Ok(event) = serde_json::from_slice::<serde_json::Value>(&body) else {
        return axum::http::StatusCode::BAD_REQUEST;
    };
    let sender = event["sender"].as_str().unwrap_or_default();
    let url = format!("{}/topics/allowed%2F{sender}?qos=1", function.data_endpoint);
    let payload = event["text"].as_str().unwrap_or_default().as_bytes().to_vec();
    let headers = [("host", signing::host_of(&url))];
    let signed = signing::sign_headers(
        &signing::ToSign {
            method: "POST",
            url: &url,
            headers: &headers,
            body: &payload,
            service: "iotdata",
            region: "us-east-1",
            content_sha256_header: false,
        },
        &function.credentials,
        SystemTime::now(),
    );
    let mut request = function.http.post(&url).body(payload);
    for (name, value) in signed {
        request = request.header(name, value);
    }
    match request.send().await {
        Ok(response) if response.status().is_success() => axum::http::StatusCode::ACCEPTED,
        _ => axum::http::StatusCode::INTERNAL_SERVER_ERROR,
    }
}

/// The local stack with the echo rule, its Lambda actions going to the stand-in.
async fn stack() -> anyhow::Result<(LocalStack, tempfile::TempDir)> {
    let cell: Arc<tokio::sync::OnceCell<Function>> = Arc::default();
    let router = axum::Router::new()
        .route("/2015-03-31/functions/{name}/invocations", axum::routing::post(invoke))
        .with_state(cell.clone());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let lambda = format!("http://{}", listener.local_addr()?);
    tokio::spawn(async move { axum::serve(listener, router).await });
    let dir = tempfile::tempdir()?;
    let rules = dir.path().join("rules.json");
    std::fs::write(&rules, RULE)?;
    let mut options = LocalOptions::ephemeral();
    // The suite measures latency, not IoT's quotas.
    options.gateway.limits = serverless_websockets_local::gateway::Limits::relaxed();
    options.lambda_endpoint = Some(lambda);
    options.rules_file = Some(rules);
    options.settings = vec![("PUBLISH_TOPICS".into(), "from/{clientId},allowed/{clientId}".into())];
    let stack = LocalStack::start(options).await?;
    let backend = &stack.info().backend;
    let function = Function {
        data_endpoint: stack.info().iot_data_endpoint.clone(),
        credentials: Credentials::new(&backend.access_key_id, &backend.secret_access_key, None, None, "echo"),
        http: reqwest::Client::new(),
    };
    let _ = cell.set(function);
    Ok((stack, dir))
}

/// One client's round trips: `count` through the rule and the function (or
/// straight to its own topic when `direct`), one at a time.
async fn client(api_url: String, count: usize, direct: bool) -> anyhow::Result<Vec<Duration>> {
    let vended: serverless_websockets_core::wire::Vended =
        reqwest::Client::new().post(&api_url).send().await?.json().await?;
    let mut options = MqttOptions::new(&vended.client_id, &vended.url, 0);
    options.set_transport(Transport::Ws);
    options.set_keep_alive(Duration::from_secs(30));
    let (client, mut eventloop) = AsyncClient::new(options, 16);
    // Without TCP_NODELAY, Nagle and delayed ACKs put ~40 ms into every round trip.
    let mut network = rumqttc::NetworkOptions::new();
    network.set_tcp_nodelay(true);
    eventloop.set_network_options(network);
    client.subscribe(&vended.topic, QoS::AtLeastOnce).await?;
    let target = if direct {
        vended.topic.clone()
    } else {
        format!("from/{}", vended.client_id)
    };
    let mut latencies = Vec::with_capacity(count);
    let mut sent: Option<(usize, Instant)> = None;
    let mut next = 0;
    while latencies.len() < count {
        let event = tokio::time::timeout(Duration::from_secs(10), eventloop.poll()).await??;
        match event {
            Event::Incoming(Packet::SubAck(_)) => sent = Some((next, Instant::now())),
            Event::Incoming(Packet::Publish(p)) if sent.is_some_and(|(n, _)| p.payload == n.to_string().as_bytes()) => {
                let (_, at) = sent.take().unwrap_or((0, Instant::now()));
                latencies.push(at.elapsed());
                next += 1;
                sent = Some((next, Instant::now()));
            }
            _ => continue,
        }
        if let Some((n, _)) = sent {
            let body = if direct {
                n.to_string()
            } else {
                serde_json::json!({"kind": "chat", "text": n.to_string()}).to_string()
            };
            client.publish(&target, QoS::AtLeastOnce, false, body).await?;
        }
    }
    let _ = client.disconnect().await;
    Ok(latencies)
}

/// Round-trip latencies of `clients` concurrent clients, `count` each.
async fn measure(api_url: &str, clients: usize, count: usize, direct: bool) -> anyhow::Result<Vec<Duration>> {
    let mut tasks = tokio::task::JoinSet::new();
    for _ in 0..clients {
        tasks.spawn(client(api_url.to_owned(), count, direct));
    }
    let mut all = Vec::new();
    while let Some(done) = tasks.join_next().await {
        all.extend(done??);
    }
    Ok(all)
}

pub async fn run(count: usize) -> anyhow::Result<Report> {
    let (stack, _dir) = stack().await?;
    let api = stack.info().api_url.clone();
    let mut rows = Vec::new();
    let mut json = Vec::new();
    for clients in [1, 64] {
        let mut floor = measure(&api, clients, count, true).await?;
        let mut rule = measure(&api, clients, count, false).await?;
        let (f50, f99) = (quantile(&mut floor, 0.5), quantile(&mut floor, 0.99));
        let (r50, r99) = (quantile(&mut rule, 0.5), quantile(&mut rule, 0.99));
        rows.push(vec![
            clients.to_string(),
            format!("{} / {}", ms(r50), ms(r99)),
            format!("{} / {}", ms(f50), ms(f99)),
            format!(
                "{:.2}× / {:.2}×",
                r50.as_secs_f64() / f50.as_secs_f64().max(1e-9),
                r99.as_secs_f64() / f99.as_secs_f64().max(1e-9)
            ),
        ]);
        json.push(serde_json::json!({"clients": clients, "rule_p50_ms": r50.as_secs_f64() * 1e3, "rule_p99_ms": r99.as_secs_f64() * 1e3, "direct_p50_ms": f50.as_secs_f64() * 1e3, "direct_p99_ms": f99.as_secs_f64() * 1e3}));
    }
    stack.shutdown().await;
    Ok(Report {
        title: format!("Two-way round trip: publish → rule → function → reply ({count} round trips per client)"),
        header: ["clients", "via rule and function (p50 / p99)", "direct publish (p50 / p99)", "ratio"]
            .map(String::from)
            .to_vec(),
        rows,
        notes: vec!["The function is an in-process stand-in making the same Invoke and data-plane calls as the example under cargo lambda watch.".into()],
        json: serde_json::json!({"suite": "roundtrip", "runs": json}),
    })
}
