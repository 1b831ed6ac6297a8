//! The crew's job engine: jobs in cgroups (v2, or v1 controllers on hybrid
//! hosts) and namespaces, output on disk for any number of readers. A
//! library with no gRPC in it; the API edge wraps [`EngineHandle`].
//!
//! Layout:
//! - `spec.rs`: what a start asks for ([`JobSpec`]), its defaults and its
//!   checks.
//! - `job.rs`: what a job is (id, state, outcome).
//! - `cgroup/`: detection, the crew's subtree, one job's cgroup; one file per
//!   controller.
//! - `start.rs`: a job's start; `spawn.rs`: starting a job's shim;
//!   `supervisor.rs`: the task that follows one job from its shim's
//!   messages to its final state.
//! - `restart.rs`: the engine's own start (one owner per name and state
//!   directory: `ownership.rs`), finding the jobs of a previous crew again
//!   (`adopt.rs`), leaving them running or stopping them at the end, and
//!   retention.
//! - `registry.rs`: the running jobs in memory; `store.rs`: every job's
//!   record on disk (SQLite).
//! - the `tasker-shim` process (runs outside the crew: the job's PID 1,
//!   output writer and stdin owner) is its own crate, `tasker_shim`, which
//!   also holds the contract with it: wire messages, the output format.
//! - `output.rs`: readers of a job's output.
//! - `user.rs`: Linux users from the passwd database.
//! - `failpoint.rs`: named points where a test may have the crew die
//!   (`TASKER_CREW_FAILPOINT`), for the kill-point tests.
//! - std locks are taken with `tasker_common::lock`, which carries on past
//!   a poisoned lock: each is held for a copy, an insert or an assignment,
//!   never across an `.await`, so a panic cannot leave its data half-written.
//!
//! Process tree of a running job (host view):
//!
//! ```text
//! crew ── tasker-shim (cgroup <parent>/shims; owns output file + stdin)
//!            └── tasker-init  (PID 1 of the job's PID namespace; new mount
//!                 │            and network namespaces)
//!                 └── command (cgroup <parent>/<job id>, cloned into it)
//! ```
//!
//! The shim and init are not in the job's cgroup, so limits, the OOM killer
//! and `cgroup.kill` act on the job alone, and the shim lives to record the
//! job's end. Because the shim, not the crew, owns the output file and
//! stdin, jobs outlive the crew: a crew that exits leaves them running, and
//! the next one finds them again (`restart.rs`).

mod adopt;
pub mod audit;
mod cgroup;
mod error;
pub mod failpoint;
mod job;
mod output;
mod ownership;
mod pool;
mod quota;
mod registry;
mod restart;
mod spawn;
mod spec;
mod start;
mod store;
mod supervisor;
pub mod user;

use std::os::fd::OwnedFd;
use std::path::{Path, PathBuf};
use std::sync::atomic::AtomicBool;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use tokio::sync::{broadcast, oneshot};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use self::cgroup::CgroupTree;
pub use self::cgroup::{CgroupMode, Hierarchy};
pub use self::error::EngineError;
pub use self::job::{Ended, JobEvent, JobId, JobInfo, JobState, Outcome, Phase, Termination, Totals, Usage};
pub use self::output::{DEFAULT_CHUNK, OutputEvent, OutputReader, ReadFrom};
pub use self::quota::{Caps, DEFAULT_CREW_JOBS, DEFAULT_USER_JOBS, Quotas};
use self::registry::{Control, JobEntry, Registry, StdinOp, StopReason};
use self::spawn::IdleShim;
pub use self::spec::{
    DeviceNumber, IoLimit, JobSpec, Limits, MAX_ARGV_ENV, MAX_WORDS, Network, RunAs, WinSize, default_env,
};
use tasker_common::{JobRef, lock};

