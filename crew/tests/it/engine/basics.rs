//! Starting jobs, their output, stdin, and their final state.

use std::time::Duration;

use bytes::Bytes;
use crew::engine::{EngineError, JobEvent, JobState, Outcome, Phase, ReadFrom, Termination};

use crate::support::*;

#[tokio::test]
async fn output_keeps_both_streams_in_the_order_written_and_the_exit_code_is_kept() {
    let t = engine_or_skip!();
    // Writes apart in time keep their order across the two pipes (a burst
    // into both before the shim wakes would not: docs/architecture.md).
    let (out, info) = run(
        &t.handle,
        sh("echo out; sleep 0.1; echo err >&2; sleep 0.1; echo out2; exit 3"),
    )
    .await;
    assert_eq!(out, "out\nerr\nout2\n");
    let e = ended(&info);
    assert_eq!(e.outcome, Outcome::Finished(Termination::Exited(3)));
    assert_eq!(info.state.phase(), Phase::Failed);
    assert!(e.started_at.is_some());
    assert!(e.totals.cpu_usec.is_some(), "cpu time recorded: {:?}", e.totals);
    assert!(
        e.totals.peak_memory_bytes.is_some_and(|p| p > 0),
        "peak memory: {:?}",
        e.totals
    );

    let (_, ok) = run(&t.handle, spec(&["/bin/true"])).await;
    assert_eq!(ok.state.phase(), Phase::Completed);
    t.assert_clean().await;
    t.shutdown().await;
}

#[tokio::test]
async fn failed_starts_say_why_and_leave_nothing_behind() {
    let t = engine_or_skip!();
    let dir = tempfile::tempdir().unwrap();
    let script = dir.path().join("noexec.sh");
    std::fs::write(&script, "#!/bin/sh\necho hi\n").unwrap();
    let script = script.to_str().unwrap().to_owned();
    let mut bad_cwd = spec(&["/bin/true"]);
    bad_cwd.cwd = Some("/no/such/dir".into());
    let cases = [
        (spec(&["/bin/nosuch"]), "no such file: /bin/nosuch"),
        (
            spec(&["nosuch-command-42"]),
            "command not found in PATH: nosuch-command-42",
        ),
        (spec(&[&script]), "permission denied"),
        (spec(&["/etc"]), "permission denied"),
        (bad_cwd, "bad cwd /no/such/dir"),
    ];
    for (spec, expected) in cases {
        let info = t
            .handle
            .start(spec)
            .await
            .expect("a failed start is a job, not an error");
        // The start call already knows.
        let JobState::Ended(e) = &info.state else {
            panic!("start returned {:?}", info.state)
        };
        match &e.outcome {
            Outcome::StartFailed(why) => assert!(why.contains(expected), "{why:?} lacks {expected:?}"),
            other => panic!("expected start_failed, got {other}"),
        }
        assert!(e.started_at.is_none());
        assert_eq!(info.state.phase(), Phase::Failed);
    }
    t.assert_clean().await;
    t.shutdown().await;
}

#[tokio::test]
async fn stdin_reaches_a_pipe_job_and_close_gives_eof() {
    let t = engine_or_skip!();
    let info = t.handle.start(spec(&["/bin/cat"])).await.unwrap();
    let reader = tokio::spawn({
        let h = t.handle.clone();
        let id = info.id.clone();
        async move { read_all(&h, &id, ReadFrom::Start).await }
    });
    t.handle
        .write_stdin(&info.id, Bytes::from_static(b"hello\n"))
        .await
        .unwrap();
    let big = vec![b'x'; 3 << 20];
    t.handle
        .write_stdin(&info.id, Bytes::from(big.clone()))
        .await
        .unwrap();
    t.handle.close_stdin(&info.id).await.unwrap();
    let (out, _, end) = bounded("cat to end", Duration::from_secs(60), reader)
        .await
        .unwrap();
    assert_eq!(out.len(), 6 + big.len());
    assert_eq!(
        String::from_utf8_lossy(&out[..6]),
        "hello\n",
        "stdin bytes out of order"
    );
    assert!(out[6..] == big[..], "stdin bytes differ");
    assert_eq!(ended(&end).outcome, Outcome::Finished(Termination::Exited(0)));
    // Stdin of an ended job is an error that says so.
    let err = t
        .handle
        .write_stdin(&info.id, Bytes::from_static(b"late"))
        .await
        .unwrap_err();
    assert!(err.to_string().contains("no stdin"), "{err}");
    t.assert_clean().await;
    t.shutdown().await;
}

