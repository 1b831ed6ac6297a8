//! One command on many crews at once: `--crew` selecting several (a list,
//! a glob, `@group`, `all`; see `crate::select`) makes `run` and `start` a
//! batch. Every member starts at once.
//!
//! `run` streams each line prefixed by its crew, or with `-b` gathers:
//! identical outputs once, under the crews that printed them (folded into
//! ranges, `web[01-03]`), with their exit codes, as `clush -b` does. Then one
//! summary line on stderr: ok, failed and unreachable, each with its crews.
//! Every member carries the batch's id (`b-` and 12 hex digits), which
//! `ls --batch` and `stop --batch` take; `run` keeps which crews failed or
//! were not reached, and `--crew @failed:ID` runs on those again.
//! A crew that cannot be reached is kept apart from one whose job failed.
//! The exit code is the worst member's: a job's own code, 2 for a crew not
//! reached. `--fail-fast` stops the others at the first failure; Ctrl-C
//! stops every member.

use std::io::Write as _;
use std::sync::Mutex;

use futures_util::future::join_all;
use tasker_proto::v1 as pb;
use tasker_proto::v1::attach_job_request::open::{Beginning, From};
use tasker_proto::v1::attach_job_response::Msg as Out;
use tokio_util::sync::CancellationToken;

use super::stream::open;
use crate::cli::Ctx;
use crate::cli::output::exit_code_of;
use crate::cli::output::outln;
use crate::client::Crew;
use crate::client::attach::Opened;
use crate::failure::Failure;
use crate::gather;
use crate::job::{JobArgs, job_spec};
use crate::sanitize::{Mode, Sanitizer};
use crate::select::fold;
use crate::terminal;

/// How `run` presents a batch.
#[derive(Clone, Copy, Debug, Default)]
pub struct Presentation {
    /// Gather identical outputs (`-b`).
    pub gather: bool,
    /// One JSON object per crew, on stdout.
    pub json: bool,
    /// Stop the others at the first failure.
    pub fail_fast: bool,
}

/// Output gathered per crew is kept up to this; past it, the rest is
/// counted, not kept (the crew has it all: `foreman logs`).
const GATHER_LIMIT: usize = 1 << 20;

/// How one member of a batch ended.
#[derive(Clone, Debug, PartialEq, Eq)]
enum Status {
    Ok,
    /// Its job failed (or would not start): the code `run` would exit with.
    Failed {
        code: u8,
        why: String,
    },
    /// The crew was not reached, or the connection was lost.
    Unreachable(String),
    /// Its job runs on (`logs` without `-f`).
    Running,
}

#[derive(Debug)]
struct Member {
    crew: String,
    job: Option<pb::Job>,
    output: Vec<u8>,
    cut: u64,
    status: Status,
}

impl Member {
    fn code(&self) -> u8 {
        match &self.status {
            Status::Ok | Status::Running => 0,
            Status::Failed { code, .. } => *code,
            Status::Unreachable(_) => 2,
        }
    }
}

/// `foreman start` on several crews: each job's reference on stdout, the
/// crews that refused or could not be reached on stderr.
pub async fn start(crews: &[&Crew], a: &JobArgs) -> Result<(), Failure> {
    let spec = batch_spec(a);
    eprintln!("foreman: batch {} on {} crews", spec.batch, crews.len());
    let started = join_all(crews.iter().map(|crew| launch(crew, &spec))).await;
    let mut worst = 0;
    for (crew, result) in crews.iter().zip(started) {
        match result {
            Ok(job) => match start_failure(&job) {
                None => outln!("{}/{} {}", crew.name, job.handle, job.id),
                Some(why) => {
                    eprintln!("foreman: {}/{} did not start: {why}", crew.name, job.handle);
                    worst = worst.max(1);
                }
            },
            Err(f) => {
                eprintln!("foreman: {}", Sanitizer::clean(&f.to_string()));
                worst = worst.max(f.code());
            }
        }
    }
    Failure::exit_with(worst)
}

