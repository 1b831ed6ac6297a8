//! Ready shims: started ahead of the jobs they will get, so that a start
//! only hands one its job.
//!
//! On a hybrid host a ready shim's init also waits in the v1 cgroups made
//! for its next job (its slot, see `CgroupTree::create_slot`), under one
//! user: joining a v1 cgroup is a cgroup migration, and a migration takes
//! the kernel's one lock on every fork of the host (`cgroup_threadgroup_rwsem`)
//! for writing. On a quiet host that costs an RCU grace period; while some
//! user's fork bomb runs it waits until every fork under way is done, which
//! with thousands of runnable tasks is seconds, and meanwhile every fork on
//! the host waits behind it. So:
//!
//! - each user who started a job lately keeps a ready shim of their own
//!   (the latest user as many as the pool's size), so that their next start
//!   makes no migration, whatever another user's jobs do;
//! - slots are made one at a time, in the background, each waited for
//!   patiently (an init still joining is not a failure; abandoning it would
//!   not withdraw its migration);
//! - after a slow join (the host is under such load) no slot is made for a
//!   while: the crew's own migrations must not add to the stall;
//! - nor while the crew's jobs fork hard: a job or a user's jobs near their
//!   task cap, or tasks rising fast in the moment after a start (the job
//!   just started may be a fork bomb, and the ready shim that replaces the
//!   one it took would otherwise join its cgroups in the thick of it).

use std::time::{Duration, Instant};

use super::spawn::IdleShim;

/// How many users keep a ready shim each (the latest ones).
const READY_USERS: usize = 8;
/// A user who started no job for this long keeps none.
const READY_USER_IDLE: Duration = Duration::from_secs(600);
/// How long a slot's init may take to join its cgroups before it is let go.
pub(super) const JOIN_PATIENCE: Duration = Duration::from_secs(60);
/// A join slower than this means the host is under fork load...
pub(super) const SLOW_JOIN: Duration = Duration::from_secs(1);
/// ... and no ready shim is made for this long after it, nor after the
/// crew's jobs were seen forking hard (see `EngineHandle::forking_hard`).
const CALM_DOWN: Duration = Duration::from_secs(30);
/// Before a ready shim is made, the crew's tasks are watched this long...
pub(super) const FORK_WATCH: Duration = Duration::from_millis(100);
/// ... and rising by more than this many means a job forks hard.
pub(super) const FORK_BURST: u64 = 32;
/// Tasks near a cap make a fork storm only if there are this many: fewer
/// cannot keep a migration waiting for long.
pub(super) const FORK_CROWD: u64 = 128;

/// How old a ready shim may be. Its init's mount namespace is a copy of
/// the host's from when it was made, a slave of it: where `/` is a shared
/// mount (systemd makes it so) later host mounts show there too, and a
/// ready shim never goes stale; elsewhere one could miss a mount made
/// since, and is replaced after [`MAX_READY_AGE`](super::MAX_READY_AGE).
pub(super) fn ready_max_age() -> Option<Duration> {
    let shared = std::fs::read_to_string("/proc/self/mountinfo").is_ok_and(|info| root_is_shared(&info));
    (!shared).then_some(super::MAX_READY_AGE)
}

/// Whether the mount at `/` (the last one there, which hides the others)
/// in a `/proc/<pid>/mountinfo` propagates: its optional fields, between
/// the mount options and `-`, hold `shared:N`.
fn root_is_shared(mountinfo: &str) -> bool {
    mountinfo
        .lines()
        .filter_map(|line| {
            let fields: Vec<&str> = line.split(' ').collect();
            (fields.get(4) == Some(&"/")).then_some(fields)
        })
        .next_back()
        .is_some_and(|fields| {
            fields[6..]
                .iter()
                .take_while(|f| **f != "-")
                .any(|f| f.starts_with("shared:"))
        })
}

/// The ready shims, and whom they are kept for.
#[derive(Debug, Default)]
pub(super) struct Pool {
    shims: Vec<IdleShim>,
    /// Users who started a job lately, the latest last, with when.
    users: Vec<(String, Instant)>,
    /// No slot is made before this (see [`CALM_DOWN`]).
    calm_until: Option<Instant>,
}

/// What the pool lacks most.
#[derive(Debug, PartialEq, Eq)]
pub(super) enum Want {
    /// A shim that takes anyone's job (a cgroup2 host, or no user yet).
    Anyone,
    /// A shim with a slot made under this user.
    For(String),
}

impl Pool {
    /// `owner` started a job: their next one gets a ready shim.
    pub(super) fn note_user(&mut self, owner: &str, now: Instant) {
        self.users.retain(|(u, _)| u != owner);
        self.users.push((owner.to_owned(), now));
        if self.users.len() > READY_USERS {
            self.users.remove(0);
        }
    }

    /// The newest ready shim that may take `owner`'s job and is younger
    /// than `max_age`, and the ones found too old on the way (for the
    /// caller to dismiss, off any lock).
    pub(super) fn take(
        &mut self,
        owner: &str,
        max_age: Option<Duration>,
    ) -> (Option<IdleShim>, Vec<IdleShim>) {
        let stale = self.drain(|s| max_age.is_some_and(|m| s.age() >= m));
        // Their own first: a slot-less one would make the command migrate.
        let mine = self.shims.iter().rposition(|s| s.owner() == Some(owner));
        let any = || self.shims.iter().rposition(|s| s.owner().is_none());
        let taken = mine.or_else(any).map(|at| self.shims.remove(at));
        (taken, stale)
    }

