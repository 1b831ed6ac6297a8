//! What a caller asks for when it starts a job, the defaults it gets, and
//! the checks that a request must pass before anything is made for it.

use std::fmt;
use std::path::PathBuf;
use std::time::Duration;

use super::error::EngineError;

/// argv plus environment, in bytes (the kernel's own limit is 2 MiB on a
/// default 8 MiB stack).
pub const MAX_ARGV_ENV: usize = 1 << 20;

/// Words in argv and environment together. The kernel counts only bytes,
/// but the crew holds each word on its own, so a million one-byte words
/// would cost it far more than their megabyte.
pub const MAX_WORDS: usize = 65_536;

/// Everything needed to start a job. The engine trusts `run_as` (the API edge
/// resolved it from the caller's identity) and validates the rest.
#[derive(Clone, Debug)]
pub struct JobSpec {
    /// The program and its arguments; never passed through a shell.
    pub argv: Vec<String>,
    /// Variables added to (or replacing) the defaults of [`default_env`].
    pub env: Vec<(String, String)>,
    /// Working directory; default: the user's home if it exists, else `/`.
    pub cwd: Option<PathBuf>,
    pub run_as: RunAs,
    pub limits: Limits,
    /// Run under a pseudo-terminal of this size.
    pub tty: Option<WinSize>,
    pub network: Network,
    /// Stop the job (and mark it timed out) after this long.
    pub timeout: Option<Duration>,
    pub name: Option<String>,
    /// The batch it is one of (see [`valid_batch`]).
    pub batch: Option<String>,
    /// Who started it, as the API edge names callers (the certificate CN).
    pub owner: String,
}

/// The Linux identity a job runs as.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct RunAs {
    pub user: String,
    pub uid: u32,
    pub gid: u32,
    /// Supplementary groups, the primary group included.
    pub groups: Vec<u32>,
    pub home: PathBuf,
    pub shell: PathBuf,
}

#[derive(Clone, Debug, Default, PartialEq, serde::Serialize, serde::Deserialize)]
#[serde(default)]
pub struct Limits {
    /// CPU limit in cores (0.25 = a quarter of one core).
    pub cpu: Option<f64>,
    /// Hard memory limit in bytes; swap is not allowed to extend it.
    pub memory: Option<u64>,
    /// Per-device bandwidth and IOPS limits.
    pub io: Vec<IoLimit>,
    /// Maximum number of processes and threads; `None` takes the engine default.
    pub pids: Option<u64>,
    /// Soft memory limit in bytes: past it the kernel reclaims the job's
    /// memory and slows its allocations (cgroup2 `memory.high`), or, on a
    /// v1 host, reclaims it first when the host runs short
    /// (`memory.soft_limit_in_bytes`). Never kills.
    pub memory_high: Option<u64>,
    /// The job's share of CPU time against others that want it, 1 to
    /// 10,000 (100 is everyone's default): cgroup2 `cpu.weight`, v1
    /// `cpu.shares` (x 10.24). Unlike `cpu`, idle cores stay usable.
    pub cpu_weight: Option<u32>,
}

