//! A local STS: the Query API's `AssumeRole` and `GetCallerIdentity`
//! (<https://docs.aws.amazon.com/STS/latest/APIReference/API_AssumeRole.html>), close
//! enough to AWS that `aws-sdk-sts`, botocore and the AWS CLI work against it.
//!
//! Every request must carry a valid SigV4 `Authorization` header (service `sts`)
//! from a known identity — the admin credentials or credentials this emulator
//! issued. `AssumeRole` validates its parameters as AWS does (session name,
//! duration against the role's maximum and the one-hour role-chaining cap, the
//! session policy's size, character set and grammar), checks that the role trusts
//! the caller and that the caller may `sts:AssumeRole` it, and then issues
//! `ASIA…` credentials recorded in the shared [`IdentityStore`] together with the
//! role's policies and the session policy, which is all the IoT gateway needs.
//!
//! Managed session policies (`PolicyArns`) are honoured for the AWS managed
//! policies in [`managed_policy`] and refused otherwise.
//!
//! Not emulated: other actions, `Condition` keys in trust policies, MFA, external
//! IDs, throttling, regional endpoint differences, customer managed policies. `PackedPolicySize` is an
//! estimate (policy and tag characters as a percentage of 2048), not AWS's
//! compression-based figure.

use std::collections::HashMap;
use std::fmt::Write as _;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use axum::extract::State;
use axum::http::{HeaderMap, Method, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use base64::Engine as _;

use super::identity::{CredentialError, Identity, IdentityStore, Refusal, RolePolicies};
use serverless_websockets_core::policy::PolicyDocument;
use serverless_websockets_core::policy::eval::glob;
use serverless_websockets_core::sigv4::{Expectations, RequestParts, SigError, SignedClaims, TokenInQuery, Verifier};
use serverless_websockets_core::sts::{
    MAX_DURATION_SECS, MAX_SESSION_POLICY_CHARS, MIN_DURATION_SECS, ROLE_CHAINING_MAX_DURATION_SECS, is_sts_name,
};
use serverless_websockets_vending::server::BodyError;

const NAMESPACE: &str = "https://sts.amazonaws.com/doc/2011-06-15/";
/// Role chaining caps sessions at one hour.
pub const CHAINED_MAX: Duration = Duration::from_secs(ROLE_CHAINING_MAX_DURATION_SECS);

/// A role the emulator can hand out sessions for.
#[derive(Debug, Clone)]
pub struct LocalRole {
    pub arn: String,
    pub name: String,
    /// `AROA…`, the role's unique ID.
    pub role_id: String,
    pub max_session: Duration,
    pub policies: Arc<[PolicyDocument]>,
    /// ARN patterns (`*`, `?` wildcards) of principals the role trusts.
    pub trusted: Vec<String>,
    /// Inline policies put on the role while the stack runs (`aws iam
    /// put-role-policy`), which its live sessions see at once.
    pub inline: Arc<RolePolicies>,
}

/// An AWS error response: HTTP status, error code and message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Fault {
    pub status: StatusCode,
    pub code: &'static str,
    pub message: String,
}

impl Fault {
    pub fn new(status: StatusCode, code: &'static str, message: impl Into<String>) -> Self {
        Self {
            status,
            code,
            message: message.into(),
        }
    }

    fn validation(message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, "ValidationError", message)
    }
}

pub struct StsEmulator {
    account: String,
    roles: Vec<LocalRole>,
    store: Arc<IdentityStore>,
    verifier: Verifier,
}

impl StsEmulator {
    pub fn new(account: &str, roles: Vec<LocalRole>, store: Arc<IdentityStore>) -> Self {
        Self {
            account: account.to_owned(),
            roles,
            store,
            verifier: Verifier::new(),
        }
    }

    /// The Query API on `/` (POST form or GET query).
    pub fn router(self: Arc<Self>) -> axum::Router {
        axum::Router::new().fallback(handle).with_state(self)
    }

