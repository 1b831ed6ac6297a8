//! `foreman logs JOB [-f] [--tail N] [-t] [--since T] [--until T] [--stream S]`:
//! the output so far, or followed to the job's end (or to --until), each
//! line after its time if asked, both streams in the order stored or one. Filtered when stdout is a terminal; `|
//! head` ends quietly.

use tasker_proto::v1 as pb;
use tasker_proto::v1::attach_job_request::open::{Beginning, From};

use super::stream::{Next, Sink, open_timed, step};
use crate::cli::Ctx;
use crate::cli::args::{StreamArg, WhichOutput};
use crate::cli::refs::resolve;
use crate::client::attach::Opened;
use crate::client::attach::Times;
use crate::failure::Failure;
use crate::sanitize::Mode;

pub async fn logs(
    ctx: &Ctx,
    job: &str,
    follow: bool,
    tail: Option<u64>,
    raw: bool,
    which: &WhichOutput,
) -> Result<(), Failure> {
    let (crew, job) = resolve(ctx, job).await?;
    let from = tail.map_or(From::Beginning(Beginning {}), From::TailLines);
    let asked = Times {
        marks: which.timestamps || which.stream.is_some() || which.asciicast,
        since: which.since,
        until: which.until,
    };
    let mut opened = open_timed(crew, &job.id, from, false, asked).await?;
    if which.asciicast {
        return record(&crew.name, &job, &mut opened, follow).await;
    }
    let end = opened.attached.end;
    let mut offset = opened.attached.offset;
    let mut sink = Sink::stdout(Mode::Plain, raw).only(which.stream.map(|s| match s {
        StreamArg::Stdout => pb::Stream::Stdout,
        StreamArg::Stderr => pb::Stream::Stderr,
    }));
    if which.timestamps {
        sink = sink.with_timestamps();
    }
    loop {
        // Without -f, what is stored now is all; with it, the job's end
        // or --until (which may be still to come) is.
        if !follow && offset >= end {
            return Ok(());
        }
        match step(&crew.name, &mut opened, &mut sink, &mut offset).await? {
            Next::Data => {}
            Next::Ended(_) | Next::Until => return Ok(()),
        }
    }
}

/// The output as an asciicast v2 recording on stdout: the header once the
/// first part's time is known, then an event per marked part.
async fn record(crew: &str, job: &pb::Job, opened: &mut Opened, follow: bool) -> Result<(), Failure> {
    use crate::asciicast::{Recorder, header, mark_ns};
    use crate::times::segments;
    use pb::attach_job_response::Msg as Out;
    let (cols, rows) = job.tty.as_ref().map_or((80, 24), |t| (t.cols, t.rows));
    let title = format!("{crew}/{}", job.handle);
    let end = opened.attached.end;
    let mut offset = opened.attached.offset;
    // A pipe job's newlines as a terminal would show them (onlcr).
    let mut recorder = Recorder::new(job.tty.is_none());
    let mut lines = Vec::new();
    let mut headed = false;
    loop {
        if !follow && offset >= end {
            break;
        }
        let msg = match opened.stream.message().await {
            Ok(Some(m)) => m.msg,
            Ok(None) => break,
            Err(s) => return Err(Failure::from_status(crew, &s)),
        };
        match msg {
            Some(Out::Output(o)) => {
                offset = o.offset + o.data.len() as u64;
                for (_, data, mark) in segments(o.offset, &o.data, &o.marks) {
                    let at = mark.and_then(mark_ns);
                    if !headed {
                        lines.push(header(cols, rows, at, &title));
                        headed = true;
                    }
                    lines.extend(recorder.event(at, data));
                }
            }
            Some(Out::Dropped(d)) => {
                offset = d.offset + d.len;
                eprintln!(
                    "foreman: {} bytes of output were dropped before this recording's start",
                    d.len
                );
            }
            Some(Out::Ended(_) | Out::Until(_)) => break,
            _ => {}
        }
        write_lines(&mut lines)?;
    }
    if !headed {
        lines.push(header(cols, rows, None, &title));
    }
    lines.extend(recorder.finish());
    write_lines(&mut lines)
}

fn write_lines(lines: &mut Vec<String>) -> Result<(), Failure> {
    for line in lines.drain(..) {
        crate::cli::output::outln!("{line}");
    }
    Ok(())
}
