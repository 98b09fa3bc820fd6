//! The driver and the binary against the local stack on port 0: receive over ws
//! and wss, reconnect with a fresh URL, refresh credentials, and fail clearly.

use std::ops::ControlFlow;
use std::process::Command;
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use aws_credential_types::Credentials as SdkCredentials;
use client_example::tls::TrustRoots;
use client_example::{CredentialSource, Driver, Event, FetchError, HttpSource, Options, ResumeToken, Vended};
use serverless_websockets_local::stack::{LocalOptions, LocalStack};
use tokio::sync::mpsc;

#[path = "../../tests/common/sigv4.rs"]
#[allow(dead_code)]
mod sigv4;

const WAIT: Duration = Duration::from_secs(15);

/// Publishes through the gateway's HTTPS API as the local admin, signed like botocore.
async fn publish(stack: &LocalStack, topic: &str, payload: &str) {
    publish_bytes(stack, topic, payload.as_bytes()).await;
}

/// Runs a driver in the background; its events arrive on the returned channel.
fn spawn_driver<S: CredentialSource>(
    source: S,
    options: Options,
) -> (mpsc::UnboundedReceiver<Event>, tokio::sync::oneshot::Sender<()>) {
    let (tx, rx) = mpsc::unbounded_channel();
    let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
    tokio::spawn(async move {
        let mut driver = Driver::new(source, options);
        let stop = async {
            let _ = stop_rx.await;
        };
        let result = driver
            .run(
                move |event| {
                    let _ = tx.send(event);
                    ControlFlow::Continue(())
                },
                stop,
            )
            .await;
        if let Err(err) = result {
            panic!("driver failed: {err}");
        }
    });
    (rx, stop_tx)
}

async fn next_matching(
    events: &mut mpsc::UnboundedReceiver<Event>,
    what: &str,
    pred: impl Fn(&Event) -> bool,
) -> Event {
    loop {
        let event = tokio::time::timeout(WAIT, events.recv())
            .await
            .unwrap_or_else(|_| panic!("no {what} within {WAIT:?}"));
        let event = event.unwrap_or_else(|| panic!("driver ended before {what}"));
        if pred(&event) {
            return event;
        }
    }
}

fn fast_options() -> Options {
    Options {
        backoff_min: Duration::from_millis(50),
        backoff_max: Duration::from_millis(200),
        ..Options::default()
    }
}

async fn subscribed_client(events: &mut mpsc::UnboundedReceiver<Event>) -> String {
    let Event::CredentialsRefreshed { client_id, .. } = next_matching(events, "credentials", |e| {
        matches!(e, Event::CredentialsRefreshed { .. })
    })
    .await
    else {
        unreachable!()
    };
    next_matching(events, "subscription", |e| matches!(e, Event::Subscribed { .. })).await;
    client_id
}

async fn message(events: &mut mpsc::UnboundedReceiver<Event>) -> (String, String) {
    match next_matching(events, "a message", |e| matches!(e, Event::Message { .. })).await {
        Event::Message { topic, payload } => (topic, String::from_utf8_lossy(&payload).into_owned()),
        _ => unreachable!(),
    }
}

#[tokio::test]
async fn the_driver_receives_a_message_over_ws() {
    let stack = LocalStack::start(LocalOptions::ephemeral()).await.unwrap();
    let (mut events, _stop) = spawn_driver(HttpSource::new(&stack.info().api_url, None), fast_options());
    let client_id = subscribed_client(&mut events).await;
    publish(&stack, &format!("allowed/{client_id}"), "over ws").await;
    assert_eq!(
        message(&mut events).await,
        (format!("allowed/{client_id}"), "over ws".to_owned())
    );
}

