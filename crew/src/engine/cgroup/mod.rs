//! Per-job cgroups on cgroup v2, and on hybrid hosts where the resource
//! controllers are still bound to cgroup v1.
//!
//! Every job gets a directory named by its id under the crew's parent (by
//! default `tasker/<crew name>`) in the cgroup2 tree, and, for each controller
//! that lives in v1 on this host, a directory of the same name in that
//! controller's hierarchy. The cgroup2 directory is the job's identity: the
//! job's first process is cloned straight into it (`CLONE_INTO_CGROUP`), and
//! it gives `cgroup.kill`, `cgroup.events` and `cpu.stat` on every host. The
//! v1 directories carry the limits when the controllers are not in v2.
//!
//! Layout:
//! - `mod.rs`: detection ([`Hierarchy`]), the crew's subtree ([`CgroupTree`]),
//!   one job's cgroup ([`JobCgroup`]).
//! - `cpu.rs`, `memory.rs`, `io.rs`, `pids.rs`: one file per controller; each
//!   takes the directory to act on, so tests point them at a temp dir.
//! - `fs.rs`: reading and writing cgroup files with the path in every error.
//!
//! Only directories the crew created are ever touched; nothing outside the
//! parent is written except enabling controllers in `cgroup.subtree_control`
//! of the parent's ancestors, which v2 requires.

mod cpu;
mod fs;
mod io;
mod memory;
mod pids;

use std::fmt;
use std::os::fd::OwnedFd;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use self::fs::{read_file, write_file};
use super::error::{EngineError, IoContext};
use super::job::{Limits, Totals, Usage};

/// The resource controllers Tasker uses.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Controller {
    Cpu,
    /// v1 only: CPU accounting lives in its own controller there.
    Cpuacct,
    Memory,
    /// `io` in v2, `blkio` in v1.
    Io,
    Pids,
}

impl Controller {
    const ALL: [Controller; 5] = [Self::Cpu, Self::Cpuacct, Self::Memory, Self::Io, Self::Pids];

    fn v1_name(self) -> &'static str {
        match self {
            Self::Cpu => "cpu",
            Self::Cpuacct => "cpuacct",
            Self::Memory => "memory",
            Self::Io => "blkio",
            Self::Pids => "pids",
        }
    }

    /// `None` for cpuacct, which v2 folds into core `cpu.stat`.
    fn v2_name(self) -> Option<&'static str> {
        match self {
            Self::Cpu => Some("cpu"),
            Self::Cpuacct => None,
            Self::Memory => Some("memory"),
            Self::Io => Some("io"),
            Self::Pids => Some("pids"),
        }
    }
}

/// Where one controller is served from on this host.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Backend {
    V2,
    /// The mount point of the v1 hierarchy that carries it.
    V1(PathBuf),
    Unavailable,
}

/// The cgroup mode, as reported to people.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CgroupMode {
    /// Every controller Tasker uses is in the cgroup2 tree.
    V2,
    /// Some controllers are bound to cgroup v1; limits for those are applied
    /// there, while membership, kill and events use the cgroup2 tree.
    Hybrid,
}

impl CgroupMode {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::V2 => "v2",
            Self::Hybrid => "v1-hybrid",
        }
    }
}

/// The cgroup hierarchies of this host.
#[derive(Clone, Debug)]
pub struct Hierarchy {
    /// The cgroup2 mount point.
    unified: PathBuf,
    cpu: Backend,
    cpuacct: Backend,
    memory: Backend,
    io: Backend,
    pids: Backend,
}

impl Hierarchy {
    /// Reads `/proc/self/mountinfo` and the cgroup2 root's controller list.
    pub fn detect_host() -> Result<Self, EngineError> {
        let path = Path::new("/proc/self/mountinfo");
        let mountinfo = std::fs::read_to_string(path).ctx("read", path)?;
        let mounts = parse_mountinfo(&mountinfo);
        let unified = mounts
            .iter()
            .filter(|m| m.fstype == "cgroup2")
            .map(|m| m.mount_point.clone())
            // Prefer the standard places, in the order systemd uses them.
            .min_by_key(|p| match p.to_str() {
                Some("/sys/fs/cgroup") => 0,
                Some("/sys/fs/cgroup/unified") => 1,
                _ => 2,
            })
            .ok_or_else(|| {
                EngineError::Cgroup(
                    "no cgroup2 hierarchy is mounted; Tasker needs cgroup v2, or a hybrid host \
                     with cgroup2 at /sys/fs/cgroup/unified"
                        .into(),
                )
            })?;
        let v2_controllers = read_file(&unified.join("cgroup.controllers"))?;
        let v1_mounts: Vec<(PathBuf, Vec<String>)> = mounts
            .iter()
            .filter(|m| m.fstype == "cgroup")
            .map(|m| {
                let opts = m.super_options.split(',').map(str::to_owned).collect();
                (m.mount_point.clone(), opts)
            })
            .collect();
        Ok(Self::from_parts(unified, &v2_controllers, &v1_mounts))
    }

