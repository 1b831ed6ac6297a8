//! `update`: every key path and command, as state and effects.

use std::time::Duration;

use bytes::Bytes;
use crossterm::event::{KeyCode, KeyEvent, KeyModifiers, MouseEvent, MouseEventKind};

use super::*;
use crate::tui::action::{AttachEvent, Input, MemberOutput, Notice};
use crate::tui::app::{Focus, Link, Mode, Overlay, RowKey};
use crate::tui::keys;
use crate::tui::layout;

fn three_jobs(app: &mut App) {
    add(app, 0, &JobSpec::default());
    add(
        app,
        0,
        &JobSpec {
            handle: "job-2",
            argv: &["make", "test"],
            exit: Some(3),
            ..Default::default()
        },
    );
    add(
        app,
        1,
        &JobSpec {
            handle: "job-1",
            argv: &["bash"],
            tty: true,
            owner: "bob",
            ..Default::default()
        },
    );
}

fn error(app: &App) -> String {
    match &app.notice {
        Some(Notice { text, error: true }) => text.clone(),
        other => panic!("expected an error notice, got {other:?}"),
    }
}

fn attach_fx(fx: &[Effect]) -> Option<(usize, String, bool)> {
    fx.iter().find_map(|e| match e {
        Effect::Attach { crew, job, write, .. } => Some((*crew, job.clone(), *write)),
        _ => None,
    })
}

#[test]
fn arrows_pages_and_ends_move_the_selection_and_keep_it_on_screen() {
    let mut app = app(&["alpha"], "ada", "admin", (80, 24));
    for n in 1..=100 {
        add(
            &mut app,
            0,
            &JobSpec {
                handle: &format!("job-{n}"),
                ..Default::default()
            },
        );
    }
    let seq = |app: &App| app.selected_job().unwrap().seq;
    assert_eq!(seq(&app), 1, "the first job is selected at first");
    press(&mut app, KeyCode::Down);
    press(&mut app, KeyCode::Char('j'));
    assert_eq!(seq(&app), 3);
    press(&mut app, KeyCode::Char('k'));
    assert_eq!(seq(&app), 2);
    let page = layout::page(&app);
    press(&mut app, KeyCode::PageDown);
    assert_eq!(seq(&app), 2 + page as u64);
    press(&mut app, KeyCode::End);
    assert_eq!(seq(&app), 100);
    assert_eq!(app.offset, 100 - page, "the last job is on screen");
    press(&mut app, KeyCode::Char('g'));
    assert_eq!((seq(&app), app.offset), (1, 0));
    press(&mut app, KeyCode::Up);
    assert_eq!(seq(&app), 1, "the top is the top");
}

#[test]
fn enter_attaches_and_types_into_our_own_job() {
    let mut app = app(&["alpha", "beta"], "ada", "user", (80, 24));
    three_jobs(&mut app);
    let fx = press(&mut app, KeyCode::Enter);
    let (crew, job, write) = attach_fx(&fx).expect("an attach");
    assert_eq!((crew, write), (0, true));
    assert_eq!(job, app.jobs.keys().next().unwrap().id);
    assert_eq!(app.mode, Mode::Input);
    assert_eq!(app.focus, Focus::Terminal);

    // Keys go to the job, as bytes; Enter is a newline for a pipe job.
    let fx = type_text(&mut app, "hi");
    let session = app.attached.as_ref().unwrap().session;
    assert_eq!(
        fx,
        vec![
            Effect::Send {
                session,
                input: Input::Bytes(b"h".to_vec())
            },
            Effect::Send {
                session,
                input: Input::Bytes(b"i".to_vec())
            }
        ]
    );
    assert_eq!(
        press(&mut app, KeyCode::Enter),
        vec![Effect::Send {
            session,
            input: Input::Bytes(b"\n".to_vec())
        }]
    );
    // Ctrl-D is an explicit EOF for a pipe job.
    assert_eq!(
        ctrl(&mut app, 'd'),
        vec![Effect::Send {
            session,
            input: Input::Eof
        }]
    );
    // Ctrl-] (in both spellings a terminal may give) leaves input mode and
    // is never sent.
    assert!(ctrl(&mut app, ']').is_empty());
    assert_eq!(app.mode, Mode::Normal);
    press(&mut app, KeyCode::Char('i'));
    assert_eq!(app.mode, Mode::Input);
    assert!(ctrl(&mut app, '5').is_empty());
    assert_eq!(app.mode, Mode::Normal);
    // In the terminal pane, `q` quits rather than typing: input mode is off.
    let fx = press(&mut app, KeyCode::Char('q'));
    assert!(fx.contains(&Effect::Quit));
    assert!(fx.contains(&Effect::Detach { session }), "quitting detaches");
}

#[test]
fn a_tty_job_gets_raw_keys_ctrl_c_included_and_the_panes_size() {
    let mut app = app(&["alpha", "beta"], "ada", "admin", (80, 24));
    three_jobs(&mut app);
    let fx = command(&mut app, "attach beta/job-1");
    let (crew, _, write) = attach_fx(&fx).unwrap();
    assert_eq!((crew, write), (1, true), "an admin may write to bob's job");
    // ...once asked: it is bob's, not ada's.
    assert!(matches!(app.mode, Mode::Confirm(_)));
    let asked = app.notice.as_ref().unwrap().text.clone();
    assert_eq!(asked, "type into bob's job beta/job-1? y/n (n: watch only)");
    assert!(press(&mut app, KeyCode::Char('y')).is_empty());
    assert!(matches!(app.mode, Mode::Input));
    let session = app.attached.as_ref().unwrap().session;
    // The crew confirms: the pty takes the pane's size.
    let fx = update(
        &mut app,
        Action::Attach(session, AttachEvent::Opened { writable: true }),
    );
    let screen = layout::areas(&app).screen;
    assert_eq!(
        fx,
        vec![Effect::Send {
            session,
            input: Input::Resize(screen.height, screen.width)
        }]
    );
    assert_eq!(
        ctrl(&mut app, 'c'),
        vec![Effect::Send {
            session,
            input: Input::Bytes(vec![3])
        }]
    );
    assert_eq!(
        ctrl(&mut app, 'd'),
        vec![Effect::Send {
            session,
            input: Input::Bytes(vec![4])
        }]
    );
    assert_eq!(
        press(&mut app, KeyCode::Enter),
        vec![Effect::Send {
            session,
            input: Input::Bytes(b"\r".to_vec())
        }]
    );
    assert_eq!(
        press(&mut app, KeyCode::Up),
        vec![Effect::Send {
            session,
            input: Input::Bytes(b"\x1b[A".to_vec())
        }]
    );
    // The window grows: the pty follows, once.
    let fx = update(&mut app, Action::Resize(120, 40));
    let screen = layout::areas(&app).screen;
    assert_eq!(
        fx,
        vec![Effect::Send {
            session,
            input: Input::Resize(screen.height, screen.width)
        }]
    );
    assert!(update(&mut app, Action::Resize(120, 40)).is_empty());
    // A paste is bracketed once the job asked for it.
    update(
        &mut app,
        Action::Attach(session, AttachEvent::Output(Bytes::from_static(b"\x1b[?2004h"))),
    );
    assert_eq!(
        update(&mut app, Action::Paste("ls\n".into())),
        vec![Effect::Send {
            session,
            input: Input::Bytes(b"\x1b[200~ls\n\x1b[201~".to_vec())
        }]
    );
}

