//! IAM/IoT policy documents: the session policy the vending service hands to STS,
//! and an evaluator with IAM semantics that the local gateway and the tests use to
//! decide what a credential may do.
//!
//! * [`document`] — the JSON shape (`Statement`, `Action`/`NotAction`, …), parsed
//!   and serialised with serde.
//! * [`session`] — builds the per-client session policy from exact resources.
//! * [`eval`] — `evaluate(policies, action, resource)` and the role ∩ session rule.
//! * [`authorizer`] — the policies our JWT custom authorizer returns.
//! * [`condition`] — `Condition` blocks for the keys bans rely on
//!   (`aws:SourceIdentity`, `aws:TokenIssueTime`, `aws:PrincipalArn`).
//! * [`role`] — the client role's identity policy (deployed and local).
//! * [`variables`] — `${iot:ClientId}` and the special characters, for the
//!   policies custom authorizers return.
//!
//! Everything here is pure: no I/O, no clock.

pub mod authorizer;
pub mod condition;
pub mod document;
pub mod eval;
pub mod role;
pub mod session;
pub mod variables;

pub use condition::Context;
pub use document::{PolicyDocument, PolicyParseError};
pub use eval::{Decision, Denial, Evaluation, authorize, authorize_with, evaluate, is_allowed, is_allowed_with};
pub use role::{BACKEND_CLIENT_ACTIONS, backend_policy, client_role_policy};
pub use session::{Grants, SessionPolicyError, session_policy};
pub use variables::Variables;
