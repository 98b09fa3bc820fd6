//! Verifying AWS Signature Version 4 on incoming requests — the receiving side that
//! the local STS and IoT emulators need (signing is `aws-sigv4`'s job, see
//! [`crate::presign`]).
//!
//! Both forms are handled: the `Authorization` header (STS, the IoT HTTPS publish
//! API) and a presigned query string (the IoT WebSocket handshake). The canonical
//! request follows
//! <https://docs.aws.amazon.com/IAM/latest/UserGuide/create-signed-request.html>:
//! the path URI-encoded once more (non-S3 services), the query decoded, re-encoded
//! and sorted, the signed headers trimmed and lower-cased.
//!
//! IoT specifics (<https://docs.aws.amazon.com/iot/latest/developerguide/protocols.html>),
//! chosen by [`Verifier::verify`]'s caller: the presigned session token is *not*
//! part of the canonical query, `X-Amz-Expires` is optional, and several service
//! names are accepted because official SDKs sign with different ones.
//!
//! Pure apart from a cache of derived signing keys: the time is a parameter, and
//! looking up the secret for an access key is the caller's business. HMAC and
//! SHA-256 come from the RustCrypto `hmac`/`sha2` crates; the signature comparison
//! is constant-time (`subtle`).

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, SystemTime};

use hmac::{Hmac, Mac};
use percent_encoding::{AsciiSet, NON_ALPHANUMERIC, percent_decode_str, utf8_percent_encode};
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

pub const ALGORITHM: &str = "AWS4-HMAC-SHA256";
/// How far `X-Amz-Date` may be from the receiver's clock, either side.
pub const CLOCK_SKEW: Duration = Duration::from_secs(15 * 60);
/// hex(SHA-256("")).
pub const EMPTY_SHA256: &str = "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855";
/// The longest `X-Amz-Expires` SigV4 allows: seven days.
/// <https://docs.aws.amazon.com/AmazonS3/latest/API/sigv4-query-string-auth.html>
pub const MAX_EXPIRES_SECS: u64 = 604_800;

/// Header and query parameter names, lower-case for headers.
pub const X_AMZ_DATE: &str = "x-amz-date";
pub const X_AMZ_SECURITY_TOKEN: &str = "x-amz-security-token";
pub const X_AMZ_CONTENT_SHA256: &str = "x-amz-content-sha256";
pub const Q_ALGORITHM: &str = "X-Amz-Algorithm";
pub const Q_CREDENTIAL: &str = "X-Amz-Credential";
pub const Q_DATE: &str = "X-Amz-Date";
pub const Q_EXPIRES: &str = "X-Amz-Expires";
pub const Q_SIGNED_HEADERS: &str = "X-Amz-SignedHeaders";
pub const Q_SIGNATURE: &str = "X-Amz-Signature";
pub const Q_SECURITY_TOKEN: &str = "X-Amz-Security-Token";

/// RFC 3986 unreserved characters stay; everything else is percent-encoded.
const URI_ENCODE: &AsciiSet = &NON_ALPHANUMERIC.remove(b'-').remove(b'_').remove(b'.').remove(b'~');
const URI_ENCODE_PATH: &AsciiSet = &URI_ENCODE.remove(b'/');

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SigError {
    #[error("the request is not signed")]
    Missing,
    #[error("malformed signature: {0}")]
    Malformed(&'static str),
    #[error("unsupported signing algorithm")]
    Algorithm,
    #[error("credential scope names service {found:?}")]
    Service { found: String },
    #[error("credential scope names region {found:?}")]
    Region { found: String },
    #[error("credential scope date does not match X-Amz-Date")]
    ScopeDate,
    #[error("X-Amz-Date is more than 15 minutes from the server's time")]
    Skewed,
    #[error("the presigned URL has expired")]
    Expired,
    #[error("host is not among the signed headers")]
    HostNotSigned,
    #[error("the signature does not match")]
    Mismatch,
    #[error("x-amz-content-sha256 does not match the body")]
    PayloadHash,
    #[error("the {0} header is read but not among the signed headers")]
    HeaderNotSigned(String),
}

/// What a request claims about its signature, before it is checked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SignedClaims {
    pub access_key_id: String,
    /// `yyyymmdd` from the credential scope.
    pub scope_date: String,
    pub region: String,
    pub service: String,
    /// `yyyymmddThhmmssZ`.
    pub amz_date: String,
    pub signed_headers: Vec<String>,
    pub signature: String,
    /// `X-Amz-Expires`, presigned URLs only.
    pub expires: Option<u64>,
    /// `X-Amz-Security-Token` from the header or the query.
    pub security_token: Option<String>,
    pub presigned: bool,
}

