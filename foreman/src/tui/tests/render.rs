//! The views, rendered into ratatui's `TestBackend`: snapshots of the main
//! screens, every tiny size, and hostile job output.

use bytes::Bytes;
use crossterm::event::KeyCode;
use ratatui::Terminal;
use ratatui::backend::TestBackend;

use super::*;
use crate::tui::action::AttachEvent;
use crate::tui::view;

fn render(app: &App) -> Terminal<TestBackend> {
    let mut t = Terminal::new(TestBackend::new(app.size.0, app.size.1)).unwrap();
    t.draw(|f| view::draw(f, app)).unwrap();
    t
}

/// Two crews (beta down), jobs in every state, a tty job attached with a
/// coloured prompt on its screen.
fn busy(size: (u16, u16)) -> App {
    let mut app = app(&["alpha", "beta"], "ada", "admin", size);
    add(
        &mut app,
        0,
        &JobSpec {
            handle: "job-1",
            argv: &["sleep", "1000"],
            ..Default::default()
        },
    );
    add(
        &mut app,
        0,
        &JobSpec {
            handle: "job-2",
            argv: &["make", "-j4", "test"],
            exit: Some(3),
            age_secs: 4000,
            ..Default::default()
        },
    );
    add(
        &mut app,
        0,
        &JobSpec {
            handle: "job-3",
            argv: &["true"],
            exit: Some(0),
            ..Default::default()
        },
    );
    add(
        &mut app,
        1,
        &JobSpec {
            handle: "job-1",
            argv: &["bash", "-l"],
            tty: true,
            owner: "bob",
            age_secs: 5,
            ..Default::default()
        },
    );
    let first = app.jobs.keys().next().unwrap().id.clone();
    update(
        &mut app,
        Action::Crew(
            0,
            CrewEvent::Usage(vec![pb::Usage {
                job_id: first,
                cpu_usec: 1,
                memory_bytes: 3 << 20,
                cpu_cores: 0.5,
            }]),
        ),
    );
    command(&mut app, "attach beta/job-1");
    // Bob's job: ada says yes to typing into it.
    press(&mut app, KeyCode::Char('y'));
    let session = app.attached.as_ref().unwrap().session;
    update(
        &mut app,
        Action::Attach(session, AttachEvent::Opened { writable: true }),
    );
    update(
        &mut app,
        Action::Attach(
            session,
            AttachEvent::Output(Bytes::from_static(
                b"\x1b[32mbob@beta\x1b[0m:~$ ls\r\nMakefile  src\r\n\x1b[32mbob@beta\x1b[0m:~$ ",
            )),
        ),
    );
    update(
        &mut app,
        Action::Crew(
            1,
            CrewEvent::Down {
                why: "unreachable: connection refused".into(),
                refused: false,
                retry_in: std::time::Duration::from_secs(2),
            },
        ),
    );
    app
}

#[test]
fn the_main_view_at_80x24() {
    insta::assert_snapshot!(render(&busy((80, 24))).backend());
}

#[test]
fn the_main_view_at_200x50() {
    insta::assert_snapshot!(render(&busy((200, 50))).backend());
}

#[test]
fn the_job_list_alone_with_a_filter_at_80x24() {
    let mut app = busy((80, 24));
    ctrl(&mut app, ']');
    command(&mut app, "detach");
    press(&mut app, KeyCode::Char('/'));
    type_text(&mut app, "alpha");
    insta::assert_snapshot!(render(&app).backend());
}

#[test]
fn help_and_crews_overlays_at_80x24() {
    let mut app = busy((80, 24));
    ctrl(&mut app, ']');
    command(&mut app, "help");
    insta::assert_snapshot!("help", render(&app).backend());
    press(&mut app, KeyCode::Esc);
    command(&mut app, "crews");
    insta::assert_snapshot!("crews", render(&app).backend());
    press(&mut app, KeyCode::Esc);
    // The selected job's details; any key closes them.
    press(&mut app, KeyCode::Tab);
    let fx = press(&mut app, KeyCode::Char('v'));
    let Some(crate::tui::action::Effect::Trail { job, .. }) = fx.first() else {
        panic!("the trail is asked for: {fx:?}");
    };
    let trail = vec![
        "2027-01-15T08:00:00Z  ada (user)  start  allowed  bash -l (env LANG)".to_owned(),
        "2027-01-15T08:01:00Z  bob (user)  stop  denied: users manage only their own jobs".to_owned(),
    ];
    update(
        &mut app,
        Action::Trail {
            job: job.clone(),
            trail: Ok(trail),
        },
    );
    insta::assert_snapshot!("detail", render(&app).backend());
    press(&mut app, KeyCode::Esc);
    assert!(app.overlay.is_none());
}

