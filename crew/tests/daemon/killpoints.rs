//! The crew killed at each step of a start, a stop, a job's end and a
//! re-adoption (its failpoints, `crew::engine::failpoint`): the next crew
//! accounts for every job, either running and adopted (and then stoppable)
//! or ended with its true outcome, and nothing is left behind: no process,
//! no cgroup, no stray file in the state directory, no shim but the ready
//! ones.

use std::os::unix::process::ExitStatusExt as _;
use std::time::{Duration, Instant};

use certgen::Role;
use tasker_proto::v1 as pb;

use crate::client::*;
use crate::support::*;

const FAILPOINT: &str = "TASKER_CREW_FAILPOINT";

/// What the job became, once the next crew has it.
#[derive(Clone, Copy, Debug, PartialEq)]
enum Becomes {
    /// The start was never recorded: there is no job.
    Nothing,
    /// Running, adopted.
    Running,
    /// Ended, lost (its shim never had it).
    Lost,
    /// Ended with exit code 7 (it ended while no crew recorded it).
    Exit7,
}

async fn list(client: &mut Client) -> Vec<pb::Job> {
    client
        .list_jobs(pb::ListJobsRequest {
            include_archived: true,
            ..Default::default()
        })
        .await
        .expect("ListJobs")
        .into_inner()
        .jobs
}

async fn stop(client: &mut Client, job: &str) -> pb::Job {
    client
        .stop_job(pb::StopJobRequest {
            job: job.to_owned(),
            grace: Some(prost_types::Duration { seconds: 1, nanos: 0 }),
        })
        .await
        .expect("StopJob")
        .into_inner()
        .job
        .unwrap()
}

/// Waits for a crew that killed itself at its failpoint.
async fn died(crew: &mut Crew) {
    let status = crew.wait_exit(Duration::from_secs(30)).await;
    assert_eq!(status.signal(), Some(9), "{status}\n{}", crew.stderr.text());
    assert!(crew.stderr.has("failpoint"), "{}", crew.stderr.text());
}

