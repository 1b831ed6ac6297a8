//! A crew's exit is not its jobs' end: killed with SIGKILL, or stopped
//! with SIGTERM (without `--stop-jobs-on-exit`), it leaves them running,
//! and the next crew with its name and state directory takes them over:
//! same id, same handle, output without a gap, stdin and stop working, and
//! a job that ended while no crew ran ends with its true outcome. One crew
//! owns a name and a state directory at a time.

use std::path::PathBuf;
use std::time::{Duration, SystemTime};

use certgen::Role;
use nix::sys::signal::Signal;
use tasker_proto::v1 as pb;
use tokio_stream::StreamExt as _;

use crate::client::*;
use crate::support::*;

/// The bytes stored of a job's output so far (its file, past the header).
fn stored(crew: &Crew, job: &pb::Job) -> u64 {
    let path: PathBuf = crew.state.path().join("jobs").join(format!("{}.out", job.id));
    std::fs::metadata(path).map_or(0, |m| m.len().saturating_sub(4096))
}

fn outcome(job: &pb::Job) -> &pb::Outcome {
    job.outcome.as_ref().expect("an outcome")
}

fn ended_at(job: &pb::Job) -> SystemTime {
    let t = job.ended_at.as_ref().expect("an end time");
    SystemTime::UNIX_EPOCH + Duration::new(t.seconds as u64, t.nanos as u32)
}

/// A job that counts: its output is `0\n1\n2\n...`, so any gap or repeat
/// shows.
const COUNTER: &str = "i=0; while :; do echo $i; i=$((i+1)); sleep 0.005; done";

fn assert_counts(out: &[u8]) {
    let text = String::from_utf8_lossy(out);
    // The last line may have been cut by the stop.
    let numbers: Vec<u64> = text.lines().filter_map(|l| l.parse().ok()).collect();
    assert!(numbers.len() > 20, "too little output: {text:?}");
    for (i, n) in numbers.iter().enumerate() {
        assert_eq!(*n, i as u64, "a gap or a repeat at line {i}");
    }
}