#[tokio::test]
async fn the_driver_receives_a_message_over_wss_with_the_local_ca() {
    let stack = LocalStack::start(LocalOptions {
        tls: true,
        ..LocalOptions::ephemeral()
    })
    .await
    .unwrap();
    let ca = std::fs::read(stack.info().ca_cert.as_ref().unwrap()).unwrap();
    let options = Options {
        trust: TrustRoots::Pem(ca),
        ..fast_options()
    };
    let (mut events, _stop) = spawn_driver(HttpSource::new(&stack.info().api_url, None), options);
    let client_id = subscribed_client(&mut events).await;
    publish(&stack, &format!("allowed/{client_id}"), "over wss").await;
    assert_eq!(message(&mut events).await.1, "over wss");
}

/// Hands out real credentials from the local API, optionally spoiled or short-lived.
struct Scripted {
    api: HttpSource,
    spoil_first: bool,
    lifetime: Option<Duration>,
    calls: Arc<Mutex<u32>>,
}

impl CredentialSource for Scripted {
    async fn fetch(&self, resume: Option<&ResumeToken>) -> Result<Vended, FetchError> {
        let mut vended = self.api.fetch(resume).await?;
        let call = {
            let mut calls = self.calls.lock().unwrap();
            *calls += 1;
            *calls
        };
        if self.spoil_first && call == 1 {
            vended.credentials.secret_access_key = "not-the-secret".into();
        }
        if let Some(lifetime) = self.lifetime {
            let expires = SystemTime::now() + lifetime;
            let secs = expires.duration_since(SystemTime::UNIX_EPOCH).unwrap().as_secs() as i64;
            vended.credentials.expiration = aws_smithy_types::DateTime::from_secs(secs)
                .fmt(aws_smithy_types::date_time::Format::DateTime)
                .unwrap();
        }
        Ok(vended)
    }
}

#[tokio::test]
async fn a_403_at_the_handshake_fetches_new_credentials_and_connects_with_them() {
    let stack = LocalStack::start(LocalOptions::ephemeral()).await.unwrap();
    let calls = Arc::new(Mutex::new(0));
    let source = Scripted {
        api: HttpSource::new(&stack.info().api_url, None),
        spoil_first: true,
        lifetime: None,
        calls: calls.clone(),
    };
    let (mut events, _stop) = spawn_driver(source, fast_options());
    let disconnected = next_matching(&mut events, "the refusal", |e| matches!(e, Event::Disconnected { .. })).await;
    assert!(
        matches!(&disconnected, Event::Disconnected { reason } if reason.contains("403")),
        "{disconnected:?}"
    );
    let client_id = subscribed_client(&mut events).await;
    assert_eq!(*calls.lock().unwrap(), 2);
    publish(&stack, &format!("allowed/{client_id}"), "after refresh").await;
    assert_eq!(message(&mut events).await.1, "after refresh");
}

/// Another connection takes `client_id` over (the admin may connect as anyone), the
/// driver sees its connection close, then the intruder leaves. Like any client,
/// the intruder tries again when the gateway refuses a CONNECT within a second of
/// the driver's (IoT's one CONNECT per second per client ID).
async fn take_over_and_leave(stack: &LocalStack, client_id: &str, events: &mut mpsc::UnboundedReceiver<Event>) {
    let info = stack.info();
    let admin = SdkCredentials::new(
        &info.admin.access_key_id,
        &info.admin.secret_access_key,
        None,
        None,
        "a",
    );
    let endpoint = serverless_websockets_core::presign::IotEndpoint::parse(&info.iot_endpoint).unwrap();
    let (intruder, mut intruder_loop) = loop {
        let url = serverless_websockets_core::presign::presign(
            &endpoint,
            &info.region,
            &admin,
            SystemTime::now(),
            Duration::from_secs(900),
        )
        .unwrap();
        let mut options = rumqttc::MqttOptions::new(client_id, url, 0);
        options.set_transport(rumqttc::Transport::Ws);
        let (intruder, mut intruder_loop) = rumqttc::AsyncClient::new(options, 10);
        let accepted = loop {
            match intruder_loop.poll().await {
                Ok(rumqttc::Event::Incoming(rumqttc::Packet::ConnAck(_))) => break true,
                Ok(_) => {}
                Err(_) => break false,
            }
        };
        if accepted {
            break (intruder, intruder_loop);
        }
        tokio::time::sleep(serverless_websockets_core::quota::CLIENT_CONNECT_SPACING).await;
    };
    next_matching(events, "the takeover", |e| matches!(e, Event::Disconnected { .. })).await;
    intruder.try_disconnect().unwrap();
    let _ = intruder_loop.poll().await;
}

