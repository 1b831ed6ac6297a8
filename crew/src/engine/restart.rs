//! The engine's own life: its start (taking its name and state directory,
//! finding the jobs a previous crew left), its end (leaving the jobs
//! running, or stopping them all), and the upkeep in between (retention).
//!
//! A crew's exit is not its jobs' end. Each job belongs to its shim, which
//! keeps the output file, stdin and the job's PID 1; when the crew goes,
//! however it goes, the shim carries on alone. The next crew with the same
//! name and state directory asks every shim of a job the store says has not
//! ended, all at once and each within `adopt_timeout`
//! ([`adopt::reach`](super::adopt::reach)):
//!
//! - a shim that answers: the job is adopted, with a new supervisor (its
//!   timeout keeps counting from the job's start);
//! - a shim of a protocol version this crew does not speak: the job is left
//!   running, untouched, for a crew that does; asking to act on it says so;
//! - no shim, but an exit record: the job ended while no crew ran, and it
//!   ends here with its true outcome (exit code or signal, OOM from the
//!   cgroup's counter, its end time, its output's end);
//! - no shim and no record (it was killed, or the host rebooted), or a
//!   shim that does not answer: the job ends `lost: <why>`, and whatever is
//!   left of it in its cgroup is killed.
//!
//! Shims and exit records the store does not know (a start the previous
//! crew did not get to record, or a store moved aside) are found too, from
//! the record each shim keeps of its job. Then what is left of jobs that
//! are over goes: their cgroups, and the ready shims of the previous crew,
//! which leave by themselves when their crew's socket closes.

use std::collections::{BTreeMap, HashSet};
use std::os::fd::{AsFd as _, OwnedFd};
use std::os::unix::fs::DirBuilderExt as _;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, SystemTime};

use tasker_shim::wire::{ExitRecord, PROTOCOL};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use super::adopt::{Found, Speaks, reach};
use super::audit::AuditLog;
use super::cgroup::{CgroupTree, Hierarchy, TreeOptions};
use super::error::{EngineError, IoContext};
use super::job::{Ended, JobId, JobInfo, JobState, Outcome, Totals};
use super::output::probe_hole_punching;
use super::registry::{JobEntry, Registry};
use super::store::Store;
use super::supervisor::{Supervisor, SupervisorArgs, outcome_of, settle_cgroup};
use super::{
    Control, Engine, EngineConfig, EngineHandle, IdleShim, Inner, StopReason, ownership, raise_fd_limit,
};
use tasker_common::lock;

/// How often retention and the other upkeep run.
const UPKEEP_EVERY: Duration = Duration::from_secs(60);
/// How often the ready shims are looked after (see `tend_pool`).
const POOL_UPKEEP_EVERY: Duration = Duration::from_secs(10);

/// What the blocking part of the start made.
struct Setup {
    claims: Vec<OwnedFd>,
    tree: CgroupTree,
    store: Store,
    note: Option<String>,
    jobs_dir_fd: OwnedFd,
    audit: Option<AuditLog>,
}

