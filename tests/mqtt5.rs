//! MQTT 5 on the local gateway, end to end through its real listener: CONNACK's
//! announcements, reason codes for every refusal, properties from publisher to
//! receiver (MQTT, HTTPS publish, SendDirectMessage), message expiry, topic
//! aliases, session expiry, will delay, shared subscriptions on both versions,
//! and 3.1.1 and 5 clients talking to each other. Clients: `rumqttc`'s v5 and v4
//! clients, raw v5 packets, and the AWS CLI v1.

mod common;

use std::process::Command;
use std::time::{Duration, Instant};

use bytes::Bytes;
use rumqttc::v5::mqttbytes::QoS;
use rumqttc::v5::mqttbytes::v5::{
    ConnectProperties, ConnectReturnCode, DisconnectReasonCode, Filter, LastWill, LastWillProperties, Packet,
    PubAckReason, Publish, PublishProperties, Subscribe, SubscribeReasonCode,
};

use common::mqtt::{Client, vend};
use common::mqtt5::{Client5, Raw5, admin, options, persistent, url_for};
use common::tools::{aws_env, tool};
use serverless_websockets_local::stack::LocalStack;

async fn stack() -> LocalStack {
    LocalStack::start(common::mqtt::quick_reconnects()).await.unwrap()
}

/// A v5 client connected as the local admin.
async fn admin5(stack: &LocalStack, client_id: &str) -> Client5 {
    Client5::connect(options(&url_for(stack, &admin(stack)), client_id))
        .await
        .0
}

fn admin_url(stack: &LocalStack) -> String {
    url_for(stack, &admin(stack))
}

#[tokio::test]
async fn connack_announces_what_iot_supports_and_what_it_adjusted() {
    let stack = stack().await;
    let mut options = options(&admin_url(&stack), "announced");
    // Below IoT's 30 s minimum, and a session longer than the gateway keeps one.
    options.set_keep_alive(Duration::from_secs(5));
    options.set_session_expiry_interval(Some(u32::MAX));
    let (_client, ack) = Client5::connect(options).await;
    let p = ack.properties.expect("CONNACK properties");
    assert_eq!(p.max_qos, Some(1));
    assert_eq!(p.retain_available, Some(1));
    assert_eq!(p.wildcard_subscription_available, Some(1));
    assert_eq!(p.shared_subscription_available, Some(1));
    assert_eq!(p.subscription_identifiers_available, Some(0));
    assert_eq!(p.topic_alias_max, Some(8));
    assert!(p.max_packet_size.is_some_and(|max| max >= 128 * 1024));
    assert_eq!(p.server_keep_alive, Some(30), "the raised keep-alive is announced");
    assert_eq!(
        p.session_expiry_interval,
        Some(3600),
        "the capped session expiry is announced"
    );
    stack.shutdown().await;
}

#[tokio::test]
async fn a_refused_connect_gets_connack_0x87_and_an_over_long_client_id_0x85() {
    let stack = stack().await;
    let vended = vend(&stack.info().api_url).await;
    let mut raw = Raw5::open(&vended.url).await;
    let ack = raw.connect("somebody-else").await;
    assert_eq!(ack.code, ConnectReturnCode::NotAuthorized);
    assert!(raw.recv().await.is_none(), "the connection is closed after the refusal");

    let mut raw = Raw5::open(&admin_url(&stack)).await;
    let too_long = "c".repeat(129);
    assert_eq!(
        raw.connect(&too_long).await.code,
        ConnectReturnCode::ClientIdentifierNotValid
    );
    stack.shutdown().await;
}

#[tokio::test]
async fn a_forbidden_filter_gets_suback_0x87_and_the_connection_stays() {
    let stack = stack().await;
    let vended = vend(&stack.info().api_url).await;
    let (mut client, _) = Client5::connect(options(&vended.url, &vended.client_id)).await;
    let codes = client.subscribe("allowed/somebody-else", QoS::AtLeastOnce).await;
    assert_eq!(codes, vec![SubscribeReasonCode::NotAuthorized]);
    // One SUBSCRIBE, one refused and one granted filter.
    client
        .client
        .subscribe_many([
            Filter::new("allowed/#", QoS::AtLeastOnce),
            Filter::new(vended.topic.clone(), QoS::AtLeastOnce),
        ])
        .await
        .unwrap();
    let codes = loop {
        if let common::mqtt5::Seen5::SubAck(codes) = client.next().await {
            break codes;
        }
    };
    assert_eq!(
        codes,
        vec![
            SubscribeReasonCode::NotAuthorized,
            SubscribeReasonCode::Success(QoS::AtLeastOnce)
        ]
    );
    // Still connected: a message on its own topic arrives.
    let admin = admin5(&stack, "admin-publisher").await;
    admin
        .client
        .publish(vended.topic.clone(), QoS::AtLeastOnce, false, "still here")
        .await
        .unwrap();
    assert_eq!(&client.next_publish().await.payload[..], b"still here");
    admin.client.disconnect().await.unwrap();
    stack.shutdown().await;
}

