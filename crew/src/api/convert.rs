//! proto ⇄ engine. Requests are checked here only for what the engine
//! cannot see (sizes that do not fit, devices to resolve); the engine
//! validates the rest, with the same messages for every caller.

use std::os::unix::fs::{FileTypeExt as _, MetadataExt as _};
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

use tasker_proto::v1 as pb;

use super::status::ApiError;
use crate::engine::{
    DeviceNumber, IoLimit, JobInfo, JobSpec, JobState, Limits, Network, Outcome, Phase, RunAs, Termination,
    Usage, WinSize,
};

pub fn timestamp(t: SystemTime) -> prost_types::Timestamp {
    t.into()
}

pub fn duration(d: Duration) -> prost_types::Duration {
    prost_types::Duration::try_from(d).unwrap_or(prost_types::Duration {
        seconds: i64::MAX,
        nanos: 0,
    })
}

/// A proto duration as a std one; negative or out of range is a bad request.
pub fn from_duration(d: &prost_types::Duration, what: &str) -> Result<Duration, ApiError> {
    Duration::try_from(*d).map_err(|_| ApiError::invalid(format!("{what} must be a positive duration")))
}

/// The most bytes of a job's argv that lists, watches and the answers to
/// actions carry ([`job_summary`]); `GetJob` carries all of it ([`job`]).
pub const ARGV_SUMMARY: usize = 4 << 10;

/// A job as lists and watches send it: its argv cut to [`ARGV_SUMMARY`]
/// bytes (`argv_cut` says so), so that what a watcher or a list page costs
/// does not grow with what one job's owner chose to pass.
/// A mark of the time index, as sent.
pub fn mark(m: &tasker_shim::timeindex::Mark) -> pb::Mark {
    use tasker_shim::timeindex::Stream;
    let stream = match m.stream {
        Stream::Out => pb::Stream::Stdout,
        Stream::Err => pb::Stream::Stderr,
    };
    pb::Mark {
        offset: m.offset,
        time: Some(prost_types::Timestamp {
            seconds: m.wall_ns.div_euclid(1_000_000_000),
            nanos: m.wall_ns.rem_euclid(1_000_000_000) as i32,
        }),
        stream: stream.into(),
    }
}

pub fn job_summary(info: &JobInfo) -> pb::Job {
    let (argv, cut) = info.argv_summary(ARGV_SUMMARY);
    pb::Job {
        argv_cut: cut,
        ..job_with(info, argv)
    }
}

/// A job whole, for `GetJob`.
pub fn job(info: &JobInfo) -> pb::Job {
    job_with(info, info.argv.to_vec())
}

fn job_with(info: &JobInfo, argv: Vec<String>) -> pb::Job {
    let mut job = pb::Job {
        id: info.id.to_string(),
        handle: info.handle.clone(),
        name: info.name.clone().unwrap_or_default(),
        batch: info.batch.clone().unwrap_or_default(),
        owner: info.owner.clone(),
        argv,
        cwd: info.cwd.display().to_string(),
        user: info.run_as.user.clone(),
        uid: info.run_as.uid,
        gid: info.run_as.gid,
        limits: Some(limits(&info.limits)),
        tty: info.tty.map(|w| pb::TtySize {
            rows: u32::from(w.rows),
            cols: u32::from(w.cols),
        }),
        network: match info.network {
            Network::Isolated => pb::Network::Isolated,
            Network::Host => pb::Network::Host,
        } as i32,
        timeout: info.timeout.map(duration),
        created_at: Some(timestamp(info.created_at)),
        phase: phase(info.state.phase()) as i32,
        archived: info.archived,
        ..Default::default()
    };
    match &info.state {
        JobState::Starting => {}
        JobState::Running { started_at, pid } => {
            job.started_at = Some(timestamp(*started_at));
            job.pid = *pid;
        }
        JobState::Ended(e) => {
            job.started_at = e.started_at.map(timestamp);
            job.ended_at = Some(timestamp(e.ended_at));
            job.outcome = Some(outcome(&e.outcome));
            job.totals = Some(pb::Totals {
                peak_memory_bytes: e.totals.peak_memory_bytes,
                cpu_usec: e.totals.cpu_usec,
                oom_kills: e.totals.oom_kills,
            });
            job.output_error = e.output_error.clone().unwrap_or_default();
        }
    }
    job
}

fn phase(p: Phase) -> pb::JobPhase {
    match p {
        Phase::Starting => pb::JobPhase::Starting,
        Phase::Running => pb::JobPhase::Running,
        Phase::Completed => pb::JobPhase::Completed,
        Phase::Failed => pb::JobPhase::Failed,
        Phase::Stopped => pb::JobPhase::Stopped,
    }
}

