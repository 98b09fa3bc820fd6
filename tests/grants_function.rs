//! The grants function end to end: the local stack's vending API invokes the
//! example `grants` function (membership from a table) under `cargo lambda
//! watch` through the real Lambda Invoke API at every vend; its rooms become
//! the caller's grants through the `{claims.rooms}` template, narrowing still
//! applies, a client subscribes with them, and a failed or malformed answer is
//! `503 GrantsUnavailable`.

#![allow(
    clippy::expect_used,
    reason = "test code: a panic with its message is the failure report"
)]

mod common;

use std::time::Duration;

use rumqttc::QoS;
use serde_json::{Value, json};

use common::mqtt::Client;
use common::tools::{Watch, build_bins, free_port};
use serverless_websockets_local::stack::{LocalOptions, LocalStack};

const MEMBERS: &str = r#"{"alice": ["42", "7"], "evil": ["a/b"]}"#;

/// `cargo lambda watch` with the example functions on a free port; the first
/// invocation (which starts the function) is made here, so that the API's
/// timeout applies to warm calls only.
async fn watch() -> (Watch, u16) {
    build_bins("backend-example");
    let port = free_port();
    let watch = Watch::start("backend-example", port, &[("ROOM_MEMBERS", MEMBERS)]);
    let answer = reqwest::Client::new()
        .post(format!(
            "http://127.0.0.1:{port}/2015-03-31/functions/grants/invocations"
        ))
        .body(r#"{"sub": "warm-up"}"#)
        .timeout(Duration::from_secs(120))
        .send()
        .await
        .expect("cargo lambda watch answers");
    assert!(answer.status().is_success(), "{:?}", answer.text().await);
    (watch, port)
}

async fn start_stack(lambda_port: u16, function: &str) -> (LocalStack, LocalOptions) {
    let mut options = LocalOptions::ephemeral();
    options.lambda_endpoint = Some(format!("http://127.0.0.1:{lambda_port}"));
    options.settings = vec![
        ("AUTH_MODE".into(), "jwt".into()),
        (
            "SUBSCRIBE_TOPICS".into(),
            "allowed/{clientId},rooms/{claims.rooms}".into(),
        ),
        ("GRANTS_FUNCTION".into(), function.into()),
    ];
    (LocalStack::start(options.clone()).await.unwrap(), options)
}

/// POSTs `body` with a token for `sub` carrying `claims`: status and JSON.
async fn vend(stack: &LocalStack, options: &LocalOptions, sub: &str, claims: Value, body: Value) -> (u16, Value) {
    let token = options
        .mint_token_with(sub, claims.as_object().unwrap(), Duration::from_secs(600))
        .unwrap();
    common::mqtt::vend_answer(&stack.info().api_url, &token, &body).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_grants_function_decides_the_rooms_and_its_failure_is_a_clear_503() {
    let (_watch, port) = watch().await;
    let (stack, options) = start_stack(port, "grants").await;

    // Alice's token names no room; the function's table does.
    let (status, alice) = vend(&stack, &options, "alice", json!({}), json!({})).await;
    assert_eq!(status, 200, "{alice}");
    let client_id = alice["clientId"].as_str().unwrap();
    assert_eq!(
        alice["grants"]["subscribe"],
        json!([format!("allowed/{client_id}"), "rooms/42", "rooms/7"])
    );
    let mut client = Client::connect(alice["url"].as_str().unwrap(), client_id, None).await;
    client.subscribed("rooms/42", QoS::AtLeastOnce).await;

    // Narrowing applies to the function's rooms as to a token's.
    let (_, narrowed) = vend(
        &stack,
        &options,
        "alice",
        json!({}),
        json!({"claims": {"rooms": ["7"]}}),
    )
    .await;
    assert_eq!(
        narrowed["grants"]["subscribe"].as_array().unwrap().len(),
        2,
        "{narrowed}"
    );
    let (status, refused) = vend(
        &stack,
        &options,
        "alice",
        json!({}),
        json!({"claims": {"rooms": ["9"]}}),
    )
    .await;
    assert_eq!((status, &refused["error"]["code"]), (403, &json!("ClaimNotInToken")));

    // The function replaces the token's claim: Bob's token says 9, the table nothing.
    let (_, bob) = vend(&stack, &options, "bob", json!({"rooms": ["9"]}), json!({})).await;
    assert_eq!(bob["grants"]["subscribe"].as_array().unwrap().len(), 1, "{bob}");

    // A value no token could carry is the function's fault: 503, nothing granted.
    let (status, evil) = vend(&stack, &options, "evil", json!({}), json!({})).await;
    assert_eq!(
        (status, &evil["error"]["code"]),
        (503, &json!("GrantsUnavailable")),
        "{evil}"
    );
    stack.shutdown().await;

    // A function that is not there: the same 503, and the stack keeps serving.
    let (missing, options) = start_stack(port, "no-such-function").await;
    let (status, answer) = vend(&missing, &options, "alice", json!({}), json!({})).await;
    assert_eq!(
        (status, &answer["error"]["code"]),
        (503, &json!("GrantsUnavailable")),
        "{answer}"
    );
    let health = reqwest::get(missing.info().api_url.replace("/credentials", "/health"))
        .await
        .unwrap();
    assert_eq!(health.status(), 200);
    missing.shutdown().await;
}