#[tokio::test]
async fn a_job_past_its_timeout_is_stopped_and_marked_timed_out() {
    let t = engine_or_skip!();
    let mut s = spec(&["/bin/sleep", "100"]);
    s.timeout = Some(Duration::from_millis(300));
    let info = t.handle.start(s).await.unwrap();
    let (_, _, end) = read_all(&t.handle, &info.id, ReadFrom::Start).await;
    let e = ended(&end);
    assert_eq!(e.outcome, Outcome::TimedOut(Termination::Signaled(libc::SIGTERM)));
    assert_eq!(end.state.phase(), Phase::Stopped);
    t.assert_clean().await;
    t.shutdown().await;
}

#[tokio::test]
async fn subscribers_hear_creation_and_every_state_change() {
    let t = engine_or_skip!();
    let mut events = t.handle.subscribe();
    let info = t.handle.start(spec(&["/bin/true"])).await.unwrap();
    let mut seen = Vec::new();
    while seen.last() != Some(&"ended") {
        let event = bounded("job event", Duration::from_secs(10), events.recv())
            .await
            .unwrap();
        let (kind, job) = match event {
            JobEvent::Created(j) => ("created", j),
            JobEvent::StateChanged(j) => match j.state {
                JobState::Running { .. } => ("running", j),
                JobState::Ended(_) => ("ended", j),
                JobState::Starting => ("starting", j),
            },
            JobEvent::Archived(j) => ("archived", j),
        };
        assert_eq!(job.id, info.id);
        seen.push(kind);
    }
    assert_eq!(seen, ["created", "running", "ended"]);
    t.handle.archive(&info.id).unwrap();
    assert!(matches!(events.recv().await.unwrap(), JobEvent::Archived(_)));
    t.shutdown().await;
}

#[tokio::test]
async fn jobs_are_found_by_handle_name_and_id_prefix_and_archive_hides_them() {
    let t = engine_or_skip!();
    let mut s = spec(&["/bin/sleep", "100"]);
    s.name = Some("napper".into());
    let running = t.handle.start(s).await.unwrap();
    assert!(matches!(running.state, JobState::Running { pid, .. } if pid > 0));
    assert_eq!(running.handle, "job-1");
    let found = |r: &str| t.handle.resolve(r).map(|j| j.id);
    assert_eq!(found("job-1").unwrap(), running.id);
    assert_eq!(found("napper").unwrap(), running.id);
    assert_eq!(found(running.id.as_str()).unwrap(), running.id);
    assert_eq!(found(&running.id.as_str()[..6]).unwrap(), running.id);
    assert!(matches!(found("job-99"), Err(EngineError::NotFound(_))));
    // Too short to be an id prefix, and never a name: refused, not guessed.
    assert!(matches!(
        found(&running.id.as_str()[..5]),
        Err(EngineError::BadRef(_))
    ));
    // A name held by a job that is not archived is not given twice.
    let mut twin = spec(&["/bin/true"]);
    twin.name = Some("napper".into());
    let err = t.handle.start(twin.clone()).await.unwrap_err();
    assert!(
        matches!(&err, EngineError::NameTaken { name, holder } if name == "napper" && holder == "job-1"),
        "{err}"
    );

    let err = t.handle.archive(&running.id).unwrap_err();
    assert!(err.to_string().contains("only an ended job"), "{err}");
    let usage = t.handle.usage(&running.id).expect("usage of a running job");
    assert!(usage.memory_bytes > 0, "{usage:?}");

    let stopped = t
        .handle
        .stop(&running.id, Some(Duration::from_secs(1)), "alice")
        .await
        .unwrap();
    assert_eq!(
        ended(&stopped).outcome,
        Outcome::StoppedBy {
            who: "alice".into(),
            termination: Termination::Signaled(libc::SIGTERM)
        }
    );
    assert_eq!(t.handle.usage(&running.id), None);
    // Ended but not archived, it still holds its name.
    assert!(matches!(
        t.handle.start(twin.clone()).await,
        Err(EngineError::NameTaken { .. })
    ));
    t.handle.archive(&running.id).unwrap();
    assert!(t.handle.list(false).is_empty());
    assert_eq!(t.handle.list(true).len(), 1);
    // A second stop of an ended job returns its final state.
    let again = t.handle.stop(&running.id, None, "bob").await.unwrap();
    assert_eq!(ended(&again).outcome, ended(&stopped).outcome);
    // The name is free once archived, and then names the new job; the
    // archived one keeps its handle.
    assert_eq!(found("napper").unwrap(), running.id);
    let second = t.handle.start(twin.clone()).await.unwrap();
    assert_eq!(found("napper").unwrap(), second.id);
    assert_eq!(found("job-1").unwrap(), running.id);
    // With no job holding it, a name two archived jobs had is ambiguous,
    // and the error lists both.
    read_all(&t.handle, &second.id, ReadFrom::Start).await;
    t.handle.archive(&second.id).unwrap();
    match found("napper") {
        Err(EngineError::Ambiguous { matches, .. }) => {
            assert_eq!(matches.len(), 2, "{matches:?}");
            assert!(matches.iter().any(|m| m.starts_with("job-1 ")), "{matches:?}");
            assert!(
                matches
                    .iter()
                    .any(|m| m.starts_with(&format!("{} ", second.handle))),
                "{matches:?}"
            );
        }
        other => panic!("{other:?}"),
    }
    t.assert_clean().await;
    t.shutdown().await;
}

