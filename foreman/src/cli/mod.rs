//! The scriptable CLI: one file per command in `commands/`, one dispatch
//! point here; `crate::failure` decides the exit codes.

pub mod args;
pub mod commands;
pub mod complete;
pub mod confirm;
pub mod docs;
pub mod output;
pub mod refs;
pub mod terminal;

use self::args::Command;
use crate::client::{self, Crew};
use crate::config::{self, Config, Overrides};
use crate::failure::Failure;

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

/// Adds the crews discovery finds to the configured ones; what went wrong
/// on the way is said on stderr, and no crew at all is an error.
pub async fn discover(config: &mut config::Config) -> Result<(), Failure> {
    let found = crate::discovery::add_to(config).await;
    for p in &found.problems {
        eprintln!("foreman: {}", crate::sanitize::Sanitizer::clean(p));
    }
    if config.crews.is_empty() {
        return Err(Failure::Usage(
            "no crews: none configured, and discovery found none".into(),
        ));
    }
    Ok(())
}

/// Runs one command against the configured crews.
pub async fn run(over: Overrides, command: Command) -> Result<(), Failure> {
    // Completion reads the config itself, quietly: no discovery, no error
    // printed into the user's shell.
    if let Command::Complete { words } = &command {
        return complete::complete(words).await;
    }
    let mut config = config::load(&over)?;
    discover(&mut config).await?;
    let ctx = Ctx {
        crews: client::crews(&config)?,
        config,
    };
    match command {
        Command::Start(a) => commands::start::start(&ctx, a).await,
        Command::Run(a) => commands::run::run(&ctx, a).await,
        Command::Ls {
            all,
            filter,
            quiet,
            json,
        } => {
            let how = if json {
                commands::ls::Print::Json
            } else if quiet {
                commands::ls::Print::References
            } else {
                commands::ls::Print::Table
            };
            commands::ls::ls(&ctx, all, &filter, how).await
        }
        Command::Status { job, json } => commands::status::status(&ctx, &job, json).await,
        Command::Logs {
            batch: Some(_),
            which,
            ..
        } if which.picks_any() => Err(Failure::Usage(
            "--timestamps, --since, --until, --stream and --asciicast read one job's output, not a --batch's"
                .into(),
        )),
        Command::Logs {
            batch: Some(batch),
            gather,
            follow,
            tail,
            ..
        } => commands::batch::logs(&ctx, &batch, follow, tail, gather).await,
        Command::Logs {
            job,
            follow,
            tail,
            raw,
            which,
            ..
        } => {
            commands::logs::logs(
                &ctx,
                job.as_deref().unwrap_or_default(),
                follow,
                tail,
                raw,
                &which,
            )
            .await
        }
        Command::Attach { job, yes } => commands::attach::attach(&ctx, &job, yes).await,
        Command::Stop {
            job,
            batch: Some(batch),
            grace,
            yes,
        } if job.is_none() => commands::stop::stop_batch(&ctx, &batch, grace, yes).await,
        Command::Stop { job, grace, yes, .. } => {
            commands::stop::stop(&ctx, job.as_deref().unwrap_or_default(), grace, yes).await
        }
        Command::Wait { job, batch, timeout } => {
            commands::wait::wait(&ctx, job.as_deref(), batch.as_deref(), timeout).await
        }
        Command::Clean { mut filter, dry_run } => {
            if filter.owner.is_empty() {
                filter.owner.push(ctx.config.user.clone());
            }
            commands::ls::clean(&ctx, &filter, dry_run).await
        }
        Command::Rerun { job, name, env } => commands::rerun::rerun(&ctx, &job, name, env).await,
        Command::Audit { job, json } => commands::audit::audit(&ctx, &job, json).await,
        Command::Archive { job, yes } => commands::stop::archive(&ctx, &job, yes).await,
        Command::Unarchive { jobs, yes } => commands::stop::unarchive(&ctx, &jobs, yes).await,
        Command::Crews { json } => commands::crews::crews(&ctx, json).await,
        Command::Completions { shell } => docs::completions(shell),
        Command::Complete { words } => complete::complete(&words).await,
        Command::Man { dir } => docs::man_pages(&dir),
    }
}
