//! Starting jobs, their output and their final state.

use crew::engine::{Outcome, Phase, Termination};

use crate::support::*;

#[tokio::test]
async fn output_is_one_ordered_stream_and_the_exit_code_is_kept() {
    let t = engine_or_skip!();
    let (out, info) = run(&t.handle, sh("echo out; echo err >&2; echo out2; exit 3")).await;
    assert_eq!(out, "out\nerr\nout2\n");
    let crew::engine::JobState::Ended(ended) = &info.state else {
        panic!("not ended: {:?}", info.state)
    };
    assert_eq!(ended.outcome, Outcome::Finished(Termination::Exited(3)));
    assert_eq!(info.state.phase(), Phase::Failed);
    assert!(ended.started_at.is_some());
    t.assert_clean().await;
    t.shutdown().await;
}
