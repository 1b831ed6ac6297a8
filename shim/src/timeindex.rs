//! A job's time index: when each part of its output was read, and from
//! which stream. Shared by its one writer (the shim) and its readers (the
//! crew).
//!
//! The index is a file beside the output, `jobs/<id>.idx`, made by the shim
//! when the job first writes (so a start still creates one file). It is an
//! array of fixed-size [`Mark`]s, [`MARK_SIZE`] bytes each, in stream order:
//! a mark says that the bytes from its stream offset on, up to the next
//! mark's, came from its stream at its time. The shim writes a mark
//! *before* it moves the bytes it stands for, so a reader that has read a
//! byte can always find the mark that covers it. Marks may share an offset
//! (nothing came between them); the later one covers.
//!
//! A new mark is written when the stream changes or at least [`GRAIN_NS`]
//! after the last one; bytes within a grain share its time. Each mark keeps
//! two clocks: the wall clock (what people read) and `CLOCK_BOOTTIME` (which
//! no one can set), so a clock set back never reorders the index: searches
//! by time go by the boot clock, and show the wall clock.
//!
//! Bounded like the output: the shim punches out whole pages of marks once
//! the output they cover is dropped, and the oldest pages when the index
//! passes its own limit ([`index_limit`]). A punched mark reads as zeros,
//! whose stream (0) is no stream: readers take it as gone. Punches only
//! ever remove a prefix, so the marks kept are one run, found by binary
//! search.

use std::fs::File;
use std::io;
use std::os::unix::fs::FileExt as _;
use std::path::Path;

/// The bytes of one mark on disk.
pub const MARK_SIZE: u64 = 32;
/// Marks in one page: punches free whole pages.
const PER_PAGE: u64 = 4096 / MARK_SIZE;
/// Bytes of one stream within this long of their mark share its time.
pub const GRAIN_NS: u64 = 1_000_000;

/// Where a job's bytes came from.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Stream {
    /// stdout, or a tty job's terminal.
    Out,
    Err,
}

impl Stream {
    fn code(self) -> u32 {
        match self {
            Self::Out => 1,
            Self::Err => 2,
        }
    }

    fn from_code(code: u32) -> Option<Self> {
        match code {
            1 => Some(Self::Out),
            2 => Some(Self::Err),
            _ => None,
        }
    }
}

/// The bytes from `offset` on came from `stream` at this time.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Mark {
    pub offset: u64,
    /// Wall clock, nanoseconds since the Unix epoch.
    pub wall_ns: i64,
    /// `CLOCK_BOOTTIME`, nanoseconds.
    pub boot_ns: u64,
    pub stream: Stream,
}

impl Mark {
    /// A mark for bytes at `offset` read now.
    #[must_use]
    pub fn now(offset: u64, stream: Stream) -> Self {
        Self {
            offset,
            wall_ns: clock_ns(libc::CLOCK_REALTIME) as i64,
            boot_ns: clock_ns(libc::CLOCK_BOOTTIME),
            stream,
        }
    }

    fn encode(&self) -> [u8; MARK_SIZE as usize] {
        let mut b = [0u8; MARK_SIZE as usize];
        b[0..8].copy_from_slice(&self.offset.to_le_bytes());
        b[8..16].copy_from_slice(&self.wall_ns.to_le_bytes());
        b[16..24].copy_from_slice(&self.boot_ns.to_le_bytes());
        b[24..28].copy_from_slice(&self.stream.code().to_le_bytes());
        b
    }

    /// `None` for a punched (zero) mark.
    fn decode(b: &[u8]) -> Option<Self> {
        let u64_at = |i: usize| u64::from_le_bytes(b[i..i + 8].try_into().expect("8 bytes"));
        let stream = Stream::from_code(u32::from_le_bytes(b[24..28].try_into().expect("4 bytes")))?;
        Some(Self {
            offset: u64_at(0),
            wall_ns: u64_at(8) as i64,
            boot_ns: u64_at(16),
            stream,
        })
    }
}

/// A clock's reading in nanoseconds.
#[must_use]
pub fn clock_ns(clock: libc::clockid_t) -> u64 {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: clock_gettime(2) into a local; both clocks always exist.
    unsafe { libc::clock_gettime(clock, &mut ts) };
    (ts.tv_sec as u64).saturating_mul(1_000_000_000) + ts.tv_nsec as u64
}

