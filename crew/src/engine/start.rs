//! A job's start: from a spec to a running job (or one that failed to
//! start), through one of the ready shims the engine keeps.

use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant, SystemTime};

use tasker_shim::output::{create_output, drop_unit};
use tasker_shim::wire::{Launch, MAX_RECORD, Serve};

use super::cgroup::{CgroupTree, JobCgroup};
use super::error::EngineError;
use super::failpoint;
use super::job::{JobId, JobInfo, JobState};
use super::pool::{FORK_BURST, FORK_CROWD, FORK_WATCH, JOIN_PATIENCE, SLOW_JOIN, Want};
use super::registry::JobEntry;
use super::spawn::{Assignment, ExecResult, IdleShim, ShimLink, Slot, assign, spawn_idle};
use super::spec::{JobSpec, Network, WinSize};
use super::supervisor::{Supervisor, SupervisorArgs};
use super::{EngineConfig, EngineHandle};
use tasker_common::lock;

impl EngineHandle {
    /// Starts a job. Returns once the command is running (its `execve`
    /// succeeded) or has failed to start; the latter is a job too, ended with
    /// [`Outcome::StartFailed`]. A start that fails before the job exists
    /// leaves nothing behind (see [`Unmade`]).
    pub async fn start(&self, mut spec: JobSpec) -> Result<JobInfo, EngineError> {
        let inner = &self.inner;
        if inner.shutting_down.load(Ordering::SeqCst) {
            return Err(EngineError::ShuttingDown);
        }
        spec.limits = spec.limits.or(&inner.config.default_limits);
        spec.validate(inner.online_cpus)?;
        // Refused before anything is made; `insert_new` checks again, as
        // one step with the insert, for a start racing this one.
        if let Some(name) = &spec.name
            && let Some(holder) = inner.registry.store().name_holder(name)?
        {
            return Err(EngineError::NameTaken {
                name: name.clone(),
                holder,
            });
        }
        let env = spec.environment();
        let cwd = spec.working_dir();

        let _counted = self.count_start(&spec.owner)?;
        lock(&inner.pool).note_user(&spec.owner, Instant::now());

        // A ready shim first: on a hybrid host its init already sits in the
        // v1 cgroups made for the job it gets, under that job's id.
        // Topped up by `start` once the job runs: starting a shim now would
        // compete with this job's start for the cpu.
        let mut made = Unmade::new(self, self.take_ready(&spec.owner));
        let init_in = made.idle.as_ref().map(IdleShim::init_in).unwrap_or_default();
        let number = inner.registry.allocate_number();
        let id = made
            .idle
            .as_ref()
            .and_then(IdleShim::slot_id)
            .cloned()
            .unwrap_or_else(JobId::random);
        let handle = format!("job-{number}");
        // One file per job, its own header included: on some filesystems a
        // file creation costs more than the rest of the start together.
        let output_path = inner.registry.output_path(&id);
        let output =
            create_output(&output_path).map_err(|e| EngineError::state_io("create", &output_path, e))?;
        made.output = Some(output_path.clone());
        failpoint::here("start:output");
        let cgroup = Arc::new(
            inner
                .tree
                .create_job(&spec.owner, id.as_str(), &spec.limits, &init_in)?,
        );
        made.cgroup = Some(Arc::clone(&cgroup));
        failpoint::here("start:cgroup");

        let info = JobInfo {
            id: id.clone(),
            handle: handle.clone(),
            name: spec.name.clone(),
            batch: spec.batch.clone(),
            owner: spec.owner.clone(),
            argv: spec.argv.clone().into(),
            argv_cut: false,
            cwd: cwd.clone(),
            run_as: spec.run_as.clone(),
            limits: spec.limits.clone(),
            tty: spec.tty,
            network: spec.network,
            timeout: spec.timeout,
            created_at: SystemTime::now(),
            state: JobState::Starting,
            archived: false,
        };
        // On disk before anything of the job runs: a crew that dies from
        // here on finds the job again (or its end) when it comes back.
        inner.registry.store().insert_new(&info)?;
        made.recorded = Some(id.clone());
        failpoint::here("start:recorded");

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
            job_id: id.as_str().as_bytes().to_vec(),
            title: format!("{handle} {id}").into_bytes(),
            record: record_for_shim(&info),
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
        failpoint::here("start:served");
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
        let (entry, channels) = JobEntry::new(
            info,
            output_path,
            inner.registry.events().clone(),
            Arc::clone(&cgroup),
        );
        let mut changes = entry.subscribe_changes();
        inner.registry.publish(&entry);
        if let Some(started_at) = started_at {
            let pid = cgroup.first_pid().unwrap_or(0);
            entry.set_state(JobState::Running { started_at, pid });
        }
        let supervisor = Supervisor::new(SupervisorArgs {
            entry: Arc::clone(&entry),
            started_at,
            start_failed,
            link,
            cgroup,
            channels,
            timeout: spec.timeout,
            default_grace: inner.config.default_grace,
            stdin_open: true,
            registry: Arc::clone(&inner.registry),
            leave: inner.leave.clone(),
        });
        let (registry, running) = (Arc::clone(&inner.registry), Arc::clone(&entry));
        inner.tracker.spawn(async move {
            // The running state is recorded off the start's path (the
            // store's write is a tenth of a start): a crew that dies before
            // it finds the job as starting, adopts it, and takes its
            // creation time, a millisecond earlier, as its start.
            if started_at.is_some() {
                registry.save(&running);
            }
            supervisor.run().await;
        });
        let info = loop {
            let info = entry.info();
            if info.state != JobState::Starting || changes.changed().await.is_err() {
                break info;
            }
        };
        self.refill_pool();
        failpoint::here("start:running");
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
        cgroup: &JobCgroup,
    ) -> Result<(ShimLink, ExecResult), EngineError> {
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
            jobs_dir: self.inner.jobs_dir_fd.as_fd(),
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

    /// Counts a start against the caps on running jobs (the owner's and
    /// the crew's), with the starts under way; the count goes when the
    /// returned guard drops, by when a job that started runs (and counts
    /// as running).
    fn count_start(&self, owner: &str) -> Result<StartCount, EngineError> {
        let quotas = &self.inner.config.quotas;
        let caps = quotas.of(owner);
        let mut starting = lock(&self.inner.starting);
        let running = self.running_jobs();
        let mine = running.iter().filter(|j| j.owner == owner).count() as u64
            + starting.get(owner).copied().unwrap_or(0);
        let all = running.len() as u64 + starting.values().sum::<u64>();
        if let Some(cap) = caps.jobs
            && mine >= cap
        {
            return Err(EngineError::Quota(format!(
                "{owner} runs {} already, the most this crew allows one user: \
                 stop one, or ask its operator for more",
                jobs(mine)
            )));
        }
        if let Some(cap) = quotas.crew.jobs
            && all >= cap
        {
            return Err(EngineError::Quota(format!(
                "this crew runs {} already, the most it allows: try again when one ends",
                jobs(all)
            )));
        }
        *starting.entry(owner.to_owned()).or_default() += 1;
        Ok(StartCount {
            engine: self.clone(),
            owner: owner.to_owned(),
        })
    }

    /// A ready shim, if one is fresh enough (see `pool::ready_max_age`).
    /// On a hybrid host one whose cgroups were made under `owner` first:
    /// its init forks the command, and a fork counts against the caps of
    /// the cgroups init is in (so another user's will not do at all).
    fn take_ready(&self, owner: &str) -> Option<IdleShim> {
        let (taken, stale) = lock(&self.inner.pool).take(owner, self.inner.ready_max_age);
        self.dismiss(stale);
        taken
    }

    fn dismiss(&self, shims: Vec<IdleShim>) {
        shims.into_iter().for_each(IdleShim::dismiss);
    }

    async fn spawn_fresh(&self) -> Result<IdleShim, EngineError> {
        let inner = Arc::clone(&self.inner);
        // No slot: joining v1 cgroups ahead would be on the clock here.
        tokio::task::spawn_blocking(move || {
            spawn_idle(
                &inner.config.shim_path,
                &inner.tree.shims_dir(),
                None,
                shim_claims(&inner.config),
            )
        })
        .await
        .map_err(|e| EngineError::Shim(format!("shim start task: {e}")))?
    }

    /// Lets go of the ready shims no longer wanted (too old, or kept for
    /// a user who went quiet), and tops the pool up: the pool's upkeep.
    pub(super) fn tend_pool(&self) {
        let gone = lock(&self.inner.pool).expire(self.inner.ready_max_age, Instant::now());
        self.dismiss(gone);
        self.refill_pool();
    }

    /// Whether the crew's jobs fork hard now: the very load under which a
    /// cgroup migration (a ready shim joining its cgroups) stalls every
    /// fork and every cgroup change on the host for seconds, stops of
    /// jobs included (see `pool.rs`). So it is when some job, or some
    /// user's jobs together, are at three quarters of their task cap or
    /// more, and [`FORK_CROWD`] tasks at least (forking against the wall,
    /// as a fork bomb does), or when the
    /// crew's tasks rise by more than [`FORK_BURST`] while it watches for
    /// up to [`FORK_WATCH`]: a job just started may be a fork bomb still
    /// growing. The watch ends early when the tasks fall (a job ended), and
    /// is skipped while no job runs.
    fn forking_hard(&self, stopping: impl Fn() -> bool) -> bool {
        let inner = &self.inner;
        let running = self.running_jobs();
        if running.is_empty() {
            return false;
        }
        let near = |tasks: Option<u64>, cap: Option<u64>| {
            let (Some(t), Some(c)) = (tasks, cap) else {
                return false;
            };
            t >= FORK_CROWD && t.saturating_mul(4) >= c.saturating_mul(3)
        };
        let mut owners: Vec<&str> = running.iter().map(|j| j.owner.as_str()).collect();
        owners.sort_unstable();
        owners.dedup();
        let owners: Vec<(&str, Option<u64>)> = owners
            .into_iter()
            .map(|o| (o, inner.tree.owner_tasks(o)))
            .collect();
        let user_at_cap = owners
            .iter()
            .any(|(owner, tasks)| near(*tasks, inner.config.quotas.of(owner).pids));
        // A job with FORK_CROWD tasks is in an owner's cgroup with as many:
        // only the jobs of such owners are read.
        let crowded: Vec<&str> = owners
            .iter()
            .filter(|(_, tasks)| tasks.is_some_and(|t| t >= FORK_CROWD))
            .map(|(owner, _)| *owner)
            .collect();
        let job_at_cap = running
            .iter()
            .filter(|j| crowded.contains(&j.owner.as_str()))
            .any(|j| {
                let cap = j.limits.pids.unwrap_or(inner.config.default_pids);
                near(
                    inner.tree.job_cgroup(&j.owner, j.id.as_str(), &j.limits).tasks(),
                    Some(cap),
                )
            });
        if job_at_cap || user_at_cap {
            return true;
        }
        let Some(before) = inner.tree.tasks() else {
            return false;
        };
        let began = Instant::now();
        while began.elapsed() < FORK_WATCH && !stopping() {
            std::thread::sleep(FORK_WATCH / 10);
            match inner.tree.tasks() {
                Some(now) if now > before + FORK_BURST => return true,
                Some(now) if now >= before => {}
                _ => return false,
            }
        }
        false
    }

    /// Tops the pool of ready shims up, in the background, one at a time
    /// (see `pool.rs`).
    pub(super) fn refill_pool(&self) {
        let inner = &self.inner;
        if inner.config.shim_pool == 0 || inner.refilling.swap(true, Ordering::SeqCst) {
            return;
        }
        let weak = Arc::downgrade(inner);
        inner.tracker.spawn_blocking(move || {
            loop {
                let Some(inner) = weak.upgrade() else { return };
                let stopping = || inner.shutting_down.load(Ordering::SeqCst);
                let wanted = || {
                    let slots = inner.tree.uses_slots();
                    lock(&inner.pool).wanted(slots, inner.config.shim_pool, Instant::now())
                };
                while !stopping()
                    && let Some(want) = wanted()
                {
                    if (EngineHandle { inner: Arc::clone(&inner) }).forking_hard(stopping) {
                        tracing::info!("the crew's jobs fork hard: no ready shim made for a while");
                        lock(&inner.pool).made(None, None, Instant::now());
                        break;
                    }
                    let slot = match want {
                        Want::Anyone => None,
                        Want::For(owner) => new_slot(&inner.tree, owner),
                    };
                    let shim = match spawn_idle(
                        &inner.config.shim_path,
                        &inner.tree.shims_dir(),
                        slot,
                        shim_claims(&inner.config),
                    ) {
                        Ok(shim) => shim,
                        Err(e) => {
                            tracing::warn!(error = %e, "could not start a ready shim");
                            break;
                        }
                    };
                    let began = Instant::now();
                    let joined = shim.wait_joined(JOIN_PATIENCE, stopping);
                    let took = began.elapsed();
                    if took >= SLOW_JOIN {
                        tracing::info!(
                            took = ?took,
                            joined,
                            "a ready shim's init was slow to join its cgroups (the host is under fork load): \
                             no more for a while"
                        );
                    }
                    if joined {
                        lock(&inner.pool).made(Some(shim), Some(took), Instant::now());
                    } else {
                        if !stopping() {
                            tracing::warn!(took = ?took, "a ready shim's init did not join its cgroups; letting it go");
                        }
                        shim.dismiss();
                        lock(&inner.pool).made(None, None, Instant::now());
                        break;
                    }
                }
                inner.refilling.store(false, Ordering::SeqCst);
                // A take between the last check and the reset found the
                // flag set and left the work to us.
                if stopping() || wanted().is_none() || inner.refilling.swap(true, Ordering::SeqCst) {
                    return;
                }
            }
        });
    }
}

/// The environment a shim is started with, beyond what the crew's contract
/// gives it: for tests, the protocol version it claims.
fn shim_claims(config: &EngineConfig) -> Option<u32> {
    config.test_protocols.and_then(|p| p.shims_claim)
}

/// The job's record as its shim keeps it (see `Serve::record`): at most
/// `MAX_RECORD` bytes, so a huge argv is shortened (marked as such).
pub(super) fn record_for_shim(info: &JobInfo) -> Vec<u8> {
    let full = serde_json::to_vec(info).unwrap_or_default();
    if full.len() <= MAX_RECORD {
        return full;
    }
    let mut short = info.clone();
    let (mut kept, _) = info.argv_summary(MAX_RECORD / 2);
    let dropped = info.argv.len().saturating_sub(kept.len());
    kept.push(format!("[{dropped} more arguments not kept]"));
    short.argv = kept.into();
    serde_json::to_vec(&short).unwrap_or_default()
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
    cgroup: Option<Arc<JobCgroup>>,
    /// The job's record in the store.
    recorded: Option<JobId>,
}

impl<'a> Unmade<'a> {
    fn new(engine: &'a EngineHandle, idle: Option<IdleShim>) -> Self {
        Self {
            engine,
            idle,
            output: None,
            cgroup: None,
            recorded: None,
        }
    }

