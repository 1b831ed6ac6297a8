//! Restarts under load: many jobs, followers mid-stream, jobs ending while no
//! crew runs; and a crew killed again and again while clients start jobs.
//! Nothing the crew acknowledged is lost, and what followers read is
//! exactly what the jobs wrote.

use std::collections::HashMap;
use std::time::Duration;

use certgen::Role;
use tasker_proto::v1 as pb;
use tokio_stream::StreamExt as _;

use crate::client::*;
use crate::support::*;

/// A follower: reads a job's output from `offset` until the stream breaks
/// (the crew went) or the job ends. Returns what it read and whether it saw
/// the end.
async fn follow(client: &mut Client, job: &str, offset: u64) -> (Vec<u8>, bool) {
    use pb::attach_job_request::{Msg, Open, open};
    let (tx, rx) = tokio::sync::mpsc::channel(1);
    tx.send(pb::AttachJobRequest {
        msg: Some(Msg::Open(Open {
            job: job.to_owned(),
            from: Some(open::From::Offset(offset)),
            write: false,
            ..Default::default()
        })),
    })
    .await
    .unwrap();
    let Ok(stream) = client
        .attach_job(tokio_stream::wrappers::ReceiverStream::new(rx))
        .await
    else {
        return (Vec::new(), false);
    };
    let mut stream = stream.into_inner();
    let mut out = Vec::new();
    while let Some(Ok(msg)) = stream.next().await {
        match msg.msg {
            Some(pb::attach_job_response::Msg::Output(o)) => {
                assert_eq!(o.offset, offset + out.len() as u64, "a gap or an overlap");
                out.extend_from_slice(&o.data);
            }
            Some(pb::attach_job_response::Msg::Ended(_)) => return (out, true),
            Some(pb::attach_job_response::Msg::Dropped(d)) => panic!("dropped: {d:?}"),
            _ => {}
        }
    }
    drop(tx);
    (out, false)
}

/// Every job the crew knows, by id (every page of `ListJobs`).
async fn all_jobs(client: &mut Client) -> HashMap<String, pb::Job> {
    let mut all = HashMap::new();
    let mut token = String::new();
    loop {
        let page = client
            .list_jobs(pb::ListJobsRequest {
                include_archived: true,
                page_token: token,
                ..Default::default()
            })
            .await
            .expect("ListJobs")
            .into_inner();
        all.extend(page.jobs.into_iter().map(|j| (j.id.clone(), j)));
        if page.next_page_token.is_empty() {
            return all;
        }
        token = page.next_page_token;
    }
}

async fn stop(client: &mut Client, job: &str) -> pb::Job {
    client
        .stop_job(pb::StopJobRequest {
            job: job.to_owned(),
            grace: Some(prost_types::Duration { seconds: 2, nanos: 0 }),
        })
        .await
        .expect("StopJob")
        .into_inner()
        .job
        .unwrap()
}

