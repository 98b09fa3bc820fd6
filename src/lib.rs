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
//! * [`grants`] — grant templates (`allowed/{clientId}`, `users/{sub}`) and their expansion.
//! * [`config`] — the service's settings, read once from the environment.
//! * [`secret`] — secrets read by ARN from Secrets Manager at start-up, cached.
//! * [`auth`] — caller authentication: none, or a JWT (HS256, RS256/ES256 via JWKS).
//! * [`sts`] — the credential issuer trait and its `aws-sdk-sts` implementation.
//! * [`api`] — the axum `Router` served in Lambda and locally.
//! * [`server`] — the accept loop with header, body and TLS deadlines for every listener.
//! * [`sigv4`] — SigV4 verification of incoming requests (for the emulators).
//! * [`local`] — the local stack: STS emulator, identity store, and the command.
//!
//! `api`, `config`, `sts` and `local` need the default `server` feature; without
//! it the crate is the pure core (no async runtime, no AWS SDK), which clients
//! such as `client-example` use for presigning.
//!
//! The security core in one example: a client's session policy names only its own
//! client ID and topic, so even a subscription to `allowed/#` is refused.
//!
//! ```
//! use serverless_websockets::client_id::ClientId;
//! use serverless_websockets::policy::{evaluate, session_policy, Decision, Grants, IotArns, PolicyDocument};
//! use serverless_websockets::topic::Topic;
//!
//! let arns = IotArns::new("aws", "us-east-1", "123456789012").unwrap();
//! let id = ClientId::generate();
//! let grants = Grants { subscribe: vec![Topic::parse("allowed").unwrap().join(id.as_str()).unwrap().into()], publish: vec![] };
//! let policy = PolicyDocument::parse(&session_policy(&arns, &id, &grants).unwrap()).unwrap();
//! let policies = [policy];
//!
//! let own = arns.topic_filter(&format!("allowed/{id}"));
//! assert_eq!(evaluate(&policies, "iot:Subscribe", &own), Decision::Allow);
//! let everyone = arns.topic_filter("allowed/#");
//! assert_eq!(evaluate(&policies, "iot:Subscribe", &everyone), Decision::NotApplicable);
//! ```

#[cfg(feature = "server")]
pub mod api;
#[cfg(feature = "server")]
pub mod auth;
pub mod client_id;
#[cfg(feature = "server")]
pub mod config;
pub mod grants;
#[cfg(feature = "server")]
pub mod local;
pub mod policy;
pub mod presign;
pub mod random;
#[cfg(feature = "server")]
pub mod secret;
#[cfg(feature = "server")]
pub mod server;
pub mod sigv4;
#[cfg(feature = "server")]
pub mod sts;
pub mod topic;