    /// Decides each controller's backend: v2 when the cgroup2 root offers it,
    /// else the v1 hierarchy that carries it, else unavailable.
    pub fn from_parts(unified: PathBuf, v2_controllers: &str, v1_mounts: &[(PathBuf, Vec<String>)]) -> Self {
        let in_v2: Vec<&str> = v2_controllers.split_whitespace().collect();
        let backend = |c: Controller| {
            if c.v2_name().is_some_and(|n| in_v2.contains(&n)) {
                return Backend::V2;
            }
            if c == Controller::Cpuacct && in_v2.contains(&"cpu") {
                return Backend::V2;
            }
            v1_mounts
                .iter()
                .find(|(_, opts)| opts.iter().any(|o| o == c.v1_name()))
                .map_or(Backend::Unavailable, |(p, _)| Backend::V1(p.clone()))
        };
        Self {
            cpu: backend(Controller::Cpu),
            cpuacct: backend(Controller::Cpuacct),
            memory: backend(Controller::Memory),
            io: backend(Controller::Io),
            pids: backend(Controller::Pids),
            unified,
        }
    }

    fn backend(&self, c: Controller) -> &Backend {
        match c {
            Controller::Cpu => &self.cpu,
            Controller::Cpuacct => &self.cpuacct,
            Controller::Memory => &self.memory,
            Controller::Io => &self.io,
            Controller::Pids => &self.pids,
        }
    }

    pub fn mode(&self) -> CgroupMode {
        if Controller::ALL
            .iter()
            .any(|c| matches!(self.backend(*c), Backend::V1(_)))
        {
            CgroupMode::Hybrid
        } else {
            CgroupMode::V2
        }
    }

    /// One line for logs and `Info`: the mode and where each controller is.
    pub fn describe(&self) -> String {
        let mut parts = Vec::new();
        for c in Controller::ALL {
            let name = c.v1_name();
            match self.backend(c) {
                Backend::V2 if c == Controller::Cpuacct => {}
                Backend::V2 => parts.push(format!("{}=v2", c.v2_name().unwrap_or(name))),
                Backend::V1(_) => parts.push(format!("{name}=v1")),
                Backend::Unavailable => parts.push(format!("{name}=none")),
            }
        }
        format!(
            "cgroup {} (cgroup2 at {}; {})",
            self.mode().as_str(),
            self.unified.display(),
            parts.join(" ")
        )
    }

    pub fn unified_root(&self) -> &Path {
        &self.unified
    }

    /// The distinct v1 mount points in use (cpu and cpuacct may share one).
    fn v1_roots(&self) -> Vec<PathBuf> {
        let mut roots: Vec<PathBuf> = Vec::new();
        for c in Controller::ALL {
            if let Backend::V1(p) = self.backend(c)
                && !roots.contains(p)
            {
                roots.push(p.clone());
            }
        }
        roots
    }

    fn v2_controller_names(&self) -> Vec<&'static str> {
        Controller::ALL
            .iter()
            .filter(|c| *self.backend(**c) == Backend::V2)
            .filter_map(|c| c.v2_name())
            .collect()
    }
}

impl fmt::Display for Hierarchy {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.describe())
    }
}

struct Mount {
    mount_point: PathBuf,
    fstype: String,
    super_options: String,
}