#[test]
fn a_job_we_may_not_write_to_is_attached_read_only() {
    let mut app = app(&["alpha", "beta"], "vic", "viewer", (80, 24));
    three_jobs(&mut app);
    let (_, _, write) = attach_fx(&press(&mut app, KeyCode::Enter)).unwrap();
    assert!(!write);
    assert_eq!(app.mode, Mode::Normal, "no input mode for a viewer");
    assert!(type_text(&mut app, "i").is_empty());
    assert!(error(&app).contains("read-only"));

    // A user attaching another user's job: also read-only.
    let mut app = super::app(&["alpha", "beta"], "ada", "user", (80, 24));
    three_jobs(&mut app);
    let (_, _, write) = attach_fx(&command(&mut app, "attach beta/job-1")).unwrap();
    assert!(!write, "bob's job");
    // The crew has the last word: it may say read-only to what we guessed.
    let mut app = super::app(&["alpha"], "ada", "user", (80, 24));
    add(&mut app, 0, &JobSpec::default());
    press(&mut app, KeyCode::Enter);
    assert_eq!(app.mode, Mode::Input);
    let session = app.attached.as_ref().unwrap().session;
    update(
        &mut app,
        Action::Attach(session, AttachEvent::Opened { writable: false }),
    );
    assert_eq!(app.mode, Mode::Normal);
}

#[test]
fn output_ends_and_losses_of_the_attached_job() {
    let mut app = app(&["alpha"], "ada", "admin", (80, 24));
    add(&mut app, 0, &JobSpec::default());
    press(&mut app, KeyCode::Enter);
    let session = app.attached.as_ref().unwrap().session;
    update(
        &mut app,
        Action::Attach(session, AttachEvent::Output(Bytes::from_static(b"one\ntwo\n"))),
    );
    let contents = app.attached.as_ref().unwrap().term.contents();
    assert!(contents.starts_with("one\ntwo"), "{contents:?}");
    // Events of an older attach change nothing.
    update(
        &mut app,
        Action::Attach(session + 7, AttachEvent::Output(Bytes::from_static(b"stale"))),
    );
    assert!(!app.attached.as_ref().unwrap().term.contents().contains("stale"));
    let mut ended = job(
        0,
        &JobSpec {
            exit: Some(0),
            ..Default::default()
        },
    );
    ended.outcome.as_mut().unwrap().summary = "finished (exit code 0)".into();
    update(
        &mut app,
        Action::Attach(session, AttachEvent::Ended(Box::new(ended))),
    );
    let a = app.attached.as_ref().unwrap();
    assert_eq!(a.ended.as_deref(), Some("finished (exit code 0)"));
    assert_eq!(app.mode, Mode::Normal, "nothing to type into");
    assert!(
        app.jobs.values().next().unwrap().job.outcome.is_some(),
        "the list knows too"
    );

    // A stream lost mid-way says so, and ⏎ attaches again.
    let mut app = super::app(&["alpha"], "ada", "admin", (80, 24));
    add(&mut app, 0, &JobSpec::default());
    press(&mut app, KeyCode::Enter);
    let session = app.attached.as_ref().unwrap().session;
    update(
        &mut app,
        Action::Attach(session, AttachEvent::Closed(Some("connection reset".into()))),
    );
    assert!(error(&app).contains("connection reset"));
    assert_eq!(app.mode, Mode::Normal);
    press(&mut app, KeyCode::Tab);
    let fx = press(&mut app, KeyCode::Enter);
    assert!(attach_fx(&fx).is_some(), "re-attached: {fx:?}");
    assert!(fx.contains(&Effect::Detach { session }));
}

#[test]
fn stop_asks_first_and_only_yes_stops() {
    let mut app = app(&["alpha"], "ada", "admin", (80, 24));
    add(&mut app, 0, &JobSpec::default());
    assert!(press(&mut app, KeyCode::Char('s')).is_empty());
    assert!(matches!(app.mode, Mode::Confirm(_)));
    assert!(
        app.notice
            .as_ref()
            .unwrap()
            .text
            .contains("stop alpha/job-1 (sleep 100)? y/n")
    );
    assert!(press(&mut app, KeyCode::Char('n')).is_empty());
    assert_eq!(app.mode, Mode::Normal);
    press(&mut app, KeyCode::Char('s'));
    let fx = press(&mut app, KeyCode::Char('y'));
    assert!(matches!(fx.as_slice(), [Effect::Stop { crew: 0, label, .. }] if label == "alpha/job-1"));
    // An ended job has nothing to stop.
    add(
        &mut app,
        0,
        &JobSpec {
            handle: "job-2",
            exit: Some(1),
            ..Default::default()
        },
    );
    press(&mut app, KeyCode::End);
    assert!(press(&mut app, KeyCode::Char('s')).is_empty());
    assert!(error(&app).contains("already ended"));
}

#[test]
fn archive_takes_ended_jobs_only() {
    let mut app = app(&["alpha"], "ada", "admin", (80, 24));
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
    assert!(press(&mut app, KeyCode::Char('x')).is_empty());
    assert!(error(&app).contains("running: stop it first"));
    press(&mut app, KeyCode::Down);
    let fx = press(&mut app, KeyCode::Char('x'));
    assert!(matches!(fx.as_slice(), [Effect::Archive { label, .. }] if label == "alpha/job-2"));
    // The crew says it is archived: it leaves the list.
    let j = job(
        0,
        &JobSpec {
            handle: "job-2",
            exit: Some(0),
            ..Default::default()
        },
    );
    update(&mut app, Action::Crew(0, CrewEvent::Archived(Box::new(j))));
    assert_eq!(app.visible().len(), 1);
}

#[test]
fn archived_jobs_show_on_a_and_u_unarchives_one() {
    let mut app = app(&["alpha", "beta"], "ada", "admin", (80, 24));
    add(&mut app, 0, &JobSpec::default());
    let fx = press(&mut app, KeyCode::Char('A'));
    assert_eq!(
        fx,
        [Effect::ListArchived { crew: 0 }, Effect::ListArchived { crew: 1 }],
        "every crew asked"
    );
    let old = archived_job_7();
    update(&mut app, Action::ArchivedJobs(0, Ok(vec![old.clone()])));
    update(&mut app, Action::ArchivedJobs(1, Err("no answer in 10 s".into())));
    assert!(error(&app).contains("beta: archived jobs not listed"));
    assert_eq!(app.visible().len(), 2);
    // Select the archived one: x says it is archived, u un-archives it.
    press(&mut app, KeyCode::Down);
    assert!(press(&mut app, KeyCode::Char('x')).is_empty());
    assert!(error(&app).contains("archived already"));
    let fx = press(&mut app, KeyCode::Char('u'));
    assert!(
        matches!(fx.as_slice(), [Effect::Unarchive { label, .. }] if label == "alpha/job-7"),
        "{fx:?}"
    );
    // Archived meanwhile by someone: kept, now archived.
    let mut first = job(
        0,
        &JobSpec {
            exit: Some(0),
            ..Default::default()
        },
    );
    first.archived = true;
    update(&mut app, Action::Crew(0, CrewEvent::Archived(Box::new(first))));
    assert_eq!(app.visible().len(), 2);
    // A again: the archived go.
    press(&mut app, KeyCode::Char('A'));
    assert_eq!(app.visible().len(), 0);
    // And a late answer is not taken.
    update(&mut app, Action::ArchivedJobs(0, Ok(vec![old])));
    assert_eq!(app.visible().len(), 0);
    // u on a job that is not archived says so.
    add(
        &mut app,
        0,
        &JobSpec {
            handle: "job-9",
            ..Default::default()
        },
    );
    assert!(press(&mut app, KeyCode::Char('u')).is_empty());
    assert!(error(&app).contains("not archived") || error(&app).contains("no archived job"));
}

