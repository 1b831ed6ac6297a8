//! Starting a job's shim from the crew, and the crew's end of the link.
//!
//! The crew is multi-threaded, so it never forks without exec: the shim is
//! started with `posix_spawn` (what `std::process::Command` uses when it can)
//! with a clean environment, fd 0 = the shim's `SOCK_SEQPACKET` socket to
//! the crew, fd 1 = its init's, fd 2 = `/dev/null`, in a process group of its
//! own (a Ctrl-C meant for a crew in a terminal must not reach the jobs).
//! Everything else travels as `SCM_RIGHTS`.
//!
//! Starting a process, forking init and making namespaces costs over a
//! millisecond, most of a job's start: so the crew keeps a few shims ready
//! ([`IdleShim`]), and a job start only hands one its job ([`assign`]): the
//! command straight to init, the output to the shim.

use std::os::fd::{AsFd, AsRawFd, OwnedFd};
use std::os::unix::process::CommandExt as _;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};

use nix::sys::eventfd::{EfdFlags, EventFd};
use nix::sys::socket::{AddressFamily, MsgFlags, SockFlag, SockType, setsockopt, socketpair, sockopt};
use tokio::io::unix::AsyncFd;

use super::cgroup::JobCgroup;
use super::error::{EngineError, IoContext};
use super::spec::WinSize;
use tasker_shim::exec::{Stage, decode_failure};
use tasker_shim::wire::{self, INIT_CGROUPS_ENV, Launch, SHIMS_CGROUP_ENV, Serve, ToShim};

/// The crew's end of one shim.
#[derive(Debug)]
pub(crate) struct ShimLink {
    pub ctl: AsyncFd<OwnedFd>,
    pub events: AsyncFd<OwnedFd>,
    /// The shim's process, when this crew started it (an adopted shim is
    /// a previous crew's child, reaped by whoever inherited it).
    pub child: Option<Child>,
}

impl Drop for ShimLink {
    /// A link dropped with its child still in it (the crew let the job
    /// run on, or the task following it ended early: the runtime went, it
    /// panicked) leaves the shim to be reaped when it ends.
    fn drop(&mut self) {
        if let Some(child) = self.child.take() {
            reap_when_it_ends(child, Vec::new());
        }
    }
}

/// Shims this process started but no longer follows are still its
/// children: one thread for the process reaps each when it ends (polling,
/// so that a thousand left jobs cost one thread, not a thousand), then
/// removes the cgroups `then_remove` (a dismissed ready shim's slot),
/// should the process live on (an engine in a test, a crew that starts
/// another engine). It ends with the last of them.
fn reap_when_it_ends(child: Child, then_remove: Vec<PathBuf>) {
    static LEFT: std::sync::Mutex<Vec<(Child, Vec<PathBuf>)>> = std::sync::Mutex::new(Vec::new());
    let mut left = tasker_common::lock(&LEFT);
    let idle = left.is_empty();
    left.push((child, then_remove));
    if !idle {
        return;
    }
    let reaper = std::thread::Builder::new()
        .name("reap-left-shims".into())
        .spawn(|| {
            loop {
                std::thread::sleep(std::time::Duration::from_millis(100));
                let ended: Vec<Vec<PathBuf>> = {
                    let mut left = tasker_common::lock(&LEFT);
                    // Kept while running; gone once reaped (or reaped elsewhere).
                    let mut ended = Vec::new();
                    left.retain_mut(|(c, dirs)| {
                        let running = matches!(c.try_wait(), Ok(None));
                        if !running {
                            ended.push(std::mem::take(dirs));
                        }
                        running
                    });
                    ended
                };
                for dirs in ended {
                    super::cgroup::remove_slot(&dirs);
                }
                if tasker_common::lock(&LEFT).is_empty() {
                    return;
                }
            }
        });
    if let Err(e) = reaper {
        tracing::warn!(error = %e, "no thread to reap left shims: they stay zombies until the crew exits");
    }
}

