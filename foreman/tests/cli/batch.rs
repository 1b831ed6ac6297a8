//! One command on ten crews (SPEC §5 "Fleet commands"): gathered output,
//! the summary's counts, exit codes, a crew that is down (unreachable, not
//! failed), fail-fast.

use std::time::{Duration, Instant};

use crate::support::{ALICE, Fleet, fleet_or_skip};

/// The ten crews `web01`..`web10` (groups: `front` = web01-05), and one
/// more in `front` that is down (nothing listens on its port).
fn with_groups(fleet: &Fleet) {
    let mut toml = format!("certs = {:?}\n", fleet.pki.dir().display().to_string());
    for (i, c) in fleet.crews.iter().enumerate() {
        let groups = if i < 5 { "[\"front\"]" } else { "[]" };
        toml.push_str(&format!(
            "\n[[crew]]\nname = {:?}\naddr = \"{}\"\ngroups = {groups}\n",
            c.name, c.addr
        ));
    }
    toml.push_str("\n[[crew]]\nname = \"down\"\naddr = \"127.0.0.1:1\"\ngroups = [\"front\"]\n");
    std::fs::write(fleet.config(), toml).unwrap();
}

/// A command whose output and exit code depend on the crew: a job sees its
/// crew's cgroup parent (`tasker/test-<crew>-...`) in /proc/self/cgroup.
const BY_CREW: &str = "case $(cat /proc/self/cgroup) in \
                       *test-web0[1-3]-*) echo odd; exit 3;; \
                       *) echo same; echo more;; esac";

