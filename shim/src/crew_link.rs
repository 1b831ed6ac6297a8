//! The shim's side of its link to the crew, which outlives any one crew.
//!
//! The crew that starts a shim talks to it over the socket pair it made
//! (fd 0). Once the shim has a job it also listens on `jobs/<id>.sock`, so
//! that a crew started later (after a restart, a crash, an upgrade) can
//! find it: it connects, says [`Hello`](ToShim::Hello) with the protocol
//! versions it speaks, and the shim answers [`Welcome`](FromShim::Welcome)
//! with its own version and the job's eventfd. From then on that connection
//! is the crew's, and the previous one, if any, is dropped.
//!
//! While no crew is connected the shim carries on alone: the job runs, its
//! output goes to the file, and what the shim would have told the crew is
//! dropped (its exit is kept on disk, see [`write_exit_record`]).

use std::ffi::CString;
use std::os::fd::{AsFd, AsRawFd as _, BorrowedFd, FromRawFd as _, OwnedFd, RawFd};
use std::time::{Duration, Instant};

use nix::poll::{PollFd, PollFlags, PollTimeout, poll};
use nix::sys::socket::{MsgFlags, send};

use crate::sys::{recv_with_fds, send_with_fds};
use crate::wire::{self, ExitRecord, FromShim, ToShim};

/// Connections accepted but not yet introduced: more than this, and the
/// oldest goes.
const MAX_PENDING: usize = 4;
/// How long a new connection has to say `Hello`.
const HELLO_TIMEOUT: Duration = Duration::from_secs(5);

/// The version this shim speaks. A test may make it claim another, to play
/// a shim of another release (`TASKER_SHIM_PROTOCOL`).
fn protocol() -> u32 {
    std::env::var(wire::PROTOCOL_OVERRIDE_ENV)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(wire::PROTOCOL)
}

/// What a crew hears about the job when it connects.
pub(crate) struct JobSummary<'a> {
    pub record: &'a [u8],
    pub stdin_open: bool,
    pub output_end: u64,
    pub eventfd: BorrowedFd<'a>,
}

pub(crate) struct CrewLink {
    /// The crew's connection; `None` while no crew is connected.
    sock: Option<OwnedFd>,
    listener: Option<Listener>,
    pending: Vec<(OwnedFd, Instant)>,
    version: u32,
}

/// The job's socket, `<id>.sock` in the jobs directory.
struct Listener {
    fd: OwnedFd,
    dir: OwnedFd,
    name: CString,
}

impl Drop for Listener {
    fn drop(&mut self) {
        // A crew that looks for the job from now on finds no socket and
        // reads the exit record instead.
        // SAFETY: unlinkat(2) of a NUL-terminated name in a directory fd we
        // own.
        unsafe { libc::unlinkat(self.dir.as_raw_fd(), self.name.as_ptr(), 0) };
    }
}

impl CrewLink {
    /// The link to the crew that started this shim.
    pub(crate) fn new(sock: OwnedFd) -> Self {
        Self {
            sock: Some(sock),
            listener: None,
            pending: Vec::new(),
            version: protocol(),
        }
    }