/// The most bytes of marks kept for an output limit: half of it, between
/// 256 KiB and 256 MiB. At one mark per millisecond at most, 32 MiB (the
/// default 64 MiB output's) holds over four days of a job that writes
/// every second, and nine minutes of one that writes without pause.
#[must_use]
pub fn index_limit(output_limit: u64) -> u64 {
    (output_limit / 2).clamp(256 << 10, 256 << 20) & !4095
}

/// The name of a job's index in the jobs directory.
#[must_use]
pub fn file_name(id: &str) -> String {
    format!("{id}.idx")
}

/// How the shim makes the index file, on the first mark.
pub type Create = Box<dyn FnOnce() -> io::Result<File> + Send>;

/// The shim's side: appends marks, punches the ones no longer needed.
pub struct IndexWriter {
    /// How to make the file, on the first mark.
    create: Option<Create>,
    file: Option<File>,
    /// Marks written so far (the next one's number).
    count: u64,
    /// The first mark not punched.
    first: u64,
    last: Option<Mark>,
    /// The offset of the first mark of each page from `first`'s on.
    pages: std::collections::VecDeque<u64>,
    limit_pages: u64,
    /// Set when a write failed: the index is emptied and no more is kept,
    /// since marks missing in the middle would give bytes wrong times.
    failed: Option<String>,
}

impl std::fmt::Debug for IndexWriter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("IndexWriter")
            .field("count", &self.count)
            .field("first", &self.first)
            .field("failed", &self.failed)
            .finish_non_exhaustive()
    }
}

impl IndexWriter {
    pub fn new(create: Create, limit: u64) -> Self {
        Self {
            create: Some(create),
            file: None,
            count: 0,
            first: 0,
            last: None,
            pages: std::collections::VecDeque::new(),
            limit_pages: (limit / 4096).max(2),
            failed: None,
        }
    }

    /// Why the index stopped being kept, if it did.
    pub fn failed(&self) -> Option<&str> {
        self.failed.as_deref()
    }

    /// Marks bytes about to be stored at `offset` from `stream`, unless the
    /// last mark covers them (same stream, within a grain).
    pub fn note(&mut self, offset: u64, stream: Stream) {
        if self.failed.is_some() {
            return;
        }
        let mark = Mark::now(offset, stream);
        if let Some(last) = &self.last
            && last.stream == stream
            && mark.boot_ns.saturating_sub(last.boot_ns) < GRAIN_NS
        {
            return;
        }
        if let Err(e) = self.append(&mark) {
            self.fail(&e);
            return;
        }
        self.last = Some(mark);
    }

    fn append(&mut self, mark: &Mark) -> io::Result<()> {
        if self.file.is_none() {
            let create = self
                .create
                .take()
                .ok_or_else(|| io::Error::other("no index file"))?;
            self.file = Some(create()?);
        }
        let file = self.file.as_ref().expect("just made");
        file.write_all_at(&mark.encode(), self.count * MARK_SIZE)?;
        if self.count.is_multiple_of(PER_PAGE) {
            self.pages.push_back(mark.offset);
        }
        self.count += 1;
        if self.pages.len() as u64 > self.limit_pages {
            self.punch_pages(1);
        }
        Ok(())
    }

    /// The output below `kept` was dropped: punches the pages of marks that
    /// only covered it (the mark covering `kept` itself stays).
    pub fn dropped_below(&mut self, kept: u64) {
        // Page i can go when page i+1 starts at or below `kept`: the mark
        // covering `kept` is then on page i+1 or later.
        let mut n = 0;
        while self.pages.get(n + 1).is_some_and(|&next| next <= kept) {
            n += 1;
        }
        if n > 0 {
            self.punch_pages(n);
        }
    }

    fn punch_pages(&mut self, n: usize) {
        let Some(file) = &self.file else { return };
        use std::os::fd::AsRawFd as _;
        let from = self.first * MARK_SIZE;
        let len = n as u64 * PER_PAGE * MARK_SIZE;
        // SAFETY: fallocate(2) on our own file.
        let r = unsafe {
            libc::fallocate(
                file.as_raw_fd(),
                libc::FALLOC_FL_PUNCH_HOLE | libc::FALLOC_FL_KEEP_SIZE,
                from as libc::off_t,
                len as libc::off_t,
            )
        };
        if r != 0 {
            self.fail(&io::Error::last_os_error());
            return;
        }
        self.pages.drain(..n);
        self.first += n as u64 * PER_PAGE;
    }

