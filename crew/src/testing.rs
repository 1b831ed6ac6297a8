//! Test support shared by the crew's tests and foreman's: a real crew served
//! in-process on 127.0.0.1, with a PKI made at test time, jobs in real
//! cgroups under a parent of its own. Compiled only with the `testing`
//! feature; the daemon never carries it.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use certgen::testing::TestPki;
use tokio_util::sync::CancellationToken;

use crate::CrewConfig;

/// Why a crew cannot be served here, if it cannot: tests print
/// `SKIPPED <test>: <why>` and return.
pub fn skip_reason() -> Option<String> {
    if !nix::unistd::geteuid().is_root() {
        return Some("needs root (the crew runs jobs in cgroups and namespaces)".into());
    }
    let mounts = std::fs::read_to_string("/proc/self/mountinfo").unwrap_or_default();
    if !mounts.lines().any(|l| l.contains(" - cgroup2 ")) {
        return Some("no cgroup2 hierarchy is mounted".into());
    }
    None
}

/// The `tasker-shim` binary of this build: `target/<profile>/tasker-shim`,
/// beside the running test's own profile directory (where `cargo build
/// --workspace` and `cargo nextest run --workspace` put it, and where the
/// `crew` binary looks for it). When it is missing, or older than the shim
/// crate's sources (only one package's tests were built), it is built here
/// first, once per test process.
pub fn shim_binary() -> PathBuf {
    static SHIM: OnceLock<PathBuf> = OnceLock::new();
    SHIM.get_or_init(|| {
        let exe = std::env::current_exe().expect("the test's own path");
        let mut profile_dir = exe.parent().expect("the test's directory");
        if profile_dir.ends_with("deps") {
            profile_dir = profile_dir.parent().expect("the profile directory");
        }
        let shim = profile_dir.join("tasker-shim");
        let sources = Path::new(env!("CARGO_MANIFEST_DIR")).join("../shim");
        if is_fresh(&shim, &sources) {
            return shim;
        }
        let target_dir = profile_dir.parent().expect("the target directory");
        let profile = profile_dir
            .file_name()
            .and_then(|p| p.to_str())
            .unwrap_or("debug");
        let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
        let mut build = std::process::Command::new(cargo);
        build
            .args(["build", "--quiet", "-p", "tasker-shim", "--bin", "tasker-shim"])
            .arg("--target-dir")
            .arg(target_dir)
            .current_dir(&sources);
        match profile {
            "debug" => {}
            "release" => {
                build.arg("--release");
            }
            other => {
                build.args(["--profile", other]);
            }
        }
        let status = build.status().expect("cargo runs");
        assert!(status.success(), "building tasker-shim failed");
        assert!(shim.exists(), "{} was not built", shim.display());
        shim
    })
    .clone()
}

/// Whether `binary` exists and is newer than every file under `sources`
/// (where there are no sources, as in a VM given only the binaries, any
/// existing binary is).
fn is_fresh(binary: &Path, sources: &Path) -> bool {
    fn newest(dir: &Path) -> Option<std::time::SystemTime> {
        let mut latest = None;
        for entry in std::fs::read_dir(dir).ok()?.flatten() {
            let Ok(meta) = entry.metadata() else { continue };
            let t = if meta.is_dir() {
                newest(&entry.path())
            } else {
                meta.modified().ok()
            };
            latest = latest.max(t);
        }
        latest
    }
    let Ok(built) = std::fs::metadata(binary).and_then(|m| m.modified()) else {
        return false;
    };
    newest(sources).is_none_or(|src| src <= built)
}

/// Test users: Linux users of these names are created, if missing, so jobs
/// can run as them.
pub const ALICE: &str = "tasker-t-alice";
pub const BOB: &str = "tasker-t-bob";
pub const ADA: &str = "tasker-t-ada";
pub const VIC: &str = "tasker-t-vic";

/// Makes sure a Linux user exists (useradd, retried: parallel tests may
/// hold the passwd lock). Returns its uid.
pub fn ensure_user(name: &str) -> u32 {
    for _ in 0..50 {
        if let Ok(Some(u)) = nix::unistd::User::from_name(name) {
            return u.uid.as_raw();
        }
        let _ = std::process::Command::new("useradd")
            .args(["--no-create-home", "--shell", "/usr/sbin/nologin", name])
            .stderr(std::process::Stdio::null())
            .status();
        std::thread::sleep(Duration::from_millis(100));
    }
    panic!("could not create the test user {name}");
}

/// A crew served in-process until stopped or dropped.
#[derive(Debug)]
pub struct LocalCrew {
    pub pki: Arc<TestPki>,
    pub addr: SocketAddr,
    pub name: String,
    pub shutdown: CancellationToken,
    pub state: tempfile::TempDir,
    config: CrewConfig,
    server: Option<tokio::task::JoinHandle<Result<(), String>>>,
}