impl Engine {
    /// Checks the host, takes the crew's name and state directory (a
    /// second crew with either is refused, naming the first), opens the
    /// job store, and finds the jobs a previous crew left (see the module's
    /// comment). Returns once every one of them is running under this crew
    /// or has its final state.
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
        let setup = tokio::task::spawn_blocking(move || -> Result<Setup, EngineError> {
            std::fs::DirBuilder::new()
                .recursive(true)
                .mode(0o700)
                .create(&cfg.state_dir)
                .ctx("create state directory", &cfg.state_dir)?;
            // Before anything in it is touched.
            let state_claim = ownership::claim(&cfg.state_dir, "state directory")?;
            if !jobs.exists() {
                std::fs::DirBuilder::new()
                    .mode(0o700)
                    .create(&jobs)
                    .ctx("create jobs directory", &jobs)?;
            }
            probe_hole_punching(&jobs)?;
            let hier = Hierarchy::detect_host()?;
            let cpus = std::thread::available_parallelism().map_or(1, usize::from);
            cfg.quotas.validate(cpus).map_err(EngineError::InvalidSpec)?;
            cfg.default_limits
                .validate(cpus)
                .map_err(|e| EngineError::InvalidSpec(format!("the default limits: {e}")))?;
            let opts = TreeOptions {
                parent: cfg.cgroup_parent.clone(),
                default_pids: cfg.default_pids,
                force_freeze_kill: cfg.force_freeze_kill,
                quotas: cfg.quotas.clone(),
            };
            let parent = CgroupTree::unified_parent(&hier, &opts)?;
            std::fs::create_dir_all(&parent).ctx("create cgroup", &parent)?;
            let name_claim = ownership::claim(&parent, "crew's cgroup")?;
            let tree = CgroupTree::init(hier, opts)?;
            let opened = if cfg.test_store_in_memory {
                Store::in_memory(&format!("{}-{}", std::process::id(), cfg.cgroup_parent.display()))?
            } else {
                Store::open(&cfg.state_dir)?
            };
            let jobs_dir_fd = OwnedFd::from(std::fs::File::open(&jobs).ctx("open", &jobs)?);
            let audit = if cfg.test_store_in_memory {
                None
            } else {
                Some(AuditLog::open(&cfg.state_dir)?)
            };
            Ok(Setup {
                audit,
                claims: vec![state_claim, name_claim],
                tree,
                store: opened.store,
                note: opened.note,
                jobs_dir_fd,
            })
        })
        .await
        .map_err(|e| EngineError::Cgroup(format!("setup task failed: {e}")))??;
        if let Some(note) = &setup.note {
            tracing::error!("{note}");
        }
        let events = tokio::sync::broadcast::channel(1024).0;
        let registry = Arc::new(Registry::new(setup.store, events, jobs_dir.clone())?);
        let online_cpus = std::thread::available_parallelism().map_or(1, usize::from);
        let engine = Self {
            handle: EngineHandle {
                inner: Arc::new(Inner {
                    config,
                    jobs_dir,
                    jobs_dir_fd: setup.jobs_dir_fd,
                    tree: setup.tree,
                    registry,
                    tracker: TaskTracker::new(),
                    leave: CancellationToken::new(),
                    shutting_down: AtomicBool::new(false),
                    online_cpus,
                    ready_max_age: super::pool::ready_max_age(),
                    pool: std::sync::Mutex::default(),
                    starting: std::sync::Mutex::default(),
                    refilling: AtomicBool::new(false),
                    claims: std::sync::Mutex::new(setup.claims),
                    audit: setup.audit,
                }),
            },
        };
        let handle = &engine.handle;
        handle.adopt_all().await;
        let tree = handle.inner.tree.clone();
        let keep: HashSet<String> = handle
            .inner
            .registry
            .running()
            .iter()
            .map(|e| e.id.to_string())
            .chain(
                handle
                    .inner
                    .registry
                    .unadopted_ids()
                    .iter()
                    .map(ToString::to_string),
            )
            .collect();
        let sweep = Arc::clone(&handle.inner);
        let keep_files = keep.clone();
        let removed = tokio::task::spawn_blocking(move || {
            sweep_files(&sweep, &keep_files);
            tree.remove_leftovers(&keep)
        })
        .await
        .map_err(|e| EngineError::Cgroup(format!("cleanup task failed: {e}")))??;
        if removed > 0 {
            tracing::info!(removed, "removed cgroups of jobs that are over");
        }
        tracing::info!(cgroups = %handle.inner.tree.hierarchy(), "job engine ready");
        handle.refill_pool();
        handle.start_upkeep();
        Ok(engine)
    }

    /// Ends the engine and leaves every job running, for the next crew to
    /// find: takes no new job, lets go of every shim (each carries on
    /// alone), dismisses the ready shims, and gives up the crew's name and
    /// state directory. What a crew does when it exits.
    pub async fn leave(self) {
        let inner = &self.handle.inner;
        inner.shutting_down.store(true, Ordering::SeqCst);
        inner.leave.cancel();
        inner.tracker.close();
        inner.tracker.wait().await;
        let idle: Vec<IdleShim> = lock(&inner.pool).take_all();
        let _ = tokio::task::spawn_blocking(move || idle.into_iter().for_each(IdleShim::dismiss)).await;
        lock(&inner.claims).clear();
    }

    /// Ends the engine and every job with it: stops every running job with
    /// `grace`, waits for them all to end, and removes the crew's cgroups.
    /// An explicit act (`crew --stop-jobs-on-exit`), never a crew's default.
    pub async fn shutdown(self, grace: Duration) {
        let inner = &self.handle.inner;
        inner.shutting_down.store(true, Ordering::SeqCst);
        for entry in inner.registry.running() {
            if let Some(control) = entry.control() {
                let _ = control
                    .send(Control::Stop {
                        grace,
                        reason: StopReason::By("crew shutdown".into()),
                    })
                    .await;
            }
        }
        // The supervisors end with their jobs; the upkeep with the token.
        let all_ended = async {
            for entry in inner.registry.running() {
                let mut changes = entry.subscribe_changes();
                while entry.ended_info().is_none() {
                    if changes.changed().await.is_err() {
                        break;
                    }
                }
            }
        };
        let _ = tokio::time::timeout(grace + Duration::from_secs(30), all_ended).await;
        inner.leave.cancel();
        inner.tracker.close();
        inner.tracker.wait().await;
        let idle: Vec<IdleShim> = lock(&inner.pool).take_all();
        let _ = tokio::task::spawn_blocking(move || idle.into_iter().for_each(IdleShim::dismiss)).await;
        let tree = inner.tree.clone();
        let _ = tokio::task::spawn_blocking(move || tree.destroy()).await;
        lock(&inner.claims).clear();
    }
}

