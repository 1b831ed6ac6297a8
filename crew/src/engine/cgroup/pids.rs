//! The pids controller: a cap on processes plus threads.

use std::path::Path;

use super::EngineError;
use super::fs::{read_file, write_file};

pub(crate) fn apply(dir: &Path, max: u64) -> Result<(), EngineError> {
    write_file(&dir.join("pids.max"), &max.to_string())
}

/// The tasks in `dir` and below now (v1 and v2 alike).
pub(crate) fn current(dir: &Path) -> Option<u64> {
    read_file(&dir.join("pids.current")).ok()?.trim().parse().ok()
}

#[cfg(test)]
mod tests {
    #[test]
    fn writes_pids_max() {
        let tmp = tempfile::tempdir().unwrap();
        std::fs::write(tmp.path().join("pids.max"), "max").unwrap();
        super::apply(tmp.path(), 64).unwrap();
        assert_eq!(
            std::fs::read_to_string(tmp.path().join("pids.max")).unwrap(),
            "64"
        );
    }
}
