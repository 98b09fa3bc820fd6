//! Connecting through a custom authorizer
//! (<https://docs.aws.amazon.com/iot/latest/developerguide/custom-auth.html>): the
//! `GET /mqtt` upgrade names the authorizer (`x-amz-customauthorizer-name`, as a
//! header or in the query string) and carries the token under the authorizer's
//! `tokenKeyName` and, with signing on, `x-amz-customauthorizer-signature`; the
//! authorizer is asked before the connection reads CONNECT. An upgrade with no
//! SigV4 credentials and no name (while some authorizer exists) is taken up and
//! asked at CONNECT instead: the user name may carry the same parameters
//! (`user?x-amz-customauthorizer-name=…&token=…`, what the IoT Device SDKs
//! send), else the default authorizer applies; the event then has the MQTT user
//! name, the password (base64) and the client ID.
//!
//! The signature is checked before anything is invoked; then the function
//! answers with policies, which govern the connection as IoT policies (with
//! `${iot:ClientId}` bound at CONNECT). The answer is cached for
//! `refreshAfterInSeconds`, then the function is asked again; the connection
//! ends at `disconnectAfterInSeconds` (`CUSTOMAUTH_TTL_EXPIRATION`) or when a
//! refresh fails (`AUTH_ERROR`).
//!
//! A refusal of any kind is answered as users see IoT answer it: the upgrade
//! succeeds, then the connection closes without a CONNACK (with
//! `--connect-deny reply`, CONNACK 5 / 0x87). Unlike IoT, a WARN line says why —
//! which authorizer, and what failed — and a `connect_failed` event is published.
//! The refused connection gets an identity that may do nothing and goes through
//! the usual CONNECT path, so both happen exactly as for a refused policy.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use http::{HeaderMap, Uri};
use serde_json::Value;
use serverless_websockets_core::policy::{PolicyDocument, Variables};
use tokio::time::Instant;

use super::state::Gateway;
use crate::authorizers::verdict::Verdict;
use base64::Engine as _;

use super::packet::{ConnectIn, Login};
use crate::authorizers::{Authorizer, MAX_TOKEN_CHARS, MqttContext, Presented, Status, event};
use crate::identity::Identity;

/// The parameter (or header) naming the authorizer.
pub const NAME: &str = "x-amz-customauthorizer-name";
/// The parameter (or header) carrying the token's signature.
pub const SIGNATURE: &str = "x-amz-customauthorizer-signature";

/// What an upgrade asked of custom authentication.
#[derive(Debug)]
pub struct Requested {
    /// The authorizer named, or `None` for the default.
    name: Option<String>,
    query: Vec<(String, String)>,
    raw_query: Option<String>,
    headers: HeaderMap,
}

/// Whether an upgrade goes to a custom authorizer: it names one, or it
/// carries no SigV4 credentials while some authorizer exists (the CONNECT's
/// user name may then name one, or the default applies). Without any
/// authorizer an unsigned upgrade is refused with 403 as before.
pub fn requested(gateway: &Gateway, uri: &Uri, headers: &HeaderMap) -> Option<Requested> {
    let raw = uri.query().unwrap_or("");
    if !headers.contains_key(NAME) && !raw.contains(NAME) && !gateway.authorizers.any() {
        return None;
    }
    // Form decoding, `+` as a space: an unencoded `+` in a base64 signature
    // breaks it, as it does on IoT (whose decoding is not documented; this is
    // the common one), and the refusal then says so.
    let query = form_pairs(raw);
    let sigv4 = query.iter().any(|(n, _)| n.eq_ignore_ascii_case("X-Amz-Credential"))
        || headers.contains_key(http::header::AUTHORIZATION);
    let name = param(&query, headers, NAME).map(str::to_owned);
    if name.is_none() && (sigv4 || !gateway.authorizers.any()) {
        return None;
    }
    Some(Requested {
        name,
        raw_query: uri.query().map(str::to_owned),
        query,
        headers: headers.clone(),
    })
}

impl Requested {
    /// The upgrade names its authorizer: it is asked before the upgrade
    /// completes. Otherwise it is asked at CONNECT, whose user name may name one.
    pub fn at_upgrade(&self) -> bool {
        self.name.is_some()
    }
}

fn form_pairs(query: &str) -> Vec<(String, String)> {
    url::form_urlencoded::parse(query.as_bytes()).into_owned().collect()
}

/// A header or, failing that, a query parameter; header names are
/// case-insensitive, parameter names exact.
fn param<'a>(query: &'a [(String, String)], headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers
        .get(name)
        .and_then(|v| v.to_str().ok())
        .or_else(|| query.iter().find(|(n, _)| n == name).map(|(_, v)| v.as_str()))
}