/// How the engine is set up.
#[derive(Clone, Debug)]
pub struct EngineConfig {
    /// Where job records (`jobs.db`) and output (`jobs/<id>.out`) live.
    pub state_dir: PathBuf,
    /// The `tasker-shim` binary.
    pub shim_path: PathBuf,
    /// The crew's cgroup parent, relative to each hierarchy's root.
    pub cgroup_parent: PathBuf,
    /// Bytes of output kept per job.
    pub output_limit: u64,
    /// Grace period of a stop that names none, and of a timeout's stop.
    pub default_grace: Duration,
    /// pids.max of a job that asks for none.
    pub default_pids: u64,
    /// Limits a job gets where it asks for none of that kind (cpu, memory,
    /// soft memory, cpu weight; its pids come from `default_pids`).
    pub default_limits: Limits,
    /// Caps on each user's jobs together and on all of the crew's.
    pub quotas: Quotas,
    /// Kill jobs by freezing their cgroup even where `cgroup.kill` exists
    /// (the path older kernels take; for tests).
    pub force_freeze_kill: bool,
    /// Shims kept started and waiting for a job, so that a start need not
    /// wait for an exec. 0 starts each shim on demand.
    pub shim_pool: usize,
    /// How long ended jobs are kept, and how much of them.
    pub retention: Retention,
    /// How long the crew waits for one shim of a previous crew to answer
    /// (they are all asked at once).
    pub adopt_timeout: Duration,
    /// For tests: a pause between handing the command to init and the job
    /// to the shim, so that a quick job ends before its shim hears of it.
    #[doc(hidden)]
    pub test_serve_delay: Duration,
    /// For tests: the protocol versions this crew speaks with shims of an
    /// earlier crew (`min..=max`), and the version the shims it starts
    /// claim to speak: together, a crew and shims of other releases.
    #[doc(hidden)]
    pub test_protocols: Option<TestProtocols>,
    /// For benchmarks: job records in memory instead of `jobs.db`, the
    /// baseline the store's cost is measured against. Nothing survives.
    #[doc(hidden)]
    pub test_store_in_memory: bool,
}

/// See [`EngineConfig::test_protocols`].
#[doc(hidden)]
#[derive(Clone, Copy, Debug)]
pub struct TestProtocols {
    pub min: u32,
    pub max: u32,
    pub shims_claim: Option<u32>,
}

/// When ended jobs (their records and their output) are removed, oldest
/// first: past `max_age`, past `max_jobs`, or while the ended jobs' output
/// together takes more than `output_budget` bytes of the state directory.
#[derive(Clone, Copy, Debug)]
pub struct Retention {
    pub max_age: Duration,
    pub max_jobs: u64,
    pub output_budget: u64,
}

impl Default for Retention {
    fn default() -> Self {
        Self {
            max_age: Duration::from_secs(30 * 24 * 3600),
            max_jobs: 10_000,
            output_budget: 4 << 30,
        }
    }
}

/// 64 MiB, as SPEC §3 says.
pub const DEFAULT_OUTPUT_LIMIT: u64 = 64 << 20;
/// Enough for any sane job, small enough to stop a fork bomb early.
pub const DEFAULT_PIDS: u64 = 4096;
pub const DEFAULT_GRACE: Duration = Duration::from_secs(5);
/// Two ready shims: enough for back-to-back starts, and little memory
/// (a shim and its init: docs/benchmarks.md, "Memory").
pub const DEFAULT_SHIM_POOL: usize = 2;
/// A ready shim older than this is replaced rather than used, on a host
/// whose `/` does not propagate mounts (see [`pool::ready_max_age`]).
pub const MAX_READY_AGE: Duration = Duration::from_secs(60);

impl EngineConfig {
    /// Defaults for a crew named `crew_name`: cgroups under
    /// `tasker/<crew_name>`, the shim next to the running program.
    pub fn new(state_dir: impl Into<PathBuf>, crew_name: &str) -> Self {
        let shim_path = std::env::current_exe()
            .ok()
            .and_then(|p| p.parent().map(|d| d.join("tasker-shim")))
            .unwrap_or_else(|| PathBuf::from("/usr/local/bin/tasker-shim"));
        Self {
            state_dir: state_dir.into(),
            shim_path,
            cgroup_parent: Path::new("tasker").join(crew_name),
            output_limit: DEFAULT_OUTPUT_LIMIT,
            default_grace: DEFAULT_GRACE,
            default_pids: DEFAULT_PIDS,
            default_limits: Limits::default(),
            quotas: Quotas::for_host(),
            force_freeze_kill: false,
            shim_pool: DEFAULT_SHIM_POOL,
            retention: Retention::default(),
            adopt_timeout: Duration::from_secs(2),
            test_serve_delay: Duration::ZERO,
            test_protocols: None,
            test_store_in_memory: false,
        }
    }
}

