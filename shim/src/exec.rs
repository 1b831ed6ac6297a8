//! The last steps before the job's command runs, in the job's first process:
//! join the v1 cgroups, take the terminal, drop privileges, enter the working
//! directory, exec.
//!
//! This code runs in a process made by a raw `clone3(2)` of init, so it keeps
//! to plain system calls on data prepared beforehand: no allocation, no
//! locks, no panics. A failure is written to the error pipe as
//! `(stage, errno)` and the process exits 127; success is the pipe closing on
//! exec (it is close-on-exec).

use std::ffi::{CString, c_char};
use std::os::fd::RawFd;

/// Where the start failed; the shim turns it into a message.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(u32)]
pub enum Stage {
    /// init could not set up the namespaces.
    Namespaces = 1,
    /// init could not create the command's process.
    Clone = 2,
    CgroupJoin = 3,
    Session = 4,
    Terminal = 5,
    Stdio = 6,
    Limits = 7,
    Groups = 8,
    Ids = 9,
    Capabilities = 10,
    NoNewPrivs = 11,
    Cwd = 12,
    Exec = 13,
    /// The shim could not prepare the job (it says why on its socket).
    Setup = 14,
}

impl Stage {
    pub fn from_u32(v: u32) -> Option<Self> {
        use Stage::*;
        [
            Namespaces,
            Clone,
            CgroupJoin,
            Session,
            Terminal,
            Stdio,
            Limits,
            Groups,
            Ids,
            Capabilities,
            NoNewPrivs,
            Cwd,
            Exec,
            Setup,
        ]
        .into_iter()
        .find(|s| *s as u32 == v)
    }

    pub fn describe(self) -> &'static str {
        match self {
            Self::Namespaces => "setting up the job's namespaces",
            Self::Clone => "creating the job's process",
            Self::CgroupJoin => "joining the job's cgroup",
            Self::Session => "creating a session",
            Self::Terminal => "taking the terminal",
            Self::Stdio => "connecting stdin/stdout/stderr",
            Self::Limits => "setting resource limits",
            Self::Groups => "setting supplementary groups",
            Self::Ids => "switching to the job's user",
            Self::Capabilities => "dropping capabilities",
            Self::NoNewPrivs => "setting no_new_privs",
            Self::Cwd => "entering the working directory",
            Self::Exec => "executing the program",
            Self::Setup => "preparing the job",
        }
    }
}

/// Everything the command's process needs, prepared before the clone.
#[derive(Debug)]
pub(crate) struct ChildPlan {
    /// v1 `cgroup.procs` files (and the cgroup2 one when the process could
    /// not be cloned straight into its cgroup): the process writes itself in.
    pub join_procs: Vec<RawFd>,
    pub stdin: RawFd,
    pub stdout: RawFd,
    /// A pipe of its own: the shim marks which bytes came from which.
    pub stderr: RawFd,
    /// The pty slave for tty jobs (then also stdin and stdout).
    pub tty: Option<RawFd>,
    pub uid: u32,
    pub gid: u32,
    pub groups: Vec<libc::gid_t>,
    /// The highest capability number the kernel knows.
    pub cap_last_cap: u32,
    pub cwd: CString,
    /// The paths to try, in order: the program itself, or each PATH entry.
    pub candidates: Vec<CString>,
    pub argv: Vec<CString>,
    pub env: Vec<CString>,
    pub errpipe: RawFd,
}

/// Pointer arrays for execve(2), built before the clone.
#[derive(Debug)]
pub(crate) struct ExecArrays {
    argv: Vec<*const c_char>,
    envp: Vec<*const c_char>,
}

impl ExecArrays {
    pub(crate) fn new(plan: &ChildPlan) -> Self {
        let nul_terminated = |v: &[CString]| {
            v.iter()
                .map(|s| s.as_ptr())
                .chain(std::iter::once(std::ptr::null()))
                .collect()
        };
        Self {
            argv: nul_terminated(&plan.argv),
            envp: nul_terminated(&plan.env),
        }
    }
}

fn errno() -> i32 {
    std::io::Error::last_os_error()
        .raw_os_error()
        .unwrap_or(libc::EIO)
}

/// Reports `(stage, err)` on the error pipe and exits 127.
fn fail(errpipe: RawFd, stage: Stage, err: i32) -> ! {
    report_failure(errpipe, stage, err);
    // SAFETY: _exit(2) never returns and runs no destructors or atexit
    // handlers, which belong to init.
    unsafe { libc::_exit(127) }
}

/// Checks a raw system call's result; on failure reports `stage` and exits.
fn check(errpipe: RawFd, stage: Stage, ret: libc::c_long) {
    if ret < 0 {
        fail(errpipe, stage, errno());
    }
}