/// What lets a connection live on: the authorizer, the event to ask it again
/// with, and when to.
pub struct Lease {
    authorizer: Arc<Authorizer>,
    event: Value,
    refresh_at: Instant,
    end_at: Instant,
}

/// What a lease asks of the connection when its time comes.
pub enum LeaseStep {
    /// The function answered again: these policies from now on.
    Renewed(Arc<Identity>),
    /// `disconnectAfterInSeconds` is over.
    Expired,
    /// The refresh failed: why.
    Failed(String),
}

impl Lease {
    /// When the lease next needs attention.
    pub fn next(&self) -> Instant {
        self.refresh_at.min(self.end_at)
    }

    /// At [`Lease::next`]: the end, or a refresh.
    pub async fn step(&mut self, gateway: &Gateway, current: &Identity) -> LeaseStep {
        if Instant::now() >= self.end_at {
            return LeaseStep::Expired;
        }
        match gateway.authorizers.call(&self.authorizer, &self.event).await {
            Ok(verdict) if verdict.authenticated => {
                let now = Instant::now();
                self.refresh_at = now + seconds(verdict.refresh_after);
                self.end_at = self.end_at.min(now + seconds(verdict.disconnect_after));
                let mut renewed = identity(gateway, &self.authorizer, &verdict);
                renewed.variables.clone_from(&current.variables);
                tracing::info!(authorizer = %self.authorizer.name, principal = %verdict.principal_id, "custom authorizer refreshed the connection's policies");
                LeaseStep::Renewed(Arc::new(renewed))
            }
            Ok(_) => LeaseStep::Failed(format!(
                "authorizer {}: the function answered isAuthenticated false on refresh",
                self.authorizer.name
            )),
            Err(e) => LeaseStep::Failed(format!("authorizer {}: refresh failed: {e}", self.authorizer.name)),
        }
    }
}

fn seconds(n: u32) -> Duration {
    Duration::from_secs(u64::from(n))
}

/// Runs the custom authentication of an upgrade: the identity the connection
/// gets, and its lease; a refused one gets an identity that may do nothing.
pub async fn admit(
    gateway: &Gateway,
    requested: &Requested,
    connect: Option<&ConnectIn>,
    peer: SocketAddr,
) -> (Arc<Identity>, Option<Lease>) {
    match authenticate(gateway, requested, connect).await {
        Ok((authorizer, verdict, event)) => {
            let now = Instant::now();
            let lease = Lease {
                refresh_at: now + seconds(verdict.refresh_after),
                end_at: now + seconds(verdict.disconnect_after),
                event,
                authorizer: authorizer.clone(),
            };
            tracing::info!(peer = %peer, authorizer = %authorizer.name, principal = %verdict.principal_id, policies = verdict.policies.len(), refresh_after_s = verdict.refresh_after, disconnect_after_s = verdict.disconnect_after, "custom authorizer allowed the connection");
            (Arc::new(identity(gateway, &authorizer, &verdict)), Some(lease))
        }
        Err(why) => {
            tracing::warn!(peer = %peer, "custom authentication refused the connection (closed without CONNACK, as IoT does): {why}");
            (Arc::new(refused(gateway)), None)
        }
    }
}

async fn authenticate(
    gateway: &Gateway,
    requested: &Requested,
    connect: Option<&ConnectIn>,
) -> Result<(Arc<Authorizer>, Verdict, Value), String> {
    let login = connect.and_then(|c| c.login.as_ref());
    let presented = Credentials::of(requested, login);
    let (authorizer, token, verified) = presented.check(gateway, requested)?;
    let headers: BTreeMap<String, String> = requested
        .headers
        .iter()
        .filter_map(|(n, v)| Some((n.as_str().to_owned(), v.to_str().ok()?.to_owned())))
        .collect();
    let password = login.map(|l| base64::engine::general_purpose::STANDARD.encode(&l.password));
    let mqtt = connect.map(|c| MqttContext {
        username: login.map(|l| l.username.as_str()),
        password: password.as_deref(),
        client_id: Some(c.client_id.as_str()).filter(|id| !id.is_empty()),
    });
    let event = event(&Presented {
        token: token.as_deref(),
        signature_verified: verified,
        server_name: None,
        headers: Some(headers),
        query: requested.raw_query.as_deref(),
        mqtt,
    });
    let name = &authorizer.name;
    let verdict = gateway
        .authorizers
        .call(&authorizer, &event)
        .await
        .map_err(|e| format!("authorizer {name}: {e}"))?;
    if !verdict.authenticated {
        return Err(format!(
            "authorizer {name}: the function answered isAuthenticated false"
        ));
    }
    Ok((authorizer, verdict, event))
}

