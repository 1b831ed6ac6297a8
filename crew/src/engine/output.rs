//! Reading a job's output: from the start, from a byte offset, or from the
//! last N bytes or lines, then following live, each reader at its own pace.
//!
//! The output file is written once, by the job's shim (`shim/sink.rs`); byte
//! offsets in the file are offsets in the stream. A reader holds only its
//! offset and an fd: a reader that stops reading costs nothing that grows.
//! Readers wait on the job's change counter, which the crew bumps when the
//! shim signals new bytes (eventfd) and when the job's state changes, so a
//! follower is woken by notification, never by a timer.
//!
//! When the shim punches out the oldest bytes to keep the file under its
//! limit, those offsets become a hole. A reader finds the oldest kept byte
//! with `SEEK_DATA`, checked *after* each read: the shim punches only after
//! the bytes are gone from the front, so if the byte at the read offset is
//! still data after the read, everything the read returned was real.

use std::fs::File;
use std::io;
use std::os::fd::AsRawFd as _;
use std::path::Path;
use std::sync::Arc;

use bytes::{Bytes, BytesMut};
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
}

/// The default size of one read.
pub const DEFAULT_CHUNK: usize = 128 << 10;

/// A cursor over one job's output.
#[derive(Debug)]
pub struct OutputReader {
    job: Arc<JobEntry>,
    file: Arc<File>,
    offset: u64,
    changes: watch::Receiver<u64>,
    chunk: usize,
    done: bool,
}

impl OutputReader {
    pub(crate) fn open(job: Arc<JobEntry>, from: ReadFrom) -> Result<Self, EngineError> {
        let path = job.output_path();
        let file = File::open(path).ctx("open output", path)?;
        let size = file.metadata().ctx("stat output", path)?.len();
        let offset = match from {
            ReadFrom::Start => 0,
            ReadFrom::Offset(o) => o,
            ReadFrom::TailBytes(n) => size.saturating_sub(n),
            ReadFrom::TailLines(n) => tail_lines_offset(&file, size, n).ctx("read output", path)?,
        };
        let changes = job.subscribe_changes();
        Ok(Self {
            job,
            file: Arc::new(file),
            offset,
            changes,
            chunk: DEFAULT_CHUNK,
            done: false,
        })
    }

    /// Sets the largest chunk one [`next`](Self::next) returns.
    pub fn with_chunk_size(mut self, bytes: usize) -> Self {
        self.chunk = bytes.clamp(1, 16 << 20);
        self
    }

    /// The offset of the next byte this reader will return.
    pub fn offset(&self) -> u64 {
        self.offset
    }

    /// The next event; waits for output while the job runs. `None` after
    /// [`OutputEvent::End`].
    pub async fn next(&mut self) -> Result<Option<OutputEvent>, EngineError> {
        if self.done {
            return Ok(None);
        }
        loop {
            // Mark the counter seen, then look at the state, then read: a
            // change after this point wakes the wait below, and a job seen
            // as ended before the read has all of its output on disk.
            self.changes.borrow_and_update();
            let ended = self.job.ended_info();
            let file = Arc::clone(&self.file);
            let (offset, chunk) = (self.offset, self.chunk);
            let read = tokio::task::spawn_blocking(move || read_chunk(&file, offset, chunk))
                .await
                .map_err(|e| EngineError::Shim(format!("output reader task: {e}")))?
                .ctx("read output", self.job.output_path())?;
            match read {
                Chunk::Dropped(len) => {
                    self.offset += len;
                    return Ok(Some(OutputEvent::Dropped { offset, len }));
                }
                Chunk::Data(bytes) => {
                    self.offset += bytes.len() as u64;
                    return Ok(Some(OutputEvent::Data { offset, bytes }));
                }
                Chunk::Nothing => {}
            }
            if let Some(info) = ended {
                self.done = true;
                return Ok(Some(OutputEvent::End(Box::new(info))));
            }
            if self.changes.changed().await.is_err() {
                // The job's entry is gone, which only happens once it ended;
                // the loop sees that on its next turn.
                self.changes = self.job.subscribe_changes();
            }
        }
    }
}

enum Chunk {
    Data(Bytes),
    Dropped(u64),
    Nothing,
}

