//! Reading a job's output: from the start, from a byte offset, or from the
//! last N bytes or lines, then following live, each reader at its own pace.
//!
//! The output file is written once, by the job's shim (`tasker_shim::sink`); byte
//! offsets in the file are offsets in the stream. A reader holds only its
//! offset and an fd: a reader that stops reading costs nothing that grows.
//! Readers wait on the job's change counter, which the crew bumps when the
//! shim signals new bytes (eventfd) and when the job's state changes, so a
//! follower is woken by notification, never by a timer.
//!
//! The file's layout (the header page, the kept offset, why a reader can
//! trust what it read) is the shim crate's: `tasker_shim::output`.

use std::fs::File;
use std::io;
use std::os::fd::AsRawFd as _;
use std::path::Path;
use std::sync::Arc;

use bytes::{Bytes, BytesMut};
use tasker_shim::output::{HEADER, KeptFrom};
use tasker_shim::timeindex::{Mark, TimeIndex, clock_ns};
use tokio::sync::watch;

use super::error::{EngineError, IoContext};
use super::job::JobInfo;
use super::registry::JobEntry;

/// Where a reader starts.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ReadFrom {
    Start,
    Offset(u64),
    /// The last N bytes kept.
    TailBytes(u64),
    /// The last N lines kept (a final line without a newline counts).
    TailLines(u64),
}

/// What a reader yields, in stream order.
#[derive(Clone, Debug, PartialEq)]
pub enum OutputEvent {
    Data {
        offset: u64,
        bytes: Bytes,
    },
    /// `len` bytes from `offset` were dropped to keep the output under its
    /// limit (or could not be stored).
    Dropped {
        offset: u64,
        len: u64,
    },
    /// The job ended and every byte was read; nothing follows.
    End(Box<JobInfo>),
    /// The output reached the reader's `until` time; nothing follows.
    Until,
}

/// The default size of one read.
pub const DEFAULT_CHUNK: usize = 128 << 10;
/// Chunks one read may fetch at once (handed out one by one, from one
/// allocation).
const READ_AHEAD: usize = 2;

/// A cursor over one job's output.
#[derive(Debug)]
pub struct OutputReader {
    job: Arc<JobEntry>,
    kept: Arc<KeptFrom>,
    file: Arc<File>,
    offset: u64,
    changes: watch::Receiver<u64>,
    chunk: usize,
    /// Bytes read ahead, starting at `offset`, handed out a chunk at a
    /// time.
    ahead: Bytes,
    /// Whether to try a read that fails rather than waits for the disk.
    nowait: bool,
    done: bool,
    /// The job's time index, for a reader that asked for times.
    times: Option<Times>,
}

impl OutputReader {
    pub(crate) fn open(job: Arc<JobEntry>, from: ReadFrom) -> Result<Self, EngineError> {
        let path = job.output_path();
        let file = File::open(path).ctx("open output", path)?;
        let size = file
            .metadata()
            .ctx("stat output", path)?
            .len()
            .saturating_sub(HEADER);
        let kept = job.kept().ctx("map", path)?;
        let offset = match from {
            ReadFrom::Start => 0,
            // Past the end of a job that writes no more: nothing will come.
            // (A running job's reader may wait at an offset ahead.)
            ReadFrom::Offset(o) if o > size && job.ended_info().is_some() => {
                return Err(EngineError::OutOfRange(format!(
                    "offset {o} is past the end of {}'s output ({size} bytes; it has ended)",
                    job.info().handle
                )));
            }
            ReadFrom::Offset(o) => o,
            ReadFrom::TailBytes(n) => size.saturating_sub(n),
            ReadFrom::TailLines(n) => {
                tail_lines_offset(&file, size, kept.get(), n).ctx("read output", path)?
            }
        };
        let changes = job.subscribe_changes();
        Ok(Self {
            job,
            kept,
            file: Arc::new(file),
            offset,
            changes,
            chunk: DEFAULT_CHUNK,
            ahead: Bytes::new(),
            nowait: true,
            done: false,
            times: None,
        })
    }

