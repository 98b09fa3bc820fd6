//! The local rules engine through real listeners: rules managed with the AWS CLI
//! against the stack's IoT control plane, client messages, Basic Ingest, wills'
//! and lifecycle events reaching a function through the Lambda Invoke API (a
//! recording stand-in on port 0 here; `cargo lambda watch` in the example's test),
//! error actions, and a republish loop that stops.

#![allow(
    clippy::expect_used,
    reason = "test code: a panic with its message is the failure report"
)]

mod common;

use aws_credential_types::Credentials;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use rumqttc::QoS;
use serde_json::{Value, json};
use tokio::sync::mpsc;

use common::mqtt::{Client, Seen, https_publish, vend};
use common::tools::aws_iot;
use serverless_websockets_local::stack::{LocalOptions, LocalStack};

const REGION: &str = "us-east-1";

/// One call the stand-in Lambda Invoke API received.
#[derive(Debug)]
struct Invocation {
    function: String,
    invocation_type: String,
    authorization: String,
    event: Value,
}

/// A Lambda Invoke API on port 0 that records every call; the function `failing`
/// fails as `cargo lambda watch` reports it (HTTP 500 with the error body), and
/// `hanging` never returns.
async fn lambda_endpoint() -> (String, mpsc::UnboundedReceiver<Invocation>) {
    let (tx, rx) = mpsc::unbounded_channel();
    async fn invoke(
        State(tx): State<mpsc::UnboundedSender<Invocation>>,
        Path(function): Path<String>,
        headers: HeaderMap,
        body: axum::body::Bytes,
    ) -> (StatusCode, String) {
        let header = |name: &str| {
            headers
                .get(name)
                .map(|v| v.to_str().unwrap().to_owned())
                .unwrap_or_default()
        };
        let (failing, hanging) = (function == "failing", function == "hanging");
        let _ = tx.send(Invocation {
            invocation_type: header("x-amz-invocation-type"),
            authorization: header("authorization"),
            event: serde_json::from_slice(&body).unwrap_or(Value::Null),
            function,
        });
        if hanging {
            std::future::pending::<()>().await;
        }
        if failing {
            let error = json!({"errorType": "&str", "errorMessage": "boom"});
            return (StatusCode::INTERNAL_SERVER_ERROR, error.to_string());
        }
        (StatusCode::ACCEPTED, String::new())
    }
    let router = axum::Router::new()
        .route(
            "/2015-03-31/functions/{function}/invocations",
            axum::routing::post(invoke),
        )
        .with_state(tx);
    (format!("http://{}", common::serve(router).await), rx)
}

async fn next_invocation(invocations: &mut mpsc::UnboundedReceiver<Invocation>) -> Invocation {
    tokio::time::timeout(common::mqtt::WAIT, invocations.recv())
        .await
        .expect("an invocation within the wait")
        .expect("the endpoint is up")
}

/// A stack whose clients may publish to `from/{clientId}` and read the shared
/// topics the tests use, with Lambda actions going to `lambda` and `rules` created.
async fn stack(lambda: &str, rules: Value) -> (LocalStack, tempfile::TempDir) {
    let (options, dir) = options(lambda, rules);
    (LocalStack::start(options).await.unwrap(), dir)
}

/// The options of [`stack`], and the directory holding its rules file.
fn options(lambda: &str, rules: Value) -> (LocalOptions, tempfile::TempDir) {
    let dir = tempfile::tempdir().unwrap();
    let rules_file = dir.path().join("rules.json");
    std::fs::write(&rules_file, rules.to_string()).unwrap();
    let mut options = LocalOptions::ephemeral();
    options.lambda_endpoint = Some(lambda.to_owned());
    options.rules_file = Some(rules_file);
    options.settings = vec![
        ("PUBLISH_TOPICS".into(), "from/{clientId}".into()),
        (
            "SUBSCRIBE_TOPICS".into(),
            "allowed/{clientId},loop/+,errors/rules".into(),
        ),
    ];
    (options, dir)
}

fn rule(name: &str, sql: &str, actions: Value, error_action: Option<Value>) -> Value {
    let mut payload = json!({"sql": sql, "awsIotSqlVersion": "2016-03-23", "actions": actions});
    if let Some(error_action) = error_action {
        payload["errorAction"] = error_action;
    }
    json!({"ruleName": name, "topicRulePayload": payload})
}

fn lambda(function: &str) -> Value {
    json!({"lambda": {"functionArn": format!("arn:aws:lambda:us-east-1:000000000000:function:{function}")}})
}

