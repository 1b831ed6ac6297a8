//! The crew's configuration file (`--config`, TOML): each user's caps, one
//! user's own, the crew's, and the limits of a job that gives none. Flags
//! set the common ones over the file, and the file over the host's
//! defaults ([`Quotas::for_host`]).
//!
//! ```toml
//! [quota.user]          # every user's jobs together
//! pids = 2048
//! memory = "8G"
//! cpu = 1.5             # cores
//! jobs = 64             # running at once
//!
//! [quota.users.alice]   # one user's, over [quota.user]
//! memory = "32G"
//!
//! [quota.crew]          # all of the crew's jobs together
//! memory = "none"       # "none" lifts a default cap
//!
//! [defaults]            # a job's limits where it gives none
//! memory = "2G"
//! memory_high = "1G"
//! cpu = 1
//! cpu_weight = 100
//! pids = 4096
//! ```

use std::collections::BTreeMap;
use std::path::Path;

use serde::Deserialize;
use tasker_common::parse_size;

use crate::engine::{Caps, EngineConfig, Limits};

/// Where a crew looks for its file when `--config` names none.
pub const DEFAULT_PATH: &str = "/etc/tasker/crew.toml";

/// The file's size limit: a configuration is a few lines.
const MAX_FILE: u64 = 1 << 20;

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct File {
    #[serde(default)]
    pub quota: QuotaSection,
    #[serde(default)]
    pub defaults: Settings,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct QuotaSection {
    #[serde(default)]
    pub user: Settings,
    #[serde(default)]
    pub users: BTreeMap<String, Settings>,
    #[serde(default)]
    pub crew: Settings,
}

/// The keys of one table, as written; read by [`apply`], which knows
/// which each table may hold and names the key of a bad value.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Settings {
    pub pids: Option<Value>,
    pub memory: Option<Value>,
    pub cpu: Option<Value>,
    pub jobs: Option<Value>,
    pub memory_high: Option<Value>,
    pub cpu_weight: Option<Value>,
}

/// A number, or text: a size ("8G"), a number given as text (from a flag),
/// or "none".
#[derive(Clone, Debug, Deserialize)]
#[serde(untagged)]
pub enum Value {
    Int(u64),
    Float(f64),
    Text(String),
}

/// A setting: a value, or "none" (no cap of that kind).
#[derive(Debug, PartialEq)]
enum Setting<T> {
    Set(T),
    Lifted,
}

impl Value {
    fn setting<T>(
        &self,
        key: &str,
        read: impl Fn(&Value) -> Option<T>,
        what: &str,
    ) -> Result<Setting<T>, String> {
        if let Value::Text(t) = self
            && t.eq_ignore_ascii_case("none")
        {
            return Ok(Setting::Lifted);
        }
        read(self).map(Setting::Set).ok_or_else(|| {
            let shown = match self {
                Value::Int(n) => n.to_string(),
                Value::Float(f) => f.to_string(),
                Value::Text(t) => format!("{t:?}"),
            };
            format!("{key}: {shown} is not {what}")
        })
    }

    fn count(&self) -> Option<u64> {
        match self {
            Value::Int(n) => Some(*n),
            Value::Text(t) => t.parse().ok(),
            Value::Float(_) => None,
        }
    }

    fn size(&self) -> Option<u64> {
        match self {
            Value::Int(n) => Some(*n),
            Value::Text(t) => parse_size(t).ok(),
            Value::Float(_) => None,
        }
    }

    fn cores(&self) -> Option<f64> {
        match self {
            Value::Int(n) => Some(*n as f64),
            Value::Float(f) => Some(*f),
            Value::Text(t) => t.parse().ok(),
        }
    }
}

/// Reads the file (see [`read`]) and applies it (see [`apply`]); the error
/// names the file.
pub fn load(path: Option<&Path>, engine: &mut EngineConfig) -> Result<(), String> {
    let file = read(path)?;
    apply(&file, engine).map_err(|e| {
        let path = path.unwrap_or(Path::new(DEFAULT_PATH));
        format!("the configuration {}: {e}", path.display())
    })
}

/// Checks what the file and flags made of `engine`'s quotas and default
/// limits together: the error names the first that makes no sense.
pub fn check(engine: &EngineConfig) -> Result<(), String> {
    let cpus = std::thread::available_parallelism().map_or(1, usize::from);
    engine.quotas.validate(cpus)?;
    engine
        .default_limits
        .validate(cpus)
        .map_err(|e| format!("the default limits: {e}"))
}

