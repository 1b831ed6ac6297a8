//! `crew`: flags, logging and signals; everything else is `crew::run`.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use clap::Parser;
use tasker_common::{parse_duration, parse_size};
use tokio_util::sync::CancellationToken;

/// The Tasker crew: runs jobs in cgroups and namespaces on this host and
/// serves them to foremen over mutual TLS 1.3.
///
/// Needs root. Certificates come from certgen: CERTS/ca.crt and
/// CERTS/crews/NAME.{crt,key} (the key must be readable by root alone).
#[derive(Debug, Parser)]
#[command(version, args_conflicts_with_subcommands = true)]
struct Args {
    #[command(subcommand)]
    command: Option<Command>,
    /// This crew's name: the CN of its certificate, and how foremen call it.
    /// Default: the host name.
    #[arg(long)]
    name: Option<String>,
    /// Address and port to serve on.
    #[arg(long, default_value = "[::]:7443")]
    listen: SocketAddr,
    /// Open connections at most, TLS handshakes in progress included; past
    /// it a new connection is closed at once.
    #[arg(long, default_value_t = 1024)]
    max_connections: usize,
    /// Open connections from one source at most: an IPv4 address, or an
    /// IPv6 /64 (raise it for many clients behind one NAT).
    /// [default: 256, or --max-connections if less]
    #[arg(long)]
    max_connections_per_address: Option<usize>,
    /// Open connections of one certificate identity (CN) at most.
    /// [default: 128, or --max-connections if less]
    #[arg(long)]
    max_connections_per_identity: Option<usize>,
    /// TLS handshakes in progress at most; past it the oldest pending one
    /// of the source with the most goes.
    /// [default: 64, or --max-connections if less]
    #[arg(long)]
    max_handshakes: Option<usize>,
    /// TLS handshakes in progress from one source at most; past it that
    /// source's oldest pending one goes.
    /// [default: 16, or --max-handshakes if less]
    #[arg(long)]
    max_handshakes_per_address: Option<usize>,
    /// A TLS handshake not done by then is dropped (ms, s, m).
    #[arg(long, default_value = "10s", value_parser = parse_duration)]
    handshake_timeout: Duration,
    /// A connection that has not started HTTP/2 this long after its TLS
    /// handshake is closed (ms, s, m).
    #[arg(long, default_value = "10s", value_parser = parse_duration)]
    preface_timeout: Duration,
    /// Directory with ca.crt and crews/NAME.{crt,key}.
    #[arg(long, default_value = "/etc/tasker")]
    certs: PathBuf,
    /// Where job output is kept (each job's output is bounded, 64 MiB by default).
    #[arg(long, default_value = "/var/lib/tasker", global = true)]
    state_dir: PathBuf,
    /// Let jobs run as uid 0 (a certificate whose CN is root). Off: such
    /// starts are refused.
    #[arg(long)]
    allow_root: bool,
    /// Output kept per job (bytes, or 512K, 64M, 2G, 1T); older bytes are dropped.
    #[arg(long, default_value = "64M", value_parser = parse_size)]
    output_limit: u64,
    /// Stop every job when the crew exits. Without it, jobs run on when
    /// the crew exits (a restart, an upgrade, a crash) and the next crew
    /// with this name and state directory takes them over.
    #[arg(long)]
    stop_jobs_on_exit: bool,
    /// How long jobs get to end after SIGTERM when the crew stops them as it
    /// exits (--stop-jobs-on-exit) (ms, s, m, h, d).
    #[arg(long, default_value = "5s", value_parser = parse_duration)]
    shutdown_grace: Duration,
    /// Ended jobs kept (records and output), at most; the oldest go first.
    #[arg(long, default_value_t = 10_000)]
    keep_jobs: u64,
    /// How long ended jobs are kept (ms, s, m, h, d).
    #[arg(long, default_value = "720h", value_parser = parse_duration)]
    keep_for: Duration,
    /// Output of ended jobs kept in the state directory, in all; past it the
    /// oldest ended jobs go (bytes, or 512K, 64M, 2G, 1T).
    #[arg(long, default_value = "4G", value_parser = parse_size)]
    output_budget: u64,
    /// Log format on stderr.
    #[arg(long, default_value = "text", value_parser = ["text", "json"])]
    log_format: String,
    /// The configuration file: users' and the crew's caps, jobs' default
    /// limits (docs/operations.md). Default: /etc/tasker/crew.toml if it
    /// exists. The flags below go over it.
    #[arg(long)]
    config: Option<PathBuf>,
    /// Processes and threads of one user's jobs together (or "none").
    /// Default: a quarter of the crew's, which is half the host's PID space.
    #[arg(long, value_name = "N")]
    user_pids: Option<String>,
    /// Memory of one user's jobs together, e.g. 8G (or "none", the default).
    #[arg(long, value_name = "SIZE")]
    user_memory: Option<String>,
    /// CPU cores of one user's jobs together, e.g. 1.5 (or "none", the default).
    #[arg(long, value_name = "CORES")]
    user_cpu: Option<String>,
    /// Jobs one user may have running at once (or "none"). Default: 256.
    #[arg(long, value_name = "N")]
    user_jobs: Option<String>,
    /// Memory limit of a job that gives none, e.g. 2G. Default: none.
    #[arg(long, value_name = "SIZE")]
    default_memory: Option<String>,
    /// CPU limit in cores of a job that gives none. Default: none.
    #[arg(long, value_name = "CORES")]
    default_cpu: Option<String>,
    /// Processes and threads of a job that gives none. Default: 4096.
    #[arg(long, value_name = "N")]
    default_pids: Option<String>,
}

