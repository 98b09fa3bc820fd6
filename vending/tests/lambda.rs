//! The deployed binary, `serverless-websockets-vending`, as an AWS Lambda
//! function: a fake Runtime API hands it an API Gateway HTTP API (payload 2.0)
//! event, a recording STS reached through `AWS_ENDPOINT_URL_STS` issues the
//! credentials.

#[path = "fakes/lambda_runtime.rs"]
mod lambda_runtime;
#[path = "../../tests/common/sts.rs"]
#[allow(dead_code)]
mod sts;

/// Serves `router` on a fresh loopback port: where the fakes listen.
async fn serve(router: axum::Router) -> std::net::SocketAddr {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, router).await.unwrap() });
    addr
}

use std::process::{Command, Stdio};

use lambda_runtime::{FakeRuntime, Posted};
use sts::{FakeSts, Reply};

const EVENT: &str = include_str!("data/apigw-v2-post-credentials.json");

/// IAM as the function sees it when the client role has no ban policy: every
/// request (recorded, body as sent) answered `404 NoSuchEntity`.
async fn fake_iam() -> (String, std::sync::Arc<std::sync::Mutex<Vec<String>>>) {
    let seen = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
    let record = seen.clone();
    let router = axum::Router::new().fallback(move |body: String| {
        record.lock().unwrap().push(body);
        async {
            (
                axum::http::StatusCode::NOT_FOUND,
                "<ErrorResponse><Error><Type>Sender</Type><Code>NoSuchEntity</Code><Message>The role policy with name bans cannot be found.</Message></Error><RequestId>1</RequestId></ErrorResponse>",
            )
        }
    });
    (format!("http://{}", serve(router).await), seen)
}

fn lambda_command(runtime: &FakeRuntime, sts_url: &str, iam_url: &str) -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_serverless-websockets-vending"));
    command
        .env_clear()
        .env("AWS_LAMBDA_RUNTIME_API", &runtime.address)
        .env("AWS_LAMBDA_FUNCTION_NAME", "vend")
        .env("AWS_LAMBDA_FUNCTION_MEMORY_SIZE", "128")
        .env("AWS_LAMBDA_FUNCTION_VERSION", "$LATEST")
        .env("AWS_LAMBDA_LOG_GROUP_NAME", "/aws/lambda/vend")
        .env("AWS_LAMBDA_LOG_STREAM_NAME", "2026/11/22/[$LATEST]0000")
        .env("AWS_REGION", "us-east-1")
        .env("AWS_ACCESS_KEY_ID", "ASIALAMBDAEXECROLE01")
        .env("AWS_SECRET_ACCESS_KEY", "lambda-exec-secret")
        .env("AWS_SESSION_TOKEN", "lambda-exec-token")
        .env("AWS_ENDPOINT_URL_STS", sts_url)
        .env("AWS_ENDPOINT_URL_IAM", iam_url)
        .env("CLIENT_ROLE_ARN", "arn:aws:iam::123456789012:role/ClientRole")
        .env("IOT_ENDPOINT", "abc-ats.iot.us-east-1.amazonaws.com")
        .env("AUTH_MODE", "none")
        .env("CREDENTIAL_DURATION_SECONDS", "3600")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    command
}

/// The function's process, killed when the test ends.
struct Killed(Option<std::process::Child>);

impl Killed {
    fn spawn(mut command: Command) -> Self {
        Self(Some(command.spawn().unwrap()))
    }

    /// Stops the function and returns everything it wrote.
    fn logs(mut self) -> String {
        let mut child = self.0.take().unwrap();
        let _ = child.kill();
        let output = child.wait_with_output().unwrap();
        format!(
            "{}{}",
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        )
    }
}

