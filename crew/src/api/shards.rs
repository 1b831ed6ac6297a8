//! Connection shards: each a thread with a one-thread runtime that owns
//! whole connections, from the TLS handshake on (the TLS session, HTTP/2,
//! the response streams).
//!
//! Why: every chunk a connection sends passes between two tasks (hyper's
//! stream task frames it, the connection task encrypts and writes it). On
//! a work-stealing runtime those two bounce between worker threads, and
//! each bounce is a wake-up and a context switch; on a small host they
//! also crowd the client. On a shard a follower costs the crew less CPU
//! per GiB and runs faster (figures in docs/benchmarks.md, "foreman vs
//! ssh"). The next connection goes to the least loaded shard, so many
//! clients still use every core.
//!
//! A shard only moves bytes: requests' work on jobs runs on the crew's
//! main runtime ([`State::on_engine`](super::service::State::on_engine)),
//! where jobs' tasks and sockets live and outlive any connection.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use tokio::runtime::Handle;
use tokio::sync::{mpsc, oneshot};
use tokio_util::sync::CancellationToken;

use super::connection::Authed;

/// How long a shard's runtime waits for its blocking reads at the end.
const SHUTDOWN_WAIT: Duration = Duration::from_secs(2);

/// One shard: where its connections' tasks run, and how it takes them.
pub(super) struct Shard {
    pub runtime: Handle,
    pub incoming: mpsc::Sender<std::io::Result<Authed>>,
    load: Arc<AtomicUsize>,
}

/// The shard with the fewest connections.
pub(super) fn least_loaded(shards: &[Shard]) -> &Shard {
    shards
        .iter()
        .min_by_key(|s| s.load.load(Ordering::Relaxed))
        .expect("at least one shard")
}

/// Counts a connection against its shard for as long as it lives.
pub(super) struct Load(Arc<AtomicUsize>);

impl Drop for Load {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::Relaxed);
    }
}

impl Shard {
    /// Counts one more connection here.
    pub fn load(&self) -> Load {
        self.load.fetch_add(1, Ordering::Relaxed);
        Load(Arc::clone(&self.load))
    }
}

/// The running shards, and how to wait for them.
pub(super) struct Shards {
    pub shards: Arc<[Shard]>,
    done: Vec<oneshot::Receiver<Result<(), tonic::transport::Error>>>,
    /// Cancelled when the shards must stop at once (the server's future
    /// was dropped: its caller gave up waiting for connections to drain).
    abort: tokio_util::sync::DropGuard,
}

impl Shards {
    /// Starts `count` shards, each serving the connections it is given
    /// with the server `serve` makes, until `shutdown` (gracefully) or
    /// until the shards are dropped (at once).
    pub fn start<F, Fut>(count: usize, serve: F, shutdown: &CancellationToken) -> std::io::Result<Self>
    where
        F: Fn(mpsc::Receiver<std::io::Result<Authed>>, CancellationToken) -> Fut,
        Fut: Future<Output = Result<(), tonic::transport::Error>> + Send + 'static,
    {
        let abort = CancellationToken::new();
        let mut shards = Vec::with_capacity(count);
        let mut done = Vec::with_capacity(count);
        for i in 0..count.max(1) {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .thread_name(format!("crew-conn-{i}"))
                .build()?;
            let (incoming, rx) = mpsc::channel(64);
            let (finished, finished_rx) = oneshot::channel();
            let server = serve(rx, shutdown.clone());
            let abort = abort.clone();
            let handle = runtime.handle().clone();
            std::thread::Builder::new()
                .name(format!("crew-conn-{i}"))
                .spawn(move || {
                    let result = runtime.block_on(async move {
                        tokio::select! {
                            r = server => r,
                            () = abort.cancelled() => Ok(()),
                        }
                    });
                    runtime.shutdown_timeout(SHUTDOWN_WAIT);
                    let _ = finished.send(result);
                })?;
            shards.push(Shard {
                runtime: handle,
                incoming,
                load: Arc::new(AtomicUsize::new(0)),
            });
            done.push(finished_rx);
        }
        Ok(Self {
            shards: shards.into(),
            done,
            abort: abort.drop_guard(),
        })
    }

    /// Waits until every shard has stopped; the first error, if any.
    pub async fn wait(mut self) -> Result<(), String> {
        let mut result = Ok(());
        for done in std::mem::take(&mut self.done) {
            let r = match done.await {
                Ok(r) => r.map_err(|e| e.to_string()),
                Err(_) => Err("a connection shard's thread panicked".to_owned()),
            };
            if result.is_ok() {
                result = r;
            }
        }
        // Every shard ended on its own; nothing to abort.
        drop(self.abort.disarm());
        result
    }
}