/// The engine's owner. It ends with [`Engine::leave`] (jobs run on, for
/// the next crew to find) or [`Engine::shutdown`] (every job is stopped);
/// dropped without either, it leaves the jobs running, as a crash would.
#[derive(Debug)]
pub struct Engine {
    handle: EngineHandle,
}

/// A cheap, cloneable handle to the engine: what the API edge holds.
#[derive(Clone, Debug)]
pub struct EngineHandle {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    config: EngineConfig,
    jobs_dir: PathBuf,
    /// The jobs directory, open: shims get it to make their sockets and
    /// exit records there, and the crew reaches them through it.
    jobs_dir_fd: OwnedFd,
    tree: CgroupTree,
    registry: Arc<Registry>,
    tracker: TaskTracker,
    /// Cancelled when the engine ends: supervisors let go of their shims
    /// (the jobs go on) and the background tasks stop.
    leave: CancellationToken,
    shutting_down: AtomicBool,
    online_cpus: usize,
    /// How old a ready shim may be (None: any age; see `pool::ready_max_age`).
    ready_max_age: Option<Duration>,
    /// Started shims waiting for a job, and the users they are kept for.
    pool: Mutex<pool::Pool>,
    /// Starts under way, per owner: counted with the running jobs against
    /// the caps on running jobs.
    starting: Mutex<std::collections::HashMap<String, u64>>,
    refilling: AtomicBool,
    /// The locks on the state directory and the cgroup parent, held while
    /// the engine runs (see `ownership.rs`).
    claims: Mutex<Vec<OwnedFd>>,
    /// Who did what (`audit.rs`); none when records are kept in memory.
    audit: Option<audit::AuditLog>,
}

impl Engine {
    pub fn handle(&self) -> EngineHandle {
        self.handle.clone()
    }
}

impl EngineHandle {
    /// The audit trail (none for a crew whose records are in memory).
    pub fn audit(&self) -> Option<&audit::AuditLog> {
        self.inner.audit.as_ref()
    }

    pub fn cgroup_mode(&self) -> CgroupMode {
        self.inner.tree.hierarchy().mode()
    }

    /// The mode and where each controller lives, for logs and `Info`.
    pub fn cgroup_description(&self) -> String {
        self.inner.tree.hierarchy().describe()
    }

    pub fn config(&self) -> &EngineConfig {
        &self.inner.config
    }

    /// The pids of the shims started and waiting for a job.
    pub fn ready_shims(&self) -> Vec<u32> {
        lock(&self.inner.pool).pids()
    }

    /// A running job, or why there is none to act on.
    fn running(&self, id: &JobId) -> Result<Arc<JobEntry>, EngineError> {
        let registry = &self.inner.registry;
        if let Some(entry) = registry.live(id) {
            return Ok(entry);
        }
        if let Some(why) = registry.unadopted(id) {
            return Err(EngineError::Unsupported(why));
        }
        let info = registry
            .get(id)
            .ok_or_else(|| EngineError::NotFound(id.to_string()))?;
        Err(EngineError::StdinClosed(info.handle))
    }

    pub fn get(&self, id: &JobId) -> Option<JobInfo> {
        self.inner.registry.get(id)
    }

    /// Every job, in creation order; archived ones only if asked. Reads the
    /// whole store: for tests and small crews (the API pages, see
    /// [`page`](Self::page)).
    pub fn list(&self, include_archived: bool) -> Vec<JobInfo> {
        let mut all = Vec::new();
        let mut after = 0;
        loop {
            let page = self.page(include_archived, after, 1000);
            let Some(last) = page.last() else { return all };
            after = store::number_of(&last.handle).unwrap_or(u64::MAX);
            all.extend(page);
        }
    }

    /// Up to `limit` jobs whose `job-N` number is above `after`, in
    /// creation order; archived ones only if asked.
    pub fn page(&self, include_archived: bool, after: u64, limit: usize) -> Vec<JobInfo> {
        self.inner
            .registry
            .page(include_archived, after, limit)
            .unwrap_or_else(|e| {
                tracing::error!(error = %e, "reading jobs from the store");
                Vec::new()
            })
    }

