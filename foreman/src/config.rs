//! Which crews, which certificate: `foreman.toml`, overridden by flags.
//!
//! ```toml
//! user = "alice"              # users/<user>.{crt,key}; default: $USER
//! certs = "/etc/tasker"       # ca.crt and users/; default /etc/tasker
//!
//! [[crew]]
//! name = "alpha"
//! addr = "10.0.0.5:7443"      # host:port; the crew's certificate must name the host
//! ```
//!
//! Looked up at `--config FILE`, else `$XDG_CONFIG_HOME/tasker/foreman.toml`
//! (`~/.config/tasker/foreman.toml`). A missing default file is fine when
//! flags say enough.

use std::path::{Path, PathBuf};

use serde::Deserialize;

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("{path}: {why}")]
    File { path: PathBuf, why: String },
    #[error("--crew {0:?}: write NAME=HOST:PORT")]
    BadCrewFlag(String),
    #[error("crew {name:?}: address {addr:?} is not HOST:PORT")]
    BadAddr { name: String, addr: String },
    #[error("no crews: give --crew NAME=HOST:PORT, or list them in {0}")]
    NoCrews(String),
    #[error("no user: give --user NAME, set user in the config, or set $USER")]
    NoUser,
    #[error("two crews are called {0:?}")]
    Duplicate(String),
    #[error("{0}")]
    Preset(String),
    #[error("{0}")]
    Context(String),
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct File {
    user: Option<String>,
    certs: Option<PathBuf>,
    #[serde(default)]
    crew: Vec<CrewEntry>,
    discovery: Option<Discovery>,
    #[serde(default)]
    preset: std::collections::BTreeMap<String, Preset>,
    /// The context used when `--context` is not given.
    context: Option<String>,
    /// Other fleets (`[contexts.NAME]`), as kubectl's contexts.
    #[serde(default)]
    contexts: std::collections::BTreeMap<String, ContextFile>,
}

/// One fleet of several in one file: its user, certificates, crews,
/// discovery and presets, in place of the top level's.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct ContextFile {
    user: Option<String>,
    certs: Option<PathBuf>,
    #[serde(default)]
    crew: Vec<CrewEntry>,
    discovery: Option<Discovery>,
    /// Added to (and over) the top level's presets.
    #[serde(default)]
    preset: std::collections::BTreeMap<String, Preset>,
}

/// A named job (`[preset.NAME]`): its command and options, for `foreman
/// start --preset NAME` (and `run`, `:start`). Flags given with it win;
/// arguments after `--` are added to its command.
#[derive(Clone, Debug, Default, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct Preset {
    /// The command and its arguments.
    #[serde(default)]
    pub argv: Vec<String>,
    /// Where it runs (as `--crew`: a name, a list, a glob, @GROUP, all).
    pub crew: Option<String>,
    pub cpu: Option<f64>,
    /// A size: 512M, 2G.
    pub memory: Option<String>,
    pub pids: Option<u64>,
    #[serde(default)]
    pub tty: bool,
    #[serde(default)]
    pub env: std::collections::BTreeMap<String, String>,
    pub cwd: Option<String>,
    /// isolated or host.
    pub network: Option<String>,
    /// A duration: 30s, 2h.
    pub timeout: Option<String>,
    pub name: Option<String>,
}

/// Where else crews come from (see `crate::discovery`): found again every
/// `refresh` (files: when they change), in the dashboard and at each
/// command. Discovery gives names and addresses, never trust: a crew found
/// so must show a certificate that names it.
#[derive(Clone, Debug, Default, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct Discovery {
    /// Files of `[[crew]]` entries, as in this file.
    #[serde(default)]
    pub files: Vec<PathBuf>,
    /// DNS SRV names (`_tasker._tcp.example.com`): each target is a crew,
    /// named by the target's first label, at the record's port.
    #[serde(default)]
    pub srv: Vec<String>,
    /// The DNS server to ask (`IP` or `IP:PORT`; Consul's is
    /// `127.0.0.1:8600`); default: the system's (`/etc/resolv.conf`).
    pub dns: Option<String>,
    /// A command (argv) that prints one crew a line: `NAME HOST:PORT
    /// [GROUP...]`.
    #[serde(default)]
    pub command: Vec<String>,
    /// How often the DNS names and the command are asked again (the
    /// dashboard); default 30s.
    pub refresh: Option<String>,
}

impl Discovery {
    pub fn is_empty(&self) -> bool {
        self.files.is_empty() && self.srv.is_empty() && self.command.is_empty()
    }
}

/// Where a crew's entry came from.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub enum Source {
    /// The configuration file or `--crew`: trusted as written.
    #[default]
    Config,
    File(PathBuf),
    Srv(String),
    Command,
}

impl Source {
    /// Whether the crew's certificate must name the crew (all but entries
    /// a person wrote, which may give a crew a name of their own).
    pub fn discovered(&self) -> bool {
        *self != Source::Config
    }
}

