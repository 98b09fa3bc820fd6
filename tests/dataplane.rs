//! The IoT data plane of the local gateway, end to end through its real listener:
//! SendDirectMessage (with and without delivery confirmation), GetConnection,
//! ListSubscriptions, DeleteConnection, the retained-message APIs, persistent
//! sessions across a kick and across new credentials, Last Will, and the
//! subscription lifecycle events — driven with raw SigV4 requests signed as
//! botocore signs them, with `rumqttc` clients, and with the AWS CLI v1.

mod common;

use std::process::Command;
use std::time::{Duration, SystemTime};

use aws_credential_types::Credentials;
use rumqttc::{LastWill, MqttOptions, QoS};
use serde_json::Value;

use common::mqtt::{Client, Seen, options, vend};
use common::mqtt5::credentials_for;
use common::tools::{aws_env, tool};
use serverless_websockets_core::policy::Grants;
use serverless_websockets_core::presign::{DEFAULT_EXPIRES, IotEndpoint, presign};
use serverless_websockets_core::topic::{Topic, TopicFilter};
use serverless_websockets_local::gateway::GatewayOptions;
use serverless_websockets_local::stack::{LocalOptions, LocalStack};

const REGION: &str = "us-east-1";

async fn stack() -> LocalStack {
    LocalStack::start(common::mqtt::quick_reconnects()).await.unwrap()
}

/// A stack whose persistent sessions expire after `expiry`.
async fn stack_with_expiry(expiry: Duration) -> LocalStack {
    common::mqtt::stack_with(GatewayOptions {
        session_expiry: expiry,
        ..common::mqtt::quick_gateway()
    })
    .await
}

fn backend(stack: &LocalStack) -> Credentials {
    let b = &stack.info().backend;
    Credentials::new(&b.access_key_id, &b.secret_access_key, None, None, "backend")
}

fn admin(stack: &LocalStack) -> Credentials {
    let a = &stack.info().admin;
    Credentials::new(&a.access_key_id, &a.secret_access_key, None, None, "admin")
}

fn vended_credentials(vended: &common::mqtt::Vended) -> Credentials {
    vended.credentials.to_sdk()
}

/// An answer of the data plane: status, `x-amzn-ErrorType` (without the `:` suffix)
/// and the JSON body (`null` when empty).
#[derive(Debug)]
struct Answer {
    status: u16,
    error: Option<String>,
    body: Value,
}

fn encode(label: &str) -> String {
    percent_encoding::utf8_percent_encode(label, percent_encoding::NON_ALPHANUMERIC).to_string()
}

/// One signed data-plane request, as botocore sends it (service `iotdata`).
async fn call(stack: &LocalStack, credentials: &Credentials, method: &str, path: &str, body: &[u8]) -> Answer {
    let url = format!("{}{path}", stack.info().iot_data_endpoint);
    let call = common::mqtt::SignedCall {
        method,
        url: &url,
        region: REGION,
        credentials,
        signed: &[],
        unsigned: &[],
        body,
    };
    let response = common::mqtt::signed_call(&reqwest::Client::new(), &call).await;
    let status = response.status().as_u16();
    let error = response
        .headers()
        .get("x-amzn-errortype")
        .map(|v| v.to_str().unwrap().trim_end_matches(':').to_owned());
    let text = response.text().await.unwrap();
    let body = if text.is_empty() {
        Value::Null
    } else {
        serde_json::from_str(&text).unwrap()
    };
    Answer { status, error, body }
}

async fn send_direct(
    stack: &LocalStack,
    credentials: &Credentials,
    client_id: &str,
    query: &str,
    payload: &[u8],
) -> Answer {
    let path = format!("/connections/{}/messages?{query}", encode(client_id));
    call(stack, credentials, "POST", &path, payload).await
}

async fn get_connection(stack: &LocalStack, client_id: &str) -> Answer {
    let path = format!("/connections/{}", encode(client_id));
    call(stack, &backend(stack), "GET", &path, b"").await
}

async fn list_subscriptions(stack: &LocalStack, client_id: &str, query: &str) -> Answer {
    let path = format!("/connections/{}/subscriptions?{query}", encode(client_id));
    call(stack, &backend(stack), "GET", &path, b"").await
}

async fn delete_connection(stack: &LocalStack, client_id: &str, query: &str) -> Answer {
    let path = format!("/connections/{}?{query}", encode(client_id));
    call(stack, &backend(stack), "DELETE", &path, b"").await
}

async fn publish(stack: &LocalStack, topic: &str, query: &str, payload: &[u8]) -> Answer {
    let path = format!("/topics/{}?{query}", encode(topic));
    call(stack, &backend(stack), "POST", &path, payload).await
}

/// The client's options for its own presigned URL.
fn client_options(url: &str, client_id: &str) -> MqttOptions {
    options(url, client_id, None)
}

/// A persistent-session client (cleanSession = 0).
fn persistent(url: &str, client_id: &str) -> MqttOptions {
    let mut options = client_options(url, client_id);
    options.set_clean_session(false);
    options
}

/// Fresh STS credentials for an existing client ID, narrowed by `grants` exactly
/// as the vending API narrows them (the same issuer code, against the local STS).
fn grants_to_receive_on(topics: &[&str]) -> Grants {
    Grants {
        subscribe: topics
            .iter()
            .map(|t| TopicFilter::from(Topic::parse(t).unwrap()))
            .collect(),
        publish: vec![],
    }
}

