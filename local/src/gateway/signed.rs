//! A SigV4-signed HTTPS request to the gateway — the data plane's and the
//! control plane's alike — read once (body bounded by IoT's message size, query
//! parsed once for the signature and the handler), and AWS's error answer for it.
//!
//! Not here: what each operation does (`dataplane`, `control`).

use std::sync::Arc;
use std::time::SystemTime;

use axum::body::Bytes;
use axum::http::{HeaderMap, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use sha2::Digest;

use super::aws_error::aws_error;
use super::state::Gateway;
use crate::identity::Identity;
use serverless_websockets_vending::server::BodyError;

/// IoT's largest message, for the HTTPS publish API too.
pub const MAX_PUBLISH_BODY: usize = serverless_websockets_core::quota::MAX_PAYLOAD_BYTES;

/// An authenticated request: who signed it, its body and its query pairs.
pub struct Signed {
    pub identity: Arc<Identity>,
    pub uri: Uri,
    pub headers: HeaderMap,
    pub body: Bytes,
    pub query: Vec<(String, String)>,
}

impl Signed {
    pub fn param(&self, name: &str) -> Option<&str> {
        self.query.iter().find(|(n, _)| n == name).map(|(_, v)| v.as_str())
    }

    /// The path after `prefix` up to `suffix`, percent-decoded: botocore sends `/`
    /// inside a client ID or topic as `%2F`.
    pub fn path_label(&self, prefix: &str, suffix: &str) -> Option<String> {
        let raw = self.uri.path().strip_prefix(prefix)?.strip_suffix(suffix)?;
        percent_encoding::percent_decode_str(raw)
            .decode_utf8()
            .ok()
            .map(|s| s.into_owned())
    }

    /// Authorizes `action` on `resource`, or the refusal as `kind` (403
    /// `ForbiddenException`, or 401 `UnauthorizedException` where the model has no 403).
    pub fn authorize(
        &self,
        operation: &str,
        action: &str,
        resource: &str,
        forbidden: Refused,
    ) -> Result<(), DataPlaneError> {
        self.identity.authorize(action, resource).map_err(|denial| {
            tracing::warn!(principal = %self.identity.arn, "{operation} refused: {denial}");
            match forbidden {
                Refused::Forbidden => DataPlaneError::new(StatusCode::FORBIDDEN, "ForbiddenException", "Forbidden"),
                Refused::Unauthorized => {
                    DataPlaneError::new(StatusCode::UNAUTHORIZED, "UnauthorizedException", "Unauthorized")
                }
            }
        })
    }
}

#[derive(Clone, Copy)]
pub enum Refused {
    Forbidden,
    Unauthorized,
}

/// An error answer of the API model: status, error shape, message.
#[derive(Debug)]
pub struct DataPlaneError {
    status: StatusCode,
    kind: &'static str,
    message: String,
}

impl DataPlaneError {
    pub fn new(status: StatusCode, kind: &'static str, message: impl Into<String>) -> Self {
        Self {
            status,
            kind,
            message: message.into(),
        }
    }
}

impl IntoResponse for DataPlaneError {
    fn into_response(self) -> Response {
        aws_error(self.status, self.kind, &self.message)
    }
}

/// What a handler answers.
pub type Answer = Result<Response, DataPlaneError>;

pub fn invalid(message: impl Into<String>) -> DataPlaneError {
    DataPlaneError::new(StatusCode::BAD_REQUEST, "InvalidRequestException", message)
}

pub fn not_found(message: impl Into<String>) -> DataPlaneError {
    DataPlaneError::new(StatusCode::NOT_FOUND, "ResourceNotFoundException", message)
}

pub fn ok(body: serde_json::Value) -> Answer {
    Ok((StatusCode::OK, axum::Json(body)).into_response())
}

/// Reads the body (at most IoT's message size) and checks the SigV4
/// `Authorization` as the data plane's services sign it.
pub async fn signed(
    gateway: &Gateway,
    operation: &str,
    request: axum::extract::Request,
) -> Result<Signed, DataPlaneError> {
    signed_as(gateway, operation, request, super::auth::SERVICES).await
}

/// The same, for requests signed for `services` (the control plane's is `iot`).
pub async fn signed_as(
    gateway: &Gateway,
    operation: &str,
    request: axum::extract::Request,
    services: &[&str],
) -> Result<Signed, DataPlaneError> {
    let (parts, body) = request.into_parts();
    let refused = |denied: crate::identity::Refusal| {
        tracing::warn!("{operation} refused: {denied}");
        DataPlaneError::new(StatusCode::FORBIDDEN, "ForbiddenException", "Forbidden")
    };
    // What the headers already condemn (no or an unknown key, a stale date, an
    // unsigned MQTT 5 header) is refused before a byte of the body is read.
    let admitted = gateway
        .auth
        .admit(services, &parts.headers, SystemTime::now())
        .map_err(refused)?;
    let body = match serverless_websockets_vending::server::read_body(&parts, body, MAX_PUBLISH_BODY).await {
        Ok(body) => body,
        Err(BodyError::TooLarge { .. }) => {
            return Err(DataPlaneError::new(
                StatusCode::PAYLOAD_TOO_LARGE,
                "RequestEntityTooLargeException",
                "The payload exceeds the maximum size allowed",
            ));
        }
        Err(err) => {
            tracing::warn!("{operation}: body not read: {err}");
            return Err(invalid("The request body could not be read in time."));
        }
    };
    let payload_hash = hex::encode(sha2::Sha256::digest(&body));
    // One parse of the query, for the signature and for the handler alike.
    let query = serverless_websockets_core::sigv4::query_pairs(parts.uri.query().unwrap_or(""));
    let identity = gateway
        .auth
        .verify(admitted, services, &parts, &query, &payload_hash, SystemTime::now())
        .map_err(refused)?;
    Ok(Signed {
        identity,
        uri: parts.uri,
        headers: parts.headers,
        body,
        query,
    })
}
