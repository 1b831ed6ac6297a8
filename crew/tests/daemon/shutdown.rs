//! SIGTERM and SIGINT with `--stop-jobs-on-exit`: the crew stops every job
//! (SIGTERM, SIGKILL after the grace period), ends the streams of connected
//! clients, removes its cgroups and exits 0. (Without the flag, the jobs run
//! on: `restart.rs`.)

use std::time::{Duration, Instant};

use certgen::Role;
use nix::sys::signal::Signal;
use tasker_proto::v1 as pb;
use tokio_stream::StreamExt as _;

use crate::client::*;
use crate::support::*;

/// The bound on a shutdown with a job that ignores SIGTERM and clients
/// that stay connected: the grace period (1 s) plus the stop and cleanup.
const SHUTDOWN_BOUND: Duration = Duration::from_secs(15);

async fn shuts_down_cleanly_on(sig: Signal) {
    ensure_user(ALICE);
    let mut crew = Crew::start("sig", &["--stop-jobs-on-exit"]).await;
    let mut alice = crew.client(ALICE, Role::User).await;
    let job = start(&mut alice, &["/bin/sh", "-c", "trap '' TERM; sleep 1000"])
        .await
        .unwrap();
    assert_eq!(job.phase, pb::JobPhase::Running as i32, "{job:?}");

    // Once `sleep` runs, the trap is set: the job will ignore the SIGTERM.
    let mut procs: Vec<Proc> = Vec::new();
    wait_for("the job's sleep in its cgroup", Duration::from_secs(10), || {
        procs = job_pids(&crew.name, &job.id)
            .into_iter()
            .filter_map(Proc::of)
            .collect();
        procs.iter().any(|p| p.comm == "sleep")
    })
    .await;

    // Clients connected through the shutdown: a watcher and a follower,
    // whose streams must end rather than hold the crew up.
    let mut watch = alice
        .watch_jobs(pb::WatchJobsRequest {})
        .await
        .unwrap()
        .into_inner();
    assert!(
        bounded("the snapshot", Duration::from_secs(10), watch.next())
            .await
            .is_some()
    );
    let (tx, rx) = tokio::sync::mpsc::channel(1);
    tx.send(open_msg(&job.id, false)).await.unwrap();
    let mut attach = alice
        .attach_job(tokio_stream::wrappers::ReceiverStream::new(rx))
        .await
        .unwrap()
        .into_inner();
    assert!(
        bounded("attached", Duration::from_secs(10), attach.next())
            .await
            .is_some()
    );

    let t0 = Instant::now();
    crew.signal(sig);
    let status = crew.wait_exit(SHUTDOWN_BOUND).await;
    let took = t0.elapsed();
    let log = crew.stderr.text();
    assert_eq!(status.code(), Some(0), "{status}\n{log}");
    assert!(
        took >= Duration::from_millis(900),
        "the crew exited in {took:?}, before the job's 1 s grace period was over\n{log}"
    );
    assert!(
        log.contains(&format!("{sig:?}")),
        "no record of the signal\n{log}"
    );
    assert!(
        log.contains("grace period over; killing every process of the job"),
        "the job ignored SIGTERM, so it had to be killed\n{log}"
    );
    assert!(
        !log.contains("did not drain"),
        "connected clients held the shutdown up\n{log}"
    );

    for p in &procs {
        assert!(!p.exists(), "{p:?} of the job outlived the crew");
    }
    let left = crew_cgroups_left(&crew.name);
    assert!(left.is_empty(), "the crew left its cgroups: {left:?}");

    // The streams ended: nothing more, and soon.
    drop(tx);
    let rest = bounded("the watch stream to end", Duration::from_secs(5), async {
        let mut n = 0;
        while let Some(Ok(_)) = watch.next().await {
            n += 1;
        }
        n
    })
    .await;
    assert!(rest < 100, "{rest}");
    bounded("the attach stream to end", Duration::from_secs(5), async {
        while let Some(Ok(_)) = attach.next().await {}
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_kills_a_job_that_ignores_it_after_the_grace_and_exits_0() {
    skip_unless_crew_can_run!();
    shuts_down_cleanly_on(Signal::SIGTERM).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigint_does_the_same() {
    skip_unless_crew_can_run!();
    shuts_down_cleanly_on(Signal::SIGINT).await;
}

/// The terminal a crew was started from closing must not kill it with its
/// cgroups left behind.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sighup_does_the_same() {
    skip_unless_crew_can_run!();
    shuts_down_cleanly_on(Signal::SIGHUP).await;
}