impl std::fmt::Display for Source {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Source::Config => f.write_str("config"),
            Source::File(p) => write!(f, "file {}", p.display()),
            Source::Srv(name) => write!(f, "srv {name}"),
            Source::Command => f.write_str("command"),
        }
    }
}

#[derive(Clone, Debug, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct CrewEntry {
    pub name: String,
    pub addr: String,
    /// Groups it belongs to: `--crew @GROUP` selects them.
    #[serde(default)]
    pub groups: Vec<String>,
    #[serde(skip)]
    pub source: Source,
    /// Where to connect, when discovery resolved the address itself (an
    /// SRV target, through the DNS server it asked): then the certificate
    /// must name the crew, whatever the target's host name.
    #[serde(skip)]
    pub dial: Option<std::net::SocketAddr>,
}

/// What the command line said (before the file fills the gaps).
#[derive(Clone, Debug, Default)]
pub struct Overrides {
    pub config: Option<PathBuf>,
    /// `--context NAME`: one fleet of the file's `[contexts.NAME]`.
    pub context: Option<String>,
    pub crews: Vec<String>,
    pub user: Option<String>,
    pub certs: Option<PathBuf>,
}

#[derive(Clone, Debug, PartialEq)]
pub struct Config {
    /// The context in use, if the file has contexts and one was chosen.
    pub context: Option<String>,
    /// Named jobs (`[preset.NAME]`), checked when the file is read.
    pub presets: std::collections::BTreeMap<String, Preset>,
    pub user: String,
    pub certs: PathBuf,
    pub crews: Vec<CrewEntry>,
    /// Empty when `--crew` flags name the crews.
    pub discovery: Discovery,
}

impl Config {
    pub fn ca(&self) -> PathBuf {
        self.certs.join("ca.crt")
    }

    pub fn cert(&self) -> PathBuf {
        self.certs.join("users").join(format!("{}.crt", self.user))
    }

    pub fn key(&self) -> PathBuf {
        self.certs.join("users").join(format!("{}.key", self.user))
    }
}

pub fn default_path() -> PathBuf {
    let base = std::env::var_os("XDG_CONFIG_HOME")
        .map(PathBuf::from)
        .filter(|p| p.is_absolute())
        .or_else(|| std::env::var_os("HOME").map(|h| Path::new(&h).join(".config")))
        .unwrap_or_else(|| PathBuf::from("/etc"));
    base.join("tasker").join("foreman.toml")
}

/// Reads the file (if any) and applies the flags over it.
pub fn load(over: &Overrides) -> Result<Config, ConfigError> {
    let (path, required) = match &over.config {
        Some(p) => (p.clone(), true),
        None => (default_path(), false),
    };
    let file = match std::fs::read_to_string(&path) {
        Ok(text) => toml::from_str::<File>(&text).map_err(|e| ConfigError::File {
            path: path.clone(),
            why: e.to_string().trim().replace('\n', " "),
        })?,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound && !required => File::default(),
        Err(e) => {
            return Err(ConfigError::File {
                path,
                why: e.to_string(),
            });
        }
    };
    // A context (`--context`, $TASKER_CONTEXT, or the file's `context`)
    // puts its fleet in place of the top level's.
    let mut file = file;
    let chosen = over
        .context
        .clone()
        .or_else(|| std::env::var("TASKER_CONTEXT").ok().filter(|c| !c.is_empty()))
        .or(file.context.take());
    let context = match chosen {
        Some(name) => match file.contexts.remove(&name) {
            Some(c) => Some((name, c)),
            None => {
                let known: Vec<&str> = file.contexts.keys().map(String::as_str).collect();
                return Err(ConfigError::Context(if known.is_empty() {
                    format!(
                        "no context {name:?} in {}: it has no [contexts.NAME]",
                        path.display()
                    )
                } else {
                    format!(
                        "no context {name:?} in {} (contexts: {})",
                        path.display(),
                        known.join(", ")
                    )
                }));
            }
        },
        None => None,
    };
    let context_name = context.as_ref().map(|(n, _)| n.clone());
    if let Some((_, c)) = context {
        file.user = c.user.or(file.user);
        file.certs = c.certs.or(file.certs);
        file.crew = c.crew;
        file.discovery = c.discovery;
        file.preset.extend(c.preset);
    }
    let (crews, discovery) = if over.crews.is_empty() {
        (file.crew, file.discovery.unwrap_or_default())
    } else {
        let crews = over
            .crews
            .iter()
            .map(|c| parse_crew_flag(c))
            .collect::<Result<_, _>>()?;
        (crews, Discovery::default())
    };
    if crews.is_empty() && discovery.is_empty() {
        let place = match &context_name {
            Some(c) => format!("{} (context {c})", path.display()),
            None => path.display().to_string(),
        };
        return Err(ConfigError::NoCrews(place));
    }
    if let Some(r) = &discovery.refresh {
        tasker_common::parse_duration(r).map_err(|e| ConfigError::File {
            path: path.clone(),
            why: format!("discovery.refresh: {e}"),
        })?;
    }
    check_crews(&crews)?;
    let user = over
        .user
        .clone()
        .or(file.user)
        .or_else(|| std::env::var("USER").ok())
        .filter(|u| !u.is_empty())
        .ok_or(ConfigError::NoUser)?;
    for (name, p) in &file.preset {
        let bad = |what: &str, e: String| ConfigError::Preset(format!("preset {name:?}: {what}: {e}"));
        if let Some(m) = &p.memory {
            tasker_common::parse_size(m).map_err(|e| bad("memory", e.to_string()))?;
        }
        if let Some(t) = &p.timeout {
            tasker_common::parse_duration(t).map_err(|e| bad("timeout", e.to_string()))?;
        }
        if p.network
            .as_deref()
            .is_some_and(|n| n != "isolated" && n != "host")
        {
            return Err(bad("network", "isolated or host".into()));
        }
    }
    Ok(Config {
        context: context_name,
        presets: file.preset,
        user,
        certs: over
            .certs
            .clone()
            .or(file.certs)
            .unwrap_or_else(|| PathBuf::from("/etc/tasker")),
        crews,
        discovery,
    })
}