#[test]
fn the_command_line_runs_every_command() {
    let mut app = app(&["alpha", "beta"], "ada", "admin", (80, 24));
    three_jobs(&mut app);
    // A reference on two crews is refused, with both named.
    assert!(command(&mut app, "stop job-1").is_empty());
    let e = error(&app);
    assert!(e.contains("alpha/job-1") && e.contains("beta/job-1"), "{e}");
    // Bob's job, typed out in full by ada: she is told whose it is first.
    assert!(command(&mut app, "stop beta/job-1").is_empty());
    assert!(
        app.notice
            .as_ref()
            .unwrap()
            .text
            .starts_with("stop bob's job beta/job-1 (bash)? y/n")
    );
    let fx = press(&mut app, KeyCode::Char('y'));
    assert!(matches!(fx.as_slice(), [Effect::Stop { crew: 1, .. }]), "{fx:?}");
    // Her own, typed out in full, stops at once.
    let fx = command(&mut app, "stop alpha/job-1");
    assert!(matches!(fx.as_slice(), [Effect::Stop { crew: 0, .. }]), "{fx:?}");
    // References follow the one rule set: a short hex prefix is refused.
    assert!(command(&mut app, "stop abc").is_empty());
    assert!(error(&app).contains("at least 6 hex digits"), "{}", error(&app));
    assert!(command(&mut app, "stop alpha/job-2").is_empty(), "ended");
    let fx = command(&mut app, "archive alpha/job-2");
    assert!(
        matches!(fx.as_slice(), [Effect::Archive { crew: 0, .. }]),
        "{fx:?}"
    );
    let fx = command(&mut app, "attach alpha/job-1");
    assert!(attach_fx(&fx).is_some());
    let session = app.attached.as_ref().unwrap().session;
    ctrl(&mut app, ']');
    let fx = command(&mut app, "detach");
    assert_eq!(fx, vec![Effect::Detach { session }]);
    assert!(app.attached.is_none());
    command(&mut app, "crews");
    assert_eq!(app.overlay, Some(Overlay::Crews));
    press(&mut app, KeyCode::Esc);
    command(&mut app, "help");
    assert_eq!(app.overlay, Some(Overlay::Help(0)));
    press(&mut app, KeyCode::Down);
    assert_eq!(app.overlay, Some(Overlay::Help(1)), "help scrolls");
    press(&mut app, KeyCode::Char('q'));
    assert_eq!(app.overlay, None);
    // Prefixes do: `:q` is `:quit`.
    assert_eq!(command(&mut app, "q"), vec![Effect::Quit]);
    // Unknown commands and bad arguments say so.
    let mut app = super::app(&["alpha"], "ada", "admin", (80, 24));
    assert!(command(&mut app, "frobnicate").is_empty());
    assert!(error(&app).contains("no command :frobnicate"));
    command(&mut app, "attach");
    assert!(error(&app).contains(":attach takes one JOB"));
    command(&mut app, "attach nosuch");
    assert!(error(&app).contains("no job \"nosuch\""));
    command(&mut app, "stop 'unclosed");
    assert!(error(&app).contains("unclosed"));
}

#[test]
fn start_takes_foremans_options_and_a_crew() {
    let mut app = app(&["alpha", "beta"], "ada", "admin", (80, 24));
    let fx = command(
        &mut app,
        "start beta --memory 64M --cpu 0.5 --env A=b -- sh -c 'echo \"hi there\"'",
    );
    let [Effect::Start { crew: 1, spec }] = fx.as_slice() else {
        panic!("{fx:?}")
    };
    assert_eq!(spec.argv, ["sh", "-c", "echo \"hi there\""]);
    let limits = spec.limits.as_ref().unwrap();
    assert_eq!((limits.memory_bytes, limits.cpu), (Some(64 << 20), Some(0.5)));
    assert_eq!(spec.env[0].name, "A");
    assert!(spec.tty.is_none());
    // A tty job starts at the size its pane will have.
    let fx = command(&mut app, "start alpha --tty -- bash");
    let [Effect::Start { crew: 0, spec }] = fx.as_slice() else {
        panic!("{fx:?}")
    };
    let tty = spec.tty.unwrap();
    assert!(tty.rows > 5 && tty.cols == 78, "{tty:?}");
    // Errors: which crew, no such crew, no command, a bad option.
    assert!(command(&mut app, "start -- true").is_empty());
    assert!(error(&app).contains("needs a crew: one of alpha, beta"));
    command(&mut app, "start gamma -- true");
    assert!(error(&app).contains("no crew \"gamma\""));
    command(&mut app, "start alpha");
    assert!(error(&app).starts_with(":start:"), "{}", error(&app));
    command(&mut app, "start alpha --memory lots -- true");
    assert!(error(&app).contains("lots"), "{}", error(&app));
    // With one crew, it needs no name; the started job gets selected.
    let mut app = super::app(&["alpha"], "ada", "admin", (80, 24));
    add(&mut app, 0, &JobSpec::default());
    assert!(matches!(
        command(&mut app, "start -- true").as_slice(),
        [Effect::Start { crew: 0, .. }]
    ));
    let j = job(
        0,
        &JobSpec {
            handle: "job-2",
            argv: &["true"],
            ..Default::default()
        },
    );
    update(&mut app, Action::Started(0, Box::new(j)));
    assert_eq!(app.selected_job().unwrap().seq, 2);
}

#[test]
fn start_on_many_crews_is_one_batch() {
    let mut app = app(&["web01", "web02", "db1"], "ada", "admin", (80, 24));
    app.crews[2].groups = vec!["data".into()];
    let fx = command(&mut app, "start web* -- uptime");
    let starts: Vec<(usize, String)> = fx
        .iter()
        .filter_map(|f| match f {
            Effect::Start { crew, spec } => Some((*crew, spec.batch.clone())),
            _ => None,
        })
        .collect();
    assert_eq!(starts.len(), 2, "{fx:?}");
    assert_eq!((starts[0].0, starts[1].0), (0, 1));
    assert!(
        starts[0].1.starts_with("b-") && starts[0].1 == starts[1].1,
        "{starts:?}"
    );
    assert!(
        app.notice
            .as_ref()
            .is_some_and(|n| n.text.contains("on web[01-02]")),
        "{:?}",
        app.notice
    );
    let fx = command(&mut app, "start @data,web01 -- true");
    let crews: Vec<usize> = fx
        .iter()
        .filter_map(|f| match f {
            Effect::Start { crew, .. } => Some(*crew),
            _ => None,
        })
        .collect();
    assert_eq!(crews, [0, 2]);
    assert!(command(&mut app, "start @nope -- true").is_empty());
    assert!(
        error(&app).contains("no crew is in group \"nope\""),
        "{}",
        error(&app)
    );
    // A crew that discovery dropped is not one of "all".
    update(&mut app, Action::CrewGone(1));
    assert_eq!(command(&mut app, "start all -- true").len(), 2);
}

