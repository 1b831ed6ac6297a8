//! The shim: one small process per job (`tasker-shim`), started by the crew.
//!
//! It owns everything that must outlive a crew restart: the job's output
//! file (it is the only writer), the job's stdin (pipe or pty master), and
//! the job's PID 1 (its child). The crew talks to it over one
//! `SOCK_SEQPACKET` socket (fd 0) with the messages of [`wire`], and learns of
//! new output from an eventfd the shim adds to after every write.
//!
//! Life of a shim:
//! 1. Ready (the crew keeps a few): `unshare(CLONE_NEWPID)` and fork; the
//!    child is the job's PID 1 (`init.rs`), which prepares the job's mount
//!    and network namespaces at once and waits on its own socket (fd 1 when
//!    the shim starts) for the command. A job's start then costs only what
//!    is particular to it.
//! 2. The crew sends init the command ([`wire::Launch`]), and the shim the
//!    job to serve ([`wire::Serve`]): the output file, the eventfd, and its
//!    ends of the job's stdio. init clones the command into the job's
//!    cgroup (`exec.rs`); its exec closes the crew's exec-result pipe.
//! 3. Loop: move output to the file, stdin to the job, crew requests to init.
//! 4. When init has exited (so every process of the job is gone) and the
//!    output is drained, report `Exited` and exit.
//!
//! The shim is single-threaded and does not use tokio: it is small, and its
//! fork is an ordinary fork.

use std::fs::File;
use std::os::fd::{AsFd as _, AsRawFd, BorrowedFd, FromRawFd as _, OwnedFd, RawFd};
use std::process::ExitCode;
use std::time::SystemTime;

use nix::fcntl::OFlag;
use nix::poll::{PollFd, PollFlags, PollTimeout, poll};
use nix::sched::{CloneFlags, unshare};
use nix::sys::signal::{SigSet, SigmaskHow, Signal, sigprocmask};
use nix::sys::signalfd::{SfdFlags, SignalFd};
use nix::sys::socket::{MsgFlags, recv};
use nix::unistd::{ForkResult, Pid, fork, pipe2};

use crate::crew_link::{CrewLink, JobSummary, write_exit_record};
use crate::init;
use crate::output::KeptFrom;
use crate::sink::{Flow, Sink};
use crate::sys::{recv_with_fds, rewrite_cmdline, set_nonblocking, set_winsize};
use crate::timeindex::{self, IndexWriter, Stream};
use crate::wire::{self, ExitRecord, FromShim, Serve, ToShim};

/// How long a connected crew has to say it has the job's end on record
/// before the shim writes it down itself.
const RECORDED_WITHIN: std::time::Duration = std::time::Duration::from_secs(10);

/// Bytes of stdin the shim holds for a job that is not reading; past this it
/// stops reading the crew's socket, which pushes back to the client.
const STDIN_BUFFER: usize = 256 << 10;

/// Entry point of the `tasker-shim` binary.
pub fn main() -> ExitCode {
    // SAFETY: fds 0 and 1 are the crew's sockets by construction (see
    // spawn.rs); this is the only place they are taken ownership of.
    let (ctl, init_sock) = unsafe { (OwnedFd::from_raw_fd(0), OwnedFd::from_raw_fd(1)) };
    match run(ctl, init_sock) {
        Ok(()) => ExitCode::SUCCESS,
        Err(_) => ExitCode::FAILURE,
    }
}

/// The shim's ends of the pipes it shares with init.
struct InitLink {
    pid: Pid,
    /// shim → init: `T` (SIGTERM all) and `K` (SIGKILL all).
    ctl_w: OwnedFd,
    /// init → shim: the command's wait status.
    status_r: OwnedFd,
}