/// Reads the file: `path` if given (it must exist), else [`DEFAULT_PATH`]
/// if it exists. A regular file of at most 1 MiB.
pub fn read(path: Option<&Path>) -> Result<File, String> {
    let (path, required) = match path {
        Some(p) => (p, true),
        None => (Path::new(DEFAULT_PATH), false),
    };
    let text = match bounded_read(path) {
        Ok(text) => text,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound && !required => return Ok(File::default()),
        Err(e) => return Err(format!("cannot read the configuration {}: {e}", path.display())),
    };
    toml::from_str(&text).map_err(|e| {
        let why = e.to_string();
        format!(
            "the configuration {}: {}",
            path.display(),
            why.lines()
                .filter(|l| !l.trim().is_empty())
                .collect::<Vec<_>>()
                .join(" ")
        )
    })
}

/// A regular file's text, refused past [`MAX_FILE`]: a FIFO or a device
/// is never read (a read of one could block or never end). The bounded
/// read every file read at start goes through: [`tasker_common::file`].
fn bounded_read(path: &Path) -> std::io::Result<String> {
    let (bytes, _) = tasker_common::file::read_regular(path, MAX_FILE)?;
    String::from_utf8(bytes)
        .map_err(|_| std::io::Error::new(std::io::ErrorKind::InvalidData, "not UTF-8 text"))
}

/// Sets `engine`'s quotas and default limits from `f`, over what they
/// are (the host's defaults, or a file's under flags). The error names
/// the key.
pub fn apply(f: &File, engine: &mut EngineConfig) -> Result<(), String> {
    caps(&f.quota.user, "quota.user", &mut engine.quotas.user, true)?;
    caps(&f.quota.crew, "quota.crew", &mut engine.quotas.crew, true)?;
    for (name, s) in &f.quota.users {
        let key = format!("quota.users.{name}");
        tasker_common::validate_name(name).map_err(|e| format!("{key}: {e}"))?;
        let mut c = engine.quotas.users.get(name).cloned().unwrap_or_default();
        caps(s, &key, &mut c, false)?;
        engine.quotas.users.insert(name.clone(), c);
    }
    defaults(&f.defaults, engine)
}

/// A key this table does not take (the tables share one set of keys).
fn refuse(key: &str, s: &Option<Value>) -> Result<(), String> {
    match s {
        Some(_) => Err(format!("{key}: not a setting here")),
        None => Ok(()),
    }
}

/// What `key` says, read by `read`: not given (`None`), a value
/// (`Some(Some(v))`) or "none" (`Some(None)`); `no_lift` is why "none" is
/// refused where it is.
fn read_key<T>(
    v: &Option<Value>,
    key: &str,
    read: fn(&Value) -> Option<T>,
    what: &str,
    no_lift: Option<&str>,
) -> Result<Option<Option<T>>, String> {
    let Some(v) = v else { return Ok(None) };
    match (v.setting(key, read, what)?, no_lift) {
        (Setting::Set(x), _) => Ok(Some(Some(x))),
        (Setting::Lifted, None) => Ok(Some(None)),
        (Setting::Lifted, Some(why)) => Err(format!("{key}: {why}")),
    }
}

const TASKS: &str = "a number of tasks";
const SIZE: &str = "a size (bytes, or 512M, 8G)";
const CORES: &str = "a number of cores";

fn caps(s: &Settings, table: &str, into: &mut Caps, may_lift: bool) -> Result<(), String> {
    refuse(&format!("{table}.memory_high"), &s.memory_high)?;
    refuse(&format!("{table}.cpu_weight"), &s.cpu_weight)?;
    let key = |name: &str| format!("{table}.{name}");
    let lift = (!may_lift).then_some("\"none\" lifts a cap of every user's; give a number here");
    if let Some(v) = read_key(&s.pids, &key("pids"), Value::count, TASKS, lift)? {
        into.pids = v;
    }
    if let Some(v) = read_key(&s.memory, &key("memory"), Value::size, SIZE, lift)? {
        into.memory = v;
    }
    if let Some(v) = read_key(&s.jobs, &key("jobs"), Value::count, "a number of jobs", lift)? {
        into.jobs = v;
    }
    if let Some(v) = read_key(&s.cpu, &key("cpu"), Value::cores, CORES, lift)? {
        into.cpu = v;
    }
    Ok(())
}

