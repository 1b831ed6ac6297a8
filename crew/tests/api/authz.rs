//! Who may do what, over the real API: SPEC §1, cell by cell.

use certgen::Role;
use tasker_proto::v1 as pb;
use tokio_stream::StreamExt as _;
use tonic::Code;

use crate::support::*;

fn code<T>(r: Result<T, tonic::Status>) -> Code {
    match r {
        Ok(_) => Code::Ok,
        Err(s) => s.code(),
    }
}

/// Opens a write attach and sends one line; the code of what follows.
async fn try_write(
    client: &mut tasker_proto::v1::crew_client::CrewClient<tonic::transport::Channel>,
    job: &str,
) -> Code {
    let (tx, rx) = tokio::sync::mpsc::channel(4);
    tx.send(open_msg(job, beginning(), true)).await.unwrap();
    tx.send(pb::AttachJobRequest {
        msg: Some(pb::attach_job_request::Msg::Stdin(bytes::Bytes::from_static(
            b"hello\n",
        ))),
    })
    .await
    .unwrap();
    let mut stream = match client
        .attach_job(tokio_stream::wrappers::ReceiverStream::new(rx))
        .await
    {
        Ok(s) => s.into_inner(),
        Err(s) => return s.code(),
    };
    // The first message says whether writing was granted; a refused write
    // ends the stream with PERMISSION_DENIED.
    let mut writable = false;
    while let Some(item) = stream.next().await {
        match item {
            Ok(pb::AttachJobResponse {
                msg: Some(pb::attach_job_response::Msg::Attached(a)),
            }) => {
                writable = a.writable;
                if writable {
                    drop(tx);
                    return Code::Ok;
                }
            }
            Ok(_) => {}
            Err(s) => return s.code(),
        }
    }
    drop(tx);
    if writable { Code::Ok } else { Code::Unknown }
}

