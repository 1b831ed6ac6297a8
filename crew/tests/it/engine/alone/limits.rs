//! Resource limits, proven by their effect, not by reading a file back.

use std::os::unix::fs::MetadataExt as _;
use std::time::{Duration, Instant};

use crew::engine::{DeviceNumber, IoLimit, Outcome, Termination};

use crate::support::*;

#[tokio::test]
async fn a_memory_hog_is_oom_killed_and_reported_so() {
    let t = engine_or_skip!(exclusive);
    let mut s = spec(&["/bin/dd", "if=/dev/zero", "of=/dev/null", "bs=256M", "count=1"]);
    s.limits.memory = Some(64 << 20);
    let (_, info) = run(&t.handle, s).await;
    let e = ended(&info);
    assert_eq!(
        e.outcome,
        Outcome::OomKilled(Termination::Signaled(libc::SIGKILL))
    );
    assert!(e.totals.oom_kills >= 1, "{:?}", e.totals);
    assert!(
        e.totals.peak_memory_bytes.is_some_and(|p| p <= 64 << 20),
        "{:?}",
        e.totals
    );

    // A SIGKILL that is not the OOM killer's is not reported as one.
    let (_, info) = run(&t.handle, sh("kill -9 $$")).await;
    assert_eq!(
        ended(&info).outcome,
        Outcome::Finished(Termination::Signaled(libc::SIGKILL))
    );
    t.assert_clean().await;
    t.shutdown().await;
}

#[tokio::test]
async fn a_quarter_core_limit_holds_a_busy_loop_to_a_quarter_core() {
    let t = engine_or_skip!(exclusive);
    let mut s = sh("while :; do :; done");
    s.limits.cpu = Some(0.25);
    let info = t.handle.start(s).await.unwrap();
    // Let it settle, then measure five windows of ten CFS periods from the
    // job's own cgroup counters, and take the medians.
    //
    // Two time bases: the wall clock, and the kernel's count of enforced
    // periods (cpu.stat nr_periods). The share per enforced period is the
    // limit itself and is held tightly; the wall-clock share is held more
    // loosely, because an emulated VM's clock and timers drift against
    // each other (a median of 0.307 was seen there once). Without the limit
    // the loop takes a whole core and no periods are counted.
    tokio::time::sleep(Duration::from_millis(300)).await;
    let stat = cpu_stat_file(&t, &info.id);
    let (mut wall, mut enforced) = (Vec::new(), Vec::new());
    for _ in 0..5 {
        let p0 = nr_periods(&stat);
        let (w0, u0) = (Instant::now(), t.handle.usage(&info.id).unwrap().cpu_usec);
        tokio::time::sleep(Duration::from_secs(1)).await;
        let (u1, w1) = (t.handle.usage(&info.id).unwrap().cpu_usec, Instant::now());
        let periods = nr_periods(&stat) - p0;
        assert!(periods >= 5, "only {periods} enforced periods in {:?}", w1 - w0);
        wall.push((u1 - u0) as f64 / (w1 - w0).as_micros() as f64);
        enforced.push((u1 - u0) as f64 / (periods as f64 * 100_000.0));
    }
    t.handle
        .stop(&info.id, Some(Duration::ZERO), "test")
        .await
        .unwrap();
    let median = |v: &mut Vec<f64>| {
        v.sort_by(f64::total_cmp);
        v[v.len() / 2]
    };
    eprintln!("cpu share per second {wall:.3?}, per enforced period {enforced:.3?}");
    let (wall, enforced) = (median(&mut wall), median(&mut enforced));
    assert!(
        (0.22..=0.28).contains(&enforced),
        "cpu share per enforced period {enforced:.3} not within 0.22-0.28"
    );
    assert!(
        (0.15..=0.4).contains(&wall),
        "cpu share per second {wall:.3} not within 0.15-0.4"
    );
    t.assert_clean().await;
    t.shutdown().await;
}

