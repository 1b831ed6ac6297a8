//! Jobs under a pseudo-terminal.

use std::time::Duration;

use bytes::Bytes;
use crew::engine::{OutputEvent, ReadFrom, WinSize};

use crate::support::*;

/// Reads until the output so far contains `needle`; returns it all.
async fn read_until(reader: &mut crew::engine::OutputReader, acc: &mut String, needle: &str) {
    while !acc.contains(needle) {
        match bounded(needle, Duration::from_secs(20), reader.next())
            .await
            .unwrap()
        {
            Some(OutputEvent::Data { bytes, .. }) => acc.push_str(&String::from_utf8_lossy(&bytes)),
            Some(OutputEvent::End(info)) => panic!("job ended before {needle:?}: {acc:?} {:?}", info.state),
            other => panic!("unexpected {other:?}"),
        }
    }
}

#[tokio::test]
async fn a_tty_job_sees_a_terminal_and_stty_size_follows_a_resize() {
    let t = engine_or_skip!();
    let mut s =
        sh("test -t 0 && test -t 1 && echo IS-A-TTY; stty size; read line; stty size; echo \"got $line\"");
    s.tty = Some(WinSize { rows: 24, cols: 80 });
    let info = t.handle.start(s).await.unwrap();
    let mut reader = t.handle.reader(&info.id, ReadFrom::Start).unwrap();
    let mut out = String::new();
    read_until(&mut reader, &mut out, "24 80\r\n").await;
    assert!(out.starts_with("IS-A-TTY\r\n"), "{out:?}");
    // A terminal has no end of input to close (asked while the job still
    // waits for its line, so the answer is about the terminal).
    let err = t.handle.close_stdin(&info.id).await.unwrap_err();
    assert!(err.to_string().contains("Ctrl-D"), "{err}");

    t.handle
        .resize(&info.id, WinSize { rows: 50, cols: 132 })
        .await
        .unwrap();
    // The resize is ordered before this input on the same link to the shim.
    t.handle
        .write_stdin(&info.id, Bytes::from_static(b"hello\r"))
        .await
        .unwrap();
    read_until(&mut reader, &mut out, "got hello").await;
    assert!(out.contains("50 132\r\n"), "{out:?}");
    // The terminal echoed the typed line, as a terminal does.
    assert!(out.contains("hello\r\n"), "{out:?}");

    let (_, _, end) = read_all(&t.handle, &info.id, ReadFrom::Start).await;
    assert!(end.state.is_ended());
    t.assert_clean().await;
    t.shutdown().await;
}

#[tokio::test]
async fn ctrl_c_typed_into_a_tty_job_interrupts_it() {
    let t = engine_or_skip!();
    let mut s = sh("trap 'echo INTERRUPTED; exit 7' INT; echo ready; while :; do sleep 0.05; done");
    s.tty = Some(WinSize { rows: 24, cols: 80 });
    let info = t.handle.start(s).await.unwrap();
    let mut reader = t.handle.reader(&info.id, ReadFrom::Start).unwrap();
    let mut out = String::new();
    read_until(&mut reader, &mut out, "ready").await;
    t.handle
        .write_stdin(&info.id, Bytes::from_static(b"\x03"))
        .await
        .unwrap();
    let (all, _, end) = read_all(&t.handle, &info.id, ReadFrom::Start).await;
    assert!(String::from_utf8_lossy(&all).contains("INTERRUPTED"));
    assert_eq!(
        ended(&end).outcome,
        crew::engine::Outcome::Finished(crew::engine::Termination::Exited(7))
    );
    t.shutdown().await;
}
