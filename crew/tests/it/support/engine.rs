//! An engine of its own for each test: a temp state directory and a cgroup
//! parent `tasker/test-<pid>-<n>` that no other test or crew uses.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

use crew::engine::{
    Engine, EngineConfig, EngineHandle, JobId, JobInfo, JobSpec, Limits, Network, OutputEvent, ReadFrom,
    RunAs,
};

use super::wait::bounded;

/// Why the real-kernel tests cannot run here, if they cannot.
pub fn skip_reason() -> Option<String> {
    if !nix::unistd::geteuid().is_root() {
        return Some("needs root (cgroups and namespaces)".into());
    }
    let mounts = std::fs::read_to_string("/proc/self/mountinfo").unwrap_or_default();
    if !mounts.lines().any(|l| l.contains(" - cgroup2 ")) {
        return Some("no cgroup2 hierarchy is mounted".into());
    }
    None
}

/// An engine for this test, or SKIPPED (printed) and return when the test
/// cannot run here. `exclusive` runs the test alone: for measurements that
/// other tests would skew (cpu share, bandwidth, RSS, fd and leak counts).
macro_rules! engine_or_skip {
    () => {
        engine_or_skip!(shared, |_c| {})
    };
    (exclusive) => {
        engine_or_skip!(exclusive, |_c| {})
    };
    ($mode:ident, $configure:expr) => {
        match $crate::support::skip_reason() {
            Some(why) => {
                eprintln!("SKIPPED {}: {why}", module_path!());
                return;
            }
            None => {
                let guard = $crate::support::Guard::$mode().await;
                $crate::support::TestEngine::start(guard, $configure).await
            }
        }
    };
}
pub(crate) use engine_or_skip;

fn test_lock() -> std::sync::Arc<tokio::sync::RwLock<()>> {
    static LOCK: std::sync::LazyLock<std::sync::Arc<tokio::sync::RwLock<()>>> =
        std::sync::LazyLock::new(Default::default);
    std::sync::Arc::clone(&LOCK)
}

/// Held for a test's whole life: many `shared` tests run at once, an
/// `exclusive` one runs alone.
pub enum Guard {
    Shared(tokio::sync::OwnedRwLockReadGuard<()>),
    Exclusive(tokio::sync::OwnedRwLockWriteGuard<()>),
}

impl Guard {
    pub async fn shared() -> Self {
        Self::Shared(test_lock().read_owned().await)
    }

    pub async fn exclusive() -> Self {
        Self::Exclusive(test_lock().write_owned().await)
    }
}

pub use crew::testing::scaled;

static NEXT: AtomicU32 = AtomicU32::new(0);

pub struct TestEngine {
    engine: Option<Engine>,
    _guard: Guard,
    pub handle: EngineHandle,
    pub parent: PathBuf,
    pub state: tempfile::TempDir,
}

impl TestEngine {
    pub async fn start(guard: Guard, configure: impl FnOnce(&mut EngineConfig)) -> Self {
        let n = NEXT.fetch_add(1, Ordering::SeqCst);
        let parent = PathBuf::from(format!("tasker/test-{}-{n}", std::process::id()));
        let state = tempfile::Builder::new()
            .prefix("tasker-test-")
            .tempdir()
            .expect("temp state dir");
        Self::start_at(guard, parent, state, configure).await
    }

    /// An engine of its own on a given state directory.
    pub async fn start_in(
        guard: Guard,
        state: tempfile::TempDir,
        configure: impl FnOnce(&mut EngineConfig),
    ) -> Self {
        let n = NEXT.fetch_add(1, Ordering::SeqCst);
        let parent = PathBuf::from(format!("tasker/test-{}-{n}", std::process::id()));
        Self::start_at(guard, parent, state, configure).await
    }

    /// An engine on a given cgroup parent and state directory, as a crew
    /// restarted on the same host would be.
    pub async fn start_at(
        guard: Guard,
        parent: PathBuf,
        state: tempfile::TempDir,
        configure: impl FnOnce(&mut EngineConfig),
    ) -> Self {
        let mut config = EngineConfig::new(state.path(), "unused");
        config.shim_path = crew::testing::shim_binary();
        config.cgroup_parent = parent.clone();
        configure(&mut config);
        let engine = Engine::new(config).await.expect("engine starts");
        Self {
            handle: engine.handle(),
            engine: Some(engine),
            _guard: guard,
            parent,
            state,
        }
    }

    /// The cgroup2 directory of the parent.
    pub fn unified_parent(&self) -> PathBuf {
        unified_root().join(&self.parent)
    }

    /// A job's cgroup2 directory: `<parent>/<owner>/<id>`.
    pub fn job_dir(&self, id: &crew::engine::JobId) -> PathBuf {
        job_dir_under(&self.unified_parent(), id.as_str())
    }

