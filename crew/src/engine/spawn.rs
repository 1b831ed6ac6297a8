//! Starting a job's shim from the crew, and the crew's end of the link.
//!
//! The crew is multi-threaded, so it never forks without exec: the shim is
//! started with `posix_spawn` (what `std::process::Command` uses when it can)
//! with a clean environment, fd 0 = the crew's `SOCK_SEQPACKET` socket and
//! fds 1, 2 = `/dev/null`, in a process group of its own (a Ctrl-C meant for
//! a crew in a terminal must not reach the jobs). Everything else travels in
//! the first message as `SCM_RIGHTS`.
//!
//! Starting a process costs about a millisecond, most of a job's start: so
//! the crew keeps a few shims started and waiting ([`IdleShim`]), and a job
//! start only hands one its job ([`assign`]).

use std::io::IoSlice;
use std::os::fd::{AsFd as _, AsRawFd, OwnedFd, RawFd};
use std::os::unix::process::CommandExt as _;
use std::path::Path;
use std::process::{Child, Command, Stdio};

use nix::sys::eventfd::{EfdFlags, EventFd};
use nix::sys::socket::{
    AddressFamily, ControlMessage, MsgFlags, SockFlag, SockType, sendmsg, setsockopt, socketpair, sockopt,
};
use tokio::io::unix::AsyncFd;

use super::cgroup::JobCgroup;
use super::error::{EngineError, IoContext};
use super::shim::child::{Stage, decode_failure};
use super::shim::wire::{self, Spawn, ToShim};

/// The crew's end of one shim.
#[derive(Debug)]
pub(crate) struct ShimLink {
    pub ctl: AsyncFd<OwnedFd>,
    pub events: AsyncFd<OwnedFd>,
    pub child: Child,
}

/// A started shim waiting for its job: the crew keeps a few, so a start
/// does not wait for an exec (about a millisecond).
#[derive(Debug)]
pub(crate) struct IdleShim {
    sock: OwnedFd,
    child: Child,
}

impl IdleShim {
    pub(crate) fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Lets the shim go: it sees EOF and exits; this reaps it.
    pub(crate) fn dismiss(self) {
        let Self { sock, mut child } = self;
        drop(sock);
        let _ = child.wait();
    }
}

/// Starts a shim and moves it into the crew's `shims` cgroup.
pub(crate) fn spawn_idle(shim_path: &Path, shims_cgroup_procs: &Path) -> Result<IdleShim, EngineError> {
    let (crew_end, shim_end) = socketpair(
        AddressFamily::Unix,
        SockType::SeqPacket,
        None,
        SockFlag::SOCK_CLOEXEC | SockFlag::SOCK_NONBLOCK,
    )
    .map_err(|e| shim_err("socketpair", e))?;
    let child = Command::new(shim_path)
        .arg0("tasker-shim")
        // Room for the title the shim writes there once it has a job.
        .arg(" ".repeat(wire::TITLE_ROOM))
        .env_clear()
        .stdin(Stdio::from(shim_end))
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .process_group(0)
        .spawn()
        .ctx("start shim", shim_path)?;
    // Into the shims cgroup before it gets a job and forks the job's init,
    // so init lands there too.
    if let Err(e) = std::fs::write(shims_cgroup_procs, child.id().to_string()) {
        tracing::warn!(error = %e, "could not move a shim into the shims cgroup");
    }
    Ok(IdleShim {
        sock: crew_end,
        child,
    })
}

fn shim_err(what: &str, e: nix::errno::Errno) -> EngineError {
    EngineError::Shim(format!("{what}: {}", e.desc()))
}

