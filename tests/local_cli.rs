//! What a newcomer meets running `serverless-websockets local`: a taken port is
//! said once, with the flag that fixes it; `--tls` leaves no CA file behind; the
//! gateway answers an unknown path with IoT's 404.

use std::process::Command;

use serverless_websockets::stack::{LocalOptions, LocalStack};

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
