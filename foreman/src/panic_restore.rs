//! Terminal state a panic must undo (raw mode, the alternate screen, mouse
//! capture): whoever changes it registers how to undo it, and one panic
//! hook undoes everything registered, then reports the panic as it would
//! have been, on a terminal a person can read.

use std::sync::{Mutex, Once};

use tasker_common::lock;

static RESTORERS: Mutex<Vec<fn()>> = Mutex::new(Vec::new());

/// Runs `restore` before any later panic is reported. Registering the same
/// function again changes nothing.
pub fn restore_on_panic(restore: fn()) {
    static HOOK: Once = Once::new();
    HOOK.call_once(|| {
        let previous = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |info| {
            let restorers = lock(&RESTORERS).clone();
            for restore in restorers {
                restore();
            }
            previous(info);
        }));
    });
    let mut restorers = lock(&RESTORERS);
    if !restorers.iter().any(|f| std::ptr::fn_addr_eq(*f, restore)) {
        restorers.push(restore);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicUsize, Ordering};

    static RESTORED: AtomicUsize = AtomicUsize::new(0);

    fn count() {
        RESTORED.fetch_add(1, Ordering::SeqCst);
    }

    #[test]
    fn a_panic_runs_each_registered_restore_once() {
        restore_on_panic(count);
        restore_on_panic(count);
        let before = RESTORED.load(Ordering::SeqCst);
        let caught = std::panic::catch_unwind(|| panic!("on purpose"));
        assert!(caught.is_err());
        assert_eq!(RESTORED.load(Ordering::SeqCst) - before, 1);
    }
}
