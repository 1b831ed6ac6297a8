//! The shim: one small process per job (`tasker-shim`), started by the crew.
//!
//! It owns everything that must outlive a crew restart: the job's output
//! file (it is the only writer), the job's stdin (pipe or pty master), and
//! the job's PID 1 (its child). The crew talks to it over one
//! `SOCK_SEQPACKET` socket (fd 0) with the messages of [`wire`], and learns of
//! new output from an eventfd the shim adds to after every write.
//!
//! Life of a shim:
//! 1. Receive [`wire::Spawn`] and its fds. Make the stdin/output pipes (or a
//!    pty), then `unshare(CLONE_NEWPID)` and fork: the child is the job's
//!    PID 1 ([`init`]), which makes the command ([`child`]).
//! 2. The command's `execve` closes the exec-result pipe, whose read end the
//!    crew holds: the crew learns the job started without a word from us.
//! 3. Loop: move output to the file, stdin to the job, crew requests to init.
//! 4. When init has exited (so every process of the job is gone) and the
//!    output is drained, report `Exited` and exit.
//!
//! The shim is single-threaded and does not use tokio: it is small, and its
//! forks are ordinary forks.
//!
//! Layout: `wire.rs` (messages), `init.rs` (PID 1), `child.rs` (the steps
//! before exec), `sink.rs` (the output file).

pub(crate) mod child;
mod init;
pub(crate) mod sink;
pub mod wire;

use std::ffi::CString;
use std::fs::File;
use std::io::IoSliceMut;
use std::os::fd::{AsFd as _, AsRawFd, BorrowedFd, FromRawFd as _, OwnedFd, RawFd};
use std::process::ExitCode;
use std::time::{Duration, Instant};

use nix::fcntl::{FcntlArg, OFlag, fcntl};
use nix::poll::{PollFd, PollFlags, PollTimeout, poll};
use nix::sched::{CloneFlags, unshare};
use nix::sys::signal::{SigSet, SigmaskHow, Signal, sigprocmask};
use nix::sys::signalfd::{SfdFlags, SignalFd};
use nix::sys::socket::{ControlMessageOwned, MsgFlags, recv, recvmsg, send};
use nix::unistd::{ForkResult, Pid, fork, pipe2};

use self::child::{ChildPlan, Stage, exec_candidates};
use self::init::InitPlan;
use self::sink::{Flow, Sink};
use self::wire::{FromShim, SPAWN_FIXED_FDS, Spawn, ToShim};

/// Bytes of stdin the shim holds for a job that is not reading; past this it
/// stops reading the crew's socket, which pushes back to the client.
const STDIN_BUFFER: usize = 256 << 10;

/// The output pipe's capacity: larger pipes mean fewer wakeups per byte.
const OUTPUT_PIPE_SIZE: i32 = 1 << 20;

/// Entry point of the `tasker-shim` binary.
pub fn main() -> ExitCode {
    // SAFETY: fd 0 is the crew's socket by construction (see spawn.rs); this
    // is the only place it is taken ownership of.
    let ctl = unsafe { OwnedFd::from_raw_fd(0) };
    match run(ctl) {
        Ok(()) => ExitCode::SUCCESS,
        Err(_) => ExitCode::FAILURE,
    }
}

struct Crew {
    sock: OwnedFd,
    gone: bool,
}

impl Crew {
    /// Sends one message; waits (bounded) when the socket is full. A crew
    /// that is gone is not an error: the job goes on.
    fn send(&mut self, msg: &FromShim) {
        if self.gone {
            return;
        }
        let bytes = msg.encode();
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            match send(
                self.sock.as_raw_fd(),
                &bytes,
                MsgFlags::MSG_NOSIGNAL | MsgFlags::MSG_DONTWAIT,
            ) {
                Ok(_) => return,
                Err(nix::errno::Errno::EAGAIN | nix::errno::Errno::EINTR) if Instant::now() < deadline => {
                    let mut fds = [PollFd::new(self.sock.as_fd(), PollFlags::POLLOUT)];
                    let _ = poll(&mut fds, PollTimeout::from(100u16));
                }
                Err(_) => {
                    self.gone = true;
                    return;
                }
            }
        }
    }

    fn log(&mut self, message: String) {
        self.send(&FromShim::Log { message });
    }
}

