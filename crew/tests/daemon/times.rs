//! Output times through a real crew: each line's mark (when, which
//! stream) from the shim's time index; `since`/`until` found by the boot
//! clock, so a wall clock set back reorders nothing; the index goes on
//! across a `kill -9` of the crew.

use std::time::{Duration, Instant};

use certgen::Role;
use tasker_proto::v1 as pb;
use tasker_proto::v1::attach_job_request::{Msg, Open, open};
use tasker_proto::v1::attach_job_response::Msg as Out;

use crate::client::*;
use crate::support::*;

/// Set on a machine whose clock a test may set (ci/test-v2's VM).
const MAY_SET_CLOCK: &str = "TASKER_TEST_SET_CLOCK";

fn ago(d: Duration) -> pb::TimePoint {
    pb::TimePoint {
        at: Some(pb::time_point::At::Ago(prost_types::Duration {
            seconds: d.as_secs() as i64,
            nanos: d.subsec_nanos() as i32,
        })),
    }
}

/// The output stored between `since` and now, with its marks: the
/// stream ends at the until (now), even though the job runs on.
async fn stored(client: &mut Client, job: &str, since: Option<pb::TimePoint>) -> (Vec<u8>, Vec<pb::Mark>) {
    between(client, job, since, ago(Duration::ZERO), true).await
}

/// The output stored between `since` and `until`; marks if `timestamps`
/// (and none otherwise).
async fn between(
    client: &mut Client,
    job: &str,
    since: Option<pb::TimePoint>,
    until: pb::TimePoint,
    timestamps: bool,
) -> (Vec<u8>, Vec<pb::Mark>) {
    let (tx, rx) = tokio::sync::mpsc::channel(1);
    tx.send(pb::AttachJobRequest {
        msg: Some(Msg::Open(Open {
            job: job.to_owned(),
            from: Some(open::From::Beginning(open::Beginning {})),
            timestamps,
            since,
            until: Some(until),
            ..Default::default()
        })),
    })
    .await
    .unwrap();
    let mut stream = client
        .attach_job(tokio_stream::wrappers::ReceiverStream::new(rx))
        .await
        .expect("attach")
        .into_inner();
    let (mut out, mut marks) = (Vec::new(), Vec::<pb::Mark>::new());
    loop {
        let msg = crew::testing::bounded("the stored output", Duration::from_secs(30), stream.message())
            .await
            .expect("attach stream");
        match msg.and_then(|m| m.msg) {
            Some(Out::Output(o)) if !timestamps => {
                assert!(o.marks.is_empty(), "marks only when asked");
                out.extend_from_slice(&o.data);
            }
            Some(Out::Output(o)) => {
                assert!(!o.marks.is_empty(), "a chunk without marks at {}", o.offset);
                assert!(
                    o.marks[0].offset <= o.offset,
                    "the first mark covers the first byte"
                );
                for m in o.marks {
                    if marks
                        .last()
                        .is_none_or(|l| l.offset != m.offset || l.time != m.time)
                    {
                        marks.push(m);
                    }
                }
                out.extend_from_slice(&o.data);
            }
            Some(Out::Until(_)) => return (out, marks),
            Some(Out::Attached(_)) => {}
            other => panic!("the stored output ended with {other:?}"),
        }
    }
}

