//! The scriptable CLI: one file per command in `commands/`, one dispatch
//! point here, one place (`Failure`) that decides exit codes.

pub mod args;
pub mod commands;
pub mod output;
pub mod refs;
pub mod terminal;

use std::process::ExitCode;

use self::args::{Cli, Command};
use crate::client::{self, Crew};
use crate::config::{self, Config, Overrides};

/// Why a command failed, and so its exit code (SPEC §5).
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

/// Everything a command needs: the config and a client per crew.
#[derive(Debug)]
pub struct Ctx {
    pub config: Config,
    pub crews: Vec<Crew>,
}

impl Ctx {
    pub fn crew(&self, name: &str) -> Result<&Crew, Failure> {
        self.crews.iter().find(|c| c.name == name).ok_or_else(|| {
            let names: Vec<&str> = self.crews.iter().map(|c| c.name.as_str()).collect();
            Failure::Usage(format!("no crew {name:?} (crews: {})", names.join(", ")))
        })
    }
}

/// Runs a parsed command line; returns the process's exit code.
pub async fn run(cli: Cli) -> ExitCode {
    let over = Overrides {
        config: cli.config,
        crews: cli.crews,
        user: cli.user,
        certs: cli.certs,
    };
    let Some(command) = cli.command else {
        return match crate::tui::run(over).await {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => finish(Err(e)),
        };
    };
    let ctx = match config::load(&over).map_err(Failure::from).and_then(|config| {
        Ok(Ctx {
            crews: client::crews(&config)?,
            config,
        })
    }) {
        Ok(c) => c,
        Err(e) => return finish(Err(e)),
    };
    let result = match command {
        Command::Start(a) => commands::start::start(&ctx, a).await,
        Command::Run(a) => commands::run::run(&ctx, a).await,
        Command::Ls { all, json } => commands::ls::ls(&ctx, all, json).await,
        Command::Status { job, json } => commands::status::status(&ctx, &job, json).await,
        Command::Logs {
            job,
            follow,
            tail,
            raw,
        } => commands::logs::logs(&ctx, &job, follow, tail, raw).await,
        Command::Attach { job } => commands::attach::attach(&ctx, &job).await,
        Command::Stop { job, grace } => commands::stop::stop(&ctx, &job, grace).await,
        Command::Archive { job } => commands::stop::archive(&ctx, &job).await,
        Command::Crews { json } => commands::crews::crews(&ctx, json).await,
    };
    finish(result)
}

fn finish(result: Result<(), Failure>) -> ExitCode {
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(Failure::Exit(code)) => ExitCode::from(code),
        Err(e) => {
            eprintln!("foreman: {}", crate::sanitize::Sanitizer::clean(&e.to_string()));
            ExitCode::from(e.code())
        }
    }
}