    /// Every job cgroup under the parent, as `owner/id`.
    pub fn job_dirs(&self) -> Vec<String> {
        job_dirs_under(&self.unified_parent())
    }

    /// Asserts that nothing of any job is left: no job cgroup (only the
    /// helpers' cgroup, empty, and the owners' directories, empty), no
    /// zombie child of this process.
    pub async fn assert_clean(&self) {
        let parent = self.unified_parent();
        super::wait_for("job cgroups to be removed", Duration::from_secs(10), || {
            self.job_dirs().is_empty() && subdirs(&parent).contains(&"shims".to_owned())
        })
        .await;
        // Left: only the ready shims, each with its init (as many as
        // configured, more where several users started jobs, fewer for a
        // while after a job forked hard).
        let shims = parent.join("shims/cgroup.procs");
        super::wait_for("every job's shim to exit", Duration::from_secs(10), || {
            let procs: Vec<u32> = std::fs::read_to_string(&shims)
                .unwrap_or_default()
                .split_whitespace()
                .map(|p| p.parse().unwrap())
                .collect();
            let ready = self.handle.ready_shims();
            procs.len() == 2 * ready.len() && ready.iter().all(|p| procs.contains(p))
        })
        .await;
        // A shim is reaped just after its job's end is published, so a
        // zombie may live for a moment; one that stays is a leak.
        super::wait_for("every exited child to be reaped", Duration::from_secs(10), || {
            zombie_children().is_empty()
        })
        .await;
    }

    /// Waits until the pool holds as many ready shims as configured: what
    /// a count of the process's fds is compared at.
    pub async fn pool_full(&self) {
        let pool = self.handle.config().shim_pool;
        super::wait_for("the ready shims", Duration::from_secs(10), || {
            self.handle.ready_shims().len() >= pool
        })
        .await;
    }

    /// Ends the engine the way a crew that exits does: its jobs run on.
    /// Returns what a successor needs (the same cgroup parent and state
    /// directory).
    pub async fn leave(mut self) -> (PathBuf, tempfile::TempDir) {
        let engine = self.engine.take().expect("engine");
        bounded("engine leave", Duration::from_secs(30), engine.leave()).await;
        (
            self.parent.clone(),
            std::mem::replace(&mut self.state, tempfile::tempdir().unwrap()),
        )
    }

    pub async fn shutdown(mut self) {
        if let Some(engine) = self.engine.take() {
            bounded(
                "engine shutdown",
                Duration::from_secs(30),
                engine.shutdown(Duration::from_secs(1)),
            )
            .await;
        }
        assert!(
            !self.unified_parent().exists(),
            "cgroup parent left after shutdown"
        );
    }
}

pub fn unified_root() -> PathBuf {
    let mounts = std::fs::read_to_string("/proc/self/mountinfo").unwrap_or_default();
    for p in ["/sys/fs/cgroup", "/sys/fs/cgroup/unified"] {
        if mounts
            .lines()
            .any(|l| l.contains(&format!(" {p} ")) && l.contains(" - cgroup2 "))
        {
            return PathBuf::from(p);
        }
    }
    PathBuf::from("/sys/fs/cgroup")
}

/// `<parent>/<owner>/<id>` for the owner that has it (the test owner,
/// `tester`, when none does yet).
pub fn job_dir_under(parent: &Path, id: &str) -> PathBuf {
    subdirs(parent)
        .into_iter()
        .map(|owner| parent.join(owner).join(id))
        .find(|d| d.is_dir())
        .unwrap_or_else(|| parent.join("tester").join(id))
}

/// Every job cgroup under a crew's parent, as `owner/id`.
pub fn job_dirs_under(parent: &Path) -> Vec<String> {
    let mut out = Vec::new();
    for owner in subdirs(parent) {
        if owner == "shims" {
            continue;
        }
        for job in subdirs(&parent.join(&owner)) {
            out.push(format!("{owner}/{job}"));
        }
    }
    out.sort();
    out
}

pub fn subdirs(dir: &Path) -> Vec<String> {
    let mut v: Vec<String> = std::fs::read_dir(dir)
        .map(|rd| {
            rd.filter_map(Result::ok)
                .filter(|e| e.file_type().map(|t| t.is_dir()).unwrap_or(false))
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .collect()
        })
        .unwrap_or_default();
    v.sort();
    v
}