    /// Empties the index and keeps no more: readers then find no times
    /// rather than wrong ones.
    fn fail(&mut self, err: &io::Error) {
        if let Some(file) = &self.file {
            let _ = file.set_len(0);
        }
        self.failed = Some(format!("the output's time index could not be kept: {err}"));
        self.pages.clear();
    }
}

/// The readers' side: a job's index, read-only.
#[derive(Debug)]
pub struct TimeIndex {
    file: File,
}

impl TimeIndex {
    /// The index at `path`; `None` if the job has none (it wrote nothing,
    /// or its shim kept no times).
    ///
    /// # Errors
    ///
    /// open(2)'s, other than a missing file.
    pub fn open(path: &Path) -> io::Result<Option<Self>> {
        match File::open(path) {
            Ok(file) => Ok(Some(Self { file })),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// Marks written so far, punched ones included.
    ///
    /// # Errors
    ///
    /// fstat(2)'s.
    pub fn count(&self) -> io::Result<u64> {
        Ok(self.file.metadata()?.len() / MARK_SIZE)
    }

    /// Mark `i`; `None` if it was punched out (or is past the end).
    ///
    /// # Errors
    ///
    /// pread(2)'s.
    pub fn get(&self, i: u64) -> io::Result<Option<Mark>> {
        let mut b = [0u8; MARK_SIZE as usize];
        match self.file.read_exact_at(&mut b, i * MARK_SIZE) {
            Ok(()) => Ok(Mark::decode(&b)),
            Err(e) if e.kind() == io::ErrorKind::UnexpectedEof => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// Reads marks `from..from + n` (fewer at the end), `None` for punched
    /// ones.
    ///
    /// # Errors
    ///
    /// pread(2)'s.
    pub fn get_many(&self, from: u64, n: u64) -> io::Result<Vec<Option<Mark>>> {
        let mut buf = vec![0u8; (n * MARK_SIZE) as usize];
        let mut got = 0;
        while got < buf.len() {
            let r = self
                .file
                .read_at(&mut buf[got..], from * MARK_SIZE + got as u64)?;
            if r == 0 {
                break;
            }
            got += r;
        }
        Ok(buf[..got - got % MARK_SIZE as usize]
            .chunks_exact(MARK_SIZE as usize)
            .map(Mark::decode)
            .collect())
    }

    /// The kept marks: `first..len`.
    ///
    /// # Errors
    ///
    /// As [`get`](Self::get).
    pub fn kept(&self) -> io::Result<std::ops::Range<u64>> {
        let len = self.count()?;
        // Punched marks are a prefix: the first kept one by bisection.
        let (mut lo, mut hi) = (0, len);
        while lo < hi {
            let mid = lo + (hi - lo) / 2;
            if self.get(mid)?.is_some() {
                hi = mid;
            } else {
                lo = mid + 1;
            }
        }
        Ok(lo..len)
    }

    /// The first kept mark for which `past` holds, given that it holds for
    /// every mark after one it holds for (offsets and boot times only
    /// grow). `None`: it holds for none.
    ///
    /// # Errors
    ///
    /// As [`get`](Self::get).
    pub fn first_where(&self, past: impl Fn(&Mark) -> bool) -> io::Result<Option<(u64, Mark)>> {
        let kept = self.kept()?;
        let (mut lo, mut hi) = (kept.start, kept.end);
        while lo < hi {
            let mid = lo + (hi - lo) / 2;
            // A mark punched meanwhile counts as before everything.
            match self.get(mid)? {
                Some(m) if past(&m) => hi = mid,
                _ => lo = mid + 1,
            }
        }
        Ok(if lo < kept.end {
            self.get(lo)?.map(|m| (lo, m))
        } else {
            None
        })
    }

    /// The mark covering stream offset `offset`: the last one at or before
    /// it. `None` when no kept mark is (its mark was dropped, or the index
    /// starts later).
    ///
    /// # Errors
    ///
    /// As [`get`](Self::get).
    pub fn covering(&self, offset: u64) -> io::Result<Option<(u64, Mark)>> {
        let kept = self.kept()?;
        let after = self
            .first_where(|m| m.offset > offset)?
            .map_or(kept.end, |(i, _)| i);
        if after <= kept.start {
            return Ok(None);
        }
        Ok(self.get(after - 1)?.map(|m| (after - 1, m)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn writer(dir: &Path, limit: u64) -> IndexWriter {
        let path = dir.join("j.idx");
        IndexWriter::new(
            Box::new(move || {
                std::fs::OpenOptions::new()
                    .write(true)
                    .create_new(true)
                    .open(path)
            }),
            limit,
        )
    }

    #[test]
    fn marks_come_per_stream_change_and_per_grain() {
        let dir = tempfile::tempdir().unwrap();
        let mut w = writer(dir.path(), 1 << 20);
        assert!(
            TimeIndex::open(&dir.path().join("j.idx")).unwrap().is_none(),
            "no file before the first mark"
        );
        w.note(0, Stream::Out);
        w.note(10, Stream::Out);
        w.note(20, Stream::Err);
        w.note(30, Stream::Out);
        std::thread::sleep(std::time::Duration::from_millis(2));
        w.note(40, Stream::Out);
        let idx = TimeIndex::open(&dir.path().join("j.idx")).unwrap().unwrap();
        let marks: Vec<Mark> = idx.get_many(0, 10).unwrap().into_iter().flatten().collect();
        let offsets: Vec<(u64, Stream)> = marks.iter().map(|m| (m.offset, m.stream)).collect();
        assert_eq!(
            offsets,
            [
                (0, Stream::Out),
                (20, Stream::Err),
                (30, Stream::Out),
                (40, Stream::Out)
            ],
            "offset 10 shares offset 0's grain"
        );
        assert!(marks.windows(2).all(|w| w[0].boot_ns <= w[1].boot_ns));
        let now = clock_ns(libc::CLOCK_REALTIME) as i64;
        assert!(
            (now - marks[0].wall_ns).abs() < 10_000_000_000,
            "a wall clock time"
        );
        assert_eq!(idx.covering(25).unwrap().unwrap().1.stream, Stream::Err);
        assert_eq!(idx.covering(39).unwrap().unwrap().1.offset, 30);
        assert_eq!(idx.covering(1000).unwrap().unwrap().1.offset, 40);
        let (i, m) = idx
            .first_where(|m| m.boot_ns > marks[2].boot_ns)
            .unwrap()
            .unwrap();
        assert_eq!((i, m.offset), (3, 40));
    }

    #[test]
    fn pages_go_with_the_output_they_covered_and_past_the_limit() {
        let dir = tempfile::tempdir().unwrap();
        let mut w = writer(dir.path(), 4 * 4096);
        // Alternating streams: a mark per call, at offsets 0, 100, 200...
        for i in 0..(3 * PER_PAGE) {
            w.note(i * 100, if i % 2 == 0 { Stream::Out } else { Stream::Err });
        }
        let idx = TimeIndex::open(&dir.path().join("j.idx")).unwrap().unwrap();
        assert_eq!(idx.kept().unwrap(), 0..3 * PER_PAGE);
        // Output below page 1's second mark dropped: page 0 goes, page 1
        // (which covers the kept offset) stays.
        w.dropped_below(PER_PAGE * 100 + 150);
        assert_eq!(idx.kept().unwrap(), PER_PAGE..3 * PER_PAGE);
        assert_eq!(idx.get(0).unwrap(), None, "punched reads as gone");
        assert_eq!(idx.covering(50).unwrap(), None, "its bytes have no time now");
        assert_eq!(
            idx.covering(PER_PAGE * 100 + 150).unwrap().unwrap().1.offset,
            PER_PAGE * 100 + 100
        );
        // Past its own limit (4 pages) the index drops its oldest page.
        for i in (3 * PER_PAGE)..(6 * PER_PAGE) {
            w.note(i * 100, if i % 2 == 0 { Stream::Out } else { Stream::Err });
        }
        let kept = idx.kept().unwrap();
        assert_eq!(kept.end - kept.start, 4 * PER_PAGE);
        use std::os::unix::fs::MetadataExt as _;
        let on_disk = std::fs::metadata(dir.path().join("j.idx")).unwrap().blocks() * 512;
        assert!(on_disk <= 5 * 4096, "punched pages free their blocks: {on_disk}");
    }

    #[test]
    fn a_failed_write_leaves_no_index_rather_than_a_wrong_one() {
        let dir = tempfile::tempdir().unwrap();
        let mut w = IndexWriter::new(Box::new(|| Err(io::Error::other("disk full"))), 1 << 20);
        w.note(0, Stream::Out);
        assert!(w.failed().unwrap().contains("disk full"));
        w.note(10, Stream::Err);
        assert!(TimeIndex::open(&dir.path().join("j.idx")).unwrap().is_none());
    }
}
