//! IoT Core's limits and its differences from the MQTT specifications, as the
//! local gateway applies them, through its real listener: the maximum connection
//! duration, CONNECTs per second per client ID, publishes and bytes per second
//! per connection, user properties, a QoS 2 SUBSCRIBE, and empty client IDs —
//! each with its relaxation. Clients: `rumqttc`'s v4 and v5 clients and raw
//! packets encoded with its codecs.

mod common;

use std::time::Duration;

use bytes::{Bytes, BytesMut};
use rumqttc::v5::mqttbytes::QoS;
use rumqttc::v5::mqttbytes::v5::{ConnectReturnCode, DisconnectReasonCode, PubAckReason, PublishProperties};
use serde_json::Value;

use common::mqtt::{Client, Seen, stack_with, vend};
use common::mqtt5::{Client5, Raw5, admin, options, url_for};
use serverless_websockets_local::gateway::{GatewayOptions, Limits};
use serverless_websockets_local::stack::LocalStack;

async fn stack(limits: Limits) -> LocalStack {
    stack_with(GatewayOptions {
        limits,
        ..GatewayOptions::default()
    })
    .await
}

fn admin_url(stack: &LocalStack) -> String {
    url_for(stack, &admin(stack))
}

/// An MQTT 5 client of the admin, connected, watching `filter`.
async fn watcher(stack: &LocalStack, client_id: &str, filter: &str) -> Client5 {
    let (mut client, _) = Client5::connect(options(&admin_url(stack), client_id)).await;
    client.subscribed(filter, QoS::AtMostOnce).await;
    client
}

#[tokio::test]
async fn a_connection_is_closed_at_the_maximum_duration_with_websocket_ttl_expiration() {
    let stack = stack(Limits {
        max_connection_duration: Duration::from_secs(1),
        ..Limits::default()
    })
    .await;
    let (mut client, _) = Client5::connect(options(&admin_url(&stack), "short-lived")).await;
    let (code, why) = client.disconnected().await;
    assert_eq!(code, Some(DisconnectReasonCode::MaximumConnectTime), "{why}");
    assert_eq!(why, "WEBSOCKET_TTL_EXPIRATION");
    // GetConnection says why, as the lifecycle event does.
    let known = get_connection(&stack, "short-lived").await;
    assert_eq!(known["connected"], false);
    assert_eq!(known["disconnectReason"], "WEBSOCKET_TTL_EXPIRATION");
    stack.shutdown().await;
}

/// GetConnection as the admin: the status and the JSON answer.
async fn get_connection_answer(stack: &LocalStack, client_id: &str) -> (u16, Value) {
    let url = format!(
        "{}/connections/{}",
        stack.info().iot_data_endpoint,
        percent_encoding::utf8_percent_encode(client_id, percent_encoding::NON_ALPHANUMERIC)
    );
    let call = common::mqtt::SignedCall {
        method: "GET",
        url: &url,
        region: "us-east-1",
        credentials: &admin(stack),
        signed: &[],
        unsigned: &[],
        body: b"",
    };
    let response = common::mqtt::signed_call(&reqwest::Client::new(), &call).await;
    (response.status().as_u16(), response.json().await.unwrap())
}

async fn get_connection(stack: &LocalStack, client_id: &str) -> Value {
    let (status, answer) = get_connection_answer(stack, client_id).await;
    assert_eq!(status, 200, "{answer}");
    answer
}

#[tokio::test]
async fn a_second_connect_within_a_second_is_refused_with_0x9f_and_the_first_connection_stays() {
    let stack = stack(Limits::default()).await;
    let url = admin_url(&stack);
    let (mut first, _) = Client5::connect(options(&url, "twice")).await;

    let mut raw = Raw5::open(&url).await;
    let ack = raw.connect("twice").await;
    assert_eq!(ack.code, ConnectReturnCode::ConnectionRateExceeded);
    assert!(raw.recv().await.is_none(), "closed after the refusal");
    // Another client ID is not affected, and the first connection still works.
    let (_other, _) = Client5::connect(options(&url, "another")).await;
    first.subscribed("twice/topic", QoS::AtLeastOnce).await;

    // A 3.1.1 client is closed without CONNACK, as IoT closes refused CONNECTs.
    let mut raw = Raw5::open(&url).await;
    raw.send_bytes(v4_connect("twice", true)).await;
    assert_eq!(raw.recv_bytes().await, None, "no CONNACK, closed");

    // Once the second is over, the client ID connects again (and takes over).
    tokio::time::sleep(Duration::from_millis(1050)).await;
    let (_again, _) = Client5::connect(options(&url, "twice")).await;
    assert_eq!(
        first.disconnected().await.0,
        Some(DisconnectReasonCode::SessionTakenOver)
    );
    stack.shutdown().await;
}

