//! How long a dashboard frame takes: 4 crews × 500 jobs and an attached tty
//! job whose screen is full of colour, drawn through the real crossterm
//! backend (view, diff, escape sequences) into a sink. Every frame has
//! something new (a line of output, usage figures), as a live dashboard's
//! do. The baseline, in the same run: a frame of one full-screen paragraph
//! of the same amount of changing text.
//!
//! `cargo bench -p foreman --bench render` prints a markdown section for
//! docs/benchmarks.md.

use std::io::Sink;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use foreman::tui::action::{Action, AttachEvent, CrewEvent};
use foreman::tui::app::App;
use foreman::tui::{update::update, view};
use ratatui::backend::CrosstermBackend;
use ratatui::layout::Rect;
use ratatui::widgets::Paragraph;
use ratatui::{Terminal, TerminalOptions, Viewport};
use tasker_proto::v1 as pb;

const CREWS: usize = 4;
const JOBS_PER_CREW: usize = 500;
const FRAMES: usize = 2000;

fn now() -> SystemTime {
    UNIX_EPOCH + Duration::from_secs(1_800_000_000)
}

fn job(crew: usize, n: usize) -> pb::Job {
    let running = !n.is_multiple_of(3);
    pb::Job {
        id: format!("{crew:02x}{n:030x}"),
        handle: format!("job-{n}"),
        owner: format!("user{}", n % 7),
        user: format!("user{}", n % 7),
        argv: vec![
            "python3".into(),
            "train.py".into(),
            format!("--shard={n}"),
            "--epochs=40".into(),
        ],
        tty: (n == 1).then_some(pb::TtySize { rows: 24, cols: 80 }),
        created_at: Some(prost_types::Timestamp {
            seconds: 1_800_000_000 - (n as i64) * 37,
            nanos: 0,
        }),
        phase: if running {
            pb::JobPhase::Running
        } else {
            pb::JobPhase::Failed
        } as i32,
        outcome: (!running).then(|| pb::Outcome {
            termination: Some(pb::outcome::Termination::ExitCode(1)),
            reason: Some(pb::outcome::Reason::Finished(pb::outcome::Finished {})),
            summary: "finished (exit code 1)".into(),
        }),
        ..Default::default()
    }
}

fn dashboard(cols: u16, rows: u16) -> App {
    let mut app = App::new(
        (0..CREWS)
            .map(|i| (format!("crew{i}"), format!("10.0.0.{i}:7443")))
            .collect(),
        (cols, rows),
        now(),
    );
    for ix in 0..CREWS {
        update(
            &mut app,
            Action::Crew(
                ix,
                CrewEvent::Up {
                    identity: "ada".into(),
                    role: "admin".into(),
                },
            ),
        );
        let jobs = (1..=JOBS_PER_CREW).map(|n| job(ix, n)).collect();
        update(&mut app, Action::Crew(ix, CrewEvent::Snapshot(jobs)));
    }
    // Attach the tty job on crew 0 and fill its screen with colour.
    update(
        &mut app,
        Action::Key(crossterm::event::KeyEvent::new(
            crossterm::event::KeyCode::Enter,
            crossterm::event::KeyModifiers::NONE,
        )),
    );
    let session = app.attached.as_ref().map(|a| a.session).expect("attached");
    update(
        &mut app,
        Action::Attach(session, AttachEvent::Opened { writable: true }),
    );
    let mut screen = Vec::new();
    for i in 0..60 {
        screen.extend_from_slice(
            format!(
                "\x1b[3{}m{i:>4} \x1b[1mCPU\x1b[0m 42.0% \x1b[44m mem 1.2G \x1b[0m process-{i} running\r\n",
                i % 8
            )
            .as_bytes(),
        );
    }
    update(
        &mut app,
        Action::Attach(session, AttachEvent::Output(Bytes::from(screen))),
    );
    app
}

/// p50 and p99 of `FRAMES` draws, each after `change`.
fn measure(mut draw: impl FnMut(usize)) -> (Duration, Duration) {
    for i in 0..100 {
        draw(i);
    }
    let mut times: Vec<Duration> = (0..FRAMES)
        .map(|i| {
            let t = Instant::now();
            draw(i);
            t.elapsed()
        })
        .collect();
    times.sort();
    (times[FRAMES / 2], times[FRAMES * 99 / 100])
}

fn terminal(cols: u16, rows: u16) -> Terminal<CrosstermBackend<Sink>> {
    Terminal::with_options(
        CrosstermBackend::new(std::io::sink()),
        TerminalOptions {
            viewport: Viewport::Fixed(Rect::new(0, 0, cols, rows)),
        },
    )
    .expect("a terminal")
}

fn ms(d: Duration) -> String {
    format!("{:.3} ms", d.as_secs_f64() * 1000.0)
}

fn main() {
    println!("## Dashboard frames (`cargo bench -p foreman --bench render`)\n");
    println!(
        "{CREWS} crews × {JOBS_PER_CREW} jobs, a tty job attached with a full screen of colour; \
         each frame follows a new line of job output and usage figures for 100 jobs; drawn \
         through the crossterm backend into a sink; {FRAMES} frames each.\n"
    );
    println!(
        "| size | dashboard p50 | p99 | baseline p50 (a paragraph of as much text) | p99 | p50 / baseline |"
    );
    println!("|---|---|---|---|---|---|");
    for (cols, rows) in [(80u16, 24u16), (200, 50)] {
        let mut app = dashboard(cols, rows);
        let session = app.attached.as_ref().map(|a| a.session).expect("attached");
        let ids: Vec<String> = app.jobs.keys().take(100).map(|k| k.id.clone()).collect();
        let mut t = terminal(cols, rows);
        let (p50, p99) = measure(|i| {
            update(
                &mut app,
                Action::Attach(
                    session,
                    AttachEvent::Output(Bytes::from(format!("\x1b[32mline {i}\x1b[0m of output\r\n"))),
                ),
            );
            let usage = ids
                .iter()
                .map(|id| pb::Usage {
                    job_id: id.clone(),
                    cpu_usec: i as u64,
                    memory_bytes: (i as u64 % 97) << 20,
                    cpu_cores: (i % 10) as f64 / 10.0,
                })
                .collect();
            update(&mut app, Action::Crew(0, CrewEvent::Usage(usage)));
            t.draw(|f| view::draw(f, &app)).expect("draw");
        });
        let mut t = terminal(cols, rows);
        let (b50, b99) = measure(|i| {
            let text: String = (0..rows)
                .map(|r| {
                    let line = format!("{i} {r} ").repeat(usize::from(cols) / 4);
                    line.chars().take(usize::from(cols)).collect::<String>() + "\n"
                })
                .collect();
            t.draw(|f| f.render_widget(Paragraph::new(text), f.area()))
                .expect("draw");
        });
        println!(
            "| {cols}x{rows} | {} | {} | {} | {} | {:.2}x |",
            ms(p50),
            ms(p99),
            ms(b50),
            ms(b99),
            p50.as_secs_f64() / b50.as_secs_f64()
        );
    }
    println!("\nTarget: a frame p50 < 2 ms, p99 < 5 ms.");
}
