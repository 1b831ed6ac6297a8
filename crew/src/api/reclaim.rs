//! Gives freed memory back to the kernel after a burst of requests ends.
//!
//! glibc keeps what a burst freed (256 watchers' buffers, say) in its
//! arenas for reuse, so the crew's resident size would stay at its peak
//! for good. When a long request ends, one `malloc_trim` is run a second
//! later: many ending together share it, and a busy crew pays for it at
//! most once a second.

use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

static PENDING: AtomicBool = AtomicBool::new(false);

/// Asks for a trim a second from now, unless one is already coming.
pub fn soon() {
    if PENDING.swap(true, Ordering::AcqRel) {
        return;
    }
    let Ok(rt) = tokio::runtime::Handle::try_current() else {
        PENDING.store(false, Ordering::Release);
        return;
    };
    rt.spawn(async {
        tokio::time::sleep(Duration::from_secs(1)).await;
        PENDING.store(false, Ordering::Release);
        let _ = tokio::task::spawn_blocking(trim).await;
    });
}

#[cfg(target_env = "gnu")]
fn trim() {
    // SAFETY: malloc_trim(3) only returns free memory to the kernel; it
    // takes no pointers and is thread-safe.
    unsafe { libc::malloc_trim(0) };
}

#[cfg(not(target_env = "gnu"))]
fn trim() {}
