//! Small system-call wrappers the shim, init and the crew share.

use std::os::fd::{AsRawFd, BorrowedFd, OwnedFd, RawFd};

use nix::fcntl::{FcntlArg, OFlag, fcntl};

/// `CLONE_INTO_CGROUP` (Linux 5.7), which `libc` does not name.
pub const CLONE_INTO_CGROUP: u64 = 0x2_0000_0000;

/// The kernel's `struct clone_args` (as of Linux 5.7, `CLONE_ARGS_SIZE_VER2`).
#[repr(C)]
#[derive(Default)]
struct CloneArgs {
    flags: u64,
    pidfd: u64,
    child_tid: u64,
    parent_tid: u64,
    exit_signal: u64,
    stack: u64,
    stack_size: u64,
    tls: u64,
    set_tid: u64,
    set_tid_size: u64,
    cgroup: u64,
}

/// `clone3(2)` like fork(2) (`SIGCHLD` on exit, no shared memory) with
/// `flags` added, straight into the cgroup2 directory `cgroup` is open on.
/// Returns the child's pid in the parent, 0 in the child, or the errno
/// (`ENOSYS`, `E2BIG` or `EINVAL` on kernels without `clone3` or
/// `CLONE_INTO_CGROUP`).
///
/// # Safety
///
/// As for fork(2): if the calling process has other threads, the child may
/// only make async-signal-safe calls (no allocation, no locks) until it
/// execs or exits. `flags` must not include `CLONE_VM` or other flags that
/// need a stack or shared state.
pub unsafe fn clone_into_cgroup(flags: u64, cgroup: RawFd) -> Result<libc::pid_t, i32> {
    let args = CloneArgs {
        flags: flags | CLONE_INTO_CGROUP,
        exit_signal: libc::SIGCHLD as u64,
        cgroup: cgroup as u64,
        ..CloneArgs::default()
    };
    // SAFETY: without CLONE_VM and with a zero stack, clone3 duplicates the
    // process like fork(2); the caller keeps the child to what that allows.
    let ret = unsafe { libc::syscall(libc::SYS_clone3, &args, std::mem::size_of::<CloneArgs>()) };
    if ret < 0 {
        Err(std::io::Error::last_os_error()
            .raw_os_error()
            .unwrap_or(libc::EIO))
    } else {
        Ok(ret as libc::pid_t)
    }
}

