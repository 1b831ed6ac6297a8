//! The job table, and the shared part of one job that readers, the
//! supervisor task and the engine handle all hold.
//!
//! Locks here are `std::sync::Mutex`es held for a copy or an insert, never
//! across an `.await`.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use tokio::sync::{broadcast, mpsc, oneshot, watch};

use super::cgroup::JobCgroup;
use super::error::EngineError;
use super::job::{Ended, JobEvent, JobId, JobInfo, JobState};
use super::spec::WinSize;
use super::store::Store;
use tasker_common::{JobRef, lock};
use tasker_shim::output::KeptFrom;

/// Requests to a job's supervisor task.
#[derive(Debug)]
pub(crate) enum Control {
    Stop {
        grace: std::time::Duration,
        reason: StopReason,
    },
    Resize(WinSize),
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum StopReason {
    By(String),
    Timeout,
}

/// Stdin travels on its own channel so that a job that does not read cannot
/// hold up a stop.
#[derive(Debug)]
pub(crate) enum StdinOp {
    Data(bytes::Bytes, oneshot::Sender<Result<(), EngineError>>),
    Close(oneshot::Sender<Result<(), EngineError>>),
}

/// One job, shared.
#[derive(Debug)]
pub(crate) struct JobEntry {
    pub id: JobId,
    output_path: PathBuf,
    /// The oldest kept offset of the output, shared with the shim; mapped
    /// when the first reader needs it.
    kept: std::sync::OnceLock<Arc<KeptFrom>>,
    info: Mutex<JobInfo>,
    /// Bumped on new output and on every state change; followers wait on it.
    changes: watch::Sender<u64>,
    events: broadcast::Sender<JobEvent>,
    /// Present while the job runs: the ways to reach its supervisor and the
    /// cgroup for live usage. Dropped when it ends, so an ended job costs
    /// only its record.
    live: Mutex<Option<Live>>,
}

#[derive(Debug)]
struct Live {
    control: mpsc::Sender<Control>,
    stdin: mpsc::Sender<StdinOp>,
    cgroup: Arc<JobCgroup>,
}

/// The receiving ends the supervisor task takes.
#[derive(Debug)]
pub(crate) struct JobChannels {
    pub control: mpsc::Receiver<Control>,
    pub stdin: mpsc::Receiver<StdinOp>,
}

impl JobEntry {
    pub(crate) fn new(
        info: JobInfo,
        output_path: PathBuf,
        events: broadcast::Sender<JobEvent>,
        cgroup: Arc<JobCgroup>,
    ) -> (Arc<Self>, JobChannels) {
        let (control_tx, control_rx) = mpsc::channel(16);
        let (stdin_tx, stdin_rx) = mpsc::channel(4);
        let entry = Arc::new(Self {
            id: info.id.clone(),
            output_path,
            kept: std::sync::OnceLock::new(),
            info: Mutex::new(info),
            changes: watch::Sender::new(0),
            events,
            live: Mutex::new(Some(Live {
                control: control_tx,
                stdin: stdin_tx,
                cgroup,
            })),
        });
        let channels = JobChannels {
            control: control_rx,
            stdin: stdin_rx,
        };
        (entry, channels)
    }

    /// The entry of a job that is not running (for its readers): no
    /// supervisor, no cgroup.
    pub(crate) fn recorded(
        info: JobInfo,
        output_path: PathBuf,
        events: broadcast::Sender<JobEvent>,
    ) -> Arc<Self> {
        Arc::new(Self {
            id: info.id.clone(),
            output_path,
            kept: std::sync::OnceLock::new(),
            info: Mutex::new(info),
            changes: watch::Sender::new(0),
            events,
            live: Mutex::new(None),
        })
    }

    pub(crate) fn info(&self) -> JobInfo {
        lock(&self.info).clone()
    }

    pub(crate) fn output_path(&self) -> &Path {
        &self.output_path
    }

    pub(crate) fn kept(&self) -> std::io::Result<Arc<KeptFrom>> {
        if let Some(k) = self.kept.get() {
            return Ok(Arc::clone(k));
        }
        let file = std::fs::File::open(&self.output_path)?;

        let mapped = Arc::new(KeptFrom::map(&file, false)?);
        // A racing reader may have mapped it too; either mapping will do.
        Ok(Arc::clone(self.kept.get_or_init(|| mapped)))
    }

    pub(crate) fn ended_info(&self) -> Option<JobInfo> {
        let info = lock(&self.info);
        info.state.is_ended().then(|| info.clone())
    }

    pub(crate) fn subscribe_changes(&self) -> watch::Receiver<u64> {
        self.changes.subscribe()
    }

    /// Wakes followers: new output is on disk.
    pub(crate) fn output_grew(&self) {
        self.changes.send_modify(|n| *n = n.wrapping_add(1));
    }

    /// Records a new state, tells subscribers and wakes followers.
    pub(crate) fn set_state(&self, state: JobState) {
        let snapshot = {
            let mut info = lock(&self.info);
            info.state = state;
            info.clone()
        };
        if snapshot.state.is_ended() {
            *lock(&self.live) = None;
        }
        // No subscriber is not an error.
        let _ = self.events.send(JobEvent::StateChanged(Arc::new(snapshot)));
        self.output_grew();
    }

