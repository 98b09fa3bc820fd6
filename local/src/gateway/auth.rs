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
    Expectations, RequestParts, SigError, SignedClaims, TokenInQuery, Verifier, check_claims, query_pairs,
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

    /// Admits an HTTPS request with an `Authorization` header for one of
    /// `services` (the data plane's [`SERVICES`], or the control plane's `iot`) on
    /// its headers alone, before its body is read: the scope's service, region and
    /// date, a known and current credential, and every `x-amz-mqtt5-*` header the
    /// data plane reads among the signed headers (a captured request replayed with
    /// forged properties is refused).
    pub fn admit(&self, services: &[&str], headers: &HeaderMap, now: SystemTime) -> Result<Admitted, Refusal> {
        let claims = SignedClaims::from_headers(headers).map_err(Refusal::Signature)?;
        check_claims(&claims, self.expect(services, None), now).map_err(Refusal::Signature)?;
        if let Some(unsigned) = headers
            .keys()
            .map(http::HeaderName::as_str)
            .find(|name| name.starts_with(MUST_BE_SIGNED) && !claims.signed_headers.iter().any(|h| h == name))
        {
            return Err(Refusal::Signature(SigError::HeaderNotSigned(unsigned.to_owned())));
        }
        let identity = self
            .store
            .authenticate(&claims.access_key_id, claims.security_token.as_deref(), now)
            .map_err(Refusal::Credential)?;
        Ok(Admitted { claims, identity })
    }

    /// Verifies the signature of an admitted request, its query already parsed
    /// (the handler reads the same pairs), over a body hashing to `payload_sha256`.
    pub fn verify(
        &self,
        admitted: Admitted,
        services: &[&str],
        request: &http::request::Parts,
        query: &[(String, String)],
        payload_sha256: &str,
        now: SystemTime,
    ) -> Result<Arc<Identity>, Refusal> {
        let parts = RequestParts::of(&request.method, &request.uri, query, &request.headers);
        let expect = self.expect(services, Some(payload_sha256));
        self.verifier
            .verify(
                &admitted.claims,
                parts,
                &admitted.identity.secret_access_key,
                expect,
                now,
            )
            .map_err(Refusal::Signature)?;
        Ok(admitted.identity)
    }

    fn expect<'a>(&'a self, services: &'a [&'a str], payload_sha256: Option<&'a str>) -> Expectations<'a> {
        Expectations {
            services,
            region: Some(&self.region),
            token_in_query: TokenInQuery::Signed,
            payload_sha256,
        }
    }
}

/// Headers the data plane reads that must be signed: the MQTT 5 properties.
const MUST_BE_SIGNED: &str = "x-amz-mqtt5-";

/// A request admitted on its headers by [`SignatureCheck::admit`], its
/// signature not yet verified.
pub struct Admitted {
    claims: SignedClaims,
    identity: Arc<Identity>,
}
