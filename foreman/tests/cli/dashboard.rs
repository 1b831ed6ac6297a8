//! The dashboard end to end, as a person uses it: `foreman` in a real
//! terminal (tmux), against two real crews, driven by keys and mouse
//! clicks, read back from the screen.

use std::process::Command;
use std::sync::Arc;
use std::time::{Duration, Instant};

use crew::testing::LocalCrew;

use crate::support::{ALICE, Fleet, fleet_or_skip, shim, skip_reason};

/// A tmux server of our own, running foreman in one window.
struct Tmux {
    socket: String,
}

impl Tmux {
    fn available() -> bool {
        Command::new("tmux")
            .arg("-V")
            .output()
            .is_ok_and(|o| o.status.success())
    }

    fn start(fleet: &Fleet, cols: u16, rows: u16) -> Self {
        static NEXT: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
        let n = NEXT.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        let socket = format!("tasker-e2e-{}-{n}", std::process::id());
        let foreman = format!(
            "{} --config {} --user {ALICE}; echo FOREMAN-EXIT=$?; sleep 600",
            env!("CARGO_BIN_EXE_foreman"),
            fleet.config().display()
        );
        let ok = Command::new("tmux")
            .args(["-L", &socket, "-f", "/dev/null", "new-session", "-d", "-s", "e2e"])
            .args(["-x", &cols.to_string(), "-y", &rows.to_string()])
            .arg(foreman)
            .env("TERM", "xterm-256color")
            .status()
            .expect("tmux runs");
        assert!(ok.success(), "tmux did not start");
        let t = Self { socket };
        // Were a clipboard write (OSC 52) to get through, tmux would keep it
        // as a paste buffer.
        t.tmux(&["set-option", "-g", "set-clipboard", "on"]);
        t
    }

