//! A recording STS on port 0: answers `AssumeRole` with canned credentials or a
//! scripted error, and keeps every form it received so tests can assert what STS
//! was actually sent (moto accepts anything, so it cannot tell us that).

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex};

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::IntoResponse;

pub const ACCESS_KEY_ID: &str = "ASIAFAKESTSKEY000001";
pub const SECRET_ACCESS_KEY: &str = "fake-sts-secret-DO-NOT-LOG";
pub const SESSION_TOKEN: &str = "fake-sts-session-token-DO-NOT-LOG";
pub const EXPIRATION: &str = "2030-01-01T00:00:00Z";

#[derive(Debug, Clone)]
pub enum Reply {
    Credentials,
    Error {
        status: u16,
        code: &'static str,
        message: &'static str,
    },
}

#[derive(Debug, Clone)]
pub struct Recorded {
    pub form: HashMap<String, String>,
    pub authorization: String,
}

#[derive(Clone, Default)]
pub struct FakeSts {
    pub url: String,
    recorded: Arc<Mutex<Vec<Recorded>>>,
    script: Arc<Mutex<VecDeque<Reply>>>,
}

impl FakeSts {
    /// Starts the fake; it answers with credentials unless told otherwise.
    pub async fn start() -> Self {
        let mut fake = FakeSts::default();
        let router = axum::Router::new().fallback(answer).with_state(fake.clone());
        fake.url = format!("http://{}", super::serve(router).await);
        fake
    }

    /// Queues replies for the next requests, in order.
    pub fn then(&self, replies: impl IntoIterator<Item = Reply>) {
        self.script.lock().unwrap().extend(replies);
    }

    pub fn requests(&self) -> Vec<Recorded> {
        self.recorded.lock().unwrap().clone()
    }
}

async fn answer(State(fake): State<FakeSts>, headers: HeaderMap, body: Bytes) -> impl IntoResponse {
    let form: HashMap<String, String> = url::form_urlencoded::parse(&body).into_owned().collect();
    let authorization = headers
        .get("authorization")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_owned();
    fake.recorded.lock().unwrap().push(Recorded {
        form: form.clone(),
        authorization,
    });
    let reply = fake.script.lock().unwrap().pop_front().unwrap_or(Reply::Credentials);
    let xml_type = [("content-type", "text/xml")];
    match reply {
        Reply::Credentials => {
            let session = form.get("RoleSessionName").cloned().unwrap_or_default();
            let body = format!(
                r#"<AssumeRoleResponse xmlns="https://sts.amazonaws.com/doc/2011-06-15/">
  <AssumeRoleResult>
    <Credentials>
      <AccessKeyId>{ACCESS_KEY_ID}</AccessKeyId>
      <SecretAccessKey>{SECRET_ACCESS_KEY}</SecretAccessKey>
      <SessionToken>{SESSION_TOKEN}</SessionToken>
      <Expiration>{EXPIRATION}</Expiration>
    </Credentials>
    <AssumedRoleUser>
      <AssumedRoleId>AROAFAKEROLEID:{session}</AssumedRoleId>
      <Arn>arn:aws:sts::123456789012:assumed-role/ClientRole/{session}</Arn>
    </AssumedRoleUser>
    <PackedPolicySize>7</PackedPolicySize>
  </AssumeRoleResult>
  <ResponseMetadata><RequestId>fake-request-id</RequestId></ResponseMetadata>
</AssumeRoleResponse>"#
            );
            (StatusCode::OK, xml_type, body)
        }
        Reply::Error { status, code, message } => {
            let kind = if status >= 500 { "Receiver" } else { "Sender" };
            let body = format!(
                r#"<ErrorResponse xmlns="https://sts.amazonaws.com/doc/2011-06-15/">
  <Error><Type>{kind}</Type><Code>{code}</Code><Message>{message}</Message></Error>
  <RequestId>fake-request-id</RequestId>
</ErrorResponse>"#
            );
            (StatusCode::from_u16(status).unwrap(), xml_type, body)
        }
    }
}
