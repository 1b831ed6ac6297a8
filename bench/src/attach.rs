//! Starting a job and following it as `foreman run` / `foreman logs -f`
//! do: AttachJob from the beginning, every output chunk in order, until the
//! job's final state.

use std::time::Instant;

use anyhow::{Context as _, bail, ensure};
use foreman::client::Crew;
use foreman::config::Config;
use tasker_proto::v1 as pb;
use tasker_proto::v1::attach_job_request::open::{Beginning, From};
use tasker_proto::v1::attach_job_request::{Msg as In, Open};
use tasker_proto::v1::attach_job_response::Msg as Out;
use xxhash_rust::xxh3::Xxh3;

/// Starts `argv` with the crew's defaults; returns the job as started.
pub async fn start(crew: &Crew, argv: &[String]) -> anyhow::Result<pb::Job> {
    let spec = pb::JobSpec {
        argv: argv.to_vec(),
        ..Default::default()
    };
    crew.client
        .clone()
        .start_job(pb::StartJobRequest { spec: Some(spec) })
        .await
        .context("StartJob")?
        .into_inner()
        .job
        .context("StartJob answered no job")
}

/// What one follower got.
#[derive(Debug)]
pub struct Followed {
    pub bytes: u64,
    /// Output messages it came in.
    pub messages: u64,
    /// XXH3-128 of every byte, when asked for.
    pub hash: Option<u128>,
    /// The final state the stream ended with.
    pub ended: pb::Job,
}

/// Follows job `id` from its first byte to its final state. Any gap, any
/// dropped bytes, or a stream that ends without the final state is an error.
pub async fn follow(crew: &Crew, id: &str, hash: bool) -> anyhow::Result<Followed> {
    let (tx, rx) = tokio::sync::mpsc::channel(1);
    tx.send(pb::AttachJobRequest {
        msg: Some(In::Open(Open {
            job: id.to_owned(),
            from: Some(From::Beginning(Beginning {})),
            write: false,
            ..Default::default()
        })),
    })
    .await
    .context("queueing the open message")?;
    let mut stream = crew
        .client
        .clone()
        .attach_job(tokio_stream::wrappers::ReceiverStream::new(rx))
        .await
        .context("AttachJob")?
        .into_inner();
    let mut hasher = hash.then(Xxh3::new);
    let mut next = 0u64;
    let mut bytes = 0u64;
    let mut messages = 0u64;
    while let Some(msg) = stream.message().await.context("the attach stream")? {
        match msg.msg {
            Some(Out::Attached(a)) => {
                ensure!(a.offset == 0, "the attach starts at {}, not 0", a.offset);
            }
            Some(Out::Output(o)) => {
                ensure!(
                    o.offset == next,
                    "a chunk at offset {} where {next} was due",
                    o.offset
                );
                next += o.data.len() as u64;
                bytes += o.data.len() as u64;
                messages += 1;
                if let Some(h) = &mut hasher {
                    h.update(&o.data);
                }
            }
            Some(Out::Dropped(d)) => {
                bail!("{} bytes were dropped at offset {}", d.len, d.offset)
            }
            Some(Out::Until(_)) => bail!("the attach reached an until it never asked for"),
            Some(Out::Ended(job)) => {
                // The stream's job to close; we only keep our side open
                // until now, as foreman does.
                drop(tx);
                return Ok(Followed {
                    bytes,
                    messages,
                    hash: hasher.map(|h| h.digest128()),
                    ended: job,
                });
            }
            None => {}
        }
    }
    bail!("the stream closed after {bytes} bytes without the job's final state")
}

/// `follow`: one in-process follower of an existing job.
pub async fn follow_one(config: &Config, id: &str) -> anyhow::Result<serde_json::Value> {
    let crew = crate::connect(config).await?;
    let t0 = Instant::now();
    let got = follow(&crew, id, false).await?;
    let secs = t0.elapsed().as_secs_f64();
    Ok(serde_json::json!({
        "bytes": got.bytes,
        "messages": got.messages,
        "seconds": secs,
        "gb_per_s": got.bytes as f64 / secs / 1e9,
        "phase": got.ended.phase,
    }))
}

/// `times`: when job `id` started and ended (seconds since the epoch), and
/// how long it ran.
pub async fn times(config: &Config, id: &str) -> anyhow::Result<serde_json::Value> {
    let crew = crate::connect(config).await?;
    let job = crew
        .client
        .clone()
        .get_job(pb::GetJobRequest { job: id.to_owned() })
        .await
        .context("GetJob")?
        .into_inner()
        .job
        .context("GetJob answered no job")?;
    let secs = |t: Option<&prost_types::Timestamp>| t.map(|t| t.seconds as f64 + f64::from(t.nanos) / 1e9);
    let (started, ended) = (secs(job.started_at.as_ref()), secs(job.ended_at.as_ref()));
    Ok(serde_json::json!({
        "started_at": started,
        "ended_at": ended,
        "run_s": started.zip(ended).map(|(s, e)| e - s),
        "phase": job.phase,
    }))
}