#[tokio::test]
async fn after_a_takeover_the_driver_reconnects_with_a_fresh_url_and_resubscribes() {
    let stack = LocalStack::start(LocalOptions::ephemeral()).await.unwrap();
    let source = HttpSource::new(&stack.info().api_url, None);
    let (mut events, _stop) = spawn_driver(source, fast_options());
    let Event::CredentialsRefreshed { client_id, .. } = next_matching(&mut events, "credentials", |e| {
        matches!(e, Event::CredentialsRefreshed { .. })
    })
    .await
    else {
        unreachable!()
    };
    let Event::Connecting {
        signed_at: first_signed,
        ..
    } = next_matching(&mut events, "connecting", |e| matches!(e, Event::Connecting { .. })).await
    else {
        unreachable!()
    };
    next_matching(&mut events, "subscription", |e| matches!(e, Event::Subscribed { .. })).await;

    take_over_and_leave(&stack, &client_id, &mut events).await;

    let Event::Connecting { attempt, signed_at, .. } =
        next_matching(&mut events, "a reconnect", |e| matches!(e, Event::Connecting { .. })).await
    else {
        unreachable!()
    };
    assert!(attempt >= 2);
    assert!(signed_at > first_signed, "each connect presigns anew");
    // IoT allows one CONNECT per second per client ID: the driver spaces its own.
    let spaced = signed_at.duration_since(first_signed).unwrap();
    assert!(
        spaced >= serverless_websockets_core::quota::CLIENT_CONNECT_SPACING,
        "{spaced:?} between two CONNECTs"
    );
    next_matching(&mut events, "the resubscription", |e| {
        matches!(e, Event::Subscribed { .. })
    })
    .await;
    publish(&stack, &format!("allowed/{client_id}"), "after reconnect").await;
    assert_eq!(message(&mut events).await.1, "after reconnect");
}

#[tokio::test]
async fn credentials_are_refreshed_by_resuming_before_they_expire_and_the_client_id_stays() {
    // Real tokio time: rumqttc's network timeouts would fire early under a paused clock.
    // IoT's one CONNECT per second per client ID is relaxed: the test's intruder
    // connects as the driver's client ID, and on a loaded machine the driver's
    // reconnect could land within a second of it and be refused, twice, which this
    // test of credential refreshes is not about (the driver's own spacing is tested
    // in the takeover test above).
    let mut options = LocalOptions::ephemeral();
    options.gateway.limits.connects_per_second = 0;
    let stack = LocalStack::start(options).await.unwrap();
    let calls = Arc::new(Mutex::new(0));
    let source = Scripted {
        api: HttpSource::new(&stack.info().api_url, None),
        spoil_first: false,
        lifetime: Some(Duration::from_secs(4)),
        calls: calls.clone(),
    };
    let options = Options {
        refresh_fraction: 0.25,
        ..fast_options()
    };
    let (mut events, _stop) = spawn_driver(source, options);
    let first = subscribed_client(&mut events).await;
    // At 25 % of the 4 s lifetime the driver fetches again, while still connected.
    let Event::CredentialsRefreshed { client_id: second, .. } = next_matching(&mut events, "a refresh", |e| {
        matches!(e, Event::CredentialsRefreshed { .. })
    })
    .await
    else {
        unreachable!()
    };
    assert_eq!(
        first, second,
        "a refresh resumes: fresh credentials for the same client ID"
    );
    assert!(*calls.lock().unwrap() >= 2);

    // The live connection is kept; the next connect uses the new credentials.
    take_over_and_leave(&stack, &first, &mut events).await;
    let Event::Connecting { client_id, .. } =
        next_matching(&mut events, "a reconnect", |e| matches!(e, Event::Connecting { .. })).await
    else {
        unreachable!()
    };
    assert_eq!(client_id, first);
    next_matching(&mut events, "the resubscription", |e| {
        matches!(e, Event::Subscribed { .. })
    })
    .await;
    publish(&stack, &format!("allowed/{client_id}"), "with new credentials").await;
    assert_eq!(message(&mut events).await.1, "with new credentials");
}

