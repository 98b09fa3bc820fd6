//! The vending API's error codes: the `error.code` of every refusal, in one
//! place. The service answers with them, the Rust client reacts to them, and the
//! browser client's tests read the same list from `tests/data/error-codes.json`
//! (a test here checks that file against these constants), so the three cannot
//! drift.
//!
//! A code is part of the API's contract: clients branch on it, operators count
//! it (the template's metric filters), so a code is never renamed.
//!
//! Not here: which status each code goes with, and the messages (the service's
//! `api` module), AWS's own error types (the emulators').

// Request shape.
pub const INVALID_JSON: &str = "InvalidJson";
pub const BAD_REQUEST: &str = "BadRequest";
pub const REQUEST_TIMEOUT: &str = "RequestTimeout";
pub const PAYLOAD_TOO_LARGE: &str = "PayloadTooLarge";
pub const UNSUPPORTED_MEDIA_TYPE: &str = "UnsupportedMediaType";
pub const NOT_FOUND: &str = "NotFound";
pub const METHOD_NOT_ALLOWED: &str = "MethodNotAllowed";

// The caller's token.
pub const MISSING_TOKEN: &str = "MissingToken";
pub const MALFORMED_AUTHORIZATION: &str = "MalformedAuthorization";
pub const EMPTY_TOKEN: &str = "EmptyToken";
pub const MALFORMED_TOKEN: &str = "MalformedToken";
pub const UNSUPPORTED_ALGORITHM: &str = "UnsupportedAlgorithm";
pub const UNKNOWN_KEY: &str = "UnknownKey";
pub const INVALID_SIGNATURE: &str = "InvalidSignature";
pub const TOKEN_EXPIRED: &str = "TokenExpired";
pub const TOKEN_NOT_YET_VALID: &str = "TokenNotYetValid";
pub const INVALID_ISSUER: &str = "InvalidIssuer";
pub const INVALID_AUDIENCE: &str = "InvalidAudience";
pub const MISSING_AUDIENCE: &str = "MissingAudience";
pub const MISSING_SUBJECT: &str = "MissingSubject";
pub const KEYS_UNAVAILABLE: &str = "KeysUnavailable";
pub const AUTH_UNAVAILABLE: &str = "AuthUnavailable";
pub const INVALID_SUBJECT: &str = "InvalidSubject";

// Grants from the token's claims.
pub const INVALID_CLAIM: &str = "InvalidClaim";
pub const CLAIM_NOT_IN_TOKEN: &str = "ClaimNotInToken";
pub const INVALID_NARROWING: &str = "InvalidNarrowing";
pub const GRANTS_TOO_LARGE: &str = "GrantsTooLarge";

// Resume tokens.
pub const RESUME_TOKEN_EXPIRED: &str = "ResumeTokenExpired";
pub const INVALID_RESUME_TOKEN: &str = "InvalidResumeToken";
pub const RESUME_FORBIDDEN: &str = "ResumeForbidden";

// Bans: the client role's ban policy denies the caller.
pub const BANNED: &str = "Banned";

// The service and its upstream.
pub const THROTTLED: &str = "Throttled";
pub const MISCONFIGURED: &str = "Misconfigured";
pub const UPSTREAM_UNAVAILABLE: &str = "UpstreamUnavailable";
pub const INTERNAL_ERROR: &str = "InternalError";
/// The grants function (`GRANTS_FUNCTION`) failed, was slow or answered wrongly.
pub const GRANTS_UNAVAILABLE: &str = "GrantsUnavailable";

/// The codes after which a client must start over without its resume token (a
/// new client ID): the token will never be accepted again.
pub const RESUME_REFUSALS: [&str; 3] = [INVALID_RESUME_TOKEN, RESUME_TOKEN_EXPIRED, RESUME_FORBIDDEN];

/// Every code the API answers with.
pub const ALL: [&str; 36] = [
    INVALID_JSON,
    BAD_REQUEST,
    REQUEST_TIMEOUT,
    PAYLOAD_TOO_LARGE,
    UNSUPPORTED_MEDIA_TYPE,
    NOT_FOUND,
    METHOD_NOT_ALLOWED,
    MISSING_TOKEN,
    MALFORMED_AUTHORIZATION,
    EMPTY_TOKEN,
    MALFORMED_TOKEN,
    UNSUPPORTED_ALGORITHM,
    UNKNOWN_KEY,
    INVALID_SIGNATURE,
    TOKEN_EXPIRED,
    TOKEN_NOT_YET_VALID,
    INVALID_ISSUER,
    INVALID_AUDIENCE,
    MISSING_AUDIENCE,
    MISSING_SUBJECT,
    KEYS_UNAVAILABLE,
    AUTH_UNAVAILABLE,
    INVALID_SUBJECT,
    INVALID_CLAIM,
    CLAIM_NOT_IN_TOKEN,
    INVALID_NARROWING,
    GRANTS_TOO_LARGE,
    RESUME_TOKEN_EXPIRED,
    INVALID_RESUME_TOKEN,
    RESUME_FORBIDDEN,
    BANNED,
    THROTTLED,
    MISCONFIGURED,
    UPSTREAM_UNAVAILABLE,
    INTERNAL_ERROR,
    GRANTS_UNAVAILABLE,
];

/// Whether a refusal with `code` means the resume token is dead.
pub fn is_resume_refusal(code: &str) -> bool {
    RESUME_REFUSALS.contains(&code)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_fixture_the_browser_client_reads_lists_exactly_these_codes() {
        let fixture: serde_json::Value =
            serde_json::from_str(include_str!("../../tests/data/error-codes.json")).unwrap();
        let listed = |key: &str| -> Vec<String> {
            fixture[key]
                .as_array()
                .unwrap()
                .iter()
                .map(|c| c.as_str().unwrap().to_owned())
                .collect()
        };
        assert_eq!(listed("all"), ALL);
        assert_eq!(listed("resumeRefusals"), RESUME_REFUSALS);
    }

    #[test]
    fn every_code_is_listed_once() {
        let mut sorted = ALL.to_vec();
        sorted.sort_unstable();
        sorted.dedup();
        assert_eq!(sorted.len(), ALL.len());
        assert!(RESUME_REFUSALS.iter().all(|code| ALL.contains(code)));
    }
}
