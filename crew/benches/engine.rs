//! The job engine's benchmarks, each measured against a baseline in the same
//! run (the machines are noisy; ratios travel, absolute numbers do not).
//!
//!     sudo cargo bench -p crew --bench engine            # all
//!     sudo cargo bench -p crew --bench engine -- start   # one: start | output | memory
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

use std::ffi::CString;
use std::os::fd::{AsRawFd as _, OwnedFd};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use crew::engine::{
    Engine, EngineConfig, EngineHandle, JobSpec, Limits, Network, OutputEvent, ReadFrom, RunAs,
};

fn main() {
    if !nix::unistd::geteuid().is_root() {
        eprintln!("SKIPPED: the engine benchmarks need root (cgroups and namespaces)");
        return;
    }
    let filter: Vec<String> = std::env::args().skip(1).filter(|a| !a.starts_with('-')).collect();
    let wants = move |name: &str| filter.is_empty() || filter.iter().any(|f| name.contains(f.as_str()));
    let rt = tokio::runtime::Runtime::new().expect("runtime");
    // On a worker thread, as the crew's request handlers run.
    let bench = rt.spawn(async move {
        let state = tempfile::Builder::new()
            .prefix("tasker-bench-")
            .tempdir()
            .unwrap();
        let mut config = EngineConfig::new(state.path(), "bench");
        config.shim_path = crew::testing::shim_binary();
        config.cgroup_parent = PathBuf::from(format!("tasker/bench-{}", std::process::id()));
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
            let mut cold_config = config.clone();
            cold_config.shim_pool = 0;
            cold_config.cgroup_parent = config.cgroup_parent.with_extension("cold");
            let cold = Engine::new(cold_config).await.expect("engine");
            start_latency(&h, &cold.handle(), &config).await;
            cold.shutdown(Duration::from_secs(1)).await;
        }
        if wants("output") {
            // A window large enough that the follower never falls out of
            // it, so it reads every byte; still punched as it goes, so the
            // disk's writeback is not what is measured.
            let mut wide_config = config.clone();
            wide_config.output_limit = 256 << 20;
            wide_config.cgroup_parent = config.cgroup_parent.with_extension("wide");
            let wide = Engine::new(wide_config).await.expect("engine");
            output_throughput(&wide.handle(), &h).await;
            wide.shutdown(Duration::from_secs(1)).await;
        }
        if wants("memory") {
            memory_per_job(&h).await;
        }
        engine.shutdown(Duration::from_secs(1)).await;
    });
    rt.block_on(bench).expect("benchmarks");
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
        owner: "bench".into(),
    }
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    sorted[((sorted.len() - 1) as f64 * p).round() as usize]
}

fn ms(d: Duration) -> String {
    format!("{:.2} ms", d.as_secs_f64() * 1e3)
}

// ---------------------------------------------------------------- start

/// Start call -> running, then stop (not timed).
async fn timed_start(h: &EngineHandle) -> Duration {
    let t0 = Instant::now();
    let info = h.start(spec(&["/bin/sleep", "1000"])).await.unwrap();
    let took = t0.elapsed();
    assert!(matches!(info.state, crew::engine::JobState::Running { .. }));
    h.stop(&info.id, Some(Duration::ZERO), "bench").await.unwrap();
    took
}

