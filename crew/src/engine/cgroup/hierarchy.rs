//! Which cgroup hierarchy serves each controller on this host: cgroup2
//! alone (pure v2), or cgroup2 for membership plus v1 hierarchies for the
//! limits (hybrid), read from `/proc/self/mountinfo`.

use std::fmt;
use std::path::{Path, PathBuf};

use super::fs::read_file;
use super::{EngineError, IoContext};

/// The resource controllers Tasker uses.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Controller {
    Cpu,
    /// v1 only: CPU accounting lives in its own controller there.
    Cpuacct,
    Memory,
    /// `io` in v2, `blkio` in v1.
    Io,
    Pids,
}

impl Controller {
    pub(super) const ALL: [Controller; 5] = [Self::Cpu, Self::Cpuacct, Self::Memory, Self::Io, Self::Pids];

    pub(super) fn v1_name(self) -> &'static str {
        match self {
            Self::Cpu => "cpu",
            Self::Cpuacct => "cpuacct",
            Self::Memory => "memory",
            Self::Io => "blkio",
            Self::Pids => "pids",
        }
    }

    /// `None` for cpuacct, which v2 folds into core `cpu.stat`.
    pub(super) fn v2_name(self) -> Option<&'static str> {
        match self {
            Self::Cpu => Some("cpu"),
            Self::Cpuacct => None,
            Self::Memory => Some("memory"),
            Self::Io => Some("io"),
            Self::Pids => Some("pids"),
        }
    }
}

/// Where one controller is served from on this host.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Backend {
    V2,
    /// The mount point of the v1 hierarchy that carries it.
    V1(PathBuf),
    Unavailable,
}

/// The cgroup mode, as reported to people.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CgroupMode {
    /// Every controller Tasker uses is in the cgroup2 tree.
    V2,
    /// Some controllers are bound to cgroup v1; limits for those are applied
    /// there, while membership, kill and events use the cgroup2 tree.
    Hybrid,
}

impl CgroupMode {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::V2 => "v2",
            Self::Hybrid => "v1-hybrid",
        }
    }
}

/// The cgroup hierarchies of this host.
#[derive(Clone, Debug)]
pub struct Hierarchy {
    /// The cgroup2 mount point.
    pub(super) unified: PathBuf,
    pub(super) cpu: Backend,
    pub(super) cpuacct: Backend,
    pub(super) memory: Backend,
    pub(super) io: Backend,
    pub(super) pids: Backend,
}

impl Hierarchy {
    /// Reads `/proc/self/mountinfo` and the cgroup2 root's controller list.
    pub fn detect_host() -> Result<Self, EngineError> {
        let path = Path::new("/proc/self/mountinfo");
        let mountinfo = std::fs::read_to_string(path).ctx("read", path)?;
        let mounts = parse_mountinfo(&mountinfo);
        let unified = mounts
            .iter()
            .filter(|m| m.fstype == "cgroup2")
            .map(|m| m.mount_point.clone())
            // Prefer the standard places, in the order systemd uses them.
            .min_by_key(|p| match p.to_str() {
                Some("/sys/fs/cgroup") => 0,
                Some("/sys/fs/cgroup/unified") => 1,
                _ => 2,
            })
            .ok_or_else(|| {
                EngineError::Cgroup(
                    "no cgroup2 hierarchy is mounted; Tasker needs cgroup v2, or a hybrid host \
                     with cgroup2 at /sys/fs/cgroup/unified"
                        .into(),
                )
            })?;
        let v2_controllers = read_file(&unified.join("cgroup.controllers"))?;
        let v1_mounts: Vec<(PathBuf, Vec<String>)> = mounts
            .iter()
            .filter(|m| m.fstype == "cgroup")
            .map(|m| {
                let opts = m.super_options.split(',').map(str::to_owned).collect();
                (m.mount_point.clone(), opts)
            })
            .collect();
        Ok(Self::from_parts(unified, &v2_controllers, &v1_mounts))
    }

