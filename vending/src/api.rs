//! The credential-vending HTTP API: one axum [`Router`] served by Lambda
//! (`lambda_http`) and by `serverless-websockets serve` / `local`.
//!
//! `POST /credentials` (also `/iotkeys` and `/`, the original project's paths)
//! picks a client ID, builds its session policy, asks the [`CredentialIssuer`] for
//! credentials and returns them with a presigned URL. Every expected failure is an
//! HTTP response with a JSON body `{"error": {"code", "message"}}` — never an `Err`,
//! which API Gateway would turn into an opaque 5xx. Bodies never carry internal
//! error text; the log line does, under the same request ID as the
//! `x-request-id` response header.
//!
//! A request is handled in steps: parse (method, content type, body),
//! authenticate ([`crate::auth`]), decide the client ID, grants and policy
//! ([`crate::vend::plan`], no I/O), issue ([`crate::issuer`]), then render
//! ([`crate::vend::render`], no I/O). Not here: anything that needs a network listener — the router is served
//! by the caller ([`crate::server`] or Lambda).

use std::sync::Arc;
use std::time::{Instant, SystemTime};

use axum::Router;
use axum::body::Bytes;
use axum::extract::{Request, State};
use axum::http::{HeaderMap, HeaderName, HeaderValue, Method, StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{MethodRouter, get, post};
use tower_http::cors::{AllowOrigin, CorsLayer};
use tracing::Instrument;

use crate::auth::{AuthError, Authenticator, SetupError};
use crate::config::{Config, CorsOrigins};
use crate::grants_fn::{self, GrantsFnError, GrantsRequest, GrantsSource};
use crate::issuer::{CredentialIssuer, StsError, THROTTLE_RETRY_AFTER};
use crate::server::BodyError;
use crate::vend;
use serverless_websockets_core::error_code as code;
use serverless_websockets_core::grants::GrantError;
use serverless_websockets_core::resume::ResumeError;

/// The largest request body accepted. The body carries at most a few options.
pub const MAX_BODY_BYTES: usize = 16 * 1024;

pub static REQUEST_ID: HeaderName = HeaderName::from_static("x-request-id");

/// Everything a request handler needs, shared by all requests.
#[derive(Clone)]
pub struct AppState {
    config: Arc<Config>,
    issuer: Arc<dyn CredentialIssuer>,
    auth: Arc<Authenticator>,
    grants_fn: Option<Arc<dyn GrantsSource>>,
}

/// Builds the authenticator `config.auth` describes, then the API
/// ([`router`]): what the entry points and tests call.
pub fn build(config: Config, issuer: Arc<dyn CredentialIssuer>) -> Result<Router, SetupError> {
    build_with(config, issuer, None)
}

/// [`build`] with the grants function `GRANTS_FUNCTION` names ([`crate::grants_fn`]).
pub fn build_with(
    config: Config,
    issuer: Arc<dyn CredentialIssuer>,
    grants_fn: Option<Arc<dyn GrantsSource>>,
) -> Result<Router, SetupError> {
    let auth = Authenticator::new(&config.auth)?;
    Ok(router_with(config, auth, issuer, grants_fn))
}

/// Builds the API for `config`, authenticating callers with `auth` (built from
/// `config.auth` by [`Authenticator::new`]) and issuing credentials through `issuer`.
pub fn router(config: Config, auth: Authenticator, issuer: Arc<dyn CredentialIssuer>) -> Router {
    router_with(config, auth, issuer, None)
}

/// [`router`], asking `grants_fn` for claim values at every vend when given.
pub fn router_with(
    config: Config,
    auth: Authenticator,
    issuer: Arc<dyn CredentialIssuer>,
    grants_fn: Option<Arc<dyn GrantsSource>>,
) -> Router {
    let cors = match &config.cors_allow_origins {
        CorsOrigins::None => None,
        CorsOrigins::Any => Some(AllowOrigin::any()),
        CorsOrigins::List(origins) => Some(AllowOrigin::list(
            origins.iter().filter_map(|o| HeaderValue::from_str(o).ok()),
        )),
    };
    let state = AppState {
        config: Arc::new(config),
        issuer,
        auth: Arc::new(auth),
        grants_fn,
    };
    let vend = || -> MethodRouter<AppState> {
        post(vend)
            .options(options("POST, OPTIONS"))
            .fallback(method_not_allowed("POST, OPTIONS"))
    };
    let mut app = Router::new()
        .route("/credentials", vend())
        .route("/iotkeys", vend())
        .route("/", vend())
        .route("/health", get(health).fallback(method_not_allowed("GET, HEAD")))
        .fallback(|| async { ApiError::NotFound })
        .with_state(state);
    if let Some(origins) = cors {
        app = app.layer(
            CorsLayer::new()
                .allow_origin(origins)
                .allow_methods([Method::POST, Method::OPTIONS])
                .allow_headers([header::CONTENT_TYPE, header::AUTHORIZATION])
                .expose_headers([REQUEST_ID.clone()])
                .max_age(std::time::Duration::from_secs(600)),
        );
    }
    app.layer(middleware::from_fn(request_id))
}

/// Gives each request an ID (API Gateway's own when behind it), a tracing span
/// with that ID, an `x-request-id` response header, and one log line at the end.
async fn request_id(request: Request, next: Next) -> Response {
    let id = gateway_request_id(&request).unwrap_or_else(serverless_websockets_core::random::hex::<8>);
    let span =
        tracing::info_span!("request", request_id = %id, method = %request.method(), path = %request.uri().path());
    let started = Instant::now();
    let mut response = next.run(request).instrument(span.clone()).await;
    if let Ok(value) = HeaderValue::from_str(&id) {
        response.headers_mut().insert(REQUEST_ID.clone(), value);
    }
    span.in_scope(|| {
        tracing::info!(
            status = response.status().as_u16(),
            latency_us = started.elapsed().as_micros() as u64,
            "request finished"
        )
    });
    response
}

fn gateway_request_id(request: &Request) -> Option<String> {
    use lambda_http::request::RequestContext;
    let id = match request.extensions().get::<RequestContext>()? {
        RequestContext::ApiGatewayV2(context) => context.request_id.clone(),
        RequestContext::ApiGatewayV1(context) => context.request_id.clone(),
        _ => None,
    }?;
    id.bytes().all(|c| c.is_ascii_graphic()).then_some(id)
}

async fn health() -> impl IntoResponse {
    axum::Json(serde_json::json!({"status": "ok"}))
}

fn options(allow: &'static str) -> MethodRouter<AppState> {
    axum::routing::options(move || async move { (StatusCode::NO_CONTENT, [(header::ALLOW, allow)]) })
}

fn method_not_allowed(allow: &'static str) -> MethodRouter<AppState> {
    axum::routing::any(move || async move { ApiError::MethodNotAllowed { allow } })
}

/// `POST /credentials`: read and authenticate (I/O), decide ([`vend::plan`]),
/// issue (I/O), answer ([`vend::render`]).
async fn vend(State(state): State<AppState>, request: Request) -> Result<Response, ApiError> {
    let (parts, body) = request.into_parts();
    let authorization = parts.headers.get(header::AUTHORIZATION).and_then(|v| v.to_str().ok());
    let caller = state.auth.authenticate(authorization).await?;
    let body = crate::server::read_body(&parts, body, MAX_BODY_BYTES).await?;
    let body = parse_body(&parts.headers, &body)?;
    let config = &state.config;
    let now = SystemTime::now();
    let started = vend::start(config, &caller, body.as_ref(), now)?;
    let claims = match &state.grants_fn {
        None => None,
        Some(source) => {
            let narrowing = started.narrow.as_ref().map(|n| serde_json::json!(n));
            let request = GrantsRequest {
                sub: caller.sub.as_deref(),
                claims: caller.claims.as_deref(),
                client_id: started.client_id.as_str(),
                resumed: started.resumed,
                narrowing: narrowing.as_ref(),
            };
            Some(grants_fn::claims_with(source.as_ref(), &config.grants, request).await?)
        }
    };
    let plan = vend::finish(config, &caller, started, claims.as_ref())?;
    let credentials = state.issuer.issue(plan.issue_request(config)).await?;
    let vended = vend::render(config, &plan, credentials, now)?;
    plan.log_issued(&vended.credentials.expiration);
    Ok(([(header::CACHE_CONTROL, "no-store")], axum::Json(vended)).into_response())
}

/// An empty body is fine; otherwise it must be declared JSON and be a JSON object,
/// which is returned. Unknown fields are ignored so that newer clients work with
/// older deployments.
fn parse_body(
    headers: &HeaderMap,
    body: &Bytes,
) -> Result<Option<serde_json::Map<String, serde_json::Value>>, ApiError> {
    if body.iter().all(u8::is_ascii_whitespace) {
        return Ok(None);
    }
    let content_type = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    let essence = content_type.split(';').next().unwrap_or("").trim().to_ascii_lowercase();
    if essence != "application/json" && !(essence.starts_with("application/") && essence.ends_with("+json")) {
        return Err(ApiError::UnsupportedMediaType(content_type.to_owned()));
    }
    match serde_json::from_slice::<serde_json::Value>(body) {
        Ok(serde_json::Value::Object(object)) => Ok(Some(object)),
        Ok(_) => Err(ApiError::NotAnObject),
        Err(e) => Err(ApiError::InvalidJson(e.to_string())),
    }
}

impl From<BodyError> for ApiError {
    fn from(err: BodyError) -> Self {
        match err {
            BodyError::TooLarge { .. } => ApiError::TooLarge,
            BodyError::Timeout(_) => ApiError::BodyTimeout,
            BodyError::Read(detail) => ApiError::BodyRead(detail),
        }
    }
}

/// Every way a request can fail, mapped to a status and a stable code in one place.
#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    #[error("request body is not valid JSON: {0}")]
    InvalidJson(String),
    #[error("request body is JSON but not an object")]
    NotAnObject,
    #[error("request body is over {MAX_BODY_BYTES} bytes")]
    TooLarge,
    #[error("request body has content type {0:?}, not application/json")]
    UnsupportedMediaType(String),
    #[error("request body could not be read: {0}")]
    BodyRead(String),
    #[error("request body did not arrive in time")]
    BodyTimeout,
    #[error("no such route")]
    NotFound,
    #[error("method not allowed (allowed: {allow})")]
    MethodNotAllowed { allow: &'static str },
    #[error(transparent)]
    Sts(#[from] StsError),
    #[error("authentication failed: {0}")]
    Auth(#[from] AuthError),
    #[error("grants cannot be made for this caller: {0}")]
    Grant(#[from] GrantError),
    #[error("the body's claims must be an object of claim names to arrays of strings")]
    InvalidNarrowing,
    #[error("resume refused: {0}")]
    Resume(ResumeError),
    #[error("resume refused: the token for client {client_id} was issued to another caller")]
    ResumeForbidden { client_id: String },
    #[error(transparent)]
    GrantsFunction(#[from] GrantsFnError),
    #[error("internal error: {0}")]
    Internal(String),
}

impl ApiError {
    fn inner_grant_error(&self) -> String {
        match self {
            ApiError::Grant(error) => error.to_string(),
            _ => String::new(),
        }
    }

    /// Status, stable code, and the message the caller sees.
    #[allow(
        clippy::too_many_lines,
        reason = "one table: every refusal's status, code and message, side by side"
    )]
    fn parts(&self) -> (StatusCode, &'static str, String) {
        use ApiError::*;
        match self {
            InvalidJson(detail) => (
                StatusCode::BAD_REQUEST,
                code::INVALID_JSON,
                format!("The request body is not valid JSON: {detail}."),
            ),
            NotAnObject => (
                StatusCode::BAD_REQUEST,
                code::INVALID_JSON,
                "The request body must be a JSON object.".into(),
            ),
            BodyRead(_) => (
                StatusCode::BAD_REQUEST,
                code::BAD_REQUEST,
                "The request body could not be read.".into(),
            ),
            BodyTimeout => (
                StatusCode::REQUEST_TIMEOUT,
                code::REQUEST_TIMEOUT,
                "The request body did not arrive in time.".into(),
            ),
            TooLarge => (
                StatusCode::PAYLOAD_TOO_LARGE,
                code::PAYLOAD_TOO_LARGE,
                format!("The request body must be at most {MAX_BODY_BYTES} bytes."),
            ),
            UnsupportedMediaType(_) => (
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                code::UNSUPPORTED_MEDIA_TYPE,
                "Send the body as Content-Type: application/json, or send no body.".into(),
            ),
            NotFound => (
                StatusCode::NOT_FOUND,
                code::NOT_FOUND,
                "No such resource. POST to /credentials.".into(),
            ),
            MethodNotAllowed { allow } => (
                StatusCode::METHOD_NOT_ALLOWED,
                code::METHOD_NOT_ALLOWED,
                format!("Use one of: {allow}."),
            ),
            Sts(StsError::Throttled { .. }) => (
                StatusCode::SERVICE_UNAVAILABLE,
                code::THROTTLED,
                "Too many credential requests right now; retry after the Retry-After delay.".into(),
            ),
            Sts(StsError::Misconfigured { .. }) => (
                StatusCode::INTERNAL_SERVER_ERROR,
                code::MISCONFIGURED,
                "The service is misconfigured and cannot issue credentials; its operator has been logged the cause."
                    .into(),
            ),
            Sts(StsError::Banned { .. }) => (
                StatusCode::FORBIDDEN,
                code::BANNED,
                "You are banned from this service.".into(),
            ),
            Sts(StsError::Timeout(_)) | Sts(StsError::Unavailable(_)) => (
                StatusCode::BAD_GATEWAY,
                code::UPSTREAM_UNAVAILABLE,
                "The credential service upstream did not answer properly; retry shortly.".into(),
            ),
            Auth(AuthError::KeysUnavailable(_)) => (
                StatusCode::SERVICE_UNAVAILABLE,
                code::AUTH_UNAVAILABLE,
                "The token's signing keys cannot be fetched right now; retry shortly.".into(),
            ),
            Auth(err) => (StatusCode::UNAUTHORIZED, err.code(), format!("The bearer token was refused: {err}.")),
            Grant(GrantError::BadSub(_)) | Grant(GrantError::MissingSub { .. }) | Grant(GrantError::Expanded { .. }) => (
                StatusCode::FORBIDDEN,
                code::INVALID_SUBJECT,
                "The token's sub cannot be used in a topic grant (it must be one topic level without / + # * ? $, whitespace or control characters).".into(),
            ),
            Grant(GrantError::SubCharset { charset, .. }) => (
                StatusCode::FORBIDDEN,
                code::INVALID_SUBJECT,
                format!("The token's sub has a character this service does not accept in topics (SUB_CHARACTERS={charset})."),
            ),
            Grant(GrantError::SubTooLong { max, .. }) => (
                StatusCode::FORBIDDEN,
                code::INVALID_SUBJECT,
                format!("The token's sub is longer than this service accepts in topics (SUB_MAX_BYTES={max})."),
            ),
            Grant(GrantError::BadClaim { claim, problem }) => (
                StatusCode::FORBIDDEN,
                code::INVALID_CLAIM,
                format!("The token's claim {claim:?} cannot be used in a topic grant: {problem} (each value must be one topic level without / + # * ? $, whitespace or control characters)."),
            ),
            Grant(GrantError::ClaimNotInToken { claim, value }) => (
                StatusCode::FORBIDDEN,
                code::CLAIM_NOT_IN_TOKEN,
                format!("You asked for {value:?} in the claim {claim:?}, which your token does not carry."),
            ),
            Grant(GrantError::UnknownClaim { claim }) => (
                StatusCode::BAD_REQUEST,
                code::INVALID_NARROWING,
                format!("No grant of this service uses the claim {claim:?}; narrow only claims the grants use."),
            ),
            InvalidNarrowing => (
                StatusCode::BAD_REQUEST,
                code::INVALID_NARROWING,
                "The body's claims must look like {\"claims\": {\"rooms\": [\"42\", \"7\"]}}.".into(),
            ),
            Grant(GrantError::TooManyGrants { .. }) | Grant(GrantError::PolicyTooLarge { .. }) => (
                StatusCode::FORBIDDEN,
                code::GRANTS_TOO_LARGE,
                format!("Your token's claims make more grants than one credential can hold ({}); ask for fewer, e.g. {{\"claims\": {{\"rooms\": [\"42\", \"7\"]}}}} in the request body.", self.inner_grant_error()),
            ),
            Grant(_) => (StatusCode::INTERNAL_SERVER_ERROR, code::MISCONFIGURED, "The service's grants are misconfigured.".into()),
            Resume(ResumeError::Expired(_)) => (
                StatusCode::UNAUTHORIZED,
                code::RESUME_TOKEN_EXPIRED,
                "The resume token has expired; request credentials without it for a new client ID.".into(),
            ),
            Resume(_) => (
                StatusCode::UNAUTHORIZED,
                code::INVALID_RESUME_TOKEN,
                "The resume token is not one this service issued (malformed, altered, or signed with another key).".into(),
            ),
            ResumeForbidden { .. } => (
                StatusCode::FORBIDDEN,
                code::RESUME_FORBIDDEN,
                "The resume token was issued to another caller.".into(),
            ),
            GrantsFunction(_) => (
                StatusCode::SERVICE_UNAVAILABLE,
                code::GRANTS_UNAVAILABLE,
                "This service could not look up what you may access right now; retry shortly.".into(),
            ),
            Internal(_) => (
                StatusCode::INTERNAL_SERVER_ERROR,
                code::INTERNAL_ERROR,
                "Internal error.".into(),
            ),
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let (status, code, message) = self.parts();
        // `outcome` is the code the caller sees, as on the success line.
        if status.is_server_error() {
            tracing::error!(outcome = code, error = %self, "request failed");
        } else {
            tracing::warn!(outcome = code, error = %self, "request refused");
        }
        let body = serde_json::json!({"error": {"code": code, "message": message}});
        let mut response = (status, axum::Json(body)).into_response();
        let headers = response.headers_mut();
        match &self {
            ApiError::MethodNotAllowed { allow } => {
                headers.insert(header::ALLOW, HeaderValue::from_static(allow));
            }
            ApiError::Sts(StsError::Throttled { .. }) | ApiError::GrantsFunction(_) => {
                headers.insert(header::RETRY_AFTER, HeaderValue::from(THROTTLE_RETRY_AFTER.as_secs()));
            }
            ApiError::Auth(err) if !matches!(err, AuthError::KeysUnavailable(_)) => {
                headers.insert(
                    header::WWW_AUTHENTICATE,
                    HeaderValue::from_static("Bearer error=\"invalid_token\""),
                );
            }
            _ => {}
        }
        headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
        response
    }
}
