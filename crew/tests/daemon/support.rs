//! A real `crew` process per test: its own PKI (certgen's `TestPki`), state
//! directory, crew name (so its own cgroup parent `tasker/<name>`) and port.
//! Its stderr is captured line by line; every wait is bounded.

#![allow(dead_code)]

use std::ffi::OsString;
use std::io::BufRead as _;
use std::net::{SocketAddr, TcpListener};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use certgen::testing::TestPki;

/// The binary under test; `tasker-shim` sits next to it.
pub const CREW: &str = env!("CARGO_BIN_EXE_crew");

/// Why a test that runs the crew for real cannot run here, if it cannot.
pub fn skip_reason() -> Option<String> {
    if !nix::unistd::geteuid().is_root() {
        return Some("needs root (the crew refuses to start without it)".into());
    }
    if cgroup2_root().is_none() {
        return Some("no cgroup2 hierarchy is mounted".into());
    }
    None
}

/// `SKIPPED <test>: <why>` and return, when the crew cannot run here.
macro_rules! skip_unless_crew_can_run {
    () => {
        if let Some(why) = $crate::support::skip_reason() {
            eprintln!("SKIPPED {}: {why}", module_path!());
            return;
        }
    };
}
pub(crate) use skip_unless_crew_can_run;

/// Root is needed to get past the first check of a start (the checks of
/// a bad start after it are what such tests are about).
macro_rules! skip_unless_root {
    () => {
        if !nix::unistd::geteuid().is_root() {
            eprintln!(
                "SKIPPED {}: needs root (the crew checks for root first)",
                module_path!()
            );
            return;
        }
    };
}
pub(crate) use skip_unless_root;

/// The flags of a crew named `name` on `port` with the PKI in `pki`, and
/// `state` as its state directory.
pub fn flags(name: &str, pki: &Path, state: &Path, port: u16) -> Vec<OsString> {
    vec![
        "--name".into(),
        name.into(),
        "--listen".into(),
        format!("127.0.0.1:{port}").into(),
        "--certs".into(),
        arg(pki),
        "--state-dir".into(),
        arg(state),
    ]
}

/// The refusal every bad start must be: exit 2, one line, `crew: ` and
/// each of `needles`.
fn assert_one_line(got: &Refusal, needles: &[&str]) {
    assert_eq!(got.status.code(), Some(2), "{got:?}");
    assert_eq!(got.stderr.len(), 1, "not exactly one line: {:#?}", got.stderr);
    let line = &got.stderr[0];
    assert!(line.starts_with("crew: "), "{line}");
    for n in needles {
        assert!(line.contains(n), "{line:?} does not say {n:?}");
    }
}

/// [`assert_one_line`], and nothing of crew `name` is left.
pub fn assert_refused(got: &Refusal, name: &str, needles: &[&str]) {
    assert_one_line(got, needles);
    assert!(
        crew_cgroups_left(name).is_empty(),
        "a refused start left cgroups: {:?}",
        crew_cgroups_left(name)
    );
}

/// Runs the crew with `args` and asserts it refused to start at once:
/// exit 2 within a few seconds, one line, every one of `needles` in it.
pub async fn refused_at_once(args: &[OsString], needles: &[&str]) {
    let t0 = Instant::now();
    let got = run_to_exit(&[], args).await;
    let took = t0.elapsed();
    assert_one_line(&got, needles);
    assert!(
        took < Duration::from_secs(5),
        "took {took:?} to refuse: {:?}",
        got.stderr
    );
}

/// A crew name no other test (or test run) uses: the crew's cgroup parent is
/// `tasker/<name>`, and two crews of one name kill each other's jobs.
pub fn unique_name(tag: &str) -> String {
    static NEXT: AtomicU32 = AtomicU32::new(0);
    let n = NEXT.fetch_add(1, Ordering::SeqCst);
    format!("td-{tag}-{}-{n}", std::process::id())
}

/// A port that was free a moment ago (the crew must be given one; a clash
/// with another process in between is retried by [`Crew::start`]).
pub fn free_port() -> u16 {
    let l = TcpListener::bind("127.0.0.1:0").expect("bind 127.0.0.1:0");
    l.local_addr().unwrap().port()
}

// ------------------------------------------------------------------ waits

