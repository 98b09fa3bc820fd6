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

fn lambda_command(runtime: &FakeRuntime, sts_url: &str) -> Command {
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
    let child = Killed::spawn(lambda_command(&runtime, &sts.url));

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
    let _child = Killed::spawn(lambda_command(&runtime, &sts.url));

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
    let output = lambda_command(&runtime, "http://127.0.0.1:9")
        .env_remove("CLIENT_ROLE_ARN")
        .output()
        .unwrap();
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("CLIENT_ROLE_ARN is not set"), "{stderr}");
}