#[tokio::test]
async fn a_forbidden_qos1_publish_gets_puback_0x87_and_a_forbidden_qos0_publish_disconnect_0x87() {
    let stack = stack().await;
    let vended = vend(&stack.info().api_url).await;
    let (mut client, _) = Client5::connect(options(&vended.url, &vended.client_id)).await;
    client
        .client
        .publish("allowed/somebody-else", QoS::AtLeastOnce, false, "no")
        .await
        .unwrap();
    assert_eq!(client.next_puback().await.reason, PubAckReason::NotAuthorized);
    // The connection stays: the client can still subscribe to its own topic.
    client.subscribed(&vended.topic, QoS::AtLeastOnce).await;
    client
        .client
        .publish("allowed/somebody-else", QoS::AtMostOnce, false, "no")
        .await
        .unwrap();
    assert_eq!(client.disconnected().await.0, Some(DisconnectReasonCode::NotAuthorized));
    stack.shutdown().await;
}

#[tokio::test]
async fn request_and_response_carry_response_topic_correlation_data_and_user_properties() {
    let stack = stack().await;
    let mut responder = admin5(&stack, "responder").await;
    responder.subscribed("service/requests", QoS::AtLeastOnce).await;
    let mut requester = admin5(&stack, "requester").await;
    requester.subscribed("replies/requester", QoS::AtLeastOnce).await;

    let request = PublishProperties {
        payload_format_indicator: Some(1),
        response_topic: Some("replies/requester".into()),
        correlation_data: Some(Bytes::from_static(b"request-42")),
        user_properties: vec![
            ("tenant".into(), "acme".into()),
            ("tenant".into(), "second value".into()),
        ],
        content_type: Some("application/json".into()),
        ..PublishProperties::default()
    };
    requester
        .client
        .publish_with_properties("service/requests", QoS::AtLeastOnce, false, r#"{"ask":1}"#, request)
        .await
        .unwrap();
    let received = responder.next_publish().await;
    let p = received
        .properties
        .clone()
        .expect("properties reach an MQTT 5 receiver");
    assert_eq!(p.response_topic.as_deref(), Some("replies/requester"));
    assert_eq!(p.correlation_data.as_deref(), Some(&b"request-42"[..]));
    assert_eq!(p.content_type.as_deref(), Some("application/json"));
    assert_eq!(p.payload_format_indicator, Some(1));
    assert_eq!(
        p.user_properties,
        vec![
            ("tenant".to_owned(), "acme".to_owned()),
            ("tenant".to_owned(), "second value".to_owned())
        ],
        "user properties keep their order and repeated keys"
    );

    let reply = PublishProperties {
        correlation_data: p.correlation_data.clone(),
        ..PublishProperties::default()
    };
    responder
        .client
        .publish_with_properties(p.response_topic.unwrap(), QoS::AtLeastOnce, false, "answer", reply)
        .await
        .unwrap();
    let answer = requester.next_publish().await;
    assert_eq!(&answer.payload[..], b"answer");
    assert_eq!(
        answer.properties.and_then(|p| p.correlation_data).as_deref(),
        Some(&b"request-42"[..])
    );
    stack.shutdown().await;
}

#[tokio::test]
async fn an_expired_message_is_not_delivered_and_the_remaining_interval_is_sent() {
    let stack = stack().await;
    let url = admin_url(&stack);
    let persistent = persistent(&url, "sleeper", 600);
    let (mut sleeper, _) = Client5::connect(persistent.clone()).await;
    sleeper.subscribed("news/today", QoS::AtLeastOnce).await;
    sleeper.leave().await;

    let mut publisher = admin5(&stack, "newsroom").await;
    for (payload, expiry) in [("short-lived", 1), ("long-lived", 120)] {
        let properties = PublishProperties {
            message_expiry_interval: Some(expiry),
            ..PublishProperties::default()
        };
        publisher
            .client
            .publish_with_properties("news/today", QoS::AtLeastOnce, false, payload, properties)
            .await
            .unwrap();
        publisher.next_puback().await;
    }
    // Message expiry is wall-clock time: the short-lived one expires while the
    // client is away.
    tokio::time::sleep(Duration::from_millis(1_500)).await;
    let (mut sleeper, ack) = Client5::connect(persistent).await;
    assert!(ack.session_present);
    let delivered = sleeper.next_publish().await;
    assert_eq!(
        &delivered.payload[..],
        b"long-lived",
        "the expired message was not delivered"
    );
    let left = delivered.properties.and_then(|p| p.message_expiry_interval).unwrap();
    assert!((110..=119).contains(&left), "the remaining interval is sent: {left}");
    stack.shutdown().await;
}

#[tokio::test]
async fn a_topic_alias_names_the_topic_after_its_first_use_and_one_above_8_is_refused() {
    let stack = stack().await;
    let mut watcher = admin5(&stack, "alias-watcher").await;
    watcher.subscribed("sensors/+/temperature", QoS::AtMostOnce).await;
    let mut raw = Raw5::open(&admin_url(&stack)).await;
    assert_eq!(raw.connect("alias-user").await.code, ConnectReturnCode::Success);
    let aliased = |topic: &str, alias: u16, payload: &'static [u8]| {
        Packet::Publish(Publish::new(
            topic,
            QoS::AtMostOnce,
            payload,
            Some(PublishProperties {
                topic_alias: Some(alias),
                ..PublishProperties::default()
            }),
        ))
    };
    raw.send(aliased("sensors/kitchen/temperature", 3, b"21.5")).await;
    raw.send(aliased("", 3, b"21.7")).await;
    for expected in [&b"21.5"[..], b"21.7"] {
        let publish = watcher.next_publish().await;
        assert_eq!(&publish.topic[..], b"sensors/kitchen/temperature");
        assert_eq!(&publish.payload[..], expected);
    }
    raw.send(aliased("sensors/hall/temperature", 9, b"19.0")).await;
    raw.expect_disconnect(DisconnectReasonCode::TopicAliasInvalid).await;
    stack.shutdown().await;
}