fn run(ctl: OwnedFd, init_sock: OwnedFd) -> Result<(), String> {
    // SAFETY: prctl(2) and close_range(2) on this process only. Nothing but
    // fds 0-2 should be open; anything else leaked from the crew is closed
    // before it could reach a job.
    unsafe {
        libc::prctl(libc::PR_SET_DUMPABLE, 0, 0, 0, 0);
        libc::syscall(libc::SYS_close_range, 3u32, u32::MAX, 0);
    }
    // The helpers must survive memory pressure that the jobs cause.
    let _ = std::fs::write("/proc/self/oom_score_adj", "-999");
    // Into the crew's cgroup for helpers, before init is forked, so init
    // lands there too.
    if let Some(dir) = std::env::var_os(wire::SHIMS_CGROUP_ENV) {
        let _ = std::fs::write(std::path::Path::new(&dir).join("cgroup.procs"), "0");
    }

    let mut crew = CrewLink::new(ctl);
    let sys = |what: &str, e: nix::errno::Errno| format!("{what}: {}", e.desc());
    let (status_r, status_w) = pipe2(OFlag::O_CLOEXEC).map_err(|e| sys("pipe", e))?;
    let (ctl_r, ctl_w) = pipe2(OFlag::O_CLOEXEC).map_err(|e| sys("pipe", e))?;
    let mut mask = SigSet::empty();
    mask.add(Signal::SIGCHLD);
    sigprocmask(SigmaskHow::SIG_BLOCK, Some(&mask), None).map_err(|e| sys("sigprocmask", e))?;
    let sigfd = SignalFd::with_flags(&mask, SfdFlags::SFD_CLOEXEC | SfdFlags::SFD_NONBLOCK)
        .map_err(|e| sys("signalfd", e))?;

    unshare(CloneFlags::CLONE_NEWPID).map_err(|e| sys("unshare(CLONE_NEWPID)", e))?;
    let shim_only = [
        crew.connected().map_or(-1, |s| s.as_raw_fd()),
        status_r.as_raw_fd(),
        ctl_w.as_raw_fd(),
        sigfd.as_raw_fd(),
    ];
    let init_args = init::InitArgs {
        sock: init_sock.as_raw_fd(),
        status_w: status_w.as_raw_fd(),
        ctl_r: ctl_r.as_raw_fd(),
    };
    // SAFETY: the shim is single-threaded, so the child may do anything.
    let pid = match unsafe { fork() }.map_err(|e| sys("fork", e))? {
        ForkResult::Child => init::run(init_args, &shim_only),
        ForkResult::Parent { child } => child,
    };
    drop((init_sock, status_w, ctl_r));
    // fd 1 was init's socket: keep it taken, by /dev/null, so nothing the
    // shim opens later lands on stdout.
    if let Ok(null) = std::fs::OpenOptions::new().write(true).open("/dev/null") {
        // SAFETY: dup2(2) onto fd 1, which we just closed.
        unsafe { libc::dup2(null.as_raw_fd(), 1) };
    }
    let init = InitLink { pid, ctl_w, status_r };

    let Some(sock) = crew.connected() else {
        return Ok(());
    };
    let Some((serve, fds, init_exited)) = wait_for_job(sock, &sigfd, init.pid)? else {
        // Dismissed by the crew: init has no job either. It goes with us,
        // reaped here rather than left to whoever inherits it.
        let _ = nix::sys::signal::kill(init.pid, Signal::SIGKILL);
        let _ = nix::sys::wait::waitpid(init.pid, None);
        return Ok(());
    };
    set_title(&serve.title);
    let mut fds = fds.into_iter();
    let mut next = || fds.next().ok_or("the job came with too few fds");
    let dir = next()?;
    let id = String::from_utf8(serve.job_id.clone()).map_err(|_| "the job's id is not text")?;
    if id.is_empty() || !id.bytes().all(|b| b.is_ascii_alphanumeric()) {
        return Err("the job's id is not a plain name".into());
    }
    let listen_dir = dir.try_clone().map_err(|e| format!("dup: {e}"))?;
    if let Err(e) = crew.listen(listen_dir, &id) {
        // The job runs all the same; only a later crew could not find it.
        crew.log(format!("cannot make the job's socket {id}.sock: {}", e.desc()));
    }
    let output = File::from(next()?);
    let eventfd = next()?;
    let kept = KeptFrom::map(&output, true).map_err(|e| format!("map the output's header: {e}"))?;
    let index = time_index(&dir, &id, serve.output_limit);

    let stdio = if serve.tty {
        let master = next()?;
        set_nonblocking(master.as_fd()).map_err(|e| sys("fcntl", e))?;
        Stdio::Tty {
            master,
            out_open: true,
        }
    } else {
        let (out, stdin, err) = (next()?, next()?, next()?);
        for fd in [&out, &stdin, &err] {
            set_nonblocking(fd.as_fd()).map_err(|e| sys("fcntl", e))?;
        }
        Stdio::Pipes {
            out: Some(out),
            err: Some(err),
            stdin: Some(stdin),
        }
    };
    let mut job = Job {
        id,
        dir,
        record: serve.record,
        ended_at: None,
        sink: Sink::new(output, eventfd, kept, serve.output_limit, serve.drop_unit, index),
        stdio,
        stdin_buf: Vec::new(),
        stdin_close_pending: false,
        stdin_dead: false,
        init: init.pid,
        init_ctl: Some(init.ctl_w),
        status_r: Some(init.status_r),
        sigfd,
        status: None,
        init_exited,
    };
    if init_exited {
        job.ended_at = Some(SystemTime::now());
        job.read_status();
    }
    job.event_loop(&mut crew);
    Ok(())
}

