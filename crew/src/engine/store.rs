//! The crew's job records on disk: `<state>/jobs.db`, SQLite in WAL mode.
//!
//! Every job has one row from the moment its start is answered: its
//! number (`job-N`), id, name, owner, phase, times, and the whole record
//! (`JobInfo` as JSON). A row changes when the job ends and when it is
//! archived; list, find and watch page through rows, so the crew's memory
//! does not grow with the number of ended jobs. Handles keep counting
//! across restarts (`next_number`, never lowered), and are never reused.
//!
//! Durability: WAL with `synchronous=NORMAL`. A commit is in the WAL file
//! before it returns, so a crew killed at any point (`kill -9`, a crash)
//! loses nothing it acknowledged; only a power loss may roll back the last
//! commits, and what those held comes back from the shims (a running shim
//! answers with its record, an ended one left it in its exit record).
//!
//! A store that cannot be opened or fails SQLite's `quick_check` never
//! keeps the crew from starting: it is moved aside (`jobs.db.corrupt-<time>`)
//! and a new one made, and [`Opened::note`] says so for the log. A store
//! written by a newer crew (a higher schema version) is refused, so that
//! a downgrade does not lose it.

use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::{Duration, SystemTime};

use rusqlite::{Connection, OptionalExtension as _, params};

use super::error::EngineError;
use super::job::{JobId, JobInfo};
use tasker_common::{JobRef, lock};

/// The most jobs a reference lookup returns (an ambiguous one lists them).
pub(crate) const FIND_LIMIT: usize = 10;

/// The layout of the tables below; raised with every change to them.
const SCHEMA: i64 = 1;

/// The store's file name in the state directory.
pub(crate) const FILE: &str = "jobs.db";

#[derive(Debug)]
pub(crate) struct Store {
    /// Writes, and the reads that must see them at once.
    write: Mutex<Connection>,
    /// Pages of lists, so a long list never holds up a start.
    read: Mutex<Connection>,
}

/// What opening found.
#[derive(Debug)]
pub(crate) struct Opened {
    pub store: Store,
    /// Set when the store had to be moved aside (and why).
    pub note: Option<String>,
}

/// A job's row, beyond its record: what retention needs.
#[derive(Debug)]
pub(crate) struct EndedRow {
    pub id: JobId,
    pub ended: SystemTime,
    pub output_bytes: u64,
}

fn sql_err(what: &str, e: &rusqlite::Error) -> EngineError {
    // A full disk (or quota) is the operator's to fix, and the caller's to
    // hear as such: not an internal error.
    if let rusqlite::Error::SqliteFailure(f, _) = e
        && matches!(f.code, rusqlite::ErrorCode::DiskFull)
    {
        return EngineError::StateFull;
    }
    EngineError::Store(format!("{what}: {e}"))
}

/// One statement, so that a start pays for one write; the next number
/// needs none, as the highest number on record gives it (see `delete`).
fn insert_row(c: &Connection, info: &JobInfo) -> Result<(), EngineError> {
    let number =
        number_of(&info.handle).ok_or_else(|| EngineError::Store("a job without a number".into()))?;
    let json = serde_json::to_string(info).map_err(|e| EngineError::Store(format!("encode: {e}")))?;
    c.execute(
        "INSERT INTO jobs (number, id, name, owner, ended, archived, created_ns, ended_ns, info)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)
         ON CONFLICT(id) DO UPDATE SET ended = ?5, archived = ?6, ended_ns = ?8, info = ?9",
        params![
            number as i64,
            info.id.as_str(),
            info.name,
            info.owner,
            info.state.is_ended(),
            info.archived,
            nanos(info.created_at),
            ended_ns(info),
            json
        ],
    )
    .map_err(|e| sql_err("record the job", &e))?;
    Ok(())
}

fn update_row(c: &Connection, info: &JobInfo, output_bytes: Option<u64>) -> Result<(), EngineError> {
    let json = serde_json::to_string(info).map_err(|e| EngineError::Store(format!("encode: {e}")))?;
    c.execute(
        "UPDATE jobs SET ended = ?2, archived = ?3, ended_ns = ?4, info = ?5,
             output_bytes = COALESCE(?6, output_bytes)
         WHERE id = ?1",
        params![
            info.id.as_str(),
            info.state.is_ended(),
            info.archived,
            ended_ns(info),
            json,
            output_bytes.map(|b| b as i64)
        ],
    )
    .map_err(|e| sql_err("record the job's state", &e))?;
    Ok(())
}

