//! The crew's job engine: jobs in cgroups (v2, or v1 controllers on hybrid
//! hosts) and namespaces, output on disk for any number of readers. A
//! library with no gRPC in it; the API edge wraps [`EngineHandle`].
//!
//! Layout:
//! - `spec.rs`: what a start asks for ([`JobSpec`]), its defaults and its
//!   checks.
//! - `job.rs`: what a job is (id, state, outcome).
//! - `registry.rs`: the job table and the shared part of one job.
//! - `cgroup/`: detection, the crew's subtree, one job's cgroup; one file per
//!   controller.
//! - `spawn.rs`: starting a job's shim; `supervisor.rs`: the task that
//!   follows one job from its shim's messages to its final state.
//! - the `tasker-shim` process (runs outside the crew: the job's PID 1,
//!   output writer and stdin owner) is its own crate, `tasker_shim`, which
//!   also holds the contract with it: wire messages, the output format.
//! - `output.rs`: readers of a job's output.
//! - `user.rs`: Linux users from the passwd database.
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
//! stdin, a later version can let jobs outlive a crew restart by
//! reconnecting to shims instead of killing them.

mod cgroup;
mod error;
mod job;
mod output;
mod registry;
mod spawn;
mod spec;
mod supervisor;
pub mod user;

use std::os::unix::fs::DirBuilderExt as _;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use bytes::Bytes;
use tokio::sync::{broadcast, oneshot};
use tokio_util::task::TaskTracker;

pub use self::cgroup::{CgroupMode, Hierarchy};
use self::cgroup::{CgroupTree, TreeOptions};
pub use self::error::EngineError;
use self::error::IoContext;
pub use self::job::{Ended, JobEvent, JobId, JobInfo, JobState, Outcome, Phase, Termination, Totals, Usage};
pub use self::output::{DEFAULT_CHUNK, OutputEvent, OutputReader, ReadFrom};
use self::registry::{Control, JobEntry, Registry, StdinOp, StopReason, locked};
use self::spawn::{Assignment, IdleShim, assign, spawn_idle};
pub use self::spec::{
    DeviceNumber, IoLimit, JobSpec, Limits, MAX_ARGV_ENV, Network, RunAs, WinSize, default_env,
};
use self::supervisor::{Supervisor, SupervisorArgs};
use tasker_shim::output::{create_output, drop_unit};
use tasker_shim::wire::{Launch, Serve};

/// How the engine is set up.
#[derive(Clone, Debug)]
pub struct EngineConfig {
    /// Where job output lives (`<state_dir>/jobs/<id>.out`).
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
    /// Kill jobs by freezing their cgroup even where `cgroup.kill` exists
    /// (the path older kernels take; for tests).
    pub force_freeze_kill: bool,
    /// Shims kept started and waiting for a job, so that a start need not
    /// wait for an exec. 0 starts each shim on demand.
    pub shim_pool: usize,
    /// For tests: a pause between handing the command to init and the job
    /// to the shim, so that a quick job ends before its shim hears of it.
    #[doc(hidden)]
    pub test_serve_delay: Duration,
}

/// 64 MiB, as SPEC §3 says.
pub const DEFAULT_OUTPUT_LIMIT: u64 = 64 << 20;
/// Enough for any sane job, small enough to stop a fork bomb early.
pub const DEFAULT_PIDS: u64 = 4096;
pub const DEFAULT_GRACE: Duration = Duration::from_secs(5);
/// Two ready shims: enough for back-to-back starts, at ~200 KiB each.
pub const DEFAULT_SHIM_POOL: usize = 2;
/// A ready shim older than this is replaced rather than used.
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
            force_freeze_kill: false,
            shim_pool: DEFAULT_SHIM_POOL,
            test_serve_delay: Duration::ZERO,
        }
    }
}