#[tokio::test]
async fn the_authorization_matrix() {
    let crew = crew_or_skip!();
    let mut alice = crew.client(ALICE, Role::User).await;
    let mut bob = crew.client(BOB, Role::User).await;
    let mut ada = crew.client(ADA, Role::Admin).await;
    let mut vic = crew.client(VIC, Role::Viewer).await;

    // Start: users and admins; viewers never.
    let job = start(&mut alice, &["/bin/cat"]).await.unwrap();
    assert_eq!(job.owner, ALICE);
    assert_eq!(code(start(&mut bob, &["/bin/true"]).await), Code::Ok);
    assert_eq!(code(start(&mut ada, &["/bin/true"]).await), Code::Ok);
    let denied = start(&mut vic, &["/bin/true"]).await.unwrap_err();
    assert_eq!(denied.code(), Code::PermissionDenied);
    assert!(
        denied.message().contains("viewers are read-only"),
        "{}",
        denied.message()
    );

    // Everyone sees everything.
    for c in [&mut alice, &mut bob, &mut ada, &mut vic] {
        let got = c
            .get_job(pb::GetJobRequest { job: job.id.clone() })
            .await
            .unwrap()
            .into_inner();
        assert_eq!(got.job.unwrap().id, job.id);
        let list = c
            .list_jobs(pb::ListJobsRequest::default())
            .await
            .unwrap()
            .into_inner();
        assert!(list.jobs.iter().any(|j| j.id == job.id));
        let mut watch = c.watch_jobs(pb::WatchJobsRequest {}).await.unwrap().into_inner();
        let first = watch.message().await.unwrap().unwrap();
        assert!(
            matches!(first.event, Some(pb::watch_jobs_response::Event::Snapshot(ref s)) if s.jobs.iter().any(|j| j.id == job.id))
        );
    }

    // Writing: the owner and admins; another user and viewers read only.
    assert_eq!(try_write(&mut alice, &job.id).await, Code::Ok);
    assert_eq!(try_write(&mut ada, &job.id).await, Code::Ok);
    assert_eq!(try_write(&mut bob, &job.id).await, Code::PermissionDenied);
    assert_eq!(try_write(&mut vic, &job.id).await, Code::PermissionDenied);
    // ... but they can read it.
    let read = |c: &mut tasker_proto::v1::crew_client::CrewClient<tonic::transport::Channel>| {
        let mut c = c.clone();
        let id = job.id.clone();
        async move {
            let (tx, rx) = tokio::sync::mpsc::channel(1);
            tx.send(open_msg(&id, beginning(), false)).await.unwrap();
            let mut s = c
                .attach_job(tokio_stream::wrappers::ReceiverStream::new(rx))
                .await
                .unwrap()
                .into_inner();
            let first = s.message().await.unwrap().unwrap();
            matches!(first.msg, Some(pb::attach_job_response::Msg::Attached(_)))
        }
    };
    assert!(read(&mut vic).await);
    assert!(read(&mut bob).await);

    // Stopping: not another user's job, not a viewer; the owner and admins.
    let stop = |job: &str| pb::StopJobRequest {
        job: job.to_owned(),
        grace: Some(prost_types::Duration { seconds: 1, nanos: 0 }),
    };
    let refused = bob.stop_job(stop(&job.id)).await.unwrap_err();
    assert_eq!(refused.code(), Code::PermissionDenied);
    assert!(
        refused.message().contains("only their own jobs"),
        "{}",
        refused.message()
    );
    assert_eq!(code(vic.stop_job(stop(&job.id)).await), Code::PermissionDenied);
    let stopped = ada
        .stop_job(stop(&job.id))
        .await
        .unwrap()
        .into_inner()
        .job
        .unwrap();
    assert!(matches!(
        stopped.outcome.unwrap().reason,
        Some(pb::outcome::Reason::StoppedBy(ref s)) if s.who == ADA
    ));
    let own = start(&mut alice, &["/bin/sleep", "1000"]).await.unwrap();
    assert_eq!(code(alice.stop_job(stop(&own.id)).await), Code::Ok);

    // Archiving: the same rule.
    let archive = |job: &str| pb::ArchiveJobRequest { job: job.to_owned() };
    assert_eq!(
        code(bob.archive_job(archive(&own.id)).await),
        Code::PermissionDenied
    );
    assert_eq!(
        code(vic.archive_job(archive(&own.id)).await),
        Code::PermissionDenied
    );
    assert_eq!(code(alice.archive_job(archive(&own.id)).await), Code::Ok);
    assert_eq!(code(ada.archive_job(archive(&job.id)).await), Code::Ok);
    // Archived: gone from the list, still there by id.
    let list = vic
        .list_jobs(pb::ListJobsRequest::default())
        .await
        .unwrap()
        .into_inner();
    assert!(!list.jobs.iter().any(|j| j.id == own.id));
    assert_eq!(
        code(vic.get_job(pb::GetJobRequest { job: own.id.clone() }).await),
        Code::Ok
    );
    crew.stop().await;
}

#[tokio::test]
async fn jobs_run_as_the_callers_user_and_never_as_root_unless_allowed() {
    let crew = crew_or_skip!();
    let uid = ensure_user(ALICE);
    let mut alice = crew.client(ALICE, Role::User).await;
    let job = start(&mut alice, &["/usr/bin/id", "-u"]).await.unwrap();
    assert_eq!(job.uid, uid);
    let out = read_to_end(&mut alice, &job.id, beginning()).await.unwrap();
    assert_eq!(String::from_utf8(out.bytes).unwrap().trim(), uid.to_string());

    let mut ghost = crew.client("tasker-no-such-user", Role::User).await;
    let err = start(&mut ghost, &["/bin/true"]).await.unwrap_err();
    assert_eq!(err.code(), Code::PermissionDenied);
    assert!(err.message().contains("no Linux user"), "{}", err.message());

    let mut root = crew.client("root", Role::Admin).await;
    let err = start(&mut root, &["/bin/true"]).await.unwrap_err();
    assert_eq!(err.code(), Code::PermissionDenied);
    assert!(err.message().contains("--allow-root"), "{}", err.message());
    crew.stop().await;

    let crew = crew_or_skip!(|c| c.allow_root = true);
    let mut root = crew.client("root", Role::Admin).await;
    let job = start(&mut root, &["/usr/bin/id", "-u"]).await.unwrap();
    let out = read_to_end(&mut root, &job.id, beginning()).await.unwrap();
    assert_eq!(String::from_utf8(out.bytes).unwrap().trim(), "0");
    crew.stop().await;
}
