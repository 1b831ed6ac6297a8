//! Attaching to a job's output, shared by `logs`, `run` and `attach`.

use std::io::Write as _;

use tasker_proto::v1 as pb;
use tasker_proto::v1::attach_job_request::open::From;
use tasker_proto::v1::attach_job_response::Msg as Out;

use crate::client::Crew;
use crate::client::attach::{self, OpenError, Opened};
use crate::failure::Failure;
use crate::sanitize::{Mode, Sanitizer};
use crate::terminal;

/// Opens an attach for a command; a crew that refuses it or never says
/// `Attached` is a failure with the crew's name.
pub async fn open(crew: &Crew, job: &str, from: From, write: bool) -> Result<Opened, Failure> {
    let request = attach::Request {
        job,
        from,
        write,
        queue: 16,
    };
    attach::open(crew, request).await.map_err(|e| match e {
        OpenError::Status(s) => Failure::from_status(&crew.name, &s),
        OpenError::NotStarted => Failure::Connection(format!("{}: the attach did not start", crew.name)),
    })
}

/// Where output goes: stdout, filtered when it is a terminal.
#[derive(Debug)]
pub struct Sink {
    filter: Option<Sanitizer>,
    buf: Vec<u8>,
}

impl Sink {
    /// `mode`: how much a terminal may be sent; `raw` turns filtering off.
    pub fn stdout(mode: Mode, raw: bool) -> Self {
        Self {
            filter: (!raw && terminal::stdout_is_tty()).then(|| Sanitizer::new(mode)),
            buf: Vec::new(),
        }
    }

    /// Writes and flushes. A closed stdout (`| head`) ends the command
    /// quietly with success.
    pub fn write(&mut self, data: &[u8]) -> Result<(), Failure> {
        let bytes = match &mut self.filter {
            Some(f) => {
                self.buf.clear();
                f.feed(data, &mut self.buf);
                &self.buf[..]
            }
            None => data,
        };
        match write_stdout(bytes) {
            Ok(()) => Ok(()),
            Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => Err(Failure::Exit(0)),
            Err(e) => Err(Failure::Connection(format!("writing the output: {e}"))),
        }
    }
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
                sink.write(&o.data)?;
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