fn run(ctl: OwnedFd) -> Result<(), String> {
    // SAFETY: prctl(2) and close_range(2) on this process only. Nothing but
    // fds 0-2 should be open; anything else leaked from the crew is closed
    // before it could reach a job.
    unsafe {
        libc::prctl(libc::PR_SET_DUMPABLE, 0, 0, 0, 0);
        libc::syscall(libc::SYS_close_range, 3u32, u32::MAX, 0);
    }
    // The helpers must survive memory pressure that the jobs cause.
    let _ = std::fs::write("/proc/self/oom_score_adj", "-999");

    let mut crew = Crew {
        sock: ctl,
        gone: false,
    };
    let (spawn, fds) = receive_spawn(&crew.sock)?;
    set_title(&spawn.title);
    let mut fds = fds.into_iter();
    let mut next = || fds.next().ok_or("spawn message carried too few fds");
    let output = File::from(next()?);
    let eventfd = next()?;
    // The write end of the crew's exec-result pipe: it closes on the
    // command's exec (success), or carries (stage, errno).
    let errpipe = next()?;
    let cgroup_dir = next()?;
    let cgroup_procs = next()?;
    let v1_procs: Vec<OwnedFd> = (0..spawn.v1_procs).map(|_| next()).collect::<Result<_, _>>()?;
    let sink = Sink::new(output, eventfd, spawn.output_limit, spawn.drop_unit);

    let started = start(&spawn, sink, errpipe.as_raw_fd(), cgroup_dir, cgroup_procs, v1_procs);
    match started {
        Ok(mut job) => {
            // Only init and the command hold the pipe now: its EOF tells
            // the crew the exec happened.
            drop(errpipe);
            job.event_loop(&mut crew);
            Ok(())
        }
        Err(reason) => {
            child::report_failure(errpipe.as_raw_fd(), Stage::Setup, 0);
            drop(errpipe);
            crew.send(&FromShim::StartFailed {
                reason: reason.clone(),
            });
            crew.send(&FromShim::Exited {
                status: None,
                output_end: 0,
                output_error: None,
            });
            Err(reason)
        }
    }
}

/// Waits (as long as it takes: the crew keeps a few shims ready) for the
/// job. The crew closing its end means it has no job for us.
fn receive_spawn(sock: &OwnedFd) -> Result<(Spawn, Vec<OwnedFd>), String> {
    let mut pfd = [PollFd::new(sock.as_fd(), PollFlags::POLLIN)];
    loop {
        match poll(&mut pfd, PollTimeout::NONE) {
            Ok(_) => break,
            Err(nix::errno::Errno::EINTR) => {}
            Err(e) => return Err(e.to_string()),
        }
    }
    // The datagram's real size, so the buffer fits it exactly.
    let len = recv(
        sock.as_raw_fd(),
        &mut [],
        MsgFlags::MSG_PEEK | MsgFlags::MSG_TRUNC,
    )
    .map_err(|e| format!("peek spawn message: {e}"))?;
    if len > wire::MAX_MESSAGE {
        return Err("spawn message too large".into());
    }
    let mut buf = vec![0u8; len];
    let mut iov = [IoSliceMut::new(&mut buf)];
    let mut cmsg = nix::cmsg_space!([RawFd; 64]);
    let msg = recvmsg::<()>(
        sock.as_raw_fd(),
        &mut iov,
        Some(&mut cmsg),
        MsgFlags::MSG_CMSG_CLOEXEC,
    )
    .map_err(|e| format!("receive spawn message: {e}"))?;
    let mut fds = Vec::new();
    for c in msg.cmsgs().map_err(|e| e.to_string())? {
        if let ControlMessageOwned::ScmRights(raw) = c {
            // SAFETY: SCM_RIGHTS installed these fds in this process just now.
            fds.extend(raw.into_iter().map(|fd| unsafe { OwnedFd::from_raw_fd(fd) }));
        }
    }
    let n = msg.bytes;
    match ToShim::decode(&buf[..n]).map_err(|e| e.to_string())? {
        ToShim::Spawn(s) if fds.len() == SPAWN_FIXED_FDS + s.v1_procs as usize => Ok((s, fds)),
        ToShim::Spawn(_) => Err("spawn message carried the wrong number of fds".into()),
        _ => Err("the first message was not a spawn".into()),
    }
}

