//! `serverless-websockets ban`: takes users out now, on AWS and on the local
//! stack, through the same two AWS APIs.
//!
//! 1. The client role's ban policy (`bans`, an inline policy) gets or loses the
//!    users' source identities in its `BannedUsers` Deny (IAM `GetRolePolicy`,
//!    then `PutRolePolicy`, or `DeleteRolePolicy` once it is empty). AWS applies
//!    it to the credentials the users already hold; the vending API reads it and
//!    refuses them.
//! 2. Their live connections are closed (IoT `DeleteConnection`, the persistent
//!    session discarded, no Last Will): the client IDs given with `--close`, and
//!    those the app's presence records name (`--presence-prefix`).
//!
//! IAM has no conditional write: two bans at the same instant can lose one; run
//! them one after another.

use aws_sdk_iam::error::{ProvideErrorMetadata, SdkError};
use serde_json::{Value, json};

use serverless_websockets_vending::bans::{DEFAULT_BAN_POLICY_NAME, decode_policy_document, edit};
use serverless_websockets_vending::issuer::{load_sdk_config, source_identity};

#[derive(clap::Args)]
pub struct BanArgs {
    /// The users, by the `sub` their tokens carry.
    #[arg(required = true, value_name = "SUB")]
    pub subs: Vec<String>,
    /// Lift the ban instead of placing it.
    #[arg(long)]
    pub lift: bool,
    /// The client role's name (the stack's `ClientRoleName` output).
    #[arg(long, env = "CLIENT_ROLE_NAME", default_value = "serverless-websockets-client")]
    pub role_name: String,
    /// The inline policy that holds the bans (the vending API's `BAN_POLICY_NAME`).
    #[arg(long, default_value = DEFAULT_BAN_POLICY_NAME)]
    pub policy_name: String,
    /// Close this client's connection now (repeatable).
    #[arg(long = "close", value_name = "CLIENT_ID")]
    pub close: Vec<String>,
    /// Also close the clients your app's presence records name: retained messages
    /// under this topic prefix whose JSON has `"sub"` equal to one of the users;
    /// the rest of the topic is the client ID (e.g. `chat/presence/`).
    #[arg(long, value_name = "TOPIC_PREFIX")]
    pub presence_prefix: Option<String>,
    /// IAM's endpoint (the local stack: its STS port, http://127.0.0.1:4600).
    #[arg(long, value_name = "URL")]
    pub iam_endpoint_url: Option<String>,
    /// The IoT data endpoint (`aws iot describe-endpoint --endpoint-type
    /// iot:Data-ATS`, as https://…; the local stack: http://127.0.0.1:8443).
    #[arg(long, value_name = "URL")]
    pub iot_endpoint_url: Option<String>,
}

/// Runs the command; prints what it did as one JSON object.
pub async fn run(args: BanArgs) -> anyhow::Result<()> {
    let sdk = load_sdk_config().await;
    let iam = match &args.iam_endpoint_url {
        Some(url) => aws_sdk_iam::Client::from_conf(aws_sdk_iam::config::Builder::from(&sdk).endpoint_url(url).build()),
        None => aws_sdk_iam::Client::new(&sdk),
    };
    let ids: Vec<String> = args.subs.iter().map(|sub| source_identity(sub)).collect();
    let (ban, lift) = if args.lift {
        (vec![], ids.clone())
    } else {
        (ids.clone(), vec![])
    };
    let current = read_policy(&iam, &args).await?;
    match edit(current.as_deref(), &ban, &lift)? {
        Some(document) => {
            iam.put_role_policy()
                .role_name(&args.role_name)
                .policy_name(&args.policy_name)
                .policy_document(document)
                .send()
                .await
                .map_err(|e| iam_error("PutRolePolicy", &e))?;
        }
        None if current.is_some() => {
            iam.delete_role_policy()
                .role_name(&args.role_name)
                .policy_name(&args.policy_name)
                .send()
                .await
                .map_err(|e| iam_error("DeleteRolePolicy", &e))?;
        }
        None => {}
    }
    let mut report = json!({
        "role": args.role_name, "policy": args.policy_name,
        if args.lift { "lifted" } else { "banned" }: ids,
    });
    if !args.lift {
        let (closed, not_connected) = close_connections(&sdk, &args).await?;
        report["closed"] = json!(closed);
        report["notConnected"] = json!(not_connected);
    }
    println!("{report}");
    Ok(())
}

