//! Authentication at the gateway's door: a presigned WebSocket URL or a
//! SigV4 `Authorization` header, checked against the local identity store.
//!
//! IoT accepts several service names because official SDKs differ: the docs say
//! `iotdevicegateway`, botocore's `iot-data` client signs as `iotdata`, and older
//! JavaScript SDKs sign WebSocket URLs as `iotdata` too. The presigned session token
//! is not part of the signature (IoT's rule); a URL whose token was signed fails.
//! The credential scope must name the gateway's region. Only authentication
//! happens here; authorization is per MQTT packet.

use std::sync::Arc;
use std::time::SystemTime;

use http::{HeaderMap, Method, Uri};

use crate::identity::{Identity, IdentityStore, Refusal};
use serverless_websockets_core::sigv4::{
    Expectations, RequestParts, SignedClaims, TokenInQuery, Verifier, query_pairs,
};

pub const SERVICES: &[&str] = &["iotdevicegateway", "iotdata"];

/// Checks the SigV4 signatures of requests to the gateway against the identity
/// store, for one region.
pub struct SignatureCheck {
    store: Arc<IdentityStore>,
    verifier: Verifier,
    region: String,
}

impl SignatureCheck {
    pub fn new(store: Arc<IdentityStore>, region: &str) -> Self {
        Self {
            store,
            verifier: Verifier::new(),
            region: region.to_owned(),
        }
    }

    fn check(
        &self,
        claims: &SignedClaims,
        parts: RequestParts<'_>,
        expect: Expectations<'_>,
        now: SystemTime,
    ) -> Result<Arc<Identity>, Refusal> {
        self.store.verify_signed(&self.verifier, claims, parts, expect, now)
    }

    /// A WebSocket handshake `GET /mqtt?X-Amz-…`.
    pub fn presigned(
        &self,
        method: &Method,
        uri: &Uri,
        headers: &HeaderMap,
        now: SystemTime,
    ) -> Result<Arc<Identity>, Refusal> {
        let query = query_pairs(uri.query().unwrap_or(""));
        let claims = SignedClaims::from_query(&query).map_err(Refusal::Signature)?;
        let parts = RequestParts::of(method, uri, &query, headers);
        let expect = Expectations {
            services: SERVICES,
            region: Some(&self.region),
            token_in_query: TokenInQuery::Unsigned,
            payload_sha256: None,
        };
        self.check(&claims, parts, expect, now)
    }

    /// An HTTPS request with an `Authorization` header for one of `services`
    /// (the data plane's [`SERVICES`], or the control plane's `iot`), its query already parsed
    /// (the handler reads the same pairs), over a body hashing to `payload_sha256`.
    pub fn signed_header(
        &self,
        services: &[&str],
        request: &http::request::Parts,
        query: &[(String, String)],
        payload_sha256: &str,
        now: SystemTime,
    ) -> Result<Arc<Identity>, Refusal> {
        let claims = SignedClaims::from_headers(&request.headers).map_err(Refusal::Signature)?;
        let parts = RequestParts::of(&request.method, &request.uri, query, &request.headers);
        let expect = Expectations {
            services,
            region: Some(&self.region),
            token_in_query: TokenInQuery::Signed,
            payload_sha256: Some(payload_sha256),
        };
        self.check(&claims, parts, expect, now)
    }
}
