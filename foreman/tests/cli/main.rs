//! foreman's CLI end to end: the real binary, real crews on loopback over
//! mutual TLS, real jobs. What a script sees: stdout, stderr, exit codes.

mod batch;
mod completion;
mod dashboard;
mod discovery;
mod support;
mod times;
mod tty;

use std::process::Stdio;
use std::time::Duration;

use support::{ADA, ALICE, BOB, VIC, fleet_or_skip};
use tokio::io::{AsyncBufReadExt, AsyncWriteExt};

#[tokio::test]
async fn crews_says_who_we_are_on_each() {
    let fleet = fleet_or_skip!("alpha", "beta");
    let ran = fleet.run(ALICE, &["crews", "--json"]).await.expect(0);
    let crews = ran.json();
    let crews = crews.as_array().expect("a list");
    assert_eq!(crews.len(), 2);
    for (c, name) in crews.iter().zip(["alpha", "beta"]) {
        assert_eq!(c["name"], name);
        assert_eq!(c["reachable"], true);
        assert_eq!(c["identity"], ALICE);
        assert_eq!(c["role"], "user");
        assert!(
            c["cert_expires"].as_str().is_some_and(|t| t.starts_with("20")),
            "{c}"
        );
    }
    let table = fleet.run(ADA, &["crews"]).await.expect(0).out();
    assert!(table.starts_with("CREW"), "{table}");
    assert!(table.contains(&format!("{ADA} (admin)")), "{table}");

    // Each user sees their own quota, and their jobs' use of it.
    let quota = your_quota(&fleet, ALICE).await;
    assert_eq!(quota["running_jobs"], 0, "{quota}");
    assert_eq!(quota["jobs"], 256, "{quota}");
    assert!(quota["pids"].as_u64().is_some_and(|p| p >= 512), "{quota}");
    fleet
        .run(ALICE, &["start", "--crew", "alpha", "--", "sleep", "1000"])
        .await
        .expect(0);
    let quota = your_quota(&fleet, ALICE).await;
    assert_eq!(quota["running_jobs"], 1, "{quota}");
    assert!(quota["tasks"].as_u64().is_some_and(|n| n >= 1), "{quota}");
    assert_eq!(your_quota(&fleet, BOB).await["running_jobs"], 0);
    let table = fleet.run(ALICE, &["crews"]).await.expect(0).out();
    assert!(
        table.contains("YOUR QUOTA") && table.contains("jobs 1/256"),
        "{table}"
    );
    fleet.stop().await;
}

/// What `foreman crews --json` says of `who`'s quota on the first crew.
async fn your_quota(fleet: &support::Fleet, who: &str) -> serde_json::Value {
    let all = fleet.run(who, &["crews", "--json"]).await.expect(0).json();
    all[0]["quota"].clone()
}

#[tokio::test]
async fn an_unreachable_crew_is_named_and_exits_2() {
    let fleet = fleet_or_skip!("alpha");
    let alpha = format!("alpha={}", fleet.crews[0].addr);
    let mut cmd = fleet.foreman(ALICE, &["--crew", &alpha, "--crew", "down=127.0.0.1:1", "crews"]);
    let ran = support::Ran::from(cmd.output().await.unwrap()).expect(2);
    let out = ran.out();
    let down = out
        .lines()
        .find(|l| l.starts_with("down"))
        .expect("a row for the down crew");
    assert!(down.contains("no:"), "{out}");
    let up = out
        .lines()
        .find(|l| l.starts_with("alpha"))
        .expect("a row for alpha");
    assert!(up.contains("yes"), "{out}");

    // A command that needs the dead crew says which, and why.
    let mut cmd = fleet.foreman(ALICE, &["--crew", "down=127.0.0.1:1", "run", "--", "true"]);
    let ran = support::Ran::from(cmd.output().await.unwrap()).expect(2);
    assert!(ran.stderr.starts_with("foreman: down"), "{}", ran.stderr);
    assert_eq!(ran.stderr.lines().count(), 1, "one line: {}", ran.stderr);
    fleet.stop().await;
}

#[tokio::test]
async fn run_streams_the_output_and_exits_with_the_jobs_code() {
    let fleet = fleet_or_skip!("alpha");
    let ran = fleet
        .run(
            ALICE,
            &["run", "--", "sh", "-c", "echo out; echo err >&2; exit 3"],
        )
        .await
        .expect(3);
    assert_eq!(ran.out(), "out\n");
    assert!(
        ran.stderr.starts_with("err\n"),
        "the job's stderr on ours: {}",
        ran.stderr
    );
    assert!(
        ran.stderr.contains("exit") && ran.stderr.contains('3'),
        "{}",
        ran.stderr
    );

    let ran = fleet.run(ALICE, &["run", "--", "true"]).await.expect(0);
    assert!(ran.stdout.is_empty() && ran.stderr.is_empty(), "{ran:?}");

    // Killed by a signal: 128 + the signal, as a shell reports it.
    fleet
        .run(ALICE, &["run", "--", "sh", "-c", "kill -KILL $$"])
        .await
        .expect(128 + 9);
    fleet.stop().await;
}