    /// Authenticates a signed request: the caller's identity, or the AWS fault.
    fn authenticate(
        &self,
        method: &Method,
        uri: &Uri,
        query: &[(String, String)],
        headers: &HeaderMap,
        body: &[u8],
        now: SystemTime,
    ) -> Result<Arc<Identity>, Fault> {
        use sha2::Digest;
        let claims = SignedClaims::from_headers(headers).map_err(|err| match err {
            SigError::Missing => Fault::new(
                StatusCode::FORBIDDEN,
                "MissingAuthenticationToken",
                "Request is missing Authentication Token",
            ),
            other => Fault::new(
                StatusCode::BAD_REQUEST,
                "IncompleteSignature",
                format!("Authorization header: {other}"),
            ),
        })?;
        let payload = hex::encode(sha2::Sha256::digest(body));
        let parts = RequestParts::of(method, uri, query, headers);
        let expect = Expectations {
            // IAM's role-policy operations are served here too (see `iam`).
            services: &["sts", "iam"],
            region: None,
            token_in_query: TokenInQuery::Signed,
            payload_sha256: Some(&payload),
        };
        let identity = self
            .store
            .verify_signed(&self.verifier, &claims, parts, expect, now)
            .map_err(|refusal| match refusal {
                Refusal::Credential(CredentialError::UnknownKey | CredentialError::BadToken) => Fault::new(
                    StatusCode::FORBIDDEN,
                    "InvalidClientTokenId",
                    "The security token included in the request is invalid.",
                ),
                // Real STS answers `ExpiredToken` with 403 here (aws/aws-sdk-java-v2#1649);
                // `ExpiredTokenException` is for an expired token passed *in* AssumeRoleWith*.
                Refusal::Credential(CredentialError::Expired) => Fault::new(
                    StatusCode::FORBIDDEN,
                    "ExpiredToken",
                    "The security token included in the request is expired",
                ),
                Refusal::Signature(err) => {
                    let message = match err {
                        SigError::Skewed => "Signature expired: the request's X-Amz-Date is more than 15 minutes from the server's time.".to_owned(),
                        SigError::Service { found } => format!("Credential should be scoped to correct service: 'sts', not '{found}'."),
                        SigError::PayloadHash => "The provided 'x-amz-content-sha256' header does not match what was computed.".to_owned(),
                        _ => "The request signature we calculated does not match the signature you provided. Check your AWS Secret Access Key and signing method.".to_owned(),
                    };
                    Fault::new(StatusCode::FORBIDDEN, "SignatureDoesNotMatch", message)
                }
            })?;
        Ok(identity)
    }

    /// `GetCallerIdentity`: who signed the request.
    pub fn get_caller_identity(&self, caller: &Identity) -> String {
        format!(
            "<GetCallerIdentityResult><Arn>{}</Arn><UserId>{}</UserId><Account>{}</Account></GetCallerIdentityResult>",
            escape(&caller.arn),
            escape(&caller.user_id),
            escape(&caller.account)
        )
    }

    /// `AssumeRole`: parse → authorize → issue (and record) → render.
    pub fn assume_role(
        &self,
        caller: &Identity,
        params: &HashMap<String, String>,
        now: SystemTime,
    ) -> Result<String, Fault> {
        let request = AssumeRoleRequest::parse(params)?;
        let role = self.authorize(caller, &request)?;
        let issued = self.issue(role, &request, now);
        tracing::info!(caller = %caller.arn, assumed = %issued.arn, duration_s = request.duration.as_secs(), "AssumeRole issued credentials");
        Ok(issued.render(&request))
    }