/// The ban policy's document, decoded, or `None` when the role has none.
async fn read_policy(iam: &aws_sdk_iam::Client, args: &BanArgs) -> anyhow::Result<Option<String>> {
    match iam
        .get_role_policy()
        .role_name(&args.role_name)
        .policy_name(&args.policy_name)
        .send()
        .await
    {
        Ok(output) => decode_policy_document(output.policy_document())
            .map(Some)
            .ok_or_else(|| anyhow::anyhow!("the ban policy is not UTF-8 once decoded")),
        Err(SdkError::ServiceError(e)) if e.err().is_no_such_entity_exception() => {
            // No policy yet, or no such role: PutRolePolicy tells which.
            Ok(None)
        }
        Err(e) => Err(iam_error("GetRolePolicy", &e)),
    }
}

fn iam_error<E: ProvideErrorMetadata + std::fmt::Debug, R: std::fmt::Debug>(
    operation: &str,
    err: &SdkError<E, R>,
) -> anyhow::Error {
    anyhow::anyhow!("IAM {operation}: {}", describe(err))
}

/// Closes `--close` clients and those the presence records name: the client
/// IDs closed, and those that were not connected.
async fn close_connections(sdk: &aws_config::SdkConfig, args: &BanArgs) -> anyhow::Result<(Vec<String>, Vec<String>)> {
    if args.close.is_empty() && args.presence_prefix.is_none() {
        return Ok((vec![], vec![]));
    }
    let data = match &args.iot_endpoint_url {
        Some(url) => aws_sdk_iotdataplane::Client::from_conf(
            aws_sdk_iotdataplane::config::Builder::from(sdk)
                .endpoint_url(url)
                .build(),
        ),
        None => aws_sdk_iotdataplane::Client::new(sdk),
    };
    let mut clients = args.close.clone();
    if let Some(prefix) = &args.presence_prefix {
        clients.extend(present(&data, prefix, &args.subs).await?);
    }
    clients.sort();
    clients.dedup();
    let (mut closed, mut not_connected) = (vec![], vec![]);
    for client in clients {
        let answer = data
            .delete_connection()
            .client_id(&client)
            .clean_session(true)
            .prevent_will_message(true)
            .send()
            .await;
        match answer {
            Ok(_) => closed.push(client),
            Err(SdkError::ServiceError(e)) if e.err().is_resource_not_found_exception() => not_connected.push(client),
            Err(e) => anyhow::bail!("IoT DeleteConnection {client}: {}", describe(&e)),
        }
    }
    Ok((closed, not_connected))
}

/// The client IDs of the presence records under `prefix` that name one of `subs`.
async fn present(data: &aws_sdk_iotdataplane::Client, prefix: &str, subs: &[String]) -> anyhow::Result<Vec<String>> {
    let mut found = Vec::new();
    let mut pages = data.list_retained_messages().into_paginator().send();
    while let Some(page) = pages.next().await {
        let page = page.map_err(|e| anyhow::anyhow!("IoT ListRetainedMessages: {}", describe(&e)))?;
        for summary in page.retained_topics() {
            let Some(client) = summary.topic().and_then(|t| t.strip_prefix(prefix)) else {
                continue;
            };
            let record = data
                .get_retained_message()
                .topic(summary.topic().unwrap_or_default())
                .send()
                .await
                .map_err(|e| anyhow::anyhow!("IoT GetRetainedMessage: {}", describe(&e)))?;
            let sub = record
                .payload()
                .and_then(|p| serde_json::from_slice::<Value>(p.as_ref()).ok())
                .and_then(|v| v.get("sub").and_then(Value::as_str).map(str::to_owned));
            if sub.is_some_and(|s| subs.contains(&s)) {
                found.push(client.to_owned());
            }
        }
    }
    Ok(found)
}

fn describe<E: ProvideErrorMetadata + std::fmt::Debug, R: std::fmt::Debug>(err: &SdkError<E, R>) -> String {
    match err {
        SdkError::ServiceError(e) => format!(
            "{}: {}",
            e.err().code().unwrap_or("Unknown"),
            e.err().message().unwrap_or_default()
        ),
        other => format!("{other:?}"),
    }
}