async fn start_latency(h: &EngineHandle, cold: &EngineHandle, config: &EngineConfig) {
    const N: usize = 300;
    let floor_parent = config.cgroup_parent.join("floor");
    let floor = Floor::new(&floor_parent);
    // Warm up every path (page cache, the shim binary, lazily built state).
    for _ in 0..10 {
        timed_start(h).await;
        timed_start(cold).await;
        floor.once();
    }
    // Each engine interleaved with the floor, so that drift in the machine
    // hits both alike; the floor's time also lets the default engine top
    // its ready shims up, as a pause between starts does.
    let pass = async |engine: &EngineHandle| {
        let (mut ours, mut base) = (Vec::with_capacity(N), Vec::with_capacity(N));
        for _ in 0..N {
            ours.push(timed_start(engine).await);
            base.push(floor.once());
        }
        ours.sort();
        base.sort();
        (ours, base)
    };
    let (warm, warm_floor) = pass(h).await;
    let (cold_ours, cold_floor) = pass(cold).await;
    drop(floor);
    let p50 = |v: &[Duration]| percentile(v, 0.5);
    let p99 = |v: &[Duration]| percentile(v, 0.99);
    println!("### Job start latency ({N} starts each, each pass interleaved with the floor)\n");
    println!("| | p50 | p99 | p50 / floor's p50 |");
    println!("|---|---|---|---|");
    let row = |name: &str, v: &[Duration], floor: &[Duration]| {
        println!(
            "| {name} | {} | {} | {:.2}x |",
            ms(p50(v)),
            ms(p99(v)),
            p50(v).as_secs_f64() / p50(floor).as_secs_f64()
        );
    };
    row(
        "floor: cgroup + clone3 (PID, mount, net ns, into cgroup) + exec",
        &warm_floor,
        &warm_floor,
    );
    row(
        "Tasker `start` -> program running (default: a ready shim)",
        &warm,
        &warm_floor,
    );
    row("floor, second pass", &cold_floor, &cold_floor);
    row(
        "Tasker `start` with no ready shim (exec + fork + namespaces on the clock)",
        &cold_ours,
        &cold_floor,
    );
    println!("\nTarget: p50 <= 1.5x the floor.\n");
}

/// The minimal program: the same cgroup work (directories in every
/// hierarchy in use, the default pids limit), clone3 with the same
/// namespaces straight into the cgroup, exec, and the same wait for the
/// exec to be confirmed (a close-on-exec pipe).
struct Floor {
    unified: PathBuf,
    v1: Vec<PathBuf>,
    pids_dir: PathBuf,
    seq: std::sync::atomic::AtomicU64,
}

impl Floor {
    fn new(parent: &Path) -> Self {
        let mounts = std::fs::read_to_string("/proc/self/mountinfo").unwrap();
        let unified_root = if mounts
            .lines()
            .any(|l| l.contains(" /sys/fs/cgroup ") && l.contains(" - cgroup2 "))
        {
            PathBuf::from("/sys/fs/cgroup")
        } else {
            PathBuf::from("/sys/fs/cgroup/unified")
        };
        // On hybrid hosts, the v1 hierarchies a job without cpu or io limits
        // joins, as the engine does.
        let v1: Vec<PathBuf> = ["memory", "pids"]
            .iter()
            .map(|c| Path::new("/sys/fs/cgroup").join(c))
            .filter(|p| unified_root.ends_with("unified") && p.join("cgroup.procs").exists())
            .map(|p| p.join(parent))
            .collect();
        let unified = unified_root.join(parent);
        std::fs::create_dir_all(&unified).unwrap();
        for d in &v1 {
            std::fs::create_dir_all(d).unwrap();
        }
        let pids_dir = v1
            .iter()
            .find(|d| d.starts_with("/sys/fs/cgroup/pids"))
            .cloned()
            .unwrap_or(unified.clone());
        Self {
            unified,
            v1,
            pids_dir,
            seq: std::sync::atomic::AtomicU64::new(0),
        }
    }