/// Becomes the job's command. Never returns.
///
/// Each step below is one or a few plain system calls on fds and buffers
/// the plan owns, in a single-threaded process that execs or exits at the
/// end. None allocates, takes a lock or can panic.
pub(crate) fn exec_command(plan: &ChildPlan, arrays: &ExecArrays) -> ! {
    let ep = plan.errpipe;
    join_cgroups(plan);
    reset_signals();
    take_session_and_stdio(plan);
    // The helpers protect themselves from the OOM killer; the job must not
    // inherit that.
    reset_oom_score(ep);
    let nofile_max = lower_fd_limit(ep);
    let unprivileged = plan.uid != 0;
    if unprivileged {
        // The bounding set can only shrink while we still hold CAP_SETPCAP,
        // so before the uid switch.
        drop_bounding_set(plan);
    }
    switch_user(plan);
    if unprivileged {
        // The uid switch cleared the permitted and effective sets; clear
        // the inheritable set too, so nothing survives an exec.
        clear_inheritable(ep);
    }
    // SAFETY: prctl(2) with integer arguments, on this process only.
    let r = unsafe { libc::prctl(libc::PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) };
    check(ep, Stage::NoNewPrivs, r.into());
    // As the job's user, so a directory it may not enter is refused.
    // SAFETY: chdir(2) of a NUL-terminated string the plan owns.
    let r = unsafe { libc::chdir(plan.cwd.as_ptr()) };
    check(ep, Stage::Cwd, r.into());
    close_fds_on_exec(nofile_max);
    exec(plan, arrays)
}

/// Writes the process into each `cgroup.procs` of the plan (v1 cgroups,
/// and the cgroup2 one where it could not be cloned straight into it).
fn join_cgroups(plan: &ChildPlan) {
    for fd in &plan.join_procs {
        // SAFETY: write(2) of a static byte to an fd the plan owns.
        let r = unsafe { libc::write(*fd, b"0".as_ptr().cast(), 1) };
        check(plan.errpipe, Stage::CgroupJoin, r as libc::c_long);
    }
}

/// Default signal dispositions and an empty mask: the job must not inherit
/// what the shim and init set up for themselves (SIGPIPE ignored, signals
/// blocked for signalfd).
fn reset_signals() {
    // SAFETY: an all-zero sigset_t is a valid (empty) set, which
    // sigemptyset(3) then makes so by definition; sigprocmask(2) reads it.
    unsafe {
        let mut set: libc::sigset_t = std::mem::zeroed();
        libc::sigemptyset(&mut set);
        libc::sigprocmask(libc::SIG_SETMASK, &set, std::ptr::null_mut());
    }
    for sig in 1..65 {
        if sig != libc::SIGKILL && sig != libc::SIGSTOP {
            // SAFETY: signal(2) with SIG_DFL installs no handler of ours.
            unsafe { libc::signal(sig, libc::SIG_DFL) };
        }
    }
}

/// A new session; then the pty as controlling terminal and stdio (a tty
/// job), or the pipes.
fn take_session_and_stdio(plan: &ChildPlan) {
    let ep = plan.errpipe;
    // SAFETY: setsid(2) takes no arguments.
    let r = unsafe { libc::setsid() };
    check(ep, Stage::Session, r.into());
    let (stdin, stdout, stderr) = match plan.tty {
        Some(slave) => {
            // SAFETY: ioctl(2) TIOCSCTTY on the pty slave the plan owns.
            let r = unsafe { libc::ioctl(slave, libc::TIOCSCTTY, 0) };
            check(ep, Stage::Terminal, r.into());
            (slave, slave, slave)
        }
        None => (plan.stdin, plan.stdout, plan.stderr),
    };
    for (from, to) in [(stdin, 0), (stdout, 1), (stderr, 2)] {
        // SAFETY: dup2(2) of an fd the plan owns onto 0, 1 or 2.
        let r = unsafe { libc::dup2(from, to) };
        check(ep, Stage::Stdio, r.into());
    }
}

fn reset_oom_score(ep: RawFd) {
    // SAFETY: open(2) of a constant NUL-terminated path.
    let adj = unsafe {
        libc::open(
            c"/proc/self/oom_score_adj".as_ptr(),
            libc::O_WRONLY | libc::O_CLOEXEC,
        )
    };
    check(ep, Stage::Limits, adj.into());
    // SAFETY: write(2) of a static byte to the fd just opened, then its
    // close(2); nothing else refers to it.
    let r = unsafe {
        let r = libc::write(adj, b"0".as_ptr().cast(), 1);
        libc::close(adj);
        r
    };
    check(ep, Stage::Limits, r as libc::c_long);
}