/// Writes the job's title over the blank argument the shim was started with,
/// so `ps` on the host shows `tasker-shim job-3 <id>` (what setproctitle
/// does; the argument area is the shim's own memory).
fn set_title(title: &[u8]) {
    use std::os::unix::fs::FileExt as _;
    let Ok(stat) = std::fs::read_to_string("/proc/self/stat") else {
        return;
    };
    let Some((_, after_comm)) = stat.rsplit_once(')') else {
        return;
    };
    // Fields 48 and 49 (arg_start, arg_end); field 3 follows the comm.
    let fields: Vec<&str> = after_comm.split_whitespace().collect();
    let (Some(Ok(start)), Some(Ok(end))) = (
        fields.get(45).map(|f| f.parse::<u64>()),
        fields.get(46).map(|f| f.parse::<u64>()),
    ) else {
        return;
    };
    let name = b"tasker-shim\0";
    let room = (end - start) as usize;
    if room <= name.len() + 1 {
        return;
    }
    let mut area = vec![b' '; room - name.len()];
    let n = title.len().min(area.len() - 1);
    area[..n].copy_from_slice(&title[..n]);
    *area.last_mut().expect("room checked") = 0;
    if let Ok(mem) = std::fs::OpenOptions::new().write(true).open("/proc/self/mem") {
        let _ = mem.write_all_at(&area, start + name.len() as u64);
    }
}

/// How the job's stdio is wired on the shim's side.
enum Stdio {
    Pipes {
        /// Output pipe, read end.
        out: Option<OwnedFd>,
        /// Stdin pipe, write end.
        stdin: Option<OwnedFd>,
    },
    Tty {
        master: OwnedFd,
        out_open: bool,
    },
}