#[tokio::test]
async fn a_fork_bomb_under_pids_64_is_contained_and_fully_stopped() {
    let t = engine_or_skip!(exclusive);
    let mut s = sh("bomb() { bomb | bomb & }; bomb; sleep 1000");
    s.limits.pids = Some(64);
    let info = t.handle.start(s).await.unwrap();
    let dir = t.job_dir(&info.id);
    let pids_dir = pids_dir(&t, &info.id);
    // The kernel refused forks: pids.events counts them.
    wait_for("pids.max to be hit", Duration::from_secs(20), || {
        let events = std::fs::read_to_string(pids_dir.join("pids.events")).unwrap_or_default();
        events.lines().any(|l| l.starts_with("max ") && l != "max 0")
    })
    .await;
    // The command's processes (the job's init is not one of them, wherever
    // the kernel counts it).
    let procs = std::fs::read_to_string(dir.join("cgroup.procs"))
        .unwrap()
        .lines()
        .count();
    assert!(procs <= 64, "{procs} processes");
    let started = Instant::now();
    let end = bounded(
        "stop",
        Duration::from_secs(20),
        t.handle.stop(&info.id, Some(Duration::from_millis(500)), "op"),
    )
    .await
    .unwrap();
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "stop took {:?}",
        started.elapsed()
    );
    assert!(matches!(ended(&end).outcome, Outcome::StoppedBy { .. }));
    assert!(!dir.exists());
    t.assert_clean().await;
    t.shutdown().await;
}

/// A pids limit of N lets the command run N processes, not one more and
/// not one less: on hybrid hosts the job's init waits in the job's v1 pids
/// cgroup (so the start pays no cgroup migration) and must not take one
/// of the N.
#[tokio::test]
async fn a_pids_limit_of_n_gives_the_command_exactly_n_processes() {
    let t = engine_or_skip!(exclusive);
    // sh and its two children: three processes.
    let three = "sleep 1 & sleep 1 & wait";
    for (limit, ok) in [(3, true), (2, false)] {
        // From a ready shim, whose init is in the v1 cgroups already.
        let pool = t.handle.config().shim_pool;
        wait_for("the ready shims", Duration::from_secs(10), || {
            t.handle.ready_shims().len() >= pool
        })
        .await;
        let mut s = sh(three);
        s.limits.pids = Some(limit);
        let (out, end) = run(&t.handle, s).await;
        let outcome = &ended(&end).outcome;
        let succeeded = matches!(outcome, Outcome::Finished(Termination::Exited(0)));
        assert_eq!(succeeded, ok, "pids {limit}: {outcome:?}, output {out:?}");
    }
    t.assert_clean().await;
    t.shutdown().await;
}

/// While a job forks against its task cap (as a fork bomb does), the crew
/// makes no ready shim: joining a shim's cgroups is a cgroup migration,
/// which would stall every fork and every cgroup change on the host
/// behind the bomb's forks, the bomb's own stop included.
#[tokio::test]
async fn no_ready_shim_is_made_while_a_job_is_at_its_task_cap() {
    let t = engine_or_skip!(exclusive);
    let pool = t.handle.config().shim_pool;
    let full = || t.handle.ready_shims().len() >= pool;
    wait_for("the ready shims", Duration::from_secs(30), full).await;
    // 150 tasks under a cap of 160, once it has slept (a shim is made for
    // the one its start took meanwhile: it does not fork yet), started
    // slowly enough not to count as a burst.
    let mut s = sh("sleep 2; for i in $(seq 149); do sleep 100 & sleep 0.01; done; wait");
    s.limits.pids = Some(160);
    let hog = t.handle.start(s).await.unwrap();
    wait_for(
        "the shim its start took to be replaced",
        Duration::from_secs(30),
        full,
    )
    .await;
    let pids = pids_dir(&t, &hog.id).join("pids.current");
    wait_for("the job's tasks", Duration::from_secs(120), || {
        std::fs::read_to_string(&pids).is_ok_and(|n| n.trim().parse::<u64>().is_ok_and(|n| n >= 150))
    })
    .await;
    // Another start takes a ready shim; none is made to replace it (the
    // ones left may go stale meanwhile in the slow emulated VM: no pid
    // may be new).
    let before = t.handle.ready_shims();
    let (_, end) = run(&t.handle, sh("true")).await;
    assert!(matches!(
        ended(&end).outcome,
        Outcome::Finished(Termination::Exited(0))
    ));
    tokio::time::sleep(Duration::from_secs(3)).await;
    let after = t.handle.ready_shims();
    assert!(
        after.len() < before.len() && after.iter().all(|p| before.contains(p)),
        "a ready shim was made beside the job at its cap: {before:?} then {after:?}"
    );
    t.handle
        .stop(&hog.id, Some(Duration::ZERO), "test")
        .await
        .unwrap();
    // (The pool stays short for a while: `assert_clean` would wait for it.)
    wait_for("the job's cgroup to be removed", Duration::from_secs(10), || {
        t.job_dirs().is_empty()
    })
    .await;
    t.shutdown().await;
}

