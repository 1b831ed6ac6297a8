//! A job's two streams and its output's times through the CLI: `run` gives
//! the job's stderr to its own stderr, `logs` shows both in the order
//! stored or one (`--stream`), each line after its time (`-t`), and from
//! or to a time (`--since`, `--until`).

use crate::support::{ALICE, fleet_or_skip};

const INTERLEAVED: &str = "for i in 1 2 3; do echo out$i; sleep 0.05; echo err$i >&2; sleep 0.05; done";

#[tokio::test]
async fn run_writes_the_jobs_stderr_to_stderr_and_logs_keeps_them_apart() {
    let fleet = fleet_or_skip!("alpha");
    // As `sh -c ... 2>/dev/null` would: only stdout on stdout.
    let ran = fleet
        .run(ALICE, &["run", "--", "sh", "-c", INTERLEAVED])
        .await
        .expect(0);
    assert_eq!(ran.out(), "out1\nout2\nout3\n");
    assert_eq!(ran.stderr, "err1\nerr2\nerr3\n");

    // Both, in the order written.
    let all = fleet.run(ALICE, &["logs", "job-1"]).await.expect(0).out();
    assert_eq!(all, "out1\nerr1\nout2\nerr2\nout3\nerr3\n");
    let err = fleet
        .run(ALICE, &["logs", "--stream", "stderr", "job-1"])
        .await
        .expect(0);
    assert_eq!(
        (err.out().as_str(), err.stderr.as_str()),
        ("err1\nerr2\nerr3\n", "")
    );
    let out = fleet
        .run(ALICE, &["logs", "--stream", "stdout", "job-1"])
        .await
        .expect(0);
    assert_eq!(out.out(), "out1\nout2\nout3\n");

    // Each line after its time: UTC, to the millisecond, in order, and
    // 50 ms or more apart.
    let stamped = fleet.run(ALICE, &["logs", "-t", "job-1"]).await.expect(0).out();
    let lines: Vec<&str> = stamped.lines().collect();
    assert_eq!(lines.len(), 6, "{stamped}");
    let mut times = Vec::new();
    for (line, want) in lines.iter().zip(["out1", "err1", "out2", "err2", "out3", "err3"]) {
        let (time, text) = line.split_once(' ').unwrap_or_else(|| panic!("{line:?}"));
        assert_eq!(text, want, "{stamped}");
        let t = time::OffsetDateTime::parse(time, &time::format_description::well_known::Rfc3339)
            .unwrap_or_else(|e| panic!("{time:?}: {e}"));
        assert!(time.ends_with('Z') && time.len() == 24, "{time:?}");
        times.push(t);
    }
    assert!(
        times
            .windows(2)
            .all(|w| w[1] - w[0] >= time::Duration::milliseconds(40)),
        "{stamped}"
    );
    let now = time::OffsetDateTime::now_utc();
    assert!(now - times[5] < time::Duration::seconds(60), "{stamped}");

    // From and to a time: the third line's, given as RFC 3339.
    let third = lines[2].split_once(' ').unwrap().0;
    let since = fleet
        .run(ALICE, &["logs", "--since", third, "job-1"])
        .await
        .expect(0)
        .out();
    assert_eq!(since, "out2\nerr2\nout3\nerr3\n");
    let until = fleet
        .run(ALICE, &["logs", "--until", third, "job-1"])
        .await
        .expect(0)
        .out();
    assert_eq!(until, "out1\nerr1\nout2\n");
    let recent = fleet
        .run(ALICE, &["logs", "--since", "1h", "job-1"])
        .await
        .expect(0)
        .out();
    assert_eq!(recent, all, "everything is from the last hour");

    let bad = fleet
        .run(ALICE, &["logs", "--since", "last tuesday", "job-1"])
        .await
        .expect(2);
    assert!(
        bad.stderr.contains("not a time") && bad.stderr.contains("10m"),
        "{}",
        bad.stderr
    );
    fleet.stop().await;
}

#[tokio::test]
async fn a_tty_jobs_output_exports_as_an_asciicast_that_asciinema_plays() {
    let fleet = fleet_or_skip!("alpha");
    let script = r#"printf '\033[1mhello\033[0m \303\251\n'; sleep 0.3; echo world"#;
    fleet
        .run(ALICE, &["start", "--tty", "--", "sh", "-c", script])
        .await
        .expect(0);
    fleet.run(ALICE, &["wait", "job-1"]).await.expect(0);
    let raw = fleet
        .run(ALICE, &["logs", "--raw", "job-1"])
        .await
        .expect(0)
        .stdout;
    assert_eq!(raw, "\x1b[1mhello\x1b[0m é\r\nworld\r\n".as_bytes());

    let cast = fleet
        .run(ALICE, &["logs", "--asciicast", "job-1"])
        .await
        .expect(0)
        .out();
    let mut lines = cast.lines();
    let header: serde_json::Value = serde_json::from_str(lines.next().expect("a header")).unwrap();
    assert_eq!(header["version"], 2, "{header}");
    assert_eq!(
        (header["width"].as_u64(), header["height"].as_u64()),
        (Some(80), Some(24))
    );
    let started = header["timestamp"].as_i64().expect("a start time");
    let now = time::OffsetDateTime::now_utc().unix_timestamp();
    assert!((now - started).abs() < 60, "{header}");
    assert_eq!(header["title"], "alpha/job-1");
    let mut text = String::new();
    let mut times = Vec::new();
    for line in lines {
        let event: (f64, String, String) =
            serde_json::from_str(line).unwrap_or_else(|e| panic!("{line}: {e}"));
        assert_eq!(event.1, "o", "{line}");
        times.push(event.0);
        text.push_str(&event.2);
    }
    assert_eq!(text.as_bytes(), raw, "{cast}");
    assert!(times.windows(2).all(|w| w[0] <= w[1]), "{cast}");
    assert_eq!(times[0], 0.0, "{cast}");
    assert!(*times.last().unwrap() >= 0.25, "world came 300 ms later: {cast}");
    assert!(!cast.contains('\x1b'), "escapes are JSON-escaped: {cast:?}");

    // The real player reads it and plays the same bytes.
    let Ok(player) = std::process::Command::new("asciinema").arg("--version").output() else {
        println!("SKIPPED (the player check): asciinema is not installed (.ci/run installs it)");
        fleet.stop().await;
        return;
    };
    assert!(player.status.success());
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("job.cast");
    std::fs::write(&file, &cast).unwrap();
    // `asciinema cat` wants a terminal: script(1) gives it one, raw, so
    // that the bytes pass unchanged.
    let played = std::process::Command::new("script")
        .args([
            "-qec",
            &format!("stty raw -echo; asciinema cat {}", file.display()),
            "/dev/null",
        ])
        .stdin(std::process::Stdio::null())
        .output()
        .expect("script runs asciinema cat");
    assert!(
        played.status.success(),
        "{}",
        String::from_utf8_lossy(&played.stderr)
    );
    assert_eq!(played.stdout, raw);
    fleet.stop().await;
}
