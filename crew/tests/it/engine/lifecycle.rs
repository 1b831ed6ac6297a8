//! Stopping jobs, and what a job leaves behind: nothing.

use std::time::{Duration, Instant};

use crew::engine::{Outcome, ReadFrom, Termination};
use nix::sys::signal::kill;
use nix::unistd::Pid;

use crate::support::*;

/// Host pids of every process in the job's cgroup.
fn job_pids(t: &TestEngine, id: &crew::engine::JobId) -> Vec<i32> {
    let procs = t.job_dir(id).join("cgroup.procs");
    std::fs::read_to_string(procs)
        .unwrap_or_default()
        .split_whitespace()
        .map(|p| p.parse().unwrap())
        .collect()
}

fn all_gone(pids: &[i32]) -> bool {
    pids.iter().all(|p| kill(Pid::from_raw(*p), None).is_err())
}

/// A job that ignores SIGTERM, double-forks and escapes into a new session.
const STUBBORN: &str = "trap '' TERM HUP; \
    ( trap '' TERM HUP; setsid sh -c \"trap '' TERM HUP; sleep 1000\" & ) ; \
    ( trap '' TERM; sleep 1000 & ) ; \
    echo started; sleep 1000";

async fn stop_stubborn_job(t: &TestEngine) {
    let info = t.handle.start(sh(STUBBORN)).await.unwrap();
    let mut pids = Vec::new();
    wait_for("the job's processes", Duration::from_secs(10), || {
        pids = job_pids(t, &info.id);
        pids.len() >= 5
    })
    .await;
    let started = Instant::now();
    let grace = Duration::from_millis(300);
    let end = bounded(
        "stop",
        Duration::from_secs(20),
        t.handle.stop(&info.id, Some(grace), "op"),
    )
    .await
    .unwrap();
    let took = started.elapsed();
    assert!(took >= grace, "SIGKILL came before the grace period: {took:?}");
    assert!(took < grace + Duration::from_secs(3), "stop took {took:?}");
    assert_eq!(
        ended(&end).outcome,
        Outcome::StoppedBy {
            who: "op".into(),
            termination: Termination::Signaled(libc::SIGKILL)
        }
    );
    assert!(
        all_gone(&pids),
        "a process of the job survived the stop: {pids:?}"
    );
    t.assert_clean().await;
}

#[tokio::test]
async fn stop_kills_a_sigterm_ignoring_double_forking_job() {
    let t = engine_or_skip!();
    stop_stubborn_job(&t).await;
    t.shutdown().await;
}

#[tokio::test]
async fn stop_works_by_freezing_where_cgroup_kill_is_missing() {
    let t = engine_or_skip!(shared, |c| c.force_freeze_kill = true);
    stop_stubborn_job(&t).await;
    t.shutdown().await;
}

#[tokio::test]
async fn a_polite_job_ends_on_sigterm_within_the_grace_period() {
    let t = engine_or_skip!();
    let info = t
        .handle
        .start(sh(
            "trap 'echo bye; exit 0' TERM; echo up; while :; do sleep 0.05; done",
        ))
        .await
        .unwrap();
    let mut reader = t.handle.reader(&info.id, ReadFrom::Start).unwrap();
    // Wait until the trap is installed.
    match reader.next().await.unwrap() {
        Some(crew::engine::OutputEvent::Data { bytes, .. }) => assert_eq!(&bytes[..], b"up\n"),
        other => panic!("{other:?}"),
    }
    let started = Instant::now();
    let end = t
        .handle
        .stop(&info.id, Some(Duration::from_secs(30)), "op")
        .await
        .unwrap();
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "waited for the grace period"
    );
    assert_eq!(
        ended(&end).outcome,
        Outcome::StoppedBy {
            who: "op".into(),
            termination: Termination::Exited(0)
        }
    );
    let (out, _, _) = read_all(&t.handle, &info.id, ReadFrom::Start).await;
    // SIGTERM went to every process: the shell also reports its `sleep`
    // ("Terminated", on stderr: before or after "bye", as the shim read
    // the two pipes).
    let out = String::from_utf8_lossy(&out);
    assert!(out.starts_with("up\n") && out.contains("bye\n"), "{out:?}");
    t.shutdown().await;
}

#[tokio::test]
async fn sleep_as_the_command_still_stops_promptly() {
    // With the command as PID 1 the kernel would drop SIGTERM; our init is
    // PID 1, so `sleep` dies of it at once.
    let t = engine_or_skip!();
    let info = t.handle.start(spec(&["/bin/sleep", "1000"])).await.unwrap();
    let started = Instant::now();
    let end = t
        .handle
        .stop(&info.id, Some(Duration::from_secs(30)), "op")
        .await
        .unwrap();
    assert!(started.elapsed() < Duration::from_secs(5));
    assert_eq!(
        ended(&end).outcome.termination(),
        Some(Termination::Signaled(libc::SIGTERM))
    );
    t.shutdown().await;
}