pub use crew::testing::{bounded, scaled, wait_for};

// ----------------------------------------------------------------- stderr

/// A child's stderr, read by a thread into lines as they come.
#[derive(Clone, Debug, Default)]
pub struct Captured {
    lines: Arc<Mutex<Vec<String>>>,
    closed: Arc<AtomicBool>,
    hang_up: Arc<AtomicBool>,
}

impl Captured {
    fn spawn(stream: impl std::io::Read + Send + 'static) -> Self {
        let captured = Self::default();
        let c = captured.clone();
        std::thread::spawn(move || {
            let mut reader = std::io::BufReader::new(stream);
            let mut buf = Vec::new();
            loop {
                buf.clear();
                match reader.read_until(b'\n', &mut buf) {
                    Ok(0) | Err(_) => break,
                    Ok(_) => {
                        if buf.last() == Some(&b'\n') {
                            buf.pop();
                        }
                        let line = String::from_utf8_lossy(&buf).into_owned();
                        c.lines.lock().unwrap().push(line);
                        if c.hang_up.load(Ordering::SeqCst) {
                            break;
                        }
                    }
                }
            }
            c.closed.store(true, Ordering::SeqCst);
        });
        captured
    }

    pub fn lines(&self) -> Vec<String> {
        self.lines.lock().unwrap().clone()
    }

    pub fn text(&self) -> String {
        self.lines().join("\n")
    }

    pub fn has(&self, needle: &str) -> bool {
        self.lines.lock().unwrap().iter().any(|l| l.contains(needle))
    }

    pub fn is_closed(&self) -> bool {
        self.closed.load(Ordering::SeqCst)
    }

    /// Closes the pipe's read end after the next line comes: from then on
    /// the child's writes to stderr fail (EPIPE).
    pub fn hang_up_after_next_line(&self) {
        self.hang_up.store(true, Ordering::SeqCst);
    }
}

// ------------------------------------------------------------ bad starts

/// How a crew that was expected to refuse to start ended.
#[derive(Debug)]
pub struct Refusal {
    pub status: ExitStatus,
    pub stderr: Vec<String>,
}

/// Runs `crew` (optionally through `wrapper`, e.g. setpriv) with `args` to
/// its exit, within 20 s, and returns its status and every stderr line.
pub async fn run_to_exit(wrapper: &[&str], args: &[OsString]) -> Refusal {
    run_to_exit_with_env(wrapper, args, &[]).await
}

/// As [`run_to_exit`], with variables added to the crew's environment.
pub async fn run_to_exit_with_env(wrapper: &[&str], args: &[OsString], env: &[(&str, &str)]) -> Refusal {
    // The crew finds the shim beside itself.
    crew::testing::shim_binary();
    let mut cmd = match wrapper.split_first() {
        Some((program, rest)) => {
            let mut c = Command::new(program);
            c.args(rest).arg(CREW);
            c
        }
        None => Command::new(CREW),
    };
    cmd.args(args)
        .env_remove("CREW_LOG")
        .envs(env.iter().copied())
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped());
    let mut child = cmd.spawn().expect("spawn crew");
    let stderr = Captured::spawn(child.stderr.take().unwrap());
    let status = wait_exit(
        &mut child,
        Duration::from_secs(20),
        "a crew that should refuse to start",
    )
    .await;
    wait_for("the crew's stderr to close", Duration::from_secs(5), || {
        stderr.is_closed()
    })
    .await;
    Refusal {
        status,
        stderr: stderr.lines(),
    }
}

/// Waits for `child` to exit within `timeout`; kills it and panics if not.
pub async fn wait_exit(child: &mut Child, timeout: Duration, what: &str) -> ExitStatus {
    let mut status = None;
    let deadline = Instant::now() + timeout;
    let mut pause = Duration::from_millis(1);
    while Instant::now() < deadline {
        if let Some(s) = child.try_wait().expect("wait for the crew") {
            status = Some(s);
            break;
        }
        tokio::time::sleep(pause).await;
        pause = (pause * 2).min(Duration::from_millis(50));
    }
    match status {
        Some(s) => s,
        None => {
            let _ = child.kill();
            let _ = child.wait();
            panic!("{what} did not exit within {timeout:?}");
        }
    }
}

// --------------------------------------------------------- a running crew