async fn survives(how: Signal) {
    ensure_user(ALICE);
    let mut crew = Crew::start("restart", &[]).await;
    let mut alice = crew.client(ALICE, Role::User).await;
    let counter = start(&mut alice, &["/bin/sh", "-c", COUNTER]).await.unwrap();
    let cat = start(&mut alice, &["/bin/cat"]).await.unwrap();
    let ender = start(&mut alice, &["/bin/sleep", "1000"]).await.unwrap();
    let done = start(&mut alice, &["/bin/true"]).await.unwrap();
    // Bounds, not pauses: generous for the emulated v2 VM, where each of
    // the counter's `sleep`s is an exec that takes a while.
    wait_for("some output", Duration::from_secs(60), || {
        stored(&crew, &counter) > 60
    })
    .await;

    // The crew goes.
    match how {
        Signal::SIGKILL => crew.kill9().await,
        sig => {
            crew.signal(sig);
            let status = crew.wait_exit(Duration::from_secs(30)).await;
            assert_eq!(status.code(), Some(0), "{}", crew.stderr.text());
        }
    }
    // While no crew runs: the counter goes on writing, and `ender` is
    // killed (SIGTERM): it must come back as ended by that signal.
    let before = stored(&crew, &counter);
    wait_for(
        "output written while no crew runs",
        Duration::from_secs(60),
        || stored(&crew, &counter) > before + 60,
    )
    .await;
    let exit = crew.state.path().join("jobs").join(format!("{}.exit", ender.id));
    let cat_pid = get_pid_of(&crew, &cat);
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(get_pid_of(&crew, &ender)),
        Signal::SIGTERM,
    )
    .unwrap();
    wait_for(
        "the job that ended to leave its exit record",
        Duration::from_secs(10),
        || exit.exists(),
    )
    .await;
    let outage_over = SystemTime::now();

    let crew = crew.restart(&[]).await;
    let log = crew.stderr.text();
    assert!(log.contains("found the jobs of the previous crew"), "{log}");
    let mut alice = crew.client(ALICE, Role::User).await;

    // The same jobs, by the same handles.
    let c = get(&mut alice, &counter.handle).await;
    assert_eq!(
        (c.id.as_str(), c.phase),
        (counter.id.as_str(), pb::JobPhase::Running as i32),
        "{c:?}"
    );
    let e = get(&mut alice, &ender.handle).await;
    assert_eq!(e.id, ender.id);
    assert_eq!(e.phase, pb::JobPhase::Failed as i32, "{e:?}");
    assert!(
        ended_at(&e) <= outage_over,
        "its true end time, not the new crew's start"
    );
    assert_eq!(
        outcome(&e).termination,
        Some(pb::outcome::Termination::Signal(15)),
        "{e:?}"
    );
    let d = get(&mut alice, &done.handle).await;
    assert_eq!(
        d.phase,
        pb::JobPhase::Completed as i32,
        "an ended job's record survives: {d:?}"
    );
    // Handles keep counting.
    let next = start(&mut alice, &["/bin/true"]).await.unwrap();
    assert_eq!(next.handle, "job-5");

    // stdin reaches an adopted job, and its output comes back.
    let (tx, rx) = tokio::sync::mpsc::channel(4);
    tx.send(open_msg(&cat.id, true)).await.unwrap();
    let mut stream = alice
        .attach_job(tokio_stream::wrappers::ReceiverStream::new(rx))
        .await
        .unwrap()
        .into_inner();
    tx.send(pb::AttachJobRequest {
        msg: Some(pb::attach_job_request::Msg::Stdin(
            b"hello again\n".to_vec().into(),
        )),
    })
    .await
    .unwrap();
    bounded(
        "the adopted job to echo its stdin",
        Duration::from_secs(10),
        async {
            let mut seen = Vec::new();
            while let Some(Ok(msg)) = stream.next().await {
                if let Some(pb::attach_job_response::Msg::Output(o)) = msg.msg {
                    seen.extend_from_slice(&o.data);
                    if seen.windows(11).any(|w| w == b"hello again") {
                        return;
                    }
                }
            }
            panic!("no echo");
        },
    )
    .await;
    assert_eq!(get_pid_of(&crew, &cat), cat_pid, "the very same process");

    // Stop works; the counter's output has no gap across the outage.
    for job in [&counter, &cat] {
        let stopped = alice
            .stop_job(pb::StopJobRequest {
                job: job.id.clone(),
                grace: Some(prost_types::Duration { seconds: 1, nanos: 0 }),
            })
            .await
            .unwrap()
            .into_inner()
            .job
            .unwrap();
        assert_eq!(stopped.phase, pb::JobPhase::Stopped as i32, "{stopped:?}");
    }
    let (out, _) = output_of(&mut alice, &counter.id).await;
    assert_counts(&out);
    // Nothing of the jobs is left.
    wait_for("the job cgroups to go", Duration::from_secs(10), || {
        job_cgroups_left(&crew.name).is_empty()
    })
    .await;
}

