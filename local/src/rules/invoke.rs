//! The Lambda action: the rule's output POSTed to the real Lambda Invoke API
//! (`POST /2015-03-31/functions/{name}/invocations`, `X-Amz-Invocation-Type:
//! Event`, SigV4 service `lambda`; <https://docs.aws.amazon.com/lambda/latest/api/API_Invoke.html>)
//! at the endpoint `--lambda-endpoint` or `AWS_ENDPOINT_URL_LAMBDA` names, so it
//! works unchanged with `cargo lambda watch`, `sam local start-lambda` and
//! LocalStack.
//!
//! Fire and forget, as IoT invokes asynchronously: the gateway never waits, at
//! most [`MAX_IN_FLIGHT`] invocations run at once (a message over that is a
//! failure, sent to the rule's error action), and each waits at most the
//! stack's `lambda_timeout` (by default [`DEFAULT_TIMEOUT`], Lambda's longest
//! function timeout). On AWS an asynchronous invocation is queued at once; the
//! local endpoints answer only when the function has returned, and `cargo lambda
//! watch` builds the function first (after every change to its code), so a
//! shorter wait would lose the messages that arrive during a build. A function
//! error counts as a failure whether it comes as AWS's 200 with
//! `X-Amz-Function-Error` or as cargo-lambda's 500 (which ignores the invocation
//! type and runs every call synchronously). Requests are signed with `aws-sigv4`.
//!
//! Custom authorizers call the same endpoint synchronously
//! ([`Invoker::request_response`], `X-Amz-Invocation-Type: RequestResponse`)
//! and wait for the answer, at most the timeout they give.
//!
//! Not here: which messages reach a function (the engine, [`super::Engine`]).

use std::sync::Arc;
use std::time::{Duration, SystemTime};

use aws_credential_types::Credentials;
use aws_sigv4::http_request::{SignableBody, SignableRequest, SigningSettings, sign};
use aws_sigv4::sign::v4;
use tokio::sync::Semaphore;

use super::rule::function_name;

/// Invocations in flight at most.
pub const MAX_IN_FLIGHT: usize = 256;
/// How long an asynchronous invocation waits by default: 900 s, the longest
/// timeout a Lambda function can have.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(900);
/// How long connecting to the endpoint may take.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

/// Where and as whom functions are invoked.
pub struct Invoker {
    client: reqwest::Client,
    endpoint: String,
    region: String,
    credentials: Credentials,
    event_timeout: Duration,
    slots: Arc<Semaphore>,
}

/// Why an invocation failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum InvokeError {
    #[error("{MAX_IN_FLIGHT} invocations are in flight; this one was not sent")]
    Busy,
    #[error("the Lambda endpoint could not be reached: {0}")]
    Unreachable(String),
    #[error("the function failed: {0}")]
    FunctionError(String),
    #[error("the Invoke API answered {status}: {body}")]
    Refused { status: u16, body: String },
    #[error("the request could not be signed: {0}")]
    Signing(String),
    #[error("the function did not answer within {} ms", .0.as_millis())]
    Timeout(Duration),
}

impl Invoker {
    /// Invokes at `endpoint`, signed with `credentials`; an asynchronous
    /// invocation not answered within `event_timeout` counts as failed.
    pub fn new(endpoint: &str, region: &str, credentials: Credentials, event_timeout: Duration) -> Self {
        Self {
            client: reqwest::Client::builder()
                .connect_timeout(CONNECT_TIMEOUT)
                .build()
                .unwrap_or_else(|_| reqwest::Client::new()),
            endpoint: endpoint.trim_end_matches('/').to_owned(),
            region: region.to_owned(),
            credentials,
            event_timeout,
            slots: Arc::new(Semaphore::new(MAX_IN_FLIGHT)),
        }
    }

    pub fn endpoint(&self) -> &str {
        &self.endpoint
    }

