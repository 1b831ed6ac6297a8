//! Jobs through the API: stdin and EOF, attaching from anywhere, many
//! followers, watching.

use std::time::Duration;

use bytes::Bytes;
use certgen::Role;
use tasker_proto::v1 as pb;
use tasker_proto::v1::attach_job_request::{Msg, open::From};

use crate::support::*;

#[tokio::test]
async fn a_cat_job_round_trips_through_attach_with_eof() {
    let crew = crew_or_skip!();
    let mut alice = crew.client(ALICE, Role::User).await;
    let job = start(&mut alice, &["/bin/cat"]).await.unwrap();
    let (tx, rx) = tokio::sync::mpsc::channel(64);
    tx.send(open_msg(&job.id, beginning(), true)).await.unwrap();
    let payload: Vec<u8> = (0..200_000u32).flat_map(|i| i.to_le_bytes()).collect();
    for chunk in payload.chunks(50_000) {
        tx.send(pb::AttachJobRequest {
            msg: Some(Msg::Stdin(Bytes::copy_from_slice(chunk))),
        })
        .await
        .unwrap();
    }
    tx.send(pb::AttachJobRequest {
        msg: Some(Msg::Eof(pb::attach_job_request::Eof {})),
    })
    .await
    .unwrap();
    let mut stream = alice
        .attach_job(tokio_stream::wrappers::ReceiverStream::new(rx))
        .await
        .unwrap()
        .into_inner();
    let got = collect(&mut stream).await.unwrap();
    assert!(got.writable);
    assert_eq!(got.bytes.len(), payload.len());
    assert!(got.bytes == payload, "cat gave back different bytes");
    let end = got.end.expect("the stream ends with the final state");
    assert_eq!(end.phase, pb::JobPhase::Completed as i32);
    crew.stop().await;
}

#[tokio::test]
async fn attach_from_an_offset_or_the_tail_and_two_followers_agree() {
    let crew = crew_or_skip!();
    let mut alice = crew.client(ALICE, Role::User).await;
    let job = start(&mut alice, &["/bin/sh", "-c", "read go; seq 1 100000"])
        .await
        .unwrap();
    let full: Vec<u8> = (1..=100_000)
        .flat_map(|i| format!("{i}\n").into_bytes())
        .collect();

    // Two followers from the start, opened before the output exists.
    let follow = |c: &tasker_proto::v1::crew_client::CrewClient<tonic::transport::Channel>| {
        let mut c = c.clone();
        let id = job.id.clone();
        tokio::spawn(async move { read_to_end(&mut c, &id, beginning()).await.unwrap() })
    };
    let (f1, f2) = (follow(&alice), follow(&crew.client(VIC, Role::Viewer).await));
    // Let both attach, then let the job write.
    tokio::time::sleep(Duration::from_millis(200)).await;
    let (tx, rx) = tokio::sync::mpsc::channel(4);
    tx.send(open_msg(
        &job.id,
        From::Now(pb::attach_job_request::open::Now {}),
        true,
    ))
    .await
    .unwrap();
    tx.send(pb::AttachJobRequest {
        msg: Some(Msg::Stdin(Bytes::from_static(b"go\n"))),
    })
    .await
    .unwrap();
    let mut writer = alice
        .attach_job(tokio_stream::wrappers::ReceiverStream::new(rx))
        .await
        .unwrap()
        .into_inner();
    let _ = collect(&mut writer).await;
    drop(tx);
    let (a, b) = (f1.await.unwrap(), f2.await.unwrap());
    assert!(
        a.bytes == full && b.bytes == full,
        "followers differ from the job's output"
    );

    // From an offset: exactly the rest.
    let at = 12_345u64;
    let tail = read_to_end(&mut alice, &job.id, From::Offset(at)).await.unwrap();
    assert_eq!(tail.start, at);
    assert!(tail.bytes == full[at as usize..]);
    // The last lines.
    let last = read_to_end(&mut alice, &job.id, From::TailLines(3))
        .await
        .unwrap();
    assert_eq!(String::from_utf8(last.bytes).unwrap(), "99998\n99999\n100000\n");
    let last = read_to_end(&mut alice, &job.id, From::TailBytes(7))
        .await
        .unwrap();
    assert_eq!(String::from_utf8(last.bytes).unwrap(), "100000\n");
    crew.stop().await;
}

