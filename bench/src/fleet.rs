//! The fleet benchmark's clients (`bench/fleet`): every crew of the config
//! at once, one connection each.
//!
//! - `fleet-fill`: the same jobs on every crew: ended ones (`true`, and
//!   some `sh -c 'exit 3'`) and running ones (`sleep`), started with a
//!   bounded number in flight over the whole fleet; then waits until each
//!   crew lists them ended or running as they should be.
//! - `fleet-load`: what a dashboard gets, counted: a `WatchJobs` stream per
//!   crew, every job update tallied per wall-clock second (each usage
//!   figure of a running job, each created, changed or archived job), while
//!   it churns jobs: `true` started at a steady rate round the crews, each
//!   archived once it has ended (so that the list keeps its size). It runs
//!   until its stdin closes, then prints what it counted.
//! - `fleet-stop`: stops every running job on every crew.

use std::collections::{BTreeMap, HashSet};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use anyhow::{Context as _, bail};
use foreman::client::Crew;
use foreman::config::Config;
use tasker_proto::v1 as pb;
use tasker_proto::v1::watch_jobs_response::Event as W;
use tokio::io::AsyncReadExt as _;
use tokio::sync::Semaphore;

/// A lazy client per crew of the config, and every handshake done (an
/// `Info` each, all at once).
async fn connect_all(config: &Config) -> anyhow::Result<Vec<Crew>> {
    let crews: Vec<Crew> = config
        .crews
        .iter()
        .map(|e| foreman::client::crew(config, e))
        .collect::<Result<_, _>>()?;
    let mut tasks = Vec::with_capacity(crews.len());
    for c in &crews {
        let mut client = c.client.clone();
        let name = c.name.clone();
        tasks.push(tokio::spawn(async move {
            client
                .info(pb::InfoRequest {})
                .await
                .with_context(|| format!("connecting to {name}"))
        }));
    }
    for t in tasks {
        t.await??;
    }
    Ok(crews)
}

fn secs(d: Duration) -> f64 {
    d.as_secs_f64()
}

fn unix_now() -> f64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0.0, |d| d.as_secs_f64())
}

/// What job `i` of a crew's `per` runs: `running` of them `sleep`, spread
/// out; `failed` of them `sh -c 'exit 3'`; the rest `true`.
fn argv_of(i: usize, per: usize, running: usize, failed: usize, sleep: u64) -> (Vec<String>, bool) {
    let s = |v: &[&str]| v.iter().map(|x| (*x).to_owned()).collect::<Vec<_>>();
    let every = (per / running.max(1)).max(1);
    if running > 0 && i.is_multiple_of(every) && i / every < running {
        // 0: a `sleep 1` every second, so that the job's figures change
        // (and the crews report them) every second.
        if sleep == 0 {
            return (s(&["sh", "-c", "while :; do sleep 1; done"]), true);
        }
        return (s(&["sleep", &sleep.to_string()]), true);
    }
    let half = (per / failed.max(1) / 2).max(1);
    if failed > 0 && i % (per / failed).max(1) == half && i / (per / failed).max(1) < failed {
        return (s(&["sh", "-c", "exit 3"]), false);
    }
    (s(&["true"]), false)
}

async fn start(crew: &Crew, argv: Vec<String>) -> anyhow::Result<pb::Job> {
    let spec = pb::JobSpec {
        argv,
        ..Default::default()
    };
    crew.client
        .clone()
        .start_job(pb::StartJobRequest { spec: Some(spec) })
        .await
        .with_context(|| format!("StartJob on {}", crew.name))?
        .into_inner()
        .job
        .context("StartJob answered no job")
}

/// Every job a crew lists (archived ones left out), all pages.
async fn list(crew: &Crew) -> anyhow::Result<Vec<pb::Job>> {
    let mut out = Vec::new();
    let mut token = String::new();
    loop {
        let r = crew
            .client
            .clone()
            .list_jobs(pb::ListJobsRequest {
                include_archived: false,
                page_size: 0,
                page_token: token,
            })
            .await
            .with_context(|| format!("ListJobs on {}", crew.name))?
            .into_inner();
        out.extend(r.jobs);
        if r.next_page_token.is_empty() {
            return Ok(out);
        }
        token = r.next_page_token;
    }
}