#[tokio::test]
async fn when_the_command_exits_what_it_left_running_is_killed() {
    let t = engine_or_skip!();
    let started = Instant::now();
    let (out, info) = run(&t.handle, sh("sleep 1000 & setsid sleep 1000 & echo done")).await;
    assert_eq!(out, "done\n");
    assert!(
        started.elapsed() < Duration::from_secs(10),
        "the follow waited for the leftovers"
    );
    assert_eq!(ended(&info).outcome, Outcome::Finished(Termination::Exited(0)));
    t.assert_clean().await;
    t.shutdown().await;
}

#[tokio::test]
async fn orphans_are_reaped_so_no_zombie_piles_up() {
    let t = engine_or_skip!();
    let mut s =
        sh("for i in $(seq 100); do (sleep 0.01 &) ; done; sleep 1; ps -e -o stat= | grep -c Z; true");
    s.limits.pids = Some(64);
    let (out, _) = run(&t.handle, s).await;
    assert_eq!(out.trim(), "0", "zombies inside the job");
    t.shutdown().await;
}

#[tokio::test]
async fn concurrent_stops_agree_on_one_final_state() {
    let t = engine_or_skip!();
    let info = t.handle.start(spec(&["/bin/sleep", "1000"])).await.unwrap();
    let stops: Vec<_> = (0..20)
        .map(|i| {
            let h = t.handle.clone();
            let id = info.id.clone();
            tokio::spawn(async move {
                h.stop(&id, Some(Duration::from_millis(200)), &format!("op{i}"))
                    .await
            })
        })
        .collect();
    let mut outcomes = Vec::new();
    for s in stops {
        outcomes.push(ended(&s.await.unwrap().unwrap()).outcome.clone());
    }
    assert!(outcomes.windows(2).all(|w| w[0] == w[1]), "{outcomes:?}");
    t.assert_clean().await;
    t.shutdown().await;
}

#[tokio::test]
async fn a_new_engine_adopts_the_jobs_a_previous_one_left_running() {
    if let Some(why) = skip_reason() {
        eprintln!("SKIPPED: {why}");
        return;
    }
    let t = TestEngine::start(Guard::shared().await, |_| {}).await;
    let info = t
        .handle
        .start(sh("i=0; while :; do echo $i; i=$((i+1)); sleep 0.01; done"))
        .await
        .unwrap();
    let crew::engine::JobState::Running { pid, .. } = info.state else {
        panic!("not running: {info:?}");
    };
    let shell = [pid as i32];
    let stored = |h: &crew::engine::EngineHandle| h.reader(&info.id, ReadFrom::Start).unwrap().stored_end();
    // Bounds, not pauses: generous for the emulated v2 VM on a busy host,
    // where each of the counter's `sleep`s is a slow exec.
    wait_for("some output", Duration::from_secs(60), || stored(&t.handle) > 50).await;
    // The crew goes; its job does not.
    let before = stored(&t.handle);
    let (parent, state) = t.leave().await;
    assert!(!all_gone(&shell), "the job died with its crew");
    let t2 = TestEngine::start_at(Guard::shared().await, parent, state, |_| {}).await;
    let again = t2.handle.get(&info.id).expect("the job is known again");
    assert_eq!(again.handle, info.handle);
    assert!(
        matches!(again.state, crew::engine::JobState::Running { pid: p, .. } if p == pid),
        "{again:?}"
    );
    assert!(
        job_pids(&t2, &info.id).contains(&shell[0]),
        "the very same process"
    );
    wait_for(
        "more output, under the new engine",
        Duration::from_secs(60),
        || stored(&t2.handle) > before + 50,
    )
    .await;
    // Its output has no gap: the counter it prints is unbroken.
    let stopped = t2
        .handle
        .stop(&info.id, Some(Duration::from_secs(1)), "test")
        .await
        .unwrap();
    assert!(
        matches!(&stopped.state, crew::engine::JobState::Ended(e) if matches!(e.outcome, Outcome::StoppedBy { .. })),
        "{stopped:?}"
    );
    let (bytes, _, _) = read_all(&t2.handle, &info.id, ReadFrom::Start).await;
    let out = String::from_utf8(bytes).unwrap();
    // The last line may have been cut by the stop.
    let numbers: Vec<u64> = out.lines().filter_map(|l| l.parse().ok()).collect();
    assert!(numbers.len() > 10, "{out}");
    assert!(
        numbers.iter().enumerate().all(|(i, n)| *n == i as u64),
        "a gap or a repeat in the output: {out}"
    );
    wait_for("the job to be gone", Duration::from_secs(10), || all_gone(&shell)).await;
    t2.shutdown().await;
}