#[tokio::test]
async fn watch_sends_a_snapshot_then_changes_then_usage() {
    let crew = crew_or_skip!();
    let mut alice = crew.client(ALICE, Role::User).await;
    let mut watch = alice
        .watch_jobs(pb::WatchJobsRequest {})
        .await
        .unwrap()
        .into_inner();
    use pb::watch_jobs_response::Event;
    let first = watch.message().await.unwrap().unwrap().event.unwrap();
    assert!(matches!(first, Event::Snapshot(ref s) if s.jobs.is_empty()));
    let job = start(&mut alice, &["/bin/sh", "-c", "while :; do :; done"])
        .await
        .unwrap();
    let (mut created, mut running, mut usage) = (false, false, false);
    while !(created && running && usage) {
        let ev = tokio::time::timeout(Duration::from_secs(10), watch.message())
            .await
            .expect("watch stalled")
            .unwrap()
            .unwrap()
            .event
            .unwrap();
        match ev {
            Event::Created(j) if j.id == job.id => created = true,
            Event::Changed(j) if j.id == job.id && j.phase == pb::JobPhase::Running as i32 => running = true,
            Event::Usage(u) => {
                if let Some(ju) = u.jobs.iter().find(|u| u.job_id == job.id)
                    && ju.cpu_cores > 0.5
                {
                    usage = true;
                }
            }
            _ => {}
        }
    }
    alice
        .stop_job(pb::StopJobRequest {
            job: job.handle.clone(),
            grace: None,
        })
        .await
        .unwrap();
    crew.stop().await;
}

/// Usage figures go out when they change: an idle job is reported once,
/// not every second, and an empty report is never sent (a dashboard of
/// hundreds of idle crews would wake for each).
#[tokio::test]
async fn watch_reports_usage_only_when_it_changed() {
    let crew = crew_or_skip!();
    let mut alice = crew.client(ALICE, Role::User).await;
    let job = start(&mut alice, &["/bin/sleep", "1000"]).await.unwrap();
    let mut watch = alice
        .watch_jobs(pb::WatchJobsRequest {})
        .await
        .unwrap()
        .into_inner();
    use pb::watch_jobs_response::Event;
    let until = tokio::time::Instant::now() + Duration::from_millis(4500);
    let (mut reports, mut empty, mut of_job) = (0, 0, 0);
    while let Ok(msg) = tokio::time::timeout_at(until, watch.message()).await {
        if let Some(Event::Usage(u)) = msg.unwrap().unwrap().event {
            reports += 1;
            empty += usize::from(u.jobs.is_empty());
            of_job += usize::from(u.jobs.iter().any(|u| u.job_id == job.id));
        }
    }
    assert_eq!(empty, 0, "an empty report was sent");
    assert!(of_job >= 1, "the job's figures were never sent");
    assert!(
        of_job <= 2,
        "an idle job's figures were sent {of_job} times in 4.5 s ({reports} reports)"
    );
    alice
        .stop_job(pb::StopJobRequest {
            job: job.handle.clone(),
            grace: None,
        })
        .await
        .unwrap();
    crew.stop().await;
}

#[tokio::test]
async fn a_client_that_disconnects_never_stops_the_job() {
    let crew = crew_or_skip!();
    let mut alice = crew.client(ALICE, Role::User).await;
    let job = start(&mut alice, &["/bin/sleep", "1000"]).await.unwrap();
    {
        let mut other = crew.client(ALICE, Role::User).await;
        let (tx, rx) = tokio::sync::mpsc::channel(1);
        tx.send(open_msg(&job.id, beginning(), true)).await.unwrap();
        let mut s = other
            .attach_job(tokio_stream::wrappers::ReceiverStream::new(rx))
            .await
            .unwrap()
            .into_inner();
        s.message().await.unwrap();
        // Dropped here: the connection goes away mid-attach.
    }
    tokio::time::sleep(Duration::from_millis(300)).await;
    let got = alice
        .get_job(pb::GetJobRequest { job: job.id.clone() })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(got.job.unwrap().phase, pb::JobPhase::Running as i32);
    crew.stop().await;
}
