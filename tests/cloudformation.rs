//! The CloudFormation template: it lints clean, and the client role it deploys has
//! exactly the identity policy the local stack's client role has, so the local
//! stack cannot drift from what is deployed.

mod common;

use std::process::Command;

use common::tools::tool;
use serverless_websockets::policy::{IotArns, PolicyDocument, client_role_policy};
use serverless_websockets::topic::Topic;

const TEMPLATE: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/cloudformation/template.yaml");

#[test]
fn cfn_lint_passes_with_no_warnings() {
    let output = Command::new(tool("cfn-lint")).arg(TEMPLATE).output().unwrap();
    assert!(
        output.status.success(),
        "cfn-lint reported:\n{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
}

fn deployed_policy(region: &str, account: &str, prefix: &str) -> serde_json::Value {
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/cfn_client_role_policy.py");
    let output = Command::new(tool("python"))
        .args([script, TEMPLATE, "aws", region, account, prefix])
        .output()
        .unwrap();
    assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
    serde_json::from_slice(&output.stdout).unwrap()
}

#[test]
fn the_templates_client_role_policy_is_the_local_stacks() {
    for (region, account, prefix) in [
        ("us-east-1", "000000000000", "allowed"),
        ("eu-west-1", "123456789012", "app/push"),
    ] {
        let deployed = deployed_policy(region, account, prefix);
        let from_template: PolicyDocument = serde_json::from_value(deployed["policy"].clone()).unwrap();
        let arns = IotArns::new("aws", region, account).unwrap();
        let local = client_role_policy(&arns, &Topic::parse(prefix).unwrap());
        assert_eq!(
            from_template, local,
            "template vs local for {region} {account} {prefix}"
        );
        assert_eq!(deployed["maxSessionDuration"], 3600);
    }
}

#[test]
fn deploy_sh_deploys_the_stack_with_its_parameters_and_outputs() {
    // moto's CloudFormation creates the resources (it does not run the function),
    // which checks the script's upload, parameter wiring and outputs.
    let moto = common::tools::Moto::start();
    let dir = tempfile::tempdir().unwrap();
    let zip = dir.path().join("bootstrap.zip");
    std::fs::write(&zip, b"PK\x05\x06\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0").unwrap(); // an empty zip archive
    let aws = |args: &[&str]| {
        let output = Command::new(tool("aws"))
            .args(args)
            .env("AWS_ENDPOINT_URL", &moto.url)
            .env("AWS_ACCESS_KEY_ID", "test")
            .env("AWS_SECRET_ACCESS_KEY", "test")
            .env("AWS_DEFAULT_REGION", "us-east-1")
            .env("AWS_CONFIG_FILE", "/dev/null")
            .env("AWS_SHARED_CREDENTIALS_FILE", "/dev/null")
            .output()
            .unwrap();
        assert!(
            output.status.success(),
            "aws {args:?}: {}",
            String::from_utf8_lossy(&output.stderr)
        );
        String::from_utf8(output.stdout).unwrap()
    };
    aws(&["s3", "mb", "s3://code-bucket"]);

    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/cloudformation/deploy.sh");
    let tools_dir = tool("aws").parent().unwrap().to_owned();
    let path = format!("{}:{}", tools_dir.display(), std::env::var("PATH").unwrap_or_default());
    let output = Command::new("bash")
        .args([script, "deploy", "--stack", "sw-test", "--bucket", "code-bucket"])
        .args(["--iot-endpoint", "abc123-ats.iot.us-east-1.amazonaws.com", "--zip"])
        .arg(&zip)
        .arg("CredentialDurationSeconds=900")
        .env("PATH", path)
        .env("AWS_ENDPOINT_URL", &moto.url)
        .env("AWS_ACCESS_KEY_ID", "test")
        .env("AWS_SECRET_ACCESS_KEY", "test")
        .env("AWS_DEFAULT_REGION", "us-east-1")
        .env("AWS_CONFIG_FILE", "/dev/null")
        .env("AWS_SHARED_CREDENTIALS_FILE", "/dev/null")
        .output()
        .unwrap();
    assert!(
        output.status.success(),
        "deploy.sh failed:\n{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );

    let stacks: serde_json::Value =
        serde_json::from_str(&aws(&["cloudformation", "describe-stacks", "--stack-name", "sw-test"])).unwrap();
    let stack = &stacks["Stacks"][0];
    let parameter = |key: &str| {
        stack["Parameters"]
            .as_array()
            .unwrap()
            .iter()
            .find(|p| p["ParameterKey"] == key)
            .unwrap()["ParameterValue"]
            .as_str()
            .unwrap()
            .to_owned()
    };
    assert_eq!(parameter("IotEndpoint"), "abc123-ats.iot.us-east-1.amazonaws.com");
    assert_eq!(parameter("CodeS3Bucket"), "code-bucket");
    assert!(parameter("CodeS3Key").starts_with("serverless-websockets/bootstrap-"));
    assert_eq!(parameter("CredentialDurationSeconds"), "900");
    // moto leaves Outputs and the API Gateway v2 resources out; the rest is there.
    let resources: serde_json::Value = serde_json::from_str(&aws(&[
        "cloudformation",
        "list-stack-resources",
        "--stack-name",
        "sw-test",
    ]))
    .unwrap();
    let created: Vec<&str> = resources["StackResourceSummaries"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["LogicalResourceId"].as_str().unwrap())
        .collect();
    for logical in ["Function", "FunctionRole", "ClientRole", "LogGroup", "InvokePermission"] {
        assert!(created.contains(&logical), "{logical} missing from {created:?}");
    }
    let function: serde_json::Value = serde_json::from_str(&aws(&[
        "lambda",
        "get-function-configuration",
        "--function-name",
        "sw-test-vend",
    ]))
    .unwrap();
    assert_eq!(function["Runtime"], "provided.al2023");
    assert_eq!(function["Handler"], "bootstrap");
    let env = &function["Environment"]["Variables"];
    assert_eq!(env["IOT_ENDPOINT"], "abc123-ats.iot.us-east-1.amazonaws.com");
    // Lambda stores strings; moto may hand the number back unquoted.
    assert_eq!(env["CREDENTIAL_DURATION_SECONDS"].to_string().trim_matches('"'), "900");
    assert_eq!(env["TOPIC_PREFIX"], "allowed");
    assert!(
        env["CLIENT_ROLE_ARN"].as_str().unwrap().starts_with("arn:aws:iam::"),
        "{env}"
    );
    let uploaded = aws(&["s3", "ls", "s3://code-bucket/serverless-websockets/"]);
    assert!(uploaded.contains("bootstrap-"), "{uploaded}");
}