    /// Reads with the job's time index: [`take_marks`](Self::take_marks)
    /// then gives each chunk's marks; `since` (a `CLOCK_BOOTTIME` time)
    /// moves the start to the first byte stored at or after it, and
    /// `until` ends the output (with [`OutputEvent::Until`]) at the first
    /// byte stored after it.
    pub fn with_times(mut self, since: Option<u64>, until: Option<u64>) -> Result<Self, EngineError> {
        let path = self.job.output_path().with_extension("idx");
        let mut times = Times {
            path,
            index: None,
            next: None,
            last: None,
            done_to: None,
            marks: Vec::new(),
            until,
            reached: false,
        };
        if let Some(since) = since {
            let path = times.path.clone();
            let found = match times.index().ctx("read the time index", &path)? {
                Some(index) => index
                    .first_where(|m| m.boot_ns >= since)
                    .ctx("read the time index", &path)?
                    .map(|(_, m)| m.offset),
                None => None,
            };
            let end = self.stored_end();
            if times.index.is_none() && end > 0 {
                // Output, but no index: a shim of an older release wrote it.
                return Err(EngineError::OutOfRange(format!(
                    "{}'s output has no times (its helper predates the time index): read it \
                     without --since",
                    self.job.info().handle
                )));
            }
            // Nothing stored since then: only what comes next.
            let start = found.unwrap_or(end);
            self.offset = self.offset.max(start);
        }
        self.times = Some(times);
        Ok(self)
    }

    /// The marks of the chunk last handed out: the one covering its first
    /// byte, then any within it. Empty without [`with_times`](Self::with_times),
    /// or for output the index does not cover.
    pub fn take_marks(&mut self) -> Vec<Mark> {
        self.times
            .as_mut()
            .map(|t| std::mem::take(&mut t.marks))
            .unwrap_or_default()
    }

    /// Sets the largest chunk one [`next`](Self::next) returns.
    pub fn with_chunk_size(mut self, bytes: usize) -> Self {
        self.chunk = bytes.clamp(1, 4 << 20);
        self
    }

    /// The offset of the next byte this reader will return.
    pub fn offset(&self) -> u64 {
        self.offset
    }

    /// How far the output goes now (it grows while the job runs).
    pub fn stored_end(&self) -> u64 {
        self.file.metadata().map_or(0, |m| m.len().saturating_sub(HEADER))
    }

    /// The next chunk of the bytes read ahead (there are some), with its
    /// marks if the reader asked for times; cut where `until` is passed.
    fn hand_out(&mut self) -> Result<OutputEvent, EngineError> {
        let offset = self.offset;
        let mut len = self.ahead.len().min(self.chunk);
        if let Some(t) = &mut self.times {
            let mut marks = t
                .marks_in(offset, offset + len as u64)
                .ctx("read the time index", &t.path)?;
            if let Some(until) = t.until
                && let Some(cut) = marks.iter().position(|m| m.boot_ns > until)
            {
                t.reached = true;
                len = (marks[cut].offset.max(offset) - offset) as usize;
                marks.truncate(cut);
            }
            t.marks = marks;
            if len == 0 {
                self.done = true;
                self.ahead = Bytes::new();
                return Ok(OutputEvent::Until);
            }
        }
        let bytes = self.ahead.split_to(len);
        self.offset += bytes.len() as u64;
        Ok(OutputEvent::Data { offset, bytes })
    }

    /// Whether the reader has passed its `until`, or the time has.
    fn past_until(&self) -> bool {
        self.times
            .as_ref()
            .is_some_and(|t| t.reached || t.until.is_some_and(|u| clock_ns(libc::CLOCK_BOOTTIME) > u))
    }