#[test]
fn the_list_sorts_by_any_column_and_groups_by_crew_owner_or_batch() {
    let mut app = app(&["alpha", "beta"], "ada", "admin", (100, 30));
    let spec = |handle, owner, age_secs, argv| JobSpec {
        handle,
        owner,
        age_secs,
        argv,
        ..Default::default()
    };
    add(&mut app, 0, &spec("job-1", "carol", 30, &["b-cmd"]));
    add(&mut app, 0, &spec("job-2", "ada", 300, &["a-cmd"]));
    add(&mut app, 1, &spec("job-1", "bob", 3000, &["c-cmd"]));
    let order = |app: &App| -> Vec<String> { app.visible().iter().map(|(k, _)| app.label(k)).collect() };
    assert_eq!(order(&app), ["alpha/job-1", "alpha/job-2", "beta/job-1"]);
    command(&mut app, "sort age");
    assert_eq!(
        order(&app),
        ["beta/job-1", "alpha/job-2", "alpha/job-1"],
        "oldest first"
    );
    command(&mut app, "sort command desc");
    assert_eq!(order(&app), ["beta/job-1", "alpha/job-1", "alpha/job-2"]);
    command(&mut app, "group owner");
    command(&mut app, "sort crew");
    assert_eq!(
        order(&app),
        ["alpha/job-2", "beta/job-1", "alpha/job-1"],
        "ada, bob, carol"
    );
    command(&mut app, "group none");
    assert_eq!(order(&app), ["alpha/job-1", "alpha/job-2", "beta/job-1"]);
    command(&mut app, "sort size");
    assert!(error(&app).contains("one of crew, job, state"), "{}", error(&app));
    command(&mut app, "group cpu");
    assert!(
        error(&app).contains(":group crew|owner|batch|none"),
        "{}",
        error(&app)
    );
    // Moving down follows the order on screen.
    command(&mut app, "sort age");
    press(&mut app, KeyCode::Home);
    press(&mut app, KeyCode::Down);
    assert_eq!(
        app.selected_job().map(|k| app.label(k)).as_deref(),
        Some("alpha/job-2")
    );
}

#[test]
fn a_batchs_members_are_counted_live_across_crews() {
    let mut app = app(&["web01", "web02", "web03", "web04"], "ada", "admin", (100, 30));
    let member = |exit: Option<i32>| JobSpec {
        exit,
        batch: BATCH,
        ..Default::default()
    };
    for (crew, exit) in [(0, None), (1, Some(0)), (2, Some(3)), (3, None)] {
        add(&mut app, crew, &member(exit));
    }
    let down = CrewEvent::Down {
        why: "unreachable".into(),
        refused: false,
        retry_in: Duration::from_secs(1),
    };
    update(&mut app, Action::Crew(3, down));
    let c = app.batch_counts(BATCH);
    assert_eq!((c.running, c.ok, c.failed, c.unknown), (1, 1, 1, 1), "{c:?}");
    // web01's member ends: counted at once.
    add(&mut app, 0, &member(Some(0)));
    let c = app.batch_counts(BATCH);
    assert_eq!((c.running, c.ok), (0, 2), "{c:?}");
}

/// Three crews with a batch of three (web01 running, web02 ok, web03
/// exit 3) and a job of its own on web01 before it.
fn a_batch() -> App {
    let mut app = app(&["web01", "web02", "web03"], "ada", "admin", (100, 30));
    add(&mut app, 0, &JobSpec::default());
    for (crew, exit) in [(0, None), (1, Some(0)), (2, Some(3))] {
        let member = JobSpec {
            handle: "job-2",
            argv: &["uptime"],
            exit,
            batch: BATCH,
            ..Default::default()
        };
        add(&mut app, crew, &member);
    }
    app
}

fn row_keys(app: &App) -> Vec<String> {
    app.rows()
        .iter()
        .map(|r| match r.key() {
            RowKey::Batch(b) => format!("batch {b}"),
            RowKey::Job(k) => app.label(&k),
        })
        .collect()
}

#[test]
fn a_batch_is_one_line_that_opens_to_its_members_and_closes_again() {
    let mut app = a_batch();
    assert_eq!(
        row_keys(&app),
        ["web01/job-1", "batch b-0123456789ab"],
        "closed: the batch's line alone, where its first member would be"
    );
    press(&mut app, KeyCode::Down);
    assert_eq!(app.selected, Some(RowKey::Batch(BATCH.into())));
    press(&mut app, KeyCode::Right);
    assert_eq!(
        row_keys(&app),
        [
            "web01/job-1",
            "batch b-0123456789ab",
            "web01/job-2",
            "web02/job-2",
            "web03/job-2"
        ]
    );
    press(&mut app, KeyCode::Down);
    press(&mut app, KeyCode::Down);
    assert_eq!(
        app.selected_job().map(|k| app.label(k)).as_deref(),
        Some("web02/job-2")
    );
    // ← on a member closes its batch; the batch's line is selected.
    press(&mut app, KeyCode::Left);
    assert_eq!(row_keys(&app).len(), 2);
    assert_eq!(app.selected, Some(RowKey::Batch(BATCH.into())));
    // A filter shows what it matches, batch open or not; one member alone
    // needs no batch line.
    press(&mut app, KeyCode::Char('/'));
    type_text(&mut app, "uptime");
    assert_eq!(
        row_keys(&app),
        [
            "batch b-0123456789ab",
            "web01/job-2",
            "web02/job-2",
            "web03/job-2"
        ]
    );
    press(&mut app, KeyCode::Esc);
    press(&mut app, KeyCode::Char('/'));
    type_text(&mut app, "web03");
    assert_eq!(row_keys(&app), ["web03/job-2"]);
}

#[test]
fn a_batchs_line_stops_its_running_members_after_asking() {
    let mut app = a_batch();
    app.selected = Some(RowKey::Batch(BATCH.into()));
    assert!(press(&mut app, KeyCode::Char('s')).is_empty(), "asks first");
    assert!(
        app.notice
            .as_ref()
            .unwrap()
            .text
            .contains("stop the 1 running job of batch b-0123456789ab"),
        "{:?}",
        app.notice
    );
    let fx = press(&mut app, KeyCode::Char('y'));
    let stops: Vec<String> = fx
        .iter()
        .filter_map(|f| match f {
            Effect::Stop { label, .. } => Some(label.clone()),
            _ => None,
        })
        .collect();
    assert_eq!(stops, ["web01/job-2"], "only the running member");
}

