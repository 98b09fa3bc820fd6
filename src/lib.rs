//! serverless-websockets: the command-line tool and the local stack.
//!
//! `serverless-websockets local` runs, in one process, the very same vending API
//! as Lambda (`serverless-websockets-vending`), an STS emulator and an AWS IoT Core
//! device-gateway emulator, so the whole system runs and is tested on one machine
//! with no AWS account. Real AWS clients (the AWS CLI, botocore, the IoT Device
//! SDKs, MQTT.js, paho) work against it unchanged.
//!
//! * [`cli`] — the `local` command: its flags, and the banner it prints.
//! * [`stack`] — [`stack::LocalStack`]: binds every listener, wires them together.
//! * [`sts`] — the STS emulator (Query API: AssumeRole, GetCallerIdentity).
//! * [`identity`] — the credentials STS issued, shared with the gateway.
//! * [`gateway`] — the IoT device gateway: MQTT over WebSocket, SigV4, IoT policy
//!   enforcement, the HTTPS data plane.
//!
//! Not here: the rules themselves (names, policies, SigV4 — `serverless-websockets-core`)
//! and the service (`serverless-websockets-vending`); both are used as they are.

pub mod alloc;
pub mod cli;
pub mod demo;
pub mod gateway;
pub mod identity;
pub mod stack;
pub mod sts;