/// The pid of a running job's command, as the crew reports it.
fn get_pid_of(crew: &Crew, job: &pb::Job) -> i32 {
    let pids = job_pids(&crew.name, &job.id);
    *pids
        .first()
        .unwrap_or_else(|| panic!("no process of {}", job.handle))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_crew_killed_with_sigkill_leaves_its_jobs_to_the_next() {
    skip_unless_crew_can_run!();
    survives(Signal::SIGKILL).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_crew_stopped_with_sigterm_leaves_its_jobs_to_the_next() {
    skip_unless_crew_can_run!();
    survives(Signal::SIGTERM).await;
}

/// A shim killed while no crew runs (or a host rebooted): the job is lost,
/// and says so; nothing of it is left.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_shim_gone_while_no_crew_ran_makes_its_job_lost() {
    skip_unless_crew_can_run!();
    ensure_user(ALICE);
    let mut crew = Crew::start("lost", &[]).await;
    let mut alice = crew.client(ALICE, Role::User).await;
    let job = start(&mut alice, &["/bin/sleep", "1000"]).await.unwrap();
    let pid = get_pid_of(&crew, &job);
    crew.kill9().await;
    // The shim is the parent of the job's init, which is the parent of the
    // command.
    let init = Proc::of(pid).map(|p| p.ppid).expect("the job runs");
    let shim = Proc::of(init).map(|p| p.ppid).expect("its init runs");
    nix::sys::signal::kill(nix::unistd::Pid::from_raw(shim), Signal::SIGKILL).unwrap();
    let command = Proc::of(pid).expect("the job runs");
    wait_for("the job to die with its shim", Duration::from_secs(10), || {
        !command.exists()
    })
    .await;

    let crew = crew.restart(&[]).await;
    let mut alice = crew.client(ALICE, Role::User).await;
    let j = get(&mut alice, &job.handle).await;
    assert_eq!(j.phase, pb::JobPhase::Failed as i32, "{j:?}");
    let Some(pb::outcome::Reason::Lost(lost)) = &outcome(&j).reason else {
        panic!("not lost: {j:?}");
    };
    assert!(lost.reason.contains("shim is gone"), "{lost:?}");
    assert_eq!(job_cgroups_left(&crew.name), Vec::<String>::new());
}

/// A second crew with the same name, or the same state directory, refuses
/// to start, naming the first; the first goes on untouched.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_crew_per_name_and_per_state_directory() {
    skip_unless_crew_can_run!();
    ensure_user(ALICE);
    let crew = Crew::start("owner", &[]).await;
    let mut alice = crew.client(ALICE, Role::User).await;
    let job = start(&mut alice, &["/bin/sleep", "1000"]).await.unwrap();
    let other_state = tempfile::tempdir().unwrap();
    let other_name = unique_name("intruder");
    let _ = crew.pki.crew(&other_name);
    let port = free_port().to_string();
    let base = |name: &str, state: &std::path::Path| {
        vec![
            arg("--name"),
            arg(name),
            arg("--listen"),
            arg(format!("127.0.0.1:{port}")),
            arg("--certs"),
            arg(crew.pki.dir()),
            arg("--state-dir"),
            arg(state),
        ]
    };
    for (args, what) in [
        (base(&crew.name, other_state.path()), "crew's cgroup"),
        (base(&other_name, crew.state.path()), "state directory"),
    ] {
        let refusal = run_to_exit(&[], &args).await;
        assert_eq!(refusal.status.code(), Some(2), "{:?}", refusal.stderr);
        let line = refusal.stderr.join("\n");
        assert_eq!(refusal.stderr.len(), 1, "one line: {line}");
        assert!(line.contains(what), "{line}");
        assert!(line.contains(&format!("PID {}", crew.pid)), "{line}");
    }
    // The first crew is untouched: its job runs, and it starts and stops
    // jobs.
    assert_eq!(get(&mut alice, &job.id).await.phase, pb::JobPhase::Running as i32);
    let more = start(&mut alice, &["/bin/true"]).await.unwrap();
    assert!(more.handle.starts_with("job-"), "{more:?}");
    let stopped = alice
        .stop_job(pb::StopJobRequest {
            job: job.id.clone(),
            grace: None,
        })
        .await
        .unwrap()
        .into_inner()
        .job
        .unwrap();
    assert_eq!(stopped.phase, pb::JobPhase::Stopped as i32);
}

/// Signals the crew has no use for do not kill it, nor does a stderr that
/// became a closed pipe (a log collector that went away): it serves on, and
/// still exits cleanly on SIGTERM.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stray_signals_and_a_closed_stderr_do_not_stop_the_crew() {
    skip_unless_crew_can_run!();
    ensure_user(ALICE);
    let mut crew = Crew::start("stray", &[]).await;
    let mut alice = crew.client(ALICE, Role::User).await;
    crew.stderr.hang_up_after_next_line();
    crew.signal(Signal::SIGUSR1);
    wait_for("stderr to be closed", Duration::from_secs(10), || {
        crew.stderr.is_closed()
    })
    .await;
    assert!(crew.stderr.has("SIGUSR1 ignored"), "{}", crew.stderr.text());
    crew.signal(Signal::SIGUSR2);
    crew.signal(Signal::SIGPIPE);
    // Every start and end is logged: each write now fails.
    for _ in 0..3 {
        let job = start(&mut alice, &["/bin/echo", "still here"]).await.unwrap();
        let (out, end) = output_of(&mut alice, &job.id).await;
        assert_eq!(out, b"still here\n");
        assert_eq!(end.phase, pb::JobPhase::Completed as i32);
    }
    crew.signal(Signal::SIGTERM);
    let status = crew.wait_exit(Duration::from_secs(30)).await;
    assert_eq!(status.code(), Some(0), "{status}");
}