impl LocalCrew {
    /// Issues `crews/<name>` in `pki`, creates the test users, and serves a
    /// crew of that name on 127.0.0.1 (a free port). `shim` is the
    /// `tasker-shim` binary; `configure` adjusts the config last.
    pub async fn start(
        pki: Arc<TestPki>,
        name: &str,
        shim: PathBuf,
        configure: impl FnOnce(&mut CrewConfig),
    ) -> Self {
        static NEXT: AtomicU32 = AtomicU32::new(0);
        for u in [ALICE, BOB, ADA, VIC] {
            ensure_user(u);
        }
        let _ = pki.crew(name);
        let state = tempfile::tempdir().expect("a state directory");
        let mut config = CrewConfig::new(name, "127.0.0.1:0".parse().unwrap(), pki.dir(), state.path());
        config.engine.shim_path = shim;
        let n = NEXT.fetch_add(1, Ordering::SeqCst);
        config.engine.cgroup_parent = format!("tasker/test-{name}-{}-{n}", std::process::id()).into();
        config.shutdown_grace = Duration::from_secs(1);
        // Tests leave nothing running behind them (the restart tests opt
        // out, to leave jobs for the next crew).
        config.stop_jobs_on_exit = true;
        configure(&mut config);
        Self::serve(pki, name, state, config).await
    }

    async fn serve(pki: Arc<TestPki>, name: &str, state: tempfile::TempDir, mut config: CrewConfig) -> Self {
        let prepared = crate::prepare(&config).await.expect("the crew starts");
        let addr = prepared.listener.local_addr().expect("a bound address");
        config.listen = addr;
        let shutdown = CancellationToken::new();
        let token = shutdown.clone();
        let running = config.clone();
        let server = tokio::spawn(async move { crate::run(&running, prepared, token).await });
        Self {
            pki,
            addr,
            name: name.to_owned(),
            shutdown,
            state,
            config,
            server: Some(server),
        }
    }

    /// A crew restart: this one exits, leaving its jobs running (it must
    /// have been started with `stop_jobs_on_exit` off), and a new one
    /// serves on the same address, state directory and cgroup parent, and
    /// stops its jobs when it exits.
    pub async fn restart(mut self) -> Self {
        assert!(
            !self.config.stop_jobs_on_exit,
            "a crew that stops its jobs cannot leave them to a next"
        );
        self.exit().await;
        let mut config = self.config.clone();
        config.stop_jobs_on_exit = true;
        let state = std::mem::replace(&mut self.state, tempfile::tempdir().expect("a directory"));
        Self::serve(Arc::clone(&self.pki), &self.name.clone(), state, config).await
    }

    /// Shuts the crew down (stopping its jobs) and waits for it.
    pub async fn stop(mut self) {
        self.exit().await;
    }

    /// Has the crew exit (as its configuration says: stopping its jobs or
    /// leaving them), and waits for it.
    async fn exit(&mut self) {
        self.shutdown.cancel();
        if let Some(s) = self.server.take() {
            tokio::time::timeout(Duration::from_secs(30), s)
                .await
                .expect("the crew exits within 30 s")
                .expect("the crew task ends cleanly")
                .expect("the crew served without error");
        }
    }
}

impl Drop for LocalCrew {
    fn drop(&mut self) {
        self.shutdown.cancel();
    }
}

/// `TASKER_TEST_SCALE`: 1 on real hardware; the emulated VM of
/// `ci/test-v2` sets 0.1, as it runs 20-50x slower.
fn test_scale() -> f64 {
    std::env::var("TASKER_TEST_SCALE")
        .ok()
        .and_then(|s| s.parse().ok())
        .filter(|s: &f64| *s > 0.0 && *s <= 1.0)
        .unwrap_or(1.0)
}

/// Sizes and counts for heavy tests, scaled by `TASKER_TEST_SCALE` (the
/// emulated VM of `ci/test-v2` runs them at a tenth).
pub fn scaled(n: u64) -> u64 {
    ((n as f64 * test_scale()) as u64).max(1)
}

/// A bound on time that holds on real hardware, stretched where the tests
/// run scaled down (ten times as long in the emulated VM).
pub fn emulated(d: Duration) -> Duration {
    d.div_f64(test_scale())
}

/// Polls `cond` every few milliseconds until it holds or `timeout`
/// (stretched in the emulated VM, see [`emulated`]) passes; panics with
/// `what` on timeout. Tests wait for conditions, never for fixed times.
pub async fn wait_for(what: &str, timeout: Duration, mut cond: impl FnMut() -> bool) {
    let timeout = emulated(timeout);
    let deadline = std::time::Instant::now() + timeout;
    let mut pause = Duration::from_millis(1);
    while !cond() {
        assert!(
            std::time::Instant::now() < deadline,
            "timed out after {timeout:?} waiting for {what}"
        );
        tokio::time::sleep(pause).await;
        pause = (pause * 2).min(Duration::from_millis(50));
    }
}

