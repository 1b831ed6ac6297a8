//! The io controller (`blkio` in v1): per-device read and write bandwidth.

use std::path::Path;

use super::EngineError;
use super::IoLimit;
use super::fs::write_file;

pub(crate) fn apply(dir: &Path, v2: bool, limits: &[IoLimit]) -> Result<(), EngineError> {
    for l in limits {
        if v2 {
            let mut line = l.device.to_string();
            if let Some(r) = l.read_bps {
                line.push_str(&format!(" rbps={r}"));
            }
            if let Some(w) = l.write_bps {
                line.push_str(&format!(" wbps={w}"));
            }
            write_file(&dir.join("io.max"), &line)?;
        } else {
            if let Some(r) = l.read_bps {
                write_file(
                    &dir.join("blkio.throttle.read_bps_device"),
                    &format!("{} {r}", l.device),
                )?;
            }
            if let Some(w) = l.write_bps {
                write_file(
                    &dir.join("blkio.throttle.write_bps_device"),
                    &format!("{} {w}", l.device),
                )?;
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
        ] {
            std::fs::write(tmp.path().join(f), "").unwrap();
        }
        let l = IoLimit {
            device: DeviceNumber { major: 7, minor: 0 },
            read_bps: None,
            write_bps: Some(1_048_576),
        };
        apply(tmp.path(), true, &[l]).unwrap();
        assert_eq!(
            std::fs::read_to_string(tmp.path().join("io.max")).unwrap(),
            "7:0 wbps=1048576"
        );
        apply(tmp.path(), false, &[l]).unwrap();
        assert_eq!(
            std::fs::read_to_string(tmp.path().join("blkio.throttle.write_bps_device")).unwrap(),
            "7:0 1048576"
        );
    }
}