fn name_holder(c: &Connection, name: &str) -> Result<Option<String>, EngineError> {
    let number: Option<i64> = c
        .prepare_cached("SELECT number FROM jobs WHERE name = ?1 AND archived = 0 LIMIT 1")
        .and_then(|mut s| s.query_row([name], |r| r.get(0)).optional())
        .map_err(|e| sql_err("look up a job name", &e))?;
    Ok(number.map(|n| format!("job-{n}")))
}

fn nanos(t: SystemTime) -> i64 {
    t.duration_since(SystemTime::UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_nanos()).unwrap_or(i64::MAX))
}

fn from_nanos(n: i64) -> SystemTime {
    SystemTime::UNIX_EPOCH + Duration::from_nanos(u64::try_from(n).unwrap_or(0))
}

/// The number of a `job-N` handle.
pub(crate) fn number_of(handle: &str) -> Option<u64> {
    handle.strip_prefix("job-")?.parse().ok()
}

fn connect(path: &Path) -> rusqlite::Result<Connection> {
    use rusqlite::OpenFlags;
    let c = if path.to_str().is_some_and(|p| p.starts_with("file:")) {
        // A shared in-memory database (benchmarks' baseline).
        Connection::open_with_flags(path, OpenFlags::default() | OpenFlags::SQLITE_OPEN_URI)?
    } else {
        Connection::open(path)?
    };
    c.busy_timeout(Duration::from_secs(5))?;
    c.pragma_update(None, "journal_mode", "WAL")?;
    c.pragma_update(None, "synchronous", "NORMAL")?;
    Ok(c)
}

/// Opens the store, checks it, and makes the tables of a new one.
fn open_checked(path: &Path) -> Result<(Connection, Connection), String> {
    let write = connect(path).map_err(|e| e.to_string())?;
    let check: String = write
        .query_row("PRAGMA quick_check", [], |r| r.get(0))
        .map_err(|e| e.to_string())?;
    if check != "ok" {
        return Err(format!("quick_check: {check}"));
    }
    write
        .execute_batch(
            "CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value INTEGER NOT NULL);
             CREATE TABLE IF NOT EXISTS jobs (
                 number INTEGER PRIMARY KEY,
                 id TEXT NOT NULL UNIQUE,
                 name TEXT,
                 owner TEXT NOT NULL,
                 ended INTEGER NOT NULL,
                 archived INTEGER NOT NULL,
                 created_ns INTEGER NOT NULL,
                 ended_ns INTEGER,
                 output_bytes INTEGER NOT NULL DEFAULT 0,
                 info TEXT NOT NULL
             );
             CREATE INDEX IF NOT EXISTS jobs_name ON jobs(name) WHERE name IS NOT NULL;
             CREATE INDEX IF NOT EXISTS jobs_ended ON jobs(ended, ended_ns);",
        )
        .map_err(|e| e.to_string())?;
    let schema: Option<i64> = write
        .query_row("SELECT value FROM meta WHERE key = 'schema'", [], |r| r.get(0))
        .optional()
        .map_err(|e| e.to_string())?;
    match schema {
        None => {
            write
                .execute("INSERT INTO meta (key, value) VALUES ('schema', ?1)", [SCHEMA])
                .map_err(|e| e.to_string())?;
        }
        Some(SCHEMA) => {}
        Some(v) if v > SCHEMA => {
            return Err(format!(
                "{NEWER}: it was written by a newer crew (schema {v}; this crew knows {SCHEMA})"
            ));
        }
        Some(v) => return Err(format!("unknown schema {v}")),
    }
    let read = connect(path).map_err(|e| e.to_string())?;
    Ok((write, read))
}

const NEWER: &str = "newer";

impl Store {
    /// A store in memory, gone with the engine: the baseline benchmarks
    /// measure the store on disk against.
    pub(crate) fn in_memory(name: &str) -> Result<Opened, EngineError> {
        let uri = PathBuf::from(format!("file:tasker-{name}?mode=memory&cache=shared"));
        let (write, read) = open_checked(&uri).map_err(EngineError::Store)?;
        Ok(Opened {
            store: Self {
                write: Mutex::new(write),
                read: Mutex::new(read),
            },
            note: None,
        })
    }