fn presigned(stack: &LocalStack, credentials: &Credentials) -> String {
    let endpoint = IotEndpoint::parse(&stack.info().iot_endpoint).unwrap();
    presign(&endpoint, REGION, credentials, SystemTime::now(), DEFAULT_EXPIRES).unwrap()
}

/// What the will tests watch: the wills and the disconnect events.
const WILLS_AND_DISCONNECTS: [(&str, QoS); 2] = [
    ("wills/+", QoS::AtLeastOnce),
    ("$aws/events/presence/disconnected/+", QoS::AtMostOnce),
];

/// The admin, connected as "watcher" and subscribed to `filters`.
async fn watcher(stack: &LocalStack, filters: &[(&str, QoS)]) -> Client {
    let mut watcher = Client::connect(&presigned(stack, &admin(stack)), "watcher", None).await;
    for (filter, qos) in filters {
        watcher.subscribed(filter, *qos).await;
    }
    watcher
}

/// The admin, connected as `client_id` with a QoS 1 Last Will.
async fn with_will(stack: &LocalStack, client_id: &str, topic: &str, payload: &str) -> Client {
    let mut options = client_options(&presigned(stack, &admin(stack)), client_id);
    options.set_last_will(LastWill::new(topic, payload.to_owned(), QoS::AtLeastOnce, false));
    Client::connected(options).await.0
}

/// Waits for the next PUBLISH and returns (topic, payload, dup).
async fn next_message(client: &mut Client) -> (String, String, bool) {
    let p = client.next_publish().await;
    (p.topic.clone(), String::from_utf8(p.payload.to_vec()).unwrap(), p.dup)
}

#[tokio::test]
async fn a_direct_message_reaches_a_connected_client_without_a_subscription() {
    let stack = stack().await;
    let vended = vend(&stack.info().api_url).await;
    let mut client = Client::connect(&vended.url, &vended.client_id, None).await;

    let answer = send_direct(
        &stack,
        &backend(&stack),
        &vended.client_id,
        &format!("topic={}", encode(&vended.topic)),
        b"just for you",
    )
    .await;
    assert_eq!(answer.status, 200, "{answer:?}");
    assert_eq!(answer.body["message"], "OK");
    let (topic, payload, _) = next_message(&mut client).await;
    assert_eq!(
        (topic.as_str(), payload.as_str()),
        (vended.topic.as_str(), "just for you")
    );
    stack.shutdown().await;
}

#[tokio::test]
async fn a_confirmed_direct_message_is_answered_after_the_clients_puback() {
    let stack = stack().await;
    let vended = vend(&stack.info().api_url).await;
    let mut opts = client_options(&vended.url, &vended.client_id);
    opts.set_manual_acks(true);
    let (mut client, _) = Client::connected(opts).await;

    let send = {
        let backend = backend(&stack);
        let query = format!("topic={}&confirmation=true&timeout=10", encode(&vended.topic));
        let client_id = vended.client_id.clone();
        let stack = &stack;
        async move { send_direct(stack, &backend, &client_id, &query, b"confirm me").await }
    };
    let receive = async {
        let publish = client.next_publish().await;
        assert_eq!(
            publish.qos,
            QoS::AtLeastOnce,
            "a confirmed direct message travels at QoS 1"
        );
        // The API has not answered yet: it waits for this PUBACK.
        client.client.ack(&publish).await.unwrap();
        publish
    };
    let (answer, publish) = tokio::join!(send, receive);
    assert_eq!(&publish.payload[..], b"confirm me");
    assert_eq!(answer.status, 200, "{answer:?}");
    stack.shutdown().await;
}

#[tokio::test]
async fn a_confirmed_direct_message_to_a_client_that_never_acknowledges_times_out_with_504() {
    let stack = stack().await;
    let vended = vend(&stack.info().api_url).await;
    let mut opts = client_options(&vended.url, &vended.client_id);
    opts.set_manual_acks(true);
    let (mut client, _) = Client::connected(opts).await;

    let query = format!("topic={}&confirmation=true&timeout=1", encode(&vended.topic));
    let backend = backend(&stack);
    let (answer, publish) = tokio::join!(
        send_direct(&stack, &backend, &vended.client_id, &query, b"never acked"),
        client.next_publish()
    );
    assert_eq!(&publish.payload[..], b"never acked");
    assert_eq!(
        (answer.status, answer.error.as_deref()),
        (504, Some("GatewayTimeoutException")),
        "{answer:?}"
    );
    stack.shutdown().await;
}

#[tokio::test]
async fn a_direct_message_to_an_unknown_or_offline_client_is_404_and_never_queued() {
    let stack = stack().await;
    let unknown = send_direct(
        &stack,
        &backend(&stack),
        "nobody-here",
        "topic=allowed%2Fnobody-here",
        b"x",
    )
    .await;
    assert_eq!(
        (unknown.status, unknown.error.as_deref()),
        (404, Some("ResourceNotFoundException"))
    );

    // A client with a persistent session that is away: still 404, and nothing is
    // stored for it.
    let vended = vend(&stack.info().api_url).await;
    let (mut client, _) = Client::connected(persistent(&vended.url, &vended.client_id)).await;
    client.subscribed(&vended.topic, QoS::AtLeastOnce).await;
    assert_eq!(delete_connection(&stack, &vended.client_id, "").await.status, 200);
    client.closed().await;
    let offline = send_direct(
        &stack,
        &backend(&stack),
        &vended.client_id,
        &format!("topic={}", encode(&vended.topic)),
        b"direct while away",
    )
    .await;
    assert_eq!(offline.status, 404, "{offline:?}");
    assert_eq!(
        publish(&stack, &vended.topic, "qos=1", b"stored while away")
            .await
            .status,
        200
    );

    let (mut client, session_present) = Client::connected(persistent(
        &presigned(&stack, &vended_credentials(&vended)),
        &vended.client_id,
    ))
    .await;
    assert!(session_present);
    let (_, payload, _) = next_message(&mut client).await;
    assert_eq!(
        payload, "stored while away",
        "the direct message was not queued; the QoS 1 publish was"
    );
    stack.shutdown().await;
}

