//! `foreman crews [--json]`: each crew, asked at once: reachable, who we
//! are there, its cgroup mode, when its certificate expires, and your
//! quota there with what your jobs use of it.

use serde::Serialize;
use tasker_proto::v1 as pb;

use crate::cli::Ctx;
use crate::cli::output::{outln, rfc3339, table};
use crate::client;
use crate::failure::Failure;
use crate::sanitize::Sanitizer;
use futures_util::future::join_all;

#[derive(Debug, Serialize)]
struct CrewView {
    name: String,
    addr: String,
    /// `config`, or the discovery source that found it.
    source: String,
    reachable: bool,
    error: Option<String>,
    identity: Option<String>,
    role: Option<String>,
    runs_as: Option<String>,
    cgroup_mode: Option<String>,
    version: Option<String>,
    cert_expires: Option<String>,
    /// Your caps there (your jobs together) and what your jobs use.
    quota: Option<QuotaView>,
}

#[derive(Debug, Serialize)]
struct QuotaView {
    running_jobs: u64,
    jobs: Option<u64>,
    tasks: Option<u64>,
    pids: Option<u64>,
    memory_used_bytes: Option<u64>,
    memory_bytes: Option<u64>,
    cpu: Option<f64>,
}

impl QuotaView {
    fn of(q: pb::Quota) -> Self {
        Self {
            running_jobs: q.running_jobs,
            jobs: q.jobs,
            tasks: q.tasks,
            pids: q.pids,
            memory_used_bytes: q.memory_used_bytes,
            memory_bytes: q.memory_bytes,
            cpu: q.cpu,
        }
    }

    /// "jobs 2/256 · tasks 14/24576 · mem 12.0M/- · cpu -".
    fn summary(&self) -> String {
        let n = |v: Option<u64>| v.map_or_else(|| "-".to_owned(), |v| v.to_string());
        let b = |v: Option<u64>| v.map_or_else(|| "-".to_owned(), crate::present::bytes);
        format!(
            "jobs {}/{} · tasks {}/{} · mem {}/{} · cpu {}",
            self.running_jobs,
            n(self.jobs),
            n(self.tasks),
            n(self.pids),
            b(self.memory_used_bytes),
            b(self.memory_bytes),
            self.cpu.map_or_else(|| "-".to_owned(), |c| format!("{c}"))
        )
    }
}

pub async fn crews(ctx: &Ctx, json: bool) -> Result<(), Failure> {
    let asks = ctx.crews.iter().map(|crew| async move {
        let mut c = crew.client.clone();
        let answer = c.info(pb::InfoRequest {}).await.map(tonic::Response::into_inner);
        (crew, answer)
    });
    let mut views = Vec::new();
    for (crew, answer) in join_all(asks).await {
        let seen = crew.seen.lock().map(|s| s.clone()).unwrap_or_default();
        let expires = seen
            .not_after
            .map(|t| rfc3339(&prost_types::Timestamp { seconds: t, nanos: 0 }));
        views.push(match answer {
            Ok(info) => CrewView {
                name: crew.name.clone(),
                addr: crew.addr.clone(),
                source: crew.source.to_string(),
                reachable: true,
                error: None,
                identity: Some(info.identity),
                role: Some(info.role),
                runs_as: Some(info.runs_as).filter(|r| !r.is_empty()),
                cgroup_mode: Some(info.cgroup_mode),
                version: Some(info.version),
                cert_expires: expires,
                quota: info.quota.map(QuotaView::of),
            },
            Err(s) => CrewView {
                name: crew.name.clone(),
                addr: crew.addr.clone(),
                source: crew.source.to_string(),
                reachable: false,
                error: Some(client::explain(&s)),
                identity: None,
                role: None,
                runs_as: None,
                cgroup_mode: None,
                version: None,
                cert_expires: None,
                quota: None,
            },
        });
    }
    if json {
        outln!("{}", serde_json::to_string_pretty(&views).unwrap_or_default());
    } else {
        // Where each crew came from, once discovery found one.
        let sources = ctx.crews.iter().any(|c| c.source.discovered());
        let rows: Vec<Vec<String>> = views
            .iter()
            .map(|v| {
                let opt =
                    |o: &Option<String>| o.as_deref().map(Sanitizer::clean).unwrap_or_else(|| "-".into());
                let addr = if sources {
                    format!("{} ({})", v.addr, Sanitizer::clean(&v.source))
                } else {
                    v.addr.clone()
                };
                vec![
                    v.name.clone(),
                    addr,
                    if v.reachable {
                        "yes".into()
                    } else {
                        format!("no: {}", Sanitizer::clean(v.error.as_deref().unwrap_or("")))
                    },
                    match (&v.identity, &v.role) {
                        (Some(i), Some(r)) => format!("{} ({r})", Sanitizer::clean(i)),
                        _ => "-".into(),
                    },
                    opt(&v.cgroup_mode),
                    opt(&v.cert_expires),
                    v.quota.as_ref().map_or_else(|| "-".into(), QuotaView::summary),
                ]
            })
            .collect();
        if let Some(c) = &ctx.config.context {
            outln!("context {}", Sanitizer::clean(c));
        }
        outln!(
            "{}",
            table(
                &[
                    "CREW",
                    "ADDRESS",
                    "REACHABLE",
                    "YOU ARE",
                    "CGROUPS",
                    "CERT EXPIRES",
                    "YOUR QUOTA (USED/CAP)"
                ],
                &rows
            )
        );
    }
    if views.iter().all(|v| v.reachable) {
        Ok(())
    } else {
        Err(Failure::Exit(2))
    }
}
