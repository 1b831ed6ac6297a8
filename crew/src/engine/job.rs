//! What a job is: its spec, its identity, and its state. The state is an enum
//! whose variants hold only what is valid then, so that "ended without an end
//! time" or "running without a pid" cannot be written down.

use std::fmt;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use super::spec::{Limits, Network, RunAs, WinSize};

/// A job's unique id: 128 random bits as 32 lowercase hex digits. Never reused,
/// never guessable; the short `job-N` handle is for people.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize, serde::Deserialize)]
#[serde(transparent)]
pub struct JobId(String);

impl JobId {
    pub(crate) fn random() -> Self {
        Self(tasker_common::random_hex(16))
    }

    /// Accepts exactly the form `random()` makes, so an id can always be used
    /// as a file name.
    pub fn parse(s: &str) -> Option<Self> {
        (s.len() == 32 && s.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f')))
            .then(|| Self(s.to_owned()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for JobId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// How the command itself ended, as `waitpid` reported it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum Termination {
    Exited(i32),
    Signaled(i32),
}

impl Termination {
    pub(crate) fn from_wait_status(status: i32) -> Self {
        if libc::WIFSIGNALED(status) {
            Self::Signaled(libc::WTERMSIG(status))
        } else {
            Self::Exited(libc::WEXITSTATUS(status))
        }
    }

    /// The shell convention: the code, or 128 + the signal.
    pub fn code(self) -> i32 {
        match self {
            Self::Exited(c) => c,
            Self::Signaled(s) => 128 + s,
        }
    }
}

impl fmt::Display for Termination {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {
            Self::Exited(c) => write!(f, "exit {c}"),
            Self::Signaled(s) => match nix::sys::signal::Signal::try_from(s) {
                Ok(sig) => write!(f, "signal {s} ({})", sig.as_str()),
                Err(_) => write!(f, "signal {s}"),
            },
        }
    }
}

/// Why a job ended.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum Outcome {
    /// The command ended on its own: an exit code, or a signal it did not get
    /// from a stop.
    Finished(Termination),
    /// The kernel's OOM killer acted in the job's cgroup and the command did
    /// not succeed.
    OomKilled(Termination),
    TimedOut(Termination),
    StoppedBy {
        who: String,
        termination: Termination,
    },
    /// The command never ran: no such program, bad cwd, ...
    StartFailed(String),
    /// The engine lost track of the job (its shim died).
    Lost(String),
}

impl Outcome {
    pub fn phase(&self) -> Phase {
        match self {
            Self::Finished(Termination::Exited(0)) => Phase::Completed,
            Self::TimedOut(_) | Self::StoppedBy { .. } => Phase::Stopped,
            _ => Phase::Failed,
        }
    }

    pub fn termination(&self) -> Option<Termination> {
        match self {
            Self::Finished(t) | Self::OomKilled(t) | Self::TimedOut(t) => Some(*t),
            Self::StoppedBy { termination, .. } => Some(*termination),
            Self::StartFailed(_) | Self::Lost(_) => None,
        }
    }
}

impl fmt::Display for Outcome {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Finished(t) => write!(f, "{t}"),
            // Words for people (the API's summary, the log); the reason's
            // machine name is the outcome's own field.
            Self::OomKilled(t) => write!(f, "oom-killed ({t})"),
            Self::TimedOut(t) => write!(f, "timed out ({t})"),
            Self::StoppedBy { who, termination } => write!(f, "stopped by {who} ({termination})"),
            Self::StartFailed(why) => write!(f, "no start: {why}"),
            Self::Lost(why) => write!(f, "lost: {why}"),
        }
    }
}

/// The coarse state people filter on.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Phase {
    Starting,
    Running,
    Completed,
    Failed,
    Stopped,
}

impl Phase {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Starting => "starting",
            Self::Running => "running",
            Self::Completed => "completed",
            Self::Failed => "failed",
            Self::Stopped => "stopped",
        }
    }
}

impl fmt::Display for Phase {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Resource totals of an ended job, where the kernel gives them.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Totals {
    pub peak_memory_bytes: Option<u64>,
    pub cpu_usec: Option<u64>,
    /// OOM kills the kernel counted in the job's cgroup.
    pub oom_kills: u64,
}

/// Live usage of a running job.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Usage {
    pub cpu_usec: u64,
    pub memory_bytes: u64,
}

#[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
pub enum JobState {
    Starting,
    Running {
        started_at: SystemTime,
        /// The command's pid as the host sees it.
        pid: u32,
    },
    Ended(Ended),
}

