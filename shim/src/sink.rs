//! The writing side of a job's output file, in the shim.
//!
//! Past the header page, the file's byte offsets are the stream's offsets
//! (see `output.rs`). It is written once, by the shim, at the end; when more
//! than the limit is kept, the oldest whole units are punched out
//! (`FALLOC_FL_PUNCH_HOLE`), which frees their blocks while every offset
//! stays where it was. The oldest kept offset is published in the header
//! *before* each punch (see `output.rs` for why readers can then trust what
//! they read). After every write the shim adds one to the job's eventfd,
//! which is how the crew learns of new output without polling.
//!
//! Output the file cannot take (disk full) is drained and counted as lost,
//! so the job never blocks on it; the stream stays contiguous and the job's
//! final record says how much was lost.

use std::fs::File;
use std::io;
use std::os::fd::{AsFd as _, AsRawFd as _, BorrowedFd, OwnedFd};
use std::os::unix::fs::FileExt as _;

use crate::output::{HEADER, KeptFrom};
use crate::timeindex::{IndexWriter, Stream};

/// What one read from the job brought.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Flow {
    /// Bytes were moved to the file (or discarded, if it could not take them).
    Moved,
    /// Nothing to read right now.
    Again,
    /// Every writer is gone.
    Eof,
}

/// How much one splice may move; the pipe holds less, so this means "all".
const SPLICE_MAX: usize = 1 << 20;
const TTY_BUF: usize = 64 << 10;

#[derive(Debug)]
pub(crate) struct Sink {
    file: File,
    /// The next offset to write: the stream's length so far.
    end: u64,
    /// The oldest offset still kept, as last published.
    start: u64,
    kept: KeptFrom,
    limit: u64,
    unit: u64,
    notify: OwnedFd,
    /// The first error that made output unstorable; later output is still
    /// tried.
    error: Option<String>,
    /// Bytes the job wrote that could not be stored.
    lost: u64,
    devnull: Option<File>,
    /// For tty jobs, whose output cannot be spliced; allocated on first use.
    buf: Vec<u8>,
    /// When, and from which stream, the bytes came.
    index: IndexWriter,
    /// Whether the index's failure was told.
    index_failure_told: bool,
}

impl Sink {
    pub(crate) fn new(
        file: File,
        notify: OwnedFd,
        kept: KeptFrom,
        limit: u64,
        unit: u64,
        index: IndexWriter,
    ) -> Self {
        Self {
            file,
            end: 0,
            start: 0,
            kept,
            limit: limit.max(unit),
            unit: unit.max(4096),
            notify,
            error: None,
            lost: 0,
            devnull: None,
            buf: Vec::new(),
            index,
            index_failure_told: false,
        }
    }

    /// Why the time index stopped being kept, once.
    pub(crate) fn take_index_failure(&mut self) -> Option<String> {
        if self.index_failure_told {
            return None;
        }
        let failed = self.index.failed()?.to_owned();
        self.index_failure_told = true;
        Some(failed)
    }

