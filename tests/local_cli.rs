//! What a newcomer meets running `serverless-websockets local`: every taken port
//! is said at once, each once, with the flags that fix them; `--tls` leaves no CA file behind; the
//! gateway answers an unknown path with IoT's 404.

mod common;

use std::process::Command;

use serverless_websockets_local::stack::{LocalOptions, LocalStack};

#[test]
fn a_taken_port_is_reported_once_with_the_flag_that_picks_another() {
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = taken.local_addr().unwrap().port().to_string();
    let output = Command::new(env!("CARGO_BIN_EXE_serverless-websockets"))
        .args(["local", "--api-port", &port, "--sts-port", "0", "--iot-port", "0"])
        .env("NO_COLOR", "1")
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(stderr.matches("cannot listen").count(), 1, "{stderr}");
    assert!(stderr.contains("Another local stack"), "{stderr}");
    assert!(stderr.contains("--api-port PORT"), "{stderr}");
}

#[test]
fn every_taken_port_is_reported_at_once_each_os_error_once() {
    let taken: Vec<std::net::TcpListener> = (0..3)
        .map(|_| std::net::TcpListener::bind("127.0.0.1:0").unwrap())
        .collect();
    let port = |i: usize| taken[i].local_addr().unwrap().port().to_string();
    let output = Command::new(env!("CARGO_BIN_EXE_serverless-websockets"))
        .args([
            "local",
            "--api-port",
            &port(0),
            "--sts-port",
            &port(1),
            "--iot-port",
            &port(2),
        ])
        .env("NO_COLOR", "1")
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(stderr.matches("cannot listen").count(), 3, "{stderr}");
    assert_eq!(
        stderr.matches("Address already in use").count(),
        3,
        "each once: {stderr}"
    );
    assert!(
        stderr.contains("--sts-port PORT --api-port PORT --iot-port PORT"),
        "{stderr}"
    );
}

#[tokio::test]
async fn the_temporary_ca_of_tls_is_removed_at_shutdown() {
    let stack = LocalStack::start(LocalOptions {
        tls: true,
        ..LocalOptions::ephemeral()
    })
    .await
    .unwrap();
    let ca = std::path::PathBuf::from(stack.info().ca_cert.clone().unwrap());
    assert!(ca.is_file(), "{} exists while the stack runs", ca.display());
    stack.shutdown().await;
    assert!(!ca.exists(), "{} is gone after shutdown", ca.display());
}

#[tokio::test]
async fn a_ca_file_the_user_chose_is_kept() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("ca.pem");
    let stack = LocalStack::start(LocalOptions {
        tls: true,
        ca_cert_path: Some(path.clone()),
        ..LocalOptions::ephemeral()
    })
    .await
    .unwrap();
    stack.shutdown().await;
    assert!(path.is_file());
}

#[tokio::test]
async fn an_unknown_gateway_path_gets_iots_404() {
    let stack = LocalStack::start(LocalOptions::ephemeral()).await.unwrap();
    let response = reqwest::get(format!("{}/ws", stack.info().iot_data_endpoint))
        .await
        .unwrap();
    assert_eq!(response.status(), 404);
    assert_eq!(response.headers()["x-amzn-errortype"], "ResourceNotFoundException:");
    stack.shutdown().await;
}

/// `serverless-websockets local` as a process on free ports, with its log read
/// line by line from a reader thread; killed on drop.
struct LocalProcess {
    child: std::process::Child,
    log: std::sync::mpsc::Receiver<String>,
    info: serde_json::Value,
    _dir: tempfile::TempDir,
}

const LOG_WAIT: std::time::Duration = std::time::Duration::from_secs(30);

impl LocalProcess {
    fn start() -> Self {
        Self::start_with(|local| local)
    }

    /// The same with the command changed first by `wrap` (an environment
    /// variable, a wrapper program such as `prlimit`).
    fn start_with(wrap: impl FnOnce(std::process::Command) -> std::process::Command) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let ready = dir.path().join("ready.json");
        let mut child = wrap(common::local_command(&ready, &[]))
            .env("NO_COLOR", "1")
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        let (lines, log) = std::sync::mpsc::channel::<String>();
        let stderr = child.stderr.take().unwrap();
        std::thread::spawn(move || {
            use std::io::BufRead;
            for line in std::io::BufReader::new(stderr).lines().map_while(Result::ok) {
                if lines.send(line).is_err() {
                    break;
                }
            }
        });
        let mut process = Self {
            child,
            log,
            info: serde_json::Value::Null,
            _dir: dir,
        };
        process.log_line("local stack ready");
        process.info = serde_json::from_slice(&std::fs::read(&ready).unwrap()).unwrap();
        process
    }

    /// The next log line containing `needle`.
    fn log_line(&self, needle: &str) -> String {
        std::iter::from_fn(|| self.log.recv_timeout(LOG_WAIT).ok())
            .find(|line| line.contains(needle))
            .unwrap_or_else(|| panic!("no log line with {needle:?}"))
    }

    fn credentials(&self, who: &str) -> aws_credential_types::Credentials {
        aws_credential_types::Credentials::new(
            self.info[who]["access_key_id"].as_str().unwrap(),
            self.info[who]["secret_access_key"].as_str().unwrap(),
            None,
            None,
            "local",
        )
    }
}

