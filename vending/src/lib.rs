//! The credential-vending service of serverless-websockets: what runs in AWS
//! Lambda (and, unchanged, behind `serverless-websockets serve` and the local stack).
//!
//! A caller POSTs to `/credentials`; [`auth`] checks its token, the service picks a
//! fresh client ID, expands the configured grants, asks STS through [`issuer`] for
//! temporary credentials narrowed by a session policy, and answers with them and a
//! presigned `wss://…/mqtt` URL.
//!
//! * [`config`] — the service's settings, read once from the environment.
//! * [`secret`] — secrets read by ARN from Secrets Manager at start-up, cached.
//! * [`auth`] — caller authentication: none, or a JWT (HS256, RS256/ES256 via JWKS).
//! * [`issuer`] — the credential issuer trait and its `aws-sdk-sts` implementation.
//! * [`bans`] — the client role's ban policy, read so that a banned caller is refused.
//! * [`grants_fn`] — the optional grants function: claim values from the app's database.
//! * [`api`] — the axum `Router`: parsing, authentication, grants, issuing, rendering.
//! * [`server`] — the accept loop with header, body and TLS deadlines for every listener.
//! * [`entry`] — the process entry: Lambda or `serve`, tracing, signals.
//!
//! Not here: the emulators (the `serverless-websockets` crate), names, policies and
//! signing (`serverless-websockets-core`).

pub mod api;
pub mod auth;
pub mod bans;
pub mod config;
pub mod entry;
pub mod grants_fn;
pub mod issuer;
pub mod secret;
pub mod server;
pub mod vend;
