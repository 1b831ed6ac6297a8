//! Engine errors. Every I/O error carries the path and the operation that
//! failed, so that a message in a log or a status line can be acted on
//! without reading the code.

use std::io;
use std::path::{Path, PathBuf};

/// What went wrong in the engine. The API edge maps these to gRPC codes in
/// exactly one place; the `Display` text is written for the person who made
/// the request.
#[derive(Debug, thiserror::Error)]
pub enum EngineError {
    // Bad requests: the caller can fix them.
    #[error("invalid job spec: {0}")]
    InvalidSpec(String),
    /// What the caller named the job (an id, a `job-N` handle, a name).
    #[error("no such job: {0}")]
    NotFound(String),
    /// What was typed cannot name a job (see `tasker_common::JobRef`).
    #[error("{0}")]
    BadRef(String),
    /// A reference that matches more than one job: the caller says which.
    #[error("{reference:?} could be any of {}: give more of the id, or the handle", matches.join(", "))]
    Ambiguous { reference: String, matches: Vec<String> },
    /// A cap of the crew's quotas would be passed.
    #[error("{0}")]
    Quota(String),
    /// A request past what exists (an output offset past its end).
    #[error("{0}")]
    OutOfRange(String),
    /// Another job that is not archived has this name.
    #[error(
        "the name {name:?} is taken by {holder}, which is not archived: choose another, or archive {holder} first"
    )]
    NameTaken { name: String, holder: String },
    #[error("job {job} is {state}: {what}")]
    WrongState {
        job: String,
        state: &'static str,
        what: &'static str,
    },
    #[error("job {0} has no stdin open (it was closed, or the job ended)")]
    StdinClosed(String),
    #[error("job {0} is not a tty job")]
    NotTty(String),
    #[error("{0}")]
    Unsupported(String),

    // The host: the operator can fix them.
    #[error("{op} {path}: {source}")]
    Io {
        op: &'static str,
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("cgroups: {0}")]
    Cgroup(String),
    #[error("shim: {0}")]
    Shim(String),
    /// A ready shim could not take its job (its init was gone); nothing of
    /// the job ran.
    #[error("shim: a ready shim could not take the job: {0}")]
    ShimStale(String),
    #[error("the engine is shutting down")]
    ShuttingDown,
    /// The state directory's filesystem has no room (bytes or inodes) for
    /// a new job's files or record. Running jobs are not affected.
    #[error("the crew's state directory is full: no room for a new job (its running jobs go on)")]
    StateFull,
    #[error("job store: {0}")]
    Store(String),
    /// What this crew needs (its name, its state directory) belongs to a
    /// crew that runs.
    #[error("{0}")]
    Taken(String),
}

impl EngineError {
    /// An I/O error in the state directory: a full filesystem (bytes,
    /// inodes or quota) is [`EngineError::StateFull`].
    pub(crate) fn state_io(op: &'static str, path: impl Into<PathBuf>, source: io::Error) -> Self {
        if matches!(source.raw_os_error(), Some(libc::ENOSPC | libc::EDQUOT)) {
            return Self::StateFull;
        }
        Self::io(op, path, source)
    }

    pub(crate) fn io(op: &'static str, path: impl Into<PathBuf>, source: io::Error) -> Self {
        Self::Io {
            op,
            path: path.into(),
            source,
        }
    }
}

/// Adds the path and operation to an `io::Result` in one word at the call
/// site: `fs::read(&p).ctx("read", &p)?`.
pub(crate) trait IoContext<T> {
    fn ctx(self, op: &'static str, path: &Path) -> Result<T, EngineError>;
}

impl<T> IoContext<T> for io::Result<T> {
    fn ctx(self, op: &'static str, path: &Path) -> Result<T, EngineError> {
        self.map_err(|e| EngineError::io(op, path, e))
    }
}

impl<T> IoContext<T> for nix::Result<T> {
    fn ctx(self, op: &'static str, path: &Path) -> Result<T, EngineError> {
        self.map_err(|e| EngineError::io(op, path, io::Error::from(e)))
    }
}