#[tokio::test]
async fn a_direct_message_on_a_topic_the_receiver_may_not_receive_is_forbidden() {
    let stack = stack().await;
    let vended = vend(&stack.info().api_url).await;
    let mut client = Client::connect(&vended.url, &vended.client_id, None).await;
    // The backend may send to any client, but this client may not receive on another's topic.
    let answer = send_direct(
        &stack,
        &admin(&stack),
        &vended.client_id,
        "topic=allowed%2Fsomeone-else",
        b"x",
    )
    .await;
    assert_eq!(
        (answer.status, answer.error.as_deref()),
        (403, Some("ForbiddenException")),
        "{answer:?}"
    );
    // Nothing arrived: the next message is the one it may receive.
    assert_eq!(
        send_direct(
            &stack,
            &backend(&stack),
            &vended.client_id,
            &format!("topic={}", encode(&vended.topic)),
            b"allowed"
        )
        .await
        .status,
        200
    );
    assert_eq!(next_message(&mut client).await.1, "allowed");
    stack.shutdown().await;
}

#[tokio::test]
async fn bad_direct_message_parameters_are_400() {
    let stack = stack().await;
    let vended = vend(&stack.info().api_url).await;
    let _client = Client::connect(&vended.url, &vended.client_id, None).await;
    let topic = encode(&vended.topic);
    for query in [
        String::new(),
        format!("topic={topic}&timeout=0&confirmation=true"),
        format!("topic={topic}&timeout=16&confirmation=true"),
        format!("topic={topic}&confirmation=maybe"),
        "topic=%24aws%2Fthings%2Fx".to_owned(),
        "topic=a%2F%2B".to_owned(),
    ] {
        let answer = send_direct(&stack, &backend(&stack), &vended.client_id, &query, b"x").await;
        assert_eq!(
            (answer.status, answer.error.as_deref()),
            (400, Some("InvalidRequestException")),
            "{query}: {answer:?}"
        );
    }
    let dollar = send_direct(&stack, &backend(&stack), "$bad", &format!("topic={topic}"), b"x").await;
    assert_eq!(dollar.status, 400, "client IDs starting with $ are refused: {dollar:?}");
    stack.shutdown().await;
}

#[tokio::test]
async fn presence_reports_a_client_before_during_and_after_its_connection() {
    let stack = stack().await;
    let vended = vend(&stack.info().api_url).await;
    let before = get_connection(&stack, &vended.client_id).await;
    assert_eq!(
        (before.status, before.error.as_deref()),
        (404, Some("ResourceNotFoundException"))
    );

    let started = serverless_websockets_local::gateway::broker::millis(SystemTime::now());
    let mut client = Client::connect(&vended.url, &vended.client_id, None).await;
    let during = get_connection(&stack, &vended.client_id).await;
    assert_eq!(during.status, 200, "{during:?}");
    assert_eq!(during.body["connected"], true);
    assert_eq!(during.body["clientId"], vended.client_id.as_str());
    assert_eq!(during.body["cleanSession"], true);
    assert_eq!(during.body["keepAliveDuration"], 30);
    assert!(during.body["connectedSince"].as_u64().unwrap() >= started);
    assert!(during.body.get("disconnectReason").is_none());

    client.client.disconnect().await.unwrap();
    client.closed().await;
    // The gateway records the departure when the connection has ended; the
    // lifecycle event is published at the same moment, so wait for it.
    let after = loop {
        let answer = get_connection(&stack, &vended.client_id).await;
        if answer.body["connected"] == false {
            break answer;
        }
        tokio::task::yield_now().await;
    };
    assert_eq!(after.status, 200);
    assert_eq!(after.body["disconnectReason"], "CLIENT_INITIATED_DISCONNECT");
    assert!(after.body["disconnectedSince"].as_u64().unwrap() >= started);
    stack.shutdown().await;
}

#[tokio::test]
async fn socket_information_is_included_on_request() {
    let stack = stack().await;
    let vended = vend(&stack.info().api_url).await;
    let _client = Client::connect(&vended.url, &vended.client_id, None).await;
    let path = format!(
        "/connections/{}?includeSocketInformation=true",
        encode(&vended.client_id)
    );
    let answer = call(&stack, &backend(&stack), "GET", &path, b"").await;
    assert_eq!(answer.body["sourceIp"], "127.0.0.1");
    assert!(answer.body["sourcePort"].as_u64().unwrap() > 0);
    stack.shutdown().await;
}

