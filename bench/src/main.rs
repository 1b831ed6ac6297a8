//! `tasker-bench`: the end-to-end measurements that need a client that stays
//! connected, driven by `bench/foreman-vs-ssh` (which also runs the cold
//! command-line comparisons against ssh and socat). Each subcommand prints
//! one JSON object on stdout; progress goes to stderr.
//!
//! - `latency`: start → final state of `true` over one established
//!   connection (StartJob, then AttachJob until the job's final state),
//!   interleaved with a baseline command (the script passes
//!   `ssh -S CONTROL ... true` over a ControlMaster connection).
//! - `followers`: N operators, each on its own TLS connection, follow one
//!   job writing non-trivial bytes (`seq`) from the beginning to its end;
//!   every byte stream is checked against the same bytes made locally
//!   (length and XXH3-128), and the crew's RSS is sampled meanwhile.
//! - `fleet-fill`, `fleet-load`, `fleet-stop`: every crew of the config at
//!   once, for `bench/fleet` (`fleet.rs`): the same jobs on each, a
//!   dashboard's updates counted while jobs churn, every running job
//!   stopped.
//! - `follow`: one in-process follower of an existing job (a diagnostic:
//!   the transport without the foreman CLI around it); `times`: how long a
//!   job ran, to the nanosecond.
//!
//! The crew, the user and the certificates come from a foreman config file
//! (`--config`); the first crew listed is used (the fleet commands use all).

mod attach;
mod firehose;
mod fleet;
mod followers;
mod latency;
mod rss;
mod stats;

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context as _;
use clap::{Parser, Subcommand};
use foreman::client::Crew;
use foreman::config::{Config, Overrides};

#[derive(Debug, Parser)]
#[command(name = "tasker-bench")]
struct Cli {
    /// A foreman config (TOML): user, certs and the crew (the first listed).
    #[arg(long)]
    config: PathBuf,
    /// tokio's scheduler: `multi-thread` (as the foreman binary uses) or
    /// `current-thread` (one thread: no wakeups across threads).
    #[arg(long, default_value = "multi-thread", value_parser = ["multi-thread", "current-thread"])]
    runtime: String,
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Start → final state of `true` over one established connection.
    Latency {
        /// Measured iterations.
        #[arg(long, default_value_t = 200)]
        iterations: usize,
        /// Iterations run first and not counted.
        #[arg(long, default_value_t = 20)]
        warmup: usize,
        /// A command timed in each iteration next to the job (order
        /// alternating), e.g. `-- ssh -S CTL -p PORT 127.0.0.1 true`.
        #[arg(last = true)]
        baseline: Vec<String>,
    },
    /// N followers, each on its own connection, of one job writing BYTES.
    Followers {
        #[arg(long, default_value_t = 100)]
        followers: usize,
        #[arg(long, default_value_t = 256 << 20)]
        bytes: u64,
        /// The crew's pid, for its RSS (VmRSS sampled, VmHWM reset first).
        #[arg(long)]
        crew_pid: Option<u32>,
    },
    /// The same jobs on every crew of the config; waits until they are
    /// ended or running as asked.
    FleetFill {
        /// Jobs per crew.
        #[arg(long, default_value_t = 40)]
        per_crew: usize,
        /// Of them, this many `sleep` (left running).
        #[arg(long, default_value_t = 4)]
        running: usize,
        /// Of them, this many `sh -c 'exit 3'`; the rest `true`.
        #[arg(long, default_value_t = 4)]
        failed: usize,
        /// Starts in flight at once, over the whole fleet.
        #[arg(long, default_value_t = 16)]
        in_flight: usize,
        /// Seconds the running jobs sleep; 0: they run `sleep 1` in a loop,
        /// so that their usage figures change every second.
        #[arg(long, default_value_t = 86400)]
        sleep: u64,
    },
    /// Watch every crew, count the job updates per second, and churn jobs
    /// (`true`, archived once ended) until stdin closes.
    FleetLoad {
        /// Jobs started a second, round the crews (0: only watch).
        #[arg(long, default_value_t = 20.0)]
        churn: f64,
    },
    /// Stop every running job on every crew of the config.
    FleetStop {
        /// Milliseconds between SIGTERM and SIGKILL.
        #[arg(long, default_value_t = 1000)]
        grace_ms: u64,
    },
    /// A synthetic crew named NAME (its certificate from the config's
    /// certs) that streams `rate` usage figures a second to each watcher,
    /// until stdin closes.
    Firehose {
        #[arg(long)]
        name: String,
        #[arg(long)]
        listen: std::net::SocketAddr,
        /// Running jobs it lists.
        #[arg(long, default_value_t = 200)]
        jobs: usize,
        /// Usage figures a second to each watcher.
        #[arg(long, default_value_t = 1000)]
        rate: u64,
    },
    /// Follow one existing job from its beginning to its end, in-process.
    Follow {
        /// The job's id.
        job: String,
    },
    /// One job's start and end times, and how long it ran.
    Times {
        /// The job's id.
        job: String,
    },
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let rt = match cli.runtime.as_str() {
        "current-thread" => tokio::runtime::Builder::new_current_thread().enable_all().build(),
        _ => tokio::runtime::Runtime::new(),
    };
    let rt = match rt {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("tasker-bench: no runtime: {e}");
            return ExitCode::from(2);
        }
    };
    match rt.block_on(run(cli)) {
        Ok(report) => {
            println!("{report}");
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("tasker-bench: {e:#}");
            ExitCode::FAILURE
        }
    }
}

async fn run(cli: Cli) -> anyhow::Result<serde_json::Value> {
    let config = foreman::config::load(&Overrides {
        config: Some(cli.config.clone()),
        ..Default::default()
    })
    .with_context(|| format!("loading {}", cli.config.display()))?;
    match cli.command {
        Command::Latency {
            iterations,
            warmup,
            baseline,
        } => latency::run(&config, iterations, warmup, &baseline).await,
        Command::Followers {
            followers,
            bytes,
            crew_pid,
        } => followers::run(&config, followers, bytes, crew_pid).await,
        Command::FleetFill {
            per_crew,
            running,
            failed,
            in_flight,
            sleep,
        } => fleet::fill(&config, per_crew, running, failed, in_flight, sleep).await,
        Command::FleetLoad { churn } => fleet::load(&config, churn).await,
        Command::FleetStop { grace_ms } => {
            fleet::stop_all(&config, std::time::Duration::from_millis(grace_ms)).await
        }
        Command::Firehose {
            name,
            listen,
            jobs,
            rate,
        } => firehose::run(&config, &name, listen, jobs, rate).await,
        Command::Follow { job } => attach::follow_one(&config, &job).await,
        Command::Times { job } => attach::times(&config, &job).await,
    }
}

/// A new connection to the configured crew, handshake done (an `Info`
/// call), so that what is timed next is not the handshake.
pub async fn connect(config: &Config) -> anyhow::Result<Crew> {
    let entry = config.crews.first().context("the config names no crew")?;
    let crew = foreman::client::crew(config, entry)?;
    crew.client
        .clone()
        .info(tasker_proto::v1::InfoRequest {})
        .await
        .with_context(|| format!("connecting to {} ({})", entry.name, entry.addr))?;
    Ok(crew)
}
