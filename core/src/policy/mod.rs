//! IAM/IoT policy documents: the session policy the vending service hands to STS,
//! and an evaluator with IAM semantics that the local gateway and the tests use to
//! decide what a credential may do.
//!
//! * [`document`] — the JSON shape (`Statement`, `Action`/`NotAction`, …), parsed
//!   and serialised with serde.
//! * [`session`] — builds the per-client session policy from exact resources.
//! * [`eval`] — `evaluate(policies, action, resource)` and the role ∩ session rule.
//! * [`role`] — the client role's identity policy (deployed and local).
//!
//! Everything here is pure: no I/O, no clock.

pub mod document;
pub mod eval;
pub mod role;
pub mod session;

pub use document::{PolicyDocument, PolicyParseError};
pub use eval::{Decision, Denial, authorize, evaluate, is_allowed};
pub use role::{BACKEND_CLIENT_ACTIONS, backend_policy, client_role_policy};
pub use session::{Grants, SessionPolicyError, session_policy};
