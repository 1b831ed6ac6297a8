//! `foreman status JOB [--json]`.

use crate::cli::Ctx;
use crate::cli::output::view;
use crate::cli::refs::resolve;
use crate::failure::Failure;
use crate::present::{bytes, command_line};
use crate::sanitize::Sanitizer;

pub async fn status(ctx: &Ctx, job: &str, json: bool) -> Result<(), Failure> {
    let (crew, job) = resolve(ctx, job).await?;
    let v = view(&crew.name, &job);
    if json {
        println!("{}", serde_json::to_string_pretty(&v).unwrap_or_default());
        return Ok(());
    }
    let clean = |s: &str| Sanitizer::clean(s);
    let mut lines = vec![
        ("job", format!("{} ({})", v.reference, v.id)),
        ("state", v.state.to_owned()),
        ("command", command_line(&v.argv)),
        ("owner", clean(&v.owner)),
        ("runs as", format!("{} (uid {})", clean(&v.user), v.uid)),
        ("cwd", clean(&v.cwd)),
    ];
    if let Some(n) = &v.name {
        lines.push(("name", clean(n)));
    }
    if v.tty {
        lines.push(("tty", "yes".into()));
    }
    lines.push(("network", v.network.to_owned()));
    if let Some(t) = &v.created_at {
        lines.push(("created", t.clone()));
    }
    if let Some(t) = &v.started_at {
        lines.push(("started", t.clone()));
    }
    if let Some(p) = v.pid {
        lines.push(("pid", p.to_string()));
    }
    if let Some(t) = &v.ended_at {
        lines.push(("ended", t.clone()));
    }
    if let Some(o) = &v.outcome {
        lines.push(("outcome", clean(o)));
    }
    if let Some(m) = v.peak_memory_bytes {
        lines.push(("peak memory", bytes(m)));
    }
    if let Some(c) = v.cpu_usec {
        lines.push(("cpu time", format!("{:.3}s", c as f64 / 1e6)));
    }
    let l = &v.limits;
    let mut limits = Vec::new();
    if let Some(c) = l.cpu {
        limits.push(format!("cpu {c}"));
    }
    if let Some(w) = l.cpu_weight {
        limits.push(format!("cpu weight {w}"));
    }
    if let Some(m) = l.memory_bytes {
        limits.push(format!("memory {}", bytes(m)));
    }
    if let Some(m) = l.memory_high_bytes {
        limits.push(format!("soft memory {}", bytes(m)));
    }
    if let Some(p) = l.pids {
        limits.push(format!("pids {p}"));
    }
    for io in &l.io {
        let rates = [
            ("read", io.read_bps.map(|b| format!("{}/s", bytes(b)))),
            ("write", io.write_bps.map(|b| format!("{}/s", bytes(b)))),
            ("read", io.read_iops.map(|n| format!("{n} ops/s"))),
            ("write", io.write_iops.map(|n| format!("{n} ops/s"))),
        ];
        for (what, rate) in rates {
            if let Some(rate) = rate {
                limits.push(format!("{} {what} {rate}", clean(&io.device)));
            }
        }
    }
    if let Some(t) = l.timeout_secs {
        limits.push(format!("timeout {t}s"));
    }
    if !limits.is_empty() {
        lines.push(("limits", limits.join(", ")));
    }
    if let Some(e) = &v.output_error {
        lines.push(("output error", clean(e)));
    }
    if v.archived {
        lines.push(("archived", "yes".into()));
    }
    let width = lines.iter().map(|(k, _)| k.len()).max().unwrap_or(0);
    for (k, val) in lines {
        println!("{k:<width$}  {val}");
    }
    Ok(())
}