#[tokio::test]
async fn session_expiry_keeps_an_mqtt5_session_but_not_across_protocol_versions() {
    let stack = stack().await;
    let url = admin_url(&stack);
    let persistent = persistent(&url, "two-versions", 300);
    let (mut client, ack) = Client5::connect(persistent.clone()).await;
    assert!(!ack.session_present);
    client.subscribed("kept/topic", QoS::AtLeastOnce).await;
    client.leave().await;

    let (client, ack) = Client5::connect(persistent).await;
    assert!(ack.session_present, "an MQTT 5 session with an expiry is resumed");
    client.leave().await;

    let mut v4 = common::mqtt::options(&url, "two-versions", None);
    v4.set_clean_session(false);
    let (_v4, session_present) = Client::connected(v4).await;
    assert!(!session_present, "a 3.1.1 client does not resume an MQTT 5 session");

    // And a session expiry of 0 (the MQTT 5 default) keeps nothing.
    let mut fleeting = options(&url, "fleeting");
    fleeting.set_clean_start(false);
    let (mut client, _) = Client5::connect(fleeting.clone()).await;
    client.subscribed("kept/topic", QoS::AtLeastOnce).await;
    client.leave().await;
    let (_client, ack) = Client5::connect(fleeting).await;
    assert!(!ack.session_present);
    stack.shutdown().await;
}

#[tokio::test]
async fn the_server_tells_an_mqtt5_client_why_it_ends_the_connection() {
    let stack = stack().await;
    let url = admin_url(&stack);
    let (mut first, _) = Client5::connect(options(&url, "taken-over")).await;
    let (_second, _) = Client5::connect(options(&url, "taken-over")).await;
    assert_eq!(
        first.disconnected().await.0,
        Some(DisconnectReasonCode::SessionTakenOver)
    );

    let (mut kicked, _) = Client5::connect(options(&url, "kicked")).await;
    let output = aws_cli(&stack, &["iot-data", "delete-connection", "--client-id", "kicked"]).await;
    assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
    assert_eq!(
        kicked.disconnected().await.0,
        Some(DisconnectReasonCode::AdministrativeAction)
    );
    stack.shutdown().await;
}