fn cpu_stat_file(t: &TestEngine, id: &crew::engine::JobId) -> std::path::PathBuf {
    let v1 = std::path::Path::new("/sys/fs/cgroup/cpu");
    if v1.join(&t.parent).exists() {
        job_dir_under(&v1.join(&t.parent), id.as_str()).join("cpu.stat")
    } else {
        t.job_dir(id).join("cpu.stat")
    }
}

fn nr_periods(stat: &std::path::Path) -> u64 {
    let text = std::fs::read_to_string(stat).unwrap();
    text.lines()
        .find_map(|l| l.strip_prefix("nr_periods "))
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or_else(|| panic!("no nr_periods in {}: {text}", stat.display()))
}

fn pids_dir(t: &TestEngine, id: &crew::engine::JobId) -> std::path::PathBuf {
    let v1 = std::path::Path::new("/sys/fs/cgroup/pids");
    if v1.join(&t.parent).exists() {
        job_dir_under(&v1.join(&t.parent), id.as_str())
    } else {
        t.job_dir(id)
    }
}

/// A loop device over a file in a temp dir; detached on drop.
struct LoopDevice {
    path: String,
    _dir: tempfile::TempDir,
}

impl LoopDevice {
    fn new(size_mib: u64) -> Option<Self> {
        let dir = tempfile::tempdir().ok()?;
        let backing = dir.path().join("disk");
        std::fs::File::create(&backing)
            .ok()?
            .set_len(size_mib << 20)
            .ok()?;
        let out = std::process::Command::new("losetup")
            .args(["--find", "--show"])
            .arg(&backing)
            .output()
            .ok()?;
        if !out.status.success() {
            eprintln!("losetup: {}", String::from_utf8_lossy(&out.stderr));
            return None;
        }
        Some(Self {
            path: String::from_utf8(out.stdout).ok()?.trim().to_owned(),
            _dir: dir,
        })
    }

    fn device(&self) -> DeviceNumber {
        let rdev = std::fs::metadata(&self.path).unwrap().rdev();
        DeviceNumber {
            major: libc::major(rdev),
            minor: libc::minor(rdev),
        }
    }
}

impl Drop for LoopDevice {
    fn drop(&mut self) {
        let _ = std::process::Command::new("losetup")
            .args(["-d", &self.path])
            .status();
    }
}

/// Which kind of io limit a test proves.
#[derive(Clone, Copy, Debug)]
enum Rate {
    WriteBytes,
    WriteOps,
    ReadOps,
}

impl Rate {
    /// Bytes per dd block; a bandwidth test counts bytes, an IOPS test
    /// blocks (one operation each, with direct io).
    fn block(self) -> u64 {
        match self {
            Rate::WriteBytes => 64 << 10,
            Rate::WriteOps | Rate::ReadOps => 4 << 10,
        }
    }

    fn units(self, blocks: u64) -> f64 {
        match self {
            Rate::WriteBytes => (blocks * self.block()) as f64,
            Rate::WriteOps | Rate::ReadOps => blocks as f64,
        }
    }

    fn limit(self, dev: DeviceNumber, rate: u64) -> IoLimit {
        let mut l = IoLimit {
            device: dev,
            read_bps: None,
            write_bps: None,
            read_iops: None,
            write_iops: None,
        };
        match self {
            Rate::WriteBytes => l.write_bps = Some(rate),
            Rate::WriteOps => l.write_iops = Some(rate),
            Rate::ReadOps => l.read_iops = Some(rate),
        }
        l
    }
}

