//! Quotas by effect: one user's jobs together cannot pass the user's caps,
//! whatever each job's own limits, and another user's jobs are untouched.

use std::path::PathBuf;
use std::time::Duration;

use crew::engine::{Caps, EngineError, JobState};

use crate::support::*;

/// The owner's directory in the pids controller's hierarchy.
fn owner_pids_dir(t: &TestEngine, owner: &str) -> PathBuf {
    let v1 = std::path::Path::new("/sys/fs/cgroup/pids");
    if v1.join(&t.parent).exists() {
        v1.join(&t.parent).join(owner)
    } else {
        t.unified_parent().join(owner)
    }
}

fn read_u64(path: &std::path::Path) -> u64 {
    std::fs::read_to_string(path)
        .unwrap_or_else(|e| panic!("{}: {e}", path.display()))
        .trim()
        .parse()
        .unwrap()
}

fn owned(owner: &str, mut s: crew::engine::JobSpec) -> crew::engine::JobSpec {
    s.owner = owner.to_owned();
    s
}

/// Two fork bombs of one user, each allowed 200 tasks, are held to the
/// user's 120 together; the kernel counts the refusals on the user's
/// directory, and a second user still starts and finishes a job.
#[tokio::test]
async fn one_users_fork_bombs_are_held_to_the_users_pids_cap() {
    let t = engine_or_skip!(exclusive, |c| {
        c.quotas.user = Caps {
            pids: Some(120),
            ..Caps::default()
        };
    });
    let mut bombs = Vec::new();
    for _ in 0..2 {
        let mut s = owned("mallory", sh("bomb() { bomb | bomb & }; bomb; sleep 1000"));
        s.limits.pids = Some(200);
        bombs.push(t.handle.start(s).await.unwrap());
    }
    let dir = owner_pids_dir(&t, "mallory");
    assert_eq!(read_u64(&dir.join("pids.max")), 120);
    // The kernel counts a refused fork where it was refused: in the owner's
    // directory (cgroup2) or the forking job's (v1).
    let refused = |d: &std::path::Path| -> u64 {
        std::fs::read_to_string(d.join("pids.events"))
            .unwrap_or_default()
            .lines()
            .find_map(|l| l.strip_prefix("max "))
            .and_then(|n| n.trim().parse().ok())
            .unwrap_or(0)
    };
    wait_for(
        "forks to be refused at the user's cap",
        Duration::from_secs(20),
        || {
            let jobs: u64 = subdirs(&dir).iter().map(|j| refused(&dir.join(j))).sum();
            refused(&dir) + jobs > 0 && read_u64(&dir.join("pids.current")) >= 100
        },
    )
    .await;
    // Neither job reached its own 200.
    for b in &bombs {
        let job = dir.join(b.id.as_str());
        assert!(read_u64(&job.join("pids.current")) < 120, "{}", job.display());
    }
    assert!(read_u64(&dir.join("pids.current")) <= 120);
    // Another user is not held by mallory's cap.
    let (out, info) = run(&t.handle, owned("alice", sh("echo fine"))).await;
    assert_eq!(out, "fine\n", "{info:?}");
    for b in &bombs {
        t.handle
            .stop(&b.id, Some(Duration::from_millis(100)), "test")
            .await
            .unwrap();
    }
    t.assert_clean().await;
    t.shutdown().await;
}