#[test]
fn the_binary_exits_3_with_one_line_when_the_api_is_down() {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let output = Command::new(env!("CARGO_BIN_EXE_client-example"))
        .args(["--api", &format!("http://127.0.0.1:{port}/credentials")])
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(3));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(stderr.lines().count(), 1, "{stderr}");
    assert!(
        stderr.starts_with("error: could not get credentials: could not reach the credentials API"),
        "{stderr}"
    );
    assert!(
        stderr.contains("Connection refused") && stderr.contains("is the API, or the local stack, running?"),
        "says why, not only that a request failed: {stderr}"
    );
}

/// A vending API stand-in answering every POST with `status` and `body`.
async fn fake_api(status: u16, body: serde_json::Value) -> String {
    let app = axum::Router::new().fallback(move || {
        let body = body.clone();
        async move { (axum::http::StatusCode::from_u16(status).unwrap(), axum::Json(body)) }
    });
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    format!("http://{addr}/credentials")
}

async fn run_binary(api: &str) -> std::process::Output {
    let mut command = Command::new(env!("CARGO_BIN_EXE_client-example"));
    command.args(["--api", api]);
    tokio::task::spawn_blocking(move || command.output().unwrap())
        .await
        .unwrap()
}

#[tokio::test]
async fn the_binary_exits_3_and_shows_the_apis_error_on_a_401() {
    let body = serde_json::json!({"error": {"code": "InvalidToken", "message": "The bearer token has expired."}});
    let api = fake_api(401, body).await;
    let output = run_binary(&api).await;
    assert_eq!(output.status.code(), Some(3));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains("401") && stderr.contains("The bearer token has expired."),
        "{stderr}"
    );
}

#[tokio::test]
async fn the_binary_exits_4_when_the_handshake_is_forbidden() {
    let stack = LocalStack::start(LocalOptions::ephemeral()).await.unwrap();
    let mut vended: serde_json::Value = reqwest::Client::new()
        .post(&stack.info().api_url)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    vended["credentials"]["secretAccessKey"] = "wrong".into();
    let api = fake_api(200, vended).await;
    let output = run_binary(&api).await;
    assert_eq!(
        output.status.code(),
        Some(4),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr
            .lines()
            .last()
            .unwrap()
            .starts_with("error: the IoT endpoint forbade the connection"),
        "{stderr}"
    );
}

#[tokio::test]
async fn the_driver_sends_its_bearer_token_to_a_jwt_protected_api() {
    let options = LocalOptions {
        settings: vec![
            ("AUTH_MODE".into(), "jwt".into()),
            ("SUBSCRIBE_TOPICS".into(), "allowed/{clientId},users/{sub}".into()),
        ],
        ..LocalOptions::ephemeral()
    };
    let token = options.mint_token("dora", Duration::from_secs(600)).unwrap();
    let stack = LocalStack::start(options).await.unwrap();
    let source = HttpSource::new(&stack.info().api_url, Some(&token));
    let driver_options = Options {
        extra_topics: vec!["users/dora".into()],
        ..fast_options()
    };
    let (mut events, _stop) = spawn_driver(source, driver_options);
    subscribed_client(&mut events).await;
    publish(&stack, "users/dora", "for dora").await;
    assert_eq!(
        message(&mut events).await,
        ("users/dora".to_owned(), "for dora".to_owned())
    );
}

