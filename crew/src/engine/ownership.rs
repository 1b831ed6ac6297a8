//! One crew per name and per state directory.
//!
//! A crew holds an exclusive `flock(2)` on its state directory and on its
//! cgroup parent (`tasker/<name>` in the cgroup2 tree, which is what the
//! name owns on a host) for as long as it runs. The kernel drops the locks
//! when the crew's process goes, however it goes, so a crash never leaves a
//! stale lock behind, and a second crew refuses to start, naming the
//! process that holds what it wanted, before it has touched anything.

use std::os::fd::{AsRawFd as _, OwnedFd};
use std::os::unix::fs::MetadataExt as _;
use std::path::Path;

use super::error::EngineError;

/// Takes the lock on `dir` (which must exist). `what` says what the
/// directory is to a person ("state directory", "crew name alpha").
pub(crate) fn claim(dir: &Path, what: &str) -> Result<OwnedFd, EngineError> {
    let file = std::fs::File::open(dir).map_err(|e| EngineError::io("open", dir, e))?;
    let fd = OwnedFd::from(file);
    // SAFETY: flock(2) on an fd we own.
    if unsafe { libc::flock(fd.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) } == 0 {
        return Ok(fd);
    }
    let err = std::io::Error::last_os_error();
    if err.raw_os_error() != Some(libc::EWOULDBLOCK) {
        return Err(EngineError::io("lock", dir, err));
    }
    let holder = std::fs::metadata(dir).ok().and_then(|m| {
        holder_of(
            &std::fs::read_to_string("/proc/locks").unwrap_or_default(),
            m.dev(),
            m.ino(),
        )
    });
    let by = holder.map_or_else(
        || "another crew".to_owned(),
        |pid| format!("the crew with PID {pid}"),
    );
    Err(EngineError::Taken(format!(
        "the {what} {} is in use by {by}; stop that crew first, or give this one another",
        dir.display()
    )))
}

/// The PID holding a `flock` on the file `(dev, ino)`, from `/proc/locks`
/// (`1: FLOCK  ADVISORY  WRITE 5354 00:26:246398 0 EOF`).
fn holder_of(locks: &str, dev: u64, ino: u64) -> Option<u32> {
    let (major, minor) = (libc::major(dev), libc::minor(dev));
    locks.lines().find_map(|line| {
        let f: Vec<&str> = line.split_whitespace().collect();
        // Waiters are listed as "1: -> FLOCK ..."; skip them.
        if f.get(1) != Some(&"FLOCK") {
            return None;
        }
        let mut id = f.get(5)?.split(':');
        let maj = u32::from_str_radix(id.next()?, 16).ok()?;
        let min = u32::from_str_radix(id.next()?, 16).ok()?;
        let i: u64 = id.next()?.parse().ok()?;
        (maj == major && min == minor && i == ino)
            .then(|| f.get(4)?.parse().ok())
            .flatten()
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_holder_is_read_from_proc_locks() {
        let locks = "1: FLOCK  ADVISORY  WRITE 5354 00:26:246398 0 EOF\n\
                     1: -> FLOCK  ADVISORY  WRITE 6000 00:26:246398 0 EOF\n\
                     2: POSIX  ADVISORY  WRITE 77 fd:01:12 0 EOF\n";
        assert_eq!(holder_of(locks, libc::makedev(0, 0x26), 246_398), Some(5354));
        assert_eq!(holder_of(locks, libc::makedev(0, 0x26), 1), None);
        assert_eq!(holder_of(locks, libc::makedev(0xfd, 1), 12), None, "not a flock");
    }

    #[test]
    fn a_second_claim_is_refused_naming_the_holder() {
        let dir = tempfile::tempdir().unwrap();
        let held = claim(dir.path(), "state directory").unwrap();
        let err = claim(dir.path(), "state directory").unwrap_err().to_string();
        assert!(err.contains(&format!("PID {}", std::process::id())), "{err}");
        assert!(err.contains("state directory"), "{err}");
        drop(held);
        claim(dir.path(), "state directory").expect("free again once the holder lets go");
    }
}
