//! Locks the engine holds for a copy or an insert, never across an
//! `.await`.

use std::sync::{Mutex, MutexGuard};

/// Locks `m`, poisoned or not: no critical section in the engine can leave
/// its data half-written (each is a copy, an insert or an assignment), so a
/// panic elsewhere is no reason to stop every later caller.
pub(crate) fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}
