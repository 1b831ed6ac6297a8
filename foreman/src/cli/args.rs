//! The command line (SPEC §5), parsed by clap; sizes and durations by
//! `tasker_common`, as the crew reads its own flags. A new job's options
//! (`JobArgs`) are `crate::job`'s: the dashboard's `:start` takes them too.

use std::path::PathBuf;
use std::time::Duration;

use clap::{Parser, Subcommand};

use crate::job::JobArgs;

/// Foreman: run and watch jobs on many crews.
///
/// With no command, opens the dashboard. Crews and the certificate come
/// from ~/.config/tasker/foreman.toml (or --config), overridden by flags.
/// A JOB is [CREW/]HANDLE-OR-NAME-OR-ID-PREFIX, e.g. job-3, alpha/job-3,
/// 4d5c9f. Exit codes: 0 success, 1 the job failed, was not found or the
/// call was denied, 2 a usage or connection error; `run` exits with the
/// job's own code.
#[derive(Debug, Parser)]
#[command(name = "foreman", version)]
pub struct Cli {
    /// A crew to talk to, as NAME=HOST:PORT (repeat for more); replaces the
    /// config file's crews. Before the command (`start --crew` picks one).
    #[arg(long = "crew", value_name = "NAME=HOST:PORT")]
    pub crews: Vec<String>,
    /// Whose certificate to use: CERTS/users/USER.{crt,key}. Default: $USER.
    #[arg(long, global = true)]
    pub user: Option<String>,
    /// Directory with ca.crt and users/ (default /etc/tasker).
    #[arg(long, global = true)]
    pub certs: Option<PathBuf>,
    /// Config file (default ~/.config/tasker/foreman.toml).
    #[arg(long, global = true)]
    pub config: Option<PathBuf>,
    /// Which fleet of the config's [contexts.NAME] (default: its
    /// `context`, or $TASKER_CONTEXT).
    #[arg(long, global = true)]
    pub context: Option<String>,
    #[command(subcommand)]
    pub command: Option<Command>,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Start a job and print its reference.
    Start(JobArgs),
    /// Start a job, stream its output, and exit with its exit code. On
    /// several crews (--crew a,b / 'web*' / @group / all): each line
    /// prefixed by its crew, then a summary; the exit code is the worst.
    Run(RunArgs),
    /// List jobs on every crew (or those --crew selects), filtered.
    Ls {
        /// Include archived jobs.
        #[arg(short = 'a', long)]
        all: bool,
        #[command(flatten)]
        filter: JobFilter,
        /// Only the jobs' references (CREW/job-N), one a line: for scripts
        /// (`foreman ls -q --state 'exit 3' | xargs -n1 foreman logs`).
        #[arg(short = 'q', long, conflicts_with = "json")]
        quiet: bool,
        /// JSON for scripts instead of text for people.
        #[arg(long)]
        json: bool,
    },
    /// Show one job.
    Status {
        /// The job: [CREW/]job-N, its name, or its id (or 6+ hex digits of it).
        job: String,
        /// JSON for scripts instead of text for people.
        #[arg(long)]
        json: bool,
    },
    /// Print a job's output.
    Logs {
        /// The job: [CREW/]job-N, its name, or its id (or 6+ hex digits of it).
        #[arg(required_unless_present = "batch", conflicts_with = "batch")]
        job: Option<String>,
        /// Every job of this batch, on every crew: each line prefixed by
        /// its crew, then a summary.
        #[arg(long, value_name = "ID")]
        batch: Option<String>,
        /// With --batch: identical outputs once, under the crews that
        /// printed them (as `run -b`).
        #[arg(short = 'b', long, requires = "batch")]
        gather: bool,
        /// Keep following the output until the job ends.
        #[arg(short, long)]
        follow: bool,
        /// Start with the last N lines.
        #[arg(long, value_name = "N")]
        tail: Option<u64>,
        /// Do not filter terminal control sequences (they are filtered when
        /// writing to a terminal).
        #[arg(long)]
        raw: bool,
        #[command(flatten)]
        which: WhichOutput,
    },
    /// Attach this terminal to a job: its output, and your keys as its input.
    /// Ctrl-] detaches (never sent to the job); the job keeps running.
    /// Another user's job is attached read-write only with --yes or your
    /// answer at the prompt.
    Attach {
        /// The job: [CREW/]job-N, its name, or its id (or 6+ hex digits of it).
        job: String,
        /// Act on another user's job without asking (a script must say so;
        /// at a terminal you are asked).
        #[arg(short = 'y', long)]
        yes: bool,
    },
    /// Stop a job (or every running job of a batch): SIGTERM to every
    /// process, SIGKILL after the grace period.
    Stop {
        /// The job: [CREW/]job-N, its name, or its id (or 6+ hex digits of it).
        #[arg(required_unless_present = "batch", conflicts_with = "batch")]
        job: Option<String>,
        /// Every running job of this batch, on every crew.
        #[arg(long, value_name = "ID")]
        batch: Option<String>,
        /// e.g. 500ms, 5s, 1m (default: the crew's, 5s).
        #[arg(long, value_parser = parse_duration)]
        grace: Option<Duration>,
        /// Act on another user's job without asking (a script must say so;
        /// at a terminal you are asked).
        #[arg(short = 'y', long)]
        yes: bool,
    },
    /// Wait until a job (or every job of a batch) has ended; exit with the
    /// code `run` would have (a batch's worst).
    Wait {
        /// The job: [CREW/]job-N, its name, or its id (or 6+ hex digits of it).
        #[arg(required_unless_present = "batch", conflicts_with = "batch")]
        job: Option<String>,
        /// Every job of this batch, on every crew.
        #[arg(long, value_name = "ID")]
        batch: Option<String>,
        /// Give up after this long (exit 1), e.g. 30s, 5m.
        #[arg(long, value_parser = parse_duration)]
        timeout: Option<Duration>,
    },
    /// Who did what to a job, from its crew's audit trail: starts (argv,
    /// environment names), stops, archives, attaches for writing, input
    /// (byte counts), refusals; oldest first.
    Audit {
        /// The job: [CREW/]job-N, its name, or its id (or 6+ hex digits of it).
        job: String,
        /// One JSON object per record.
        #[arg(long)]
        json: bool,
    },
    /// Start a job again with the same command, limits, tty, network,
    /// cwd and timeout, on the same crew, as yourself. It takes the old
    /// job's name: an ended job holding it is archived first (a running
    /// one must be stopped, or the new run given another --name). The
    /// environment is not kept with a job (its values may be secrets):
    /// give it again with --env.
    Rerun {
        /// The job: [CREW/]job-N, its name, or its id (or 6+ hex digits of it).
        job: String,
        /// The new run's name instead of the old one's.
        #[arg(long)]
        name: Option<String>,
        /// Environment variable for the new run (repeat for more).
        #[arg(long = "env", value_name = "K=V", value_parser = crate::job::parse_env)]
        env: Vec<(String, String)>,
    },
    /// Archive every ended job that matches: yours unless --owner says
    /// whose (another user's needs admin). Filters as `ls`.
    Clean {
        #[command(flatten)]
        filter: JobFilter,
        /// Say what would be archived, and archive nothing.
        #[arg(short = 'n', long)]
        dry_run: bool,
    },
    /// Hide an ended job from the default list.
    Archive {
        /// The job: [CREW/]job-N, its name, or its id (or 6+ hex digits of it).
        job: String,
        /// Act on another user's job without asking (a script must say so;
        /// at a terminal you are asked).
        #[arg(short = 'y', long)]
        yes: bool,
    },
    /// List archived jobs again (`ls` shows them): the owner's or, for an
    /// admin, anyone's. Refused while another job holds the name.
    Unarchive {
        /// The jobs: [CREW/]job-N, the name, or the id (or 6+ hex digits
        /// of it); a name finds an archived job when no listed job holds it.
        #[arg(required = true, value_name = "JOB")]
        jobs: Vec<String>,
        /// Act on another user's job without asking (a script must say so;
        /// at a terminal you are asked).
        #[arg(short = 'y', long)]
        yes: bool,
    },
    /// Each crew: reachable?, who you are there, its cgroup mode, its
    /// certificate's expiry.
    Crews {
        /// JSON for scripts instead of text for people.
        #[arg(long)]
        json: bool,
    },
    /// Print a shell completion script, e.g. `foreman completions bash >
    /// /etc/bash_completion.d/foreman` (needs no config or crew). In bash,
    /// zsh and fish it also completes job references (asked of the
    /// config's crews and those discovery finds at each Tab, for at most a
    /// second in all) and --preset and --context names.
    Completions {
        /// The shell the script is for.
        #[arg(value_enum)]
        shell: clap_complete::Shell,
    },
    /// For the completion scripts: the job references, preset or context
    /// names that complete the last of WORDS (see `foreman completions`).
    #[command(name = "__complete", hide = true)]
    Complete {
        /// The command line so far, the word being completed last.
        #[arg(trailing_var_arg = true, allow_hyphen_values = true, value_name = "WORDS")]
        words: Vec<String>,
    },
    /// Write man pages, foreman.1 and foreman-COMMAND.1 for each command,
    /// into DIR (needs no config or crew).
    Man {
        /// Where to write them.
        #[arg(long, default_value = ".")]
        dir: std::path::PathBuf,
    },
}