impl Drop for Killed {
    fn drop(&mut self) {
        if let Some(child) = self.0.as_mut() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

#[tokio::test]
async fn an_api_gateway_v2_event_gets_credentials_and_logs_no_secret() {
    let sts = FakeSts::start().await;
    let mut runtime = FakeRuntime::start().await;
    runtime.push_event("invocation-1", EVENT);
    let (iam, iam_requests) = fake_iam().await;
    let child = Killed::spawn(lambda_command(&runtime, &sts.url, &iam));

    let Posted::Response { request_id, body } = runtime.posted().await else {
        panic!("the function reported an error")
    };
    assert_eq!(request_id, "invocation-1");
    assert_eq!(body["statusCode"], 200);
    assert_eq!(body["headers"]["cache-control"], "no-store");
    assert_eq!(
        body["headers"]["x-request-id"], "Xk3Jq1ABCDEFG_w=",
        "API Gateway's request ID is reused"
    );
    let vended: serde_json::Value = serde_json::from_str(body["body"].as_str().unwrap()).unwrap();
    assert_eq!(vended["credentials"]["secretAccessKey"], sts::SECRET_ACCESS_KEY);
    assert!(
        vended["url"]
            .as_str()
            .unwrap()
            .starts_with("wss://abc-ats.iot.us-east-1.amazonaws.com/mqtt?")
    );

    let asked = iam_requests.lock().unwrap().clone();
    assert!(
        matches!(asked.as_slice(), [one] if one.contains("Action=GetRolePolicy") && one.contains("RoleName=ClientRole") && one.contains("PolicyName=bans")),
        "the ban policy is read before credentials are issued: {asked:?}"
    );
    let requests = sts.requests();
    assert_eq!(requests.len(), 1);
    assert_eq!(
        requests[0].form["RoleSessionName"],
        vended["clientId"].as_str().unwrap()
    );
    assert_eq!(requests[0].form["DurationSeconds"], "3600");
    assert!(
        requests[0]
            .authorization
            .starts_with("AWS4-HMAC-SHA256 Credential=ASIALAMBDAEXECROLE01/")
    );

    let logs = child.logs();
    assert!(logs.contains("issued credentials"), "{logs}");
    assert!(
        logs.contains("Xk3Jq1ABCDEFG_w="),
        "log lines carry the request ID: {logs}"
    );
    for secret in [
        sts::SECRET_ACCESS_KEY,
        sts::SESSION_TOKEN,
        "lambda-exec-secret",
        "lambda-exec-token",
    ] {
        assert!(!logs.contains(secret), "a secret reached the logs: {logs}");
    }
}

#[tokio::test]
async fn an_sts_fault_is_an_http_response_not_a_lambda_error() {
    let sts = FakeSts::start().await;
    // The SDK retries a 500 up to three attempts in all.
    sts.then((0..3).map(|_| Reply::Error {
        status: 500,
        code: "InternalFailure",
        message: "boom",
    }));
    let mut runtime = FakeRuntime::start().await;
    runtime.push_event("invocation-2", EVENT);
    let (iam, _) = fake_iam().await;
    let _child = Killed::spawn(lambda_command(&runtime, &sts.url, &iam));

    match runtime.posted().await {
        Posted::Response { body, .. } => {
            assert_eq!(body["statusCode"], 502);
            let error: serde_json::Value = serde_json::from_str(body["body"].as_str().unwrap()).unwrap();
            assert_eq!(error["error"]["code"], "UpstreamUnavailable");
        }
        Posted::Error { path, body } => panic!("expected an HTTP 502, got a runtime error at {path}: {body}"),
    }
}

#[tokio::test]
async fn a_missing_setting_stops_start_up_naming_the_variable() {
    let runtime = FakeRuntime::start().await;
    let output = lambda_command(&runtime, "http://127.0.0.1:9", "http://127.0.0.1:9")
        .env_remove("CLIENT_ROLE_ARN")
        .output()
        .unwrap();
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("CLIENT_ROLE_ARN is not set"), "{stderr}");
}

/// The function's JSON log lines (Lambda mode logs one JSON object per line).
fn json_lines(logs: &str) -> Vec<serde_json::Value> {
    logs.lines()
        .filter_map(|line| serde_json::from_str::<serde_json::Value>(line).ok())
        .collect()
}

/// Whether a CloudWatch Logs JSON filter pattern of the template's form
/// `{ $.a.b = "value" }` (`"*"`: any value) matches `line`.
fn filter_matches(pattern: &str, line: &serde_json::Value) -> bool {
    let inner = pattern
        .strip_prefix("{ $.")
        .and_then(|p| p.strip_suffix(" }"))
        .unwrap_or_else(|| panic!("not a pattern of the form {{ $.path = \"value\" }}: {pattern}"));
    let (path, wanted) = inner.split_once(" = ").unwrap();
    let wanted = wanted.trim_matches('"');
    let value = path.split('.').try_fold(line, |node, key| node.get(key));
    match value.and_then(serde_json::Value::as_str) {
        Some(value) => wanted == "*" || value == wanted,
        None => false,
    }
}

/// The metric filter patterns of the CloudFormation template, by resource name.
fn template_filter_patterns() -> Vec<(String, String)> {
    let template = include_str!("../../cloudformation/template.yaml");
    let mut patterns = Vec::new();
    let mut resource = String::new();
    for line in template.lines() {
        if let Some(name) = line.strip_prefix("  ").and_then(|l| l.strip_suffix(':'))
            && !name.starts_with(' ')
        {
            resource = name.to_owned();
        }
        if let Some(pattern) = line.trim().strip_prefix("FilterPattern: ") {
            patterns.push((resource.clone(), pattern.trim_matches('\'').to_owned()));
        }
    }
    patterns
}

#[tokio::test]
async fn each_vend_logs_one_json_line_saying_who_got_what_which_the_templates_metric_filters_count() {
    let sts = FakeSts::start().await;
    let mut runtime = FakeRuntime::start().await;
    let (iam, _) = fake_iam().await;
    let child = Killed::spawn(lambda_command(&runtime, &sts.url, &iam));
    runtime.push_event("issued", EVENT);
    let Posted::Response { body, .. } = runtime.posted().await else {
        panic!("the function reported an error")
    };
    let vended: serde_json::Value = serde_json::from_str(body["body"].as_str().unwrap()).unwrap();
    // STS throttles the account: the SDK tries three times, the caller gets 503.
    sts.then((0..3).map(|_| Reply::Error {
        status: 400,
        code: "Throttling",
        message: "Rate exceeded",
    }));
    runtime.push_event("throttled", EVENT);
    let Posted::Response { body, .. } = runtime.posted().await else {
        panic!("the function reported an error")
    };
    assert_eq!(body["statusCode"], 503);

    let lines = json_lines(&child.logs());
    let vends: Vec<&serde_json::Value> = lines.iter().filter(|l| l["fields"].get("outcome").is_some()).collect();
    assert_eq!(vends.len(), 2, "one line per vend attempt: {lines:?}");
    let issued = vends[0];
    assert_eq!(issued["fields"]["outcome"], "issued");
    assert_eq!(issued["fields"]["client_id"], vended["clientId"]);
    assert_eq!(issued["fields"]["sub"], "-", "no token, no sub");
    assert_eq!(issued["fields"]["source_identity"], "-");
    assert_eq!(issued["fields"]["grants"], 1, "its own topic");
    assert_eq!(
        issued["span"]["request_id"], "Xk3Jq1ABCDEFG_w=",
        "API Gateway's request ID"
    );
    let throttled = vends[1];
    assert_eq!(throttled["fields"]["outcome"], "Throttled");
    assert_eq!(throttled["span"]["request_id"], "Xk3Jq1ABCDEFG_w=");

    let patterns = template_filter_patterns();
    let pattern = |name: &str| {
        patterns
            .iter()
            .find(|(resource, _)| resource == name)
            .map(|(_, p)| p.clone())
            .unwrap_or_else(|| panic!("{name} not in the template: {patterns:?}"))
    };
    let outcomes = pattern("VendOutcomeMetricFilter");
    assert!(vends.iter().all(|line| filter_matches(&outcomes, line)));
    let sts_throttled = pattern("StsThrottledMetricFilter");
    assert!(filter_matches(&sts_throttled, throttled));
    assert!(!filter_matches(&sts_throttled, issued));
    // Nothing else the function logs counts as a vend.
    let others = lines.iter().filter(|l| l["fields"].get("outcome").is_none());
    assert!(others.into_iter().all(|line| !filter_matches(&outcomes, line)));
}
