//! The crew's audit trail: `<state>/audit.db`, SQLite in WAL mode, one row
//! per state-changing or refused call (who, as their certificate says; what;
//! on which job; allowed, denied or failed; when).
//!
//! Append-only and hash-chained: each record's body is a JSON object with
//! its sequence number, and its hash is SHA-256 over the previous record's
//! hash, a newline and the body. Changing, removing or reordering a record
//! breaks the chain from there on, and [`verify`] names the first record
//! that does not follow. Removing records from the end cannot be seen from
//! the records alone (as with any log kept on one host: ship it elsewhere
//! for that).
//!
//! A record is committed before the call is answered: WAL with
//! `synchronous=NORMAL` keeps it through `kill -9` and crashes.
//!
//! Rotation: records older than the jobs' retention go (`prune`); the last
//! one removed leaves its sequence number and hash as the chain's anchor,
//! so the rest still verifies.

use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use rusqlite::{Connection, OptionalExtension as _, params};
use serde::{Deserialize, Serialize};
use sha2::{Digest as _, Sha256};
use tasker_common::lock;

use super::error::EngineError;

/// The trail's file name in the state directory.
pub const FILE: &str = "audit.db";

/// The most bytes of a start's argv a record keeps (the rest is counted).
pub const ARGV_KEPT: usize = 4096;

/// How a call went.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Decision {
    /// Allowed, and done.
    Allowed,
    /// Refused by the rules (role, owner, root, no identity).
    Denied,
    /// Allowed, but it could not be done (a bad spec, a quota, a job that
    /// had ended).
    Failed,
}

/// A record's body, hashed as written.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Record {
    pub seq: i64,
    /// Unix time, in nanoseconds.
    pub at_ns: i64,
    /// The call: start, stop, archive, attach, input, audit...
    pub call: String,
    /// The job's id, when the call was about one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub job: Option<String>,
    /// The caller's certificate CN and role ("" when the certificate gave
    /// no identity).
    pub subject: String,
    pub role: String,
    pub decision: Decision,
    /// Why it was denied or failed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub why: Option<String>,
    /// What was asked: a start's argv and environment names (never their
    /// values), a stop's grace, an input's byte counts.
    #[serde(default)]
    pub detail: serde_json::Value,
}

/// What a call adds to the trail (its number and time are the log's).
#[derive(Clone, Debug)]
pub struct Entry {
    pub call: &'static str,
    pub job: Option<String>,
    pub subject: String,
    pub role: String,
    pub decision: Decision,
    pub why: Option<String>,
    pub detail: serde_json::Value,
}

#[derive(Debug)]
struct Tail {
    seq: i64,
    hash: String,
}

#[derive(Debug)]
pub struct AuditLog {
    path: PathBuf,
    conn: Mutex<(Connection, Tail)>,
}

fn sql_err(what: &str, e: &rusqlite::Error) -> EngineError {
    if let rusqlite::Error::SqliteFailure(f, _) = e
        && matches!(f.code, rusqlite::ErrorCode::DiskFull)
    {
        return EngineError::StateFull;
    }
    EngineError::Store(format!("the audit trail: {what}: {e}"))
}

fn hash(prev: &str, body: &str) -> String {
    let mut h = Sha256::new();
    h.update(prev.as_bytes());
    h.update(b"\n");
    h.update(body.as_bytes());
    h.finalize().iter().map(|b| format!("{b:02x}")).collect()
}

fn now_ns() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_nanos()).unwrap_or(i64::MAX))
}

fn connect(path: &Path) -> rusqlite::Result<Connection> {
    let c = Connection::open(path)?;
    c.busy_timeout(Duration::from_secs(5))?;
    c.pragma_update(None, "journal_mode", "WAL")?;
    c.pragma_update(None, "synchronous", "NORMAL")?;
    c.execute_batch(
        "CREATE TABLE IF NOT EXISTS records (
             seq INTEGER PRIMARY KEY,
             job TEXT,
             at_ns INTEGER NOT NULL,
             body TEXT NOT NULL,
             hash TEXT NOT NULL
         );
         CREATE INDEX IF NOT EXISTS records_job ON records (job) WHERE job IS NOT NULL;
         CREATE TABLE IF NOT EXISTS anchor (
             id INTEGER PRIMARY KEY CHECK (id = 1),
             seq INTEGER NOT NULL,
             hash TEXT NOT NULL
         );",
    )?;
    Ok(c)
}

/// The chain's start: after the last record pruned, or before the first.
fn anchor(c: &Connection) -> rusqlite::Result<(i64, String)> {
    Ok(c.query_row("SELECT seq, hash FROM anchor WHERE id = 1", [], |r| {
        Ok((r.get(0)?, r.get(1)?))
    })
    .optional()?
    .unwrap_or((0, String::new())))
}