/// A started shim waiting for its job, its init already in the job's
/// namespaces: the crew keeps a few, so a start does not wait for an exec,
/// a fork and the namespaces (together over a millisecond).
#[derive(Debug)]
pub(crate) struct IdleShim {
    ctl: OwnedFd,
    /// init's socket: the command goes straight to it.
    init: OwnedFd,
    child: Child,
    born: std::time::Instant,
    /// On hybrid hosts: the next job's id and the v1 cgroups its init
    /// joined while waiting (see `CgroupTree::create_slot`).
    slot: Option<Slot>,
}

/// A job id reserved for a ready shim, with the v1 cgroup directories made
/// for it.
#[derive(Debug)]
pub(crate) struct Slot {
    pub id: super::job::JobId,
    pub dirs: Vec<PathBuf>,
    /// The user the directories were made under: the shim is for that
    /// user's jobs only (its init's forks count against that user's caps).
    pub owner: String,
}

impl IdleShim {
    pub(crate) fn pid(&self) -> u32 {
        self.child.id()
    }

    pub(crate) fn age(&self) -> std::time::Duration {
        self.born.elapsed()
    }

    /// Lets the shim go: it and its init see EOF and exit. Returns at
    /// once: the shim is reaped, and its slot's cgroups removed, once it
    /// has ended (an init still joining its slot's v1 cgroups under load
    /// can take seconds to see its EOF).
    pub(crate) fn dismiss(self) {
        let Self {
            ctl,
            init,
            child,
            slot,
            ..
        } = self;
        drop((ctl, init));
        reap_when_it_ends(child, slot.map(|s| s.dirs).unwrap_or_default());
    }

    /// The user whose jobs only this shim may take (on a hybrid host, the
    /// one its slot was made under); None: anyone's.
    pub(crate) fn owner(&self) -> Option<&str> {
        self.slot.as_ref().map(|s| s.owner.as_str())
    }

    /// The job id reserved for this shim, if it has a slot.
    pub(crate) fn slot_id(&self) -> Option<&super::job::JobId> {
        self.slot.as_ref().map(|s| &s.id)
    }

    /// The v1 cgroups this shim's init is in (those of its slot, once
    /// [`wait_joined`](Self::wait_joined) said so): the command inherits
    /// these and joins only the others.
    pub(crate) fn init_in(&self) -> Vec<PathBuf> {
        self.slot.as_ref().map(|s| s.dirs.clone()).unwrap_or_default()
    }

    /// Waits (bounded, blocking) until init is in every cgroup of its
    /// slot, or `give_up` says so. A shim is only ready once that is
    /// settled: a start must know whether init counts against the job's
    /// pids limit, and which cgroups the command must join itself.
    pub(crate) fn wait_joined(&self, timeout: std::time::Duration, give_up: impl Fn() -> bool) -> bool {
        let Some(slot) = &self.slot else { return true };
        let deadline = std::time::Instant::now() + timeout;
        let joined = |d: &PathBuf| {
            std::fs::read_to_string(d.join("cgroup.procs")).is_ok_and(|procs| !procs.trim().is_empty())
        };
        let mut pause = std::time::Duration::from_millis(1);
        loop {
            if slot.dirs.iter().all(joined) {
                return true;
            }
            if std::time::Instant::now() >= deadline || give_up() {
                return false;
            }
            std::thread::sleep(pause);
            pause = (pause * 2).min(std::time::Duration::from_millis(50));
        }
    }
}