#[test]
fn tiny_windows_never_panic_and_say_too_small() {
    for w in 0..=12 {
        for h in 0..=6 {
            let mut app = busy((80, 24));
            update(&mut app, Action::Resize(w, h));
            let t = render(&app);
            if w >= 20 && h >= 1 {
                let text = format!("{}", t.backend());
                assert!(text.contains("small"), "{w}x{h}: {text}");
            }
        }
    }
    // The smallest full view, one below it, and odd shapes, with wide
    // characters in a job's command.
    for (w, h) in [
        (40, 10),
        (39, 10),
        (40, 9),
        (41, 11),
        (300, 2),
        (300, 12),
        (41, 60),
    ] {
        let mut app = busy((80, 24));
        add(
            &mut app,
            0,
            &JobSpec {
                handle: "job-9",
                argv: &["echo", "日本語のテキスト🚀🚀🚀"],
                ..Default::default()
            },
        );

        update(&mut app, Action::Resize(w, h));
        render(&app);
    }
    let mut app = busy((80, 24));
    update(&mut app, Action::Resize(30, 8));
    insta::assert_snapshot!("too_small", render(&app).backend());
}

/// Sequences a job could use against the operator's terminal.
const HOSTILE: &[&[u8]] = &[
    b"\x1b]0;pwned title\x07",
    b"\x1b]2;pwned title\x1b\\",
    b"\x1b]52;c;ZWNobyBwd25lZA==\x07",
    b"\x1b]8;;https://evil.example/\x1b\\click\x1b]8;;\x1b\\",
    b"\x1bP+q544e\x1b\\",
    b"\x1b_application program command\x1b\\",
    b"\x1b^privacy message\x1b\\",
    b"\x1bXstart of string\x1b\\",
    b"\x1b[6n\x1b[c\x1b[>c\x1b[21t\x1b[14t\x1b[?1049h",
    b"\x1bc",
    b"\xc2\x9b6n\xc2\x9d0;c1 title\xc2\x9c\x9b31m",
    b"\x07\x08\x7f\x00\x05",
    "\u{202e}reversed\u{202c} \u{200b}zero\u{2066}width\u{2069}".as_bytes(),
    b"\x1b[?1000h\x1b[?1006h\x1b[?2004h\x1b[?25l",
    b"\x1b#8\x1b(0lqk\x1b(B",
    b"\xff\xfe invalid utf-8 \xed\xa0\x80",
];

fn hostile_app() -> App {
    let mut app = busy((80, 24));
    let session = app.attached.as_ref().unwrap().session;
    for seq in HOSTILE {
        update(
            &mut app,
            Action::Attach(session, AttachEvent::Output(Bytes::copy_from_slice(seq))),
        );
        update(
            &mut app,
            Action::Attach(session, AttachEvent::Output(Bytes::from_static(b" | "))),
        );
    }
    app
}

#[test]
fn hostile_output_reaches_the_backend_as_printable_cells_only() {
    let app = hostile_app();
    let t = render(&app);
    for cell in t.backend().buffer().content() {
        for c in cell.symbol().chars() {
            assert!(
                view::terminal::printable(c),
                "{c:?} (U+{:04X}) reached a cell",
                u32::from(c)
            );
        }
    }
}

#[test]
fn hostile_output_never_reaches_the_real_terminal_as_a_sequence() {
    // The bytes the real backend writes: ours (cursor moves, SGR colours)
    // and nothing of the job's.
    let app = hostile_app();
    let mut out: Vec<u8> = Vec::new();
    {
        let backend = ratatui::backend::CrosstermBackend::new(&mut out);
        let mut t = Terminal::with_options(
            backend,
            ratatui::TerminalOptions {
                viewport: ratatui::Viewport::Fixed(ratatui::layout::Rect::new(0, 0, 80, 24)),
            },
        )
        .unwrap();
        t.draw(|f| view::draw(f, &app)).unwrap();
    }
    let text = String::from_utf8(out).expect("UTF-8 only");
    for bad in [
        "\x1b]", "\x1bP", "\x1b_", "\x1b^", "\x1bX", "\x1bc", "\x07", "[6n", "[21t", "\x1b(0",
    ] {
        assert!(!text.contains(bad), "{bad:?} reached the terminal");
    }
    for c in text.chars() {
        let c1 = ('\u{80}'..='\u{9f}').contains(&c);
        let bidi = matches!(c, '\u{202a}'..='\u{202e}' | '\u{2066}'..='\u{2069}');
        assert!(!c1 && !bidi, "{c:?} reached the terminal");
        assert!(c == '\x1b' || !c.is_control() || c == '\r' || c == '\n', "{c:?}");
    }
    // Our own escapes are only CSI (cursor, SGR, erase): every ESC starts one.
    let mut rest = text.as_str();
    while let Some(i) = rest.find('\x1b') {
        assert!(
            rest[i + 1..].starts_with('['),
            "a non-CSI escape: {:?}",
            &rest[i..(i + 6).min(rest.len())]
        );
        rest = &rest[i + 1..];
    }
}

