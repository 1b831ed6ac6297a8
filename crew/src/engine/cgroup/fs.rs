//! Reading and writing cgroup files, with the path in every error.

use std::path::Path;
use std::time::{Duration, Instant};

use super::{EngineError, IoContext};

pub(crate) fn read_file(path: &Path) -> Result<String, EngineError> {
    std::fs::read_to_string(path).ctx("read", path)
}

/// One `write(2)` of the whole value, as cgroup files expect.
pub(crate) fn write_file(path: &Path, value: &str) -> Result<(), EngineError> {
    use std::io::Write as _;
    // O_TRUNC is ignored by cgroupfs and keeps tempdir fixtures honest.
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .truncate(true)
        .open(path)
        .ctx("open", path)?;
    f.write_all(value.as_bytes())
        .map_err(|e| EngineError::Cgroup(format!("write {value:?} to {}: {e}", path.display())))
}

/// `rmdir` of a cgroup can fail with EBUSY for a moment after its last
/// process exits (the kernel finishes tearing tasks down asynchronously).
/// Removes nested directories first, and retries for up to a second.
pub(crate) fn remove_dir_retrying(dir: &Path) -> Result<(), EngineError> {
    for name in subdirs(dir)? {
        remove_dir_retrying(&dir.join(name))?;
    }
    let deadline = Instant::now() + Duration::from_secs(1);
    loop {
        match std::fs::remove_dir(dir) {
            Ok(()) => return Ok(()),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
            Err(e) if e.raw_os_error() == Some(libc::EBUSY) && Instant::now() < deadline => {
                std::thread::sleep(Duration::from_millis(2));
            }
            Err(e) => return Err(EngineError::io("remove cgroup", dir, e)),
        }
    }
}

/// The names of the directories in `dir`.
pub(crate) fn subdirs(dir: &Path) -> Result<Vec<String>, EngineError> {
    let mut names = Vec::new();
    let entries = match std::fs::read_dir(dir) {
        Ok(e) => e,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(names),
        Err(e) => return Err(EngineError::io("list", dir, e)),
    };
    for entry in entries {
        let entry = entry.ctx("list", dir)?;
        if entry.file_type().ctx("stat", &entry.path())?.is_dir() {
            names.push(entry.file_name().to_string_lossy().into_owned());
        }
    }
    Ok(names)
}

/// Reads `key value` from a flat-keyed cgroup file such as `cgroup.events`.
pub(crate) fn flat_keyed(text: &str, key: &str) -> Option<u64> {
    text.lines().find_map(|l| {
        let (k, v) = l.split_once(' ')?;
        (k == key).then(|| v.trim().parse().ok())?
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn flat_keyed_reads_values() {
        let events = "populated 1\nfrozen 0\n";
        assert_eq!(flat_keyed(events, "populated"), Some(1));
        assert_eq!(flat_keyed(events, "frozen"), Some(0));
        assert_eq!(flat_keyed(events, "nope"), None);
    }
}