#[tokio::test]
async fn run_of_a_missing_program_exits_127_and_says_why() {
    let fleet = fleet_or_skip!("alpha");
    let ran = fleet
        .run(ALICE, &["run", "--", "/no/such/program"])
        .await
        .expect(127);
    assert!(ran.stderr.contains("did not start"), "{}", ran.stderr);
    assert!(ran.stderr.contains("/no/such/program"), "{}", ran.stderr);
    fleet.stop().await;
}

#[tokio::test]
async fn run_passes_piped_input_to_the_job_then_eof() {
    let fleet = fleet_or_skip!("alpha");
    let mut child = fleet
        .foreman(ALICE, &["run", "--", "sh", "-c", "cat; echo done"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut stdin = child.stdin.take().unwrap();
    stdin.write_all(b"line one\nline two\n").await.unwrap();
    drop(stdin);
    let out = tokio::time::timeout(Duration::from_secs(30), child.wait_with_output())
        .await
        .expect("run ends once its input does")
        .unwrap();
    assert!(out.status.success(), "{out:?}");
    assert_eq!(String::from_utf8_lossy(&out.stdout), "line one\nline two\ndone\n");
    fleet.stop().await;
}

#[tokio::test]
async fn a_job_through_its_life_start_ls_status_logs_stop_archive() {
    let fleet = fleet_or_skip!("alpha");
    let started = fleet
        .run(
            ALICE,
            &[
                "start",
                "--name",
                "sleeper",
                "--memory",
                "64M",
                "--cpu",
                "0.5",
                "--pids",
                "20",
                "--",
                "sh",
                "-c",
                "echo ready; exec sleep 1000",
            ],
        )
        .await
        .expect(0)
        .out();
    let (reference, id) = started.trim().split_once(' ').expect("REF ID");
    assert_eq!(reference, "alpha/job-1");
    assert_eq!(id.len(), 32, "{started}");

    let ls = fleet.run(ALICE, &["ls"]).await.expect(0).out();
    let row = ls
        .lines()
        .find(|l| l.contains("job-1"))
        .expect("ls lists the job");
    assert!(row.contains("running") && row.contains("sleeper"), "{ls}");

    // Every way of naming it finds it.
    for r in ["job-1", "alpha/job-1", "sleeper", &id[..8], id] {
        let status = fleet.run(ALICE, &["status", r, "--json"]).await.expect(0).json();
        assert_eq!(status["id"], id, "{r}");
    }
    let status = fleet.run(ALICE, &["status", "sleeper", "--json"]).await.json();
    assert_eq!(status["state"], "running");
    assert_eq!(status["user"], ALICE);
    assert_eq!(status["limits"]["memory_bytes"], 64 << 20);
    assert_eq!(status["limits"]["cpu"], 0.5);
    assert_eq!(status["limits"]["pids"], 20);
    assert!(status["pid"].as_u64().is_some_and(|p| p > 1), "{status}");
    // What it uses now, in status and ls.
    assert!(status["memory_bytes"].as_u64().is_some_and(|m| m > 0), "{status}");
    assert!(status["cpu_usec"].as_u64().is_some(), "{status}");
    let human = fleet.run(ALICE, &["status", "sleeper"]).await.expect(0).out();
    assert!(human.contains("memory now"), "{human}");
    let ls = fleet.run(ALICE, &["ls"]).await.expect(0).out();
    let header: Vec<&str> = ls.lines().next().unwrap_or_default().split_whitespace().collect();
    assert_eq!(
        header,
        ["JOB", "NAME", "STATE", "OWNER", "AGE", "CPU", "MEM", "COMMAND"],
        "{ls}"
    );

    wait_for_output(&fleet, "job-1", "ready\n").await;

    let stopped = fleet
        .run(ALICE, &["stop", "job-1", "--grace", "2s"])
        .await
        .expect(0)
        .out();
    assert!(stopped.starts_with("alpha/job-1 ended: stopped by"), "{stopped}");
    let status = fleet.run(ALICE, &["status", "job-1", "--json"]).await.json();
    assert_eq!(status["state"], "stopped");
    assert_eq!(status["signal"], 15, "sleep dies of the SIGTERM: {status}");

    fleet.run(ALICE, &["archive", "job-1"]).await.expect(0);
    let ls = fleet.run(ALICE, &["ls"]).await.expect(0).out();
    assert!(
        !ls.contains("job-1"),
        "archived jobs leave the default list: {ls}"
    );
    let all = fleet
        .run(ALICE, &["ls", "--all", "--json"])
        .await
        .expect(0)
        .json();
    let all = all.as_array().unwrap();
    assert!(
        all.iter().any(|j| j["id"] == id && j["archived"] == true),
        "{all:?}"
    );

    // Its trail: who started, stopped and archived it, and how.
    let audit = fleet.run(ALICE, &["audit", "sleeper"]).await.expect(0).out();
    let lines: Vec<&str> = audit.lines().collect();
    assert_eq!(lines.len(), 3, "{audit}");
    assert!(
        lines[0].contains(&format!(
            "{ALICE} (user)  start  allowed  sh -c 'echo ready; exec sleep 1000'"
        )),
        "{audit}"
    );
    assert!(lines[1].contains("stop  allowed  grace 2s"), "{audit}");
    assert!(lines[2].contains("archive  allowed"), "{audit}");
    let json = fleet.run(ALICE, &["audit", id, "--json"]).await.expect(0).out();
    let first: serde_json::Value = serde_json::from_str(json.lines().next().unwrap()).unwrap();
    assert_eq!(first["call"], "start");
    assert_eq!(first["detail"]["argv"][0], "sh");
    assert_eq!(first["detail"]["limits"]["pids"], 20);
    fleet.stop().await;
}

/// Polls `logs` until the job has written `want`.
async fn wait_for_output(fleet: &support::Fleet, job: &str, want: &str) {
    for _ in 0..100 {
        let out = fleet.run(ALICE, &["logs", job]).await.expect(0).out();
        if out == want {
            return;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("{job} never wrote {want:?}");
}

#[tokio::test]
async fn piped_logs_are_the_exact_bytes_the_job_wrote() {
    let fleet = fleet_or_skip!("alpha");
    // Escapes, a bell, invalid UTF-8, a NUL: a pipe gets them as they are,
    // as `cat` would give them; filtering is for terminals.
    let script = r"printf 'a\033]0;title\007b\033[2J\377\000z\n'";
    fleet
        .run(ALICE, &["run", "--", "sh", "-c", script])
        .await
        .expect(0);
    let want = b"a\x1b]0;title\x07b\x1b[2J\xff\x00z\n".to_vec();
    assert_eq!(fleet.run(ALICE, &["logs", "job-1"]).await.expect(0).stdout, want);
    assert_eq!(
        fleet
            .run(ALICE, &["logs", "--raw", "job-1"])
            .await
            .expect(0)
            .stdout,
        want
    );
    fleet.stop().await;
}

#[tokio::test]
async fn logs_tail_and_follow() {
    let fleet = fleet_or_skip!("alpha");
    fleet
        .run(ALICE, &["run", "--", "seq", "1", "1000"])
        .await
        .expect(0);
    let tail = fleet
        .run(ALICE, &["logs", "--tail", "3", "job-1"])
        .await
        .expect(0)
        .out();
    assert_eq!(tail, "998\n999\n1000\n");

    fleet
        .run(
            ALICE,
            &["start", "--", "sh", "-c", "echo first; sleep 1; echo second"],
        )
        .await
        .expect(0);
    let followed = fleet.run(ALICE, &["logs", "-f", "job-2"]).await.expect(0).out();
    assert_eq!(followed, "first\nsecond\n", "-f reads to the job's end");
    fleet.stop().await;
}

#[tokio::test]
async fn logs_into_a_closed_pipe_end_quietly() {
    let fleet = fleet_or_skip!("alpha");
    fleet
        .run(ALICE, &["run", "--", "seq", "1", "3000000"])
        .await
        .expect(0);
    let mut child = fleet
        .foreman(ALICE, &["logs", "job-1"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut lines = tokio::io::BufReader::new(child.stdout.take().unwrap()).lines();
    assert_eq!(lines.next_line().await.unwrap().as_deref(), Some("1"));
    drop(lines); // as `| head -1` does
    let out = tokio::time::timeout(Duration::from_secs(30), child.wait_with_output())
        .await
        .expect("logs ends when its reader goes")
        .unwrap();
    assert!(out.status.success(), "{out:?}");
    assert!(out.stderr.is_empty(), "{}", String::from_utf8_lossy(&out.stderr));
    fleet.stop().await;
}

#[tokio::test]
async fn a_reference_on_two_crews_is_refused_with_both_named() {
    let fleet = fleet_or_skip!("alpha", "beta");
    for crew in ["alpha", "beta"] {
        let out = fleet
            .run(BOB, &["start", "--crew", crew, "--", "true"])
            .await
            .expect(0)
            .out();
        assert!(out.starts_with(&format!("{crew}/job-1 ")), "{out}");
    }
    // Exit 1, as an ambiguous reference on one crew.
    let ran = fleet.run(BOB, &["status", "job-1"]).await.expect(1);
    assert!(
        ran.stderr.contains("alpha/job-1") && ran.stderr.contains("beta/job-1"),
        "{}",
        ran.stderr
    );
    let beta = fleet
        .run(BOB, &["status", "beta/job-1", "--json"])
        .await
        .expect(0)
        .json();
    assert_eq!(beta["crew"], "beta");

    // With two crews, a new job needs to be told where to go.
    let ran = fleet.run(BOB, &["start", "--", "true"]).await.expect(2);
    assert!(ran.stderr.contains("--crew"), "{}", ran.stderr);
    fleet.stop().await;
}

#[tokio::test]
async fn unknown_jobs_refusals_and_bad_input_have_their_exit_codes() {
    let fleet = fleet_or_skip!("alpha");
    let ran = fleet.run(ALICE, &["status", "job-99"]).await.expect(1);
    assert!(ran.stderr.contains("no job \"job-99\""), "{}", ran.stderr);
    fleet.run(ALICE, &["logs", "nosuch"]).await.expect(1);
    fleet.run(ALICE, &["stop", "alpha/nosuch"]).await.expect(1);
    fleet.run(ALICE, &["status", "gamma/job-1"]).await.expect(2);

    // A viewer watches; it does not start or stop.
    let ran = fleet.run(VIC, &["start", "--", "true"]).await.expect(1);
    assert!(ran.stderr.contains("may not start jobs"), "{}", ran.stderr);
    fleet
        .run(ALICE, &["start", "--", "sleep", "1000"])
        .await
        .expect(0);
    let ran = fleet.run(VIC, &["stop", "job-1"]).await.expect(1);
    assert!(ran.stderr.contains("may not"), "{}", ran.stderr);
    // Nor may another user stop alice's job; an admin may.
    fleet.run(BOB, &["stop", "job-1"]).await.expect(1);
    fleet.run(VIC, &["ls"]).await.expect(0);
    fleet.run(ADA, &["stop", "job-1", "--yes"]).await.expect(0);

    // Bad sizes, durations and missing commands are usage errors.
    for args in [
        &["start", "--memory", "12Q", "--", "true"][..],
        &["start", "--timeout", "soon", "--", "true"],
        &["start"],
        &["stop", "job-1", "--grace", "-1s"],
    ] {
        let ran = fleet.run(ALICE, args).await.expect(2);
        assert!(!ran.stderr.is_empty(), "{args:?} says why");
    }
    // An unknown user certificate is a usage error that names the file.
    let ran = fleet.run("nobody-here", &["ls"]).await.expect(2);
    assert!(ran.stderr.contains("nobody-here.crt"), "{}", ran.stderr);
    fleet.stop().await;
}

/// The hijack an adversarial sweep found: bob names a job after the start
/// of alice's id, and an admin who types that prefix stops bob's job
/// instead. Names can no longer look like ids, are unique while their job
/// is not archived, and an action on another user's job says whose it is
/// and needs a yes.
#[tokio::test]
async fn no_name_can_pass_for_another_users_job() {
    let fleet = fleet_or_skip!("alpha");
    let started = fleet
        .run(ALICE, &["start", "--name", "build", "--", "sleep", "1000"])
        .await
        .expect(0)
        .out();
    let (_, id) = started.trim().split_once(' ').expect("REF ID");
    let prefix = &id[..8];

    // Bob cannot take the prefix, any all-hex name, a handle, or a name
    // alice's running job holds; nothing of his starts.
    for name in [prefix, "cafe", "job-1"] {
        let ran = fleet
            .run(BOB, &["start", "--name", name, "--", "sleep", "1000"])
            .await
            .expect(2);
        assert!(ran.stderr.contains("not allowed"), "{name}: {}", ran.stderr);
    }
    let ran = fleet
        .run(BOB, &["start", "--name", "build", "--", "sleep", "1000"])
        .await
        .expect(1);
    assert!(ran.stderr.contains("taken by job-1"), "{}", ran.stderr);
    let ls = fleet.run(ADA, &["ls", "--json"]).await.expect(0).json();
    assert_eq!(ls.as_array().unwrap().len(), 1, "{ls}");
    // A name that only starts like the id is his, and never matched by
    // the prefix.
    let bobs = format!("{prefix}-x");
    fleet
        .run(BOB, &["start", "--name", &bobs, "--", "sleep", "1000"])
        .await
        .expect(0);

    // The admin's prefix means alice's job, and a script is told whose it
    // is and that it must say --yes; nothing is stopped meanwhile.
    let ran = fleet.run(ADA, &["stop", prefix]).await.expect(2);
    assert!(
        ran.stderr.contains("alice's job alpha/job-1 (named build)") && ran.stderr.contains("--yes"),
        "{}",
        ran.stderr
    );
    let status = fleet
        .run(ADA, &["status", "job-1", "--json"])
        .await
        .expect(0)
        .json();
    assert_eq!(status["state"], "running");
    let ran = fleet
        .run(ADA, &["stop", prefix, "--yes", "--grace", "1s"])
        .await
        .expect(0);
    assert!(ran.stderr.contains("alice's job alpha/job-1"), "{}", ran.stderr);
    let status = fleet
        .run(ADA, &["status", "job-1", "--json"])
        .await
        .expect(0)
        .json();
    assert_eq!(status["state"], "stopped");
    let status = fleet
        .run(ADA, &["status", &bobs, "--json"])
        .await
        .expect(0)
        .json();
    assert_eq!(status["state"], "running", "bob's job is untouched");
    // One's own job needs no yes.
    fleet.run(BOB, &["stop", &bobs, "--grace", "1s"]).await.expect(0);

    // Too short to be a prefix: refused, never guessed.
    let ran = fleet.run(ADA, &["status", &id[..4]]).await.expect(2);
    assert!(ran.stderr.contains("at least 6"), "{}", ran.stderr);
    fleet.stop().await;
}

#[tokio::test]
async fn a_follow_cut_by_a_crew_shutdown_says_so_and_exits_2() {
    let fleet = fleet_or_skip!("alpha");
    fleet
        .run(ALICE, &["start", "--", "sh", "-c", "echo ready; exec sleep 1000"])
        .await
        .expect(0);
    let mut child = fleet
        .foreman(ALICE, &["logs", "-f", "job-1"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut lines = tokio::io::BufReader::new(child.stdout.take().unwrap()).lines();
    assert_eq!(lines.next_line().await.unwrap().as_deref(), Some("ready"));
    fleet.crews[0].shutdown.cancel();
    let out = tokio::time::timeout(Duration::from_secs(30), child.wait_with_output())
        .await
        .expect("the follow ends with the crew")
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(stderr.contains("shutting down"), "{stderr}");
    fleet.stop().await;
}

#[tokio::test]
async fn config_user_and_certs_may_follow_the_command() {
    let fleet = fleet_or_skip!("alpha");
    let config = fleet.config();
    let mut cmd = tokio::process::Command::new(env!("CARGO_BIN_EXE_foreman"));
    cmd.args(["crews", "--json", "--user", ALICE, "--config"])
        .arg(&config);
    let ran = support::Ran::from(cmd.output().await.unwrap()).expect(0);
    assert_eq!(ran.json()[0]["identity"], ALICE);
    fleet.stop().await;
}

/// A reader that goes away early (`foreman ls | grep -q x`, `| head`)
/// ends a command quietly with success: no panic, no exit 101.
#[tokio::test]
async fn a_closed_stdout_ends_every_command_quietly() {
    let fleet = fleet_or_skip!("alpha");
    let started = fleet
        .run(ALICE, &["start", "--name", "epipe", "--", "sleep", "30"])
        .await
        .expect(0);
    assert!(started.out().contains("alpha/job-"), "{}", started.out());
    for args in [
        &["ls"][..],
        &["ls", "--json"],
        &["crews"],
        &["crews", "--json"],
        &["status", "epipe"],
        &["status", "epipe", "--json"],
    ] {
        // A pipe whose reader is gone before foreman writes.
        let (reader, writer) = nix::unistd::pipe().unwrap();
        drop(reader);
        let out = fleet
            .foreman(ALICE, args)
            .stdout(Stdio::from(writer))
            .stderr(Stdio::piped())
            .output()
            .await
            .unwrap();
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(0), "foreman {args:?}: {err}");
        assert!(!err.contains("panicked"), "foreman {args:?}: {err}");
    }
    fleet
        .run(ALICE, &["stop", "epipe", "--grace", "100ms"])
        .await
        .expect(0);
    fleet.stop().await;
}

/// What a newcomer types first: a command without `--`, and a stop of a
/// job that has already ended, each answered with the way forward.
#[tokio::test]
async fn a_command_without_dashes_and_a_stop_of_an_ended_job_say_what_happened() {
    let fleet = fleet_or_skip!("alpha");
    for verb in ["run", "start"] {
        let ran = fleet.run(ALICE, &[verb, "uname", "-a"]).await.expect(2);
        assert!(
            ran.stderr
                .contains(&format!("goes after `--`: foreman {verb} [OPTIONS] -- CMD")),
            "{}",
            ran.stderr
        );
    }
    fleet.run(ALICE, &["run", "--", "true"]).await.expect(0);
    let said = fleet.run(ALICE, &["stop", "job-1"]).await.expect(0).out();
    assert_eq!(said, "alpha/job-1 had already ended (exit 0); nothing stopped\n");
    fleet.stop().await;
}

/// A PKI mix-up, the commonest first-day mistake, said in words: the crew's
/// certificate from another CA than ours, and ours from another than the
/// crew's. The TLS library's words stay only in brackets.
#[tokio::test]
async fn certificates_of_another_ca_are_explained_in_words() {
    let fleet = fleet_or_skip!("alpha");
    let other = certgen::testing::TestPki::new();
    let _ = other.user(ALICE, certgen::Role::User);
    // Our CA is another: the crew's certificate does not verify.
    let mixed = tempfile::tempdir().unwrap();
    let copy = |from: &std::path::Path, to: &std::path::Path| {
        std::fs::create_dir_all(to.parent().unwrap()).unwrap();
        std::fs::copy(from, to).unwrap();
    };
    copy(&other.dir().join("ca.crt"), &mixed.path().join("ca.crt"));
    for ext in ["crt", "key"] {
        let name = format!("users/{ALICE}.{ext}");
        copy(&fleet.pki.dir().join(&name), &mixed.path().join(&name));
    }
    let certs = mixed.path().to_str().unwrap();
    let ran = fleet.run(ALICE, &["--certs", certs, "ls"]).await.expect(2);
    assert!(
        ran.stderr
            .contains("the crew's certificate is not signed by your CA"),
        "{}",
        ran.stderr
    );
    // Our certificate is another CA's: the crew closes the connection.
    let theirs = tempfile::tempdir().unwrap();
    copy(&fleet.pki.dir().join("ca.crt"), &theirs.path().join("ca.crt"));
    for ext in ["crt", "key"] {
        let name = format!("users/{ALICE}.{ext}");
        copy(&other.dir().join(&name), &theirs.path().join(&name));
    }
    let certs = theirs.path().to_str().unwrap();
    let ran = fleet.run(ALICE, &["--certs", certs, "ls"]).await.expect(2);
    assert!(
        ran.stderr
            .contains("the crew closed the connection: it may refuse your certificate")
            || ran.stderr.contains("the crew refuses your certificate"),
        "{}",
        ran.stderr
    );
    assert!(!ran.stderr.contains("operation was canceled"), "{}", ran.stderr);
    fleet.stop().await;
}

/// Completions and man pages come from the command line's definition and
/// need no config: bash accepts the script, and completes the commands;
/// every command gets its page.
#[tokio::test]
async fn completions_and_man_pages_need_no_config_and_hold_every_command() {
    let foreman = env!("CARGO_BIN_EXE_foreman");
    let out = std::process::Command::new(foreman)
        .args(["--config", "/nonexistent/foreman.toml", "completions", "bash"])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let dir = tempfile::tempdir().unwrap();
    let script = dir.path().join("foreman.bash");
    std::fs::write(&script, &out.stdout).unwrap();
    // Completing `foreman au` in bash itself.
    let probe = format!(
        "source {}; COMP_WORDS=(foreman au); COMP_CWORD=1; _foreman foreman au foreman; echo \"${{COMPREPLY[@]}}\"",
        script.display()
    );
    let done = std::process::Command::new("bash")
        .args(["-c", &probe])
        .output()
        .unwrap();
    let said = String::from_utf8_lossy(&done.stdout);
    assert!(
        said.contains("audit"),
        "{said} {}",
        String::from_utf8_lossy(&done.stderr)
    );
    for shell in ["zsh", "fish"] {
        let out = std::process::Command::new(foreman)
            .args(["completions", shell])
            .output()
            .unwrap();
        assert!(out.status.success() && !out.stdout.is_empty(), "{shell}");
    }
    let man = dir.path().join("man");
    let out = std::process::Command::new(foreman)
        .args(["man", "--dir"])
        .arg(&man)
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    for page in ["foreman.1", "foreman-run.1", "foreman-audit.1", "foreman-logs.1"] {
        let text = std::fs::read_to_string(man.join(page)).unwrap_or_else(|e| panic!("{page}: {e}"));
        assert!(
            text.starts_with(".ie") || text.contains(".TH"),
            "{page}: {text:.200}"
        );
    }
    let run = std::fs::read_to_string(man.join("foreman-run.1")).unwrap();
    assert!(run.contains("no way out"), "the --network help is in the page");
}

/// `ls` filters, as a pueue or docker user reaches for them, and `-q` for
/// scripts: references only.
#[tokio::test]
async fn ls_filters_by_state_owner_crew_and_name_and_prints_references() {
    let fleet = fleet_or_skip!("alpha", "beta");
    let f = &fleet;
    f.run(
        ALICE,
        &["run", "--crew", "alpha", "--name", "build-1", "--", "true"],
    )
    .await
    .expect(0);
    f.run(
        ALICE,
        &[
            "run", "--crew", "alpha", "--name", "build-2", "--", "sh", "-c", "exit 3",
        ],
    )
    .await
    .expect(3);
    f.run(
        ALICE,
        &["start", "--crew", "alpha", "--name", "web", "--", "sleep", "100"],
    )
    .await
    .expect(0);
    f.run(
        ALICE,
        &[
            "start", "--crew", "beta", "--name", "build-3", "--", "sleep", "100",
        ],
    )
    .await
    .expect(0);
    f.run(BOB, &["run", "--crew", "beta", "--", "true"])
        .await
        .expect(0);
    assert_eq!(references(f, &[]).await.len(), 5);
    assert_eq!(
        references(f, &["--state", "running"]).await,
        ["alpha/job-3", "beta/job-1"]
    );
    assert_eq!(references(f, &["--state", "exit 3"]).await, ["alpha/job-2"]);
    assert_eq!(
        references(f, &["--state", "failed", "--state", "completed"]).await,
        ["alpha/job-1", "alpha/job-2", "beta/job-2"]
    );
    assert_eq!(
        references(f, &["--state", "ended", "--owner", BOB]).await,
        ["beta/job-2"]
    );
    assert_eq!(
        references(f, &["--crew", "beta"]).await,
        ["beta/job-1", "beta/job-2"]
    );
    assert_eq!(
        references(f, &["--name", "build-*"]).await,
        ["alpha/job-1", "alpha/job-2", "beta/job-1"]
    );
    let bad = fleet.run(ALICE, &["ls", "--crew", "gamma"]).await.expect(2);
    assert!(bad.stderr.contains("no crew matches \"gamma\""), "{}", bad.stderr);
    fleet.run(ALICE, &["archive", "alpha/job-1"]).await.expect(0);
    assert_eq!(
        references(f, &["--crew", "alpha"]).await,
        ["alpha/job-2", "alpha/job-3"]
    );
    assert_eq!(references(f, &["-a", "--crew", "alpha"]).await.len(), 3);
    fleet.stop().await;
}

/// `foreman ls -q ARGS` as Alice: the references, a line each.
async fn references(fleet: &support::Fleet, args: &[&str]) -> Vec<String> {
    let mut all = vec!["ls", "-q"];
    all.extend_from_slice(args);
    let out = fleet.run(ALICE, &all).await.expect(0).out();
    out.lines().map(str::to_owned).collect()
}

/// `rerun`: the same command again, on the same crew, taking the old
/// job's name (an ended holder is archived; a running one is refused).
#[tokio::test]
async fn rerun_starts_the_same_job_again_under_its_name() {
    let fleet = fleet_or_skip!("alpha");
    fleet
        .run(
            ALICE,
            &[
                "run",
                "--name",
                "hello",
                "--memory",
                "64M",
                "--",
                "sh",
                "-c",
                "echo hi $WHO",
            ],
        )
        .await
        .expect(0);
    let again = fleet
        .run(ALICE, &["rerun", "hello", "--env", "WHO=again"])
        .await
        .expect(0);
    assert!(again.out().starts_with("alpha/job-2 "), "{}", again.out());
    assert!(again.stderr.contains("archived alpha/job-1"), "{}", again.stderr);
    let waited = fleet.run(ALICE, &["wait", "hello"]).await.expect(0);
    assert!(waited.out().contains("alpha/job-2"), "{}", waited.out());
    let logs = fleet.run(ALICE, &["logs", "hello"]).await.expect(0).out();
    assert_eq!(logs, "hi again\n");
    let status = fleet
        .run(ALICE, &["status", "hello", "--json"])
        .await
        .expect(0)
        .json();
    assert_eq!(status["limits"]["memory_bytes"], 64 << 20, "{status}");
    // A running holder of the name is not archived under it.
    fleet
        .run(ALICE, &["start", "--name", "sleeper", "--", "sleep", "100"])
        .await
        .expect(0);
    let refused = fleet.run(ALICE, &["rerun", "sleeper"]).await.expect(1);
    assert!(refused.stderr.contains("still running"), "{}", refused.stderr);
    let other = fleet
        .run(ALICE, &["rerun", "sleeper", "--name", "sleeper-2"])
        .await
        .expect(0);
    assert!(other.out().starts_with("alpha/job-4 "), "{}", other.out());
    fleet.stop().await;
}

/// `clean`: every ended job of yours archived at once (filters as `ls`),
/// others' left alone, `-n` says what it would do.
#[tokio::test]
async fn clean_archives_your_ended_jobs() {
    let fleet = fleet_or_skip!("alpha", "beta");
    let f = &fleet;
    f.run(ALICE, &["run", "--crew", "alpha", "--", "true"])
        .await
        .expect(0);
    f.run(ALICE, &["run", "--crew", "beta", "--", "sh", "-c", "exit 3"])
        .await
        .expect(3);
    f.run(ALICE, &["start", "--crew", "alpha", "--", "sleep", "100"])
        .await
        .expect(0);
    f.run(BOB, &["run", "--crew", "beta", "--", "true"])
        .await
        .expect(0);
    let dry = f.run(ALICE, &["clean", "-n"]).await.expect(0);
    assert_eq!(dry.out(), "alpha/job-1\nbeta/job-1\n", "{}", dry.stderr);
    assert!(
        dry.stderr.contains("would archive 2 ended jobs"),
        "{}",
        dry.stderr
    );
    assert_eq!(references(f, &[]).await.len(), 4, "a dry run archives nothing");
    let only = f.run(ALICE, &["clean", "--state", "exit 3"]).await.expect(0);
    assert_eq!(only.out(), "beta/job-1\n");
    f.run(ALICE, &["clean"]).await.expect(0);
    assert_eq!(
        references(f, &[]).await,
        ["alpha/job-2", "beta/job-2"],
        "the running job and Bob's stay"
    );
    // Bob's, asked for by a user who may not: refused, said, exit 1.
    let denied = f.run(ALICE, &["clean", "--owner", BOB]).await.expect(1);
    assert!(denied.stderr.contains("beta/job-2"), "{}", denied.stderr);
    fleet.stop().await;
}

/// Presets: a named job in the config, its options under the flags given
/// with it, its command with the arguments after `--` added.
#[tokio::test]
async fn a_preset_is_a_named_job_of_the_config() {
    let fleet = fleet_or_skip!("alpha");
    let mut config = std::fs::read_to_string(fleet.config()).unwrap();
    config.push_str(
        r#"
[preset.greet]
argv = ["sh", "-c", "echo $GREETING \"$@\"", "sh"]
env = { GREETING = "hello" }
memory = "64M"
name = "greeter"
"#,
    );
    std::fs::write(fleet.config(), &config).unwrap();
    let said = fleet
        .run(ALICE, &["run", "--preset", "greet", "--", "world"])
        .await
        .expect(0);
    assert_eq!(said.out(), "hello world\n");
    let status = fleet
        .run(ALICE, &["status", "greeter", "--json"])
        .await
        .expect(0)
        .json();
    assert_eq!(status["limits"]["memory_bytes"], 64 << 20, "{status}");
    // A flag wins over the preset.
    let said = fleet
        .run(
            ALICE,
            &[
                "run",
                "--preset",
                "greet",
                "--name",
                "g2",
                "--env",
                "GREETING=hi",
                "--",
                "you",
            ],
        )
        .await
        .expect(0);
    assert_eq!(said.out(), "hi you\n");
    let none = fleet.run(ALICE, &["start", "--preset", "nope"]).await.expect(2);
    assert!(
        none.stderr.contains("no preset \"nope\" (presets: greet)"),
        "{}",
        none.stderr
    );
    // A preset the file gets wrong is named when the file is read.
    std::fs::write(
        fleet.config(),
        format!("{config}\n[preset.bad]\nmemory = \"lots\"\n"),
    )
    .unwrap();
    let bad = fleet.run(ALICE, &["ls"]).await.expect(2);
    assert!(bad.stderr.contains("preset \"bad\": memory"), "{}", bad.stderr);
    fleet.stop().await;
}

/// Contexts: several fleets in one config, as kubectl's. `--context`,
/// `$TASKER_CONTEXT` or the file's `context` picks one; its crews replace
/// the top level's.
#[tokio::test]
async fn a_context_picks_one_fleet_of_the_config() {
    let fleet = fleet_or_skip!("alpha", "beta");
    let (alpha, beta) = (&fleet.crews[0], &fleet.crews[1]);
    let base = format!(
        "certs = {:?}\n\n[[crew]]\nname = \"alpha\"\naddr = \"{}\"\n\n[[contexts.lab.crew]]\nname = \"beta\"\naddr = \"{}\"\n",
        fleet.pki.dir().display().to_string(),
        alpha.addr,
        beta.addr
    );
    std::fs::write(fleet.config(), &base).unwrap();
    let crews = |out: &str| -> Vec<String> {
        out.lines()
            .skip_while(|l| !l.starts_with("CREW"))
            .skip(1)
            .filter_map(|l| l.split_whitespace().next().map(str::to_owned))
            .collect()
    };
    let top = fleet.run(ALICE, &["crews"]).await.expect(0).out();
    assert_eq!(crews(&top), ["alpha"], "{top}");
    let lab = fleet
        .run(ALICE, &["--context", "lab", "crews"])
        .await
        .expect(0)
        .out();
    assert!(lab.starts_with("context lab\n"), "{lab}");
    assert_eq!(crews(&lab), ["beta"], "{lab}");
    let env = support::Ran::from(
        fleet
            .foreman(ALICE, &["crews"])
            .env("TASKER_CONTEXT", "lab")
            .output()
            .await
            .unwrap(),
    )
    .expect(0)
    .out();
    assert_eq!(crews(&env), ["beta"], "{env}");
    let nope = fleet.run(ALICE, &["--context", "prod", "crews"]).await.expect(2);
    assert!(
        nope.stderr.contains("no context \"prod\"") && nope.stderr.contains("(contexts: lab)"),
        "{}",
        nope.stderr
    );
    // The file's own default.
    std::fs::write(fleet.config(), format!("context = \"lab\"\n{base}")).unwrap();
    let default = fleet.run(ALICE, &["crews"]).await.expect(0).out();
    assert_eq!(crews(&default), ["beta"], "{default}");
    fleet.stop().await;
}

/// `unarchive`: an archived job comes back to `ls`; one not archived is
/// left as it is, and said so; one whose name was taken meanwhile stays
/// archived, with the way forward.
#[tokio::test]
async fn unarchive_brings_an_archived_job_back_to_ls() {
    let fleet = fleet_or_skip!("alpha");
    fleet
        .run(ALICE, &["run", "--name", "nightly", "--", "/bin/true"])
        .await
        .expect(0);
    assert_eq!(references(&fleet, &[]).await, ["alpha/job-1"]);
    fleet.run(ALICE, &["archive", "nightly"]).await.expect(0);
    assert!(references(&fleet, &[]).await.is_empty(), "archived: not listed");
    let again = fleet.run(ALICE, &["archive", "job-1"]).await.expect(0).out();
    assert_eq!(again, "alpha/job-1 was already archived; nothing to do\n");

    // Another user may not; the job stays archived.
    let refused = fleet.run(BOB, &["unarchive", "job-1"]).await.expect(1);
    assert!(
        refused.stderr.contains("users manage only their own jobs"),
        "{}",
        refused.stderr
    );
    assert!(references(&fleet, &[]).await.is_empty());

    let back = fleet.run(ALICE, &["unarchive", "nightly"]).await.expect(0).out();
    assert_eq!(back, "alpha/job-1 unarchived\n");
    assert_eq!(references(&fleet, &[]).await, ["alpha/job-1"], "back in the list");
    let again = fleet.run(ALICE, &["unarchive", "job-1"]).await.expect(0).out();
    assert_eq!(again, "alpha/job-1 is not archived; nothing to do\n");

    // The name taken meanwhile: refused, said why, the rest done.
    fleet.run(ALICE, &["archive", "job-1"]).await.expect(0);
    fleet
        .run(ALICE, &["start", "--name", "nightly", "--", "/bin/sleep", "1000"])
        .await
        .expect(0);
    fleet
        .run(ALICE, &["run", "--name", "other", "--", "/bin/true"])
        .await
        .expect(0);
    fleet.run(ALICE, &["archive", "other"]).await.expect(0);
    let taken = fleet
        .run(ALICE, &["unarchive", "alpha/job-1", "other"])
        .await
        .expect(1);
    assert_eq!(taken.out(), "alpha/job-3 unarchived\n");
    assert!(
        taken.stderr.contains(
            "the name \"nightly\" is taken by job-2, which is not archived: archive job-2 first, then un-archive job-1"
        ),
        "{}",
        taken.stderr
    );
    assert_eq!(references(&fleet, &[]).await, ["alpha/job-2", "alpha/job-3"]);
    fleet
        .run(ALICE, &["stop", "job-2", "--grace", "1s"])
        .await
        .expect(0);
    fleet.stop().await;
}