#[tokio::test]
async fn an_api_url_without_a_scheme_is_a_usage_error_that_shows_a_whole_url() {
    let output = run_binary("api.example.invalid/credentials").await;
    assert_eq!(output.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("http://127.0.0.1:4601/credentials"), "{stderr}");
    assert!(!stderr.contains("builder error"), "{stderr}");
}

#[tokio::test]
async fn a_closed_stdout_ends_the_binary_quietly_with_exit_0() {
    use std::io::BufRead;
    let stack = LocalStack::start(LocalOptions::ephemeral()).await.unwrap();
    let api = stack.info().api_url.clone();
    let (mut child, first) = tokio::task::spawn_blocking(move || {
        let mut child = Command::new(env!("CARGO_BIN_EXE_client-example"))
            .args(["--api", &api, "--json"])
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        // `| head -1`: read one line, then close the pipe.
        let mut first = String::new();
        std::io::BufReader::new(child.stdout.take().unwrap())
            .read_line(&mut first)
            .unwrap();
        (child, first)
    })
    .await
    .unwrap();
    assert!(first.contains("\"event\":\"credentials\""), "{first}");
    // The client may have written its next lines into the pipe before it was
    // closed, and then have nothing more to say: a kick makes it say something
    // (a 404 means it had not connected yet, and its connect will).
    let event: serde_json::Value = serde_json::from_str(&first).unwrap();
    let client_id = event["clientId"].as_str().unwrap();
    let kicked = admin_request(&stack, "DELETE", &format!("/connections/{client_id}"), b"").await;
    assert!(kicked == 200 || kicked == 404, "{kicked}");
    let status = tokio::task::spawn_blocking(move || {
        let mut stderr = String::new();
        std::io::Read::read_to_string(&mut child.stderr.take().unwrap(), &mut stderr).unwrap();
        (child.wait().unwrap(), stderr)
    })
    .await
    .unwrap();
    assert_eq!(status.0.code(), Some(0), "{}", status.1);
    assert!(!status.1.contains("panicked"), "{}", status.1);
    stack.shutdown().await;
}

#[tokio::test]
async fn a_payload_that_is_not_utf8_is_printed_as_base64_byte_for_byte() {
    let stack = LocalStack::start(LocalOptions::ephemeral()).await.unwrap();
    let mut child = tokio::process::Command::new(env!("CARGO_BIN_EXE_client-example"))
        .args(["--api", &stack.info().api_url, "--json", "--count", "1"])
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let mut lines = tokio::io::AsyncBufReadExt::lines(tokio::io::BufReader::new(child.stdout.take().unwrap()));
    let mut topic = None;
    while let Some(line) = lines.next_line().await.unwrap() {
        let event: serde_json::Value = serde_json::from_str(&line).unwrap();
        match event["event"].as_str() {
            Some("subscribed") => {
                let subscribed = event["topics"][0].as_str().unwrap().to_owned();
                publish_bytes(&stack, &subscribed, &[0x01, 0xff, 0x00, b'a']).await;
                topic = Some(subscribed);
            }
            Some("message") => {
                assert_eq!(event["topic"].as_str(), topic.as_deref());
                assert_eq!(event["encoding"], "base64");
                assert_eq!(event["payload"], "Af8AYQ==");
                break;
            }
            _ => {}
        }
    }
    assert_eq!(child.wait().await.unwrap().code(), Some(0));
    stack.shutdown().await;
}

/// Runs the binary against the stack's API with `args` until it exits, which it
/// must within twice `WAIT` (instead of reconnecting for ever).
async fn until_it_gives_up(stack: &LocalStack, args: &[&str]) -> std::process::Output {
    let mut command = Command::new(env!("CARGO_BIN_EXE_client-example"));
    command.args(["--api", &stack.info().api_url]).args(args);
    tokio::time::timeout(WAIT * 2, tokio::task::spawn_blocking(move || command.output().unwrap()))
        .await
        .unwrap_or_else(|_| panic!("the client gives up instead of reconnecting for ever"))
        .unwrap()
}

