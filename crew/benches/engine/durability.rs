//! What keeping jobs across crew restarts costs.
//!
//! - store: a start recorded in `jobs.db` (SQLite, WAL) against the same
//!   start recorded in memory (the engine before the store), interleaved,
//!   with the floor for scale.
//! - list: the first page `ListJobs` reads when 100,000 ended jobs are on
//!   record.
//! - restart: a crew that left 1,000 running jobs is started again, five
//!   times; how long until it has adopted every one.
//! - outage: a job writing 1 GiB while no crew runs at all, against the
//!   same job with its crew there.

use std::path::Path;
use std::time::{Duration, Instant};

use crew::engine::{Engine, EngineConfig, EngineHandle, JobId, JobInfo, JobState};

use super::start::{Floor, timed_start};
use super::{bench_config, ms, percentile, read_all, spec};

// ---------------------------------------------------------------- store

pub(crate) async fn store_cost(durable: &EngineHandle, config: &EngineConfig) {
    const N: usize = 300;
    let (mut memory_config, _state) = bench_config("memory-store");
    memory_config.test_store_in_memory = true;
    let in_memory = Engine::new(memory_config).await.expect("engine");
    let before = in_memory.handle();
    let floor = Floor::new(&config.cgroup_parent.join("floor-store"));
    for _ in 0..10 {
        timed_start(durable).await;
        timed_start(&before).await;
        floor.once();
    }
    // Interleaved, so that drift in the machine hits all three alike.
    let (mut ours, mut base, mut floors) = (Vec::new(), Vec::new(), Vec::new());
    for _ in 0..N {
        // Which goes first alternates: the one that goes second starts
        // while the first's job is still being cleaned up.
        if ours.len() % 2 == 0 {
            ours.push(timed_start(durable).await);
            base.push(timed_start(&before).await);
        } else {
            base.push(timed_start(&before).await);
            ours.push(timed_start(durable).await);
        }
        floors.push(floor.once());
    }
    drop(floor);
    // What the record itself costs: a job's record written alone, as a
    // start writes it, on disk and in memory.
    let mut record_cost = Vec::new();
    for engine in [durable, &before] {
        let info = engine.start(spec(&["/bin/true"])).await.unwrap();
        wait_ended(engine, &info.id, Duration::from_secs(10)).await;
        let t0 = Instant::now();
        engine.test_copy_ended(&info.id, N, true).unwrap();
        record_cost.push(t0.elapsed() / N as u32);
    }
    in_memory.shutdown(Duration::from_secs(1)).await;
    for v in [&mut ours, &mut base, &mut floors] {
        v.sort();
    }
    let (p50, p99) = (
        |v: &[Duration]| percentile(v, 0.5),
        |v: &[Duration]| percentile(v, 0.99),
    );
    let ratio = |a: Duration, b: Duration| a.as_secs_f64() / b.as_secs_f64();
    println!("### The store's cost: starts recorded on disk vs in memory ({N} each, interleaved)\n");
    println!("| | p50 | p99 | p50 / floor's p50 |");
    println!("|---|---|---|---|");
    for (name, v) in [
        ("floor (as above)", &floors),
        ("Tasker `start`, records in memory (before the store)", &base),
        ("Tasker `start`, records in `jobs.db` (SQLite, WAL)", &ours),
    ] {
        println!(
            "| {name} | {} | {} | {:.2}x |",
            ms(p50(v)),
            ms(p99(v)),
            ratio(p50(v), p50(&floors))
        );
    }
    println!(
        "\nOn disk / in memory: p50 **{:.2}x**, p99 {:.2}x (target: within 1.10x, and under 1.5x the floor).\n",
        ratio(p50(&ours), p50(&base)),
        ratio(p99(&ours), p99(&base))
    );
    println!(
        "A record alone (mean of {N}): {:.0} µs in `jobs.db`, {:.0} µs in memory: {:.0}% of the start's p50 \
         is the record on disk, {:.0}% all the store's work.\n",
        record_cost[0].as_secs_f64() * 1e6,
        record_cost[1].as_secs_f64() * 1e6,
        100.0 * (record_cost[0].as_secs_f64() - record_cost[1].as_secs_f64()) / p50(&ours).as_secs_f64(),
        100.0 * record_cost[0].as_secs_f64() / p50(&ours).as_secs_f64()
    );
}

