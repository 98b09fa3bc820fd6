//! The whole two-way loop on one machine, through the real pieces: the local
//! stack with the example's rules (`backend-example/rules.json`), `cargo lambda
//! watch` running the example functions behind the real Lambda Invoke API, MQTT
//! clients publishing, and the echo function replying through the local data
//! plane with the AWS SDK — to the sender only; from MQTT clients and from two
//! tabs of the demo page in a real headless Chromium with the browser client.

#![allow(
    clippy::expect_used,
    reason = "test code: a panic with its message is the failure report"
)]

mod common;

use std::time::Duration;

use rumqttc::QoS;
use serde_json::{Value, json};

use common::mqtt::{Client, vend};
use common::tools::{Watch, build_bins, free_port, run_browser_script};
use serverless_websockets_local::stack::{LocalOptions, LocalStack};

/// The first invocation starts the function (`cargo run`, already built, which
/// can still wait for the build directory's lock); the stack waits for it up to
/// `--lambda-timeout`, so the test may wait longer than for the second reply.
const FIRST_REPLY: Duration = Duration::from_secs(180);

/// Builds the example functions and starts `cargo lambda watch` for them on
/// `port`, pushing through the stack's data plane as the local backend identity.
fn watch(stack: &LocalStack, port: u16) -> Watch {
    build_bins("backend-example");
    let info = stack.info();
    Watch::start(
        "backend-example",
        port,
        &[
            ("AWS_ACCESS_KEY_ID", info.backend.access_key_id.as_str()),
            ("AWS_SECRET_ACCESS_KEY", info.backend.secret_access_key.as_str()),
            ("AWS_REGION", info.region.as_str()),
            ("AWS_ENDPOINT_URL_IOT_DATA_PLANE", info.iot_data_endpoint.as_str()),
        ],
    )
}

async fn reply(client: &mut Client, wait: Duration) -> Value {
    let publish = tokio::time::timeout(wait, client.next_publish())
        .await
        .expect("a reply within the wait");
    serde_json::from_slice(&publish.payload).unwrap()
}

/// The local stack with the example's rules, its Lambda actions going to
/// `cargo lambda watch` (started on a free port), clients publishing to `from/<id>`.
async fn echo_stack() -> (LocalStack, Watch) {
    let port = free_port();
    let mut options = LocalOptions::ephemeral();
    options.lambda_endpoint = Some(format!("http://127.0.0.1:{port}"));
    options.rules_file = Some(concat!(env!("CARGO_MANIFEST_DIR"), "/backend-example/rules.json").into());
    options.settings = vec![("PUBLISH_TOPICS".into(), "from/{clientId}".into())];
    let stack = LocalStack::start(options).await.unwrap();
    let watch = watch(&stack, port);
    (stack, watch)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_browser_tabs_each_get_their_own_echo_from_the_function_and_only_their_own() {
    let (stack, _watch) = echo_stack().await;
    let summary = run_browser_script(&stack, "browser_echo.js", &[]).await;
    assert_ne!(summary["ids"][0], summary["ids"][1], "two tabs, two client IDs");
    let echoes = |tab: &str| -> Vec<String> {
        summary[tab]
            .as_array()
            .unwrap()
            .iter()
            .filter_map(|m| m.as_str().filter(|t| t.contains("echo")).map(str::to_owned))
            .collect()
    };
    assert_eq!(echoes("first"), [r#"{"echo":"hi from the first tab"}"#], "{summary}");
    assert_eq!(echoes("second"), [r#"{"echo":"hi from the second tab"}"#], "{summary}");
    assert_eq!(summary["consoleErrors"], json!([]), "{summary}");
    stack.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_chat_message_goes_through_a_rule_and_cargo_lambda_watch_and_back_to_its_sender_only() {
    let (stack, _watch) = echo_stack().await;
    let (alice, bob) = (vend(&stack.info().api_url).await, vend(&stack.info().api_url).await);
    let mut alice_client = Client::connect(&alice.url, &alice.client_id, None).await;
    alice_client.subscribed(&alice.topic, QoS::AtLeastOnce).await;
    let mut bob_client = Client::connect(&bob.url, &bob.client_id, None).await;
    bob_client.subscribed(&bob.topic, QoS::AtLeastOnce).await;

    // The payload claims another sender; the rule takes the sender from the topic.
    let chat = json!({"kind": "chat", "text": "hi from alice", "sender": bob.client_id}).to_string();
    let topic = format!("from/{}", alice.client_id);
    alice_client
        .client
        .publish(&topic, QoS::AtLeastOnce, false, chat)
        .await
        .unwrap();
    assert_eq!(
        reply(&mut alice_client, FIRST_REPLY).await,
        json!({"echo": "hi from alice"})
    );

    // Bob's own message comes back to him, and it is the first thing he gets:
    // alice's echo never reached him.
    let chat = json!({"kind": "chat", "text": "hi from bob"}).to_string();
    let topic = format!("from/{}", bob.client_id);
    bob_client
        .client
        .publish(&topic, QoS::AtLeastOnce, false, chat)
        .await
        .unwrap();
    assert_eq!(
        reply(&mut bob_client, common::mqtt::WAIT * 3).await,
        json!({"echo": "hi from bob"})
    );
    stack.shutdown().await;
}