/// `foreman run` on several crews.
pub async fn run(crews: &[&Crew], a: &JobArgs, how: Presentation) -> Result<(), Failure> {
    let spec = batch_spec(a);
    let stop = CancellationToken::new();
    let printer = Printer::new(how);
    let interrupt = {
        let stop = stop.clone();
        tokio::spawn(async move {
            if tokio::signal::ctrl_c().await.is_ok() {
                eprintln!("foreman: stopping every member of the batch");
                stop.cancel();
            }
        })
    };
    let members = join_all(crews.iter().map(|crew| member(crew, &spec, how, &printer, &stop))).await;
    interrupt.abort();
    printer.flush_all();
    if how.json {
        for m in &members {
            outln!("{}", member_json(m));
        }
    } else if how.gather {
        print_gathered(&members);
    }
    eprintln!("foreman: batch {}: {}", spec.batch, summary(&members));
    keep_record(&spec.batch, &members);
    Failure::exit_with(members.iter().map(Member::code).max().unwrap_or(0))
}

/// The job every member runs, labelled with a new batch id.
fn batch_spec(a: &JobArgs) -> pb::JobSpec {
    pb::JobSpec {
        batch: format!("b-{}", tasker_common::random_hex(6)),
        ..job_spec(a)
    }
}

/// How a member that did not get to run ended: a crew not reached (or
/// lost) is kept apart from one that refused.
fn not_run(f: Failure) -> Status {
    match f {
        Failure::Connection(why) => Status::Unreachable(why),
        other => Status::Failed {
            code: other.code(),
            why: other.to_string(),
        },
    }
}

async fn launch(crew: &Crew, spec: &pb::JobSpec) -> Result<pb::Job, Failure> {
    let mut client = crew.client.clone();
    let job = client
        .start_job(pb::StartJobRequest {
            spec: Some(spec.clone()),
        })
        .await
        .map_err(|s| Failure::from_status(&crew.name, &s))?
        .into_inner()
        .job;
    job.ok_or_else(|| Failure::Connection(format!("{}: the crew sent no job", crew.name)))
}

fn start_failure(job: &pb::Job) -> Option<String> {
    match job.outcome.as_ref().and_then(|o| o.reason.clone()) {
        Some(pb::outcome::Reason::StartFailed(f)) => Some(Sanitizer::clean(&f.reason)),
        _ => None,
    }
}

/// One member: start, follow the output to the end (stopping the job if
/// the batch is stopped), and how it ended.
async fn member(
    crew: &Crew,
    spec: &pb::JobSpec,
    how: Presentation,
    printer: &Printer,
    stop: &CancellationToken,
) -> Member {
    let mut m = Member {
        crew: crew.name.clone(),
        job: None,
        output: Vec::new(),
        cut: 0,
        status: Status::Ok,
    };
    let job = match launch(crew, spec).await {
        Ok(job) => job,
        Err(f) => {
            m.status = not_run(f);
            if how.fail_fast {
                stop.cancel();
            }
            return m;
        }
    };
    if let Some(why) = start_failure(&job) {
        m.status = Status::Failed { code: 127, why };
        m.job = Some(job);
        if how.fail_fast {
            stop.cancel();
        }
        return m;
    }
    let id = job.id.clone();
    m.job = Some(job);
    let opened = match open(crew, &id, From::Beginning(Beginning {}), true).await {
        Ok(o) => o,
        Err(f) => {
            m.status = not_run(f);
            return m;
        }
    };
    // A batch's jobs get no input: EOF, as `run` gives a job without -i.
    let eof = pb::attach_job_request::Msg::Eof(pb::attach_job_request::Eof {});
    let _ = opened.tx.send(pb::AttachJobRequest { msg: Some(eof) }).await;
    read_member(crew, &mut m, opened, None, how, printer, stop).await;
    m
}

