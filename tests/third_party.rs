//! Clients nobody here wrote, unchanged, against the local stack: the AWS CLI's
//! `iot-data publish`, paho-mqtt with a botocore-presigned URL, and MQTT.js with the
//! vended URL.

mod common;

use std::process::{Command, Output};

use common::mqtt::{Client, Vended, vend};
use common::tools::{Script, aws_env, node_modules, tool};
use rumqttc::QoS;
use serverless_websockets_local::stack::{LocalOptions, LocalStack, ReadyInfo};

/// Runs `aws iot-data publish` (CLI v1: `--payload` is sent as given) with the
/// given credentials and returns its output.
async fn cli_publish(
    info: &ReadyInfo,
    key: &str,
    secret: &str,
    token: Option<&str>,
    topic: &str,
    payload: &str,
) -> Output {
    let mut command = Command::new(tool("aws"));
    command
        .args(["iot-data", "publish", "--endpoint-url", &info.iot_data_endpoint])
        .args(["--topic", topic, "--qos", "1", "--payload", payload]);
    aws_env(&mut command, key, secret, token, &info.region);
    tokio::task::spawn_blocking(move || command.output().unwrap())
        .await
        .unwrap()
}

async fn cli_publish_as_admin(info: &ReadyInfo, topic: &str, payload: &str) {
    let output = cli_publish(
        info,
        &info.admin.access_key_id,
        &info.admin.secret_access_key,
        None,
        topic,
        payload,
    )
    .await;
    assert!(
        output.status.success(),
        "aws iot-data publish failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
}

#[tokio::test]
async fn aws_cli_iot_data_publish_reaches_a_subscribed_client() {
    let stack = LocalStack::start(LocalOptions::ephemeral()).await.unwrap();
    let vended = vend(&stack.info().api_url).await;
    let mut client = Client::connect(&vended.url, &vended.client_id, None).await;
    client.subscribed(&vended.topic, QoS::AtLeastOnce).await;

    cli_publish_as_admin(stack.info(), &vended.topic, "hello from the aws cli").await;
    let message = client.next_publish().await;
    assert_eq!(message.topic, vended.topic);
    assert_eq!(&message.payload[..], b"hello from the aws cli");
    stack.shutdown().await;
}

#[tokio::test]
async fn the_aws_cli_cannot_publish_with_vended_client_credentials() {
    let stack = LocalStack::start(LocalOptions::ephemeral()).await.unwrap();
    let vended = vend(&stack.info().api_url).await;
    let creds = &vended.credentials;
    let output = cli_publish(
        stack.info(),
        &creds.access_key_id,
        &creds.secret_access_key,
        Some(&creds.session_token),
        &vended.topic,
        "x",
    )
    .await;
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("ForbiddenException"), "{stderr}");
    stack.shutdown().await;
}

#[tokio::test]
async fn paho_mqtt_with_a_botocore_presigned_url_receives_a_message() {
    let stack = LocalStack::start(LocalOptions::ephemeral()).await.unwrap();
    let vended = vend(&stack.info().api_url).await;
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/clients/paho_subscribe.py");
    let mut paho = Script::spawn(
        Command::new(tool("python"))
            .args([
                script,
                &stack.info().iot_endpoint,
                &stack.info().region,
                &vended.client_id,
                &vended.topic,
            ])
            .env("AWS_ACCESS_KEY_ID", &vended.credentials.access_key_id)
            .env("AWS_SECRET_ACCESS_KEY", &vended.credentials.secret_access_key)
            .env("AWS_SESSION_TOKEN", &vended.credentials.session_token),
    );
    paho.expect_line("READY").await;
    cli_publish_as_admin(stack.info(), &vended.topic, "hello paho").await;
    let line = paho.expect_line("MESSAGE").await;
    assert_eq!(line, format!("MESSAGE {} hello paho", vended.topic));
    assert!(paho.wait().await.success());
    stack.shutdown().await;
}

/// `tests/clients/mqttjs_subscribe.js` on the vended URL and client ID,
/// subscribing to `topic`, with `extra` arguments (a message count).
fn mqtt_js_subscriber(vended: &Vended, topic: &str, extra: &[&str]) -> Script {
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/clients/mqttjs_subscribe.js");
    Script::spawn(
        Command::new(tool("node"))
            .args([script, &vended.url, &vended.client_id, topic])
            .args(extra)
            .env("NODE_PATH", node_modules()),
    )
}