/// A user's memory cap holds the user's jobs together, though no job has a
/// limit of its own: the one that passes it is killed.
#[tokio::test]
async fn a_users_memory_cap_holds_jobs_without_limits_of_their_own() {
    let t = engine_or_skip!(exclusive, |c| {
        c.quotas.users.insert(
            "mallory".into(),
            Caps {
                memory: Some(32 << 20),
                ..Caps::default()
            },
        );
    });
    // 64 MB in a shell variable.
    let hog = owned(
        "mallory",
        sh("x=$(head -c 64000000 /dev/zero | tr '\\0' a); echo survived ${#x}"),
    );
    let (out, info) = run(&t.handle, hog).await;
    assert!(!out.contains("survived"), "{out}");
    let JobState::Ended(e) = &info.state else {
        panic!("{info:?}")
    };
    // The cap, and the kernel's overshoot: charges are batched per cpu and
    // its own memory is charged late (34.7 MB measured in the cgroup2 VM).
    assert!(e.totals.peak_memory_bytes.is_none_or(|p| p <= 34 << 20), "{e:?}");
    // The shell's subshell or the shell itself is killed: not a success.
    assert_ne!(e.outcome.phase(), crew::engine::Phase::Completed, "{e:?}");
    // Another user's job of the same size runs to its end.
    let (out, _) = run(
        &t.handle,
        owned(
            "alice",
            sh("x=$(head -c 64000000 /dev/zero | tr '\\0' a); echo survived ${#x}"),
        ),
    )
    .await;
    assert_eq!(out, "survived 64000000\n");
    t.assert_clean().await;
    t.shutdown().await;
}

/// The cap on running jobs: per user, counted with starts under way, and
/// freed when a job ends; another user is not held by it.
#[tokio::test]
async fn a_user_runs_at_most_the_jobs_the_cap_allows() {
    let t = engine_or_skip!(shared, |c| {
        c.quotas.user = Caps {
            jobs: Some(2),
            ..Caps::default()
        };
    });
    let a = t
        .handle
        .start(owned("mallory", spec(&["/bin/sleep", "1000"])))
        .await
        .unwrap();
    let _b = t
        .handle
        .start(owned("mallory", spec(&["/bin/sleep", "1000"])))
        .await
        .unwrap();
    let err = t
        .handle
        .start(owned("mallory", spec(&["/bin/true"])))
        .await
        .unwrap_err();
    assert!(
        matches!(&err, EngineError::Quota(m) if m.contains("mallory runs 2 jobs already")),
        "{err}"
    );
    let q = t.handle.quota_of("mallory");
    assert_eq!((q.running, q.caps.jobs), (2, Some(2)));
    assert!(q.tasks.is_some_and(|n| n >= 2), "{q:?}");
    // Another user starts; and once one of mallory's ends, so does she.
    run(&t.handle, owned("alice", spec(&["/bin/true"]))).await;
    t.handle
        .stop(&a.id, Some(Duration::from_millis(100)), "test")
        .await
        .unwrap();
    let c = t
        .handle
        .start(owned("mallory", spec(&["/bin/true"])))
        .await
        .unwrap();
    read_all(&t.handle, &c.id, crew::engine::ReadFrom::Start).await;
    // Concurrent starts cannot slip past the cap together.
    let starts = (0..6).map(|_| t.handle.start(owned("eve", spec(&["/bin/sleep", "1000"]))));
    let results = futures_join_all(starts).await;
    assert_eq!(results.iter().filter(|r| r.is_ok()).count(), 2, "{results:?}");
    t.shutdown().await;
}

/// Runs futures concurrently and collects their results in order.
async fn futures_join_all<F: std::future::Future>(futs: impl IntoIterator<Item = F>) -> Vec<F::Output> {
    let handles: Vec<_> = futs.into_iter().map(|f| Box::pin(f)).collect();
    let mut out = Vec::new();
    let mut pending: Vec<_> = handles.into_iter().map(Some).collect();
    let mut results: Vec<Option<F::Output>> = (0..pending.len()).map(|_| None).collect();
    std::future::poll_fn(|cx| {
        let mut busy = false;
        for (f, r) in pending.iter_mut().zip(results.iter_mut()) {
            if let Some(fut) = f {
                match fut.as_mut().poll(cx) {
                    std::task::Poll::Ready(v) => {
                        *r = Some(v);
                        *f = None;
                    }
                    std::task::Poll::Pending => busy = true,
                }
            }
        }
        if busy {
            std::task::Poll::Pending
        } else {
            std::task::Poll::Ready(())
        }
    })
    .await;
    out.extend(results.into_iter().flatten());
    out
}