    /// The next event; waits for output while the job runs. `None` after
    /// [`OutputEvent::End`].
    pub async fn next(&mut self) -> Result<Option<OutputEvent>, EngineError> {
        if self.done {
            return Ok(None);
        }
        if self.times.as_ref().is_some_and(|t| t.reached) {
            self.done = true;
            return Ok(Some(OutputEvent::Until));
        }
        if !self.ahead.is_empty() {
            return self.hand_out().map(Some);
        }
        loop {
            // Mark the counter seen, then look at the state, then read: a
            // change after this point wakes the wait below, and a job seen
            // as ended before the read has all of its output on disk.
            self.changes.borrow_and_update();
            let ended = self.job.ended_info();
            let file = Arc::clone(&self.file);
            let kept = Arc::clone(&self.kept);
            let (offset, chunk) = (self.offset, self.chunk);
            // Bytes in the page cache (the usual case: just written, or
            // read lately) are read right here; only a read that would wait
            // for the disk goes to the blocking pool. On a connection's
            // shard this costs a chunk no hand-off between threads at all
            // (1 GiB through one follower: 0.70 -> 0.64 s, 75 -> 62 ticks
            // of crew CPU). READ_AHEAD chunks a read halves the reads.
            let max = chunk * READ_AHEAD;
            let cached = if self.nowait {
                match read_chunk(&file, &kept, offset, max, true) {
                    Err(e) if e.kind() == io::ErrorKind::WouldBlock => None,
                    // A file system (or kernel) that cannot say: always
                    // wait, then; the blocking read reports a real error.
                    Err(e) if matches!(e.raw_os_error(), Some(libc::EOPNOTSUPP | libc::EINVAL)) => {
                        self.nowait = false;
                        None
                    }
                    r => Some(r),
                }
            } else {
                None
            };
            let read = match cached {
                Some(r) => r,
                None => tokio::task::spawn_blocking(move || read_chunk(&file, &kept, offset, max, false))
                    .await
                    .map_err(|e| EngineError::Shim(format!("output reader task: {e}")))?,
            }
            .ctx("read output", self.job.output_path())?;
            match read {
                Chunk::Dropped(len) => {
                    self.offset += len;
                    return Ok(Some(OutputEvent::Dropped { offset, len }));
                }
                Chunk::Data(bytes) => {
                    self.ahead = bytes;
                    return self.hand_out().map(Some);
                }
                Chunk::Nothing => {}
            }
            if let Some(info) = ended {
                self.done = true;
                return Ok(Some(OutputEvent::End(Box::new(info))));
            }
            // Everything stored was read: past `until`, nothing more can
            // belong.
            if self.past_until() {
                self.done = true;
                return Ok(Some(OutputEvent::Until));
            }
            let until = self.times.as_ref().and_then(|t| t.until);
            let wait_until = async {
                match until {
                    Some(u) => {
                        let left = u.saturating_sub(clock_ns(libc::CLOCK_BOOTTIME)) + 1;
                        tokio::time::sleep(std::time::Duration::from_nanos(left)).await;
                    }
                    None => std::future::pending().await,
                }
            };
            tokio::select! {
                changed = self.changes.changed() => if changed.is_err() {
                    // The job's entry is gone, which only happens once it
                    // ended; the loop sees that on its next turn.
                    self.changes = self.job.subscribe_changes();
                },
                () = wait_until => {}
            }
        }
    }
}

/// A reader's place in the job's time index.
#[derive(Debug)]
struct Times {
    path: std::path::PathBuf,
    /// Opened when first there: the shim makes it at the job's first write.
    index: Option<TimeIndex>,
    /// The next mark to look at, once found.
    next: Option<u64>,
    /// Where the last chunk whose marks were found ended: a chunk that
    /// starts there reads on from `next`; any other (after a drop, a new
    /// start) searches.
    done_to: Option<u64>,
    /// The last mark handed out: it covers the bytes up to the next one.
    last: Option<Mark>,
    /// The marks of the chunk last handed out.
    marks: Vec<Mark>,
    /// `CLOCK_BOOTTIME` past which output is not wanted.
    until: Option<u64>,
    /// A mark past `until` was met.
    reached: bool,
}

impl Times {
    fn index(&mut self) -> io::Result<Option<&TimeIndex>> {
        if self.index.is_none() {
            self.index = TimeIndex::open(&self.path)?;
        }
        Ok(self.index.as_ref())
    }