    /// The eventfd rung after every write (handed to a crew that comes).
    pub(crate) fn notify_fd(&self) -> BorrowedFd<'_> {
        self.notify.as_fd()
    }

    pub(crate) fn end(&self) -> u64 {
        self.end
    }

    /// What went wrong storing output, with how much was lost.
    pub(crate) fn error(&self) -> Option<String> {
        self.error
            .as_ref()
            .map(|e| format!("{e}; {} bytes of output were lost", self.lost))
    }

    /// Moves what the pipe holds into the file with splice(2): no copy
    /// through the shim's memory. The bytes' mark goes first (see
    /// `timeindex.rs`).
    pub(crate) fn drain_pipe(&mut self, pipe: BorrowedFd<'_>, stream: Stream) -> Flow {
        self.index.note(self.end, stream);
        let mut off = (HEADER + self.end) as libc::loff_t;
        // SAFETY: splice(2) between two fds we own, with a pointer to a
        // local offset.
        let n = unsafe {
            libc::splice(
                pipe.as_raw_fd(),
                std::ptr::null_mut(),
                self.file.as_raw_fd(),
                &mut off,
                SPLICE_MAX,
                libc::SPLICE_F_NONBLOCK | libc::SPLICE_F_MOVE,
            )
        };
        match n {
            0 => Flow::Eof,
            n if n > 0 => {
                self.committed(n as u64);
                Flow::Moved
            }
            _ => {
                let err = io::Error::last_os_error();
                match err.raw_os_error() {
                    Some(libc::EAGAIN | libc::EINTR) => Flow::Again,
                    _ => self.discard_pipe(pipe, &err),
                }
            }
        }
    }

    /// The file refused the bytes (disk full, ...): drain them anyway so the
    /// job never blocks on its output, and count them lost.
    fn discard_pipe(&mut self, pipe: BorrowedFd<'_>, err: &io::Error) -> Flow {
        self.note_error(err);
        let devnull = match self.devnull() {
            Ok(f) => f.as_raw_fd(),
            Err(_) => return Flow::Eof,
        };
        // SAFETY: splice(2) between fds we own.
        let n = unsafe {
            libc::splice(
                pipe.as_raw_fd(),
                std::ptr::null_mut(),
                devnull,
                std::ptr::null_mut(),
                SPLICE_MAX,
                libc::SPLICE_F_NONBLOCK,
            )
        };
        match n {
            0 => Flow::Eof,
            n if n > 0 => {
                self.lost += n as u64;
                Flow::Moved
            }
            _ => Flow::Again,
        }
    }

    /// Reads a tty master and writes what it gave.
    pub(crate) fn drain_tty(&mut self, master: BorrowedFd<'_>) -> Flow {
        if self.buf.is_empty() {
            self.buf = vec![0; TTY_BUF];
        }
        // SAFETY: read(2) into our own buffer, within its length.
        let n = unsafe { libc::read(master.as_raw_fd(), self.buf.as_mut_ptr().cast(), self.buf.len()) };
        if n == 0 {
            return Flow::Eof;
        }
        if n < 0 {
            let err = io::Error::last_os_error();
            return match err.raw_os_error() {
                Some(libc::EAGAIN | libc::EINTR) => Flow::Again,
                // EIO: every slave fd is closed.
                _ => Flow::Eof,
            };
        }
        let n = n as usize;
        self.index.note(self.end, Stream::Out);
        match self.file.write_all_at(&self.buf[..n], HEADER + self.end) {
            Ok(()) => self.committed(n as u64),
            Err(e) => {
                self.note_error(&e);
                self.lost += n as u64;
            }
        }
        Flow::Moved
    }

    fn committed(&mut self, n: u64) {
        self.end += n;
        self.ring();
        self.enforce_limit();
    }

    /// Tells the crew that the stream grew.
    fn ring(&self) {
        let one = 1u64.to_ne_bytes();
        // SAFETY: write(2) of 8 bytes to our eventfd. It can only fail if the
        // counter would overflow, which a reader draining it prevents.
        unsafe {
            libc::write(self.notify.as_raw_fd(), one.as_ptr().cast(), one.len());
        }
    }

    fn enforce_limit(&mut self) {
        if self.end - self.start <= self.limit {
            return;
        }
        let target = (self.end - self.limit).div_ceil(self.unit) * self.unit;
        if target <= self.start {
            return;
        }
        // Published first: a reader that then reads a punched byte is sure
        // to see that it was dropped.
        self.kept.set(target);
        // SAFETY: fallocate(2) on our own file.
        let r = unsafe {
            libc::fallocate(
                self.file.as_raw_fd(),
                libc::FALLOC_FL_PUNCH_HOLE | libc::FALLOC_FL_KEEP_SIZE,
                (HEADER + self.start) as libc::off_t,
                (target - self.start) as libc::off_t,
            )
        };
        // Dropped either way: if the punch failed the bytes stay on disk
        // until the file goes, but the stream has moved on.
        self.start = target;
        self.index.dropped_below(target);
        if r != 0 {
            let err = io::Error::last_os_error();
            self.note_error(&err);
        }
    }

    fn note_error(&mut self, err: &io::Error) {
        if self.error.is_none() {
            self.error = Some(format!("output could not be stored: {err}"));
        }
    }

    fn devnull(&mut self) -> io::Result<&File> {
        if self.devnull.is_none() {
            self.devnull = Some(std::fs::OpenOptions::new().write(true).open("/dev/null")?);
        }
        Ok(self.devnull.as_ref().expect("just set"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn eventfd() -> OwnedFd {
        nix::sys::eventfd::EventFd::from_flags(nix::sys::eventfd::EfdFlags::EFD_CLOEXEC)
            .unwrap()
            .into()
    }

    fn pipe_with(data: &[u8]) -> (OwnedFd, OwnedFd) {
        let (r, w) =
            nix::unistd::pipe2(nix::fcntl::OFlag::O_CLOEXEC | nix::fcntl::OFlag::O_NONBLOCK).unwrap();
        nix::unistd::write(&w, data).unwrap();
        (r, w)
    }

    #[test]
    fn keeps_at_most_the_limit_by_punching_whole_units() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("job.out");
        let file = crate::output::create_output(&path).unwrap();
        let reader = KeptFrom::map(&file, false).unwrap();
        let kept = KeptFrom::map(&file, true).unwrap();
        let index = crate::timeindex::IndexWriter::new(Box::new(tempfile::tempfile), 1 << 20);
        let mut sink = Sink::new(file, eventfd(), kept, 16 << 10, 4 << 10, index);
        for round in 0..10u8 {
            let (r, w) = pipe_with(&[round; 5000]);
            drop(w);
            assert_eq!(sink.drain_pipe(r.as_fd(), Stream::Out), Flow::Moved);
            assert_eq!(sink.drain_pipe(r.as_fd(), Stream::Out), Flow::Eof);
        }
        assert_eq!(sink.end(), 50_000);
        assert!(sink.end() - sink.start <= 16 << 10);
        assert_eq!(sink.start % (4 << 10), 0);
        assert_eq!(reader.get(), sink.start, "the kept offset is published");
        // The kept bytes are intact: offset 49_999 was written by round 9.
        let f = File::open(&path).unwrap();
        let mut b = [0u8; 1];
        f.read_exact_at(&mut b, HEADER + 49_999).unwrap();
        assert_eq!(b[0], 9);
        // And the punched ones are gone from the disk, the header kept.
        f.read_exact_at(&mut b, HEADER).unwrap();
        assert_eq!(b[0], 0);
        let mut magic = [0u8; 8];
        f.read_exact_at(&mut magic, 0).unwrap();
        assert_eq!(&magic, crate::output::MAGIC);

        assert!(sink.error().is_none());
    }
}