/// The engine's owner. Dropping it without [`Engine::shutdown`] kills every
/// job it runs (nothing may run untracked).
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
    tree: CgroupTree,
    registry: Mutex<Registry>,
    events: broadcast::Sender<JobEvent>,
    tracker: TaskTracker,
    shutting_down: AtomicBool,
    shut_down: AtomicBool,
    online_cpus: usize,
    /// Started shims waiting for a job.
    pool: Mutex<Vec<IdleShim>>,
    refilling: AtomicBool,
}

impl Engine {
    /// Checks the host, prepares the state directory and the cgroup subtree,
    /// and kills and removes whatever a previous run left in it.
    pub async fn new(config: EngineConfig) -> Result<Self, EngineError> {
        if !nix::unistd::geteuid().is_root() {
            return Err(EngineError::Unsupported(
                "the crew must run as root (it creates cgroups and namespaces)".into(),
            ));
        }
        raise_fd_limit();
        let shim = &config.shim_path;
        let meta = std::fs::metadata(shim).ctx("find the shim", shim)?;
        if !meta.is_file() {
            return Err(EngineError::Unsupported(format!(
                "the shim {} is not a file",
                shim.display()
            )));
        }
        let jobs_dir = config.state_dir.join("jobs");
        let cfg = config.clone();
        let jobs = jobs_dir.clone();
        let (tree, leftovers) = tokio::task::spawn_blocking(move || -> Result<_, EngineError> {
            std::fs::DirBuilder::new()
                .recursive(true)
                .mode(0o700)
                .create(&cfg.state_dir)
                .ctx("create state directory", &cfg.state_dir)?;
            // Output of a previous run's jobs: nothing tracks those jobs any
            // more (their cgroups are killed below).
            if jobs.exists() {
                std::fs::remove_dir_all(&jobs).ctx("clear old jobs", &jobs)?;
            }
            std::fs::DirBuilder::new()
                .mode(0o700)
                .create(&jobs)
                .ctx("create jobs directory", &jobs)?;
            output::probe_hole_punching(&jobs)?;
            let hier = Hierarchy::detect_host()?;
            CgroupTree::init(
                hier,
                TreeOptions {
                    parent: cfg.cgroup_parent.clone(),
                    default_pids: cfg.default_pids,
                    force_freeze_kill: cfg.force_freeze_kill,
                },
            )
        })
        .await
        .map_err(|e| EngineError::Cgroup(format!("setup task failed: {e}")))??;
        if leftovers > 0 {
            tracing::warn!(leftovers, "killed and removed cgroups left by a previous run");
        }
        tracing::info!(cgroups = %tree.hierarchy(), "job engine ready");
        let online_cpus = std::thread::available_parallelism().map_or(1, usize::from);
        let engine = Self {
            handle: EngineHandle {
                inner: Arc::new(Inner {
                    config,
                    jobs_dir,
                    tree,
                    registry: Mutex::new(Registry::default()),
                    events: broadcast::channel(1024).0,
                    tracker: TaskTracker::new(),
                    shutting_down: AtomicBool::new(false),
                    shut_down: AtomicBool::new(false),
                    online_cpus,
                    pool: Mutex::new(Vec::new()),
                    refilling: AtomicBool::new(false),
                }),
            },
        };
        engine.handle.refill_pool();
        Ok(engine)
    }

    pub fn handle(&self) -> EngineHandle {
        self.handle.clone()
    }

    /// Refuses new jobs, stops every running job with `grace`, waits for
    /// them all to end and removes the crew's cgroup subtree.
    pub async fn shutdown(self, grace: Duration) {
        let inner = &self.handle.inner;
        inner.shutting_down.store(true, Ordering::SeqCst);
        let running: Vec<Arc<JobEntry>> = locked(&inner.registry)
            .all()
            .filter(|e| !e.info().state.is_ended())
            .cloned()
            .collect();
        for entry in running {
            if let Some(control) = entry.control() {
                let _ = control
                    .send(Control::Stop {
                        grace,
                        reason: StopReason::By("crew shutdown".into()),
                    })
                    .await;
            }
        }
        inner.tracker.close();
        inner.tracker.wait().await;
        let idle: Vec<IdleShim> = std::mem::take(&mut *lock_pool(&inner.pool));
        let _ = tokio::task::spawn_blocking(move || idle.into_iter().for_each(IdleShim::dismiss)).await;
        let tree = inner.tree.clone();
        let _ = tokio::task::spawn_blocking(move || tree.destroy()).await;
        inner.shut_down.store(true, Ordering::SeqCst);
    }
}

