//! Start latency against the floor: the kernel work of a job start done by
//! a minimal program.

use std::ffi::CString;
use std::os::fd::{AsRawFd as _, OwnedFd};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use crew::engine::{EngineConfig, EngineHandle};

use super::{ms, percentile, spec};

/// Start call -> running, then stop (not timed).
pub(crate) async fn timed_start(h: &EngineHandle) -> Duration {
    let t0 = Instant::now();
    let info = h.start(spec(&["/bin/sleep", "1000"])).await.unwrap();
    let took = t0.elapsed();
    assert!(matches!(info.state, crew::engine::JobState::Running { .. }));
    h.stop(&info.id, Some(Duration::ZERO), "bench").await.unwrap();
    took
}

pub(crate) async fn start_latency(h: &EngineHandle, cold: &EngineHandle, config: &EngineConfig) {
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
pub(crate) struct Floor {
    unified: PathBuf,
    v1: Vec<PathBuf>,
    pids_dir: PathBuf,
    seq: std::sync::atomic::AtomicU64,
}

impl Floor {
    pub(crate) fn new(parent: &Path) -> Self {
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

    pub(crate) fn once(&self) -> Duration {
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