impl Drop for LocalProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[tokio::test]
async fn a_publish_that_reaches_nobody_and_a_refused_one_are_logged_with_the_topic_and_the_rule() {
    let local = LocalProcess::start();
    let endpoint = local.info["iot_data_endpoint"].as_str().unwrap().to_owned();
    let backend = local.credentials("backend");
    let nobody = common::mqtt::https_publish(&endpoint, "us-east-1", &backend, "allowed/nobody", "", b"x").await;
    assert_eq!(nobody.status(), 200);
    let line = local.log_line("no subscriber");
    assert!(
        line.contains("WARN") && line.contains("no subscriber for topic allowed/nobody"),
        "{line}"
    );

    let refused = common::mqtt::https_publish(&endpoint, "us-east-1", &backend, "elsewhere/x", "", b"x").await;
    assert_eq!(refused.status(), 403);
    let line = local.log_line("refused");
    assert!(line.contains("WARN"), "{line}");
    assert!(
        line.contains("iot:Publish on arn:aws:iot:us-east-1:000000000000:topic/elsewhere/x refused: no statement allows it in the identity's policies"),
        "{line}"
    );
}

#[tokio::test]
async fn a_publish_a_rule_reads_or_a_retained_one_is_not_logged_as_reaching_nobody() {
    let dir = tempfile::tempdir().unwrap();
    let rules = dir.path().join("rules.json");
    let rule = serde_json::json!([{"ruleName": "reads", "topicRulePayload": {
        "sql": "SELECT * FROM 'allowed/ruled'", "awsIotSqlVersion": "2016-03-23",
        "actions": [{"republish": {"topic": "allowed/republished", "roleArn": "arn:aws:iam::000000000000:role/r"}}]}}]);
    std::fs::write(&rules, rule.to_string()).unwrap();
    let local = LocalProcess::start_with(|mut local| {
        local.arg("--rules").arg(&rules);
        local
    });
    let endpoint = local.info["iot_data_endpoint"].as_str().unwrap().to_owned();
    // The admin: the backend identity may not retain.
    let admin = local.credentials("admin");
    for (topic, query) in [
        ("allowed/ruled", ""),
        ("allowed/kept", "retain=true"),
        ("allowed/nobody", ""),
    ] {
        let published = common::mqtt::https_publish(&endpoint, "us-east-1", &admin, topic, query, b"x").await;
        assert_eq!(published.status(), 200, "{topic}");
    }
    let line = local.log_line("no subscriber");
    assert!(
        line.contains("allowed/nobody"),
        "the first such line is the last publish's: {line}"
    );
}

#[tokio::test]
async fn vending_with_nobody_banned_logs_no_warning() {
    let local = LocalProcess::start();
    // The API reads the `bans` policy, which is absent until someone is banned.
    common::mqtt::vend(local.info["api_url"].as_str().unwrap()).await;
    let endpoint = local.info["iot_data_endpoint"].as_str().unwrap().to_owned();
    let refused = common::mqtt::https_publish(
        &endpoint,
        "us-east-1",
        &local.credentials("backend"),
        "elsewhere/x",
        "",
        b"x",
    )
    .await;
    assert_eq!(refused.status(), 403);
    let line = local.log_line("WARN");
    assert!(
        line.contains("elsewhere/x"),
        "the first warning is the refused publish's: {line}"
    );
}

#[tokio::test]
async fn a_url_presigned_for_another_host_name_is_refused_with_a_hint_in_the_log() {
    let local = LocalProcess::start();
    let info = &local.info;
    let port = info["iot_endpoint"]
        .as_str()
        .unwrap()
        .rsplit(':')
        .next()
        .unwrap()
        .to_owned();
    // Signed for localhost, sent to 127.0.0.1: the Host header is part of the signature.
    let endpoint = serverless_websockets_core::presign::IotEndpoint::parse(&format!("ws://localhost:{port}")).unwrap();
    let admin = local.credentials("admin");
    let url = serverless_websockets_core::presign::presign(
        &endpoint,
        "us-east-1",
        &admin,
        std::time::SystemTime::now(),
        serverless_websockets_core::presign::DEFAULT_EXPIRES,
    )
    .unwrap();
    let refused = reqwest::Client::new()
        .get(url.replacen(
            &format!("ws://localhost:{port}"),
            &format!("http://127.0.0.1:{port}"),
            1,
        ))
        .header("connection", "Upgrade")
        .header("upgrade", "websocket")
        .header("sec-websocket-version", "13")
        .header("sec-websocket-key", "dGhlIHNhbXBsZSBub25jZQ==")
        .header("sec-websocket-protocol", "mqtt")
        .send()
        .await
        .unwrap();
    assert_eq!(refused.status(), 403);
    let refusal = local.log_line("WebSocket handshake refused");
    assert!(
        refusal.contains(&format!("the request came for host \"127.0.0.1:{port}\"")),
        "{refusal}"
    );
    assert!(refusal.contains("localhost instead of 127.0.0.1"), "{refusal}");
}