/// 200 jobs (scaled by `TASKER_TEST_SCALE`): counters writing all along,
/// sleepers, and jobs that end while no crew runs.
/// A follower on each counter reads across the restart (resuming at its
/// byte offset): what it read is byte for byte the job's output.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_restart_under_load_accounts_for_every_job_and_every_byte() {
    skip_unless_crew_can_run!();
    ensure_user(ALICE);
    // A tenth write all along (each a shell forking `sleep`: more would
    // measure the host's fork rate), the rest sleep or end.
    let n = (scaled(200) / 10).max(1) as usize;
    let mut crew = Crew::start("load", &[]).await;
    let mut alice = crew.client(ALICE, Role::User).await;
    let mut counters = Vec::new();
    let mut sleepers = Vec::new();
    let mut enders = Vec::new();
    for i in 0..n * 10 {
        match i % 10 {
            0 => counters.push(
                start(
                    &mut alice,
                    &[
                        "/bin/sh",
                        "-c",
                        "i=0; while :; do echo $i; i=$((i+1)); sleep 0.1; done",
                    ],
                )
                .await
                .unwrap(),
            ),
            1..=5 => sleepers.push(start(&mut alice, &["/bin/sleep", "1000"]).await.unwrap()),
            _ => enders.push(start(&mut alice, &["/bin/sh", "-c", "read x"]).await.unwrap()),
        }
    }
    // Followers on the counters, mid-stream when the crew goes.
    let mut followers = Vec::new();
    for job in &counters {
        let mut client = crew.client(ALICE, Role::User).await;
        let id = job.id.clone();
        followers.push(tokio::spawn(async move { follow(&mut client, &id, 0).await }));
    }
    wait_for("the counters to count", Duration::from_secs(30), || {
        counters.iter().all(|c| {
            std::fs::metadata(crew.state.path().join("jobs").join(format!("{}.out", c.id)))
                .is_ok_and(|m| m.len() > 4096 + 20)
        })
    })
    .await;

    crew.kill9().await;
    let mut read: HashMap<String, Vec<u8>> = HashMap::new();
    for (job, f) in counters.iter().zip(followers) {
        let (bytes, ended) = f.await.unwrap();
        assert!(!ended, "a counter ended with its crew");
        read.insert(job.id.clone(), bytes);
    }
    // While no crew runs, the enders end (SIGUSR1, which their shells do
    // not trap): each must come back ended by that signal.
    for job in &enders {
        for pid in job_pids(&crew.name, &job.id) {
            let _ =
                nix::sys::signal::kill(nix::unistd::Pid::from_raw(pid), nix::sys::signal::Signal::SIGUSR1);
        }
    }
    wait_for("every ender's exit record", Duration::from_secs(30), || {
        enders.iter().all(|j| {
            crew.state
                .path()
                .join("jobs")
                .join(format!("{}.exit", j.id))
                .exists()
        })
    })
    .await;

    let crew = crew.restart(&[]).await;
    let mut alice = crew.client(ALICE, Role::User).await;
    for job in counters.iter().chain(&sleepers) {
        let j = get(&mut alice, &job.id).await;
        assert_eq!(j.phase, pb::JobPhase::Running as i32, "{j:?}");
        assert_eq!(j.handle, job.handle);
    }
    for job in &enders {
        let j = get(&mut alice, &job.id).await;
        assert_eq!(
            j.outcome.and_then(|o| o.termination),
            Some(pb::outcome::Termination::Signal(10)),
            "{}",
            job.handle
        );
    }
    // The followers resume where they were, and read on to the end.
    let mut resumed = Vec::new();
    for job in &counters {
        let mut client = crew.client(ALICE, Role::User).await;
        let id = job.id.clone();
        let offset = read[&job.id].len() as u64;
        resumed.push(tokio::spawn(
            async move { follow(&mut client, &id, offset).await },
        ));
    }
    for job in counters.iter().chain(&sleepers) {
        assert_eq!(
            stop(&mut alice, &job.id).await.phase,
            pb::JobPhase::Stopped as i32
        );
    }
    for (job, f) in counters.iter().zip(resumed) {
        let (rest, ended) = bounded("a follower to end", Duration::from_secs(30), f)
            .await
            .unwrap();
        assert!(ended, "{}", job.handle);
        let mut followed = read.remove(&job.id).unwrap();
        followed.extend_from_slice(&rest);
        let (whole, _) = follow(&mut alice, &job.id, 0).await;
        assert_eq!(
            followed, whole,
            "{}: what a follower read differs from the output",
            job.handle
        );
        let text = String::from_utf8(whole).unwrap();
        let numbers: Vec<u64> = text.lines().filter_map(|l| l.parse().ok()).collect();
        assert!(
            numbers.iter().enumerate().all(|(i, n)| *n == i as u64),
            "{}: a gap in what it wrote",
            job.handle
        );
    }
    wait_for("the job cgroups to go", Duration::from_secs(30), || {
        job_cgroups_left(&crew.name).is_empty()
    })
    .await;
}

/// A crew killed (SIGKILL) at a random moment, a hundred times (scaled),
/// while four clients start jobs: every start it acknowledged is there
/// after the next crew comes up, running or ended, never lost.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nothing_acknowledged_is_lost_to_a_hundred_kills() {
    skip_unless_crew_can_run!();
    ensure_user(ALICE);
    let rounds = scaled(100);
    let mut crew = Crew::start("kills", &[]).await;
    let mut acknowledged: Vec<pb::Job> = Vec::new();
    let mut seed = std::process::id() as u64;
    for round in 0..rounds {
        let mut starters = Vec::new();
        for _ in 0..4 {
            let mut client = crew.client(ALICE, Role::User).await;
            starters.push(tokio::spawn(async move {
                let mut got = Vec::new();
                while let Ok(job) = start(&mut client, &["/bin/true"]).await {
                    got.push(job);
                }
                got
            }));
        }
        // xorshift: a different moment each round, reproducible per run.
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        tokio::time::sleep(Duration::from_millis(seed % 40)).await;
        crew.kill9().await;
        for s in starters {
            acknowledged.extend(s.await.unwrap());
        }
        crew = crew.restart(&[]).await;
        let mut check = crew.client(ALICE, Role::User).await;
        let known = all_jobs(&mut check).await;
        for job in &acknowledged {
            let j = known
                .get(&job.id)
                .unwrap_or_else(|| panic!("round {round}: {} was acknowledged and is gone", job.handle));
            assert_eq!(j.handle, job.handle, "round {round}");
            assert!(
                j.phase == pb::JobPhase::Completed as i32 || j.phase == pb::JobPhase::Running as i32,
                "round {round}: {j:?}"
            );
        }
    }
    assert!(
        acknowledged.len() as u64 >= rounds,
        "too few starts got through to mean anything: {}",
        acknowledged.len()
    );
    wait_for("the job cgroups to go", Duration::from_secs(30), || {
        job_cgroups_left(&crew.name).is_empty()
    })
    .await;
}