impl Drop for Engine {
    fn drop(&mut self) {
        // Neither left nor shut down (a panic unwinding, a test that
        // forgot): as a crash would, leave the jobs to their shims. The
        // supervisors let go when next polled, the ready shims see their
        // crew go and leave.
        let inner = &self.handle.inner;
        inner.shutting_down.store(true, Ordering::SeqCst);
        inner.leave.cancel();
        for idle in lock(&inner.pool).take_all() {
            idle.dismiss();
        }
        lock(&inner.claims).clear();
    }
}

impl EngineHandle {
    /// The protocol versions this crew speaks with shims it did not start.
    fn speaks(&self) -> Speaks {
        match self.inner.config.test_protocols {
            Some(p) => Speaks {
                min: p.min,
                max: p.max,
            },
            None => Speaks {
                min: 1,
                max: PROTOCOL,
            },
        }
    }

    /// Finds every job of a previous crew again (see the module's comment).
    async fn adopt_all(&self) {
        let inner = &self.inner;
        // The store's unended jobs, then shims and exit records it does not
        // know.
        let mut candidates: BTreeMap<JobId, Option<JobInfo>> = BTreeMap::new();
        match inner.registry.store().unended() {
            Ok(jobs) => candidates.extend(jobs.into_iter().map(|j| (j.id.clone(), Some(j)))),
            Err(e) => tracing::error!(error = %e, "reading unended jobs from the store"),
        }
        for id in leftover_ids(&inner.jobs_dir) {
            if !candidates.contains_key(&id) && inner.registry.get(&id).is_none() {
                candidates.insert(id, None);
            }
        }
        if candidates.is_empty() {
            return;
        }
        let started = std::time::Instant::now();
        let speaks = self.speaks();
        let timeout = inner.config.adopt_timeout;
        let mut asks = tokio::task::JoinSet::new();
        for (id, known) in candidates {
            let inner = Arc::clone(inner);
            asks.spawn(async move {
                let found = reach(inner.jobs_dir_fd.as_fd(), &id, speaks, timeout).await;
                (id, known, found)
            });
        }
        let (mut adopted, mut ended, mut lost, mut left) = (0, 0, 0, 0);
        while let Some(answer) = asks.join_next().await {
            let Ok((id, known, found)) = answer else { continue };
            match found {
                Found::Running {
                    link,
                    record,
                    stdin_open,
                } => {
                    super::failpoint::here("adopt:welcomed");
                    let Some(info) = known.or_else(|| rebuilt(&id, &record)) else {
                        tracing::error!(job = %id, "a running shim whose job is in no record; leaving it");
                        continue;
                    };
                    self.adopt(info, link, stdin_open);
                    adopted += 1;
                }
                Found::Unsupported { version } => {
                    let speaks = self.speaks();
                    let why = format!(
                        "its shim speaks protocol {version}, and this crew speaks {}..={}: it runs on, \
                         and a crew that speaks its protocol can reach it",
                        speaks.min, speaks.max
                    );
                    tracing::warn!(job = %id, "{why}");
                    inner.registry.mark_unadopted(&id, why);
                    left += 1;
                }
                Found::Ended(rec) => {
                    let Some(info) = known.or_else(|| rebuilt(&id, &rec.record)) else {
                        tracing::error!(job = %id, "an exit record whose job is in no record");
                        continue;
                    };
                    self.record_end(info, Some(&rec), None).await;
                    ended += 1;
                }
                Found::Gone(why) => {
                    let Some(info) = known else {
                        // A dead shim's socket, of a job nobody recorded.
                        let _ = std::fs::remove_file(inner.jobs_dir.join(format!("{id}.sock")));
                        continue;
                    };
                    tracing::warn!(job = %info.handle, %why, "lost a job");
                    self.record_end(info, None, Some(why)).await;
                    lost += 1;
                }
            }
        }
        tracing::info!(
            adopted,
            ended,
            lost,
            left,
            ms = started.elapsed().as_millis() as u64,
            "found the jobs of the previous crew"
        );
    }

