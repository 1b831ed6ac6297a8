//! The `crew` daemon. The gRPC API over mutual TLS is the next issue; until
//! then this binary only checks that the host can run jobs.

use std::process::ExitCode;

use crew::engine::{Engine, EngineConfig};

#[tokio::main]
async fn main() -> ExitCode {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .with_writer(std::io::stderr)
        .init();
    let state_dir = std::env::var_os("TASKER_STATE_DIR").unwrap_or_else(|| "/var/lib/tasker".into());
    let config = EngineConfig::new(state_dir, "check");
    match Engine::new(config).await {
        Ok(engine) => {
            println!("{}", engine.handle().cgroup_description());
            engine.shutdown(std::time::Duration::from_secs(1)).await;
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("crew: {e}");
            ExitCode::from(2)
        }
    }
}
