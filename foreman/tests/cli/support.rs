//! Real crews served in-process (one PKI, certificates made at test time)
//! and the real `foreman` binary run against them, as a user would.

#![allow(dead_code)]

use std::path::PathBuf;
use std::process::Output;
use std::sync::Arc;
use std::time::Duration;

use certgen::Role;
use certgen::testing::TestPki;
use crew::testing::LocalCrew;

pub use crew::testing::{ADA, ALICE, BOB, VIC, skip_reason};

/// Returns from the test, saying why, when crews cannot run here.
macro_rules! fleet_or_skip {
    ($($crew:expr),+) => {
        match $crate::support::skip_reason() {
            Some(why) => {
                eprintln!("SKIPPED {}: {why}", module_path!());
                return;
            }
            None => $crate::support::Fleet::start(&[$($crew),+]).await,
        }
    };
}
pub(crate) use fleet_or_skip;

/// `tasker-shim`, built if need be (see `crew::testing::shim_binary`).
pub fn shim() -> PathBuf {
    crew::testing::shim_binary()
}

/// Several crews on loopback sharing one CA, and a foreman config naming
/// them all.
pub struct Fleet {
    pub pki: Arc<TestPki>,
    pub crews: Vec<LocalCrew>,
    pub home: tempfile::TempDir,
}

impl Fleet {
    pub async fn start(names: &[&str]) -> Self {
        Self::start_with(names, |_| {}).await
    }

    /// Crews whose configuration `configure` adjusts.
    pub async fn start_with(names: &[&str], configure: impl Fn(&mut crew::CrewConfig)) -> Self {
        let pki = Arc::new(TestPki::new());
        let mut crews = Vec::new();
        for name in names {
            crews.push(LocalCrew::start(Arc::clone(&pki), name, shim(), &configure).await);
        }
        for (user, role) in [
            (ALICE, Role::User),
            (BOB, Role::User),
            (ADA, Role::Admin),
            (VIC, Role::Viewer),
        ] {
            let _ = pki.user(user, role);
        }
        let home = tempfile::tempdir().unwrap();
        let mut toml = format!("certs = {:?}\n", pki.dir().display().to_string());
        for c in &crews {
            toml.push_str(&format!(
                "\n[[crew]]\nname = {:?}\naddr = \"{}\"\n",
                c.name, c.addr
            ));
        }
        std::fs::write(home.path().join("foreman.toml"), toml).unwrap();
        Self { pki, crews, home }
    }

    pub fn config(&self) -> PathBuf {
        self.home.path().join("foreman.toml")
    }

    /// `foreman --config <ours> --user <user> ARGS...`, ready to adjust.
    pub fn foreman(&self, user: &str, args: &[&str]) -> tokio::process::Command {
        let mut cmd = tokio::process::Command::new(env!("CARGO_BIN_EXE_foreman"));
        cmd.arg("--config")
            .arg(self.config())
            .args(["--user", user])
            .args(args)
            // Batch records (`--crew @failed:ID`) stay in the test's home.
            .env("XDG_STATE_HOME", self.home.path())
            .stdin(std::process::Stdio::null())
            .kill_on_drop(true);
        cmd
    }

    /// Runs foreman to its end (at most 60 s) and returns what it did.
    pub async fn run(&self, user: &str, args: &[&str]) -> Ran {
        let out = tokio::time::timeout(Duration::from_secs(60), self.foreman(user, args).output())
            .await
            .unwrap_or_else(|_| panic!("foreman {args:?} hung"))
            .expect("foreman runs");
        Ran::from(out)
    }

    pub async fn stop(self) {
        for c in self.crews {
            c.stop().await;
        }
    }
}

/// One finished foreman: exit code and text.
#[derive(Debug)]
pub struct Ran {
    pub code: i32,
    pub stdout: Vec<u8>,
    pub stderr: String,
}

impl From<Output> for Ran {
    fn from(o: Output) -> Self {
        Self {
            code: o.status.code().unwrap_or(-1),
            stdout: o.stdout,
            stderr: String::from_utf8_lossy(&o.stderr).into_owned(),
        }
    }
}

impl Ran {
    pub fn out(&self) -> String {
        String::from_utf8_lossy(&self.stdout).into_owned()
    }

    /// Panics with everything foreman said unless it exited with `code`.
    #[track_caller]
    pub fn expect(self, code: i32) -> Self {
        assert_eq!(
            self.code,
            code,
            "foreman exited {} (wanted {code})\nstdout: {}\nstderr: {}",
            self.code,
            self.out(),
            self.stderr
        );
        self
    }

    pub fn json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.stdout).unwrap_or_else(|e| panic!("not JSON ({e}): {}", self.out()))
    }
}
