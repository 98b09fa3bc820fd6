//! STS's own limits, shared by the vending service (which calls STS) and the local
//! stack's STS emulator (which enforces them), so the two cannot drift apart.
//! Source: <https://docs.aws.amazon.com/STS/latest/APIReference/API_AssumeRole.html>.

/// The longest plain-text session policy `AssumeRole` accepts, in characters.
pub const MAX_SESSION_POLICY_CHARS: usize = 2048;
/// `DurationSeconds`: at least 900 s …
pub const MIN_DURATION_SECS: u64 = 900;
/// … and at most 12 hours (the role's own maximum may be lower).
pub const MAX_DURATION_SECS: u64 = 43_200;
/// Role chaining (a Lambda's role assuming the client role) caps sessions at 1 hour.
pub const ROLE_CHAINING_MAX_DURATION_SECS: u64 = 3600;

/// STS's pattern for `RoleSessionName` and `SourceIdentity`: `[\w+=,.@-]{2,64}`.
pub fn is_sts_name(value: &str) -> bool {
    (2..=64).contains(&value.len())
        && value
            .bytes()
            .all(|c| c.is_ascii_alphanumeric() || b"_+=,.@-".contains(&c))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sts_names_follow_the_role_session_name_pattern() {
        assert!(is_sts_name("ab"));
        assert!(is_sts_name("user@example.com,x=y+z_w-v"));
        assert!(!is_sts_name("a"));
        assert!(!is_sts_name(&"a".repeat(65)));
        assert!(!is_sts_name("has space"));
        assert!(!is_sts_name("auth0|123"));
        assert!(!is_sts_name("slash/y"));
    }
}
