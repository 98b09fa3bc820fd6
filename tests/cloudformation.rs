//! The CloudFormation template: it lints clean, and the client role it deploys has
//! exactly the identity policy the local stack's client role has, so the local
//! stack cannot drift from what is deployed.

mod common;

use std::process::Command;

use common::tools::{aws_env, tool};
use serverless_websockets_core::arn::IotArns;
use serverless_websockets_core::grants::{GrantTemplate, GrantTemplates};
use serverless_websockets_core::policy::{PolicyDocument, backend_policy, client_role_policy};

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

fn deployed_policy(region: &str, account: &str, parameters: &[String]) -> serde_json::Value {
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/cfn_client_role_policy.py");
    let output = Command::new(tool("python"))
        .args([script, TEMPLATE, "aws", region, account])
        .args(parameters)
        .output()
        .unwrap();
    assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
    serde_json::from_slice(&output.stdout).unwrap()
}

/// The policy as JSON with every string-or-array field as an array, so that
/// `"Resource": "x"` and `"Resource": ["x"]` (the same policy to IAM) compare equal.
fn normalized(policy: &PolicyDocument) -> serde_json::Value {
    let mut value = serde_json::to_value(policy).unwrap();
    for statement in value["Statement"].as_array_mut().unwrap() {
        for field in ["Action", "Resource"] {
            if let Some(one) = statement[field].as_str().map(str::to_owned) {
                statement[field] = serde_json::json!([one]);
            }
        }
    }
    value
}

/// The parameters deploy.sh passes for these grant templates.
fn parameters(templates: &GrantTemplates, subscribe: &str, publish: &str) -> Vec<String> {
    let patterns = |list: &[GrantTemplate]| {
        list.iter()
            .map(GrantTemplate::role_pattern)
            .collect::<Vec<_>>()
            .join(",")
    };
    vec![
        format!("SubscribeTopics={subscribe}"),
        format!("PublishTopics={publish}"),
        format!("ClientRoleSubscribePatterns={}", patterns(&templates.subscribe)),
        format!("ClientRolePublishPatterns={}", patterns(&templates.publish)),
    ]
}

#[test]
fn the_templates_client_role_and_backend_policies_are_the_local_stacks() {
    let cases = [
        ("us-east-1", "000000000000", "allowed/{clientId}", ""),
        ("eu-west-1", "123456789012", "app/push/{clientId}", ""),
        (
            "us-west-2",
            "123456789012",
            "allowed/{clientId},users/{sub},broadcast/all,rooms/+/chat",
            "from/{clientId}",
        ),
        (
            "us-east-1",
            "123456789012",
            "a/{clientId},b/{sub},c/x,d/#,e/{sub}/f,g/h,i/j,k/l",
            "p/{clientId},q/{sub},r/s,t/#",
        ),
        (
            "us-east-1",
            "123456789012",
            "allowed/{clientId},rooms/{claims.rooms}/+,t/{claims.app.tenant}/news",
            "rooms/{claims.rooms}/{clientId}",
        ),
    ];
    for (region, account, subscribe, publish) in cases {
        let templates = GrantTemplates::parse(subscribe, publish).unwrap();
        let deployed = deployed_policy(region, account, &parameters(&templates, subscribe, publish));
        let from_template: PolicyDocument = serde_json::from_value(deployed["policy"].clone()).unwrap();
        let arns = IotArns::new("aws", region, account).unwrap();
        let local = client_role_policy(&arns, &templates);
        assert_eq!(
            normalized(&from_template),
            normalized(&local),
            "template vs local for {region} {account} {subscribe} / {publish}"
        );
        assert_eq!(deployed["maxSessionDuration"], 3600);
        let backend: PolicyDocument = serde_json::from_value(deployed["backendPolicy"].clone()).unwrap();
        assert_eq!(
            normalized(&backend),
            normalized(&backend_policy(&arns, &templates)),
            "backend policy, template vs local, for {region} {account} {subscribe}"
        );
    }
    // With no parameters at all the template's defaults match the local default.
    let deployed = deployed_policy("us-east-1", "000000000000", &[]);
    let from_template: PolicyDocument = serde_json::from_value(deployed["policy"].clone()).unwrap();
    let default = GrantTemplates::parse("allowed/{clientId}", "").unwrap();
    let local = client_role_policy(&IotArns::new("aws", "us-east-1", "000000000000").unwrap(), &default);
    assert_eq!(normalized(&from_template), normalized(&local));
}

