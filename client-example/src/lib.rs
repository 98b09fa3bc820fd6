//! A native Rust client for serverless-websockets.
//!
//! It asks the credential-vending API for temporary credentials, presigns a SigV4
//! `wss://…/mqtt` URL with them (the same settings AWS IoT requires: service
//! `iotdevicegateway`, session token appended after the signature), connects with
//! `rumqttc` over WebSocket, subscribes to the client's own topic, and stays
//! connected: a fresh URL for every reconnect, new credentials before the old ones
//! expire, exponential backoff with jitter.
//!
//! * [`credentials`] — [`fetch_credentials`], the vended JSON, when to refresh.
//! * [`presign`] — the URL, pure and deterministic for a given time.
//! * [`driver`] — the long-lived connection and its [`Event`]s.
//! * [`tls`] — web PKI roots for AWS, or a given CA for the local stack.
//!
//! ```no_run
//! use std::ops::ControlFlow;
//! use client_example::{Driver, Event, HttpSource, Options};
//!
//! # async fn demo() -> Result<(), client_example::DriverError> {
//! let source = HttpSource::new("https://abc123.execute-api.us-east-1.amazonaws.com/credentials", None);
//! let mut driver = Driver::new(source, Options::default());
//! let on_event = |event: Event| {
//!     if let Event::Message { topic, payload } = event {
//!         println!("{topic}: {}", String::from_utf8_lossy(&payload));
//!     }
//!     ControlFlow::Continue(())
//! };
//! let ctrl_c = async {
//!     let _ = tokio::signal::ctrl_c().await;
//! };
//! driver.run(on_event, ctrl_c).await
//! # }
//! ```

pub mod credentials;
pub mod driver;
pub mod tls;

use std::time::SystemTime;

pub use credentials::{
    CredentialSource, Credentials, FetchError, HttpSource, Obtained, ResumeToken, Vended, fetch_credentials, obtain,
};
pub use driver::{Driver, DriverError, Event, Options};
use serverless_websockets_core::presign::{DEFAULT_EXPIRES, EndpointError, IotEndpoint, PresignError};

#[derive(Debug, thiserror::Error)]
pub enum UrlError {
    #[error(transparent)]
    Endpoint(#[from] EndpointError),
    #[error(transparent)]
    Presign(#[from] PresignError),
}

/// Presigns `GET /mqtt` on `endpoint` (`wss://host`, a bare host, or the local
/// `ws://127.0.0.1:port`) for `region` at `now`. Pure: the same inputs give the
/// same URL, byte for byte what botocore's `SigV4QueryAuth` gives with the token
/// appended after signing.
pub fn presign(endpoint: &str, region: &str, credentials: &Credentials, now: SystemTime) -> Result<String, UrlError> {
    let endpoint = IotEndpoint::parse(endpoint)?;
    Ok(serverless_websockets_core::presign::presign(
        &endpoint,
        region,
        &credentials.to_sdk(),
        now,
        DEFAULT_EXPIRES,
    )?)
}
