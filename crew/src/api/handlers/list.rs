//! ListJobs: anyone may look; archived jobs only on request. Paged, in
//! creation order, by count and by size, so that no page can outgrow a
//! message limit however many jobs or however large their argvs.

use prost::Message as _;
use tasker_proto::v1 as pb;
use tonic::{Request, Response};

use super::reader;
use crate::api::convert;
use crate::api::service::State;
use crate::api::status::ApiError;
use crate::engine::JobInfo;

pub const DEFAULT_PAGE: usize = 1000;
/// A page stops growing past this many encoded bytes.
pub const PAGE_BYTES: usize = 1 << 20;

pub fn handle(
    state: &State,
    req: Request<pb::ListJobsRequest>,
) -> Result<Response<pb::ListJobsResponse>, ApiError> {
    reader(state, &req, "list")?;
    let r = req.get_ref();
    let after = match r.page_token.as_str() {
        "" => 0,
        t => t
            .parse::<u64>()
            .map_err(|_| ApiError::invalid("page_token is not one this crew gave"))?,
    };
    let size = match r.page_size {
        0 => DEFAULT_PAGE,
        n => (n as usize).min(DEFAULT_PAGE),
    };
    // One more than the page holds: whether there is more to come.
    let jobs = state.engine.page(r.include_archived, after, size + 1);
    let (mut page, more) = page(&mut jobs.iter().peekable(), size);
    for (answer, job) in page.iter_mut().zip(&jobs) {
        answer.usage = super::using_now(state, job);
    }
    let next_page_token = match (more, page.last()) {
        (true, Some(last)) => last.handle.trim_start_matches("job-").to_owned(),
        _ => String::new(),
    };
    Ok(Response::new(pb::ListJobsResponse {
        jobs: page,
        next_page_token,
    }))
}

/// The creation number of a job (`job-N`).
pub fn seq(j: &JobInfo) -> u64 {
    j.handle
        .strip_prefix("job-")
        .and_then(|n| n.parse().ok())
        .unwrap_or(u64::MAX)
}

/// Up to `size` jobs and about `PAGE_BYTES` (always at least one job), and
/// whether any are left over.
pub fn page<'a, I: Iterator<Item = &'a JobInfo>>(
    jobs: &mut std::iter::Peekable<I>,
    size: usize,
) -> (Vec<pb::Job>, bool) {
    let mut out = Vec::new();
    let mut bytes = 0;
    while let Some(j) = jobs.peek() {
        let job = convert::job_summary(j);
        let len = job.encoded_len();
        if !out.is_empty() && (out.len() >= size || bytes + len > PAGE_BYTES) {
            return (out, true);
        }
        jobs.next();
        bytes += len;
        out.push(job);
    }
    (out, false)
}
