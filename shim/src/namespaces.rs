//! Which namespaces a job gets, and the setup done inside them by the job's
//! PID 1 before the command runs.
//!
//! - PID: the shim calls `unshare(CLONE_NEWPID)` and forks; the child is the
//!   job's PID 1 (our init). Orphans are re-parented to it, and when it exits
//!   the kernel kills whatever is left in the namespace.
//! - Mount: init unshares it, makes every mount a slave (nothing the job
//!   mounts propagates to the host, while host mounts made later still show)
//!   and mounts a `/proc` of the new PID namespace over the host's, so `ps`
//!   shows only the job.
//! - Network: init unshares it and brings `lo` up; there is no other
//!   interface. A job that asked for the host's network gets init back into
//!   the host's namespace (setns) before its command is cloned.
//!
//! All of this is done by a ready shim's init before a job arrives; see
//! `shim/mod.rs`.
//!
//! Everything here runs in the single-threaded shim or init, never in the
//! crew.

use std::ffi::CStr;
use std::io;

use nix::mount::{MsFlags, mount};
use nix::sched::{CloneFlags, unshare};

/// Unshares the mount and network namespaces and sets them up. Called by
/// init, already PID 1 of the job's PID namespace, before it knows the job
/// (a job on the host's network gets init back into it with setns).
pub(crate) fn enter_job_namespaces() -> io::Result<()> {
    unshare(CloneFlags::CLONE_NEWNS | CloneFlags::CLONE_NEWNET)?;
    // Slave, recursively: mounts the host makes later still appear here
    // (the namespace is made before its job), and nothing mounted here
    // reaches the host.
    mount(
        None::<&str>,
        "/",
        None::<&str>,
        MsFlags::MS_REC | MsFlags::MS_SLAVE,
        None::<&str>,
    )?;
    mount(
        Some("proc"),
        "/proc",
        Some("proc"),
        MsFlags::MS_NOSUID | MsFlags::MS_NODEV | MsFlags::MS_NOEXEC,
        None::<&str>,
    )?;
    set_link_up(c"lo")?;
    Ok(())
}

/// `ip link set NAME up`, with the classic ioctl (no netlink needed for one
/// flag on one device).
pub(crate) fn set_link_up(name: &CStr) -> io::Result<()> {
    // SAFETY: plain socket(2); the result is checked.
    let fd = unsafe { libc::socket(libc::AF_INET, libc::SOCK_DGRAM | libc::SOCK_CLOEXEC, 0) };
    if fd < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: `fd` was just returned by socket(2) and is owned here.
    let sock = unsafe { <std::os::fd::OwnedFd as std::os::fd::FromRawFd>::from_raw_fd(fd) };
    use std::os::fd::AsRawFd as _;
    // SAFETY: ifreq is plain old data; all-zero is a valid value.
    let mut ifr: libc::ifreq = unsafe { std::mem::zeroed() };
    let bytes = name.to_bytes();
    if bytes.len() >= ifr.ifr_name.len() {
        return Err(io::Error::from_raw_os_error(libc::ENAMETOOLONG));
    }
    for (dst, src) in ifr.ifr_name.iter_mut().zip(bytes) {
        *dst = *src as libc::c_char;
    }
    // SAFETY: SIOCGIFFLAGS reads into the ifreq we own.
    if unsafe { libc::ioctl(sock.as_raw_fd(), libc::SIOCGIFFLAGS, &mut ifr) } < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: after SIOCGIFFLAGS the flags member of the union is the live one.
    unsafe {
        ifr.ifr_ifru.ifru_flags |= libc::IFF_UP as libc::c_short;
    }
    // SAFETY: SIOCSIFFLAGS reads the ifreq we own.
    if unsafe { libc::ioctl(sock.as_raw_fd(), libc::SIOCSIFFLAGS, &ifr) } < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}
