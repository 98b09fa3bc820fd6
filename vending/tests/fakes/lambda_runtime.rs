//! A fake AWS Lambda Runtime API on port 0
//! (<https://docs.aws.amazon.com/lambda/latest/dg/runtimes-api.html>): hands out
//! queued events on `/next` and reports what the function posted back.

#![allow(
    clippy::expect_used,
    reason = "test code: a panic with its message is the failure report"
)]

use std::collections::VecDeque;
use std::sync::{Arc, Mutex};

use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use tokio::sync::mpsc;

#[derive(Debug)]
pub enum Posted {
    Response {
        request_id: String,
        body: serde_json::Value,
    },
    Error {
        path: String,
        body: String,
    },
}

#[derive(Clone)]
struct Shared {
    events: Arc<Mutex<VecDeque<(String, String)>>>,
    posted: mpsc::UnboundedSender<Posted>,
}

pub struct FakeRuntime {
    /// `host:port`, the value of `AWS_LAMBDA_RUNTIME_API`.
    pub address: String,
    shared: Shared,
    posted: mpsc::UnboundedReceiver<Posted>,
}

impl FakeRuntime {
    pub async fn start() -> Self {
        let (tx, rx) = mpsc::unbounded_channel();
        let shared = Shared {
            events: Arc::default(),
            posted: tx,
        };
        let router = axum::Router::new()
            .route("/2018-06-01/runtime/invocation/next", get(next))
            .route("/2018-06-01/runtime/invocation/{id}/response", post(response))
            .route("/2018-06-01/runtime/invocation/{id}/error", post(error))
            .route("/2018-06-01/runtime/init/error", post(init_error))
            .with_state(shared.clone());
        let address = super::serve(router).await.to_string();
        Self {
            address,
            shared,
            posted: rx,
        }
    }

    pub fn push_event(&self, request_id: &str, event: &str) {
        self.shared
            .events
            .lock()
            .unwrap()
            .push_back((request_id.to_owned(), event.to_owned()));
    }

    /// The next thing the function posted back.
    pub async fn posted(&mut self) -> Posted {
        tokio::time::timeout(std::time::Duration::from_secs(30), self.posted.recv())
            .await
            .expect("the function answered within 30 s")
            .expect("runtime channel open")
    }
}

async fn next(State(shared): State<Shared>) -> Response {
    let event = shared.events.lock().unwrap().pop_front();
    match event {
        Some((id, body)) => (
            [
                ("lambda-runtime-aws-request-id", id.as_str()),
                ("lambda-runtime-deadline-ms", "4102444800000"),
                (
                    "lambda-runtime-invoked-function-arn",
                    "arn:aws:lambda:us-east-1:123456789012:function:vend",
                ),
                ("lambda-runtime-trace-id", "Root=1-00000000-000000000000000000000000"),
                ("content-type", "application/json"),
            ],
            body,
        )
            .into_response(),
        // Like the real API: no event yet, so the long poll does not return.
        None => std::future::pending().await,
    }
}

async fn response(State(shared): State<Shared>, Path(id): Path<String>, body: Bytes) -> StatusCode {
    let body = serde_json::from_slice(&body).unwrap_or(serde_json::Value::Null);
    let _ = shared.posted.send(Posted::Response { request_id: id, body });
    StatusCode::ACCEPTED
}

async fn error(State(shared): State<Shared>, Path(id): Path<String>, body: Bytes) -> StatusCode {
    let body = String::from_utf8_lossy(&body).into_owned();
    let _ = shared.posted.send(Posted::Error {
        path: format!("invocation/{id}/error"),
        body,
    });
    StatusCode::ACCEPTED
}

async fn init_error(State(shared): State<Shared>, body: Bytes) -> StatusCode {
    let body = String::from_utf8_lossy(&body).into_owned();
    let _ = shared.posted.send(Posted::Error {
        path: "init/error".into(),
        body,
    });
    StatusCode::ACCEPTED
}