/// A `crew` process serving on 127.0.0.1 with a certificate of its own.
#[derive(Debug)]
pub struct Crew {
    pub name: String,
    pub pki: Arc<TestPki>,
    pub state: Arc<tempfile::TempDir>,
    pub addr: SocketAddr,
    pub pid: i32,
    pub stderr: Captured,
    child: Option<Child>,
    /// Set when a successor takes over (`restart`): its jobs are not this
    /// one's to clean up.
    succeeded: bool,
}

impl Crew {
    /// Starts a crew named uniquely after `tag`, with `--shutdown-grace 1s`
    /// and `extra` flags, and waits for it to serve.
    pub async fn start(tag: &str, extra: &[&str]) -> Crew {
        let name = unique_name(tag);
        let pki = TestPki::new();
        let _ = pki.crew(&name);
        let state = tempfile::tempdir().unwrap();
        Self::spawn(name, Arc::new(pki), Arc::new(state), extra, &[]).await
    }

    /// As [`start`](Self::start), with variables added to the crew's
    /// environment.
    pub async fn start_with_env(tag: &str, extra: &[&str], env: &[(&str, &str)]) -> Crew {
        let name = unique_name(tag);
        let pki = TestPki::new();
        let _ = pki.crew(&name);
        let state = tempfile::tempdir().unwrap();
        Self::spawn(name, Arc::new(pki), Arc::new(state), extra, env).await
    }

    /// A new crew process of the same name, PKI and state directory, once
    /// this one has exited (or been killed: see `kill9`), with `extra`
    /// flags. Its jobs are now the successor's.
    pub async fn restart(mut self, extra: &[&str]) -> Crew {
        self.end_child();
        self.succeeded = true;
        Self::spawn(
            self.name.clone(),
            Arc::clone(&self.pki),
            Arc::clone(&self.state),
            extra,
            &[],
        )
        .await
    }

    /// Runs a crew of this name, PKI and state directory to its exit (once
    /// this one has exited), with variables added to its environment: for a
    /// crew that is to die on its way up.
    pub async fn run_successor_to_exit(&mut self, env: &[(&str, &str)]) -> Refusal {
        self.end_child();
        let args = [
            arg("--name"),
            arg(&self.name),
            arg("--listen"),
            arg(format!("127.0.0.1:{}", free_port())),
            arg("--certs"),
            arg(self.pki.dir()),
            arg("--state-dir"),
            arg(self.state.path()),
        ];
        run_to_exit_with_env(&[], &args, env).await
    }

    /// SIGKILL, as a crash would: no cleanup of any kind.
    pub async fn kill9(&mut self) {
        self.signal(nix::sys::signal::Signal::SIGKILL);
        let mut child = self.child.take().expect("the crew was running");
        let _ = wait_exit(&mut child, Duration::from_secs(10), "the killed crew").await;
    }