/// Bounds a future: a hang becomes a test failure, not a stuck CI run.
pub async fn bounded<F: std::future::Future>(what: &str, timeout: Duration, f: F) -> F::Output {
    match tokio::time::timeout(timeout, f).await {
        Ok(v) => v,
        Err(_) => panic!("timed out after {timeout:?}: {what}"),
    }
}

/// A raw gRPC client of a crew over mutual TLS 1.3, built as foreman
/// builds its own: the crew's CA as the only root, ALPN `h2`,
/// `TCP_NODELAY`.
pub type Client = tasker_proto::v1::crew_client::CrewClient<tonic::transport::Channel>;

/// A client TLS config trusting the CA in `ca` only, presenting
/// `identity` (or nothing), offering `versions`.
///
/// # Panics
///
/// If the CA file cannot be read or the identity is unusable.
pub fn client_tls(
    ca: &std::path::Path,
    identity: Option<(
        Vec<rustls::pki_types::CertificateDer<'static>>,
        rustls::pki_types::PrivateKeyDer<'static>,
    )>,
    versions: &[&'static rustls::SupportedProtocolVersion],
) -> Arc<rustls::ClientConfig> {
    let roots = tasker_common::pem::load_roots(ca).expect("a usable CA file");
    let builder =
        rustls::ClientConfig::builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()))
            .with_protocol_versions(versions)
            .expect("TLS versions")
            .with_root_certificates(roots);
    let mut config = match identity {
        Some((chain, key)) => builder
            .with_client_auth_cert(chain, key)
            .expect("a usable client certificate"),
        None => builder.with_no_client_auth(),
    };
    config.alpn_protocols = vec![b"h2".to_vec()];
    Arc::new(config)
}

/// A TLS 1.3 client config for the user certificate `files` of `pki`.
///
/// # Panics
///
/// If the files cannot be read.
pub fn user_tls(pki: &TestPki, files: &certgen::CertFiles) -> Arc<rustls::ClientConfig> {
    let chain = tasker_common::pem::load_certs(&files.cert).expect("a usable certificate file");
    let key = tasker_common::pem::load_key(&files.key).expect("a usable key file");
    client_tls(
        &pki.ca_cert_path(),
        Some((chain, key)),
        &[&rustls::version::TLS13],
    )
}

/// Connects and makes one call (Info), so that a refused handshake shows
/// up here, as an error, rather than at the first real call.
///
/// # Errors
///
/// The connection or the handshake failed, or Info was refused.
pub async fn connect(addr: SocketAddr, tls: Arc<rustls::ClientConfig>) -> Result<Client, String> {
    connect_from(None, addr, tls).await
}

/// As [`connect`], from the local address `from` (another loopback
/// address, say: the crew counts connections per source address).
///
/// # Errors
///
/// As [`connect`].
pub async fn connect_from(
    from: Option<std::net::IpAddr>,
    addr: SocketAddr,
    tls: Arc<rustls::ClientConfig>,
) -> Result<Client, String> {
    use tonic::transport::{Endpoint, Uri};
    let connector = tower::service_fn(move |_: Uri| {
        let tls = Arc::clone(&tls);
        async move {
            let tcp = match from {
                Some(ip) => tcp_from(ip, addr).await?,
                None => tokio::net::TcpStream::connect(addr).await?,
            };
            // Without it, Nagle and delayed ACKs stall each call ~40 ms.
            tcp.set_nodelay(true)?;
            let name = rustls::pki_types::ServerName::try_from("localhost").expect("a server name");
            let stream = tokio_rustls::TlsConnector::from(tls).connect(name, tcp).await?;
            Ok::<_, std::io::Error>(hyper_util::rt::TokioIo::new(stream))
        }
    });
    let channel = Endpoint::from_static("http://localhost")
        .connect_timeout(Duration::from_secs(5))
        .connect_with_connector(connector)
        .await
        .map_err(|e| format!("{e:?}"))?;
    let mut client = Client::new(channel).max_decoding_message_size(8 << 20);
    client
        .info(tasker_proto::v1::InfoRequest {})
        .await
        .map_err(|e| format!("{}: {}", e.code(), e.message()))?;
    Ok(client)
}

/// A TCP connection to `addr` from the local address `from`.
///
/// # Errors
///
/// The socket could not be bound or connected.
pub async fn tcp_from(from: std::net::IpAddr, addr: SocketAddr) -> std::io::Result<tokio::net::TcpStream> {
    let socket = match from {
        std::net::IpAddr::V4(_) => tokio::net::TcpSocket::new_v4()?,
        std::net::IpAddr::V6(_) => tokio::net::TcpSocket::new_v6()?,
    };
    socket.bind(SocketAddr::new(from, 0))?;
    socket.connect(addr).await
}

/// A job spec running `argv`, everything else default.
pub fn spec(argv: &[&str]) -> tasker_proto::v1::JobSpec {
    tasker_proto::v1::JobSpec {
        argv: argv.iter().map(|s| (*s).to_owned()).collect(),
        ..Default::default()
    }
}