/// The empty list tells a new user a `:start` that works: with several
/// crews it must name one.
#[test]
fn the_empty_list_shows_a_start_that_works() {
    let text = |t: &Terminal<TestBackend>| {
        let buf = t.backend().buffer();
        buf.content().iter().map(|c| c.symbol()).collect::<String>()
    };
    let one = app(&["alpha"], "ada", "admin", (80, 24));
    assert!(text(&render(&one)).contains("no jobs yet: :start -- CMD starts one"));
    let mut two = app(&["alpha", "beta"], "ada", "admin", (80, 24));
    assert!(text(&render(&two)).contains("no jobs yet: :start alpha -- CMD starts one"));
    // And that line does start a job.
    let effects = command(&mut two, "start alpha -- true");
    assert!(
        effects.iter().any(|e| matches!(e, Effect::Start { .. })),
        "{effects:?}"
    );
}

#[test]
fn a_batch_line_and_its_gathered_view_at_100x24() {
    let mut app = app(&["web01", "web02", "web03"], "ada", "admin", (100, 24));
    let mut ids = Vec::new();
    for (crew, exit) in [(0, None), (1, Some(0)), (2, Some(3))] {
        let member = JobSpec {
            argv: &["uptime"],
            exit,
            batch: BATCH,
            ..Default::default()
        };
        ids.push(add(&mut app, crew, &member).id);
    }
    insta::assert_snapshot!("batch_line", render(&app).backend());
    press(&mut app, KeyCode::Enter);
    let outputs = ids
        .iter()
        .enumerate()
        .map(|(crew, id)| crate::tui::action::MemberOutput {
            crew,
            job: id.clone(),
            output: Ok(if crew == 2 {
                b"not found\n".to_vec()
            } else {
                b"up 3 days\n".to_vec()
            }),
            cut: 0,
        })
        .collect();
    update(
        &mut app,
        Action::Gathered {
            batch: BATCH.into(),
            outputs,
        },
    );
    insta::assert_snapshot!("gathered", render(&app).backend());
}

#[test]
fn the_hints_follow_the_selection_and_the_mode() {
    let mut app = app(&["alpha"], "ada", "admin", (100, 24));
    add(&mut app, 0, &JobSpec::default());
    add(
        &mut app,
        0,
        &JobSpec {
            handle: "job-2",
            exit: Some(0),
            ..Default::default()
        },
    );
    let hints = |app: &App| {
        render(app)
            .backend()
            .to_string()
            .lines()
            .last()
            .unwrap_or_default()
            .to_owned()
    };
    press(&mut app, KeyCode::Char('g'));
    assert!(hints(&app).contains("s stop"), "a running job: {}", hints(&app));
    press(&mut app, KeyCode::Down);
    let h = hints(&app);
    assert!(
        h.contains("x archive") && !h.contains("s stop"),
        "an ended job: {h}"
    );
    press(&mut app, KeyCode::Char('/'));
    assert!(hints(&app).contains("⏎ keep"), "the filter: {}", hints(&app));
}

#[test]
fn a_help_line_too_long_for_the_window_says_it_is_cut() {
    let mut app = app(&["alpha"], "ada", "admin", (80, 24));
    press(&mut app, KeyCode::Char('?'));
    for _ in 0..10 {
        press(&mut app, KeyCode::PageDown);
    }
    let screen = render(&app).backend().to_string();
    let start = screen
        .lines()
        .find(|l| l.contains(":start"))
        .unwrap_or_else(|| panic!("no :start line: {screen}"));
    assert!(start.contains('…'), "cut without a mark: {start}");
}

#[test]
fn a_small_window_with_a_job_attached_still_lists_a_job() {
    let mut app = app(&["alpha"], "ada", "admin", (40, 10));
    add(&mut app, 0, &JobSpec::default());
    press(&mut app, KeyCode::Enter);
    assert!(app.attached.is_some());
    let screen = render(&app).backend().to_string();
    assert!(screen.lines().any(|l| l.contains("alpha job-1")), "{screen}");
}