/// The parts of an HTTP request the canonical request is built from.
///
/// The query comes already decoded, by [`query_pairs`], so that the verifier and
/// the request's handler read the very same parameters: a request parsed twice,
/// with two decoders, can mean one thing to the signature and another to the
/// handler (`+` as a plus sign or as a space).
#[derive(Debug, Clone, Copy)]
pub struct RequestParts<'a> {
    pub method: &'a str,
    /// The path exactly as received (still percent-encoded).
    pub raw_path: &'a str,
    pub query: &'a [(String, String)],
    pub headers: &'a http::HeaderMap,
}

impl<'a> RequestParts<'a> {
    /// The parts of a received request, with its query already split by [`query_pairs`].
    pub fn of(
        method: &'a http::Method,
        uri: &'a http::Uri,
        query: &'a [(String, String)],
        headers: &'a http::HeaderMap,
    ) -> Self {
        Self {
            method: method.as_str(),
            raw_path: uri.path(),
            query,
            headers,
        }
    }
}

/// Splits a raw query string into percent-decoded `(name, value)` pairs. A `+`
/// stays a `+` (RFC 3986); handlers must take their parameters from these pairs.
pub fn query_pairs(raw_query: &str) -> Vec<(String, String)> {
    raw_query
        .split('&')
        .filter(|pair| !pair.is_empty())
        .map(|pair| {
            let (name, value) = pair.split_once('=').unwrap_or((pair, ""));
            (decode(name), decode(value))
        })
        .collect()
}

fn decode(value: &str) -> String {
    percent_decode_str(value).decode_utf8_lossy().into_owned()
}

fn encode(value: &str) -> String {
    utf8_percent_encode(value, URI_ENCODE).to_string()
}

impl SignedClaims {
    /// Reads the claims from an `Authorization: AWS4-HMAC-SHA256 Credential=…,
    /// SignedHeaders=…, Signature=…` header, with `X-Amz-Date` and
    /// `X-Amz-Security-Token` from the other headers.
    pub fn from_headers(headers: &http::HeaderMap) -> Result<Self, SigError> {
        let authorization = headers.get(http::header::AUTHORIZATION).ok_or(SigError::Missing)?;
        let authorization = authorization
            .to_str()
            .map_err(|_| SigError::Malformed("Authorization is not ASCII"))?;
        let rest = authorization.strip_prefix(ALGORITHM).ok_or(SigError::Algorithm)?;
        let (mut credential, mut signed_headers, mut signature) = (None, None, None);
        for part in rest.split(',') {
            let (name, value) = part
                .trim()
                .split_once('=')
                .ok_or(SigError::Malformed("Authorization part"))?;
            match name {
                "Credential" => credential = Some(value),
                "SignedHeaders" => signed_headers = Some(value),
                "Signature" => signature = Some(value),
                _ => return Err(SigError::Malformed("unknown Authorization part")),
            }
        }
        let amz_date = headers
            .get(X_AMZ_DATE)
            .and_then(|v| v.to_str().ok())
            .ok_or(SigError::Malformed("X-Amz-Date header missing"))?;
        let token = headers.get(X_AMZ_SECURITY_TOKEN).and_then(|v| v.to_str().ok());
        Self::assemble(
            credential.ok_or(SigError::Malformed("Credential missing"))?,
            signed_headers.ok_or(SigError::Malformed("SignedHeaders missing"))?,
            signature.ok_or(SigError::Malformed("Signature missing"))?,
            amz_date,
            None,
            token,
            false,
        )
    }

