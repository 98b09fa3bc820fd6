//! Custom authorizers through real listeners: authorizers managed and
//! test-invoked with the AWS CLI on the local control plane, clients connecting
//! with a token (query string, headers, CONNECT user name, default authorizer)
//! to a function behind a Lambda Invoke API (a scripted stand-in on port 0 here;
//! our JWT authorizer under `cargo lambda watch` in `custom_auth_lambda.rs`),
//! every kind of refusal, refresh and expiry in seconds, and our JWT authorizer
//! in-process in `--auth jwt` mode keeping two users off each other's client IDs.

#![allow(
    clippy::expect_used,
    reason = "test code: a panic with its message is the failure report"
)]

mod common;

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use aws_lc_rs::encoding::AsDer;
use aws_lc_rs::rand::SystemRandom;
use aws_lc_rs::rsa::{KeyPair, KeySize};
use aws_lc_rs::signature::{KeyPair as _, RSA_PKCS1_SHA256};
use axum::extract::{Path, State};
use axum::http::StatusCode;
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use rumqttc::QoS;
use rumqttc::v5::mqttbytes::v5::ConnectReturnCode;
use serde_json::{Value, json};
use tokio::sync::mpsc;

use common::mqtt::{Client, Seen, WAIT};
use common::mqtt5::Raw5;
use common::tools::aws_iot;
use serverless_websockets_core::policy::authorizer::client_id_prefix;
use serverless_websockets_local::authorizers::{Authorizer, AuthorizerRequest};
use serverless_websockets_local::gateway::{DenyMode, GatewayOptions};
use serverless_websockets_local::stack::LocalStack;

const ARN: &str = "arn:aws:iot:us-east-1:000000000000";

/// What the stand-in functions answer: `allow` lets `tab-*` client IDs in and
/// use `rooms/${iot:ClientId}`; `strings` the same as JSON strings; `short`
/// asks to be refreshed after 1 s and to end the connection after 3 s; `flaky`
/// allows once, then refuses; `deny`, `invalid`, `crash` and `slow` fail as
/// their names say.
fn answer(function: &str, calls: usize) -> (StatusCode, Value) {
    let policy = json!({"Version": "2012-10-17", "Statement": [
        {"Effect": "Allow", "Action": "iot:Connect", "Resource": format!("{ARN}:client/tab-*")},
        {"Effect": "Allow", "Action": "iot:Subscribe", "Resource": format!("{ARN}:topicfilter/rooms/${{iot:ClientId}}")},
        {"Effect": "Allow", "Action": ["iot:Receive", "iot:Publish"], "Resource": format!("{ARN}:topic/rooms/${{iot:ClientId}}")},
    ]});
    let allow = |refresh: u32, disconnect: u32, documents: Value| {
        json!({"isAuthenticated": true, "principalId": "alice", "policyDocuments": documents,
               "refreshAfterInSeconds": refresh, "disconnectAfterInSeconds": disconnect})
    };
    let ok = |body| (StatusCode::OK, body);
    match function {
        "allow" | "slow" => ok(allow(300, 3600, json!([policy]))),
        "strings" => ok(allow(300, 3600, json!([policy.to_string()]))),
        "short" => ok(allow(1, 3, json!([policy]))),
        "flaky" if calls == 0 => ok(allow(1, 3600, json!([policy]))),
        "flaky" | "deny" => ok(json!({"isAuthenticated": false})),
        "invalid" => ok(
            json!({"isAuthenticated": true, "principalId": "user-1", "policyDocuments": [policy],
                               "refreshAfterInSeconds": 300, "disconnectAfterInSeconds": 3600}),
        ),
        _ => (
            StatusCode::INTERNAL_SERVER_ERROR,
            json!({"errorType": "Boom", "errorMessage": "the function crashed"}),
        ),
    }
}

/// The stand-in's record: each call's function and event.
type Calls = mpsc::UnboundedReceiver<(String, Value)>;