/// The job's time index, made in the jobs directory at its first mark.
fn time_index(dir: &OwnedFd, id: &str, output_limit: u64) -> IndexWriter {
    let dir = dir.try_clone();
    let name = timeindex::file_name(id);
    let create = Box::new(move || {
        use std::os::unix::fs::OpenOptionsExt as _;
        let dir = dir?;
        // Through /proc/self/fd: the directory fd, not a path the shim
        // would have to be told.
        let path = crate::sys::path_in(dir.as_fd(), &name);
        std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(true)
            .mode(0o600)
            .custom_flags(libc::O_CLOEXEC | libc::O_NOFOLLOW)
            .open(path)
    });
    IndexWriter::new(create, timeindex::index_limit(output_limit))
}

/// Waits, as long as it takes (the crew keeps a few shims ready), for the
/// job to serve. `None`: the crew closed its end (it has no job for us).
/// The flag says init has already exited: a quick command may run and end
/// between the crew's message to init and its message to us.
fn wait_for_job(
    sock: BorrowedFd<'_>,
    sigfd: &SignalFd,
    init: Pid,
) -> Result<Option<(Serve, Vec<OwnedFd>, bool)>, String> {
    let mut init_gone = false;
    loop {
        let mut pfd = vec![PollFd::new(sock, PollFlags::POLLIN)];
        if !init_gone {
            pfd.push(PollFd::new(sigfd.as_fd(), PollFlags::POLLIN));
        }
        match poll(&mut pfd, PollTimeout::NONE) {
            Ok(_) | Err(nix::errno::Errno::EINTR) => {}
            Err(e) => return Err(e.to_string()),
        }
        let sock_ready = pfd[0].revents().is_some_and(|r| !r.is_empty());
        let init_ready = pfd
            .get(1)
            .and_then(PollFd::revents)
            .is_some_and(|r| !r.is_empty());
        drop(pfd);
        if init_ready {
            while let Ok(Some(_)) = sigfd.read_signal() {}
            init_gone = !matches!(
                nix::sys::wait::waitpid(init, Some(nix::sys::wait::WaitPidFlag::WNOHANG)),
                Ok(nix::sys::wait::WaitStatus::StillAlive)
            );
        }
        if sock_ready {
            return Ok(receive_serve(sock)?.map(|(serve, fds)| (serve, fds, init_gone)));
        }
    }
}

fn receive_serve(sock: BorrowedFd<'_>) -> Result<Option<(Serve, Vec<OwnedFd>)>, String> {
    let Some((msg, fds)) =
        recv_with_fds(sock, wire::MAX_MESSAGE).map_err(|e| format!("receive the job: {}", e.desc()))?
    else {
        return Ok(None);
    };
    match ToShim::decode(&msg).map_err(|e| e.to_string())? {
        ToShim::Serve(s) if fds.len() == s.fd_count() => Ok(Some((s, fds))),
        ToShim::Serve(_) => Err("the job came with the wrong number of fds".into()),
        _ => Err("the first message was not the job".into()),
    }
}

/// Writes `title` over the blank argument the shim was started with, so
/// `ps` on the host shows `tasker-shim job-3 <id>`.
fn set_title(title: &[u8]) {
    rewrite_cmdline(b"tasker-shim", title);
}