    /// The marks for stream bytes `from..end`: the one covering `from`
    /// first, then those within. Reads on from the last call's place when
    /// the reader went on from there; searches otherwise.
    fn marks_in(&mut self, from: u64, end: u64) -> io::Result<Vec<Mark>> {
        let last = self.last;
        let next = self.next;
        let goes_on = self.done_to == Some(from);
        let Some(index) = self.index()? else {
            return Ok(Vec::new());
        };
        let mut out = Vec::new();
        let mut i = match (next, last) {
            (Some(i), Some(m)) if m.offset <= from && goes_on => {
                out.push(m);
                i
            }
            _ => match index.covering(from)? {
                Some((i, m)) => {
                    out.push(m);
                    i + 1
                }
                None => index.kept()?.start,
            },
        };
        'read: loop {
            let batch = index.get_many(i, 128)?;
            if batch.is_empty() {
                break;
            }
            for m in batch {
                // A punched mark: the index moved on under us; what was
                // found stands.
                let Some(m) = m else { break 'read };
                if m.offset >= end {
                    break 'read;
                }
                if m.offset <= from {
                    // A later mark at or before `from` covers it instead.
                    out.clear();
                }
                out.push(m);
                i += 1;
            }
        }
        self.next = Some(i);
        self.last = out.last().copied();
        self.done_to = Some(end);
        Ok(out)
    }
}

enum Chunk {
    Data(Bytes),
    Dropped(u64),
    Nothing,
}

/// A read that found less than this share of a chunk is copied into a
/// buffer of its size: a follower's queue of small live writes must not
/// pin a chunk-sized allocation each.
const SHRINK_BELOW: usize = 4;

/// Reads up to `max` bytes at stream offset `offset`. With `nowait`, only
/// what the page cache holds: `WouldBlock` if that is nothing.
fn read_chunk(file: &File, kept: &KeptFrom, offset: u64, max: usize, nowait: bool) -> io::Result<Chunk> {
    let mut buf = BytesMut::with_capacity(max);
    let at = (HEADER + offset) as libc::off_t;
    let flags = if nowait { libc::RWF_NOWAIT } else { 0 };
    // SAFETY: preadv2(2) writes at most `max` bytes into the buffer's
    // spare capacity, and we only expose the bytes it reports written.
    let n = unsafe {
        let spare = buf.spare_capacity_mut();
        let iov = libc::iovec {
            iov_base: spare.as_mut_ptr().cast(),
            iov_len: max,
        };
        libc::preadv2(file.as_raw_fd(), &iov, 1, at, flags)
    };
    if n < 0 {
        return Err(io::Error::last_os_error());
    }
    let n = n as usize;
    // SAFETY: preadv2(2) initialised the first `n` bytes.
    unsafe { buf.set_len(n) };
    // After the read: see the module's comment.
    let first = kept.get();
    if first > offset {
        return Ok(Chunk::Dropped(first - offset));
    }
    if n == 0 {
        return Ok(Chunk::Nothing);
    }
    let bytes = if n < max / SHRINK_BELOW {
        Bytes::copy_from_slice(&buf)
    } else {
        buf.freeze()
    };
    Ok(Chunk::Data(bytes))
}

/// The offset where the last `n` lines begin, or the oldest kept byte.
fn tail_lines_offset(file: &File, size: u64, kept: u64, n: u64) -> io::Result<u64> {
    use std::os::unix::fs::FileExt as _;
    let floor = kept.min(size);
    if n == 0 {
        return Ok(size);
    }
    let mut pos = size;
    let mut newlines = 0;
    let mut buf = vec![0u8; 64 << 10];
    // A final newline ends the last line; it does not start a new one.
    let mut skip_final = true;
    while pos > floor {
        let len = (pos - floor).min(buf.len() as u64) as usize;
        let start = pos - len as u64;
        file.read_exact_at(&mut buf[..len], HEADER + start)?;

        for i in (0..len).rev() {
            if buf[i] == b'\n' {
                if skip_final && start + i as u64 == size - 1 {
                    continue;
                }
                newlines += 1;
                if newlines == n {
                    return Ok(start + i as u64 + 1);
                }
            }
        }
        skip_final = false;
        pos = start;
    }
    Ok(floor)
}

