//! Every bad start exits 2 with exactly one line on stderr that names the
//! problem, and leaves nothing behind (no cgroup of its name).

use std::ffi::OsString;
use std::os::unix::fs::PermissionsExt as _;
use std::path::Path;

use certgen::Role;
use certgen::testing::TestPki;

use crate::support::*;

#[tokio::test]
async fn a_missing_key_file_is_named() {
    skip_unless_root!();
    let (pki, state, name) = (TestPki::new(), tempfile::tempdir().unwrap(), unique_name("nokey"));
    let files = pki.crew(&name);
    std::fs::remove_file(&files.key).unwrap();
    let got = run_to_exit(&[], &flags(&name, pki.dir(), state.path(), free_port())).await;
    assert_refused(&got, &name, &[&files.key.display().to_string(), "No such file"]);
}

#[tokio::test]
async fn a_key_others_can_read_is_refused_with_the_chmod_to_fix_it() {
    skip_unless_root!();
    let (pki, state, name) = (
        TestPki::new(),
        tempfile::tempdir().unwrap(),
        unique_name("keymode"),
    );
    let files = pki.crew(&name);
    for mode in [0o644, 0o640, 0o604] {
        std::fs::set_permissions(&files.key, std::fs::Permissions::from_mode(mode)).unwrap();
        let got = run_to_exit(&[], &flags(&name, pki.dir(), state.path(), free_port())).await;
        assert_refused(
            &got,
            &name,
            &[
                &files.key.display().to_string(),
                &format!("mode {mode:o}"),
                "chmod 600",
            ],
        );
    }
}

#[tokio::test]
async fn a_user_certificate_is_not_a_crew_certificate() {
    skip_unless_root!();
    let (pki, state, name) = (TestPki::new(), tempfile::tempdir().unwrap(), unique_name("ou"));
    // certgen's layout, with a user's certificate and key where the crew's go.
    let user = pki.user(&name, Role::User);
    let crews = pki.dir().join("crews");
    std::fs::create_dir_all(&crews).unwrap();
    std::fs::copy(&user.cert, crews.join(format!("{name}.crt"))).unwrap();
    std::fs::copy(&user.key, crews.join(format!("{name}.key"))).unwrap();
    let got = run_to_exit(&[], &flags(&name, pki.dir(), state.path(), free_port())).await;
    assert_refused(&got, &name, &[&format!("crews/{name}.crt"), "OU=user", "OU=crew"]);
}

#[tokio::test]
async fn another_crews_certificate_is_refused_with_the_command_to_make_this_ones() {
    skip_unless_root!();
    let (pki, state, name) = (TestPki::new(), tempfile::tempdir().unwrap(), unique_name("cn"));
    let other = format!("{name}-other");
    let files = pki.crew(&other);
    let crews = pki.dir().join("crews");
    std::fs::copy(&files.cert, crews.join(format!("{name}.crt"))).unwrap();
    std::fs::copy(&files.key, crews.join(format!("{name}.key"))).unwrap();
    let got = run_to_exit(&[], &flags(&name, pki.dir(), state.path(), free_port())).await;
    assert_refused(
        &got,
        &name,
        &[
            &format!("crews/{name}.crt"),
            &format!("CN={other}"),
            &format!("certgen crew {name}"),
        ],
    );
}

/// A certificate no client would accept: the crew says why at its start,
/// rather than serving handshakes that all fail.
#[tokio::test]
async fn a_certificate_clients_would_refuse_is_refused_at_the_start() {
    skip_unless_root!();
    let (pki, state, name) = (TestPki::new(), tempfile::tempdir().unwrap(), unique_name("chain"));
    let day = std::time::Duration::from_secs(86_400);
    let valid = certgen::Validity::leaf_default().unwrap();
    let past = certgen::Validity {
        not_before: valid.not_before - 30 * day,
        not_after: valid.not_before - day,
    };
    let future = certgen::Validity {
        not_before: valid.not_before + 2 * day,
        not_after: valid.not_before + 30 * day,
    };
    let foreign = TestPki::foreign_ca();
    let cases = [
        (
            foreign.issue_crew(&name, &[], &valid).unwrap(),
            "not signed by the CA in ca.crt",
        ),
        (pki.ca().issue_crew(&name, &[], &past).unwrap(), "it expired"),
        (pki.ca().issue_crew(&name, &[], &future).unwrap(), "not valid yet"),
    ];
    for (issued, says) in cases {
        certgen::write_crew(pki.dir(), &name, &issued, true).unwrap();
        let got = run_to_exit(&[], &flags(&name, pki.dir(), state.path(), free_port())).await;
        assert_refused(&got, &name, &[&format!("crews/{name}.crt"), says]);
    }
}