/// Children of this process that are zombies.
pub fn zombie_children() -> Vec<i32> {
    let me = std::process::id().to_string();
    let mut zombies = Vec::new();
    for entry in std::fs::read_dir("/proc").into_iter().flatten().flatten() {
        let Ok(stat) = std::fs::read_to_string(entry.path().join("stat")) else {
            continue;
        };
        // pid (comm) state ppid ...
        let Some(after) = stat.rsplit_once(')').map(|(_, a)| a) else {
            continue;
        };
        let mut f = after.split_whitespace();
        let (state, ppid) = (f.next(), f.next());
        if state == Some("Z") && ppid == Some(me.as_str()) {
            zombies.push(entry.file_name().to_string_lossy().parse().unwrap_or(0));
        }
    }
    zombies
}

/// This process's resident memory, in KiB.
/// Anonymous memory this process holds (its heap and stacks), in KiB: what
/// the engine keeps, without the pages of the test binary itself that a
/// first run of some code path reads in (VmRSS counts those too, and a
/// debug binary's were seen adding 9 MiB between two samples).
pub fn rss_kib() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap();
    status
        .lines()
        .find_map(|l| l.strip_prefix("RssAnon:"))
        .and_then(|v| v.split_whitespace().next()?.parse().ok())
        .unwrap()
}

/// Open fds of this process.
pub fn fd_count() -> usize {
    std::fs::read_dir("/proc/self/fd").map(|d| d.count()).unwrap_or(0)
}

/// Open fds of this process and what each one is, so that a leak says
/// what leaked.
pub fn open_fds() -> std::collections::BTreeMap<u32, String> {
    let mut fds = std::collections::BTreeMap::new();
    for e in std::fs::read_dir("/proc/self/fd").into_iter().flatten().flatten() {
        let Ok(fd) = e.file_name().to_string_lossy().parse() else {
            continue;
        };
        // The directory's own fd is gone by the time it is read.
        if let Ok(what) = std::fs::read_link(e.path()) {
            fds.insert(fd, what.to_string_lossy().into_owned());
        }
    }
    fds
}

/// A user that need not exist: the engine takes numeric ids.
pub fn test_user() -> RunAs {
    RunAs {
        user: "tasker-test".into(),
        uid: 4242,
        gid: 4343,
        groups: vec![4343, 4444, 4545],
        home: "/nonexistent".into(),
        shell: "/bin/sh".into(),
    }
}

pub fn root_user() -> RunAs {
    crew::engine::user::lookup("root").expect("root exists")
}

pub fn spec(argv: &[&str]) -> JobSpec {
    JobSpec {
        argv: argv.iter().map(|s| (*s).to_owned()).collect(),
        env: vec![],
        cwd: None,
        run_as: test_user(),
        limits: Limits::default(),
        tty: None,
        network: Network::Isolated,
        timeout: None,
        name: None,
        batch: None,
        owner: "tester".into(),
    }
}

pub fn sh(script: &str) -> JobSpec {
    spec(&["/bin/sh", "-c", script])
}

/// Everything a reader yields from `from` to the end: the bytes (dropped
/// ranges skipped), how many bytes were reported dropped, the final info.
pub async fn read_all(handle: &EngineHandle, id: &JobId, from: ReadFrom) -> (Vec<u8>, u64, JobInfo) {
    let mut reader = handle.reader(id, from).expect("reader");
    let mut out = Vec::new();
    let mut dropped = 0;
    let mut expected = reader.offset();
    loop {
        let event = bounded("output event", Duration::from_secs(120), reader.next())
            .await
            .expect("read output");
        match event {
            Some(OutputEvent::Data { offset, bytes }) => {
                assert_eq!(offset, expected, "gap or overlap in output");
                // Read ahead in bigger reads, handed out a chunk at most.
                assert!(
                    bytes.len() <= crew::engine::DEFAULT_CHUNK,
                    "a chunk of {}",
                    bytes.len()
                );
                expected += bytes.len() as u64;
                out.extend_from_slice(&bytes);
            }
            Some(OutputEvent::Dropped { offset, len }) => {
                assert_eq!(offset, expected, "gap or overlap around a drop");
                expected += len;
                dropped += len;
            }
            Some(OutputEvent::End(info)) => return (out, dropped, *info),
            Some(OutputEvent::Until) => panic!("no until was asked for"),
            None => panic!("reader ended without End"),
        }
    }
}

/// Starts a job and reads its output to the end.
pub async fn run(handle: &EngineHandle, spec: JobSpec) -> (String, JobInfo) {
    let info = handle.start(spec).await.expect("start");
    let (out, dropped, end) = read_all(handle, &info.id, ReadFrom::Start).await;
    assert_eq!(dropped, 0);
    (String::from_utf8_lossy(&out).into_owned(), end)
}

pub fn ended(info: &JobInfo) -> &crew::engine::Ended {
    match &info.state {
        crew::engine::JobState::Ended(e) => e,
        other => panic!("job {} has not ended: {other:?}", info.handle),
    }
}