    /// For benchmarks: records `copies` copies of the ended job `id` (new
    /// ids and handles, no output), as a crew that ran that many would hold;
    /// `one_by_one` writes each as a start writes its record, otherwise they
    /// go in a few large transactions.
    #[doc(hidden)]
    pub fn test_copy_ended(&self, id: &JobId, copies: usize, one_by_one: bool) -> Result<(), EngineError> {
        let registry = &self.inner.registry;
        let job = registry
            .get(id)
            .filter(|j| j.state.is_ended())
            .ok_or_else(|| EngineError::NotFound(format!("{id} (an ended job)")))?;
        let made: Vec<JobInfo> = (0..copies)
            .map(|_| JobInfo {
                id: JobId::random(),
                handle: format!("job-{}", registry.allocate_number()),
                name: None,
                ..job.clone()
            })
            .collect();
        if one_by_one {
            return made.iter().try_for_each(|job| registry.store().insert(job));
        }
        made.chunks(10_000)
            .try_for_each(|chunk| registry.store().insert_all(chunk))
    }

    /// The jobs running now (in memory).
    pub fn running_jobs(&self) -> Vec<JobInfo> {
        self.inner
            .registry
            .running()
            .iter()
            .map(|e| e.info())
            .filter(|i| !i.state.is_ended())
            .collect()
    }

    /// The one job `reference` names (see `tasker_common::JobRef` for the
    /// rules): an id, an id prefix, a `job-N` handle, or a name (the job
    /// not archived that holds it, else the one archived job with it).
    /// A reference that matches several jobs is [`EngineError::Ambiguous`],
    /// never a guess.
    pub fn resolve(&self, reference: &str) -> Result<JobInfo, EngineError> {
        let parsed = JobRef::parse(reference).map_err(|e| EngineError::BadRef(e.to_string()))?;
        let found = self.inner.registry.find(&parsed)?;
        tasker_common::pick(&parsed, found, |j| j.archived).map_err(|matches| {
            if matches.is_empty() {
                return EngineError::NotFound(reference.to_owned());
            }
            EngineError::Ambiguous {
                reference: reference.to_owned(),
                matches: matches.iter().map(describe).collect(),
            }
        })
    }

    /// Stops a job: SIGTERM to every process, SIGKILL to all after `grace`.
    /// Returns the final state. Stopping an ended job returns its state.
    pub async fn stop(&self, id: &JobId, grace: Option<Duration>, who: &str) -> Result<JobInfo, EngineError> {
        let registry = &self.inner.registry;
        let Some(entry) = registry.live(id) else {
            if let Some(why) = registry.unadopted(id) {
                return Err(EngineError::Unsupported(why));
            }
            return registry
                .get(id)
                .ok_or_else(|| EngineError::NotFound(id.to_string()));
        };
        let mut changes = entry.subscribe_changes();
        if let Some(info) = entry.ended_info() {
            return Ok(info);
        }
        let grace = grace.unwrap_or(self.inner.config.default_grace);
        // No channel, or a closed one, means the job is ending anyway.
        if let Some(control) = entry.control() {
            let _ = control
                .send(Control::Stop {
                    grace,
                    reason: StopReason::By(who.to_owned()),
                })
                .await;
        }
        loop {
            if let Some(info) = entry.ended_info() {
                return Ok(info);
            }
            if changes.changed().await.is_err() {
                return Ok(entry.info());
            }
        }
    }

    /// Hides an ended job from the default list and from watchers.
    pub fn archive(&self, id: &JobId) -> Result<JobInfo, EngineError> {
        self.inner.registry.archive(id)
    }

    /// Lists an archived job again, unless another job took its name
    /// meanwhile; a job not archived is returned as it is.
    pub fn unarchive(&self, id: &JobId) -> Result<JobInfo, EngineError> {
        self.inner.registry.unarchive(id)
    }

    /// Writes bytes to the job's stdin (a pipe job's pipe, or a tty job's
    /// terminal). Returns once the job's shim has them; waits while the job
    /// is not reading and the buffers are full.
    pub async fn write_stdin(&self, id: &JobId, bytes: Bytes) -> Result<(), EngineError> {
        let entry = self.running(id)?;
        let (tx, rx) = oneshot::channel();
        let handle = || entry.info().handle;
        let stdin = entry.stdin().ok_or_else(|| EngineError::StdinClosed(handle()))?;
        stdin
            .send(StdinOp::Data(bytes, tx))
            .await
            .map_err(|_| EngineError::StdinClosed(handle()))?;
        rx.await.map_err(|_| EngineError::StdinClosed(handle()))?
    }