    fn once(&self) -> Duration {
        let n = self.seq.fetch_add(1, std::sync::atomic::Ordering::Relaxed);

        let name = format!("f{n}");
        let t0 = Instant::now();
        let cg = self.unified.join(&name);
        std::fs::create_dir(&cg).unwrap();
        let mut v1_dirs = Vec::new();
        for d in &self.v1 {
            let dir = d.join(&name);
            std::fs::create_dir(&dir).unwrap();
            v1_dirs.push(dir);
        }
        let pids = if self.pids_dir == self.unified {
            cg.clone()
        } else {
            self.pids_dir.join(&name)
        };
        std::fs::write(pids.join("pids.max"), "4096").unwrap();
        let cg_fd: OwnedFd = std::fs::File::open(&cg).unwrap().into();
        let procs: Vec<OwnedFd> = v1_dirs
            .iter()
            .map(|d| {
                std::fs::OpenOptions::new()
                    .write(true)
                    .open(d.join("cgroup.procs"))
                    .unwrap()
                    .into()
            })
            .collect();
        let procs_raw: Vec<i32> = procs.iter().map(|f| f.as_raw_fd()).collect();
        let (r, w) = nix::unistd::pipe2(nix::fcntl::OFlag::O_CLOEXEC).unwrap();
        let prog = CString::new("/bin/sleep").unwrap();
        let args = [CString::new("sleep").unwrap(), CString::new("1000").unwrap()];
        let argv: Vec<*const libc::c_char> = args
            .iter()
            .map(|a| a.as_ptr())
            .chain([std::ptr::null()])
            .collect();
        let envp: [*const libc::c_char; 1] = [std::ptr::null()];
        let flags = (libc::CLONE_NEWPID | libc::CLONE_NEWNS | libc::CLONE_NEWNET) as u64;
        // SAFETY: the child only makes raw system calls on data prepared
        // above (no allocation, no locks), then execs or exits.
        let pid = unsafe { tasker_shim::sys::clone_into_cgroup(flags, cg_fd.as_raw_fd()) }.unwrap_or(-1);
        if pid == 0 {
            // SAFETY: as above.
            unsafe {
                for fd in &procs_raw {
                    libc::write(*fd, b"0".as_ptr().cast(), 1);
                }
                libc::execve(prog.as_ptr(), argv.as_ptr(), envp.as_ptr());
                libc::_exit(127);
            }
        }
        assert!(pid > 0, "clone3: {}", std::io::Error::last_os_error());
        drop(w);
        let mut b = [0u8; 1];
        let n = nix::unistd::read(&r, &mut b).unwrap();
        let took = t0.elapsed();
        assert_eq!(n, 0, "exec failed");
        // Not timed: kill, reap, remove.
        std::fs::write(cg.join("cgroup.kill"), "1").unwrap();
        let mut status = 0;
        // SAFETY: waitpid on our own child.
        unsafe { libc::waitpid(pid as i32, &mut status, 0) };
        drop((procs, cg_fd));
        while std::fs::remove_dir(&cg).is_err() {
            std::thread::sleep(Duration::from_micros(100));
        }
        for d in v1_dirs {
            while std::fs::remove_dir(&d).is_err() {
                std::thread::sleep(Duration::from_micros(100));
            }
        }
        took
    }
}

impl Drop for Floor {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir(&self.unified);
        for d in &self.v1 {
            let _ = std::fs::remove_dir(d);
        }
    }
}

// ---------------------------------------------------------------- output

/// Runs `script` as a job and follows it from the start to the end with a
/// 1 MiB chunk; returns the time and the bytes read and reported dropped.
async fn follow_job(h: &EngineHandle, script: &str) -> (Duration, u64, u64) {
    let t0 = Instant::now();
    let info = h.start(spec(&["/bin/sh", "-c", script])).await.unwrap();
    let mut reader = h
        .reader(&info.id, ReadFrom::Start)
        .unwrap()
        .with_chunk_size(1 << 20);
    let (mut got, mut dropped) = (0u64, 0u64);
    loop {
        match reader.next().await.unwrap() {
            Some(OutputEvent::Data { bytes, .. }) => got += bytes.len() as u64,
            Some(OutputEvent::Dropped { len, .. }) => dropped += len,
            Some(OutputEvent::End(_)) | None => break,
        }
    }
    (t0.elapsed(), got, dropped)
}

/// `whole` has a window wide enough for its follower to read every byte;
/// `windowed` has the default 64 MiB window.
async fn output_throughput(whole: &EngineHandle, windowed: &EngineHandle) {
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

// ---------------------------------------------------------------- memory

fn status_kib(pid: &str, field: &str) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .unwrap_or_default()
        .lines()
        .find_map(|l| l.strip_prefix(field))
        .and_then(|v| v.split_whitespace().next()?.parse().ok())
        .unwrap_or(0)
}

fn smaps_kib(pid: &str, field: &str) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/smaps_rollup"))
        .unwrap_or_default()
        .lines()
        .find_map(|l| l.strip_prefix(field))
        .and_then(|v| v.split_whitespace().next()?.parse().ok())
        .unwrap_or(0)
}

fn meminfo_kib(field: &str) -> u64 {
    std::fs::read_to_string("/proc/meminfo")
        .unwrap()
        .lines()
        .find_map(|l| l.strip_prefix(field))
        .and_then(|v| v.split_whitespace().next()?.parse().ok())
        .unwrap()
}

async fn memory_per_job(h: &EngineHandle) {
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