fn ended(j: &pb::Job) -> bool {
    j.outcome.is_some()
}

/// `per` jobs on every crew (`running` of them left running), then waits
/// until every crew lists them so.
pub async fn fill(
    config: &Config,
    per: usize,
    running: usize,
    failed: usize,
    in_flight: usize,
    sleep: u64,
) -> anyhow::Result<serde_json::Value> {
    let t0 = Instant::now();
    let crews = connect_all(config).await?;
    let connected = t0.elapsed();
    eprintln!(
        "fleet-fill: {} crews connected in {:.2} s; starting {per} jobs on each",
        crews.len(),
        secs(connected)
    );
    let gate = Arc::new(Semaphore::new(in_flight.max(1)));
    let mut tasks = Vec::new();
    // Round the crews, job by job: every crew fills at the same pace.
    for i in 0..per {
        for crew in &crews {
            let (argv, _) = argv_of(i, per, running, failed, sleep);
            let crew = crew.clone();
            let permit = Arc::clone(&gate).acquire_owned().await?;
            tasks.push(tokio::spawn(async move {
                let r = start(&crew, argv).await;
                drop(permit);
                r.map(|_| ())
            }));
        }
    }
    let mut errors = Vec::new();
    for t in tasks {
        if let Err(e) = t.await? {
            errors.push(format!("{e:#}"));
        }
    }
    let started = t0.elapsed();
    eprintln!(
        "fleet-fill: {} starts in {:.1} s ({} failed); waiting for the ended ones",
        per * crews.len(),
        secs(started - connected),
        errors.len()
    );
    if !errors.is_empty() {
        bail!("{} starts failed, the first: {}", errors.len(), errors[0]);
    }
    // Settled: each crew lists `per` jobs, `running` of them running.
    let deadline = Instant::now() + Duration::from_secs(300);
    let (total, run_now) = loop {
        let (mut settled, mut total, mut run_now) = (0, 0, 0);
        for crew in &crews {
            let jobs = list(crew).await?;
            let r = jobs.iter().filter(|j| !ended(j)).count();
            total += jobs.len();
            run_now += r;
            if jobs.len() == per && r == running {
                settled += 1;
            }
        }
        if settled == crews.len() {
            break (total, run_now);
        }
        if Instant::now() > deadline {
            bail!(
                "after 300 s {settled} of {} crews list {per} jobs with {running} running \
                 ({total} jobs, {run_now} running in all)",
                crews.len()
            );
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    };
    Ok(serde_json::json!({
        "crews": crews.len(),
        "per_crew": per,
        "running_per_crew": running,
        "failed_per_crew": failed,
        "jobs": total,
        "running": run_now,
        "connect_s": secs(connected),
        "start_s": secs(started - connected),
        "settled_s": secs(t0.elapsed()),
        "starts_per_s": (per * crews.len()) as f64 / secs(started - connected),
    }))
}

/// Job updates the watchers got in one wall-clock second.
#[derive(Debug, Default, Clone, Copy)]
struct Tally {
    /// Usage reports (one per crew per report).
    usage_reports: u64,
    /// Usage figures in them: one per running job.
    usage_jobs: u64,
    created: u64,
    changed: u64,
    archived: u64,
    snapshot_jobs: u64,
}

impl Tally {
    fn json(&self, second: u64) -> serde_json::Value {
        serde_json::json!({
            "t": second,
            "usage_reports": self.usage_reports,
            "usage_jobs": self.usage_jobs,
            "created": self.created,
            "changed": self.changed,
            "archived": self.archived,
            "snapshot_jobs": self.snapshot_jobs,
        })
    }
}

/// The churn's jobs, and ended jobs the watchers saw before StartJob's
/// answer named them: whichever side learns second archives the job.
#[derive(Default)]
struct Churn {
    mine: HashSet<String>,
    ended: HashSet<String>,
}

struct Shared {
    tallies: Mutex<BTreeMap<u64, Tally>>,
    churn: Mutex<Churn>,
    archive_errors: Mutex<Vec<String>>,
    archives: std::sync::atomic::AtomicU64,
    watch_errors: Mutex<Vec<String>>,
}

impl Shared {
    fn count(&self, f: impl FnOnce(&mut Tally)) {
        let second = unix_now() as u64;
        let mut t = self.tallies.lock().expect("tallies");
        f(t.entry(second).or_default());
    }
}

fn archive(shared: &Arc<Shared>, crew: &Crew, id: String) {
    let shared = Arc::clone(shared);
    let mut client = crew.client.clone();
    tokio::spawn(async move {
        match client.archive_job(pb::ArchiveJobRequest { job: id }).await {
            Ok(_) => {
                shared.archives.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            }
            Err(s) => shared
                .archive_errors
                .lock()
                .expect("errors")
                .push(s.message().to_owned()),
        }
    });
}

async fn watch(shared: Arc<Shared>, crew: Crew) {
    let mut stream = match crew.client.clone().watch_jobs(pb::WatchJobsRequest {}).await {
        Ok(s) => s.into_inner(),
        Err(s) => {
            let e = format!("{}: WatchJobs: {}", crew.name, s.message());
            shared.watch_errors.lock().expect("errors").push(e);
            return;
        }
    };
    loop {
        let ev = match stream.message().await {
            Ok(Some(m)) => m.event,
            Ok(None) => return,
            Err(s) => {
                let e = format!("{}: the watch: {}", crew.name, s.message());
                shared.watch_errors.lock().expect("errors").push(e);
                return;
            }
        };
        match ev {
            Some(W::Usage(u)) => shared.count(|t| {
                t.usage_reports += 1;
                t.usage_jobs += u.jobs.len() as u64;
            }),
            Some(W::Created(_)) => shared.count(|t| t.created += 1),
            Some(W::Changed(j)) => {
                shared.count(|t| t.changed += 1);
                if ended(&j) {
                    let mine = {
                        let mut c = shared.churn.lock().expect("churn");
                        let mine = c.mine.remove(&j.id);
                        if !mine {
                            c.ended.insert(j.id.clone());
                        }
                        mine
                    };
                    if mine {
                        archive(&shared, &crew, j.id);
                    }
                }
            }
            Some(W::Archived(_)) => shared.count(|t| t.archived += 1),
            Some(W::Snapshot(s)) => shared.count(|t| t.snapshot_jobs += s.jobs.len() as u64),
            None => {}
        }
    }
}

/// Watches every crew and churns `churn` jobs a second until stdin closes.
pub async fn load(config: &Config, churn: f64) -> anyhow::Result<serde_json::Value> {
    let crews = connect_all(config).await?;
    let shared = Arc::new(Shared {
        tallies: Mutex::new(BTreeMap::new()),
        churn: Mutex::new(Churn::default()),
        archive_errors: Mutex::new(Vec::new()),
        archives: 0.into(),
        watch_errors: Mutex::new(Vec::new()),
    });
    for c in &crews {
        tokio::spawn(watch(Arc::clone(&shared), c.clone()));
    }
    eprintln!(
        "fleet-load: watching {} crews; churning {churn} jobs/s until stdin closes",
        crews.len()
    );
    let started_at = unix_now();
    let start_errors = Arc::new(Mutex::new(Vec::<String>::new()));
    let mut starts = 0u64;
    let mut stdin = tokio::io::stdin();
    let mut buf = [0u8; 64];
    let mut eof = Box::pin(async move { while stdin.read(&mut buf).await.is_ok_and(|n| n > 0) {} });
    if churn > 0.0 {
        let mut every = tokio::time::interval(Duration::from_secs_f64(1.0 / churn));
        every.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        // A stride prime to the crew count: consecutive starts on crews
        // far apart.
        let n = crews.len();
        let stride = (1..n)
            .rev()
            .find(|s| gcd(*s, n) == 1 && *s <= n / 3 + 1)
            .unwrap_or(1);
        let mut at = 0usize;
        loop {
            tokio::select! {
                () = &mut eof => break,
                _ = every.tick() => {}
            }
            let crew = crews[at].clone();
            at = (at + stride) % n;
            starts += 1;
            let (shared, errors) = (Arc::clone(&shared), Arc::clone(&start_errors));
            tokio::spawn(async move {
                match start(&crew, vec!["true".to_owned()]).await {
                    Ok(job) => {
                        let now_ended = {
                            let mut c = shared.churn.lock().expect("churn");
                            let gone = c.ended.remove(&job.id);
                            if !gone {
                                c.mine.insert(job.id.clone());
                            }
                            gone
                        };
                        if now_ended {
                            archive(&shared, &crew, job.id);
                        }
                    }
                    Err(e) => errors.lock().expect("errors").push(format!("{e:#}")),
                }
            });
        }
    } else {
        eof.await;
    }
    let stopped_at = unix_now();
    // The last churned jobs end and are archived.
    let deadline = Instant::now() + Duration::from_secs(10);
    while Instant::now() < deadline {
        let left = shared.churn.lock().expect("churn").mine.len();
        if left == 0 && shared.archives.load(std::sync::atomic::Ordering::Relaxed) >= starts {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let tallies: Vec<_> = shared
        .tallies
        .lock()
        .expect("tallies")
        .iter()
        .map(|(s, t)| t.json(*s))
        .collect();
    let start_errors = start_errors.lock().expect("errors").clone();
    let archive_errors = shared.archive_errors.lock().expect("errors").clone();
    let watch_errors = shared.watch_errors.lock().expect("errors").clone();
    let left = shared.churn.lock().expect("churn").mine.len();
    Ok(serde_json::json!({
        "crews": crews.len(),
        "churn_per_s": churn,
        "started_at": started_at,
        "stopped_at": stopped_at,
        "churn_starts": starts,
        "churn_archived": shared.archives.load(std::sync::atomic::Ordering::Relaxed),
        "churn_not_archived": left,
        "start_errors": start_errors,
        "archive_errors": archive_errors,
        "watch_errors": watch_errors,
        "seconds": tallies,
    }))
}

fn gcd(a: usize, b: usize) -> usize {
    if b == 0 { a } else { gcd(b, a % b) }
}

/// Stops every running job of every crew (SIGTERM, `grace` before SIGKILL).
pub async fn stop_all(config: &Config, grace: Duration) -> anyhow::Result<serde_json::Value> {
    let t0 = Instant::now();
    let crews = connect_all(config).await?;
    let mut tasks = Vec::new();
    for crew in crews {
        tasks.push(tokio::spawn(async move {
            let jobs = list(&crew).await?;
            let mut stopped = 0usize;
            for j in jobs.into_iter().filter(|j| !ended(j)) {
                let grace = prost_types::Duration {
                    seconds: grace.as_secs() as i64,
                    nanos: grace.subsec_nanos() as i32,
                };
                crew.client
                    .clone()
                    .stop_job(pb::StopJobRequest {
                        job: j.id,
                        grace: Some(grace),
                    })
                    .await
                    .with_context(|| format!("StopJob on {}", crew.name))?;
                stopped += 1;
            }
            anyhow::Ok(stopped)
        }));
    }
    let mut stopped = 0;
    for t in tasks {
        stopped += t.await??;
    }
    Ok(serde_json::json!({ "stopped": stopped, "wall_s": secs(t0.elapsed()) }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn forty_jobs_four_running_four_failed() {
        let kinds: Vec<_> = (0..40).map(|i| argv_of(i, 40, 4, 4, 9)).collect();
        assert_eq!(kinds.iter().filter(|(_, r)| *r).count(), 4);
        let failed = kinds.iter().filter(|(a, _)| a[0] == "sh").count();
        assert_eq!(failed, 4);
        assert_eq!(kinds.iter().filter(|(a, _)| a[0] == "true").count(), 32);
        // The first job of a crew runs (a running row on the first screen).
        assert!(kinds[0].1);
    }

    #[test]
    fn no_running_no_failed() {
        assert!((0..40).all(|i| argv_of(i, 40, 0, 0, 9).0 == ["true"]));
    }
}