#[derive(Debug, clap::Subcommand)]
enum Command {
    /// Check the audit trail's hash chain (STATE_DIR/audit.db) and name the
    /// first record that does not follow; exits 1 if one does not. Safe while
    /// the crew runs.
    VerifyAudit,
}

/// `crew verify-audit`.
fn verify_audit(state_dir: &std::path::Path) -> ExitCode {
    let path = state_dir.join(crew::engine::audit::FILE);
    match crew::engine::audit::verify(&path) {
        Ok(crew::engine::audit::Verdict::Intact {
            count,
            first,
            last,
            anchor,
        }) => {
            let from = if anchor > 0 {
                format!(", after record {anchor}, where rotation cut it")
            } else {
                String::new()
            };
            let range = if count == 0 {
                "no records".to_owned()
            } else {
                format!("{count} records ({first} to {last})")
            };
            println!("{}: {range}, chained and intact{from}", path.display());
            ExitCode::SUCCESS
        }
        Ok(crew::engine::audit::Verdict::Broken { seq, why }) => {
            println!("{}: record {seq} breaks the chain: {why}", path.display());
            ExitCode::from(1)
        }
        Err(e) => {
            say(&format!("crew: {}", escape_controls(&e)));
            ExitCode::from(2)
        }
    }
}

/// An error about a flag's value names the flag, not the file's key.
fn flag_named(e: String) -> String {
    let Some((key, why)) = e.split_once(": ") else {
        return e;
    };
    let flag = match key {
        "quota.user.pids" => "--user-pids",
        "quota.user.memory" => "--user-memory",
        "quota.user.cpu" => "--user-cpu",
        "quota.user.jobs" => "--user-jobs",
        "defaults.memory" => "--default-memory",
        "defaults.cpu" => "--default-cpu",
        "defaults.pids" => "--default-pids",
        _ => return e,
    };
    format!("{flag}: {why}")
}

impl Args {
    /// The quota and default flags, as the configuration file's tables.
    fn settings(&self) -> crew::config::File {
        use crew::config::Value;
        let text = |v: &Option<String>| v.clone().map(Value::Text);
        let mut f = crew::config::File::default();
        f.quota.user.pids = text(&self.user_pids);
        f.quota.user.memory = text(&self.user_memory);
        f.quota.user.cpu = text(&self.user_cpu);
        f.quota.user.jobs = text(&self.user_jobs);
        f.defaults.memory = text(&self.default_memory);
        f.defaults.cpu = text(&self.default_cpu);
        f.defaults.pids = text(&self.default_pids);
        f
    }
}