fn outcome(o: &Outcome) -> pb::Outcome {
    use pb::outcome::{Reason, Termination as T};
    let termination = o.termination().map(|t| match t {
        Termination::Exited(c) => T::ExitCode(c),
        Termination::Signaled(s) => T::Signal(s),
    });
    let reason = match o {
        Outcome::Finished(_) => Reason::Finished(pb::outcome::Finished {}),
        Outcome::OomKilled(_) => Reason::OomKilled(pb::outcome::OomKilled {}),
        Outcome::TimedOut(_) => Reason::TimedOut(pb::outcome::TimedOut {}),
        Outcome::StoppedBy { who, .. } => Reason::StoppedBy(pb::outcome::StoppedBy { who: who.clone() }),
        Outcome::StartFailed(why) => Reason::StartFailed(pb::outcome::StartFailed { reason: why.clone() }),
        Outcome::Lost(why) => Reason::Lost(pb::outcome::Lost { reason: why.clone() }),
    };
    pb::Outcome {
        termination,
        reason: Some(reason),
        summary: o.to_string(),
    }
}

fn limits(l: &Limits) -> pb::Limits {
    pb::Limits {
        cpu: l.cpu,
        memory_bytes: l.memory,
        io: l
            .io
            .iter()
            .map(|io| pb::IoLimit {
                device: io.device.to_string(),
                read_bps: io.read_bps,
                write_bps: io.write_bps,
                read_iops: io.read_iops,
                write_iops: io.write_iops,
            })
            .collect(),
        pids: l.pids,
        memory_high_bytes: l.memory_high,
        cpu_weight: l.cpu_weight,
    }
}

pub fn usage(id: &str, u: Usage, cpu_cores: f64) -> pb::Usage {
    pb::Usage {
        job_id: id.to_owned(),
        cpu_usec: u.cpu_usec,
        memory_bytes: u.memory_bytes,
        cpu_cores,
    }
}

/// A start request as the engine's spec, for a caller who runs as `run_as`.
pub fn spec(req: pb::JobSpec, run_as: RunAs, owner: &str) -> Result<JobSpec, ApiError> {
    let tty = match req.tty {
        None => None,
        Some(t) => Some(WinSize {
            rows: u16::try_from(t.rows).map_err(|_| ApiError::invalid("tty rows must be under 65536"))?,
            cols: u16::try_from(t.cols).map_err(|_| ApiError::invalid("tty columns must be under 65536"))?,
        }),
    };
    let network = match pb::Network::try_from(req.network) {
        Ok(pb::Network::Unspecified | pb::Network::Isolated) => Network::Isolated,
        Ok(pb::Network::Host) => Network::Host,
        Err(_) => return Err(ApiError::invalid(format!("unknown network mode {}", req.network))),
    };
    let limits = match req.limits {
        None => Limits::default(),
        Some(l) => Limits {
            cpu: l.cpu,
            memory: l.memory_bytes,
            io: io_limits(&l.io)?,
            pids: l.pids,
            memory_high: l.memory_high_bytes,
            cpu_weight: l.cpu_weight,
        },
    };
    Ok(JobSpec {
        argv: req.argv,
        env: req.env.into_iter().map(|e| (e.name, e.value)).collect(),
        cwd: (!req.cwd.is_empty()).then(|| PathBuf::from(req.cwd)),
        run_as,
        limits,
        tty,
        network,
        timeout: req
            .timeout
            .as_ref()
            .map(|d| from_duration(d, "timeout"))
            .transpose()?,
        name: (!req.name.is_empty()).then_some(req.name),
        batch: (!req.batch.is_empty()).then_some(req.batch),
        owner: owner.to_owned(),
    })
}

/// Resolves each io limit's device: a path, `MAJOR:MINOR`, or every disk.
fn io_limits(req: &[pb::IoLimit]) -> Result<Vec<IoLimit>, ApiError> {
    let mut out: Vec<IoLimit> = Vec::new();
    for l in req {
        let devices = if l.device.is_empty() {
            let all = all_disks();
            if all.is_empty() {
                return Err(ApiError::precondition("this host has no disk to limit"));
            }
            all
        } else {
            vec![device(&l.device)?]
        };
        for d in devices {
            out.retain(|o| o.device != d);
            out.push(IoLimit {
                device: d,
                read_bps: l.read_bps,
                write_bps: l.write_bps,
                read_iops: l.read_iops,
                write_iops: l.write_iops,
            });
        }
    }
    Ok(out)
}

