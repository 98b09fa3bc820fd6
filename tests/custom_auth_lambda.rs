//! Our JWT authorizer as a Lambda: `cargo lambda watch` runs the
//! `serverless-websockets-authorizer` crate behind the real Lambda Invoke API,
//! the local stack's custom authorizer (created with the AWS CLI, as on AWS)
//! invokes it, and third-party clients connect with a token: MQTT.js as the
//! "secret third option" post does it (name and token in the URL) and the AWS
//! IoT Device SDK v2 (aws-crt, name and token in the CONNECT user name, over TLS).

#![allow(
    clippy::expect_used,
    reason = "test code: a panic with its message is the failure report"
)]

mod common;

use std::process::Command;
use std::time::Duration;

use serde_json::{Value, json};

use common::tools::{Script, Watch, aws_iot, build_bins, free_port, node_modules, tool};
use serverless_websockets_core::policy::authorizer::client_id_prefix;
use serverless_websockets_local::stack::{LocalOptions, LocalStack};

const AUTHORIZER: &str = "sw-jwt-lambda";
const FUNCTION: &str = "arn:aws:lambda:us-east-1:000000000000:function:serverless-websockets-authorizer";

/// The settings the authorizer and the stack share: jwt mode with the local
/// issuer and secret, and these grants.
fn settings() -> Vec<(String, String)> {
    vec![
        ("AUTH_MODE".into(), "jwt".into()),
        ("SUBSCRIBE_TOPICS".into(), "allowed/{clientId},users/{sub}".into()),
    ]
}

/// `cargo lambda watch` running our authorizer with the stack's JWT settings,
/// warmed up: its first invocation starts the process, which IoT's 5 s timeout
/// would not wait for.
async fn authorizer_function(options: &LocalOptions) -> (Watch, String) {
    build_bins("serverless-websockets-authorizer");
    let port = free_port();
    let setting = |name: &str| options.setting(name).unwrap_or_default();
    let env = [
        ("AWS_REGION", "us-east-1".to_owned()),
        ("IOT_ACCOUNT_ID", "000000000000".to_owned()),
        ("AUTH_MODE", "jwt".to_owned()),
        ("JWT_ISSUER", setting("JWT_ISSUER")),
        ("JWT_AUDIENCE", setting("JWT_AUDIENCE")),
        ("JWT_HS256_SECRET", setting("JWT_HS256_SECRET")),
        ("SUBSCRIBE_TOPICS", setting("SUBSCRIBE_TOPICS")),
        ("AWS_ACCESS_KEY_ID", "unused".to_owned()),
        ("AWS_SECRET_ACCESS_KEY", "unused".to_owned()),
    ];
    let env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let watch = Watch::start("serverless-websockets-authorizer", port, &env);
    let endpoint = format!("http://127.0.0.1:{port}");
    let warm = reqwest::Client::new()
        .post(format!(
            "{endpoint}/2015-03-31/functions/serverless-websockets-authorizer/invocations"
        ))
        .timeout(Duration::from_secs(120))
        .body(json!({"signatureVerified": false, "protocols": []}).to_string())
        .send()
        .await
        .unwrap();
    let refused: Value = warm.json().await.unwrap();
    assert_eq!(refused["isAuthenticated"], false, "no token, no entry: {refused}");
    (watch, endpoint)
}

/// A stack (plain or `--tls`) invoking functions at `lambda`, with the
/// authorizer created through the control plane by the AWS CLI.
async fn stack(lambda: &str, tls: bool) -> LocalStack {
    let mut options = LocalOptions::ephemeral();
    options.settings = settings();
    options.lambda_endpoint = Some(lambda.to_owned());
    options.tls = tls;
    let stack = LocalStack::start(options).await.unwrap();
    let create = [
        "create-authorizer",
        "--authorizer-name",
        AUTHORIZER,
        "--authorizer-function-arn",
        FUNCTION,
        "--token-key-name",
        "token",
        "--signing-disabled",
    ];
    let (ok, _, stderr) = tokio::task::block_in_place(|| aws_iot(&stack, &create));
    assert!(ok, "{stderr}");
    stack
}

/// Publishes `payload` to `topic` as the local admin, over the data plane.
async fn push(stack: &LocalStack, topic: &str, payload: &[u8]) {
    let info = stack.info();
    let admin = aws_credential_types::Credentials::new(
        &info.admin.access_key_id,
        &info.admin.secret_access_key,
        None,
        None,
        "admin",
    );
    let publish = common::mqtt::PublishRequest {
        endpoint: &info.iot_data_endpoint,
        region: &info.region,
        credentials: &admin,
        topic,
        query: "qos=1",
        payload,
    };
    let client = match &info.ca_cert {
        Some(ca) => common::mqtt::https_client_trusting(ca),
        None => reqwest::Client::new(),
    };
    let response = common::mqtt::https_publish_via(&client, &publish).await;
    assert_eq!(response.status(), 200);
}

/// MQTT.js: the authorizer's name and the token in the URL.
async fn mqtt_js(lambda: &str, token: &str, prefix: &str) {
    let plain = stack(lambda, false).await;
    let client_id = format!("{prefix}mqttjs");
    let topic = format!("allowed/{client_id}");
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/clients/mqttjs_token.js");
    let endpoint = plain.info().iot_endpoint.clone();
    let run = |client_id: &str, topic: &str| {
        Script::spawn(
            Command::new(tool("node"))
                .args([script, &endpoint, AUTHORIZER, token, client_id, topic])
                .env("NODE_PATH", node_modules()),
        )
    };
    let mut mqtt_js = run(&client_id, &topic);
    mqtt_js.expect_line("READY").await;
    push(&plain, &topic, b"hello token").await;
    assert_eq!(
        mqtt_js.expect_line("MESSAGE").await,
        format!("MESSAGE {topic} hello token")
    );
    assert!(mqtt_js.wait().await.success());
    // Another user's client ID is refused.
    assert!(!run("someone-else", "allowed/someone-else").wait().await.success());
    plain.shutdown().await;
}

/// aws-crt over TLS: the name and the token in the CONNECT user name.
async fn aws_crt(lambda: &str, token: &str, prefix: &str) {
    let tls = stack(lambda, true).await;
    let info = tls.info();
    let port = info.iot_endpoint.rsplit(':').next().unwrap().to_owned();
    let client_id = format!("{prefix}crt");
    let topic = format!("allowed/{client_id}");
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/clients/crt_token.py");
    let mut crt = Script::spawn(Command::new(tool("python")).args([
        script,
        "localhost",
        &port,
        info.ca_cert.as_deref().unwrap(),
        AUTHORIZER,
        token,
        &client_id,
        &topic,
    ]));
    crt.expect_line("READY").await;
    push(&tls, &topic, b"hello crt").await;
    assert_eq!(crt.expect_line("MESSAGE").await, format!("MESSAGE {topic} hello crt"));
    assert!(crt.wait().await.success());
    tls.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mqtt_js_and_the_iot_device_sdk_connect_with_a_token_through_our_authorizer_under_cargo_lambda_watch() {
    let mut options = LocalOptions::ephemeral();
    options.settings = settings();
    let (_watch, lambda) = authorizer_function(&options).await;
    let token = options.mint_token("alice", Duration::from_secs(600)).unwrap();
    let prefix = client_id_prefix("alice");
    mqtt_js(&lambda, &token, &prefix).await;
    aws_crt(&lambda, &token, &prefix).await;
}