/// A Lambda Invoke API on port 0 answering as [`answer`] says.
async fn functions() -> (String, Calls) {
    let (tx, rx) = mpsc::unbounded_channel();
    let counts: Arc<std::sync::Mutex<std::collections::HashMap<String, Arc<AtomicUsize>>>> = Arc::default();
    type Shared = (
        mpsc::UnboundedSender<(String, Value)>,
        Arc<std::sync::Mutex<std::collections::HashMap<String, Arc<AtomicUsize>>>>,
    );
    async fn invoke(
        State((tx, counts)): State<Shared>,
        Path(function): Path<String>,
        body: axum::body::Bytes,
    ) -> (StatusCode, String) {
        let count = counts.lock().unwrap().entry(function.clone()).or_default().clone();
        let calls = count.fetch_add(1, Ordering::SeqCst);
        let _ = tx.send((function.clone(), serde_json::from_slice(&body).unwrap_or(Value::Null)));
        if function == "slow" {
            // Past IoT's 5 s: the gateway stops waiting first.
            tokio::time::sleep(Duration::from_secs(8)).await;
        }
        let (status, body) = answer(&function, calls);
        (status, body.to_string())
    }
    let router = axum::Router::new()
        .route(
            "/2015-03-31/functions/{function}/invocations",
            axum::routing::post(invoke),
        )
        .with_state((tx, counts));
    (format!("http://{}", common::serve(router).await), rx)
}

async fn stack(lambda: &str, gateway: GatewayOptions) -> LocalStack {
    let mut options = common::mqtt::quick_reconnects();
    options.lambda_endpoint = Some(lambda.to_owned());
    options.gateway = gateway;
    LocalStack::start(options).await.unwrap()
}

/// A 2048-bit signing key, its public half as PEM, and a signer.
struct SigningKey(KeyPair);

impl SigningKey {
    fn new() -> Self {
        Self(KeyPair::generate(KeySize::Rsa2048).unwrap())
    }

    fn pem(&self) -> String {
        let der = self.0.public_key().as_der().unwrap();
        let body = STANDARD.encode(der.as_ref());
        let lines: Vec<&str> = body
            .as_bytes()
            .chunks(64)
            .map(|c| std::str::from_utf8(c).unwrap())
            .collect();
        format!(
            "-----BEGIN PUBLIC KEY-----\n{}\n-----END PUBLIC KEY-----\n",
            lines.join("\n")
        )
    }

    /// Base64 of RSA-SHA256 over `token`, as `openssl dgst -sha256 -sign | base64` makes it.
    fn sign(&self, token: &str) -> String {
        let mut signature = vec![0; self.0.public_modulus_len()];
        self.0
            .sign(
                &RSA_PKCS1_SHA256,
                &SystemRandom::new(),
                token.as_bytes(),
                &mut signature,
            )
            .unwrap();
        STANDARD.encode(signature)
    }
}

/// Registers an authorizer for the stand-in `function`, signing on with `key`.
fn register(stack: &LocalStack, name: &str, function: &str, key: Option<&SigningKey>) {
    let mut request = AuthorizerRequest {
        authorizer_function_arn: Some(format!("arn:aws:lambda:us-east-1:000000000000:function:{function}")),
        token_key_name: Some("token".into()),
        ..AuthorizerRequest::default()
    };
    match key {
        Some(key) => request.token_signing_public_keys = Some([("k1".to_owned(), key.pem())].into()),
        None => request.signing_disabled = Some(true),
    }
    let authorizer = Authorizer::create(name, request, 0.0).unwrap();
    assert!(stack.gateway().authorizers.create(authorizer));
}

fn enc(value: &str) -> String {
    url::form_urlencoded::byte_serialize(value.as_bytes()).collect()
}

/// The gateway's URL with custom-auth parameters.
fn url(stack: &LocalStack, name: &str, token: &str, signature: Option<&str>) -> String {
    let mut url = format!(
        "{}/mqtt?x-amz-customauthorizer-name={}&token={}",
        stack.info().iot_endpoint,
        enc(name),
        enc(token)
    );
    if let Some(signature) = signature {
        url.push_str(&format!("&x-amz-customauthorizer-signature={}", enc(signature)));
    }
    url
}