/// How the job's stdio is wired on the shim's side.
enum Stdio {
    Pipes {
        /// stdout's pipe, read end.
        out: Option<OwnedFd>,
        /// stderr's pipe, read end.
        err: Option<OwnedFd>,
        /// Stdin pipe, write end.
        stdin: Option<OwnedFd>,
    },
    Tty {
        master: OwnedFd,
        out_open: bool,
    },
}

struct Job {
    /// The job's id; names its socket and exit record in `dir`.
    id: String,
    /// The jobs directory.
    dir: OwnedFd,
    /// The crew's record of the job (`Serve::record`).
    record: Vec<u8>,
    /// When init was seen to exit.
    ended_at: Option<SystemTime>,
    sink: Sink,
    stdio: Stdio,
    stdin_buf: Vec<u8>,
    stdin_close_pending: bool,
    stdin_dead: bool,
    init: Pid,
    init_ctl: Option<OwnedFd>,
    status_r: Option<OwnedFd>,
    sigfd: SignalFd,
    status: Option<i32>,
    init_exited: bool,
}

impl Job {
    fn event_loop(&mut self, crew: &mut CrewLink) {
        loop {
            if self.init_exited && !self.out_open() {
                break;
            }
            self.poll_once(crew);
        }
        self.finish(crew);
    }

    fn out_open(&self) -> bool {
        match &self.stdio {
            Stdio::Pipes { out, err, .. } => out.is_some() || err.is_some(),
            Stdio::Tty { out_open, .. } => *out_open,
        }
    }

    fn poll_once(&mut self, crew: &mut CrewLink) {
        // Which fd sits at which index of the poll set.
        let mut slots: Vec<(Slot, RawFd, PollFlags)> = Vec::with_capacity(5);
        let want_stdin = !self.stdin_buf.is_empty();
        if let Some(sock) = crew.connected()
            && self.stdin_buf.len() < STDIN_BUFFER
        {
            slots.push((Slot::Crew, sock.as_raw_fd(), PollFlags::POLLIN));
        }
        for fd in crew.rendezvous_fds() {
            slots.push((Slot::Rendezvous, fd, PollFlags::POLLIN));
        }
        match &self.stdio {
            Stdio::Pipes { out, err, stdin } => {
                if let Some(fd) = out {
                    slots.push((Slot::Output(Stream::Out), fd.as_raw_fd(), PollFlags::POLLIN));
                }
                if let Some(fd) = err {
                    slots.push((Slot::Output(Stream::Err), fd.as_raw_fd(), PollFlags::POLLIN));
                }
                if let (Some(fd), true) = (stdin, want_stdin) {
                    slots.push((Slot::Stdin, fd.as_raw_fd(), PollFlags::POLLOUT));
                }
            }
            Stdio::Tty { master, out_open } => {
                let mut flags = PollFlags::empty();
                if *out_open {
                    flags |= PollFlags::POLLIN;
                }
                if want_stdin && !self.stdin_dead {
                    flags |= PollFlags::POLLOUT;
                }
                if !flags.is_empty() {
                    slots.push((Slot::Tty, master.as_raw_fd(), flags));
                }
            }
        }
        slots.push((Slot::Signal, self.sigfd.as_raw_fd(), PollFlags::POLLIN));
        if let Some(fd) = &self.status_r {
            slots.push((Slot::Status, fd.as_raw_fd(), PollFlags::POLLIN));
        }
        let mut pfds: Vec<PollFd<'_>> = slots
            .iter()
            // SAFETY: every fd in `slots` is owned by `self` or `crew` and
            // stays open until the poll returns.
            .map(|(_, fd, flags)| PollFd::new(unsafe { BorrowedFd::borrow_raw(*fd) }, *flags))
            .collect();
        if let Err(e) = poll(&mut pfds, crew.poll_timeout())
            && e != nix::errno::Errno::EINTR
        {
            crew.log(format!("poll: {e}"));
        }
        let ready: Vec<(Slot, PollFlags)> = slots
            .iter()
            .zip(&pfds)
            .filter_map(|((slot, _, _), p)| p.revents().filter(|r| !r.is_empty()).map(|r| (*slot, r)))
            .collect();
        drop(pfds);
        if !crew.rendezvous_fds().is_empty() {
            // Also when nothing is ready: a pending crew may have timed out.
            crew.rendezvous(&JobSummary {
                record: &self.record,
                stdin_open: !self.stdin_dead && !self.stdin_close_pending,
                output_end: self.sink.end(),
                eventfd: self.sink.notify_fd(),
            });
        }
        for (slot, revents) in ready {
            match slot {
                Slot::Crew => self.read_crew(crew),
                Slot::Output(stream) => self.pump_output(stream),
                Slot::Stdin => self.write_stdin(crew),
                Slot::Tty => {
                    if revents.intersects(PollFlags::POLLIN | PollFlags::POLLHUP | PollFlags::POLLERR) {
                        self.pump_output(Stream::Out);
                    }
                    if revents.contains(PollFlags::POLLOUT) {
                        self.write_stdin(crew);
                    }
                }
                Slot::Rendezvous => {}
                Slot::Signal => self.reap(),
                Slot::Status => self.read_status(),
            }
        }
        if self.init_exited && self.out_open() {
            // Every process of the job is gone (init's exit killed the
            // namespace), so what is in the pipes is all there will be.
            self.pump_output(Stream::Out);
            self.close_output(Stream::Out);
            self.pump_output(Stream::Err);
            self.close_output(Stream::Err);
        }
        if let Some(failed) = self.sink.take_index_failure() {
            crew.log(failed);
        }
    }

