//! Giving the allocator's free memory back to the system: glibc keeps what was freed in its arenas (the
//! RSS stays at the high-water mark) until asked to trim. A leaf, called after a burst of connections
//! (`app`) and after a spooled backlog has been sent (`telemetry::export`).

/// Returns the allocator's free pages to the system (glibc's `malloc_trim`; elsewhere nothing).
pub fn give_back_free_memory() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: malloc_trim only walks the allocator's own free lists; it takes no pointers from us.
    unsafe {
        libc::malloc_trim(0);
    }
}