    /// Opens `<state_dir>/jobs.db`, or moves a broken one aside and starts
    /// a new one.
    pub(crate) fn open(state_dir: &Path) -> Result<Opened, EngineError> {
        let path = state_dir.join(FILE);
        let (conns, note) = match open_checked(&path) {
            Ok(c) => (c, None),
            Err(why) if why.starts_with(NEWER) => {
                return Err(EngineError::Unsupported(format!(
                    "the job store {} {}; run that crew, or move the store aside to start over",
                    path.display(),
                    &why[NEWER.len()..].trim_start_matches(':').trim()
                )));
            }
            Err(why) => {
                let stamp = nanos(SystemTime::now()) / 1_000_000_000;
                let aside = state_dir.join(format!("{FILE}.corrupt-{stamp}"));
                for suffix in ["", "-wal", "-shm"] {
                    let from = PathBuf::from(format!("{}{suffix}", path.display()));
                    let to = PathBuf::from(format!("{}{suffix}", aside.display()));
                    if from.exists() {
                        std::fs::rename(&from, &to)
                            .map_err(|e| EngineError::io("move the broken job store aside", &from, e))?;
                    }
                }
                let conns = open_checked(&path)
                    .map_err(|e| EngineError::Store(format!("a new job store {}: {e}", path.display())))?;
                let note = format!(
                    "the job store could not be used ({why}); it was moved to {} and a new one made: \
                     running jobs are found again from their shims, ended ones from their exit records",
                    aside.display()
                );
                (conns, Some(note))
            }
        };
        Ok(Opened {
            store: Self {
                write: Mutex::new(conns.0),
                read: Mutex::new(conns.1),
            },
            note,
        })
    }

    /// The number the next job gets: above every number ever given, even
    /// those of jobs since removed.
    pub(crate) fn next_number(&self) -> Result<u64, EngineError> {
        let c = lock(&self.write);
        let stored: Option<i64> = c
            .query_row("SELECT value FROM meta WHERE key = 'next_number'", [], |r| {
                r.get(0)
            })
            .optional()
            .map_err(|e| sql_err("read the next job number", &e))?;
        let highest: Option<i64> = c
            .query_row("SELECT MAX(number) FROM jobs", [], |r| r.get(0))
            .map_err(|e| sql_err("read the highest job number", &e))?;
        let next = stored.unwrap_or(1).max(highest.map_or(1, |h| h + 1));
        Ok(u64::try_from(next).unwrap_or(1))
    }

    /// Records a new job (or, for a job found again, its record as found).
    pub(crate) fn insert(&self, info: &JobInfo) -> Result<(), EngineError> {
        insert_row(&lock(&self.write), info)
    }

    /// Records a new job, unless another job that is not archived holds
    /// its name: the check and the insert are one step, so two starts with
    /// one name cannot both succeed.
    pub(crate) fn insert_new(&self, info: &JobInfo) -> Result<(), EngineError> {
        let c = lock(&self.write);
        if let Some(name) = &info.name
            && let Some(holder) = name_holder(&c, name)?
        {
            return Err(EngineError::NameTaken {
                name: name.clone(),
                holder,
            });
        }
        insert_row(&c, info)
    }

    /// Records jobs in one transaction: all or none.
    pub(crate) fn insert_all(&self, jobs: &[JobInfo]) -> Result<(), EngineError> {
        let mut c = lock(&self.write);
        let tx = c.transaction().map_err(|e| sql_err("begin", &e))?;
        for info in jobs {
            insert_row(&tx, info)?;
        }
        tx.commit().map_err(|e| sql_err("commit", &e))
    }

    /// Records a job's new state (ended, archived); `output_bytes` is what
    /// its output takes on disk, for the crew's output budget.
    pub(crate) fn update(&self, info: &JobInfo, output_bytes: Option<u64>) -> Result<(), EngineError> {
        update_row(&lock(&self.write), info, output_bytes)
    }

    /// Records an archived job as listed again, unless another job that is
    /// not archived holds its name: the check and the write are one step,
    /// as a start's are, so a start and an un-archive cannot both take it.
    pub(crate) fn unarchive(&self, info: &JobInfo) -> Result<(), EngineError> {
        let c = lock(&self.write);
        if let Some(name) = &info.name
            && let Some(holder) = name_holder(&c, name)?
            && holder != info.handle
        {
            // EngineError::NameTaken's words, turned to this case: a job
            // cannot be renamed, so the holder has to go.
            return Err(EngineError::Taken(format!(
                "the name {name:?} is taken by {holder}, which is not archived: archive {holder} first, then un-archive {}",
                info.handle
            )));
        }
        update_row(&c, info, None)
    }

