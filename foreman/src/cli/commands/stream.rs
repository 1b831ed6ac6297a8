//! Attaching to a job's output, shared by `logs`, `run` and `attach`.

use std::io::Write as _;

use tasker_proto::v1 as pb;
use tasker_proto::v1::attach_job_request::open::From;
use tasker_proto::v1::attach_job_response::{Msg as Out, Output};

use crate::client::Crew;
use crate::client::attach::{self, OpenError, Opened};
use crate::failure::Failure;
use crate::sanitize::{Mode, Sanitizer};
use crate::terminal;
use crate::times::Stamper;

/// Opens an attach for a command; a crew that refuses it or never says
/// `Attached` is a failure with the crew's name.
pub async fn open(crew: &Crew, job: &str, from: From, write: bool) -> Result<Opened, Failure> {
    // Marks, so that the job's stderr can go to ours.
    let marks = attach::Times {
        marks: true,
        ..attach::Times::default()
    };
    open_timed(crew, job, from, write, marks).await
}

/// [`open`], asking for times too.
pub async fn open_timed(
    crew: &Crew,
    job: &str,
    from: From,
    write: bool,
    times: attach::Times,
) -> Result<Opened, Failure> {
    let request = attach::Request {
        job,
        from,
        write,
        queue: 16,
    };
    attach::open_timed(crew, request, times)
        .await
        .map_err(|e| match e {
            OpenError::Status(s) => Failure::from_status(&crew.name, &s),
            OpenError::NotStarted => Failure::Connection(format!("{}: the attach did not start", crew.name)),
        })
}

/// Where output goes: stdout, filtered when it is a terminal; the job's
/// stderr to stderr if asked ([`split`](Sink::split)), or one stream only
/// ([`only`](Sink::only)); each line after its time if asked. Streams and
/// times come from the marks the output was opened with.
#[derive(Debug)]
pub struct Sink {
    /// Per stream written to: stdout, stderr.
    filters: [Option<Sanitizer>; 2],
    buf: Vec<u8>,
    /// Per stream of the job, so that one's unfinished line does not take
    /// the other's time.
    stampers: Option<[Stamper; 2]>,
    stamped: Vec<u8>,
    split: bool,
    only: Option<pb::Stream>,
}

impl Sink {
    /// `mode`: how much a terminal may be sent; `raw` turns filtering off.
    pub fn stdout(mode: Mode, raw: bool) -> Self {
        Self {
            filters: [
                (!raw && terminal::stdout_is_tty()).then(|| Sanitizer::new(mode)),
                (!raw && terminal::stderr_is_tty()).then(|| Sanitizer::new(mode)),
            ],
            buf: Vec::new(),
            stampers: None,
            stamped: Vec::new(),
            split: false,
            only: None,
        }
    }

    /// Each line after its time (the output must be opened with marks).
    #[must_use]
    pub fn with_timestamps(mut self) -> Self {
        self.stampers = Some([Stamper::new(), Stamper::new()]);
        self
    }

    /// The job's stderr to our stderr, as if it ran here.
    #[must_use]
    pub fn split(mut self) -> Self {
        self.split = true;
        self
    }

    /// One stream only.
    #[must_use]
    pub fn only(mut self, stream: Option<pb::Stream>) -> Self {
        self.only = stream;
        self
    }

    /// Writes one output message.
    pub fn output(&mut self, o: &Output) -> Result<(), Failure> {
        if !self.split && self.only.is_none() && self.stampers.is_none() {
            return self.write_to(1, &o.data);
        }
        for (offset, data, mark) in crate::times::segments(o.offset, &o.data, &o.marks) {
            // Output stored without marks is stdout's.
            let stream = mark.map_or(pb::Stream::Stdout, pb::Mark::stream);
            if self.only.is_some_and(|only| only != stream) {
                continue;
            }
            let fd = if self.split && stream == pb::Stream::Stderr {
                2
            } else {
                1
            };
            let Some(stampers) = &mut self.stampers else {
                self.write_to(fd, data)?;
                continue;
            };
            let stamper = &mut stampers[usize::from(stream == pb::Stream::Stderr)];
            let mut stamped = std::mem::take(&mut self.stamped);
            stamped.clear();
            stamper.stamp(
                offset,
                data,
                mark.map(std::slice::from_ref).unwrap_or_default(),
                &mut stamped,
            );
            let written = self.write_to(fd, &stamped);
            self.stamped = stamped;
            written?;
        }
        Ok(())
    }

