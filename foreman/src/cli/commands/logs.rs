//! `foreman logs JOB [-f] [--tail N]`: the output so far, or followed to
//! the job's end. Filtered when stdout is a terminal; `| head` ends quietly.

use tasker_proto::v1::attach_job_request::open::{Beginning, From};

use super::stream::{Next, Sink, open, step};
use crate::cli::Ctx;
use crate::cli::refs::resolve;
use crate::failure::Failure;
use crate::sanitize::Mode;

pub async fn logs(ctx: &Ctx, job: &str, follow: bool, tail: Option<u64>, raw: bool) -> Result<(), Failure> {
    let (crew, job) = resolve(ctx, job).await?;
    let from = tail.map_or(From::Beginning(Beginning {}), From::TailLines);
    let mut opened = open(crew, &job.id, from, false).await?;
    let end = opened.attached.end;
    let mut offset = opened.attached.offset;
    let mut sink = Sink::stdout(Mode::Plain, raw);
    loop {
        if !follow && offset >= end {
            return Ok(());
        }
        match step(&crew.name, &mut opened, &mut sink, &mut offset).await? {
            Next::Data => {}
            Next::Ended(_) | Next::Until => return Ok(()),
        }
    }
}