#[tokio::test]
async fn the_will_waits_for_its_delay_and_is_dropped_when_the_client_returns_in_time() {
    let stack = stack().await;
    let url = admin_url(&stack);
    let mut watcher = admin5(&stack, "will-watcher").await;
    watcher.subscribed("wills/+", QoS::AtLeastOnce).await;
    let with_will = |client_id: &str, delay: u32| {
        let mut options = persistent(&url, client_id, 60);
        options.set_last_will(LastWill::new(
            format!("wills/{client_id}"),
            format!("{client_id} is gone"),
            QoS::AtLeastOnce,
            false,
            Some(LastWillProperties {
                delay_interval: Some(delay),
                payload_format_indicator: None,
                message_expiry_interval: None,
                content_type: None,
                response_topic: None,
                correlation_data: None,
                user_properties: vec![("why".into(), "lost".into())],
            }),
        ));
        options
    };
    // The connection drops (the gateway's DeleteConnection ends it without a
    // DISCONNECT from the client): the will goes out after its delay.
    let (_gone, _) = Client5::connect(with_will("gone", 1)).await;
    let dropped = Instant::now();
    let output = aws_cli(&stack, &["iot-data", "delete-connection", "--client-id", "gone"]).await;
    assert!(output.status.success());
    let will = watcher.next_publish().await;
    assert_eq!(&will.payload[..], b"gone is gone");
    assert!(
        dropped.elapsed() >= Duration::from_millis(900),
        "published after its delay"
    );
    assert_eq!(
        will.properties.map(|p| p.user_properties),
        Some(vec![("why".to_owned(), "lost".to_owned())])
    );

    // Back within the delay: no will.
    let (_back, _) = Client5::connect(with_will("back", 2)).await;
    let output = aws_cli(&stack, &["iot-data", "delete-connection", "--client-id", "back"]).await;
    assert!(output.status.success());
    let (_back, ack) = Client5::connect(with_will("back", 2)).await;
    assert!(ack.session_present);
    tokio::time::sleep(Duration::from_millis(2_500)).await;
    let marker = admin5(&stack, "marker").await;
    marker
        .client
        .publish("wills/marker", QoS::AtLeastOnce, false, "marker")
        .await
        .unwrap();
    assert_eq!(
        &watcher.next_publish().await.payload[..],
        b"marker",
        "no will for a client that came back within its delay"
    );
    stack.shutdown().await;
}

#[tokio::test]
async fn a_shared_subscription_gives_each_message_to_exactly_one_member_on_both_versions() {
    let stack = stack().await;
    let url = admin_url(&stack);
    // A retained message on the shared topic must not reach the group on subscribe.
    let mut publisher = admin5(&stack, "producer").await;
    publisher
        .client
        .publish("jobs/retained", QoS::AtLeastOnce, true, "old")
        .await
        .unwrap();
    publisher.next_puback().await;

    let mut v5a = admin5(&stack, "worker-a").await;
    v5a.subscribed("$share/workers/jobs/+", QoS::AtLeastOnce).await;
    let mut v5b = admin5(&stack, "worker-b").await;
    v5b.subscribed("$share/workers/jobs/+", QoS::AtLeastOnce).await;
    let mut v4 = Client::connect(&url, "worker-c", None).await;
    v4.subscribed("$share/workers/jobs/+", rumqttc::QoS::AtLeastOnce).await;
    let mut everything = admin5(&stack, "auditor").await;
    everything.subscribed("jobs/+", QoS::AtLeastOnce).await;
    // A shared subscription to exactly the retained topic gets no retained message:
    // the first thing it receives is the next live one.
    let mut solo = admin5(&stack, "solo").await;
    solo.subscribed("$share/solo/jobs/retained", QoS::AtLeastOnce).await;

    const JOBS: usize = 30;
    for n in 0..JOBS {
        publisher
            .client
            .publish(format!("jobs/{n}"), QoS::AtLeastOnce, false, n.to_string())
            .await
            .unwrap();
    }
    publisher
        .client
        .publish("jobs/retained", QoS::AtLeastOnce, false, "live")
        .await
        .unwrap();
    assert_eq!(
        &solo.next_publish().await.payload[..],
        b"live",
        "no retained message for a shared subscription"
    );
    // The plain subscriber gets all of them; the group gets each once.
    for _ in 0..JOBS {
        everything.next_publish().await;
    }
    let mut seen = Vec::new();
    let mut per_member = [0; 3];
    while seen.len() < JOBS + 1 {
        tokio::select! {
            p = v5a.next_publish() => { per_member[0] += 1; seen.push(String::from_utf8(p.payload.to_vec()).unwrap()); }
            p = v5b.next_publish() => { per_member[1] += 1; seen.push(String::from_utf8(p.payload.to_vec()).unwrap()); }
            p = v4.next_publish() => { per_member[2] += 1; seen.push(String::from_utf8(p.payload.to_vec()).unwrap()); }
        }
    }
    seen.sort_by_key(|n| n.parse::<usize>().unwrap_or(usize::MAX));
    let mut expected: Vec<String> = (0..JOBS).map(|n| n.to_string()).collect();
    expected.push("live".into());
    assert_eq!(seen, expected, "each message exactly once, and no retained one");
    assert_eq!(per_member.iter().sum::<usize>(), JOBS + 1);
    assert!(
        per_member.iter().all(|&n| n >= 10),
        "each member in turn: {per_member:?}"
    );
    stack.shutdown().await;
}