// ---------------------------------------------------------------- list

pub(crate) async fn first_page_of_many() {
    const JOBS: usize = 100_000;
    const PAGE: usize = 1000;
    let (config, _state) = bench_config("list");
    let engine = Engine::new(config).await.expect("engine");
    let h = engine.handle();
    // One real job, ended, recorded 100,000 times as a busy crew would.
    let info = h.start(spec(&["/bin/true"])).await.unwrap();
    wait_ended(&h, &info.id, Duration::from_secs(10)).await;
    let t0 = Instant::now();
    h.test_copy_ended(&info.id, JOBS - 1, false).unwrap();
    let seeded = t0.elapsed();
    // What ListJobs reads for a first page: one more than the page, to
    // know whether more follow.
    let mut firsts = Vec::new();
    let mut small = Vec::new();
    for _ in 0..50 {
        let t = Instant::now();
        let page = h.page(false, 0, PAGE + 1);
        firsts.push(t.elapsed());
        assert_eq!(page.len(), PAGE + 1);
        let t = Instant::now();
        let page = h.page(false, 0, 101);
        small.push(t.elapsed());
        assert_eq!(page.len(), 101);
    }
    // The last page, to show a page's cost does not depend on where it is.
    let mut lasts = Vec::new();
    for _ in 0..50 {
        let t = Instant::now();
        let page = h.page(false, (JOBS - PAGE) as u64, PAGE + 1);
        lasts.push(t.elapsed());
        assert_eq!(page.len(), PAGE);
    }
    engine.shutdown(Duration::from_secs(1)).await;
    for v in [&mut firsts, &mut small, &mut lasts] {
        v.sort();
    }
    println!("### Listing {JOBS} ended jobs (50 reads each)\n");
    println!("Recording them took {:.1} s.\n", seeded.as_secs_f64());
    println!("| read | p50 | max |");
    println!("|---|---|---|");
    for (name, v) in [
        ("first page, 1,000 jobs (ListJobs' default)", &firsts),
        ("first page, 100 jobs", &small),
        ("last page, 1,000 jobs", &lasts),
    ] {
        println!(
            "| {name} | {} | {} |",
            ms(percentile(v, 0.5)),
            ms(*v.last().unwrap())
        );
    }
    println!("\nTarget: a first page in < 10 ms.\n");
}

// ---------------------------------------------------------------- restart

pub(crate) async fn readoption() {
    const JOBS: usize = 1000;
    const RESTARTS: usize = 5;
    let (config, _state) = bench_config("restart");
    let mut engine = Engine::new(config.clone()).await.expect("engine");
    let mut ids = Vec::with_capacity(JOBS);
    for _ in 0..JOBS {
        ids.push(
            engine
                .handle()
                .start(spec(&["/bin/sleep", "100000"]))
                .await
                .unwrap()
                .id,
        );
    }
    let mut took = Vec::new();
    for _ in 0..RESTARTS {
        engine.leave().await;
        let t0 = Instant::now();
        engine = Engine::new(config.clone()).await.expect("engine");
        took.push(t0.elapsed());
        let h = engine.handle();
        assert_eq!(h.running_jobs().len(), JOBS, "every job adopted");
        // Adopted means served: one of them answers a stop at once.
        let probe = ids.pop().unwrap();
        let end = h.stop(&probe, Some(Duration::ZERO), "bench").await.unwrap();
        assert!(end.state.is_ended());
        ids.push(h.start(spec(&["/bin/sleep", "100000"])).await.unwrap().id);
    }
    engine.shutdown(Duration::from_secs(5)).await;
    took.sort();
    println!("### Re-adoption: a crew started again with {JOBS} running jobs ({RESTARTS} restarts)\n");
    println!("| | p50 | max |");
    println!("|---|---|---|");
    println!(
        "| `Engine::new` until every job is adopted and served | {} | {} |",
        ms(percentile(&took, 0.5)),
        ms(*took.last().unwrap())
    );
    println!("\nTarget: within 1 s.\n");
}

