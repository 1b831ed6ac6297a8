//! The job's PID 1, a fork of the shim: it sets up the job's mount and
//! network namespaces while the shim is still waiting for a job, receives
//! the command from the crew, clones it into the job's cgroup, then reaps
//! every process of the namespace, forwards SIGTERM/SIGINT/SIGHUP (and
//! SIGQUIT, SIGUSR1, SIGUSR2) to the command, and on the shim's word signals
//! every process of the job. When the command exits it kills whatever the
//! command left behind, reaps it all, reports the command's wait status to the
//! shim and exits.
//!
//! Why a PID 1 of our own: the kernel delivers to a namespace's init only the
//! signals it has handlers for, so a command that is PID 1 itself (`sleep`,
//! say) ignores SIGTERM, and nothing would reap the zombies of orphans.

use std::ffi::CString;
use std::os::fd::{AsFd as _, AsRawFd, BorrowedFd, OwnedFd, RawFd};

use nix::poll::{PollFd, PollFlags, PollTimeout, poll};
use nix::sys::signal::{SigSet, SigmaskHow, Signal, kill, sigprocmask};
use nix::sys::signalfd::{SfdFlags, SignalFd};
use nix::unistd::Pid;

use crate::exec::{ChildPlan, ExecArrays, Stage, exec_candidates, exec_command, report_failure};
use crate::namespaces::enter_job_namespaces;
use crate::wire::{self, Launch};

/// Signals init passes on to the command.
const FORWARDED: [Signal; 6] = [
    Signal::SIGTERM,
    Signal::SIGINT,
    Signal::SIGHUP,
    Signal::SIGQUIT,
    Signal::SIGUSR1,
    Signal::SIGUSR2,
];

/// What init gets from the shim at the fork.
#[derive(Debug)]
pub(crate) struct InitArgs {
    /// init's own socket to the crew, on which the command arrives.
    pub sock: RawFd,
    /// init → shim: the command's wait status.
    pub status_w: RawFd,
    /// shim → init: `T` (SIGTERM all) and `K` (SIGKILL all).
    pub ctl_r: RawFd,
}

/// Joins the v1 cgroups the crew made for the next job (hybrid hosts), so
/// the command inherits them instead of paying a cgroup migration at its
/// start. Best effort: the crew checks which ones init is in.
fn join_slot_cgroups() {
    let Some(dirs) = std::env::var_os(wire::INIT_CGROUPS_ENV) else {
        return;
    };
    for dir in dirs.as_encoded_bytes().split(|b| *b == b'\n') {
        if dir.is_empty() {
            continue;
        }
        // SAFETY: the bytes came from an OsStr split at an ASCII byte.
        let dir = unsafe { std::ffi::OsStr::from_encoded_bytes_unchecked(dir) };
        let _ = std::fs::write(std::path::Path::new(dir).join("cgroup.procs"), "0");
    }
}