#[test]
fn attaching_to_a_batch_gathers_its_outputs_and_opens_a_member() {
    let mut app = a_batch();
    app.selected = Some(RowKey::Batch(BATCH.into()));
    let fx = press(&mut app, KeyCode::Enter);
    let Some(Effect::Gather { batch, members }) = fx.first() else {
        panic!("{fx:?}");
    };
    assert_eq!(batch, BATCH);
    assert_eq!(members.len(), 3);
    assert_eq!(app.overlay, Some(Overlay::Gathered(0)));
    let output = |crew: usize, text: &str| MemberOutput {
        crew,
        job: app
            .jobs
            .keys()
            .find(|k| k.crew == crew && k.seq == 2)
            .unwrap()
            .id
            .clone(),
        output: Ok(text.as_bytes().to_vec()),
        cut: 0,
    };
    let outputs = vec![
        output(0, " 12:00 up 3 days\n"),
        output(1, " 12:00 up 3 days\n"),
        output(2, "uptime: \x1b]52;c;aGk=\x07not found\n"),
    ];
    update(
        &mut app,
        Action::Gathered {
            batch: BATCH.into(),
            outputs,
        },
    );
    let lines = crate::tui::update::gathered_lines(app.gathered.as_ref().unwrap());
    let text: Vec<&str> = lines.iter().map(|(_, l)| l.as_str()).collect();
    assert_eq!(
        text,
        [
            "web[01-02] (2) exit 0, running",
            " 12:00 up 3 days",
            "web03 (1) exit 3",
            "uptime: not found"
        ],
        "identical outputs once; the job's escape sequence filtered out"
    );
    // A member's news: read again at the next tick, not before.
    let mut ended = app
        .jobs
        .values()
        .find(|e| e.job.outcome.is_none() && e.job.batch == BATCH)
        .unwrap()
        .job
        .clone();
    ended.outcome = job(
        0,
        &JobSpec {
            exit: Some(0),
            ..Default::default()
        },
    )
    .outcome;
    assert!(update(&mut app, Action::Crew(0, CrewEvent::Job(Box::new(ended)))).is_empty());
    let fx = update(&mut app, Action::Tick(now()));
    assert!(matches!(fx.as_slice(), [Effect::Gather { .. }]), "{fx:?}");
    // ⏎ lists the members, the top group's first selected.
    press(&mut app, KeyCode::Enter);
    assert_eq!(app.overlay, None);
    assert!(app.open_batches.contains(BATCH));
    assert_eq!(
        app.selected_job().map(|k| app.label(k)).as_deref(),
        Some("web01/job-2")
    );
    let fx = press(&mut app, KeyCode::Enter);
    assert!(
        matches!(fx.first(), Some(Effect::Attach { crew: 0, .. })),
        "{fx:?}"
    );
}

#[test]
fn tab_completes_commands_jobs_and_crews() {
    let mut app = app(&["alpha", "beta"], "ada", "admin", (80, 24));
    three_jobs(&mut app);
    press(&mut app, KeyCode::Char(':'));
    type_text(&mut app, "at");
    press(&mut app, KeyCode::Tab);
    assert_eq!(app.line.text, "attach ");
    type_text(&mut app, "alpha/job-2"[..7].as_ref());
    press(&mut app, KeyCode::Tab);
    assert_eq!(
        app.line.text, "attach alpha/job-",
        "the common part of alpha/job-1 and -2"
    );
    type_text(&mut app, "2");
    press(&mut app, KeyCode::Tab);
    assert_eq!(app.line.text, "attach alpha/job-2 ");
    // A bare handle completes to every crew's; Tab again cycles.
    app.line.set("stop job-1");
    press(&mut app, KeyCode::Tab);
    assert!(
        app.notice
            .as_ref()
            .unwrap()
            .text
            .contains("alpha/job-1  beta/job-1")
    );
    press(&mut app, KeyCode::Tab);
    assert_eq!(app.line.text, "stop alpha/job-1 ");
    press(&mut app, KeyCode::Tab);
    assert_eq!(app.line.text, "stop beta/job-1 ");
    app.line.set("start b");
    app.completion = None;
    press(&mut app, KeyCode::Tab);
    assert_eq!(app.line.text, "start beta ");
    app.line.set("zzz");
    press(&mut app, KeyCode::Tab);
    assert!(error(&app).contains("nothing completes"));
}

#[test]
fn history_recalls_earlier_lines() {
    let mut app = app(&["alpha"], "ada", "admin", (80, 24));
    command(&mut app, "crews");
    press(&mut app, KeyCode::Esc);
    command(&mut app, "help");
    press(&mut app, KeyCode::Esc);
    press(&mut app, KeyCode::Char(':'));
    press(&mut app, KeyCode::Up);
    assert_eq!(app.line.text, "help");
    press(&mut app, KeyCode::Up);
    assert_eq!(app.line.text, "crews");
    press(&mut app, KeyCode::Up);
    assert_eq!(app.line.text, "crews", "the oldest stays");
    press(&mut app, KeyCode::Down);
    assert_eq!(app.line.text, "help");
    press(&mut app, KeyCode::Down);
    assert_eq!(app.line.text, "");
    // Line editing: words, home, delete.
    type_text(&mut app, "stop job-1");
    ctrl(&mut app, 'w');
    assert_eq!(app.line.text, "stop ");
    press(&mut app, KeyCode::Home);
    press(&mut app, KeyCode::Delete);
    assert_eq!(app.line.text, "top ");
    ctrl(&mut app, 'u');
    assert_eq!(app.line.text, "");
    press(&mut app, KeyCode::Backspace);
    assert_eq!(app.mode, Mode::Normal, "backspace on an empty line leaves it");
}

#[test]
fn the_filter_narrows_the_list_live_and_esc_clears_it() {
    let mut app = app(&["alpha", "beta"], "ada", "admin", (80, 24));
    three_jobs(&mut app);
    press(&mut app, KeyCode::Char('/'));
    type_text(&mut app, "make");
    assert_eq!(app.visible().len(), 1, "filtered while typing");
    assert_eq!(app.selected_job().unwrap().seq, 2, "the selection follows");
    press(&mut app, KeyCode::Enter);
    assert_eq!(app.filter, "make");
    assert_eq!(app.visible().len(), 1);
    press(&mut app, KeyCode::Char('/'));
    type_text(&mut app, "X");
    assert!(app.visible().is_empty());
    press(&mut app, KeyCode::Esc);
    assert_eq!(app.filter, "");
    assert_eq!(app.visible().len(), 3);
    // Crews, owners and states match too.
    press(&mut app, KeyCode::Char('/'));
    type_text(&mut app, "exit 3");
    assert_eq!(app.visible().len(), 1);
}