/// The admin, subscribed to the presence events.
async fn presence(stack: &LocalStack) -> Client {
    let admin = common::mqtt5::admin(stack);
    let mut client = Client::connect(&common::mqtt5::url_for(stack, &admin), "watcher", None).await;
    client.subscribed("$aws/events/presence/#", QoS::AtLeastOnce).await;
    client
}

async fn next_event(client: &mut Client, kind: &str) -> Value {
    loop {
        let publish = client.next_publish().await;
        if publish.topic.starts_with(&format!("$aws/events/presence/{kind}/")) {
            return serde_json::from_slice(&publish.payload).unwrap();
        }
    }
}

async fn next_call(calls: &mut Calls) -> (String, Value) {
    tokio::time::timeout(WAIT, calls.recv())
        .await
        .expect("an invocation")
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_signed_token_in_the_query_string_connects_and_the_policies_govern_with_the_client_id_bound() {
    let (lambda, mut calls) = functions().await;
    let stack = stack(&lambda, common::mqtt::quick_gateway()).await;
    let key = SigningKey::new();
    register(&stack, "signed", "allow", Some(&key));
    register(&stack, "as-strings", "strings", Some(&key));
    let mut watcher = presence(&stack).await;
    let token = "opaque+token/with=chars";
    for name in ["signed", "as-strings"] {
        let mut client = Client::connect(&url(&stack, name, token, Some(&key.sign(token))), "tab-1", None).await;
        let (function, event) = next_call(&mut calls).await;
        assert!(function == "allow" || function == "strings");
        assert_eq!(event["token"], token);
        assert_eq!(event["signatureVerified"], true);
        assert_eq!(event["protocols"], json!(["http"]));
        let query = event["protocolData"]["http"]["queryString"].as_str().unwrap();
        assert!(query.starts_with("?x-amz-customauthorizer-name="), "{query}");
        assert!(event["connectionMetadata"]["id"].as_str().unwrap().len() == 36);
        assert!(event["protocolData"].get("mqtt").is_none());
        let connected = next_event(&mut watcher, "connected").await;
        assert_eq!(connected["principalIdentifier"], "alice");
        // ${iot:ClientId} is tab-1: its own room only.
        client.subscribed("rooms/tab-1", QoS::AtLeastOnce).await;
        client
            .client
            .publish("rooms/tab-1", QoS::AtLeastOnce, false, "hi")
            .await
            .unwrap();
        assert_eq!(client.next_publish().await.payload, "hi");
        match client.subscribe("rooms/tab-2", QoS::AtLeastOnce).await {
            Seen::Closed(_) => {}
            other => panic!("another room's subscription must close the connection: {other:?}"),
        }
    }
    stack.shutdown().await;
}

/// Opens a raw connection (the upgrade must answer 101), sends an MQTT 3.1.1
/// CONNECT and returns what came back: `None` when the gateway closed without
/// a CONNACK.
async fn attempt(url: &str, client_id: &str) -> Option<bytes::Bytes> {
    let mut raw = Raw5::open(url).await;
    let connect = rumqttc::mqttbytes::v4::Connect::new(client_id);
    let mut buffer = bytes::BytesMut::new();
    connect.write(&mut buffer).unwrap();
    raw.send_bytes(buffer.freeze()).await;
    raw.recv_bytes().await
}

/// CONNACK, session not present, return code 5 (not authorized).
const CONNACK_NOT_AUTHORIZED: [u8; 4] = [0x20, 0x02, 0x00, 0x05];

/// A stack whose authorizers use the stand-ins, signing on with `key`, one
/// of them INACTIVE (`off`); the admin watching presence events.
async fn refusing_stack(key: &SigningKey) -> (LocalStack, Calls, Client) {
    let (lambda, calls) = functions().await;
    let stack = stack(&lambda, common::mqtt::quick_gateway()).await;
    for function in ["allow", "deny", "invalid", "crash", "slow", "off"] {
        let target = if function == "off" { "allow" } else { function };
        register(&stack, function, target, Some(key));
    }
    let off = stack.gateway().authorizers.get("off").unwrap();
    let inactive = AuthorizerRequest {
        status: Some("INACTIVE".into()),
        ..AuthorizerRequest::default()
    };
    stack.gateway().authorizers.replace(off.update(inactive, 1.0).unwrap());
    let watcher = presence(&stack).await;
    (stack, calls, watcher)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_bad_signature_or_authorizer_is_refused_before_anything_is_invoked() {
    let key = SigningKey::new();
    let (stack, mut calls, mut watcher) = refusing_stack(&key).await;
    let token = "tok";
    let good = key.sign(token);
    let cases = [
        (
            "a signature by another key",
            url(&stack, "allow", token, Some(&SigningKey::new().sign(token))),
        ),
        ("no signature", url(&stack, "allow", token, None)),
        (
            "a signature of another token",
            url(&stack, "allow", "tok2", Some(&good)),
        ),
        ("an unknown authorizer", url(&stack, "nobody", token, Some(&good))),
        ("an inactive authorizer", url(&stack, "off", token, Some(&good))),
    ];
    for (case, url) in &cases {
        // The upgrade answers 101 (checked in `attempt`), then no CONNACK.
        assert!(attempt(url, "tab-1").await.is_none(), "{case}: closed without CONNACK");
        let failed = next_event(&mut watcher, "connect_failed").await;
        assert_eq!(failed["clientId"], "tab-1", "{case}");
    }
    assert!(calls.try_recv().is_err(), "nothing was invoked");
    stack.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_refusal_by_the_function_or_its_answer_closes_without_a_connack_and_publishes_connect_failed() {
    let key = SigningKey::new();
    let (stack, mut calls, mut watcher) = refusing_stack(&key).await;
    let good = key.sign("tok");
    let cases = [
        ("the function's refusal", "deny", "tab-1"),
        ("an invalid answer", "invalid", "tab-1"),
        ("a function error", "crash", "tab-1"),
        ("a function past the 5 s timeout", "slow", "tab-1"),
        ("a policy refusing the client ID", "allow", "other-1"),
    ];
    for (case, name, client_id) in cases {
        assert!(
            attempt(&url(&stack, name, "tok", Some(&good)), client_id)
                .await
                .is_none(),
            "{case}: closed without CONNACK"
        );
        assert_eq!(next_call(&mut calls).await.0, name, "{case}");
        let failed = next_event(&mut watcher, "connect_failed").await;
        assert_eq!(failed["clientId"], client_id, "{case}");
    }
    stack.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_connect_deny_reply_a_refusal_is_connack_5_and_mqtt_5_always_gets_0x87() {
    let (lambda, _calls) = functions().await;
    let gateway = GatewayOptions {
        connect_deny: DenyMode::Reply,
        ..common::mqtt::quick_gateway()
    };
    let stack = stack(&lambda, gateway).await;
    register(&stack, "deny", "deny", None);
    let url = url(&stack, "deny", "tok", None);
    assert_eq!(
        attempt(&url, "tab-1").await.as_deref(),
        Some(&CONNACK_NOT_AUTHORIZED[..])
    );
    // MQTT 5 refusals carry a reason code, as for any CONNECT IoT refuses.
    let mut raw = Raw5::open(&url).await;
    assert_eq!(raw.connect("tab-1").await.code, ConnectReturnCode::NotAuthorized);
    stack.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_function_is_asked_again_at_refresh_and_the_connection_ends_at_disconnect_after() {
    let (lambda, mut calls) = functions().await;
    let gateway = GatewayOptions {
        authorizer_min_interval: 1,
        ..common::mqtt::quick_gateway()
    };
    let stack = stack(&lambda, gateway).await;
    register(&stack, "short", "short", None);
    register(&stack, "flaky", "flaky", None);
    let mut watcher = presence(&stack).await;
    let mut client = Client::connect(&url(&stack, "short", "tok", None), "tab-1", None).await;
    next_call(&mut calls).await;
    // Refreshed every second, ended at three.
    assert_eq!(next_call(&mut calls).await.0, "short");
    let gone = next_event(&mut watcher, "disconnected").await;
    assert_eq!(gone["disconnectReason"], "CUSTOMAUTH_TTL_EXPIRATION");
    client.closed().await;
    // A refresh the function refuses ends the connection.
    let mut client = Client::connect(&url(&stack, "flaky", "tok", None), "tab-2", None).await;
    let gone = next_event(&mut watcher, "disconnected").await;
    assert_eq!(gone["clientId"], "tab-2");
    assert_eq!(gone["disconnectReason"], "AUTH_ERROR");
    client.closed().await;
    stack.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn upgrade_headers_the_connect_user_name_and_the_default_authorizer_carry_a_token_too() {
    let (lambda, mut calls) = functions().await;
    let stack = stack(&lambda, common::mqtt::quick_gateway()).await;
    register(&stack, "open", "allow", None);
    let plain = format!("{}/mqtt", stack.info().iot_endpoint);
    // Headers on the upgrade, as a native client may send them.
    let mut raw = Raw5::open_with(
        &plain,
        &[("x-amz-customauthorizer-name", "open"), ("token", "from-header")],
    )
    .await;
    assert!(matches!(raw.connect("tab-h").await.code, ConnectReturnCode::Success));
    assert_eq!(next_call(&mut calls).await.1["token"], "from-header");
    // The CONNECT user name, as the IoT Device SDKs send it; the event then has
    // the MQTT context, with the password in base64.
    let mut options = common::mqtt::options(&plain, "tab-u", None);
    options.set_credentials("app?x-amz-customauthorizer-name=open&token=from-username", "secret");
    let _user = Client::connected(options).await;
    let event = next_call(&mut calls).await.1;
    assert_eq!(event["token"], "from-username");
    assert_eq!(event["protocols"], json!(["http", "mqtt"]));
    let mqtt = &event["protocolData"]["mqtt"];
    assert_eq!(
        mqtt["username"],
        "app?x-amz-customauthorizer-name=open&token=from-username"
    );
    assert_eq!(mqtt["password"], STANDARD.encode("secret"));
    assert_eq!(mqtt["clientId"], "tab-u");
    // No name anywhere: refused until a default is set, then the default's.
    let query = format!("{plain}?token=to-the-default");
    assert!(attempt(&query, "tab-d").await.is_none());
    stack.gateway().authorizers.set_default(Some("open".into()));
    let _default = Client::connect(&query, "tab-d", None).await;
    assert_eq!(next_call(&mut calls).await.1["token"], "to-the-default");
    stack.shutdown().await;
}

const FUNCTION: &str = "arn:aws:lambda:us-east-1:000000000000:function:allow";

/// A stack with the authorizer `chat` created with the AWS CLI (signing on, `key`).
async fn cli_stack(key: &SigningKey) -> (LocalStack, Calls) {
    let (lambda, calls) = functions().await;
    let stack = stack(&lambda, common::mqtt::quick_gateway()).await;
    let keys = format!("k1={}", key.pem());
    let create = [
        "create-authorizer",
        "--authorizer-name",
        "chat",
        "--authorizer-function-arn",
        FUNCTION,
        "--token-key-name",
        "token",
        "--token-signing-public-keys",
        &keys,
    ];
    let (ok, created, stderr) = aws_iot(&stack, &create);
    assert!(ok, "{stderr}");
    assert_eq!(created["authorizerArn"], format!("{ARN}:authorizer/chat"));
    let (ok, _, stderr) = aws_iot(&stack, &create);
    assert!(!ok && stderr.contains("ResourceAlreadyExistsException"), "{stderr}");
    (stack, calls)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_aws_cli_creates_describes_lists_and_validates_authorizers() {
    let key = SigningKey::new();
    let (stack, _calls) = cli_stack(&key).await;
    // Signing on needs keys; names follow IoT's pattern.
    let (ok, _, stderr) = aws_iot(
        &stack,
        &[
            "create-authorizer",
            "--authorizer-name",
            "nokeys",
            "--authorizer-function-arn",
            FUNCTION,
        ],
    );
    assert!(
        !ok && stderr.contains("tokenSigningPublicKeys are required"),
        "{stderr}"
    );
    let bad_name = [
        "create-authorizer",
        "--authorizer-name",
        "bad name",
        "--authorizer-function-arn",
        FUNCTION,
        "--signing-disabled",
    ];
    let (ok, _, stderr) = aws_iot(&stack, &bad_name);
    assert!(!ok && stderr.contains("InvalidRequestException"), "{stderr}");
    let (ok, described, _) = aws_iot(&stack, &["describe-authorizer", "--authorizer-name", "chat"]);
    assert!(ok);
    let description = &described["authorizerDescription"];
    assert_eq!(description["status"], "ACTIVE");
    assert_eq!(description["signingDisabled"], false);
    assert_eq!(description["tokenKeyName"], "token");
    assert!(
        description["tokenSigningPublicKeys"]["k1"]
            .as_str()
            .unwrap()
            .contains("BEGIN PUBLIC KEY")
    );
    let (_, listed, _) = aws_iot(&stack, &["list-authorizers"]);
    assert_eq!(listed["authorizers"][0]["authorizerName"], "chat");
    assert!(
        aws_iot(
            &stack,
            &["update-authorizer", "--authorizer-name", "chat", "--status", "INACTIVE"]
        )
        .0
    );
    let (_, listed, _) = aws_iot(&stack, &["list-authorizers", "--status", "ACTIVE"]);
    assert_eq!(listed["authorizers"], json!([]));
    assert!(aws_iot(&stack, &["delete-authorizer", "--authorizer-name", "chat"]).0);
    let (ok, _, stderr) = aws_iot(&stack, &["describe-authorizer", "--authorizer-name", "chat"]);
    assert!(!ok && stderr.contains("ResourceNotFoundException"), "{stderr}");
    stack.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn test_invoke_authorizer_checks_the_signature_invokes_the_function_and_checks_its_answer() {
    let key = SigningKey::new();
    let (stack, mut calls) = cli_stack(&key).await;
    let signature = key.sign("tok");
    let test = |token: &'static str| {
        [
            "test-invoke-authorizer",
            "--authorizer-name",
            "chat",
            "--token",
            token,
            "--token-signature",
        ]
    };
    let with = |args: [&'static str; 6], signature: &str| {
        let mut args: Vec<String> = args.iter().map(|a| (*a).to_owned()).collect();
        args.push(signature.to_owned());
        args
    };
    let run = |args: Vec<String>| aws_iot(&stack, &args.iter().map(String::as_str).collect::<Vec<_>>());
    let (ok, tested, stderr) = run(with(test("tok"), &signature));
    assert!(ok, "{stderr}");
    assert_eq!(tested["isAuthenticated"], true);
    assert_eq!(tested["principalId"], "alice");
    assert!(tested["policyDocuments"][0].as_str().unwrap().contains("iot:Connect"));
    assert_eq!(tested["disconnectAfterInSeconds"], 3600);
    assert_eq!(next_call(&mut calls).await.1["signatureVerified"], true);
    let (ok, _, stderr) = run(with(test("tok2"), &signature));
    assert!(!ok && stderr.contains("does not verify"), "{stderr}");
    let invalid = "arn:aws:lambda:us-east-1:000000000000:function:invalid";
    assert!(
        aws_iot(
            &stack,
            &[
                "update-authorizer",
                "--authorizer-name",
                "chat",
                "--authorizer-function-arn",
                invalid
            ]
        )
        .0
    );
    let (ok, _, stderr) = run(with(test("tok"), &signature));
    assert!(
        !ok && stderr.contains("InvalidResponseException") && stderr.contains("principalId"),
        "{stderr}"
    );
    stack.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_default_authorizer_is_set_described_kept_from_deletion_and_cleared() {
    let key = SigningKey::new();
    let (stack, _calls) = cli_stack(&key).await;
    assert!(aws_iot(&stack, &["set-default-authorizer", "--authorizer-name", "chat"]).0);
    let (_, default, _) = aws_iot(&stack, &["describe-default-authorizer"]);
    assert_eq!(default["authorizerDescription"]["authorizerName"], "chat");
    let (ok, _, stderr) = aws_iot(&stack, &["delete-authorizer", "--authorizer-name", "chat"]);
    assert!(!ok && stderr.contains("DeleteConflictException"), "{stderr}");
    assert!(aws_iot(&stack, &["clear-default-authorizer"]).0);
    let (ok, _, stderr) = aws_iot(&stack, &["describe-default-authorizer"]);
    assert!(!ok && stderr.contains("ResourceNotFoundException"), "{stderr}");
    assert!(aws_iot(&stack, &["delete-authorizer", "--authorizer-name", "chat"]).0);
    stack.shutdown().await;
}

/// A token the stack would accept but that expired ten minutes ago, past the
/// verifier's 30 s leeway.
fn expired_token(stack: &LocalStack, sub: &str) -> String {
    let jwt = stack.info().jwt.clone().unwrap();
    let long_ago = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs()
        - 600;
    jsonwebtoken::encode(
        &jsonwebtoken::Header::default(),
        &json!({"sub": sub, "iss": jwt.issuer, "aud": jwt.audience, "exp": long_ago}),
        &jsonwebtoken::EncodingKey::from_secret(jwt.hs256_secret.as_bytes()),
    )
    .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn our_jwt_authorizer_in_process_keeps_two_users_off_each_others_client_ids() {
    let mut options = common::mqtt::quick_reconnects();
    options.settings = vec![
        ("AUTH_MODE".into(), "jwt".into()),
        ("SUBSCRIBE_TOPICS".into(), "allowed/{clientId},users/{sub}".into()),
        ("PUBLISH_TOPICS".into(), "allowed/{clientId}".into()),
    ];
    let stack = LocalStack::start(options.clone()).await.unwrap();
    let authorizer = stack
        .info()
        .authorizer
        .clone()
        .expect("jwt mode registers the authorizer");
    assert_eq!(authorizer.token_key_name, "token");
    let connect_url = |token: &str| {
        format!(
            "{}/mqtt?x-amz-customauthorizer-name={}&token={token}",
            stack.info().iot_endpoint,
            authorizer.name
        )
    };
    let alice = options.mint_token("alice", Duration::from_secs(600)).unwrap();
    let bob = options.mint_token("bob", Duration::from_secs(600)).unwrap();
    let alice_id = format!("{}tab1", client_id_prefix("alice"));
    let bob_id = format!("{}tab1", client_id_prefix("bob"));
    let mut client = Client::connect(&connect_url(&alice), &alice_id, None).await;
    client
        .subscribed(&format!("allowed/{alice_id}"), QoS::AtLeastOnce)
        .await;
    client.subscribed("users/alice", QoS::AtLeastOnce).await;
    // Bob's token can neither take over Alice's client ID nor use one of its own
    // outside his prefix; an expired or forged token gets nothing.
    let expired = expired_token(&stack, "alice");
    let refused = [
        (connect_url(&bob), alice_id.clone()),
        (connect_url(&bob), "anything".to_owned()),
        (connect_url(&alice), "alice".to_owned()),
        (connect_url(&expired), alice_id.clone()),
        (connect_url("not.a.jwt"), alice_id.clone()),
    ];
    for (url, client_id) in &refused {
        assert!(attempt(url, client_id).await.is_none(), "{client_id} with {url}");
    }
    // Alice is still connected: no takeover happened.
    client
        .client
        .publish(format!("allowed/{alice_id}"), QoS::AtLeastOnce, false, "still here")
        .await
        .unwrap();
    assert_eq!(client.next_publish().await.payload, "still here");
    let mut bobs = Client::connect(&connect_url(&bob), &bob_id, None).await;
    match bobs.subscribe(&format!("allowed/{alice_id}"), QoS::AtLeastOnce).await {
        Seen::Closed(_) => {}
        other => panic!("Bob must not subscribe to Alice's topic: {other:?}"),
    }
    stack.shutdown().await;
}