fn republish(topic: &str) -> Value {
    json!({"republish": {"topic": topic, "roleArn": "arn:aws:iam::000000000000:role/republish", "qos": 1}})
}

fn admin(stack: &LocalStack) -> Credentials {
    let a = &stack.info().admin;
    Credentials::new(&a.access_key_id, &a.secret_access_key, None, None, "admin")
}

// The AWS CLI runs as a blocking child process: the stack needs other threads.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_aws_cli_manages_topic_rules_on_the_local_control_plane_as_on_aws() {
    let (endpoint, _invocations) = lambda_endpoint().await;
    let (stack, _dir) = stack(&endpoint, json!([])).await;
    let payload =
        json!({"sql": "SELECT * FROM 'from/+'", "awsIotSqlVersion": "2016-03-23", "actions": [lambda("echo")]});
    let create = [
        "create-topic-rule",
        "--rule-name",
        "echo_rule",
        "--topic-rule-payload",
        &payload.to_string(),
    ];
    assert!(aws_iot(&stack, &create).0);
    let (ok, again, stderr) = aws_iot(&stack, &create);
    assert!(
        !ok && stderr.contains("ResourceAlreadyExistsException"),
        "{again} {stderr}"
    );

    let (ok, got, _) = aws_iot(&stack, &["get-topic-rule", "--rule-name", "echo_rule"]);
    assert!(ok);
    assert_eq!(got["ruleArn"], "arn:aws:iot:us-east-1:000000000000:rule/echo_rule");
    assert_eq!(got["rule"]["sql"], "SELECT * FROM 'from/+'");
    assert_eq!(got["rule"]["ruleDisabled"], false);

    assert!(aws_iot(&stack, &["disable-topic-rule", "--rule-name", "echo_rule"]).0);
    let (_, listed, _) = aws_iot(&stack, &["list-topic-rules"]);
    assert_eq!(listed["rules"][0]["ruleName"], "echo_rule");
    assert_eq!(listed["rules"][0]["topicPattern"], "from/+");
    assert_eq!(listed["rules"][0]["ruleDisabled"], true);

    let replaced = json!({"sql": "SELECT * FROM 'other/+'", "actions": []}).to_string();
    assert!(
        aws_iot(
            &stack,
            &[
                "replace-topic-rule",
                "--rule-name",
                "echo_rule",
                "--topic-rule-payload",
                &replaced
            ]
        )
        .0
    );
    let (_, got, _) = aws_iot(&stack, &["get-topic-rule", "--rule-name", "echo_rule"]);
    assert_eq!(got["rule"]["sql"], "SELECT * FROM 'other/+'");

    assert!(aws_iot(&stack, &["delete-topic-rule", "--rule-name", "echo_rule"]).0);
    let (ok, _, stderr) = aws_iot(&stack, &["get-topic-rule", "--rule-name", "echo_rule"]);
    assert!(!ok && stderr.contains("UnauthorizedException"), "{stderr}");
    stack.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_rules_are_refused_with_the_errors_aws_gives() {
    let (endpoint, _invocations) = lambda_endpoint().await;
    let (stack, _dir) = stack(&endpoint, json!([])).await;
    let create = |name: &str, payload: Value| {
        let payload = payload.to_string();
        aws_iot(
            &stack,
            &[
                "create-topic-rule",
                "--rule-name",
                name,
                "--topic-rule-payload",
                &payload,
            ],
        )
    };
    let (ok, _, stderr) = create("bad_sql", json!({"sql": "SELEKT * FROM 'a'", "actions": []}));
    assert!(!ok && stderr.contains("SqlParseException"), "{stderr}");
    let (ok, _, stderr) = create("has-hyphen", json!({"sql": "SELECT * FROM 'a'", "actions": []}));
    assert!(!ok && stderr.contains("InvalidRequestException"), "{stderr}");
    let sqs =
        json!({"sqs": {"queueUrl": "https://sqs.us-east-1.amazonaws.com/0/q", "roleArn": "arn:aws:iam::0:role/r"}});
    let (ok, _, stderr) = create("to_sqs", json!({"sql": "SELECT * FROM 'a'", "actions": [sqs]}));
    assert!(!ok && stderr.contains("not emulated"), "{stderr}");
    stack.shutdown().await;
}

