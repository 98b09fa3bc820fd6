//! Functions AWS IoT topic rules invoke, written the way the
//! aws-lambda-rust-runtime examples are: `main` initialises tracing, builds its
//! AWS client once and runs the handler; the handler takes its client as an
//! argument (a trait, so tests pass a fake) and typed events.
//!
//! * [`echo`] — a client's chat message back to that client only, on its own
//!   topic. The sender is what the rule's SQL took from the **topic**
//!   (`topic(2)` of `from/<clientId>`), which the client's session policy alone
//!   allows it to publish to; a `sender` inside the payload is the client's own
//!   claim and is never trusted.
//! * [`connections`] — `connected` / `disconnected` lifecycle events, logged with
//!   the reason (what a presence feature would store).
//! * [`chat`] — a chat with rooms from the caller's token: members' messages
//!   checked and stamped with the sender and time, arrivals and departures
//!   announced (`docs/chat.md`).
//! * [`grants`] — a grants function: the vending API asks it which rooms a
//!   caller is in (membership from a table, where an app would query its database).
//!
//! The rules that feed them are in `docs/receive-from-clients.md`; locally they
//! run under `cargo lambda watch` and the stack's `--lambda-endpoint`.
//!
//! Not here: the vending service, the rules themselves.

pub mod chat;
pub mod connections;
pub mod echo;
pub mod grants;

/// How a function pushes to a client: `iot-data publish`, behind a trait so the
/// handlers are tested without AWS.
#[async_trait::async_trait]
pub trait Publisher: Send + Sync {
    async fn publish(&self, topic: &str, payload: Vec<u8>) -> Result<(), lambda_runtime::Error>;
}

/// The real one: the AWS SDK's IoT data-plane client (its endpoint from
/// `AWS_ENDPOINT_URL_IOT_DATA_PLANE` locally, the account's ATS endpoint on AWS).
pub struct IotData(pub aws_sdk_iotdataplane::Client);

#[async_trait::async_trait]
impl Publisher for IotData {
    async fn publish(&self, topic: &str, payload: Vec<u8>) -> Result<(), lambda_runtime::Error> {
        self.0
            .publish()
            .topic(topic)
            .qos(1)
            .payload(aws_sdk_iotdataplane::primitives::Blob::new(payload))
            .send()
            .await?;
        Ok(())
    }
}