impl Drop for Engine {
    fn drop(&mut self) {
        let inner = &self.handle.inner;
        if inner.shut_down.load(Ordering::SeqCst) {
            return;
        }
        // Not shut down (a panic, a test that forgot): take everything down
        // now, jobs and shims, so that nothing runs untracked, and reap the
        // ready shims (the supervisors reap the others if the runtime lives
        // on).
        inner.shutting_down.store(true, Ordering::SeqCst);
        inner.tree.destroy();
        for idle in std::mem::take(&mut *lock_pool(&inner.pool)) {
            idle.dismiss();
        }
    }
}

impl EngineHandle {
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

    /// Starts a job. Returns once the command is running (its `execve`
    /// succeeded) or has failed to start; the latter is a job too, ended with
    /// [`Outcome::StartFailed`]. A start that fails before the job exists
    /// leaves nothing behind (see [`Unmade`]).
    pub async fn start(&self, spec: JobSpec) -> Result<JobInfo, EngineError> {
        let inner = &self.inner;
        if inner.shutting_down.load(Ordering::SeqCst) {
            return Err(EngineError::ShuttingDown);
        }
        spec.validate(inner.online_cpus)?;
        let env = spec.environment();
        let cwd = spec.working_dir();

        // A ready shim first: on a hybrid host its init already sits in the
        // v1 cgroups made for the job it gets, under that job's id.
        // Topped up by `start` once the job runs: starting a shim now would
        // compete with this job's start for the cpu.
        let mut made = Unmade::new(self, self.take_ready());
        let init_in = made.idle.as_ref().map(IdleShim::init_in).unwrap_or_default();
        let number = locked(&inner.registry).allocate_number();
        let id = made
            .idle
            .as_ref()
            .and_then(IdleShim::slot_id)
            .cloned()
            .unwrap_or_else(JobId::random);
        let handle = format!("job-{number}");
        // One file per job, its own header included: on some filesystems a
        // file creation costs more than the rest of the start together.
        let output_path = inner.jobs_dir.join(format!("{id}.out"));
        let output = create_output(&output_path).ctx("create", &output_path)?;
        made.output = Some(output_path.clone());
        let cgroup = Arc::new(inner.tree.create_job(id.as_str(), &spec.limits, &init_in)?);
        made.cgroup = Some(Arc::clone(&cgroup));

        let launch = Launch {
            argv: spec.argv.iter().map(|a| a.clone().into_bytes()).collect(),
            env: env.iter().map(|(k, v)| format!("{k}={v}").into_bytes()).collect(),
            cwd: cwd.as_os_str().as_encoded_bytes().to_vec(),
            uid: spec.run_as.uid,
            gid: spec.run_as.gid,
            groups: spec.run_as.groups.clone(),
            tty: spec.tty.is_some(),
            host_network: spec.network == Network::Host,
            // Set by `assign`, which knows the cgroups init is in.
            v1_procs: 0,
            clone_into_cgroup: true,
        };
        let limit = inner.config.output_limit;
        let serve = Serve {
            title: format!("{handle} {id}").into_bytes(),
            tty: spec.tty.is_some(),
            output_limit: limit,
            drop_unit: drop_unit(limit),
        };
        let idle = made.idle.take();
        let (link, exec) = self
            .assign_shim(idle, launch, serve, spec.tty, &output, &cgroup)
            .await?;
        // The shim has the job: from here on it is the supervisor's.
        made.disarm();
        drop(output);

        // The command runs once its exec closed the pipe; otherwise the pipe
        // says where it failed.
        let (started_at, start_failed) = match exec.wait().await {
            Ok(()) => (Some(SystemTime::now()), None),
            Err(failure) => {
                let reason = match failure {
                    Some((stage, errno)) => tasker_shim::exec::failure_message(
                        stage,
                        errno,
                        &spec.argv[0],
                        &cwd.display().to_string(),
                        !spec.argv[0].contains('/'),
                    ),
                    None => "the job's shim failed".to_owned(),
                };
                (None, Some(reason))
            }
        };
        let info = JobInfo {
            id: id.clone(),
            handle,
            name: spec.name.clone(),
            owner: spec.owner.clone(),
            argv: spec.argv.clone(),
            cwd,
            run_as: spec.run_as.clone(),
            limits: spec.limits.clone(),
            tty: spec.tty,
            network: spec.network,
            timeout: spec.timeout,
            created_at: SystemTime::now(),
            state: JobState::Starting,
            archived: false,
        };
        let (entry, channels) = JobEntry::new(
            info.clone(),
            output_path,
            inner.events.clone(),
            Arc::clone(&cgroup),
        );
        let mut changes = entry.subscribe_changes();
        locked(&inner.registry).insert(Arc::clone(&entry));
        let _ = inner.events.send(JobEvent::Created(Box::new(info)));
        if let Some(started_at) = started_at {
            let pid = cgroup.first_pid().unwrap_or(0);
            entry.set_state(JobState::Running { started_at, pid });
        }
        inner.tracker.spawn(
            Supervisor::new(SupervisorArgs {
                entry: Arc::clone(&entry),
                started_at,
                start_failed,
                link,
                cgroup,
                channels,
                timeout: spec.timeout,
                default_grace: inner.config.default_grace,
            })
            .run(),
        );
        let info = loop {
            let info = entry.info();
            if info.state != JobState::Starting || changes.changed().await.is_err() {
                break info;
            }
        };
        self.refill_pool();
        Ok(info)
    }