#[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Ended {
    /// `None` when the command never ran.
    pub started_at: Option<SystemTime>,
    pub ended_at: SystemTime,
    pub outcome: Outcome,
    pub totals: Totals,
    /// Set when some output could not be stored (disk full, ...).
    pub output_error: Option<String>,
}

impl JobState {
    pub fn phase(&self) -> Phase {
        match self {
            Self::Starting => Phase::Starting,
            Self::Running { .. } => Phase::Running,
            Self::Ended(e) => e.outcome.phase(),
        }
    }

    pub fn is_ended(&self) -> bool {
        matches!(self, Self::Ended(_))
    }
}

/// A snapshot of a job, as handed to callers.
#[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct JobInfo {
    pub id: JobId,
    /// `job-N`, numbered per crew, never given twice on it.
    pub handle: String,
    pub name: Option<String>,
    /// The batch it is one of.
    #[serde(default)]
    pub batch: Option<String>,
    pub owner: String,
    /// Shared: every copy of a job's record (watchers, list pages, the
    /// supervisor) holds the one argv.
    pub argv: Arc<[String]>,
    /// `argv` holds only the command's first words: a list page's record
    /// (the store cuts it there; see `Store::page`). Never stored.
    #[serde(skip)]
    pub argv_cut: bool,
    pub cwd: PathBuf,
    pub run_as: RunAs,
    pub limits: Limits,
    pub tty: Option<WinSize>,
    pub network: Network,
    pub timeout: Option<Duration>,
    pub created_at: SystemTime,
    pub state: JobState,
    pub archived: bool,
}

impl JobInfo {
    /// The first words of the argv, at most `max_bytes` of them (each
    /// word counted with one byte more, as the kernel counts it); `true`
    /// when that is not all of it. A word that does not fit whole is cut.
    pub fn argv_summary(&self, max_bytes: usize) -> (Vec<String>, bool) {
        let (words, cut) = self.argv_words(max_bytes);
        (words, cut || self.argv_cut)
    }

    fn argv_words(&self, max_bytes: usize) -> (Vec<String>, bool) {
        let mut left = max_bytes;
        let mut out = Vec::new();
        for word in self.argv.iter() {
            if word.len() < left {
                left -= word.len() + 1;
                out.push(word.clone());
                continue;
            }
            // Its byte after, as for the words before.
            let mut end = left.saturating_sub(1);
            while !word.is_char_boundary(end) {
                end -= 1;
            }
            if end > 0 {
                out.push(word[..end].to_owned());
            }
            return (out, true);
        }
        (out, false)
    }
}

/// What subscribers hear about.
#[derive(Clone, Debug)]
pub enum JobEvent {
    // Shared: a subscriber's copy of an event is one more reference.
    Created(Arc<JobInfo>),
    StateChanged(Arc<JobInfo>),
    Archived(Arc<JobInfo>),
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_are_random_hex_and_parse_back() {
        let a = JobId::random();
        let b = JobId::random();
        assert_ne!(a, b);
        assert_eq!(JobId::parse(a.as_str()), Some(a.clone()));
        assert_eq!(JobId::parse("../etc"), None);
        assert_eq!(JobId::parse(&a.as_str().to_uppercase()), None);
    }

    #[test]
    fn phases_follow_the_outcome() {
        let t = Termination::Exited(0);
        assert_eq!(Outcome::Finished(t).phase(), Phase::Completed);
        assert_eq!(Outcome::Finished(Termination::Exited(1)).phase(), Phase::Failed);
        assert_eq!(Outcome::Finished(Termination::Signaled(9)).phase(), Phase::Failed);
        assert_eq!(
            Outcome::OomKilled(Termination::Signaled(9)).phase(),
            Phase::Failed
        );
        assert_eq!(Outcome::TimedOut(t).phase(), Phase::Stopped);
        let stopped = Outcome::StoppedBy {
            who: "alice".into(),
            termination: Termination::Signaled(15),
        };
        assert_eq!(stopped.phase(), Phase::Stopped);
        assert_eq!(stopped.to_string(), "stopped by alice (signal 15 (SIGTERM))");
        assert_eq!(Outcome::StartFailed("x".into()).phase(), Phase::Failed);
    }

    #[test]
    fn termination_decodes_wait_status() {
        assert_eq!(Termination::from_wait_status(3 << 8), Termination::Exited(3));
        assert_eq!(Termination::from_wait_status(9), Termination::Signaled(9));
        assert_eq!(Termination::Signaled(9).code(), 137);
    }
}