/// The custom-auth parameters a client presented: from the CONNECT user name
/// (`user?x-amz-customauthorizer-name=…&token=…`, what the IoT Device SDKs
/// send), else from the upgrade's headers and query string.
struct Credentials<'r> {
    from_username: Vec<(String, String)>,
    requested: &'r Requested,
}

impl<'r> Credentials<'r> {
    fn of(requested: &'r Requested, login: Option<&Login>) -> Self {
        let from_username = login
            .and_then(|l| l.username.split_once('?'))
            .map(|(_, query)| form_pairs(query))
            .unwrap_or_default();
        Self {
            from_username,
            requested,
        }
    }

    fn get(&self, key: &str) -> Option<&str> {
        self.from_username
            .iter()
            .find(|(n, _)| n == key)
            .map(|(_, v)| v.as_str())
            .or_else(|| param(&self.requested.query, &self.requested.headers, key))
    }

    /// The authorizer, the token and whether its signature was verified; the
    /// refusal's reason otherwise. Nothing is invoked here.
    fn check(
        &self,
        gateway: &Gateway,
        requested: &Requested,
    ) -> Result<(Arc<Authorizer>, Option<String>, bool), String> {
        let name = match self.get(NAME) {
            Some(name) => name.to_owned(),
            None => gateway.authorizers.default_name().ok_or(
                "the upgrade carried no SigV4 credentials, no x-amz-customauthorizer-name (query, header or CONNECT user name) named an authorizer, and no default authorizer is set",
            )?,
        };
        let authorizer = gateway
            .authorizers
            .get(&name)
            .ok_or_else(|| format!("there is no authorizer named {name:?} (aws iot list-authorizers)"))?;
        if authorizer.status == Status::Inactive {
            return Err(format!("authorizer {name} is INACTIVE"));
        }
        let token = authorizer.token_key_name.as_deref().and_then(|key| self.get(key));
        if token.is_some_and(|t| t.chars().count() > MAX_TOKEN_CHARS) {
            return Err(format!(
                "authorizer {name}: the token is longer than {MAX_TOKEN_CHARS} characters"
            ));
        }
        let verified = match token {
            Some(token) => authorizer
                .check_signature(token, self.get(SIGNATURE))
                .map_err(|e| format!("authorizer {name}: {e}{}", plus_hint(requested)))?,
            None if !authorizer.signing_disabled => {
                return Err(format!(
                    "authorizer {name}: no token under its tokenKeyName {:?} in the CONNECT user name, the headers or the query string",
                    authorizer.token_key_name.as_deref().unwrap_or("")
                ));
            }
            None => false,
        };
        let token = token.map(str::to_owned);
        Ok((authorizer, token, verified))
    }
}

/// A hint for the commonest signature mistake: a `+` in a query string that was
/// not URL-encoded arrives as a space.
fn plus_hint(requested: &Requested) -> &'static str {
    let spaced = requested.query.iter().any(|(n, v)| n == SIGNATURE && v.contains(' '));
    if spaced {
        " (the signature holds a space: a + that was not URL-encoded; encode the signature with encodeURIComponent)"
    } else {
        ""
    }
}

/// The identity of a connection the authorizer allowed: its policies, with
/// policy variables, and its `principalId` (the lifecycle events'
/// `principalIdentifier`).
fn identity(gateway: &Gateway, authorizer: &Authorizer, verdict: &Verdict) -> Identity {
    let arns = gateway.broker.arns();
    let arn = format!(
        "arn:aws:iot:{}:{}:authorizer/{} (principal {})",
        arns.region(),
        arns.account(),
        authorizer.name,
        verdict.principal_id
    );
    custom_identity(gateway, arn, &verdict.principal_id, verdict.policies.clone())
}

/// The identity of a refused connection: no policy, so CONNECT is refused.
pub fn refused(gateway: &Gateway) -> Identity {
    custom_identity(gateway, "custom authorizer (refused)".into(), "", Vec::new())
}

fn custom_identity(gateway: &Gateway, arn: String, principal: &str, policies: Vec<PolicyDocument>) -> Identity {
    Identity {
        access_key_id: String::new(),
        secret_access_key: String::new(),
        session_token: None,
        expiration: None,
        arn,
        user_id: principal.to_owned(),
        account: gateway.broker.arns().account().to_owned(),
        policies: Arc::from(policies),
        session_policies: None,
        source_identity: None,
        variables: Some(Variables::default()),
        issued_at: None,
        role_since: None,
    }
}
