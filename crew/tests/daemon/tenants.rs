//! Many users on one crew: one user's misbehaving jobs cannot starve the
//! crew. Two users each run a fork bomb with the default limits; meanwhile
//! a third user's calls are answered promptly, and their jobs start
//! promptly. And the configuration sets each user's quota.

use std::time::{Duration, Instant};

use certgen::Role;
use crew::testing::{ADA, BOB, emulated};
use tasker_proto::v1 as pb;

use crate::client::*;
use crate::support::*;

const BOMB: &str = "bomb() { bomb | bomb & }; bomb; sleep 1000";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_fork_bombs_leave_the_crew_and_other_users_responsive() {
    skip_unless_crew_can_run!();
    for u in [ALICE, BOB, ADA] {
        ensure_user(u);
    }
    let mut crew = Crew::start("tenants", &[]).await;
    let mut alice = crew.client(ALICE, Role::User).await;
    let mut bob = crew.client(BOB, Role::User).await;
    let mut ada = crew.client(ADA, Role::Admin).await;
    let quiet = {
        let t0 = Instant::now();
        ada.info(pb::InfoRequest {}).await.expect("Info");
        t0.elapsed()
    };
    // Bounds below hold on real hardware; `emulated` stretches them in the
    // emulated VM of ci/test-v2 (TASKER_TEST_SCALE=0.1: ten times there).
    // How long her echo may take under the bombs (see the assertion).
    let echo_bound = emulated(Duration::from_secs(120));
    // A start and its end, from the call to the job's final record.
    let echo = async |who: &mut Client| {
        let t0 = Instant::now();
        let job = start(who, &["/bin/echo", "hi"]).await.expect("an echo");
        let (out, end) = output_within(who, &job.id, echo_bound).await;
        assert_eq!(out, b"hi\n");
        let ended = end.outcome.clone().and_then(|o| o.termination);
        assert_eq!(ended, Some(pb::outcome::Termination::ExitCode(0)), "{end:?}");
        t0.elapsed()
    };
    // Ada has run a job before: she is one of the crew's recent users.
    let quiet_echo = echo(&mut ada).await;
    // So have Alice and Bob: each bomb starts from a ready shim. A start
    // without one migrates its init into the user's cgroups (on a hybrid
    // host), and a migration waits on the kernel's cgroup lock for as
    // long as a bomb forks: Bob's start, right after Alice's bomb began,
    // once failed a CI run that way. That is the kernel's, documented in
    // docs/architecture.md, and not what this test measures.
    echo(&mut alice).await;
    echo(&mut bob).await;
    // The crew replaces the ready shims the echoes took, in milliseconds.
    // A bomb that began in those milliseconds would hold up that shim's
    // join to its cgroups for seconds, and every cgroup change on the host
    // with it (see crew/src/engine/pool.rs). The crew watches for a bomb
    // right after a start it ran (so makes no shim for Alice or Bob once
    // their bombs start); one started elsewhere in that moment is chance,
    // which the test leaves out. A bomb that waited before forking would
    // defeat that watch, and the shim made meanwhile would join while the
    // bombs fork: a CI run saw her echo take over 120 s so.
    tokio::time::sleep(Duration::from_millis(500)).await;
    let bombs = [
        start(&mut alice, &["/bin/sh", "-c", BOMB])
            .await
            .expect("alice's bomb"),
        start(&mut bob, &["/bin/sh", "-c", BOMB])
            .await
            .expect("bob's bomb"),
    ];
    // Until each bomb has a thousand tasks (in the emulated VM of ci/test-v2
    // the cap's worth would take minutes and most of its memory). Each
    // owner asks on the connection they have: a new TLS handshake per
    // sample is itself slow while the host forks this hard.
    // A bomb at its cap sheds tasks and grows back (a shell whose forks
    // keep failing gives up), so each one's peak is what counts. Growth is
    // the kernel's pace, not the crew's: a clean-clone CI run once saw the
    // two take over 60 s to pass a thousand each, so the bound is loose.
    let began = Instant::now();
    let deadline = began + emulated(Duration::from_secs(180));
    let mut peaks = (0, 0);
    while peaks.0 < 1000 || peaks.1 < 1000 {
        let now = (
            quota(&mut alice).await.tasks.unwrap_or(0),
            quota(&mut bob).await.tasks.unwrap_or(0),
        );
        peaks = (peaks.0.max(now.0), peaks.1.max(now.1));
        assert!(
            Instant::now() < deadline,
            "the bombs did not grow: {peaks:?} tasks at most in {:?}",
            began.elapsed()
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    eprintln!("both bombs passed 1000 tasks in {:?}", began.elapsed());

    // Another user's calls, over a few seconds of both bombs.
    let mut slowest = Duration::ZERO;
    for _ in 0..20 {
        let t0 = Instant::now();
        let info = ada.info(pb::InfoRequest {}).await.expect("Info").into_inner();
        slowest = slowest.max(t0.elapsed());
        assert_eq!(info.identity, ADA);
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    // And a job of hers, from a ready shim: on a hybrid host one whose init
    // joined the job's v1 cgroups ahead, as no cgroup migration can be
    // made in time while the bombs fork (see crew/src/engine/pool.rs).
    let bombed_echo = echo(&mut ada).await;
    eprintln!(
        "Info: {quiet:?} quiet, {slowest:?} at worst under two fork bombs ({:?} after they began); \
         echo: {quiet_echo:?} quiet, {bombed_echo:?} under the bombs",
        began.elapsed()
    );
    // Well under a second on real hardware (ten times that in the VM).
    assert!(
        slowest < emulated(Duration::from_secs(1)),
        "Info took {slowest:?} under the bombs"
    );
    // Typically 10-200 ms (it took 10-400 s when every start of hers made
    // cgroup migrations). Bounded wider: no cgroup holds what the bombs do
    // to every process of the host that forks, execs or exits. A shell's
    // fork refused at the pids cap has already copied its address space,
    // and tears it down again; thousands a second serialize on the lock of
    // each mapped file (libc's, which her echo maps too). Her echo's own
    // exit waits on that lock as the bombs' do: 12-200 ms as a rule, but a
    // CI run saw it take over 30 s, and a bomb's SIGKILLed tasks took up to
    // 84 s to exit (docs/architecture.md). The crew's own answers are what
    // `Info` above bounds; this bounds the kernel, loosely.
    assert!(
        bombed_echo < echo_bound,
        "ada's echo took {bombed_echo:?} under the bombs"
    );

    for b in &bombs {
        ada.stop_job(pb::StopJobRequest {
            job: b.id.clone(),
            grace: Some(prost_types::Duration {
                seconds: 0,
                nanos: 100_000_000,
            }),
        })
        .await
        .expect("the bomb stops");
    }
    // The same lock makes the killed bomb's tasks wait to exit while the
    // other bomb forks: 1-80 s measured here.
    let stopped = Instant::now();
    for b in &bombs {
        while get(&mut ada, &b.id).await.outcome.is_none() {
            assert!(stopped.elapsed() < Duration::from_secs(240), "a bomb did not end");
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
    eprintln!("both bombs ended {:?} after they began", began.elapsed());
    assert_eq!(crew.stop().await.code(), Some(0));
}

/// The configuration file and flags set what each user may run; the crew
/// holds it and tells each user theirs.
#[tokio::test]
async fn the_configuration_sets_each_users_quota_and_jobs_defaults() {
    skip_unless_crew_can_run!();
    for u in [ALICE, BOB] {
        ensure_user(u);
    }
    let dir = tempfile::tempdir().unwrap();
    let conf = dir.path().join("crew.toml");
    std::fs::write(
        &conf,
        format!("[quota.user]\njobs = 1\npids = 700\n\n[quota.users.{BOB}]\njobs = 2\n\n[defaults]\nmemory = \"1G\"\n"),
    )
    .unwrap();
    let mut crew = Crew::start(
        "conf",
        &[
            "--config",
            conf.to_str().unwrap(),
            "--default-memory",
            "256M",
            "--user-pids",
            "600",
        ],
    )
    .await;
    let mut alice = crew.client(ALICE, Role::User).await;
    let mut bob = crew.client(BOB, Role::User).await;
    let sleep = ["/bin/sleep", "100"];
    let first = start(&mut alice, &sleep).await.expect("alice's first job");
    // The flag goes over the file.
    let limits = first.limits.clone().unwrap_or_default();
    assert_eq!(limits.memory_bytes, Some(256 << 20), "{limits:?}");
    let refused = start(&mut alice, &sleep).await.expect_err("alice's second job");
    assert_eq!(refused.code(), tonic::Code::ResourceExhausted, "{refused:?}");
    assert!(
        refused.message().contains("runs 1 job already"),
        "{}",
        refused.message()
    );
    for _ in 0..2 {
        start(&mut bob, &sleep).await.expect("bob may run two");
    }
    let q = quota(&mut alice).await;
    assert_eq!((q.jobs, q.pids, q.running_jobs), (Some(1), Some(600), 1), "{q:?}");
    let q = quota(&mut bob).await;
    assert_eq!((q.jobs, q.pids, q.running_jobs), (Some(2), Some(600), 2), "{q:?}");
    assert_eq!(crew.stop().await.code(), Some(0));
}

/// What the crew tells the caller of their quota and use.
async fn quota(c: &mut Client) -> pb::Quota {
    let info = c.info(pb::InfoRequest {}).await.expect("Info").into_inner();
    info.quota.expect("Info carries the caller's quota")
}
