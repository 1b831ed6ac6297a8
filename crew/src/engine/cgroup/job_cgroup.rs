//! One job's cgroup: its cgroup2 directory, plus its v1 directories on
//! hybrid hosts.

use std::os::fd::OwnedFd;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use super::fs::{flat_keyed, read_file, remove_dir_retrying, write_file};
use super::{Backend, Controller, EngineError, Hierarchy, IoContext, Totals, Usage, cpu, memory, pids};

/// One job's cgroup: its cgroup2 directory, plus its v1 directories on
/// hybrid hosts.
#[derive(Debug)]
pub struct JobCgroup {
    pub(super) unified: PathBuf,
    pub(super) v1: Vec<(Controller, PathBuf)>,
    pub(super) hier: Hierarchy,
    pub(super) force_freeze_kill: bool,
    /// v1 directories of a ready shim's slot made under another user than
    /// the job's (its init stays in them while the job runs): removed with
    /// the job's own.
    pub(super) slot_rest: Vec<PathBuf>,
}

impl JobCgroup {
    pub(super) fn create(&self) -> Result<(), EngineError> {
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
    pub(super) fn v1_dirs(&self) -> Vec<PathBuf> {
        let mut dirs: Vec<PathBuf> = Vec::new();
        for (_, d) in &self.v1 {
            if !dirs.contains(d) {
                dirs.push(d.clone());
            }
        }
        dirs
    }

    pub(super) fn v1_dir(&self, c: Controller) -> Option<PathBuf> {
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

    /// The job's tasks now (on a hybrid host with its init, if the init
    /// came from a slot).
    pub fn tasks(&self) -> Option<u64> {
        let dir = match self.hier.backend(Controller::Pids) {
            Backend::V2 => self.unified.clone(),
            Backend::V1(_) => self.v1_dir(Controller::Pids)?,
            Backend::Unavailable => return None,
        };
        pids::current(&dir)
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
        for dir in &self.slot_rest {
            // Not the job's: a leftover is removed at the crew's next start.
            if let Err(e) = remove_dir_retrying(dir) {
                tracing::warn!(error = %e, "removing a ready shim's cgroup");
            }
        }
        result
    }
}