    fn disarm(mut self) {
        self.idle = None;
        self.output = None;
        self.cgroup = None;
        self.recorded = None;
    }
}

impl Drop for Unmade<'_> {
    fn drop(&mut self) {
        let tracker = &self.engine.inner.tracker;
        if let Some(idle) = self.idle.take() {
            tracker.spawn_blocking(move || idle.dismiss());
        }
        if let Some(id) = self.recorded.take()
            && let Err(e) = self.engine.inner.registry.store().delete(&id)
        {
            tracing::warn!(error = %e, "could not remove the record of a failed start");
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

/// A start counted against the caps on running jobs; uncounted on drop.
struct StartCount {
    engine: EngineHandle,
    owner: String,
}

impl Drop for StartCount {
    fn drop(&mut self) {
        let mut starting = lock(&self.engine.inner.starting);
        if let Some(n) = starting.get_mut(&self.owner) {
            *n -= 1;
            if *n == 0 {
                starting.remove(&self.owner);
            }
        }
    }
}

/// A job id and its v1 cgroups for a ready shim of `owner`'s, on hybrid
/// hosts; none if the directories cannot be made (the job's command then
/// joins its cgroups itself, as without a ready shim).
fn new_slot(tree: &CgroupTree, owner: String) -> Option<Slot> {
    let id = JobId::random();
    match tree.create_slot(&owner, id.as_str()) {
        Ok(dirs) if dirs.is_empty() => None,
        Ok(dirs) => Some(Slot { id, dirs, owner }),
        Err(e) => {
            tracing::warn!(error = %e, "could not make a ready shim's cgroups");
            None
        }
    }
}

/// "1 job", "2 jobs".
fn jobs(n: u64) -> String {
    if n == 1 {
        "1 job".into()
    } else {
        format!("{n} jobs")
    }
}