#[tokio::test]
async fn bad_specs_are_refused_before_anything_is_created() {
    let t = engine_or_skip!();
    let mut s = spec(&["/bin/true"]);
    s.limits.memory = Some(0);
    let err = t.handle.start(s).await.unwrap_err();
    assert!(err.to_string().contains("memory limit"), "{err}");
    let err = t.handle.start(spec(&[])).await.unwrap_err();
    assert!(err.to_string().contains("argv is empty"), "{err}");
    assert!(t.handle.list(true).is_empty());
    t.assert_clean().await;
    t.shutdown().await;
}

#[tokio::test]
async fn the_engine_reports_the_cgroup_mode_of_the_host() {
    let t = engine_or_skip!();
    let desc = t.handle.cgroup_description();
    eprintln!("{desc}");
    let pure_v2 = unified_root() == std::path::Path::new("/sys/fs/cgroup");
    let want = if pure_v2 {
        crew::engine::CgroupMode::V2
    } else {
        crew::engine::CgroupMode::Hybrid
    };
    assert_eq!(t.handle.cgroup_mode(), want, "{desc}");
    if pure_v2 {
        assert!(desc.contains("memory=v2") && desc.contains("io=v2"), "{desc}");
    }
    t.shutdown().await;
}

#[tokio::test]
async fn no_output_is_lost_however_quickly_a_job_ends() {
    // A job can run and end before its shim is even told about it (made
    // sure of here with a pause); the output must still all be there, pipe
    // or tty (containerd's TestContainerExecLargeOutputWithTTY, in small).
    let t = engine_or_skip!(shared, |c| c.test_serve_delay =
        std::time::Duration::from_millis(20));
    for i in 0..scaled(30) {
        let (out, info) = run(&t.handle, spec(&["/bin/echo", "hi"])).await;
        assert_eq!(out, "hi\n", "run {i}");
        assert_eq!(ended(&info).outcome, Outcome::Finished(Termination::Exited(0)));
    }
    for tty in [false, true] {
        let mut s = spec(&["/usr/bin/seq", "1", "20000"]);
        if tty {
            s.tty = Some(crew::engine::WinSize { rows: 24, cols: 80 });
        }
        let (out, _) = run(&t.handle, s).await;
        let want = if tty {
            "19999\r\n20000\r\n"
        } else {
            "19999\n20000\n"
        };
        assert!(
            out.ends_with(want),
            "tty={tty}: the end is missing: {:?}",
            &out[out.len().saturating_sub(40)..]
        );
    }
    t.assert_clean().await;
    t.shutdown().await;
}