#[tokio::test]
async fn a_crl_that_cannot_be_used_is_named() {
    skip_unless_root!();
    let (pki, state, name) = (TestPki::new(), tempfile::tempdir().unwrap(), unique_name("crl"));
    let _ = pki.crew(&name);
    std::fs::write(pki.dir().join("crl.pem"), "not a CRL\n").unwrap();
    let got = run_to_exit(&[], &flags(&name, pki.dir(), state.path(), free_port())).await;
    assert_refused(&got, &name, &["crl.pem", "no CRL in it"]);
}

#[tokio::test]
async fn a_bad_flag_is_one_line_too() {
    let name = unique_name("flag");
    for (args, says) in [
        (vec!["--bogus"], "--bogus"),
        (vec!["--output-limit", "lots"], "lots"),
        (vec!["--listen", "nowhere"], "nowhere"),
    ] {
        let args: Vec<OsString> = args.into_iter().map(OsString::from).collect();
        let got = run_to_exit(&[], &args).await;
        assert_refused(&got, &name, &[says, "crew --help"]);
    }
}

#[tokio::test]
async fn a_port_in_use_is_named() {
    skip_unless_root!();
    let (pki, state, name) = (TestPki::new(), tempfile::tempdir().unwrap(), unique_name("port"));
    let _ = pki.crew(&name);
    // Held for the whole test: the port is certainly taken.
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = taken.local_addr().unwrap().port();
    let got = run_to_exit(&[], &flags(&name, pki.dir(), state.path(), port)).await;
    assert_refused(
        &got,
        &name,
        &[&format!("cannot listen on 127.0.0.1:{port}"), "in use"],
    );
    drop(taken);
}

#[tokio::test]
async fn a_state_dir_that_cannot_be_made_is_named() {
    skip_unless_root!();
    let (pki, name) = (TestPki::new(), unique_name("state"));
    let _ = pki.crew(&name);
    // Root can write almost anywhere; these it cannot: procfs refuses new
    // directories, and nothing goes under a regular file.
    let file = tempfile::NamedTempFile::new().unwrap();
    let under_file = file.path().join("state");
    let cases = [
        (Path::new("/proc/tasker-no-such-dir"), "/proc/tasker-no-such-dir"),
        (&under_file, &*under_file.to_string_lossy()),
        // Still one line when the path holds a newline: escaped.
        (
            Path::new("/proc/tasker\nno-such-dir"),
            "/proc/tasker\\nno-such-dir",
        ),
    ];
    for (dir, shown) in cases {
        let got = run_to_exit(&[], &flags(&name, pki.dir(), dir, free_port())).await;
        assert_refused(&got, &name, &[&format!("create state directory {shown}")]);
    }
}

#[tokio::test]
async fn a_bad_name_is_refused_before_anything_else() {
    skip_unless_root!();
    let (pki, state) = (TestPki::new(), tempfile::tempdir().unwrap());
    let long = "x".repeat(65);
    // "." and ".." would make the cgroup parent `tasker/.` (every crew's
    // jobs) or `tasker/..` (the whole host), which a starting crew empties.
    for bad in [
        "",
        "bad/name",
        "a b",
        "tab\tname",
        &long,
        ".",
        "..",
        ".hidden",
        "-dash",
    ] {
        let mut args = flags("x", pki.dir(), state.path(), free_port());
        // `--name=-dash`, so clap takes it as the value.
        args.splice(0..2, [OsString::from(format!("--name={bad}"))]);
        let got = run_to_exit(&[], &args).await;
        assert_eq!(got.status.code(), Some(2), "{bad:?}: {got:?}");
        assert_eq!(got.stderr.len(), 1, "{bad:?}: {:#?}", got.stderr);
        let line = &got.stderr[0];
        assert!(
            line.starts_with("crew: crew name ") && line.contains("is not valid"),
            "{bad:?}: {line}"
        );
    }
}