/// Sets a terminal's window size (the job gets SIGWINCH).
///
/// # Errors
///
/// ioctl(2)'s, e.g. `ENOTTY` for an fd that is not a terminal.
pub fn set_winsize(fd: BorrowedFd<'_>, rows: u16, cols: u16) -> nix::Result<()> {
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

pub(crate) fn set_nonblocking(fd: BorrowedFd<'_>) -> nix::Result<()> {
    let flags = OFlag::from_bits_truncate(fcntl(fd, FcntlArg::F_GETFL)?);
    fcntl(fd, FcntlArg::F_SETFL(flags | OFlag::O_NONBLOCK)).map(drop)
}

/// Rewrites this process's command line (what `ps` shows) to `name` then
/// `title`, within the room its arguments took at exec (what
/// setproctitle does; the argument area is the process's own memory). The
/// crew starts a shim with a blank argument of [`TITLE_ROOM`] bytes for
/// this.
///
/// [`TITLE_ROOM`]: crate::wire::TITLE_ROOM
pub(crate) fn rewrite_cmdline(name: &[u8], title: &[u8]) {
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
    let room = end.saturating_sub(start) as usize;
    if room <= name.len() + 2 {
        return;
    }
    let mut area = vec![b' '; room];
    area[..name.len()].copy_from_slice(name);
    area[name.len()] = 0;
    let n = title.len().min(room - name.len() - 2);
    area[name.len() + 1..name.len() + 1 + n].copy_from_slice(&title[..n]);
    *area.last_mut().expect("room checked") = 0;
    if let Ok(mem) = std::fs::OpenOptions::new().write(true).open("/proc/self/mem") {
        let _ = mem.write_all_at(&area, start);
    }
}

/// Receives one datagram from a `SOCK_SEQPACKET` socket with the fds that
/// came with it (close-on-exec), sized to fit: it peeks at the datagram's
/// length first. `Ok(None)` at EOF. A datagram over `max_len` is refused
/// (and consumed).
///
/// # Errors
///
/// recv(2)'s and recvmsg(2)'s (`EAGAIN` on a non-blocking socket with
/// nothing to read), and `EMSGSIZE` for a datagram over `max_len`.
pub fn recv_with_fds(sock: BorrowedFd<'_>, max_len: usize) -> nix::Result<Option<(Vec<u8>, Vec<OwnedFd>)>> {
    use nix::sys::socket::{ControlMessageOwned, MsgFlags, recv, recvmsg};
    let len = loop {
        match recv(
            sock.as_raw_fd(),
            &mut [],
            MsgFlags::MSG_PEEK | MsgFlags::MSG_TRUNC,
        ) {
            Ok(0) => {
                // EOF, or an empty datagram: tell them apart by reading it.
                let mut none = [0u8; 0];
                return match recv(sock.as_raw_fd(), &mut none, MsgFlags::empty()) {
                    Ok(_) => Ok(None),
                    Err(e) => Err(e),
                };
            }
            Ok(n) => break n,
            Err(nix::errno::Errno::EINTR) => {}
            Err(e) => return Err(e),
        }
    };
    let mut buf = vec![0u8; len.min(max_len)];
    let mut iov = [std::io::IoSliceMut::new(&mut buf)];
    let mut cmsg = nix::cmsg_space!([RawFd; 64]);
    let msg = recvmsg::<()>(
        sock.as_raw_fd(),
        &mut iov,
        Some(&mut cmsg),
        MsgFlags::MSG_CMSG_CLOEXEC,
    )?;
    let mut fds = Vec::new();
    for c in msg.cmsgs()? {
        if let ControlMessageOwned::ScmRights(raw) = c {
            // SAFETY: SCM_RIGHTS installed these fds in this process just
            // now; nothing else owns them.
            fds.extend(
                raw.into_iter()
                    .map(|fd| unsafe { <OwnedFd as std::os::fd::FromRawFd>::from_raw_fd(fd) }),
            );
        }
    }
    if len > max_len {
        return Err(nix::errno::Errno::EMSGSIZE);
    }
    let n = msg.bytes;
    buf.truncate(n);
    Ok(Some((buf, fds)))
}

/// Sends one datagram with fds (`SCM_RIGHTS`), never raising SIGPIPE.
///
/// # Errors
///
/// sendmsg(2)'s.
pub fn send_with_fds(sock: BorrowedFd<'_>, msg: &[u8], fds: &[BorrowedFd<'_>]) -> nix::Result<()> {
    use nix::sys::socket::{ControlMessage, MsgFlags, sendmsg};
    let raw: Vec<RawFd> = fds.iter().map(AsRawFd::as_raw_fd).collect();
    let iov = [std::io::IoSlice::new(msg)];
    let cmsg = [ControlMessage::ScmRights(&raw)];
    let cmsgs: &[ControlMessage<'_>] = if raw.is_empty() { &[] } else { &cmsg };
    sendmsg::<()>(sock.as_raw_fd(), &iov, cmsgs, MsgFlags::MSG_NOSIGNAL, None).map(drop)
}

/// A path that names `name` in the directory `dir` is open on, short
/// whatever the directory's own path: a Unix socket's path must fit 108
/// bytes, and a state directory's may not.
#[must_use]
pub fn path_in(dir: BorrowedFd<'_>, name: &str) -> std::path::PathBuf {
    std::path::PathBuf::from(format!("/proc/self/fd/{}/{name}", dir.as_raw_fd()))
}
