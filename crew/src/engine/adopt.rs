//! Finding a job's shim again: what a crew does at start for every job
//! that had not ended when the previous crew went.
//!
//! The shim listens on `jobs/<id>.sock`. The crew connects, says which
//! protocol versions it speaks (`Hello`), and the shim answers with its
//! own version, the job's record and its eventfd (`Welcome`); that
//! connection is then the crew's link to the job, as good as the one it
//! would have made starting the job. No socket, or one nobody listens on,
//! means the shim is gone: its exit record (`jobs/<id>.exit`) says how the
//! job ended, or, without one, the job is lost. Each attempt is bounded
//! (see [`reach`]); the engine makes them all at once.

use std::os::fd::{AsFd as _, AsRawFd as _, BorrowedFd, OwnedFd};
use std::time::Duration;

use nix::sys::socket::{AddressFamily, SockFlag, SockType, UnixAddr, connect, socket};
use tasker_shim::sys::{path_in, recv_with_fds};
use tasker_shim::wire::{self, ExitRecord, FromShim, ToShim};

use super::job::JobId;
use super::spawn::{ShimLink, register};

/// What became of a job's shim.
#[derive(Debug)]
pub(crate) enum Found {
    /// The shim answered: the job runs on, and this is the link to it.
    Running {
        link: ShimLink,
        /// The record the crew gave the shim at the start.
        record: Vec<u8>,
        stdin_open: bool,
    },
    /// The shim runs but speaks a protocol version this crew does not.
    Unsupported { version: u32 },
    /// The shim is gone and left the job's exit record.
    Ended(ExitRecord),
    /// The shim is gone, or does not answer: why, for `lost: <why>`.
    Gone(String),
}

/// The versions of the shim protocol a crew speaks.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Speaks {
    pub min: u32,
    pub max: u32,
}

/// Reaches the shim of job `id` through the jobs directory `dir`, within
/// `timeout`.
pub(crate) async fn reach(dir: BorrowedFd<'_>, id: &JobId, speaks: Speaks, timeout: Duration) -> Found {
    match tokio::time::timeout(timeout, hello(dir, id, speaks)).await {
        Ok(Ok(found)) => found,
        Ok(Err(why)) => match read_exit_record(dir, id) {
            Some(rec) => Found::Ended(rec),
            None => Found::Gone(why),
        },
        Err(_) => Found::Gone(format!(
            "its shim did not answer within {} s",
            timeout.as_secs_f32()
        )),
    }
}

/// The exit record a shim left, if it left one that reads.
pub(crate) fn read_exit_record(dir: BorrowedFd<'_>, id: &JobId) -> Option<ExitRecord> {
    let bytes = std::fs::read(path_in(dir, &format!("{id}.exit"))).ok()?;
    match ExitRecord::decode(&bytes) {
        Ok(rec) => Some(rec),
        Err(e) => {
            tracing::warn!(job = %id, error = %e, "an exit record that does not read");
            None
        }
    }
}

async fn hello(dir: BorrowedFd<'_>, id: &JobId, speaks: Speaks) -> Result<Found, String> {
    let sock = socket(
        AddressFamily::Unix,
        SockType::SeqPacket,
        SockFlag::SOCK_CLOEXEC | SockFlag::SOCK_NONBLOCK,
        None,
    )
    .map_err(|e| format!("socket: {}", e.desc()))?;
    let addr = UnixAddr::new(&path_in(dir, &format!("{id}.sock"))).map_err(|e| e.desc().to_owned())?;
    loop {
        match connect(sock.as_raw_fd(), &addr) {
            Ok(()) => break,
            Err(nix::errno::Errno::ENOENT) => {
                return Err("its shim is gone (no socket) and left no exit record".into());
            }
            Err(nix::errno::Errno::ECONNREFUSED) => {
                return Err("its shim is gone (nobody at its socket) and left no exit record".into());
            }
            // The shim's backlog is full: it is busy, give it a moment.
            Err(nix::errno::Errno::EAGAIN) => tokio::time::sleep(Duration::from_millis(10)).await,
            Err(e) => return Err(format!("cannot reach its shim: {}", e.desc())),
        }
    }
    let msg = ToShim::Hello {
        min: speaks.min,
        max: speaks.max,
    }
    .encode();
    nix::sys::socket::send(sock.as_raw_fd(), &msg, nix::sys::socket::MsgFlags::MSG_NOSIGNAL)
        .map_err(|e| format!("cannot reach its shim: {}", e.desc()))?;
    let sock = register(sock).map_err(|e| format!("register: {e}"))?;
    let (msg, mut fds) = loop {
        let mut guard = sock.readable().await.map_err(|e| e.to_string())?;
        match recv_with_fds(sock.get_ref().as_fd(), wire::MAX_RECORD + 4096) {
            Ok(Some(got)) => break got,
            Ok(None) => return Err("its shim closed the connection and left no exit record".into()),
            Err(nix::errno::Errno::EAGAIN) => guard.clear_ready(),
            Err(e) => return Err(format!("its shim's answer: {}", e.desc())),
        }
    };
    let version = wire::welcome_version(&msg).ok_or("its shim answered something that is not a welcome")?;
    if !(speaks.min..=speaks.max).contains(&version) {
        return Ok(Found::Unsupported { version });
    }
    let Ok(FromShim::Welcome {
        record, stdin_open, ..
    }) = FromShim::decode(&msg)
    else {
        // It answered, so it runs: not ours to end.
        return Ok(Found::Unsupported { version });
    };
    if fds.len() != 1 {
        return Err("its shim's welcome came without the job's eventfd".into());
    }
    let eventfd: OwnedFd = fds.remove(0);
    let events = register(eventfd).map_err(|e| format!("register: {e}"))?;
    Ok(Found::Running {
        link: ShimLink {
            ctl: sock,
            events,
            child: None,
        },
        record,
        stdin_open,
    })
}