fn init_logging(format: &str) {
    let filter = tracing_subscriber::EnvFilter::try_from_env("CREW_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(|| LogWriter(std::io::stderr()));
    if format == "json" {
        builder.json().init();
    } else {
        builder.with_ansi(false).fmt_fields(EscapedFields).init();
    }
}

/// One line on stderr, if stderr takes it (`eprintln!` would panic).
fn say(line: &str) {
    use std::io::Write as _;
    let _ = writeln!(std::io::stderr(), "{line}");
}

/// stderr for the log, where a write that fails (a closed pipe, a full
/// disk behind a redirect) is dropped: the log is not worth the crew.
struct LogWriter(std::io::Stderr);

impl std::io::Write for LogWriter {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        let _ = self.0.write_all(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        let _ = self.0.flush();
        Ok(())
    }
}

/// The text format's fields, with every control character escaped: values
/// carry what clients sent (an argv, a cwd, a start failure quoting them),
/// and tracing writes `%` values as they are, so a newline would start what
/// reads as a record of its own.
struct EscapedFields;

impl<'w> tracing_subscriber::fmt::FormatFields<'w> for EscapedFields {
    fn format_fields<R: tracing_subscriber::field::RecordFields>(
        &self,
        mut writer: tracing_subscriber::fmt::format::Writer<'w>,
        fields: R,
    ) -> std::fmt::Result {
        let mut visitor = EscapingVisitor {
            writer: &mut writer,
            first: true,
            result: Ok(()),
        };
        fields.record(&mut visitor);
        visitor.result
    }
}

struct EscapingVisitor<'a, 'w> {
    writer: &'a mut tracing_subscriber::fmt::format::Writer<'w>,
    first: bool,
    result: std::fmt::Result,
}

impl tracing::field::Visit for EscapingVisitor<'_, '_> {
    fn record_debug(&mut self, field: &tracing::field::Field, value: &dyn std::fmt::Debug) {
        // What the log crate's bridge adds; the default format hides it too.
        if self.result.is_err() || field.name().starts_with("log.") {
            return;
        }
        let sep = if std::mem::take(&mut self.first) { "" } else { " " };
        let value = format!("{value:?}");
        let value = escape_controls(&value);
        self.result = match field.name() {
            "message" => write!(self.writer, "{sep}{value}"),
            name => write!(self.writer, "{sep}{name}={value}"),
        };
    }
}

/// `text` on one line: control characters (newline, carriage return, escape,
/// C1 codes, ...) become Rust-style escapes.
fn escape_controls(text: &str) -> std::borrow::Cow<'_, str> {
    if !text.chars().any(char::is_control) {
        return text.into();
    }
    use std::fmt::Write as _;
    let mut out = String::with_capacity(text.len() + 8);
    for c in text.chars() {
        match c {
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if c.is_control() => {
                let _ = write!(out, "\\u{{{:x}}}", u32::from(c));
            }
            c => out.push(c),
        }
    }
    out.into()
}

