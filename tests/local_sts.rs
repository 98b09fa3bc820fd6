//! The local stack's STS emulator and vending API through real listeners: the
//! AWS SDK, the AWS CLI and raw HTTP as clients.

mod common;

use std::collections::HashMap;
use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use aws_config::{BehaviorVersion, Region};
use aws_credential_types::Credentials;
use aws_sdk_sts::error::ProvideErrorMetadata;
use common::tools::{aws_env, tool};
use serverless_websockets_core::arn::IotArns;
use serverless_websockets_core::client_id::ClientId;
use serverless_websockets_core::policy::{Grants, PolicyDocument, session_policy};
use serverless_websockets_core::topic::Topic;
use serverless_websockets_local::identity::{Identity, IdentityStore};
use serverless_websockets_local::stack::{LocalOptions, LocalStack};
use serverless_websockets_local::sts::{LocalRole, StsEmulator};

const ADMIN_KEY: &str = "AKIALOCALADMIN000000";
const ADMIN_SECRET: &str = "local-admin-secret";
const CLIENT_ROLE: &str = "arn:aws:iam::000000000000:role/serverless-websockets-client";

async fn sts_client(endpoint: &str, key: &str, secret: &str, token: Option<&str>) -> aws_sdk_sts::Client {
    let config = aws_config::defaults(BehaviorVersion::latest())
        .region(Region::new("us-east-1"))
        .credentials_provider(Credentials::new(key, secret, token.map(str::to_owned), None, "test"))
        .endpoint_url(endpoint)
        .retry_config(aws_config::retry::RetryConfig::disabled())
        .load()
        .await;
    aws_sdk_sts::Client::new(&config)
}

async fn admin(stack: &LocalStack) -> aws_sdk_sts::Client {
    sts_client(&stack.info().sts_endpoint, ADMIN_KEY, ADMIN_SECRET, None).await
}

/// The error code and HTTP status of a failed call.
fn fault<E: ProvideErrorMetadata + std::fmt::Debug, R: std::fmt::Debug>(
    result: Result<R, aws_sdk_sts::error::SdkError<E, aws_smithy_runtime_api::http::Response>>,
) -> (String, u16) {
    match result {
        Err(aws_sdk_sts::error::SdkError::ServiceError(err)) => {
            (err.err().code().unwrap_or("?").to_owned(), err.raw().status().as_u16())
        }
        other => panic!("expected a service error, got {other:?}"),
    }
}

#[tokio::test]
async fn the_local_vending_api_issues_credentials_recorded_with_its_exact_session_policy() {
    let stack = LocalStack::start(LocalOptions::ephemeral()).await.unwrap();
    let response = reqwest::Client::new().post(&stack.info().api_url).send().await.unwrap();
    assert_eq!(response.status(), 200);
    let body: serde_json::Value = response.json().await.unwrap();

    let key = body["credentials"]["accessKeyId"].as_str().unwrap();
    let identity = stack
        .identities()
        .get(key)
        .expect("STS recorded the credentials it issued");
    assert_eq!(
        identity.session_token.as_deref(),
        body["credentials"]["sessionToken"].as_str()
    );
    let client_id = ClientId::parse(body["clientId"].as_str().unwrap()).unwrap();
    assert_eq!(
        identity.arn,
        format!("arn:aws:sts::000000000000:assumed-role/serverless-websockets-client/{client_id}")
    );

    let arns = IotArns::new("aws", "us-east-1", "000000000000").unwrap();
    let grants = Grants {
        subscribe: vec![
            Topic::parse("allowed")
                .unwrap()
                .join(client_id.as_str())
                .unwrap()
                .into(),
        ],
        publish: vec![],
    };
    let expected = PolicyDocument::parse(&session_policy(&arns, &client_id, &grants).unwrap()).unwrap();
    assert_eq!(
        identity.session_policies.as_deref(),
        Some(std::slice::from_ref(&expected))
    );

    // Role ∩ session: the credential can connect as itself only.
    assert!(identity.is_allowed("iot:Connect", &arns.client(client_id.as_str())));
    assert!(!identity.is_allowed("iot:Connect", &arns.client("other")));
    assert!(!identity.is_allowed("iot:Subscribe", &arns.topic_filter("allowed/#")));
    stack.shutdown().await;
}