/// A block device by `MAJOR:MINOR` or by a path under `/dev`. The crew
/// runs as root but the caller may not: a path is looked up only under
/// `/dev` (which everyone may list), and every way it can fail gives the
/// same answer, so a lookup tells the caller nothing they could not see
/// themselves. A symlink is followed only to a block device under `/dev`
/// (`/dev/disk/by-id/...`).
fn device(spec: &str) -> Result<DeviceNumber, ApiError> {
    let bad = || {
        ApiError::invalid(format!(
            "io device {spec:?} is not a block device on this host: give /dev/NAME or MAJOR:MINOR \
             (lsblk lists them)"
        ))
    };
    if let Some((maj, min)) = spec.split_once(':') {
        let (Ok(major), Ok(minor)) = (maj.parse::<u32>(), min.parse::<u32>()) else {
            return Err(bad());
        };
        // The kernel lists every block device it has here.
        if !Path::new(&format!("/sys/dev/block/{major}:{minor}")).exists() {
            return Err(bad());
        }
        return Ok(DeviceNumber { major, minor });
    }
    let under_dev = |p: &Path| {
        p.strip_prefix("/dev").is_ok_and(|rest| {
            rest.components()
                .all(|c| matches!(c, std::path::Component::Normal(_)))
        })
    };
    let path = Path::new(spec);
    if !under_dev(path) {
        return Err(bad());
    }
    let real = std::fs::canonicalize(path).map_err(|_| bad())?;
    if !under_dev(&real) {
        return Err(bad());
    }
    let meta = std::fs::metadata(&real).map_err(|_| bad())?;
    if !meta.file_type().is_block_device() {
        return Err(bad());
    }
    let rdev = meta.rdev();
    Ok(DeviceNumber {
        major: libc::major(rdev),
        minor: libc::minor(rdev),
    })
}