#[tokio::test]
async fn a_shared_subscription_is_authorized_as_its_whole_share_filter() {
    let stack = stack().await;
    let vended = vend(&stack.info().api_url).await;
    let (mut client, _) = Client5::connect(options(&vended.url, &vended.client_id)).await;
    // The vended policy grants the client's own topics, not a `$share/…` filter.
    let codes = client
        .subscribe(&format!("$share/group/{}", vended.topic), QoS::AtLeastOnce)
        .await;
    assert_eq!(codes, vec![SubscribeReasonCode::NotAuthorized]);
    let codes = client.subscribe("$share//bad", QoS::AtLeastOnce).await;
    assert_eq!(codes, vec![SubscribeReasonCode::TopicFilterInvalid]);
    stack.shutdown().await;
}

#[tokio::test]
async fn mqtt_3_1_1_and_mqtt_5_clients_exchange_messages_and_3_1_1_gets_no_properties() {
    let stack = stack().await;
    let url = admin_url(&stack);
    let mut old = Client::connect(&url, "old-client", None).await;
    old.subscribed("chat/old", rumqttc::QoS::AtLeastOnce).await;
    let mut new = admin5(&stack, "new-client").await;
    new.subscribed("chat/new", QoS::AtLeastOnce).await;

    let properties = PublishProperties {
        user_properties: vec![("from".into(), "v5".into())],
        content_type: Some("text/plain".into()),
        ..PublishProperties::default()
    };
    new.client
        .publish_with_properties("chat/old", QoS::AtLeastOnce, false, "hello from 5", properties)
        .await
        .unwrap();
    let got = old.next_publish().await;
    assert_eq!(
        (got.topic.as_str(), &got.payload[..]),
        ("chat/old", &b"hello from 5"[..])
    );

    old.client
        .publish("chat/new", rumqttc::QoS::AtLeastOnce, false, "hello from 3.1.1")
        .await
        .unwrap();
    let got = new.next_publish().await;
    assert_eq!(&got.payload[..], b"hello from 3.1.1");
    assert_eq!(got.properties, None, "a 3.1.1 publish has no properties");
    stack.shutdown().await;
}

enum Who {
    Backend,
    Admin,
}

/// Runs the AWS CLI against the stack's data plane as the local backend identity.
async fn aws_cli(stack: &LocalStack, args: &[&str]) -> std::process::Output {
    aws_cli_as(stack, Who::Backend, args).await
}

async fn aws_cli_as(stack: &LocalStack, who: Who, args: &[&str]) -> std::process::Output {
    let info = stack.info();
    let (key, secret) = match who {
        Who::Backend => (&info.backend.access_key_id, &info.backend.secret_access_key),
        Who::Admin => (&info.admin.access_key_id, &info.admin.secret_access_key),
    };
    let mut command = Command::new(tool("aws"));
    command.args(args).args(["--endpoint-url", &info.iot_data_endpoint]);
    aws_env(&mut command, key, secret, None, &info.region);
    tokio::task::spawn_blocking(move || command.output().unwrap())
        .await
        .unwrap()
}