    fn read_crew(&mut self, crew: &mut CrewLink) {
        let mut buf = vec![0u8; wire::STDIN_CHUNK + 16];
        while self.stdin_buf.len() < STDIN_BUFFER {
            let Some(sock) = crew.connected() else { return };
            let n = match recv(sock.as_raw_fd(), &mut buf, MsgFlags::MSG_DONTWAIT) {
                Ok(0) => {
                    crew.lost();
                    return;
                }
                Ok(n) => n,
                Err(nix::errno::Errno::EAGAIN | nix::errno::Errno::EINTR) => return,
                Err(_) => {
                    crew.lost();
                    return;
                }
            };
            match ToShim::decode(&buf[..n]) {
                Ok(msg) => self.handle(msg, crew),
                Err(e) => crew.log(e.to_string()),
            }
        }
    }

    fn handle(&mut self, msg: ToShim, crew: &mut CrewLink) {
        match msg {
            ToShim::Stdin(bytes) => {
                if self.stdin_dead || self.stdin_close_pending {
                    crew.send(&FromShim::StdinClosed {
                        reason: "stdin is closed".into(),
                    });
                } else {
                    self.stdin_buf.extend_from_slice(&bytes);
                }
            }
            ToShim::CloseStdin => {
                self.stdin_close_pending = true;
                if self.stdin_buf.is_empty() {
                    self.close_stdin();
                }
            }
            ToShim::Resize { rows, cols } => {
                if let Stdio::Tty { master, .. } = &self.stdio
                    && let Err(e) = set_winsize(master.as_fd(), rows, cols)
                {
                    crew.log(format!("resize: {e}"));
                }
            }
            ToShim::Terminate => self.tell_init(b'T'),
            ToShim::Kill => self.tell_init(b'K'),
            ToShim::Serve(_) => crew.log("a second job for one shim was ignored".into()),
            ToShim::Hello { .. } => crew.log("a hello on an introduced connection was ignored".into()),
            ToShim::Recorded => crew.log("a job's end on record before it ended was ignored".into()),
        }
    }

    fn tell_init(&mut self, byte: u8) {
        if let Some(fd) = &self.init_ctl {
            let _ = nix::unistd::write(fd, &[byte]);
        }
    }

    fn close_stdin(&mut self) {
        if let Stdio::Pipes { stdin, .. } = &mut self.stdio {
            *stdin = None;
        }
        self.stdin_dead = true;
    }

