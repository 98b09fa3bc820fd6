//! The local stack of serverless-websockets: the emulators behind
//! `serverless-websockets local`.
//!
//! It runs, in one process, the very same vending API
//! as Lambda (`serverless-websockets-vending`), an STS emulator and an AWS IoT Core
//! device-gateway emulator, so the whole system runs and is tested on one machine
//! with no AWS account. Real AWS clients (the AWS CLI, botocore, the IoT Device
//! SDKs, MQTT.js, paho) work against it unchanged.
//!
//! * [`stack`] — [`stack::LocalStack`]: binds every listener, wires them together.
//! * [`listen`] — the three listeners, bound before anything is served.
//! * [`sts`] — the STS emulator (Query API: AssumeRole, GetCallerIdentity).
//! * [`identity`] — the credentials STS issued, shared with the gateway.
//! * [`gateway`] — the IoT device gateway: MQTT over WebSocket, SigV4, IoT policy
//!   enforcement, the HTTPS data plane.
//! * [`rules`] — the IoT rules engine: rule SQL, Lambda and republish actions.
//! * [`demo`] — the demo page and the browser client bundle the API port serves.
//! * [`door`] — the listeners' `Host` and `Origin` checks against web pages.
//! * [`usage`] — what AWS would bill for the traffic: the meter and its projection.
//! * [`alloc`] — the allocator setting the binary applies at start-up.
//!
//! Not here: the rules themselves (names, policies, SigV4 — `serverless-websockets-core`),
//! the service (`serverless-websockets-vending`), both used as they are, and the
//! command line (the root package's `serverless-websockets` binary: flags, banner).

pub mod alloc;
pub mod authorizers;
pub mod demo;
pub mod door;
pub mod gateway;
pub mod iam;
pub mod identity;
pub mod listen;
pub mod rules;
pub mod stack;
pub mod sts;
pub mod usage;
