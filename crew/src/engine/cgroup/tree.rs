//! The crew's own subtree, `<root>/<parent>/` in every hierarchy in use.

use std::collections::HashSet;
use std::path::{Path, PathBuf};
use std::time::Duration;

use super::fs::{read_file, remove_dir_retrying, subdirs, write_file};
use super::{
    Backend, Controller, EngineError, Hierarchy, IoContext, JobCgroup, Limits, cpu, io, memory, pids,
};

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
        let tree = Self { hier, opts };
        let unified_parent = tree.hier.unified.join(&tree.opts.parent);
        std::fs::create_dir_all(&unified_parent).ctx("create cgroup", &unified_parent)?;
        tree.enable_v2_controllers()?;
        for root in tree.hier.v1_roots() {
            let dir = root.join(&tree.opts.parent);
            std::fs::create_dir_all(&dir).ctx("create cgroup", &dir)?;
        }
        let shims = tree.shims_dir();
        std::fs::create_dir_all(&shims).ctx("create cgroup", &shims)?;
        Ok(tree)
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
        for name in subdirs(&unified_parent)? {
            if name == SHIMS || keep.contains(&name) {
                continue;
            }
            let cg = self.job_cgroup_named(&name, &Controller::ALL);
            cg.kill_until_empty(Duration::from_secs(10))?;
            cg.remove()?;
            removed += 1;
        }
        // v1 directories without a cgroup2 twin (a crash between the mkdirs,
        // or a ready shim's slot).
        for root in self.hier.v1_roots() {
            for name in subdirs(&root.join(&self.opts.parent))? {
                if keep.contains(&name) {
                    continue;
                }
                let dir = root.join(&self.opts.parent).join(&name);
                match remove_dir_retrying(&dir) {
                    Ok(()) => removed += 1,
                    // A slot whose ready shim has yet to see its crew gone.
                    Err(e) => tracing::warn!(error = %e, "a cgroup of a previous run is still busy"),
                }
            }
        }
        Ok(removed)
    }

    /// Kills and removes everything under the parent, helpers included, and
    /// the parent itself: when the crew stops its jobs as it stops. Best
    /// effort, errors are logged.
    pub fn destroy(&self) {
        if let Err(e) = self.remove_leftovers(&HashSet::new()) {
            tracing::warn!(error = %e, "removing the crew's cgroups");
        }
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
        }
    }

    /// The cgroup of a job that already has one (a job found again).
    pub fn job_cgroup(&self, name: &str, limits: &Limits) -> JobCgroup {
        self.job_cgroup_named(name, &self.controllers_for(limits))
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