/// `aws iot-data publish` at QoS 1 with every MQTT 5 field the CLI has.
async fn publish_with_every_mqtt5_field(stack: &LocalStack, topic: &str) -> std::process::Output {
    aws_cli(
        stack,
        &[
            "iot-data",
            "publish",
            "--topic",
            topic,
            "--qos",
            "1",
            "--payload",
            "hello",
            "--user-properties",
            r#"[{"deviceName": "alpha"}, {"deviceCnt": "45"}]"#,
            "--payload-format-indicator",
            "UTF8_DATA",
            "--content-type",
            "text/plain",
            "--response-topic",
            "replies/backend",
            "--correlation-data",
            "cmVxLTE=",
            "--message-expiry",
            "60",
        ],
    )
    .await
}

#[tokio::test]
async fn the_aws_cli_publishes_and_sends_direct_messages_with_mqtt5_properties() {
    let stack = stack().await;
    let vended = vend(&stack.info().api_url).await;
    let (mut client, _) = Client5::connect(options(&vended.url, &vended.client_id)).await;
    client.subscribed(&vended.topic, QoS::AtLeastOnce).await;

    let output = publish_with_every_mqtt5_field(&stack, &vended.topic).await;
    assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
    let got = client.next_publish().await;
    assert_eq!(&got.payload[..], b"hello");
    let p = got.properties.expect("properties from the HTTPS publish");
    assert_eq!(
        p.user_properties,
        vec![
            ("deviceName".to_owned(), "alpha".to_owned()),
            ("deviceCnt".to_owned(), "45".to_owned())
        ]
    );
    assert_eq!(p.payload_format_indicator, Some(1));
    assert_eq!(p.content_type.as_deref(), Some("text/plain"));
    assert_eq!(p.response_topic.as_deref(), Some("replies/backend"));
    assert_eq!(p.correlation_data.as_deref(), Some(&b"req-1"[..]));
    assert!(p.message_expiry_interval.is_some_and(|s| (55..=60).contains(&s)));

    let output = aws_cli(
        &stack,
        &[
            "iot-data",
            "send-direct-message",
            "--client-id",
            &vended.client_id,
            "--topic",
            &vended.topic,
            "--payload",
            "direct",
            "--user-properties",
            r#"[{"kind": "direct"}]"#,
        ],
    )
    .await;
    assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
    let got = client.next_publish().await;
    assert_eq!(&got.payload[..], b"direct");
    assert_eq!(
        got.properties.map(|p| p.user_properties),
        Some(vec![("kind".to_owned(), "direct".to_owned())])
    );

    // A message expiry beyond IoT's seven days is a 400, not silently capped.
    let output = aws_cli(
        &stack,
        &[
            "iot-data",
            "publish",
            "--topic",
            &vended.topic,
            "--message-expiry",
            "999999999",
        ],
    )
    .await;
    assert!(!output.status.success());
    assert!(String::from_utf8_lossy(&output.stderr).contains("InvalidRequestException"));
    stack.shutdown().await;
}

#[tokio::test]
async fn get_retained_message_returns_the_user_properties_it_was_published_with() {
    let stack = stack().await;
    let mut publisher = admin5(&stack, "retainer").await;
    let properties = PublishProperties {
        user_properties: vec![("unit".into(), "celsius".into())],
        ..PublishProperties::default()
    };
    publisher
        .client
        .publish_with_properties("rooms/kitchen", QoS::AtLeastOnce, true, "21", properties)
        .await
        .unwrap();
    publisher.next_puback().await;
    // The backend identity may not read retained messages (its policy has no
    // iot:GetRetainedMessage); the local admin may.
    let output = aws_cli_as(
        &stack,
        Who::Admin,
        &["iot-data", "get-retained-message", "--topic", "rooms/kitchen"],
    )
    .await;
    assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
    let answer: serde_json::Value = serde_json::from_slice(&output.stdout).unwrap();
    let blob = answer["userProperties"].as_str().expect("userProperties");
    use base64::Engine;
    let json = base64::engine::general_purpose::STANDARD.decode(blob).unwrap();
    let pairs: serde_json::Value = serde_json::from_slice(&json).unwrap();
    assert_eq!(pairs, serde_json::json!([{"unit": "celsius"}]));

    // And an MQTT 5 subscriber gets the retained message with its properties.
    let mut reader = admin5(&stack, "reader").await;
    reader.subscribed("rooms/kitchen", QoS::AtLeastOnce).await;
    let got = reader.next_publish().await;
    assert!(got.retain);
    assert_eq!(
        got.properties.map(|p| p.user_properties),
        Some(vec![("unit".to_owned(), "celsius".to_owned())])
    );
    stack.shutdown().await;
}