#[tokio::test]
async fn mqtt_js_with_the_vended_url_receives_a_message() {
    let stack = LocalStack::start(LocalOptions::ephemeral()).await.unwrap();
    let vended = vend(&stack.info().api_url).await;
    let mut mqtt_js = mqtt_js_subscriber(&vended, &vended.topic, &[]);
    mqtt_js.expect_line("READY").await;
    let response = common::mqtt::https_publish(
        &stack.info().iot_data_endpoint,
        &stack.info().region,
        &aws_credential_types::Credentials::new(
            &stack.info().admin.access_key_id,
            &stack.info().admin.secret_access_key,
            None,
            None,
            "a",
        ),
        &vended.topic,
        "qos=1",
        b"hello mqtt.js",
    )
    .await;
    assert_eq!(response.status(), 200);
    let line = mqtt_js.expect_line("MESSAGE").await;
    assert_eq!(line, format!("MESSAGE {} hello mqtt.js", vended.topic));
    assert!(mqtt_js.wait().await.success());
    stack.shutdown().await;
}

/// A burst of QoS 1 messages, small and large, published in one WebSocket
/// message: the gateway gathers what is queued for a subscriber into few
/// WebSocket messages and splits large QoS 1 packets after their header (MQTT
/// §6 allows both); MQTT.js reassembles and gets every message, in order.
#[tokio::test]
async fn mqtt_js_receives_a_burst_of_small_and_large_messages_in_order() {
    use futures_util::SinkExt;
    use rumqttc::mqttbytes::v4::{Connect, Packet, Publish};
    // Within IoT's 100 publishes per second per connection (the rest would be dropped).
    const BURST: usize = 96;
    let stack = LocalStack::start(LocalOptions::ephemeral()).await.unwrap();
    let vended = vend(&stack.info().api_url).await;
    let mut mqtt_js = mqtt_js_subscriber(&vended, &vended.topic, &[&BURST.to_string()]);
    mqtt_js.expect_line("READY").await;
    let size = |i: usize| if i.is_multiple_of(3) { 3000 } else { 20 };
    let encode = |packet: Packet| {
        let mut bytes = bytes::BytesMut::new();
        packet.write(&mut bytes, 1 << 20).unwrap();
        tokio_tungstenite::tungstenite::Message::Binary(bytes.freeze())
    };
    let mut publisher = common::mqtt::admin_websocket(&stack).await;
    publisher
        .feed(encode(Packet::Connect(Connect::new("burst-publisher"))))
        .await
        .unwrap();
    for i in 0..BURST {
        let mut payload = format!("{i:04} ").into_bytes();
        payload.resize(size(i), b'x');
        let mut publish = Publish::new(&vended.topic, QoS::AtLeastOnce, payload);
        publish.pkid = u16::try_from(i + 1).unwrap();
        publisher.feed(encode(Packet::Publish(publish))).await.unwrap();
    }
    // One flush: the burst reaches the gateway as fast as the socket takes it.
    publisher.flush().await.unwrap();
    for i in 0..BURST {
        let line = mqtt_js.expect_line("MESSAGE").await;
        assert_eq!(line, format!("MESSAGE {} {i:04} {}", vended.topic, size(i)));
    }
    assert!(mqtt_js.wait().await.success());
    stack.shutdown().await;
}

#[tokio::test]
async fn mqtt_js_cannot_subscribe_to_every_clients_topic() {
    let stack = LocalStack::start(LocalOptions::ephemeral()).await.unwrap();
    let vended = vend(&stack.info().api_url).await;
    let mut mqtt_js = mqtt_js_subscriber(&vended, "allowed/#", &[]);
    let line = mqtt_js.expect_line("").await;
    assert!(line.starts_with("REFUSED"), "{line}");
    stack.shutdown().await;
}

/// A local stack with `--tls`, and an aws-crt script from `tests/clients/` started
/// against it (it vends, signs its own URL and trusts the stack's CA).
async fn crt_over_tls(script: &str) -> (LocalStack, Script) {
    let stack = LocalStack::start(LocalOptions {
        tls: true,
        ..LocalOptions::ephemeral()
    })
    .await
    .unwrap();
    let info = stack.info();
    let port = info.iot_endpoint.rsplit(':').next().unwrap();
    let script = format!("{}/tests/clients/{script}", env!("CARGO_MANIFEST_DIR"));
    let crt = Script::spawn(Command::new(tool("python")).args([
        script.as_str(),
        &info.api_url,
        "localhost",
        port,
        &info.region,
        info.ca_cert.as_deref().unwrap(),
    ]));
    (stack, crt)
}