/// Reads a member's output (gathered into `m`, or printed) until its job
/// ends, or only up to `upto` (the end of what it had written, for `logs`
/// without `-f`); stops the job when `stop` fires; sets how it ended.
async fn read_member(
    crew: &Crew,
    m: &mut Member,
    mut opened: Opened,
    upto: Option<u64>,
    how: Presentation,
    printer: &Printer,
    stop: &CancellationToken,
) {
    let id = m.job.as_ref().map(|j| j.id.clone()).unwrap_or_default();
    let mut offset = opened.attached.offset;
    let mut stopping = false;
    while upto.is_none_or(|end| offset < end) {
        tokio::select! {
            () = stop.cancelled(), if !stopping => {
                stopping = true;
                let mut client = crew.client.clone();
                let _ = client.stop_job(pb::StopJobRequest { job: id.clone(), grace: None }).await;
            }
            msg = opened.stream.message() => match msg {
                Ok(Some(pb::AttachJobResponse { msg: Some(Out::Output(o)) })) => {
                    offset = o.offset + o.data.len() as u64;
                    if how.json {
                        // The record of a member: everything, in order.
                        m.keep(&o.data);
                    } else {
                        // A pipe job's stderr goes to ours as it comes, as
                        // `run`'s does; what is gathered is stdout (as
                        // clush -b).
                        for (_, data, mark) in crate::times::segments(o.offset, &o.data, &o.marks) {
                            let stream = mark.map_or(pb::Stream::Stdout, pb::Mark::stream);
                            if how.gather && stream == pb::Stream::Stdout {
                                m.keep(data);
                            } else {
                                printer.output(&crew.name, stream, data);
                            }
                        }
                    }
                }
                Ok(Some(pb::AttachJobResponse { msg: Some(Out::Dropped(d)) })) => {
                    offset = d.offset + d.len;
                    eprintln!("foreman: {}: {} bytes of output were dropped here (the crew keeps the newest part only)", crew.name, d.len);
                }
                Ok(Some(pb::AttachJobResponse { msg: Some(Out::Ended(j)) })) => {
                    m.status = ended(&j);
                    if matches!(m.status, Status::Failed { .. }) && how.fail_fast {
                        stop.cancel();
                    }
                    m.job = Some(j);
                    break;
                }
                Ok(Some(_)) => {}
                Ok(None) | Err(_) => {
                    m.status = Status::Unreachable(format!("{}: the connection was lost before the job ended", crew.name));
                    break;
                }
            }
        }
    }
    printer.flush(&crew.name);
}

impl Member {
    /// Keeps output to gather, up to [`GATHER_LIMIT`]; the rest is counted.
    fn keep(&mut self, data: &[u8]) {
        let room = GATHER_LIMIT.saturating_sub(self.output.len());
        let keep = data.len().min(room);
        self.output.extend_from_slice(&data[..keep]);
        self.cut += (data.len() - keep) as u64;
    }
}

/// How a job that has ended went, as a member's status.
fn ended(j: &pb::Job) -> Status {
    match exit_code_of(j) {
        0 => Status::Ok,
        code => {
            let why = j.outcome.as_ref().map(|o| o.summary.clone()).unwrap_or_default();
            Status::Failed {
                code,
                why: Sanitizer::clean(&why),
            }
        }
    }
}