/// A crew may run with a raised soft fd limit; programs that use select(2)
/// break above 1024, so jobs get the usual soft limit. Returns the hard
/// limit.
fn lower_fd_limit(ep: RawFd) -> libc::rlim_t {
    let mut nofile = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 1 << 16,
    };
    // SAFETY: getrlimit(2) writes into a local struct.
    if unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut nofile) } == 0 && nofile.rlim_cur > 1024 {
        nofile.rlim_cur = 1024.min(nofile.rlim_max);
        // SAFETY: setrlimit(2) reads a local struct.
        let r = unsafe { libc::setrlimit(libc::RLIMIT_NOFILE, &nofile) };
        check(ep, Stage::Limits, r.into());
    }
    nofile.rlim_max
}

/// Empties the capability bounding set and the ambient set.
fn drop_bounding_set(plan: &ChildPlan) {
    let ep = plan.errpipe;
    for cap in 0..=plan.cap_last_cap {
        // SAFETY: prctl(2) with integer arguments, on this process only.
        let r = unsafe { libc::prctl(libc::PR_CAPBSET_DROP, libc::c_ulong::from(cap), 0, 0, 0) };
        check(ep, Stage::Capabilities, r.into());
    }
    // SAFETY: as above.
    let r = unsafe {
        libc::prctl(
            libc::PR_CAP_AMBIENT,
            libc::PR_CAP_AMBIENT_CLEAR_ALL as libc::c_ulong,
            0,
            0,
            0,
        )
    };
    check(ep, Stage::Capabilities, r.into());
}

/// Supplementary groups, gid, uid, in that order (each needs the privilege
/// the next one drops). Raw system calls: they change only this thread,
/// which is the only one, and bypass libc's multi-thread broadcast.
fn switch_user(plan: &ChildPlan) {
    let ep = plan.errpipe;
    // SAFETY: setgroups(2) reads `len` gids from the plan's own vector.
    let r = unsafe { libc::syscall(libc::SYS_setgroups, plan.groups.len(), plan.groups.as_ptr()) };
    check(ep, Stage::Groups, r);
    // SAFETY: setresgid(2) and setresuid(2) take integers.
    let r = unsafe { libc::syscall(libc::SYS_setresgid, plan.gid, plan.gid, plan.gid) };
    check(ep, Stage::Ids, r);
    // SAFETY: as above.
    let r = unsafe { libc::syscall(libc::SYS_setresuid, plan.uid, plan.uid, plan.uid) };
    check(ep, Stage::Ids, r);
}

fn clear_inheritable(ep: RawFd) {
    let mut header = CapHeader {
        version: LINUX_CAPABILITY_VERSION_3,
        pid: 0,
    };
    let data = [CapData::default(); 2];
    // SAFETY: capset(2) reads a header and two data structs we own, laid
    // out as the kernel's `_LINUX_CAPABILITY_VERSION_3` expects.
    let r = unsafe { libc::syscall(libc::SYS_capset, &mut header, data.as_ptr()) };
    check(ep, Stage::Capabilities, r);
}

/// No fd but 0, 1, 2 survives the exec, whatever the crew, the shim or init
/// had open (the error pipe closes on exec too).
fn close_fds_on_exec(nofile_max: libc::rlim_t) {
    // SAFETY: close_range(2) with CLOEXEC only sets flags on our own fds.
    let r = unsafe { libc::syscall(libc::SYS_close_range, 3u32, u32::MAX, libc::CLOSE_RANGE_CLOEXEC) };
    if r < 0 {
        // Kernels before 5.11: one fcntl per possible fd.
        for fd in 3..nofile_max.min(1 << 16) as RawFd {
            // SAFETY: fcntl(2) F_SETFD on an fd number; a closed one fails.
            unsafe { libc::fcntl(fd, libc::F_SETFD, libc::FD_CLOEXEC) };
        }
    }
}

/// `execve(2)` each candidate in turn, as execvp(3) does: an `ENOENT` (or
/// the like) tries the next; a permission error is remembered and reported
/// if nothing else is found.
fn exec(plan: &ChildPlan, arrays: &ExecArrays) -> ! {
    let mut err = libc::ENOENT;
    let mut saw_eacces = false;
    for path in &plan.candidates {
        // SAFETY: execve(2) with a NUL-terminated path and the
        // NULL-terminated pointer arrays built from the plan's CStrings,
        // which outlive the call.
        unsafe { libc::execve(path.as_ptr(), arrays.argv.as_ptr(), arrays.envp.as_ptr()) };
        err = errno();
        match err {
            libc::ENOENT | libc::ENOTDIR | libc::ESTALE | libc::ENODEV | libc::ETIMEDOUT => {}
            libc::EACCES => saw_eacces = true,
            _ => break,
        }
    }
    if saw_eacces && matches!(err, libc::ENOENT | libc::ENOTDIR) {
        err = libc::EACCES;
    }
    fail(plan.errpipe, Stage::Exec, err)
}

