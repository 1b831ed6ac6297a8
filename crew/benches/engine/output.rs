//! The output path: 1 GiB written by a job, one follower reading it all.

use std::time::{Duration, Instant};

use crew::engine::EngineHandle;

use super::{read_all, spec};

/// Runs `script` as a job and follows it from the start to the end with a
/// 1 MiB chunk; returns the time and the bytes read and reported dropped.
async fn follow_job(h: &EngineHandle, script: &str) -> (Duration, u64, u64) {
    let t0 = Instant::now();
    let info = h.start(spec(&["/bin/sh", "-c", script])).await.unwrap();
    let (got, dropped) = read_all(h, &info.id).await;
    (t0.elapsed(), got, dropped)
}

/// `whole` has a window wide enough for its follower to read every byte;
/// `windowed` has the default 64 MiB window.
pub(crate) async fn output_throughput(whole: &EngineHandle, windowed: &EngineHandle) {
    const GIB: u64 = 1 << 30;
    let script = "dd if=/dev/zero bs=1M count=1024 status=none";
    let mut rows = Vec::new();
    for round in 0..3 {
        // Baseline: the same bytes through a pipe into cat.
        let t0 = Instant::now();
        let st = std::process::Command::new("sh")
            .arg("-c")
            .arg(format!("{script} | cat > /dev/null"))
            .status()
            .unwrap();
        assert!(st.success());
        let pipe = t0.elapsed();
        let (ours, got, dropped) = follow_job(whole, script).await;
        assert_eq!((got, dropped), (GIB, 0), "the follower must read every byte");
        let (win, got_w, dropped_w) = follow_job(windowed, script).await;
        assert_eq!(got_w + dropped_w, GIB);
        rows.push((round, pipe, ours, win, dropped_w));
    }
    let gbps = |d: Duration| GIB as f64 / d.as_secs_f64() / 1e9;
    println!("### Output path: 1 GiB written by a job, one follower reading it all\n");
    println!(
        "| round | pipe into `cat > /dev/null` | Tasker, 256 MiB window: job -> shim -> file -> follower, every byte read | share of the pipe | Tasker, default 64 MiB window: throughput, MiB the follower fell too far behind for |"
    );
    println!("|---|---|---|---|---|");
    let mut shares = Vec::new();
    for (round, pipe, ours, win, dropped) in &rows {
        let share = gbps(*ours) / gbps(*pipe);
        shares.push(share);
        println!(
            "| {round} | {:.2} GB/s | {:.2} GB/s | {:.0}% | {:.2} GB/s, {} MiB |",
            gbps(*pipe),
            gbps(*ours),
            share * 100.0,
            gbps(*win),
            dropped >> 20
        );
    }
    shares.sort_by(f64::total_cmp);
    println!(
        "\nMedian share: **{:.0}%** of the pipe (target >= 60%).\n",
        shares[shares.len() / 2] * 100.0
    );
}
