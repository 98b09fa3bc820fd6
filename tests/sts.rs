//! The real `aws-sdk-sts` path: what STS is sent (recording fake), how its errors
//! surface, and a full vend through a real listener against moto's STS.

mod common;

use std::sync::Arc;
use std::time::Duration;

use aws_config::Region;
use aws_config::retry::RetryConfig;
use aws_credential_types::Credentials;
use common::sts::{self, FakeSts, Reply};
use common::tools::Moto;
use serverless_websockets_core::arn::IotArns;
use serverless_websockets_core::client_id::ClientId;
use serverless_websockets_core::policy::{Grants, session_policy};
use serverless_websockets_core::topic::Topic;
use serverless_websockets_vending::issuer::{
    AssumeRoleIssuer, CredentialIssuer, IssueRequest, StsError, sdk_config_loader,
};

const ROLE: &str = "arn:aws:iam::123456789012:role/ClientRole";

async fn issuer_for(endpoint: &str, retry: RetryConfig) -> AssumeRoleIssuer {
    let sdk = sdk_config_loader()
        .region(Region::new("us-east-1"))
        .credentials_provider(Credentials::new("AKIALAMBDAROLE", "lambda-secret", None, None, "test"))
        .endpoint_url(endpoint)
        .retry_config(retry)
        .load()
        .await;
    AssumeRoleIssuer::new(&sdk, ROLE)
}

fn policy_for(client_id: &ClientId) -> String {
    let arns = IotArns::new("aws", "us-east-1", "123456789012").unwrap();
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
    session_policy(&arns, client_id, &grants).unwrap()
}

#[tokio::test]
async fn assume_role_sends_the_session_name_duration_and_policy() {
    let fake = FakeSts::start().await;
    let issuer = issuer_for(&fake.url, RetryConfig::disabled()).await;
    let client_id = ClientId::generate();
    let policy = policy_for(&client_id);
    let creds = issuer
        .issue(IssueRequest {
            client_id: &client_id,
            policy: &policy,
            duration: Duration::from_secs(1800),
            source_identity: None,
        })
        .await
        .unwrap();
    assert_eq!(creds.access_key_id, sts::ACCESS_KEY_ID);
    assert_eq!(creds.secret_access_key, sts::SECRET_ACCESS_KEY);
    assert_eq!(creds.session_token, sts::SESSION_TOKEN);
    assert_eq!(creds.expiration_iso8601(), sts::EXPIRATION);

    let requests = fake.requests();
    assert_eq!(requests.len(), 1);
    let form = &requests[0].form;
    assert_eq!(form["Action"], "AssumeRole");
    assert_eq!(form["Version"], "2011-06-15");
    assert_eq!(form["RoleArn"], ROLE);
    assert_eq!(form["RoleSessionName"], client_id.as_str());
    assert_eq!(form["DurationSeconds"], "1800");
    assert_eq!(form["Policy"], policy);
    assert!(
        requests[0].authorization.contains("/us-east-1/sts/aws4_request"),
        "{}",
        requests[0].authorization
    );
}

#[tokio::test]
async fn sts_errors_are_sorted_into_throttled_misconfigured_and_unavailable() {
    let fake = FakeSts::start().await;
    let issuer = issuer_for(&fake.url, RetryConfig::disabled()).await;
    let client_id = ClientId::generate();
    let policy = policy_for(&client_id);
    let request = IssueRequest {
        client_id: &client_id,
        policy: &policy,
        duration: Duration::from_secs(900),
        source_identity: None,
    };

    fake.then([Reply::Error {
        status: 400,
        code: "Throttling",
        message: "Rate exceeded",
    }]);
    assert!(matches!(issuer.issue(request).await, Err(StsError::Throttled { .. })));

    for code in [
        "AccessDenied",
        "MalformedPolicyDocument",
        "PackedPolicyTooLarge",
        "ValidationError",
    ] {
        let status = if code == "AccessDenied" { 403 } else { 400 };
        fake.then([Reply::Error {
            status,
            code,
            message: "refused",
        }]);
        match issuer.issue(request).await {
            Err(StsError::Misconfigured { code: got, .. }) => assert_eq!(got, code),
            other => panic!("{code}: {other:?}"),
        }
    }

    fake.then([Reply::Error {
        status: 500,
        code: "InternalFailure",
        message: "boom",
    }]);
    assert!(matches!(issuer.issue(request).await, Err(StsError::Unavailable(_))));
}

#[tokio::test]
async fn throttling_is_retried_by_the_sdk_before_it_reaches_the_caller() {
    let fake = FakeSts::start().await;
    let issuer = issuer_for(&fake.url, RetryConfig::standard().with_max_attempts(3)).await;
    let client_id = ClientId::generate();
    let policy = policy_for(&client_id);
    fake.then([Reply::Error {
        status: 400,
        code: "Throttling",
        message: "Rate exceeded",
    }]);
    let result = issuer
        .issue(IssueRequest {
            client_id: &client_id,
            policy: &policy,
            duration: Duration::from_secs(900),
            source_identity: None,
        })
        .await;
    assert!(result.is_ok(), "{result:?}");
    assert_eq!(fake.requests().len(), 2);
}

#[tokio::test]
async fn an_unreachable_sts_is_unavailable_not_a_hang() {
    // Bind then drop a listener: nothing is listening on that port afterwards.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let issuer = issuer_for(&format!("http://127.0.0.1:{port}"), RetryConfig::disabled()).await;
    let client_id = ClientId::generate();
    let policy = policy_for(&client_id);
    let result = issuer
        .issue(IssueRequest {
            client_id: &client_id,
            policy: &policy,
            duration: Duration::from_secs(900),
            source_identity: None,
        })
        .await;
    assert!(
        matches!(result, Err(StsError::Unavailable(_)) | Err(StsError::Timeout(_))),
        "{result:?}"
    );
}

#[tokio::test]
async fn the_api_vends_real_sdk_credentials_from_motos_sts_over_http() {
    let moto = Moto::start();
    let issuer = issuer_for(&moto.url, RetryConfig::disabled()).await;
    let config = common::vending::config_from(&[("CLIENT_ROLE_ARN", ROLE)], common::vending::BASE).unwrap();
    let addr = common::serve(serverless_websockets_vending::api::build(config, Arc::new(issuer)).unwrap()).await;
    let response = reqwest::Client::new()
        .post(format!("http://{addr}/credentials"))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    assert_eq!(response.headers()["cache-control"], "no-store");
    let body: serde_json::Value = response.json().await.unwrap();
    let access_key = body["credentials"]["accessKeyId"].as_str().unwrap();
    assert!(access_key.starts_with("ASIA"), "{access_key}");
    assert!(
        body["url"]
            .as_str()
            .unwrap()
            .contains(&format!("X-Amz-Credential={access_key}%2F"))
    );
}