/// Every whole disk with a size (`/sys/block`), RAM disks aside.
fn all_disks() -> Vec<DeviceNumber> {
    let mut out = Vec::new();
    let Ok(entries) = std::fs::read_dir("/sys/block") else {
        return out;
    };
    for e in entries.flatten() {
        let name = e.file_name().to_string_lossy().into_owned();
        if name.starts_with("ram") || name.starts_with("zram") {
            continue;
        }
        let read = |f: &str| std::fs::read_to_string(e.path().join(f)).unwrap_or_default();
        if read("size").trim().parse::<u64>().unwrap_or(0) == 0 {
            continue;
        }
        if let Some((maj, min)) = read("dev").trim().split_once(':')
            && let (Ok(major), Ok(minor)) = (maj.parse(), min.parse())
        {
            out.push(DeviceNumber { major, minor });
        }
    }
    out.sort();
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn root() -> RunAs {
        crate::engine::user::lookup("root").unwrap()
    }

    #[test]
    fn sizes_that_do_not_fit_are_bad_requests() {
        let req = pb::JobSpec {
            argv: vec!["x".into()],
            tty: Some(pb::TtySize {
                rows: 70_000,
                cols: 80,
            }),
            ..Default::default()
        };
        let err = spec(req, root(), "a").unwrap_err();
        assert_eq!(err.0.code(), tonic::Code::InvalidArgument);
        let req = pb::JobSpec {
            argv: vec!["x".into()],
            network: 7,
            ..Default::default()
        };
        assert!(spec(req, root(), "a").is_err());
        let req = pb::JobSpec {
            argv: vec!["x".into()],
            timeout: Some(prost_types::Duration {
                seconds: -1,
                nanos: 0,
            }),
            ..Default::default()
        };
        assert!(
            spec(req, root(), "a")
                .unwrap_err()
                .0
                .message()
                .contains("timeout")
        );
    }

    #[test]
    fn devices_resolve_from_numbers_and_paths() {
        // A block device this host has, by number and by its /dev path.
        let (number, name) = std::fs::read_dir("/sys/dev/block")
            .unwrap()
            .flatten()
            .find_map(|e| {
                let number = e.file_name().into_string().ok()?;
                let target = std::fs::read_link(e.path()).ok()?;
                let name = target.file_name()?.to_str()?.to_owned();
                Path::new("/dev").join(&name).exists().then_some((number, name))
            })
            .expect("a block device with a /dev node");
        let (major, minor) = number.split_once(':').unwrap();
        let want = DeviceNumber {
            major: major.parse().unwrap(),
            minor: minor.parse().unwrap(),
        };
        assert_eq!(device(&number).unwrap(), want);
        assert_eq!(device(&format!("/dev/{name}")).unwrap(), want);
    }

    /// Whatever a path is (missing, unreadable to the caller, a file, a
    /// char device, a symlink from elsewhere to a disk), the answer is the
    /// same: no lookup is an oracle for what root can see.
    #[test]
    fn a_device_that_is_not_one_says_only_that() {
        let dir = tempfile::tempdir().unwrap();
        let disk = std::fs::read_dir("/dev")
            .unwrap()
            .flatten()
            .find(|e| e.file_type().is_ok_and(|t| t.is_block_device()))
            .expect("a block device in /dev")
            .path();
        let link = dir.path().join("disk");
        std::os::unix::fs::symlink(&disk, &link).unwrap();
        let link = link.to_str().unwrap().to_owned();
        for spec in [
            "999:999",
            "1:x",
            "/etc/passwd",
            "/root/.ssh/id_rsa",
            "/root",
            "/no/such",
            "/dev/null",
            "/dev/../etc/shadow",
            "/dev/no-such-disk",
            "relative",
            link.as_str(),
        ] {
            let m = device(spec).unwrap_err().0;
            assert_eq!(m.code(), tonic::Code::InvalidArgument, "{spec}");
            assert_eq!(
                m.message(),
                format!(
                    "io device {spec:?} is not a block device on this host: give /dev/NAME or MAJOR:MINOR (lsblk lists them)"
                )
            );
        }
    }

    #[test]
    fn a_job_round_trips_its_visible_fields() {
        let info = JobInfo {
            id: crate::engine::JobId::parse("0123456789abcdef0123456789abcdef").unwrap(),
            handle: "job-1".into(),
            name: Some("n".into()),
            batch: Some("b-1".into()),
            owner: "alice".into(),
            argv: vec!["sleep".into(), "1".into()].into(),
            argv_cut: false,
            cwd: "/".into(),
            run_as: root(),
            limits: Limits {
                cpu: Some(0.5),
                ..Limits::default()
            },
            tty: Some(WinSize { rows: 24, cols: 80 }),
            network: Network::Host,
            timeout: Some(Duration::from_secs(3)),
            created_at: SystemTime::now(),
            state: JobState::Ended(crate::engine::Ended {
                started_at: None,
                ended_at: SystemTime::now(),
                outcome: Outcome::StoppedBy {
                    who: "bob".into(),
                    termination: Termination::Signaled(15),
                },
                totals: Default::default(),
                output_error: None,
            }),
            archived: false,
        };
        let j = job(&info);
        assert_eq!(j.phase, pb::JobPhase::Stopped as i32);
        assert_eq!(j.network, pb::Network::Host as i32);
        assert_eq!(j.batch, "b-1");
        let o = j.outcome.unwrap();
        assert_eq!(o.termination, Some(pb::outcome::Termination::Signal(15)));
        assert!(matches!(o.reason, Some(pb::outcome::Reason::StoppedBy(ref s)) if s.who == "bob"));
        assert_eq!(o.summary, "stopped by bob (signal 15 (SIGTERM))");
        let summary = job_summary(&info);
        assert_eq!(
            (summary.argv, summary.argv_cut),
            (vec!["sleep".into(), "1".into()], false)
        );

        // A long argv: lists and watches carry its first 4 KiB, marked;
        // GetJob all of it.
        let long: Vec<String> = (0..10_000).map(|i| format!("arg{i}")).collect();
        let info = JobInfo {
            argv: long.clone().into(),
            ..info
        };
        let summary = job_summary(&info);
        assert!(summary.argv_cut);
        let bytes: usize = summary.argv.iter().map(|a| a.len() + 1).sum();
        assert!(bytes <= ARGV_SUMMARY && bytes > ARGV_SUMMARY - 16, "{bytes}");
        // Whole words, then the start of the word that did not fit.
        let (last, whole) = summary.argv.split_last().unwrap();
        assert_eq!(whole[..], long[..whole.len()]);
        assert!(long[whole.len()].starts_with(last.as_str()));
        assert_eq!(job(&info).argv, long);
        assert!(!job(&info).argv_cut);
        // One word longer than the summary is cut, on a char boundary.
        let info = JobInfo {
            argv: vec!["é".repeat(ARGV_SUMMARY)].into(),
            ..info
        };
        let summary = job_summary(&info);
        assert!(summary.argv_cut);
        assert!(summary.argv[0].len() < ARGV_SUMMARY && summary.argv[0].starts_with('é'));
    }
}