/// `foreman logs --batch ID`: every member's output so far (or followed
/// to its end with `-f`), prefixed by crew or gathered (`-b`), then the
/// summary line. Exit code: 2 if a crew was not reached, else 0.
pub async fn logs(
    ctx: &Ctx,
    batch: &str,
    follow: bool,
    tail: Option<u64>,
    gather: bool,
) -> Result<(), Failure> {
    let (members, unreachable) = members_of(ctx, batch).await;
    if members.is_empty() {
        for (_, f) in &unreachable {
            eprintln!("foreman: {}", Sanitizer::clean(&f.to_string()));
        }
        let answered = if unreachable.is_empty() {
            "any crew"
        } else {
            "the crews that answered"
        };
        return Err(Failure::Job(format!("no job of batch {batch:?} on {answered}")));
    }
    let how = Presentation {
        gather,
        ..Presentation::default()
    };
    let printer = Printer::new(how);
    let never = CancellationToken::new();
    let from = || tail.map_or(From::Beginning(Beginning {}), From::TailLines);
    let read = members.into_iter().map(|(crew, job)| {
        let (printer, never) = (&printer, &never);
        async move {
            let mut m = Member {
                crew: crew.name.clone(),
                status: if job.outcome.is_some() {
                    ended(&job)
                } else {
                    Status::Running
                },
                job: Some(job),
                output: Vec::new(),
                cut: 0,
            };
            let id = m.job.as_ref().map(|j| j.id.clone()).unwrap_or_default();
            match open(crew, &id, from(), false).await {
                Ok(opened) => {
                    let upto = (!follow).then_some(opened.attached.end);
                    read_member(crew, &mut m, opened, upto, how, printer, never).await;
                }
                Err(f) => m.status = not_run(f),
            }
            m
        }
    });
    let mut members = join_all(read).await;
    printer.flush_all();
    members.extend(unreachable.into_iter().map(|(crew, f)| Member {
        crew: crew.name.clone(),
        job: None,
        output: Vec::new(),
        cut: 0,
        status: not_run(f),
    }));
    if gather {
        print_gathered(&members);
    }
    eprintln!("foreman: batch {batch}: {}", summary(&members));
    let unreached = members.iter().any(|m| matches!(m.status, Status::Unreachable(_)));
    Failure::exit_with(if unreached { 2 } else { 0 })
}

/// Every job of `batch`, on every crew that answers, and why the others
/// did not.
pub async fn members_of<'a>(
    ctx: &'a Ctx,
    batch: &str,
) -> (Vec<(&'a Crew, pb::Job)>, Vec<(&'a Crew, Failure)>) {
    let asks = ctx
        .crews
        .iter()
        .map(|crew| async move { (crew, super::ls::list_all(crew, true).await) });
    let mut members = Vec::new();
    let mut unreachable = Vec::new();
    for (crew, jobs) in join_all(asks).await {
        match jobs {
            Ok(jobs) => members.extend(jobs.into_iter().filter(|j| j.batch == batch).map(|j| (crew, j))),
            Err(s) => unreachable.push((crew, Failure::from_status(&crew.name, &s))),
        }
    }
    (members, unreachable)
}

/// Streamed output: whole lines, each prefixed by its crew, a pipe job's
/// stderr on stderr; each filtered (as `logs` filters) when it goes to a
/// terminal; a crew's unfinished line (per stream) waits for its end.
struct Printer {
    /// Whether stdout, stderr are terminals.
    tty: [bool; 2],
    partial: Mutex<std::collections::HashMap<(String, bool), Vec<u8>>>,
}

impl Printer {
    fn new(how: Presentation) -> Self {
        Self {
            tty: [terminal::stdout_is_tty() && !how.json, terminal::stderr_is_tty()],
            partial: Mutex::default(),
        }
    }

    fn output(&self, crew: &str, stream: pb::Stream, data: &[u8]) {
        let stderr = stream == pb::Stream::Stderr;
        let mut partial = tasker_common::lock(&self.partial);
        let buf = partial.entry((crew.to_owned(), stderr)).or_default();
        buf.extend_from_slice(data);
        let Some(end) = buf.iter().rposition(|b| *b == b'\n') else {
            return;
        };
        let lines: Vec<u8> = buf.drain(..=end).collect();
        self.emit(crew, stderr, &lines);
    }

    fn flush(&self, crew: &str) {
        for stderr in [false, true] {
            let rest = tasker_common::lock(&self.partial)
                .remove(&(crew.to_owned(), stderr))
                .unwrap_or_default();
            if !rest.is_empty() {
                let mut line = rest;
                line.push(b'\n');
                self.emit(crew, stderr, &line);
            }
        }
    }

