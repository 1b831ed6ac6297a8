//! The output file's format, shared by its one writer (the shim's
//! `sink.rs`) and its readers (the crew).
//!
//! A job's output is one file, `jobs/<id>.out`. It starts with a one-page
//! header ([`HEADER`]): a magic number that names the layout's version
//! ([`MAGIC`]), then the oldest kept stream offset ([`KeptFrom`]), which the
//! shim maps writable and the crew read-only. Stream offset `o` is file
//! offset `HEADER + o`. One file per job keeps the start of a job to one
//! file creation, which on some filesystems costs more than the rest of the
//! start together.
//!
//! When more than the limit is stored, the shim punches out the oldest
//! whole units ([`drop_unit`]) with `FALLOC_FL_PUNCH_HOLE`, which frees
//! their blocks while every offset stays put. It raises the kept offset
//! *before* it punches; a reader checks it *after* each read: if its read
//! offset is still kept then, no punch had begun over it, so everything the
//! read returned was real; otherwise the bytes up to the kept offset were
//! dropped.

use std::fs::File;
use std::io;
use std::os::fd::AsRawFd as _;
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};

/// The header page of an output file; the stream starts after it.
pub const HEADER: u64 = 4096;
/// Identifies an output file (and its layout version) in the header.
pub const MAGIC: &[u8; 8] = b"TASKOUT1";
/// Where the kept offset sits in the header: after the magic, aligned.
const KEPT_AT: usize = 8;

/// Creates a job's output file (mode 0600, never over an existing one):
/// the header page, a zero kept offset. A file that cannot be made whole
/// (a full disk) is removed again.
///
/// # Errors
///
/// Whatever creating, sizing or writing the file gave.
pub fn create_output(path: &Path) -> io::Result<File> {
    use std::os::unix::fs::{FileExt as _, OpenOptionsExt as _};
    let file = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)?;
    let made = file.set_len(HEADER).and_then(|()| file.write_all_at(MAGIC, 0));
    if let Err(e) = made {
        let _ = std::fs::remove_file(path);
        return Err(e);
    }
    Ok(file)
}

/// Output is dropped in whole units: 1/16 of the limit, between 4 KiB and
/// 1 MiB, a multiple of the page size.
#[must_use]
pub fn drop_unit(limit: u64) -> u64 {
    ((limit / 16) & !4095).clamp(4096, 1 << 20)
}

/// The oldest kept stream offset of a job's output, in the file's header
/// page. The shim stores a new value before it punches the bytes below it
/// out.
#[derive(Debug)]
pub struct KeptFrom {
    ptr: std::ptr::NonNull<AtomicU64>,
}

// SAFETY: the mapping is only ever accessed through the AtomicU64, which is
// Sync, and it lives until drop.
unsafe impl Send for KeptFrom {}
// SAFETY: as above.
unsafe impl Sync for KeptFrom {}

impl KeptFrom {
    /// Maps the header page of an output file, writable (the shim) or not
    /// (readers).
    ///
    /// # Errors
    ///
    /// mmap(2)'s.
    pub fn map(file: &File, writable: bool) -> io::Result<Self> {
        let prot = if writable {
            libc::PROT_READ | libc::PROT_WRITE
        } else {
            libc::PROT_READ
        };
        // SAFETY: a fresh shared mapping of our own file; the result is
        // checked, and the page is 8-byte aligned for the AtomicU64.
        let p = unsafe {
            libc::mmap(
                std::ptr::null_mut(),
                HEADER as usize,
                prot,
                libc::MAP_SHARED,
                file.as_raw_fd(),
                0,
            )
        };
        if p == libc::MAP_FAILED {
            return Err(io::Error::last_os_error());
        }
        // SAFETY: the mapping is HEADER bytes long, KEPT_AT + 8 fits, and
        // KEPT_AT keeps the page's 8-byte alignment.
        let kept = unsafe { p.cast::<u8>().add(KEPT_AT) };
        let ptr = std::ptr::NonNull::new(kept.cast()).ok_or_else(|| io::Error::from(io::ErrorKind::Other))?;
        Ok(Self { ptr })
    }

    #[must_use]
    pub fn get(&self) -> u64 {
        // SAFETY: the mapping is valid until drop (see `map`).
        unsafe { self.ptr.as_ref() }.load(Ordering::SeqCst)
    }

    /// Only the shim's writable mapping may call this.
    pub fn set(&self, offset: u64) {
        // SAFETY: the mapping is valid until drop (see `map`).
        unsafe { self.ptr.as_ref() }.store(offset, Ordering::SeqCst);
    }
}

impl Drop for KeptFrom {
    fn drop(&mut self) {
        // SAFETY: unmapping the mapping made in `map`, used by nothing else.
        unsafe {
            libc::munmap(
                self.ptr.as_ptr().cast::<u8>().sub(KEPT_AT).cast(),
                HEADER as usize,
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::FileExt as _;

    #[test]
    fn a_new_file_has_the_magic_and_keeps_everything() {
        let dir = tempfile::tempdir().unwrap();
        let f = create_output(&dir.path().join("f.out")).unwrap();
        let mut magic = [0u8; 8];
        f.read_exact_at(&mut magic, 0).unwrap();
        assert_eq!(&magic, MAGIC);
        assert_eq!(f.metadata().unwrap().len(), HEADER);
        let writer = KeptFrom::map(&f, true).unwrap();
        let reader = KeptFrom::map(&f, false).unwrap();
        assert_eq!(reader.get(), 0);
        writer.set(8192);
        assert_eq!(reader.get(), 8192, "one page, two mappings");
        assert!(
            create_output(&dir.path().join("f.out")).is_err(),
            "never over an existing file"
        );
    }

    #[test]
    fn drop_units_are_pages_between_4k_and_1m() {
        assert_eq!(drop_unit(64 << 20), 1 << 20);
        assert_eq!(drop_unit(256 << 10), 16 << 10);
        assert_eq!(drop_unit(1000), 4096);
    }
}