/// Starts a shim; it joins the crew's `shims` cgroup and prepares its init,
/// which joins the `slot`'s cgroups. `claim`: for tests, the protocol
/// version the shim is to claim it speaks.
pub(crate) fn spawn_idle(
    shim_path: &Path,
    shims_cgroup: &Path,
    slot: Option<Slot>,
    claim: Option<u32>,
) -> Result<IdleShim, EngineError> {
    // Blocking for the shim and init (they wait in poll or recv), not for
    // the crew, whose end goes to the runtime.
    let pair = || -> Result<(OwnedFd, OwnedFd), EngineError> {
        let (crew, other) = socketpair(
            AddressFamily::Unix,
            SockType::SeqPacket,
            None,
            SockFlag::SOCK_CLOEXEC,
        )
        .map_err(|e| shim_err("socketpair", e))?;
        let flags =
            nix::fcntl::fcntl(&crew, nix::fcntl::FcntlArg::F_GETFL).map_err(|e| shim_err("fcntl", e))?;
        let flags = nix::fcntl::OFlag::from_bits_truncate(flags) | nix::fcntl::OFlag::O_NONBLOCK;
        nix::fcntl::fcntl(&crew, nix::fcntl::FcntlArg::F_SETFL(flags)).map_err(|e| shim_err("fcntl", e))?;
        Ok((crew, other))
    };
    let (ctl, shim_ctl) = pair()?;
    let (init, shim_init) = pair()?;
    let mut command = Command::new(shim_path);
    command
        .arg0("tasker-shim")
        // Room for the title the shim writes there once it has a job.
        .arg(" ".repeat(wire::TITLE_ROOM))
        .env_clear()
        .env(SHIMS_CGROUP_ENV, shims_cgroup)
        .stdin(Stdio::from(shim_ctl))
        .stdout(Stdio::from(shim_init))
        .stderr(Stdio::null())
        .process_group(0);
    if let Some(version) = claim {
        command.env(wire::PROTOCOL_OVERRIDE_ENV, version.to_string());
    }
    if let Some(slot) = &slot {
        let dirs: Vec<&std::ffi::OsStr> = slot.dirs.iter().map(|d| d.as_os_str()).collect();
        command.env(INIT_CGROUPS_ENV, dirs.join(std::ffi::OsStr::new("\n")));
    }
    let child = match command.spawn() {
        Ok(c) => c,
        Err(e) => {
            if let Some(slot) = &slot {
                super::cgroup::remove_slot(&slot.dirs);
            }
            return Err(EngineError::io("start shim", shim_path, e));
        }
    };
    Ok(IdleShim {
        ctl,
        init,
        child,
        born: std::time::Instant::now(),
        slot,
    })
}

fn shim_err(what: &str, e: nix::errno::Errno) -> EngineError {
    EngineError::Shim(format!("{what}: {}", e.desc()))
}

/// What a ready shim and its init need to run a job.
pub(crate) struct Assignment<'a> {
    pub launch: Launch,
    pub serve: Serve,
    /// See `EngineConfig::test_serve_delay`.
    pub serve_delay: std::time::Duration,
    /// The pty's size, for a tty job.
    pub tty: Option<WinSize>,
    pub output: std::os::fd::BorrowedFd<'a>,
    /// The jobs directory: the shim makes its socket and exit record there.
    pub jobs_dir: std::os::fd::BorrowedFd<'a>,
    pub cgroup: &'a JobCgroup,
}

/// The job's stdio: init's ends (for the command) and the shim's.
struct JobStdio {
    init: Vec<OwnedFd>,
    shim: Vec<OwnedFd>,
}