    pub(crate) fn set_archived(&self, archived: bool) {
        lock(&self.info).archived = archived;
    }

    pub(crate) fn cgroup(&self) -> Option<Arc<JobCgroup>> {
        lock(&self.live).as_ref().map(|l| Arc::clone(&l.cgroup))
    }

    /// The supervisor's control channel; `None` once the job ended.
    pub(crate) fn control(&self) -> Option<mpsc::Sender<Control>> {
        lock(&self.live).as_ref().map(|l| l.control.clone())
    }

    /// The supervisor's stdin channel; `None` once the job ended.
    pub(crate) fn stdin(&self) -> Option<mpsc::Sender<StdinOp>> {
        lock(&self.live).as_ref().map(|l| l.stdin.clone())
    }
}

/// Every job of this crew: the running ones in memory ([`JobEntry`]s, with
/// their supervisors' channels), all of them in the store. What is asked of
/// a job that has ended is read from the store, so memory does not grow
/// with the number of ended jobs.
#[derive(Debug)]
pub(crate) struct Registry {
    store: Store,
    live: Mutex<HashMap<JobId, Arc<JobEntry>>>,
    /// Jobs whose shims run on but this crew could not adopt, with why
    /// (a shim of another protocol version).
    unadopted: Mutex<HashMap<JobId, String>>,
    events: broadcast::Sender<JobEvent>,
    jobs_dir: PathBuf,
    next_number: Mutex<u64>,
}

impl Registry {
    pub(crate) fn new(
        store: Store,
        events: broadcast::Sender<JobEvent>,
        jobs_dir: PathBuf,
    ) -> Result<Self, EngineError> {
        let next = store.next_number()?;
        Ok(Self {
            store,
            live: Mutex::new(HashMap::new()),
            unadopted: Mutex::new(HashMap::new()),
            events,
            jobs_dir,
            next_number: Mutex::new(next),
        })
    }

    pub(crate) fn store(&self) -> &Store {
        &self.store
    }

    /// The next `job-N` number: never one given before on this crew.
    pub(crate) fn allocate_number(&self) -> u64 {
        let mut next = lock(&self.next_number);
        let n = *next;
        *next += 1;
        n
    }

    /// A number found on a job (one adopted, or rebuilt from its files)
    /// is never given again.
    pub(crate) fn note_number(&self, n: u64) {
        let mut next = lock(&self.next_number);
        *next = (*next).max(n + 1);
    }

    pub(crate) fn output_path(&self, id: &JobId) -> PathBuf {
        self.jobs_dir.join(format!("{id}.out"))
    }

    pub(crate) fn events(&self) -> &broadcast::Sender<JobEvent> {
        &self.events
    }

    /// A new job, already in the store, is running: it is kept in memory
    /// while it runs, and watchers hear of it.
    pub(crate) fn publish(&self, entry: &Arc<JobEntry>) {
        lock(&self.live).insert(entry.id.clone(), Arc::clone(entry));
        let _ = self.events.send(JobEvent::Created(Arc::new(entry.info())));
    }

    /// Records a running job's new state (best effort: what matters on disk
    /// is that the job exists, which it does, and how it ends).
    pub(crate) fn save(&self, entry: &JobEntry) {
        if let Err(e) = self.store.update(&entry.info(), None) {
            tracing::warn!(job = %entry.id, error = %e, "could not record the job's state");
        }
    }

    /// Records a job found again (adopted, or rebuilt), without telling
    /// watchers of a new job.
    pub(crate) fn restore(&self, entry: &Arc<JobEntry>) -> Result<(), EngineError> {
        let info = entry.info();
        if let Some(n) = super::store::number_of(&info.handle) {
            self.note_number(n);
        }
        self.store.insert(&info)?;
        if !info.state.is_ended() {
            lock(&self.live).insert(entry.id.clone(), Arc::clone(entry));
        }
        Ok(())
    }

    /// A job has ended: its final state goes to its followers and watchers,
    /// then to the store, and the job leaves memory. If the store cannot
    /// take it now, it stays in memory until [`retry_unsaved`] can. Says
    /// whether the end is on record.
    ///
    /// [`retry_unsaved`]: Self::retry_unsaved
    pub(crate) fn ended(&self, entry: &JobEntry, ended: Ended) -> bool {
        entry.set_state(JobState::Ended(ended));
        let info = entry.info();
        match self
            .store
            .update(&info, Some(stored_bytes(&self.output_path(&info.id))))
        {
            Ok(()) => {
                lock(&self.live).remove(&info.id);
                self.forget_exit_record(&info.id);
                true
            }
            Err(e) => {
                tracing::error!(job = %info.handle, error = %e, "could not record the job's end; will retry");
                false
            }
        }
    }