    pub(crate) fn connected(&self) -> Option<BorrowedFd<'_>> {
        self.sock.as_ref().map(AsFd::as_fd)
    }

    /// The crew's connection is gone (EOF or an error): carry on alone.
    pub(crate) fn lost(&mut self) {
        self.sock = None;
    }

    /// Listens on `<id>.sock` in `dir` for crews to come.
    pub(crate) fn listen(&mut self, dir: OwnedFd, id: &str) -> nix::Result<()> {
        use nix::sys::socket::{AddressFamily, Backlog, SockFlag, SockType, UnixAddr, bind, listen, socket};
        let name = CString::new(format!("{id}.sock")).map_err(|_| nix::errno::Errno::EINVAL)?;
        let fd = socket(
            AddressFamily::Unix,
            SockType::SeqPacket,
            SockFlag::SOCK_CLOEXEC | SockFlag::SOCK_NONBLOCK,
            None,
        )?;
        let path = crate::sys::path_in(dir.as_fd(), &format!("{id}.sock"));
        // A socket of that name can only be a dead shim's of this very job
        // (ids are never reused); never a live one.
        // SAFETY: unlinkat(2) of a NUL-terminated name in our directory fd.
        unsafe { libc::unlinkat(dir.as_raw_fd(), name.as_ptr(), 0) };
        bind(fd.as_raw_fd(), &UnixAddr::new(&path)?)?;
        listen(&fd, Backlog::new(8)?)?;
        self.listener = Some(Listener { fd, dir, name });
        Ok(())
    }

    /// No crew will find the job from now on (it has ended): the socket
    /// goes, and with it any crew not yet introduced.
    pub(crate) fn stop_listening(&mut self) {
        self.listener = None;
        self.pending.clear();
    }

    /// Sends one message; waits (bounded) when the socket is full. A crew
    /// that is gone is not an error: the job goes on.
    pub(crate) fn send(&mut self, msg: &FromShim) {
        let Some(sock) = &self.sock else { return };
        let bytes = msg.encode();
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            match send(
                sock.as_raw_fd(),
                &bytes,
                MsgFlags::MSG_NOSIGNAL | MsgFlags::MSG_DONTWAIT,
            ) {
                Ok(_) => return,
                Err(nix::errno::Errno::EAGAIN | nix::errno::Errno::EINTR) if Instant::now() < deadline => {
                    let mut fds = [PollFd::new(sock.as_fd(), PollFlags::POLLOUT)];
                    let _ = poll(&mut fds, PollTimeout::from(100u16));
                }
                Err(_) => {
                    self.sock = None;
                    return;
                }
            }
        }
    }

    /// Waits, at most `within`, for the connected crew to say it has the
    /// job's end on record. `false`: no crew, or it went, or it was silent.
    pub(crate) fn wait_recorded(&mut self, within: Duration) -> bool {
        let deadline = Instant::now() + within;
        let mut buf = vec![0u8; wire::STDIN_CHUNK + 16];
        while let Some(sock) = &self.sock {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return false;
            }
            let mut fds = [PollFd::new(sock.as_fd(), PollFlags::POLLIN)];
            let ms = left.as_millis().min(10_000) as u16;
            match poll(&mut fds, PollTimeout::from(ms)) {
                Ok(0) => return false,
                Ok(_) | Err(nix::errno::Errno::EINTR) => {}
                Err(_) => return false,
            }
            match nix::sys::socket::recv(sock.as_raw_fd(), &mut buf, MsgFlags::MSG_DONTWAIT) {
                Ok(0) => self.sock = None,
                Ok(n) => {
                    if let Ok(ToShim::Recorded) = ToShim::decode(&buf[..n]) {
                        return true;
                    }
                    // Anything else (stdin that came late) has no job to go to.
                }
                Err(nix::errno::Errno::EAGAIN | nix::errno::Errno::EINTR) => {}
                Err(_) => self.sock = None,
            }
        }
        false
    }

    pub(crate) fn log(&mut self, message: String) {
        self.send(&FromShim::Log { message });
    }

    /// The fds to poll for crews that come: the listener and the
    /// connections that have not said `Hello` yet.
    pub(crate) fn rendezvous_fds(&self) -> Vec<RawFd> {
        self.listener
            .iter()
            .map(|l| l.fd.as_raw_fd())
            .chain(self.pending.iter().map(|(fd, _)| fd.as_raw_fd()))
            .collect()
    }

    /// How long a poll may wait before a pending connection times out.
    pub(crate) fn poll_timeout(&self) -> PollTimeout {
        match self.pending.iter().map(|(_, t)| *t).min() {
            None => PollTimeout::NONE,
            Some(oldest) => {
                let left = (oldest + HELLO_TIMEOUT).saturating_duration_since(Instant::now());
                PollTimeout::try_from(left.as_millis().min(10_000) as i32 + 1).unwrap_or(PollTimeout::MAX)
            }
        }
    }

    /// Accepts new connections and answers those that said `Hello`.
    pub(crate) fn rendezvous(&mut self, job: &JobSummary<'_>) {
        self.accept();
        let now = Instant::now();
        let mut i = 0;
        while i < self.pending.len() {
            let (fd, since) = &self.pending[i];
            match recv_with_fds(fd.as_fd(), 256) {
                Err(nix::errno::Errno::EAGAIN) if now < *since + HELLO_TIMEOUT => i += 1,
                Ok(Some((msg, _))) => {
                    let (fd, _) = self.pending.remove(i);
                    if let Ok(ToShim::Hello { .. }) = ToShim::decode(&msg) {
                        self.welcome(fd, job);
                    }
                }
                // EOF, an error, or too slow: that crew goes.
                _ => drop(self.pending.remove(i)),
            }
        }
    }

    fn accept(&mut self) {
        let Some(listener) = &self.listener else { return };
        loop {
            // SAFETY: accept4(2) on our listening socket; the new fd, if
            // any, is owned right below.
            let fd = unsafe {
                libc::accept4(
                    listener.fd.as_raw_fd(),
                    std::ptr::null_mut(),
                    std::ptr::null_mut(),
                    libc::SOCK_CLOEXEC | libc::SOCK_NONBLOCK,
                )
            };
            if fd < 0 {
                return;
            }
            // SAFETY: accept4 returned a new fd that nothing else owns.
            let fd = unsafe { OwnedFd::from_raw_fd(fd) };
            // Only root may speak for a crew (the directory is the crew's,
            // 0700, but a socket's own word is checked too).
            let root = nix::sys::socket::getsockopt(&fd, nix::sys::socket::sockopt::PeerCredentials)
                .is_ok_and(|c| c.uid() == 0);
            if !root {
                continue;
            }
            if self.pending.len() == MAX_PENDING {
                self.pending.remove(0);
            }
            self.pending.push((fd, Instant::now()));
        }
    }

    /// A crew said `Hello`: it is the crew now, whatever versions it speaks
    /// (a crew that cannot speak ours reads our version and leaves).
    fn welcome(&mut self, fd: OwnedFd, job: &JobSummary<'_>) {
        let msg = FromShim::Welcome {
            version: self.version,
            record: job.record.to_vec(),
            stdin_open: job.stdin_open,
            output_end: job.output_end,
        };
        if send_with_fds(fd.as_fd(), &msg.encode(), &[job.eventfd]).is_ok() {
            self.sock = Some(fd);
        }
    }
}