fn parse_mountinfo(text: &str) -> Vec<Mount> {
    text.lines()
        .filter_map(|line| {
            let (pre, post) = line.split_once(" - ")?;
            let mount_point = pre.split(' ').nth(4)?;
            let mut post = post.split(' ');
            let fstype = post.next()?.to_owned();
            let _source = post.next()?;
            let super_options = post.next().unwrap_or("").to_owned();
            Some(Mount {
                mount_point: PathBuf::from(unescape_mount_path(mount_point)),
                fstype,
                super_options,
            })
        })
        .collect()
}

/// mountinfo writes space, tab, newline and backslash as `\ooo`.
fn unescape_mount_path(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'\\'
            && i + 3 < bytes.len()
            && bytes[i + 1..i + 4].iter().all(|b| (b'0'..=b'7').contains(b))
        {
            let digit = |k: usize| u32::from(bytes[i + k] - b'0');
            // Three octal digits; mountinfo only escapes bytes, so this fits.
            out.push((digit(1) * 64 + digit(2) * 8 + digit(3)) as u8);
            i += 4;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// Options of the crew's cgroup subtree.
#[derive(Clone, Debug)]
pub struct TreeOptions {
    /// Relative to each hierarchy's root, e.g. `tasker/alpha`.
    pub parent: PathBuf,
    /// Applied when a job asks for none.
    pub default_pids: u64,
    /// Kill with freeze + SIGKILL + thaw even where `cgroup.kill` exists, to
    /// exercise the fallback that older kernels take.
    pub force_freeze_kill: bool,
}

/// The crew's own subtree: `<root>/<parent>/` in every hierarchy in use, with
/// one directory per job and `shims/` (cgroup2 only) for the per-job helpers.
#[derive(Clone, Debug)]
pub struct CgroupTree {
    hier: Hierarchy,
    opts: TreeOptions,
}

/// The name of the cgroup that holds the crew's per-job helper processes.
const SHIMS: &str = "shims";

impl CgroupTree {
    /// Creates the parent in every hierarchy in use, enables the v2
    /// controllers down to it, and kills and removes whatever a previous run
    /// left there. Returns the tree and how many leftover cgroups it removed.
    pub fn init(hier: Hierarchy, opts: TreeOptions) -> Result<(Self, usize), EngineError> {
        validate_parent(&opts.parent)?;
        let tree = Self { hier, opts };
        let unified_parent = tree.hier.unified.join(&tree.opts.parent);
        std::fs::create_dir_all(&unified_parent).ctx("create cgroup", &unified_parent)?;
        tree.enable_v2_controllers()?;
        for root in tree.hier.v1_roots() {
            let dir = root.join(&tree.opts.parent);
            std::fs::create_dir_all(&dir).ctx("create cgroup", &dir)?;
        }
        let removed = tree.remove_leftovers()?;
        let shims = tree.shims_dir();
        std::fs::create_dir_all(&shims).ctx("create cgroup", &shims)?;
        Ok((tree, removed))
    }

    pub fn hierarchy(&self) -> &Hierarchy {
        &self.hier
    }

    /// The cgroup2 directory that holds the per-job helpers.
    pub fn shims_dir(&self) -> PathBuf {
        self.hier.unified.join(&self.opts.parent).join(SHIMS)
    }

    /// Writes `+ctrl` into `cgroup.subtree_control` from the root down to the
    /// parent, for the controllers this host offers in v2.
    fn enable_v2_controllers(&self) -> Result<(), EngineError> {
        let wanted = self.hier.v2_controller_names();
        if wanted.is_empty() {
            return Ok(());
        }
        let mut dir = self.hier.unified.clone();
        let mut levels = vec![dir.clone()];
        for comp in self.opts.parent.components() {
            dir.push(comp);
            levels.push(dir.clone());
        }
        for level in levels {
            let path = level.join("cgroup.subtree_control");
            let enabled = read_file(&path)?;
            let missing: Vec<String> = wanted
                .iter()
                .filter(|c| !enabled.split_whitespace().any(|e| e == **c))
                .map(|c| format!("+{c}"))
                .collect();
            if !missing.is_empty() {
                write_file(&path, &missing.join(" "))?;
            }
        }
        Ok(())
    }

    /// Kills and removes every cgroup under the parent: jobs and helpers of a
    /// previous crew run that nothing tracks any more.
    fn remove_leftovers(&self) -> Result<usize, EngineError> {
        let unified_parent = self.hier.unified.join(&self.opts.parent);
        let mut removed = 0;
        for name in subdirs(&unified_parent)? {
            let cg = self.job_cgroup_named(&name, &Controller::ALL);
            cg.kill_until_empty(Duration::from_secs(10))?;
            cg.remove()?;
            removed += 1;
        }
        // v1 directories without a cgroup2 twin (a crash between the mkdirs).
        for root in self.hier.v1_roots() {
            for name in subdirs(&root.join(&self.opts.parent))? {
                let dir = root.join(&self.opts.parent).join(&name);
                remove_dir_retrying(&dir)?;
                removed += 1;
            }
        }
        Ok(removed)
    }

    /// Kills and removes everything under the parent, helpers included, and
    /// the parent itself. For shutdown: best effort, errors are logged.
    pub fn destroy(&self) {
        if let Err(e) = self.remove_leftovers() {
            tracing::warn!(error = %e, "removing the crew's cgroups");
        }
        let mut roots = vec![self.hier.unified.clone()];
        roots.extend(self.hier.v1_roots());
        for root in roots {
            let _ = std::fs::remove_dir(root.join(&self.opts.parent));
        }
    }

    /// A job's cgroup, with v1 directories for the `controllers` given.
    fn job_cgroup_named(&self, name: &str, controllers: &[Controller]) -> JobCgroup {
        let rel = self.opts.parent.join(name);
        let mut v1 = Vec::new();
        for c in controllers {
            if let Backend::V1(root) = self.hier.backend(*c) {
                v1.push((*c, root.join(&rel)));
            }
        }
        JobCgroup {
            unified: self.hier.unified.join(&rel),
            v1,
            hier: self.hier.clone(),
            force_freeze_kill: self.opts.force_freeze_kill,
        }
    }

    /// Creates the job's cgroup and applies its limits. `init_in`: the v1
    /// directories (of a [`create_slot`](Self::create_slot)) that the job's
    /// init already joined; the pids limit leaves room for it there, so
    /// that the command gets the same count as on a cgroup2 host. On any
    /// error nothing the call made is left behind.
    pub fn create_job(
        &self,
        name: &str,
        limits: &Limits,
        init_in: &[PathBuf],
    ) -> Result<JobCgroup, EngineError> {
        if name == SHIMS || name.contains('/') || name.starts_with('.') {
            return Err(EngineError::Cgroup(format!("bad job cgroup name {name:?}")));
        }
        let cg = self.job_cgroup_named(name, &self.controllers_for(limits));
        let init_counts = cg.v1_dir(Controller::Pids).is_some_and(|d| init_in.contains(&d));
        let result = cg
            .create()
            .and_then(|()| self.apply_limits(&cg, limits, u64::from(init_counts)));
        if let Err(e) = result {
            // Best effort: the directories are empty, so removal cannot block
            // (those with an init in them stay, for its shim's dismissal).
            let _ = remove_dir_retrying(&cg.unified);
            for dir in cg.v1_dirs().iter().filter(|d| !init_in.contains(d)) {
                let _ = remove_dir_retrying(dir);
            }
            return Err(e);
        }
        Ok(cg)
    }

    /// Makes the v1 directories a ready shim's init joins ahead of its job
    /// `name`, on hybrid hosts: memory and pids, which every job has. A
    /// process joining a v1 cgroup waits for an RCU grace period (~20 ms
    /// after an idle spell); done while the shim waits, the job's command
    /// inherits them and its start pays nothing. None on a cgroup2 host,
    /// where the command is cloned straight into its cgroup.
    pub fn create_slot(&self, name: &str) -> Result<Vec<PathBuf>, EngineError> {
        let dirs = self
            .job_cgroup_named(name, &[Controller::Memory, Controller::Pids])
            .v1_dirs();
        for (i, dir) in dirs.iter().enumerate() {
            if let Err(e) = std::fs::create_dir(dir) {
                for made in &dirs[..i] {
                    let _ = std::fs::remove_dir(made);
                }
                return Err(EngineError::io("create cgroup", dir, e));
            }
        }
        Ok(dirs)
    }

    /// The controllers a job needs: memory (usage, peak, OOM kills) and pids
    /// always, cpu and io when it has such limits. On hybrid hosts every v1
    /// hierarchy joined costs a cgroup migration at start, so a job joins
    /// only these; its cpu time comes from cgroup2's own `cpu.stat`.
    fn controllers_for(&self, limits: &Limits) -> Vec<Controller> {
        let mut wanted = vec![Controller::Memory, Controller::Pids];
        if limits.cpu.is_some() {
            wanted.push(Controller::Cpu);
        }
        if !limits.io.is_empty() {
            wanted.push(Controller::Io);
        }
        wanted
    }

    fn apply_limits(&self, cg: &JobCgroup, limits: &Limits, pids_extra: u64) -> Result<(), EngineError> {
        let dir_for = |c: Controller, what: &str| -> Result<(bool, PathBuf), EngineError> {
            match self.hier.backend(c) {
                Backend::V2 => Ok((true, cg.unified.clone())),
                Backend::V1(_) => Ok((false, cg.v1_dir(c).expect("v1 dir exists for a v1 controller"))),
                Backend::Unavailable => Err(EngineError::Unsupported(format!(
                    "{what} limits are not available on this host: no {} controller",
                    c.v1_name()
                ))),
            }
        };
        if let Some(cores) = limits.cpu {
            let (v2, dir) = dir_for(Controller::Cpu, "cpu")?;
            cpu::apply(&dir, v2, cores)?;
        }
        if let Some(bytes) = limits.memory {
            let (v2, dir) = dir_for(Controller::Memory, "memory")?;
            memory::apply(&dir, v2, bytes)?;
        }
        if !limits.io.is_empty() {
            let (v2, dir) = dir_for(Controller::Io, "io")?;
            io::apply(&dir, v2, &limits.io)?;
        }
        match (limits.pids, self.hier.backend(Controller::Pids)) {
            (Some(n), _) => {
                let (_, dir) = dir_for(Controller::Pids, "pids")?;
                pids::apply(&dir, n.saturating_add(pids_extra))?;
            }
            // The default is a safety net; a host without the controller
            // simply has none.
            (None, Backend::Unavailable) => {}
            (None, _) => {
                let (_, dir) = dir_for(Controller::Pids, "pids")?;
                pids::apply(&dir, self.opts.default_pids.saturating_add(pids_extra))?;
            }
        }
        Ok(())
    }
}

fn validate_parent(parent: &Path) -> Result<(), EngineError> {
    use std::path::Component;
    let ok = !parent.as_os_str().is_empty()
        && parent.components().all(|c| match c {
            Component::Normal(s) => s.to_str().is_some_and(|s| {
                s.bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b"-_.".contains(&b))
            }),
            _ => false,
        });
    if ok {
        Ok(())
    } else {
        Err(EngineError::Cgroup(format!(
            "cgroup parent {} must be a relative path of plain names",
            parent.display()
        )))
    }
}

fn subdirs(dir: &Path) -> Result<Vec<String>, EngineError> {
    let mut names = Vec::new();
    let entries = match std::fs::read_dir(dir) {
        Ok(e) => e,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(names),
        Err(e) => return Err(EngineError::io("list", dir, e)),
    };
    for entry in entries {
        let entry = entry.ctx("list", dir)?;
        if entry.file_type().ctx("stat", &entry.path())?.is_dir() {
            names.push(entry.file_name().to_string_lossy().into_owned());
        }
    }
    Ok(names)
}

/// Removes a slot's directories (see [`CgroupTree::create_slot`]) once its
/// init is gone; best effort, a leftover is logged (and removed at the
/// crew's next start).
pub(crate) fn remove_slot(dirs: &[PathBuf]) {
    for dir in dirs {
        if let Err(e) = remove_dir_retrying(dir) {
            tracing::warn!(error = %e, "removing a ready shim's cgroup");
        }
    }
}

/// `rmdir` of a cgroup can fail with EBUSY for a moment after its last
/// process exits (the kernel finishes tearing tasks down asynchronously).
/// Removes nested directories first, and retries for up to a second.
fn remove_dir_retrying(dir: &Path) -> Result<(), EngineError> {
    for name in subdirs(dir)? {
        remove_dir_retrying(&dir.join(name))?;
    }
    let deadline = Instant::now() + Duration::from_secs(1);
    loop {
        match std::fs::remove_dir(dir) {
            Ok(()) => return Ok(()),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
            Err(e) if e.raw_os_error() == Some(libc::EBUSY) && Instant::now() < deadline => {
                std::thread::sleep(Duration::from_millis(2));
            }
            Err(e) => return Err(EngineError::io("remove cgroup", dir, e)),
        }
    }
}

/// One job's cgroup: its cgroup2 directory, plus its v1 directories on
/// hybrid hosts.
#[derive(Debug)]
pub struct JobCgroup {
    unified: PathBuf,
    v1: Vec<(Controller, PathBuf)>,
    hier: Hierarchy,
    force_freeze_kill: bool,
}

impl JobCgroup {
    fn create(&self) -> Result<(), EngineError> {
        std::fs::create_dir(&self.unified).ctx("create cgroup", &self.unified)?;
        for dir in self.v1_dirs() {
            match std::fs::create_dir(&dir) {
                Ok(()) => {}
                Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {}
                Err(e) => return Err(EngineError::io("create cgroup", dir, e)),
            }
        }
        Ok(())
    }

    /// The distinct v1 directories (cpu and cpuacct may share a hierarchy).
    fn v1_dirs(&self) -> Vec<PathBuf> {
        let mut dirs: Vec<PathBuf> = Vec::new();
        for (_, d) in &self.v1 {
            if !dirs.contains(d) {
                dirs.push(d.clone());
            }
        }
        dirs
    }

    fn v1_dir(&self, c: Controller) -> Option<PathBuf> {
        self.v1.iter().find(|(k, _)| *k == c).map(|(_, d)| d.clone())
    }

    /// A directory fd of the cgroup2 directory, for `CLONE_INTO_CGROUP`.
    pub fn open_unified(&self) -> Result<OwnedFd, EngineError> {
        let f = std::fs::File::open(&self.unified).ctx("open cgroup", &self.unified)?;
        Ok(f.into())
    }

    /// `cgroup.procs` of every v1 directory but those the job's init is
    /// already in (which the command inherits), opened for writing: the
    /// job's first process writes itself into each before it runs the
    /// command.
    pub fn open_v1_procs(&self, init_in: &[PathBuf]) -> Result<Vec<OwnedFd>, EngineError> {
        self.v1_dirs()
            .into_iter()
            .filter(|d| !init_in.contains(d))
            .map(|d| {
                let p = d.join("cgroup.procs");
                let f = std::fs::OpenOptions::new().write(true).open(&p).ctx("open", &p)?;
                Ok(f.into())
            })
            .collect()
    }

    /// `cgroup.procs` of the cgroup2 directory, for kernels without
    /// `CLONE_INTO_CGROUP` (before 5.7).
    pub fn open_unified_procs(&self) -> Result<OwnedFd, EngineError> {
        let p = self.unified.join("cgroup.procs");
        let f = std::fs::OpenOptions::new().write(true).open(&p).ctx("open", &p)?;
        Ok(f.into())
    }

    /// The first process in the cgroup: right after the job's exec, its
    /// command (host pid).
    pub fn first_pid(&self) -> Option<u32> {
        std::fs::read_to_string(self.unified.join("cgroup.procs"))
            .ok()?
            .split_whitespace()
            .next()?
            .parse()
            .ok()
    }

    /// Is any process left in the cgroup? (A cgroup that is gone has none.)
    pub fn populated(&self) -> Result<bool, EngineError> {
        match std::fs::read_to_string(self.unified.join("cgroup.events")) {
            Ok(events) => Ok(flat_keyed(&events, "populated") == Some(1)),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(false),
            Err(e) => Err(EngineError::io("read", self.unified.join("cgroup.events"), e)),
        }
    }

    /// Waits (bounded) until no process is left.
    pub fn wait_empty(&self, timeout: Duration) -> Result<(), EngineError> {
        let deadline = Instant::now() + timeout;
        let mut pause = Duration::from_micros(200);
        while self.populated()? {
            if Instant::now() >= deadline {
                return Err(EngineError::Cgroup(format!(
                    "{} still has processes after {timeout:?}",
                    self.unified.display()
                )));
            }
            std::thread::sleep(pause);
            pause = (pause * 2).min(Duration::from_millis(20));
        }
        Ok(())
    }

    /// Kills until nothing is left: a process that was joining the cgroup
    /// while it was killed gets the next round.
    pub fn kill_until_empty(&self, timeout: Duration) -> Result<(), EngineError> {
        let deadline = Instant::now() + timeout;
        loop {
            self.kill()?;
            match self.wait_empty(Duration::from_millis(200)) {
                Ok(()) => return Ok(()),
                Err(e) if Instant::now() >= deadline => return Err(e),
                Err(_) => {}
            }
        }
    }

    /// SIGKILL to every process in the cgroup: `cgroup.kill` where the kernel
    /// has it (5.14+), else freeze, kill each pid, thaw.
    pub fn kill(&self) -> Result<(), EngineError> {
        if !self.unified.exists() {
            // Already removed: nothing is left to kill.
            return Ok(());
        }
        let kill_file = self.unified.join("cgroup.kill");
        let result = if !self.force_freeze_kill && kill_file.exists() {
            write_file(&kill_file, "1")
        } else {
            self.freeze_kill_thaw()
        };
        match result {
            // Removed meanwhile (its job ended and was cleaned up): nothing
            // is left to kill, as above.
            Err(_) if !self.unified.exists() => Ok(()),
            other => other,
        }
    }

    fn freeze_kill_thaw(&self) -> Result<(), EngineError> {
        let freeze = self.unified.join("cgroup.freeze");
        write_file(&freeze, "1")?;
        let result = (|| {
            // Freezing is asynchronous; wait (bounded) for the kernel to
            // report it, so no process can fork between reading the list
            // and the kill.
            let deadline = Instant::now() + Duration::from_secs(1);
            loop {
                let events = read_file(&self.unified.join("cgroup.events"))?;
                if flat_keyed(&events, "frozen") == Some(1) || Instant::now() >= deadline {
                    break;
                }
                std::thread::sleep(Duration::from_micros(500));
            }
            let procs_path = self.unified.join("cgroup.procs");
            let procs = read_file(&procs_path)?;
            for pid in procs.split_whitespace().filter_map(|p| p.parse::<i32>().ok()) {
                // ESRCH: it already exited; nothing else can go wrong for root.
                let _ = nix::sys::signal::kill(
                    nix::unistd::Pid::from_raw(pid),
                    nix::sys::signal::Signal::SIGKILL,
                );
            }
            Ok(())
        })();
        // Never leave the cgroup frozen, whatever happened above.
        let thawed = write_file(&freeze, "0");
        result.and(thawed)
    }

    /// Live cpu and memory usage.
    pub fn usage(&self) -> Usage {
        Usage {
            cpu_usec: self.cpu_usec().unwrap_or(0),
            memory_bytes: self
                .memory_dir()
                .and_then(|(v2, d)| memory::current(&d, v2))
                .unwrap_or(0),
        }
    }

    fn memory_dir(&self) -> Option<(bool, PathBuf)> {
        match self.hier.backend(Controller::Memory) {
            Backend::V2 => Some((true, self.unified.clone())),
            Backend::V1(_) => self.v1_dir(Controller::Memory).map(|d| (false, d)),
            Backend::Unavailable => None,
        }
    }

    fn cpu_usec(&self) -> Option<u64> {
        // cgroup2's core cpu.stat has usage_usec even without the cpu
        // controller, so this works on hybrid hosts too.
        cpu::usage_usec(&self.unified).or_else(|| {
            let d = self.v1_dir(Controller::Cpuacct)?;
            cpu::usage_usec_v1(&d)
        })
    }

    /// Totals for the final record; read before the cgroup is removed.
    pub fn totals(&self) -> Totals {
        let (peak, oom_kills) = match self.memory_dir() {
            Some((v2, d)) => (memory::peak(&d, v2), memory::oom_kills(&d, v2).unwrap_or(0)),
            None => (None, 0),
        };
        Totals {
            peak_memory_bytes: peak,
            cpu_usec: self.cpu_usec(),
            oom_kills,
        }
    }

    /// Removes every directory of the job's cgroup. The cgroup must be empty.
    pub fn remove(&self) -> Result<(), EngineError> {
        let mut result = remove_dir_retrying(&self.unified);
        for dir in self.v1_dirs() {
            let r = remove_dir_retrying(&dir);
            if result.is_ok() {
                result = r;
            }
        }
        result
    }
}

/// Reads `key value` from a flat-keyed cgroup file such as `cgroup.events`.
pub(crate) fn flat_keyed(text: &str, key: &str) -> Option<u64> {
    text.lines().find_map(|l| {
        let (k, v) = l.split_once(' ')?;
        (k == key).then(|| v.trim().parse().ok())?
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const HYBRID_MOUNTINFO: &str = "\
31 23 0:28 / /sys/fs/cgroup rw,relatime - tmpfs tmpfs rw,mode=755
32 31 0:29 / /sys/fs/cgroup/cpu rw,relatime - cgroup cgroup rw,cpu
33 31 0:30 / /sys/fs/cgroup/cpuacct rw,relatime - cgroup cgroup rw,cpuacct
35 31 0:32 / /sys/fs/cgroup/memory rw,relatime - cgroup cgroup rw,memory
38 31 0:35 / /sys/fs/cgroup/blkio rw,relatime - cgroup cgroup rw,blkio
39 31 0:36 / /sys/fs/cgroup/pids rw,relatime - cgroup cgroup rw,pids
40 31 0:37 / /sys/fs/cgroup/systemd rw,relatime - cgroup cgroup rw,name=systemd
41 31 0:38 / /sys/fs/cgroup/unified rw,relatime - cgroup2 cgroup2 rw
";

    fn v1_mounts(text: &str) -> Vec<(PathBuf, Vec<String>)> {
        parse_mountinfo(text)
            .into_iter()
            .filter(|m| m.fstype == "cgroup")
            .map(|m| {
                (
                    m.mount_point,
                    m.super_options.split(',').map(str::to_owned).collect(),
                )
            })
            .collect()
    }

    #[test]
    fn hybrid_host_uses_v1_for_limits() {
        let h = Hierarchy::from_parts("/sys/fs/cgroup/unified".into(), "", &v1_mounts(HYBRID_MOUNTINFO));
        assert_eq!(h.mode(), CgroupMode::Hybrid);
        assert_eq!(h.memory, Backend::V1("/sys/fs/cgroup/memory".into()));
        assert_eq!(h.io, Backend::V1("/sys/fs/cgroup/blkio".into()));
        assert_eq!(h.cpuacct, Backend::V1("/sys/fs/cgroup/cpuacct".into()));
        assert!(h.describe().contains("memory=v1"), "{}", h.describe());
    }

    #[test]
    fn comounted_cpu_cpuacct_share_one_directory() {
        let text = "1 0 0:1 / /sys/fs/cgroup/cpu,cpuacct rw - cgroup cgroup rw,cpu,cpuacct\n";
        let h = Hierarchy::from_parts("/sys/fs/cgroup/unified".into(), "", &v1_mounts(text));
        assert_eq!(h.v1_roots(), vec![PathBuf::from("/sys/fs/cgroup/cpu,cpuacct")]);
    }

    #[test]
    fn pure_v2_host() {
        let h = Hierarchy::from_parts(
            "/sys/fs/cgroup".into(),
            "cpuset cpu io memory hugetlb pids rdma",
            &[],
        );
        assert_eq!(h.mode(), CgroupMode::V2);
        assert_eq!(h.cpuacct, Backend::V2);
        assert_eq!(h.v2_controller_names(), vec!["cpu", "memory", "io", "pids"]);
    }

    #[test]
    fn v2_without_io_reports_it_unavailable() {
        let h = Hierarchy::from_parts("/sys/fs/cgroup".into(), "cpu memory pids", &[]);
        assert_eq!(h.io, Backend::Unavailable);
        assert!(h.describe().contains("blkio=none"));
    }

    #[test]
    fn mount_paths_are_unescaped() {
        assert_eq!(unescape_mount_path(r"/a\040b"), "/a b");
        assert_eq!(unescape_mount_path(r"/a\\"), r"/a\\");
    }

    #[test]
    fn parent_must_be_plain_relative_names() {
        assert!(validate_parent(Path::new("tasker/alpha")).is_ok());
        for bad in ["", "/tasker", "tasker/../x", "a b"] {
            assert!(validate_parent(Path::new(bad)).is_err(), "{bad:?} accepted");
        }
    }

    #[test]
    fn flat_keyed_reads_values() {
        let events = "populated 1\nfrozen 0\n";
        assert_eq!(flat_keyed(events, "populated"), Some(1));
        assert_eq!(flat_keyed(events, "frozen"), Some(0));
        assert_eq!(flat_keyed(events, "nope"), None);
    }
}
