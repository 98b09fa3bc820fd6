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
