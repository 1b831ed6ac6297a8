//! A job as both the CLI and the dashboard ask for one: the options of
//! `foreman start` and `run`, which `:start` takes too, the `JobSpec` they
//! make, and the form of a job reference.

use std::time::Duration;

use clap::Args;
use tasker_proto::v1 as pb;

// The same parsers as the rest of the command line: `--memory 2G` means
// the same on the `:start` line as after `foreman start`.
use tasker_common::{parse_duration, parse_size};

/// The options of a new job, then its command after `--`.
#[derive(Clone, Debug, Args)]
pub struct JobArgs {
    /// Which crew runs it (needed when several are configured); several
    /// make a batch: a comma list, a glob ('web*'), @GROUP (crews whose
    /// config entry lists it) or all.
    #[arg(long)]
    pub crew: Option<String>,
    /// CPU limit in cores, e.g. 0.5.
    #[arg(long)]
    pub cpu: Option<f64>,
    /// Memory limit, e.g. 512M, 2G.
    #[arg(long, value_parser = parse_size)]
    pub memory: Option<u64>,
    /// Soft memory limit, e.g. 256M: past it the job's memory is reclaimed
    /// and its allocations slowed, never killed.
    #[arg(long, value_parser = parse_size)]
    pub memory_high: Option<u64>,
    /// CPU weight against other jobs that want it, 1-10000 (default 100).
    #[arg(long)]
    pub cpu_weight: Option<u32>,
    /// Read bandwidth limit per disk in bytes/s, e.g. 10M.
    #[arg(long, value_parser = parse_size)]
    pub io_read_bps: Option<u64>,
    /// Write bandwidth limit per disk in bytes/s, e.g. 10M.
    #[arg(long, value_parser = parse_size)]
    pub io_write_bps: Option<u64>,
    /// Read operations per second per disk.
    #[arg(long)]
    pub io_read_iops: Option<u64>,
    /// Write operations per second per disk.
    #[arg(long)]
    pub io_write_iops: Option<u64>,
    /// Apply the io limits to this device only (a path or MAJOR:MINOR);
    /// default: every disk.
    #[arg(long)]
    pub io_device: Option<String>,
    /// Maximum processes and threads.
    #[arg(long)]
    pub pids: Option<u64>,
    /// Run under a pseudo-terminal (sized like this terminal).
    #[arg(long)]
    pub tty: bool,
    /// Environment variable for the job (repeat for more).
    #[arg(long = "env", value_name = "K=V", value_parser = parse_env)]
    pub env: Vec<(String, String)>,
    /// Working directory (default: the user's home, or /).
    #[arg(long)]
    pub cwd: Option<String>,
    /// The job's network. Default: isolated, its own network namespace
    /// with only loopback (no way out: nothing reaches the network). host:
    /// the host's network, as a process started there would have.
    #[arg(long, value_parser = ["isolated", "host"])]
    pub network: Option<String>,
    /// Stop the job after this long, e.g. 30s, 2h.
    #[arg(long, value_parser = parse_duration)]
    pub timeout: Option<Duration>,
    /// A name to find the job by.
    #[arg(long)]
    pub name: Option<String>,
    /// A named job of the config (`[preset.NAME]`): its command and
    /// options; flags given here win, and arguments after -- are added.
    #[arg(long, value_name = "NAME")]
    pub preset: Option<String>,
    /// The program and its arguments (after --); never run through a shell.
    #[arg(last = true, required_unless_present = "preset", value_name = "CMD")]
    pub argv: Vec<String>,
}

