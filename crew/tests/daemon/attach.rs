//! A client that disconnects mid-attach costs the crew nothing that stays:
//! its fds go back to where they were, and the job runs on.

use std::time::Duration;

use certgen::Role;
use tasker_proto::v1 as pb;
use tokio_stream::StreamExt as _;

use crate::client::*;
use crate::support::*;

/// The first process named `comm` in the job's cgroup, once there.
async fn process_of(crew: &Crew, job: &pb::Job, comm: &str) -> Proc {
    let mut found = None;
    wait_for(
        &format!("{comm} of {} in its cgroup", job.handle),
        Duration::from_secs(10),
        || {
            found = job_pids(&crew.name, &job.id)
                .into_iter()
                .filter_map(Proc::of)
                .find(|p| p.comm == comm);
            found.is_some()
        },
    )
    .await;
    found.unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_that_leaves_mid_attach_frees_its_fds_and_the_job_runs_on() {
    skip_unless_crew_can_run!();
    ensure_user(ALICE);
    let mut crew = Crew::start("fds", &[]).await;
    let mut alice = crew.client(ALICE, Role::User).await;
    // One job writes now and then, so an attach is mid-stream when its
    // client goes; the other never writes, so its attach waits on the job.
    let ticking = start(
        &mut alice,
        &["/bin/sh", "-c", "while :; do echo tick; sleep 0.1; done"],
    )
    .await
    .unwrap();
    let silent = start(&mut alice, &["/bin/sleep", "1000"]).await.unwrap();
    let procs = [
        process_of(&crew, &ticking, "sh").await,
        process_of(&crew, &silent, "sleep").await,
    ];

    // The baseline: the crew idle with these jobs and its ready shims,
    // which it tops up in the background after a start; so wait for the
    // count to settle (the same over ten consecutive reads).
    let mut seen = Vec::new();
    wait_for("the crew's fd count to settle", Duration::from_secs(10), || {
        seen.push(crew.fd_count());
        seen.len() >= 10 && seen[seen.len() - 10..].iter().all(|&n| n == seen[seen.len() - 1])
    })
    .await;
    let baseline = *seen.last().unwrap();

    for (round, job) in [&ticking, &silent, &ticking, &silent].into_iter().enumerate() {
        let mut bob = crew.client(ALICE, Role::User).await;
        let (tx, rx) = tokio::sync::mpsc::channel(1);
        tx.send(open_msg(&job.id, true)).await.unwrap();
        let mut stream = bob
            .attach_job(tokio_stream::wrappers::ReceiverStream::new(rx))
            .await
            .unwrap()
            .into_inner();
        // Attached (writable: the pump and the input task both run), and
        // for the ticking job, output flowing.
        let (mut attached, mut outputs) = (false, 0);
        while !attached || (job.id == ticking.id && outputs < 2) {
            let msg = bounded("the attach", Duration::from_secs(10), stream.next())
                .await
                .expect("the attach goes on")
                .unwrap();
            match msg.msg {
                Some(pb::attach_job_response::Msg::Attached(a)) => {
                    assert!(a.writable, "{a:?}");
                    attached = true;
                }
                Some(pb::attach_job_response::Msg::Output(_)) => outputs += 1,
                _ => {}
            }
        }
        let during = crew.fd_count();
        assert!(
            during > baseline,
            "round {round}: a connection and a reader should cost fds ({during} vs {baseline})"
        );
        // Gone without a word: no detach, no half-close.
        drop((stream, tx, bob));
        wait_for(
            &format!(
                "round {round} ({}): the crew's fds back to {baseline}",
                job.handle
            ),
            Duration::from_secs(5),
            || crew.fd_count() == baseline,
        )
        .await;
    }

    for job in [&ticking, &silent] {
        let now = get(&mut alice, &job.id).await;
        assert_eq!(now.phase, pb::JobPhase::Running as i32, "{now:?}");
    }
    for p in &procs {
        assert!(p.exists(), "{p:?} is gone: a client's leaving stopped its job");
    }
    assert_eq!(crew.stop().await.code(), Some(0));
}