    /// Decides each controller's backend: v2 when the cgroup2 root offers it,
    /// else the v1 hierarchy that carries it, else unavailable.
    pub fn from_parts(unified: PathBuf, v2_controllers: &str, v1_mounts: &[(PathBuf, Vec<String>)]) -> Self {
        let in_v2: Vec<&str> = v2_controllers.split_whitespace().collect();
        let backend = |c: Controller| {
            if c.v2_name().is_some_and(|n| in_v2.contains(&n)) {
                return Backend::V2;
            }
            if c == Controller::Cpuacct && in_v2.contains(&"cpu") {
                return Backend::V2;
            }
            v1_mounts
                .iter()
                .find(|(_, opts)| opts.iter().any(|o| o == c.v1_name()))
                .map_or(Backend::Unavailable, |(p, _)| Backend::V1(p.clone()))
        };
        Self {
            cpu: backend(Controller::Cpu),
            cpuacct: backend(Controller::Cpuacct),
            memory: backend(Controller::Memory),
            io: backend(Controller::Io),
            pids: backend(Controller::Pids),
            unified,
        }
    }

    pub(super) fn backend(&self, c: Controller) -> &Backend {
        match c {
            Controller::Cpu => &self.cpu,
            Controller::Cpuacct => &self.cpuacct,
            Controller::Memory => &self.memory,
            Controller::Io => &self.io,
            Controller::Pids => &self.pids,
        }
    }

    pub fn mode(&self) -> CgroupMode {
        if Controller::ALL
            .iter()
            .any(|c| matches!(self.backend(*c), Backend::V1(_)))
        {
            CgroupMode::Hybrid
        } else {
            CgroupMode::V2
        }
    }

    /// One line for logs and `Info`: the mode and where each controller is.
    pub fn describe(&self) -> String {
        let mut parts = Vec::new();
        for c in Controller::ALL {
            let name = c.v1_name();
            match self.backend(c) {
                Backend::V2 if c == Controller::Cpuacct => {}
                Backend::V2 => parts.push(format!("{}=v2", c.v2_name().unwrap_or(name))),
                Backend::V1(_) => parts.push(format!("{name}=v1")),
                Backend::Unavailable => parts.push(format!("{name}=none")),
            }
        }
        format!(
            "cgroup {} (cgroup2 at {}; {})",
            self.mode().as_str(),
            self.unified.display(),
            parts.join(" ")
        )
    }

    pub fn unified_root(&self) -> &Path {
        &self.unified
    }

    /// The distinct v1 mount points in use (cpu and cpuacct may share one).
    pub(super) fn v1_roots(&self) -> Vec<PathBuf> {
        let mut roots: Vec<PathBuf> = Vec::new();
        for c in Controller::ALL {
            if let Backend::V1(p) = self.backend(c)
                && !roots.contains(p)
            {
                roots.push(p.clone());
            }
        }
        roots
    }

    pub(super) fn v2_controller_names(&self) -> Vec<&'static str> {
        Controller::ALL
            .iter()
            .filter(|c| *self.backend(**c) == Backend::V2)
            .filter_map(|c| c.v2_name())
            .collect()
    }
}

impl fmt::Display for Hierarchy {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.describe())
    }
}

struct Mount {
    mount_point: PathBuf,
    fstype: String,
    super_options: String,
}

fn parse_mountinfo(text: &str) -> Vec<Mount> {
    text.lines()
        .filter_map(|line| {
            let (pre, post) = line.split_once(" - ")?;
            let mount_point = pre.split(' ').nth(4)?;
            let mut post = post.split(' ');
            let fstype = post.next()?.to_owned();
            let _source = post.next()?;
            let super_options = post.next().unwrap_or("").to_owned();
            Some(Mount {
                mount_point: PathBuf::from(unescape_mount_path(mount_point)),
                fstype,
                super_options,
            })
        })
        .collect()
}