#[tokio::test]
async fn a_publish_refused_twice_the_same_way_exits_4_naming_the_topic_and_the_grants() {
    let stack = LocalStack::start(LocalOptions::ephemeral()).await.unwrap();
    let output = until_it_gives_up(&stack, &["--publish", "elsewhere/x", "hi"]).await;
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(4), "{stderr}");
    let last = stderr.lines().last().unwrap_or_default();
    assert!(
        last.contains("refused PUBLISH to elsewhere/x") && last.contains("may publish to nothing"),
        "{stderr}"
    );
    stack.shutdown().await;
}

#[tokio::test]
async fn a_subscribe_refused_twice_the_same_way_exits_4_naming_the_topic_and_the_grants() {
    // IoT refuses a 3.1.1 SUBSCRIBE by closing the connection, which a lost
    // connection looks like too: the client tries once more before giving up.
    let stack = LocalStack::start(LocalOptions::ephemeral()).await.unwrap();
    let output = until_it_gives_up(&stack, &["--topic", "elsewhere/x", "--json"]).await;
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(4), "{stderr}");
    let last = stderr.lines().last().unwrap_or_default();
    assert!(
        last.contains("refused SUBSCRIBE to")
            && last.contains("elsewhere/x")
            && last.contains("may subscribe to allowed/"),
        "{stderr}"
    );
    let stdout = String::from_utf8_lossy(&output.stdout);
    let connects = stdout.lines().filter(|l| l.contains(r#""event":"connected""#)).count();
    assert_eq!(connects, 2, "one retry, then the error: {stdout}");
    stack.shutdown().await;
}

/// Publishes raw bytes at QoS 1 through the gateway's HTTPS API as the local
/// admin, signed like botocore (trusting the stack's CA with `--tls`).
async fn publish_bytes(stack: &LocalStack, topic: &str, payload: &[u8]) {
    let encoded = percent_encoding::utf8_percent_encode(topic, percent_encoding::NON_ALPHANUMERIC);
    assert_eq!(
        admin_request(stack, "POST", &format!("/topics/{encoded}?qos=1"), payload).await,
        200
    );
}

/// `DeleteConnection` of `client_id`, keeping its persistent session.
async fn kick(stack: &LocalStack, client_id: &str) {
    assert_eq!(
        admin_request(stack, "DELETE", &format!("/connections/{client_id}"), b"").await,
        200
    );
}

/// A request to the gateway's HTTPS data plane as the local admin, signed like
/// botocore; its status.
async fn admin_request(stack: &LocalStack, method: &str, path: &str, body: &[u8]) -> u16 {
    let info = stack.info();
    let credentials = SdkCredentials::new(
        &info.admin.access_key_id,
        &info.admin.secret_access_key,
        None,
        None,
        "admin",
    );
    let url = format!("{}{path}", info.iot_data_endpoint);
    let signed = sigv4::sign_headers(
        &sigv4::ToSign {
            method,
            url: &url,
            headers: &[("host", sigv4::host_of(&url))],
            body,
            service: "iotdata",
            region: &info.region,
            content_sha256_header: false,
        },
        &credentials,
        SystemTime::now(),
    );
    let mut client = reqwest::Client::builder();
    if let Some(ca) = &info.ca_cert {
        client = client.tls_certs_only([reqwest::Certificate::from_pem(&std::fs::read(ca).unwrap()).unwrap()]);
    }
    let mut request = client
        .build()
        .unwrap()
        .request(method.parse().unwrap(), &url)
        .body(body.to_vec());
    for (name, value) in signed {
        request = request.header(name, value);
    }
    request.send().await.unwrap().status().as_u16()
}

/// The backend of the stream test: `n` numbered QoS 1 messages to the client's
/// topic, with a kick after the 100th (once `resumed`) and the 200th. The second
/// kick waits until the client is `back`: `DeleteConnection` of a client that is
/// still reconnecting is a 404.
async fn stream_with_two_kicks(
    stack: &LocalStack,
    client_id: &str,
    count: u32,
    resumed: &tokio::sync::Notify,
    back: &tokio::sync::Notify,
) {
    let topic = format!("allowed/{client_id}");
    for n in 1..=count {
        publish(stack, &topic, &n.to_string()).await;
        if n == 100 {
            resumed.notified().await;
        }
        if n == 200 {
            back.notified().await;
        }
        if n == 100 || n == 200 {
            kick(stack, client_id).await;
        }
    }
}

#[tokio::test]
async fn a_numbered_stream_arrives_whole_and_in_order_across_kicks_and_a_resume_under_one_client_id() {
    let stack = LocalStack::start(LocalOptions::ephemeral()).await.unwrap();
    let source = Scripted {
        api: HttpSource::new(&stack.info().api_url, None),
        spoil_first: false,
        lifetime: Some(Duration::from_secs(4)),
        calls: Arc::new(Mutex::new(0)),
    };
    let options = Options {
        refresh_fraction: 0.25,
        ..fast_options()
    };
    let (mut events, _stop) = spawn_driver(source, options);
    let client_id = subscribed_client(&mut events).await;
    const N: u32 = 300;
    // The backend: a QoS 1 stream, with the client kicked twice along the way; the
    // first kick comes after a refresh, so the reconnect uses resumed credentials.
    let resumed = tokio::sync::Notify::new();
    let back = tokio::sync::Notify::new();
    let backend = stream_with_two_kicks(&stack, &client_id, N, &resumed, &back);
    let mut received: Vec<u32> = Vec::new();
    let mut connects: Vec<(String, bool)> = Vec::new();
    let mut refreshed = 0;
    let client = async {
        while received.last() != Some(&N) {
            match next_matching(&mut events, "the stream", |_| true).await {
                Event::Message { payload, .. } => {
                    received.push(std::str::from_utf8(&payload).unwrap().parse().unwrap())
                }
                Event::Connected {
                    client_id,
                    session_present,
                } => {
                    connects.push((client_id, session_present));
                    back.notify_one();
                }
                Event::CredentialsRefreshed { client_id: id, .. } => {
                    assert_eq!(id, client_id, "a refresh keeps the client ID");
                    refreshed += 1;
                    resumed.notify_one();
                }
                Event::NewClientId { .. } => panic!("the client ID changed"),
                _ => {}
            }
        }
    };
    tokio::join!(backend, client);
    // QoS 1 allows a message twice (a re-send with DUP); never a gap, never out of order.
    let mut unique = received.clone();
    unique.dedup();
    assert_eq!(unique, (1..=N).collect::<Vec<_>>(), "every number, in order");
    assert!(connects.len() >= 2, "the client was kicked and came back: {connects:?}");
    assert!(
        connects.iter().all(|(id, present)| *id == client_id && *present),
        "{connects:?}"
    );
    assert!(refreshed >= 1, "credentials were refreshed by resuming");
}

#[tokio::test]
async fn an_untrusted_tls_certificate_says_to_pass_the_stacks_ca() {
    let stack = LocalStack::start(LocalOptions {
        tls: true,
        ..LocalOptions::ephemeral()
    })
    .await
    .unwrap();
    let output = run_binary(&stack.info().api_url).await;
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(4), "{stderr}");
    assert!(
        stderr.contains("TLS certificate is not trusted") && stderr.contains("--ca-cert"),
        "{stderr}"
    );
    stack.shutdown().await;
}