#[test]
fn clicks_on_a_rows_buttons_stop_and_attach_that_job() {
    let mut app = app(&["alpha", "beta"], "ada", "admin", (80, 24));
    three_jobs(&mut app);
    let areas = layout::areas(&app);
    let row =
        |i: u16| ratatui::layout::Rect::new(areas.job_rows.x, areas.job_rows.y + i, areas.job_rows.width, 1);
    let (_, attach) = layout::buttons(row(2));
    let fx = click(&mut app, attach.x + 1, attach.y);
    let (crew, _, _) = attach_fx(&fx).expect("attach clicked");
    assert_eq!(crew, 1, "the third row is beta/job-1");
    let (stop, _) = layout::buttons(row(0));
    let fx = click(&mut app, stop.x, stop.y);
    assert!(fx.is_empty());
    assert!(matches!(&app.mode, Mode::Confirm(p) if p.label == "alpha/job-1"));
    press(&mut app, KeyCode::Char('n'));
    // A click elsewhere on a row selects it; the wheel moves the selection.
    click(&mut app, row(1).x + 2, row(1).y);
    assert_eq!(app.selected_job().unwrap().seq, 2);
    update(
        &mut app,
        Action::Mouse(MouseEvent {
            kind: MouseEventKind::ScrollDown,
            column: row(0).x + 2,
            row: row(0).y,
            modifiers: KeyModifiers::NONE,
        }),
    );
    assert_eq!(app.selected_job().unwrap().crew, 1, "the last row");
    // A click on the crew strip shows the crews.
    click(&mut app, 3, 0);
    assert_eq!(app.overlay, Some(Overlay::Crews));
}

#[test]
fn the_mouse_over_a_tty_program_that_asked_for_it_goes_to_the_program() {
    let mut app = app(&["alpha", "beta"], "ada", "admin", (80, 24));
    three_jobs(&mut app);
    command(&mut app, "attach beta/job-1");
    press(&mut app, KeyCode::Char('y'));
    let session = app.attached.as_ref().unwrap().session;
    update(
        &mut app,
        Action::Attach(session, AttachEvent::Opened { writable: true }),
    );
    assert!(matches!(app.mode, Mode::Input));
    let screen = layout::areas(&app).screen;
    let wheel = |app: &mut App| {
        update(
            app,
            Action::Mouse(MouseEvent {
                kind: MouseEventKind::ScrollUp,
                column: screen.x + 1,
                row: screen.y + 1,
                modifiers: KeyModifiers::NONE,
            }),
        )
    };
    // Not asked for: the wheel scrolls the pane, nothing is sent.
    update(
        &mut app,
        Action::Attach(session, AttachEvent::Output(Bytes::from("x\r\n".repeat(40)))),
    );
    assert!(wheel(&mut app).is_empty());
    assert!(app.attached.as_ref().unwrap().term.scrolled() > 0);
    app.attached.as_mut().unwrap().term.scroll_to_live();
    // Asked for (VT200 + SGR): a click and the wheel go to the program,
    // at its own coordinates (1-based, from the screen's corner).
    update(
        &mut app,
        Action::Attach(
            session,
            AttachEvent::Output(Bytes::from_static(b"\x1b[?1000h\x1b[?1006h")),
        ),
    );
    assert_eq!(
        click(&mut app, screen.x + 4, screen.y + 2),
        vec![Effect::Send {
            session,
            input: Input::Bytes(b"\x1b[<0;5;3M".to_vec())
        }]
    );
    let release = update(
        &mut app,
        Action::Mouse(MouseEvent {
            kind: MouseEventKind::Up(crossterm::event::MouseButton::Left),
            column: screen.x + 4,
            row: screen.y + 2,
            modifiers: KeyModifiers::CONTROL,
        }),
    );
    assert_eq!(
        release,
        vec![Effect::Send {
            session,
            input: Input::Bytes(b"\x1b[<16;5;3m".to_vec())
        }]
    );
    assert_eq!(
        wheel(&mut app),
        vec![Effect::Send {
            session,
            input: Input::Bytes(b"\x1b[<64;2;2M".to_vec())
        }]
    );
    assert_eq!(app.attached.as_ref().unwrap().term.scrolled(), 0);
    // Outside the screen, and out of input mode, the dashboard's own.
    let (_, attach) = layout::buttons(ratatui::layout::Rect::new(
        layout::areas(&app).job_rows.x,
        layout::areas(&app).job_rows.y,
        layout::areas(&app).job_rows.width,
        1,
    ));
    let (crew, _, _) = attach_fx(&click(&mut app, attach.x + 1, attach.y)).expect("attach clicked");
    assert_eq!(crew, 0, "the first row is alpha/job-1");
}

#[test]
fn crews_go_down_come_back_and_replace_their_jobs() {
    let mut app = app(&["alpha", "beta"], "ada", "admin", (80, 24));
    three_jobs(&mut app);
    update(
        &mut app,
        Action::Crew(
            1,
            CrewEvent::Down {
                why: "unreachable: connection refused".into(),
                refused: false,
                retry_in: Duration::from_secs(2),
            },
        ),
    );
    assert!(
        matches!(&app.crews[1].link, Link::Reconnecting { why, .. } if why.contains("connection refused"))
    );
    assert_eq!(app.visible().len(), 3, "its jobs stay, shown as stale");
    update(
        &mut app,
        Action::Crew(
            1,
            CrewEvent::Down {
                why: "certificate: \x1b]0;evil\x07UnknownIssuer".into(),
                refused: true,
                retry_in: Duration::from_secs(4),
            },
        ),
    );
    let Link::Refused { why, .. } = &app.crews[1].link else {
        panic!()
    };
    assert!(
        !why.contains('\x1b') && !why.contains('\x07'),
        "filtered: {why:?}"
    );
    // Back, with a snapshot: it replaces what we knew of that crew only.
    update(
        &mut app,
        Action::Crew(
            1,
            CrewEvent::Up {
                identity: "ada".into(),
                role: "admin".into(),
            },
        ),
    );
    let fresh = job(
        1,
        &JobSpec {
            handle: "job-9",
            ..Default::default()
        },
    );
    update(
        &mut app,
        Action::Crew(1, CrewEvent::Snapshot(vec![fresh.clone()])),
    );
    assert!(app.crews[1].link.is_up());
    let handles: Vec<String> = app
        .visible()
        .iter()
        .map(|(k, e)| format!("{}:{}", k.crew, e.job.handle))
        .collect();
    assert_eq!(handles, ["0:job-1", "0:job-2", "1:job-9"]);
    // Usage lands on its job.
    update(
        &mut app,
        Action::Crew(
            1,
            CrewEvent::Usage(vec![tasker_proto::v1::Usage {
                job_id: fresh.id.clone(),
                cpu_usec: 5,
                memory_bytes: 1 << 20,
                cpu_cores: 0.25,
            }]),
        ),
    );
    let e = app.jobs.values().find(|e| e.job.id == fresh.id).unwrap();
    assert_eq!(e.usage.as_ref().unwrap().memory_bytes, 1 << 20);
}