    fn flush_all(&self) {
        let crews: std::collections::BTreeSet<String> = tasker_common::lock(&self.partial)
            .keys()
            .map(|(c, _)| c.clone())
            .collect();
        for c in crews {
            self.flush(&c);
        }
    }

    /// `lines` ends with a newline.
    fn emit(&self, crew: &str, stderr: bool, lines: &[u8]) {
        let mut out = Vec::with_capacity(lines.len() + 16);
        for line in lines.split_inclusive(|b| *b == b'\n') {
            out.extend_from_slice(crew.as_bytes());
            out.extend_from_slice(b": ");
            if self.tty[usize::from(stderr)] {
                Sanitizer::new(Mode::Plain).feed(line, &mut out);
            } else {
                out.extend_from_slice(line);
            }
        }
        if stderr {
            let mut w = std::io::stderr().lock();
            let _ = w.write_all(&out);
            let _ = w.flush();
        } else {
            let mut w = std::io::stdout().lock();
            let _ = w.write_all(&out);
            let _ = w.flush();
        }
    }
}

/// Identical outputs once, under the crews that printed them, with how
/// they ended.
fn print_gathered(members: &[Member]) {
    let ran: Vec<&Member> = members.iter().filter(|m| m.job.is_some()).collect();
    let outputs: Vec<gather::Member> = ran
        .iter()
        .map(|m| gather::Member {
            crew: &m.crew,
            output: &m.output,
            code: (m.status != Status::Running).then(|| m.code()),
            cut: m.cut,
        })
        .collect();
    let tty = terminal::stdout_is_tty();
    let mut text = Vec::new();
    for g in gather::gather(&outputs) {
        let rule = "-".repeat(g.header.chars().count().min(78));
        text.extend_from_slice(format!("{rule}\n{}\n{rule}\n", g.header).as_bytes());
        if tty {
            Sanitizer::new(Mode::Plain).feed(g.output, &mut text);
        } else {
            text.extend_from_slice(g.output);
        }
        if !g.output.is_empty() && !g.output.ends_with(b"\n") {
            text.push(b'\n');
        }
        if g.cut > 0 {
            text.extend_from_slice(format!("[{} more bytes: foreman logs CREW/JOB]\n", g.cut).as_bytes());
        }
    }
    let mut stdout = std::io::stdout().lock();
    let _ = stdout.write_all(&text);
    let _ = stdout.flush();
}

/// `10 crews: 8 ok (web[01-08]); 1 failed (web09: exit 3); 1 unreachable (web10)`.
fn summary(members: &[Member]) -> String {
    let ok: Vec<&str> = members
        .iter()
        .filter(|m| m.status == Status::Ok)
        .map(|m| m.crew.as_str())
        .collect();
    let failed: Vec<String> = members
        .iter()
        .filter_map(|m| match &m.status {
            Status::Failed { code, .. } => Some(format!("{}: exit {code}", m.crew)),
            _ => None,
        })
        .collect();
    let unreachable: Vec<&str> = members
        .iter()
        .filter(|m| matches!(m.status, Status::Unreachable(_)))
        .map(|m| m.crew.as_str())
        .collect();
    let running: Vec<&str> = members
        .iter()
        .filter(|m| m.status == Status::Running)
        .map(|m| m.crew.as_str())
        .collect();
    let mut parts = vec![format!("{} ok", ok.len())];
    if !ok.is_empty() {
        parts[0] = format!("{} ok ({})", ok.len(), fold(&ok));
    }
    if !running.is_empty() {
        parts.insert(0, format!("{} running ({})", running.len(), fold(&running)));
    }
    if !failed.is_empty() {
        parts.push(format!("{} failed ({})", failed.len(), failed.join(", ")));
    }
    if !unreachable.is_empty() {
        parts.push(format!(
            "{} unreachable ({})",
            unreachable.len(),
            fold(&unreachable)
        ));
    }
    let mut line = format!("{} crews: {}", members.len(), parts.join("; "));
    for m in members {
        match &m.status {
            Status::Unreachable(why) | Status::Failed { why, .. } if !why.is_empty() => {
                line.push_str(&format!("\nforeman: {}: {}", m.crew, Sanitizer::clean(why)));
            }
            _ => {}
        }
    }
    line
}

