//! The crew's own subtree, `<root>/<parent>/` in every hierarchy in use:
//! `<parent>/<owner>/<job id>` for jobs, each owner's directory holding
//! that user's caps and the parent the crew's (see `quota.rs`), and
//! `<parent>/shims` (cgroup2 only) for the per-job helpers. Jobs of a crew
//! from before owners had directories sit at `<parent>/<job id>` and are
//! found there.

use std::collections::HashSet;
use std::path::{Path, PathBuf};
use std::time::Duration;

use std::sync::{Arc, Mutex};

use super::fs::{read_file, remove_dir_retrying, subdirs, write_file};
use super::{
    Backend, Controller, EngineError, Hierarchy, IoContext, JobCgroup, Limits, cpu, io, memory, pids,
};
use crate::engine::job::JobId;
use crate::engine::quota::{Caps, Quotas};
use tasker_common::lock;

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
    /// Caps on each user's jobs together, and on the crew's.
    pub quotas: Quotas,
}

/// The crew's own subtree: `<root>/<parent>/` in every hierarchy in use, with
/// one directory per job and `shims/` (cgroup2 only) for the per-job helpers.
#[derive(Clone, Debug)]
pub struct CgroupTree {
    hier: Hierarchy,
    opts: TreeOptions,
    /// Owners whose directories this crew has made ready (capped, with
    /// controllers enabled below them): made once, before any job of theirs.
    owners: Arc<Mutex<HashSet<String>>>,
}

/// The name of the cgroup that holds the crew's per-job helper processes.
const SHIMS: &str = "shims";

impl CgroupTree {
    /// The crew's parent in the cgroup2 tree (what its name owns on the
    /// host; see `ownership.rs`).
    pub fn unified_parent(hier: &Hierarchy, opts: &TreeOptions) -> Result<PathBuf, EngineError> {
        validate_parent(&opts.parent)?;
        Ok(hier.unified.join(&opts.parent))
    }

    /// Creates the parent in every hierarchy in use and enables the v2
    /// controllers down to it. What a previous run left there stays until
    /// [`remove_leftovers`](Self::remove_leftovers).
    pub fn init(hier: Hierarchy, opts: TreeOptions) -> Result<Self, EngineError> {
        validate_parent(&opts.parent)?;
        let tree = Self {
            hier,
            opts,
            owners: Arc::default(),
        };
        let unified_parent = tree.hier.unified.join(&tree.opts.parent);
        std::fs::create_dir_all(&unified_parent).ctx("create cgroup", &unified_parent)?;
        tree.enable_v2_controllers()?;
        for root in tree.hier.v1_roots() {
            let dir = root.join(&tree.opts.parent);
            std::fs::create_dir_all(&dir).ctx("create cgroup", &dir)?;
        }
        let shims = tree.shims_dir();
        std::fs::create_dir_all(&shims).ctx("create cgroup", &shims)?;
        tree.apply_caps(Path::new(""), &tree.opts.quotas.crew)?;
        // Owners' directories a previous run made get this run's caps.
        for name in subdirs(&unified_parent)? {
            if is_owner_dir(&name) {
                tree.ensure_owner(&name)?;
            }
        }
        Ok(tree)
    }

    /// The name `owner`'s directory has: the owner's name, which a user
    /// name's alphabet keeps a plain directory name; refused when it would
    /// read as the helpers' directory or a job's.
    fn owner_dir(owner: &str) -> Result<&str, EngineError> {
        if tasker_common::validate_name(owner).is_err() || !is_owner_dir(owner) {
            return Err(EngineError::InvalidSpec(format!(
                "the user name {owner:?} cannot own jobs on a crew (it is reserved)"
            )));
        }
        Ok(owner)
    }

