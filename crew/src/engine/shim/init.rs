//! The job's PID 1, a fork of the shim: it sets up the job's mount and
//! network namespaces, clones the command into the job's cgroup, then reaps
//! every process of the namespace, forwards SIGTERM/SIGINT/SIGHUP (and
//! SIGQUIT, SIGUSR1, SIGUSR2) to the command, and on the shim's word signals
//! every process of the job. When the command exits it kills whatever the
//! command left behind, reaps it all, reports the command's wait status to the
//! shim and exits.
//!
//! Why a PID 1 of our own: the kernel delivers to a namespace's init only the
//! signals it has handlers for, so a command that is PID 1 itself (`sleep`,
//! say) ignores SIGTERM, and nothing would reap the zombies of orphans.

use std::os::fd::{AsFd as _, BorrowedFd, RawFd};

use nix::poll::{PollFd, PollFlags, PollTimeout, poll};
use nix::sys::signal::{SigSet, SigmaskHow, Signal, kill, sigprocmask};
use nix::sys::signalfd::{SfdFlags, SignalFd};
use nix::unistd::Pid;

use super::child::{ChildPlan, ExecArrays, Stage, exec_command, report_failure};
use crate::engine::namespaces::enter_job_namespaces;

const CLONE_INTO_CGROUP: u64 = 0x2_0000_0000;

/// Signals init passes on to the command.
const FORWARDED: [Signal; 6] = [
    Signal::SIGTERM,
    Signal::SIGINT,
    Signal::SIGHUP,
    Signal::SIGQUIT,
    Signal::SIGUSR1,
    Signal::SIGUSR2,
];

/// What init is handed by the shim.
#[derive(Debug)]
pub(crate) struct InitPlan {
    pub host_network: bool,
    pub child: ChildPlan,
    /// The job's cgroup2 directory, for `CLONE_INTO_CGROUP`.
    pub cgroup_dir: Option<RawFd>,
    /// The job's cgroup2 `cgroup.procs`, written by the command's process
    /// itself when the kernel cannot clone into a cgroup.
    pub cgroup_procs: RawFd,
    /// Fds only the command needs; init closes them once it exists.
    pub child_only: Vec<RawFd>,
    /// init → shim: the command's wait status.
    pub status_w: RawFd,
    /// shim → init: `T` (SIGTERM all) and `K` (SIGKILL all).
    pub ctl_r: RawFd,
}

/// Runs as the job's PID 1. Never returns.
pub(crate) fn run(mut plan: InitPlan, shim_only: &[RawFd]) -> ! {
    // SAFETY: closing fds this process inherited from the shim and does not
    // use; nothing else in this process refers to them.
    unsafe {
        for fd in shim_only {
            libc::close(*fd);
        }
        // fd 0 was the crew's socket in the shim.
        let null = libc::open(c"/dev/null".as_ptr(), libc::O_RDWR | libc::O_CLOEXEC);
        if null >= 0 {
            libc::dup2(null, 0);
            libc::close(null);
        }
        // If the shim dies, nobody would store the output: take the job down
        // with it (the kernel kills the namespace when its init exits).
        libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL as libc::c_ulong, 0, 0, 0);
        libc::prctl(libc::PR_SET_NAME, c"tasker-init".as_ptr(), 0, 0, 0);
    }

    let mut mask = SigSet::empty();
    mask.add(Signal::SIGCHLD);
    for s in FORWARDED {
        mask.add(s);
    }
    let errpipe = plan.child.errpipe;
    let sigfd = match sigprocmask(SigmaskHow::SIG_BLOCK, Some(&mask), None)
        .and_then(|()| SignalFd::with_flags(&mask, SfdFlags::SFD_CLOEXEC | SfdFlags::SFD_NONBLOCK))
    {
        Ok(fd) => fd,
        Err(e) => die(errpipe, Stage::Namespaces, e as i32),
    };

    if let Err(e) = enter_job_namespaces(plan.host_network) {
        die(errpipe, Stage::Namespaces, e.raw_os_error().unwrap_or(libc::EIO));
    }

    let command = match clone_into_cgroup(plan.cgroup_dir) {
        Ok(0) => {
            let arrays = ExecArrays::new(&plan.child);
            exec_command(&plan.child, &arrays)
        }
        Ok(pid) => pid,
        // Kernels before 5.7 (no CLONE_INTO_CGROUP) or 5.3 (no clone3): fork
        // and have the process write itself into the cgroup before exec.
        Err(libc::ENOSYS | libc::EINVAL | libc::E2BIG) => {
            plan.child.join_procs.push(plan.cgroup_procs);
            // SAFETY: init is single-threaded; the child only makes system
            // calls on prepared data before it execs or exits.
            match unsafe { libc::fork() } {
                0 => {
                    let arrays = ExecArrays::new(&plan.child);
                    exec_command(&plan.child, &arrays)
                }
                pid if pid > 0 => pid,
                _ => die(errpipe, Stage::Clone, last_errno()),
            }
        }
        Err(e) => die(errpipe, Stage::Clone, e),
    };

    // SAFETY: these fds belong to the command now; init has no further use
    // for them, and keeping the output pipe's write end would delay EOF.
    unsafe {
        for fd in plan.child_only.iter().chain(plan.child.join_procs.iter()) {
            libc::close(*fd);
        }
        libc::close(errpipe);
        if let Some(fd) = plan.cgroup_dir {
            libc::close(fd);
        }
        libc::close(plan.cgroup_procs);
    }
    supervise(Pid::from_raw(command), &sigfd, plan.status_w, plan.ctl_r)
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

/// `clone3(2)` with `CLONE_INTO_CGROUP` when a cgroup fd is given. Returns
/// the child's pid in the parent, 0 in the child, or the errno.
fn clone_into_cgroup(cgroup: Option<RawFd>) -> Result<libc::pid_t, i32> {
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
    let Some(fd) = cgroup else {
        return Err(libc::EINVAL);
    };
    let args = CloneArgs {
        flags: CLONE_INTO_CGROUP,
        exit_signal: libc::SIGCHLD as u64,
        cgroup: fd as u64,
        ..CloneArgs::default()
    };
    // SAFETY: without CLONE_VM and with a zero stack, clone3 duplicates the
    // process like fork(2); init is single-threaded, and the child only makes
    // system calls on prepared data before it execs or exits.
    let ret = unsafe { libc::syscall(libc::SYS_clone3, &args, std::mem::size_of::<CloneArgs>()) };
    if ret < 0 {
        Err(last_errno())
    } else {
        Ok(ret as libc::pid_t)
    }
}

fn supervise(command: Pid, sigfd: &SignalFd, status_w: RawFd, ctl_r: RawFd) -> ! {
    let mut command_done = false;
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
            if !command_done && let Ok(sig) = Signal::try_from(signo) {
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
                command_done = true;
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
                unsafe { libc::_exit(0) }
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
