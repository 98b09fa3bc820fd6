//! The local stack's allocator settings. The binary allocates with mimalloc; its
//! gateway holds thousands of WebSocket connections that come and go. Two settings
//! keep its memory following its connections (BENCHMARKS.md, Soak): freed pages
//! are purged at once (mimalloc's default waits 1 s), and transparent huge pages
//! are off, since khugepaged collapsing mimalloc's arena stepped the soak's
//! resident memory up by 10–30 MiB ~11 minutes into every run.

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

/// Turns transparent huge pages off for the process, unless the operator asked
/// for them with `MIMALLOC_ALLOW_THP` (mimalloc's own setting). mimalloc marks its
/// 1 GiB arena `MADV_HUGEPAGE`, and Linux's khugepaged, scanning 4,096 pages every
/// 10 s by default, reaches it ~640 s after start and again each full pass after:
/// it collapses partly used 2 MiB ranges into whole huge pages, which was the
/// soak's step of +10–30 MiB at ~655 s of uptime, recurring at ~1,310 s
/// (bench/investigations.md). A gateway of many small allocations gains little
/// from huge pages and needs its memory to follow its connections.
pub fn no_transparent_huge_pages() {
    if std::env::var_os("MIMALLOC_ALLOW_THP").is_some() {
        return;
    }
    // SAFETY: PR_SET_THP_DISABLE takes integer arguments only and sets a flag of
    // this process's memory map; it fails harmlessly where unsupported.
    let _ = unsafe { libc::prctl(libc::PR_SET_THP_DISABLE, 1, 0, 0, 0) };
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