    /// Invokes `function_arn` with `event` in the background; `failed` is called
    /// with the reason if the invocation fails.
    pub fn invoke(
        self: &Arc<Self>,
        function_arn: &str,
        event: Vec<u8>,
        failed: impl FnOnce(InvokeError) + Send + 'static,
    ) {
        let Ok(slot) = self.slots.clone().try_acquire_owned() else {
            failed(InvokeError::Busy);
            return;
        };
        let this = self.clone();
        let function_arn = function_arn.to_owned();
        tokio::spawn(async move {
            let outcome = tokio::time::timeout(this.event_timeout, this.call(&function_arn, event, "Event"))
                .await
                .unwrap_or(Err(InvokeError::Timeout(this.event_timeout)));
            drop(slot);
            match outcome {
                Ok(_) => tracing::debug!(function = %function_arn, "invoked"),
                Err(error) => failed(error),
            }
        });
    }

    /// Invokes `function_arn` with `event` and waits, at most `timeout`, for
    /// the function's answer (the body of a 200 without `X-Amz-Function-Error`).
    pub async fn request_response(
        &self,
        function_arn: &str,
        event: Vec<u8>,
        timeout: Duration,
    ) -> Result<Vec<u8>, InvokeError> {
        let Ok(_slot) = self.slots.try_acquire() else {
            return Err(InvokeError::Busy);
        };
        tokio::time::timeout(timeout, self.call(function_arn, event, "RequestResponse"))
            .await
            .map_err(|_| InvokeError::Timeout(timeout))?
    }

    async fn call(&self, function_arn: &str, event: Vec<u8>, invocation: &'static str) -> Result<Vec<u8>, InvokeError> {
        let (name, qualifier) = function_name(function_arn);
        let name = percent_encoding::utf8_percent_encode(name, percent_encoding::NON_ALPHANUMERIC);
        let mut url = format!("{}/2015-03-31/functions/{name}/invocations", self.endpoint);
        if let Some(qualifier) = qualifier {
            url.push_str("?Qualifier=");
            url.extend(percent_encoding::utf8_percent_encode(
                qualifier,
                percent_encoding::NON_ALPHANUMERIC,
            ));
        }
        let headers = self.signed_headers(&url, &event, invocation)?;
        let mut request = self.client.post(&url).body(event);
        for (name, value) in headers {
            request = request.header(name, value);
        }
        let response = request
            .send()
            .await
            .map_err(|e| InvokeError::Unreachable(e.to_string()))?;
        let status = response.status().as_u16();
        let function_error = response.headers().contains_key("x-amz-function-error");
        let body = response.bytes().await.unwrap_or_default().to_vec();
        match status {
            200 | 202 | 204 if !function_error => Ok(body),
            200 | 500 if function_error || status == 500 => Err(InvokeError::FunctionError(truncate(body))),
            _ => Err(InvokeError::Refused {
                status,
                body: truncate(body),
            }),
        }
    }

    /// The headers of a signed Invoke of type `invocation`.
    fn signed_headers(
        &self,
        url: &str,
        body: &[u8],
        invocation: &'static str,
    ) -> Result<Vec<(String, String)>, InvokeError> {
        let signing = |e: &dyn std::fmt::Display| InvokeError::Signing(e.to_string());
        let identity = self.credentials.clone().into();
        let params = v4::SigningParams::builder()
            .identity(&identity)
            .region(&self.region)
            .name("lambda")
            .time(SystemTime::now())
            .settings(SigningSettings::default())
            .build()
            .map_err(|e| signing(&e))?
            .into();
        let fixed = [
            ("x-amz-invocation-type", invocation),
            ("content-type", "application/json"),
        ];
        let signable =
            SignableRequest::new("POST", url, fixed.into_iter(), SignableBody::Bytes(body)).map_err(|e| signing(&e))?;
        let (instructions, _) = sign(signable, &params).map_err(|e| signing(&e))?.into_parts();
        let mut headers: Vec<(String, String)> =
            fixed.iter().map(|(n, v)| ((*n).to_owned(), (*v).to_owned())).collect();
        headers.extend(instructions.headers().map(|(n, v)| (n.to_owned(), v.to_owned())));
        Ok(headers)
    }
}

/// The first 512 characters of an answer, for the log.
fn truncate(body: Vec<u8>) -> String {
    let mut body = String::from_utf8_lossy(&body).into_owned();
    if let Some((at, _)) = body.char_indices().nth(512) {
        body.truncate(at);
    }
    body
}
