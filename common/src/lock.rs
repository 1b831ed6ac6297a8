//! Locks that carry on past a poisoned lock.
//!
//! Every critical section Tasker guards with a std lock is a copy, an
//! insert, a removal or an assignment: none can leave the data half-written
//! when it panics. So a panic in one holder is no reason to fail every
//! later caller, and these take the data back from the poison instead.
//! (Terminal restoring in a panic hook relies on it: the hook must still get
//! the lock that the panicking code held.)

use std::sync::{Mutex, MutexGuard, PoisonError, RwLock, RwLockReadGuard, RwLockWriteGuard};

/// Locks `m`, poisoned or not.
pub fn lock<T: ?Sized>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

/// Takes a read lock on `l`, poisoned or not.
pub fn read<T: ?Sized>(l: &RwLock<T>) -> RwLockReadGuard<'_, T> {
    l.read().unwrap_or_else(PoisonError::into_inner)
}

/// Takes the write lock on `l`, poisoned or not.
pub fn write<T: ?Sized>(l: &RwLock<T>) -> RwLockWriteGuard<'_, T> {
    l.write().unwrap_or_else(PoisonError::into_inner)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Poisons `m` by panicking while holding it.
    fn poison_mutex(m: &Mutex<u32>) {
        let caught = std::panic::catch_unwind(|| {
            let mut g = m.lock().unwrap();
            *g = 7;
            panic!("on purpose, holding the lock");
        });
        assert!(caught.is_err());
        assert!(m.is_poisoned());
    }

    fn poison_rwlock(l: &RwLock<u32>) {
        let caught = std::panic::catch_unwind(|| {
            let mut g = l.write().unwrap();
            *g = 7;
            panic!("on purpose, holding the lock");
        });
        assert!(caught.is_err());
        assert!(l.is_poisoned());
    }

    #[test]
    fn a_poisoned_mutex_still_locks_with_what_was_written() {
        let m = Mutex::new(0);
        assert_eq!(*lock(&m), 0);
        poison_mutex(&m);
        assert_eq!(*lock(&m), 7);
        *lock(&m) = 8;
        assert_eq!(*lock(&m), 8);
    }

    #[test]
    fn a_poisoned_rwlock_still_reads_and_writes() {
        let l = RwLock::new(0);
        poison_rwlock(&l);
        assert_eq!(*read(&l), 7);
        *write(&l) = 9;
        assert_eq!(*read(&l), 9);
    }
}