    /// The role, if `caller` may assume it for as long as asked: the role trusts
    /// the caller, the caller's policies allow `sts:AssumeRole`, and the duration
    /// fits the role's maximum and, for a chained role, one hour.
    fn authorize(&self, caller: &Identity, request: &AssumeRoleRequest<'_>) -> Result<&LocalRole, Fault> {
        let denied = || {
            Fault::new(
                StatusCode::FORBIDDEN,
                "AccessDenied",
                format!(
                    "User: {} is not authorized to perform: sts:AssumeRole on resource: {}",
                    caller.arn, request.role_arn
                ),
            )
        };
        let role = self
            .roles
            .iter()
            .find(|r| r.arn == request.role_arn)
            .ok_or_else(denied)?;
        if !role.trusted.iter().any(|pattern| glob(pattern, &caller.arn, false))
            || !caller.is_allowed("sts:AssumeRole", request.role_arn)
        {
            return Err(denied());
        }
        if request.duration > role.max_session {
            return Err(Fault::validation(
                "The requested DurationSeconds exceeds the MaxSessionDuration set for this role.",
            ));
        }
        if caller.is_assumed_role() && request.duration > CHAINED_MAX {
            return Err(Fault::validation(
                "The requested DurationSeconds exceeds the 1 hour session limit for roles assumed by role chaining.",
            ));
        }
        Ok(role)
    }

    /// Fresh credentials for `role`, recorded in the identity store.
    fn issue(&self, role: &LocalRole, request: &AssumeRoleRequest<'_>, now: SystemTime) -> IssuedRole {
        let issued = IssuedRole {
            access_key_id: format!("ASIA{}", random_base32(16)),
            secret: base64::engine::general_purpose::STANDARD.encode(serverless_websockets_core::random::bytes::<30>()),
            token: base64::engine::general_purpose::STANDARD.encode(serverless_websockets_core::random::bytes::<120>()),
            expiration: now + request.duration,
            arn: format!(
                "arn:aws:sts::{}:assumed-role/{}/{}",
                self.account, role.name, request.session
            ),
            user_id: format!("{}:{}", role.role_id, request.session),
        };
        self.store.insert(
            Identity {
                access_key_id: issued.access_key_id.clone(),
                secret_access_key: issued.secret.clone(),
                session_token: Some(issued.token.clone()),
                expiration: Some(issued.expiration),
                arn: issued.arn.clone(),
                user_id: issued.user_id.clone(),
                account: self.account.clone(),
                policies: role.policies.clone(),
                session_policies: session_policies(request.inline_policy.clone(), request.managed.clone()),
                source_identity: request.source_identity.map(str::to_owned),
                variables: None,
                issued_at: Some(now),
                role_since: Some(role.inline.clone()),
            },
            now,
        );
        issued
    }
}

/// `AssumeRole`'s parameters, each checked as STS checks it.
struct AssumeRoleRequest<'a> {
    role_arn: &'a str,
    session: &'a str,
    duration: Duration,
    inline_policy: Option<PolicyDocument>,
    managed: Vec<(String, PolicyDocument)>,
    source_identity: Option<&'a str>,
    /// How much of the packed-policy allowance the session policies and tags
    /// use, in percent (STS answers it when it is not 0).
    packed_percent: usize,
}

