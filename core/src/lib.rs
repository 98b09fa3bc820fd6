//! The pure core of serverless-websockets: what the vending service, the local
//! stack's emulators and the clients share. No async runtime, no network, no AWS
//! SDK — time and randomness come in as arguments or from [`random`], so every
//! rule here is a function that tests can call directly.
//!
//! * [`topic`] and [`client_id`] — names and filters with IoT Core's rules, and
//!   the stricter check that keeps a name safe inside a policy resource.
//! * [`arn`] — IoT resource ARNs and the client role ARN, checked once.
//! * [`policy`] — the session and client-role policy builders, and the
//!   IAM policy evaluator the gateway emulator enforces.
//! * [`grants`] — grant templates (`allowed/{clientId}`, `users/{sub}`, `rooms/{claims.rooms}`) and their expansion.
//! * [`claims`] — a token's claims as template values, checked and narrowed.
//! * [`presign`] — SigV4 presigned `wss://…/mqtt` URLs for the IoT device gateway.
//! * [`sigv4`] — SigV4 verification of incoming requests (for the emulators).
//! * [`quota`] — AWS IoT Core's quotas (sizes, counts, keep-alive, in-flight window), cited.
//! * [`sts`] — STS's limits (policy size, durations, name pattern), for caller and emulator.
//! * [`error_code`] — the vending API's error codes, shared with the clients.
//! * [`wire`] — the vend response, the one JSON contract between API and clients, and its ISO-8601 times.
//! * [`random`] — OS randomness for client IDs and keys.
//! * [`jwt`] — the claim checks after a JWT's signature: audience, app client, subject.
//! * [`resume`] — resume tokens: fresh credentials for the same client ID, HMAC-signed.
//!
//! Not here: HTTP serving, AWS calls, the MQTT broker (the `serverless-websockets-vending`
//! crate and the local stack, `serverless-websockets`).
//!
//! The security core in one example: a client's session policy names only its own
//! client ID and topic, so even a subscription to `allowed/#` is refused.
//!
//! ```
//! use serverless_websockets_core::client_id::ClientId;
//! use serverless_websockets_core::policy::{evaluate, session_policy, Decision, Grants, PolicyDocument};
//! use serverless_websockets_core::arn::IotArns;
//! use serverless_websockets_core::topic::Topic;
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

pub mod arn;
pub mod claims;
pub mod client_id;
pub mod error_code;
pub mod grants;
pub mod jwt;
pub mod policy;
pub mod presign;
pub mod quota;
pub mod random;
pub mod resume;
pub mod sigv4;
pub mod sts;
pub mod topic;
pub mod wire;
