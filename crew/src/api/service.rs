//! The `tasker.v1.Crew` service: one method per RPC, each delegating to its
//! handler in `handlers/`. Handlers are thin: who is calling, authorize,
//! convert, engine, convert back.

use std::pin::Pin;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use tasker_proto::v1 as pb;
use tokio_util::sync::CancellationToken;
use tonic::{Request, Response, Status, Streaming};

use super::handlers;
use crate::engine::EngineHandle;

/// What every handler may need.
#[derive(Debug)]
pub struct State {
    pub engine: EngineHandle,
    pub crew_name: String,
    pub allow_root: bool,
    pub started_at: SystemTime,
    /// Cancelled when the crew shuts down: streams end.
    pub shutdown: CancellationToken,
    /// How often WatchJobs reports usage.
    pub usage_every: Duration,
}

#[derive(Clone, Debug)]
pub struct CrewService {
    pub state: Arc<State>,
}

type Stream<T> = Pin<Box<dyn tokio_stream::Stream<Item = Result<T, Status>> + Send + 'static>>;

#[tonic::async_trait]
impl pb::crew_server::Crew for CrewService {
    async fn start_job(
        &self,
        req: Request<pb::StartJobRequest>,
    ) -> Result<Response<pb::StartJobResponse>, Status> {
        handlers::start::handle(&self.state, req)
            .await
            .map_err(Into::into)
    }

    async fn stop_job(
        &self,
        req: Request<pb::StopJobRequest>,
    ) -> Result<Response<pb::StopJobResponse>, Status> {
        handlers::stop::handle(&self.state, req).await.map_err(Into::into)
    }

    async fn archive_job(
        &self,
        req: Request<pb::ArchiveJobRequest>,
    ) -> Result<Response<pb::ArchiveJobResponse>, Status> {
        handlers::archive::handle(&self.state, req).map_err(Into::into)
    }

    async fn get_job(&self, req: Request<pb::GetJobRequest>) -> Result<Response<pb::GetJobResponse>, Status> {
        handlers::get::handle(&self.state, req).map_err(Into::into)
    }

    async fn list_jobs(
        &self,
        req: Request<pb::ListJobsRequest>,
    ) -> Result<Response<pb::ListJobsResponse>, Status> {
        handlers::list::handle(&self.state, req).map_err(Into::into)
    }

    type WatchJobsStream = Stream<pb::WatchJobsResponse>;

    async fn watch_jobs(
        &self,
        req: Request<pb::WatchJobsRequest>,
    ) -> Result<Response<Self::WatchJobsStream>, Status> {
        handlers::watch::handle(&self.state, req).map_err(Into::into)
    }

    type AttachJobStream = Stream<pb::AttachJobResponse>;

    async fn attach_job(
        &self,
        req: Request<Streaming<pb::AttachJobRequest>>,
    ) -> Result<Response<Self::AttachJobStream>, Status> {
        handlers::attach::handle(&self.state, req)
            .await
            .map_err(Into::into)
    }

    async fn info(&self, req: Request<pb::InfoRequest>) -> Result<Response<pb::InfoResponse>, Status> {
        handlers::info::handle(&self.state, req).map_err(Into::into)
    }
}