impl<'a> AssumeRoleRequest<'a> {
    fn parse(params: &'a HashMap<String, String>) -> Result<Self, Fault> {
        let required = |name: &str, member: &str| {
            params.get(name).map(String::as_str).ok_or_else(|| {
                Fault::validation(format!(
                    "1 validation error detected: Value null at '{member}' failed to satisfy constraint: Member must not be null"
                ))
            })
        };
        let sts_name = |value: &'a str, member: &str| {
            if is_sts_name(value) && !(member == "sourceIdentity" && value.to_ascii_lowercase().starts_with("aws:")) {
                Ok(value)
            } else {
                Err(Fault::validation(format!(
                    "1 validation error detected: Value '{value}' at '{member}' failed to satisfy constraint: Member must satisfy regular expression pattern: [\\w+=,.@-]* and have length between 2 and 64"
                )))
            }
        };
        let role_arn = required("RoleArn", "roleArn")?;
        let session = sts_name(required("RoleSessionName", "roleSessionName")?, "roleSessionName")?;
        let duration = parse_duration(params.get("DurationSeconds").map(String::as_str))?;
        let inline_policy = params.get("Policy").map(|p| parse_session_policy(p)).transpose()?;
        let managed = parse_policy_arns(params)?;
        let tags = parse_tags(params)?;
        let source_identity = params
            .get("SourceIdentity")
            .map(|value| sts_name(value, "sourceIdentity"))
            .transpose()?;
        let packed_chars = params.get("Policy").map_or(0, |p| compact_len(p))
            + managed.iter().map(|(arn, _)| arn.chars().count()).sum::<usize>()
            + tags
                .iter()
                .map(|(k, v)| k.chars().count() + v.chars().count())
                .sum::<usize>();
        let packed_percent = (packed_chars * 100).div_ceil(MAX_SESSION_POLICY_CHARS);
        if packed_percent > 100 {
            return Err(Fault::new(
                StatusCode::BAD_REQUEST,
                "PackedPolicyTooLarge",
                format!("Packed policy consumes {packed_percent}% of allotted space, please use smaller policy."),
            ));
        }
        Ok(Self {
            role_arn,
            session,
            duration,
            inline_policy,
            managed,
            source_identity,
            packed_percent,
        })
    }
}

/// `DurationSeconds`: one hour when absent, else within STS's bounds.
fn parse_duration(raw: Option<&str>) -> Result<Duration, Fault> {
    let Some(raw) = raw else {
        return Ok(Duration::from_secs(3600));
    };
    match raw.parse::<u64>() {
        Ok(secs) if (MIN_DURATION_SECS..=MAX_DURATION_SECS).contains(&secs) => Ok(Duration::from_secs(secs)),
        _ => Err(Fault::validation(format!(
            "1 validation error detected: Value '{raw}' at 'durationSeconds' failed to satisfy constraint: Member must have value between {MIN_DURATION_SECS} and {MAX_DURATION_SECS}"
        ))),
    }
}

/// Credentials `AssumeRole` just issued.
struct IssuedRole {
    access_key_id: String,
    secret: String,
    token: String,
    expiration: SystemTime,
    arn: String,
    user_id: String,
}

impl IssuedRole {
    /// The `<AssumeRoleResult>` element.
    fn render(&self, request: &AssumeRoleRequest<'_>) -> String {
        let expiration = serverless_websockets_core::wire::format_iso8601(self.expiration);
        let mut xml = String::from("<AssumeRoleResult>");
        if let Some(source) = request.source_identity {
            let _ = write!(xml, "<SourceIdentity>{}</SourceIdentity>", escape(source));
        }
        let _ = write!(
            xml,
            "<AssumedRoleUser><AssumedRoleId>{}</AssumedRoleId><Arn>{}</Arn></AssumedRoleUser>\
             <Credentials><AccessKeyId>{}</AccessKeyId><SecretAccessKey>{}</SecretAccessKey>\
             <SessionToken>{}</SessionToken><Expiration>{expiration}</Expiration></Credentials>",
            escape(&self.user_id),
            escape(&self.arn),
            self.access_key_id,
            escape(&self.secret),
            escape(&self.token),
        );
        if request.packed_percent > 0 {
            let _ = write!(xml, "<PackedPolicySize>{}</PackedPolicySize>", request.packed_percent);
        }
        xml.push_str("</AssumeRoleResult>");
        xml
    }
}

/// One STS Query request, parsed once: the signature check and the action read
/// the very same parameters. The query string is decoded by
/// [`serverless_websockets_core::sigv4::query_pairs`] (a `+` stays a `+`), the form body by the
/// `application/x-www-form-urlencoded` rules (it is hashed whole, so its reading
/// cannot differ from what was signed).
pub struct QueryRequest {
    pub query: Vec<(String, String)>,
    pub params: HashMap<String, String>,
}

