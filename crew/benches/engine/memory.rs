//! Memory per job: 1,000 concurrent sleeping jobs.

use std::path::Path;
use std::time::Duration;

use crew::engine::EngineHandle;

use super::{spec, unified_root};

/// A `<field> <n> kB` line's number in a /proc file (0 if it is not there).
fn kib_in(path: &str, field: &str) -> u64 {
    std::fs::read_to_string(path)
        .unwrap_or_default()
        .lines()
        .find_map(|l| l.strip_prefix(field))
        .and_then(|v| v.split_whitespace().next()?.parse().ok())
        .unwrap_or(0)
}

fn status_kib(pid: &str, field: &str) -> u64 {
    kib_in(&format!("/proc/{pid}/status"), field)
}

fn smaps_kib(pid: &str, field: &str) -> u64 {
    kib_in(&format!("/proc/{pid}/smaps_rollup"), field)
}

fn meminfo_kib(field: &str) -> u64 {
    let kib = kib_in("/proc/meminfo", field);
    assert!(kib > 0, "no {field} in /proc/meminfo");
    kib
}

pub(crate) async fn memory_per_job(h: &EngineHandle) {
    const N: u64 = 1000;
    // Warm up, so one-time allocations are not charged to the jobs.
    for _ in 0..20 {
        let info = h.start(spec(&["/bin/sleep", "1000"])).await.unwrap();
        h.stop(&info.id, Some(Duration::ZERO), "bench").await.unwrap();
    }
    let me = std::process::id().to_string();
    let rss0 = status_kib(&me, "VmRSS:");
    let avail0 = meminfo_kib("MemAvailable:");
    let mut ids = Vec::new();
    for _ in 0..N {
        ids.push(h.start(spec(&["/bin/sleep", "100000"])).await.unwrap().id);
    }
    tokio::time::sleep(Duration::from_secs(1)).await;
    let rss1 = status_kib(&me, "VmRSS:");
    let avail1 = meminfo_kib("MemAvailable:");
    // The helpers: every process in the shims cgroup (shim + init per job).
    let shims = std::fs::read_to_string(
        Path::new(&unified_root())
            .join(&h.config().cgroup_parent)
            .join("shims/cgroup.procs"),
    )
    .unwrap();
    let helpers: Vec<&str> = shims.split_whitespace().collect();
    let (mut pss, mut rss, mut private) = (0, 0, 0);
    for pid in &helpers {
        pss += smaps_kib(pid, "Pss:");
        rss += smaps_kib(pid, "Rss:");
        private += smaps_kib(pid, "Private_Dirty:") + smaps_kib(pid, "Private_Clean:");
    }
    let crew_per_job = (rss1.saturating_sub(rss0)) as f64 / N as f64;
    let helpers_per_job = pss as f64 / N as f64;
    println!("### Memory: {N} concurrent sleeping jobs\n");
    println!("| | per job |");
    println!("|---|---|");
    println!("| crew RSS growth ({rss0} -> {rss1} KiB) | {crew_per_job:.1} KiB (target < 64 KiB) |");
    println!(
        "| helpers (shim + init, {} processes): PSS | {helpers_per_job:.1} KiB |",
        helpers.len()
    );
    println!(
        "| helpers: private pages (what another job really adds) | {:.1} KiB |",
        private as f64 / N as f64
    );
    println!(
        "| helpers: RSS (counting shared libc/binary pages in full) | {:.1} KiB |",
        rss as f64 / N as f64
    );
    println!(
        "| **all Tasker memory per job** (crew share + helpers' PSS) | **{:.1} KiB** (target < 1024 KiB) |",
        crew_per_job + helpers_per_job
    );
    println!(
        "| for reference: host MemAvailable drop, job's own `sleep` and its namespaces included | {:.1} KiB |",
        avail0.saturating_sub(avail1) as f64 / N as f64
    );
    println!();
    for id in ids {
        h.stop(&id, Some(Duration::ZERO), "bench").await.unwrap();
    }
}