#[tokio::main]
async fn main() -> ExitCode {
    let args = match Args::try_parse() {
        Ok(args) => args,
        Err(e) if !e.use_stderr() => e.exit(), // --help, --version
        Err(e) => {
            // One line, as every bad start.
            say(&format!(
                "crew: {} (crew --help explains the flags)",
                escape_controls(&tasker_common::usage_line(&e.to_string()))
            ));
            return ExitCode::from(2);
        }
    };
    if let Some(Command::VerifyAudit) = args.command {
        return verify_audit(&args.state_dir);
    }
    init_logging(&args.log_format);
    let name = args.name.clone().unwrap_or_else(|| {
        nix::unistd::gethostname()
            .ok()
            .and_then(|h| h.into_string().ok())
            .unwrap_or_else(|| "crew".to_owned())
    });
    let mut config = crew::CrewConfig::new(&name, args.listen, &args.certs, &args.state_dir);
    config.connections = {
        // A cap left to its default stays within the total it is part of.
        let d = crew::api::ConnectionLimits::default();
        let total = args.max_connections;
        let handshakes = args.max_handshakes.unwrap_or(d.max_handshakes.min(total));
        crew::api::ConnectionLimits {
            max_connections: total,
            max_connections_per_address: args
                .max_connections_per_address
                .unwrap_or(d.max_connections_per_address.min(total)),
            max_connections_per_identity: args
                .max_connections_per_identity
                .unwrap_or(d.max_connections_per_identity.min(total)),
            max_handshakes: handshakes,
            max_handshakes_per_address: args
                .max_handshakes_per_address
                .unwrap_or(d.max_handshakes_per_address.min(handshakes)),
            handshake_timeout: args.handshake_timeout,
            preface_timeout: args.preface_timeout,
        }
    };
    config.allow_root = args.allow_root;
    config.stop_jobs_on_exit = args.stop_jobs_on_exit;
    config.shutdown_grace = args.shutdown_grace;
    config.engine.output_limit = args.output_limit;
    config.engine.retention = crew::engine::Retention {
        max_age: args.keep_for,
        max_jobs: args.keep_jobs,
        output_budget: args.output_budget,
    };
    let configured = crew::config::load(args.config.as_deref(), &mut config.engine)
        .and_then(|()| crew::config::apply(&args.settings(), &mut config.engine).map_err(flag_named))
        .and_then(|()| crew::config::check(&config.engine));
    if let Err(e) = configured {
        say(&format!("crew: {}", escape_controls(&e)));
        return ExitCode::from(2);
    }
    let prepared = match crew::prepare(&config).await {
        Ok(p) => p,
        Err(e) => {
            // One line, whatever the paths in it hold.
            say(&format!("crew: {}", escape_controls(&e.to_string())));
            return ExitCode::from(2);
        }
    };
    let shutdown = CancellationToken::new();
    tokio::spawn(on_signal(shutdown.clone()));
    match crew::run(&config, prepared, shutdown).await {
        Ok(()) => ExitCode::SUCCESS,
        // Logged already; non-zero so that a supervisor restarts us.
        Err(_) => ExitCode::FAILURE,
    }
}

/// SIGTERM, SIGINT or SIGHUP (the terminal a crew was started from went
/// away): exit cleanly (the jobs run on, or with --stop-jobs-on-exit are
/// stopped), never die with anything half done. SIGUSR1 and SIGUSR2, which
/// the crew has no use for, are logged and ignored rather than let kill it
/// (SIGPIPE is ignored by the Rust runtime: a write to a closed pipe is an
/// error, not a death).
async fn on_signal(shutdown: CancellationToken) {
    use tokio::signal::unix::{SignalKind, signal};
    let (Ok(mut term), Ok(mut int), Ok(mut hup), Ok(mut usr1), Ok(mut usr2)) = (
        signal(SignalKind::terminate()),
        signal(SignalKind::interrupt()),
        signal(SignalKind::hangup()),
        signal(SignalKind::user_defined1()),
        signal(SignalKind::user_defined2()),
    ) else {
        tracing::error!("cannot listen for signals");
        return;
    };
    loop {
        tokio::select! {
            _ = term.recv() => tracing::info!("SIGTERM"),
            _ = int.recv() => tracing::info!("SIGINT"),
            _ = hup.recv() => tracing::info!("SIGHUP"),
            _ = usr1.recv() => {
                tracing::info!("SIGUSR1 ignored (the crew has no use for it)");
                continue;
            }
            _ = usr2.recv() => {
                tracing::info!("SIGUSR2 ignored (the crew has no use for it)");
                continue;
            }
        }
        break;
    }
    shutdown.cancel();
}
