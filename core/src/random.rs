//! Randomness from the operating system, for everything that must be unguessable:
//! client IDs, request IDs, and (in the local stack) keys, secrets and tokens.
//!
//! One place that calls the OS RNG, so none of its callers can pick a weaker source.
//! A failing OS RNG is not a condition anything here can serve through; it panics.

/// `N` bytes from the operating system's RNG.
#[allow(
    clippy::expect_used,
    reason = "no key or client ID may come from a weaker source; see the module header"
)]
pub fn bytes<const N: usize>() -> [u8; N] {
    let mut bytes = [0u8; N];
    getrandom::fill(&mut bytes).expect("the operating system's RNG is unavailable");
    bytes
}

/// `N` random bytes as `2 × N` lower-case hex characters.
pub fn hex<const N: usize>() -> String {
    hex::encode(bytes::<N>())
}

/// A random (version 4) UUID, in its usual text form.
pub fn uuid() -> String {
    let mut b = bytes::<16>();
    b[6] = (b[6] & 0x0f) | 0x40;
    b[8] = (b[8] & 0x3f) | 0x80;
    let hex = hex::encode(b);
    format!(
        "{}-{}-{}-{}-{}",
        &hex[..8],
        &hex[8..12],
        &hex[12..16],
        &hex[16..20],
        &hex[20..]
    )
}

#[cfg(test)]
mod tests {
    #[test]
    fn hex_ids_have_twice_the_bytes_in_characters_and_differ() {
        let (a, b) = (super::hex::<16>(), super::hex::<16>());
        assert_eq!(a.len(), 32);
        assert_ne!(a, b);
    }

    #[test]
    fn uuids_are_version_4_in_the_usual_form() {
        let id = super::uuid();
        let groups: Vec<usize> = id.split('-').map(str::len).collect();
        assert_eq!(groups, [8, 4, 4, 4, 12]);
        assert_eq!(&id[14..15], "4");
        assert!(matches!(&id[19..20], "8" | "9" | "a" | "b"));
    }
}
