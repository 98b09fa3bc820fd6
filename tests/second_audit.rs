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
use rumqttc::v5::mqttbytes::v5::{
    Connect, ConnectProperties, ConnectReturnCode, DisconnectReasonCode, LastWill, LastWillProperties, Packet,
    PublishProperties,
};

use common::mqtt5::{Client5, Raw5, admin, options, persistent, url_for};
use serverless_websockets_core::quota::MAX_USER_PROPERTIES_BYTES;
use serverless_websockets_local::gateway::GatewayOptions;
use serverless_websockets_local::gateway::broker::Pending;
use serverless_websockets_local::stack::{LocalOptions, LocalStack};

async fn stack() -> LocalStack {
    LocalStack::start(common::mqtt::quick_reconnects()).await.unwrap()
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

/// One data-plane request signed as botocore signs it (service `iotdata`), as the
/// local admin, with `extra` headers signed too; returns the status and the body.
async fn data_plane(
    stack: &LocalStack,
    method: &str,
    path: &str,
    extra: &[(&str, &str)],
    body: &[u8],
) -> (u16, String) {
    data_plane_adding(stack, method, path, extra, &[], body).await
}

/// The same, with `unsigned` headers added after signing.
async fn data_plane_adding(
    stack: &LocalStack,
    method: &str,
    path: &str,
    extra: &[(&str, &str)],
    unsigned: &[(&str, &str)],
    body: &[u8],
) -> (u16, String) {
    let url = format!("{}{path}", stack.info().iot_data_endpoint);
    let call = common::mqtt::SignedCall {
        method,
        url: &url,
        region: "us-east-1",
        credentials: &admin(stack),
        signed: extra,
        unsigned,
        body,
    };
    let response = common::mqtt::signed_call(&reqwest::Client::new(), &call).await;
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
    eventually("one timer and one will", || {
        pending(&stack) == Pending { timers: 1, wills: 1 }
    })
    .await;
    // Before the fix every reconnect kept its own will and timer for the hour.

    // Taken up again: nothing waits any more until this connection ends.
    let (back, ack) = Client5::connect(persistent(&url, "looper", 3600)).await;
    assert!(ack.session_present);
    eventually("the stopped timer's end", || {
        pending(&stack) == Pending { timers: 0, wills: 0 }
    })
    .await;
    back.leave().await;
    eventually("the clean leave's expiry timer", || {
        pending(&stack) == Pending { timers: 1, wills: 0 }
    })
    .await;
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
    connect_and_vanish(
        &url,
        "deleted",
        will("deleted", 1, Bytes::from_static(b"OFFLINE deleted")),
    )
    .await;
    eventually("the will waiting", || pending(&stack).wills == 1).await;
    let (_back, _) = Client5::connect(persistent(&url, "deleted", 3600)).await;
    let answer = data_plane(
        &stack,
        "DELETE",
        "/connections/deleted?preventWillMessage=true",
        &[],
        b"",
    )
    .await;
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

/// `count` one-byte user properties: 7 bytes each as MQTT 5 encodes them.
fn tiny_properties(count: usize) -> PublishProperties {
    PublishProperties {
        user_properties: vec![("k".to_owned(), "v".to_owned()); count],
        ..PublishProperties::default()
    }
}

/// The largest number of one-byte pairs within IoT's 8 KB of user properties.
const MOST_TINY_PAIRS: usize = MAX_USER_PROPERTIES_BYTES / 7;

/// The CONNACK code for a CONNECT whose will has one user property over the quota.
async fn connack_for_will_over_quota(url: &str) -> ConnectReturnCode {
    let mut raw = Raw5::open(url).await;
    let mut over = will("will-over", 0, Bytes::from_static(b"gone"));
    if let Some(p) = over.properties.as_mut() {
        p.user_properties = tiny_properties(MOST_TINY_PAIRS + 1).user_properties;
    }
    let connect = Connect {
        keep_alive: 30,
        client_id: "will-over".into(),
        clean_start: true,
        properties: None,
    };
    raw.send(Packet::Connect(connect, Some(over), None)).await;
    match raw.recv().await {
        Some(Packet::ConnAck(ack)) => ack.code,
        other => panic!("expected CONNACK, got {other:?}"),
    }
}

/// An HTTPS publish whose `x-amz-mqtt5-user-properties` has one pair over the quota.
async fn https_publish_over_quota(stack: &LocalStack) -> (u16, String) {
    use base64::Engine as _;
    let pairs: Vec<_> = (0..MOST_TINY_PAIRS + 1)
        .map(|_| serde_json::json!({"k": "v"}))
        .collect();
    let header = base64::engine::general_purpose::STANDARD.encode(serde_json::to_vec(&pairs).unwrap());
    data_plane(
        stack,
        "POST",
        "/topics/props%2Fhttps?qos=1",
        &[("x-amz-mqtt5-user-properties", &header)],
        b"https",
    )
    .await
}

#[tokio::test]
async fn user_properties_over_iots_8_kb_are_refused_on_publish_will_and_https_publish() {
    let stack = stack().await;
    let url = url_for(&stack, &admin(&stack));
    let mut receiver = Client5::connect(options(&url, "receiver")).await.0;
    receiver.subscribed("props/+", QoS::AtLeastOnce).await;

    // At the quota: delivered with every pair.
    let (publisher, _) = Client5::connect(options(&url, "publisher")).await;
    publisher
        .client
        .publish_with_properties(
            "props/at",
            QoS::AtLeastOnce,
            false,
            "at",
            tiny_properties(MOST_TINY_PAIRS),
        )
        .await
        .unwrap();
    let at = receiver.next_publish().await;
    assert_eq!(at.properties.map(|p| p.user_properties.len()), Some(MOST_TINY_PAIRS));

    // One pair over: the connection ends with 0x97, nothing is delivered.
    let mut raw = Raw5::open(&url).await;
    raw.connect("over").await;
    let mut publish = rumqttc::v5::mqttbytes::v5::Publish::new("props/over", QoS::AtMostOnce, "over", None);
    publish.properties = Some(tiny_properties(MOST_TINY_PAIRS + 1));
    raw.send(Packet::Publish(publish)).await;
    raw.expect_disconnect(DisconnectReasonCode::QuotaExceeded).await;

    // A will over the quota: CONNACK 0x97.
    assert_eq!(
        connack_for_will_over_quota(&url).await,
        ConnectReturnCode::QuotaExceeded
    );

    // The HTTPS publish: 400 with the reason.
    let (status, body) = https_publish_over_quota(&stack).await;
    assert_eq!(status, 400, "{body}");
    assert!(body.contains("over IoT's 8192"), "{body}");

    publisher
        .client
        .publish("props/marker", QoS::AtLeastOnce, false, "marker")
        .await
        .unwrap();
    assert_eq!(
        &receiver.next_publish().await.payload[..],
        b"marker",
        "nothing over the quota was delivered"
    );
    stack.shutdown().await;
}

#[tokio::test]
async fn receive_maximum_0_and_maximum_packet_size_0_are_protocol_errors() {
    let stack = stack().await;
    let url = url_for(&stack, &admin(&stack));
    for (receive_max, max_packet_size) in [(Some(0), None), (None, Some(0))] {
        let mut raw = Raw5::open(&url).await;
        let properties = ConnectProperties {
            receive_maximum: receive_max,
            max_packet_size,
            ..ConnectProperties::new()
        };
        let ack = raw.connect_with("zeroes", Some(properties)).await;
        assert_eq!(
            ack.code,
            ConnectReturnCode::ProtocolError,
            "{receive_max:?} {max_packet_size:?}"
        );
    }
    stack.shutdown().await;
}

/// `options` for a client that takes the largest packets IoT sends.
fn large(mut options: rumqttc::v5::MqttOptions) -> rumqttc::v5::MqttOptions {
    options.set_max_packet_size(Some(256 * 1024));
    options
}

/// An away MQTT 5 session of `client_id` subscribed to `topic` at QoS 1.
async fn away_session(url: &str, client_id: &str, topic: &str) {
    let mut client = Client5::connect(persistent(url, client_id, 3600)).await.0;
    client.subscribed(topic, QoS::AtLeastOnce).await;
    client.leave().await;
}

#[tokio::test]
async fn an_away_session_stores_messages_up_to_its_bytes_and_all_of_them_up_to_a_shared_budget() {
    // 4 MiB in a burst: far over IoT's 512 KiB/s per connection, relaxed here.
    let stack = common::mqtt::stack_with(GatewayOptions {
        queue_bytes: 4 * 1024 * 1024,
        stored_bytes: 6 * 1024 * 1024,
        limits: serverless_websockets_local::gateway::Limits::relaxed(),
        ..common::mqtt::quick_gateway()
    })
    .await;
    let url = url_for(&stack, &admin(&stack));
    away_session(&url, "away-1", "chat/room").await;
    away_session(&url, "away-2", "chat/room").await;
    let (publisher, _) = Client5::connect(options(&url, "chatter")).await;
    // 40 messages of 100 KiB and 1,170 one-byte user properties each: ~5 MiB on
    // the wire, ~8.5 MiB in memory, for each away session.
    for n in 0..40 {
        publisher
            .client
            .publish_with_properties(
                "chat/room",
                QoS::AtLeastOnce,
                false,
                vec![b'x'; 100 * 1024],
                tiny_properties(MOST_TINY_PAIRS),
            )
            .await
            .unwrap();
        let _ = n;
    }
    let mut marker = Client5::connect(large(options(&url, "marker"))).await.0;
    marker.subscribed("chat/room", QoS::AtLeastOnce).await;
    // Routed in order: once the watcher has its copy of a later message, the
    // away sessions have been offered all 40.
    publisher
        .client
        .publish("chat/room", QoS::AtLeastOnce, false, "last")
        .await
        .unwrap();
    loop {
        if &marker.next_publish().await.payload[..] == b"last" {
            break;
        }
    }
    let stored = stack.gateway().broker.bounds().stored();
    assert!(stored <= 6 * 1024 * 1024, "stored {stored} bytes");
    assert!(stored > 3 * 1024 * 1024, "the budget was used: {stored} bytes");

    // Each away client gets what was stored for it, and no more than its bound.
    let mut got = Vec::new();
    for id in ["away-1", "away-2"] {
        let (mut back, ack) = Client5::connect(large(persistent(&url, id, 3600))).await;
        assert!(ack.session_present);
        let mut n = 0;
        publisher
            .client
            .publish("chat/room", QoS::AtLeastOnce, false, "end")
            .await
            .unwrap();
        while &back.next_publish().await.payload[..] != b"end" {
            n += 1;
        }
        got.push(n);
    }
    eprintln!("stored for the two away sessions: {got:?} of 40 messages; {stored} bytes");
    assert!(got.iter().all(|&n| n < 40), "{got:?}");
    assert!(got.iter().sum::<usize>() > 0, "{got:?}");
    assert_eq!(stack.gateway().broker.bounds().stored(), 0, "released once taken up");
    stack.shutdown().await;
}

#[tokio::test]
async fn a_confirmed_direct_message_over_the_receivers_maximum_packet_size_is_not_answered_200() {
    let stack = stack().await;
    let url = url_for(&stack, &admin(&stack));
    let mut small = options(&url, "small");
    small.set_max_packet_size(Some(1024));
    let (mut receiver, _) = Client5::connect(small).await;
    let path = "/connections/small/messages?topic=direct%2Fsmall&confirmation=true&timeout=2";
    let (status, body) = data_plane(&stack, "POST", path, &[], &[b'x'; 4096]).await;
    assert_eq!(status, 413, "{body}");
    assert!(
        body.contains("RequestEntityTooLargeException") || body.contains("Maximum Packet Size"),
        "{body}"
    );
    // One that fits is delivered and confirmed.
    let (status, body) = data_plane(&stack, "POST", path, &[], b"fits").await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(&receiver.next_publish().await.payload[..], b"fits");
    stack.shutdown().await;
}

#[tokio::test]
async fn a_routed_message_over_a_subscribers_maximum_packet_size_is_dropped_for_that_subscriber_only() {
    let stack = stack().await;
    let url = url_for(&stack, &admin(&stack));
    let mut small = options(&url, "small");
    small.set_max_packet_size(Some(1024));
    let (mut small, _) = Client5::connect(small).await;
    small.subscribed("sizes/x", QoS::AtLeastOnce).await;
    let mut large = Client5::connect(options(&url, "large")).await.0;
    large.subscribed("sizes/x", QoS::AtLeastOnce).await;
    for body in [&[b'x'; 4096][..], b"fits"] {
        let (status, answer) = data_plane(&stack, "POST", "/topics/sizes%2Fx?qos=1", &[], body).await;
        assert_eq!(status, 200, "{answer}");
    }
    assert_eq!(large.next_publish().await.payload.len(), 4096);
    assert_eq!(&large.next_publish().await.payload[..], b"fits");
    // The small client gets the next message, not the one it could not take.
    assert_eq!(&small.next_publish().await.payload[..], b"fits");
    stack.shutdown().await;
}

#[tokio::test]
async fn mqtt5_headers_the_signature_does_not_cover_are_refused() {
    use base64::Engine as _;
    let stack = stack().await;
    let url = url_for(&stack, &admin(&stack));
    let mut receiver = Client5::connect(options(&url, "receiver")).await.0;
    receiver.subscribed("signed/+", QoS::AtLeastOnce).await;
    let forged = base64::engine::general_purpose::STANDARD.encode(br#"[{"role":"admin"}]"#);
    for header in [
        "x-amz-mqtt5-user-properties",
        "x-amz-mqtt5-correlation-data",
        "x-amz-mqtt5-payload-format-indicator",
    ] {
        let value = if header.ends_with("indicator") {
            "UTF8_DATA"
        } else {
            forged.as_str()
        };
        let (status, body) = data_plane_adding(
            &stack,
            "POST",
            "/topics/signed%2Fforged?qos=1",
            &[],
            &[(header, value)],
            b"x",
        )
        .await;
        assert_eq!(status, 403, "{header}: {body}");
    }
    // Signed, the same header is honoured.
    let (status, body) = data_plane(
        &stack,
        "POST",
        "/topics/signed%2Fgenuine?qos=1",
        &[("x-amz-mqtt5-user-properties", &forged)],
        b"genuine",
    )
    .await;
    assert_eq!(status, 200, "{body}");
    let delivered = receiver.next_publish().await;
    assert_eq!(&delivered.payload[..], b"genuine", "nothing forged was delivered first");
    assert_eq!(
        delivered.properties.map(|p| p.user_properties),
        Some(vec![("role".to_owned(), "admin".to_owned())])
    );
    stack.shutdown().await;
}

/// The gateway's `host:port`.
fn gateway_addr(stack: &LocalStack) -> String {
    common::sigv4::host_of(&stack.info().iot_data_endpoint).to_owned()
}

/// Reads one HTTP response's status line from `stream`, if one comes within `within`.
async fn status_within(stream: &mut tokio::net::TcpStream, within: Duration) -> Option<String> {
    use tokio::io::AsyncReadExt;
    let mut buffer = vec![0u8; 4096];
    let read = tokio::time::timeout(within, stream.read(&mut buffer))
        .await
        .ok()?
        .ok()?;
    let text = String::from_utf8_lossy(&buffer[..read]).into_owned();
    text.lines().next().map(str::to_owned)
}

#[tokio::test]
async fn a_request_its_headers_condemn_is_refused_before_its_body_is_read() {
    use tokio::io::AsyncWriteExt;
    let stack = stack().await;
    let addr = gateway_addr(&stack);
    let date = serverless_websockets_core::sigv4::format_amz_date(std::time::SystemTime::now());
    let scope_date = &date[..8];
    for (what, key, amz_date) in [
        ("an unknown key", "AKIAUNKNOWN000000000", date.as_str()),
        (
            "a stale date",
            stack.info().backend.access_key_id.as_str(),
            "20200101T000000Z",
        ),
    ] {
        let mut stream = tokio::net::TcpStream::connect(&addr).await.unwrap();
        let head = format!(
            "POST /topics/a HTTP/1.1\r\nHost: {addr}\r\nX-Amz-Date: {amz_date}\r\n\
             Authorization: AWS4-HMAC-SHA256 Credential={key}/{scope}/us-east-1/iotdata/aws4_request, \
             SignedHeaders=host;x-amz-date, Signature={sig}\r\nContent-Length: 131072\r\n\r\n",
            scope = if amz_date == date { scope_date } else { "20200101" },
            sig = "0".repeat(64),
        );
        stream.write_all(head.as_bytes()).await.unwrap();
        // The body never comes: the answer must not wait for it (the body
        // deadline is 10 s).
        let status = status_within(&mut stream, Duration::from_secs(5)).await;
        assert_eq!(status.as_deref(), Some("HTTP/1.1 403 Forbidden"), "{what}");
    }
    stack.shutdown().await;
}

#[tokio::test]
async fn headers_over_64_kib_are_refused_without_being_buffered() {
    use tokio::io::AsyncWriteExt;
    let stack = stack().await;
    let mut stream = tokio::net::TcpStream::connect(gateway_addr(&stack)).await.unwrap();
    let mut head = b"POST /topics/a HTTP/1.1\r\nHost: x\r\n".to_vec();
    for n in 0..200 {
        head.extend_from_slice(format!("X-Filler-{n}: {}\r\n", "f".repeat(1000)).as_bytes());
    }
    // The gateway may hang up while this is still being written.
    let _ = stream.write_all(&head).await;
    let status = status_within(&mut stream, Duration::from_secs(5)).await;
    assert!(
        status.as_deref().is_none_or(|s| s.contains(" 431 ")),
        "200 KB of headers: {status:?}"
    );
    stack.shutdown().await;
}

#[tokio::test]
async fn a_listener_serves_at_most_its_maximum_of_connections_and_the_rest_are_closed() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut options = common::mqtt::quick_reconnects();
    options.timeouts.max_connections = 8;
    let stack = LocalStack::start(options).await.unwrap();
    let addr = gateway_addr(&stack);
    let mut idle = Vec::new();
    for _ in 0..8 {
        idle.push(tokio::net::TcpStream::connect(&addr).await.unwrap());
    }
    let mut ninth = tokio::net::TcpStream::connect(&addr).await.unwrap();
    let mut buffer = [0u8; 16];
    let read = tokio::time::timeout(Duration::from_secs(5), ninth.read(&mut buffer)).await;
    assert!(
        matches!(read, Ok(Ok(0) | Err(_))),
        "the ninth connection was closed: {read:?}"
    );
    // The idle ones are still served.
    let stream = &mut idle[0];
    stream
        .write_all(b"GET /ping HTTP/1.1\r\nHost: x\r\n\r\n")
        .await
        .unwrap();
    assert!(status_within(stream, Duration::from_secs(5)).await.is_some());
    stack.shutdown().await;
}

/// A WebSocket handshake to the gateway with a valid presigned URL, sending
/// `origin` (and `host`, when set, instead of the URL's); the HTTP status.
async fn handshake(stack: &LocalStack, origin: Option<&str>, host: Option<&str>) -> u16 {
    use tokio_tungstenite::tungstenite::client::IntoClientRequest;
    let mut request = url_for(stack, &admin(stack)).into_client_request().unwrap();
    let headers = request.headers_mut();
    headers.insert("sec-websocket-protocol", "mqtt".parse().unwrap());
    if let Some(origin) = origin {
        headers.insert("origin", origin.parse().unwrap());
    }
    if let Some(host) = host {
        headers.insert("host", host.parse().unwrap());
    }
    match tokio_tungstenite::connect_async(request).await {
        Ok((_, response)) => response.status().as_u16(),
        Err(tokio_tungstenite::tungstenite::Error::Http(response)) => response.status().as_u16(),
        Err(other) => panic!("handshake: {other}"),
    }
}

#[tokio::test]
async fn a_web_page_on_another_origin_cannot_open_a_websocket_to_the_gateway() {
    let stack = stack().await;
    let api_origin = stack.info().api_url.trim_end_matches("/credentials").to_owned();
    assert_eq!(handshake(&stack, Some("http://evil.example"), None).await, 403);
    assert_eq!(handshake(&stack, Some("null"), None).await, 403);
    assert_eq!(handshake(&stack, None, None).await, 101, "no Origin: not a browser");
    assert_eq!(
        handshake(&stack, Some(&api_origin), None).await,
        101,
        "the demo page's own origin"
    );
    stack.shutdown().await;

    // An origin CORS_ALLOW_ORIGINS allows may connect.
    let stack = LocalStack::start(LocalOptions {
        settings: vec![("CORS_ALLOW_ORIGINS".into(), "http://localhost:5173".into())],
        ..common::mqtt::quick_reconnects()
    })
    .await
    .unwrap();
    assert_eq!(handshake(&stack, Some("http://localhost:5173"), None).await, 101);
    assert_eq!(handshake(&stack, Some("http://evil.example"), None).await, 403);
    stack.shutdown().await;
}

#[tokio::test]
async fn a_rebound_host_name_gets_nothing_from_any_listener() {
    let stack = stack().await;
    let info = stack.info().clone();
    let rebound = |url: &str| format!("rebind.evil.example:{}", url.rsplit(':').next().unwrap_or_default());
    let config = format!("{}/demo/config.json", info.api_url.trim_end_matches("/credentials"));
    let client = reqwest::Client::new();
    for (what, url) in [
        ("the demo config", config.clone()),
        ("the vending API", info.api_url.clone()),
        ("STS", info.sts_endpoint.clone()),
        ("the data plane", format!("{}/connections/x", info.iot_data_endpoint)),
    ] {
        let port = url.split('/').nth(2).unwrap_or_default().to_owned();
        let response = client.get(&url).header("host", rebound(&port)).send().await.unwrap();
        assert_eq!(response.status(), 403, "{what}");
        let body = response.text().await.unwrap();
        assert!(
            !body.contains(&info.backend.secret_access_key),
            "{what} leaked the secret"
        );
    }
    assert_eq!(handshake(&stack, None, Some(&rebound(&info.iot_endpoint))).await, 403);
    // By address or localhost, the demo config still has what the page shows.
    let own = client.get(&config).send().await.unwrap().text().await.unwrap();
    assert!(own.contains(&info.backend.secret_access_key));
    stack.shutdown().await;
}

#[tokio::test]
async fn stored_messages_the_resuming_credentials_may_not_receive_are_dropped() {
    use serverless_websockets_core::policy::Grants;
    use serverless_websockets_core::topic::{Topic, TopicFilter};
    let stack = stack().await;
    let admin_url = url_for(&stack, &admin(&stack));
    // The session fills under broad credentials (a wildcard subscription) …
    let mut broad = Client5::connect(persistent(&admin_url, "resumer", 3600)).await.0;
    broad.subscribed("allowed/+", QoS::AtLeastOnce).await;
    broad.leave().await;
    let publisher = Client5::connect(options(&admin_url, "publisher")).await.0;
    for (topic, payload) in [("allowed/other", "someone else's"), ("allowed/resumer", "mine")] {
        publisher
            .client
            .publish(topic, QoS::AtLeastOnce, false, payload)
            .await
            .unwrap();
    }
    // Routed in order: once a watcher has a later message, both are stored.
    let mut watcher = Client5::connect(options(&admin_url, "watcher")).await.0;
    watcher.subscribed("allowed/watcher", QoS::AtLeastOnce).await;
    publisher
        .client
        .publish("allowed/watcher", QoS::AtLeastOnce, false, "after")
        .await
        .unwrap();
    watcher.next_publish().await;
    // … and is taken up by credentials that receive on their own topic only.
    let grants = Grants {
        subscribe: vec![TopicFilter::from(Topic::parse("allowed/resumer").unwrap())],
        publish: vec![],
    };
    let narrow = common::mqtt5::credentials_for(&stack, "resumer", &grants).await;
    let (mut back, ack) = Client5::connect(persistent(&url_for(&stack, &narrow), "resumer", 3600)).await;
    assert!(ack.session_present);
    assert_eq!(&back.next_publish().await.payload[..], b"mine");
    // Its wildcard was refused on resume; it subscribes to what it may.
    back.subscribed("allowed/resumer", QoS::AtLeastOnce).await;
    publisher
        .client
        .publish("allowed/resumer", QoS::AtLeastOnce, false, "marker")
        .await
        .unwrap();
    assert_eq!(
        &back.next_publish().await.payload[..],
        b"marker",
        "nothing for allowed/other"
    );
    stack.shutdown().await;
}

/// The audit's realistic grant set: three per-user topics and a per-user,
/// per-client publish topic.
fn realistic_settings() -> Vec<(String, String)> {
    [
        ("AUTH_MODE", "jwt"),
        (
            "SUBSCRIBE_TOPICS",
            "allowed/{clientId},users/{sub},inbox/{sub},alerts/{sub}",
        ),
        ("PUBLISH_TOPICS", "from/{sub}/{clientId}"),
    ]
    .iter()
    .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
    .collect()
}

#[tokio::test]
async fn a_realistic_per_user_grant_set_starts_serves_real_subjects_and_refuses_odd_ones_with_403() {
    let options = LocalOptions {
        settings: realistic_settings(),
        ..common::mqtt::quick_reconnects()
    };
    let stack = LocalStack::start(options.clone())
        .await
        .expect("the realistic grant set starts");
    let api = stack.info().api_url.clone();
    let vend = |sub: String| {
        let token = options.mint_token(&sub, Duration::from_secs(600)).unwrap();
        let api = api.clone();
        async move {
            let response = reqwest::Client::new()
                .post(&api)
                .bearer_auth(token)
                .send()
                .await
                .unwrap();
            let status = response.status().as_u16();
            (status, response.json::<serde_json::Value>().await.unwrap())
        }
    };
    for sub in [
        "8f14e45f-ceea-467f-a0e6-3a5d2e9f0c11",         // Cognito
        "auth0|5f7c8ec7c33c6c004bbafe82",               // Auth0
        "AAAAAAAAAAAAAAAAAAAAAIkzqFVrSaSaFHy782bbtaQ",  // Entra ID
        "001234.4a5b6c7d8e9f0a1b2c3d4e5f6a7b8c9d.0123", // Sign in with Apple
    ] {
        let (status, body) = vend(sub.to_owned()).await;
        assert_eq!(status, 200, "{sub}: {body}");
        let client_id = body["clientId"].as_str().unwrap();
        assert_eq!(
            body["grants"]["publish"],
            serde_json::json!([format!("from/{sub}/{client_id}")]),
            "{sub}"
        );
    }
    for sub in [
        "a".repeat(300),
        "\"quoted\"".to_owned(),
        "用户".to_owned(),
        "x".repeat(65),
    ] {
        let (status, body) = vend(sub.clone()).await;
        assert_eq!(
            (status, body["error"]["code"].as_str()),
            (403, Some("InvalidSubject")),
            "{sub:?}: {body}"
        );
    }
    stack.shutdown().await;
}

#[tokio::test]
async fn the_old_worst_case_subject_rule_does_not_fit_the_realistic_grant_set_and_start_up_says_so() {
    // 128-byte subjects of any Latin-1 character: start-up names the setting.
    let mut settings = realistic_settings();
    settings.push(("SUB_MAX_BYTES".into(), "128".into()));
    settings.push(("SUB_CHARACTERS".into(), "latin1".into()));
    let refused = LocalStack::start(LocalOptions {
        settings,
        ..common::mqtt::quick_reconnects()
    })
    .await
    .err()
    .expect("too large a worst case is refused at start-up")
    .to_string();
    assert!(refused.contains("SUB_MAX_BYTES"), "{refused}");
}
