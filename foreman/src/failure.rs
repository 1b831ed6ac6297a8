//! Why foreman failed, and so its exit code (SPEC §5): the one place both
//! the commands and the dashboard turn an error into a code.

use std::process::ExitCode;

use crate::client;
use crate::config;

/// Why a command (or the dashboard) failed, and so its exit code.
#[derive(Debug, thiserror::Error)]
pub enum Failure {
    /// 1: the job failed, was not found, or the call was denied.
    #[error("{0}")]
    Job(String),
    /// 2: the command line or the config was wrong.
    #[error("{0}")]
    Usage(String),
    /// 2: a crew could not be reached.
    #[error("{0}")]
    Connection(String),
    /// Exit with this code, having said what there was to say.
    #[error("exit {0}")]
    Exit(u8),
}

impl Failure {
    pub fn code(&self) -> u8 {
        match self {
            Self::Job(_) => 1,
            Self::Usage(_) | Self::Connection(_) => 2,
            Self::Exit(c) => *c,
        }
    }

    /// A crew's answer as a failure: its refusals are about the job (1),
    /// its bad-request answers about how we asked (2), and transport
    /// failures about the connection (2).
    /// Success for 0, else an exit with `code`: the worst of several
    /// outcomes (a batch's members, the jobs waited for).
    pub fn exit_with(code: u8) -> Result<(), Self> {
        match code {
            0 => Ok(()),
            c => Err(Self::Exit(c)),
        }
    }

    pub fn from_status(crew: &str, status: &tonic::Status) -> Self {
        use tonic::Code::*;
        let msg = format!("{crew}: {}", client::explain(status));
        match status.code() {
            NotFound | PermissionDenied | FailedPrecondition | AlreadyExists | Aborted => Self::Job(msg),
            InvalidArgument | OutOfRange | ResourceExhausted => Self::Usage(msg),
            _ => Self::Connection(msg),
        }
    }
}

impl From<config::ConfigError> for Failure {
    fn from(e: config::ConfigError) -> Self {
        Self::Usage(e.to_string())
    }
}

impl From<client::ConnectError> for Failure {
    fn from(e: client::ConnectError) -> Self {
        match e {
            client::ConnectError::Tls(t) => Self::Usage(t.to_string()),
            other => Self::Connection(other.to_string()),
        }
    }
}

/// The process's exit code for a result, having said on stderr what went
/// wrong (an `Exit` has said it already).
pub fn finish(result: Result<(), Failure>) -> ExitCode {
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(Failure::Exit(code)) => ExitCode::from(code),
        Err(e) => {
            eprintln!("foreman: {}", crate::sanitize::Sanitizer::clean(&e.to_string()));
            ExitCode::from(e.code())
        }
    }
}
