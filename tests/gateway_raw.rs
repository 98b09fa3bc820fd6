//! The gateway's protocol limits, driven by a raw WebSocket client speaking MQTT
//! packets encoded with `rumqttc::mqttbytes` (a full client library would refuse to
//! send most of these).

#![allow(
    clippy::expect_used,
    reason = "test code: a panic with its message is the failure report"
)]

mod common;

use std::time::Duration;

use bytes::BytesMut;
use futures_util::{SinkExt, StreamExt};
use rumqttc::mqttbytes::QoS;
use rumqttc::mqttbytes::v4::{Connect, Packet, Publish, Subscribe};
use serverless_websockets_local::gateway::GatewayOptions;
use serverless_websockets_local::stack::{LocalOptions, LocalStack};
use tokio_tungstenite::tungstenite::Message;

use common::mqtt::{RawSocket as Socket, admin_websocket as admin_socket};

async fn send(socket: &mut Socket, packet: Packet) {
    let mut buffer = BytesMut::new();
    packet.write(&mut buffer, 1 << 20).unwrap();
    socket.send(Message::binary(buffer.freeze())).await.unwrap();
}

/// The next MQTT packet, or `None` when the gateway closed the connection.
async fn receive(socket: &mut Socket, buffer: &mut BytesMut) -> Option<Packet> {
    loop {
        if let Ok(packet) = Packet::read(buffer, 1 << 20) {
            return Some(packet);
        }
        match tokio::time::timeout(Duration::from_secs(10), socket.next())
            .await
            .expect("gateway answered")
        {
            Some(Ok(Message::Binary(bytes))) => buffer.extend_from_slice(&bytes),
            Some(Ok(Message::Close(_))) | None | Some(Err(_)) => return None,
            Some(Ok(_)) => {}
        }
    }
}

async fn connected(stack: &LocalStack, client_id: &str, keep_alive: u16) -> (Socket, BytesMut) {
    let mut socket = admin_socket(stack).await;
    let mut connect = Connect::new(client_id);
    connect.keep_alive = keep_alive;
    send(&mut socket, Packet::Connect(connect)).await;
    let mut buffer = BytesMut::new();
    match receive(&mut socket, &mut buffer).await {
        Some(Packet::ConnAck(ack)) => assert_eq!(ack.code, rumqttc::mqttbytes::v4::ConnectReturnCode::Success),
        other => panic!("expected CONNACK, got {other:?}"),
    }
    (socket, buffer)
}

/// Subscribes to `filter` at QoS 0 and insists on a SUBACK.
async fn subscribed(socket: &mut Socket, buffer: &mut BytesMut, filter: &str) {
    let mut subscribe = Subscribe::new(filter, QoS::AtMostOnce);
    subscribe.pkid = 1;
    send(socket, Packet::Subscribe(subscribe)).await;
    assert!(
        matches!(receive(socket, buffer).await, Some(Packet::SubAck(_))),
        "SUBACK for {filter}"
    );
}

#[tokio::test]
async fn a_silent_client_is_disconnected_after_one_and_a_half_keep_alives() {
    let options = GatewayOptions {
        min_keep_alive: Duration::from_secs(1),
        ..GatewayOptions::default()
    };
    let stack = LocalStack::start(LocalOptions {
        gateway: options,
        ..LocalOptions::ephemeral()
    })
    .await
    .unwrap();
    let (mut socket, mut buffer) = connected(&stack, "silent", 1).await;
    let started = std::time::Instant::now();
    assert!(
        receive(&mut socket, &mut buffer).await.is_none(),
        "the gateway closes the connection"
    );
    let waited = started.elapsed();
    assert!(
        waited >= Duration::from_millis(1400),
        "closed after {waited:?}, before 1.5 × keep-alive"
    );
    stack.shutdown().await;
}

#[tokio::test]
async fn pings_keep_a_connection_alive_and_get_pingresp() {
    let stack = LocalStack::start(LocalOptions::ephemeral()).await.unwrap();
    let (mut socket, mut buffer) = connected(&stack, "pinger", 30).await;
    send(&mut socket, Packet::PingReq).await;
    assert_eq!(receive(&mut socket, &mut buffer).await, Some(Packet::PingResp));
    stack.shutdown().await;
}

#[tokio::test]
async fn a_message_over_128_kib_disconnects() {
    let stack = LocalStack::start(LocalOptions::ephemeral()).await.unwrap();
    let (mut socket, mut buffer) = connected(&stack, "big", 30).await;
    let publish = Publish::new("a/b", QoS::AtMostOnce, vec![0u8; 129 * 1024]);
    send(&mut socket, Packet::Publish(publish)).await;
    assert!(receive(&mut socket, &mut buffer).await.is_none());
    stack.shutdown().await;
}