    /// Hands the job to a ready shim, or a fresh one when none is ready (or
    /// the ready one died meanwhile).
    async fn assign_shim(
        &self,
        idle: Option<IdleShim>,
        launch: Launch,
        serve: Serve,
        tty: Option<WinSize>,
        output: &std::fs::File,
        cgroup: &cgroup::JobCgroup,
    ) -> Result<(spawn::ShimLink, spawn::ExecResult), EngineError> {
        use std::os::fd::AsFd as _;
        let idle = match idle {
            Some(idle) => idle,
            None => self.spawn_fresh().await?,
        };
        let job = |launch, serve| Assignment {
            launch,
            serve,
            serve_delay: self.inner.config.test_serve_delay,
            tty,
            output: output.as_fd(),

            cgroup,
        };
        match assign(idle, job(launch.clone(), serve.clone())) {
            Err(EngineError::ShimStale(why)) => {
                tracing::warn!(%why, "a ready shim was unusable; starting a fresh one");
                assign(self.spawn_fresh().await?, job(launch, serve))
            }
            other => other,
        }
    }

    /// A ready shim, if one is fresh enough: a ready init's mount namespace
    /// is a copy of the host's from when it was made, so an old one could
    /// miss a mount made since (on hosts whose `/` does not propagate).
    fn take_ready(&self) -> Option<IdleShim> {
        loop {
            let idle = lock_pool(&self.inner.pool).pop()?;
            if idle.age() < MAX_READY_AGE {
                return Some(idle);
            }
            self.inner.tracker.spawn_blocking(move || idle.dismiss());
        }
    }

    async fn spawn_fresh(&self) -> Result<IdleShim, EngineError> {
        let inner = Arc::clone(&self.inner);
        // No slot: joining v1 cgroups ahead would be on the clock here.
        tokio::task::spawn_blocking(move || {
            spawn_idle(&inner.config.shim_path, &inner.tree.shims_dir(), None)
        })
        .await
        .map_err(|e| EngineError::Shim(format!("shim start task: {e}")))?
    }