    /// Makes `owner`'s directory in every hierarchy, with the user's caps
    /// and (cgroup2) the controllers enabled for the jobs below; once per
    /// owner and run.
    fn ensure_owner(&self, owner: &str) -> Result<(), EngineError> {
        let dir = Self::owner_dir(owner)?;
        let mut ready = lock(&self.owners);
        if ready.contains(dir) {
            return Ok(());
        }
        let rel = Path::new(dir);
        let unified = self.hier.unified.join(&self.opts.parent).join(rel);
        make_dir(&unified)?;
        let wanted = self.hier.v2_controller_names();
        if !wanted.is_empty() {
            let path = unified.join("cgroup.subtree_control");
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
        for root in self.hier.v1_roots() {
            make_dir(&root.join(&self.opts.parent).join(rel))?;
        }
        self.apply_caps(rel, &self.opts.quotas.of(owner))?;
        ready.insert(dir.to_owned());
        Ok(())
    }

    /// Writes `caps` into `<parent>/<rel>` of each hierarchy that holds the
    /// controller; a cap not set is lifted (`max`), so a cap taken out of
    /// the configuration goes at the next start.
    fn apply_caps(&self, rel: &Path, caps: &Caps) -> Result<(), EngineError> {
        for c in [Controller::Pids, Controller::Memory, Controller::Cpu] {
            let (v2, dir) = match self.hier.backend(c) {
                Backend::V2 => (true, self.hier.unified.join(&self.opts.parent).join(rel)),
                Backend::V1(root) => (false, root.join(&self.opts.parent).join(rel)),
                Backend::Unavailable => continue,
            };
            match c {
                Controller::Pids => match caps.pids {
                    Some(n) => pids::apply(&dir, n)?,
                    None => write_file(&dir.join("pids.max"), "max")?,
                },
                Controller::Memory => match caps.memory {
                    Some(n) => memory::apply(&dir, v2, n)?,
                    None => memory::lift(&dir, v2)?,
                },
                _ => match caps.cpu {
                    Some(cores) => cpu::apply(&dir, v2, cores)?,
                    None => cpu::lift(&dir, v2)?,
                },
            }
        }
        Ok(())
    }

    /// What `owner`'s jobs use together now: tasks and memory bytes.
    pub fn owner_usage(&self, owner: &str) -> (Option<u64>, Option<u64>) {
        let Ok(dir) = Self::owner_dir(owner) else {
            return (None, None);
        };
        let memory = match self.hier.backend(Controller::Memory) {
            Backend::V2 => memory::current(&self.hier.unified.join(&self.opts.parent).join(dir), true),
            Backend::V1(root) => memory::current(&root.join(&self.opts.parent).join(dir), false),
            Backend::Unavailable => None,
        };
        (self.owner_tasks(owner), memory)
    }

    /// The tasks of `owner`'s jobs together now.
    pub fn owner_tasks(&self, owner: &str) -> Option<u64> {
        let dir = Self::owner_dir(owner).ok()?;
        pids::current(&self.pids_parent()?.join(dir))
    }

    /// Tasks in all of the crew's cgroups together (its jobs and ready
    /// shims' inits), where the pids controller is.
    pub fn tasks(&self) -> Option<u64> {
        pids::current(&self.pids_parent()?)
    }

    /// The crew's parent in the hierarchy of the pids controller.
    fn pids_parent(&self) -> Option<PathBuf> {
        match self.hier.backend(Controller::Pids) {
            Backend::V2 => Some(self.hier.unified.join(&self.opts.parent)),
            Backend::V1(root) => Some(root.join(&self.opts.parent)),
            Backend::Unavailable => None,
        }
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

    /// Kills and removes every job cgroup under the parent but those named
    /// in `keep` (jobs that run on) and the helpers' (where the shims of
    /// running jobs live): what a crew that went left of jobs that are
    /// over, or of starts it did not finish. Returns how many it removed.
    pub fn remove_leftovers(&self, keep: &HashSet<String>) -> Result<usize, EngineError> {
        let unified_parent = self.hier.unified.join(&self.opts.parent);
        let mut removed = 0;
        let mut leftover = |rel: String| -> Result<(), EngineError> {
            let cg = self.job_cgroup_named(&rel, &Controller::ALL);
            cg.kill_until_empty(Duration::from_secs(10))?;
            cg.remove()?;
            removed += 1;
            Ok(())
        };
        for name in subdirs(&unified_parent)? {
            if name == SHIMS || keep.contains(&name) {
                continue;
            }
            if !is_owner_dir(&name) {
                // A job of a crew from before owners had directories.
                leftover(name)?;
                continue;
            }
            for job in subdirs(&unified_parent.join(&name))? {
                if !keep.contains(&job) {
                    leftover(format!("{name}/{job}"))?;
                }
            }
        }
        // v1 directories without a cgroup2 twin (a crash between the mkdirs,
        // or a ready shim's slot).
        for root in self.hier.v1_roots() {
            let parent = root.join(&self.opts.parent);
            let mut dirs = Vec::new();
            for name in subdirs(&parent)? {
                if keep.contains(&name) {
                    continue;
                }
                if is_owner_dir(&name) {
                    for job in subdirs(&parent.join(&name))? {
                        if !keep.contains(&job) {
                            dirs.push(parent.join(&name).join(job));
                        }
                    }
                } else {
                    dirs.push(parent.join(name));
                }
            }
            for dir in dirs {
                match remove_dir_retrying(&dir) {
                    Ok(()) => removed += 1,
                    // A slot whose ready shim has yet to see its crew gone.
                    Err(e) => tracing::warn!(error = %e, "a cgroup of a previous run is still busy"),
                }
            }
        }
        Ok(removed)
    }

    /// Removes the owners' directories that hold no job (best effort: one
    /// that a job holds stays).
    fn remove_empty_owners(&self) {
        let mut roots = vec![self.hier.unified.clone()];
        roots.extend(self.hier.v1_roots());
        for root in roots {
            let parent = root.join(&self.opts.parent);
            for name in subdirs(&parent).unwrap_or_default() {
                if is_owner_dir(&name) {
                    let _ = std::fs::remove_dir(parent.join(name));
                }
            }
        }
        lock(&self.owners).clear();
    }

    /// Kills and removes everything under the parent, helpers included, and
    /// the parent itself: when the crew stops its jobs as it stops. Best
    /// effort, errors are logged.
    pub fn destroy(&self) {
        if let Err(e) = self.remove_leftovers(&HashSet::new()) {
            tracing::warn!(error = %e, "removing the crew's cgroups");
        }
        self.remove_empty_owners();
        let shims = self.job_cgroup_named(SHIMS, &[]);
        if let Err(e) = shims
            .kill_until_empty(Duration::from_secs(10))
            .and_then(|()| shims.remove())
        {
            tracing::warn!(error = %e, "removing the helpers' cgroup");
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
            slot_rest: Vec::new(),
        }
    }

    /// The cgroup of a job that already has one (a job found again): under
    /// its owner, or where a crew from before owners had directories put it.
    pub fn job_cgroup(&self, owner: &str, name: &str, limits: &Limits) -> JobCgroup {
        let flat = self.hier.unified.join(&self.opts.parent).join(name);
        let rel = if flat.is_dir() {
            name.to_owned()
        } else {
            format!("{owner}/{name}")
        };
        self.job_cgroup_named(&rel, &self.controllers_for(limits))
    }

    /// Creates `owner`'s job's cgroup (and the owner's, capped, if it is
    /// the first) and applies its limits. `init_in`: the v1 directories
    /// (of a [`create_slot`](Self::create_slot)) that the job's init
    /// already joined; the pids limit leaves room for it there, so that the
    /// command gets the same count as on a cgroup2 host. On any error
    /// nothing the call made for the job is left behind.
    pub fn create_job(
        &self,
        owner: &str,
        name: &str,
        limits: &Limits,
        init_in: &[PathBuf],
    ) -> Result<JobCgroup, EngineError> {
        if name == SHIMS || name.contains('/') || name.starts_with('.') {
            return Err(EngineError::Cgroup(format!("bad job cgroup name {name:?}")));
        }
        self.ensure_owner(owner)?;
        let mut cg = self.job_cgroup_named(&format!("{owner}/{name}"), &self.controllers_for(limits));
        let own = cg.v1_dirs();
        cg.slot_rest = init_in.iter().filter(|d| !own.contains(d)).cloned().collect();
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
    /// `name`, on hybrid hosts: those every job joins (memory, pids, cpu),
    /// under `owner`, the user whose job it most likely gets (the last to
    /// start one). A process joining a v1 cgroup waits for an RCU grace
    /// period (~20 ms after an idle spell); done while the shim waits, the
    /// job's command inherits them and its start pays nothing. A job of
    /// another user joins its own at its start instead. None on a cgroup2
    /// host, where the command is cloned straight into its cgroup.
    pub fn create_slot(&self, owner: &str, name: &str) -> Result<Vec<PathBuf>, EngineError> {
        if !self.uses_slots() {
            return Ok(Vec::new());
        }
        let controllers = self.controllers_for(&Limits::default());
        self.ensure_owner(owner)?;
        let dirs = self
            .job_cgroup_named(&format!("{owner}/{name}"), &controllers)
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

    /// Whether a job's controllers include v1 ones (a hybrid host), whose
    /// cgroups a ready shim's init joins ahead (see `create_slot`).
    pub fn uses_slots(&self) -> bool {
        self.controllers_for(&Limits::default())
            .iter()
            .any(|c| matches!(self.hier.backend(*c), Backend::V1(_)))
    }

    /// The controllers a job needs: memory (usage, peak, OOM kills), pids
    /// and cpu always (so that the scheduler weighs each user's jobs as one
    /// group against the rest of the host, the crew included), io when it
    /// has such limits. Its cpu time comes from cgroup2's own `cpu.stat`.
    fn controllers_for(&self, limits: &Limits) -> Vec<Controller> {
        let mut wanted = vec![Controller::Memory, Controller::Pids, Controller::Cpu];
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
        if let Some(weight) = limits.cpu_weight {
            let (v2, dir) = dir_for(Controller::Cpu, "cpu")?;
            cpu::apply_weight(&dir, v2, weight)?;
        }
        if let Some(bytes) = limits.memory {
            let (v2, dir) = dir_for(Controller::Memory, "memory")?;
            memory::apply(&dir, v2, bytes)?;
        }
        if let Some(bytes) = limits.memory_high {
            let (v2, dir) = dir_for(Controller::Memory, "memory")?;
            memory::apply_high(&dir, v2, bytes)?;
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

/// Whether a directory under the parent is an owner's: not the helpers',
/// and not a job's (a crew from before owners had directories put jobs
/// straight under the parent).
fn is_owner_dir(name: &str) -> bool {
    name != SHIMS && JobId::parse(name).is_none()
}

/// `mkdir`, with one that exists already fine.
fn make_dir(dir: &Path) -> Result<(), EngineError> {
    match std::fs::create_dir(dir) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => Ok(()),
        Err(e) => Err(EngineError::io("create cgroup", dir, e)),
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parent_must_be_plain_relative_names() {
        assert!(validate_parent(Path::new("tasker/alpha")).is_ok());
        for bad in ["", "/tasker", "tasker/../x", "a b"] {
            assert!(validate_parent(Path::new(bad)).is_err(), "{bad:?} accepted");
        }
    }
}
