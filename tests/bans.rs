//! A ban through AWS's own mechanism, proved on the local stack: an inline policy
//! put on the client role with `aws iam put-role-policy` (a Deny conditioned on
//! `aws:SourceIdentity`, which the vending API sets to the caller's `sub`)
//! applies to the user's live session at its next action and to its next
//! connect with the credentials it holds; the vending API reads the same policy
//! and refuses her (`403 Banned`); other users are untouched; deleting the
//! policy lifts the ban.

#![allow(
    clippy::expect_used,
    reason = "test code: a panic with its message is the failure report"
)]

mod common;

use std::time::Duration;

use rumqttc::QoS;
use serde_json::json;

use common::mqtt::{Client, Seen, vend_as};
use common::tools::aws_admin;
use serverless_websockets_local::stack::{LocalOptions, LocalStack};

/// `aws iam ARGS` against the stack's STS port, as the local admin: exit status
/// and what it printed.
fn aws_iam(stack: &LocalStack, args: &[&str]) -> (bool, String) {
    let (ok, json, stderr) = aws_admin(stack, "iam", &stack.info().sts_endpoint, args);
    (ok, format!("{json}{stderr}"))
}

/// The vending API's status and error code for `token`.
async fn vend_status(api: &str, token: &str) -> (u16, String) {
    let (status, body) = common::mqtt::vend_answer(api, token, &json!({})).await;
    (status, body["error"]["code"].as_str().unwrap_or_default().to_owned())
}

const ROLE: &str = "serverless-websockets-client";

fn ban(subjects: &[&str]) -> String {
    json!({"Version": "2012-10-17", "Statement": [{
        "Effect": "Deny", "Action": "iot:*", "Resource": "*",
        "Condition": {"StringEquals": {"aws:SourceIdentity": subjects}},
    }]})
    .to_string()
}

