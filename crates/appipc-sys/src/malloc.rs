//! The C allocator's knobs the broker turns so that memory a flood took is given back:
//! glibc's per-thread arenas limited, and free memory returned to the kernel after a flood.
//! Both do nothing on a C library other than glibc.

/// Limits glibc to `n` malloc arenas (`mallopt(M_ARENA_MAX, n)`). Call it first thing in
/// `main`, before other threads start: by default glibc gives threads arenas of their own (up
/// to 8 per core), and memory freed in one stays with it, so a process whose tasks move
/// between threads keeps the peak of each. Whether glibc took the setting.
pub fn limit_arenas(n: u32) -> bool {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    {
        let n = libc::c_int::try_from(n.max(1)).unwrap_or(libc::c_int::MAX);
        // SAFETY: mallopt takes two integers and changes allocator settings only; it has no
        // pointer arguments and is safe to call at any time.
        unsafe { libc::mallopt(libc::M_ARENA_MAX, n) == 1 }
    }
    #[cfg(not(all(target_os = "linux", target_env = "gnu")))]
    {
        let _ = n;
        false
    }
}

/// The glibc tunable [`reexec_with_small_tcache`] sets.
pub const SMALL_TCACHE: &str = "glibc.malloc.tcache_count=1";

/// Re-executes the running program (`/proc/self/exe`, the same arguments and environment)
/// with glibc's per-thread caches of freed chunks cut to one chunk a size
/// (`GLIBC_TUNABLES=glibc.malloc.tcache_count=1`), unless it already runs with a
/// `tcache_count` tunable. glibc reads its tunables only when a program starts, so this is
/// the only way for a program to set one itself. Why: the chunks a thread's cache keeps (up
/// to 7 of every small size by default) are in use as far as `malloc_trim` is concerned, and
/// after a flood they pin pages all over the heap; the broker measured 1.7 MB that stayed
/// after 1 000 non-reading clients with the default and 0.4 MB with one a size. Call it first
/// thing in `main`; it returns only when it does not re-execute: not glibc, the tunable is
/// already set, or the exec failed (the program then goes on as it is).
pub fn reexec_with_small_tcache() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    {
        use std::os::unix::ffi::OsStrExt;
        use std::os::unix::process::CommandExt;
        let current = std::env::var_os("GLIBC_TUNABLES").unwrap_or_default();
        if current.as_bytes().windows(b"tcache_count".len()).any(|w| w == b"tcache_count") {
            return;
        }
        let mut tunables = current.clone();
        if !tunables.is_empty() {
            tunables.push(":");
        }
        tunables.push(SMALL_TCACHE);
        let mut args = std::env::args_os();
        let mut cmd = std::process::Command::new("/proc/self/exe");
        if let Some(arg0) = args.next() {
            cmd.arg0(arg0);
        }
        let error = cmd.args(args).env("GLIBC_TUNABLES", tunables).exec();
        // Not re-executed: the program goes on with glibc's defaults.
        let _ = error;
    }
}

/// Returns the free memory at the top of glibc's heaps and in free pages of its arenas to
/// the kernel (`malloc_trim(0)`). It walks every arena and may take milliseconds: call it
/// off the async threads. Whether any memory was released.
pub fn trim() -> bool {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    {
        // SAFETY: malloc_trim takes a byte count (0: keep no padding), touches only the
        // allocator's own free lists under their locks, and is thread-safe.
        unsafe { libc::malloc_trim(0) == 1 }
    }
    #[cfg(not(all(target_os = "linux", target_env = "gnu")))]
    {
        false
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn the_knobs_can_be_turned() {
        // Whether memory is released depends on the heap; the calls themselves must be fine.
        let v: Vec<Vec<u8>> = (0..1000).map(|_| vec![1u8; 4096]).collect();
        drop(v);
        let _ = super::trim();
        #[cfg(all(target_os = "linux", target_env = "gnu"))]
        assert!(super::limit_arenas(2));
    }
}