    /// Reads the claims from a presigned URL's decoded query parameters.
    pub fn from_query(pairs: &[(String, String)]) -> Result<Self, SigError> {
        let get = |name: &str| pairs.iter().find(|(n, _)| n == name).map(|(_, v)| v.as_str());
        let algorithm = get(Q_ALGORITHM).ok_or(SigError::Missing)?;
        if algorithm != ALGORITHM {
            return Err(SigError::Algorithm);
        }
        let expires = match get(Q_EXPIRES) {
            Some(v) => Some(parse_expires(v)?),
            None => None,
        };
        Self::assemble(
            get(Q_CREDENTIAL).ok_or(SigError::Malformed("X-Amz-Credential missing"))?,
            // Without the parameter, only `host` is signed.
            get(Q_SIGNED_HEADERS).unwrap_or("host"),
            get(Q_SIGNATURE).ok_or(SigError::Malformed("X-Amz-Signature missing"))?,
            get(Q_DATE).ok_or(SigError::Malformed("X-Amz-Date missing"))?,
            expires,
            get(Q_SECURITY_TOKEN),
            true,
        )
    }

    fn assemble(
        credential: &str,
        signed_headers: &str,
        signature: &str,
        amz_date: &str,
        expires: Option<u64>,
        token: Option<&str>,
        presigned: bool,
    ) -> Result<Self, SigError> {
        let parts: Vec<&str> = credential.split('/').collect();
        let [access_key_id, scope_date, region, service, "aws4_request"] = parts[..] else {
            return Err(SigError::Malformed("credential scope"));
        };
        if access_key_id.is_empty() || signature.len() != 64 || !signature.bytes().all(|c| c.is_ascii_hexdigit()) {
            return Err(SigError::Malformed("credential or signature"));
        }
        Ok(Self {
            access_key_id: access_key_id.to_owned(),
            scope_date: scope_date.to_owned(),
            region: region.to_owned(),
            service: service.to_owned(),
            amz_date: amz_date.to_owned(),
            signed_headers: signed_headers.split(';').map(str::to_ascii_lowercase).collect(),
            signature: signature.to_ascii_lowercase(),
            expires,
            security_token: token.map(str::to_owned),
            presigned,
        })
    }
}

/// `X-Amz-Expires` as SigV4 bounds it: whole seconds from 1 to 604800, as AWS
/// refuses anything else before looking at the signature.
fn parse_expires(value: &str) -> Result<u64, SigError> {
    const BOUNDS: &str = "X-Amz-Expires must be a whole number of seconds from 1 to 604800";
    match value.parse::<u64>() {
        Ok(secs) if (1..=MAX_EXPIRES_SECS).contains(&secs) => Ok(secs),
        _ => Err(SigError::Malformed(BOUNDS)),
    }
}

/// How the canonical request treats the presigned session token.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TokenInQuery {
    /// Generic SigV4: `X-Amz-Security-Token` is signed like any parameter.
    Signed,
    /// AWS IoT's WebSocket URLs: the token is appended after signing.
    Unsigned,
}

/// What a verification is checked against.
#[derive(Debug, Clone, Copy)]
pub struct Expectations<'a> {
    pub services: &'a [&'a str],
    /// The region the credential scope must name; `None` accepts any.
    pub region: Option<&'a str>,
    pub token_in_query: TokenInQuery,
    /// hex SHA-256 of the body as received, computed by the caller; `None` for a
    /// request without a body (presigned URLs). Never taken from the request:
    /// `x-amz-content-sha256`, when sent, must equal it.
    pub payload_sha256: Option<&'a str>,
}

/// What can be checked of `claims` before the request's body is read and without
/// the secret: the service and region of the scope, the date (within the clock
/// skew, not past `X-Amz-Expires`) and that `host` is signed. [`Verifier::verify`]
/// checks this first; a server calls it alone to refuse a request from its
/// headers before reading a body it would throw away.
pub fn check_claims(claims: &SignedClaims, expect: Expectations<'_>, now: SystemTime) -> Result<(), SigError> {
    if !expect.services.contains(&claims.service.as_str()) {
        return Err(SigError::Service {
            found: claims.service.clone(),
        });
    }
    if expect.region.is_some_and(|region| region != claims.region) {
        return Err(SigError::Region {
            found: claims.region.clone(),
        });
    }
    let signed_at = parse_amz_date(&claims.amz_date).ok_or(SigError::Malformed(Q_DATE))?;
    if !claims.amz_date.starts_with(&claims.scope_date) || claims.scope_date.len() != 8 {
        return Err(SigError::ScopeDate);
    }
    let skew = now.duration_since(signed_at).unwrap_or_else(|e| e.duration());
    if skew > CLOCK_SKEW {
        return Err(SigError::Skewed);
    }
    // `expires` is bounded by parsing; `checked_add` keeps this panic-free anyway.
    if let Some(expires) = claims.expires
        && signed_at
            .checked_add(Duration::from_secs(expires))
            .is_none_or(|end| now > end)
    {
        return Err(SigError::Expired);
    }
    if !claims.signed_headers.iter().any(|h| h == "host") {
        return Err(SigError::HostNotSigned);
    }
    Ok(())
}