#[tokio::test]
async fn only_a_connect_the_policy_allows_counts_toward_the_rate_so_nobody_locks_a_client_out() {
    let stack = stack(Limits::default()).await;
    let vended = vend(&stack.info().api_url).await;
    // Someone else's credentials try the vended client ID first: refused (0x87).
    let other = vend(&stack.info().api_url).await;
    let mut raw = Raw5::open(&other.url).await;
    assert_eq!(
        raw.connect(&vended.client_id).await.code,
        ConnectReturnCode::NotAuthorized
    );
    // The owner connects at once.
    let (_client, _) = Client5::connect(options(&vended.url, &vended.client_id)).await;
    stack.shutdown().await;
}

#[tokio::test]
async fn with_the_connect_rate_relaxed_a_client_id_reconnects_at_once() {
    let stack = stack(Limits {
        connects_per_second: 0,
        ..Limits::default()
    })
    .await;
    let url = admin_url(&stack);
    let (mut first, _) = Client5::connect(options(&url, "quick")).await;
    let (_second, _) = Client5::connect(options(&url, "quick")).await;
    assert_eq!(
        first.disconnected().await.0,
        Some(DisconnectReasonCode::SessionTakenOver)
    );
    stack.shutdown().await;
}

/// Publishes `count` QoS 1 messages of `size` bytes at once and returns the
/// PUBACK reason of each, in order.
async fn burst(client: &mut Client5, topic: &str, count: usize, size: usize) -> Vec<PubAckReason> {
    for _ in 0..count {
        client
            .client
            .publish(topic, QoS::AtLeastOnce, false, vec![b'x'; size])
            .await
            .unwrap();
    }
    let mut reasons = Vec::new();
    while reasons.len() < count {
        reasons.push(client.next_puback().await.reason);
    }
    reasons
}

#[tokio::test]
async fn publishes_over_the_rate_are_dropped_and_an_mqtt_5_client_gets_puback_0x97() {
    let stack = stack(Limits {
        publishes_per_second: 5,
        ..Limits::default()
    })
    .await;
    let mut receiver = watcher(&stack, "receiver", "burst/topic").await;
    let (mut sender, _) = Client5::connect(options(&admin_url(&stack), "sender")).await;
    let reasons = burst(&mut sender, "burst/topic", 12, 10).await;
    let passed = reasons.iter().filter(|r| **r == PubAckReason::Success).count();
    // The bucket holds one second's worth; the burst lasts milliseconds.
    assert!((5..=6).contains(&passed), "{reasons:?}");
    assert!(reasons[..5].iter().all(|r| *r == PubAckReason::Success), "{reasons:?}");
    assert_eq!(reasons[11], PubAckReason::QuotaExceeded, "{reasons:?}");
    for _ in 0..passed {
        receiver.next_publish().await;
    }
    // The connection stays, and nothing more arrives than what passed: the next
    // delivery is a marker sent once the bucket has refilled.
    tokio::time::sleep(Duration::from_millis(250)).await;
    sender
        .client
        .publish("burst/topic", QoS::AtLeastOnce, false, "marker")
        .await
        .unwrap();
    assert_eq!(sender.next_puback().await.reason, PubAckReason::Success);
    assert_eq!(&receiver.next_publish().await.payload[..], b"marker");
    stack.shutdown().await;
}