/// Pipes for a pipe job (stdout and stderr apart: the shim marks which
/// bytes came from which), or a pty whose slave belongs to the job's user, as login(1)
/// leaves it.
fn job_stdio(tty: Option<WinSize>, uid: u32) -> Result<JobStdio, EngineError> {
    use nix::fcntl::OFlag;
    let err = |what: &str, e: nix::errno::Errno| shim_err(what, e);
    match tty {
        Some(size) => {
            use nix::pty::{grantpt, posix_openpt, ptsname_r, unlockpt};
            let master = posix_openpt(OFlag::O_RDWR | OFlag::O_NOCTTY | OFlag::O_CLOEXEC)
                .map_err(|e| err("pty", e))?;
            grantpt(&master).map_err(|e| err("grantpt", e))?;
            unlockpt(&master).map_err(|e| err("unlockpt", e))?;
            let name = ptsname_r(&master).map_err(|e| err("ptsname", e))?;
            let slave = nix::fcntl::open(
                name.as_str(),
                OFlag::O_RDWR | OFlag::O_NOCTTY | OFlag::O_CLOEXEC,
                nix::sys::stat::Mode::empty(),
            )
            .map_err(|e| err("open pty", e))?;
            nix::unistd::fchown(&slave, Some(nix::unistd::Uid::from_raw(uid)), None)
                .map_err(|e| err("chown pty", e))?;
            let master: OwnedFd = master.into();
            tasker_shim::sys::set_winsize(master.as_fd(), size.rows, size.cols)
                .map_err(|e| err("resize pty", e))?;
            Ok(JobStdio {
                init: vec![slave],
                shim: vec![master],
            })
        }
        None => {
            let (in_r, in_w) = nix::unistd::pipe2(OFlag::O_CLOEXEC).map_err(|e| err("pipe", e))?;
            let (out_r, out_w) = nix::unistd::pipe2(OFlag::O_CLOEXEC).map_err(|e| err("pipe", e))?;
            let (err_r, err_w) = nix::unistd::pipe2(OFlag::O_CLOEXEC).map_err(|e| err("pipe", e))?;
            // Larger pipes mean fewer wakeups per byte; best effort. stderr
            // keeps the default: it is rarely the firehose.
            let _ = nix::fcntl::fcntl(&out_w, nix::fcntl::FcntlArg::F_SETPIPE_SZ(OUTPUT_PIPE_SIZE));
            Ok(JobStdio {
                init: vec![in_r, out_w, err_w],
                shim: vec![out_r, in_w, err_r],
            })
        }
    }
}

/// The output pipe's capacity.
const OUTPUT_PIPE_SIZE: i32 = 1 << 20;

/// The read end of a job's exec-result pipe: EOF when the command's
/// `execve` succeeded (the write end is close-on-exec), else 8 bytes of
/// `(stage, errno)`. The crew reads it itself, one hop shorter than asking
/// the shim.
#[derive(Debug)]
pub(crate) struct ExecResult(AsyncFd<OwnedFd>);

impl ExecResult {
    /// `Ok(())` once the command runs; `Err(Some(..))` with the stage and
    /// errno of a failed start, `Err(None)` if the pipe itself failed.
    pub(crate) async fn wait(self) -> Result<(), Option<(Stage, i32)>> {
        let mut buf = [0u8; 8];
        let mut got = 0;
        loop {
            let mut guard = self.0.readable().await.map_err(|_| None)?;
            match nix::unistd::read(self.0.get_ref(), &mut buf[got..]) {
                Ok(0) if got == 0 => return Ok(()),
                Ok(0) => return Err(decode_failure(&buf[..got])),
                Ok(n) => {
                    got += n;
                    if got == buf.len() {
                        return Err(decode_failure(&buf));
                    }
                }
                Err(nix::errno::Errno::EAGAIN) => guard.clear_ready(),
                Err(nix::errno::Errno::EINTR) => {}
                Err(_) => return Err(None),
            }
        }
    }
}