    async fn spawn(
        name: String,
        pki: Arc<TestPki>,
        state: Arc<tempfile::TempDir>,
        extra: &[&str],
        env: &[(&str, &str)],
    ) -> Crew {
        // The crew finds the shim beside itself.
        crew::testing::shim_binary();
        for attempt in 0..5 {
            let port = free_port();
            let mut child = Command::new(CREW)
                .arg("--name")
                .arg(&name)
                .arg("--listen")
                .arg(format!("127.0.0.1:{port}"))
                .arg("--certs")
                .arg(pki.dir())
                .arg("--state-dir")
                .arg(state.path())
                .args(["--shutdown-grace", "1s"])
                .args(extra)
                .env_remove("CREW_LOG")
                .envs(env.iter().copied())
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(Stdio::piped())
                .spawn()
                .expect("spawn crew");
            let stderr = Captured::spawn(child.stderr.take().unwrap());
            // Serving, or gone (a port another process took in between).
            let deadline = Instant::now() + Duration::from_secs(30);
            let mut exited = None;
            while Instant::now() < deadline {
                if stderr.has("serving") {
                    break;
                }
                if let Some(s) = child.try_wait().unwrap() {
                    exited = Some(s);
                    break;
                }
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
            if let Some(status) = exited {
                wait_for("the crew's stderr to close", Duration::from_secs(5), || {
                    stderr.is_closed()
                })
                .await;
                if stderr.has("cannot listen") && attempt < 4 {
                    continue;
                }
                panic!(
                    "the crew exited ({status}) instead of serving:\n{}",
                    stderr.text()
                );
            }
            assert!(
                stderr.has("serving"),
                "the crew did not serve within 30 s:\n{}",
                stderr.text()
            );
            return Crew {
                pid: child.id() as i32,
                name,
                pki,
                state,
                addr: SocketAddr::from(([127, 0, 0, 1], port)),
                stderr,
                child: Some(child),
                succeeded: false,
            };
        }
        unreachable!("every attempt either returns or panics")
    }

    pub fn signal(&self, sig: nix::sys::signal::Signal) {
        nix::sys::signal::kill(nix::unistd::Pid::from_raw(self.pid), sig).expect("signal the crew");
    }

    /// Waits for the crew to exit, then for its stderr to close (nothing it
    /// started may hold it), and returns its status.
    pub async fn wait_exit(&mut self, timeout: Duration) -> ExitStatus {
        let mut child = self.child.take().expect("the crew was running");
        let status = wait_exit(&mut child, timeout, "the crew").await;
        wait_for(
            "the crew's stderr to close after it exited",
            Duration::from_secs(5),
            || self.stderr.is_closed(),
        )
        .await;
        status
    }

    /// SIGTERM, and the exit status (within 30 s).
    pub async fn stop(&mut self) -> ExitStatus {
        self.signal(nix::sys::signal::Signal::SIGTERM);
        self.wait_exit(Duration::from_secs(30)).await
    }

    /// Entries of `/proc/<crew>/fd`.
    pub fn fd_count(&self) -> usize {
        std::fs::read_dir(format!("/proc/{}/fd", self.pid))
            .expect("read the crew's fds")
            .count()
    }
}

impl Drop for Crew {
    /// A crew still running when its test ends (a failed assertion) is
    /// stopped the way an operator would; then whatever jobs it left
    /// running (a crew leaves them by default) are killed, so that nothing
    /// of a test outlives it.
    fn drop(&mut self) {
        self.end_child();
        if !self.succeeded {
            kill_jobs_left(&self.name);
        }
    }
}

/// Kills every process in the crew's cgroups and removes them, in every
/// hierarchy (a crew that leaves its jobs running leaves its parent too).
pub fn kill_jobs_left(crew: &str) {
    let Some(root) = cgroup2_root() else { return };
    let unified = root.join("tasker").join(crew);
    let mut parents = vec![unified.clone()];
    parents.extend(
        mounts_of(&["cgroup"])
            .into_iter()
            .map(|m| m.join("tasker").join(crew)),
    );
    for parent in &parents {
        let Ok(entries) = std::fs::read_dir(parent) else {
            continue;
        };
        for e in entries.flatten() {
            let dir = e.path();
            if !dir.is_dir() {
                continue;
            }
            if *parent == unified {
                // Kills every process below too (an owner's jobs).
                let _ = std::fs::write(dir.join("cgroup.kill"), "1");
            }
            remove_tree(&dir);
        }
        let _ = std::fs::remove_dir(parent);
    }
}

/// Removes a cgroup and every one below it, the deepest first, each
/// retried while its last processes exit.
fn remove_tree(dir: &Path) {
    if let Ok(entries) = std::fs::read_dir(dir) {
        for e in entries.flatten() {
            if e.path().is_dir() {
                remove_tree(&e.path());
            }
        }
    }
    for _ in 0..100 {
        if std::fs::remove_dir(dir).is_ok() {
            break;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

impl Crew {
    fn end_child(&mut self) {
        let Some(mut child) = self.child.take() else {
            return;
        };
        let _ = nix::sys::signal::kill(
            nix::unistd::Pid::from_raw(self.pid),
            nix::sys::signal::Signal::SIGTERM,
        );
        let deadline = Instant::now() + Duration::from_secs(30);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = child.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let _ = child.kill();
        let _ = child.wait();
    }
}

// ---------------------------------------------------------------- cgroups

fn mounts_of(types: &[&str]) -> Vec<PathBuf> {
    let info = std::fs::read_to_string("/proc/self/mountinfo").unwrap_or_default();
    info.lines()
        .filter_map(|l| {
            let (left, right) = l.split_once(" - ")?;
            let fstype = right.split(' ').next()?;
            let mount_point = left.split(' ').nth(4)?;
            types.contains(&fstype).then(|| PathBuf::from(mount_point))
        })
        .collect()
}

/// The cgroup2 tree: `/sys/fs/cgroup/unified` on hybrid hosts, usually
/// `/sys/fs/cgroup` on pure v2 ones.
pub fn cgroup2_root() -> Option<PathBuf> {
    mounts_of(&["cgroup2"]).into_iter().next()
}

/// The pids in a job's cgroup (empty once it is gone).
pub fn job_pids(crew: &str, job_id: &str) -> Vec<i32> {
    let root = cgroup2_root().expect("cgroup2");
    let parent = root.join("tasker").join(crew);
    let procs = std::fs::read_dir(&parent)
        .into_iter()
        .flatten()
        .flatten()
        .map(|owner| owner.path().join(job_id))
        .find(|d| d.is_dir())
        .unwrap_or_else(|| parent.join(job_id))
        .join("cgroup.procs");
    std::fs::read_to_string(procs)
        .unwrap_or_default()
        .lines()
        .filter_map(|l| l.trim().parse().ok())
        .collect()
}

/// `tasker/<crew>` in every cgroup hierarchy (v1 and v2) where it exists.
/// The jobs' cgroups under the crew's parent in the cgroup2 tree (not the
/// helpers' `shims`).
pub fn job_cgroups_left(crew: &str) -> Vec<String> {
    let Some(root) = cgroup2_root() else {
        return Vec::new();
    };
    let Ok(entries) = std::fs::read_dir(root.join("tasker").join(crew)) else {
        return Vec::new();
    };
    // `<owner>/<job>`: the owners' directories stay, jobs do not.
    let mut left = Vec::new();
    for owner in entries.flatten().filter(|e| e.path().is_dir()) {
        let Ok(name) = owner.file_name().into_string() else {
            continue;
        };
        if name == "shims" {
            continue;
        }
        for job in std::fs::read_dir(owner.path()).into_iter().flatten().flatten() {
            if job.path().is_dir() {
                left.push(format!("{name}/{}", job.file_name().to_string_lossy()));
            }
        }
    }
    left
}

pub fn crew_cgroups_left(crew: &str) -> Vec<PathBuf> {
    mounts_of(&["cgroup", "cgroup2"])
        .into_iter()
        .map(|m| m.join("tasker").join(crew))
        .filter(|p| p.exists())
        .collect()
}

// -------------------------------------------------------------- processes

/// A process by pid and start time, so a recycled pid is not mistaken for it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Proc {
    pub pid: i32,
    pub ppid: i32,
    pub comm: String,
    start: u64,
}

fn stat_fields(pid: i32) -> Option<(char, u64)> {
    stat_of(pid).map(|(state, _, start)| (state, start))
}

/// State, parent and start time of a process.
fn stat_of(pid: i32) -> Option<(char, i32, u64)> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // After the comm, which may hold spaces and parentheses.
    let rest = &stat[stat.rfind(')')? + 2..];
    let fields: Vec<&str> = rest.split(' ').collect();
    let state = fields.first()?.chars().next()?;
    // Field 22 of stat(5) is starttime; `rest` starts at field 3.
    let ppid = fields.get(1)?.parse().ok()?;
    let start = fields.get(19)?.parse().ok()?;
    Some((state, ppid, start))
}

impl Proc {
    pub fn of(pid: i32) -> Option<Proc> {
        let (_, ppid, start) = stat_of(pid)?;
        let comm = std::fs::read_to_string(format!("/proc/{pid}/comm")).ok()?;
        Some(Proc {
            pid,
            ppid,
            comm: comm.trim_end().to_owned(),
            start,
        })
    }

    /// Still there, zombies included.
    pub fn exists(&self) -> bool {
        stat_fields(self.pid).is_some_and(|(_, start)| start == self.start)
    }
}

/// The user jobs run as in these tests, made if missing.
pub use crew::testing::{ALICE, BOB, ensure_user};

/// A path under `dir` as an owned argument.
pub fn arg(p: impl AsRef<Path>) -> OsString {
    p.as_ref().as_os_str().to_owned()
}
