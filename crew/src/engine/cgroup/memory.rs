//! The memory controller: a hard limit that swap cannot extend, a soft
//! one, and the kernel's own counters for usage, peak and OOM kills.

use std::path::Path;

use super::EngineError;
use super::fs::flat_keyed;
use super::fs::{read_file, write_file};

pub(crate) fn apply(dir: &Path, v2: bool, bytes: u64) -> Result<(), EngineError> {
    if v2 {
        write_file(&dir.join("memory.max"), &bytes.to_string())?;
        // Without swap accounting the file is absent, and swap cannot be
        // used to escape the limit anyway.
        let swap = dir.join("memory.swap.max");
        if swap.exists() {
            write_file(&swap, "0")?;
        }
    } else {
        // memsw is memory + swap, and may never be below the limit: lifted
        // first, so that a limit raised past the old memsw is taken.
        let memsw = dir.join("memory.memsw.limit_in_bytes");
        let swap_accounted = memsw.exists();
        if swap_accounted {
            write_file(&memsw, "-1")?;
        }
        write_file(&dir.join("memory.limit_in_bytes"), &bytes.to_string())?;
        // Equal to the limit means no swap.
        if swap_accounted {
            write_file(&memsw, &bytes.to_string())?;
        }
    }
    Ok(())
}

/// A soft limit: cgroup2's `memory.high` (past it the kernel reclaims
/// and throttles the group's allocations at once), or v1's
/// `memory.soft_limit_in_bytes` (the group is reclaimed first when the
/// host runs short of memory; v1 has nothing that acts sooner).
pub(crate) fn apply_high(dir: &Path, v2: bool, bytes: u64) -> Result<(), EngineError> {
    if v2 {
        write_file(&dir.join("memory.high"), &bytes.to_string())
    } else {
        write_file(&dir.join("memory.soft_limit_in_bytes"), &bytes.to_string())
    }
}

/// No memory limit (a cap taken out of the configuration).
pub(crate) fn lift(dir: &Path, v2: bool) -> Result<(), EngineError> {
    if v2 {
        write_file(&dir.join("memory.max"), "max")?;
        let swap = dir.join("memory.swap.max");
        if swap.exists() {
            write_file(&swap, "max")?;
        }
    } else {
        let memsw = dir.join("memory.memsw.limit_in_bytes");
        if memsw.exists() {
            write_file(&memsw, "-1")?;
        }
        write_file(&dir.join("memory.limit_in_bytes"), "-1")?;
    }
    Ok(())
}

pub(crate) fn current(dir: &Path, v2: bool) -> Option<u64> {
    let file = if v2 {
        "memory.current"
    } else {
        "memory.usage_in_bytes"
    };
    read_file(&dir.join(file)).ok()?.trim().parse().ok()
}

/// `memory.peak` needs Linux 5.19 on v2; v1 always has it.
pub(crate) fn peak(dir: &Path, v2: bool) -> Option<u64> {
    let file = if v2 {
        "memory.peak"
    } else {
        "memory.max_usage_in_bytes"
    };
    read_file(&dir.join(file)).ok()?.trim().parse().ok()
}

/// The kernel's count of OOM kills in this cgroup: `oom_kill` in
/// `memory.events` (v2) or `memory.oom_control` (v1, Linux 4.13+).
pub(crate) fn oom_kills(dir: &Path, v2: bool) -> Option<u64> {
    let file = if v2 { "memory.events" } else { "memory.oom_control" };
    flat_keyed(&read_file(&dir.join(file)).ok()?, "oom_kill")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn v2_limit_disables_swap_when_accounted() {
        let tmp = tempfile::tempdir().unwrap();
        std::fs::write(tmp.path().join("memory.max"), "max").unwrap();
        std::fs::write(tmp.path().join("memory.swap.max"), "max").unwrap();
        apply(tmp.path(), true, 64 << 20).unwrap();
        assert_eq!(
            std::fs::read_to_string(tmp.path().join("memory.max")).unwrap(),
            "67108864"
        );
        assert_eq!(
            std::fs::read_to_string(tmp.path().join("memory.swap.max")).unwrap(),
            "0"
        );
    }

    #[test]
    fn soft_limit_files() {
        let tmp = tempfile::tempdir().unwrap();
        apply_high(tmp.path(), true, 32 << 20).unwrap_err();
        std::fs::write(tmp.path().join("memory.high"), "max").unwrap();
        std::fs::write(tmp.path().join("memory.soft_limit_in_bytes"), "").unwrap();
        apply_high(tmp.path(), true, 32 << 20).unwrap();
        apply_high(tmp.path(), false, 16 << 20).unwrap();
        assert_eq!(
            std::fs::read_to_string(tmp.path().join("memory.high")).unwrap(),
            "33554432"
        );
        assert_eq!(
            std::fs::read_to_string(tmp.path().join("memory.soft_limit_in_bytes")).unwrap(),
            "16777216"
        );
    }

    #[test]
    fn v1_limit_without_memsw() {
        let tmp = tempfile::tempdir().unwrap();
        std::fs::write(tmp.path().join("memory.limit_in_bytes"), "").unwrap();
        apply(tmp.path(), false, 1 << 20).unwrap();
        assert_eq!(
            std::fs::read_to_string(tmp.path().join("memory.limit_in_bytes")).unwrap(),
            "1048576"
        );
    }

    #[test]
    fn reads_oom_kill_counters() {
        let tmp = tempfile::tempdir().unwrap();
        std::fs::write(
            tmp.path().join("memory.events"),
            "low 0\nhigh 0\nmax 3\noom 1\noom_kill 1\n",
        )
        .unwrap();
        std::fs::write(
            tmp.path().join("memory.oom_control"),
            "oom_kill_disable 0\nunder_oom 0\noom_kill 2\n",
        )
        .unwrap();
        assert_eq!(oom_kills(tmp.path(), true), Some(1));
        assert_eq!(oom_kills(tmp.path(), false), Some(2));
    }
}