#[tokio::test]
async fn a_throttled_qos_1_publish_of_a_3_1_1_client_gets_no_puback() {
    let stack = stack(Limits {
        publishes_per_second: 3,
        ..Limits::default()
    })
    .await;
    let url = admin_url(&stack);
    let mut client = Client::connect(&url, "v4-sender", None).await;
    for n in 0..5u8 {
        client
            .client
            .publish("v4/topic", rumqttc::QoS::AtLeastOnce, false, vec![n])
            .await
            .unwrap();
    }
    let mut acked = Vec::new();
    while acked.len() < 3 {
        if let Seen::PubAck(pkid) = client.next().await {
            acked.push(pkid);
        }
    }
    assert_eq!(acked, [1, 2, 3]);
    // The fourth and fifth are never acknowledged: after a refill, a sixth is,
    // and it is the next PUBACK.
    tokio::time::sleep(Duration::from_millis(400)).await;
    client
        .client
        .publish("v4/topic", rumqttc::QoS::AtLeastOnce, false, "sixth")
        .await
        .unwrap();
    loop {
        match client.next().await {
            Seen::PubAck(pkid) => {
                assert_eq!(pkid, 6, "the next PUBACK is the sixth publish's");
                break;
            }
            Seen::Closed(why) => panic!("closed: {why}"),
            _ => {}
        }
    }
    stack.shutdown().await;
}

#[tokio::test]
async fn payload_bytes_over_the_throughput_are_dropped() {
    let stack = stack(Limits {
        publish_bytes_per_second: 1000,
        ..Limits::default()
    })
    .await;
    let (mut sender, _) = Client5::connect(options(&admin_url(&stack), "bulky")).await;
    let reasons = burst(&mut sender, "bulky/topic", 3, 600).await;
    assert_eq!(
        reasons,
        [
            PubAckReason::Success,
            PubAckReason::QuotaExceeded,
            PubAckReason::QuotaExceeded
        ]
    );
    stack.shutdown().await;
}

#[tokio::test]
async fn with_the_publish_limits_relaxed_a_burst_passes_whole() {
    let stack = stack(Limits::relaxed()).await;
    let (mut sender, _) = Client5::connect(options(&admin_url(&stack), "relaxed")).await;
    let reasons = burst(&mut sender, "relaxed/topic", 150, 10).await;
    assert!(reasons.iter().all(|r| *r == PubAckReason::Success));
    stack.shutdown().await;
}

#[tokio::test]
async fn user_properties_over_the_configured_size_end_the_connection_with_0x97() {
    let stack = stack(Limits {
        max_user_properties_bytes: 64,
        ..Limits::default()
    })
    .await;
    let (mut client, _) = Client5::connect(options(&admin_url(&stack), "props")).await;
    let small = PublishProperties {
        user_properties: vec![("k".into(), "v".repeat(50))],
        ..PublishProperties::default()
    };
    client
        .client
        .publish_with_properties("props/topic", QoS::AtLeastOnce, false, "ok", small)
        .await
        .unwrap();
    assert_eq!(client.next_puback().await.reason, PubAckReason::Success);
    let large = PublishProperties {
        user_properties: vec![("k".into(), "v".repeat(60))],
        ..PublishProperties::default()
    };
    client
        .client
        .publish_with_properties("props/topic", QoS::AtLeastOnce, false, "big", large)
        .await
        .unwrap();
    assert_eq!(client.disconnected().await.0, Some(DisconnectReasonCode::QuotaExceeded));
    stack.shutdown().await;
}

/// A 3.1.1 CONNECT as bytes.
fn v4_connect(client_id: &str, clean_session: bool) -> Bytes {
    let mut connect = rumqttc::mqttbytes::v4::Connect::new(client_id);
    connect.keep_alive = 30;
    connect.clean_session = clean_session;
    let mut buffer = BytesMut::new();
    connect.write(&mut buffer).unwrap();
    buffer.freeze()
}

/// A 3.1.1 SUBSCRIBE as bytes.
fn v4_subscribe(filter: &str, qos: rumqttc::QoS) -> Bytes {
    let subscribe = rumqttc::mqttbytes::v4::Subscribe::new(filter, qos);
    let mut buffer = BytesMut::new();
    let mut subscribe = subscribe;
    subscribe.pkid = 1;
    subscribe.write(&mut buffer).unwrap();
    buffer.freeze()
}