/// A vending API whose resume tokens have all expired: every resume is refused.
struct ExpiredResumes(HttpSource);

impl CredentialSource for ExpiredResumes {
    async fn fetch(&self, resume: Option<&ResumeToken>) -> Result<Vended, FetchError> {
        if resume.is_some() {
            return Err(FetchError::Api {
                status: 401,
                code: "ResumeTokenExpired".into(),
                message: "The resume token has expired.".into(),
            });
        }
        let mut vended = self.0.fetch(None).await?;
        // Due for a refresh almost at once.
        vended.credentials.expiration =
            serverless_websockets_core::wire::format_iso8601(SystemTime::now() + Duration::from_secs(2));
        Ok(vended)
    }
}

#[tokio::test]
async fn a_refused_resume_falls_back_to_a_new_client_id_and_says_that_queued_messages_are_lost() {
    let stack = LocalStack::start(LocalOptions::ephemeral()).await.unwrap();
    let options = Options {
        refresh_fraction: 0.1,
        ..fast_options()
    };
    let (mut events, _stop) = spawn_driver(ExpiredResumes(HttpSource::new(&stack.info().api_url, None)), options);
    let first = subscribed_client(&mut events).await;
    let Event::NewClientId {
        previous,
        client_id,
        reason,
    } = next_matching(&mut events, "the fallback", |e| matches!(e, Event::NewClientId { .. })).await
    else {
        unreachable!()
    };
    assert_eq!(previous, first);
    assert_ne!(client_id, first);
    assert!(reason.contains("ResumeTokenExpired"), "{reason}");
}