#[test]
fn crews_found_by_discovery_come_and_go_and_keep_their_slots() {
    let mut app = app(&["alpha"], "ada", "admin", (80, 24));
    let found = |ix: usize, name: &str| Action::CrewFound {
        ix,
        name: name.into(),
        addr: format!("10.0.0.{ix}:7443"),
        groups: Vec::new(),
    };
    update(&mut app, found(1, "web01"));
    update(&mut app, found(2, "web02"));
    assert!(matches!(app.crews[2].link, Link::Connecting { .. }));
    for ix in [1, 2] {
        let up = CrewEvent::Up {
            identity: "ada".into(),
            role: "admin".into(),
        };
        update(&mut app, Action::Crew(ix, up));
        let j = job(ix, &JobSpec::default());
        update(&mut app, Action::Crew(ix, CrewEvent::Snapshot(vec![j])));
    }
    assert_eq!(app.visible().len(), 2);
    // Attached to web01's job when web01 goes: the pane lets go of it.
    app.selected = app.visible().first().map(|(k, _)| RowKey::Job((*k).clone()));
    let fx = press(&mut app, KeyCode::Enter);
    assert!(attach_fx(&fx).is_some(), "{fx:?}");
    let fx = update(&mut app, Action::CrewGone(1));
    assert!(fx.iter().any(|f| matches!(f, Effect::Detach { .. })), "{fx:?}");
    assert!(app.attached.is_none());
    assert!(app.crews[1].link.is_gone());
    let crews: Vec<usize> = app.visible().iter().map(|(k, _)| k.crew).collect();
    assert_eq!(crews, [2], "web01's jobs left the list");
    assert!(
        app.notice
            .as_ref()
            .is_some_and(|n| n.text.contains("web01 is gone"))
    );
    // Gone from the strip, the commands and completion; a late word from
    // its watcher changes nothing.
    let up = CrewEvent::Up {
        identity: "ada".into(),
        role: "admin".into(),
    };
    update(&mut app, Action::Crew(1, up));
    assert!(app.crews[1].link.is_gone());
    assert_eq!(app.crew_named("web01"), None);
    assert_eq!(app.crew_named("web02"), Some(2));
    // Found again: the same slot.
    update(&mut app, found(1, "web01"));
    assert_eq!(app.crew_named("web01"), Some(1));
    assert!(matches!(app.crews[1].link, Link::Connecting { .. }));
}

#[test]
fn info_notices_fade_and_errors_stay_until_a_key() {
    let mut app = app(&["alpha"], "ada", "admin", (80, 24));
    update(&mut app, Action::Done(Notice::info("started")));
    update(&mut app, Action::Tick(now() + Duration::from_secs(10)));
    assert!(app.notice.is_none());
    update(&mut app, Action::Done(Notice::error("refused")));
    update(&mut app, Action::Tick(now() + Duration::from_secs(100)));
    assert!(app.notice.is_some());
    press(&mut app, KeyCode::Down);
    assert!(app.notice.is_none());
}

#[test]
fn no_key_is_bound_twice_in_a_mode_and_help_lists_them_all() {
    let help: Vec<String> = crate::tui::view::help::lines()
        .iter()
        .map(|l| l.spans.iter().map(|s| s.content.as_ref()).collect())
        .collect();
    let help = help.join("\n");
    for table in [keys::JOBS, keys::TERMINAL, keys::INPUT, keys::LINE, keys::CONFIRM] {
        let mut seen = Vec::new();
        for b in table {
            for k in b.keys {
                let ev = KeyEvent::new(k.code, k.mods);
                assert!(!seen.contains(&ev), "{:?} bound twice", k.code);
                seen.push(ev);
                if !std::ptr::eq(table, keys::LINE) {
                    assert_eq!(keys::lookup(table, &ev), Some(b.cmd));
                }
            }
            assert!(
                help.contains(b.label) && help.contains(b.what),
                "help lacks {}",
                b.label
            );
        }
    }
    for c in keys::COMMANDS {
        assert!(help.contains(&format!(":{}", c.name)), "help lacks :{}", c.name);
    }
}

#[test]
fn a_late_start_answer_never_brings_an_ended_job_back() {
    let mut app = app(&["alpha"], "ada", "admin", (80, 24));
    let running = job(0, &JobSpec::default());
    let ended = job(
        0,
        &JobSpec {
            exit: Some(0),
            ..Default::default()
        },
    );
    // The watch tells of the end before StartJob's answer arrives.
    update(&mut app, Action::Crew(0, CrewEvent::Job(Box::new(ended))));
    update(&mut app, Action::Started(0, Box::new(running)));
    let e = app.jobs.values().next().unwrap();
    assert!(e.job.outcome.is_some(), "still ended");
    assert_eq!(app.selected_job().unwrap().seq, 1, "and selected");
}

/// An admin's keys reach another user's job only after she said yes to
/// that job; a no leaves her watching, and asking again asks again.
#[test]
fn typing_into_another_users_job_is_asked_first() {
    let mut app = app(&["alpha", "beta"], "ada", "admin", (80, 24));
    three_jobs(&mut app);
    command(&mut app, "attach beta/job-1");
    let session = app.attached.as_ref().unwrap().session;
    update(
        &mut app,
        Action::Attach(session, AttachEvent::Opened { writable: true }),
    );
    assert!(matches!(app.mode, Mode::Confirm(_)));
    assert!(press(&mut app, KeyCode::Char('n')).is_empty());
    assert_eq!(app.mode, Mode::Normal);
    assert!(app.notice.as_ref().unwrap().text.contains("without typing"));
    // A key in the pane goes nowhere; asking to type asks again.
    assert!(
        press(&mut app, KeyCode::Char('x'))
            .iter()
            .all(|e| !matches!(e, Effect::Send { .. }))
    );
    app.focus = Focus::Terminal;
    press(&mut app, KeyCode::Enter);
    assert!(matches!(app.mode, Mode::Confirm(_)), "{:?}", app.mode);
    press(&mut app, KeyCode::Char('y'));
    assert!(matches!(app.mode, Mode::Input));
    assert_eq!(
        press(&mut app, KeyCode::Char('x')),
        vec![Effect::Send {
            session,
            input: Input::Bytes(b"x".to_vec())
        }]
    );
    // Her own job asks nothing.
    command(&mut app, "detach");
    command(&mut app, "attach alpha/job-1");
    assert!(matches!(app.mode, Mode::Input), "{:?}", app.mode);
}

#[test]
fn the_pane_lets_go_of_a_job_archived_meanwhile() {
    let mut app = app(&["alpha"], "ada", "admin", (100, 30));
    let j = add(
        &mut app,
        0,
        &JobSpec {
            exit: Some(0),
            ..Default::default()
        },
    );
    press(&mut app, KeyCode::Enter);
    let session = app.attached.as_ref().map(|a| a.session).expect("attached");
    let mut archived = j.clone();
    archived.archived = true;
    let fx = update(&mut app, Action::Crew(0, CrewEvent::Archived(Box::new(archived))));
    assert!(app.attached.is_none());
    assert!(fx.contains(&Effect::Detach { session }), "{fx:?}");
    assert_eq!(
        app.notice.as_ref().unwrap().text,
        "alpha/job-1 was archived: detached"
    );
}

#[test]
fn start_takes_a_preset_of_the_config() {
    let mut app = app(&["alpha"], "ada", "admin", (100, 30));
    app.presets.insert(
        "build".into(),
        crate::config::Preset {
            argv: vec!["make".into(), "-j4".into()],
            memory: Some("1G".into()),
            ..Default::default()
        },
    );
    let fx = command(&mut app, "start --preset build -- test");
    let [Effect::Start { crew: 0, spec }] = fx.as_slice() else {
        panic!("{fx:?}");
    };
    assert_eq!(spec.argv, ["make", "-j4", "test"]);
    assert_eq!(spec.limits.as_ref().and_then(|l| l.memory_bytes), Some(1 << 30));
    command(&mut app, "start --preset nope");
    let n = app.notice.as_ref().unwrap();
    assert!(
        n.error && n.text.contains("no preset \"nope\" (presets: build)"),
        "{n:?}"
    );
}