fn defaults(s: &Settings, engine: &mut EngineConfig) -> Result<(), String> {
    refuse("defaults.jobs", &s.jobs)?;
    // A default cannot be lifted: a job without one has no such limit.
    let lift = Some("give a value (a job without one has no such limit)");
    let l: &mut Limits = &mut engine.default_limits;
    if let Some(n) = read_key(&s.pids, "defaults.pids", Value::count, TASKS, lift)?.flatten() {
        engine.default_pids = n;
    }
    if let Some(n) = read_key(&s.memory, "defaults.memory", Value::size, SIZE, lift)?.flatten() {
        l.memory = Some(n);
    }
    if let Some(n) = read_key(&s.memory_high, "defaults.memory_high", Value::size, SIZE, lift)?.flatten() {
        l.memory_high = Some(n);
    }
    let weight = "a weight of 1 to 10000";
    if let Some(n) = read_key(&s.cpu_weight, "defaults.cpu_weight", Value::count, weight, lift)?.flatten() {
        l.cpu_weight =
            Some(u32::try_from(n).map_err(|_| format!("defaults.cpu_weight: {n} is not {weight}"))?);
    }
    if let Some(c) = read_key(&s.cpu, "defaults.cpu", Value::cores, CORES, lift)?.flatten() {
        l.cpu = Some(c);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engine::Quotas;

    fn engine() -> EngineConfig {
        let mut e = EngineConfig::new("/tmp/x", "c");
        e.quotas = Quotas::for_host();
        e
    }

    #[test]
    fn a_file_sets_caps_and_defaults_and_flags_go_over_it() {
        let file: File = toml::from_str(
            r#"
            [quota.user]
            pids = 2048
            memory = "8G"
            cpu = 1.5
            jobs = 64
            [quota.users.alice]
            memory = "32G"
            [quota.crew]
            memory = "none"
            [defaults]
            memory = "2G"
            memory_high = 1073741824
            cpu = 1
            cpu_weight = 50
            pids = 300
            "#,
        )
        .unwrap();
        let mut flags = File::default();
        flags.quota.user.pids = Some(Value::Text("4096".into()));
        flags.quota.user.cpu = Some(Value::Text("none".into()));
        let mut e = engine();
        apply(&file, &mut e).unwrap();
        apply(&flags, &mut e).unwrap();
        assert_eq!(e.quotas.user.pids, Some(4096));
        assert_eq!(e.quotas.user.memory, Some(8 << 30));
        assert_eq!(e.quotas.user.cpu, None);
        assert_eq!(e.quotas.user.jobs, Some(64));
        assert_eq!(e.quotas.of("alice").memory, Some(32 << 30));
        assert_eq!(e.quotas.of("alice").jobs, Some(64));
        assert_eq!(e.quotas.crew.memory, None);
        assert!(e.quotas.crew.pids.is_some(), "the host's default is kept");
        assert_eq!(e.default_limits.memory, Some(2 << 30));
        assert_eq!(e.default_limits.memory_high, Some(1 << 30));
        assert_eq!(e.default_limits.cpu, Some(1.0));
        assert_eq!(e.default_limits.cpu_weight, Some(50));
        assert_eq!(e.default_pids, 300);
    }

    #[test]
    fn a_bad_setting_is_named_by_its_key() {
        let cases = [
            (
                "[quota.user]\nmemory = \"8X\"",
                "quota.user.memory: \"8X\" is not a size",
            ),
            (
                "[quota.user]\npids = 1.5",
                "quota.user.pids: 1.5 is not a number of tasks",
            ),
            (
                "[quota.users.bob]\npids = \"none\"",
                "quota.users.bob.pids: \"none\" lifts",
            ),
            ("[quota.users.\"../x\"]\npids = 1", "quota.users.../x:"),
            (
                "[quota.crew]\ncpu_weight = 5",
                "quota.crew.cpu_weight: not a setting here",
            ),
            ("[defaults]\njobs = 5", "defaults.jobs: not a setting here"),
            ("[defaults]\nmemory = \"none\"", "defaults.memory: give a value"),
            (
                "[defaults]\ncpu_weight = 99999999999",
                "defaults.cpu_weight: 99999999999",
            ),
        ];
        for (text, expected) in cases {
            let file: File = toml::from_str(text).unwrap();
            let err = apply(&file, &mut engine()).unwrap_err();
            assert!(
                err.contains(expected),
                "{text}: {err:?} does not say {expected:?}"
            );
        }
        let err = toml::from_str::<File>("[quota.usr]\npids = 1")
            .unwrap_err()
            .to_string();
        assert!(err.contains("unknown field"), "{err}");
    }

    #[test]
    fn only_a_regular_file_of_bounded_size_is_read() {
        let dir = tempfile::tempdir().unwrap();
        let fifo = dir.path().join("fifo");
        nix::unistd::mkfifo(&fifo, nix::sys::stat::Mode::from_bits_truncate(0o600)).unwrap();
        assert!(read(Some(&fifo)).unwrap_err().contains("not a regular file"));
        assert!(
            read(Some(Path::new("/dev/zero")))
                .unwrap_err()
                .contains("not a regular file")
        );
        let big = dir.path().join("big.toml");
        std::fs::write(&big, "#".repeat(MAX_FILE as usize + 1)).unwrap();
        assert!(read(Some(&big)).unwrap_err().contains("larger than"));
        let missing = dir.path().join("missing.toml");
        assert!(
            read(Some(&missing))
                .unwrap_err()
                .contains("cannot read the configuration")
        );
        let bad = dir.path().join("bad.toml");
        std::fs::write(&bad, "[quota.user\n").unwrap();
        let err = read(Some(&bad)).unwrap_err();
        assert!(err.contains("bad.toml") && !err.contains('\n'), "{err}");
    }
}