#[tokio::test]
async fn the_aws_iot_device_sdk_v2_signs_its_own_url_and_receives_over_tls() {
    let (stack, mut crt) = crt_over_tls("crt_subscribe.py").await;
    let info = stack.info().clone();
    let ca = info.ca_cert.clone().unwrap();
    let ready = crt.expect_line("READY").await;
    let topic = ready.split_whitespace().nth(1).unwrap().to_owned();
    let https = common::mqtt::https_client_trusting(&ca);
    let admin = aws_credential_types::Credentials::new(
        &info.admin.access_key_id,
        &info.admin.secret_access_key,
        None,
        None,
        "a",
    );
    let publish = common::mqtt::PublishRequest {
        endpoint: &info.iot_data_endpoint,
        region: &info.region,
        credentials: &admin,
        topic: &topic,
        query: "qos=1",
        payload: b"hello aws-crt",
    };
    let response = common::mqtt::https_publish_via(&https, &publish).await;
    assert_eq!(response.status(), 200);
    assert_eq!(
        crt.expect_line("MESSAGE").await,
        format!("MESSAGE {topic} hello aws-crt")
    );
    assert!(crt.wait().await.success());
    stack.shutdown().await;
}

#[tokio::test]
async fn the_aws_iot_device_sdk_v2_mqtt5_client_connects_is_refused_with_0x87_and_receives_user_properties() {
    let (stack, mut crt) = crt_over_tls("crt_mqtt5.py").await;
    let info = stack.info().clone();
    let ca = info.ca_cert.clone().unwrap();
    assert_eq!(
        crt.expect_line("FORBIDDEN").await,
        "FORBIDDEN 135",
        "SUBACK 0x87 for another client's topic"
    );
    let ready = crt.expect_line("READY").await;
    let topic = ready.split_whitespace().nth(1).unwrap().to_owned();
    // The AWS CLI publishes with MQTT 5 user properties, over the stack's TLS.
    let mut command = Command::new(tool("aws"));
    command
        .args([
            "iot-data",
            "publish",
            "--endpoint-url",
            &info.iot_data_endpoint,
            "--ca-bundle",
            &ca,
        ])
        .args(["--topic", &topic, "--qos", "1", "--payload", "hello-mqtt5"])
        .args(["--user-properties", r#"[{"deviceName": "alpha"}, {"deviceCnt": "45"}]"#]);
    aws_env(
        &mut command,
        &info.admin.access_key_id,
        &info.admin.secret_access_key,
        None,
        &info.region,
    );
    let output = tokio::task::spawn_blocking(move || command.output().unwrap())
        .await
        .unwrap();
    assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
    assert_eq!(
        crt.expect_line("MESSAGE").await,
        format!(r#"MESSAGE {topic} hello-mqtt5 [{{"deviceName": "alpha"}}, {{"deviceCnt": "45"}}]"#)
    );
    assert!(crt.wait().await.success());
    stack.shutdown().await;
}

#[tokio::test]
async fn mqtt_js_speaks_mqtt5_request_response_message_expiry_and_topic_aliases() {
    let stack = LocalStack::start(LocalOptions::ephemeral()).await.unwrap();
    let info = stack.info();
    let admin = aws_credential_types::Credentials::new(
        &info.admin.access_key_id,
        &info.admin.secret_access_key,
        None,
        None,
        "a",
    );
    let url = common::mqtt5::url_for(&stack, &admin);
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/clients/mqttjs_v5.js");
    let mut mqtt_js = Script::spawn(
        Command::new(tool("node"))
            .arg(script)
            .arg(&url)
            .env("NODE_PATH", node_modules()),
    );
    for expected in [
        "RESPONSE correlation=req-7 user=answered-by:responder",
        "EXPIRY remaining<=30",
        "ALIAS 3 messages on sensors/hall/temperature",
    ] {
        assert_eq!(mqtt_js.expect_line(expected.split(' ').next().unwrap()).await, expected);
    }
    assert!(mqtt_js.wait().await.success());
    stack.shutdown().await;
}