#[tokio::test]
async fn a_client_id_with_a_newline_cannot_forge_a_log_line() {
    let local = LocalProcess::start();
    let endpoint =
        serverless_websockets_core::presign::IotEndpoint::parse(local.info["iot_endpoint"].as_str().unwrap()).unwrap();
    let url = serverless_websockets_core::presign::presign(
        &endpoint,
        "us-east-1",
        &local.credentials("admin"),
        std::time::SystemTime::now(),
        serverless_websockets_core::presign::DEFAULT_EXPIRES,
    )
    .unwrap();
    let forged = "evil\n2026-12-05T00:00:00.000000Z  INFO serverless_websockets: admin password changed";
    let mut raw = common::mqtt5::Raw5::open(&url).await;
    raw.connect(forged).await;
    let line = local.log_line("MQTT client connected");
    assert!(line.contains(r"evil\n2026-12-05T00:00:00.000000Z  INFO"), "{line}");
    assert!(line.contains("admin password changed"), "one event, one line: {line}");
}

#[tokio::test]
async fn secrets_are_random_per_start_and_print_env_prints_the_running_stacks() {
    let (one, two) = (LocalProcess::start(), LocalProcess::start());
    let secret = |p: &LocalProcess, who: &str| p.info[who]["secret_access_key"].as_str().unwrap().to_owned();
    for who in ["admin", "backend"] {
        assert_ne!(secret(&one, who), secret(&two, who), "{who}");
        assert!(
            !secret(&one, who).starts_with("local-"),
            "{who}: not the old documented default"
        );
    }
    use std::os::unix::fs::PermissionsExt as _;
    let mode = std::fs::metadata(one._dir.path().join("ready.json"))
        .unwrap()
        .permissions()
        .mode();
    assert_eq!(mode & 0o777, 0o600, "the ready file holds secrets: owner only");
    let output = Command::new(env!("CARGO_BIN_EXE_serverless-websockets"))
        .args(["local", "--print-env", "backend", "--ready-file"])
        .arg(one._dir.path().join("ready.json"))
        .output()
        .unwrap();
    assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
    assert_eq!(
        String::from_utf8_lossy(&output.stdout).trim(),
        format!(
            "export AWS_ACCESS_KEY_ID=AKIALOCALBACKEND0000 AWS_SECRET_ACCESS_KEY={} AWS_DEFAULT_REGION=us-east-1",
            secret(&one, "backend")
        )
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_data_plane_asked_on_the_api_port_says_where_the_gateway_is() {
    let stack = LocalStack::start(LocalOptions::ephemeral()).await.unwrap();
    let api_base = stack.info().api_url.replace("/credentials", "");
    let publish = ["publish", "--topic", "allowed/x", "--payload", "hi"];
    let (ok, _, stderr) =
        tokio::task::block_in_place(|| common::tools::aws_admin(&stack, "iot-data", &api_base, &publish));
    assert!(!ok);
    assert!(
        stderr.contains(&format!("--endpoint-url {}", stack.info().iot_data_endpoint)),
        "{stderr}"
    );
    stack.shutdown().await;
}

#[tokio::test]
async fn local_raises_its_open_file_limit_to_the_hard_limit_at_start() {
    // Started with a soft limit of 1,024 (a login shell's) under a hard one of
    // 4,096: each connection is a file, and 1,024 is what breaks first.
    let local = LocalProcess::start_with(|local| {
        let mut command = std::process::Command::new("prlimit");
        command
            .arg("--nofile=1024:4096")
            .arg("--")
            .arg(local.get_program())
            .args(local.get_args());
        command
    });
    let limits = std::fs::read_to_string(format!("/proc/{}/limits", local.child.id())).unwrap();
    let line = limits.lines().find(|l| l.starts_with("Max open files")).unwrap();
    let numbers: Vec<&str> = line.split_whitespace().filter(|w| w.parse::<u64>().is_ok()).collect();
    assert_eq!(numbers, ["4096", "4096"], "{line}");
}

/// mimalloc marks its arena for transparent huge pages, and khugepaged's
/// collapsing of it stepped the gateway's memory up ~11 minutes into a run: the
/// binary turns them off for itself (`MIMALLOC_ALLOW_THP` keeps them).
#[test]
fn local_runs_without_transparent_huge_pages() {
    let local = LocalProcess::start_with(|mut local| {
        local.env_remove("MIMALLOC_ALLOW_THP");
        local
    });
    let status = std::fs::read_to_string(format!("/proc/{}/status", local.child.id())).unwrap();
    let line = status
        .lines()
        .find(|l| l.starts_with("THP_enabled:"))
        .expect("the kernel reports THP_enabled in /proc/PID/status (Linux 6.0+)");
    assert_eq!(line.split_whitespace().nth(1), Some("0"), "{line}");
}