struct Job {
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

fn cstring(bytes: &[u8], what: &str) -> Result<CString, String> {
    CString::new(bytes).map_err(|_| format!("{what} contains a NUL byte"))
}

fn start(
    spawn: &Spawn,
    sink: Sink,
    errpipe: RawFd,
    cgroup_dir: OwnedFd,
    cgroup_procs: OwnedFd,
    v1_procs: Vec<OwnedFd>,
) -> Result<Job, String> {
    let sys = |what: &str, e: nix::errno::Errno| format!("{what}: {}", e.desc());
    let cloexec = OFlag::O_CLOEXEC;
    let (status_r, status_w) = pipe2(cloexec).map_err(|e| sys("pipe", e))?;
    let (ctl_r, ctl_w) = pipe2(cloexec).map_err(|e| sys("pipe", e))?;

    // The job's side of stdio, and ours.
    let (stdio, child_side): (Stdio, Vec<OwnedFd>) = match spawn.tty {
        Some((rows, cols)) => {
            let (master, slave) = open_pty(rows, cols, spawn.uid).map_err(|e| sys("pty", e))?;
            (
                Stdio::Tty {
                    master,
                    out_open: true,
                },
                vec![slave],
            )
        }
        None => {
            let (in_r, in_w) = pipe2(cloexec).map_err(|e| sys("pipe", e))?;
            let (out_r, out_w) = pipe2(cloexec).map_err(|e| sys("pipe", e))?;
            // Best effort: a smaller pipe only costs throughput.
            let _ = fcntl(&out_w, FcntlArg::F_SETPIPE_SZ(OUTPUT_PIPE_SIZE));
            for fd in [&out_r, &in_w] {
                set_nonblocking(fd.as_fd()).map_err(|e| sys("fcntl", e))?;
            }
            (
                Stdio::Pipes {
                    out: Some(out_r),
                    stdin: Some(in_w),
                },
                vec![in_r, out_w],
            )
        }
    };

    let path_var = spawn.env.iter().find_map(|e| e.strip_prefix(b"PATH=".as_slice()));
    let (candidates, _) = exec_candidates(&spawn.argv[0], path_var);
    let cap_last_cap = std::fs::read_to_string("/proc/sys/kernel/cap_last_cap")
        .ok()
        .and_then(|s| s.trim().parse().ok())
        .unwrap_or(40);
    let (tty_fd, stdin_fd, stdout_fd) = match spawn.tty {
        Some(_) => (Some(child_side[0].as_raw_fd()), -1, -1),
        None => (None, child_side[0].as_raw_fd(), child_side[1].as_raw_fd()),
    };
    let plan = ChildPlan {
        join_procs: v1_procs.iter().map(AsRawFd::as_raw_fd).collect(),
        stdin: stdin_fd,
        stdout: stdout_fd,
        tty: tty_fd,
        uid: spawn.uid,
        gid: spawn.gid,
        groups: spawn.groups.clone(),
        cap_last_cap,
        cwd: cstring(&spawn.cwd, "cwd")?,
        candidates: candidates
            .iter()
            .map(|c| cstring(c, "program"))
            .collect::<Result<_, _>>()?,
        argv: spawn
            .argv
            .iter()
            .map(|a| cstring(a, "an argument"))
            .collect::<Result<_, _>>()?,
        env: spawn
            .env
            .iter()
            .map(|e| cstring(e, "the environment"))
            .collect::<Result<_, _>>()?,
        errpipe,
    };
    let init_plan = InitPlan {
        host_network: spawn.host_network,
        child: plan,
        cgroup_dir: spawn.clone_into_cgroup.then(|| cgroup_dir.as_raw_fd()),
        cgroup_procs: cgroup_procs.as_raw_fd(),
        child_only: child_side.iter().map(AsRawFd::as_raw_fd).collect(),
        status_w: status_w.as_raw_fd(),
        ctl_r: ctl_r.as_raw_fd(),
    };

    // Signals for the shim's own loop; init inherits the mask and keeps it.
    let mut mask = SigSet::empty();
    mask.add(Signal::SIGCHLD);
    sigprocmask(SigmaskHow::SIG_BLOCK, Some(&mask), None).map_err(|e| sys("sigprocmask", e))?;
    let sigfd = SignalFd::with_flags(&mask, SfdFlags::SFD_CLOEXEC | SfdFlags::SFD_NONBLOCK)
        .map_err(|e| sys("signalfd", e))?;

    unshare(CloneFlags::CLONE_NEWPID).map_err(|e| sys("unshare(CLONE_NEWPID)", e))?;
    let mut shim_only: Vec<RawFd> = vec![
        status_r.as_raw_fd(),
        ctl_w.as_raw_fd(),
        sigfd.as_raw_fd(),
    ];
    shim_only.extend(stdio_fds(&stdio));
    shim_only.extend(sink.raw_fds());

    // SAFETY: the shim is single-threaded, so the child may do anything.
    match unsafe { fork() }.map_err(|e| sys("fork", e))? {
        ForkResult::Child => init::run(init_plan, &shim_only),
        ForkResult::Parent { child } => {
            drop(init_plan);
            drop((
                child_side,
                status_w,
                ctl_r,
                cgroup_dir,
                cgroup_procs,
                v1_procs,
            ));
            let job = Job {
                sink,
                stdio,
                stdin_buf: Vec::new(),
                stdin_close_pending: false,
                stdin_dead: false,
                init: child,
                init_ctl: Some(ctl_w),
                status_r: Some(status_r),
                sigfd,
                status: None,
                init_exited: false,
            };
            Ok(job)
        }
    }
}

fn stdio_fds(stdio: &Stdio) -> Vec<RawFd> {
    match stdio {
        Stdio::Pipes { out, stdin } => out.iter().chain(stdin.iter()).map(AsRawFd::as_raw_fd).collect(),
        Stdio::Tty { master, .. } => vec![master.as_raw_fd()],
    }
}

fn set_nonblocking(fd: BorrowedFd<'_>) -> nix::Result<()> {
    let flags = OFlag::from_bits_truncate(fcntl(fd, FcntlArg::F_GETFL)?);
    fcntl(fd, FcntlArg::F_SETFL(flags | OFlag::O_NONBLOCK)).map(drop)
}

/// Opens a pty pair of the given size; the slave is the job user's, as
/// login(1) leaves it, so programs that reopen their terminal can.
fn open_pty(rows: u16, cols: u16, uid: u32) -> nix::Result<(OwnedFd, OwnedFd)> {
    use nix::pty::{grantpt, posix_openpt, ptsname_r, unlockpt};
    let master = posix_openpt(OFlag::O_RDWR | OFlag::O_NOCTTY | OFlag::O_CLOEXEC)?;
    grantpt(&master)?;
    unlockpt(&master)?;
    let name = ptsname_r(&master)?;
    let slave = nix::fcntl::open(
        name.as_str(),
        OFlag::O_RDWR | OFlag::O_NOCTTY | OFlag::O_CLOEXEC,
        nix::sys::stat::Mode::empty(),
    )?;
    nix::unistd::fchown(&slave, Some(nix::unistd::Uid::from_raw(uid)), None)?;
    let master: OwnedFd = master.into();
    set_winsize(master.as_fd(), rows, cols)?;
    set_nonblocking(master.as_fd())?;
    Ok((master, slave))
}

fn set_winsize(fd: BorrowedFd<'_>, rows: u16, cols: u16) -> nix::Result<()> {
    let ws = libc::winsize {
        ws_row: rows,
        ws_col: cols,
        ws_xpixel: 0,
        ws_ypixel: 0,
    };
    // SAFETY: TIOCSWINSZ reads a winsize we own.
    let r = unsafe { libc::ioctl(fd.as_raw_fd(), libc::TIOCSWINSZ, &ws) };
    nix::errno::Errno::result(r).map(drop)
}

impl Job {
    fn event_loop(&mut self, crew: &mut Crew) {
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
            Stdio::Pipes { out, .. } => out.is_some(),
            Stdio::Tty { out_open, .. } => *out_open,
        }
    }

