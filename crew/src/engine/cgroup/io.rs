//! The io controller (`blkio` in v1): per-device read and write bandwidth
//! and operations per second.

use std::path::Path;

use super::EngineError;
use super::IoLimit;
use super::fs::write_file;

pub(crate) fn apply(dir: &Path, v2: bool, limits: &[IoLimit]) -> Result<(), EngineError> {
    for l in limits {
        // (cgroup2 key, v1 file, value) for each kind of limit.
        let kinds = [
            ("rbps", "blkio.throttle.read_bps_device", l.read_bps),
            ("wbps", "blkio.throttle.write_bps_device", l.write_bps),
            ("riops", "blkio.throttle.read_iops_device", l.read_iops),
            ("wiops", "blkio.throttle.write_iops_device", l.write_iops),
        ];
        if v2 {
            let mut line = l.device.to_string();
            for (key, _, value) in kinds {
                if let Some(v) = value {
                    line.push_str(&format!(" {key}={v}"));
                }
            }
            write_file(&dir.join("io.max"), &line)?;
        } else {
            for (_, file, value) in kinds {
                if let Some(v) = value {
                    write_file(&dir.join(file), &format!("{} {v}", l.device))?;
                }
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::super::DeviceNumber;
    use super::*;

    #[test]
    fn writes_one_line_per_device() {
        let tmp = tempfile::tempdir().unwrap();
        for f in [
            "io.max",
            "blkio.throttle.read_bps_device",
            "blkio.throttle.write_bps_device",
            "blkio.throttle.read_iops_device",
        ] {
            std::fs::write(tmp.path().join(f), "").unwrap();
        }
        let l = IoLimit {
            device: DeviceNumber { major: 7, minor: 0 },
            read_bps: None,
            write_bps: Some(1_048_576),
            read_iops: Some(50),
            write_iops: None,
        };
        apply(tmp.path(), true, &[l]).unwrap();
        assert_eq!(
            std::fs::read_to_string(tmp.path().join("io.max")).unwrap(),
            "7:0 wbps=1048576 riops=50"
        );
        apply(tmp.path(), false, &[l]).unwrap();
        assert_eq!(
            std::fs::read_to_string(tmp.path().join("blkio.throttle.write_bps_device")).unwrap(),
            "7:0 1048576"
        );
        assert_eq!(
            std::fs::read_to_string(tmp.path().join("blkio.throttle.read_iops_device")).unwrap(),
            "7:0 50"
        );
    }
}