    /// What to start next to top the pool up to `size` (per user, on a
    /// host with slots), if anything; None also while calming down.
    pub(super) fn wanted(&self, slots: bool, size: usize, now: Instant) -> Option<Want> {
        if size == 0 {
            return None;
        }
        if self.calm_until.is_some_and(|t| now < t) {
            return None;
        }
        if !slots || self.users.is_empty() {
            return (self.shims.len() < size).then_some(Want::Anyone);
        }
        // Shims for anyone (made before the first user) serve the latest.
        let anyone = self.shims.iter().filter(|s| s.owner().is_none()).count();
        self.users.iter().rev().enumerate().find_map(|(i, (user, _))| {
            let (target, spare) = if i == 0 { (size, anyone) } else { (1, 0) };
            let have = spare + self.shims.iter().filter(|s| s.owner() == Some(user)).count();
            (have < target).then(|| Want::For(user.clone()))
        })
    }

    /// A shim started for [`wanted`](Self::wanted), whose init took
    /// `joined` to join its slot (None: it did not, and was let go).
    pub(super) fn made(&mut self, shim: Option<IdleShim>, joined: Option<Duration>, now: Instant) {
        if joined.is_none_or(|t| t >= SLOW_JOIN) {
            self.calm_until = Some(now + CALM_DOWN);
        }
        self.shims.extend(shim);
    }

    /// Forgets users idle for too long, and returns the shims no longer
    /// wanted (theirs, and any older than `max_age`) for the caller to
    /// dismiss.
    pub(super) fn expire(&mut self, max_age: Option<Duration>, now: Instant) -> Vec<IdleShim> {
        self.users
            .retain(|(_, at)| now.duration_since(*at) < READY_USER_IDLE);
        let users: Vec<String> = self.users.iter().map(|(u, _)| u.clone()).collect();
        self.drain(|s| {
            max_age.is_some_and(|m| s.age() >= m) || s.owner().is_some_and(|o| !users.iter().any(|u| u == o))
        })
    }

    pub(super) fn pids(&self) -> Vec<u32> {
        self.shims.iter().map(IdleShim::pid).collect()
    }

    pub(super) fn take_all(&mut self) -> Vec<IdleShim> {
        std::mem::take(&mut self.shims)
    }

    fn drain(&mut self, gone: impl Fn(&IdleShim) -> bool) -> Vec<IdleShim> {
        let (out, kept) = std::mem::take(&mut self.shims).into_iter().partition(|s| gone(s));
        self.shims = kept;
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_recent_user_is_wanted_a_shim_the_latest_as_many_as_the_size() {
        let now = Instant::now();
        let mut pool = Pool::default();
        // No user yet, or no slots: shims for anyone, up to the size.
        assert_eq!(pool.wanted(true, 2, now), Some(Want::Anyone));
        assert_eq!(pool.wanted(false, 0, now), None);
        pool.note_user("alice", now);
        pool.note_user("bob", now);
        assert_eq!(pool.wanted(false, 2, now), Some(Want::Anyone));
        // bob is the latest: his shims first.
        assert_eq!(pool.wanted(true, 2, now), Some(Want::For("bob".into())));
        pool.note_user("alice", now);
        assert_eq!(pool.wanted(true, 2, now), Some(Want::For("alice".into())));
        // Many users: only the latest few are kept.
        for i in 0..20 {
            pool.note_user(&format!("u{i}"), now);
        }
        assert_eq!(pool.users.len(), READY_USERS);
        assert_eq!(pool.users.last().map(|(u, _)| u.as_str()), Some("u19"));
        // Idle users are forgotten.
        assert!(pool.expire(None, now + READY_USER_IDLE).is_empty());
        assert!(pool.users.is_empty());
    }

    #[test]
    fn a_root_mount_propagates_when_it_is_shared() {
        let shared = "22 1 8:1 / / rw,relatime shared:1 - ext4 /dev/sda1 rw\n\
                      25 22 0:21 / /proc rw shared:12 - proc proc rw\n";
        let private = "27 1 254:0 / / rw,relatime - ext4 /dev/vda rw\n";
        // A slave of a shared mount receives, but its own mounts do not
        // propagate to the slaves of its copies: not shared.
        let slave = "30 1 0:5 / / rw master:1 - ext4 /dev/vda rw\n";
        // Overmounted: the last mount at / counts.
        let over = format!("{shared}{private}");
        assert!(root_is_shared(shared));
        assert!(!root_is_shared(private));
        assert!(!root_is_shared(slave));
        assert!(!root_is_shared(&over));
        assert!(!root_is_shared(""));
    }

    #[test]
    fn a_slow_join_holds_back_the_next_slots_for_a_while() {
        let now = Instant::now();
        let mut pool = Pool::default();
        pool.note_user("alice", now);
        pool.made(None, Some(Duration::from_millis(20)), now);
        assert_eq!(pool.wanted(true, 1, now), Some(Want::For("alice".into())));
        pool.made(None, Some(SLOW_JOIN), now);
        assert_eq!(pool.wanted(true, 1, now), None);
        pool.made(None, None, now);
        assert_eq!(pool.wanted(true, 1, now + CALM_DOWN / 2), None);
        assert_eq!(
            pool.wanted(true, 1, now + CALM_DOWN),
            Some(Want::For("alice".into()))
        );
        // Shims for anyone too (a cgroup2 host): a start without one makes
        // the same migration itself, but only if someone starts a job then.
        assert_eq!(pool.wanted(false, 1, now + CALM_DOWN / 2), None);
        assert_eq!(pool.wanted(false, 1, now + CALM_DOWN), Some(Want::Anyone));
    }
}
