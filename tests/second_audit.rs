//! The second outside audit's findings (issue 26), each replayed through the
//! local stack's real listeners on port 0: wills and session timers that a
//! reconnect loop multiplied, user properties that inflated stored messages, web
//! pages driving the stack, and the low-severity holes. Each test failed while
//! its hole was open.

#![allow(
    clippy::expect_used,
    reason = "test code: a panic with its message is the failure report"
)]

mod common;

use std::time::{Duration, Instant};

use bytes::Bytes;
use rumqttc::v5::mqttbytes::QoS;
use rumqttc::v5::mqttbytes::v5::{Connect, ConnectProperties, LastWill, LastWillProperties, Packet};

use common::mqtt5::{Client5, Raw5, admin, options, persistent, url_for};
use serverless_websockets_local::gateway::broker::Pending;
use serverless_websockets_local::stack::{LocalOptions, LocalStack};

async fn stack() -> LocalStack {
    LocalStack::start(LocalOptions::ephemeral()).await.unwrap()
}

/// Waits until `done` holds (state changed by another task), failing after 10 s.
async fn eventually(what: &str, mut done: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(10);
    while !done() {
        assert!(Instant::now() < deadline, "{what} did not happen within 10 s");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

fn pending(stack: &LocalStack) -> Pending {
    stack.gateway().broker.pending()
}

fn backend(stack: &LocalStack) -> aws_credential_types::Credentials {
    let b = &stack.info().backend;
    aws_credential_types::Credentials::new(&b.access_key_id, &b.secret_access_key, None, None, "backend")
}

/// One data-plane request signed as botocore signs it (service `iotdata`), as the
/// backend, with `extra` headers signed too; returns the status and the body.
async fn data_plane(
    stack: &LocalStack,
    method: &str,
    path: &str,
    extra: &[(&str, &str)],
    body: &[u8],
) -> (u16, String) {
    let url = format!("{}{path}", stack.info().iot_data_endpoint);
    let mut headers = vec![("host", common::sigv4::host_of(&url))];
    headers.extend_from_slice(extra);
    let signed = common::sigv4::sign_headers(
        &common::sigv4::ToSign {
            method,
            url: &url,
            headers: &headers,
            body,
            service: "iotdata",
            region: "us-east-1",
            content_sha256_header: false,
        },
        &backend(stack),
        std::time::SystemTime::now(),
    );
    let mut request = reqwest::Client::new()
        .request(method.parse().unwrap(), &url)
        .body(body.to_vec());
    for (name, value) in &signed {
        request = request.header(name, value);
    }
    for (name, value) in extra {
        request = request.header(*name, *value);
    }
    let response = request.send().await.unwrap();
    (response.status().as_u16(), response.text().await.unwrap())
}

/// A will on `wills/<client_id>` published `delay` seconds after the connection
/// is lost, carrying `payload`.
fn will(client_id: &str, delay: u32, payload: Bytes) -> LastWill {
    LastWill::new(
        format!("wills/{client_id}"),
        payload,
        QoS::AtLeastOnce,
        false,
        Some(LastWillProperties {
            delay_interval: Some(delay),
            payload_format_indicator: None,
            message_expiry_interval: None,
            content_type: None,
            response_topic: None,
            correlation_data: None,
            user_properties: Vec::new(),
        }),
    )
}

/// Connects raw with a persistent session (one hour) and `will`, then drops the
/// TCP connection without DISCONNECT: the will is due.
async fn connect_and_vanish(url: &str, client_id: &str, will: LastWill) {
    let mut raw = Raw5::open(url).await;
    let connect = Connect {
        keep_alive: 30,
        client_id: client_id.into(),
        clean_start: false,
        properties: Some(ConnectProperties {
            session_expiry_interval: Some(3600),
            ..ConnectProperties::new()
        }),
    };
    raw.send(Packet::Connect(connect, Some(will), None)).await;
    assert!(matches!(raw.recv().await, Some(Packet::ConnAck(_))));
}

#[tokio::test]
async fn a_client_reconnecting_in_a_loop_with_a_delayed_will_leaves_one_timer_and_one_will() {
    let stack = stack().await;
    let url = url_for(&stack, &admin(&stack));
    let payload = Bytes::from(vec![b'x'; 64 * 1024]);
    const ROUNDS: usize = 200;
    for _ in 0..ROUNDS {
        connect_and_vanish(&url, "looper", will("looper", 3600, payload.clone())).await;
    }
    eventually("the last connection's end", || {
        stack.gateway().broker.presence("looper").is_some_and(|p| !p.connected)
    })
    .await;
    eventually("one timer and one will", || pending(&stack) == Pending { timers: 1, wills: 1 }).await;
    // Before the fix every reconnect kept its own will and timer for the hour.

    // Taken up again: nothing waits any more until this connection ends.
    let (back, ack) = Client5::connect(persistent(&url, "looper", 3600)).await;
    assert!(ack.session_present);
    eventually("the stopped timer's end", || pending(&stack) == Pending { timers: 0, wills: 0 }).await;
    back.leave().await;
    eventually("the clean leave's expiry timer", || pending(&stack) == Pending { timers: 1, wills: 0 }).await;
    stack.shutdown().await;
}

#[tokio::test]
async fn an_old_delayed_will_is_not_published_after_the_client_came_back_and_left_cleanly_or_was_deleted() {
    let stack = stack().await;
    let url = url_for(&stack, &admin(&stack));
    let mut watcher = Client5::connect(options(&url, "watcher")).await.0;
    watcher.subscribed("wills/+", QoS::AtLeastOnce).await;

    // Lost with a 1 s will, back in time, then a clean DISCONNECT.
    connect_and_vanish(&url, "clean", will("clean", 1, Bytes::from_static(b"OFFLINE clean"))).await;
    eventually("the will waiting", || pending(&stack).wills == 1).await;
    let (back, _) = Client5::connect(persistent(&url, "clean", 3600)).await;
    back.leave().await;

    // Lost with a 1 s will, back in time, then DeleteConnection preventWillMessage=true.
    connect_and_vanish(&url, "deleted", will("deleted", 1, Bytes::from_static(b"OFFLINE deleted"))).await;
    eventually("the will waiting", || pending(&stack).wills == 1).await;
    let (_back, _) = Client5::connect(persistent(&url, "deleted", 3600)).await;
    let answer = data_plane(&stack, "DELETE", "/connections/deleted?preventWillMessage=true", &[], b"").await;
    assert_eq!(answer.0, 200, "{answer:?}");
    eventually("both sessions away", || {
        ["clean", "deleted"]
            .iter()
            .all(|id| stack.gateway().broker.presence(id).is_some_and(|p| !p.connected))
    })
    .await;
    assert_eq!(pending(&stack), Pending { timers: 2, wills: 0 });

    // Past both delays, a marker arrives and no will before it.
    tokio::time::sleep(Duration::from_millis(1_500)).await;
    let marker = Client5::connect(options(&url, "marker")).await.0;
    marker
        .client
        .publish("wills/marker", QoS::AtLeastOnce, false, "marker")
        .await
        .unwrap();
    assert_eq!(&watcher.next_publish().await.payload[..], b"marker");
    stack.shutdown().await;
}
