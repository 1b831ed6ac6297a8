//! The audit trail through a real crew: every state-changing or refused
//! call on a job, in order, with who and how it went; environment values
//! never kept; the trail survives `kill -9`, and `crew verify-audit` finds
//! it intact, then names the record someone changed.

use std::time::Duration;

use certgen::Role;
use tasker_proto::v1 as pb;

use crate::client::*;
use crate::support::*;

async fn trail(client: &mut Client, job: &str) -> Vec<pb::AuditRecord> {
    client
        .audit_trail(pb::AuditTrailRequest {
            job: job.to_owned(),
            limit: 0,
        })
        .await
        .expect("AuditTrail")
        .into_inner()
        .records
}

/// `call decision subject` of each record.
fn calls(records: &[pb::AuditRecord]) -> Vec<String> {
    records
        .iter()
        .map(|r| format!("{} {} {}", r.call, r.decision, r.subject))
        .collect()
}

fn verify(crew: &Crew) -> (bool, String) {
    let out = std::process::Command::new(CREW)
        .arg("verify-audit")
        .arg("--state-dir")
        .arg(crew.state.path())
        .output()
        .expect("crew verify-audit runs");
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_call_on_a_job_is_in_its_trail_through_a_kill_and_tampering_is_named() {
    skip_unless_crew_can_run!();
    ensure_user(ALICE);
    ensure_user(BOB);
    let mut crew = Crew::start("audit", &[]).await;
    let mut alice = crew.client(ALICE, Role::User).await;
    let mut bob = crew.client(BOB, Role::User).await;
    let mut s = spec(&["/bin/sh", "-c", "read line; echo got $line; sleep 1000"]);
    s.env.push(pb::EnvVar {
        name: "API_TOKEN".into(),
        value: "s3cret-value".into(),
    });
    let job = start_spec(&mut alice, s).await.expect("the start");

    // Bob may not stop Alice's job, nor type into it.
    let refused = bob
        .stop_job(pb::StopJobRequest {
            job: job.id.clone(),
            grace: None,
        })
        .await;
    assert_eq!(refused.unwrap_err().code(), tonic::Code::PermissionDenied);
    // Alice types a line, then the attach ends.
    let (tx, rx) = tokio::sync::mpsc::channel(4);
    tx.send(open_msg(&job.id, true)).await.unwrap();
    tx.send(pb::AttachJobRequest {
        msg: Some(pb::attach_job_request::Msg::Stdin(b"hello\n".to_vec().into())),
    })
    .await
    .unwrap();
    let mut attach = alice
        .attach_job(tokio_stream::wrappers::ReceiverStream::new(rx))
        .await
        .unwrap()
        .into_inner();
    let mut seen = Vec::new();
    while !String::from_utf8_lossy(&seen).contains("got hello") {
        match crew::testing::bounded("the job's answer", Duration::from_secs(10), attach.message()).await {
            Ok(Some(pb::AttachJobResponse {
                msg: Some(pb::attach_job_response::Msg::Output(o)),
            })) => seen.extend_from_slice(&o.data),
            Ok(Some(_)) => {}
            other => panic!("the attach ended: {other:?}"),
        }
    }
    drop(tx);
    drop(attach);
    // The input record is written as the attach ends.
    let mut typed = false;
    for _ in 0..200 {
        typed = trail(&mut alice, &job.id).await.iter().any(|r| r.call == "input");
        if typed {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(typed, "no input record 10 s after the attach ended");

    // A crash: what was recorded stays.
    crew.kill9().await;
    let mut crew = crew.restart(&[]).await;
    let mut alice = crew.client(ALICE, Role::User).await;
    let stopped = alice
        .stop_job(pb::StopJobRequest {
            job: job.id.clone(),
            grace: None,
        })
        .await
        .expect("Alice stops her job");
    assert!(stopped.into_inner().job.unwrap().outcome.is_some());
    let records = trail(&mut alice, &job.id).await;
    assert_eq!(
        calls(&records),
        [
            format!("start allowed {ALICE}"),
            format!("stop denied {BOB}"),
            format!("attach allowed {ALICE}"),
            format!("input allowed {ALICE}"),
            format!("stop allowed {ALICE}"),
        ],
        "{records:#?}"
    );
    let start = &records[0];
    assert!(start.detail_json.contains("API_TOKEN"), "{}", start.detail_json);
    assert!(
        !records.iter().any(|r| r.detail_json.contains("s3cret")),
        "an environment value reached the trail: {records:#?}"
    );
    assert!(
        records[1].why.contains("users manage only their own jobs"),
        "{:?}",
        records[1]
    );
    assert!(
        records[3].detail_json.contains("\"stdin_bytes\":6"),
        "{}",
        records[3].detail_json
    );
    assert!(records.windows(2).all(|w| w[0].seq < w[1].seq));

    let (ok, said) = verify(&crew);
    assert!(ok && said.contains("chained and intact"), "{said}");
    // Someone with root on the host rewrites who stopped the job.
    let db = rusqlite::Connection::open(crew.state.path().join("audit.db")).unwrap();
    let seq = records[4].seq;
    db.execute(
        "UPDATE records SET body = replace(body, ?1, 'someone-else') WHERE seq = ?2",
        rusqlite::params![ALICE, seq],
    )
    .unwrap();
    let (ok, said) = verify(&crew);
    assert!(!ok, "{said}");
    assert!(said.contains(&format!("record {seq} breaks the chain")), "{said}");
    crew.stop().await;
}