fn wheel(app: &mut App, up: bool) -> Vec<Effect> {
    update(
        app,
        Action::Mouse(MouseEvent {
            kind: if up {
                MouseEventKind::ScrollUp
            } else {
                MouseEventKind::ScrollDown
            },
            column: 10,
            row: 10,
            modifiers: KeyModifiers::NONE,
        }),
    )
}

/// Lines `line-1` … `line-N`, as one read from offset 0.
fn numbered(n: usize) -> crate::tui::logview::LogRead {
    let mut read = crate::tui::logview::LogRead::at(0);
    let text: String = (1..=n).map(|i| format!("line-{i}\n")).collect();
    read.output(0, text.as_bytes(), vec![]);
    read
}

#[test]
fn l_v_then_l_and_logs_open_the_log_view_which_q_closes_on_the_same_job() {
    let mut app = app(&["alpha", "beta"], "ada", "admin", (80, 24));
    three_jobs(&mut app);
    press(&mut app, KeyCode::Down);
    let selected = app.selected.clone();
    let Some(RowKey::Job(k)) = selected.clone() else {
        panic!()
    };
    let fx = press(&mut app, KeyCode::Char('L'));
    assert_eq!(
        fx,
        [Effect::ReadLog {
            crew: k.crew,
            job: k.id.clone(),
            follow: None
        }]
    );
    assert_eq!(app.overlay, Some(Overlay::Log));
    // Its answer is taken; a stale one for another job is not.
    update(
        &mut app,
        Action::Log {
            job: "other".into(),
            follow: None,
            read: Ok(numbered(3)),
        },
    );
    assert!(app.log.as_ref().unwrap().read.is_none());
    update(
        &mut app,
        Action::Log {
            job: k.id.clone(),
            follow: None,
            read: Ok(numbered(100)),
        },
    );
    let v = app.log.as_ref().unwrap();
    assert_eq!(v.lines.len(), 100);
    // Keys go to the view, not the list under it.
    let top = v.top;
    press(&mut app, KeyCode::Char('k'));
    assert_eq!(app.log.as_ref().unwrap().top, top - 1);
    assert_eq!(app.selected, selected, "the list did not move");
    press(&mut app, KeyCode::Char('g'));
    assert_eq!(app.log.as_ref().unwrap().top, 0);
    // The wheel scrolls it.
    wheel(&mut app, false);
    assert_eq!(app.log.as_ref().unwrap().top, 3);
    wheel(&mut app, true);
    assert_eq!(app.log.as_ref().unwrap().top, 0);
    assert!(press(&mut app, KeyCode::Char('q')).is_empty());
    assert!(app.overlay.is_none() && app.log.is_none());
    assert_eq!(app.selected, selected, "back on the same job");

    // From the detail view.
    press(&mut app, KeyCode::Char('v'));
    let fx = press(&mut app, KeyCode::Char('L'));
    assert!(
        matches!(&fx[..], [Effect::ReadLog { job, .. }] if *job == k.id),
        "{fx:?}"
    );
    assert_eq!(app.overlay, Some(Overlay::Log));
    press(&mut app, KeyCode::Esc);
    assert!(app.overlay.is_none());

    // From the command line, by reference.
    let fx = command(&mut app, "logs beta/job-1");
    assert!(matches!(&fx[..], [Effect::ReadLog { crew: 1, .. }]), "{fx:?}");
    assert_eq!(app.log.as_ref().unwrap().label, "beta/job-1");
    press(&mut app, KeyCode::Esc);
    command(&mut app, "logs nope/job-1");
    assert!(app.log.is_none());
    assert!(error(&app).contains("nope"), "{}", error(&app));
}

#[test]
fn f_follows_a_running_job_and_closing_lets_go_of_the_attach() {
    let mut app = app(&["alpha"], "ada", "admin", (80, 24));
    let j = add(&mut app, 0, &JobSpec::default());
    press(&mut app, KeyCode::Char('L'));
    update(
        &mut app,
        Action::Log {
            job: j.id.clone(),
            follow: None,
            read: Ok(numbered(30)),
        },
    );
    let fx = press(&mut app, KeyCode::Char('F'));
    let [
        Effect::ReadLog {
            follow: Some(session),
            ..
        },
    ] = fx[..]
    else {
        panic!("{fx:?}")
    };
    // The follow's first read, then more as it comes.
    update(
        &mut app,
        Action::Log {
            job: j.id.clone(),
            follow: Some(session),
            read: Ok(numbered(30)),
        },
    );
    let mut more = crate::tui::logview::LogRead::at(numbered(30).end);
    more.output(more.end, b"line-31\n", vec![]);
    update(
        &mut app,
        Action::LogMore {
            session,
            more: Ok(Some(more)),
        },
    );
    let v = app.log.as_ref().unwrap();
    assert_eq!(v.lines.last().unwrap().text, "line-31");
    // A follow no view wants is let go.
    let fx = update(
        &mut app,
        Action::LogMore {
            session: 999,
            more: Ok(None),
        },
    );
    assert_eq!(fx, [Effect::Detach { session: 999 }]);
    // F again stops following; so does q.
    assert_eq!(press(&mut app, KeyCode::Char('F')), [Effect::Detach { session }]);
    let fx = press(&mut app, KeyCode::Char('F'));
    let [
        Effect::ReadLog {
            follow: Some(again), ..
        },
    ] = fx[..]
    else {
        panic!("{fx:?}")
    };
    assert_eq!(
        press(&mut app, KeyCode::Char('q')),
        [Effect::Detach { session: again }]
    );
}

#[test]
fn archived_jobs_open_in_the_log_and_detail_views() {
    let mut app = app(&["alpha"], "ada", "admin", (80, 24));
    press(&mut app, KeyCode::Char('A'));
    let old = archived_job_7();
    update(&mut app, Action::ArchivedJobs(0, Ok(vec![old.clone()])));
    let fx = press(&mut app, KeyCode::Char('L'));
    assert!(
        matches!(&fx[..], [Effect::ReadLog { job, follow: None, .. }] if *job == old.id),
        "{fx:?}"
    );
    // An ended job has nothing to follow.
    assert!(press(&mut app, KeyCode::Char('F')).is_empty());
    assert!(app.log.as_ref().unwrap().said.as_ref().unwrap().error);
    press(&mut app, KeyCode::Char('q'));
    let fx = press(&mut app, KeyCode::Char('v'));
    assert!(
        matches!(&fx[..], [Effect::Trail { job, .. }] if *job == old.id),
        "{fx:?}"
    );
}

/// alpha's job-7: ended (exit 0) and archived.
fn archived_job_7() -> pb::Job {
    let mut old = job(
        0,
        &JobSpec {
            handle: "job-7",
            exit: Some(0),
            ..Default::default()
        },
    );
    old.archived = true;
    old
}