    /// Closes a pipe job's stdin: the job reads EOF.
    pub async fn close_stdin(&self, id: &JobId) -> Result<(), EngineError> {
        let entry = self.running(id)?;
        let info = entry.info();
        if info.tty.is_some() {
            return Err(EngineError::Unsupported(format!(
                "{} is a tty job: there is no pipe to close; send the terminal's EOF character \
                 (Ctrl-D) instead",
                info.handle
            )));
        }
        let (tx, rx) = oneshot::channel();
        let stdin = entry
            .stdin()
            .ok_or_else(|| EngineError::StdinClosed(info.handle.clone()))?;
        stdin
            .send(StdinOp::Close(tx))
            .await
            .map_err(|_| EngineError::StdinClosed(info.handle.clone()))?;
        rx.await.map_err(|_| EngineError::StdinClosed(info.handle))?
    }

    /// Resizes a tty job's terminal (the job gets SIGWINCH).
    pub async fn resize(&self, id: &JobId, size: WinSize) -> Result<(), EngineError> {
        let info = self
            .get(id)
            .ok_or_else(|| EngineError::NotFound(id.to_string()))?;
        if info.tty.is_none() {
            return Err(EngineError::NotTty(info.handle));
        }
        if size.rows == 0 || size.cols == 0 {
            return Err(EngineError::InvalidSpec(
                "a terminal needs at least 1 row and 1 column".into(),
            ));
        }
        // An ended job has nothing to resize; that is not worth an error.
        if let Some(control) = self.inner.registry.live(id).and_then(|e| e.control()) {
            let _ = control.send(Control::Resize(size)).await;
        }
        Ok(())
    }

    /// A reader of the job's output, from `from`, following it live.
    pub fn reader(&self, id: &JobId, from: ReadFrom) -> Result<OutputReader, EngineError> {
        OutputReader::open(self.inner.registry.entry(id)?, from)
    }

    /// Live cpu and memory usage of a running job.
    pub fn usage(&self, id: &JobId) -> Option<Usage> {
        self.inner.registry.live(id)?.cgroup().map(|c| c.usage())
    }

    /// `owner`'s caps and what their jobs use of them now.
    pub fn quota_of(&self, owner: &str) -> QuotaUse {
        let caps = self.inner.config.quotas.of(owner);
        let running = self.running_jobs().iter().filter(|j| j.owner == owner).count() as u64;
        let (tasks, memory) = self.inner.tree.owner_usage(owner);
        QuotaUse {
            caps,
            crew: self.inner.config.quotas.crew.clone(),
            running,
            tasks,
            memory,
        }
    }

    /// Job events from now on. A subscriber that falls more than 1024
    /// events behind gets `Lagged` and should re-read the list.
    pub fn subscribe(&self) -> broadcast::Receiver<JobEvent> {
        self.inner.registry.events().subscribe()
    }
}

/// A user's caps and use, for `Info`.
#[derive(Clone, Debug)]
pub struct QuotaUse {
    pub caps: Caps,
    /// The crew's caps, over every user's together.
    pub crew: Caps,
    pub running: u64,
    /// Tasks and memory bytes of the user's jobs together, where the host
    /// counts them.
    pub tasks: Option<u64>,
    pub memory: Option<u64>,
}

/// A job as a list of matches shows it: handle, id, name, owner.
fn describe(job: &JobInfo) -> String {
    let id = job.id.as_str();
    let mut s = format!("{} (id {}…, {}'s", job.handle, &id[..id.len().min(12)], job.owner);
    if let Some(name) = &job.name {
        s.push_str(&format!(", named {name}"));
    }
    if job.archived {
        s.push_str(", archived");
    }
    s.push(')');
    s
}

/// Each running job holds two fds in the crew (its shim's socket and
/// eventfd), and each reader one: raise the soft limit to the hard one.
/// Jobs get the usual soft limit back (see the shim's `exec.rs`).
fn raise_fd_limit() {
    use nix::sys::resource::{Resource, getrlimit, setrlimit};
    if let Ok((soft, hard)) = getrlimit(Resource::RLIMIT_NOFILE)
        && soft < hard
        && let Err(e) = setrlimit(Resource::RLIMIT_NOFILE, hard, hard)
    {
        tracing::warn!(error = %e, "could not raise the fd limit");
    }
}
