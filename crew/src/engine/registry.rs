//! The job table, and the shared part of one job that readers, the
//! supervisor task and the engine handle all hold.
//!
//! Locks here are `std::sync::Mutex`es held for a copy or an insert, never
//! across an `.await`.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard};

use tokio::sync::{broadcast, mpsc, oneshot, watch};

use super::cgroup::JobCgroup;
use super::error::EngineError;
use super::job::{JobEvent, JobId, JobInfo, JobState};
use super::spec::WinSize;
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

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    // A panic while holding one of these locks cannot leave the data
    // half-written (every critical section is a copy or an assignment).
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
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
        let _ = self.events.send(JobEvent::StateChanged(Box::new(snapshot)));
        self.output_grew();
    }

    pub(crate) fn archive(&self) -> Result<JobInfo, EngineError> {
        let snapshot = {
            let mut info = lock(&self.info);
            if !info.state.is_ended() {
                return Err(EngineError::WrongState {
                    job: info.handle.clone(),
                    state: info.state.phase().as_str(),
                    what: "only an ended job can be archived",
                });
            }
            if info.archived {
                return Ok(info.clone());
            }
            info.archived = true;
            info.clone()
        };
        let _ = self.events.send(JobEvent::Archived(Box::new(snapshot.clone())));
        Ok(snapshot)
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

/// All jobs of this crew run, in creation order.
#[derive(Debug, Default)]
pub(crate) struct Registry {
    jobs: HashMap<JobId, Arc<JobEntry>>,
    order: Vec<JobId>,
    next_number: u64,
}

impl Registry {
    /// The next `job-N` number, starting at 1.
    pub(crate) fn allocate_number(&mut self) -> u64 {
        self.next_number += 1;
        self.next_number
    }

    pub(crate) fn insert(&mut self, entry: Arc<JobEntry>) {
        self.order.push(entry.id.clone());
        self.jobs.insert(entry.id.clone(), entry);
    }

    pub(crate) fn get(&self, id: &JobId) -> Option<Arc<JobEntry>> {
        self.jobs.get(id).cloned()
    }

    pub(crate) fn all(&self) -> impl Iterator<Item = &Arc<JobEntry>> {
        self.order.iter().filter_map(|id| self.jobs.get(id))
    }

    /// Jobs a reference names: exactly (id, handle or name), else by a
    /// prefix of the id of at least 4 characters.
    pub(crate) fn find(&self, reference: &str) -> Vec<Arc<JobEntry>> {
        let exact: Vec<_> = self
            .all()
            .filter(|e| lock(&e.info).matches_exactly(reference))
            .cloned()
            .collect();
        if !exact.is_empty() || reference.len() < 4 {
            return exact;
        }
        self.all()
            .filter(|e| e.id.as_str().starts_with(reference))
            .cloned()
            .collect()
    }
}

pub(crate) fn locked(registry: &Mutex<Registry>) -> MutexGuard<'_, Registry> {
    lock(registry)
}