#[tokio::test]
async fn a_client_message_reaches_the_function_with_its_sender_taken_from_the_topic() {
    let (endpoint, mut invocations) = lambda_endpoint().await;
    let sql = "SELECT text, topic(2) AS sender, clientid() AS client, principal() AS principal FROM 'from/+' WHERE kind = 'chat'";
    let (stack, _dir) = stack(&endpoint, json!([rule("chat", sql, json!([lambda("echo")]), None)])).await;
    let vended = vend(&stack.info().api_url).await;
    let client = Client::connect(&vended.url, &vended.client_id, None).await;
    let topic = format!("from/{}", vended.client_id);
    // Not a chat message: WHERE is false, no invocation.
    let other = json!({"kind": "typing", "text": "…"}).to_string();
    client
        .client
        .publish(&topic, QoS::AtLeastOnce, false, other)
        .await
        .unwrap();
    let chat = json!({"kind": "chat", "text": "hi", "sender": "someone-else"}).to_string();
    client
        .client
        .publish(&topic, QoS::AtLeastOnce, false, chat)
        .await
        .unwrap();

    let invocation = next_invocation(&mut invocations).await;
    assert_eq!(invocation.function, "echo");
    assert_eq!(invocation.invocation_type, "Event");
    assert!(
        invocation
            .authorization
            .starts_with("AWS4-HMAC-SHA256 Credential=AKIALOCALADMIN000000/")
            && invocation.authorization.contains("/us-east-1/lambda/aws4_request"),
        "{}",
        invocation.authorization
    );
    assert_eq!(invocation.event["text"], "hi");
    assert_eq!(
        invocation.event["sender"],
        vended.client_id.as_str(),
        "the topic, not the payload's claim"
    );
    assert_eq!(invocation.event["client"], vended.client_id.as_str());
    assert!(invocation.event["principal"].as_str().unwrap().starts_with("AROA"));
    assert!(
        invocations.try_recv().is_err(),
        "one invocation: the typing message matched no WHERE"
    );
    stack.shutdown().await;
}

/// A vended client, subscribed to `errors/rules`, publishes `{"n":1}` to
/// `from/<its client ID>`; returns the error action's message and the client ID.
async fn error_for_a_client_message(stack: &LocalStack) -> (Value, String) {
    let vended = vend(&stack.info().api_url).await;
    let mut client = Client::connect(&vended.url, &vended.client_id, None).await;
    client.subscribed("errors/rules", QoS::AtLeastOnce).await;
    let topic = format!("from/{}", vended.client_id);
    client
        .client
        .publish(&topic, QoS::AtMostOnce, false, "{\"n\":1}")
        .await
        .unwrap();
    let error = serde_json::from_slice(&client.next_publish().await.payload).unwrap();
    (error, vended.client_id)
}

#[tokio::test]
async fn a_failing_function_sends_iots_error_message_to_the_error_action() {
    let (endpoint, _invocations) = lambda_endpoint().await;
    let failing = rule(
        "fails",
        "SELECT * FROM 'from/+'",
        json!([lambda("failing")]),
        Some(republish("errors/rules")),
    );
    let (stack, _dir) = stack(&endpoint, json!([failing])).await;
    let (error, client_id) = error_for_a_client_message(&stack).await;
    assert_eq!(error["ruleName"], "fails");
    assert_eq!(error["topic"], format!("from/{client_id}"));
    assert_eq!(error["clientId"], client_id.as_str());
    assert_eq!(error["base64OriginalPayload"], "eyJuIjoxfQ==");
    assert_eq!(error["failures"][0]["failedAction"], "LambdaAction");
    assert!(
        error["failures"][0]["errorMessage"].as_str().unwrap().contains("boom"),
        "{error}"
    );
    stack.shutdown().await;
}

#[tokio::test]
async fn a_function_that_does_not_answer_within_the_lambda_timeout_sends_the_message_to_the_error_action() {
    let (endpoint, mut invocations) = lambda_endpoint().await;
    let hanging = rule(
        "hangs",
        "SELECT * FROM 'from/+'",
        json!([lambda("hanging")]),
        Some(republish("errors/rules")),
    );
    let (mut options, _dir) = options(&endpoint, json!([hanging]));
    options.lambda_timeout = std::time::Duration::from_secs(1);
    let stack = LocalStack::start(options).await.unwrap();
    let (error, _) = error_for_a_client_message(&stack).await;
    assert_eq!(next_invocation(&mut invocations).await.function, "hanging");
    assert_eq!(error["ruleName"], "hangs");
    assert_eq!(error["base64OriginalPayload"], "eyJuIjoxfQ==");
    assert_eq!(
        error["failures"][0]["errorMessage"], "the function did not answer within 1000 ms",
        "{error}"
    );
    stack.shutdown().await;
}