/// Checks that the filesystem under `dir` can drop the head of a file by
/// punching a hole (ext4, xfs, btrfs and tmpfs can).
pub(crate) fn probe_hole_punching(dir: &Path) -> Result<(), EngineError> {
    use std::os::unix::fs::FileExt as _;
    let tmp = tempfile_in(dir)?;
    let (file, path) = (&tmp.0, &tmp.1);
    file.write_all_at(&[1u8; 8192], 0).ctx("write", path)?;
    // SAFETY: fallocate(2) on our own file.
    let r = unsafe {
        libc::fallocate(
            file.as_raw_fd(),
            libc::FALLOC_FL_PUNCH_HOLE | libc::FALLOC_FL_KEEP_SIZE,
            0,
            4096,
        )
    };
    let _ = path;
    if r == 0 {
        Ok(())
    } else {
        Err(EngineError::Unsupported(format!(
            "the state directory {} is on a filesystem that cannot punch holes (needed to bound \
             job output); use ext4, xfs, btrfs or tmpfs",
            dir.display()
        )))
    }
}

/// A file that removes itself.
struct TempFile(File, std::path::PathBuf);

impl Drop for TempFile {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.1);
    }
}

fn tempfile_in(dir: &Path) -> Result<TempFile, EngineError> {
    let path = dir.join(format!(".probe-{}", std::process::id()));
    let file = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(true)
        .open(&path)
        .ctx("create", &path)?;
    Ok(TempFile(file, path))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::FileExt as _;
    use tasker_shim::output::{MAGIC, create_output};

    /// An output file holding `data` as its stream.
    fn output_with(data: &[u8]) -> (tempfile::TempDir, File) {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("f.out");
        let f = create_output(&p).unwrap();
        f.write_all_at(data, HEADER).unwrap();
        (dir, f)
    }

    #[test]
    fn tail_lines_counts_back_from_the_end() {
        let (_d, f) = output_with(b"a\nb\nc\n");
        assert_eq!(tail_lines_offset(&f, 6, 0, 1).unwrap(), 4);
        assert_eq!(tail_lines_offset(&f, 6, 0, 2).unwrap(), 2);
        assert_eq!(tail_lines_offset(&f, 6, 0, 5).unwrap(), 0);
        assert_eq!(tail_lines_offset(&f, 6, 0, 0).unwrap(), 6);
        assert_eq!(
            tail_lines_offset(&f, 6, 3, 5).unwrap(),
            3,
            "never before the oldest kept byte"
        );
        let (_d, f) = output_with(b"a\nb\npartial");
        assert_eq!(tail_lines_offset(&f, 11, 0, 1).unwrap(), 4);
        assert_eq!(tail_lines_offset(&f, 11, 0, 2).unwrap(), 2);
    }

    #[test]
    fn bytes_below_the_kept_offset_read_as_dropped() {
        let (_d, f) = output_with(&[7u8; 3 * 4096]);
        let mut magic = [0u8; 8];
        f.read_exact_at(&mut magic, 0).unwrap();
        assert_eq!(&magic, MAGIC);
        let writer = KeptFrom::map(&f, true).unwrap();
        let reader = KeptFrom::map(&f, false).unwrap();
        assert_eq!(reader.get(), 0, "a new file keeps everything");
        writer.set(8192);
        assert_eq!(reader.get(), 8192);
        // Blocking, and from the page cache only (just written, so there).
        for nowait in [false, true] {
            match read_chunk(&f, &reader, 100, 1 << 20, nowait).unwrap() {
                Chunk::Dropped(n) => assert_eq!(n, 8192 - 100),
                _ => panic!("expected a drop"),
            }
            match read_chunk(&f, &reader, 8192, 1 << 20, nowait).unwrap() {
                Chunk::Data(b) => assert_eq!(&b[..], &[7u8; 4096][..]),
                _ => panic!("expected data"),
            }
            assert!(matches!(
                read_chunk(&f, &reader, 3 * 4096, 10, nowait).unwrap(),
                Chunk::Nothing
            ));
        }
        // The header is not part of the stream.
        f.read_exact_at(&mut magic, 0).unwrap();
        assert_eq!(&magic, MAGIC);
    }
}