fn read_chunk(file: &File, offset: u64, max: usize) -> io::Result<Chunk> {
    let mut buf = BytesMut::with_capacity(max);
    // SAFETY: pread(2) writes at most `max` bytes into the buffer's spare
    // capacity, and we only expose the bytes it reports written.
    let n = unsafe {
        let spare = buf.spare_capacity_mut();
        libc::pread(
            file.as_raw_fd(),
            spare.as_mut_ptr().cast(),
            max,
            offset as libc::off_t,
        )
    };
    if n < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: pread(2) initialised the first `n` bytes.
    unsafe { buf.set_len(n as usize) };
    let first = first_kept(file, offset)?;
    if first > offset {
        return Ok(Chunk::Dropped(first - offset));
    }
    if n == 0 {
        return Ok(Chunk::Nothing);
    }
    Ok(Chunk::Data(buf.freeze()))
}

/// The first offset at or after `from` that holds data: `from` itself unless
/// it falls in a punched-out hole.
pub(crate) fn first_kept(file: &File, from: u64) -> io::Result<u64> {
    // SAFETY: lseek(2) on our own fd; we only ever use pread, so moving the
    // file position is harmless.
    let r = unsafe { libc::lseek(file.as_raw_fd(), from as libc::off_t, libc::SEEK_DATA) };
    if r >= 0 {
        return Ok(r as u64);
    }
    let err = io::Error::last_os_error();
    if err.raw_os_error() == Some(libc::ENXIO) {
        // No data at or after `from`: a hole up to the end, or the end.
        let size = file.metadata()?.len();
        return Ok(size.max(from));
    }
    Err(err)
}

/// The offset where the last `n` lines begin, or the oldest kept byte.
fn tail_lines_offset(file: &File, size: u64, n: u64) -> io::Result<u64> {
    use std::os::unix::fs::FileExt as _;
    let floor = first_kept(file, 0)?.min(size);
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
        file.read_exact_at(&mut buf[..len], start)?;
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

/// Checks that the filesystem under `dir` can drop the head of a file: hole
/// punching plus `SEEK_DATA` (ext4, xfs, btrfs and tmpfs can).
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
    let ok = r == 0 && first_kept(file, 0).ctx("seek", path)? == 4096;
    if ok {
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

    fn file_with(data: &[u8]) -> (tempfile::TempDir, File) {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("f");
        std::fs::write(&p, data).unwrap();
        let f = File::open(&p).unwrap();
        (dir, f)
    }

    #[test]
    fn tail_lines_counts_back_from_the_end() {
        let (_d, f) = file_with(b"a\nb\nc\n");
        assert_eq!(tail_lines_offset(&f, 6, 1).unwrap(), 4);
        assert_eq!(tail_lines_offset(&f, 6, 2).unwrap(), 2);
        assert_eq!(tail_lines_offset(&f, 6, 5).unwrap(), 0);
        assert_eq!(tail_lines_offset(&f, 6, 0).unwrap(), 6);
        let (_d, f) = file_with(b"a\nb\npartial");
        assert_eq!(tail_lines_offset(&f, 11, 1).unwrap(), 4);
        assert_eq!(tail_lines_offset(&f, 11, 2).unwrap(), 2);
    }

    #[test]
    fn a_punched_head_reads_as_dropped() {
        let dir = tempfile::tempdir().unwrap();
        probe_hole_punching(dir.path()).unwrap();
        let p = dir.path().join("f");
        let f = std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(true)
            .open(&p)
            .unwrap();
        f.write_all_at(&[7u8; 3 * 4096], 0).unwrap();
        // SAFETY: fallocate(2) on our own file.
        let r = unsafe {
            libc::fallocate(
                f.as_raw_fd(),
                libc::FALLOC_FL_PUNCH_HOLE | libc::FALLOC_FL_KEEP_SIZE,
                0,
                8192,
            )
        };
        assert_eq!(r, 0);
        match read_chunk(&f, 100, 1 << 20).unwrap() {
            Chunk::Dropped(n) => assert_eq!(n, 8192 - 100),
            _ => panic!("expected a drop"),
        }
        match read_chunk(&f, 8192, 1 << 20).unwrap() {
            Chunk::Data(b) => assert_eq!(b.len(), 4096),
            _ => panic!("expected data"),
        }
        assert!(matches!(read_chunk(&f, 3 * 4096, 10).unwrap(), Chunk::Nothing));
        assert_eq!(tail_lines_offset(&f, 3 * 4096, 3).unwrap(), 8192);
    }
}