impl AuditLog {
    pub fn open(state_dir: &Path) -> Result<Self, EngineError> {
        let path = state_dir.join(FILE);
        let c = connect(&path).map_err(|e| sql_err("open", &e))?;
        let last: Option<(i64, String)> = c
            .query_row(
                "SELECT seq, hash FROM records ORDER BY seq DESC LIMIT 1",
                [],
                |r| Ok((r.get(0)?, r.get(1)?)),
            )
            .optional()
            .map_err(|e| sql_err("read", &e))?;
        let (seq, hash) = match last {
            Some(l) => l,
            None => anchor(&c).map_err(|e| sql_err("read", &e))?,
        };
        Ok(Self {
            path,
            conn: Mutex::new((c, Tail { seq, hash })),
        })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Appends a record, committed when this returns.
    pub fn record(&self, e: Entry) -> Result<(), EngineError> {
        let mut guard = lock(&self.conn);
        let (c, tail) = &mut *guard;
        let record = Record {
            seq: tail.seq + 1,
            at_ns: now_ns(),
            call: e.call.to_owned(),
            job: e.job,
            subject: e.subject,
            role: e.role,
            decision: e.decision,
            why: e.why,
            detail: e.detail,
        };
        let body = serde_json::to_string(&record).map_err(|e| EngineError::Store(e.to_string()))?;
        let h = hash(&tail.hash, &body);
        c.execute(
            "INSERT INTO records (seq, job, at_ns, body, hash) VALUES (?1, ?2, ?3, ?4, ?5)",
            params![record.seq, record.job, record.at_ns, body, h],
        )
        .map_err(|e| sql_err("write", &e))?;
        *tail = Tail {
            seq: record.seq,
            hash: h,
        };
        Ok(())
    }

    /// A job's records, oldest first (at most `limit`, the newest kept).
    pub fn trail(&self, job: &str, limit: usize) -> Result<Vec<Record>, EngineError> {
        let guard = lock(&self.conn);
        let mut stmt = guard
            .0
            .prepare_cached(
                "SELECT body FROM (SELECT seq, body FROM records WHERE job = ?1 ORDER BY seq DESC LIMIT ?2)
                 ORDER BY seq",
            )
            .map_err(|e| sql_err("read", &e))?;
        let rows = stmt
            .query_map(params![job, i64::try_from(limit).unwrap_or(i64::MAX)], |r| {
                r.get::<_, String>(0)
            })
            .map_err(|e| sql_err("read", &e))?;
        let mut out = Vec::new();
        for body in rows {
            let body = body.map_err(|e| sql_err("read", &e))?;
            let record = serde_json::from_str(&body).map_err(|e| {
                EngineError::Store(format!("the audit trail: a record that is not JSON: {e}"))
            })?;
            out.push(record);
        }
        Ok(out)
    }

    /// Removes the records made before `before`; the last one removed
    /// becomes the chain's anchor. Returns how many went.
    pub fn prune(&self, before: SystemTime) -> Result<usize, EngineError> {
        let cutoff = before
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| i64::try_from(d.as_nanos()).unwrap_or(i64::MAX));
        let mut guard = lock(&self.conn);
        let c = &mut guard.0;
        let tx = c.transaction().map_err(|e| sql_err("prune", &e))?;
        let last: Option<(i64, String)> = tx
            .query_row(
                "SELECT seq, hash FROM records WHERE at_ns < ?1 ORDER BY seq DESC LIMIT 1",
                params![cutoff],
                |r| Ok((r.get(0)?, r.get(1)?)),
            )
            .optional()
            .map_err(|e| sql_err("prune", &e))?;
        let Some((seq, hash)) = last else {
            return Ok(0);
        };
        let removed = tx
            .execute("DELETE FROM records WHERE seq <= ?1", params![seq])
            .map_err(|e| sql_err("prune", &e))?;
        tx.execute(
            "INSERT INTO anchor (id, seq, hash) VALUES (1, ?1, ?2)
             ON CONFLICT (id) DO UPDATE SET seq = excluded.seq, hash = excluded.hash",
            params![seq, hash],
        )
        .map_err(|e| sql_err("prune", &e))?;
        tx.commit().map_err(|e| sql_err("prune", &e))?;
        Ok(removed)
    }
}

/// What [`verify`] found.
#[derive(Debug, PartialEq, Eq)]
pub enum Verdict {
    /// Every record follows from the one before: `first..=last` (none when
    /// `count` is 0), from the anchor at `anchor`.
    Intact {
        count: u64,
        first: i64,
        last: i64,
        anchor: i64,
    },
    /// The first record that does not follow, and how.
    Broken { seq: i64, why: String },
}

