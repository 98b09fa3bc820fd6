//! The local stack's allocator setting. The binary allocates with mimalloc; its
//! gateway holds thousands of WebSocket connections that come and go, and with
//! mimalloc's default purge delay (1 s in v3) the pages freed by closed connections
//! stayed resident while new ones landed on fresh pages: the soak's resident memory
//! stepped up by 10–30 MiB at ~11 minutes of uptime (BENCHMARKS.md, Soak). Purging
//! at once keeps it within a few MiB.

/// `mi_option_purge_delay`: its index in mimalloc v3's `mi_option_e`
/// (`include/mimalloc.h`); `libmimalloc-sys` does not name it. The unit test checks
/// that this index holds the purge delay's documented default.
const MI_OPTION_PURGE_DELAY: libmimalloc_sys::mi_option_t = 15;

/// Makes mimalloc return freed pages to the OS at once, unless the operator chose a
/// delay with `MIMALLOC_PURGE_DELAY`.
pub fn purge_freed_memory_at_once() {
    if std::env::var_os("MIMALLOC_PURGE_DELAY").is_none() {
        // SAFETY: setting an allocator option is an atomic store inside mimalloc,
        // valid at any time from any thread.
        unsafe { libmimalloc_sys::mi_option_set(MI_OPTION_PURGE_DELAY, 0) };
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_option_index_is_mimallocs_purge_delay_with_its_one_second_default() {
        if std::env::var_os("MIMALLOC_PURGE_DELAY").is_some() {
            return;
        }
        // SAFETY: reading an allocator option is an atomic load.
        let default = unsafe { libmimalloc_sys::mi_option_get(MI_OPTION_PURGE_DELAY) };
        assert_eq!(
            default, 1000,
            "index {MI_OPTION_PURGE_DELAY} is not mimalloc's purge delay"
        );
        purge_freed_memory_at_once();
        assert_eq!(unsafe { libmimalloc_sys::mi_option_get(MI_OPTION_PURGE_DELAY) }, 0);
    }
}
