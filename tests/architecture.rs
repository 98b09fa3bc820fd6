//! The crate boundaries hold: the Lambda artifacts (the vending and authorizer crates) link none of
//! the local stack's emulator dependencies, and the core has no HTTP stack and no
//! AWS SDK (aws-sigv4 brings tokio's `sync` types along, nothing that does I/O).
//!
//! Read from `cargo tree` of the workspace as it is, so adding, say, `rumqttc` to
//! the vending crate fails here before it reaches the zip.

#![allow(
    clippy::expect_used,
    reason = "test code: a panic with its message is the failure report"
)]

use std::collections::BTreeSet;
use std::process::Command;

/// The packages in `package`'s normal-dependency tree, by name.
fn dependency_names(package: &str) -> BTreeSet<String> {
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let output = Command::new(cargo)
        .args([
            "tree",
            "--offline",
            "--locked",
            "-e",
            "normal",
            "--prefix",
            "none",
            "-p",
            package,
        ])
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .output()
        .expect("cargo tree runs");
    assert!(
        output.status.success(),
        "cargo tree -p {package} failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8_lossy(&output.stdout)
        .lines()
        .filter_map(|line| line.split_whitespace().next())
        .map(str::to_owned)
        .collect()
}

/// What only the emulators need: the MQTT codec, WebSockets, the local CA.
const EMULATOR_ONLY: &[&str] = &["rumqttc", "tungstenite", "tokio-tungstenite", "rcgen"];

#[test]
fn the_command_line_tool_runs_the_local_stack_from_its_own_crate() {
    let tool = dependency_names("serverless-websockets");
    assert!(tool.contains("serverless-websockets-local"));
    assert!(tool.contains("serverless-websockets-vending"));
}

#[test]
fn the_lambda_artifacts_link_none_of_the_emulators_dependencies() {
    let local_stack = dependency_names("serverless-websockets-local");
    // The vending function and the JWT custom authorizer: both deployed zips.
    for artifact in ["serverless-websockets-vending", "serverless-websockets-authorizer"] {
        let linked = dependency_names(artifact);
        for name in EMULATOR_ONLY {
            // The local stack does use each of them, so this list cannot go stale quietly.
            assert!(
                local_stack.contains(*name),
                "the local stack no longer depends on {name}"
            );
            assert!(!linked.contains(*name), "{artifact} depends on {name}");
        }
        for emulator in ["serverless-websockets-local", "serverless-websockets"] {
            assert!(!linked.contains(emulator), "{artifact} depends on {emulator}");
        }
    }
}

#[test]
fn the_example_functions_link_neither_the_emulators_nor_the_vending_service() {
    let functions = dependency_names("backend-example");
    for name in EMULATOR_ONLY
        .iter()
        .chain(&["serverless-websockets-local", "serverless-websockets-vending"])
    {
        assert!(!functions.contains(*name), "the example functions depend on {name}");
    }
}

#[test]
fn the_core_has_no_http_stack_no_aws_sdk_and_no_service_code() {
    let core = dependency_names("serverless-websockets-core");
    for name in [
        "hyper",
        "axum",
        "reqwest",
        "aws-config",
        "aws-sdk-sts",
        "lambda_http",
        "serverless-websockets-vending",
        "serverless-websockets-local",
        // tokio's I/O driver and socket layer: the core does no I/O.
        "mio",
        "socket2",
    ] {
        assert!(!core.contains(name), "the core depends on {name}");
    }
    assert!(core.contains("aws-sigv4"), "the core presigns with aws-sigv4");
}
