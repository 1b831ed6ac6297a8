//! foreman on a real terminal: a pseudo-terminal whose far side this test
//! reads and types into, as a person at a terminal emulator would.

use std::io::{Read as _, Write as _};
use std::os::fd::{AsRawFd as _, OwnedFd};
use std::os::unix::process::CommandExt as _;
use std::process::{Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use nix::pty::{Winsize, openpty};
use nix::sys::termios::{LocalFlags, tcgetattr};

use crate::support::{ALICE, Fleet, fleet_or_skip};

/// foreman running on the slave side of a pty; everything it draws is
/// collected from the master side.
struct Terminal {
    master: std::fs::File,
    slave: OwnedFd,
    child: std::process::Child,
    screen: Arc<Mutex<Vec<u8>>>,
}

impl Terminal {
    fn open(fleet: &Fleet, args: &[&str]) -> Self {
        let size = Winsize {
            ws_row: 24,
            ws_col: 80,
            ws_xpixel: 0,
            ws_ypixel: 0,
        };
        let pty = openpty(Some(&size), None).expect("a pty");
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_foreman"));
        cmd.arg("--config")
            .arg(fleet.config())
            .args(["--user", ALICE])
            .args(args)
            .stdin(Stdio::from(pty.slave.try_clone().unwrap()))
            .stdout(Stdio::from(pty.slave.try_clone().unwrap()))
            .stderr(Stdio::from(pty.slave.try_clone().unwrap()));
        // SAFETY: setsid and ioctl are async-signal-safe; nothing else runs
        // between fork and exec.
        unsafe {
            cmd.pre_exec(|| {
                // Its own session, with the pty as controlling terminal, so
                // that it gets SIGWINCH when the window changes.
                if libc::setsid() < 0 || libc::ioctl(0, libc::TIOCSCTTY, 0) < 0 {
                    return Err(std::io::Error::last_os_error());
                }
                Ok(())
            });
        }
        let child = cmd.spawn().expect("foreman starts");
        let master = std::fs::File::from(pty.master);
        let screen = Arc::new(Mutex::new(Vec::new()));
        let mut reader = master.try_clone().unwrap();
        let sink = Arc::clone(&screen);
        std::thread::spawn(move || {
            let mut buf = [0u8; 4096];
            // EIO once every slave fd is closed: the end.
            while let Ok(n) = reader.read(&mut buf) {
                if n == 0 {
                    break;
                }
                sink.lock().unwrap().extend_from_slice(&buf[..n]);
            }
        });
        Self {
            master,
            slave: pty.slave,
            child,
            screen,
        }
    }

    fn seen(&self) -> Vec<u8> {
        self.screen.lock().unwrap().clone()
    }

    fn text(&self) -> String {
        String::from_utf8_lossy(&self.seen()).into_owned()
    }

    /// Waits until the output, from byte `since` on, contains `what`;
    /// returns where it ends.
    fn wait_for(&self, since: usize, what: &str) -> usize {
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            let seen = self.seen();
            let tail = &seen[since.min(seen.len())..];
            if let Some(i) = tail.windows(what.len()).position(|w| w == what.as_bytes()) {
                return since + i + what.len();
            }
            assert!(
                Instant::now() < deadline,
                "{what:?} never appeared; the terminal shows:\n{}",
                String::from_utf8_lossy(tail)
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Types `keys` until `what` appears after `since` (each try waits up
    /// to a second), at most 20 times.
    fn retry(&mut self, since: usize, keys: &[u8], what: &str) -> usize {
        for _ in 0..20 {
            self.type_keys(keys);
            let deadline = Instant::now() + Duration::from_secs(1);
            while Instant::now() < deadline {
                let seen = self.seen();
                let tail = &seen[since.min(seen.len())..];
                if let Some(i) = tail.windows(what.len()).position(|w| w == what.as_bytes()) {
                    return since + i + what.len();
                }
                std::thread::sleep(Duration::from_millis(20));
            }
        }
        panic!("{what:?} never came after typing {keys:?}:\n{}", self.text());
    }

    fn type_keys(&mut self, keys: &[u8]) {
        self.master.write_all(keys).unwrap();
    }

    fn resize(&self, rows: u16, cols: u16) {
        let ws = libc::winsize {
            ws_row: rows,
            ws_col: cols,
            ws_xpixel: 0,
            ws_ypixel: 0,
        };
        // SAFETY: TIOCSWINSZ reads a winsize we own; the kernel then signals
        // the terminal's foreground process group (foreman).
        let r = unsafe { libc::ioctl(self.master.as_raw_fd(), libc::TIOCSWINSZ, &ws) };
        assert_eq!(r, 0, "TIOCSWINSZ: {}", std::io::Error::last_os_error());
    }

    /// Waits for foreman to exit; its exit code.
    fn exit_code(&mut self) -> i32 {
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                return status.code().unwrap_or(-1);
            }
            assert!(
                Instant::now() < deadline,
                "foreman did not exit; the terminal shows:\n{}",
                self.text()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Line editing and echo are on, as they were before foreman ran.
    fn assert_cooked(&self) {
        let t = tcgetattr(&self.slave).unwrap();
        assert!(
            t.local_flags
                .contains(LocalFlags::ICANON | LocalFlags::ECHO | LocalFlags::ISIG),
            "the terminal was left raw: {:?}",
            t.local_flags
        );
    }
}

impl Drop for Terminal {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Runs a blocking terminal session off the async test's thread.
async fn blocking<T: Send + 'static>(f: impl FnOnce() -> T + Send + 'static) -> T {
    tokio::task::spawn_blocking(f)
        .await
        .expect("the session panicked")
}

#[tokio::test]
async fn run_tty_is_a_real_terminal_and_ctrl_bracket_detaches() {
    let fleet = Arc::new(fleet_or_skip!("alpha"));
    let f = Arc::clone(&fleet);
    blocking(move || {
        let mut term = Terminal::open(&f, &["run", "--tty", "--", "sh"]);
        let mut at = term.wait_for(0, "$ ");
        term.type_keys(b"echo $((6*7))\r");
        at = term.wait_for(at, "42\r\n");

        // The job's terminal is this one's size, and follows it.
        term.type_keys(b"stty size\r");
        at = term.wait_for(at, "24 80\r\n");
        term.resize(30, 100);
        // The new size travels foreman → crew → the job's pty: ask until
        // it has arrived.
        at = term.retry(at, b"stty size\r", "30 100\r\n");

        // Ctrl-C goes to the job (it interrupts sleep and the shell prompts
        // again), not to foreman.
        term.type_keys(b"sleep 100\r");
        at = term.wait_for(at, "sleep 100\r\n");
        at = term.retry(at, b"\x03", "$ ");
        term.type_keys(b"echo af''ter\r");
        at = term.wait_for(at, "after\r\n");

        // Ctrl-] detaches; the terminal comes back as it was.
        term.type_keys(b"\x1d");
        assert_eq!(term.exit_code(), 130, "{}", term.text());
        term.wait_for(
            at,
            "detached from alpha/job-1; it goes on running (foreman attach alpha/job-1 returns",
        );
        term.assert_cooked();
    })
    .await;

    // The job goes on; attach again, and end it.
    let status = fleet
        .run(ALICE, &["status", "job-1", "--json"])
        .await
        .expect(0)
        .json();
    assert_eq!(status["state"], "running", "{status}");
    let f = Arc::clone(&fleet);
    blocking(move || {
        let mut term = Terminal::open(&f, &["attach", "job-1"]);
        let mut at = term.wait_for(
            0,
            &format!("attached to alpha/job-1 ({ALICE}'s, tty, read-write)"),
        );
        term.type_keys(b"echo ag''ain\r");
        at = term.wait_for(at, "again\r\n");
        term.type_keys(b"exit 4\r");
        assert_eq!(term.exit_code(), 4, "attach exits with the job's code");
        term.wait_for(at, "exit");
        term.assert_cooked();
    })
    .await;
    Arc::into_inner(fleet).expect("one owner").stop().await;
}

#[tokio::test]
async fn untrusted_output_is_filtered_before_it_reaches_the_terminal() {
    let fleet = Arc::new(fleet_or_skip!("alpha"));
    // A title change, a clipboard write (OSC 52), a cursor report request,
    // a full reset and a C1 CSI: each could change or read the operator's
    // terminal. Colours are harmless and kept.
    let script =
        r"printf 'a\033]0;pwned\007b\033]52;c;ZXZpbA==\007c\033[6nd\033ce\302\233f\033[31mred\033[0m\n'";
    let hostile: [&[u8]; 5] = [b"\x1b]0;", b"\x1b]52", b"\x1b[6n", b"\x1bc", b"\xc2\x9b"];
    for tty in [true, false] {
        let f = Arc::clone(&fleet);
        let mut args = vec!["run"];
        if tty {
            args.push("--tty");
        }
        args.extend(["--", "sh", "-c", script]);
        let args: Vec<String> = args.into_iter().map(str::to_owned).collect();
        blocking(move || {
            let args: Vec<&str> = args.iter().map(String::as_str).collect();
            let mut term = Terminal::open(&f, &args);
            assert_eq!(term.exit_code(), 0, "{}", term.text());
            term.wait_for(0, "f");
            let seen = term.seen();
            for bad in hostile {
                assert!(
                    !seen.windows(bad.len()).any(|w| w == bad),
                    "tty={tty}: {:?} reached the terminal: {:?}",
                    String::from_utf8_lossy(bad),
                    String::from_utf8_lossy(&seen)
                );
            }
            let text = String::from_utf8_lossy(&seen);
            for kept in ["a", "b", "c", "d", "e", "\x1b[31mred\x1b[0m"] {
                assert!(text.contains(kept), "tty={tty}: {kept:?} lost: {text:?}");
            }
        })
        .await;
    }

    // `logs` to a terminal filters too; --raw is the operator's explicit
    // choice to get the bytes.
    let f = Arc::clone(&fleet);
    blocking(move || {
        let mut term = Terminal::open(&f, &["logs", "job-2"]);
        assert_eq!(term.exit_code(), 0);
        term.wait_for(0, "red");
        let seen = term.seen();
        assert!(!seen.windows(4).any(|w| w == b"\x1b]52"), "{seen:?}");
        let mut term = Terminal::open(&f, &["logs", "--raw", "job-2"]);
        assert_eq!(term.exit_code(), 0);
        term.wait_for(0, "red");
        let seen = term.seen();
        assert!(
            seen.windows(4).any(|w| w == b"\x1b]52"),
            "--raw passes it: {seen:?}"
        );
    })
    .await;
    Arc::into_inner(fleet).expect("one owner").stop().await;
}