/// A fleet's usage figures draw a frame only when a job on screen changed:
/// 250 crews' reports must not redraw the dashboard 250 times a second.
#[test]
fn usage_of_jobs_off_screen_draws_nothing() {
    let mut app = app(&["alpha"], "ada", "admin", (100, 12));
    let ids: Vec<String> = (1..=40)
        .map(|n| {
            add(
                &mut app,
                0,
                &JobSpec {
                    handle: &format!("job-{n}"),
                    ..Default::default()
                },
            )
            .id
        })
        .collect();
    render(&app);
    let usage = |id: &str| {
        Action::Crew(
            0,
            CrewEvent::Usage(vec![pb::Usage {
                job_id: id.to_owned(),
                cpu_usec: 1,
                memory_bytes: 1 << 20,
                cpu_cores: 0.5,
            }]),
        )
    };
    update(&mut app, usage(&ids[39]));
    assert!(app.quiet, "job-40 is not on a 12-line screen");
    assert!(
        app.list_cache.borrow().is_some(),
        "figures leave the list as it was made"
    );
    update(&mut app, usage(&ids[0]));
    assert!(!app.quiet, "job-1 is");
    // Any other news draws; a job's news makes the list again.
    update(&mut app, Action::Tick(now()));
    assert!(!app.quiet);
    add(
        &mut app,
        0,
        &JobSpec {
            handle: "job-41",
            ..Default::default()
        },
    );
    assert_eq!(app.list().total, 41);
}

/// The log view of a job with a search, a stderr line and a drop.
fn log_app() -> App {
    use crate::tui::logview::LogRead;
    let mut app = app(&["alpha"], "ada", "admin", (80, 16));
    let j = add(&mut app, 0, &JobSpec::default());
    press(&mut app, KeyCode::Char('L'));
    let mut read = LogRead::at(4096);
    read.output(
        4096,
        b"building\n\x1b[32mok\x1b[0m step 1\n\x1b]0;pwned\x07warning: step 2 slow\n",
        vec![],
    );
    read.dropped(read.end, 65536);
    let at = read.end;
    read.output(at, b"step 3\nStep 4 done\nerror: none\n", vec![]);
    update(
        &mut app,
        Action::Log {
            job: j.id,
            follow: None,
            read: Ok(read),
        },
    );
    app
}

#[test]
fn the_log_view_with_a_search_and_a_drop_at_80x16() {
    let mut app = log_app();
    press(&mut app, KeyCode::Char('g'));
    type_text(&mut app, "/step");
    press(&mut app, KeyCode::Enter);
    let t = render(&app);
    insta::assert_snapshot!("log_view", t.backend());
    // The hits are highlighted, and nothing else is.
    let buf = t.backend().buffer();
    let lit: String = buf
        .content()
        .iter()
        .filter(|c| c.bg == ratatui::style::Color::Yellow)
        .map(ratatui::buffer::Cell::symbol)
        .collect();
    assert_eq!(lit, "stepstepstepStep", "smart case: every step, Step too");
    let screen = format!("{:?}", t.backend());
    assert!(screen.contains("/step: 1 of 4"), "{screen}");
    assert!(screen.contains("65536 bytes dropped here"), "{screen}");
    assert!(!screen.contains("pwned") && !screen.contains("[32m"), "{screen}");
}

#[test]
fn the_log_views_save_prompts_at_80x16() {
    let mut app = log_app();
    press(&mut app, KeyCode::Char('w'));
    insta::assert_snapshot!("log_save", render(&app).backend());
    if let Some(v) = app.log.as_mut() {
        v.on_saved(crate::tui::logview::Saved::Exists("./alpha-job-1.log".into()));
    }
    insta::assert_snapshot!("log_overwrite", render(&app).backend());
}

#[test]
fn archived_rows_are_dim_and_said_at_100x12() {
    let mut app = app(&["alpha"], "ada", "admin", (100, 12));
    add(&mut app, 0, &JobSpec::default());
    press(&mut app, KeyCode::Char('A'));
    let mut old = job(
        0,
        &JobSpec {
            handle: "job-7",
            argv: &["make", "release"],
            exit: Some(0),
            ..Default::default()
        },
    );
    old.archived = true;
    update(&mut app, Action::ArchivedJobs(0, Ok(vec![old])));
    let t = render(&app);
    insta::assert_snapshot!("archived_rows", t.backend());
    let buf = t.backend().buffer();
    let row = (0..buf.area.height)
        .find(|&y| {
            (0..buf.area.width)
                .map(|x| buf[(x, y)].symbol().to_owned())
                .collect::<String>()
                .contains("make release")
        })
        .expect("the archived row is listed");
    let x = (0..buf.area.width)
        .find(|&x| buf[(x, row)].symbol() == "m")
        .unwrap();
    assert!(
        buf[(x, row)].modifier.contains(ratatui::style::Modifier::DIM),
        "dim"
    );
}