    /// Writes and flushes to stdout.
    pub fn write(&mut self, data: &[u8]) -> Result<(), Failure> {
        self.write_to(1, data)
    }

    /// Writes and flushes to fd 1 or 2. A closed stdout (`| head`) ends the
    /// command quietly with success.
    fn write_to(&mut self, fd: usize, data: &[u8]) -> Result<(), Failure> {
        let bytes = match &mut self.filters[fd - 1] {
            Some(f) => {
                self.buf.clear();
                f.feed(data, &mut self.buf);
                &self.buf[..]
            }
            None => data,
        };
        let written = if fd == 2 {
            write_stderr(bytes)
        } else {
            write_stdout(bytes)
        };
        match written {
            Ok(()) => Ok(()),
            Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => Err(Failure::Exit(0)),
            Err(e) => Err(Failure::Connection(format!("writing the output: {e}"))),
        }
    }
}

/// Writes the job's stderr to ours, unbuffered.
fn write_stderr(bytes: &[u8]) -> std::io::Result<()> {
    use std::io::Write as _;
    let mut err = std::io::stderr().lock();
    err.write_all(bytes)?;
    err.flush()
}

/// Writes straight to fd 1: std's stdout is line-buffered, which scans
/// every chunk for a newline and copies it once more, a tenth of the CPU
/// `logs -f` spends per GiB. Whatever std's stdout still holds goes first.
fn write_stdout(bytes: &[u8]) -> std::io::Result<()> {
    use std::os::fd::AsFd as _;
    let stdout = std::io::stdout();
    let mut out = stdout.lock();
    out.flush()?;
    let fd = out.as_fd();
    let mut rest = bytes;
    while !rest.is_empty() {
        match nix::unistd::write(fd, rest) {
            Ok(0) => return Err(std::io::ErrorKind::WriteZero.into()),
            Ok(n) => rest = &rest[n..],
            Err(nix::errno::Errno::EINTR) => {}
            Err(e) => return Err(e.into()),
        }
    }
    Ok(())
}

/// What the stream said last.
#[derive(Debug)]
pub enum Next {
    Data,
    Ended(Box<pb::Job>),
    /// The output reached the asked `until`.
    Until,
}

/// Reads one message: writes output to `sink`, reports drops on stderr.
/// Returns the offset reached.
pub async fn step(
    crew: &str,
    opened: &mut Opened,
    sink: &mut Sink,
    offset: &mut u64,
) -> Result<Next, Failure> {
    match opened.stream.message().await {
        Ok(Some(pb::AttachJobResponse { msg: Some(m) })) => match m {
            Out::Output(o) => {
                *offset = o.offset + o.data.len() as u64;
                sink.output(&o)?;
                Ok(Next::Data)
            }
            Out::Dropped(d) => {
                *offset = d.offset + d.len;
                eprintln!(
                    "foreman: {} bytes of output were dropped here (the crew keeps the newest part only)",
                    d.len
                );
                Ok(Next::Data)
            }
            Out::Ended(j) => Ok(Next::Ended(Box::new(j))),
            Out::Until(_) => Ok(Next::Until),
            Out::Attached(_) => Ok(Next::Data),
        },
        Ok(Some(_)) => Ok(Next::Data),
        // A follow ends with the job's final state; a stream that just
        // stops means the crew went away, and the job's fate is unknown.
        Ok(None) => Err(Failure::Connection(format!(
            "{crew}: the stream ended before the job did (did the crew restart?)"
        ))),
        Err(s) => Err(Failure::from_status(crew, &s)),
    }
}

/// One line on stderr about how a job ended (`run`, `attach`).
pub fn report_end(crew: &str, job: &pb::Job) {
    eprintln!("foreman: {}", crate::present::end_line(crew, job));
}

/// One line on stdout about how a job ended (`stop`, `wait`).
pub fn print_end(crew: &str, job: &pb::Job) -> Result<(), Failure> {
    crate::cli::output::outln!("{}", crate::present::end_line(crew, job));
    Ok(())
}