    /// Tops the pool of ready shims up, in the background.
    fn refill_pool(&self) {
        let inner = &self.inner;
        if inner.config.shim_pool == 0 || inner.refilling.swap(true, Ordering::SeqCst) {
            return;
        }
        let weak = Arc::downgrade(inner);
        inner.tracker.spawn_blocking(move || {
            loop {
                let Some(inner) = weak.upgrade() else { return };
                let short = || {
                    !inner.shutting_down.load(Ordering::SeqCst)
                        && lock_pool(&inner.pool).len() < inner.config.shim_pool
                };
                while short() {
                    match spawn_idle(
                        &inner.config.shim_path,
                        &inner.tree.shims_dir(),
                        new_slot(&inner.tree),
                    ) {
                        Ok(idle) if idle.wait_joined(Duration::from_secs(2)) => {
                            lock_pool(&inner.pool).push(idle)
                        }
                        Ok(idle) => {
                            tracing::warn!("a ready shim's init did not join its cgroups; letting it go");
                            idle.dismiss();
                            break;
                        }
                        Err(e) => {
                            tracing::warn!(error = %e, "could not start a ready shim");
                            break;
                        }
                    }
                }
                inner.refilling.store(false, Ordering::SeqCst);
                // A take between the last check and the reset found the
                // flag set and left the work to us.
                if !short() || inner.refilling.swap(true, Ordering::SeqCst) {
                    return;
                }
            }
        });
    }

    /// The pids of the shims started and waiting for a job.
    pub fn ready_shims(&self) -> Vec<u32> {
        lock_pool(&self.inner.pool).iter().map(IdleShim::pid).collect()
    }

    fn entry(&self, id: &JobId) -> Result<Arc<JobEntry>, EngineError> {
        locked(&self.inner.registry)
            .get(id)
            .ok_or_else(|| EngineError::NotFound(id.to_string()))
    }

    pub fn get(&self, id: &JobId) -> Option<JobInfo> {
        self.entry(id).ok().map(|e| e.info())
    }

    /// Every job, in creation order; archived ones only if asked.
    pub fn list(&self, include_archived: bool) -> Vec<JobInfo> {
        locked(&self.inner.registry)
            .all()
            .map(|e| e.info())
            .filter(|i| include_archived || !i.archived)
            .collect()
    }

    /// The jobs `reference` names: by id, `job-N` handle or name, else by an
    /// id prefix of at least 4 characters. More than one is ambiguous; the
    /// caller decides what to do with that.
    pub fn find(&self, reference: &str) -> Vec<JobInfo> {
        locked(&self.inner.registry)
            .find(reference)
            .into_iter()
            .map(|e| e.info())
            .collect()
    }

    /// Stops a job: SIGTERM to every process, SIGKILL to all after `grace`.
    /// Returns the final state. Stopping an ended job returns its state.
    pub async fn stop(&self, id: &JobId, grace: Option<Duration>, who: &str) -> Result<JobInfo, EngineError> {
        let entry = self.entry(id)?;
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
        self.entry(id)?.archive()
    }

    /// Writes bytes to the job's stdin (a pipe job's pipe, or a tty job's
    /// terminal). Returns once the job's shim has them; waits while the job
    /// is not reading and the buffers are full.
    pub async fn write_stdin(&self, id: &JobId, bytes: Bytes) -> Result<(), EngineError> {
        let entry = self.entry(id)?;
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
        let entry = self.entry(id)?;
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
        let entry = self.entry(id)?;
        let info = entry.info();
        if info.tty.is_none() {
            return Err(EngineError::NotTty(info.handle));
        }
        if size.rows == 0 || size.cols == 0 {
            return Err(EngineError::InvalidSpec(
                "a terminal needs at least 1 row and 1 column".into(),
            ));
        }
        // An ended job has nothing to resize; that is not worth an error.
        if let Some(control) = entry.control() {
            let _ = control.send(Control::Resize(size)).await;
        }
        Ok(())
    }

