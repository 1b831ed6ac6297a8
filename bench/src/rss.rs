//! Sampling a process's resident memory from `/proc/PID/status`.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread::JoinHandle;
use std::time::Duration;

/// VmRSS and VmHWM in KiB.
pub fn read(pid: u32) -> Option<(u64, u64)> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let field = |name: &str| {
        status
            .lines()
            .find_map(|l| l.strip_prefix(name))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
    };
    Some((field("VmRSS:")?, field("VmHWM:")?))
}

/// What the sampler saw.
#[derive(Debug, Default, Clone, Copy)]
pub struct Seen {
    pub before_kib: u64,
    pub max_rss_kib: u64,
    /// The kernel's high-water mark since the reset (catches peaks between
    /// samples).
    pub hwm_kib: u64,
    pub after_kib: u64,
    pub samples: u64,
    /// Whether the high-water mark could be reset (else it is the
    /// process's lifetime peak).
    pub hwm_reset: bool,
}

/// A thread sampling VmRSS every `every` until stopped.
#[derive(Debug)]
pub struct Sampler {
    pid: u32,
    stop: Arc<AtomicBool>,
    thread: JoinHandle<Seen>,
}

impl Sampler {
    /// Resets the process's VmHWM (`5` into `/proc/PID/clear_refs`, root
    /// only) and starts sampling.
    pub fn start(pid: u32, every: Duration) -> Self {
        let hwm_reset = std::fs::write(format!("/proc/{pid}/clear_refs"), "5").is_ok();
        let stop = Arc::new(AtomicBool::new(false));
        let flag = Arc::clone(&stop);
        let thread = std::thread::spawn(move || {
            let mut seen = Seen {
                hwm_reset,
                ..Seen::default()
            };
            if let Some((rss, _)) = read(pid) {
                seen.before_kib = rss;
            }
            while !flag.load(Ordering::Relaxed) {
                if let Some((rss, hwm)) = read(pid) {
                    seen.max_rss_kib = seen.max_rss_kib.max(rss);
                    seen.hwm_kib = hwm;
                    seen.samples += 1;
                }
                std::thread::sleep(every);
            }
            seen
        });
        Self { pid, stop, thread }
    }

    pub fn stop(self) -> Seen {
        self.stop.store(true, Ordering::Relaxed);
        let mut seen = self.thread.join().unwrap_or_default();
        if let Some((rss, hwm)) = read(self.pid) {
            seen.after_kib = rss;
            seen.hwm_kib = seen.hwm_kib.max(hwm);
            seen.max_rss_kib = seen.max_rss_kib.max(rss);
        }
        seen
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_our_own_rss() {
        let (rss, hwm) = read(std::process::id()).unwrap();
        assert!(rss > 0 && hwm >= rss);
    }
}
