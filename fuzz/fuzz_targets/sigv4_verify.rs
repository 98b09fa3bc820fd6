//! SigV4 verification of arbitrary query strings and headers: parsing the claims
//! and checking them must never panic, whatever the bytes.
#![no_main]

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use libfuzzer_sys::fuzz_target;
use serverless_websockets_core::sigv4::{Expectations, RequestParts, SignedClaims, TokenInQuery, Verifier, query_pairs};

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    // Line 1: the raw query; line 2: the path; the rest: `name: value` headers.
    let mut lines = text.split('\n');
    let query = lines.next().unwrap_or("");
    let path = lines.next().unwrap_or("/mqtt");
    let mut headers = http::HeaderMap::new();
    for line in lines {
        if let Some((name, value)) = line.split_once(':')
            && let (Ok(name), Ok(value)) = (
                http::HeaderName::from_bytes(name.trim().as_bytes()),
                http::HeaderValue::from_str(value.trim()),
            )
        {
            headers.append(name, value);
        }
    }
    let pairs = query_pairs(query);
    let now = UNIX_EPOCH + Duration::from_secs(1_795_412_400);
    let verifier = Verifier::new();
    for (claims, presigned) in [
        (SignedClaims::from_query(&pairs), true),
        (SignedClaims::from_headers(&headers), false),
    ] {
        let Ok(claims) = claims else { continue };
        let parts = RequestParts {
            method: if presigned { "GET" } else { "POST" },
            raw_path: path,
            query: &pairs,
            headers: &headers,
        };
        let expect = Expectations {
            services: &["iotdevicegateway", "iotdata", "sts"],
            region: None,
            token_in_query: if presigned {
                TokenInQuery::Unsigned
            } else {
                TokenInQuery::Signed
            },
            payload_sha256: (!presigned).then_some("e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"),
        };
        let _ = verifier.verify(&claims, parts, "secret", expect, now);
        let _ = verifier.verify(&claims, parts, "secret", expect, SystemTime::UNIX_EPOCH);
    }
});
