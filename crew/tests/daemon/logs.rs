//! The crew's log cannot be forged by what clients send: an argv, a program
//! name or a cwd with a newline in it stays inside one record, escaped.
//! (A CN cannot hold a newline: certgen refuses such names, and the crew
//! refuses such certificates.)

use std::time::Duration;

use certgen::Role;
use tasker_proto::v1 as pb;

use crate::client::*;
use crate::support::*;

/// Text that would look like a record of its own after a newline, and
/// would overwrite the line it is on after a carriage return.
const FORGED: &str = "x\n2026-11-23T00:00:00Z  INFO forged record\r2026-11-23T00:00:00Z  INFO forged too";
const FORGED_PREFIX: &str = "2026-11-23T00:00:00Z";

/// Starts the jobs whose untrusted strings reach the log: one that runs
/// (argv in the "started" record), one whose program cannot be found and one
/// whose cwd does not exist (their reason is in the "job ended" record).
async fn log_untrusted_strings(crew: &Crew) {
    ensure_user(ALICE);
    let mut alice = crew.client(ALICE, Role::User).await;
    let ran = start(&mut alice, &["/bin/echo", FORGED]).await.unwrap();
    let no_program = start(&mut alice, &[FORGED]).await.unwrap();
    assert_eq!(no_program.phase, pb::JobPhase::Failed as i32, "{no_program:?}");
    let mut bad_cwd = spec(&["/bin/true"]);
    bad_cwd.cwd = format!("/{FORGED}");
    let bad_cwd = start_spec(&mut alice, bad_cwd).await.unwrap();
    assert_eq!(bad_cwd.phase, pb::JobPhase::Failed as i32, "{bad_cwd:?}");
    assert_ne!(ran.phase, pb::JobPhase::Failed as i32, "{ran:?}");
    wait_for("the three jobs to end", Duration::from_secs(10), || {
        crew.stderr
            .lines()
            .iter()
            .filter(|l| l.contains("job ended"))
            .count()
            >= 3
    })
    .await;
}

/// `2026-11-23T03:08:01.036555Z  INFO ...`: a timestamp, then a level.
fn is_text_record(line: &str) -> bool {
    let Some((ts, rest)) = line.split_once("Z ") else {
        return false;
    };
    let b = ts.as_bytes();
    let digits = |r: std::ops::Range<usize>| b.get(r).is_some_and(|s| s.iter().all(u8::is_ascii_digit));
    let shape = b.len() >= 19
        && digits(0..4)
        && b[4] == b'-'
        && digits(5..7)
        && b[7] == b'-'
        && digits(8..10)
        && b[10] == b'T'
        && digits(11..13)
        && b[13] == b':'
        && digits(14..16)
        && b[16] == b':'
        && digits(17..19);
    let level = rest.trim_start();
    shape
        && ["TRACE", "DEBUG", "INFO", "WARN", "ERROR"]
            .iter()
            .any(|l| level.starts_with(l))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn text_logs_keep_untrusted_strings_inside_one_record() {
    skip_unless_crew_can_run!();
    let mut crew = Crew::start("logtext", &["--log-format", "text"]).await;
    log_untrusted_strings(&crew).await;
    assert_eq!(crew.stop().await.code(), Some(0));
    let lines = crew.stderr.lines();
    let log = lines.join("\n");
    for line in &lines {
        assert!(!line.starts_with(FORGED_PREFIX), "a forged record:\n{log}");
        assert!(!line.contains('\r'), "a carriage return in the log: {line:?}");
        assert!(
            is_text_record(line),
            "a line that is not a record: {line:?}\n{log}"
        );
    }
    // The untrusted text is there, escaped, in the records it belongs to.
    let escaped = format!("\\n{FORGED_PREFIX}");
    for what in ["started", "job ended"] {
        assert!(
            lines
                .iter()
                .any(|l| l.contains(what) && l.contains("forged record") && l.contains(&escaped)),
            "no {what:?} record with the escaped text:\n{log}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn json_logs_are_one_object_per_line_with_untrusted_strings_in_fields() {
    skip_unless_crew_can_run!();
    let mut crew = Crew::start("logjson", &["--log-format", "json"]).await;
    log_untrusted_strings(&crew).await;
    assert_eq!(crew.stop().await.code(), Some(0));
    let lines = crew.stderr.lines();
    let mut records = Vec::new();
    for line in &lines {
        let v: serde_json::Value =
            serde_json::from_str(line).unwrap_or_else(|e| panic!("not JSON ({e}): {line:?}"));
        assert!(
            v.get("timestamp").is_some() && v.get("level").is_some() && v["fields"].is_object(),
            "not a record: {line}"
        );
        records.push(v);
    }
    let field = |r: &serde_json::Value, name: &str| r["fields"][name].as_str().unwrap_or_default().to_owned();
    let started = records
        .iter()
        .find(|r| field(r, "message") == "started" && field(r, "argv").contains("/bin/echo"))
        .expect("a started record for the echo job");
    assert!(field(started, "argv").contains("forged record"), "{started}");
    // Wherever the text is, it is inside a field, never beside the record.
    for r in &records {
        let mut outside = r.clone();
        outside.as_object_mut().unwrap().remove("fields");
        assert!(!outside.to_string().contains("forged"), "{r}");
    }
    assert!(
        records
            .iter()
            .any(|r| field(r, "message") == "job ended" && field(r, "outcome").contains("forged record")),
        "no job-ended record with the failed start's reason:\n{}",
        lines.join("\n")
    );
}

/// The log says when the CRL loads and when it has expired: then every
/// client is refused, and the operator must learn why from the log.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_log_says_when_the_crl_loads_and_when_it_expired() {
    skip_unless_crew_can_run!();
    let mut crew = Crew::start("crllog", &[]).await;
    crew.pki.write_expired_crl();
    for what in ["loaded the CRL", "the CRL has expired: every client is refused"] {
        wait_for(what, Duration::from_secs(10), || crew.stderr.has(what)).await;
    }
    assert_eq!(crew.stop().await.code(), Some(0));
}
