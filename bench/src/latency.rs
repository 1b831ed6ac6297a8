//! Start → final state over one established connection, interleaved with a
//! baseline command.

use std::process::Stdio;
use std::time::{Duration, Instant};

use anyhow::{Context as _, ensure};
use foreman::config::Config;
use tasker_proto::v1 as pb;

use crate::attach::{follow, start};
use crate::stats::summary;

pub async fn run(
    config: &Config,
    iterations: usize,
    warmup: usize,
    baseline: &[String],
) -> anyhow::Result<serde_json::Value> {
    let crew = crate::connect(config).await?;
    let argv = vec!["true".to_owned()];
    let mut started = Vec::with_capacity(iterations);
    let mut ended = Vec::with_capacity(iterations);
    let mut base = Vec::with_capacity(iterations);
    for i in 0..warmup + iterations {
        let keep = i >= warmup;
        // Alternate which side goes first, so that neither always runs
        // right after the other's wakeups.
        let baseline_first = i % 2 == 1;
        if baseline_first {
            let t = time_baseline(baseline).await?;
            if keep {
                base.extend(t);
            }
        }
        let t0 = Instant::now();
        let job = start(&crew, &argv).await?;
        let t_started = t0.elapsed();
        let got = follow(&crew, &job.id, false).await?;
        let t_ended = t0.elapsed();
        ensure!(
            got.ended.phase == pb::JobPhase::Completed as i32,
            "{} ended in phase {} ({:?})",
            job.handle,
            got.ended.phase,
            got.ended.outcome.map(|o| o.summary)
        );
        if keep {
            started.push(t_started);
            ended.push(t_ended);
        }
        if !baseline_first {
            let t = time_baseline(baseline).await?;
            if keep {
                base.extend(t);
            }
        }
    }
    Ok(serde_json::json!({
        "iterations": iterations,
        "warmup": warmup,
        "start_rpc": summary(&started),
        "start_to_final": summary(&ended),
        "baseline": summary(&base),
        "baseline_command": baseline,
    }))
}

/// Runs the baseline once (no input, output discarded); its wall time.
async fn time_baseline(cmd: &[String]) -> anyhow::Result<Option<Duration>> {
    let Some((program, args)) = cmd.split_first() else {
        return Ok(None);
    };
    let t0 = Instant::now();
    let status = tokio::process::Command::new(program)
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .status()
        .await
        .with_context(|| format!("running {program}"))?;
    let t = t0.elapsed();
    ensure!(status.success(), "the baseline {cmd:?} failed: {status}");
    Ok(Some(t))
}