fn member_json(m: &Member) -> serde_json::Value {
    let (status, why) = match &m.status {
        Status::Ok => ("ok", None),
        Status::Running => ("running", None),
        Status::Failed { why, .. } => ("failed", Some(why.clone())),
        Status::Unreachable(why) => ("unreachable", Some(why.clone())),
    };
    serde_json::json!({
        "crew": m.crew,
        "status": status,
        "exit_code": m.code(),
        "job": m.job.as_ref().map(|j| format!("{}/{}", m.crew, j.handle)),
        "id": m.job.as_ref().map(|j| j.id.clone()),
        "output": String::from_utf8_lossy(&m.output),
        "output_cut": m.cut,
        "batch": m.job.as_ref().map(|j| j.batch.clone()),
        "error": why,
    })
}

/// Where a batch's outcome is kept for a rerun (`--crew @failed:ID`), as
/// Ansible keeps retry files: `$XDG_STATE_HOME/tasker/batches/ID.json`
/// (`~/.local/state/...`).
pub fn record_path(batch: &str) -> Option<std::path::PathBuf> {
    let base = std::env::var_os("XDG_STATE_HOME")
        .map(std::path::PathBuf::from)
        .filter(|p| p.is_absolute())
        .or_else(|| std::env::var_os("HOME").map(|h| std::path::Path::new(&h).join(".local/state")))?;
    Some(base.join("tasker").join("batches").join(format!("{batch}.json")))
}

/// Keeps which crews of `batch` did not succeed; best effort (a warning).
fn keep_record(batch: &str, members: &[Member]) {
    let Some(path) = record_path(batch) else { return };
    let crews: Vec<serde_json::Value> = members
        .iter()
        .map(|m| {
            let status = match m.status {
                Status::Ok => "ok",
                Status::Running => "running",
                Status::Failed { .. } => "failed",
                Status::Unreachable(_) => "unreachable",
            };
            serde_json::json!({ "crew": m.crew, "status": status, "exit_code": m.code() })
        })
        .collect();
    let text = serde_json::json!({ "batch": batch, "crews": crews }).to_string();
    let written = path
        .parent()
        .map_or(Ok(()), std::fs::create_dir_all)
        .and_then(|()| std::fs::write(&path, text));
    if let Err(e) = written {
        eprintln!(
            "foreman: could not keep the batch's outcome in {}: {e}",
            path.display()
        );
    }
}

/// The crews of `batch` that failed or were not reached, from its record.
pub fn failed_crews(batch: &str) -> Result<Vec<String>, String> {
    if !crew_batch_id(batch) {
        return Err(format!("{batch:?} is not a batch id (b- and hex digits)"));
    }
    let path = record_path(batch).ok_or("no home directory to find batches in")?;
    let text = std::fs::read_to_string(&path).map_err(|e| {
        format!(
            "no record of batch {batch} ({}: {e}): only a `run` on this machine keeps one",
            path.display()
        )
    })?;
    let record: serde_json::Value =
        serde_json::from_str(&text).map_err(|e| format!("{}: not a batch record: {e}", path.display()))?;
    let crews = record["crews"]
        .as_array()
        .ok_or_else(|| format!("{}: not a batch record", path.display()))?;
    Ok(crews
        .iter()
        .filter(|c| c["status"] != "ok")
        .filter_map(|c| c["crew"].as_str().map(str::to_owned))
        .collect())
}

/// What foreman makes: `b-` and hex (a record's name must be nothing else).
fn crew_batch_id(b: &str) -> bool {
    b.strip_prefix("b-")
        .is_some_and(|hex| !hex.is_empty() && hex.len() <= 32 && hex.bytes().all(|c| c.is_ascii_hexdigit()))
}