impl Limits {
    /// Checks the limits make sense on a host with `online_cpus`; the
    /// error names the first that does not.
    pub fn validate(&self, online_cpus: usize) -> Result<(), String> {
        if let Some(cpu) = self.cpu
            && !(cpu.is_finite() && cpu >= 0.01 && cpu <= online_cpus as f64)
        {
            return Err(format!(
                "cpu limit {cpu} is out of range: give 0.01 to {online_cpus} cores (this host has {online_cpus})"
            ));
        }
        if let Some(m) = self.memory {
            if m < 1 << 20 {
                return Err(format!(
                    "memory limit {m} bytes is too small: the minimum is 1 MiB"
                ));
            }
            if m > 1 << 53 {
                return Err(format!("memory limit {m} bytes is larger than any machine"));
            }
        }
        if let Some(p) = self.pids
            && !(1..=4_194_304).contains(&p)
        {
            return Err(format!("pids limit {p} is out of range: give 1 to 4194304"));
        }
        if let Some(h) = self.memory_high {
            if h < 1 << 20 {
                return Err(format!(
                    "soft memory limit {h} bytes is too small: the minimum is 1 MiB"
                ));
            }
            if let Some(m) = self.memory
                && h >= m
            {
                return Err(format!(
                    "soft memory limit {h} bytes is not under the hard limit {m}: it would do nothing"
                ));
            }
            if h > 1 << 53 {
                return Err(format!("soft memory limit {h} bytes is larger than any machine"));
            }
        }
        if let Some(w) = self.cpu_weight
            && !(1..=10_000).contains(&w)
        {
            return Err(format!(
                "cpu weight {w} is out of range: give 1 to 10000 (100 is the default)"
            ));
        }
        for (i, io) in self.io.iter().enumerate() {
            if io.values().iter().all(Option::is_none) {
                return Err(format!(
                    "io limit for device {} sets no rate (bytes or operations per second)",
                    io.device
                ));
            }
            if io.values().contains(&Some(0)) {
                return Err(format!(
                    "io limit for device {} must be at least 1 per second",
                    io.device
                ));
            }
            if self.io[..i].iter().any(|o| o.device == io.device) {
                return Err(format!("device {} has two io limits", io.device));
            }
        }
        Ok(())
    }

    /// `self`, with what it leaves open taken from `defaults` (a crew's
    /// default limits). A default soft memory limit above the job's own
    /// hard one would do nothing, so it is not taken.
    pub fn or(&self, defaults: &Limits) -> Limits {
        let memory = self.memory.or(defaults.memory);
        let memory_high = self
            .memory_high
            .or(defaults.memory_high.filter(|h| memory.is_none_or(|m| *h < m)));
        Limits {
            cpu: self.cpu.or(defaults.cpu),
            memory,
            io: if self.io.is_empty() {
                defaults.io.clone()
            } else {
                self.io.clone()
            },
            pids: self.pids.or(defaults.pids),
            memory_high,
            cpu_weight: self.cpu_weight.or(defaults.cpu_weight),
        }
    }
}

/// One device's limits; each `None` is no limit of that kind.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct IoLimit {
    pub device: DeviceNumber,
    pub read_bps: Option<u64>,
    pub write_bps: Option<u64>,
    /// Read and write operations per second.
    #[serde(default)]
    pub read_iops: Option<u64>,
    #[serde(default)]
    pub write_iops: Option<u64>,
}

impl IoLimit {
    fn values(&self) -> [Option<u64>; 4] {
        [self.read_bps, self.write_bps, self.read_iops, self.write_iops]
    }
}

/// A block device as the kernel numbers it (`major:minor`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, serde::Serialize, serde::Deserialize)]
pub struct DeviceNumber {
    pub major: u32,
    pub minor: u32,
}

impl fmt::Display for DeviceNumber {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}", self.major, self.minor)
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct WinSize {
    pub rows: u16,
    pub cols: u16,
}

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum Network {
    /// A network namespace of its own with only `lo`, up.
    #[default]
    Isolated,
    /// The host's network.
    Host,
}

/// The environment every job starts from: a clean PATH and the user's
/// identity, never anything of the crew's own environment.
pub fn default_env(run_as: &RunAs, tty: bool) -> Vec<(String, String)> {
    let mut env = vec![
        (
            "PATH".to_owned(),
            "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin".to_owned(),
        ),
        ("HOME".to_owned(), run_as.home.display().to_string()),
        ("USER".to_owned(), run_as.user.clone()),
        ("LOGNAME".to_owned(), run_as.user.clone()),
        ("SHELL".to_owned(), run_as.shell.display().to_string()),
        ("LANG".to_owned(), "C.UTF-8".to_owned()),
    ];
    if tty {
        env.push(("TERM".to_owned(), "xterm-256color".to_owned()));
    }
    env
}

impl JobSpec {
    /// The job's environment: [`default_env`], with the spec's variables
    /// added or replacing.
    pub fn environment(&self) -> Vec<(String, String)> {
        let mut env = default_env(&self.run_as, self.tty.is_some());
        for (k, v) in &self.env {
            match env.iter_mut().find(|(key, _)| key == k) {
                Some(slot) => slot.1.clone_from(v),
                None => env.push((k.clone(), v.clone())),
            }
        }
        env
    }

