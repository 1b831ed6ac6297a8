//! `foreman run`: start, stream the output, exit with the job's own code.
//!
//! Input: with --tty and a terminal, the session is interactive (raw keys,
//! Ctrl-] detaches); with input piped in (`echo x | foreman run -- cat`) it
//! goes to the job, then EOF; otherwise the job reads EOF at once. Ctrl-C
//! stops the job (a second one detaches), as it would stop a local command.

use tasker_proto::v1::attach_job_request::open::{Beginning, From};

use super::attach::{End, OnInterrupt, session};
use super::batch::Presentation;
use super::start::{launch, pick_batch};
use super::stream::{open, report_end};
use crate::cli::Ctx;
use crate::cli::args::RunArgs;
use crate::cli::output::exit_code_of;
use crate::failure::Failure;
use crate::sanitize::Sanitizer;
use crate::terminal;

pub async fn run(ctx: &Ctx, r: RunArgs) -> Result<(), Failure> {
    let a = r.job.with_preset(&ctx.config.presets).map_err(Failure::Usage)?;
    if let Some(crews) = pick_batch(ctx, a.crew.as_deref())? {
        if a.tty {
            return Err(Failure::Usage(
                "--tty takes one crew: a batch's jobs read no input".into(),
            ));
        }
        let how = Presentation {
            gather: r.gather,
            json: r.json,
            fail_fast: r.fail_fast,
        };
        return super::batch::run(&crews, &a, how).await;
    }
    let (crew, job) = launch(ctx, &a).await?;
    if let Some(tasker_proto::v1::outcome::Reason::StartFailed(f)) =
        job.outcome.as_ref().and_then(|o| o.reason.clone())
    {
        eprintln!(
            "foreman: {}/{} did not start: {}",
            crew.name,
            job.handle,
            Sanitizer::clean(&f.reason)
        );
        return Err(Failure::Exit(127));
    }
    let opened = open(crew, &job.id, From::Beginning(Beginning {}), true).await?;
    let forward = a.tty || !terminal::stdin_is_tty();
    match session(crew, &job, opened, OnInterrupt::Stop, false, forward).await? {
        End::Job(j) => {
            let code = exit_code_of(&j);
            if code != 0 {
                report_end(&crew.name, &j);
            }
            match code {
                0 => Ok(()),
                c => Err(Failure::Exit(c)),
            }
        }
        End::Detached => {
            let r = format!("{}/{}", crew.name, job.handle);
            eprintln!(
                "foreman: detached from {r}; it goes on running (foreman attach {r} returns to it, \
                 foreman stop {r} ends it); exit code 130"
            );
            Err(Failure::Exit(130))
        }
    }
}