impl QueryRequest {
    pub fn parse(method: &Method, uri: &Uri, body: &[u8]) -> Self {
        let query = serverless_websockets_core::sigv4::query_pairs(uri.query().unwrap_or(""));
        let mut params: HashMap<String, String> = query.iter().cloned().collect();
        if method == Method::POST {
            params.extend(url::form_urlencoded::parse(body).into_owned());
        }
        Self { query, params }
    }

    fn action(&self) -> &str {
        self.params.get("Action").map_or("", String::as_str)
    }
}

/// STS's limit on a Query API request body.
pub const MAX_REQUEST_BYTES: usize = 64 * 1024;

async fn handle(State(sts): State<Arc<StsEmulator>>, request: axum::extract::Request) -> Response {
    let request_id = serverless_websockets_core::random::hex::<16>();
    let (parts, body) = request.into_parts();
    let (method, uri, headers) = (&parts.method, &parts.uri, &parts.headers);
    let body = match serverless_websockets_vending::server::read_body(&parts, body, MAX_REQUEST_BYTES).await {
        Ok(body) => body,
        Err(err) => {
            let fault = match err {
                BodyError::TooLarge { .. } => Fault::new(
                    StatusCode::PAYLOAD_TOO_LARGE,
                    "RequestEntityTooLarge",
                    format!("The request body must be at most {MAX_REQUEST_BYTES} bytes."),
                ),
                other => Fault::new(StatusCode::BAD_REQUEST, "RequestTimeout", other.to_string()),
            };
            return render("", &request_id, Err(fault));
        }
    };
    let now = SystemTime::now();
    let request = QueryRequest::parse(method, uri, &body);
    let action = request.action().to_owned();
    let result = if method != Method::POST && method != Method::GET {
        Err(Fault::new(
            StatusCode::METHOD_NOT_ALLOWED,
            "InvalidAction",
            "Use POST or GET.",
        ))
    } else if uri.path() != "/" {
        Err(Fault::new(
            StatusCode::NOT_FOUND,
            "InvalidAction",
            format!("No STS operation at {}.", uri.path()),
        ))
    } else {
        sts.authenticate(method, uri, &request.query, headers, &body, now)
            .and_then(|caller| match action.as_str() {
                "AssumeRole" => sts.assume_role(&caller, &request.params, now),
                "GetCallerIdentity" => Ok(sts.get_caller_identity(&caller)),
                "PutRolePolicy" | "DeleteRolePolicy" | "GetRolePolicy" | "ListRolePolicies" => {
                    crate::iam::role_policy(&sts.roles, &caller, &action, &request.params)
                }
                "" => Err(Fault::new(StatusCode::BAD_REQUEST, "MissingAction", "Missing Action")),
                other => Err(Fault::new(
                    StatusCode::BAD_REQUEST,
                    "InvalidAction",
                    format!("Could not find operation {other} for version 2011-06-15"),
                )),
            })
    };
    render(&action, &request_id, result)
}

/// The Query API's XML answer: `<{Action}Response>` or `<ErrorResponse>`, in
/// STS's namespace or, for the role-policy operations, IAM's.
fn render(action: &str, request_id: &str, result: Result<String, Fault>) -> Response {
    let namespace = if action.ends_with("RolePolicy") || action == "ListRolePolicies" {
        crate::iam::NAMESPACE
    } else {
        NAMESPACE
    };
    let xml_headers = [("content-type", "text/xml"), ("x-amzn-requestid", request_id)];
    match result {
        Ok(result) => {
            let body = format!(
                r#"<{action}Response xmlns="{namespace}">{result}<ResponseMetadata><RequestId>{request_id}</RequestId></ResponseMetadata></{action}Response>"#
            );
            (StatusCode::OK, xml_headers, body).into_response()
        }
        Err(fault) => {
            // A read of something that does not exist is an answer, not a fault: the
            // vending API reads the `bans` policy (at most every BAN_CACHE_SECONDS),
            // and it is absent until someone is banned.
            if fault.code == "NoSuchEntity" {
                tracing::debug!(action = %action.escape_debug(), message = %fault.message, "IAM entity not found");
            } else {
                tracing::warn!(action = %action.escape_debug(), code = fault.code, status = fault.status.as_u16(), message = %fault.message, "STS request refused");
            }
            let kind = if fault.status.is_server_error() {
                "Receiver"
            } else {
                "Sender"
            };
            let body = format!(
                r#"<ErrorResponse xmlns="{namespace}"><Error><Type>{kind}</Type><Code>{}</Code><Message>{}</Message></Error><RequestId>{request_id}</RequestId></ErrorResponse>"#,
                fault.code,
                escape(&fault.message)
            );
            (fault.status, xml_headers, body).into_response()
        }
    }
}

