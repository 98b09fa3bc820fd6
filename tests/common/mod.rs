//! Test fixtures shared by the integration tests: fake AWS peers on port 0,
//! and third-party tools (the fake Lambda Runtime API is with the Lambda test, in
//! `vending/tests/`).

#![allow(
    clippy::expect_used,
    reason = "test code: a panic with its message is the failure report"
)]
#![allow(dead_code)]

pub mod mqtt;
pub mod mqtt5;
pub mod sigv4;
pub mod sts;
pub mod tools;
pub mod vending;

use std::net::SocketAddr;

use tokio::net::TcpListener;

/// Serves `router` on a fresh loopback port; the server lives as long as the runtime.
pub async fn serve(router: axum::Router) -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, router).await.unwrap() });
    addr
}

/// `serverless-websockets local` on ports chosen by the OS, writing its ready file
/// to `ready`, with `extra` arguments; stdout and stderr are the caller's to set.
pub fn local_command(ready: &std::path::Path, extra: &[&str]) -> std::process::Command {
    let mut command = std::process::Command::new(env!("CARGO_BIN_EXE_serverless-websockets"));
    command
        .args([
            "local",
            "--api-port",
            "0",
            "--sts-port",
            "0",
            "--iot-port",
            "0",
            "--ready-file",
        ])
        .arg(ready)
        .args(extra);
    command
}
