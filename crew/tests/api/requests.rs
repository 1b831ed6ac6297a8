//! Bad requests get the right code and a message, and leave the crew
//! serving and clean.

use certgen::Role;
use tasker_proto::v1 as pb;
use tonic::Code;

use crate::support::*;

fn with_limits(argv: &[&str], limits: pb::Limits) -> pb::StartJobRequest {
    let mut s = spec(argv);
    s.limits = Some(limits);
    pb::StartJobRequest { spec: Some(s) }
}

#[tokio::test]
async fn bad_requests_get_the_right_code() {
    let crew = crew_or_skip!();
    let mut c = crew.client(ALICE, Role::User).await;
    let cases: Vec<(pb::StartJobRequest, Code, &str)> = vec![
        (
            pb::StartJobRequest { spec: None },
            Code::InvalidArgument,
            "no job spec",
        ),
        (
            pb::StartJobRequest {
                spec: Some(spec(&[])),
            },
            Code::InvalidArgument,
            "argv is empty",
        ),
        (
            pb::StartJobRequest {
                spec: Some(spec(&["/bin/echo", "a\0b"])),
            },
            Code::InvalidArgument,
            "NUL",
        ),
        (
            with_limits(
                &["/bin/true"],
                pb::Limits {
                    memory_bytes: Some(0),
                    ..Default::default()
                },
            ),
            Code::InvalidArgument,
            "memory limit",
        ),
        (
            with_limits(
                &["/bin/true"],
                pb::Limits {
                    cpu: Some(-1.0),
                    ..Default::default()
                },
            ),
            Code::InvalidArgument,
            "cpu limit",
        ),
        (
            with_limits(
                &["/bin/true"],
                pb::Limits {
                    cpu: Some(1e9),
                    ..Default::default()
                },
            ),
            Code::InvalidArgument,
            "cpu limit",
        ),
        (
            with_limits(
                &["/bin/true"],
                pb::Limits {
                    pids: Some(0),
                    ..Default::default()
                },
            ),
            Code::InvalidArgument,
            "pids limit",
        ),
        (
            with_limits(
                &["/bin/true"],
                pb::Limits {
                    memory_bytes: Some(u64::MAX),
                    ..Default::default()
                },
            ),
            Code::InvalidArgument,
            "larger than any",
        ),
        (
            with_limits(
                &["/bin/true"],
                pb::Limits {
                    memory_bytes: Some(64 << 20),
                    memory_high_bytes: Some(128 << 20),
                    ..Default::default()
                },
            ),
            Code::InvalidArgument,
            "not under the hard limit",
        ),
        (
            with_limits(
                &["/bin/true"],
                pb::Limits {
                    cpu_weight: Some(0),
                    ..Default::default()
                },
            ),
            Code::InvalidArgument,
            "cpu weight",
        ),
        (
            with_limits(
                &["/bin/true"],
                pb::Limits {
                    io: vec![pb::IoLimit {
                        device: "/etc/passwd".into(),
                        read_bps: Some(1),
                        ..Default::default()
                    }],
                    ..Default::default()
                },
            ),
            Code::InvalidArgument,
            "not a block device",
        ),
    ];
    for (req, code, text) in cases {
        let err = c.start_job(req).await.unwrap_err();
        assert_eq!(err.code(), code, "{}", err.message());
        assert!(err.message().contains(text), "{:?} lacks {text:?}", err.message());
    }
    // 10 MB of argv: refused before it is even decoded.
    let huge = "x".repeat(10 << 20);
    let err = start(&mut c, &["/bin/echo", &huge]).await.unwrap_err();
    assert!(
        matches!(
            err.code(),
            Code::ResourceExhausted | Code::OutOfRange | Code::InvalidArgument
        ),
        "{:?} {}",
        err.code(),
        err.message()
    );
    // Unknown and ambiguous jobs.
    let err = c
        .get_job(pb::GetJobRequest {
            job: "job-999".into(),
        })
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::NotFound);
    let err = c
        .get_job(pb::GetJobRequest { job: String::new() })
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::InvalidArgument);
    // Still serving.
    assert!(start(&mut c, &["/bin/true"]).await.is_ok());
    crew.stop().await;
}

#[tokio::test]
async fn many_rapid_failed_starts_leave_the_crew_serving_and_clean() {
    let crew = crew_or_skip!();
    let mut c = crew.client(ALICE, Role::User).await;
    let fds = std::fs::read_dir("/proc/self/fd").unwrap().count();
    let n: usize = std::env::var("TASKER_TEST_SCALE")
        .ok()
        .and_then(|s| s.parse::<f64>().ok())
        .map_or(10_000, |s| (10_000.0 * s) as usize);
    let t0 = std::time::Instant::now();
    for i in 0..n {
        if i % 1000 == 999 {
            eprintln!(
                "{} failed starts, {:?} each",
                i + 1,
                t0.elapsed() / (i as u32 + 1)
            );
        }

        // Alternate the two kinds: refused before anything runs, and a job
        // that never starts.
        if i % 2 == 0 {
            assert_eq!(
                start(&mut c, &[]).await.unwrap_err().code(),
                Code::InvalidArgument
            );
        } else {
            let job = start(&mut c, &["/bin/nosuch"]).await.unwrap();
            assert_eq!(job.phase, pb::JobPhase::Failed as i32);
        }
    }
    assert!(start(&mut c, &["/bin/true"]).await.is_ok());
    let after = std::fs::read_dir("/proc/self/fd").unwrap().count();
    assert!(after <= fds + 8, "fds grew from {fds} to {after}");
    crew.stop().await;
}