    /// Takes over a running job whose shim answered.
    fn adopt(&self, mut info: JobInfo, link: super::spawn::ShimLink, stdin_open: bool) {
        let inner = &self.inner;
        let cgroup = Arc::new(inner.tree.job_cgroup(&info.owner, info.id.as_str(), &info.limits));
        let started_at = match info.state {
            JobState::Running { started_at, .. } => started_at,
            _ => info.created_at,
        };
        if !matches!(info.state, JobState::Running { .. }) {
            info.state = JobState::Running {
                started_at,
                pid: cgroup.first_pid().unwrap_or(0),
            };
        }
        // What is left of its timeout, counted from its start.
        let timeout = info.timeout.map(|t| {
            let ran = SystemTime::now().duration_since(started_at).unwrap_or_default();
            t.saturating_sub(ran)
        });
        let output = inner.registry.output_path(&info.id);
        let (entry, channels) =
            JobEntry::new(info, output, inner.registry.events().clone(), Arc::clone(&cgroup));
        if let Err(e) = inner.registry.restore(&entry) {
            tracing::error!(job = %entry.id, error = %e, "could not record an adopted job");
        }
        tracing::info!(job = %entry.info().handle, "adopted");
        inner.tracker.spawn(
            Supervisor::new(SupervisorArgs {
                entry,
                started_at: Some(started_at),
                start_failed: None,
                link,
                cgroup,
                channels,
                timeout,
                default_grace: inner.config.default_grace,
                stdin_open,
                registry: Arc::clone(&inner.registry),
                leave: inner.leave.clone(),
            })
            .run(),
        );
    }

    /// Gives a job that ended while no crew ran (or was lost) its final
    /// state: from its exit record when there is one, and what its cgroup
    /// still says (OOM kills, totals), then removes the cgroup.
    async fn record_end(&self, mut info: JobInfo, rec: Option<&ExitRecord>, lost: Option<String>) {
        let inner = &self.inner;
        let cgroup = inner.tree.job_cgroup(&info.owner, info.id.as_str(), &info.limits);
        let handle = info.handle.clone();
        let (totals, problem) = tokio::task::spawn_blocking(move || settle_cgroup(&cgroup, &handle))
            .await
            .unwrap_or_else(|_| (Totals::default(), None));
        let started_at = match info.state {
            JobState::Running { started_at, .. } => Some(started_at),
            _ => rec.map(|_| info.created_at),
        };
        let outcome = match (rec, lost) {
            (Some(rec), _) => outcome_of(rec.status, None, totals.oom_kills),
            (None, Some(why)) => Outcome::Lost(match problem {
                Some(p) => format!("{why}; {p}"),
                None => why,
            }),
            (None, None) => Outcome::Lost("its shim is gone".into()),
        };
        let ended_at = rec.map_or_else(SystemTime::now, |r| {
            SystemTime::UNIX_EPOCH + Duration::from_nanos(r.ended_at_ns)
        });
        tracing::info!(job = %info.handle, %outcome, "ended while no crew ran");
        info.state = JobState::Ended(Ended {
            started_at,
            ended_at,
            outcome,
            totals,
            output_error: rec.and_then(|r| r.output_error.clone()),
        });
        let output = inner.registry.output_path(&info.id);
        let entry = JobEntry::recorded(info, output, inner.registry.events().clone());
        match inner.registry.restore(&entry) {
            // On record now: the shim's exit record has done its work.
            Ok(()) => inner.registry.forget_exit_record(&entry.id),
            Err(e) => tracing::error!(job = %entry.id, error = %e, "could not record a job's end"),
        }
    }

    /// Retention and the other upkeep, now and then every minute.
    fn start_upkeep(&self) {
        let weak = Arc::downgrade(&self.inner);
        let leave = self.inner.leave.clone();
        self.inner.tracker.spawn(async move {
            loop {
                let Some(inner) = weak.upgrade() else { return };
                let _ = tokio::task::spawn_blocking(move || upkeep(&inner)).await;
                tokio::select! {
                    () = leave.cancelled() => return,
                    () = tokio::time::sleep(UPKEEP_EVERY) => {}
                }
            }
        });
        // The ready shims, more often: one kept for a user must be renewed
        // before it is too old to use.
        let weak = Arc::downgrade(&self.inner);
        let leave = self.inner.leave.clone();
        self.inner.tracker.spawn(async move {
            loop {
                tokio::select! {
                    () = leave.cancelled() => return,
                    () = tokio::time::sleep(POOL_UPKEEP_EVERY) => {}
                }
                let Some(inner) = weak.upgrade() else { return };
                let handle = EngineHandle { inner };
                tokio::task::spawn_blocking(move || handle.tend_pool()).await.ok();
            }
        });
    }
}

