//! Grants end to end on the local stack in jwt mode: private, per-user, shared and
//! publish topics, with two callers who must never see each other's messages.

mod common;

use std::time::{Duration, SystemTime};

use aws_credential_types::Credentials;
use common::mqtt::{Client, Seen, https_publish, vend_as};
use rumqttc::QoS;
use serverless_websockets_core::presign::{DEFAULT_EXPIRES, IotEndpoint, presign};
use serverless_websockets_local::stack::{LocalOptions, LocalStack};

fn options() -> LocalOptions {
    let settings = [
        ("AUTH_MODE", "jwt"),
        ("SUBSCRIBE_TOPICS", "allowed/{clientId},users/{sub},broadcast/all"),
        ("PUBLISH_TOPICS", "from/{clientId}"),
    ];
    LocalOptions {
        settings: settings.map(|(k, v)| (k.to_owned(), v.to_owned())).to_vec(),
        ..LocalOptions::ephemeral()
    }
}

async fn publish(stack: &LocalStack, topic: &str, payload: &str) {
    let admin = &stack.info().admin;
    let credentials = Credentials::new(&admin.access_key_id, &admin.secret_access_key, None, None, "admin");
    let response = https_publish(
        &stack.info().iot_data_endpoint,
        &stack.info().region,
        &credentials,
        topic,
        "",
        payload.as_bytes(),
    )
    .await;
    assert_eq!(response.status(), 200);
}

#[tokio::test]
async fn two_users_get_their_own_messages_and_share_the_broadcast() {
    let options = options();
    let (alice_token, bob_token) = (
        options.mint_token("alice", Duration::from_secs(600)).unwrap(),
        options.mint_token("bob", Duration::from_secs(600)).unwrap(),
    );
    let stack = LocalStack::start(options).await.unwrap();
    let api = stack.info().api_url.clone();

    let unauthenticated = reqwest::Client::new().post(&api).send().await.unwrap();
    assert_eq!(unauthenticated.status(), 401);

    let alice = vend_as(&api, &alice_token).await;
    let bob = vend_as(&api, &bob_token).await;
    // STS recorded who holds each credential.
    let recorded = stack.identities().get(&alice.credentials.access_key_id).unwrap();
    assert_eq!(recorded.source_identity.as_deref(), Some("alice"));

    let mut alice_client = Client::connect(&alice.url, &alice.client_id, None).await;
    let mut bob_client = Client::connect(&bob.url, &bob.client_id, None).await;
    for (client, user) in [(&mut alice_client, "alice"), (&mut bob_client, "bob")] {
        client.subscribed(&format!("users/{user}"), QoS::AtMostOnce).await;
        client.subscribed("broadcast/all", QoS::AtMostOnce).await;
    }

    publish(&stack, "users/alice", "for alice").await;
    publish(&stack, "users/bob", "for bob").await;
    let first_for_alice = alice_client.next_publish().await;
    assert_eq!(
        (first_for_alice.topic.as_str(), &first_for_alice.payload[..]),
        ("users/alice", &b"for alice"[..])
    );
    let first_for_bob = bob_client.next_publish().await;
    assert_eq!(
        (first_for_bob.topic.as_str(), &first_for_bob.payload[..]),
        ("users/bob", &b"for bob"[..]),
        "bob never sees alice's message"
    );

    publish(&stack, "broadcast/all", "for everyone").await;
    assert_eq!(&alice_client.next_publish().await.payload[..], b"for everyone");
    assert_eq!(&bob_client.next_publish().await.payload[..], b"for everyone");

    // Alice cannot read Bob's topic: subscribing disconnects her.
    match alice_client.subscribe("users/bob", QoS::AtMostOnce).await {
        Seen::Closed(_) => {}
        other => panic!("subscribing to another user's topic should disconnect, got {other:?}"),
    }
    stack.shutdown().await;
}

#[tokio::test]
async fn a_client_with_a_publish_grant_publishes_to_its_own_topic_only() {
    let options = options();
    let token = options.mint_token("carol", Duration::from_secs(600)).unwrap();
    let stack = LocalStack::start(options).await.unwrap();
    let carol = vend_as(&stack.info().api_url, &token).await;
    assert_eq!(carol.credentials.access_key_id.len(), 20);

    // The backend listens on every client's outbound topic (the admin may).
    let admin = &stack.info().admin;
    let admin_credentials = Credentials::new(&admin.access_key_id, &admin.secret_access_key, None, None, "admin");
    let endpoint = IotEndpoint::parse(&stack.info().iot_endpoint).unwrap();
    let admin_url = presign(
        &endpoint,
        &stack.info().region,
        &admin_credentials,
        SystemTime::now(),
        DEFAULT_EXPIRES,
    )
    .unwrap();
    let mut backend = Client::connect(&admin_url, "backend", None).await;
    backend.subscribed("from/+", QoS::AtLeastOnce).await;

    let mut client = Client::connect(&carol.url, &carol.client_id, None).await;
    let own = format!("from/{}", carol.client_id);
    client
        .client
        .publish(&own, QoS::AtLeastOnce, false, "hello backend")
        .await
        .unwrap();
    let message = backend.next_publish().await;
    assert_eq!(
        (message.topic.as_str(), &message.payload[..]),
        (own.as_str(), &b"hello backend"[..])
    );

    // Publishing anywhere else disconnects her.
    client
        .client
        .publish("from/someone-else", QoS::AtLeastOnce, false, "spoofed")
        .await
        .unwrap();
    client.closed().await;
    stack.shutdown().await;
}

#[test]
fn local_print_token_mints_a_token_the_local_jwt_api_accepts() {
    use std::io::{BufRead, BufReader};
    use std::process::{Command, Stdio};

    let binary = env!("CARGO_BIN_EXE_serverless-websockets");
    let dir = tempfile::tempdir().unwrap();
    let ready = dir.path().join("ready.json");
    let mut child = common::local_command(&ready, &["--auth", "jwt"])
        .env_remove("AUTH_MODE")
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    while !lines.next().unwrap().unwrap().contains("callers") {}
    let info: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(&ready).unwrap()).unwrap();
    assert_eq!(info["jwt"]["issuer"], "serverless-websockets-local");

    let token = Command::new(binary)
        .args(["local", "--print-token", "alice"])
        .env_remove("AUTH_MODE")
        .output()
        .unwrap();
    assert!(token.status.success());
    let token = String::from_utf8(token.stdout).unwrap().trim().to_owned();
    assert_eq!(token.split('.').count(), 3, "{token}");

    let api = info["api_url"].as_str().unwrap().to_owned();
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let (without, with) = runtime.block_on(async {
        let client = reqwest::Client::new();
        let without = client.post(&api).send().await.unwrap().status().as_u16();
        let with = client
            .post(&api)
            .bearer_auth(&token)
            .send()
            .await
            .unwrap()
            .status()
            .as_u16();
        (without, with)
    });
    assert_eq!((without, with), (401, 200));
    let _ = Command::new("kill").args(["-INT", &child.id().to_string()]).status();
    assert!(child.wait().unwrap().success());
}
