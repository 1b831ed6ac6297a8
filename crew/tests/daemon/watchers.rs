//! What a request may cost the crew: 256 idle watchers of a crew running
//! jobs with the longest argv the API takes. A job's record is held once
//! and shared; what each watcher is sent carries at most 4 KiB of argv.
//! Before, each watcher copied each job's whole record on every event, and
//! the crew grew from 90 MiB to 1.5 GiB.

use std::time::Duration;

use certgen::Role;
use tasker_proto::v1 as pb;
use tokio_stream::StreamExt as _;

use crate::client::*;
use crate::support::*;

/// The crew's anonymous memory (heap, stacks), in KiB: what copies of job
/// records would grow.
fn rss_anon_kib(pid: i32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).expect("crew status");
    status
        .lines()
        .find_map(|l| l.strip_prefix("RssAnon:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .expect("RssAnon")
}

/// A command with the most words the API takes (argv and environment
/// together at most 65,536) in about 900 KB: `sh -c 'exec sleep 1000'`
/// with the rest as its positional parameters.
fn longest_spec() -> pb::JobSpec {
    let mut argv: Vec<String> = ["sh", "-c", "exec sleep 1000", "sh"].map(String::from).into();
    argv.extend((0..65_000).map(|i| format!("argument-{i:05}")));
    pb::JobSpec {
        argv,
        ..Default::default()
    }
}

async fn next_event(stream: &mut tonic::Streaming<pb::WatchJobsResponse>) -> pb::watch_jobs_response::Event {
    loop {
        let msg = tokio::time::timeout(Duration::from_secs(60), stream.next())
            .await
            .expect("an event within a minute")
            .expect("the watch goes on")
            .expect("no error");
        match msg.event.expect("an event") {
            pb::watch_jobs_response::Event::Usage(_) => {}
            e => return e,
        }
    }
}

#[tokio::test]
async fn watchers_share_job_records_and_memory_returns_after_they_close() {
    skip_unless_crew_can_run!();
    ensure_user(ALICE);
    let mut crew = Crew::start("watchers", &[]).await;
    let mut alice = crew.client(ALICE, Role::User).await;
    let first = start_spec(&mut alice, longest_spec())
        .await
        .expect("the longest argv starts");
    // The answer to a start carries the start of the argv; GetJob all of it.
    assert!(first.argv_cut && first.argv.len() < 400, "{}", first.argv.len());
    assert_eq!(get(&mut alice, &first.id).await.argv.len(), 65_004);
    let mut others = Vec::new();
    for _ in 0..3 {
        others.push(start_spec(&mut alice, longest_spec()).await.expect("starts"));
    }
    let before = rss_anon_kib(crew.pid);

    let mut clients = Vec::new();
    for _ in 0..4 {
        clients.push(crew.client("vic", Role::Viewer).await);
    }
    let mut watches = Vec::new();
    for i in 0..256 {
        let client = &mut clients[i % 4];
        let mut stream = client
            .watch_jobs(pb::WatchJobsRequest::default())
            .await
            .expect("WatchJobs")
            .into_inner();
        match next_event(&mut stream).await {
            pb::watch_jobs_response::Event::Snapshot(s) => {
                assert_eq!(s.jobs.len(), 4);
                for j in &s.jobs {
                    assert!(j.argv_cut);
                    let bytes: usize = j.argv.iter().map(|a| a.len() + 1).sum();
                    assert!(bytes <= 4096, "{bytes} bytes of argv in a snapshot");
                }
            }
            other => panic!("{other:?}"),
        }
        watches.push(stream);
    }
    // Three of the long jobs end while they watch: every watcher hears of
    // each, and is sent the job's start only.
    for job in &others {
        alice
            .stop_job(pb::StopJobRequest {
                job: job.id.clone(),
                grace: None,
            })
            .await
            .expect("stops");
    }
    for stream in &mut watches {
        let mut ended = 0;
        while ended < 3 {
            match next_event(stream).await {
                pb::watch_jobs_response::Event::Changed(j) => {
                    assert!(j.argv_cut && j.argv.len() < 400);
                    ended += usize::from(j.outcome.is_some());
                }
                other => panic!("{other:?}"),
            }
        }
    }
    let watching = rss_anon_kib(crew.pid);
    drop(watches);
    drop(clients);
    // The crew notices the closed streams and connections.
    tokio::time::sleep(Duration::from_secs(2)).await;
    let after = rss_anon_kib(crew.pid);
    eprintln!("crew RssAnon: {before} KiB before, {watching} KiB with 256 watchers, {after} KiB after");
    // Copies of the ended jobs' records (each ~4 MiB in memory) for each
    // of 256 watchers would be gigabytes; 256 watchers' own buffers are a
    // few tens of MiB, and given back once they leave.
    assert!(
        watching < before + 96 * 1024,
        "256 watchers took {} KiB",
        watching - before
    );
    assert!(
        after < before + 8 * 1024,
        "{} KiB stayed after the watchers left",
        after.saturating_sub(before)
    );
    crew.stop().await;
}
