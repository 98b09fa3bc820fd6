//! The chat example (`docs/chat.md`) end to end through the real pieces: the
//! local stack in JWT mode with grants from the token's `rooms` claim and the
//! chat rules (`backend-example/chat-rules.json`), the chat function under
//! `cargo lambda watch` behind the real Lambda Invoke API, three users in real
//! headless Chromium tabs with the browser client, and a ban by
//! `serverless-websockets ban`.

#![allow(
    clippy::expect_used,
    reason = "test code: a panic with its message is the failure report"
)]

mod common;

use std::time::Duration;

use serde_json::{Value, json};

use common::tools::{Watch, build_bins, free_port, run_browser_script};
use serverless_websockets_local::stack::{LocalOptions, LocalStack};

/// The grants the chat needs: each client's own topic and its rooms to read;
/// to write, only `chat/from/<its sub>/<its client ID>/<a room of its token>`.
const SUBSCRIBE: &str = "allowed/{clientId},chat/rooms/{claims.rooms}";
const PUBLISH: &str = "chat/from/{sub}/{clientId}/{claims.rooms}";

/// The stack with the chat's grants and rules, its pages' origin allowed, and
/// the chat function under `cargo lambda watch` (as the local admin: the
/// function's own role on AWS).
async fn chat_stack(page_port: u16) -> (LocalStack, Watch, LocalOptions) {
    let lambda_port = free_port();
    let mut options = LocalOptions::ephemeral();
    options.lambda_endpoint = Some(format!("http://127.0.0.1:{lambda_port}"));
    options.rules_file = Some(concat!(env!("CARGO_MANIFEST_DIR"), "/backend-example/chat-rules.json").into());
    options.settings = vec![
        ("AUTH_MODE".into(), "jwt".into()),
        ("SUBSCRIBE_TOPICS".into(), SUBSCRIBE.into()),
        ("PUBLISH_TOPICS".into(), PUBLISH.into()),
        ("CORS_ALLOW_ORIGINS".into(), format!("http://127.0.0.1:{page_port}")),
    ];
    let stack = LocalStack::start(options.clone()).await.unwrap();
    build_bins("backend-example");
    let info = stack.info();
    let watch = Watch::start(
        "backend-example",
        lambda_port,
        &[
            ("AWS_ACCESS_KEY_ID", info.admin.access_key_id.as_str()),
            ("AWS_SECRET_ACCESS_KEY", info.admin.secret_access_key.as_str()),
            ("AWS_REGION", info.region.as_str()),
            ("AWS_ENDPOINT_URL_IOT_DATA_PLANE", info.iot_data_endpoint.as_str()),
        ],
    );
    (stack, watch, options)
}

/// What a tab received, of one type, as (room, from, text).
fn seen(messages: &Value, kind: &str) -> Vec<(String, String, String)> {
    messages
        .as_array()
        .unwrap()
        .iter()
        .filter(|m| m["type"] == kind)
        .map(|m| {
            let s = |k: &str| m[k].as_str().unwrap_or_default().to_owned();
            (s("room"), s("from"), s("text"))
        })
        .collect()
}

fn said(room: &str, from: &str, text: &str) -> (String, String, String) {
    (room.into(), from.into(), text.into())
}

/// Runs the browser script; its summary line.
async fn run_browsers(stack: &LocalStack, page_port: u16, options: &LocalOptions) -> Value {
    let dir = tempfile::tempdir().unwrap();
    let token = |sub: &str, rooms: &[&str]| {
        let claims = json!({"rooms": rooms});
        options
            .mint_token_with(sub, claims.as_object().unwrap(), Duration::from_secs(600))
            .unwrap()
    };
    let tokens = json!({
        "alice": token("alice", &["42", "7"]),
        "bob": token("bob", &["42"]),
        "carol": token("carol", &["7"]),
    });
    let tokens_path = dir.path().join("tokens.json");
    std::fs::write(&tokens_path, tokens.to_string()).unwrap();
    let port = page_port.to_string();
    let ban = env!("CARGO_BIN_EXE_serverless-websockets");
    let args = [port.as_ref(), tokens_path.as_os_str(), ban.as_ref()];
    run_browser_script(stack, "browser_chat.js", &args).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_users_chat_in_their_rooms_only_and_a_banned_user_is_out_at_once() {
    let page_port = free_port();
    let (stack, _watch, options) = chat_stack(page_port).await;
    let summary = run_browsers(&stack, page_port, &options).await;

    // Each message reached the room's members, stamped by the function.
    assert_eq!(
        seen(&summary["alice"], "message"),
        [
            said("42", "alice", "hello room 42"),
            said("7", "carol", "hello room 7"),
            said("42", "bob", "hi alice"),
            said("42", "alice", "after the ban"),
        ],
        "{summary}"
    );
    assert_eq!(
        seen(&summary["bob"], "message"),
        [said("42", "alice", "hello room 42"), said("42", "bob", "hi alice")],
        "bob is in 42 only, and out before the last message: {summary}"
    );
    assert_eq!(
        seen(&summary["carol"], "message"),
        [said("7", "carol", "hello room 7")],
        "carol is not in 42: {summary}"
    );
    for message in summary["alice"].as_array().unwrap() {
        assert!(
            message["at"].as_u64().unwrap_or(0) > 0,
            "stamped with the time: {message}"
        );
    }
    // Arrivals were announced to those already there.
    assert!(
        seen(&summary["alice"], "joined").contains(&said("42", "bob", "")),
        "{summary}"
    );
    assert!(
        seen(&summary["alice"], "joined").contains(&said("7", "carol", "")),
        "{summary}"
    );

    // A room the token does not carry: refused by the vending API, by name.
    assert_eq!(summary["intruderErrors"], json!(["Forbidden"]), "{summary}");
    let intruder = summary["intruderText"].as_str().unwrap();
    assert!(
        intruder.contains("ClaimNotInToken") && intruder.contains("42"),
        "{intruder}"
    );

    // The ban: his connection closed by the command, his page told, alice told.
    assert_eq!(summary["banReport"]["banned"], json!(["bob"]), "{summary}");
    assert_eq!(summary["banReport"]["closed"].as_array().unwrap().len(), 1, "{summary}");
    // Closed (Network), his held credentials refused at CONNECT (Network), then
    // the vending API's answer, after which the client stops.
    let errors = summary["bobErrors"].as_array().unwrap();
    assert_eq!(errors.last(), Some(&json!("Banned")), "{summary}");
    assert!(errors[..errors.len() - 1].iter().all(|e| e == "Network"), "{summary}");
    assert_eq!(summary["bobText"], "You were removed from this chat.");
    assert!(
        seen(&summary["alice"], "left").contains(&said("42", "bob", "")),
        "{summary}"
    );
    let out = summary["bobOutMs"].as_u64().unwrap();
    assert!(out < 10_000, "out within the documented 10 s locally: {out} ms");
    // The only console errors are the refusals' own 403s.
    for error in summary["consoleErrors"].as_array().unwrap() {
        let error = error.as_str().unwrap();
        assert!(error.starts_with("bob: ") && error.contains("403"), "{error}");
    }
    stack.shutdown().await;
}