/// Types a line into the job and waits until `expect` is in its output.
async fn type_and_wait(client: &mut Client, job: &str, line: &str, expect: &str) {
    let (tx, rx) = tokio::sync::mpsc::channel(2);
    tx.send(open_msg(job, true)).await.unwrap();
    tx.send(pb::AttachJobRequest {
        msg: Some(Msg::Stdin(format!("{line}\n").into_bytes().into())),
    })
    .await
    .unwrap();
    let _attach = client
        .attach_job(tokio_stream::wrappers::ReceiverStream::new(rx))
        .await
        .expect("attach to write");
    let deadline = Instant::now() + Duration::from_secs(30);
    while !String::from_utf8_lossy(&stored(client, job, None).await.0).contains(expect) {
        assert!(
            Instant::now() < deadline,
            "{expect:?} not in the output after 30 s"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// The wall time of the mark covering the line that starts with `line`.
fn time_of(out: &[u8], marks: &[pb::Mark], line: &str) -> i128 {
    let text = String::from_utf8_lossy(out);
    let at = text
        .find(line)
        .unwrap_or_else(|| panic!("{line:?} not in {text:?}")) as u64;
    let m = marks
        .iter()
        .rev()
        .find(|m| m.offset <= at)
        .unwrap_or_else(|| panic!("no mark covers {line:?}: {marks:?}"));
    let t = m.time.as_ref().expect("a mark's time");
    i128::from(t.seconds) * 1_000_000_000 + i128::from(t.nanos)
}

fn shift_clock(by_secs: i64) {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: clock_gettime/clock_settime with a local timespec.
    let r = unsafe {
        libc::clock_gettime(libc::CLOCK_REALTIME, &mut ts);
        ts.tv_sec += by_secs;
        libc::clock_settime(libc::CLOCK_REALTIME, &ts)
    };
    assert_eq!(r, 0, "clock_settime: {}", std::io::Error::last_os_error());
}

/// Puts the clock forward again however the test ends.
struct ClockBack(i64);

impl Drop for ClockBack {
    fn drop(&mut self) {
        shift_clock(self.0);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn times_follow_the_boot_clock_across_a_clock_set_back_and_a_crew_kill() {
    skip_unless_crew_can_run!();
    ensure_user(ALICE);
    // The certificates are valid from five minutes back: two minutes back
    // keeps new handshakes working.
    let jump = std::env::var_os(MAY_SET_CLOCK).is_some();
    if !jump {
        // Not a skip: ci/test-v2 runs this test in its VM with the clock
        // set back; a host's clock is not a test's to set.
        println!("the clock is not set back here: {MAY_SET_CLOCK} is unset (ci/test-v2's VM sets it)");
    }
    let mut crew = Crew::start("times", &[]).await;
    let mut alice = crew.client(ALICE, Role::User).await;
    let job = start(
        &mut alice,
        &[
            "/bin/sh",
            "-c",
            "read a; echo one; read b; echo two >&2; read c; echo three; sleep 1000",
        ],
    )
    .await
    .expect("the start");
    type_and_wait(&mut alice, &job.id, "a", "one").await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    let between_at = Instant::now();
    tokio::time::sleep(Duration::from_millis(300)).await;
    let _restore = jump.then(|| {
        shift_clock(-120);
        ClockBack(120)
    });
    type_and_wait(&mut alice, &job.id, "b", "two").await;

    // A crash of the crew: the shim keeps the index going.
    crew.kill9().await;
    let mut crew = crew.restart(&[]).await;
    let mut alice = crew.client(ALICE, Role::User).await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    type_and_wait(&mut alice, &job.id, "c", "three").await;

    let (out, marks) = stored(&mut alice, &job.id, None).await;
    assert_eq!(String::from_utf8_lossy(&out), "one\ntwo\nthree\n");
    let (one, two, three) = (
        time_of(&out, &marks, "one"),
        time_of(&out, &marks, "two"),
        time_of(&out, &marks, "three"),
    );
    let stream_of = |line: &str| {
        let at = String::from_utf8_lossy(&out).find(line).unwrap() as u64;
        marks.iter().rev().find(|m| m.offset <= at).unwrap().stream()
    };
    assert_eq!(stream_of("one"), pb::Stream::Stdout);
    assert_eq!(stream_of("two"), pb::Stream::Stderr, "{marks:?}");
    assert!(
        three - two >= 250_000_000,
        "three came 300 ms after two: {marks:?}"
    );
    if jump {
        // Written 600 ms after "one", with the clock two minutes back.
        let gap = one - two;
        assert!(
            (118_000_000_000..120_000_000_000).contains(&gap),
            "one - two = {gap} ns"
        );
    } else {
        assert!(two - one >= 500_000_000, "two came 600 ms after one: {marks:?}");
    }
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos() as i128;
    assert!(
        (now - three).abs() < 60_000_000_000,
        "three's time is now's: {three} vs {now}"
    );

    // Since the moment between "one" and "two": "two" on, though its wall
    // time reads earlier than "one"'s when the clock was set back.
    let (since, _) = stored(&mut alice, &job.id, Some(ago(between_at.elapsed()))).await;
    assert_eq!(String::from_utf8_lossy(&since), "two\nthree\n");
    // Until that moment: "one" only, the stream ended while the job runs.
    let (until, _) = between(&mut alice, &job.id, None, ago(between_at.elapsed()), false).await;
    assert_eq!(String::from_utf8_lossy(&until), "one\n");
    // A since after everything: nothing yet, the stream ends at the until.
    let (none, _) = stored(&mut alice, &job.id, Some(ago(Duration::ZERO))).await;
    assert!(none.is_empty(), "{:?}", String::from_utf8_lossy(&none));

    let _ = alice
        .stop_job(pb::StopJobRequest {
            job: job.id.clone(),
            grace: None,
        })
        .await
        .expect("stop");
    crew.stop().await;
}