    /// The working directory: the spec's, else the user's home if it
    /// exists, else `/`.
    pub fn working_dir(&self) -> PathBuf {
        self.cwd.clone().unwrap_or_else(|| {
            if self.run_as.home.is_dir() {
                self.run_as.home.clone()
            } else {
                PathBuf::from("/")
            }
        })
    }
}

/// A batch id: 1-64 of `A-Z a-z 0-9 . _ -`.
pub fn valid_batch(b: &str) -> bool {
    !b.is_empty()
        && b.len() <= 64
        && b.bytes()
            .all(|c| c.is_ascii_alphanumeric() || b"._-".contains(&c))
}

impl JobSpec {
    /// Checks everything the engine does not trust (all but `run_as`);
    /// a bad spec fails here and creates nothing. The error names the
    /// problem for the person who made the request.
    pub fn validate(&self, online_cpus: usize) -> Result<(), EngineError> {
        let spec = self;
        let bad = |m: String| Err(EngineError::InvalidSpec(m));
        match spec.argv.first() {
            None => return bad("argv is empty: give the program to run".into()),
            Some(p) if p.is_empty() => return bad("the program name is empty".into()),
            _ => {}
        }
        if let Some(b) = &spec.batch
            && !valid_batch(b)
        {
            return bad(format!(
                "batch {:?} is not a batch id: up to 64 of A-Z a-z 0-9 . _ -",
                b.chars().take(80).collect::<String>()
            ));
        }
        if let Some(i) = spec.argv.iter().position(|a| a.contains('\0')) {
            return bad(format!("argument {i} contains a NUL byte"));
        }
        for (k, v) in &spec.env {
            if k.is_empty() || k.contains(['=', '\0']) {
                return bad(format!("environment variable name {k:?} is not valid"));
            }
            if v.contains('\0') {
                return bad(format!("environment variable {k} contains a NUL byte"));
            }
        }
        let words = spec.argv.len() + spec.env.len();
        if words > MAX_WORDS {
            return bad(format!(
                "argv and environment have {words} words; the limit is {MAX_WORDS}"
            ));
        }
        let size: usize = spec.argv.iter().map(|a| a.len() + 1).sum::<usize>()
            + spec.env.iter().map(|(k, v)| k.len() + v.len() + 2).sum::<usize>();
        if size > MAX_ARGV_ENV {
            return bad(format!(
                "argv and environment take {size} bytes; the limit is {MAX_ARGV_ENV}"
            ));
        }
        if let Some(cwd) = &spec.cwd
            && (!cwd.is_absolute() || cwd.as_os_str().as_encoded_bytes().contains(&0))
        {
            return bad(format!("cwd {} must be an absolute path", cwd.display()));
        }
        spec.limits
            .validate(online_cpus)
            .map_err(EngineError::InvalidSpec)?;
        if let Some(w) = spec.tty
            && (w.rows == 0 || w.cols == 0)
        {
            return bad("a terminal needs at least 1 row and 1 column".into());
        }
        if spec.timeout == Some(Duration::ZERO) {
            return bad("timeout must be positive".into());
        }
        if let Some(name) = &spec.name
            && let Err(e) = tasker_common::validate_job_name(name)
        {
            return bad(e.to_string());
        }
        if spec.owner.is_empty() {
            return bad("a job needs an owner".into());
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec() -> JobSpec {
        JobSpec {
            argv: vec!["/bin/true".into()],
            env: vec![],
            cwd: None,
            run_as: super::super::user::lookup("root").unwrap(),
            limits: Limits::default(),
            tty: None,
            network: Network::Isolated,
            timeout: None,
            name: None,
            batch: None,
            owner: "alice".into(),
        }
    }

    #[test]
    fn validation_names_the_problem() {
        type Mutation = Box<dyn Fn(&mut JobSpec)>;
        let cases: Vec<(Mutation, &str)> = vec![
            (Box::new(|s| s.argv.clear()), "argv is empty"),
            (
                Box::new(|s| s.argv = vec![String::new()]),
                "program name is empty",
            ),
            (
                Box::new(|s| s.argv.push("a\0b".into())),
                "argument 1 contains a NUL",
            ),
            (Box::new(|s| s.argv.push("x".repeat(2 << 20))), "the limit is"),
            (
                Box::new(|s| s.argv.extend(std::iter::repeat_n(String::new(), MAX_WORDS))),
                "words; the limit is",
            ),
            (Box::new(|s| s.env.push(("A=B".into(), "x".into()))), "not valid"),
            (Box::new(|s| s.batch = Some("a b".into())), "not a batch id"),
            (Box::new(|s| s.batch = Some("x".repeat(65))), "not a batch id"),
            (Box::new(|s| s.cwd = Some("rel".into())), "absolute"),
            (Box::new(|s| s.limits.cpu = Some(0.0)), "cpu limit"),
            (Box::new(|s| s.limits.cpu = Some(f64::NAN)), "cpu limit"),
            (Box::new(|s| s.limits.cpu = Some(1e9)), "cpu limit"),
            (Box::new(|s| s.limits.memory = Some(0)), "too small"),
            (Box::new(|s| s.limits.memory = Some(u64::MAX)), "larger than any"),
            (Box::new(|s| s.limits.pids = Some(0)), "pids limit"),
            (Box::new(|s| s.limits.pids = Some(u64::MAX)), "pids limit"),
            (
                Box::new(|s| {
                    s.limits.io = vec![IoLimit {
                        device: DeviceNumber { major: 7, minor: 0 },
                        read_bps: Some(0),
                        write_bps: None,
                        read_iops: None,
                        write_iops: None,
                    }]
                }),
                "at least 1 per second",
            ),
            (
                Box::new(|s| {
                    s.limits.io = vec![IoLimit {
                        device: DeviceNumber { major: 7, minor: 0 },
                        read_bps: None,
                        write_bps: None,
                        read_iops: None,
                        write_iops: Some(0),
                    }]
                }),
                "at least 1 per second",
            ),
            (
                Box::new(|s| s.limits.memory_high = Some(1000)),
                "soft memory limit 1000",
            ),
            (
                Box::new(|s| {
                    s.limits.memory = Some(64 << 20);
                    s.limits.memory_high = Some(64 << 20);
                }),
                "not under the hard limit",
            ),
            (Box::new(|s| s.limits.cpu_weight = Some(0)), "cpu weight 0"),
            (
                Box::new(|s| s.limits.cpu_weight = Some(10_001)),
                "cpu weight 10001",
            ),
            (
                Box::new(|s| s.tty = Some(WinSize { rows: 0, cols: 80 })),
                "at least 1 row",
            ),
            (Box::new(|s| s.timeout = Some(Duration::ZERO)), "timeout"),
            (Box::new(|s| s.name = Some("a b".into())), "not allowed"),
            (Box::new(|s| s.name = Some("job-3".into())), "handle"),
            (Box::new(|s| s.name = Some("88501f18".into())), "id prefix"),
            (Box::new(|s| s.owner.clear()), "owner"),
        ];
        for (mutate, expected) in cases {
            let mut s = spec();
            mutate(&mut s);
            let err = s.validate(2).expect_err(expected).to_string();
            assert!(err.contains(expected), "{err:?} does not mention {expected:?}");
        }
        spec().validate(2).unwrap();
    }

    #[test]
    fn a_job_takes_the_crews_defaults_for_what_it_leaves_open() {
        let defaults = Limits {
            cpu: Some(1.0),
            memory: Some(1 << 30),
            memory_high: Some(512 << 20),
            cpu_weight: Some(50),
            pids: Some(100),
            io: Vec::new(),
        };
        let own = Limits {
            memory: Some(256 << 20),
            cpu_weight: Some(400),
            ..Limits::default()
        };
        let l = own.or(&defaults);
        assert_eq!(l.cpu, Some(1.0));
        assert_eq!(l.memory, Some(256 << 20));
        // Above the job's own hard limit: not taken.
        assert_eq!(l.memory_high, None);
        assert_eq!(l.cpu_weight, Some(400));
        assert_eq!(l.pids, Some(100));
        assert_eq!(Limits::default().or(&defaults), defaults);
    }
}
