//! SigV4 signing of test requests with `aws-sigv4`, the one copy of that
//! boilerplate: header signing (what botocore and the SDKs send) and the generic
//! query signer (which, unlike IoT's presigner, signs the session token too).
//! Self-contained, so `client-example`'s tests include it as well.

use std::time::SystemTime;

use aws_credential_types::Credentials;
use aws_sigv4::http_request::{
    PayloadChecksumKind, SignableBody, SignableRequest, SignatureLocation, SigningSettings, sign,
};
use aws_sigv4::sign::v4;

/// What to sign.
pub struct ToSign<'a> {
    pub method: &'a str,
    pub url: &'a str,
    pub headers: &'a [(&'a str, &'a str)],
    pub body: &'a [u8],
    pub service: &'a str,
    pub region: &'a str,
    /// Also send (and sign) `x-amz-content-sha256`, as S3-style signers do.
    pub content_sha256_header: bool,
}

/// The headers to add to the request: `authorization`, `x-amz-date`, and the token
/// and content hash when present.
pub fn sign_headers(request: &ToSign<'_>, credentials: &Credentials, time: SystemTime) -> Vec<(String, String)> {
    let mut settings = SigningSettings::default();
    settings.signature_location = SignatureLocation::Headers;
    if request.content_sha256_header {
        settings.payload_checksum_kind = PayloadChecksumKind::XAmzSha256;
    }
    let identity = credentials.clone().into();
    let params = v4::SigningParams::builder()
        .identity(&identity)
        .region(request.region)
        .name(request.service)
        .time(time)
        .settings(settings)
        .build()
        .unwrap()
        .into();
    let signable = SignableRequest::new(
        request.method,
        request.url,
        request.headers.iter().copied(),
        SignableBody::Bytes(request.body),
    )
    .unwrap();
    let (instructions, _) = sign(signable, &params).unwrap().into_parts();
    instructions
        .headers()
        .map(|(name, value)| (name.to_owned(), value.to_owned()))
        .collect()
}

/// The query string of a `GET` on `url` presigned by the generic SigV4 query
/// signer, valid for `expires`.
pub fn presign_query(
    url: &str,
    service: &str,
    region: &str,
    credentials: &Credentials,
    time: SystemTime,
    expires: std::time::Duration,
) -> String {
    let mut settings = SigningSettings::default();
    settings.signature_location = SignatureLocation::QueryParams;
    settings.expires_in = Some(expires);
    let identity = credentials.clone().into();
    let params = v4::SigningParams::builder()
        .identity(&identity)
        .region(region)
        .name(service)
        .time(time)
        .settings(settings)
        .build()
        .unwrap()
        .into();
    let signable = SignableRequest::new("GET", url, std::iter::empty(), SignableBody::Bytes(b"")).unwrap();
    let (instructions, _) = sign(signable, &params).unwrap().into_parts();
    let mut request = http::Request::builder().uri(url).body(()).unwrap();
    instructions.apply_to_request_http1x(&mut request);
    request.uri().query().unwrap_or_default().to_owned()
}

/// `host[:port]` of a URL, as the signer and the server see it.
pub fn host_of(url: &str) -> &str {
    url.split("://").nth(1).unwrap().split('/').next().unwrap()
}