#[tokio::test]
async fn without_root_it_says_so_in_one_line() {
    let (pki, state, name) = (
        TestPki::new(),
        tempfile::tempdir().unwrap(),
        unique_name("noroot"),
    );
    let _ = pki.crew(&name);
    let args = flags(&name, pki.dir(), state.path(), free_port());
    let got = if nix::unistd::geteuid().is_root() {
        if which("setpriv").is_none() {
            eprintln!(
                "SKIPPED {}: setpriv (util-linux) is not installed, and this test runs as root",
                module_path!()
            );
            return;
        }
        // nobody: the binary and the shim are world-executable in target/.
        run_to_exit(
            &["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups"],
            &args,
        )
        .await
    } else {
        run_to_exit(&[], &args).await
    };
    assert_eq!(got.status.code(), Some(2), "{got:?}");
    assert_eq!(got.stderr.len(), 1, "{:#?}", got.stderr);
    assert!(got.stderr[0].contains("must run as root"), "{}", got.stderr[0]);
}

#[test]
fn help_mentions_every_flag_of_the_spec() {
    let out = std::process::Command::new(CREW).arg("--help").output().unwrap();
    assert_eq!(out.status.code(), Some(0), "{out:?}");
    let help = String::from_utf8(out.stdout).unwrap();
    for flag in [
        "--name",
        "--listen",
        "--certs",
        "--state-dir",
        "--allow-root",
        "--shutdown-grace",
        "--log-format",
    ] {
        assert!(help.contains(flag), "--help does not mention {flag}:\n{help}");
    }
}

fn which(program: &str) -> Option<std::path::PathBuf> {
    std::env::var_os("PATH")?
        .to_str()?
        .split(':')
        .map(|d| Path::new(d).join(program))
        .find(|p| p.is_file())
}

#[test]
fn output_limit_takes_sizes_and_names_a_bad_one() {
    let run = |limit: &str| {
        std::process::Command::new(CREW)
            .args(["--output-limit", limit, "--certs", "/nonexistent/tasker-certs"])
            .output()
            .unwrap()
    };
    let bad = run("64Q");
    assert_eq!(bad.status.code(), Some(2), "{bad:?}");
    let err = String::from_utf8_lossy(&bad.stderr);
    assert!(err.contains("\"64Q\" is not a size"), "{err}");
    // A good size gets past the flags: what stops this start is later.
    for good in ["2G", "512K", "1048576"] {
        let out = run(good);
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(!err.contains("is not a size"), "{good}: {err}");
        assert_eq!(out.status.code(), Some(2), "{good}: {out:?}");
    }
}

#[tokio::test]
async fn a_bad_configuration_is_named_by_file_key_or_flag() {
    skip_unless_root!();
    let (pki, state, name) = (TestPki::new(), tempfile::tempdir().unwrap(), unique_name("conf"));
    let _ = pki.crew(&name);
    let dir = tempfile::tempdir().unwrap();
    let conf = dir.path().join("crew.toml");
    let fifo = dir.path().join("fifo.toml");
    nix::unistd::mkfifo(&fifo, nix::sys::stat::Mode::from_bits_truncate(0o600)).unwrap();
    let cases: [(&str, &[&str], &Path, &[&str]); 6] = [
        (
            "[quota.user]\nmemory = \"8X\"\n",
            &[],
            &conf,
            &["crew.toml", "quota.user.memory", "\"8X\" is not a size"],
        ),
        (
            "[quota.usr]\npids = 5\n",
            &[],
            &conf,
            &["crew.toml", "unknown field"],
        ),
        (
            "",
            &["--user-memory", "lots"],
            &conf,
            &["--user-memory", "\"lots\" is not a size"],
        ),
        ("", &["--user-jobs", "0"], &conf, &["a cap of 0 running jobs"]),
        (
            "[defaults]\nmemory = \"64M\"\nmemory_high = \"1G\"\n",
            &[],
            &conf,
            &["the default limits", "not under the hard limit"],
        ),
        ("", &[], &fifo, &["fifo.toml", "not a regular file"]),
    ];
    for (text, extra, path, says) in cases {
        std::fs::write(&conf, text).unwrap();
        let mut args = flags(&name, pki.dir(), state.path(), free_port());
        args.extend(["--config".into(), arg(path)]);
        args.extend(extra.iter().map(OsString::from));
        let t0 = std::time::Instant::now();
        let got = run_to_exit(&[], &args).await;
        assert!(
            t0.elapsed() < std::time::Duration::from_secs(5),
            "{path:?} took {:?}",
            t0.elapsed()
        );
        assert_refused(&got, &name, says);
    }
}
