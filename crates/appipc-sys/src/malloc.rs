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