/// A stack in JWT mode, and tokens of alice and bob.
async fn jwt_stack() -> (LocalStack, String, String) {
    let mut options = LocalOptions::ephemeral();
    options.settings = vec![("AUTH_MODE".into(), "jwt".into())];
    let tokens = |sub: &str| options.mint_token(sub, Duration::from_secs(600)).unwrap();
    let (alice, bob) = (tokens("alice"), tokens("bob"));
    (LocalStack::start(options.clone()).await.unwrap(), alice, bob)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_ban_on_the_client_role_takes_one_user_out_at_once_and_lifting_it_lets_them_back() {
    let (stack, alice_token, bob_token) = jwt_stack().await;
    let api = stack.info().api_url.clone();
    let alice = vend_as(&api, &alice_token).await;
    let bob = vend_as(&api, &bob_token).await;
    let mut alice_client = Client::connect(&alice.url, &alice.client_id, None).await;
    let mut bob_client = Client::connect(&bob.url, &bob.client_id, None).await;
    alice_client.subscribed(&alice.topic, QoS::AtLeastOnce).await;

    let policy = ban(&["alice"]);
    let put = [
        "put-role-policy",
        "--role-name",
        ROLE,
        "--policy-name",
        "bans",
        "--policy-document",
        &policy,
    ];
    let (ok, out) = tokio::task::block_in_place(|| aws_iam(&stack, &put));
    assert!(ok, "{out}");
    let (_, listed) = tokio::task::block_in_place(|| aws_iam(&stack, &["list-role-policies", "--role-name", ROLE]));
    assert!(listed.contains("bans"), "{listed}");

    // Alice's live session: its next action is refused and the connection closed.
    match alice_client.subscribe(&alice.topic, QoS::AtLeastOnce).await {
        Seen::Closed(_) => {}
        other => panic!("a banned user's next action must be refused: {other:?}"),
    }
    // The credentials she holds no longer connect; a fresh vend is no better.
    let mut again = Client::start(common::mqtt::options(&alice.url, &alice.client_id, None));
    assert!(
        matches!(again.next().await, Seen::Closed(_)),
        "her credentials still connect"
    );
    // The vending API reads the same policy: no credentials for her, a clear 403.
    let (status, code) = vend_status(&api, &alice_token).await;
    assert_eq!((status, code.as_str()), (403, "Banned"));
    // Bob is untouched.
    bob_client.subscribed(&bob.topic, QoS::AtLeastOnce).await;
    assert_eq!(vend_status(&api, &bob_token).await.0, 200);

    let delete = ["delete-role-policy", "--role-name", ROLE, "--policy-name", "bans"];
    let (ok, out) = tokio::task::block_in_place(|| aws_iam(&stack, &delete));
    assert!(ok, "{out}");
    let fresh = vend_as(&api, &alice_token).await;
    let mut back = Client::connect(&fresh.url, &fresh.client_id, None).await;
    back.subscribed(&fresh.topic, QoS::AtLeastOnce).await;
    // IAM's answers for what is not there.
    let (ok, out) = tokio::task::block_in_place(|| aws_iam(&stack, &delete));
    assert!(!ok && out.contains("NoSuchEntity"), "{out}");
    let bad = [
        "put-role-policy",
        "--role-name",
        ROLE,
        "--policy-name",
        "x",
        "--policy-document",
        "{",
    ];
    let (ok, out) = tokio::task::block_in_place(|| aws_iam(&stack, &bad));
    assert!(!ok && out.contains("MalformedPolicyDocument"), "{out}");
    stack.shutdown().await;
}

/// `serverless-websockets ban ARGS` against the stack, as its admin: the JSON
/// report it prints (the command must succeed).
fn ban_command(stack: &LocalStack, args: &[&str]) -> serde_json::Value {
    let info = stack.info();
    let mut command = std::process::Command::new(env!("CARGO_BIN_EXE_serverless-websockets"));
    command.arg("ban").args(args).args([
        "--iam-endpoint-url",
        &info.sts_endpoint,
        "--iot-endpoint-url",
        &info.iot_data_endpoint,
    ]);
    let output = common::tools::as_admin(&mut command, stack).output().unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "ban {args:?} failed: {stderr}");
    serde_json::from_slice(&output.stdout).unwrap_or_else(|e| panic!("{e}: {stderr}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_ban_command_refuses_the_user_closes_the_connections_it_can_name_and_lifts() {
    let (stack, alice_token, bob_token) = jwt_stack().await;
    let api = stack.info().api_url.clone();
    // Two tabs of Alice's: one the operator names, one the app's presence record names.
    let (tab1, tab2, bob) = (
        vend_as(&api, &alice_token).await,
        vend_as(&api, &alice_token).await,
        vend_as(&api, &bob_token).await,
    );
    let mut tab1_client = Client::connect(&tab1.url, &tab1.client_id, None).await;
    let mut tab2_client = Client::connect(&tab2.url, &tab2.client_id, None).await;
    let mut bob_client = Client::connect(&bob.url, &bob.client_id, None).await;
    for (client, sub) in [(&tab2.client_id, "alice"), (&bob.client_id, "bob")] {
        let topic = format!("app/presence/{client}");
        let record = json!({"sub": sub}).to_string();
        let publish = ["publish", "--topic", &topic, "--retain", "--payload", &record];
        let (ok, _, err) =
            tokio::task::block_in_place(|| aws_admin(&stack, "iot-data", &stack.info().iot_data_endpoint, &publish));
        assert!(ok, "{err}");
    }

    let report = tokio::task::block_in_place(|| {
        ban_command(
            &stack,
            &[
                "alice",
                "--close",
                &tab1.client_id,
                "--presence-prefix",
                "app/presence/",
            ],
        )
    });
    assert_eq!(report["banned"], json!(["alice"]));
    let mut closed: Vec<&str> = report["closed"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|v| v.as_str())
        .collect();
    closed.sort_unstable();
    let mut expected = [tab1.client_id.as_str(), tab2.client_id.as_str()];
    expected.sort_unstable();
    assert_eq!(closed, expected, "{report}");
    for client in [&mut tab1_client, &mut tab2_client] {
        assert!(
            matches!(client.next().await, Seen::Closed(_)),
            "a tab of hers is still open"
        );
    }
    assert_eq!(vend_status(&api, &alice_token).await, (403, "Banned".to_owned()));
    bob_client.subscribed(&bob.topic, QoS::AtLeastOnce).await;

    let report = tokio::task::block_in_place(|| ban_command(&stack, &["alice", "--lift"]));
    assert_eq!(report["lifted"], json!(["alice"]));
    let back = vend_as(&api, &alice_token).await;
    Client::connect(&back.url, &back.client_id, None).await;
    let (_, listed) = tokio::task::block_in_place(|| aws_iam(&stack, &["list-role-policies", "--role-name", ROLE]));
    assert!(!listed.contains("bans"), "the emptied policy is deleted: {listed}");
    stack.shutdown().await;
}
