//! What the engine's records and jobs survive: a full state disk, a shim
//! of another protocol version (an upgrade), a store that is broken, and
//! time (retention).

use std::path::{Path, PathBuf};
use std::time::Duration;

use crew::engine::{EngineError, JobState, Outcome, ReadFrom, Retention, TestProtocols};

use crate::support::*;

/// A tmpfs of `size` and `inodes` mounted on a fresh directory, for a state
/// directory the test can fill; unmounted when dropped.
struct SmallDisk {
    dir: tempfile::TempDir,
}

impl SmallDisk {
    fn new(size: &str, inodes: u32) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let status = std::process::Command::new("mount")
            .args(["-t", "tmpfs", "-o"])
            .arg(format!("size={size},nr_inodes={inodes},mode=0700"))
            .arg("tmpfs")
            .arg(dir.path())
            .status()
            .expect("mount runs");
        assert!(status.success(), "mount a tmpfs");
        Self { dir }
    }

    fn path(&self) -> &Path {
        self.dir.path()
    }

    /// Fills the disk's bytes with one file; returns it.
    fn fill_bytes(&self) -> PathBuf {
        use std::io::Write as _;
        let path = self.path().join("fill");
        let mut f = std::fs::File::create(&path).unwrap();
        let chunk = vec![7u8; 64 << 10];
        while f.write_all(&chunk).is_ok() {}
        while f.write_all(&chunk[..4096]).is_ok() {}
        while f.write_all(&[7]).is_ok() {}
        path
    }

    /// Takes every free inode with empty files; returns them.
    fn fill_inodes(&self) -> Vec<PathBuf> {
        let mut made = Vec::new();
        for i in 0.. {
            let p = self.path().join(format!("inode-{i}"));
            if std::fs::File::create(&p).is_err() {
                break;
            }
            made.push(p);
        }
        made
    }
}

impl Drop for SmallDisk {
    fn drop(&mut self) {
        let _ = std::process::Command::new("umount")
            .arg("-l")
            .arg(self.dir.path())
            .status();
    }
}

fn listing(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(dir)
        .unwrap()
        .flatten()
        .filter_map(|e| e.file_name().into_string().ok())
        .collect();
    names.sort();
    names
}

/// A full state disk (bytes, then inodes) refuses new starts with
/// `StateFull` and leaves nothing behind; the running job and the engine go
/// on; and it recovers by itself once there is room again.
#[tokio::test]
async fn a_full_state_disk_refuses_starts_and_recovers_by_itself() {
    if let Some(why) = skip_reason() {
        eprintln!("SKIPPED: {why}");
        return;
    }
    let disk = SmallDisk::new("16m", 256);
    let state = tempfile::Builder::new().tempdir_in(disk.path()).unwrap();
    let t = TestEngine::start_in(Guard::shared().await, state, |_| {}).await;
    let writer = t
        .handle
        .start(sh("while :; do echo x; sleep 0.01; done"))
        .await
        .unwrap();
    // Writes 64 KiB when told to, while the disk is full.
    let loser = t
        .handle
        .start(sh("read x; head -c 65536 /dev/zero; exec sleep 1000"))
        .await
        .unwrap();
    let jobs = t.state.path().join("jobs");

    for what in ["bytes", "inodes"] {
        let filled = match what {
            "bytes" => vec![disk.fill_bytes()],
            _ => disk.fill_inodes(),
        };
        let files = listing(&jobs);
        let cgroups = t.job_dirs();
        let known = t.handle.list(true).len();
        let err = t.handle.start(spec(&["/bin/true"])).await.unwrap_err();
        assert!(matches!(err, EngineError::StateFull), "{what}: {err:?}");
        assert!(err.to_string().contains("state directory is full"), "{err}");
        assert_eq!(listing(&jobs), files, "{what}: a refused start left a file");
        wait_for("a refused start's cgroup to go", Duration::from_secs(5), || {
            t.job_dirs() == cgroups
        })
        .await;
        assert_eq!(
            t.handle.list(true).len(),
            known,
            "{what}: a refused start left a record"
        );
        let running = t.handle.get(&writer.id).unwrap();
        assert!(matches!(running.state, JobState::Running { .. }), "{running:?}");
        if what == "bytes" {
            t.handle.write_stdin(&loser.id, "go\n".into()).await.unwrap();
            wait_for("the output the disk cannot take", Duration::from_secs(10), || {
                std::fs::read_to_string(t.job_dir(&loser.id).join("cgroup.procs"))
                    .unwrap_or_default()
                    .split_whitespace()
                    .any(|p| {
                        std::fs::read_to_string(format!("/proc/{p}/comm")).is_ok_and(|c| c.trim() == "sleep")
                    })
            })
            .await;
            let stopped = t
                .handle
                .stop(&loser.id, Some(Duration::from_secs(1)), "test")
                .await
                .unwrap();
            let JobState::Ended(e) = &stopped.state else {
                panic!("{stopped:?}")
            };
            assert!(
                e.output_error
                    .as_deref()
                    .is_some_and(|m| m.contains("65536 bytes of output were lost")),
                "what the disk refused is counted: {e:?}"
            );
        }

        for f in filled {
            std::fs::remove_file(f).unwrap();
        }
        let ok = t
            .handle
            .start(spec(&["/bin/true"]))
            .await
            .expect("a start once there is room");
        let (_, _, end) = read_all(&t.handle, &ok.id, ReadFrom::Start).await;
        assert!(matches!(end.state, JobState::Ended(_)), "{end:?}");
        // An ended job's shim removes its socket just after: wait, so that
        // the next filling takes every inode and none is freed behind it.
        wait_for("the ended jobs' shims to go", Duration::from_secs(10), || {
            listing(&jobs)
                .iter()
                .filter(|n| n.ends_with(".sock"))
                .all(|n| n.starts_with(writer.id.as_str()))
        })
        .await;
    }
    t.shutdown().await;
}