    /// A reader of the job's output, from `from`, following it live.
    pub fn reader(&self, id: &JobId, from: ReadFrom) -> Result<OutputReader, EngineError> {
        OutputReader::open(self.entry(id)?, from)
    }

    /// Live cpu and memory usage of a running job.
    pub fn usage(&self, id: &JobId) -> Option<Usage> {
        self.entry(id).ok()?.cgroup().map(|c| c.usage())
    }

    /// Job events from now on. A subscriber that falls more than 1024
    /// events behind gets `Lagged` and should re-read the list.
    pub fn subscribe(&self) -> broadcast::Receiver<JobEvent> {
        self.inner.events.subscribe()
    }
}

/// What a start has made before its job exists, undone when dropped unless
/// [`disarm`](Self::disarm)ed: a ready shim taken (let go), the output file
/// (removed), the job's cgroup (emptied, since the command may have started
/// before its shim failed, and removed). One place for every early return
/// of [`EngineHandle::start`].
struct Unmade<'a> {
    engine: &'a EngineHandle,
    idle: Option<IdleShim>,
    output: Option<PathBuf>,
    cgroup: Option<Arc<cgroup::JobCgroup>>,
}

impl<'a> Unmade<'a> {
    fn new(engine: &'a EngineHandle, idle: Option<IdleShim>) -> Self {
        Self {
            engine,
            idle,
            output: None,
            cgroup: None,
        }
    }

    fn disarm(mut self) {
        self.idle = None;
        self.output = None;
        self.cgroup = None;
    }
}

impl Drop for Unmade<'_> {
    fn drop(&mut self) {
        let tracker = &self.engine.inner.tracker;
        if let Some(idle) = self.idle.take() {
            tracker.spawn_blocking(move || idle.dismiss());
        }
        if let Some(path) = self.output.take() {
            let _ = std::fs::remove_file(path);
        }
        if let Some(cg) = self.cgroup.take() {
            // Empty (the command never ran): gone before the caller hears
            // of the failure. Otherwise the command did start: kill it and
            // wait for the cgroup to empty, off the runtime's threads.
            if cg.populated().unwrap_or(true) || cg.remove().is_err() {
                tracker.spawn_blocking(move || {
                    let _ = cg.kill_until_empty(Duration::from_secs(5));
                    if let Err(e) = cg.remove() {
                        tracing::warn!(error = %e, "could not remove the cgroup of a failed start");
                    }
                });
            }
        }
    }
}

/// A job id and its v1 cgroups for a ready shim, on hybrid hosts; none on
/// cgroup2 hosts, or if the directories cannot be made (the job's command
/// then joins its cgroups itself, as without a ready shim).
fn new_slot(tree: &cgroup::CgroupTree) -> Option<spawn::Slot> {
    let id = JobId::random();
    match tree.create_slot(id.as_str()) {
        Ok(dirs) if dirs.is_empty() => None,
        Ok(dirs) => Some(spawn::Slot { id, dirs }),
        Err(e) => {
            tracing::warn!(error = %e, "could not make a ready shim's cgroups");
            None
        }
    }
}

fn lock_pool(pool: &Mutex<Vec<IdleShim>>) -> std::sync::MutexGuard<'_, Vec<IdleShim>> {
    pool.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// Each running job holds two fds in the crew (its shim's socket and
/// eventfd), and each reader one: raise the soft limit to the hard one.
/// Jobs get the usual soft limit back (see `shim/child.rs`).
fn raise_fd_limit() {
    use nix::sys::resource::{Resource, getrlimit, setrlimit};
    if let Ok((soft, hard)) = getrlimit(Resource::RLIMIT_NOFILE)
        && soft < hard
        && let Err(e) = setrlimit(Resource::RLIMIT_NOFILE, hard, hard)
    {
        tracing::warn!(error = %e, "could not raise the fd limit");
    }
}