/// Checks signatures, caching derived signing keys (four HMACs each) per secret,
/// day, region and service.
#[derive(Default)]
pub struct Verifier {
    keys: Mutex<HashMap<String, [u8; 32]>>,
}

/// Beyond this many cached keys the cache starts over: old days' keys are useless.
const MAX_CACHED_KEYS: usize = 10_000;

impl Verifier {
    pub fn new() -> Self {
        Self::default()
    }

    /// Verifies `claims` on `request` with `secret` at `now`.
    pub fn verify(
        &self,
        claims: &SignedClaims,
        request: RequestParts<'_>,
        secret: &str,
        expect: Expectations<'_>,
        now: SystemTime,
    ) -> Result<(), SigError> {
        check_claims(claims, expect, now)?;
        let canonical = canonical_request(claims, request, expect)?;
        let scope = format!(
            "{}/{}/{}/aws4_request",
            claims.scope_date, claims.region, claims.service
        );
        let string_to_sign = format!(
            "{ALGORITHM}\n{}\n{scope}\n{}",
            claims.amz_date,
            hex::encode(Sha256::digest(canonical.as_bytes()))
        );
        let key = self.signing_key(secret, &claims.scope_date, &claims.region, &claims.service);
        let expected = hex::encode(hmac(&key, string_to_sign.as_bytes()));
        if bool::from(expected.as_bytes().ct_eq(claims.signature.as_bytes())) {
            Ok(())
        } else {
            Err(SigError::Mismatch)
        }
    }

    fn signing_key(&self, secret: &str, date: &str, region: &str, service: &str) -> [u8; 32] {
        let cache_key = format!("{secret}\n{date}\n{region}\n{service}");
        if let Some(key) = self.keys.lock().unwrap_or_else(|e| e.into_inner()).get(&cache_key) {
            return *key;
        }
        let k_date = hmac(format!("AWS4{secret}").as_bytes(), date.as_bytes());
        let k_region = hmac(&k_date, region.as_bytes());
        let k_service = hmac(&k_region, service.as_bytes());
        let key = hmac(&k_service, b"aws4_request");
        let mut keys = self.keys.lock().unwrap_or_else(|e| e.into_inner());
        if keys.len() >= MAX_CACHED_KEYS {
            keys.clear();
        }
        keys.insert(cache_key, key);
        key
    }
}

#[allow(
    clippy::expect_used,
    reason = "HMAC takes keys of any length: the error cannot happen"
)]
fn hmac(key: &[u8], data: &[u8]) -> [u8; 32] {
    let mut mac = Hmac::<Sha256>::new_from_slice(key).expect("HMAC takes keys of any length");
    mac.update(data);
    mac.finalize().into_bytes().into()
}