async fn kill_at(point: &str) {
    ensure_user(ALICE);
    let env = [(FAILPOINT, point)];
    let (mut crew, script) = match point {
        // Set off by the job's own end.
        "end:unrecorded" => (Crew::start_with_env("kp", &[], &env).await, "sleep 0.3; exit 7"),
        // Set off by a stop the job ignores.
        "stop:signalled" => (
            Crew::start_with_env("kp", &[], &env).await,
            "trap '' TERM; echo trapped; while :; do sleep 1; done",
        ),
        // Set off by the next crew's adoption.
        "adopt:welcomed" => (Crew::start("kp", &[]).await, "sleep 1000"),
        _ => (Crew::start_with_env("kp", &[], &env).await, "sleep 1000"),
    };
    let mut alice = crew.client(ALICE, Role::User).await;
    let started = start(&mut alice, &["/bin/sh", "-c", script]).await;
    let expected = match point {
        "start:output" | "start:cgroup" => Becomes::Nothing,
        "start:recorded" | "start:launched" => Becomes::Lost,
        "end:unrecorded" => Becomes::Exit7,
        _ => Becomes::Running,
    };
    match point {
        "stop:signalled" => {
            let job = started.expect("the start");
            // A TERM that comes before the shell has run `trap` ends it.
            let out = crew.state.path().join("jobs").join(format!("{}.out", job.id));
            wait_for("the job to ignore TERM", Duration::from_secs(10), || {
                std::fs::read(&out).is_ok_and(|b| b.windows(7).any(|w| w == b"trapped"))
            })
            .await;
            let stopped = alice
                .stop_job(pb::StopJobRequest {
                    job: job.id.clone(),
                    grace: Some(prost_types::Duration {
                        seconds: 30,
                        nanos: 0,
                    }),
                })
                .await;
            assert!(
                stopped.is_err(),
                "the crew answered a stop it died in: {stopped:?}"
            );
            died(&mut crew).await;
        }
        "end:unrecorded" => {
            started.expect("the start");
            died(&mut crew).await;
        }
        "adopt:welcomed" => {
            started.expect("the start");
            crew.kill9().await;
            let dying = crew.run_successor_to_exit(&env).await;
            assert_eq!(dying.status.signal(), Some(9), "{:?}", dying.stderr);
            assert!(
                dying.stderr.iter().any(|l| l.contains("failpoint")),
                "{:?}",
                dying.stderr
            );
        }
        _ => {
            assert!(
                started.is_err(),
                "the crew answered a start it died in: {started:?}"
            );
            died(&mut crew).await;
        }
    }

    let crew = crew.restart(&[]).await;
    let mut alice = crew.client(ALICE, Role::User).await;
    let jobs = list(&mut alice).await;
    let log = crew.stderr.text();
    if expected == Becomes::Nothing {
        assert!(jobs.is_empty(), "{point}: {jobs:?}\n{log}");
    } else {
        assert_eq!(jobs.len(), 1, "{point}: {jobs:?}\n{log}");
        let job = &jobs[0];
        let reason = job.outcome.as_ref().and_then(|o| o.reason.clone());
        let termination = job.outcome.as_ref().and_then(|o| o.termination);
        match expected {
            Becomes::Running => {
                assert_eq!(job.phase, pb::JobPhase::Running as i32, "{point}: {job:?}\n{log}");
                let stopped = stop(&mut alice, &job.id).await;
                assert_eq!(
                    stopped.phase,
                    pb::JobPhase::Stopped as i32,
                    "{point}: {stopped:?}"
                );
            }
            Becomes::Lost => {
                assert!(
                    matches!(reason, Some(pb::outcome::Reason::Lost(_))),
                    "{point}: {job:?}\n{log}"
                );
            }
            Becomes::Exit7 => {
                assert_eq!(
                    termination,
                    Some(pb::outcome::Termination::ExitCode(7)),
                    "{point}: {job:?}\n{log}"
                );
            }
            Becomes::Nothing => unreachable!(),
        }
    }

    // Nothing is left: no job cgroup, no stray file, no shim but the ready
    // ones (each with its init).
    wait_for("the job cgroups to go", Duration::from_secs(10), || {
        job_cgroups_left(&crew.name).is_empty()
    })
    .await;
    // A job's shim removes its socket as it exits, a moment after the
    // job's cgroup has gone: a stray file is one that stays.
    let known: Vec<String> = list(&mut alice).await.into_iter().map(|j| j.id).collect();
    let jobs_dir = crew.state.path().join("jobs");
    let strays = || -> Vec<String> {
        std::fs::read_dir(&jobs_dir)
            .unwrap()
            .flatten()
            .filter_map(|e| e.file_name().into_string().ok())
            .filter(|f| {
                !f.strip_suffix(".out")
                    .or_else(|| f.strip_suffix(".idx"))
                    .is_some_and(|id| known.iter().any(|k| k == id))
            })
            .collect()
    };
    let deadline = Instant::now() + Duration::from_secs(10);
    while !strays().is_empty() && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(
        strays(),
        Vec::<String>::new(),
        "{point}: stray files in the jobs directory"
    );
    let shims = cgroup2_root()
        .unwrap()
        .join("tasker")
        .join(&crew.name)
        .join("shims/cgroup.procs");
    wait_for("only the ready shims to be left", Duration::from_secs(10), || {
        std::fs::read_to_string(&shims)
            .unwrap_or_default()
            .split_whitespace()
            .count()
            == 4
    })
    .await;
}

macro_rules! killpoint_tests {
    ($($test:ident => $point:literal,)*) => {
        $(
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn $test() {
                skip_unless_crew_can_run!();
                kill_at($point).await;
            }
        )*
    };
}

killpoint_tests! {
    killed_after_the_output_file_is_made => "start:output",
    killed_after_the_cgroup_is_made => "start:cgroup",
    killed_after_the_start_is_recorded => "start:recorded",
    killed_after_init_has_the_command => "start:launched",
    killed_after_the_shim_has_the_job => "start:served",
    killed_before_the_caller_hears_of_the_start => "start:running",
    killed_after_a_stop_signalled_the_job => "stop:signalled",
    killed_before_a_jobs_end_is_recorded => "end:unrecorded",
    killed_while_adopting => "adopt:welcomed",
}
