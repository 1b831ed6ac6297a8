//! What one user's jobs may take together, and what all of a crew's jobs
//! may: caps set on cgroups above the jobs' own, so the kernel holds them.
//!
//! Jobs live in `<parent>/<owner>/<job id>`; the owner's directory carries
//! the user's caps (pids, memory, cpu) and `<parent>` the crew's. A cap on
//! running jobs is counted by the engine at start. Defaults keep the host
//! and the crew answering while one user's jobs misbehave: half the host's
//! PID space for the crew's jobs and a quarter of that for any one user
//! (so a fork bomb leaves PIDs for everyone else), 90% of the host's
//! memory for the crew's jobs, and 256 running jobs per user (1024 in all).

use std::collections::BTreeMap;

/// Caps on a set of jobs together; `None` is no cap of that kind.
#[derive(Clone, Debug, Default, PartialEq, serde::Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Caps {
    /// Processes and threads.
    pub pids: Option<u64>,
    /// Bytes of memory (swap cannot extend it).
    pub memory: Option<u64>,
    /// Cores (1.5 = one and a half).
    pub cpu: Option<f64>,
    /// Jobs running at once.
    pub jobs: Option<u64>,
}

impl Caps {
    /// `self`, with what it leaves open taken from `under`.
    pub fn or(&self, under: &Caps) -> Caps {
        Caps {
            pids: self.pids.or(under.pids),
            memory: self.memory.or(under.memory),
            cpu: self.cpu.or(under.cpu),
            jobs: self.jobs.or(under.jobs),
        }
    }
}

/// A crew's caps: every user's, one user's where set, and the crew's.
#[derive(Clone, Debug, PartialEq)]
pub struct Quotas {
    /// Every user's, unless `users` says otherwise.
    pub user: Caps,
    /// One user's, over `user` (what it leaves open comes from `user`).
    pub users: BTreeMap<String, Caps>,
    /// All the crew's jobs (and their shims) together.
    pub crew: Caps,
}

/// Running jobs per user, and in all, when nothing else is said.
pub const DEFAULT_USER_JOBS: u64 = 256;
pub const DEFAULT_CREW_JOBS: u64 = 1024;

impl Quotas {
    /// The defaults for this host (its PID space and memory).
    pub fn for_host() -> Self {
        let pid_space = host_pid_space();
        let crew_pids = (pid_space / 2).max(1024);
        Self {
            user: Caps {
                pids: Some((crew_pids / 4).max(512)),
                memory: None,
                cpu: None,
                jobs: Some(DEFAULT_USER_JOBS),
            },
            users: BTreeMap::new(),
            crew: Caps {
                pids: Some(crew_pids),
                memory: host_memory().map(|m| m / 10 * 9),
                cpu: None,
                jobs: Some(DEFAULT_CREW_JOBS),
            },
        }
    }

    /// No caps at all (tests of other things, benchmarks' baseline).
    pub fn none() -> Self {
        Self {
            user: Caps::default(),
            users: BTreeMap::new(),
            crew: Caps::default(),
        }
    }

    /// The caps of `owner`'s jobs together.
    pub fn of(&self, owner: &str) -> Caps {
        match self.users.get(owner) {
            Some(c) => c.or(&self.user),
            None => self.user.clone(),
        }
    }

    /// Whether any user's cpu is capped (on hybrid hosts jobs then join
    /// the v1 cpu hierarchy, which costs a migration at start).
    pub fn caps_cpu(&self) -> bool {
        self.crew.cpu.is_some() || self.user.cpu.is_some() || self.users.values().any(|c| c.cpu.is_some())
    }

    /// Checks the caps make sense: a clear error naming the first that
    /// does not.
    pub fn validate(&self, online_cpus: usize) -> Result<(), String> {
        let check = |who: &str, c: &Caps| -> Result<(), String> {
            if c.pids == Some(0) {
                return Err(format!("{who}: a pids cap of 0 would let no job run"));
            }
            if c.jobs == Some(0) {
                return Err(format!("{who}: a cap of 0 running jobs would let no job run"));
            }
            if let Some(m) = c.memory
                && m < 4 << 20
            {
                return Err(format!(
                    "{who}: a memory cap of {m} bytes is under the 4 MiB a job needs"
                ));
            }
            if let Some(cpu) = c.cpu
                && !(cpu.is_finite() && cpu >= 0.01 && cpu <= online_cpus as f64)
            {
                return Err(format!(
                    "{who}: a cpu cap of {cpu} is out of range: give 0.01 to {online_cpus} cores"
                ));
            }
            Ok(())
        };
        check("the crew's caps", &self.crew)?;
        check("every user's caps", &self.user)?;
        for (name, c) in &self.users {
            tasker_common::validate_name(name).map_err(|e| format!("quota for user {name:?}: {e}"))?;
            check(&format!("{name}'s caps"), c)?;
        }
        Ok(())
    }
}

/// The most tasks the host can have: the lower of `kernel.pid_max` and
/// `kernel.threads-max`.
fn host_pid_space() -> u64 {
    let read = |p: &str| -> Option<u64> { std::fs::read_to_string(p).ok()?.trim().parse().ok() };
    let pid_max = read("/proc/sys/kernel/pid_max").unwrap_or(32_768);
    let threads = read("/proc/sys/kernel/threads-max").unwrap_or(u64::MAX);
    pid_max.min(threads)
}

/// `MemTotal` in bytes.
fn host_memory() -> Option<u64> {
    let info = std::fs::read_to_string("/proc/meminfo").ok()?;
    let kib: u64 = info
        .lines()
        .find_map(|l| l.strip_prefix("MemTotal:"))?
        .trim()
        .trim_end_matches("kB")
        .trim()
        .parse()
        .ok()?;
    Some(kib * 1024)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_users_own_caps_override_every_users() {
        let mut q = Quotas::none();
        q.user = Caps {
            pids: Some(100),
            jobs: Some(5),
            ..Caps::default()
        };
        q.users.insert(
            "alice".into(),
            Caps {
                pids: Some(1000),
                memory: Some(1 << 30),
                ..Caps::default()
            },
        );
        assert_eq!(
            q.of("alice"),
            Caps {
                pids: Some(1000),
                memory: Some(1 << 30),
                cpu: None,
                jobs: Some(5)
            }
        );
        assert_eq!(q.of("bob"), q.user);
    }

    #[test]
    fn host_defaults_leave_room_for_others() {
        let q = Quotas::for_host();
        let crew = q.crew.pids.unwrap();
        let user = q.user.pids.unwrap();
        assert!(
            crew <= host_pid_space() && user * 4 <= crew.max(2048),
            "{crew} {user}"
        );
        assert!(q.crew.memory.unwrap() < host_memory().unwrap());
        q.validate(1).unwrap();
    }

    #[test]
    fn nonsense_is_refused_with_who_and_why() {
        let mut q = Quotas::none();
        q.user.pids = Some(0);
        assert!(
            q.validate(2)
                .unwrap_err()
                .contains("every user's caps: a pids cap of 0")
        );
        let mut q = Quotas::none();
        q.users.insert(
            "bob".into(),
            Caps {
                cpu: Some(9.0),
                ..Caps::default()
            },
        );
        assert!(q.validate(2).unwrap_err().contains("bob's caps: a cpu cap of 9"));
        let mut q = Quotas::none();
        q.users.insert("../x".into(), Caps::default());
        assert!(q.validate(2).unwrap_err().contains("invalid name"));
        let mut q = Quotas::none();
        q.crew.memory = Some(1000);
        assert!(q.validate(2).unwrap_err().contains("crew's caps"));
    }
}
