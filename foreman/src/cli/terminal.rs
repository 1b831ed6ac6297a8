//! Raw mode for an attached tty job, always undone (drop, panic, signal
//! paths). Whether stdin and stdout are terminals, and the size, are
//! `crate::terminal`'s.

use std::os::fd::BorrowedFd;
use std::sync::Mutex;

use nix::sys::termios::{self, SetArg, Termios};

/// The terminal's settings before we changed them, for the panic hook.
static SAVED: Mutex<Option<Termios>> = Mutex::new(None);

fn stdin_fd() -> BorrowedFd<'static> {
    // SAFETY: fd 0 is open for the life of the process and never closed.
    unsafe { BorrowedFd::borrow_raw(0) }
}

/// Raw mode for as long as this lives; restored on drop, on panic, and by
/// [`restore`] from signal paths.
#[derive(Debug)]
pub struct RawMode {
    _private: (),
}

impl RawMode {
    pub fn enter() -> nix::Result<Self> {
        let fd = stdin_fd();
        let saved = termios::tcgetattr(fd)?;
        let mut raw = saved.clone();
        termios::cfmakeraw(&mut raw);
        *tasker_common::lock(&SAVED) = Some(saved);
        crate::panic_restore::restore_on_panic(restore);
        termios::tcsetattr(fd, SetArg::TCSAFLUSH, &raw)?;
        Ok(Self { _private: () })
    }
}

impl Drop for RawMode {
    fn drop(&mut self) {
        restore();
    }
}

/// Puts the terminal back as it was; harmless when nothing was changed.
pub fn restore() {
    let saved = tasker_common::lock(&SAVED).take();
    if let Some(t) = saved {
        let _ = termios::tcsetattr(stdin_fd(), SetArg::TCSAFLUSH, &t);
    }
}