#[tokio::test]
async fn more_than_eight_filters_in_one_subscribe_disconnects() {
    let stack = LocalStack::start(LocalOptions::ephemeral()).await.unwrap();
    let (mut socket, mut buffer) = connected(&stack, "greedy", 30).await;
    let filters = (0..9).map(|n| rumqttc::mqttbytes::v4::SubscribeFilter::new(format!("t/{n}"), QoS::AtMostOnce));
    let mut subscribe = Subscribe::new_many(filters);
    subscribe.pkid = 1;
    send(&mut socket, Packet::Subscribe(subscribe)).await;
    assert!(receive(&mut socket, &mut buffer).await.is_none());
    stack.shutdown().await;
}

#[tokio::test]
async fn qos_2_and_reserved_topics_are_refused_by_disconnecting() {
    let stack = LocalStack::start(LocalOptions::ephemeral()).await.unwrap();
    for (client_id, topic, qos) in [
        ("refused-qos2", "a/b", QoS::ExactlyOnce),
        ("refused-reserved", "$aws/things/x/shadow/update", QoS::AtMostOnce),
    ] {
        let (mut socket, mut buffer) = connected(&stack, client_id, 30).await;
        let mut publish = Publish::new(topic, qos, "x");
        publish.pkid = 1;
        send(&mut socket, Packet::Publish(publish)).await;
        assert!(receive(&mut socket, &mut buffer).await.is_none(), "{topic} at {qos:?}");
    }
    stack.shutdown().await;
}

#[tokio::test]
async fn a_subscription_to_a_parent_level_wildcard_does_not_match_the_parent() {
    let stack = LocalStack::start(LocalOptions::ephemeral()).await.unwrap();
    let (mut socket, mut buffer) = connected(&stack, "hash", 30).await;
    subscribed(&mut socket, &mut buffer, "sensor/#").await;
    for topic in ["sensor", "sensor/1"] {
        send(
            &mut socket,
            Packet::Publish(Publish::new(topic, QoS::AtMostOnce, topic)),
        )
        .await;
    }
    match receive(&mut socket, &mut buffer).await {
        Some(Packet::Publish(publish)) => assert_eq!(publish.topic, "sensor/1", "IoT: sensor/# does not match sensor"),
        other => panic!("{other:?}"),
    }
    stack.shutdown().await;
}

#[tokio::test]
async fn shutting_the_stack_down_closes_live_connections() {
    let stack = LocalStack::start(LocalOptions::ephemeral()).await.unwrap();
    let (mut socket, mut buffer) = connected(&stack, "live", 30).await;
    stack.shutdown().await;
    assert!(receive(&mut socket, &mut buffer).await.is_none());
}

#[tokio::test]
async fn the_fifty_first_subscription_is_refused_with_0x80() {
    let stack = LocalStack::start(LocalOptions::ephemeral()).await.unwrap();
    let (mut socket, mut buffer) = connected(&stack, "collector", 30).await;
    for batch in 0..7u16 {
        let count = if batch == 6 { 3 } else { 8 }; // 6 × 8 + 3 = 51 filters
        let filters =
            (0..count).map(|n| rumqttc::mqttbytes::v4::SubscribeFilter::new(format!("t/{batch}/{n}"), QoS::AtMostOnce));
        let mut subscribe = Subscribe::new_many(filters);
        subscribe.pkid = batch + 1;
        send(&mut socket, Packet::Subscribe(subscribe)).await;
        match receive(&mut socket, &mut buffer).await {
            Some(Packet::SubAck(ack)) => {
                let failures = ack
                    .return_codes
                    .iter()
                    .filter(|c| matches!(c, rumqttc::mqttbytes::v4::SubscribeReasonCode::Failure))
                    .count();
                assert_eq!(failures, if batch == 6 { 1 } else { 0 }, "batch {batch}");
            }
            other => panic!("{other:?}"),
        }
    }
    stack.shutdown().await;
}

#[tokio::test]
async fn a_subscriber_that_stops_reading_is_disconnected_instead_of_buffering() {
    let options = GatewayOptions {
        queue_len: 4,
        ..GatewayOptions::default()
    };
    let stack = LocalStack::start(LocalOptions {
        gateway: options,
        ..LocalOptions::ephemeral()
    })
    .await
    .unwrap();
    let (mut watcher, mut watcher_buffer) = connected(&stack, "watcher", 30).await;
    subscribed(&mut watcher, &mut watcher_buffer, "$aws/events/presence/disconnected/+").await;

    let (mut slow, mut slow_buffer) = connected(&stack, "slow", 30).await;
    subscribed(&mut slow, &mut slow_buffer, "firehose").await;
    // `slow` now reads nothing while 64 MiB is published to it.
    let payload = bytes::Bytes::from(vec![7u8; 64 * 1024]);
    let broker = &stack.gateway().broker;
    for _ in 0..1024 {
        broker.publish("firehose", payload.clone(), QoS::AtMostOnce, false);
        tokio::task::yield_now().await;
    }
    let event = receive(&mut watcher, &mut watcher_buffer).await;
    let Some(Packet::Publish(event)) = event else {
        panic!("the slow subscriber was never disconnected: {event:?}")
    };
    let event: serde_json::Value = serde_json::from_slice(&event.payload).unwrap();
    assert_eq!(event["clientId"], "slow");
    assert_eq!(event["disconnectReason"], "THROTTLED");
    drop(slow);
    stack.shutdown().await;
}
