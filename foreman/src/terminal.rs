//! The local terminal, asked: are stdin and stdout terminals, and how big
//! is it. The commands and the dashboard both ask.

pub fn stdin_is_tty() -> bool {
    nix::unistd::isatty(std::io::stdin()).unwrap_or(false)
}

pub fn stdout_is_tty() -> bool {
    nix::unistd::isatty(std::io::stdout()).unwrap_or(false)
}

pub fn stderr_is_tty() -> bool {
    nix::unistd::isatty(std::io::stderr()).unwrap_or(false)
}

/// The terminal's size as (rows, cols), if stdout is one.
pub fn size() -> Option<(u16, u16)> {
    let mut ws = libc::winsize {
        ws_row: 0,
        ws_col: 0,
        ws_xpixel: 0,
        ws_ypixel: 0,
    };
    // SAFETY: TIOCGWINSZ fills a winsize we own.
    let r = unsafe { libc::ioctl(1, libc::TIOCGWINSZ, &mut ws) };
    (r == 0 && ws.ws_row > 0 && ws.ws_col > 0).then_some((ws.ws_row, ws.ws_col))
}