#[tokio::test]
async fn a_batch_gathers_identical_outputs_and_sums_up_with_the_worst_code() {
    let names: Vec<String> = (1..=10).map(|i| format!("web{i:02}")).collect();
    let names: Vec<&str> = names.iter().map(String::as_str).collect();
    let fleet = match crate::support::skip_reason() {
        Some(why) => {
            eprintln!("SKIPPED {}: {why}", module_path!());
            return;
        }
        None => Fleet::start(&names).await,
    };
    with_groups(&fleet);

    // Gathered: two groups of outputs, each once, under folded names.
    let t0 = Instant::now();
    let ran = fleet
        .run(
            ALICE,
            &["run", "--crew", "web*", "-b", "--", "/bin/sh", "-c", BY_CREW],
        )
        .await
        .expect(3);
    eprintln!("run on 10 crews: {:?}", t0.elapsed());
    let out = ran.out();
    assert!(out.contains("web[01-03] (3) exit 3\n"), "{out}");
    assert!(out.contains("web[04-10] (7) exit 0\n"), "{out}");
    assert_eq!(out.matches("odd\n").count(), 1, "{out}");
    assert_eq!(out.matches("same\nmore\n").count(), 1, "{out}");
    let err = &ran.stderr;
    assert!(
        err.contains("10 crews: 7 ok (web[04-10]); 3 failed (web01: exit 3, web02: exit 3, web03: exit 3)"),
        "{err}"
    );

    // Its output again, from the crews: gathered, and streamed per crew.
    // The configuration's crew that is down might hold a member: it says
    // so, and the exit code too.
    let batch = batch_id(&ran);
    let logs = fleet
        .run(ALICE, &["logs", "--batch", &batch, "-b"])
        .await
        .expect(2);
    assert_eq!(logs.out(), out, "logs -b of the batch shows what run -b did");
    assert!(
        logs.stderr
            .contains("11 crews: 7 ok (web[04-10]); 3 failed (web01: exit 3, web02: exit 3, web03: exit 3); 1 unreachable (down)"),
        "{}",
        logs.stderr
    );
    let logs = fleet
        .run(ALICE, &["logs", "--batch", &batch, "--tail", "1"])
        .await
        .expect(2);
    let lines = logs.out();
    assert_eq!(lines.lines().count(), 10, "{lines}");
    assert!(
        lines.contains("web02: odd\n") && lines.contains("web07: more\n"),
        "{lines}"
    );
    fleet.run(ALICE, &["logs", "--batch", "b-0123"]).await.expect(1);

    // The crews that failed, run again: kept by the run that failed.
    let again = fleet
        .run(
            ALICE,
            &[
                "run",
                "--crew",
                &format!("@failed:{batch}"),
                "-b",
                "--",
                "/bin/sh",
                "-c",
                BY_CREW,
            ],
        )
        .await
        .expect(3);
    assert!(
        again.stderr.contains("3 crews: 0 ok; 3 failed"),
        "{}",
        again.stderr
    );
    assert!(again.out().contains("web[01-03] (3) exit 3\n"), "{}", again.out());
    let unknown = fleet
        .run(ALICE, &["run", "--crew", "@failed:b-0123", "--", "true"])
        .await
        .expect(2);
    assert!(
        unknown.stderr.contains("no record of batch b-0123"),
        "{}",
        unknown.stderr
    );

    // Streamed: every line, prefixed by its crew.
    let ran = fleet
        .run(
            ALICE,
            &["run", "--crew", "web0[4-6],web10", "--", "/bin/sh", "-c", BY_CREW],
        )
        .await
        .expect(0);
    let out = ran.out();
    for crew in ["web04", "web05", "web06", "web10"] {
        assert!(out.contains(&format!("{crew}: same\n")), "{out}");
        assert_eq!(out.matches(&format!("{crew}: ")).count(), 2, "{out}");
    }
    assert_eq!(out.lines().count(), 8, "{out}");

    // A job's stderr goes to ours, prefixed too, streamed or gathered (as
    // `run` keeps a job's stderr apart, and as clush -b gathers stdout).
    let both = "echo out; echo err >&2; echo out2";
    for gather in [false, true] {
        let mut args = vec!["run", "--crew", "web0[4-5]"];
        if gather {
            args.push("-b");
        }
        args.extend(["--", "/bin/sh", "-c", both]);
        let ran = fleet.run(ALICE, &args).await.expect(0);
        let (out, err) = (ran.out(), &ran.stderr);
        assert!(!out.contains("err"), "stdout: {out}");
        if gather {
            assert!(out.contains("web[04-05] (2) exit 0\n"), "{out}");
            assert_eq!(out.matches("\nout\nout2\n").count(), 1, "{out}");
        } else {
            for crew in ["web04", "web05"] {
                assert_eq!(out.matches(&format!("{crew}: out\n")).count(), 1, "{out}");
                assert_eq!(out.matches(&format!("{crew}: out2\n")).count(), 1, "{out}");
            }
            assert_eq!(out.lines().count(), 4, "{out}");
        }
        for crew in ["web04", "web05"] {
            assert_eq!(err.matches(&format!("{crew}: err\n")).count(), 1, "stderr: {err}");
        }
    }

    // A group with a crew that is down: unreachable, kept apart, exit 2.
    let ran = fleet
        .run(
            ALICE,
            &[
                "run", "--crew", "@front", "--json", "--", "/bin/sh", "-c", BY_CREW,
            ],
        )
        .await
        .expect(3);
    let rows: Vec<serde_json::Value> = ran
        .out()
        .lines()
        .map(|l| serde_json::from_str(l).expect("a JSON line"))
        .collect();
    assert_eq!(rows.len(), 6);
    let by = |crew: &str| rows.iter().find(|r| r["crew"] == crew).expect(crew).clone();
    assert_eq!(by("down")["status"], "unreachable");
    assert_eq!(by("down")["exit_code"], 2);
    assert_eq!(by("web02")["status"], "failed");
    assert_eq!(by("web02")["exit_code"], 3);
    assert_eq!(by("web02")["output"], "odd\n");
    assert_eq!(by("web05")["status"], "ok");
    assert!(
        by("web05")["job"]
            .as_str()
            .is_some_and(|j| j.starts_with("web05/job-"))
    );
    assert!(ran.stderr.contains("1 unreachable (down)"), "{}", ran.stderr);
    // Failed and unreachable alike are run again.
    let again = fleet
        .run(
            ALICE,
            &[
                "run",
                "--crew",
                &format!("@failed:{}", batch_id(&ran)),
                "--json",
                "--",
                "true",
            ],
        )
        .await
        .expect(2);
    let crews: Vec<String> = again
        .out()
        .lines()
        .map(|l| {
            serde_json::from_str::<serde_json::Value>(l).unwrap()["crew"]
                .as_str()
                .unwrap()
                .to_owned()
        })
        .collect();
    assert_eq!(crews, ["web01", "web02", "web03", "down"]);
    // Only the crew that is down: its code, 2.
    fleet
        .run(ALICE, &["run", "--crew", "down,web04", "--", "true"])
        .await
        .expect(2);

    // A selection that matches nothing names the term, and runs nothing.
    let ran = fleet
        .run(ALICE, &["run", "--crew", "web*,@back", "--", "true"])
        .await
        .expect(2);
    assert!(
        ran.stderr.contains("no crew is in group \"back\""),
        "{}",
        ran.stderr
    );

    // start on many: a reference per crew, and the batch's id, which ls and
    // stop take (each exits 2 as the crew that is down is named).
    let ran = fleet
        .run(ALICE, &["start", "--crew", "web0[1-3]", "--", "sleep", "100"])
        .await
        .expect(0);
    let out = ran.out();
    assert!(out.contains("web01/job-") && out.contains("web03/job-"), "{out}");
    let web01 = format!("web01={}", fleet.crews[0].addr);
    let batch = batch_id(&ran);
    let members = |ran: &crate::support::Ran| -> Vec<(String, String)> {
        let list = ran.json();
        let list = list.as_array().expect("a list");
        list.iter()
            .map(|j| {
                (
                    j["crew"].as_str().unwrap().to_owned(),
                    j["state"].as_str().unwrap().to_owned(),
                )
            })
            .collect()
    };
    let listed = fleet
        .run(ALICE, &["ls", "--batch", &batch, "--json"])
        .await
        .expect(2);
    let listed = members(&listed);
    assert_eq!(listed.len(), 3, "{listed:?}");
    assert!(listed.iter().all(|(_, state)| state == "running"), "{listed:?}");
    // logs of a batch that runs: what it has so far, at once.
    let logs = fleet.run(ALICE, &["logs", "--batch", &batch]).await.expect(2);
    assert!(
        logs.stderr.contains("3 running (web[01-03]); 0 ok"),
        "{}",
        logs.stderr
    );
    let stopped = fleet
        .run(ALICE, &["stop", "--batch", &batch, "--grace", "100ms"])
        .await
        .expect(2);
    assert_eq!(stopped.out().lines().count(), 3, "{}", stopped.out());
    let listed = fleet
        .run(ALICE, &["ls", "--batch", &batch, "--json"])
        .await
        .expect(2);
    let listed = members(&listed);
    assert!(listed.iter().all(|(_, state)| state == "stopped"), "{listed:?}");
    // wait: every member has ended (stopped: 128 + 15, the worst), and the
    // crew that is down is named (exit 2 would be lower).
    let waited = fleet.run(ALICE, &["wait", "--batch", &batch]).await.expect(143);
    assert_eq!(
        waited.out().matches(" ended: stopped by ").count(),
        3,
        "{}",
        waited.out()
    );
    assert!(waited.stderr.contains("down"), "{}", waited.stderr);
    // A batch still running is waited for, to its end.
    let ran = fleet
        .run(ALICE, &["start", "--crew", "web0[4-5]", "--", "sleep", "0.5"])
        .await
        .expect(0);
    let quick = batch_id(&ran);
    let t0 = Instant::now();
    let waited = fleet
        .run(
            ALICE,
            &[
                "--crew",
                &web01,
                "--crew",
                &format!("web04={}", fleet.crews[3].addr),
                "wait",
                "--batch",
                &quick,
            ],
        )
        .await
        .expect(0);
    assert!(t0.elapsed() >= Duration::from_millis(200), "{:?}", t0.elapsed());
    assert_eq!(
        waited.out().matches(" ended: exit 0").count(),
        1,
        "{}",
        waited.out()
    );
    // logs -f of a batch: to every member's end.
    let ran = fleet
        .run(
            ALICE,
            &[
                "start",
                "--crew",
                "web0[6-7]",
                "--",
                "/bin/sh",
                "-c",
                "echo a; sleep 0.5; echo b",
            ],
        )
        .await
        .expect(0);
    let followed = fleet
        .run(ALICE, &["logs", "-f", "--batch", &batch_id(&ran)])
        .await
        .expect(2);
    let out = followed.out();
    for line in ["web06: a\n", "web06: b\n", "web07: a\n", "web07: b\n"] {
        assert!(out.contains(line), "{out}");
    }
    assert!(
        followed.stderr.contains("2 ok (web[06-07])"),
        "{}",
        followed.stderr
    );
    // Nothing left to stop: said so, exit 1.
    let none = fleet
        .run(ALICE, &["--crew", &web01, "stop", "--batch", &batch])
        .await
        .expect(1);
    assert!(none.stderr.contains("no running job of batch"), "{}", none.stderr);
    fleet.stop().await;
}

