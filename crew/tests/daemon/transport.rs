//! The transport's limits, as a client meets them.

use std::time::{Duration, Instant};

use certgen::Role;
use tonic::Code;

use crate::client::*;
use crate::support::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_request_over_2_mib_is_refused_before_it_is_decoded() {
    skip_unless_crew_can_run!();
    ensure_user(ALICE);
    let mut crew = Crew::start("limit", &[]).await;
    let mut alice = crew.client(ALICE, Role::User).await;
    // Past the 2 MiB message limit: tonic refuses it unread.
    let huge = "x".repeat(3 << 20);
    let err = start(&mut alice, &["/bin/echo", &huge]).await.unwrap_err();
    assert_eq!(err.code(), Code::OutOfRange, "{}", err.message());
    assert!(err.message().contains("2097152"), "{}", err.message());
    // Under it but over the 1 MiB of argv and environment a job may have:
    // the engine refuses it, as a bad request.
    let big = "x".repeat(3 << 19);
    let err = start(&mut alice, &["/bin/echo", &big]).await.unwrap_err();
    assert_eq!(err.code(), Code::InvalidArgument, "{}", err.message());
    // The connection and the crew carry on.
    assert!(start(&mut alice, &["/bin/true"]).await.is_ok());
    assert_eq!(crew.stop().await.code(), Some(0));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn silent_connections_cannot_lock_other_clients_out() {
    skip_unless_crew_can_run!();
    ensure_user(ALICE);
    let mut crew = Crew::start("slowloris", &[]).await;
    // As many silent connections as the crew has handshake slots.
    let mut silent = Vec::new();
    for _ in 0..64 {
        silent.push(tokio::net::TcpStream::connect(crew.addr).await.unwrap());
    }
    let t0 = Instant::now();
    let mut alice = bounded(
        "a good client to get in past silent connections",
        Duration::from_secs(5),
        crew.client(ALICE, Role::User),
    )
    .await;
    assert!(start(&mut alice, &["/bin/true"]).await.is_ok());
    assert!(t0.elapsed() < Duration::from_secs(2), "{:?}", t0.elapsed());
    drop(silent);
    assert_eq!(crew.stop().await.code(), Some(0));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn jobs_with_large_argvs_do_not_break_list_or_watch() {
    skip_unless_crew_can_run!();
    ensure_user(ALICE);
    let mut crew = Crew::start("bigargv", &[]).await;
    let mut alice = crew.client(ALICE, Role::User).await;
    // Each request is well within every limit; together they are 4.5 MiB.
    let big = "x".repeat(900 << 10);
    for _ in 0..5 {
        start(&mut alice, &["/bin/echo", &big]).await.unwrap();
    }
    // ListJobs pages: every job comes, in creation order, over pages that
    // each fit.
    let mut listed = Vec::new();
    let mut token = String::new();
    let mut pages = 0;
    loop {
        let page = alice
            .list_jobs(tasker_proto::v1::ListJobsRequest {
                page_token: token.clone(),
                ..Default::default()
            })
            .await
            .expect("ListJobs")
            .into_inner();
        pages += 1;
        for j in page.jobs {
            // A list carries the start of a command; GetJob all of it.
            assert!(j.argv_cut && j.argv.iter().map(String::len).sum::<usize>() <= 4096);
            listed.push(j.handle);
        }
        if page.next_page_token.is_empty() {
            break;
        }
        token = page.next_page_token;
    }
    assert_eq!(listed, ["job-1", "job-2", "job-3", "job-4", "job-5"]);
    assert_eq!(pages, 1, "5 jobs' starts fit one page");
    assert_eq!(get(&mut alice, "job-5").await.argv[1].len(), 900 << 10);
    // The snapshot comes in parts, `more` on all but the last.
    let mut watch = alice
        .watch_jobs(tasker_proto::v1::WatchJobsRequest {})
        .await
        .unwrap()
        .into_inner();
    let mut snapshot = Vec::new();
    loop {
        let msg = bounded("the snapshot", Duration::from_secs(10), watch.message())
            .await
            .expect("WatchJobs")
            .expect("a message");
        let Some(tasker_proto::v1::watch_jobs_response::Event::Snapshot(s)) = msg.event else {
            panic!("the snapshot comes first: {msg:?}");
        };
        snapshot.extend(s.jobs.into_iter().map(|j| j.handle));
        if !s.more {
            break;
        }
    }
    assert_eq!(snapshot, listed);

    assert_eq!(crew.stop().await.code(), Some(0));
}

/// A flood of connects from one address costs the log a line when it
/// starts and one line with a count every 10 s, never a line per
/// connection; meanwhile a client from another address gets in.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_flood_from_one_address_costs_the_log_a_line_per_interval() {
    skip_unless_crew_can_run!();
    ensure_user(ALICE);
    let mut crew = Crew::start("floodlog", &["--max-connections-per-address", "8"]).await;
    let flooder: std::net::IpAddr = "127.0.0.2".parse().unwrap();
    let mut open = Vec::new();
    for _ in 0..300 {
        // Held open and silent: 8 take the address's slots, the rest are
        // closed by the crew as they come.
        open.push(crew::testing::tcp_from(flooder, crew.addr).await.unwrap());
    }
    let mut alice = bounded(
        "a client from another address to get in",
        Duration::from_secs(5),
        crew.client(ALICE, Role::User),
    )
    .await;
    assert!(start(&mut alice, &["/bin/true"]).await.is_ok());
    let about = |l: &String| l.contains("127.0.0.2");
    wait_for(
        "the counted line, 10 s after the first",
        Duration::from_secs(20),
        || {
            crew.stderr
                .lines()
                .iter()
                .any(|l| about(l) && l.contains("count="))
        },
    )
    .await;
    let lines: Vec<String> = crew.stderr.lines().into_iter().filter(about).collect();
    assert!(
        lines.len() <= 3,
        "{} log lines for one flooding address:\n{}",
        lines.len(),
        lines.join("\n")
    );
    let counted = lines.iter().find(|l| l.contains("count=")).unwrap();
    assert!(
        counted.contains("too many connections from this address"),
        "{counted}"
    );
    eprintln!("the flood's log lines:\n{}", lines.join("\n"));
    drop(open);
    assert_eq!(crew.stop().await.code(), Some(0));
}
