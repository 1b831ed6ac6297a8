//! Many quick jobs leave nothing behind: no fd, no zombie, no cgroup, no
//! growing memory.

use std::time::{Duration, Instant};

use crew::engine::ReadFrom;

use crate::support::*;

#[tokio::test]
async fn a_thousand_start_stop_cycles_leave_no_fd_zombie_or_cgroup() {
    let t = engine_or_skip!(exclusive);
    let cycles = scaled(1000);
    // Warm up whatever is lazily allocated once (runtime, and the blocking
    // pool's threads, each with its own malloc arena: how many the pool
    // grows to depends on how starts and ready shims' making overlap).
    for _ in 0..30 {
        let info = t.handle.start(spec(&["/bin/sleep", "1000"])).await.unwrap();
        t.handle
            .stop(&info.id, Some(Duration::ZERO), "warmup")
            .await
            .unwrap();
    }
    t.assert_clean().await;
    t.pool_full().await;
    let (fds, rss) = (open_fds(), rss_kib());
    let started = Instant::now();
    for i in 0..cycles {
        let info = t.handle.start(spec(&["/bin/sleep", "1000"])).await.unwrap();
        assert!(
            matches!(info.state, crew::engine::JobState::Running { .. }),
            "cycle {i}: {:?}",
            info.state
        );
        let end = t
            .handle
            .stop(&info.id, Some(Duration::ZERO), "cycle")
            .await
            .unwrap();
        assert!(end.state.is_ended());
    }
    let per_cycle = started.elapsed() / cycles as u32;
    t.assert_clean().await;
    t.pool_full().await;
    let (fds_after, rss_after) = (open_fds(), rss_kib());
    eprintln!(
        "{cycles} cycles, {per_cycle:?} each; fds {} -> {}; rss {rss} -> {rss_after} KiB",
        fds.len(),
        fds_after.len()
    );
    // As many as before (a ready shim's fds may come back under other
    // numbers); both lists are shown if not.
    assert_eq!(
        fds_after.len(),
        fds.len(),
        "fds leaked: before {fds:?}, after {fds_after:?}"
    );
    let zombies = zombie_children();
    assert!(zombies.is_empty(), "zombies left: {zombies:?}");
    // Each ended job keeps its record (a few hundred bytes); nothing more.
    // 2 MiB of slack for the allocator's own growth (a blocking thread more
    // than in the warm-up, and its arena: 1.5-2.4 MiB over 1,000 cycles in
    // the emulated VM, in steps), which a short run (the scaled-down VM
    // run) would otherwise charge to few jobs.
    let per_job = (rss_after.saturating_sub(rss + 2048) * 1024) / cycles;
    assert!(
        per_job < 4096,
        "crew memory grows by {per_job} bytes per ended job"
    );
    t.shutdown().await;
}

#[tokio::test]
async fn failed_starts_leak_nothing() {
    let t = engine_or_skip!(exclusive);
    let info = t.handle.start(spec(&["/bin/nosuch"])).await.unwrap();
    assert!(info.state.is_ended());
    t.assert_clean().await;
    t.pool_full().await;
    let fds = fd_count();
    for _ in 0..scaled(200) {
        let info = t.handle.start(spec(&["/bin/nosuch"])).await.unwrap();
        assert!(info.state.is_ended(), "{:?}", info.state);
        // A reader of a failed job ends at once.
        let (out, _, _) = read_all(&t.handle, &info.id, ReadFrom::Start).await;
        assert!(out.is_empty());
    }
    t.assert_clean().await;
    t.pool_full().await;
    assert_eq!(fd_count(), fds, "fds leaked");
    t.shutdown().await;
}