fn loop_device_or_skip() -> Option<LoopDevice> {
    if skip_reason().is_none() && LoopDevice::new(1).is_none() {
        eprintln!("SKIPPED: no loop device could be set up (losetup failed)");
        return None;
    }
    Some(LoopDevice::new(64).expect("a loop device"))
}

/// Direct io on a loop device, unlimited and then limited to a quarter of
/// what it did: the limited run averages no more than the limit (the
/// throttle lets a first burst through, hence 25%) and well under the
/// device's own rate.
async fn an_io_limit_holds(rate: Rate) {
    let Some(dev) = loop_device_or_skip() else { return };
    let t = engine_or_skip!(exclusive);
    let block = rate.block();
    let dd = |blocks: u64| {
        let (from, to, flag) = match rate {
            Rate::WriteBytes | Rate::WriteOps => (
                "if=/dev/zero".to_owned(),
                format!("of={}", dev.path),
                "oflag=direct",
            ),
            Rate::ReadOps => (
                format!("if={}", dev.path),
                "of=/dev/null".to_owned(),
                "iflag=direct",
            ),
        };
        let mut s = spec(&[
            "/bin/dd",
            &from,
            &to,
            &format!("bs={block}"),
            &format!("count={blocks}"),
            flag,
        ]);
        s.run_as = root_user();
        s
    };
    // What the device does unlimited: an emulated VM's loop device can be
    // slow, and the limit must bind well below it for the test to mean
    // anything.
    let blocks = match rate {
        Rate::WriteBytes => scaled(128).max(64),
        Rate::WriteOps | Rate::ReadOps => scaled(2048).clamp(256, 8192),
    };
    let t0 = Instant::now();
    let (_, free) = run(&t.handle, dd(blocks)).await;
    let natural = rate.units(blocks) / t0.elapsed().as_secs_f64();
    assert_eq!(ended(&free).outcome, Outcome::Finished(Termination::Exited(0)));
    let (limit, blocks) = match rate {
        Rate::WriteBytes => {
            let limit = ((natural / 4.0) as u64).clamp(32 << 10, 2 << 20);
            // About three seconds of writing at the limit.
            (limit, (limit * 3 / block).max(4))
        }
        Rate::WriteOps | Rate::ReadOps => {
            let limit = ((natural / 4.0) as u64).clamp(50, 500);
            (limit, limit * 3)
        }
    };

    let mut s = dd(blocks);
    s.limits.io = vec![rate.limit(dev.device(), limit)];
    let t0 = Instant::now();
    let (out, limited) = run(&t.handle, s).await;
    let took = t0.elapsed();
    assert_eq!(
        ended(&limited).outcome,
        Outcome::Finished(Termination::Exited(0)),
        "{out}"
    );
    let achieved = rate.units(blocks) / took.as_secs_f64();
    eprintln!(
        "{rate:?}: unlimited {natural:.0}/s; limited to {limit}/s: {achieved:.0}/s ({blocks} blocks of {block} bytes in {took:?})"
    );
    assert!(
        achieved <= limit as f64 * 1.25,
        "{rate:?}: {achieved:.0}/s exceeds the limit of {limit}/s"
    );
    assert!(achieved <= natural / 2.0, "{rate:?}: the limit had no effect");
    t.shutdown().await;
}

#[tokio::test]
async fn an_io_write_limit_holds_direct_writes_to_the_limit() {
    an_io_limit_holds(Rate::WriteBytes).await;
}

#[tokio::test]
async fn iops_limits_hold_direct_reads_and_writes_to_the_limit() {
    an_io_limit_holds(Rate::WriteOps).await;
    an_io_limit_holds(Rate::ReadOps).await;
}