#[test]
fn lambda_actions_wait_for_a_function_as_long_as_lambda_lets_one_run_by_default() {
    assert_eq!(
        LocalOptions::ephemeral().lambda_timeout,
        std::time::Duration::from_secs(900),
        "a rebuild under cargo lambda watch must not lose the message that started it"
    );
}

#[tokio::test]
async fn a_rule_that_republishes_into_its_own_topic_stops_after_eight_hops() {
    let (endpoint, _invocations) = lambda_endpoint().await;
    let looping = rule(
        "loops",
        "SELECT * FROM 'loop/+'",
        json!([republish("loop/${topic(2)}")]),
        None,
    );
    let (stack, _dir) = stack(&endpoint, json!([looping])).await;
    let vended = vend(&stack.info().api_url).await;
    let mut client = Client::connect(&vended.url, &vended.client_id, None).await;
    client.subscribed("loop/+", QoS::AtLeastOnce).await;
    let info = stack.info();
    let admin = admin(&stack);
    let publish = |topic: &'static str| https_publish(&info.iot_data_endpoint, REGION, &admin, topic, "", b"x");
    assert_eq!(publish("loop/a").await.status(), 200);
    // Each publish runs its whole republish chain before it is answered, so a
    // second one marks the end of the first one's deliveries.
    assert_eq!(publish("loop/end").await.status(), 200);
    let mut deliveries = 0;
    loop {
        let message = client.next_publish().await;
        if message.topic == "loop/end" {
            break;
        }
        deliveries += 1;
    }
    // The message itself, then one per republish up to the guard's depth.
    assert_eq!(deliveries, 1 + 8);
    stack.shutdown().await;
}

#[tokio::test]
async fn basic_ingest_reaches_its_rule_only_with_the_topic_after_the_prefix() {
    let (endpoint, mut invocations) = lambda_endpoint().await;
    let ingest = rule(
        "ingest",
        "SELECT topic() AS t, n FROM 'anything/#'",
        json!([lambda("ingested")]),
        None,
    );
    let other = rule("other", "SELECT * FROM 'from/#'", json!([lambda("other")]), None);
    let (stack, _dir) = stack(&endpoint, json!([ingest, other])).await;
    let info = stack.info();
    let response = https_publish(
        &info.iot_data_endpoint,
        REGION,
        &admin(&stack),
        "$aws/rules/ingest/from/device",
        "",
        b"{\"n\":7}",
    )
    .await;
    assert_eq!(response.status(), 200);
    let invocation = next_invocation(&mut invocations).await;
    assert_eq!(
        invocation.function, "ingested",
        "the named rule only, whatever its FROM"
    );
    assert_eq!(invocation.event, json!({"t": "from/device", "n": 7}));
    assert!(invocations.try_recv().is_err(), "no other rule saw it");
    stack.shutdown().await;
}

#[tokio::test]
async fn connections_and_refused_connects_reach_a_rule_on_the_lifecycle_topics() {
    let (endpoint, mut invocations) = lambda_endpoint().await;
    let events = rule(
        "presence",
        "SELECT eventType, clientId, connectFailureReason FROM '$aws/events/presence/+/+'",
        json!([lambda("connections")]),
        None,
    );
    let (stack, _dir) = stack(&endpoint, json!([events])).await;
    let vended = vend(&stack.info().api_url).await;
    let client = Client::connect(&vended.url, &vended.client_id, None).await;
    let connected = next_invocation(&mut invocations).await;
    assert_eq!(
        connected.event,
        json!({"eventType": "connected", "clientId": vended.client_id})
    );

    // The same credentials under another client ID: refused, and a connect_failed event.
    let mut refused = Client::start(common::mqtt::options(&vended.url, "someone-else", None));
    assert!(matches!(refused.next().await, Seen::Closed(_)));
    let failed = next_invocation(&mut invocations).await;
    assert_eq!(
        failed.event,
        json!({"eventType": "connect_failed", "clientId": "someone-else", "connectFailureReason": "AUTHORIZATION_FAILED"})
    );
    client.client.disconnect().await.unwrap();
    let disconnected = next_invocation(&mut invocations).await;
    assert_eq!(disconnected.event["eventType"], "disconnected");
    stack.shutdown().await;
}

#[tokio::test]
async fn the_ready_file_names_the_control_plane_and_no_lambda_endpoint_unless_given() {
    let stack = LocalStack::start(LocalOptions::ephemeral()).await.unwrap();
    let info = stack.info();
    assert_eq!(info.lambda_endpoint, None);
    assert_eq!(info.iot_control_endpoint, info.iot_data_endpoint);
    stack.shutdown().await;
}
