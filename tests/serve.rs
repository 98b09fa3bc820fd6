//! `serverless-websockets serve` as a user runs it: configured from the
//! environment, STS at moto through `AWS_ENDPOINT_URL_STS`, stopped with SIGTERM.

mod common;

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};

use common::tools::Moto;

#[tokio::test]
async fn serve_answers_a_post_with_credentials_from_moto_and_stops_on_sigterm() {
    let moto = Moto::start();
    let mut child = Command::new(env!("CARGO_BIN_EXE_serverless-websockets"))
        .args(["serve", "--listen", "127.0.0.1:0"])
        .env_clear()
        .env("AWS_ENDPOINT_URL_STS", &moto.url)
        .env("AWS_ACCESS_KEY_ID", "AKIATESTTESTTESTTEST")
        .env("AWS_SECRET_ACCESS_KEY", "test")
        .env("AWS_REGION", "us-east-1")
        .env("CLIENT_ROLE_ARN", "arn:aws:iam::123456789012:role/ClientRole")
        .env("IOT_ENDPOINT", "abc-ats.iot.us-east-1.amazonaws.com")
        .env("AUTH_MODE", "none")
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(child.stderr.take().unwrap()).lines();
    let url = loop {
        let line = lines.next().expect("serve exited before listening").unwrap();
        if let Some(at) = line.find("http://") {
            break line[at..].trim().to_owned();
        }
    };
    let log = std::thread::spawn(move || lines.map_while(Result::ok).collect::<Vec<_>>().join("\n"));

    let client = reqwest::Client::new();
    let response = client.post(&url).send().await.unwrap();
    assert_eq!(response.status(), 200);
    let body: serde_json::Value = response.json().await.unwrap();
    assert!(body["credentials"]["accessKeyId"].as_str().unwrap().starts_with("ASIA"));

    let bad = client
        .post(&url)
        .header("content-type", "application/json")
        .body("{")
        .send()
        .await
        .unwrap();
    assert_eq!(bad.status(), 400);
    let after = client.post(&url).send().await.unwrap();
    assert_eq!(after.status(), 200, "the process keeps serving after a bad request");

    let sent = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(sent.success());
    let status = child.wait().unwrap();
    assert!(status.success(), "graceful shutdown exits 0, got {status}");
    let log = log.join().unwrap();
    assert!(log.contains("shut down"), "{log}");
    let secret = body["credentials"]["secretAccessKey"].as_str().unwrap();
    assert!(!log.contains(secret), "the secret reached the log");
}