#[tokio::test]
async fn kicking_a_client_closes_it_with_api_initiated_disconnect_and_publishes_its_will() {
    let stack = stack().await;
    let watcher_creds = admin(&stack);
    let mut watcher = Client::connect(&presigned(&stack, &watcher_creds), "watcher", None).await;
    watcher
        .subscribed("$aws/events/presence/disconnected/+", QoS::AtMostOnce)
        .await;

    // Vended credentials may not publish with the default grants, so the client
    // with a will connects as the admin.
    let mut kicked = with_will(&stack, "with-a-will", "wills/with-a-will", "gone").await;
    watcher.subscribed("wills/+", QoS::AtLeastOnce).await;

    let answer = delete_connection(&stack, "with-a-will", "").await;
    assert_eq!(answer.status, 200, "{answer:?}");
    kicked.closed().await;
    let mut seen_will = false;
    let mut seen_event = false;
    while !(seen_will && seen_event) {
        let (topic, payload, _) = next_message(&mut watcher).await;
        if topic == "wills/with-a-will" {
            assert_eq!(payload, "gone");
            seen_will = true;
        } else if topic == "$aws/events/presence/disconnected/with-a-will" {
            let event: Value = serde_json::from_str(&payload).unwrap();
            assert_eq!(event["disconnectReason"], "API_INITIATED_DISCONNECT");
            assert_eq!(event["clientInitiatedDisconnect"], false);
            seen_event = true;
        }
    }
    let gone = get_connection(&stack, "with-a-will").await;
    assert_eq!(gone.body["disconnectReason"], "API_INITIATED_DISCONNECT");
    let again = delete_connection(&stack, "with-a-will", "").await;
    assert_eq!(
        again.status, 404,
        "a client that is not connected cannot be kicked: {again:?}"
    );
    stack.shutdown().await;
}

#[tokio::test]
async fn a_kick_with_prevent_will_message_publishes_no_will() {
    let stack = stack().await;
    let mut watcher = watcher(&stack, &WILLS_AND_DISCONNECTS).await;
    let mut kicked = with_will(&stack, "quiet", "wills/quiet", "should not appear").await;

    assert_eq!(
        delete_connection(&stack, "quiet", "preventWillMessage=true")
            .await
            .status,
        200
    );
    kicked.closed().await;
    // The disconnect event is published after the will would have been: the
    // first message the watcher sees is the event, not the will.
    let (topic, _, _) = next_message(&mut watcher).await;
    assert_eq!(topic, "$aws/events/presence/disconnected/quiet");
    stack.shutdown().await;
}

#[tokio::test]
async fn a_lost_connection_publishes_the_will_and_a_clean_disconnect_does_not() {
    let stack = stack().await;
    let mut watcher = watcher(&stack, &WILLS_AND_DISCONNECTS).await;

    // A DISCONNECT: no will.
    let mut polite = with_will(&stack, "polite", "wills/polite", "polite will").await;
    polite.client.disconnect().await.unwrap();
    polite.closed().await;
    let (topic, _, _) = next_message(&mut watcher).await;
    assert_eq!(topic, "$aws/events/presence/disconnected/polite");

    // A connection taken over by the same client ID: the will is published.
    let mut first = with_will(&stack, "twice", "wills/twice", "taken over").await;
    let _second = Client::connect(&presigned(&stack, &admin(&stack)), "twice", None).await;
    first.closed().await;
    let (topic, payload, _) = next_message(&mut watcher).await;
    assert_eq!((topic.as_str(), payload.as_str()), ("wills/twice", "taken over"));
    stack.shutdown().await;
}

#[tokio::test]
async fn a_will_the_client_may_not_publish_refuses_the_connect() {
    let stack = LocalStack::start(LocalOptions {
        gateway: GatewayOptions {
            connect_deny: serverless_websockets_local::gateway::DenyMode::Reply,
            ..common::mqtt::quick_gateway()
        },
        ..common::mqtt::quick_reconnects()
    })
    .await
    .unwrap();
    let vended = vend(&stack.info().api_url).await;
    let mut opts = client_options(&vended.url, &vended.client_id);
    // Vended credentials may not publish at all with the default grants.
    opts.set_last_will(LastWill::new(vended.topic.clone(), "x", QoS::AtMostOnce, false));
    let mut client = Client::start(opts);
    match client.next().await {
        Seen::ConnAck(code, _) => assert_eq!(code, rumqttc::ConnectReturnCode::NotAuthorized),
        Seen::Closed(why) => assert!(why.contains("NotAuthorized"), "{why}"),
        other => panic!("{other:?}"),
    }
    stack.shutdown().await;
}

#[tokio::test]
async fn a_persistent_session_keeps_qos1_messages_across_a_kick_and_delivers_them_in_order() {
    let stack = stack().await;
    let vended = vend(&stack.info().api_url).await;
    let (mut client, session_present) = Client::connected(persistent(&vended.url, &vended.client_id)).await;
    assert!(!session_present, "a new persistent session");
    client.subscribed(&vended.topic, QoS::AtLeastOnce).await;

    assert_eq!(delete_connection(&stack, &vended.client_id, "").await.status, 200);
    client.closed().await;
    for (n, qos) in [("1", "1"), ("2", "1"), ("not stored: QoS 0", "0"), ("3", "1")] {
        let answer = publish(&stack, &vended.topic, &format!("qos={qos}"), n.as_bytes()).await;
        assert_eq!(answer.status, 200);
    }
    // Offline, the session is listed and reported.
    let subscriptions = list_subscriptions(&stack, &vended.client_id, "").await;
    assert_eq!(subscriptions.status, 200, "{subscriptions:?}");
    assert_eq!(
        subscriptions.body["subscriptions"],
        serde_json::json!([{"topicFilter": vended.topic, "qos": 1}])
    );
    let presence = get_connection(&stack, &vended.client_id).await;
    assert_eq!(presence.body["connected"], false);
    assert_eq!(presence.body["cleanSession"], false);
    assert_eq!(presence.body["sessionExpiry"], 3600);
    assert_eq!(presence.body["disconnectReason"], "API_INITIATED_DISCONNECT");

    // Reconnect with new credentials for the same client ID.
    let credentials = credentials_for(&stack, &vended.client_id, &grants_to_receive_on(&[&vended.topic])).await;
    let (mut client, session_present) =
        Client::connected(persistent(&presigned(&stack, &credentials), &vended.client_id)).await;
    assert!(session_present);
    let mut got = Vec::new();
    for _ in 0..3 {
        got.push(next_message(&mut client).await.1);
    }
    assert_eq!(got, ["1", "2", "3"]);
    // And the subscription still works for new messages.
    publish(&stack, &vended.topic, "qos=1", b"live").await;
    assert_eq!(next_message(&mut client).await.1, "live");
    stack.shutdown().await;
}

