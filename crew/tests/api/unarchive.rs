//! UnarchiveJob: an archived job comes back to the list and to watchers;
//! only its owner or an admin may bring it back, and not while another
//! job holds its name.

use std::time::Duration;

use certgen::Role;
use tasker_proto::v1 as pb;
use tasker_proto::v1::crew_client::CrewClient;
use tasker_proto::v1::watch_jobs_response::Event;
use tonic::Code;
use tonic::transport::Channel;

use crate::support::*;

async fn start_named(client: &mut CrewClient<Channel>, name: &str, argv: &[&str]) -> pb::Job {
    let mut s = spec(argv);
    s.name = name.to_owned();
    client
        .start_job(pb::StartJobRequest { spec: Some(s) })
        .await
        .expect("the start")
        .into_inner()
        .job
        .unwrap()
}

async fn listed(client: &mut CrewClient<Channel>) -> Vec<String> {
    let list = client
        .list_jobs(pb::ListJobsRequest::default())
        .await
        .unwrap()
        .into_inner();
    list.jobs.into_iter().map(|j| j.id).collect()
}

fn unarchive(job: &str) -> pb::UnarchiveJobRequest {
    pb::UnarchiveJobRequest { job: job.to_owned() }
}

fn archive(job: &str) -> pb::ArchiveJobRequest {
    pb::ArchiveJobRequest { job: job.to_owned() }
}

/// The next watch event about `id`, other jobs' events skipped.
async fn next_about(watch: &mut tonic::Streaming<pb::WatchJobsResponse>, id: &str) -> Event {
    loop {
        let ev = tokio::time::timeout(Duration::from_secs(10), watch.message())
            .await
            .expect("watch stalled")
            .unwrap()
            .unwrap()
            .event
            .unwrap();
        match &ev {
            Event::Created(j) | Event::Changed(j) | Event::Archived(j) if j.id == id => return ev,
            _ => {}
        }
    }
}

#[tokio::test]
async fn an_archived_job_comes_back_to_the_list_and_to_watchers() {
    let crew = crew_or_skip!();
    ensure_user(ALICE);
    ensure_user(BOB);
    let mut alice = crew.client(ALICE, Role::User).await;
    let mut bob = crew.client(BOB, Role::User).await;
    let mut vic = crew.client(VIC, Role::Viewer).await;
    let mut ada = crew.client(ADA, admin()).await;
    let job = start_named(&mut alice, "nightly", &["/bin/true"]).await;
    read_to_end(&mut alice, &job.id, beginning()).await.unwrap();

    let mut watch = vic
        .watch_jobs(pb::WatchJobsRequest {})
        .await
        .unwrap()
        .into_inner();
    let first = watch.message().await.unwrap().unwrap().event.unwrap();
    assert!(matches!(first, Event::Snapshot(ref s) if s.jobs.iter().any(|j| j.id == job.id)));
    alice.archive_job(archive(&job.id)).await.unwrap();
    assert!(matches!(
        next_about(&mut watch, &job.id).await,
        Event::Archived(_)
    ));
    assert!(!listed(&mut alice).await.contains(&job.id));

    // Not another user's, not a viewer's: both refusals in the trail.
    let refused = bob.unarchive_job(unarchive(&job.id)).await.unwrap_err();
    assert_eq!(refused.code(), Code::PermissionDenied, "{}", refused.message());
    let refused = vic.unarchive_job(unarchive(&job.id)).await.unwrap_err();
    assert_eq!(refused.code(), Code::PermissionDenied, "{}", refused.message());
    assert!(!listed(&mut alice).await.contains(&job.id));

    // The owner, by name (an archived job's name finds it when no other
    // job holds it).
    let back = alice
        .unarchive_job(unarchive("nightly"))
        .await
        .unwrap()
        .into_inner()
        .job
        .unwrap();
    assert_eq!(back.id, job.id);
    assert!(!back.archived);
    assert!(listed(&mut alice).await.contains(&job.id));
    // A watcher is told, as of a job that enters its list.
    match next_about(&mut watch, &job.id).await {
        Event::Created(j) => assert!(!j.archived),
        other => panic!("expected the job back as created, got {other:?}"),
    }
    // Again: nothing to do, the job as it is.
    let again = alice
        .unarchive_job(unarchive(&job.id))
        .await
        .unwrap()
        .into_inner()
        .job
        .unwrap();
    assert!(!again.archived);

    // An admin may too.
    ada.archive_job(archive(&job.id)).await.unwrap();
    ada.unarchive_job(unarchive(&job.id)).await.unwrap();
    assert!(listed(&mut alice).await.contains(&job.id));

    let trail: Vec<String> = alice
        .audit_trail(pb::AuditTrailRequest {
            job: job.id.clone(),
            limit: 0,
        })
        .await
        .unwrap()
        .into_inner()
        .records
        .iter()
        .filter(|r| r.call == "unarchive")
        .map(|r| format!("{} {}", r.decision, r.subject))
        .collect();
    assert_eq!(
        trail,
        [
            format!("denied {BOB}"),
            format!("denied {VIC}"),
            format!("allowed {ALICE}"),
            format!("allowed {ALICE}"),
            format!("allowed {ADA}"),
        ]
    );
    crew.stop().await;
}

#[tokio::test]
async fn a_job_whose_name_was_taken_meanwhile_stays_archived() {
    let crew = crew_or_skip!();
    ensure_user(ALICE);
    let mut alice = crew.client(ALICE, Role::User).await;
    let old = start_named(&mut alice, "deploy", &["/bin/true"]).await;
    read_to_end(&mut alice, &old.id, beginning()).await.unwrap();
    alice.archive_job(archive(&old.id)).await.unwrap();
    let new = start_named(&mut alice, "deploy", &["/bin/sleep", "1000"]).await;

    let refused = alice.unarchive_job(unarchive(&old.id)).await.unwrap_err();
    assert_eq!(refused.code(), Code::FailedPrecondition);
    assert_eq!(
        refused.message(),
        format!(
            "the name \"deploy\" is taken by {}, which is not archived: archive {} first, then un-archive {}",
            new.handle, new.handle, old.handle
        )
    );
    let ids = listed(&mut alice).await;
    assert!(!ids.contains(&old.id), "refused, yet listed again");
    assert!(ids.contains(&new.id));

    // Once the holder is archived, the old one may come back.
    alice
        .stop_job(pb::StopJobRequest {
            job: new.id.clone(),
            grace: None,
        })
        .await
        .unwrap();
    alice.archive_job(archive(&new.id)).await.unwrap();
    alice.unarchive_job(unarchive(&old.id)).await.unwrap();
    let ids = listed(&mut alice).await;
    assert!(ids.contains(&old.id) && !ids.contains(&new.id));
    // And the name is the old job's again.
    let by_name = alice
        .get_job(pb::GetJobRequest { job: "deploy".into() })
        .await
        .unwrap()
        .into_inner()
        .job
        .unwrap();
    assert_eq!(by_name.id, old.id);
    crew.stop().await;
}
