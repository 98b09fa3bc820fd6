//! serverless-websockets: real-time push to web and native apps over AWS IoT Core,
//! with no servers to run.
//!
//! A caller POSTs to the credential-vending API; it picks a fresh client ID, asks
//! STS for temporary credentials narrowed by a session policy to that one client's
//! topics, and returns them with a presigned `wss://…/mqtt` URL.
//!
//! Modules, from the pure core outwards:
//!
//! * [`topic`] and [`client_id`] — names that are safe inside a policy resource.
//! * [`policy`] — session-policy builder and IAM policy evaluator.
//! * [`presign`] — SigV4 presigned URLs for the IoT device gateway.
//! * [`config`] — the service's settings, read once from the environment.
//! * [`sts`] — the credential issuer trait and its `aws-sdk-sts` implementation.
//! * [`api`] — the axum `Router` served in Lambda and locally.

pub mod api;
pub mod client_id;
pub mod config;
pub mod policy;
pub mod presign;
pub mod sts;
pub mod topic;
