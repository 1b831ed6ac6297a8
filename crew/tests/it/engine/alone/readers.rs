//! Many readers of one output, each at its own pace, and the bound on what
//! is kept.

use std::io::Write as _;
use std::time::Duration;

use crew::engine::{OutputEvent, ReadFrom};
use sha2::{Digest as _, Sha256};

use crate::support::*;

/// Deterministic binary data (every byte value, no structure to hide a
/// misplaced chunk).
fn pattern(len: usize) -> Vec<u8> {
    let mut x: u64 = 0x9E37_79B9_7F4A_7C15;
    (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            (x >> 24) as u8
        })
        .collect()
}

fn sha(b: &[u8]) -> Vec<u8> {
    Sha256::digest(b).to_vec()
}

/// Reads a job's output to its end as `read_all` does, but keeps only a
/// hash of it: the test measures what the engine holds, and three copies
/// of the output in the test's own heap would drown that. Returns where
/// the reader started, how many bytes it read and their hash.
async fn read_hashed(
    handle: &crew::engine::EngineHandle,
    id: &crew::engine::JobId,
    from: ReadFrom,
) -> (u64, usize, Vec<u8>) {
    let mut reader = handle.reader(id, from).expect("reader");
    let start = reader.offset();
    let (mut expected, mut hash) = (start, Sha256::new());
    loop {
        match bounded("output event", Duration::from_secs(120), reader.next())
            .await
            .expect("read output")
        {
            Some(OutputEvent::Data { offset, bytes }) => {
                assert_eq!(offset, expected, "gap or overlap in output");
                expected += bytes.len() as u64;
                hash.update(&bytes);
            }
            Some(OutputEvent::Dropped { offset, len }) => {
                panic!("{len} bytes dropped at {offset}, under the output limit")
            }
            Some(OutputEvent::End(_)) => {
                return (start, (expected - start) as usize, hash.finalize().to_vec());
            }
            Some(OutputEvent::Until) => panic!("no until was asked for"),
            None => panic!("reader ended without End"),
        }
    }
}

#[tokio::test]
async fn three_readers_get_identical_bytes_and_a_stalled_one_costs_nothing() {
    let size = scaled(100_000_000) as usize;
    let t = engine_or_skip!(exclusive, |c| c.output_limit = 256 << 20);
    let data = pattern(size);
    let mut file = tempfile::NamedTempFile::new().unwrap();
    file.write_all(&data).unwrap();
    file.flush().unwrap();
    // The job runs as a user that must be able to read the file.
    std::fs::set_permissions(file.path(), std::os::unix::fs::PermissionsExt::from_mode(0o644)).unwrap();
    let path = file.path().to_str().unwrap().to_owned();

    // SAFETY: malloc_trim(3) only returns free memory to the kernel.
    unsafe { libc::malloc_trim(0) };
    let rss_before = rss_kib();
    // The job waits for a line on stdin, so every reader is in place first.
    let info = t.handle.start(sh(&format!("read go; cat {path}"))).await.unwrap();
    let offset = (size / 3) as u64;
    let readers = [
        ReadFrom::Start,
        ReadFrom::Offset(offset),
        ReadFrom::TailBytes(1 << 20),
    ]
    .map(|from| {
        let h = t.handle.clone();
        let id = info.id.clone();
        tokio::spawn(async move { read_hashed(&h, &id, from).await })
    });
    // A reader that reads one chunk and then never again.
    let mut stalled = t
        .handle
        .reader(&info.id, ReadFrom::Start)
        .unwrap()
        .with_chunk_size(4096);
    t.handle
        .write_stdin(&info.id, bytes::Bytes::from_static(b"go\n"))
        .await
        .unwrap();
    match stalled.next().await.unwrap() {
        Some(OutputEvent::Data { offset: 0, bytes }) => assert!(bytes.len() <= 4096, "{}", bytes.len()),
        other => panic!("expected the first chunk, got {other:?}"),
    }

    for r in readers {
        let (start, len, digest) = bounded("reader", Duration::from_secs(300), r).await.unwrap();
        let start = start as usize;
        assert_eq!(len, size - start, "reader from {start}");
        assert!(
            digest == sha(&data[start..]),
            "reader from {start} got different bytes"
        );
    }
    // What the readers still hold, not what the allocator keeps cached for
    // later (per-thread arenas of the blocking pool, which vary from run
    // to run and were seen at 8 MiB in the emulated VM).
    // SAFETY: malloc_trim(3) only returns free memory to the kernel.
    unsafe { libc::malloc_trim(0) };
    let rss_after = rss_kib();
    eprintln!("{size} bytes, 3 readers + 1 stalled: rss {rss_before} -> {rss_after} KiB");
    assert!(
        rss_after.saturating_sub(rss_before) < 8 << 10,
        "crew rss grew by {} KiB",
        rss_after - rss_before
    );
    // The stalled reader picks up where it stopped, 4 KiB in.
    match stalled.next().await.unwrap() {
        Some(OutputEvent::Data { offset, bytes }) => {
            assert_eq!(offset, 4096);
            assert_eq!(&bytes[..], &data[4096..8192]);
        }
        other => panic!("{other:?}"),
    }
    t.assert_clean().await;
    t.shutdown().await;
}