/// Writes the job's exit record, `<id>.exit` in `dir`, so that it survives
/// a crash of the host the moment this returns: a temporary file, synced,
/// renamed into place, and the directory synced.
pub(crate) fn write_exit_record(dir: BorrowedFd<'_>, id: &str, record: &ExitRecord) -> std::io::Result<()> {
    use std::io::Write as _;
    let tmp = CString::new(format!("{id}.exit.tmp")).map_err(std::io::Error::other)?;
    let done = CString::new(format!("{id}.exit")).map_err(std::io::Error::other)?;
    // SAFETY: openat(2) of a NUL-terminated name in a directory fd we hold;
    // the result is checked and owned right below.
    let fd = unsafe {
        libc::openat(
            dir.as_raw_fd(),
            tmp.as_ptr(),
            libc::O_WRONLY | libc::O_CREAT | libc::O_TRUNC | libc::O_CLOEXEC | libc::O_NOFOLLOW,
            0o600,
        )
    };
    if fd < 0 {
        return Err(std::io::Error::last_os_error());
    }
    // SAFETY: openat returned a new fd that nothing else owns.
    let mut file = std::fs::File::from(unsafe { OwnedFd::from_raw_fd(fd) });
    let renamed = file
        .write_all(&record.encode())
        .and_then(|()| file.sync_all())
        .and_then(|()| {
            // SAFETY: renameat(2) of two NUL-terminated names within our
            // directory.
            let r = unsafe { libc::renameat(dir.as_raw_fd(), tmp.as_ptr(), dir.as_raw_fd(), done.as_ptr()) };
            if r == 0 {
                Ok(())
            } else {
                Err(std::io::Error::last_os_error())
            }
        });
    if renamed.is_err() {
        // SAFETY: unlinkat(2) of our own temporary file.
        unsafe { libc::unlinkat(dir.as_raw_fd(), tmp.as_ptr(), 0) };
        return renamed;
    }
    // SAFETY: fsync(2) of a directory fd we hold: the rename is durable.
    if unsafe { libc::fsync(dir.as_raw_fd()) } == 0 {
        Ok(())
    } else {
        Err(std::io::Error::last_os_error())
    }
}
