//! The time index: what a mark costs a job that writes, and how fast
//! `since` finds its first byte in a large output.

use std::path::Path;
use std::time::{Duration, Instant};

use crew::engine::{EngineHandle, JobId, OutputEvent, ReadFrom};
use tasker_shim::timeindex::{MARK_SIZE, TimeIndex};

use super::{ms, percentile, spec};

/// Runs a job to its end; how long it ran, start call to end.
async fn run_to_end(h: &EngineHandle, script: &str) -> (JobId, Duration) {
    let t0 = Instant::now();
    let info = h.start(spec(&["/bin/sh", "-c", script])).await.unwrap();
    loop {
        if h.get(&info.id).is_some_and(|j| j.state.is_ended()) {
            return (info.id, t0.elapsed());
        }
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
}

fn marks(state: &Path, id: &JobId) -> u64 {
    std::fs::metadata(state.join("jobs").join(format!("{id}.idx"))).map_or(0, |m| m.len() / MARK_SIZE)
}

/// 200,000 writes of 4 bytes: all to stdout (a mark a millisecond at
/// most), then alternating stdout and stderr (a mark at each change of
/// stream the shim sees: it reads what has piled up in each pipe at
/// once), against the same program into a pipe. The cost of one mark
/// alone is `cargo bench -p tasker-shim --bench timeindex`.
pub(crate) async fn mark_cost(h: &EngineHandle, state: &Path) {
    const WRITES: u32 = 200_000;
    let one = format!("python3 -c 'import os\nfor i in range({WRITES}): os.write(1, b\"abc\\n\")'");
    let two = format!("python3 -c 'import os\nfor i in range({WRITES}): os.write(1 + i % 2, b\"abc\\n\")'");
    let mut rows = Vec::new();
    for round in 0..3 {
        let t0 = Instant::now();
        let st = std::process::Command::new("sh")
            .arg("-c")
            .arg(format!("{two} 2>&1 | cat > /dev/null"))
            .status()
            .unwrap();
        assert!(st.success());
        let pipe = t0.elapsed();
        let (id1, one_t) = run_to_end(h, &one).await;
        let (id2, two_t) = run_to_end(h, &two).await;
        rows.push((round, pipe, one_t, marks(state, &id1), two_t, marks(state, &id2)));
    }
    println!(
        "### Time index: a job's writes with and without a change of stream each ({WRITES} writes of 4 bytes, python3 `os.write`)\n"
    );
    println!(
        "| round | into a pipe (`2>&1 \\| cat`) | Tasker, stdout only | its marks | Tasker, stdout and stderr in turn | its marks | difference per write |"
    );
    println!("|---|---|---|---|---|---|---|");
    let mut costs = Vec::new();
    for (round, pipe, one_t, one_m, two_t, two_m) in &rows {
        let per_write = (two_t.as_secs_f64() - one_t.as_secs_f64()) / f64::from(WRITES) * 1e9;
        costs.push(per_write);
        println!(
            "| {round} | {} | {} | {one_m} | {} | {two_m} | {per_write:+.0} ns |",
            ms(*pipe),
            ms(*one_t),
            ms(*two_t)
        );
    }
    costs.sort_by(f64::total_cmp);
    println!(
        "\nMedian difference: **{:+.0} ns** per write (each job's time includes its start \
         and python's).\n",
        costs[costs.len() / 2]
    );
}

/// A job writes `gib` GiB; then the time from opening a reader `since` a
/// moment in its middle to its first byte, against opening one at the same
/// offset, warm and with the page cache dropped.
pub(crate) async fn since_latency(h: &EngineHandle, state: &Path, gib: u64) {
    let script = format!("head -c {} /dev/zero", gib << 30);
    let (id, ran) = run_to_end(h, &script).await;
    let index = TimeIndex::open(&state.join("jobs").join(format!("{id}.idx")))
        .unwrap()
        .expect("an index");
    let kept = index.kept().unwrap();
    let mid = index
        .get(kept.start + (kept.end - kept.start) / 2)
        .unwrap()
        .expect("a mark");
    let mut rows: Vec<(&str, Vec<Duration>, Vec<Duration>)> = Vec::new();
    for cold in [false, true] {
        let (mut since, mut offset) = (Vec::new(), Vec::new());
        for _ in 0..if cold { 5 } else { 50 } {
            if cold {
                drop_caches();
            }
            let t0 = Instant::now();
            let mut r = h
                .reader(&id, ReadFrom::Start)
                .unwrap()
                .with_times(Some(mid.boot_ns), None)
                .unwrap();
            let at = first_byte(&mut r).await;
            since.push(t0.elapsed());
            assert_eq!(at, mid.offset, "since finds the mark's first byte");
            if cold {
                drop_caches();
            }
            let t0 = Instant::now();
            let mut r = h.reader(&id, ReadFrom::Offset(mid.offset)).unwrap();
            first_byte(&mut r).await;
            offset.push(t0.elapsed());
        }
        since.sort();
        offset.sort();
        rows.push((if cold { "page cache dropped" } else { "warm" }, since, offset));
    }
    println!(
        "### `since` on {gib} GiB of output: open -> first byte (the job wrote it in {:.1} s; {} marks, {} KiB of index)\n",
        ran.as_secs_f64(),
        kept.end - kept.start,
        ((kept.end - kept.start) * MARK_SIZE) >> 10
    );
    println!("| | since a time (index search) p50 | p99 | at a byte offset p50 | p99 |");
    println!("|---|---|---|---|---|");
    for (what, since, offset) in &rows {
        println!(
            "| {what} | {} | {} | {} | {} |",
            ms(percentile(since, 0.5)),
            ms(percentile(since, 0.99)),
            ms(percentile(offset, 0.5)),
            ms(percentile(offset, 0.99))
        );
    }
    println!("\nTarget: the first byte since a time in under 50 ms.\n");
}

fn drop_caches() {
    // SAFETY: sync(2) takes nothing.
    unsafe { libc::sync() };
    std::fs::write("/proc/sys/vm/drop_caches", "3").expect("drop the page cache (root)");
}

async fn first_byte(r: &mut crew::engine::OutputReader) -> u64 {
    match r.next().await.unwrap() {
        Some(OutputEvent::Data { offset, .. }) => offset,
        other => panic!("{other:?}"),
    }
}