/// Which of a job's output to show, and with what: its streams, the times
/// of its lines.
#[derive(Clone, Debug, Default, clap::Args)]
pub struct WhichOutput {
    /// Only this stream (a pipe job's; a tty job's output is all stdout).
    #[arg(long, value_enum, value_name = "STREAM")]
    pub stream: Option<StreamArg>,
    /// Write an asciicast v2 recording, with the output's times, for
    /// `asciinema play` (`> job.cast`).
    #[arg(long, conflicts_with_all = ["timestamps", "stream", "raw"])]
    pub asciicast: bool,
    /// Put each line after the time it was stored (UTC, to the
    /// millisecond).
    #[arg(short = 't', long)]
    pub timestamps: bool,
    /// Only output stored since then: a duration before now (10m, 2h, 7d),
    /// a time of day in UTC (13:05), or an RFC 3339 time.
    #[arg(long, value_name = "WHEN", value_parser = crate::times::parse_point)]
    pub since: Option<tasker_proto::v1::TimePoint>,
    /// Only output stored until then, that millisecond included (as
    /// --since); with -f, follow until then.
    #[arg(long, value_name = "WHEN", value_parser = crate::times::parse_until)]
    pub until: Option<tasker_proto::v1::TimePoint>,
}

impl WhichOutput {
    /// Whether any of these was given.
    #[must_use]
    pub fn picks_any(&self) -> bool {
        self.stream.is_some()
            || self.asciicast
            || self.timestamps
            || self.since.is_some()
            || self.until.is_some()
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum StreamArg {
    Stdout,
    Stderr,
}

/// Which jobs `ls` and `clean` take: every filter given must hold; the
/// values of a repeated one are alternatives.
#[derive(Clone, Debug, Default, clap::Args)]
pub struct JobFilter {
    /// Only the jobs of this batch (the id `run` and `start` print for a
    /// command on several crews).
    #[arg(long, value_name = "ID")]
    pub batch: Option<String>,
    /// Only jobs in this state (repeat for any of several): running,
    /// starting, ended, a word of the STATE column (exit 0, exit 3,
    /// stopped, oom-killed, timed out, no start, lost), or completed,
    /// failed (SPEC's phases).
    #[arg(long, value_name = "STATE")]
    pub state: Vec<String>,
    /// Only jobs of this owner (certificate name; repeat for several).
    #[arg(long, value_name = "NAME")]
    pub owner: Vec<String>,
    /// Only these crews: a name, a comma list, a glob, @GROUP or all.
    #[arg(long, value_name = "CREWS")]
    pub crew: Option<String>,
    /// Only jobs whose name matches this glob (`build-*`).
    #[arg(long, value_name = "GLOB")]
    pub name: Option<String>,
}

/// `run`'s options: a job's, and how a batch is shown.
#[derive(Clone, Debug, clap::Args)]
pub struct RunArgs {
    /// Gather a batch's output: identical outputs once, under the crews
    /// that printed them, with their exit codes (as `clush -b`); a job's
    /// stderr still goes to yours as it comes, prefixed by its crew.
    #[arg(short = 'b', long)]
    pub gather: bool,
    /// Stop a batch's other jobs at the first failure.
    #[arg(long)]
    pub fail_fast: bool,
    /// A batch's result as one JSON object per crew (output included,
    /// stdout and stderr together in the order stored).
    #[arg(long)]
    pub json: bool,
    #[command(flatten)]
    pub job: JobArgs,
}

/// Sizes and durations read as the crew reads its own flags.
pub use tasker_common::{parse_duration, parse_size};

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_and_durations() {
        assert_eq!(parse_size("512"), Ok(512));
        assert_eq!(parse_size("64K"), Ok(64 << 10));
        assert_eq!(parse_size("10M"), Ok(10 << 20));
        assert_eq!(parse_size("2g"), Ok(2 << 30));
        assert!(parse_size("1.5G").is_err());
        assert!(parse_size("99999999999999T").is_err());
        assert!(parse_size("").is_err());
        assert_eq!(parse_duration("250ms"), Ok(Duration::from_millis(250)));
        assert_eq!(parse_duration("5s"), Ok(Duration::from_secs(5)));
        assert_eq!(parse_duration("2m"), Ok(Duration::from_secs(120)));
        assert_eq!(parse_duration("1h"), Ok(Duration::from_secs(3600)));
        assert_eq!(parse_duration("7"), Ok(Duration::from_secs(7)));
        assert!(parse_duration("5x").is_err());
        assert!(parse_duration("-1s").is_err());
    }

    #[test]
    fn the_command_line_parses_as_spec_5_says() {
        let cli = Cli::try_parse_from([
            "foreman",
            "--crew",
            "a=h:1",
            "start",
            "--crew",
            "a",
            "--cpu",
            "0.5",
            "--memory",
            "64M",
            "--tty",
            "--env",
            "A=1",
            "--timeout",
            "2m",
            "--",
            "sleep",
            "--flag",
            "9",
        ])
        .unwrap();
        assert_eq!(cli.crews, ["a=h:1"]);
        let Some(Command::Start(j)) = cli.command else {
            panic!("not start")
        };
        assert_eq!(j.crew.as_deref(), Some("a"));
        assert_eq!(j.memory, Some(64 << 20));
        assert_eq!(j.argv, ["sleep", "--flag", "9"]);
        assert_eq!(j.env, [("A".to_owned(), "1".to_owned())]);
        assert!(Cli::try_parse_from(["foreman", "start", "--",]).is_err());
        assert!(Cli::try_parse_from(["foreman", "logs", "job-1", "-f", "--tail", "5"]).is_ok());
    }
}
