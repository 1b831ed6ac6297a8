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
    /// The crew's main runtime, where the engine and jobs' tasks live.
    pub main: tokio::runtime::Handle,
}

impl State {
    /// Runs a request's work on the crew's main runtime, whichever
    /// connection shard it came in on: what it starts there (a job's
    /// tasks, an attach's input task) outlives the connection.
    async fn on_main<T, F>(self: &Arc<Self>, work: impl FnOnce(Arc<Self>) -> F) -> Result<T, Status>
    where
        F: Future<Output = Result<T, Status>> + Send + 'static,
        T: Send + 'static,
    {
        self.main
            .spawn(work(Arc::clone(self)))
            .await
            .map_err(|e| Status::internal(format!("the request's task failed: {e}")))?
    }
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
        self.state
            .on_main(|s| async move { handlers::start::handle(&s, req).await.map_err(Into::into) })
            .await
    }

    async fn stop_job(
        &self,
        req: Request<pb::StopJobRequest>,
    ) -> Result<Response<pb::StopJobResponse>, Status> {
        self.state
            .on_main(|s| async move { handlers::stop::handle(&s, req).await.map_err(Into::into) })
            .await
    }

    async fn archive_job(
        &self,
        req: Request<pb::ArchiveJobRequest>,
    ) -> Result<Response<pb::ArchiveJobResponse>, Status> {
        self.state
            .on_main(|s| async move { handlers::archive::handle(&s, req).map_err(Into::into) })
            .await
    }

    async fn unarchive_job(
        &self,
        req: Request<pb::UnarchiveJobRequest>,
    ) -> Result<Response<pb::UnarchiveJobResponse>, Status> {
        self.state
            .on_main(|s| async move { handlers::unarchive::handle(&s, req).map_err(Into::into) })
            .await
    }

    async fn get_job(&self, req: Request<pb::GetJobRequest>) -> Result<Response<pb::GetJobResponse>, Status> {
        self.state
            .on_main(|s| async move { handlers::get::handle(&s, req).map_err(Into::into) })
            .await
    }

    async fn list_jobs(
        &self,
        req: Request<pb::ListJobsRequest>,
    ) -> Result<Response<pb::ListJobsResponse>, Status> {
        self.state
            .on_main(|s| async move { handlers::list::handle(&s, req).map_err(Into::into) })
            .await
    }

    type WatchJobsStream = Stream<pb::WatchJobsResponse>;

    async fn watch_jobs(
        &self,
        req: Request<pb::WatchJobsRequest>,
    ) -> Result<Response<Self::WatchJobsStream>, Status> {
        self.state
            .on_main(|s| async move { handlers::watch::handle(&s, req).map_err(Into::into) })
            .await
    }

    type AttachJobStream = Stream<pb::AttachJobResponse>;

    async fn attach_job(
        &self,
        req: Request<Streaming<pb::AttachJobRequest>>,
    ) -> Result<Response<Self::AttachJobStream>, Status> {
        // The output stream it returns is polled here, on the connection's
        // shard: moving bytes is what a shard is for.
        self.state
            .on_main(|s| async move { handlers::attach::handle(&s, req).await.map_err(Into::into) })
            .await
    }

    async fn audit_trail(
        &self,
        req: Request<pb::AuditTrailRequest>,
    ) -> Result<Response<pb::AuditTrailResponse>, Status> {
        // A read of SQLite: off the async threads.
        let state = Arc::clone(&self.state);
        tokio::task::spawn_blocking(move || handlers::audit::handle(&state, req).map_err(Into::into))
            .await
            .map_err(|e| Status::internal(format!("the request's task failed: {e}")))?
    }

    async fn info(&self, req: Request<pb::InfoRequest>) -> Result<Response<pb::InfoResponse>, Status> {
        self.state
            .on_main(|s| async move { handlers::info::handle(&s, req).map_err(Into::into) })
            .await
    }
}