/// Runs `cloudformation/deploy.sh deploy` against moto with the test's
/// parameters, and asserts it succeeded.
fn run_deploy_sh(moto_url: &str, zip: &std::path::Path) {
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/cloudformation/deploy.sh");
    let tools_dir = tool("aws").parent().unwrap().to_owned();
    let path = format!("{}:{}", tools_dir.display(), std::env::var("PATH").unwrap_or_default());
    let mut deploy = Command::new("bash");
    deploy
        .args([script, "deploy", "--stack", "sw-test", "--bucket", "code-bucket"])
        .args(["--iot-endpoint", "abc123-ats.iot.us-east-1.amazonaws.com", "--zip"])
        .arg(zip)
        .args([
            "CredentialDurationSeconds=900",
            "AuthMode=jwt",
            "JwtIssuer=https://issuer.example",
            "JwtHs256SecretArn=arn:aws:secretsmanager:us-east-1:123456789012:secret:jwt-AbCdEf",
        ])
        .arg("SubscribeTopics=allowed/{clientId},users/{sub},broadcast/#,rooms/{claims.rooms}/+")
        .arg("PublishTopics=from/{clientId},rooms/{claims.rooms}/{clientId}")
        .arg("BackendPrincipals=arn:aws:iam::123456789012:role/my-backend")
        .arg("AlarmTopicArn=arn:aws:sns:us-east-1:123456789012:ops")
        .env("PATH", path)
        // As `localhost`: moto reads the bucket of a TemplateURL from its path
        // only for that host name (the template goes through S3: it is over
        // CloudFormation's inline limit).
        .env("AWS_ENDPOINT_URL", moto_url.replace("127.0.0.1", "localhost"));
    let output = aws_env(&mut deploy, "test", "test", None, "us-east-1")
        .output()
        .unwrap();
    assert!(
        output.status.success(),
        "deploy.sh failed:\n{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
}

/// The parameters deploy.sh passed, as the deployed stack reports them.
fn check_parameters(stacks: &serde_json::Value) {
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
    // deploy.sh derived the client role's bounds from the grant templates.
    // (moto echoes list parameters as a Python list.)
    let list = |value: String| value.replace(['[', ']', '\'', ' '], "");
    assert_eq!(
        list(parameter("ClientRoleSubscribePatterns")),
        "allowed/*,users/*,broadcast/*,rooms/*/*"
    );
    assert_eq!(list(parameter("ClientRolePublishPatterns")), "from/*,rooms/*/*");
}

/// The vending function's configuration as deploy.sh's parameters set it.
fn check_function(function: &serde_json::Value) {
    assert_eq!(function["Runtime"], "provided.al2023");
    assert_eq!(function["Handler"], "bootstrap");
    let env = &function["Environment"]["Variables"];
    assert_eq!(env["IOT_ENDPOINT"], "abc123-ats.iot.us-east-1.amazonaws.com");
    // Lambda stores strings; moto may hand the number back unquoted.
    assert_eq!(env["CREDENTIAL_DURATION_SECONDS"].to_string().trim_matches('"'), "900");
    assert_eq!(
        env["SUBSCRIBE_TOPICS"],
        "allowed/{clientId},users/{sub},broadcast/#,rooms/{claims.rooms}/+"
    );
    assert_eq!(env["AUTH_MODE"], "jwt");
    // The HS256 key travels as an ARN the function reads at start-up, never as a value.
    assert_eq!(
        env["JWT_HS256_SECRET_ARN"],
        "arn:aws:secretsmanager:us-east-1:123456789012:secret:jwt-AbCdEf"
    );
    assert!(env.get("JWT_HS256_SECRET").is_none(), "{env}");
    // The resume key is never a value in the environment (moto does not create
    // AWS::SecretsManager::Secret; the template's wiring of it is checked by
    // the_template_generates_the_resume_key_and_passes_only_its_arn).
    assert!(env.get("RESUME_KEY").is_none(), "{env}");
    assert_eq!(env["RESUME_TOKEN_TTL_SECONDS"].to_string().trim_matches('"'), "86400");
    assert!(
        env["CLIENT_ROLE_ARN"].as_str().unwrap().starts_with("arn:aws:iam::"),
        "{env}"
    );
}

/// The resources moto creates from the template (it leaves Outputs and the
/// API Gateway v2 resources out).
fn check_resources(resources: &serde_json::Value) {
    let created: Vec<&str> = resources["StackResourceSummaries"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["LogicalResourceId"].as_str().unwrap())
        .collect();
    for logical in [
        "Function",
        "FunctionRole",
        "ClientRole",
        "LogGroup",
        "InvokePermission",
        "BackendPolicy",
        "BackendRole",
        "AccessLogGroup",
        "Dashboard",
    ] {
        assert!(created.contains(&logical), "{logical} missing from {created:?}");
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
        let mut command = Command::new(tool("aws"));
        aws_env(
            command.args(args).env("AWS_ENDPOINT_URL", &moto.url),
            "test",
            "test",
            None,
            "us-east-1",
        );
        let output = command.output().unwrap();
        assert!(
            output.status.success(),
            "aws {args:?}: {}",
            String::from_utf8_lossy(&output.stderr)
        );
        String::from_utf8(output.stdout).unwrap()
    };
    aws(&["s3", "mb", "s3://code-bucket"]);

    run_deploy_sh(&moto.url, &zip);

    check_parameters(
        &serde_json::from_str(&aws(&["cloudformation", "describe-stacks", "--stack-name", "sw-test"])).unwrap(),
    );
    // moto leaves Outputs and the API Gateway v2 resources out; the rest is there.
    let resources: serde_json::Value = serde_json::from_str(&aws(&[
        "cloudformation",
        "list-stack-resources",
        "--stack-name",
        "sw-test",
    ]))
    .unwrap();
    check_resources(&resources);
    // moto lists the alarms without logical IDs and does not create them; their
    // wiring is checked on the resolved template
    // (the_concurrency_cap_the_alarm_topic_and_the_customer_key_are_parameters).
    let log_groups = aws(&[
        "logs",
        "describe-log-groups",
        "--log-group-name-prefix",
        "/aws/apigateway/sw-test",
    ]);
    assert!(
        log_groups.contains("/aws/apigateway/sw-test-credentials"),
        "{log_groups}"
    );
    let function: serde_json::Value = serde_json::from_str(&aws(&[
        "lambda",
        "get-function-configuration",
        "--function-name",
        "sw-test-vend",
    ]))
    .unwrap();
    check_function(&function);
    let uploaded = aws(&["s3", "ls", "s3://code-bucket/serverless-websockets/"]);
    assert!(uploaded.contains("bootstrap-"), "{uploaded}");
}

#[test]
fn the_template_generates_the_resume_key_and_passes_only_its_arn() {
    let deployed = deployed_policy("us-east-1", "123456789012", &[]);
    let resume = &deployed["resume"];
    assert_eq!(resume["env"], serde_json::json!({"Ref": "ResumeKeySecret"}), "{resume}");
    assert_eq!(resume["generated"], true, "{resume}");
    assert_eq!(
        resume["read"],
        serde_json::json!({"Effect": "Allow", "Action": "secretsmanager:GetSecretValue", "Resource": {"Ref": "ResumeKeySecret"}}),
        "the function may read that one secret only"
    );
    assert_eq!(resume["ttl"], "ResumeTokenTtlSeconds");
}

/// The operations resources as CloudFormation would resolve them for `parameters`.
fn operations(parameters: &[&str]) -> serde_json::Value {
    let parameters: Vec<String> = parameters.iter().map(|p| (*p).to_owned()).collect();
    deployed_policy("us-east-1", "123456789012", &parameters)["operations"].clone()
}

#[test]
fn the_template_logs_api_access_as_json_lines_without_the_authorization_header() {
    let ops = operations(&[]);
    let settings = &ops["stage"]["AccessLogSettings"];
    assert_eq!(settings["DestinationArn"], "AccessLogGroup.Arn");
    let format = settings["Format"].as_str().unwrap();
    let line: serde_json::Value = serde_json::from_str(format).expect("the access log format is one JSON object");
    for field in [
        "requestId",
        "sourceIp",
        "userAgent",
        "routeKey",
        "status",
        "latencyMs",
        "integrationError",
    ] {
        assert!(line.get(field).is_some(), "{field} missing from {format}");
    }
    assert_eq!(
        line["requestId"], "$context.requestId",
        "the ID the function logs and returns as x-request-id"
    );
    assert!(!format.to_ascii_lowercase().contains("authorization"), "{format}");
    assert!(!format.contains("$context.identity.accessKey"), "{format}");
    let group = &ops["logGroups"]["AccessLogGroup"];
    assert_eq!(group["RetentionInDays"], "30", "the access log has a retention");
}

#[test]
fn the_concurrency_cap_the_alarm_topic_and_the_customer_key_are_parameters() {
    let defaults = operations(&[]);
    assert_eq!(defaults["function"]["ReservedConcurrentExecutions"], "40");
    assert!(defaults["function"].get("KmsKeyArn").is_none());
    assert!(defaults["kmsPolicy"].is_null() && defaults["secretKms"].is_null());
    let alarms = defaults["alarms"].as_object().unwrap();
    assert_eq!(
        alarms.keys().map(String::as_str).collect::<Vec<_>>(),
        [
            "Api5xxRateAlarm",
            "FunctionErrorsAlarm",
            "StsThrottlingAlarm",
            "VendLatencyAlarm"
        ]
    );
    for (name, alarm) in alarms {
        assert!(
            alarm.get("AlarmActions").is_none(),
            "{name} notifies nobody without a topic"
        );
    }

    let wired = operations(&[
        "AlarmTopicArn=arn:aws:sns:us-east-1:123456789012:ops",
        "ReservedConcurrency=0",
        "KmsKeyArn=arn:aws:kms:us-east-1:123456789012:key/k",
    ]);
    for (name, alarm) in wired["alarms"].as_object().unwrap() {
        for actions in ["AlarmActions", "OKActions"] {
            assert_eq!(
                alarm[actions],
                serde_json::json!(["arn:aws:sns:us-east-1:123456789012:ops"]),
                "{name} {actions}"
            );
        }
    }
    assert!(
        wired["function"].get("ReservedConcurrentExecutions").is_none(),
        "0 leaves the function uncapped"
    );
    let key = "arn:aws:kms:us-east-1:123456789012:key/k";
    assert_eq!(wired["function"]["KmsKeyArn"], key);
    assert_eq!(wired["secretKms"], key);
    for group in ["LogGroup", "AccessLogGroup"] {
        assert_eq!(wired["logGroups"][group]["KmsKeyId"], key, "{group}");
    }
    assert_eq!(
        wired["kmsPolicy"]["PolicyDocument"]["Statement"],
        serde_json::json!([{"Effect": "Allow", "Action": "kms:Decrypt", "Resource": key}]),
        "the function may decrypt with that key and nothing more"
    );
}

#[test]
fn the_sts_throttling_alarm_watches_the_metric_its_log_filter_counts() {
    let ops = operations(&[]);
    let filter = &ops["metricFilters"]["StsThrottledMetricFilter"];
    assert_eq!(filter["LogGroupName"], "LogGroup", "the function's own log group");
    assert_eq!(filter["FilterPattern"], r#"{ $.fields.outcome = "Throttled" }"#);
    let metric = &filter["MetricTransformations"][0];
    let alarm = &ops["alarms"]["StsThrottlingAlarm"];
    assert_eq!(alarm["Namespace"], metric["MetricNamespace"]);
    assert_eq!(alarm["MetricName"], metric["MetricName"]);
    let outcomes = &ops["metricFilters"]["VendOutcomeMetricFilter"];
    assert_eq!(outcomes["FilterPattern"], r#"{ $.fields.outcome = "*" }"#);
    assert_eq!(
        outcomes["MetricTransformations"][0]["Dimensions"],
        serde_json::json!([{"Key": "Outcome", "Value": "$.fields.outcome"}])
    );
}

#[test]
fn empty_function_parameters_create_no_rule_and_no_permission_for_iot() {
    let ops = operations(&[]);
    for rule in ["ClientMessagesRule", "ConnectionEventsRule"] {
        assert_eq!(ops["rules"][rule], serde_json::Value::Null, "{rule}");
    }
    let for_iot = ops["permissions"]
        .as_object()
        .unwrap()
        .values()
        .filter(|p| p["Principal"] == "iot.amazonaws.com")
        .count();
    assert_eq!(for_iot, 0);
    assert_eq!(ops["alarms"]["RuleFailuresAlarm"], serde_json::Value::Null);
}

#[test]
fn the_rules_name_their_sql_version_invoke_only_from_their_own_arn_and_log_failures() {
    let echo = "arn:aws:lambda:us-east-1:123456789012:function:echo";
    let presence = "arn:aws:lambda:us-east-1:123456789012:function:presence";
    let ops = operations(&[
        &format!("ClientMessagesFunctionArn={echo}"),
        &format!("ConnectionEventsFunctionArn={presence}"),
    ]);
    for (rule, permission, function) in [
        ("ClientMessagesRule", "ClientMessagesPermission", echo),
        ("ConnectionEventsRule", "ConnectionEventsPermission", presence),
    ] {
        let payload = &ops["rules"][rule]["TopicRulePayload"];
        // The API's default is 2015-10-08; the template never relies on it.
        assert_eq!(payload["AwsIotSqlVersion"], "2016-03-23", "{rule}");
        assert_eq!(payload["Actions"][0]["Lambda"]["FunctionArn"], function);
        assert_eq!(
            payload["ErrorAction"]["CloudwatchLogs"]["LogGroupName"],
            "RuleErrorLogGroup"
        );
        let grant = &ops["permissions"][permission];
        assert_eq!(grant["Principal"], "iot.amazonaws.com");
        assert_eq!(grant["FunctionName"], function);
        assert_eq!(grant["SourceArn"], format!("{rule}.Arn"), "only this rule may invoke");
        assert_eq!(grant["SourceAccount"], "123456789012");
    }
    assert_eq!(ops["alarms"]["RuleFailuresAlarm"]["MetricName"], "RuleFailures");
    let writes = &ops["ruleErrorRole"]["Policies"][0]["PolicyDocument"]["Statement"][0];
    assert_eq!(
        writes["Resource"], "RuleErrorLogGroup.Arn",
        "the error role writes that log group only"
    );
}

#[test]
fn the_templates_rule_sql_runs_on_the_local_rules_engine_and_takes_the_sender_from_the_topic() {
    use serverless_websockets_local::rules::sql::{Context, Output, Sql, SqlVersion, payload_json};
    let ops = operations(&["ClientMessagesFunctionArn=arn:aws:lambda:us-east-1:123456789012:function:echo"]);
    let payload = &ops["rules"]["ClientMessagesRule"]["TopicRulePayload"];
    let sql = Sql::parse(payload["Sql"].as_str().unwrap(), SqlVersion::V2016_03_23).unwrap();
    assert_eq!(sql.from(), Some("from/+"));
    let message = br#"{"text":"hi","sender":"someone-else"}"#;
    let json = payload_json(message);
    let context = Context {
        version: SqlVersion::V2016_03_23,
        topic: "from/abc",
        client_id: Some("abc"),
        principal: Some("AROAEXAMPLE:abc"),
        timestamp_ms: 1,
        account_id: "123456789012",
        trace_id: None,
        payload: message,
        json: json.as_ref(),
    };
    let Some(Output::Json(event)) = sql.evaluate(&context) else {
        panic!("the rule matches every message on its topics");
    };
    assert_eq!(event["sender"], "abc", "the topic wins over the payload's claim");
    assert_eq!(event["text"], "hi");
    assert_eq!(event["clientId"], "abc");
}

#[test]
fn the_token_authorizer_is_optional_signed_or_not_and_invoked_only_by_iot_for_itself() {
    let off = operations(&[]);
    assert_eq!(off["authorizers"], serde_json::json!({}));
    assert!(off["authorizerFunction"].is_null());

    let on = operations(&[
        "AuthorizerCodeS3Key=serverless-websockets/authorizer-1.zip",
        "AuthMode=jwt",
        "CodeS3Bucket=code",
    ]);
    let authorizer = &on["authorizers"]["TokenAuthorizer"];
    assert_eq!(authorizer["AuthorizerName"], "sw-jwt");
    assert_eq!(authorizer["AuthorizerFunctionArn"], "AuthorizerFunction.Arn");
    assert_eq!(authorizer["SigningDisabled"], true);
    assert_eq!(authorizer["TokenKeyName"], "token");
    assert!(authorizer.get("TokenSigningPublicKeys").is_none());
    let grant = &on["permissions"]["AuthorizerPermission"];
    assert_eq!(grant["Principal"], "iot.amazonaws.com");
    assert_eq!(
        grant["SourceArn"], "TokenAuthorizer.Arn",
        "only this authorizer may invoke"
    );
    assert_eq!(grant["SourceAccount"], "123456789012");
    let function = &on["authorizerFunction"];
    assert_eq!(function["Timeout"], 5, "IoT waits 5 s");
    let variables = function["Environment"]["Variables"].as_object().unwrap();
    assert_eq!(variables["IOT_ACCOUNT_ID"], "123456789012");
    assert!(
        variables.keys().all(|k| k != "JWT_HS256_SECRET"),
        "secrets never in the environment"
    );
    assert!(on["alarms"]["AuthorizerErrorsAlarm"].is_object());

    let pem = "-----BEGIN PUBLIC KEY-----\nMIIB\n-----END PUBLIC KEY-----";
    let signed = operations(&[
        "AuthorizerCodeS3Key=k.zip",
        "AuthMode=jwt",
        "CodeS3Bucket=code",
        &format!("AuthorizerTokenSigningPublicKey={pem}"),
        "AuthorizerReservedConcurrency=20",
    ]);
    let authorizer = &signed["authorizers"]["TokenAuthorizer"];
    assert_eq!(authorizer["SigningDisabled"], false);
    assert_eq!(authorizer["TokenSigningPublicKeys"]["key1"], pem);
    assert_eq!(signed["authorizerFunction"]["ReservedConcurrentExecutions"], "20");
}

#[test]
fn deploy_sh_refuses_a_missing_auth_mode_before_building_or_uploading() {
    let moto = common::tools::Moto::start();
    let dir = tempfile::tempdir().unwrap();
    let zip = dir.path().join("bootstrap.zip");
    std::fs::write(&zip, b"PK\x05\x06\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0").unwrap();
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/cloudformation/deploy.sh");
    let tools_dir = tool("aws").parent().unwrap().to_owned();
    let path = format!("{}:{}", tools_dir.display(), std::env::var("PATH").unwrap_or_default());
    let mut deploy = Command::new("bash");
    deploy
        .args([
            script,
            "deploy",
            "--stack",
            "sw-new",
            "--bucket",
            "no-such-bucket",
            "--zip",
        ])
        .arg(&zip)
        .args([
            "--iot-endpoint",
            "abc123-ats.iot.us-east-1.amazonaws.com",
            "CorsAllowOrigins=https://a.example",
        ])
        .env("PATH", path)
        .env("AWS_ENDPOINT_URL", &moto.url);
    let output = aws_env(&mut deploy, "test", "test", None, "us-east-1")
        .output()
        .unwrap();
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("deploy needs AuthMode=jwt"), "{stderr}");
    assert!(!stderr.contains("NoSuchBucket"), "refused before the upload: {stderr}");
}
