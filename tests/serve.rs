//! `serverless-websockets serve` as a user runs it: configured from the
//! environment, STS at moto through `AWS_ENDPOINT_URL_STS`, stopped with SIGTERM.

mod common;

use common::tools::Moto;

#[tokio::test]
async fn serve_answers_a_post_with_credentials_from_moto_and_stops_on_sigterm() {
    let moto = Moto::start();
    let serve = common::tools::ServeProcess::start(&moto, &[("AUTH_MODE", "none")]);
    let url = serve.url.clone();

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

    let log = serve.stop();
    assert!(log.contains("shut down"), "graceful shutdown after SIGTERM: {log}");
    let secret = body["credentials"]["secretAccessKey"].as_str().unwrap();
    assert!(!log.contains(secret), "the secret reached the log");
}
