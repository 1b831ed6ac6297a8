//! The cpu controller: a CPU limit in cores as a CFS quota per period, and
//! a weight against the other groups that want CPU.

use std::path::Path;

use super::EngineError;
use super::fs::flat_keyed;
use super::fs::{read_file, write_file};

/// The CFS period; 100 ms is the kernel's and systemd's default.
const PERIOD_USEC: u64 = 100_000;
/// The kernel refuses quotas under 1 ms.
const MIN_QUOTA_USEC: u64 = 1_000;

pub(crate) fn quota_usec(cores: f64) -> u64 {
    ((cores * PERIOD_USEC as f64).round() as u64).max(MIN_QUOTA_USEC)
}

pub(crate) fn apply(dir: &Path, v2: bool, cores: f64) -> Result<(), EngineError> {
    let quota = quota_usec(cores);
    if v2 {
        write_file(&dir.join("cpu.max"), &format!("{quota} {PERIOD_USEC}"))
    } else {
        write_file(&dir.join("cpu.cfs_period_us"), &PERIOD_USEC.to_string())?;
        write_file(&dir.join("cpu.cfs_quota_us"), &quota.to_string())
    }
}

/// A weight of 1 to 10,000 (100 is the default): cgroup2's `cpu.weight`,
/// or v1's `cpu.shares` at 1024 per 100, as systemd converts them.
pub(crate) fn apply_weight(dir: &Path, v2: bool, weight: u32) -> Result<(), EngineError> {
    if v2 {
        write_file(&dir.join("cpu.weight"), &weight.to_string())
    } else {
        write_file(&dir.join("cpu.shares"), &shares(weight).to_string())
    }
}

/// v1 `cpu.shares` for a cgroup2 weight; the kernel takes 2 at least.
fn shares(weight: u32) -> u64 {
    (u64::from(weight) * 1024 / 100).max(2)
}

/// No cpu limit (a cap taken out of the configuration).
pub(crate) fn lift(dir: &Path, v2: bool) -> Result<(), EngineError> {
    if v2 {
        write_file(&dir.join("cpu.max"), &format!("max {PERIOD_USEC}"))
    } else {
        write_file(&dir.join("cpu.cfs_quota_us"), "-1")
    }
}

/// `usage_usec` from a cgroup2 directory's `cpu.stat`.
pub(crate) fn usage_usec(dir: &Path) -> Option<u64> {
    flat_keyed(&read_file(&dir.join("cpu.stat")).ok()?, "usage_usec")
}

/// From a v1 cpuacct directory (nanoseconds there).
pub(crate) fn usage_usec_v1(dir: &Path) -> Option<u64> {
    let ns: u64 = read_file(&dir.join("cpuacct.usage")).ok()?.trim().parse().ok()?;
    Some(ns / 1000)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn writes_quota_and_period() {
        let tmp = tempfile::tempdir().unwrap();
        for f in ["cpu.max", "cpu.cfs_period_us", "cpu.cfs_quota_us"] {
            std::fs::write(tmp.path().join(f), "").unwrap();
        }
        apply(tmp.path(), true, 0.25).unwrap();
        assert_eq!(
            std::fs::read_to_string(tmp.path().join("cpu.max")).unwrap(),
            "25000 100000"
        );
        apply(tmp.path(), false, 1.5).unwrap();
        assert_eq!(
            std::fs::read_to_string(tmp.path().join("cpu.cfs_quota_us")).unwrap(),
            "150000"
        );
        assert_eq!(quota_usec(0.001), MIN_QUOTA_USEC);
    }

    #[test]
    fn weights_become_shares_on_v1() {
        assert_eq!(shares(100), 1024);
        assert_eq!(shares(1), 10);
        assert_eq!(shares(10_000), 102_400);
        let tmp = tempfile::tempdir().unwrap();
        std::fs::write(tmp.path().join("cpu.weight"), "100").unwrap();
        std::fs::write(tmp.path().join("cpu.shares"), "1024").unwrap();
        apply_weight(tmp.path(), true, 400).unwrap();
        apply_weight(tmp.path(), false, 400).unwrap();
        assert_eq!(
            std::fs::read_to_string(tmp.path().join("cpu.weight")).unwrap(),
            "400"
        );
        assert_eq!(
            std::fs::read_to_string(tmp.path().join("cpu.shares")).unwrap(),
            "4096"
        );
    }

    #[test]
    fn reads_usage() {
        let tmp = tempfile::tempdir().unwrap();
        std::fs::write(tmp.path().join("cpu.stat"), "usage_usec 1234\nuser_usec 1000\n").unwrap();
        std::fs::write(tmp.path().join("cpuacct.usage"), "5000000\n").unwrap();
        assert_eq!(usage_usec(tmp.path()), Some(1234));
        assert_eq!(usage_usec_v1(tmp.path()), Some(5000));
    }
}