/// Hands out `first` on the first fetch, then what the API vends.
struct FirstThese {
    first: Mutex<Option<Vended>>,
    api: HttpSource,
}

impl CredentialSource for FirstThese {
    async fn fetch(&self, resume: Option<&ResumeToken>) -> Result<Vended, FetchError> {
        let first = self.first.lock().unwrap().take();
        match first {
            Some(vended) => Ok(vended),
            None => self.api.fetch(resume).await,
        }
    }
}

#[tokio::test]
async fn a_kept_session_the_driver_never_subscribed_in_gets_its_subscriptions() {
    // A CONNECT can be accepted and its connection close before the client sees
    // the SUBACK: IoT keeps the session, without subscriptions, and says
    // "session present" next time. Here such a session is made on purpose: the
    // vended client connects once, persistent, and leaves without subscribing.
    let mut options = LocalOptions::ephemeral();
    options.gateway.limits.connects_per_second = 0;
    let stack = LocalStack::start(options).await.unwrap();
    let api = HttpSource::new(&stack.info().api_url, None);
    let vended = api.fetch(None).await.unwrap();
    let mut mqtt = rumqttc::MqttOptions::new(&vended.client_id, vended.url.clone(), 0);
    mqtt.set_transport(rumqttc::Transport::Ws).set_clean_session(false);
    let (empty, mut empty_loop) = rumqttc::AsyncClient::new(mqtt, 10);
    loop {
        match tokio::time::timeout(WAIT, empty_loop.poll()).await.expect("a CONNACK") {
            Ok(rumqttc::Event::Incoming(rumqttc::Packet::ConnAck(ack))) => {
                assert!(!ack.session_present);
                break;
            }
            Ok(_) => {}
            Err(err) => panic!("the first connect failed: {err}"),
        }
    }
    empty.try_disconnect().unwrap();
    while empty_loop.poll().await.is_ok() {}

    let client_id = vended.client_id.clone();
    let source = FirstThese {
        first: Mutex::new(Some(vended)),
        api,
    };
    let (mut events, _stop) = spawn_driver(source, fast_options());
    let connected = next_matching(&mut events, "the connect", |e| matches!(e, Event::Connected { .. })).await;
    assert_eq!(
        connected,
        Event::Connected {
            client_id: client_id.clone(),
            session_present: true
        }
    );
    next_matching(&mut events, "the subscription", |e| {
        matches!(e, Event::Subscribed { .. })
    })
    .await;
    publish(&stack, &format!("allowed/{client_id}"), "into the kept session").await;
    assert_eq!(message(&mut events).await.1, "into the kept session");
}