    pub(crate) fn get(&self, id: &JobId) -> Result<Option<JobInfo>, EngineError> {
        let c = lock(&self.write);
        c.query_row("SELECT info FROM jobs WHERE id = ?1", [id.as_str()], |r| {
            r.get::<_, String>(0)
        })
        .optional()
        .map_err(|e| sql_err("read a job", &e))?
        .map(|j| decode(&j))
        .transpose()
    }

    /// The jobs a reference names exactly (id, `job-N` handle or name),
    /// else those whose id starts with it (4 characters or more).
    pub(crate) fn find(&self, reference: &JobRef<'_>) -> Result<Vec<JobInfo>, EngineError> {
        let c = lock(&self.write);
        // At most this many rows: enough to list an ambiguous reference's
        // matches, never a whole table.
        let most = FIND_LIMIT as i64;
        match *reference {
            JobRef::Id(id) => query(&c, "SELECT info FROM jobs WHERE id = ?1", [id]),
            JobRef::Handle(n) => {
                let n = i64::try_from(n).unwrap_or(-1);
                query(&c, "SELECT info FROM jobs WHERE number = ?1", [n])
            }
            // Ids are lowercase hex: a prefix is a range.
            JobRef::IdPrefix(prefix) => query(
                &c,
                "SELECT info FROM jobs WHERE id >= ?1 AND id < ?2 ORDER BY number LIMIT ?3",
                params![prefix, format!("{prefix}g"), most],
            ),
            // The job that holds the name first, then archived ones, newest
            // first.
            JobRef::Name(name) => query(
                &c,
                "SELECT info FROM jobs WHERE name = ?1 ORDER BY archived, number DESC LIMIT ?2",
                params![name, most],
            ),
        }
    }

    /// The handle of the job that holds `name` (one not archived), if any.
    pub(crate) fn name_holder(&self, name: &str) -> Result<Option<String>, EngineError> {
        name_holder(&lock(&self.write), name)
    }

    /// Up to `limit` jobs numbered above `after`, in number order.
    pub(crate) fn page(
        &self,
        include_archived: bool,
        after: u64,
        limit: usize,
    ) -> Result<Vec<JobInfo>, EngineError> {
        let c = lock(&self.read);
        // Each record with only the start of its argv: SQLite cuts it, so
        // a page never holds what a thousand long commands would take.
        let sql = format!(
            "SELECT json_set(info, '$.argv', json((SELECT json_group_array(substr(value, 1, {word})) \
                 FROM (SELECT value FROM json_each(jobs.info, '$.argv') ORDER BY key LIMIT {words})))) \
             FROM jobs WHERE number > ?1 AND (?2 OR archived = 0) ORDER BY number LIMIT ?3",
            word = PAGE_WORD + 1,
            words = PAGE_WORDS + 1,
        );
        let mut jobs = query(&c, &sql, params![after as i64, include_archived, limit as i64])?;
        for job in &mut jobs {
            cut_argv(job);
        }
        Ok(jobs)
    }

    /// Every job whose record says it has not ended.
    pub(crate) fn unended(&self) -> Result<Vec<JobInfo>, EngineError> {
        let c = lock(&self.write);
        query(&c, "SELECT info FROM jobs WHERE ended = 0 ORDER BY number", [])
    }

    /// Ended jobs, oldest end first.
    pub(crate) fn ended_oldest_first(&self, limit: usize) -> Result<Vec<EndedRow>, EngineError> {
        let c = lock(&self.read);
        let mut stmt = c
            .prepare_cached(
                "SELECT id, ended_ns, output_bytes FROM jobs WHERE ended = 1 ORDER BY ended_ns LIMIT ?1",
            )
            .map_err(|e| sql_err("list ended jobs", &e))?;
        let rows = stmt
            .query_map([limit as i64], |r| {
                Ok((r.get::<_, String>(0)?, r.get::<_, i64>(1)?, r.get::<_, i64>(2)?))
            })
            .map_err(|e| sql_err("list ended jobs", &e))?;
        let mut out = Vec::new();
        for row in rows {
            let (id, ended, bytes) = row.map_err(|e| sql_err("list ended jobs", &e))?;
            if let Some(id) = JobId::parse(&id) {
                out.push(EndedRow {
                    id,
                    ended: from_nanos(ended),
                    output_bytes: u64::try_from(bytes).unwrap_or(0),
                });
            }
        }
        Ok(out)
    }