    fn tmux(&self, args: &[&str]) -> String {
        let out = Command::new("tmux")
            .args(["-L", &self.socket])
            .args(args)
            .output()
            .expect("tmux runs");
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    fn screen(&self) -> String {
        self.tmux(&["capture-pane", "-p", "-t", "e2e"])
    }

    /// Waits (at most 20 s) until the screen satisfies `ok`; returns it.
    fn wait(&self, what: &str, ok: impl Fn(&str) -> bool) -> String {
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            let screen = self.screen();
            if ok(&screen) {
                return screen;
            }
            assert!(
                Instant::now() < deadline,
                "waited 20 s for {what}; the screen:\n{screen}"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    fn wait_for(&self, text: &str) -> String {
        self.wait(text, |s| s.contains(text))
    }

    fn keys(&self, keys: &[&str]) {
        let mut args = vec!["send-keys", "-t", "e2e"];
        args.extend(keys);
        self.tmux(&args);
    }

    /// Literal text, typed.
    fn type_text(&self, text: &str) {
        self.tmux(&["send-keys", "-t", "e2e", "-l", text]);
    }

    /// A left click at a 0-based cell, as an xterm sends it (SGR mouse).
    fn click(&self, col: usize, row: usize) {
        let (x, y) = (col + 1, row + 1);
        self.type_text(&format!("\x1b[<0;{x};{y}M\x1b[<0;{x};{y}m"));
    }

    /// Where `needle` is on the screen line containing `row_has`: (col, row).
    fn find(&self, row_has: &str, needle: &str) -> (usize, usize) {
        let screen = self.screen();
        for (y, line) in screen.lines().enumerate() {
            if line.contains(row_has)
                && let Some(byte) = line.find(needle)
            {
                return (line[..byte].chars().count(), y);
            }
        }
        panic!("no line with {row_has:?} and {needle:?}:\n{screen}");
    }
}

impl Drop for Tmux {
    fn drop(&mut self) {
        let _ = Command::new("tmux")
            .args(["-L", &self.socket, "kill-server"])
            .status();
    }
}

/// The terminal pane's lines (below its title) of a screen.
fn pane(screen: &str) -> String {
    screen
        .lines()
        .skip_while(|l| !l.contains(" · pipe · ") && !l.contains(" · tty · "))
        .collect::<Vec<_>>()
        .join("\n")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_dashboard_in_a_real_terminal() {
    if !Tmux::available() {
        eprintln!("SKIPPED dashboard: tmux is not installed (apt-get install tmux)");
        return;
    }
    let mut fleet = fleet_or_skip!("alpha", "beta");
    // Two bad crews beside the good ones: one accepts TCP and never says a
    // word, one refuses. Neither may slow the dashboard down.
    let mute = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let mut config = std::fs::read_to_string(fleet.config()).unwrap();
    config.push_str(&format!(
        "\n[[crew]]\nname = \"mute\"\naddr = \"{}\"\n\n[[crew]]\nname = \"gone\"\naddr = \"127.0.0.1:1\"\n",
        mute.local_addr().unwrap()
    ));
    std::fs::write(fleet.config(), config).unwrap();
    let term = Arc::new(Tmux::start(&fleet, 120, 36));
    let t = Arc::clone(&term);
    let blocking = |f: Box<dyn FnOnce(&Tmux) + Send>| {
        let t = Arc::clone(&t);
        tokio::task::spawn_blocking(move || f(&t))
    };

    blocking(Box::new(|t| {
        t.wait("both crews connected", |s| {
            s.contains("● alpha") && s.contains("● beta")
        });
        t.wait("the refusing crew down", |s| s.contains("◌ gone"));
        t.wait_for("no jobs yet");

        // :start a cat job; it is selected; ⏎ attaches, typing goes to it.
        t.type_text(":start alpha -- cat");
        t.keys(&["Enter"]);
        t.wait("the job running", |s| {
            s.lines()
                .any(|l| l.contains("alpha job-1") && l.contains("running"))
        });
        t.keys(&["Enter"]);
        t.wait_for("alpha/job-1 · pipe · read-write");
        t.type_text("hello dashboard");
        t.keys(&["Enter"]);
        t.wait("cat's echo", |s| pane(s).contains("hello dashboard"));

        // Leave input mode, detach, and attach again with a click on [attach].
        t.keys(&["C-]"]);
        t.wait_for("i/⏎ type");
        t.keys(&["d"]);
        t.wait("detached", |s| !s.contains("alpha/job-1 · pipe"));
        let (col, row) = t.find("alpha job-1", "[attach]");
        t.click(col + 2, row);
        t.wait_for("alpha/job-1 · pipe · read-write");
        t.wait("the replay from the beginning", |s| {
            pane(s).contains("hello dashboard")
        });
        t.type_text("second line");
        t.keys(&["Enter"]);
        t.wait("the second echo", |s| pane(s).contains("second line"));
        t.keys(&["C-]"]);

        // A tty bash: its prompt, a command, its answer.
        t.type_text(":start beta --tty -- bash --norc -i");
        t.keys(&["Enter"]);
        t.wait("the bash job", |s| {
            s.lines()
                .any(|l| l.contains("beta  job-1") && l.contains("running"))
        });
        t.keys(&["Enter"]);
        t.wait_for("beta/job-1 · tty · read-write");
        t.wait("a prompt", |s| pane(s).contains("$ "));
        t.type_text("echo $((6*7))");
        t.keys(&["Enter"]);
        t.wait("bash's answer", |s| pane(s).lines().any(|l| l.contains("│42 ")));

        // A program that asks for the mouse (SGR reporting, as vim and htop
        // do) gets a click on its screen, at its own coordinates.
        t.type_text(
            r#"printf '\033[?1000h\033[?1006h'; echo ready-$((1+1)); read -rsd M a; read -rsd m b; printf '\033[?1000l\033[?1006l'; echo "mouse:${a:3}/${b:3}""#,
        );
        t.keys(&["Enter"]);
        t.wait("the program waiting for the mouse", |s| pane(s).contains("ready-2"));
        let (_, title) = t.find("beta/job-1 · tty", "beta/job-1");
        let (col, row) = t.find("ready-2", "ready-2");
        t.click(col + 3, row);
        let at = format!("4;{}", row - title);
        t.wait("the click, as the program saw it", |s| {
            pane(s).contains(&format!("mouse:0;{at}/0;{at}"))
        });
        t.keys(&["C-]"]);

        // Hostile output: a title, a clipboard write, a hyperlink. The pane
        // shows the text; tmux (the operator's terminal) gets none of it.
        t.type_text(r":start alpha -- printf '\033]0;pwned\007\033]52;c;cHduZWQ=\007\033]8;;http://x/\033\\link\033]8;;\033\\ safe\n'");
        t.keys(&["Enter"]);
        t.wait("the printf job", |s| {
            s.lines().any(|l| l.contains("alpha job-2") && l.contains("exit 0"))
        });
        t.keys(&["Enter"]);
        t.wait("its output", |s| pane(s).contains("link safe"));
        let title = t.tmux(&["display-message", "-p", "-t", "e2e", "#{pane_title}"]);
        assert!(!title.contains("pwned"), "the title changed: {title}");
        let buffers = t.tmux(&["list-buffers"]);
        assert!(buffers.trim().is_empty(), "a clipboard write got through: {buffers}");

        // A resize storm: the last size wins, nothing breaks.
        for i in 0..30 {
            let (w, h) = if i % 2 == 0 { ("90", "26") } else { ("140", "40") };
            t.tmux(&["resize-window", "-t", "e2e", "-x", w, "-y", h]);
        }
        t.tmux(&["resize-window", "-t", "e2e", "-x", "100", "-y", "30"]);
        t.wait("the frame at 100x30", |s| {
            s.lines()
                .nth(1)
                .is_some_and(|l| l.chars().count() == 100 && l.ends_with('┐'))
        });

        // [stop] on the cat job: asked first, then stopped.
        let (col, row) = t.find("alpha job-1", "[stop]");
        t.click(col + 1, row);
        t.wait_for("stop alpha/job-1 (cat)? y/n");
        t.keys(&["y"]);
        t.wait("cat stopped", |s| {
            s.lines()
                .any(|l| l.contains("alpha job-1") && l.contains("stopped"))
        });
    }))
    .await
    .expect("the first part");

    // beta goes away: the strip says reconnecting; it comes back.
    let beta_addr = fleet.crews[1].addr;
    let beta = fleet.crews.remove(1);
    beta.stop().await;
    blocking(Box::new(|t| {
        t.wait_for("◌ beta");
    }))
    .await
    .expect("reconnecting");
    let pki = Arc::clone(&fleet.pki);
    fleet
        .crews
        .push(LocalCrew::start(pki, "beta", shim(), |c| c.listen = beta_addr).await);
    blocking(Box::new(|t| {
        t.wait("beta back", |s| s.contains("● beta"));
        // The mute crew never got anywhere, and said nothing to hold us.
        t.keys(&["c"]);
        t.wait("the crews overlay", |s| {
            s.lines().any(|l| l.contains("mute") && l.contains("you are -"))
        });
        t.keys(&["Escape"]);
        // Seen closed before the next key: an Escape and a `q` read
        // together are Alt-q, which quits nothing.
        t.wait("the overlay closed", |s| !s.contains("you are -"));
        // Quit: the dashboard leaves, the terminal is the shell's again.
        t.keys(&["q"]);
        t.wait_for("FOREMAN-EXIT=0");
    }))
    .await
    .expect("the last part");
    drop(term);
    drop(mute);
    fleet.stop().await;
}

/// The numbers a counter job printed (`n0`, `n1`, ...) in the pane.
fn counted(screen: &str) -> Vec<u64> {
    pane(screen)
        .lines()
        .filter_map(|l| {
            let t = l.trim_matches(|c: char| c == '│' || c.is_whitespace());
            t.strip_prefix('n')?.parse().ok()
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_attached_job_goes_on_across_its_crews_restart() {
    if !Tmux::available() {
        eprintln!("SKIPPED dashboard: tmux is not installed (apt-get install tmux)");
        return;
    }
    if let Some(why) = skip_reason() {
        eprintln!("SKIPPED dashboard: {why}");
        return;
    }
    // A crew that leaves its jobs running when it exits, as a real one does.
    let mut fleet = Fleet::start_with(&["alpha"], |c| c.stop_jobs_on_exit = false).await;
    fleet
        .run(
            ALICE,
            &[
                "start",
                "--",
                "/bin/sh",
                "-c",
                "i=0; while :; do echo n$i; i=$((i+1)); sleep 0.2; done",
            ],
        )
        .await
        .expect(0);
    let term = Arc::new(Tmux::start(&fleet, 100, 50));
    let t = Arc::clone(&term);
    let before = tokio::task::spawn_blocking(move || {
        t.wait("the job running", |s| {
            s.lines()
                .any(|l| l.contains("alpha job-1") && l.contains("running"))
        });
        t.keys(&["Enter"]);
        t.wait_for("alpha/job-1 · pipe · read-write");
        t.wait("some counting", |s| counted(s).len() > 5);
        t.keys(&["C-]"]);
        *counted(&t.screen()).last().unwrap()
    })
    .await
    .unwrap();

    // The crew restarts; the job runs on, and the pane with it.
    let crew = fleet.crews.remove(0).restart().await;
    fleet.crews.push(crew);
    let t = Arc::clone(&term);
    tokio::task::spawn_blocking(move || {
        t.wait_for("attached again, nothing missed");
        let screen = t.wait("counting past the restart", |s| {
            counted(s).last().is_some_and(|n| *n > before + 5)
        });
        let seen = counted(&screen);
        // Every line once, in order, across the restart: no gap, no repeat.
        assert!(
            seen.windows(2).all(|w| w[1] == w[0] + 1),
            "a gap or a repeat: {seen:?}\n{screen}"
        );
        assert!(
            seen.first().is_some_and(|f| *f <= before),
            "{seen:?} (before: {before})"
        );
        assert!(!screen.contains("lost"), "{screen}");
        t.keys(&["q"]);
        t.wait_for("FOREMAN-EXIT=0");
    })
    .await
    .unwrap();
    drop(term);
    fleet.stop().await;
}

/// Crews a discovery file lists appear in the dashboard, and go, while it
/// runs: within a second or two of the file's change.
#[tokio::test]
async fn crews_of_a_discovery_file_appear_and_vanish_live() {
    if !Tmux::available() {
        eprintln!("SKIPPED dashboard: tmux is not installed (apt-get install tmux)");
        return;
    }
    let fleet = fleet_or_skip!("web01", "web02");
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("crews.toml");
    let entry = |i: usize| {
        let c = &fleet.crews[i];
        format!("[[crew]]\nname = {:?}\naddr = \"{}\"\n", c.name, c.addr)
    };
    std::fs::write(&file, entry(0)).unwrap();
    std::fs::write(
        fleet.config(),
        format!(
            "certs = {:?}\n\n[discovery]\nfiles = [{:?}]\n",
            fleet.pki.dir().display().to_string(),
            file.display().to_string()
        ),
    )
    .unwrap();
    let term = Arc::new(Tmux::start(&fleet, 120, 30));
    let t = Arc::clone(&term);
    let both = format!("{}{}", entry(0), entry(1));
    let second = entry(1);
    tokio::task::spawn_blocking(move || {
        t.wait("web01 connected", |s| s.contains("● web01"));
        std::fs::write(&file, both).unwrap();
        t.wait("web02 found and connected", |s| s.contains("● web02"));
        t.type_text(":start web02 -- sleep 100");
        t.keys(&["Enter"]);
        t.wait_for("sleep 100");
        std::fs::write(&file, second).unwrap();
        let screen = t.wait("web01 gone", |s| s.contains("web01 is gone"));
        let strip = screen.lines().find(|l| l.contains(" crews ")).unwrap_or_default();
        assert!(!strip.contains("web01") && strip.contains("● web02"), "{screen}");
        assert!(screen.contains("sleep 100"), "web02's job stays: {screen}");
        t.keys(&["q"]);
        t.wait_for("FOREMAN-EXIT=0");
    })
    .await
    .expect("the dashboard follows the file");
    drop(term);
    fleet.stop().await;
}

#[tokio::test]
async fn a_batch_is_one_line_whose_outputs_gather_and_whose_members_open() {
    if !Tmux::available() {
        eprintln!("SKIPPED dashboard: tmux is not installed (apt-get install tmux)");
        return;
    }
    let fleet = fleet_or_skip!("web01", "web02");
    let term = Arc::new(Tmux::start(&fleet, 120, 30));
    let t = Arc::clone(&term);
    tokio::task::spawn_blocking(move || {
        t.wait("both crews connected", |s| {
            s.contains("● web01") && s.contains("● web02")
        });
        t.type_text(":start all -- echo gathered-hello");
        t.keys(&["Enter"]);
        // One line for the batch, its members behind it.
        let screen = t.wait("the batch's line", |s| {
            s.contains("▸ 2 crews") && s.contains("2 ok")
        });
        assert!(
            !screen.lines().any(|l| l.starts_with("│  web0")),
            "members hidden: {screen}"
        );
        let (col, row) = t.find("▸ 2 crews", "▸");
        t.click(col, row);
        t.keys(&["Enter"]);
        let screen = t.wait("the gathered view", |s| {
            s.contains("web[01-02] (2) exit 0") && s.contains("gathered-hello")
        });
        assert_eq!(
            screen.matches("gathered-hello").count(),
            1,
            "the output once, under both crews: {screen}"
        );
        // ⏎: the members, the first selected; ⏎ again attaches it.
        t.keys(&["Enter"]);
        t.wait("the members listed", |s| {
            s.contains("▾ 2 crews") && s.contains("  web02")
        });
        t.keys(&["Enter"]);
        t.wait("a member attached", |s| pane(s).contains("gathered-hello"));
        t.keys(&["Tab"]);
        t.wait("the list focused", |s| s.contains("⏎/a attach"));
        t.keys(&["Left"]);
        t.wait("the batch closed", |s| s.contains("▸ 2 crews"));
        t.keys(&["q"]);
        t.wait_for("FOREMAN-EXIT=0");
    })
    .await
    .expect("the batch in the dashboard");
    drop(term);
    fleet.stop().await;
}

/// The log view (`L`): a job's whole output, searched, with its times and
/// stderr, saved to a file byte for byte; then the job archived, shown
/// again with `A` and un-archived with `u`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_log_view_searches_shows_times_and_saves_and_archived_jobs_come_back() {
    if !Tmux::available() {
        eprintln!("SKIPPED dashboard: tmux is not installed (apt-get install tmux)");
        return;
    }
    let fleet = fleet_or_skip!("alpha");
    let script = "for i in $(seq 1 200); do echo line-$i; done; echo needle-here >&2; echo last; printf '\\033]0;pwned\\007'";
    fleet
        .run(ALICE, &["start", "--name", "many", "--", "sh", "-c", script])
        .await
        .expect(0);
    fleet.run(ALICE, &["wait", "many"]).await.expect(0);
    let raw = fleet
        .run(ALICE, &["logs", "--raw", "many"])
        .await
        .expect(0)
        .stdout;
    let dir = tempfile::tempdir().unwrap();
    let saved = dir.path().join("saved.log");
    let term = Arc::new(Tmux::start(&fleet, 100, 30));
    let t = Arc::clone(&term);
    let file = saved.clone();
    let len = raw.len();
    tokio::task::spawn_blocking(move || {
        t.wait("the job listed", |s| {
            s.lines().any(|l| l.contains("many") && l.contains("exit 0"))
        });
        t.keys(&["L"]);
        // It opens at the end, the title escape filtered out.
        let s = t.wait("the log view", |s| {
            s.contains("log alpha/job-1 · lines 176–202 of 202") && s.contains("last")
        });
        assert!(!s.contains("pwned") && s.contains("needle-here"), "{s}");
        t.keys(&["g"]);
        t.wait("the top", |s| {
            s.contains("line-1 ") || s.lines().any(|l| l.trim_matches('│').trim() == "line-1")
        });
        // Search: smart case, counted.
        t.type_text("/NEEDLE");
        t.keys(&["Enter"]);
        t.wait_for("/NEEDLE: no match");
        t.type_text("/needle");
        t.keys(&["Enter"]);
        t.wait_for("/needle: 1 of 1");
        // Smart case: upper case matches case.
        t.type_text("/LINE-1");
        t.keys(&["Enter"]);
        t.wait_for("/LINE-1: no match");
        // From the last line it goes round; the match is the top line,
        // highlighted.
        t.type_text("/line-19");
        t.keys(&["Enter"]);
        let s = t.wait_for("/line-19: 1 of 11");
        assert!(s.contains("lines 19–45 of 202"), "{s}");
        let top = s.lines().nth(1).unwrap_or_default();
        assert_eq!(top.trim_matches('│').trim(), "line-19", "{s}");
        let styled = t.tmux(&["capture-pane", "-p", "-e", "-t", "e2e"]);
        let top = styled.lines().nth(1).unwrap_or_default();
        // A colour sequence right before it, none before the next line's.
        assert!(top.contains("mline-19"), "the match is styled: {top:?}");
        let next = styled.lines().nth(2).unwrap_or_default();
        assert!(next.contains("line-20") && !next.contains("mline-20"), "{next:?}");
        t.keys(&["n"]);
        t.wait_for("/line-19: 2 of 11");
        t.keys(&["N", "N"]);
        t.wait_for("/line-19: 11 of 11");
        t.type_text("/needle");
        t.keys(&["Enter"]);
        t.wait_for("/needle: 1 of 1");
        // Times: each line after its time, UTC to the millisecond.
        t.keys(&["t"]);
        t.wait("times shown", |s| s.lines().any(|l| l.contains("Z needle-here")));
        // Save: the bytes as stored, to a new file.
        // `w`, then the offered name replaced by `file`'s.
        let save_to_file = || {
            t.keys(&["w"]);
            t.wait_for("save to: ./alpha-job-1.log");
            for _ in 0.."./alpha-job-1.log".len() {
                t.keys(&["BSpace"]);
            }
            t.type_text(&file.display().to_string());
            t.keys(&["Enter"]);
        };
        save_to_file();
        t.wait_for(&format!("saved {len} bytes to {}", file.display()));
        // Never over a file that exists.
        save_to_file();
        t.wait_for("exists: write over it? (y: yes");
        t.keys(&["n"]);
        t.wait_for("kept: nothing saved");
        save_to_file();
        t.wait_for("exists: write over it? (y: yes");
        t.keys(&["y"]);
        t.wait_for(&format!("saved {len} bytes to {}", file.display()));
        t.keys(&["q"]);
        t.wait("the list again", |s| s.contains("jobs 0 running / 1"));
        // Archived, it leaves the list; A shows it again, u brings it back.
        t.keys(&["x"]);
        t.wait("archived", |s| s.contains("jobs 0 running / 0"));
        t.keys(&["A"]);
        t.wait("shown as archived", |s| {
            s.lines().any(|l| l.contains("job-1") && l.contains("archived"))
                && s.contains("archived shown (A hides)")
        });
        // Its output and details are still there.
        t.keys(&["g", "L"]);
        t.wait("the archived job's log", |s| {
            s.contains("log alpha/job-1 · lines") && s.contains("last")
        });
        t.keys(&["q"]);
        t.wait("the list again", |s| s.contains("archived shown (A hides)"));
        t.keys(&["v"]);
        t.wait_for("L its whole output");
        t.keys(&["L"]);
        t.wait_for("log alpha/job-1 · lines");
        t.keys(&["Escape"]);
        t.wait("the list again", |s| s.contains("archived shown (A hides)"));
        t.keys(&["g", "u"]);
        t.wait_for("alpha/job-1 un-archived");
        t.keys(&["A"]);
        t.wait("listed again", |s| {
            s.lines().any(|l| l.contains("job-1") && l.contains("exit 0"))
        });
    })
    .await
    .expect("the log view");
    assert_eq!(std::fs::read(&saved).unwrap(), raw);
    use std::os::unix::fs::PermissionsExt as _;
    assert_eq!(
        std::fs::metadata(&saved).unwrap().permissions().mode() & 0o777,
        0o600
    );
    drop(term);
    fleet.stop().await;
}

/// `F` in the log view: a running job's new output appears as it comes,
/// and following stops when the job ends.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_log_view_follows_a_running_job_to_its_end() {
    if !Tmux::available() {
        eprintln!("SKIPPED dashboard: tmux is not installed (apt-get install tmux)");
        return;
    }
    let fleet = fleet_or_skip!("alpha");
    let dir = tempfile::tempdir().unwrap();
    let go = dir.path().join("go");
    // It prints a line, then one more each time the test lets it.
    let script = format!(
        "echo first; while [ ! -e {go} ]; do sleep 0.05; done; echo second; sleep 0.5; echo third",
        go = go.display()
    );
    fleet
        .run(ALICE, &["start", "--name", "ticker", "--", "sh", "-c", &script])
        .await
        .expect(0);
    let term = Arc::new(Tmux::start(&fleet, 100, 30));
    let t = Arc::clone(&term);
    tokio::task::spawn_blocking(move || {
        t.wait("the job listed", |s| {
            s.lines().any(|l| l.contains("ticker") && l.contains("running"))
        });
        t.keys(&["L"]);
        t.wait("the log view", |s| s.contains("log alpha/job-1 · lines 1–1 of 1"));
        t.keys(&["F"]);
        t.wait_for("· following");
        std::fs::write(&go, b"").unwrap();
        t.wait("new output", |s| {
            s.contains("second") && s.contains("lines 1–2 of 2")
        });
        t.wait("the end", |s| {
            s.contains("third") && s.contains("the job ended: following stopped")
        });
        assert!(!t.screen().contains("· following"));
        t.keys(&["q"]);
        t.wait("the list again", |s| s.contains("jobs 0 running / 1"));
    })
    .await
    .expect("following");
    drop(term);
    fleet.stop().await;
}