/// Runs as the job's PID 1. Never returns.
pub(crate) fn run(args: InitArgs, shim_only: &[RawFd]) -> ! {
    // SAFETY: closing and duplicating fds this process inherited from the
    // shim; nothing else in this process refers to the ones closed.
    let sock = unsafe {
        for fd in shim_only {
            libc::close(*fd);
        }
        // Off fds 0 and 1 (the shim's stdin and stdout): those become
        // /dev/null, like the shim's own.
        let sock = libc::fcntl(args.sock, libc::F_DUPFD_CLOEXEC, 3);
        let null = libc::open(c"/dev/null".as_ptr(), libc::O_RDWR | libc::O_CLOEXEC);
        if null >= 0 {
            libc::dup2(null, 0);
            libc::dup2(null, 1);
            libc::close(null);
        }
        // If the shim dies, nobody would store the output: take the job down
        // with it (the kernel kills the namespace when its init exits).
        libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL as libc::c_ulong, 0, 0, 0);
        libc::prctl(libc::PR_SET_NAME, c"tasker-init".as_ptr(), 0, 0, 0);
        sock
    };
    crate::sys::rewrite_cmdline(b"tasker-init", b"");
    join_slot_cgroups();
    if sock < 0 {
        // SAFETY: _exit(2); the shim sees init gone and gives up the job.
        unsafe { libc::_exit(1) }
    }

    let mut mask = SigSet::empty();
    mask.add(Signal::SIGCHLD);
    for s in FORWARDED {
        mask.add(s);
    }
    let sigfd = sigprocmask(SigmaskHow::SIG_BLOCK, Some(&mask), None)
        .and_then(|()| SignalFd::with_flags(&mask, SfdFlags::SFD_CLOEXEC | SfdFlags::SFD_NONBLOCK));
    // The host's network namespace, for jobs that ask for it.
    // SAFETY: open(2) of a constant path.
    let host_net = unsafe { libc::open(c"/proc/self/ns/net".as_ptr(), libc::O_RDONLY | libc::O_CLOEXEC) };
    // Everything that does not depend on the job, done before there is one.
    let namespaces = enter_job_namespaces();

    let Some((launch, fds)) = receive_launch(sock) else {
        // The crew let this ready shim go.
        // SAFETY: _exit(2): nothing of a job exists yet.
        unsafe { libc::_exit(0) }
    };
    let mut fds = fds.into_iter();
    let errpipe = fds.next().expect("fd count checked");
    let errpipe_fd = errpipe.as_raw_fd();
    let sigfd = match sigfd {
        Ok(fd) => fd,
        Err(e) => die(errpipe_fd, Stage::Namespaces, e as i32),
    };
    if let Err(e) = namespaces {
        die(
            errpipe_fd,
            Stage::Namespaces,
            e.raw_os_error().unwrap_or(libc::EIO),
        );
    }
    if launch.host_network {
        // SAFETY: setns(2) with the fd opened above.
        if host_net < 0 || unsafe { libc::setns(host_net, libc::CLONE_NEWNET) } < 0 {
            die(errpipe_fd, Stage::Namespaces, last_errno());
        }
    }
    if host_net >= 0 {
        // SAFETY: closing our own fd.
        unsafe { libc::close(host_net) };
    }

    type Fd = Option<OwnedFd>;
    let (tty, stdin, stdout, stderr): (Fd, Fd, Fd, Fd) = if launch.tty {
        (fds.next(), None, None, None)
    } else {
        (None, fds.next(), fds.next(), fds.next())
    };
    let cgroup_dir = fds.next().expect("fd count checked");
    let cgroup_procs = fds.next().expect("fd count checked");
    let v1_procs: Vec<OwnedFd> = fds.collect();
    let mut plan = match child_plan(&launch, errpipe_fd) {
        Ok(p) => p,
        Err(errno) => die(errpipe_fd, Stage::Exec, errno),
    };
    plan.stdin = stdin.as_ref().map_or(-1, AsRawFd::as_raw_fd);
    plan.stdout = stdout.as_ref().map_or(-1, AsRawFd::as_raw_fd);
    plan.stderr = stderr.as_ref().map_or(-1, AsRawFd::as_raw_fd);
    plan.tty = tty.as_ref().map(AsRawFd::as_raw_fd);
    plan.join_procs = v1_procs.iter().map(AsRawFd::as_raw_fd).collect();
    let into = launch.clone_into_cgroup.then(|| cgroup_dir.as_raw_fd());

    let command = match clone_into_cgroup(into) {
        Ok(0) => {
            let arrays = ExecArrays::new(&plan);
            exec_command(&plan, &arrays)
        }
        Ok(pid) => pid,
        // Kernels before 5.7 (no CLONE_INTO_CGROUP) or 5.3 (no clone3): fork
        // and have the process write itself into the cgroup before exec.
        Err(libc::ENOSYS | libc::EINVAL | libc::E2BIG) => {
            plan.join_procs.push(cgroup_procs.as_raw_fd());
            // SAFETY: init is single-threaded; the child only makes system
            // calls on prepared data before it execs or exits.
            match unsafe { libc::fork() } {
                0 => {
                    let arrays = ExecArrays::new(&plan);
                    exec_command(&plan, &arrays)
                }
                pid if pid > 0 => pid,
                _ => die(errpipe_fd, Stage::Clone, last_errno()),
            }
        }
        Err(e) => die(errpipe_fd, Stage::Clone, e),
    };
    // These belong to the command now; keeping the output pipe's write end
    // would delay EOF, keeping the error pipe would hide the exec.
    drop((
        tty,
        stdin,
        stdout,
        stderr,
        cgroup_dir,
        cgroup_procs,
        v1_procs,
        errpipe,
    ));
    supervise(Pid::from_raw(command), &sigfd, args.status_w, args.ctl_r)
}

/// Receives the command, blocking. `None` when the crew closed the socket
/// (or sent something that is not a command).
fn receive_launch(sock: RawFd) -> Option<(Launch, Vec<OwnedFd>)> {
    // SAFETY: `sock` is init's socket, open until closed right below.
    let borrowed = unsafe { BorrowedFd::borrow_raw(sock) };
    let received = loop {
        match crate::sys::recv_with_fds(borrowed, wire::MAX_MESSAGE) {
            Err(nix::errno::Errno::EINTR) => {}
            other => break other,
        }
    };
    // SAFETY: the socket is ours; nothing more will come on it.
    unsafe { libc::close(sock) };
    let (msg, fds) = received.ok()??;
    let launch = Launch::decode(&msg).ok()?;
    (fds.len() == launch.fd_count()).then_some((launch, fds))
}