/// One round of upkeep (blocking): records the ends the store refused
/// before, removes ended jobs past their retention, and the exit records
/// of jobs whose end is recorded.
fn upkeep(inner: &Inner) {
    inner.registry.retry_unsaved();
    let r = inner.config.retention;
    if let Some(audit) = &inner.audit
        && let Some(before) = SystemTime::now().checked_sub(r.max_age)
    {
        match audit.prune(before) {
            Ok(0) => {}
            Ok(n) => tracing::info!(removed = n, "audit records past the retention removed"),
            Err(e) => tracing::warn!(error = %e, "pruning the audit trail"),
        }
    }
    let store = inner.registry.store();
    let Ok((mut count, mut bytes)) = store.ended_totals() else {
        return;
    };
    let too_old = SystemTime::now().checked_sub(r.max_age);
    loop {
        let Ok(oldest) = store.ended_oldest_first(256) else {
            return;
        };
        if oldest.is_empty() {
            return;
        }
        let mut removed_any = false;
        for row in oldest {
            let expired = too_old.is_some_and(|t| row.ended < t);
            if !(expired || count > r.max_jobs || bytes > r.output_budget) {
                return;
            }
            for ext in ["out", "idx", "exit"] {
                let path = inner.jobs_dir.join(format!("{}.{ext}", row.id));
                if let Err(e) = std::fs::remove_file(&path)
                    && e.kind() != std::io::ErrorKind::NotFound
                {
                    tracing::warn!(error = %e, path = %path.display(), "removing an ended job's file");
                }
            }
            if let Err(e) = store.delete(&row.id) {
                tracing::warn!(error = %e, "removing an ended job's record");
                return;
            }
            count -= 1;
            bytes = bytes.saturating_sub(row.output_bytes);
            removed_any = true;
        }
        if !removed_any {
            return;
        }
    }
}

/// Removes what starts and shims cut short left in the jobs directory (before
/// the engine takes jobs, so no start of its own is under way): output files
/// of starts never recorded, sockets of shims that are gone, half-written
/// exit records. `keep`: the jobs that run on.
fn sweep_files(inner: &Inner, keep: &HashSet<String>) {
    let known = match inner.registry.store().all_ids() {
        Ok(ids) => ids,
        Err(e) => {
            tracing::warn!(error = %e, "not sweeping the jobs directory");
            return;
        }
    };
    let Ok(entries) = std::fs::read_dir(&inner.jobs_dir) else {
        return;
    };
    let mut removed = 0;
    for entry in entries.flatten() {
        let name = entry.file_name();
        let Some(name) = name.to_str() else { continue };
        let stale = if let Some(id) = name.strip_suffix(".out").or_else(|| name.strip_suffix(".idx")) {
            !known.contains(id)
        } else if let Some(id) = name.strip_suffix(".sock") {
            !keep.contains(id)
        } else {
            name.ends_with(".exit.tmp")
        };
        if stale && std::fs::remove_file(entry.path()).is_ok() {
            removed += 1;
        }
    }
    if removed > 0 {
        tracing::info!(removed, "removed files of starts and shims cut short");
    }
}

/// The ids of the jobs whose shims' sockets or exit records are in the jobs
/// directory.
fn leftover_ids(dir: &std::path::Path) -> Vec<JobId> {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return Vec::new();
    };
    entries
        .flatten()
        .filter_map(|e| {
            let name = e.file_name();
            let name = name.to_str()?;
            let id = name
                .strip_suffix(".sock")
                .or_else(|| name.strip_suffix(".exit"))?;
            JobId::parse(id)
        })
        .collect()
}

/// A job's record as its shim kept it, for a job the store does not know.
fn rebuilt(id: &JobId, record: &[u8]) -> Option<JobInfo> {
    match serde_json::from_slice::<JobInfo>(record) {
        Ok(info) if info.id == *id => Some(info),
        Ok(_) => None,
        Err(e) => {
            tracing::warn!(job = %id, error = %e, "a shim's record of its job does not read");
            None
        }
    }
}
