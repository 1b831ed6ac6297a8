//! Reading and writing cgroup files, with the path in every error.

use std::path::Path;

use crate::engine::error::{EngineError, IoContext};

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
