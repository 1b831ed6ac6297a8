//! Files read whole at start (certificates, keys, CRLs, the crew's
//! configuration), bounded: a path can be wrong in every way a path can —
//! a FIFO would block the open or the read forever, `/dev/zero` (or a
//! link to it) would fill memory, a huge file would too. So: a regular
//! file only (looked at before the open, so that a device or a FIFO is not
//! even opened, and again with `fstat` after it, in case the path changed
//! in between; the open does not block, so a FIFO swapped in does not hang
//! it either), and at most `max` bytes (read with a bound of `max + 1`, so
//! that a file that grew after the look is caught too).

use std::fs::{File, Metadata};
use std::io::Read as _;
use std::os::unix::fs::{FileTypeExt as _, OpenOptionsExt as _};
use std::path::Path;

/// Why a file was not read.
#[derive(Debug, thiserror::Error)]
pub enum FileError {
    /// It could not be opened or read (missing, no permission, ...).
    #[error("{0}")]
    Io(#[from] std::io::Error),
    #[error("it is {0}, not a regular file")]
    NotAFile(&'static str),
    #[error("it is {size} bytes, larger than the {max} allowed")]
    TooLarge { size: u64, max: u64 },
}

impl From<FileError> for std::io::Error {
    /// An I/O error as it was (a missing file stays `NotFound`); the rest
    /// as the message.
    fn from(e: FileError) -> Self {
        match e {
            FileError::Io(e) => e,
            other => Self::other(other.to_string()),
        }
    }
}

/// The whole of the regular file at `path`, of at most `max` bytes, and
/// its metadata as of the open.
///
/// # Errors
///
/// [`FileError`]: it cannot be read, is not a regular file, or is larger
/// than `max`.
pub fn read_regular(path: &Path, max: u64) -> Result<(Vec<u8>, Metadata), FileError> {
    let before = std::fs::metadata(path)?;
    check_regular(&before)?;
    let file = std::fs::OpenOptions::new()
        .read(true)
        // A FIFO swapped in after the look would block the open until a
        // writer came; a terminal would become our controlling one.
        .custom_flags(libc::O_NONBLOCK | libc::O_NOCTTY | libc::O_CLOEXEC)
        .open(path)?;
    let meta = file.metadata()?;
    check_regular(&meta)?;
    if meta.len() > max {
        return Err(FileError::TooLarge {
            size: meta.len(),
            max,
        });
    }
    let bytes = read_at_most(file, max)?;
    if bytes.len() as u64 > max {
        return Err(FileError::TooLarge {
            size: bytes.len() as u64,
            max,
        });
    }
    Ok((bytes, meta))
}

/// Up to `max + 1` bytes, so that the caller can tell a file past `max`.
fn read_at_most(file: File, max: u64) -> std::io::Result<Vec<u8>> {
    let mut bytes = Vec::new();
    file.take(max + 1).read_to_end(&mut bytes)?;
    Ok(bytes)
}

fn check_regular(meta: &Metadata) -> Result<(), FileError> {
    let t = meta.file_type();
    let kind = if t.is_file() {
        return Ok(());
    } else if t.is_dir() {
        "a directory"
    } else if t.is_fifo() {
        "a FIFO"
    } else if t.is_char_device() {
        "a character device"
    } else if t.is_block_device() {
        "a block device"
    } else if t.is_socket() {
        "a socket"
    } else {
        "not a file"
    };
    Err(FileError::NotAFile(kind))
}