#[tokio::test]
async fn a_3_1_1_subscribe_asking_for_qos_2_is_closed_without_suback_as_iot_does() {
    let stack = stack(Limits::default()).await;
    let mut raw = Raw5::open(&admin_url(&stack)).await;
    raw.send_bytes(v4_connect("qos2", true)).await;
    assert_eq!(
        raw.recv_bytes().await.as_deref(),
        Some(&[0x20, 2, 0, 0][..]),
        "CONNACK accepted"
    );
    raw.send_bytes(v4_subscribe("qos2/topic", rumqttc::QoS::ExactlyOnce))
        .await;
    assert_eq!(raw.recv_bytes().await, None, "no SUBACK, closed");

    // MQTT 5: DISCONNECT 0x9B (QoS not supported), no SUBACK either.
    let (mut client, _) = Client5::connect(options(&admin_url(&stack), "qos2-v5")).await;
    client.client.subscribe("qos2/topic", QoS::ExactlyOnce).await.unwrap();
    assert_eq!(
        client.disconnected().await.0,
        Some(DisconnectReasonCode::QoSNotSupported)
    );
    stack.shutdown().await;
}

#[tokio::test]
async fn with_grant_qos2_as_qos1_a_qos_2_subscribe_is_granted_qos_1() {
    let stack = stack(Limits {
        grant_qos2_as_qos1: true,
        ..Limits::default()
    })
    .await;
    let mut raw = Raw5::open(&admin_url(&stack)).await;
    raw.send_bytes(v4_connect("qos2", true)).await;
    raw.recv_bytes().await.unwrap();
    raw.send_bytes(v4_subscribe("qos2/topic", rumqttc::QoS::ExactlyOnce))
        .await;
    // SUBACK, packet identifier 1, granted QoS 1.
    assert_eq!(raw.recv_bytes().await.as_deref(), Some(&[0x90, 3, 0, 1, 1][..]));
    stack.shutdown().await;
}

#[tokio::test]
async fn an_mqtt_5_connect_without_a_client_id_is_assigned_a_gen_id_authorized_like_any_other() {
    let stack = stack(Limits::default()).await;
    // The admin may connect as any client ID, so as the assigned one too.
    let mut raw = Raw5::open(&admin_url(&stack)).await;
    let ack = raw.connect("").await;
    assert_eq!(ack.code, ConnectReturnCode::Success);
    let assigned = ack.properties.unwrap().assigned_client_identifier.unwrap();
    assert!(assigned.starts_with("$GEN/") && assigned.len() == 41, "{assigned}");
    // The data plane's API refuses client IDs starting with `$`, as its model
    // does: a backend cannot reach such a client by ID (GetConnection,
    // SendDirectMessage, DeleteConnection) — a reason to choose client IDs.
    let (status, answer) = get_connection_answer(&stack, &assigned).await;
    assert_eq!(status, 400, "{answer}");

    // Vended credentials name one client ID: an assigned one is not it.
    let vended = vend(&stack.info().api_url).await;
    let mut raw = Raw5::open(&vended.url).await;
    assert_eq!(raw.connect("").await.code, ConnectReturnCode::NotAuthorized);
    // And nobody reconnects as an assigned ID (IoT answers 0x85).
    let mut raw = Raw5::open(&admin_url(&stack)).await;
    assert_eq!(
        raw.connect(&assigned).await.code,
        ConnectReturnCode::ClientIdentifierNotValid
    );
    stack.shutdown().await;
}

#[tokio::test]
async fn a_3_1_1_connect_without_a_client_id_is_accepted_only_with_a_clean_session() {
    let stack = stack(Limits::default()).await;
    let mut raw = Raw5::open(&admin_url(&stack)).await;
    raw.send_bytes(v4_connect("", true)).await;
    assert_eq!(
        raw.recv_bytes().await.as_deref(),
        Some(&[0x20, 2, 0, 0][..]),
        "accepted"
    );

    let mut raw = Raw5::open(&admin_url(&stack)).await;
    raw.send_bytes(v4_connect("", false)).await;
    assert_eq!(raw.recv_bytes().await, None, "closed without CONNACK");
    stack.shutdown().await;
}