fn canonical_request(
    claims: &SignedClaims,
    request: RequestParts<'_>,
    expect: Expectations<'_>,
) -> Result<String, SigError> {
    let path = if request.raw_path.is_empty() {
        "/"
    } else {
        request.raw_path
    };
    let canonical_path = utf8_percent_encode(path, URI_ENCODE_PATH).to_string();

    let mut query: Vec<(String, String)> = request
        .query
        .iter()
        .filter(|(name, _)| {
            !(claims.presigned
                && (name == Q_SIGNATURE
                    || (name == Q_SECURITY_TOKEN && expect.token_in_query == TokenInQuery::Unsigned)))
        })
        .map(|(name, value)| (encode(name), encode(value)))
        .collect();
    query.sort();
    let canonical_query = query
        .iter()
        .map(|(n, v)| format!("{n}={v}"))
        .collect::<Vec<_>>()
        .join("&");

    let mut canonical_headers = String::new();
    for name in &claims.signed_headers {
        let values: Vec<&str> = request
            .headers
            .get_all(name.as_str())
            .iter()
            .filter_map(|v| v.to_str().ok())
            .collect();
        if values.is_empty() {
            return Err(SigError::Mismatch);
        }
        let joined = values.iter().map(|v| collapse_spaces(v)).collect::<Vec<_>>().join(",");
        canonical_headers.push_str(&format!("{name}:{joined}\n"));
    }

    // The payload line is always the hash of what was received. A client may send
    // its own hash in `x-amz-content-sha256`; it is checked, never trusted.
    let payload = expect.payload_sha256.unwrap_or(EMPTY_SHA256);
    if let Some(claimed) = request.headers.get(X_AMZ_CONTENT_SHA256) {
        let claimed = claimed
            .to_str()
            .map_err(|_| SigError::Malformed(X_AMZ_CONTENT_SHA256))?;
        if !claimed.eq_ignore_ascii_case(payload) {
            return Err(SigError::PayloadHash);
        }
    }
    Ok(format!(
        "{}\n{canonical_path}\n{canonical_query}\n{canonical_headers}\n{}\n{payload}",
        request.method,
        claims.signed_headers.join(";")
    ))
}

fn collapse_spaces(value: &str) -> String {
    value.split_whitespace().collect::<Vec<_>>().join(" ")
}