fn parse_session_policy(policy: &str) -> Result<PolicyDocument, Fault> {
    let chars = policy.chars().count();
    if chars == 0 || chars > MAX_SESSION_POLICY_CHARS {
        return Err(Fault::validation(format!(
            "1 validation error detected: Value at 'policy' failed to satisfy constraint: Member must have length less than or equal to {MAX_SESSION_POLICY_CHARS}"
        )));
    }
    if !policy
        .chars()
        .all(|c| matches!(c, '\t' | '\n' | '\r' | '\u{20}'..='\u{FF}'))
    {
        return Err(Fault::validation(
            "1 validation error detected: Value at 'policy' failed to satisfy constraint: Member must satisfy regular expression pattern: [\\u0009\\u000A\\u000D\\u0020-\\u00FF]+",
        ));
    }
    PolicyDocument::parse(policy).map_err(|err| {
        let message = match err {
            serverless_websockets_core::policy::PolicyParseError::Syntax(_) => {
                "The policy is not in the valid JSON format.".to_owned()
            }
            other => format!("Syntax errors in policy: {other}."),
        };
        Fault::new(StatusCode::BAD_REQUEST, "MalformedPolicyDocument", message)
    })
}

/// AWS managed policies the emulator knows, by ARN, for `PolicyArns`. Their
/// documents are AWS's (IAM console, "AWS managed policies"); any other ARN is
/// refused, as STS refuses one that does not exist — it is never ignored.
pub fn managed_policy(arn: &str) -> Option<PolicyDocument> {
    let json = match arn {
        "arn:aws:iam::aws:policy/AWSIoTDataAccess" => {
            r#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Action":["iot:Connect","iot:Publish","iot:Subscribe","iot:Receive","iot:GetThingShadow","iot:UpdateThingShadow","iot:DeleteThingShadow","iot:ListNamedShadowsForThing"],"Resource":"*"}]}"#
        }
        "arn:aws:iam::aws:policy/AWSDenyAll" => {
            r#"{"Version":"2012-10-17","Statement":[{"Sid":"DenyAll","Effect":"Deny","Action":"*","Resource":"*"}]}"#
        }
        _ => return None,
    };
    PolicyDocument::parse(json).ok()
}

/// STS accepts at most ten managed session policies.
pub const MAX_POLICY_ARNS: usize = 10;

/// `PolicyArns.member.N.arn`: each must name a managed policy the emulator knows.
fn parse_policy_arns(params: &HashMap<String, String>) -> Result<Vec<(String, PolicyDocument)>, Fault> {
    let mut policies = Vec::new();
    for n in 1.. {
        let Some(arn) = params.get(&format!("PolicyArns.member.{n}.arn")) else {
            break;
        };
        if n > MAX_POLICY_ARNS {
            return Err(Fault::validation(format!(
                "1 validation error detected: Value at 'policyArns' failed to satisfy constraint: Member must have length less than or equal to {MAX_POLICY_ARNS}"
            )));
        }
        if !(20..=2048).contains(&arn.chars().count()) {
            return Err(Fault::validation(format!(
                "1 validation error detected: Value '{arn}' at 'policyArns.{n}.member.arn' failed to satisfy constraint: Member must have length between 20 and 2048"
            )));
        }
        let document = managed_policy(arn).ok_or_else(|| {
            Fault::new(
                StatusCode::BAD_REQUEST,
                "MalformedPolicyDocument",
                format!("Policy {arn} does not exist or is not attachable."),
            )
        })?;
        policies.push((arn.clone(), document));
    }
    Ok(policies)
}