/// mountinfo writes space, tab, newline and backslash as `\ooo`.
fn unescape_mount_path(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'\\'
            && i + 3 < bytes.len()
            && bytes[i + 1..i + 4].iter().all(|b| (b'0'..=b'7').contains(b))
        {
            let digit = |k: usize| u32::from(bytes[i + k] - b'0');
            // Three octal digits; mountinfo only escapes bytes, so this fits.
            out.push((digit(1) * 64 + digit(2) * 8 + digit(3)) as u8);
            i += 4;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    const HYBRID_MOUNTINFO: &str = "\
31 23 0:28 / /sys/fs/cgroup rw,relatime - tmpfs tmpfs rw,mode=755
32 31 0:29 / /sys/fs/cgroup/cpu rw,relatime - cgroup cgroup rw,cpu
33 31 0:30 / /sys/fs/cgroup/cpuacct rw,relatime - cgroup cgroup rw,cpuacct
35 31 0:32 / /sys/fs/cgroup/memory rw,relatime - cgroup cgroup rw,memory
38 31 0:35 / /sys/fs/cgroup/blkio rw,relatime - cgroup cgroup rw,blkio
39 31 0:36 / /sys/fs/cgroup/pids rw,relatime - cgroup cgroup rw,pids
40 31 0:37 / /sys/fs/cgroup/systemd rw,relatime - cgroup cgroup rw,name=systemd
41 31 0:38 / /sys/fs/cgroup/unified rw,relatime - cgroup2 cgroup2 rw
";

    fn v1_mounts(text: &str) -> Vec<(PathBuf, Vec<String>)> {
        parse_mountinfo(text)
            .into_iter()
            .filter(|m| m.fstype == "cgroup")
            .map(|m| {
                (
                    m.mount_point,
                    m.super_options.split(',').map(str::to_owned).collect(),
                )
            })
            .collect()
    }

    #[test]
    fn hybrid_host_uses_v1_for_limits() {
        let h = Hierarchy::from_parts("/sys/fs/cgroup/unified".into(), "", &v1_mounts(HYBRID_MOUNTINFO));
        assert_eq!(h.mode(), CgroupMode::Hybrid);
        assert_eq!(h.memory, Backend::V1("/sys/fs/cgroup/memory".into()));
        assert_eq!(h.io, Backend::V1("/sys/fs/cgroup/blkio".into()));
        assert_eq!(h.cpuacct, Backend::V1("/sys/fs/cgroup/cpuacct".into()));
        assert!(h.describe().contains("memory=v1"), "{}", h.describe());
    }
    #[test]
    fn comounted_cpu_cpuacct_share_one_directory() {
        let text = "1 0 0:1 / /sys/fs/cgroup/cpu,cpuacct rw - cgroup cgroup rw,cpu,cpuacct\n";
        let h = Hierarchy::from_parts("/sys/fs/cgroup/unified".into(), "", &v1_mounts(text));
        assert_eq!(h.v1_roots(), vec![PathBuf::from("/sys/fs/cgroup/cpu,cpuacct")]);
    }
    #[test]
    fn pure_v2_host() {
        let h = Hierarchy::from_parts(
            "/sys/fs/cgroup".into(),
            "cpuset cpu io memory hugetlb pids rdma",
            &[],
        );
        assert_eq!(h.mode(), CgroupMode::V2);
        assert_eq!(h.cpuacct, Backend::V2);
        assert_eq!(h.v2_controller_names(), vec!["cpu", "memory", "io", "pids"]);
    }
    #[test]
    fn v2_without_io_reports_it_unavailable() {
        let h = Hierarchy::from_parts("/sys/fs/cgroup".into(), "cpu memory pids", &[]);
        assert_eq!(h.io, Backend::Unavailable);
        assert!(h.describe().contains("blkio=none"));
    }
    #[test]
    fn mount_paths_are_unescaped() {
        assert_eq!(unescape_mount_path(r"/a\040b"), "/a b");
        assert_eq!(unescape_mount_path(r"/a\\"), r"/a\\");
    }
}