impl JobArgs {
    /// These options over the preset they name (none: as they are).
    pub fn with_preset(
        &self,
        presets: &std::collections::BTreeMap<String, crate::config::Preset>,
    ) -> Result<JobArgs, String> {
        let Some(name) = &self.preset else {
            return Ok(self.clone());
        };
        let Some(p) = presets.get(name) else {
            let known: Vec<&str> = presets.keys().map(String::as_str).collect();
            return Err(if known.is_empty() {
                format!("no preset {name:?}: the config has none ([preset.NAME] tables)")
            } else {
                format!("no preset {name:?} (presets: {})", known.join(", "))
            });
        };
        let mut a = self.clone();
        a.crew = a.crew.or_else(|| p.crew.clone());
        a.cpu = a.cpu.or(p.cpu);
        if a.memory.is_none()
            && let Some(m) = &p.memory
        {
            a.memory = Some(parse_size(m).map_err(|e| format!("preset {name:?}: memory: {e}"))?);
        }
        a.pids = a.pids.or(p.pids);
        a.tty |= p.tty;
        let mut env: Vec<(String, String)> = p
            .env
            .iter()
            .filter(|(k, _)| !self.env.iter().any(|(mine, _)| mine == *k))
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect();
        env.extend(self.env.iter().cloned());
        a.env = env;
        a.cwd = a.cwd.or_else(|| p.cwd.clone());
        a.network = a.network.or_else(|| p.network.clone());
        if a.timeout.is_none()
            && let Some(t) = &p.timeout
        {
            a.timeout = Some(parse_duration(t).map_err(|e| format!("preset {name:?}: timeout: {e}"))?);
        }
        a.name = a.name.or_else(|| p.name.clone());
        a.argv = p.argv.iter().cloned().chain(self.argv.iter().cloned()).collect();
        if a.argv.is_empty() {
            return Err(format!("preset {name:?} has no argv: give the command after --"));
        }
        Ok(a)
    }
}

/// A new tty job's size: this terminal's (80x24 when there is none).
pub fn tty_here() -> pb::TtySize {
    let (rows, cols) = crate::terminal::size().unwrap_or((24, 80));
    pb::TtySize {
        rows: u32::from(rows),
        cols: u32::from(cols),
    }
}

pub fn parse_env(s: &str) -> Result<(String, String), String> {
    match s.split_once('=') {
        Some((k, v)) if !k.is_empty() => Ok((k.to_owned(), v.to_owned())),
        _ => Err(format!("{s:?} is not KEY=VALUE")),
    }
}

/// The `JobSpec` the options ask for. A tty job starts at this terminal's
/// size, or 24x80 with none.
pub fn job_spec(a: &JobArgs) -> pb::JobSpec {
    let rates = [a.io_read_bps, a.io_write_bps, a.io_read_iops, a.io_write_iops];
    let io = if rates.iter().any(Option::is_some) {
        vec![pb::IoLimit {
            device: a.io_device.clone().unwrap_or_default(),
            read_bps: a.io_read_bps,
            write_bps: a.io_write_bps,
            read_iops: a.io_read_iops,
            write_iops: a.io_write_iops,
        }]
    } else {
        Vec::new()
    };
    pb::JobSpec {
        argv: a.argv.clone(),
        env: a
            .env
            .iter()
            .map(|(k, v)| pb::EnvVar {
                name: k.clone(),
                value: v.clone(),
            })
            .collect(),
        cwd: a.cwd.clone().unwrap_or_default(),
        limits: Some(pb::Limits {
            cpu: a.cpu,
            memory_bytes: a.memory,
            io,
            pids: a.pids,
            memory_high_bytes: a.memory_high,
            cpu_weight: a.cpu_weight,
        }),
        tty: a.tty.then(tty_here),
        network: match a.network.as_deref() {
            Some("host") => pb::Network::Host,
            _ => pb::Network::Isolated,
        } as i32,
        timeout: a.timeout.and_then(|t| prost_types::Duration::try_from(t).ok()),
        name: a.name.clone().unwrap_or_default(),
        batch: String::new(),
    }
}

/// A job reference, `[crew/]ref`, split: the crew if one is named, and the
/// reference on it (an id or id prefix, a `job-N` handle, or a name).
pub fn split_reference(reference: &str) -> (Option<&str>, &str) {
    match reference.split_once('/') {
        Some((crew, rest)) => (Some(crew), rest),
        None => (None, reference),
    }
}
