//! The Tasker crew: the per-host daemon that runs jobs in cgroups and
//! namespaces, keeps their output on disk, and serves them over gRPC with
//! mutual TLS 1.3.
//!
//! Layout:
//! - [`engine`]: the job engine, a library with no gRPC in it: cgroups,
//!   namespaces, the per-job shim, output readers.
//! - [`api`]: the gRPC edge: TLS, identities, authorization, handlers.
//! - [`run`]: the daemon as a function (tests boot it in-process);
//!   `main.rs` only parses flags and wires signals to it.
//! - `testing` (feature `testing`): what the tests and benchmarks share (the shim binary,
//!   bounded waits, a crew on loopback).
//! - the per-job helper, `tasker-shim`, is its own crate (`shim/`); the
//!   rules every crate shares (names, roles, sizes, PEM files, locks) are
//!   `tasker_common`'s.

pub mod api;
pub mod config;
pub mod engine;
#[cfg(feature = "testing")]
pub mod testing;

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

use crate::api::ServeOptions;
use crate::engine::{Engine, EngineConfig};

/// Everything `crew` is started with (SPEC §5).
#[derive(Clone, Debug)]
pub struct CrewConfig {
    pub name: String,
    pub listen: SocketAddr,
    /// `ca.crt` and `crews/<name>.{crt,key}` (certgen's layout).
    pub certs: PathBuf,
    pub state_dir: PathBuf,
    pub allow_root: bool,
    /// Whether the crew stops every job when it exits. By default it does
    /// not: jobs run on, and the next crew with this name and state
    /// directory finds them again.
    pub stop_jobs_on_exit: bool,
    /// Grace period of the stops an exit makes (with `stop_jobs_on_exit`).
    pub shutdown_grace: Duration,
    /// Caps on connections and handshakes, and their deadlines.
    pub connections: api::ConnectionLimits,
    pub engine: EngineConfig,
}

impl CrewConfig {
    pub fn new(
        name: &str,
        listen: SocketAddr,
        certs: impl Into<PathBuf>,
        state_dir: impl Into<PathBuf>,
    ) -> Self {
        let state_dir = state_dir.into();
        Self {
            name: name.to_owned(),
            listen,
            certs: certs.into(),
            engine: EngineConfig::new(&state_dir, name),
            state_dir,
            allow_root: false,
            stop_jobs_on_exit: false,
            shutdown_grace: engine::DEFAULT_GRACE,
            connections: api::ConnectionLimits::default(),
        }
    }

    /// Values that make no sense, refused before anything else (each
    /// message names its flag): a crew that could not serve anyone, could
    /// not be stopped cleanly, or would forget a job as it ends.
    ///
    /// # Errors
    ///
    /// The first value that makes no sense, and why.
    pub fn check(&self) -> Result<(), StartError> {
        let bad = |why: String| Err(StartError::Config(why));
        let e = &self.engine;
        if e.output_limit < MIN_OUTPUT_LIMIT {
            return bad(format!(
                "--output-limit {}: at least {MIN_OUTPUT_LIMIT} bytes (4K), or a job's output could not be kept at all",
                e.output_limit
            ));
        }
        if e.retention.output_budget < e.output_limit {
            return bad(format!(
                "--output-budget {} is less than --output-limit {}: one ended job's output would not fit",
                e.retention.output_budget, e.output_limit
            ));
        }
        if e.retention.max_jobs == 0 {
            return bad(
                "--keep-jobs 0: a job would be forgotten as it ends, before anyone saw how; at least 1"
                    .into(),
            );
        }
        if e.retention.max_age.is_zero() {
            return bad(
                "--keep-for 0: a job would be forgotten as it ends, before anyone saw how; at least 1s"
                    .into(),
            );
        }
        if self.shutdown_grace.is_zero() {
            return bad("--shutdown-grace 0: jobs would get no time to end; at least 1ms".into());
        }
        self.connections.check().map_err(StartError::Config)
    }
}

/// The smallest output a job can keep: less could not even hold a line or
/// two of a failing start.
pub const MIN_OUTPUT_LIMIT: u64 = 4096;