/// What a shim needs to run a job.
pub(crate) struct Assignment<'a> {
    pub spawn: Spawn,
    pub output: std::os::fd::BorrowedFd<'a>,
    pub cgroup: &'a JobCgroup,
}

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
pub(crate) fn assign(idle: IdleShim, job: Assignment<'_>) -> Result<(ShimLink, ExecResult), EngineError> {
    let IdleShim { sock, mut child } = idle;
    let fail = |child: &mut Child, e: EngineError| {
        let _ = child.kill();
        let _ = child.wait();
        e
    };
    let message = ToShim::Spawn(job.spawn).encode();
    if message.len() > wire::MAX_MESSAGE {
        return Err(fail(
            &mut child,
            EngineError::InvalidSpec("argv and environment are too large".into()),
        ));
    }
    // A datagram must fit the send buffer whole; as root the crew may raise
    // it past the system default for a large argv.
    if message.len() > 100 << 10
        && let Err(e) = setsockopt(&sock, sockopt::SndBufForce, &(message.len() + (64 << 10)))
    {
        return Err(fail(&mut child, shim_err("SO_SNDBUFFORCE", e)));
    }
    let prepared = (|| -> Result<(OwnedFd, OwnedFd, Vec<OwnedFd>), EngineError> {
        let eventfd: OwnedFd = EventFd::from_flags(EfdFlags::EFD_CLOEXEC | EfdFlags::EFD_NONBLOCK)
            .map_err(|e| shim_err("eventfd", e))?
            .into();
        let (exec_r, exec_w) = nix::unistd::pipe2(nix::fcntl::OFlag::O_CLOEXEC | nix::fcntl::OFlag::O_NONBLOCK)
            .map_err(|e| shim_err("pipe", e))?;
        let mut fds: Vec<OwnedFd> = vec![
            job.output.try_clone_to_owned().ctx("dup", Path::new("output"))?,
            eventfd.try_clone().ctx("dup", Path::new("eventfd"))?,
            exec_w,
            job.cgroup.open_unified()?,
            job.cgroup.open_unified_procs()?,
        ];
        fds.extend(job.cgroup.open_v1_procs()?);
        Ok((eventfd, exec_r, fds))
    })();
    let (eventfd, exec_r, fds) = match prepared {
        Ok(p) => p,
        Err(e) => return Err(fail(&mut child, e)),
    };
    let raw: Vec<RawFd> = fds.iter().map(AsRawFd::as_raw_fd).collect();
    let iov = [IoSlice::new(&message)];
    let cmsg = [ControlMessage::ScmRights(&raw)];
    if let Err(e) = sendmsg::<()>(sock.as_raw_fd(), &iov, &cmsg, MsgFlags::MSG_NOSIGNAL, None) {
        return Err(fail(&mut child, shim_err("send the job to its shim", e)));
    }
    // Our copy of the exec pipe's write end goes here: only the shim, init
    // and the command hold it now.
    drop(fds);
    let ctl = register(sock).ctx("register", Path::new("shim socket"))?;
    let events = register(eventfd).ctx("register", Path::new("eventfd"))?;
    let exec = register(exec_r).ctx("register", Path::new("exec pipe"))?;
    Ok((ShimLink { ctl, events, child }, ExecResult(exec)))
}

fn register(fd: OwnedFd) -> std::io::Result<AsyncFd<OwnedFd>> {
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
/// `Ok(Some(empty))` at EOF (the shim is gone).
pub(crate) fn try_recv(link: &ShimLink, buf: &mut [u8]) -> std::io::Result<Option<usize>> {
    match nix::sys::socket::recv(link.ctl.get_ref().as_raw_fd(), buf, MsgFlags::MSG_DONTWAIT) {
        Ok(n) => Ok(Some(n)),
        Err(nix::errno::Errno::EAGAIN) => Ok(None),
        Err(e) => Err(e.into()),
    }
}

/// Drains the eventfd; returns whether it had been rung.
pub(crate) fn drain_eventfd(link: &ShimLink) -> bool {
    let mut buf = [0u8; 8];
    matches!(nix::unistd::read(link.events.get_ref().as_fd(), &mut buf), Ok(8))
}