// ---------------------------------------------------------------- outage

pub(crate) async fn outage() {
    const GIB: u64 = 1 << 30;
    const ROUNDS: usize = 6;
    let argv = ["/bin/sh", "-c", "dd if=/dev/zero bs=1M count=1024 status=none"];
    let (config, state) = bench_config("outage");
    let mut engine = Engine::new(config.clone()).await.expect("engine");
    let mut rows = Vec::new();
    for round in 0..ROUNDS {
        // Which goes first alternates, so that drift hits both alike.
        let (mut with_crew, mut without) = (None, None);
        for gone in [round % 2 == 1, round % 2 == 0] {
            let h = engine.handle();
            let info = h.start(spec(&argv)).await.unwrap();
            if !gone {
                // The crew there all along (nobody following, as most
                // jobs run).
                let ended = wait_ended(&h, &info.id, Duration::from_secs(120)).await;
                with_crew = Some(run_time(&ended));
                continue;
            }
            // The crew gone from just after the start until the job ended.
            engine.leave().await;
            let outage = Instant::now();
            let record = state.path().join(format!("jobs/{}.exit", info.id));
            wait_for_file(&record, Duration::from_secs(60)).await;
            let outage = outage.elapsed();
            engine = Engine::new(config.clone()).await.expect("engine");
            let h = engine.handle();
            let ended = wait_ended(&h, &info.id, Duration::from_secs(10)).await;
            // Its output is all accounted for: the window kept, the rest
            // reported as dropped.
            let (kept, dropped) = read_all(&h, &info.id).await;
            assert_eq!(kept + dropped, GIB, "the job's output, accounted for");
            without = Some((run_time(&ended), outage));
        }
        let (without, outage) = without.unwrap();
        rows.push((round, with_crew.unwrap(), without, outage));
    }
    engine.shutdown(Duration::from_secs(1)).await;
    println!("### A job writing 1 GiB while no crew runs\n");
    println!("| round | crew there: job's run time | crew gone: job's run time | ratio | crew gone for |");
    println!("|---|---|---|---|---|");
    let mut ratios = Vec::new();
    for (round, with, without, outage) in &rows {
        let r = without.as_secs_f64() / with.as_secs_f64();
        ratios.push(r);
        println!(
            "| {round} | {} | {} | {r:.2}x | {} |",
            ms(*with),
            ms(*without),
            ms(*outage)
        );
    }
    ratios.sort_by(f64::total_cmp);
    println!(
        "\nMedian: **{:.2}x** the run time with its crew there (target: not slower, within noise).\n",
        ratios[ratios.len() / 2]
    );
}

fn run_time(info: &JobInfo) -> Duration {
    let JobState::Ended(end) = &info.state else {
        panic!("not ended: {:?}", info.state)
    };
    let started = end.started_at.expect("the job ran");
    end.ended_at.duration_since(started).unwrap_or_default()
}

async fn wait_ended(h: &EngineHandle, id: &JobId, timeout: Duration) -> JobInfo {
    let deadline = Instant::now() + timeout;
    loop {
        let info = h.get(id).expect("the job is on record");
        if info.state.is_ended() {
            return info;
        }
        assert!(Instant::now() < deadline, "{id} did not end in {timeout:?}");
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

async fn wait_for_file(path: &Path, timeout: Duration) {
    let deadline = Instant::now() + timeout;
    while !path.exists() {
        assert!(
            Instant::now() < deadline,
            "{} did not appear in {timeout:?}",
            path.display()
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}