/// Hands a job to an idle shim. On failure the shim is reaped and the error
/// says whether a fresh shim might do better (`Shim`) or not.
pub(crate) fn assign(idle: IdleShim, mut job: Assignment<'_>) -> Result<(ShimLink, ExecResult), EngineError> {
    let init_in = idle.init_in();
    let IdleShim {
        ctl, init, mut child, ..
    } = idle;
    let fail = |child: &mut Child, e: EngineError| {
        let _ = child.kill();
        let _ = child.wait();
        e
    };
    // The command joins the v1 cgroups its init is not in already.
    let v1_procs = job
        .cgroup
        .open_v1_procs(&init_in)
        .map_err(|e| fail(&mut child, e))?;
    job.launch.v1_procs = v1_procs.len() as u32;
    let launch = job.launch.encode();
    if launch.len() > wire::MAX_MESSAGE {
        return Err(fail(
            &mut child,
            EngineError::InvalidSpec("argv and environment are too large".into()),
        ));
    }
    // A datagram must fit the send buffer whole; as root the crew may raise
    // it past the system default for a large argv.
    if launch.len() > 100 << 10
        && let Err(e) = setsockopt(&init, sockopt::SndBufForce, &(launch.len() + (64 << 10)))
    {
        return Err(fail(&mut child, shim_err("SO_SNDBUFFORCE", e)));
    }
    let prepared = (|| -> Result<_, EngineError> {
        let eventfd: OwnedFd = EventFd::from_flags(EfdFlags::EFD_CLOEXEC | EfdFlags::EFD_NONBLOCK)
            .map_err(|e| shim_err("eventfd", e))?
            .into();
        let (exec_r, exec_w) =
            nix::unistd::pipe2(nix::fcntl::OFlag::O_CLOEXEC | nix::fcntl::OFlag::O_NONBLOCK)
                .map_err(|e| shim_err("pipe", e))?;
        let stdio = job_stdio(job.tty, job.launch.uid)?;
        let mut to_init = vec![exec_w];
        to_init.extend(stdio.init);
        to_init.push(job.cgroup.open_unified()?);
        to_init.push(job.cgroup.open_unified_procs()?);
        to_init.extend(v1_procs);
        let mut to_shim = vec![
            job.jobs_dir
                .try_clone_to_owned()
                .ctx("dup", Path::new("jobs directory"))?,
            job.output.try_clone_to_owned().ctx("dup", Path::new("output"))?,
            eventfd.try_clone().ctx("dup", Path::new("eventfd"))?,
        ];

        to_shim.extend(stdio.shim);
        Ok((eventfd, exec_r, to_init, to_shim))
    })();
    let (eventfd, exec_r, to_init, to_shim) = match prepared {
        Ok(p) => p,
        Err(e) => return Err(fail(&mut child, e)),
    };
    // init first: the command's start is what the caller waits for. A
    // ready shim whose init is gone fails here, before anything ran: that,
    // and only that, is worth a retry with a fresh shim.
    if let Err(e) = send_with_fds(&init, &launch, &to_init) {
        return Err(fail(&mut child, EngineError::ShimStale(e.desc().to_owned())));
    }
    super::failpoint::here("start:launched");
    if !job.serve_delay.is_zero() {
        std::thread::sleep(job.serve_delay);
    }
    // Past this point the command may be running: a failure kills the shim,
    // whose init takes the job's namespace down with it.
    let serve = ToShim::Serve(job.serve).encode();
    if serve.len() > 100 << 10
        && let Err(e) = setsockopt(&ctl, sockopt::SndBufForce, &(serve.len() + (64 << 10)))
    {
        return Err(fail(&mut child, shim_err("SO_SNDBUFFORCE", e)));
    }
    if let Err(e) = send_with_fds(&ctl, &serve, &to_shim) {
        return Err(fail(&mut child, shim_err("hand the job to its shim", e)));
    }
    // Our copies go: only the shim, init and the command hold them now (in
    // particular the exec pipe's write end, whose closing is the signal).
    drop((to_init, to_shim, init));
    let ctl = register(ctl).ctx("register", Path::new("shim socket"))?;
    let events = register(eventfd).ctx("register", Path::new("eventfd"))?;
    let exec = register(exec_r).ctx("register", Path::new("exec pipe"))?;
    Ok((
        ShimLink {
            ctl,
            events,
            child: Some(child),
        },
        ExecResult(exec),
    ))
}

fn send_with_fds(sock: &OwnedFd, msg: &[u8], fds: &[OwnedFd]) -> nix::Result<()> {
    let fds: Vec<std::os::fd::BorrowedFd<'_>> = fds.iter().map(AsFd::as_fd).collect();
    tasker_shim::sys::send_with_fds(sock.as_fd(), msg, &fds)
}

pub(crate) fn register(fd: OwnedFd) -> std::io::Result<AsyncFd<OwnedFd>> {
    // SAFETY: an OwnedFd stays open for exactly as long as the AsyncFd that
    // owns it, which is what registration requires.
    unsafe { AsyncFd::register(fd) }.map_err(std::io::Error::from)
}

