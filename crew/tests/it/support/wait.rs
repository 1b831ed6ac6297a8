//! Waiting for conditions, never for fixed times.

use std::time::{Duration, Instant};

/// Polls `cond` every few milliseconds until it holds or `timeout` passes;
/// panics with `what` on timeout.
pub async fn wait_for(what: &str, timeout: Duration, mut cond: impl FnMut() -> bool) {
    let deadline = Instant::now() + timeout;
    let mut pause = Duration::from_millis(1);
    while !cond() {
        assert!(
            Instant::now() < deadline,
            "timed out after {timeout:?} waiting for {what}"
        );
        tokio::time::sleep(pause).await;
        pause = (pause * 2).min(Duration::from_millis(50));
    }
}

/// Bounds a future: a hang becomes a test failure, not a stuck CI run.
pub async fn bounded<F: std::future::Future>(what: &str, timeout: Duration, f: F) -> F::Output {
    match tokio::time::timeout(timeout, f).await {
        Ok(v) => v,
        Err(_) => panic!("timed out after {timeout:?}: {what}"),
    }
}