    /// Records the ends the store could not take when they happened.
    pub(crate) fn retry_unsaved(&self) {
        let unsaved: Vec<Arc<JobEntry>> = lock(&self.live)
            .values()
            .filter(|e| e.ended_info().is_some())
            .cloned()
            .collect();
        for entry in unsaved {
            let info = entry.info();
            if self
                .store
                .update(&info, Some(stored_bytes(&self.output_path(&info.id))))
                .is_ok()
            {
                lock(&self.live).remove(&info.id);
                self.forget_exit_record(&info.id);
            }
        }
    }

    /// Removes a job's exit record once its end is in the store: it is
    /// only for a crew that was not there when the job ended.
    pub(crate) fn forget_exit_record(&self, id: &JobId) {
        let _ = std::fs::remove_file(self.jobs_dir.join(format!("{id}.exit")));
    }

    pub(crate) fn mark_unadopted(&self, id: &JobId, why: String) {
        lock(&self.unadopted).insert(id.clone(), why);
    }

    pub(crate) fn unadopted(&self, id: &JobId) -> Option<String> {
        lock(&self.unadopted).get(id).cloned()
    }

    pub(crate) fn unadopted_ids(&self) -> Vec<JobId> {
        lock(&self.unadopted).keys().cloned().collect()
    }

    /// The running job's entry.
    pub(crate) fn live(&self, id: &JobId) -> Option<Arc<JobEntry>> {
        lock(&self.live).get(id).cloned()
    }

    /// Every job in memory (running, or ended and not yet recorded).
    pub(crate) fn running(&self) -> Vec<Arc<JobEntry>> {
        lock(&self.live).values().cloned().collect()
    }

    /// A job's entry: the running one, or one made for an ended job (for
    /// its readers).
    pub(crate) fn entry(&self, id: &JobId) -> Result<Arc<JobEntry>, EngineError> {
        if let Some(e) = self.live(id) {
            return Ok(e);
        }
        let info = self
            .store
            .get(id)?
            .ok_or_else(|| EngineError::NotFound(id.to_string()))?;
        let path = self.output_path(id);
        Ok(JobEntry::recorded(info, path, self.events.clone()))
    }

    pub(crate) fn get(&self, id: &JobId) -> Option<JobInfo> {
        if let Some(e) = self.live(id) {
            return Some(e.info());
        }
        match self.store.get(id) {
            Ok(info) => info,
            Err(e) => {
                tracing::error!(error = %e, "reading a job from the store");
                None
            }
        }
    }

    /// Jobs a reference matches (up to [`FIND_LIMIT`](super::store::FIND_LIMIT)).
    pub(crate) fn find(&self, reference: &JobRef<'_>) -> Result<Vec<JobInfo>, EngineError> {
        Ok(self.overlay(self.store.find(reference)?))
    }

    /// Up to `limit` jobs numbered above `after`, in number order.
    pub(crate) fn page(
        &self,
        include_archived: bool,
        after: u64,
        limit: usize,
    ) -> Result<Vec<JobInfo>, EngineError> {
        Ok(self.overlay(self.store.page(include_archived, after, limit)?))
    }

    /// The store's records, with the running jobs' state as memory has it.
    fn overlay(&self, mut jobs: Vec<JobInfo>) -> Vec<JobInfo> {
        let live = lock(&self.live);
        for job in &mut jobs {
            if let Some(e) = live.get(&job.id) {
                *job = e.info();
            }
        }
        jobs
    }

    /// Hides an ended job from the default list and from watchers.
    pub(crate) fn archive(&self, id: &JobId) -> Result<JobInfo, EngineError> {
        let mut info = self
            .get(id)
            .ok_or_else(|| EngineError::NotFound(id.to_string()))?;
        if !info.state.is_ended() {
            return Err(EngineError::WrongState {
                job: info.handle.clone(),
                state: info.state.phase().as_str(),
                what: "only an ended job can be archived",
            });
        }
        if info.archived {
            return Ok(info);
        }
        info.archived = true;
        self.store.update(&info, None)?;
        if let Some(e) = self.live(id) {
            e.set_archived(true);
        }
        let _ = self.events.send(JobEvent::Archived(Arc::new(info.clone())));
        Ok(info)
    }

    /// Lists an archived job again, unless another job took its name
    /// meanwhile. Watchers hear of it as created: to them it is a job that
    /// enters the list. A job not archived is returned as it is.
    pub(crate) fn unarchive(&self, id: &JobId) -> Result<JobInfo, EngineError> {
        let mut info = self
            .get(id)
            .ok_or_else(|| EngineError::NotFound(id.to_string()))?;
        if !info.archived {
            return Ok(info);
        }
        info.archived = false;
        self.store.unarchive(&info)?;
        if let Some(e) = self.live(id) {
            e.set_archived(false);
        }
        let _ = self.events.send(JobEvent::Created(Arc::new(info.clone())));
        Ok(info)
    }
}

/// The bytes a job's output takes on disk (holes punched out do not count).
fn stored_bytes(path: &Path) -> u64 {
    use std::os::unix::fs::MetadataExt as _;
    std::fs::metadata(path).map_or(0, |m| m.blocks() * 512)
}