/// Buffered reads of a fresh loop device: each page read lands in the page
/// cache, charged to the job. Under a soft limit the kernel reclaims them
/// as the job goes (cgroup2 `memory.high`) and the job ends well; on a v1
/// host the soft limit acts only when the host runs short of memory, which
/// a test cannot cause here, so there the kernel is shown to hold the
/// value and the job to run unharmed.
#[tokio::test]
async fn a_soft_memory_limit_reclaims_a_job_without_killing_it() {
    let Some(fresh) = loop_device_or_skip() else {
        return;
    };
    let t = engine_or_skip!(exclusive);
    const HIGH: u64 = 16 << 20;
    // A moment first, for a v1 host's limit to be read back while it runs.
    let read = |dev: &LoopDevice| {
        let mut s = sh(&format!(
            "sleep 0.5; exec dd if={} of=/dev/null bs=1M count=64",
            dev.path
        ));
        s.run_as = root_user();
        s
    };
    let mut s = read(&fresh);
    s.limits.memory_high = Some(HIGH);
    let info = t.handle.start(s).await.unwrap();
    let v1 = std::path::Path::new("/sys/fs/cgroup/memory");
    let v1_soft = v1
        .join(&t.parent)
        .exists()
        .then(|| job_dir_under(&v1.join(&t.parent), info.id.as_str()).join("memory.soft_limit_in_bytes"));
    // Read while the job runs (its cgroup goes with it).
    let set = v1_soft
        .as_ref()
        .map(|f| std::fs::read_to_string(f).unwrap_or_default());
    let (_, _, soft) = read_all(&t.handle, &info.id, crew::engine::ReadFrom::Start).await;
    let (_, free) = run(&t.handle, read(&LoopDevice::new(64).expect("a loop device"))).await;
    let (soft, free) = (ended(&soft), ended(&free));
    for e in [soft, free] {
        assert_eq!(e.outcome, Outcome::Finished(Termination::Exited(0)));
        assert_eq!(e.totals.oom_kills, 0);
    }
    let mib = |b: Option<u64>| b.map(|b| b >> 20);
    eprintln!(
        "64 MiB read: peak {:?} MiB under a {} MiB soft limit, {:?} MiB without",
        mib(soft.totals.peak_memory_bytes),
        HIGH >> 20,
        mib(free.totals.peak_memory_bytes)
    );
    match set {
        Some(set) => assert_eq!(set.trim(), HIGH.to_string()),
        None => {
            let (soft, free) = (
                soft.totals.peak_memory_bytes.expect("memory.peak (Linux 5.19+)"),
                free.totals.peak_memory_bytes.expect("memory.peak (Linux 5.19+)"),
            );
            assert!(
                free >= 48 << 20,
                "the unlimited read peaked at {free} bytes: nothing to compare"
            );
            assert!(soft <= HIGH + (8 << 20), "peak {soft} bytes, soft limit {HIGH}");
        }
    }
    t.assert_clean().await;
    t.shutdown().await;
}

/// Two busy loops on one core: the scheduler splits it by their weights.
#[tokio::test]
async fn cpu_weights_split_a_busy_core_by_weight() {
    let t = engine_or_skip!(exclusive);
    let busy = |weight: u32| {
        let mut s = spec(&[
            "/usr/bin/taskset",
            "-c",
            "0",
            "/bin/sh",
            "-c",
            "while :; do :; done",
        ]);
        s.limits.cpu_weight = Some(weight);
        s
    };
    let light = t.handle.start(busy(100)).await.unwrap();
    let heavy = t.handle.start(busy(400)).await.unwrap();
    tokio::time::sleep(Duration::from_millis(500)).await;
    let used = |id: &crew::engine::JobId| t.handle.usage(id).unwrap().cpu_usec;
    let (l0, h0) = (used(&light.id), used(&heavy.id));
    tokio::time::sleep(Duration::from_secs(2)).await;
    let (l1, h1) = (used(&light.id), used(&heavy.id));
    for id in [&light.id, &heavy.id] {
        t.handle.stop(id, Some(Duration::ZERO), "test").await.unwrap();
    }
    let ratio = (h1 - h0) as f64 / (l1 - l0).max(1) as f64;
    eprintln!(
        "one core, weights 400 and 100: {} and {} ms of cpu, {ratio:.2}x",
        (h1 - h0) / 1000,
        (l1 - l0) / 1000
    );
    assert!((2.5..=6.0).contains(&ratio), "weights 400:100 gave {ratio:.2}x");
    t.assert_clean().await;
    t.shutdown().await;
}