    /// How many jobs have ended, and how much output they keep.
    pub(crate) fn ended_totals(&self) -> Result<(u64, u64), EngineError> {
        let c = lock(&self.read);
        c.query_row(
            "SELECT COUNT(*), COALESCE(SUM(output_bytes), 0) FROM jobs WHERE ended = 1",
            [],
            |r| Ok((r.get::<_, i64>(0)? as u64, r.get::<_, i64>(1)? as u64)),
        )
        .map_err(|e| sql_err("count ended jobs", &e))
    }

    /// Every job's id.
    pub(crate) fn all_ids(&self) -> Result<std::collections::HashSet<String>, EngineError> {
        let c = lock(&self.read);
        let mut stmt = c
            .prepare_cached("SELECT id FROM jobs")
            .map_err(|e| sql_err("list job ids", &e))?;
        let rows = stmt
            .query_map([], |r| r.get::<_, String>(0))
            .map_err(|e| sql_err("list job ids", &e))?;
        rows.collect::<Result<_, _>>()
            .map_err(|e| sql_err("list job ids", &e))
    }

    /// Removes a job's row. The highest number on record is kept aside
    /// first, so that removing the newest job never lowers the next one.
    pub(crate) fn delete(&self, id: &JobId) -> Result<(), EngineError> {
        let mut c = lock(&self.write);
        let tx = c.transaction().map_err(|e| sql_err("begin", &e))?;
        let highest: Option<i64> = tx
            .query_row("SELECT MAX(number) FROM jobs", [], |r| r.get(0))
            .map_err(|e| sql_err("read the highest job number", &e))?;
        if let Some(highest) = highest {
            tx.execute(
                "INSERT INTO meta (key, value) VALUES ('next_number', ?1)
                 ON CONFLICT(key) DO UPDATE SET value = MAX(value, ?1)",
                [highest + 1],
            )
            .map_err(|e| sql_err("record the next job number", &e))?;
        }
        tx.execute("DELETE FROM jobs WHERE id = ?1", [id.as_str()])
            .map_err(|e| sql_err("remove a job", &e))?;
        tx.commit().map_err(|e| sql_err("commit", &e))
    }
}

fn ended_ns(info: &JobInfo) -> Option<i64> {
    match &info.state {
        super::job::JobState::Ended(e) => Some(nanos(e.ended_at)),
        _ => None,
    }
}

/// The words of a job's argv a list page holds, and the bytes of each: a
/// page's records cost at most 16 KiB each, whatever the jobs' commands.
const PAGE_WORDS: usize = 16;
const PAGE_WORD: usize = 1024;

/// Marks a page's record whose argv SQLite cut (it returns a word or a
/// byte more than a page keeps, so that a cut is seen), and cuts it there.
fn cut_argv(job: &mut JobInfo) {
    let long = job.argv.len() > PAGE_WORDS || job.argv.iter().any(|w| w.chars().count() > PAGE_WORD);
    if !long {
        return;
    }
    let kept: Vec<String> = job
        .argv
        .iter()
        .take(PAGE_WORDS)
        .map(|w| w.chars().take(PAGE_WORD).collect())
        .collect();
    job.argv = kept.into();
    job.argv_cut = true;
}

fn decode(json: &str) -> Result<JobInfo, EngineError> {
    serde_json::from_str(json).map_err(|e| EngineError::Store(format!("a job record does not decode: {e}")))
}

