//! Test fixtures shared by the integration tests: fake AWS peers on port 0,
//! and third-party tools (the fake Lambda Runtime API is with the Lambda test, in
//! `vending/tests/`).
#![allow(dead_code)]

pub mod mqtt;
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
