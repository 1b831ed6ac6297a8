//! N operators, each on its own TLS connection, follow one job from its
//! first byte to its final state while it writes `bytes` of `seq` output.

use std::io::Read as _;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context as _, ensure};
use foreman::config::Config;
use tasker_proto::v1 as pb;
use xxhash_rust::xxh3::Xxh3;

use crate::attach::{follow, start};
use crate::rss::Sampler;

/// The smallest `n` for which `seq 1 n` writes at least `bytes`.
fn seq_end(bytes: u64) -> u64 {
    let (mut n, mut total, mut digits, mut next_width_at) = (0u64, 0u64, 1u64, 10u64);
    while total < bytes {
        n += 1;
        if n == next_width_at {
            digits += 1;
            next_width_at *= 10;
        }
        total += digits + 1;
    }
    n
}

/// The job's shell command: decimal numbers, one a line, cut at `bytes`.
fn job_script(bytes: u64) -> String {
    format!("seq 1 {} | head -c {bytes}", seq_end(bytes))
}

/// The same bytes made here: their length and XXH3-128.
fn expected(script: &str) -> anyhow::Result<(u64, u128)> {
    let mut child = Command::new("sh")
        .args(["-c", script])
        .stdout(Stdio::piped())
        .spawn()
        .context("running sh")?;
    let mut out = child.stdout.take().context("no stdout")?;
    let mut hasher = Xxh3::new();
    let mut buf = vec![0u8; 1 << 20];
    let mut len = 0u64;
    loop {
        let n = out.read(&mut buf)?;
        if n == 0 {
            break;
        }
        hasher.update(&buf[..n]);
        len += n as u64;
    }
    ensure!(child.wait()?.success(), "{script:?} failed here");
    Ok((len, hasher.digest128()))
}

pub async fn run(
    config: &Config,
    followers: usize,
    bytes: u64,
    crew_pid: Option<u32>,
) -> anyhow::Result<serde_json::Value> {
    let script = job_script(bytes);
    let (want_len, want_hash) = expected(&script)?;
    ensure!(
        want_len == bytes,
        "{script:?} made {want_len} bytes here, not {bytes}"
    );
    eprintln!("followers: connecting {followers} clients");
    // One connection each, handshakes done before the clock starts.
    let mut crews = Vec::with_capacity(followers);
    for _ in 0..followers {
        crews.push(crate::connect(config).await?);
    }
    let starter = crate::connect(config).await?;
    let sampler = crew_pid.map(|pid| Sampler::start(pid, Duration::from_millis(20)));
    eprintln!("followers: starting sh -c {script:?}");
    let t0 = Instant::now();
    let job = start(&starter, &["sh".to_owned(), "-c".to_owned(), script.clone()]).await?;
    let tasks: Vec<_> = crews
        .into_iter()
        .map(|crew| {
            let id = job.id.clone();
            tokio::spawn(async move {
                let got = follow(&crew, &id, true).await;
                (got, t0.elapsed())
            })
        })
        .collect();
    let mut results = Vec::with_capacity(followers);
    for t in tasks {
        results.push(t.await.context("a follower task")?);
    }
    let wall = t0.elapsed();
    let seen = sampler.map(Sampler::stop);

    let mut total = 0u64;
    let (mut identical, mut errors) = (0usize, Vec::new());
    let mut times: Vec<Duration> = Vec::with_capacity(followers);
    let mut messages: Vec<u64> = Vec::with_capacity(followers);
    let mut phase = None;
    for (i, (got, t)) in results.into_iter().enumerate() {
        match got {
            Ok(f) => {
                total += f.bytes;
                times.push(t);
                messages.push(f.messages);
                phase = Some(f.ended.phase);
                if f.bytes == want_len && f.hash == Some(want_hash) {
                    identical += 1;
                } else {
                    errors.push(format!("follower {i}: {} bytes, hash {:032x?}", f.bytes, f.hash));
                }
            }
            Err(e) => errors.push(format!("follower {i}: {e:#}")),
        }
    }
    let secs = wall.as_secs_f64();
    Ok(serde_json::json!({
        "followers": followers,
        "bytes_each": bytes,
        "job": ["sh", "-c", script],
        "job_phase_completed": phase == Some(pb::JobPhase::Completed as i32),
        "expected_xxh3_128": format!("{want_hash:032x}"),
        "identical": identical,
        "errors": errors,
        "total_bytes": total,
        "wall_s": secs,
        "aggregate_gb_per_s": total as f64 / secs / 1e9,
        "follower_done": crate::stats::summary(&times),
        "messages_min": messages.iter().min(),
        "messages_max": messages.iter().max(),
        "crew_rss": seen.map(|s| serde_json::json!({
            "before_kib": s.before_kib,
            "max_sampled_kib": s.max_rss_kib,
            "hwm_kib": s.hwm_kib,
            "hwm_reset": s.hwm_reset,
            "after_kib": s.after_kib,
            "samples": s.samples,
        })),
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn seq_end_covers_the_bytes() {
        // "1\n".."9\n" = 18 bytes, "10\n" = 3 more.
        assert_eq!(seq_end(18), 9);
        assert_eq!(seq_end(19), 10);
        assert_eq!(seq_end(21), 10);
        assert_eq!(seq_end(22), 11);
    }
}