#[tokio::test]
async fn fail_fast_stops_the_rest_at_the_first_failure() {
    let fleet = fleet_or_skip!("a1", "a2", "a3");
    // a1 fails at once; the others would sleep a minute.
    let cmd = "case $(cat /proc/self/cgroup) in *test-a1-*) exit 4;; esac; sleep 60";
    let t0 = Instant::now();
    let ran = fleet
        .run(
            ALICE,
            &["run", "--crew", "all", "--fail-fast", "--", "/bin/sh", "-c", cmd],
        )
        .await;
    let took = t0.elapsed();
    let ran = ran.expect(143);
    assert!(took < Duration::from_secs(30), "took {took:?}");
    let err = &ran.stderr;
    assert!(
        err.contains("3 crews: 0 ok; 3 failed (a1: exit 4, a2: exit 143, a3: exit 143)"),
        "{err}"
    );
    fleet.stop().await;
}

/// The batch id foreman printed on stderr.
fn batch_id(ran: &crate::support::Ran) -> String {
    ran.stderr
        .split([' ', ':', '\n'])
        .find(|w| w.starts_with("b-"))
        .unwrap_or_else(|| panic!("no batch id: {}", ran.stderr))
        .to_owned()
}

#[tokio::test]
async fn ctrl_c_stops_every_member_of_a_batch() {
    let fleet = fleet_or_skip!("c1", "c2", "c3");
    let child = fleet
        .foreman(ALICE, &["run", "--crew", "all", "--", "sleep", "100"])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("foreman runs");
    // Until every member runs.
    let t0 = Instant::now();
    loop {
        let ls = fleet.run(ALICE, &["ls", "--json"]).await.expect(0).json();
        let running = ls
            .as_array()
            .expect("a list")
            .iter()
            .filter(|j| j["state"] == "running" && j["batch"].as_str().is_some_and(|b| b.starts_with("b-")))
            .count();
        if running == 3 {
            break;
        }
        assert!(
            t0.elapsed() < Duration::from_secs(20),
            "the batch did not start: {ls}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let pid = nix::unistd::Pid::from_raw(child.id().expect("a pid") as i32);
    nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGINT).unwrap();
    let out = tokio::time::timeout(Duration::from_secs(30), child.wait_with_output())
        .await
        .expect("foreman ends after Ctrl-C")
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    // Each stopped by SIGTERM: 128 + 15.
    assert_eq!(out.status.code(), Some(143), "{err}");
    assert!(
        err.contains("stopping every member") && err.contains("3 crews: 0 ok; 3 failed"),
        "{err}"
    );
    let ls = fleet.run(ALICE, &["ls", "--json"]).await.expect(0).json();
    assert!(
        ls.as_array().unwrap().iter().all(|j| j["state"] == "stopped"),
        "{ls}"
    );
    fleet.stop().await;
}