/// The session's policies: the inline one and the managed ones, or `None` when the
/// caller passed neither (then the role alone decides).
fn session_policies(
    inline: Option<PolicyDocument>,
    managed: Vec<(String, PolicyDocument)>,
) -> Option<Arc<[PolicyDocument]>> {
    let all: Vec<PolicyDocument> = inline
        .into_iter()
        .chain(managed.into_iter().map(|(_, doc)| doc))
        .collect();
    (!all.is_empty()).then(|| Arc::from(all))
}

/// `Tags.member.N.Key` / `Tags.member.N.Value`, at most 50.
fn parse_tags(params: &HashMap<String, String>) -> Result<Vec<(String, String)>, Fault> {
    let mut tags = Vec::new();
    for n in 1.. {
        let Some(key) = params.get(&format!("Tags.member.{n}.Key")) else {
            break;
        };
        let value = params
            .get(&format!("Tags.member.{n}.Value"))
            .cloned()
            .unwrap_or_default();
        if key.is_empty() || key.chars().count() > 128 || value.chars().count() > 256 {
            return Err(Fault::validation(format!(
                "Tag {n} has an empty or over-long key or an over-long value."
            )));
        }
        tags.push((key.clone(), value));
        if tags.len() > 50 {
            return Err(Fault::validation("At most 50 session tags may be passed."));
        }
    }
    Ok(tags)
}

/// Characters of the policy without insignificant whitespace.
fn compact_len(policy: &str) -> usize {
    serde_json::from_str::<serde_json::Value>(policy).map_or(policy.chars().count(), |v| v.to_string().chars().count())
}

/// Escapes text for XML element content.
pub fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&apos;"),
            c => out.push(c),
        }
    }
    out
}

/// `len` characters of RFC 4648 base32 (A–Z, 2–7), as in AWS access key IDs.
pub(crate) fn random_base32(len: usize) -> String {
    const ALPHABET: &[u8; 32] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZ234567";
    serverless_websockets_core::random::bytes::<32>()
        .iter()
        .take(len)
        .map(|b| ALPHABET[(b % 32) as usize] as char)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn session_policies_are_checked_for_size_charset_and_grammar() {
        let ok = r#"{"Version":"2012-10-17","Statement":{"Effect":"Allow","Action":"iot:*","Resource":"*"}}"#;
        assert!(parse_session_policy(ok).is_ok());
        assert_eq!(
            parse_session_policy("{not json").unwrap_err().code,
            "MalformedPolicyDocument"
        );
        assert_eq!(
            parse_session_policy(r#"{"Statement":[]}"#).unwrap_err().code,
            "MalformedPolicyDocument"
        );
        assert_eq!(
            parse_session_policy(&" ".repeat(2049)).unwrap_err().code,
            "ValidationError"
        );
        assert_eq!(
            parse_session_policy("{\"x\":\"\u{263a}\"}").unwrap_err().code,
            "ValidationError"
        );
    }

    #[test]
    fn xml_text_is_escaped() {
        assert_eq!(escape("a<b>&\"c'"), "a&lt;b&gt;&amp;&quot;c&apos;");
    }

    #[test]
    fn access_key_ids_look_like_aws_ones() {
        let key = format!("ASIA{}", random_base32(16));
        assert_eq!(key.len(), 20);
        assert!(
            key.bytes()
                .all(|c| c.is_ascii_uppercase() || (b'2'..=b'7').contains(&c))
        );
    }
}