/// Parses `yyyymmddThhmmssZ` (UTC).
pub fn parse_amz_date(value: &str) -> Option<SystemTime> {
    let b = value.as_bytes();
    if b.len() != 16 || b[8] != b'T' || b[15] != b'Z' {
        return None;
    }
    let num = |range: std::ops::Range<usize>| -> Option<i64> {
        let s = value.get(range)?;
        s.bytes().all(|c| c.is_ascii_digit()).then(|| s.parse().ok())?
    };
    let (y, m, d) = (num(0..4)?, num(4..6)?, num(6..8)?);
    let (hh, mm, ss) = (num(9..11)?, num(11..13)?, num(13..15)?);
    if !(1..=12).contains(&m) || !(1..=31).contains(&d) || hh > 23 || mm > 59 || ss > 60 {
        return None;
    }
    // Days since 1970-01-01 of a proleptic Gregorian date (Howard Hinnant's algorithm).
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (m + 9) % 12;
    let doy = (153 * mp + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    let days = era * 146_097 + doe - 719_468;
    let secs = days * 86_400 + hh * 3600 + mm * 60 + ss;
    u64::try_from(secs)
        .ok()
        .map(|s| SystemTime::UNIX_EPOCH + Duration::from_secs(s))
}

/// Formats a time as `yyyymmddThhmmssZ`.
pub fn format_amz_date(time: SystemTime) -> String {
    let dt = aws_smithy_types::DateTime::from(time);
    let iso = dt
        .fmt(aws_smithy_types::date_time::Format::DateTime)
        .unwrap_or_default();
    // 2026-11-22T05:31:41Z (maybe with fractional seconds) → 20261122T053141Z
    let digits: String = iso
        .chars()
        .take(19)
        .filter(|c| c.is_ascii_digit() || *c == 'T')
        .collect();
    format!("{digits}Z")
}

#[cfg(test)]
mod tests {
    use std::time::UNIX_EPOCH;

    use aws_credential_types::Credentials;
    use aws_sigv4::http_request::{SignableBody, SignableRequest, SigningSettings, sign};
    use aws_sigv4::sign::v4;

    use super::*;
    use crate::presign::{DEFAULT_EXPIRES, IotEndpoint, presign};

    const SECRET: &str = "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY";

    fn at(secs: u64) -> SystemTime {
        UNIX_EPOCH + Duration::from_secs(secs)
    }

    const T: u64 = 1_795_412_400; // 2026-11-23T05:40:00Z

    fn iot() -> Expectations<'static> {
        Expectations {
            services: &["iotdevicegateway", "iotdata"],
            region: Some("us-east-1"),
            token_in_query: TokenInQuery::Unsigned,
            payload_sha256: None,
        }
    }

    /// Verifies a presigned ws URL as the gateway would receive it.
    fn verify_url(url: &str, host: &str, now: SystemTime) -> Result<SignedClaims, SigError> {
        let (_, rest) = url.split_once("://").unwrap();
        let (_, path_and_query) = rest.split_once('/').unwrap();
        let (path, query) = path_and_query.split_once('?').unwrap();
        let path = format!("/{path}");
        let mut headers = http::HeaderMap::new();
        headers.insert("host", host.parse().unwrap());
        let pairs = query_pairs(query);
        let claims = SignedClaims::from_query(&pairs)?;
        let parts = RequestParts {
            method: "GET",
            raw_path: &path,
            query: &pairs,
            headers: &headers,
        };
        Verifier::new()
            .verify(&claims, parts, SECRET, iot(), now)
            .map(|()| claims)
    }

    fn creds() -> Credentials {
        Credentials::new("ASIAEXAMPLE", SECRET, Some("the/token+=".into()), None, "t")
    }

    #[test]
    fn amz_dates_round_trip() {
        assert_eq!(parse_amz_date("19700101T000000Z"), Some(UNIX_EPOCH));
        assert_eq!(parse_amz_date("20261123T054000Z"), Some(at(T)));
        assert_eq!(format_amz_date(at(T)), "20261123T054000Z");
        assert_eq!(parse_amz_date("20000229T120000Z"), Some(at(951_825_600)));
        for bad in [
            "",
            "20261124T054000",
            "20261324T054000Z",
            "2026-11-24T05:40:00Z",
            "2026112xT054000Z",
        ] {
            assert_eq!(parse_amz_date(bad), None, "{bad}");
        }
    }

    #[test]
    fn a_url_presigned_by_aws_sigv4_verifies_and_yields_the_token() {
        let endpoint = IotEndpoint::parse("ws://127.0.0.1:8443").unwrap();
        let url = presign(&endpoint, "us-east-1", &creds(), at(T), DEFAULT_EXPIRES).unwrap();
        let claims = verify_url(&url, "127.0.0.1:8443", at(T + 60)).unwrap();
        assert_eq!(claims.access_key_id, "ASIAEXAMPLE");
        assert_eq!(claims.security_token.as_deref(), Some("the/token+="));
        assert_eq!(claims.region, "us-east-1");
    }

    #[test]
    fn a_tampered_url_is_refused() {
        let endpoint = IotEndpoint::parse("ws://127.0.0.1:8443").unwrap();
        let url = presign(&endpoint, "us-east-1", &creds(), at(T), DEFAULT_EXPIRES).unwrap();
        let date = url.replace("X-Amz-Date=20261123T054000Z", "X-Amz-Date=20261123T054001Z");
        assert_eq!(verify_url(&date, "127.0.0.1:8443", at(T)), Err(SigError::Mismatch));
        let region = url.replace("%2Fus-east-1%2F", "%2Fus-west-2%2F");
        assert_eq!(
            verify_url(&region, "127.0.0.1:8443", at(T)),
            Err(SigError::Region {
                found: "us-west-2".into()
            }),
            "the scope must name the verifier's region"
        );
        assert_eq!(
            verify_url(&url, "127.0.0.1:9443", at(T)),
            Err(SigError::Mismatch),
            "another host"
        );
        let mut sig = url.clone();
        let at_sig = sig.find("X-Amz-Signature=").unwrap() + 16;
        let flipped = if &sig[at_sig..at_sig + 1] == "0" { "1" } else { "0" };
        sig.replace_range(at_sig..at_sig + 1, flipped);
        assert_eq!(verify_url(&sig, "127.0.0.1:8443", at(T)), Err(SigError::Mismatch));
    }

    #[test]
    fn urls_outside_the_clock_window_or_past_expiry_are_refused() {
        let endpoint = IotEndpoint::parse("ws://127.0.0.1:8443").unwrap();
        let url = presign(&endpoint, "us-east-1", &creds(), at(T), Duration::from_secs(3600)).unwrap();
        assert!(verify_url(&url, "127.0.0.1:8443", at(T + 14 * 60)).is_ok());
        assert_eq!(
            verify_url(&url, "127.0.0.1:8443", at(T + 20 * 60)),
            Err(SigError::Skewed)
        );
        assert_eq!(
            verify_url(&url, "127.0.0.1:8443", at(T - 20 * 60)),
            Err(SigError::Skewed)
        );
        let short = presign(&endpoint, "us-east-1", &creds(), at(T), Duration::from_secs(60)).unwrap();
        assert_eq!(
            verify_url(&short, "127.0.0.1:8443", at(T + 120)),
            Err(SigError::Expired)
        );
    }

    #[test]
    fn a_url_whose_token_was_signed_is_refused_by_iot_rules() {
        // The generic signer signs the token; IoT does not accept that.
        let mut settings = SigningSettings::default();
        settings.signature_location = aws_sigv4::http_request::SignatureLocation::QueryParams;
        settings.expires_in = Some(DEFAULT_EXPIRES);
        let identity = creds().into();
        let params = v4::SigningParams::builder()
            .identity(&identity)
            .region("us-east-1")
            .name("iotdevicegateway")
            .time(at(T))
            .settings(settings)
            .build()
            .unwrap()
            .into();
        let signable = SignableRequest::new(
            "GET",
            "http://127.0.0.1:8443/mqtt",
            std::iter::empty(),
            SignableBody::Bytes(b""),
        )
        .unwrap();
        let (instructions, _) = sign(signable, &params).unwrap().into_parts();
        let mut request = http::Request::builder()
            .uri("http://127.0.0.1:8443/mqtt")
            .body(())
            .unwrap();
        instructions.apply_to_request_http1x(&mut request);
        let url = format!("ws://127.0.0.1:8443/mqtt?{}", request.uri().query().unwrap());
        assert_eq!(verify_url(&url, "127.0.0.1:8443", at(T)), Err(SigError::Mismatch));
    }

    #[test]
    fn a_header_signed_post_with_an_encoded_path_verifies() {
        // What botocore sends for `aws iot-data publish --topic allowed/abc`.
        let mut settings = SigningSettings::default();
        settings.signature_location = aws_sigv4::http_request::SignatureLocation::Headers;
        let identity = creds().into();
        let params = v4::SigningParams::builder()
            .identity(&identity)
            .region("us-east-1")
            .name("iotdata")
            .time(at(T))
            .settings(settings)
            .build()
            .unwrap()
            .into();
        let uri = "http://127.0.0.1:8443/topics/allowed%2Fabc?qos=1";
        let body = b"hello";
        let headers = [("host", "127.0.0.1:8443"), ("content-type", "application/octet-stream")];
        let signable = SignableRequest::new("POST", uri, headers.into_iter(), SignableBody::Bytes(body)).unwrap();
        let (instructions, _) = sign(signable, &params).unwrap().into_parts();
        let mut request = http::Request::builder().method("POST").uri(uri);
        for (k, v) in headers {
            request = request.header(k, v);
        }
        let mut request = request.body(()).unwrap();
        instructions.apply_to_request_http1x(&mut request);

        let claims = SignedClaims::from_headers(request.headers()).unwrap();
        assert_eq!(claims.security_token.as_deref(), Some("the/token+="));
        let hash = hex::encode(Sha256::digest(body));
        let query = query_pairs("qos=1");
        let parts = RequestParts {
            method: "POST",
            raw_path: "/topics/allowed%2Fabc",
            query: &query,
            headers: request.headers(),
        };
        let expect = Expectations {
            payload_sha256: Some(&hash),
            ..iot()
        };
        let verifier = Verifier::new();
        assert_eq!(verifier.verify(&claims, parts, SECRET, expect, at(T)), Ok(()));
        let other_body = hex::encode(Sha256::digest(b"tampered"));
        let tampered = Expectations {
            payload_sha256: Some(&other_body),
            ..iot()
        };
        assert_eq!(
            verifier.verify(&claims, parts, SECRET, tampered, at(T)),
            Err(SigError::Mismatch)
        );
        assert_eq!(
            verifier.verify(&claims, parts, "wrong", expect, at(T)),
            Err(SigError::Mismatch)
        );
        let sts_only = Expectations {
            services: &["sts"],
            ..expect
        };
        assert!(matches!(
            verifier.verify(&claims, parts, SECRET, sts_only, at(T)),
            Err(SigError::Service { .. })
        ));
    }

    #[test]
    fn a_claimed_payload_hash_never_replaces_the_real_one() {
        // aws-sigv4 sends x-amz-content-sha256 when asked to; a replay with another
        // body but the old header must fail, whether the header is signed or not.
        let mut settings = SigningSettings::default();
        settings.signature_location = aws_sigv4::http_request::SignatureLocation::Headers;
        settings.payload_checksum_kind = aws_sigv4::http_request::PayloadChecksumKind::XAmzSha256;
        let identity = creds().into();
        let params = v4::SigningParams::builder()
            .identity(&identity)
            .region("us-east-1")
            .name("sts")
            .time(at(T))
            .settings(settings)
            .build()
            .unwrap()
            .into();
        let uri = "http://127.0.0.1:8443/";
        let body = b"Action=AssumeRole&Policy=narrow";
        let headers = [("host", "127.0.0.1:8443")];
        let signable = SignableRequest::new("POST", uri, headers.into_iter(), SignableBody::Bytes(body)).unwrap();
        let (instructions, _) = sign(signable, &params).unwrap().into_parts();
        let mut request = http::Request::builder()
            .method("POST")
            .uri(uri)
            .header("host", "127.0.0.1:8443");
        request = request.header("content-type", "application/x-www-form-urlencoded");
        let mut request = request.body(()).unwrap();
        instructions.apply_to_request_http1x(&mut request);
        assert!(request.headers().contains_key(X_AMZ_CONTENT_SHA256));

        let claims = SignedClaims::from_headers(request.headers()).unwrap();
        let parts = RequestParts {
            method: "POST",
            raw_path: "/",
            query: &[],
            headers: request.headers(),
        };
        let sts = |hash| Expectations {
            services: &["sts"],
            region: None,
            token_in_query: TokenInQuery::Signed,
            payload_sha256: Some(hash),
        };
        let real = hex::encode(Sha256::digest(body));
        let verifier = Verifier::new();
        assert_eq!(verifier.verify(&claims, parts, SECRET, sts(&real), at(T)), Ok(()));
        let forged = hex::encode(Sha256::digest(b"Action=AssumeRole"));
        assert_eq!(
            verifier.verify(&claims, parts, SECRET, sts(&forged), at(T)),
            Err(SigError::PayloadHash)
        );
    }

    #[test]
    fn x_amz_expires_outside_one_second_to_seven_days_is_refused_without_panicking() {
        let base = "X-Amz-Algorithm=AWS4-HMAC-SHA256&X-Amz-Credential=AKIA%2F20261123%2Fus-east-1%2Fiotdevicegateway%2Faws4_request&X-Amz-Date=20261123T054000Z&X-Amz-SignedHeaders=host&X-Amz-Signature=0000000000000000000000000000000000000000000000000000000000000000";
        for bad in [
            "0",
            "604801",
            "18446744073709551615",
            "99999999999999999999999",
            "-1",
            "1.5",
            "",
        ] {
            let pairs = query_pairs(&format!("{base}&X-Amz-Expires={bad}"));
            assert!(
                matches!(SignedClaims::from_query(&pairs), Err(SigError::Malformed(_))),
                "{bad:?}"
            );
        }
        for good in ["1", "900", "604800"] {
            let pairs = query_pairs(&format!("{base}&X-Amz-Expires={good}"));
            assert!(SignedClaims::from_query(&pairs).is_ok(), "{good:?}");
        }
    }

    #[test]
    fn malformed_claims_are_refused() {
        let pairs = |q: &str| query_pairs(q);
        assert_eq!(SignedClaims::from_query(&pairs("a=b")), Err(SigError::Missing));
        assert_eq!(
            SignedClaims::from_query(&pairs("X-Amz-Algorithm=AWS4-HMAC-SHA1")),
            Err(SigError::Algorithm)
        );
        assert!(matches!(
            SignedClaims::from_query(&pairs(
                "X-Amz-Algorithm=AWS4-HMAC-SHA256&X-Amz-Credential=AK%2F2026%2Fus-east-1&X-Amz-Date=20261124T054000Z&X-Amz-Signature=00"
            )),
            Err(SigError::Malformed(_))
        ));
        assert_eq!(
            SignedClaims::from_headers(&http::HeaderMap::new()),
            Err(SigError::Missing)
        );
    }
}