#[tokio::test]
async fn unacknowledged_deliveries_are_resent_with_dup_when_the_session_resumes() {
    let stack = stack().await;
    let vended = vend(&stack.info().api_url).await;
    let mut opts = persistent(&vended.url, &vended.client_id);
    opts.set_manual_acks(true);
    let (mut client, _) = Client::connected(opts).await;
    client.subscribed(&vended.topic, QoS::AtLeastOnce).await;
    publish(&stack, &vended.topic, "qos=1", b"unacked").await;
    let first = client.next_publish().await;
    assert!(!first.dup);
    // Never acknowledged; the connection is kicked.
    delete_connection(&stack, &vended.client_id, "").await;
    client.closed().await;

    let (mut client, session_present) = Client::connected(persistent(
        &presigned(&stack, &vended_credentials(&vended)),
        &vended.client_id,
    ))
    .await;
    assert!(session_present);
    let (_, payload, dup) = next_message(&mut client).await;
    assert_eq!((payload.as_str(), dup), ("unacked", true));
    // Acknowledged this time (automatic acks): nothing more is re-sent.
    publish(&stack, &vended.topic, "qos=1", b"next").await;
    let (_, payload, dup) = next_message(&mut client).await;
    assert_eq!((payload.as_str(), dup), ("next", false));
    stack.shutdown().await;
}

#[tokio::test]
async fn a_resumed_session_drops_subscriptions_the_new_credentials_may_not_have() {
    let stack = stack().await;
    let vended = vend(&stack.info().api_url).await;
    let (mut client, _) = Client::connected(persistent(&vended.url, &vended.client_id)).await;
    client.subscribed(&vended.topic, QoS::AtLeastOnce).await;
    client.client.disconnect().await.unwrap();
    client.closed().await;

    // New credentials for the same client ID that may connect but not subscribe.
    let narrower = credentials_for(&stack, &vended.client_id, &grants_to_receive_on(&[])).await;
    let (_client, session_present) =
        Client::connected(persistent(&presigned(&stack, &narrower), &vended.client_id)).await;
    assert!(session_present);
    let subscriptions = list_subscriptions(&stack, &vended.client_id, "").await;
    assert_eq!(
        subscriptions.body["subscriptions"],
        serde_json::json!([]),
        "{subscriptions:?}"
    );
    stack.shutdown().await;
}

#[tokio::test]
async fn a_clean_session_connect_or_a_kick_with_clean_session_discards_the_stored_session() {
    let stack = stack().await;
    let vended = vend(&stack.info().api_url).await;
    let (mut client, _) = Client::connected(persistent(&vended.url, &vended.client_id)).await;
    client.subscribed(&vended.topic, QoS::AtLeastOnce).await;
    assert_eq!(
        delete_connection(&stack, &vended.client_id, "cleanSession=true")
            .await
            .status,
        200
    );
    client.closed().await;
    let gone = list_subscriptions(&stack, &vended.client_id, "").await;
    assert_eq!(gone.status, 404, "cleanSession=true discards the session: {gone:?}");

    let url = presigned(&stack, &vended_credentials(&vended));
    let (mut client, present) = Client::connected(persistent(&url, &vended.client_id)).await;
    assert!(!present);
    client.subscribed(&vended.topic, QoS::AtLeastOnce).await;
    client.client.disconnect().await.unwrap();
    client.closed().await;
    publish(&stack, &vended.topic, "qos=1", b"stored").await;
    // A clean-session connect with the same client ID discards it.
    let (_client, present) = Client::connected(client_options(&url, &vended.client_id)).await;
    assert!(!present);
    assert_eq!(
        list_subscriptions(&stack, &vended.client_id, "").await.body["subscriptions"],
        serde_json::json!([])
    );
    stack.shutdown().await;
}