/// Why the crew could not start: one line for an operator.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    /// A flag's value that makes no sense, with the flag and why.
    #[error("{0}")]
    Config(String),
    #[error("crew must run as root (it creates cgroups and namespaces)")]
    NotRoot,
    #[error("crew name {:?} is not valid: {}", .0.name, .0.reason)]
    BadName(tasker_common::InvalidName),
    /// A certificate, key or CA file that cannot be used.
    #[error(transparent)]
    File(#[from] tasker_common::pem::PemError),
    #[error("{0}")]
    Tls(#[from] api::tls::TlsError),
    #[error("{path}: {why}")]
    Certificate { path: PathBuf, why: String },
    #[error("cannot listen on {addr}: {why}")]
    Listen { addr: SocketAddr, why: String },
    #[error("{0}")]
    Engine(#[from] engine::EngineError),
}

/// What [`prepare`] checked and loaded, ready to serve.
#[derive(Debug)]
pub struct Prepared {
    pub listener: TcpListener,
    pub tls: Arc<api::tls::ServerTls>,
    pub engine: Engine,
}

/// Every check that can fail at start, in the order an operator would fix
/// them: flag values, root, name, certificates, the port, the state directory and cgroups.
pub async fn prepare(config: &CrewConfig) -> Result<Prepared, StartError> {
    config.check()?;
    if !nix::unistd::geteuid().is_root() {
        return Err(StartError::NotRoot);
    }
    // certgen's rule for names. The name is also a path component (the
    // cgroup parent `tasker/<name>`, which a starting crew empties): "." or
    // ".." there would be every crew's jobs, or the whole host's.
    tasker_common::validate_name(&config.name).map_err(StartError::BadName)?;
    let tls = load_tls(&config.certs, &config.name)?;
    let listener = TcpListener::bind(config.listen)
        .await
        .map_err(|e| StartError::Listen {
            addr: config.listen,
            why: e.to_string(),
        })?;
    let engine = Engine::new(config.engine.clone()).await?;
    Ok(Prepared {
        listener,
        tls,
        engine,
    })
}

/// The crew's TLS from certgen's layout, refusing a certificate that is not
/// a crew's.
pub fn load_tls(certs: &Path, name: &str) -> Result<Arc<api::tls::ServerTls>, StartError> {
    let ca = certs.join("ca.crt");
    let crt = certs.join("crews").join(format!("{name}.crt"));
    let key = certs.join("crews").join(format!("{name}.key"));
    let roots = tasker_common::pem::load_roots(&ca)?;
    let chain = tasker_common::pem::load_certs(&crt)?;
    let key = tasker_common::pem::load_key(&key)?;
    match api::identity::identity_of(chain[0].as_ref()) {
        Ok(id) if id.role == api::identity::Role::Crew && id.name == name => {}
        Ok(id) if id.role == api::identity::Role::Crew => {
            return Err(StartError::Certificate {
                path: crt,
                why: format!(
                    "it is crew {:?}'s certificate (CN={}), not {name:?}'s; make this crew's with \
                     `certgen crew {name}`",
                    id.name, id.name
                ),
            });
        }
        Ok(id) => {
            return Err(StartError::Certificate {
                path: crt,
                why: format!(
                    "it is a {} certificate (OU={}), not a crew's (OU=crew)",
                    id.role, id.role
                ),
            });
        }
        Err(why) => return Err(StartError::Certificate { path: crt, why }),
    }
    api::tls::check_own_certificate(&roots, &chain, name).map_err(|why| StartError::Certificate {
        path: crt.clone(),
        why,
    })?;
    let crl = certs.join("crl.pem");
    Ok(Arc::new(api::tls::ServerTls::new(roots, chain, key, crl)?))
}

/// Runs a prepared crew until `shutdown` is cancelled: then stops taking
/// calls, ends the streams, leaves every job running (or, with
/// `stop_jobs_on_exit`, stops them all with their grace period), and
/// returns. An error: the API server failed (the jobs were stopped all the
/// same).
pub async fn run(config: &CrewConfig, prepared: Prepared, shutdown: CancellationToken) -> Result<(), String> {
    let Prepared {
        listener,
        tls,
        engine,
    } = prepared;
    let mut opts = ServeOptions::new(&config.name, tls);
    opts.allow_root = config.allow_root;
    opts.connections = config.connections.clone();
    tracing::info!(
        crew = %config.name,
        listen = %listener.local_addr().map_or_else(|_| config.listen.to_string(), |a| a.to_string()),
        cgroups = %engine.handle().cgroup_description(),
        "serving"
    );
    // Streams end on the token; a client that will not let go of its
    // connection gets ten seconds.
    let drain_bound = async {
        shutdown.cancelled().await;
        tokio::time::sleep(Duration::from_secs(10)).await;
    };
    let mut failed = None;
    tokio::select! {
        served = api::serve(listener, engine.handle(), opts, shutdown.clone()) => {
            if let Err(e) = served {
                tracing::error!(error = %e, "the API server failed");
                failed = Some(format!("the API server failed: {e}"));
            }
        }
        () = drain_bound => tracing::warn!("connections did not drain in 10 s; closing them"),
    }

    if config.stop_jobs_on_exit {
        tracing::info!(grace = ?config.shutdown_grace, "stopping every job, as asked (--stop-jobs-on-exit)");
        engine.shutdown(config.shutdown_grace).await;
    } else {
        tracing::info!("leaving every job running, for the next crew to find");
        engine.leave().await;
    }
    tracing::info!("stopped");
    failed.map_or(Ok(()), Err)
}