#[tokio::test]
async fn mqtt5_subscription_identifiers_and_qos2_are_refused_with_their_reason_codes() {
    let stack = stack().await;
    let mut raw = Raw5::open(&admin_url(&stack)).await;
    assert_eq!(raw.connect("no-sub-ids").await.code, ConnectReturnCode::Success);
    let mut subscribe = Subscribe::new(Filter::new("a/b", QoS::AtLeastOnce), None);
    subscribe.pkid = 1;
    subscribe.properties = Some(rumqttc::v5::mqttbytes::v5::SubscribeProperties {
        id: Some(7),
        user_properties: Vec::new(),
    });
    raw.send(Packet::Subscribe(subscribe)).await;
    raw.expect_disconnect(DisconnectReasonCode::SubscriptionIdentifiersNotSupported)
        .await;

    let mut raw = Raw5::open(&admin_url(&stack)).await;
    assert_eq!(raw.connect("no-qos2").await.code, ConnectReturnCode::Success);
    let mut publish = Publish::new("a/b", QoS::ExactlyOnce, "x", None);
    publish.pkid = 1;
    raw.send(Packet::Publish(publish)).await;
    raw.expect_disconnect(DisconnectReasonCode::QoSNotSupported).await;

    // CONNECT with an authentication method: IoT has no enhanced authentication.
    let mut raw = Raw5::open(&admin_url(&stack)).await;
    let mut properties = ConnectProperties::new();
    properties.authentication_method = Some("SCRAM-SHA-1".into());
    raw.send(Packet::Connect(
        rumqttc::v5::mqttbytes::v5::Connect {
            keep_alive: 30,
            client_id: "auth-method".into(),
            clean_start: true,
            properties: Some(properties),
        },
        None,
        None,
    ))
    .await;
    match raw.recv().await {
        Some(Packet::ConnAck(ack)) => assert_eq!(ack.code, ConnectReturnCode::BadAuthenticationMethod),
        other => panic!("expected CONNACK 0x8C, got {other:?}"),
    }
    stack.shutdown().await;
}

#[tokio::test]
async fn the_gateway_keeps_no_more_qos1_deliveries_in_flight_than_the_clients_receive_maximum() {
    let stack = stack().await;
    let mut raw = Raw5::open(&admin_url(&stack)).await;
    let mut properties = ConnectProperties::new();
    properties.receive_maximum = Some(2);
    assert_eq!(
        raw.connect_with("slow-reader", Some(properties)).await.code,
        ConnectReturnCode::Success
    );
    let mut subscribe = Subscribe::new(Filter::new("queue/items", QoS::AtLeastOnce), None);
    subscribe.pkid = 1;
    raw.send(Packet::Subscribe(subscribe)).await;
    assert!(matches!(raw.recv().await, Some(Packet::SubAck(_))));
    let mut publisher = admin5(&stack, "queue-producer").await;
    for n in 0..5 {
        publisher
            .client
            .publish("queue/items", QoS::AtLeastOnce, false, format!("item {n}"))
            .await
            .unwrap();
        publisher.next_puback().await;
    }
    let mut in_flight = Vec::new();
    for _ in 0..2 {
        match raw.recv().await {
            Some(Packet::Publish(p)) => in_flight.push(p.pkid),
            other => panic!("expected a PUBLISH, got {other:?}"),
        }
    }
    // Without the limit all five would have been written in one batch, ahead of
    // the answer to this PINGREQ.
    raw.send(Packet::PingReq(rumqttc::v5::mqttbytes::v5::PingReq)).await;
    assert!(
        matches!(raw.recv().await, Some(Packet::PingResp(_))),
        "a third delivery went out before a PUBACK"
    );
    for n in 2..5 {
        raw.send(Packet::PubAck(rumqttc::v5::mqttbytes::v5::PubAck::new(
            in_flight.remove(0),
            None,
        )))
        .await;
        match raw.recv().await {
            Some(Packet::Publish(p)) => {
                assert_eq!(p.payload, format!("item {n}"));
                in_flight.push(p.pkid);
            }
            other => panic!("expected item {n}, got {other:?}"),
        }
    }
    stack.shutdown().await;
}