    fn poll_once(&mut self, crew: &mut Crew) {
        // Which fd sits at which index of the poll set.
        let mut slots: Vec<(Slot, RawFd, PollFlags)> = Vec::with_capacity(5);
        let want_stdin = !self.stdin_buf.is_empty();
        if !crew.gone && self.stdin_buf.len() < STDIN_BUFFER {
            slots.push((Slot::Crew, crew.sock.as_raw_fd(), PollFlags::POLLIN));
        }
        match &self.stdio {
            Stdio::Pipes { out, stdin } => {
                if let Some(fd) = out {
                    slots.push((Slot::Output, fd.as_raw_fd(), PollFlags::POLLIN));
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
        if let Err(e) = poll(&mut pfds, PollTimeout::NONE)
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
        for (slot, revents) in ready {
            match slot {
                Slot::Crew => self.read_crew(crew),
                Slot::Output => self.pump_output(),
                Slot::Stdin => self.write_stdin(crew),
                Slot::Tty => {
                    if revents.intersects(PollFlags::POLLIN | PollFlags::POLLHUP | PollFlags::POLLERR) {
                        self.pump_output();
                    }
                    if revents.contains(PollFlags::POLLOUT) {
                        self.write_stdin(crew);
                    }
                }
                Slot::Signal => self.reap(),
                Slot::Status => self.read_status(),
            }
        }
        if self.init_exited && self.out_open() {
            // Every process of the job is gone (init's exit killed the
            // namespace), so what is in the pipe is all there will be.
            self.pump_output();
            self.close_output();
        }
    }

    fn read_crew(&mut self, crew: &mut Crew) {
        let mut buf = vec![0u8; wire::STDIN_CHUNK + 16];
        while self.stdin_buf.len() < STDIN_BUFFER {
            let n = match recv(crew.sock.as_raw_fd(), &mut buf, MsgFlags::MSG_DONTWAIT) {
                Ok(0) => {
                    crew.gone = true;
                    return;
                }
                Ok(n) => n,
                Err(nix::errno::Errno::EAGAIN | nix::errno::Errno::EINTR) => return,
                Err(_) => {
                    crew.gone = true;
                    return;
                }
            };
            match ToShim::decode(&buf[..n]) {
                Ok(msg) => self.handle(msg, crew),
                Err(e) => crew.log(e.to_string()),
            }
        }
    }

    fn handle(&mut self, msg: ToShim, crew: &mut Crew) {
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
            ToShim::Spawn(_) => crew.log("a second spawn message was ignored".into()),
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

    fn write_stdin(&mut self, crew: &mut Crew) {
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

    /// Moves output until the source is empty, within a budget so the other
    /// fds get their turn.
    fn pump_output(&mut self) {
        for _ in 0..64 {
            let flow = match &self.stdio {
                Stdio::Pipes { out: Some(fd), .. } => self.sink.drain_pipe(fd.as_fd()),
                Stdio::Tty {
                    master,
                    out_open: true,
                } => self.sink.drain_tty(master.as_fd()),
                _ => return,
            };
            match flow {
                Flow::Moved => {}
                Flow::Again => return,
                Flow::Eof => {
                    self.close_output();
                    return;
                }
            }
        }
    }

    fn close_output(&mut self) {
        match &mut self.stdio {
            Stdio::Pipes { out, .. } => *out = None,
            Stdio::Tty { out_open, .. } => *out_open = false,
        }
    }

    fn reap(&mut self) {
        while let Ok(Some(_)) = self.sigfd.read_signal() {}
        match nix::sys::wait::waitpid(self.init, Some(nix::sys::wait::WaitPidFlag::WNOHANG)) {
            Ok(nix::sys::wait::WaitStatus::StillAlive) => {}
            Ok(_) | Err(_) => {
                self.init_exited = true;
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

    fn finish(&mut self, crew: &mut Crew) {
        self.read_status();
        self.sink.finish();
        crew.send(&FromShim::Exited {
            status: self.status,
            output_end: self.sink.end(),
            output_error: self.sink.error().map(str::to_owned),
        });
    }
}

#[derive(Clone, Copy, Debug)]
enum Slot {
    Crew,
    Output,
    Stdin,
    Tty,
    Signal,
    Status,
}
