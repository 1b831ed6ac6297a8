//! What happens to the dashboard (`Action`, fed to `update`) and what the
//! dashboard asks the world to do (`Effect`, carried out by the runtime).
//! `update` never does I/O: it turns actions into state and effects.

use std::time::{Duration, SystemTime};

use bytes::Bytes;
use crossterm::event::{KeyEvent, MouseEvent};
use tasker_proto::v1 as pb;

/// Index of a crew in `App::crews` (config order).
pub type CrewIx = usize;

/// One attach, from open to close; events of an older session are ignored.
pub type SessionId = u64;

#[derive(Debug)]
pub enum Action {
    Key(KeyEvent),
    Mouse(MouseEvent),
    Paste(String),
    /// The whole terminal's new size (cols, rows).
    Resize(u16, u16),
    /// Once a second: ages and "since" times move on.
    Tick(SystemTime),
    Crew(CrewIx, CrewEvent),
    Attach(SessionId, AttachEvent),
    /// The answer to an effect (stop, archive): a line for the status bar.
    Done(Notice),
    /// A job we started.
    Started(CrewIx, Box<pb::Job>),
    /// Discovery found a crew (a new slot, or one gone before, again).
    CrewFound {
        ix: CrewIx,
        name: String,
        addr: String,
        groups: Vec<String>,
    },
    /// Discovery no longer finds this crew.
    CrewGone(CrewIx),
    /// A job's audit trail (lines for people), or why it could not be read.
    Trail {
        job: String,
        trail: Result<Vec<String>, String>,
    },
    /// A crew's archived jobs (for `A`), or why they could not be listed.
    ArchivedJobs(CrewIx, Result<Vec<pb::Job>, String>),
    /// A job's stored output for the log view, or why it could not be read.
    Log {
        job: String,
        /// The follow it begins, if it does: a read's answer is taken only
        /// by a view still reading it.
        follow: Option<SessionId>,
        read: Result<super::logview::LogRead, String>,
    },
    /// More output for the followed log view; `Ok(None)`: the job ended.
    LogMore {
        session: SessionId,
        more: Result<Option<super::logview::LogRead>, String>,
    },
    /// The outputs of a batch's members, as far as they had written.
    Gathered {
        batch: String,
        outputs: Vec<MemberOutput>,
    },
}

/// A batch member's output, read for the gathered view.
#[derive(Debug)]
pub struct MemberOutput {
    pub crew: CrewIx,
    pub job: String,
    /// The output (the first `GATHER_LIMIT` bytes), or why it could not
    /// be read.
    pub output: Result<Vec<u8>, String>,
    /// Bytes past what was kept.
    pub cut: u64,
}

/// What a crew's connection task reports.
#[derive(Debug)]
pub enum CrewEvent {
    /// Connected; who we are there.
    Up {
        identity: String,
        role: String,
    },
    /// Lost or never made. `refused`: the crew (or its certificate) said
    /// no, rather than not answering.
    Down {
        why: String,
        refused: bool,
        retry_in: Duration,
    },
    Snapshot(Vec<pb::Job>),
    Job(Box<pb::Job>),
    Archived(Box<pb::Job>),
    Usage(Vec<pb::Usage>),
}

#[derive(Debug)]
pub enum AttachEvent {
    Opened {
        writable: bool,
    },
    Output(Bytes),
    /// Bytes the crew no longer had (we fell behind its window).
    Dropped(u64),
    Ended(Box<pb::Job>),
    /// The stream broke (why); the task opens it again where it stopped.
    Interrupted(String),
    /// The stream is over; an error if it failed.
    Closed(Option<String>),
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Notice {
    pub text: String,
    pub error: bool,
}

impl Notice {
    pub fn info(text: impl Into<String>) -> Self {
        Self {
            text: text.into(),
            error: false,
        }
    }

    pub fn error(text: impl Into<String>) -> Self {
        Self {
            text: text.into(),
            error: true,
        }
    }
}

/// Input for an attached job.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Input {
    Bytes(Vec<u8>),
    Eof,
    /// rows, cols
    Resize(u16, u16),
}

/// I/O for the runtime to do; answers come back as actions.
#[derive(Clone, Debug, PartialEq)]
pub enum Effect {
    Start {
        crew: CrewIx,
        spec: Box<pb::JobSpec>,
    },
    Stop {
        crew: CrewIx,
        job: String,
        label: String,
    },
    Archive {
        crew: CrewIx,
        job: String,
        label: String,
    },
    Attach {
        session: SessionId,
        crew: CrewIx,
        job: String,
        write: bool,
    },
    Send {
        session: SessionId,
        input: Input,
    },
    Detach {
        session: SessionId,
    },
    /// Read a job's audit trail.
    Trail {
        crew: CrewIx,
        job: String,
    },
    /// List a crew's archived jobs.
    ListArchived {
        crew: CrewIx,
    },
    Unarchive {
        crew: CrewIx,
        job: String,
        label: String,
    },
    /// Read a job's stored output (its last `LOG_LIMIT` bytes) with marks;
    /// with `follow`, keep the attach open (ended by `Detach`) and send
    /// what comes next.
    ReadLog {
        crew: CrewIx,
        job: String,
        follow: Option<SessionId>,
    },
    /// Write these bytes to a file, 0600; over an existing one only when
    /// `overwrite`.
    SaveLog {
        path: String,
        bytes: Vec<u8>,
        overwrite: bool,
    },
    /// Read these jobs' outputs (a batch's members) up to where each is now.
    Gather {
        batch: String,
        members: Vec<(CrewIx, String)>,
    },
    Quit,
}