#[tokio::test]
async fn a_persistent_session_expires_after_the_configured_expiry() {
    let stack = stack_with_expiry(Duration::from_millis(200)).await;
    let vended = vend(&stack.info().api_url).await;
    let (mut client, _) = Client::connected(persistent(&vended.url, &vended.client_id)).await;
    client.subscribed(&vended.topic, QoS::AtLeastOnce).await;
    client.client.disconnect().await.unwrap();
    client.closed().await;
    let gone = loop {
        let answer = list_subscriptions(&stack, &vended.client_id, "").await;
        if answer.status == 404 {
            break answer;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    assert_eq!(gone.error.as_deref(), Some("ResourceNotFoundException"));
    let (_client, present) = Client::connected(persistent(
        &presigned(&stack, &vended_credentials(&vended)),
        &vended.client_id,
    ))
    .await;
    assert!(!present, "the expired session is gone");
    stack.shutdown().await;
}

#[tokio::test]
async fn list_subscriptions_pages_through_a_clients_filters() {
    let stack = stack().await;
    let mut client = Client::connect(&presigned(&stack, &admin(&stack)), "many", None).await;
    for n in 0..5 {
        client.subscribed(&format!("page/{n}"), QoS::AtMostOnce).await;
    }
    let mut seen = Vec::new();
    let mut query = "maxResults=2".to_owned();
    loop {
        let page = list_subscriptions(&stack, "many", &query).await;
        assert_eq!(page.status, 200, "{page:?}");
        let items = page.body["subscriptions"].as_array().unwrap();
        assert!(items.len() <= 2);
        seen.extend(items.iter().map(|s| s["topicFilter"].as_str().unwrap().to_owned()));
        match page.body.get("nextToken").and_then(Value::as_str) {
            Some(token) => query = format!("maxResults=2&nextToken={}", encode(token)),
            None => break,
        }
    }
    assert_eq!(seen, ["page/0", "page/1", "page/2", "page/3", "page/4"]);
    for bad in ["maxResults=0", "maxResults=201", "nextToken=%%%"] {
        assert_eq!(list_subscriptions(&stack, "many", bad).await.status, 400, "{bad}");
    }
    stack.shutdown().await;
}

#[tokio::test]
async fn retained_messages_can_be_read_and_listed() {
    let stack = stack().await;
    let admin = admin(&stack);
    for (topic, payload) in [("status/a", "on"), ("status/b", "off"), ("status/c", "idle")] {
        let path = format!("/topics/{}?retain=true&qos=1", encode(topic));
        assert_eq!(
            call(&stack, &admin, "POST", &path, payload.as_bytes()).await.status,
            200
        );
    }
    let one = call(&stack, &admin, "GET", "/retainedMessage/status%2Fb", b"").await;
    assert_eq!(one.status, 200, "{one:?}");
    assert_eq!(one.body["topic"], "status/b");
    assert_eq!(one.body["payload"], "b2Zm", "base64 of the payload");
    assert_eq!(one.body["qos"], 1);
    assert!(one.body["lastModifiedTime"].as_u64().unwrap() > 0);

    let page = call(&stack, &admin, "GET", "/retainedMessage?maxResults=2", b"").await;
    let topics: Vec<_> = page.body["retainedTopics"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| {
            (
                t["topic"].as_str().unwrap().to_owned(),
                t["payloadSize"].as_u64().unwrap(),
            )
        })
        .collect();
    assert_eq!(topics, [("status/a".to_owned(), 2), ("status/b".to_owned(), 3)]);
    let token = page.body["nextToken"].as_str().unwrap();
    let rest = call(
        &stack,
        &admin,
        "GET",
        &format!("/retainedMessage?nextToken={}", encode(token)),
        b"",
    )
    .await;
    assert_eq!(rest.body["retainedTopics"][0]["topic"], "status/c");
    assert!(rest.body.get("nextToken").is_none());

    let missing = call(&stack, &admin, "GET", "/retainedMessage/status%2Fz", b"").await;
    assert_eq!(
        (missing.status, missing.error.as_deref()),
        (404, Some("ResourceNotFoundException"))
    );
    // The backend identity has no retained-message rights.
    let refused = call(&stack, &backend(&stack), "GET", "/retainedMessage/status%2Fa", b"").await;
    assert_eq!(
        (refused.status, refused.error.as_deref()),
        (401, Some("UnauthorizedException"))
    );
    stack.shutdown().await;
}

#[tokio::test]
async fn vended_client_credentials_are_refused_every_data_plane_operation() {
    let stack = stack().await;
    let vended = vend(&stack.info().api_url).await;
    let other = vend(&stack.info().api_url).await;
    let _a = Client::connect(&vended.url, &vended.client_id, None).await;
    let _b = Client::connect(&other.url, &other.client_id, None).await;
    let mine = vended_credentials(&vended);
    for target in [&other.client_id, &vended.client_id] {
        let id = encode(target);
        let topic = encode(&other.topic);
        for (method, path, expected) in [
            ("POST", format!("/connections/{id}/messages?topic={topic}"), 403),
            ("GET", format!("/connections/{id}"), 403),
            ("GET", format!("/connections/{id}/subscriptions"), 403),
            ("DELETE", format!("/connections/{id}"), 403),
            ("GET", format!("/retainedMessage/{topic}"), 401),
            ("GET", "/retainedMessage".to_owned(), 401),
            ("POST", format!("/topics/{topic}"), 403),
        ] {
            let answer = call(&stack, &mine, method, &path, b"x").await;
            assert_eq!(answer.status, expected, "{method} {path}: {answer:?}");
        }
    }
    // Both clients are still connected.
    assert_eq!(get_connection(&stack, &other.client_id).await.body["connected"], true);
    assert_eq!(get_connection(&stack, &vended.client_id).await.body["connected"], true);
    stack.shutdown().await;
}

#[tokio::test]
async fn subscribing_and_unsubscribing_publish_subscription_events() {
    let stack = stack().await;
    let mut watcher = watcher(&stack, &[("$aws/events/subscriptions/+/+", QoS::AtMostOnce)]).await;
    let vended = vend(&stack.info().api_url).await;
    let mut client = Client::connect(&vended.url, &vended.client_id, None).await;
    client.subscribed(&vended.topic, QoS::AtLeastOnce).await;
    // The watcher's own SUBSCRIBE made an event too; skip to the client's.
    let (topic, payload) = loop {
        let (topic, payload, _) = next_message(&mut watcher).await;
        if !topic.ends_with("/watcher") {
            break (topic, payload);
        }
    };
    assert_eq!(
        topic,
        format!("$aws/events/subscriptions/subscribed/{}", vended.client_id)
    );
    let event: Value = serde_json::from_str(&payload).unwrap();
    assert_eq!(event["eventType"], "subscribed");
    assert_eq!(event["clientId"], vended.client_id.as_str());
    assert_eq!(event["topics"], serde_json::json!([vended.topic]));
    assert!(event["principalIdentifier"].as_str().unwrap().starts_with("AROA"));
    assert!(event["sessionIdentifier"].as_str().is_some_and(|s| !s.is_empty()));

    client.client.unsubscribe(&vended.topic).await.unwrap();
    let (topic, payload, _) = next_message(&mut watcher).await;
    assert_eq!(
        topic,
        format!("$aws/events/subscriptions/unsubscribed/{}", vended.client_id)
    );
    assert_eq!(
        serde_json::from_str::<Value>(&payload).unwrap()["topics"],
        serde_json::json!([vended.topic])
    );
    stack.shutdown().await;
}

#[tokio::test]
async fn a_websocket_close_frame_counts_as_the_clients_own_disconnect() {
    use futures_util::SinkExt;
    let stack = stack().await;
    let mut watcher = watcher(&stack, &[("$aws/events/presence/disconnected/+", QoS::AtMostOnce)]).await;
    let mut socket = common::mqtt::admin_websocket(&stack).await;
    let mut connect = bytes::BytesMut::new();
    rumqttc::mqttbytes::v4::Connect::new("closer")
        .write(&mut connect)
        .unwrap();
    socket
        .send(tokio_tungstenite::tungstenite::Message::Binary(connect.freeze()))
        .await
        .unwrap();
    // Wait for CONNACK before closing.
    use futures_util::StreamExt;
    socket.next().await.unwrap().unwrap();
    socket.close(None).await.unwrap();
    let (_, payload, _) = next_message(&mut watcher).await;
    let event: Value = serde_json::from_str(&payload).unwrap();
    assert_eq!(event["disconnectReason"], "CLIENT_INITIATED_DISCONNECT");
    assert_eq!(event["clientInitiatedDisconnect"], true);
    stack.shutdown().await;
}

#[tokio::test]
async fn a_refused_subscribe_ends_the_connection_with_auth_error() {
    let stack = stack().await;
    let mut watcher = watcher(&stack, &[("$aws/events/presence/disconnected/+", QoS::AtMostOnce)]).await;
    let vended = vend(&stack.info().api_url).await;
    let mut client = Client::connect(&vended.url, &vended.client_id, None).await;
    client
        .client
        .subscribe("allowed/someone-else", QoS::AtMostOnce)
        .await
        .unwrap();
    client.closed().await;
    let (topic, payload, _) = next_message(&mut watcher).await;
    assert_eq!(topic, format!("$aws/events/presence/disconnected/{}", vended.client_id));
    let event: Value = serde_json::from_str(&payload).unwrap();
    assert_eq!(event["disconnectReason"], "AUTH_ERROR");
    stack.shutdown().await;
}

/// Runs `aws iot-data ARGS` against the stack with the given access key, on a
/// blocking thread (the stack serves on this test's runtime); returns (exit
/// success, stdout, stderr).
async fn aws_cli(stack: &LocalStack, key: &str, secret: &str, args: &[&str]) -> (bool, String, String) {
    let endpoint = stack.info().iot_data_endpoint.clone();
    let (key, secret) = (key.to_owned(), secret.to_owned());
    let args: Vec<String> = args.iter().map(|a| (*a).to_owned()).collect();
    tokio::task::spawn_blocking(move || {
        let mut command = Command::new(tool("aws"));
        command
            .arg("iot-data")
            .args(&args)
            .args(["--endpoint-url", &endpoint, "--output", "json"]);
        let output = aws_env(&mut command, &key, &secret, None, REGION).output().unwrap();
        (
            output.status.success(),
            String::from_utf8(output.stdout).unwrap(),
            String::from_utf8(output.stderr).unwrap(),
        )
    })
    .await
    .unwrap()
}

#[tokio::test]
async fn the_aws_cli_sends_direct_messages_checks_presence_lists_subscriptions_and_kicks() {
    let stack = stack().await;
    let vended = vend(&stack.info().api_url).await;
    let (mut client, _) = Client::connected(persistent(&vended.url, &vended.client_id)).await;
    client.subscribed(&vended.topic, QoS::AtLeastOnce).await;
    let b = stack.info().backend.clone();
    let cli = |args: &'static [&'static str], id: String| {
        let stack = &stack;
        let (key, secret) = (b.access_key_id.clone(), b.secret_access_key.clone());
        async move {
            let mut all: Vec<&str> = args.to_vec();
            all.extend(["--client-id", id.as_str()]);
            aws_cli(stack, &key, &secret, &all).await
        }
    };
    let id = vended.client_id.clone();

    let (ok, out, err) = cli(&["get-connection"], id.clone()).await;
    assert!(ok, "{err}");
    let presence: Value = serde_json::from_str(&out).unwrap();
    assert_eq!(presence["connected"], true);
    assert_eq!(presence["cleanSession"], false);

    let (ok, out, err) = cli(&["list-subscriptions"], id.clone()).await;
    assert!(ok, "{err}");
    let listed: Value = serde_json::from_str(&out).unwrap();
    assert_eq!(listed["subscriptions"][0]["topicFilter"], vended.topic.as_str());

    let args = [
        "send-direct-message",
        "--client-id",
        &id,
        "--topic",
        &vended.topic,
        "--confirmation",
        "--timeout",
        "10",
        "--payload",
        "from the cli",
    ];
    let send = aws_cli(&stack, &b.access_key_id, &b.secret_access_key, &args);
    let ((ok, out, err), (_, payload, _)) = tokio::join!(send, next_message(&mut client));
    assert!(ok, "{err}");
    assert_eq!(payload, "from the cli");
    assert_eq!(serde_json::from_str::<Value>(&out).unwrap()["message"], "OK");

    let (ok, _, err) = cli(&["delete-connection"], id.clone()).await;
    assert!(ok, "{err}");
    client.closed().await;

    let (ok, out, err) = cli(&["get-connection"], id.clone()).await;
    assert!(ok, "{err}");
    let presence: Value = serde_json::from_str(&out).unwrap();
    assert_eq!(presence["connected"], false);
    assert_eq!(presence["disconnectReason"], "API_INITIATED_DISCONNECT");

    // Errors arrive as the CLI's named exceptions.
    let (ok, _, err) = cli(
        &["send-direct-message", "--topic", "allowed/nobody", "--payload", "x"],
        "nobody".into(),
    )
    .await;
    assert!(!ok);
    assert!(err.contains("ResourceNotFoundException"), "{err}");
    stack.shutdown().await;
}

#[tokio::test]
async fn the_aws_cli_reads_retained_messages() {
    let stack = stack().await;
    let admin = admin(&stack);
    let path = format!("/topics/{}?retain=true", encode("status/cli"));
    assert_eq!(call(&stack, &admin, "POST", &path, b"hello").await.status, 200);
    let a = stack.info().admin.clone();
    let (ok, out, err) = aws_cli(
        &stack,
        &a.access_key_id,
        &a.secret_access_key,
        &["get-retained-message", "--topic", "status/cli"],
    )
    .await;
    assert!(ok, "{err}");
    let body: Value = serde_json::from_str(&out).unwrap();
    assert_eq!(body["topic"], "status/cli");
    assert_eq!(body["qos"], 0);
    let (ok, out, err) = aws_cli(
        &stack,
        &a.access_key_id,
        &a.secret_access_key,
        &["list-retained-messages"],
    )
    .await;
    assert!(ok, "{err}");
    let body: Value = serde_json::from_str(&out).unwrap();
    assert_eq!(body["retainedTopics"][0]["topic"], "status/cli");
    assert_eq!(body["retainedTopics"][0]["payloadSize"], 5);
    stack.shutdown().await;
}

/// The AWS SDK for Rust client of the data plane, pointed at the local gateway.
async fn sdk_client(stack: &LocalStack) -> aws_sdk_iotdataplane::Client {
    let b = &stack.info().backend;
    let config = aws_config::defaults(aws_config::BehaviorVersion::latest())
        .region(aws_config::Region::new(REGION))
        .credentials_provider(Credentials::new(
            &b.access_key_id,
            &b.secret_access_key,
            None,
            None,
            "backend",
        ))
        .endpoint_url(&stack.info().iot_data_endpoint)
        .load()
        .await;
    aws_sdk_iotdataplane::Client::new(&config)
}

#[tokio::test]
async fn the_rust_sdk_publishes_sends_a_confirmed_direct_message_checks_presence_and_kicks() {
    use aws_sdk_iotdataplane::primitives::Blob;
    let stack = stack().await;
    let vended = vend(&stack.info().api_url).await;
    let mut client = Client::connect(&vended.url, &vended.client_id, None).await;
    client.subscribed(&vended.topic, QoS::AtLeastOnce).await;
    let iot = sdk_client(&stack).await;

    iot.publish()
        .topic(&vended.topic)
        .qos(1)
        .payload(Blob::new("published"))
        .send()
        .await
        .unwrap();
    assert_eq!(next_message(&mut client).await.1, "published");

    let send = iot
        .send_direct_message()
        .client_id(&vended.client_id)
        .topic(&vended.topic)
        .confirmation(true)
        .timeout(5)
        .payload(Blob::new("direct"))
        .send();
    let (sent, (_, payload, _)) = tokio::join!(send, next_message(&mut client));
    sent.unwrap();
    assert_eq!(payload, "direct");

    let presence = iot.get_connection().client_id(&vended.client_id).send().await.unwrap();
    assert!(presence.connected());
    assert_eq!(presence.keep_alive_duration(), 30);

    let subscriptions = iot
        .list_subscriptions()
        .client_id(&vended.client_id)
        .send()
        .await
        .unwrap();
    assert_eq!(subscriptions.subscriptions()[0].topic_filter(), vended.topic);

    iot.delete_connection()
        .client_id(&vended.client_id)
        .send()
        .await
        .unwrap();
    client.closed().await;
    let err = iot
        .send_direct_message()
        .client_id(&vended.client_id)
        .topic(&vended.topic)
        .payload(Blob::new("too late"))
        .send()
        .await
        .unwrap_err();
    assert!(err.into_service_error().is_resource_not_found_exception());
    stack.shutdown().await;
}