    fn write_stdin(&mut self, crew: &mut CrewLink) {
        let fd = match &self.stdio {
            Stdio::Pipes { stdin: Some(fd), .. } => fd.as_raw_fd(),
            Stdio::Tty { master, .. } => master.as_raw_fd(),
            Stdio::Pipes { stdin: None, .. } => return,
        };
        while !self.stdin_buf.is_empty() {
            // SAFETY: write(2) from our buffer to an fd we own.
            let n = unsafe { libc::write(fd, self.stdin_buf.as_ptr().cast(), self.stdin_buf.len()) };
            if n > 0 {
                self.stdin_buf.drain(..n as usize);
                continue;
            }
            let err = std::io::Error::last_os_error();
            match err.raw_os_error() {
                Some(libc::EAGAIN | libc::EINTR) => return,
                _ => {
                    self.stdin_buf.clear();
                    self.close_stdin();
                    crew.send(&FromShim::StdinClosed {
                        reason: format!("the job closed its stdin ({err})"),
                    });
                    return;
                }
            }
        }
        self.stdin_buf.shrink_to(STDIN_BUFFER.min(64 << 10));
        if self.stdin_close_pending {
            self.close_stdin();
        }
    }

    /// Moves a stream's output until its source is empty, within a budget
    /// so the other fds get their turn. (A tty job has one stream.)
    fn pump_output(&mut self, stream: Stream) {
        for _ in 0..64 {
            let flow = match (&self.stdio, stream) {
                (Stdio::Pipes { out: Some(fd), .. }, Stream::Out)
                | (Stdio::Pipes { err: Some(fd), .. }, Stream::Err) => {
                    self.sink.drain_pipe(fd.as_fd(), stream)
                }
                (
                    Stdio::Tty {
                        master,
                        out_open: true,
                    },
                    Stream::Out,
                ) => self.sink.drain_tty(master.as_fd()),
                _ => return,
            };
            match flow {
                Flow::Moved => {}
                Flow::Again => return,
                Flow::Eof => {
                    self.close_output(stream);
                    return;
                }
            }
        }
    }

    fn close_output(&mut self, stream: Stream) {
        match (&mut self.stdio, stream) {
            (Stdio::Pipes { out, .. }, Stream::Out) => *out = None,
            (Stdio::Pipes { err, .. }, Stream::Err) => *err = None,
            (Stdio::Tty { out_open, .. }, _) => *out_open = false,
        }
    }

    fn reap(&mut self) {
        while let Ok(Some(_)) = self.sigfd.read_signal() {}
        match nix::sys::wait::waitpid(self.init, Some(nix::sys::wait::WaitPidFlag::WNOHANG)) {
            Ok(nix::sys::wait::WaitStatus::StillAlive) => {}
            Ok(_) | Err(_) => {
                self.init_exited = true;
                self.ended_at.get_or_insert_with(SystemTime::now);
                self.read_status();
            }
        }
    }

    fn read_status(&mut self) {
        let Some(fd) = &self.status_r else { return };
        let mut buf = [0u8; 4];
        match nix::unistd::read(fd, &mut buf) {
            Ok(4) => self.status = Some(i32::from_ne_bytes(buf)),
            Ok(_) => self.status_r = None,
            Err(nix::errno::Errno::EAGAIN | nix::errno::Errno::EINTR) => {}
            Err(_) => self.status_r = None,
        }
    }

    /// Every process of the job is gone and its output is on disk. A crew
    /// that is connected hears of it and says when it has it on record;
    /// otherwise (no crew, or one that went or did not answer) the end goes
    /// to the exit record, for the next crew. Then the socket goes.
    fn finish(&mut self, crew: &mut CrewLink) {
        self.read_status();
        let ended_at = self.ended_at.unwrap_or_else(SystemTime::now);
        let record = ExitRecord {
            status: self.status,
            output_end: self.sink.end(),
            output_error: self.sink.error(),
            ended_at_ns: ended_at
                .duration_since(SystemTime::UNIX_EPOCH)
                .map_or(0, |d| d.as_nanos() as u64),
            record: std::mem::take(&mut self.record),
        };
        crew.send(&FromShim::Exited {
            status: record.status,
            output_end: record.output_end,
            output_error: record.output_error.clone(),
        });
        if !crew.wait_recorded(RECORDED_WITHIN)
            && let Err(e) = write_exit_record(self.dir.as_fd(), &self.id, &record)
        {
            crew.log(format!("cannot write the exit record {}.exit: {e}", self.id));
        }
        crew.stop_listening();
    }
}

#[derive(Clone, Copy, Debug)]
enum Slot {
    Crew,
    Rendezvous,
    Output(Stream),
    Stdin,
    Tty,
    Signal,
    Status,
}
