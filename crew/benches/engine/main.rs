//! The job engine's benchmarks, each measured against a baseline in the same
//! run (the machines are noisy; ratios travel, absolute numbers do not).
//!
//!     sudo cargo bench -p crew --bench engine            # all
//!     sudo cargo bench -p crew --bench engine -- start   # one or more of:
//!                          start | output | memory | store | list | restart | outage | times
//!
//! Prints a Markdown report; docs/benchmarks.md holds the latest one.
//!
//! - start: start call -> the job's program running (its execve succeeded),
//!   with a cgroup and PID + mount + network namespaces, against a minimal
//!   program doing the same kernel work: create the cgroup and apply the same
//!   limit, clone3 into it with the same namespaces, exec.
//! - output: a job writes 1 GiB; one follower reads all of it; against the
//!   same bytes through a pipe into `cat > /dev/null`.
//! - memory: 1,000 concurrent sleeping jobs; the crew's RSS per job, and all
//!   memory Tasker spends per job (crew share + shim + init, proportional
//!   set size).
//! - store, list, restart, outage: what keeping jobs across restarts costs
//!   (see `durability.rs`).
//! - times: the time index: what a mark costs a writing job, and `since`
//!   on 10 GiB of output (see `times.rs`; needs 10 GiB of disk).

mod durability;
mod memory;
mod output;
mod start;
mod times;

use std::path::PathBuf;
use std::time::Duration;

use crew::engine::{
    Engine, EngineConfig, EngineHandle, JobId, JobSpec, Limits, Network, OutputEvent, ReadFrom, RunAs,
};

fn main() {
    if !nix::unistd::geteuid().is_root() {
        eprintln!("SKIPPED: the engine benchmarks need root (cgroups and namespaces)");
        return;
    }
    let filter: Vec<String> = std::env::args().skip(1).filter(|a| !a.starts_with('-')).collect();
    let wants = move |name: &str| filter.is_empty() || filter.iter().any(|f| f == name);
    let rt = tokio::runtime::Runtime::new().expect("runtime");
    // On a worker thread, as the crew's request handlers run.
    let bench = rt.spawn(async move {
        let (config, _state) = bench_config("bench");
        let engine = Engine::new(config.clone()).await.expect("engine");
        let h = engine.handle();
        println!("## Job engine (`cargo bench -p crew --bench engine`)\n");
        println!(
            "Host: {} cores, kernel {}; {}.\n",
            cores(),
            kernel(),
            h.cgroup_description()
        );
        if wants("start") {
            // The same engine without ready shims: what a start costs when
            // a burst has used them all up.
            let (mut cold_config, _cold_state) = bench_config("cold");
            cold_config.shim_pool = 0;
            let cold = Engine::new(cold_config).await.expect("engine");
            start::start_latency(&h, &cold.handle(), &config).await;
            cold.shutdown(Duration::from_secs(1)).await;
        }
        if wants("output") {
            // A window large enough that the follower never falls out of
            // it, so it reads every byte; still punched as it goes, so the
            // disk's writeback is not what is measured.
            let (mut wide_config, _wide_state) = bench_config("wide");
            wide_config.output_limit = 256 << 20;
            let wide = Engine::new(wide_config).await.expect("engine");
            output::output_throughput(&wide.handle(), &h).await;
            wide.shutdown(Duration::from_secs(1)).await;
        }
        if wants("times") {
            let (mut big, big_state) = bench_config("times");
            big.output_limit = 11 << 30;
            big.retention.output_budget = 12 << 30;
            let e = Engine::new(big).await.expect("engine");
            times::mark_cost(&e.handle(), big_state.path()).await;
            times::since_latency(&e.handle(), big_state.path(), 10).await;
            e.shutdown(Duration::from_secs(1)).await;
        }
        if wants("memory") {
            memory::memory_per_job(&h).await;
        }
        if wants("store") {
            durability::store_cost(&h, &config).await;
        }
        if wants("list") {
            durability::first_page_of_many().await;
        }
        if wants("restart") {
            durability::readoption().await;
        }
        if wants("outage") {
            durability::outage().await;
        }
        engine.shutdown(Duration::from_secs(1)).await;
    });
    rt.block_on(bench).expect("benchmarks");
}

/// An engine's configuration with a state directory and cgroup parent of
/// its own (a crew claims both), `name` telling them apart.
fn bench_config(name: &str) -> (EngineConfig, tempfile::TempDir) {
    let state = tempfile::Builder::new()
        .prefix(&format!("tasker-bench-{name}-"))
        .tempdir()
        .unwrap();
    let mut config = EngineConfig::new(state.path(), "bench");
    config.shim_path = crew::testing::shim_binary();
    config.cgroup_parent = PathBuf::from(format!("tasker/bench-{}-{name}", std::process::id()));
    (config, state)
}

fn cores() -> usize {
    std::thread::available_parallelism().map_or(1, usize::from)
}

fn kernel() -> String {
    nix::sys::utsname::uname()
        .map(|u| u.release().to_string_lossy().into_owned())
        .unwrap_or_default()
}

fn user() -> RunAs {
    RunAs {
        user: "bench".into(),
        uid: 4242,
        gid: 4242,
        groups: vec![4242],
        home: "/nonexistent".into(),
        shell: "/bin/sh".into(),
    }
}

fn spec(argv: &[&str]) -> JobSpec {
    JobSpec {
        argv: argv.iter().map(|s| (*s).to_owned()).collect(),
        env: vec![],
        cwd: None,
        run_as: user(),
        limits: Limits::default(),
        tty: None,
        network: Network::Isolated,
        timeout: None,
        name: None,
        batch: None,
        owner: "bench".into(),
    }
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    sorted[((sorted.len() - 1) as f64 * p).round() as usize]
}

fn ms(d: Duration) -> String {
    format!("{:.2} ms", d.as_secs_f64() * 1e3)
}

fn unified_root() -> PathBuf {
    let mounts = std::fs::read_to_string("/proc/self/mountinfo").unwrap();
    if mounts
        .lines()
        .any(|l| l.contains(" /sys/fs/cgroup ") && l.contains(" - cgroup2 "))
    {
        PathBuf::from("/sys/fs/cgroup")
    } else {
        PathBuf::from("/sys/fs/cgroup/unified")
    }
}

/// Follows a job's output from the start to its end, 1 MiB at a time:
/// the bytes read, and those the reader was told were dropped (older than
/// the window).
async fn read_all(h: &EngineHandle, id: &JobId) -> (u64, u64) {
    let mut reader = h.reader(id, ReadFrom::Start).unwrap().with_chunk_size(1 << 20);
    let (mut got, mut dropped) = (0, 0);
    loop {
        match reader.next().await.unwrap() {
            Some(OutputEvent::Data { bytes, .. }) => got += bytes.len() as u64,
            Some(OutputEvent::Dropped { len, .. }) => dropped += len,
            Some(OutputEvent::End(_) | OutputEvent::Until) | None => return (got, dropped),
        }
    }
}