/// Sends one message without blocking. `Ok(false)`: the socket is full, try
/// again when it is writable.
pub(crate) fn try_send(link: &ShimLink, msg: &[u8]) -> std::io::Result<bool> {
    match nix::sys::socket::send(
        link.ctl.get_ref().as_raw_fd(),
        msg,
        MsgFlags::MSG_NOSIGNAL | MsgFlags::MSG_DONTWAIT,
    ) {
        Ok(_) => Ok(true),
        Err(nix::errno::Errno::EAGAIN) => Ok(false),
        Err(e) => Err(e.into()),
    }
}

/// Receives one message without blocking: `Ok(None)` when there is none,
/// `Ok(Some(0))` at EOF (the shim is gone).
pub(crate) fn try_recv(link: &ShimLink, buf: &mut [u8]) -> std::io::Result<Option<usize>> {
    recv_seqpacket(link.ctl.get_ref().as_fd(), buf)
}

/// One `recv` on a `SOCK_SEQPACKET` socket that does not lose the peer's
/// last messages. A peer that exits with messages of ours unread (the shim
/// reporting the job's end just as we send it stdin's EOF) makes the kernel
/// set ECONNRESET on our socket, and the next `recv` returns that error
/// *before* the messages still queued for us. The error is reported once
/// and then cleared, so it is a notice, not the end: read on, and the queue
/// drains and ends in a real EOF.
fn recv_seqpacket(fd: std::os::fd::BorrowedFd<'_>, buf: &mut [u8]) -> std::io::Result<Option<usize>> {
    let mut resets = 0;
    loop {
        match nix::sys::socket::recv(fd.as_raw_fd(), buf, MsgFlags::MSG_DONTWAIT) {
            Ok(n) => return Ok(Some(n)),
            Err(nix::errno::Errno::EAGAIN) => return Ok(None),
            // Bounded: the kernel clears the error when it reports it.
            Err(nix::errno::Errno::ECONNRESET) if resets < 2 => resets += 1,
            Err(e) => return Err(e.into()),
        }
    }
}

/// Drains the eventfd; returns whether it had been rung.
pub(crate) fn drain_eventfd(link: &ShimLink) -> bool {
    let mut buf = [0u8; 8];
    matches!(nix::unistd::read(link.events.get_ref().as_fd(), &mut buf), Ok(8))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The shim's last message must survive the shim closing its end with
    /// ours unread (which makes the kernel report ECONNRESET first).
    #[test]
    fn last_message_survives_a_reset() {
        let (crew, shim) = socketpair(
            AddressFamily::Unix,
            SockType::SeqPacket,
            None,
            SockFlag::SOCK_CLOEXEC,
        )
        .unwrap();
        let send = |fd: &OwnedFd, msg: &[u8]| {
            nix::sys::socket::send(fd.as_raw_fd(), msg, MsgFlags::MSG_NOSIGNAL).unwrap();
        };
        send(&crew, b"stdin EOF, never read");
        send(&shim, b"exited");
        drop(shim);

        // What the kernel does without our handling: the reset comes first.
        let (probe_crew, probe_shim) = socketpair(
            AddressFamily::Unix,
            SockType::SeqPacket,
            None,
            SockFlag::SOCK_CLOEXEC,
        )
        .unwrap();
        send(&probe_crew, b"unread");
        send(&probe_shim, b"exited");
        drop(probe_shim);
        let mut buf = [0u8; 64];
        let raw = nix::sys::socket::recv(probe_crew.as_raw_fd(), &mut buf, MsgFlags::MSG_DONTWAIT);
        assert_eq!(
            raw,
            Err(nix::errno::Errno::ECONNRESET),
            "the kernel's behaviour this guards against"
        );

        let mut buf = [0u8; 64];
        let n = recv_seqpacket(crew.as_fd(), &mut buf).unwrap();
        assert_eq!(n.map(|n| &buf[..n]), Some(&b"exited"[..]));
        assert_eq!(
            recv_seqpacket(crew.as_fd(), &mut buf).unwrap(),
            Some(0),
            "then EOF"
        );
    }
}