/// The names of the config file's contexts (`[contexts.NAME]`), for
/// completion: none when the file is missing or unreadable.
#[must_use]
pub fn context_names(over: &Overrides) -> Vec<String> {
    let path = over.config.clone().unwrap_or_else(default_path);
    std::fs::read_to_string(path)
        .ok()
        .and_then(|text| toml::from_str::<File>(&text).ok())
        .map(|f| f.contexts.into_keys().collect())
        .unwrap_or_default()
}

/// Every address is HOST:PORT and no two crews share a name.
pub fn check_crews(crews: &[CrewEntry]) -> Result<(), ConfigError> {
    for (i, c) in crews.iter().enumerate() {
        if crate::client::split_addr(&c.addr).is_none() {
            return Err(ConfigError::BadAddr {
                name: c.name.clone(),
                addr: c.addr.clone(),
            });
        }
        if crews[..i].iter().any(|o| o.name == c.name) {
            return Err(ConfigError::Duplicate(c.name.clone()));
        }
    }
    Ok(())
}

/// `[[crew]]` entries of a discovery file.
pub fn parse_crew_file(text: &str) -> Result<Vec<CrewEntry>, String> {
    #[derive(Deserialize)]
    #[serde(deny_unknown_fields)]
    struct Crews {
        #[serde(default)]
        crew: Vec<CrewEntry>,
    }
    toml::from_str::<Crews>(text)
        .map(|c| c.crew)
        .map_err(|e| e.to_string().trim().replace('\n', " "))
}

fn parse_crew_flag(s: &str) -> Result<CrewEntry, ConfigError> {
    let (name, addr) = s
        .split_once('=')
        .ok_or_else(|| ConfigError::BadCrewFlag(s.to_owned()))?;
    if name.is_empty() || addr.is_empty() {
        return Err(ConfigError::BadCrewFlag(s.to_owned()));
    }
    Ok(CrewEntry {
        name: name.to_owned(),
        addr: addr.to_owned(),
        groups: Vec::new(),
        source: Source::Config,
        dial: None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn flags_override_the_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("foreman.toml");
        std::fs::write(
            &path,
            "user = \"alice\"\ncerts = \"/x\"\n[[crew]]\nname = \"alpha\"\naddr = \"a:1\"\n",
        )
        .unwrap();
        let mut over = Overrides {
            config: Some(path.clone()),
            ..Default::default()
        };
        let c = load(&over).unwrap();
        assert_eq!(c.user, "alice");
        assert_eq!(c.crews[0].addr, "a:1");
        assert_eq!(c.cert(), PathBuf::from("/x/users/alice.crt"));
        over.crews = vec!["beta=[::1]:7443".into()];
        over.user = Some("bob".into());
        let c = load(&over).unwrap();
        assert_eq!((c.user.as_str(), c.crews[0].name.as_str()), ("bob", "beta"));
    }

    #[test]
    fn bad_input_says_what_is_wrong() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("f.toml");
        std::fs::write(&path, "crews = 3\n").unwrap();
        let over = Overrides {
            config: Some(path),
            ..Default::default()
        };
        assert!(load(&over).unwrap_err().to_string().contains("f.toml"));
        let over = Overrides {
            crews: vec!["nope".into()],
            config: Some(dir.path().join("missing.toml")),
            ..Default::default()
        };
        assert!(matches!(load(&over), Err(ConfigError::File { .. })));
        let over = Overrides {
            crews: vec!["alpha=nohost".into()],
            user: Some("u".into()),
            config: None,
            ..Default::default()
        };
        assert!(matches!(load(&over), Err(ConfigError::BadAddr { .. })));
        let over = Overrides {
            crews: vec!["a=h:1".into(), "a=h:2".into()],
            user: Some("u".into()),
            ..Default::default()
        };
        assert!(matches!(load(&over), Err(ConfigError::Duplicate(_))));
    }
}