const LINUX_CAPABILITY_VERSION_3: u32 = 0x2008_0522;

#[repr(C)]
struct CapHeader {
    version: u32,
    pid: i32,
}

#[repr(C)]
#[derive(Clone, Copy, Default)]
struct CapData {
    effective: u32,
    permitted: u32,
    inheritable: u32,
}

/// Decodes what the error pipe carried.
pub fn decode_failure(msg: &[u8]) -> Option<(Stage, i32)> {
    let stage = Stage::from_u32(u32::from_le_bytes(msg.get(..4)?.try_into().ok()?))?;
    let errno = i32::from_le_bytes(msg.get(4..8)?.try_into().ok()?);
    Some((stage, errno))
}

/// Writes `(stage, errno)` to the error pipe: from init (before there is
/// a command process) or from the command's process.
pub(crate) fn report_failure(errpipe: RawFd, stage: Stage, err: i32) {
    let mut msg = [0u8; 8];
    msg[..4].copy_from_slice(&(stage as u32).to_le_bytes());
    msg[4..].copy_from_slice(&err.to_le_bytes());
    // SAFETY: write(2) of a local buffer.
    unsafe {
        libc::write(errpipe, msg.as_ptr().cast(), msg.len());
    }
}

/// The message a person reads for a failed start.
pub fn failure_message(stage: Stage, err: i32, program: &str, cwd: &str, searched_path: bool) -> String {
    let text = std::io::Error::from_raw_os_error(err).to_string();
    let text = text.split(" (os error").next().unwrap_or(&text).to_owned();
    match (stage, err) {
        (Stage::Exec, libc::ENOENT) if searched_path => format!("command not found in PATH: {program}"),
        (Stage::Exec, libc::ENOENT) => format!("no such file: {program}"),
        (Stage::Exec, libc::EACCES) => {
            format!("permission denied: {program} (not executable, or a directory)")
        }
        (Stage::Exec, libc::ENOEXEC) => format!("exec format error: {program} (not a binary and no #! line)"),
        (Stage::Exec, libc::ENOTDIR) => format!("not a directory: a component of {program}"),
        (Stage::Exec, _) => format!("cannot execute {program}: {text}"),
        (Stage::Cwd, _) => format!("bad cwd {cwd}: {text}"),
        (stage, _) => format!("{}: {text}", stage.describe()),
    }
}

/// What to try to execute: the program itself when it names a path,
/// otherwise each entry of the job's PATH, in order.
pub(crate) fn exec_candidates(program: &[u8], path_var: Option<&[u8]>) -> (Vec<Vec<u8>>, bool) {
    if program.contains(&b'/') {
        return (vec![program.to_vec()], false);
    }
    let path = path_var.unwrap_or(b"/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin");
    let candidates = path
        .split(|b| *b == b':')
        .map(|dir| {
            let dir: &[u8] = if dir.is_empty() { b"." } else { dir };
            let mut p = dir.to_vec();
            p.push(b'/');
            p.extend_from_slice(program);
            p
        })
        .collect();
    (candidates, true)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn candidates_follow_path() {
        let (c, searched) = exec_candidates(b"ls", Some(b"/usr/bin::/bin"));
        assert!(searched);
        assert_eq!(
            c,
            vec![b"/usr/bin/ls".to_vec(), b"./ls".to_vec(), b"/bin/ls".to_vec()]
        );
        let (c, searched) = exec_candidates(b"./x", Some(b"/bin"));
        assert!(!searched);
        assert_eq!(c, vec![b"./x".to_vec()]);
    }

    #[test]
    fn failures_read_like_a_person_wrote_them() {
        assert_eq!(
            failure_message(Stage::Exec, libc::ENOENT, "/bin/nosuch", "/", false),
            "no such file: /bin/nosuch"
        );
        assert_eq!(
            failure_message(Stage::Exec, libc::ENOENT, "nosuch", "/", true),
            "command not found in PATH: nosuch"
        );
        assert_eq!(
            failure_message(Stage::Cwd, libc::ENOENT, "x", "/nope", false),
            "bad cwd /nope: No such file or directory"
        );
        let mut msg = [0u8; 8];
        msg[..4].copy_from_slice(&(Stage::Cwd as u32).to_le_bytes());
        msg[4..].copy_from_slice(&libc::EACCES.to_le_bytes());
        assert_eq!(decode_failure(&msg), Some((Stage::Cwd, libc::EACCES)));
        assert_eq!(decode_failure(&msg[..5]), None);
    }
}