fn query(c: &Connection, sql: &str, params: impl rusqlite::Params) -> Result<Vec<JobInfo>, EngineError> {
    let mut stmt = c.prepare_cached(sql).map_err(|e| sql_err("query jobs", &e))?;
    let rows = stmt
        .query_map(params, |r| r.get::<_, String>(0))
        .map_err(|e| sql_err("query jobs", &e))?;
    let mut out = Vec::new();
    for row in rows {
        out.push(decode(&row.map_err(|e| sql_err("query jobs", &e))?)?);
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engine::{JobState, Limits, Network, RunAs};

    fn job(n: u64) -> JobInfo {
        JobInfo {
            id: JobId::random(),
            handle: format!("job-{n}"),
            name: None,
            batch: None,
            owner: "alice".into(),
            argv: vec!["true".into()].into(),
            argv_cut: false,
            cwd: "/".into(),
            run_as: RunAs {
                user: "alice".into(),
                uid: 1000,
                gid: 1000,
                groups: vec![1000],
                home: "/home/alice".into(),
                shell: "/bin/sh".into(),
            },
            limits: Limits::default(),
            tty: None,
            network: Network::Isolated,
            timeout: None,
            created_at: SystemTime::now(),
            state: JobState::Starting,
            archived: false,
        }
    }

    /// A list page holds the start of each argv, marked as cut; a job
    /// asked for by reference has all of it.
    #[test]
    fn pages_hold_the_start_of_a_long_argv_and_a_lookup_all_of_it() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).unwrap().store;
        let long_words: Vec<String> = (0..50_000).map(|i| format!("w{i}")).collect();
        let one_long_word = vec!["é".repeat(100_000)];
        let short = vec!["sh".to_owned(), "-c".to_owned(), "echo 'hi'".to_owned()];
        for (n, argv) in [(1, &long_words), (2, &one_long_word), (3, &short)] {
            store
                .insert(&JobInfo {
                    argv: argv.clone().into(),
                    ..job(n)
                })
                .unwrap();
        }
        let page = store.page(false, 0, 10).unwrap();
        assert_eq!(page[0].argv[..], long_words[..PAGE_WORDS]);
        assert!(page[0].argv_cut);
        assert_eq!(page[1].argv[0], "é".repeat(PAGE_WORD));
        assert!(page[1].argv_cut);
        assert_eq!(page[2].argv[..], short[..]);
        assert!(!page[2].argv_cut);
        let whole = store.find(&JobRef::Handle(1)).unwrap().remove(0);
        assert_eq!(whole.argv[..], long_words[..]);
        assert!(!whole.argv_cut);
    }

    #[test]
    fn a_name_is_held_by_one_job_until_it_is_archived() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).unwrap().store;
        let named = |n| JobInfo {
            name: Some("build".into()),
            ..job(n)
        };
        store.insert_new(&named(1)).unwrap();
        let err = store.insert_new(&named(2)).unwrap_err();
        assert!(
            matches!(&err, EngineError::NameTaken { holder, .. } if holder == "job-1"),
            "{err}"
        );
        let mut first = store.find(&JobRef::Handle(1)).unwrap().remove(0);
        first.archived = true;
        store.update(&first, None).unwrap();
        store.insert_new(&named(2)).unwrap();
        assert_eq!(store.name_holder("build").unwrap().as_deref(), Some("job-2"));
        // The name finds the holder first, then the archived one.
        let found = store.find(&JobRef::Name("build")).unwrap();
        let handles: Vec<&str> = found.iter().map(|j| j.handle.as_str()).collect();
        assert_eq!(handles, ["job-2", "job-1"]);
    }

    #[test]
    fn an_archived_job_is_listed_again_only_while_its_name_is_free() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).unwrap().store;
        let named = |n| JobInfo {
            name: Some("build".into()),
            ..job(n)
        };
        let mut first = JobInfo {
            archived: true,
            ..named(1)
        };
        store.insert(&first).unwrap();
        let mut second = named(2);
        store.insert_new(&second).unwrap();
        first.archived = false;
        let err = store.unarchive(&first).unwrap_err();
        assert_eq!(
            err.to_string(),
            "the name \"build\" is taken by job-2, which is not archived: archive job-2 first, then un-archive job-1"
        );
        assert!(
            store.get(&first.id).unwrap().unwrap().archived,
            "refused, yet written"
        );
        second.archived = true;
        store.update(&second, None).unwrap();
        store.unarchive(&first).unwrap();
        assert!(!store.get(&first.id).unwrap().unwrap().archived);
        assert_eq!(store.name_holder("build").unwrap().as_deref(), Some("job-1"));
    }

    #[test]
    fn numbers_are_never_given_twice_even_after_the_newest_job_is_removed() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).unwrap().store;
        assert_eq!(store.next_number().unwrap(), 1);
        let jobs: Vec<JobInfo> = (1..=3).map(job).collect();
        store.insert(&jobs[0]).unwrap();
        store.insert_all(&jobs[1..]).unwrap();
        assert_eq!(store.next_number().unwrap(), 4);
        store.delete(&jobs[2].id).unwrap();
        store.delete(&jobs[1].id).unwrap();
        drop(store);
        let store = Store::open(dir.path()).unwrap().store;
        assert_eq!(store.next_number().unwrap(), 4, "job-3 was given once");
        assert_eq!(store.page(true, 0, 10).unwrap(), vec![jobs[0].clone()]);
        store.delete(&jobs[0].id).unwrap();
        assert_eq!(store.next_number().unwrap(), 4);
    }
}