/// An upgrade: a crew finds shims of a protocol version it does not speak.
/// It says so and leaves them running, untouched, and a crew that speaks
/// their version takes them over.
#[tokio::test]
async fn a_shim_of_another_protocol_version_runs_on_until_a_crew_that_speaks_it() {
    if let Some(why) = skip_reason() {
        eprintln!("SKIPPED: {why}");
        return;
    }
    // Shims of "the next release": they speak version 2.
    let next = TestProtocols {
        min: 1,
        max: 2,
        shims_claim: Some(2),
    };
    let t = TestEngine::start(Guard::shared().await, |c| c.test_protocols = Some(next)).await;
    let job = t
        .handle
        .start(sh("while :; do echo x; sleep 0.01; done"))
        .await
        .unwrap();
    let (parent, state) = t.leave().await;

    // "The previous release": speaks version 1 only.
    let old = TestEngine::start_at(Guard::shared().await, parent, state, |c| {
        c.test_protocols = Some(TestProtocols {
            min: 1,
            max: 1,
            shims_claim: None,
        });
    })
    .await;
    let err = old
        .handle
        .stop(&job.id, None, "test")
        .await
        .expect_err("a job this crew cannot reach");
    assert!(err.to_string().contains("protocol 2"), "{err}");
    let info = old.handle.get(&job.id).unwrap();
    assert!(
        matches!(info.state, JobState::Running { .. }),
        "left running: {info:?}"
    );
    assert!(old.job_dir(&job.id).is_dir(), "its cgroup is left alone");
    let (parent, state) = old.leave().await;

    // The release that speaks it.
    let new = TestEngine::start_at(Guard::shared().await, parent, state, |c| {
        c.test_protocols = Some(next)
    })
    .await;
    let stopped = new
        .handle
        .stop(&job.id, Some(Duration::from_secs(1)), "test")
        .await
        .unwrap();
    let JobState::Ended(e) = &stopped.state else {
        panic!("{stopped:?}")
    };
    assert!(matches!(e.outcome, Outcome::StoppedBy { .. }), "{e:?}");
    new.shutdown().await;
}

/// A store that is not a database (or is damaged) is moved aside, never a
/// reason not to start; the running jobs are found again from their shims,
/// each with the record it keeps.
#[tokio::test]
async fn a_broken_store_is_moved_aside_and_running_jobs_are_found_again() {
    if let Some(why) = skip_reason() {
        eprintln!("SKIPPED: {why}");
        return;
    }
    let t = TestEngine::start(Guard::shared().await, |_| {}).await;
    let mut s = sh("sleep 1000");
    s.name = Some("survivor".into());
    let job = t.handle.start(s).await.unwrap();
    let (parent, state) = t.leave().await;
    for f in ["jobs.db-wal", "jobs.db-shm"] {
        let _ = std::fs::remove_file(state.path().join(f));
    }
    std::fs::write(state.path().join("jobs.db"), b"not a database, not at all").unwrap();

    let t2 = TestEngine::start_at(Guard::shared().await, parent, state, |_| {}).await;
    let aside: Vec<String> = listing(t2.state.path())
        .into_iter()
        .filter(|n| n.starts_with("jobs.db.corrupt-"))
        .collect();
    assert_eq!(aside.len(), 1, "{:?}", listing(t2.state.path()));
    let found = t2.handle.resolve("survivor").unwrap();
    assert_eq!(found.id, job.id);
    assert_eq!(found.handle, job.handle);
    assert!(matches!(found.state, JobState::Running { .. }));
    // Handles go on above the one found.
    let next = t2.handle.start(spec(&["/bin/true"])).await.unwrap();
    assert_eq!(next.handle, "job-2");
    t2.shutdown().await;
}

/// Ended jobs past their retention go, with their output; handles are
/// never given again.
#[tokio::test]
async fn retention_removes_the_oldest_ended_jobs_and_handles_go_on() {
    if let Some(why) = skip_reason() {
        eprintln!("SKIPPED: {why}");
        return;
    }
    let t = TestEngine::start(Guard::shared().await, |c| {
        c.retention = Retention {
            max_jobs: 3,
            ..Retention::default()
        };
    })
    .await;
    let mut ids = Vec::new();
    for _ in 0..6 {
        let j = t.handle.start(spec(&["/bin/echo", "hi"])).await.unwrap();
        let _ = read_all(&t.handle, &j.id, ReadFrom::Start).await;
        ids.push(j.id);
    }
    let (parent, state) = t.leave().await;
    // Retention runs as the engine starts.
    let t2 = TestEngine::start_at(Guard::shared().await, parent, state, |c| {
        c.retention = Retention {
            max_jobs: 3,
            ..Retention::default()
        };
    })
    .await;
    wait_for("the oldest ended jobs to go", Duration::from_secs(10), || {
        t2.handle.list(true).len() == 3
    })
    .await;
    let kept: Vec<_> = t2.handle.list(true).into_iter().map(|j| j.id).collect();
    assert_eq!(kept, ids[3..].to_vec());
    for gone in &ids[..3] {
        assert!(!t2.state.path().join("jobs").join(format!("{gone}.out")).exists());
    }
    let next = t2.handle.start(spec(&["/bin/true"])).await.unwrap();
    assert_eq!(next.handle, "job-7");
    t2.shutdown().await;
}