#[tokio::test]
async fn past_the_bound_the_oldest_bytes_go_and_readers_are_told() {
    let limit: u64 = 256 << 10;
    let t = engine_or_skip!(exclusive, |c| c.output_limit = 256 << 10);
    let total: u64 = 1 << 20;
    let info = t
        .handle
        .start(sh(&format!("head -c {total} /dev/zero | tr '\\0' a; printf END")))
        .await
        .unwrap();
    // Read only once it ended: a follower that keeps up gets every byte
    // before it is dropped, which is not what this test is about.
    wait_for("the job to end", Duration::from_secs(20), || {
        t.handle.get(&info.id).is_some_and(|i| i.state.is_ended())
    })
    .await;
    let (out, dropped, _) = read_all(&t.handle, &info.id, ReadFrom::Start).await;
    assert_eq!(
        dropped + out.len() as u64,
        total + 3,
        "every offset accounted for"
    );
    assert!(
        dropped >= total + 3 - limit,
        "kept more than the limit: dropped {dropped}"
    );
    assert!(out.len() as u64 <= limit);
    assert!(out.ends_with(b"aaaEND"));
    // The first event of a reader from the start is the drop marker.
    let id = t.handle.list(true)[0].id.clone();
    let mut r = t.handle.reader(&id, ReadFrom::Start).unwrap();
    match r.next().await.unwrap() {
        Some(OutputEvent::Dropped { offset: 0, len }) => assert_eq!(len, dropped),
        other => panic!("expected a drop marker first, got {other:?}"),
    }
    // Tail by lines never reaches into the dropped part.
    let (tail, d, _) = read_all(&t.handle, &id, ReadFrom::TailLines(5)).await;
    assert_eq!(d, 0);
    assert_eq!(tail.len(), out.len());
    // With times: the drop, then chunks whose first mark covers their first
    // byte: the index kept the mark of the oldest byte kept.
    let mut r = t
        .handle
        .reader(&id, ReadFrom::Start)
        .unwrap()
        .with_times(None, None)
        .unwrap();
    assert!(matches!(
        r.next().await.unwrap(),
        Some(OutputEvent::Dropped { offset: 0, .. })
    ));
    let mut chunks = 0;
    loop {
        match r.next().await.unwrap() {
            Some(OutputEvent::Data { offset, .. }) => {
                let marks = r.take_marks();
                assert!(
                    marks.first().is_some_and(|m| m.offset <= offset),
                    "no mark covers {offset}: {marks:?}"
                );
                chunks += 1;
            }
            Some(OutputEvent::End(_)) => break,
            other => panic!("{other:?}"),
        }
    }
    assert!(chunks > 0);
    t.shutdown().await;
}

#[tokio::test]
async fn since_on_output_stored_without_times_is_refused_in_words() {
    let t = engine_or_skip!();
    let info = t.handle.start(sh("echo stored")).await.unwrap();
    let (out, _, _) = read_all(&t.handle, &info.id, ReadFrom::Start).await;
    assert_eq!(out, b"stored\n");
    let index = t.state.path().join("jobs").join(format!("{}.idx", info.id));
    assert!(index.exists(), "the shim made the index at the first output");
    // As a shim of an older release leaves it: output, no index.
    std::fs::remove_file(&index).unwrap();
    let refused = t
        .handle
        .reader(&info.id, ReadFrom::Start)
        .unwrap()
        .with_times(Some(0), None)
        .unwrap_err();
    assert!(refused.to_string().contains("has no times"), "{refused}");
    // Without since it reads as ever, with no marks.
    let mut r = t
        .handle
        .reader(&info.id, ReadFrom::Start)
        .unwrap()
        .with_times(None, None)
        .unwrap();
    assert!(matches!(r.next().await.unwrap(), Some(OutputEvent::Data { .. })));
    assert!(r.take_marks().is_empty());
    t.shutdown().await;
}