#[tokio::test]
async fn assume_role_and_get_caller_identity_work_through_the_aws_sdk() {
    let stack = LocalStack::start(LocalOptions::ephemeral()).await.unwrap();
    let sts = admin(&stack).await;
    let me = sts.get_caller_identity().send().await.unwrap();
    assert_eq!(me.arn(), Some("arn:aws:iam::000000000000:user/admin"));
    assert_eq!(me.account(), Some("000000000000"));

    let out = sts
        .assume_role()
        .role_arn(CLIENT_ROLE)
        .role_session_name("sdk-test")
        .duration_seconds(900)
        .policy(r#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Action":"iot:Connect","Resource":"*"}]}"#)
        .send()
        .await
        .unwrap();
    let creds = out.credentials().unwrap();
    assert!(creds.access_key_id().starts_with("ASIA"));
    #[allow(deprecated)] // STS still returns PackedPolicySize; the SDK prefers a newer field.
    let packed = out.packed_policy_size().unwrap();
    assert!(packed > 0 && packed <= 100, "{packed}");
    let remaining = SystemTime::try_from(*creds.expiration())
        .unwrap()
        .duration_since(SystemTime::now())
        .unwrap();
    assert!(
        remaining > Duration::from_secs(890) && remaining <= Duration::from_secs(900),
        "{remaining:?}"
    );

    // The issued credentials authenticate in turn (role chaining identity).
    let assumed = sts_client(
        &stack.info().sts_endpoint,
        creds.access_key_id(),
        creds.secret_access_key(),
        Some(creds.session_token()),
    )
    .await;
    let who = assumed.get_caller_identity().send().await.unwrap();
    assert_eq!(
        who.arn(),
        Some("arn:aws:sts::000000000000:assumed-role/serverless-websockets-client/sdk-test")
    );
    // …but the client role trusts only the admin, so they cannot assume it again.
    let again = assumed
        .assume_role()
        .role_arn(CLIENT_ROLE)
        .role_session_name("again")
        .send()
        .await;
    assert_eq!(fault(again), ("AccessDenied".to_owned(), 403));
    stack.shutdown().await;
}

/// An AssumeRole that must be refused: what is wrong, session name, duration,
/// policy, and the code STS answers.
type Refused = (&'static str, &'static str, Option<i32>, Option<String>, &'static str);

/// Every AssumeRole the emulator must refuse, as in the STS API reference.
fn refused_assume_roles() -> [Refused; 7] {
    let long = format!(
        r#"{{"Statement":{{"Effect":"Allow","Action":"iot:Connect","Resource":"{}"}}}}"#,
        "x".repeat(2100)
    );
    let no_action = r#"{"Statement":{"Effect":"Allow","Resource":"*"}}"#.to_owned();
    [
        ("session name too short", "x", None, None, "ValidationError"),
        ("session name with a space", "has space", None, None, "ValidationError"),
        ("duration under 900 s", "ok-name", Some(899), None, "ValidationError"),
        (
            "over the role's maximum",
            "ok-name",
            Some(7200),
            None,
            "ValidationError",
        ),
        (
            "policy not JSON",
            "ok-name",
            None,
            Some("{not json".into()),
            "MalformedPolicyDocument",
        ),
        (
            "policy statement without an action",
            "ok-name",
            None,
            Some(no_action),
            "MalformedPolicyDocument",
        ),
        (
            "policy over 2,048 characters",
            "ok-name",
            None,
            Some(long),
            "ValidationError",
        ),
    ]
}

#[tokio::test]
async fn invalid_assume_role_parameters_get_the_aws_error_codes() {
    let stack = LocalStack::start(LocalOptions::ephemeral()).await.unwrap();
    let sts = admin(&stack).await;
    let call = |session: &str, duration: Option<i32>, policy: Option<String>| {
        let mut request = sts.assume_role().role_arn(CLIENT_ROLE).role_session_name(session);
        if let Some(d) = duration {
            request = request.duration_seconds(d);
        }
        if let Some(p) = policy {
            request = request.policy(p);
        }
        request.send()
    };
    let refused = refused_assume_roles();
    for (what, session, duration, policy, code) in refused {
        assert_eq!(
            fault(call(session, duration, policy).await),
            (code.into(), 400),
            "{what}"
        );
    }

    let small_policy = r#"{"Statement":{"Effect":"Allow","Action":"iot:Connect","Resource":"*"}}"#;
    let mut tagged = sts
        .assume_role()
        .role_arn(CLIENT_ROLE)
        .role_session_name("tagged")
        .policy(small_policy);
    for n in 0..10 {
        tagged = tagged.tags(
            aws_sdk_sts::types::Tag::builder()
                .key(format!("k{n}"))
                .value("v".repeat(256))
                .build()
                .unwrap(),
        );
    }
    assert_eq!(fault(tagged.send().await), ("PackedPolicyTooLarge".into(), 400));

    let unknown = sts
        .assume_role()
        .role_arn("arn:aws:iam::000000000000:role/nope")
        .role_session_name("s1")
        .send()
        .await;
    assert_eq!(fault(unknown), ("AccessDenied".into(), 403));
    stack.shutdown().await;
}

#[tokio::test]
async fn bad_signatures_unknown_keys_and_expired_tokens_are_refused() {
    let stack = LocalStack::start(LocalOptions::ephemeral()).await.unwrap();
    let endpoint = stack.info().sts_endpoint.clone();

    let wrong_secret = sts_client(&endpoint, ADMIN_KEY, "not-the-secret", None).await;
    assert_eq!(
        fault(wrong_secret.get_caller_identity().send().await),
        ("SignatureDoesNotMatch".into(), 403)
    );

    let unknown = sts_client(&endpoint, "AKIAUNKNOWNKEY000000", ADMIN_SECRET, None).await;
    assert_eq!(
        fault(unknown.get_caller_identity().send().await),
        ("InvalidClientTokenId".into(), 403)
    );

    let past = SystemTime::now() - Duration::from_secs(60);
    stack.identities().insert(
        Identity {
            access_key_id: "ASIAEXPIRED000000000".into(),
            secret_access_key: "expired-secret".into(),
            session_token: Some("expired-token".into()),
            expiration: Some(past),
            arn: "arn:aws:sts::000000000000:assumed-role/r/s".into(),
            user_id: "AROA:s".into(),
            account: "000000000000".into(),
            policies: Arc::from(vec![]),
            session_policies: None,
            source_identity: None,
            variables: None,
            issued_at: None,
            role_since: None,
        },
        past,
    );
    let expired = sts_client(
        &endpoint,
        "ASIAEXPIRED000000000",
        "expired-secret",
        Some("expired-token"),
    )
    .await;
    assert_eq!(
        fault(expired.get_caller_identity().send().await),
        ("ExpiredToken".into(), 403)
    );
    let tokenless = sts_client(&endpoint, "ASIAEXPIRED000000000", "expired-secret", None).await;
    assert_eq!(
        fault(tokenless.get_caller_identity().send().await),
        ("InvalidClientTokenId".into(), 403)
    );

    // Unsigned: the raw AWS error document.
    let raw = reqwest::Client::new()
        .post(&endpoint)
        .header("content-type", "application/x-www-form-urlencoded")
        .body("Action=GetCallerIdentity&Version=2011-06-15")
        .send()
        .await
        .unwrap();
    assert_eq!(raw.status(), 403);
    let xml = raw.text().await.unwrap();
    assert!(xml.starts_with(r#"<ErrorResponse xmlns="https://sts.amazonaws.com/doc/2011-06-15/"><Error><Type>Sender</Type><Code>MissingAuthenticationToken</Code>"#), "{xml}");
    assert!(xml.contains("<RequestId>"), "{xml}");

    // The emulator kept serving through all of that.
    assert!(admin(&stack).await.get_caller_identity().send().await.is_ok());
    stack.shutdown().await;
}

#[tokio::test]
async fn role_chaining_caps_the_session_at_one_hour() {
    // A role that allows long sessions and trusts sessions of itself.
    let store = Arc::new(IdentityStore::new());
    let admin_policy =
        PolicyDocument::parse(r#"{"Statement":{"Effect":"Allow","Action":"*","Resource":"*"}}"#).unwrap();
    store.insert(
        Identity {
            access_key_id: ADMIN_KEY.into(),
            secret_access_key: ADMIN_SECRET.into(),
            session_token: None,
            expiration: None,
            arn: "arn:aws:iam::000000000000:user/admin".into(),
            user_id: "AIDAADMIN".into(),
            account: "000000000000".into(),
            policies: Arc::from(vec![admin_policy.clone()]),
            session_policies: None,
            source_identity: None,
            variables: None,
            issued_at: None,
            role_since: None,
        },
        SystemTime::now(),
    );
    let role = LocalRole {
        arn: "arn:aws:iam::000000000000:role/long".into(),
        name: "long".into(),
        role_id: "AROALONG".into(),
        max_session: Duration::from_secs(43_200),
        policies: Arc::from(vec![admin_policy]),
        trusted: vec![
            "arn:aws:iam::000000000000:user/admin".into(),
            "arn:aws:sts::000000000000:assumed-role/long/*".into(),
        ],
        inline: std::sync::Arc::default(),
    };
    let emulator = Arc::new(StsEmulator::new("000000000000", vec![role], store));
    let endpoint = format!("http://{}", common::serve(emulator.router()).await);

    let sts = sts_client(&endpoint, ADMIN_KEY, ADMIN_SECRET, None).await;
    let first = sts
        .assume_role()
        .role_arn("arn:aws:iam::000000000000:role/long")
        .role_session_name("first")
        .duration_seconds(7200)
        .send()
        .await
        .unwrap();
    let c = first.credentials().unwrap();
    let chained = sts_client(
        &endpoint,
        c.access_key_id(),
        c.secret_access_key(),
        Some(c.session_token()),
    )
    .await;
    let too_long = chained
        .assume_role()
        .role_arn("arn:aws:iam::000000000000:role/long")
        .role_session_name("second")
        .duration_seconds(3601)
        .send()
        .await;
    assert_eq!(fault(too_long), ("ValidationError".into(), 400));
    let ok = chained
        .assume_role()
        .role_arn("arn:aws:iam::000000000000:role/long")
        .role_session_name("second")
        .duration_seconds(3600)
        .send()
        .await;
    assert!(ok.is_ok(), "{ok:?}");
}

fn aws_cli(stack_sts: &str, args: &[&str]) -> serde_json::Value {
    let mut command = Command::new(tool("aws"));
    command
        .args(args)
        .args(["--endpoint-url", stack_sts, "--output", "json"]);
    let output = aws_env(&mut command, ADMIN_KEY, ADMIN_SECRET, None, "us-east-1")
        .output()
        .unwrap();
    assert!(
        output.status.success(),
        "aws {args:?}: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    serde_json::from_slice(&output.stdout).unwrap()
}

#[tokio::test]
async fn the_aws_cli_runs_get_caller_identity_and_assume_role_against_the_emulator() {
    let stack = LocalStack::start(LocalOptions::ephemeral()).await.unwrap();
    let sts = stack.info().sts_endpoint.clone();
    let who = tokio::task::spawn_blocking({
        let sts = sts.clone();
        move || aws_cli(&sts, &["sts", "get-caller-identity"])
    })
    .await
    .unwrap();
    assert_eq!(who["Arn"], "arn:aws:iam::000000000000:user/admin");

    let assumed = tokio::task::spawn_blocking(move || {
        aws_cli(
            &sts,
            &[
                "sts",
                "assume-role",
                "--role-arn",
                CLIENT_ROLE,
                "--role-session-name",
                "cli-session",
                "--duration-seconds",
                "900",
            ],
        )
    })
    .await
    .unwrap();
    assert!(
        assumed["Credentials"]["AccessKeyId"]
            .as_str()
            .unwrap()
            .starts_with("ASIA")
    );
    assert_eq!(
        assumed["AssumedRoleUser"]["Arn"],
        "arn:aws:sts::000000000000:assumed-role/serverless-websockets-client/cli-session"
    );
    stack.shutdown().await;
}

#[test]
fn the_local_command_writes_its_ready_file_and_prints_the_banner() {
    let dir = tempfile::tempdir().unwrap();
    let ready = dir.path().join("ready.json");
    let mut child = common::local_command(&ready, &[])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    // The banner is printed after the ready file is in place.
    let mut banner = String::new();
    for line in BufReader::new(child.stdout.take().unwrap()).lines() {
        let line = line.unwrap();
        let done = line.contains("aws sts get-caller-identity");
        banner.push_str(&line);
        banner.push('\n');
        if done {
            break;
        }
    }
    let info: HashMap<String, serde_json::Value> =
        serde_json::from_str(&std::fs::read_to_string(&ready).unwrap()).unwrap();
    let api = info["api_url"].as_str().unwrap();
    assert!(
        api.starts_with("http://127.0.0.1:") && api.ends_with("/credentials"),
        "{api}"
    );
    assert!(banner.contains(api), "{banner}");
    assert!(banner.contains(&format!("curl -s -X POST {api}")), "{banner}");
    assert_eq!(info["region"], "us-east-1");
    assert_eq!(info["account_id"], "000000000000");
    assert_eq!(info["client_role_arn"], CLIENT_ROLE);
    assert_eq!(info["admin"]["access_key_id"], ADMIN_KEY);
    assert_eq!(info["backend"]["access_key_id"], "AKIALOCALBACKEND0000");
    assert_eq!(info["backend"]["arn"], "arn:aws:iam::000000000000:user/backend");
    assert!(banner.contains("AWS_ACCESS_KEY_ID=AKIALOCALBACKEND0000"), "{banner}");
    assert!(banner.contains("aws iot-data send-direct-message"), "{banner}");
    // Commands meant to be pasted carry no <placeholder> (a shell redirection).
    assert!(!banner.contains('<'), "{banner}");
    assert_eq!(info["ca_cert"], serde_json::Value::Null);

    assert_eq!(post_status(api), 200);
    let _ = Command::new("kill").args(["-INT", &child.id().to_string()]).status();
    assert!(child.wait().unwrap().success(), "Ctrl-C shuts down cleanly");
}

/// A POST from a synchronous test, on a throwaway runtime.
fn post_status(url: &str) -> u16 {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(async { reqwest::Client::new().post(url).send().await.unwrap().status().as_u16() })
}