/// Checks the chain of the trail at `path`, read-only.
pub fn verify(path: &Path) -> Result<Verdict, String> {
    if !path.exists() {
        return Err(format!("{}: no audit trail there", path.display()));
    }
    let c = Connection::open_with_flags(path, rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY)
        .map_err(|e| format!("{}: {e}", path.display()))?;
    let (anchor_seq, mut prev) = anchor(&c).map_err(|e| format!("{}: {e}", path.display()))?;
    let mut stmt = c
        .prepare("SELECT seq, body, hash FROM records ORDER BY seq")
        .map_err(|e| format!("{}: {e}", path.display()))?;
    let mut rows = stmt.query([]).map_err(|e| format!("{}: {e}", path.display()))?;
    let mut expected = anchor_seq + 1;
    let mut count = 0u64;
    let mut first = None;
    while let Some(row) = rows.next().map_err(|e| format!("{}: {e}", path.display()))? {
        let seq: i64 = row.get(0).map_err(|e| e.to_string())?;
        let body: String = row.get(1).map_err(|e| e.to_string())?;
        let stored: String = row.get(2).map_err(|e| e.to_string())?;
        let broken = |why: String| Ok(Verdict::Broken { seq, why });
        if seq != expected {
            return broken(format!("records {expected} to {} are missing", seq - 1));
        }
        match serde_json::from_str::<Record>(&body) {
            Ok(r) if r.seq == seq => {}
            Ok(r) => return broken(format!("its body says it is record {}", r.seq)),
            Err(e) => return broken(format!("its body is not a record: {e}")),
        }
        if hash(&prev, &body) != stored {
            return broken("it was changed: its hash does not follow from the record before".into());
        }
        first.get_or_insert(seq);
        prev = stored;
        expected = seq + 1;
        count += 1;
    }
    Ok(Verdict::Intact {
        count,
        first: first.unwrap_or(0),
        last: expected - 1,
        anchor: anchor_seq,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(call: &'static str, job: &str) -> Entry {
        Entry {
            call,
            job: Some(job.into()),
            subject: "alice".into(),
            role: "user".into(),
            decision: Decision::Allowed,
            why: None,
            detail: serde_json::json!({"argv": ["sleep", "1"]}),
        }
    }

    #[test]
    fn records_chain_and_survive_a_reopen() {
        let dir = tempfile::tempdir().unwrap();
        let log = AuditLog::open(dir.path()).unwrap();
        log.record(entry("start", "j1")).unwrap();
        log.record(entry("stop", "j1")).unwrap();
        log.record(entry("start", "j2")).unwrap();
        drop(log);
        let log = AuditLog::open(dir.path()).unwrap();
        log.record(entry("archive", "j1")).unwrap();
        let calls: Vec<String> = log
            .trail("j1", 100)
            .unwrap()
            .into_iter()
            .map(|r| r.call)
            .collect();
        assert_eq!(calls, ["start", "stop", "archive"]);
        assert_eq!(
            verify(&dir.path().join(FILE)).unwrap(),
            Verdict::Intact {
                count: 4,
                first: 1,
                last: 4,
                anchor: 0
            }
        );
    }

    #[test]
    fn a_changed_or_removed_record_is_named() {
        let dir = tempfile::tempdir().unwrap();
        let log = AuditLog::open(dir.path()).unwrap();
        for _ in 0..5 {
            log.record(entry("start", "j1")).unwrap();
        }
        let path = dir.path().join(FILE);
        let c = Connection::open(&path).unwrap();
        c.execute(
            "UPDATE records SET body = replace(body, 'alice', 'mallory') WHERE seq = 3",
            [],
        )
        .unwrap();
        match verify(&path).unwrap() {
            Verdict::Broken { seq: 3, why } => assert!(why.contains("changed"), "{why}"),
            other => panic!("{other:?}"),
        }
        // Its hash recomputed too: the next record no longer follows.
        let body: String = c
            .query_row("SELECT body FROM records WHERE seq = 3", [], |r| r.get(0))
            .unwrap();
        let prev: String = c
            .query_row("SELECT hash FROM records WHERE seq = 2", [], |r| r.get(0))
            .unwrap();
        c.execute(
            "UPDATE records SET hash = ?1 WHERE seq = 3",
            params![hash(&prev, &body)],
        )
        .unwrap();
        assert!(matches!(verify(&path).unwrap(), Verdict::Broken { seq: 4, .. }));
        c.execute("DELETE FROM records WHERE seq = 3", []).unwrap();
        match verify(&path).unwrap() {
            Verdict::Broken { seq: 4, why } => assert!(why.contains("missing"), "{why}"),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn pruning_keeps_the_rest_verifiable() {
        let dir = tempfile::tempdir().unwrap();
        let log = AuditLog::open(dir.path()).unwrap();
        for _ in 0..3 {
            log.record(entry("start", "old")).unwrap();
        }
        let between = SystemTime::now();
        std::thread::sleep(Duration::from_millis(2));
        log.record(entry("start", "new")).unwrap();
        assert_eq!(log.prune(between).unwrap(), 3);
        log.record(entry("stop", "new")).unwrap();
        assert_eq!(
            verify(&dir.path().join(FILE)).unwrap(),
            Verdict::Intact {
                count: 2,
                first: 4,
                last: 5,
                anchor: 3
            }
        );
        drop(log);
        // Reopened with only the anchor's tail left after pruning all.
        let log = AuditLog::open(dir.path()).unwrap();
        assert_eq!(log.prune(SystemTime::now()).unwrap(), 2);
        drop(log);
        let log = AuditLog::open(dir.path()).unwrap();
        log.record(entry("start", "next")).unwrap();
        assert!(matches!(
            verify(&dir.path().join(FILE)).unwrap(),
            Verdict::Intact {
                count: 1,
                first: 6,
                ..
            }
        ));
    }
}