/// Builds what the command's process needs, before the clone: it may not
/// allocate after it.
fn child_plan(launch: &Launch, errpipe: RawFd) -> Result<ChildPlan, i32> {
    let cstring = |b: &[u8]| CString::new(b).map_err(|_| libc::EINVAL);
    let path_var = launch
        .env
        .iter()
        .find_map(|e| e.strip_prefix(b"PATH=".as_slice()));
    let (candidates, _) = exec_candidates(&launch.argv[0], path_var);
    let cap_last_cap = std::fs::read_to_string("/proc/sys/kernel/cap_last_cap")
        .ok()
        .and_then(|s| s.trim().parse().ok())
        .unwrap_or(40);
    Ok(ChildPlan {
        join_procs: Vec::new(),
        stdin: -1,
        stdout: -1,
        stderr: -1,
        tty: None,
        uid: launch.uid,
        gid: launch.gid,
        groups: launch.groups.clone(),
        cap_last_cap,
        cwd: cstring(&launch.cwd)?,
        candidates: candidates.iter().map(|c| cstring(c)).collect::<Result<_, _>>()?,
        argv: launch.argv.iter().map(|a| cstring(a)).collect::<Result<_, _>>()?,
        env: launch.env.iter().map(|e| cstring(e)).collect::<Result<_, _>>()?,
        errpipe,
    })
}

fn last_errno() -> i32 {
    std::io::Error::last_os_error()
        .raw_os_error()
        .unwrap_or(libc::EIO)
}

fn die(errpipe: RawFd, stage: Stage, err: i32) -> ! {
    report_failure(errpipe, stage, err);
    // SAFETY: _exit(2) ends the process without running the shim's atexit
    // handlers or destructors, which belong to the shim.
    unsafe { libc::_exit(1) }
}

/// The command's process, straight into its cgroup where the kernel can
/// (`clone3` with `CLONE_INTO_CGROUP`). Returns the child's pid in the
/// parent, 0 in the child, or the errno.
fn clone_into_cgroup(cgroup: Option<RawFd>) -> Result<libc::pid_t, i32> {
    let Some(fd) = cgroup else {
        return Err(libc::EINVAL);
    };
    // SAFETY: init is single-threaded, and the child only makes system
    // calls on prepared data before it execs or exits.
    unsafe { crate::sys::clone_into_cgroup(0, fd) }
}

fn supervise(command: Pid, sigfd: &SignalFd, status_w: RawFd, ctl_r: RawFd) -> ! {
    // The command's exit code (or 128 + its signal), once it has exited:
    // init exits with it, as a shell would.
    let mut command_code: Option<i32> = None;
    let mut ctl_open = true;
    loop {
        // SAFETY: ctl_r stays open for as long as ctl_open is true.
        let ctl = unsafe { BorrowedFd::borrow_raw(ctl_r) };
        let mut fds = vec![PollFd::new(sigfd.as_fd(), PollFlags::POLLIN)];
        if ctl_open {
            fds.push(PollFd::new(ctl, PollFlags::POLLIN));
        }
        match poll(&mut fds, PollTimeout::NONE) {
            Ok(_) | Err(nix::errno::Errno::EINTR) => {}
            Err(_) => continue,
        }
        let ctl_ready = ctl_open
            && fds
                .get(1)
                .and_then(PollFd::revents)
                .is_some_and(|r| !r.is_empty());
        drop(fds);

        while let Ok(Some(info)) = sigfd.read_signal() {
            let signo = info.ssi_signo as i32;
            if signo == libc::SIGCHLD {
                continue;
            }
            if command_code.is_none()
                && let Ok(sig) = Signal::try_from(signo)
            {
                let _ = kill(command, sig);
            }
        }
        // Reap on every wakeup: SIGCHLDs coalesce, and a child may exit
        // between two reads of the signalfd.
        loop {
            let mut status = 0;
            // SAFETY: waitpid(2) with a pointer to a local.
            let pid = unsafe { libc::waitpid(-1, &mut status, libc::WNOHANG) };
            if pid == command.as_raw() {
                command_code = Some(if libc::WIFSIGNALED(status) {
                    128 + libc::WTERMSIG(status)
                } else {
                    libc::WEXITSTATUS(status)
                });
                // SAFETY: write(2) of a local buffer to our end of the pipe.
                unsafe {
                    libc::write(status_w, (&raw const status).cast(), 4);
                }
                // The command is gone: whatever it left behind goes too.
                // kill(-1) from a namespace's init reaches every process in
                // the namespace but init, and a process being killed cannot
                // fork, so nothing escapes.
                let _ = kill(Pid::from_raw(-1), Signal::SIGKILL);
            } else if pid > 0 {
                continue;
            } else if pid < 0 && last_errno() == libc::ECHILD {
                // SAFETY: _exit(2): init is done; the namespace is empty.
                unsafe { libc::_exit(command_code.unwrap_or(0)) }
            } else {
                break;
            }
        }

        if ctl_ready {
            let mut byte = 0u8;
            // SAFETY: read(2) into a local byte.
            let n = unsafe { libc::read(ctl_r, (&raw mut byte).cast(), 1) };
            match (n, byte) {
                (1, b'T') => {
                    let _ = kill(Pid::from_raw(-1), Signal::SIGTERM);
                }
                (1, b'K') => {
                    let _ = kill(Pid::from_raw(-1), Signal::SIGKILL);
                }
                (1, _) => {}
                _ => ctl_open = false,
            }
        }
    }
}
