//! AWS's JSON error shape, as the IoT data plane and the device gateway answer
//! refusals: `{"message", "traceId"}` with the error type in `x-amzn-ErrorType`
//! (botocore reads the type from that header).
//!
//! Not here: which refusal gets which status (each handler decides).

use axum::http::{HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};

/// A fresh trace ID, as AWS puts in error bodies.
pub fn trace_id() -> String {
    serverless_websockets_core::random::hex::<16>()
}

/// AWS's JSON error shape with `x-amzn-ErrorType`.
pub fn aws_error(status: StatusCode, kind: &str, message: &str) -> Response {
    let body = serde_json::json!({"message": message, "traceId": trace_id()});
    let mut response = (status, axum::Json(body)).into_response();
    if let Ok(value) = HeaderValue::from_str(&format!("{kind}:")) {
        response.headers_mut().insert("x-amzn-errortype", value);
    }
    response
}
