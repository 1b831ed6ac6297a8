//! Tests of the dashboard without a terminal: `update` driven by actions,
//! views rendered into ratatui's `TestBackend`.

mod render;
mod update;

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use crossterm::event::{KeyCode, KeyEvent, KeyModifiers, MouseButton, MouseEvent, MouseEventKind};
use tasker_proto::v1 as pb;

use super::action::{Action, CrewEvent, Effect};
use super::app::App;
use super::update::update;

/// A fixed "now", so that ages render the same every time.
pub fn now() -> SystemTime {
    UNIX_EPOCH + Duration::from_secs(1_800_000_000)
}

/// An app with these crews, all connected, us being `me` with `role`.
pub fn app(crews: &[&str], me: &str, role: &str, size: (u16, u16)) -> App {
    let mut app = App::new(
        crews
            .iter()
            .enumerate()
            .map(|(i, c)| ((*c).to_owned(), format!("127.0.0.1:{}", 7441 + i)))
            .collect(),
        size,
        now(),
    );
    for ix in 0..crews.len() {
        update(
            &mut app,
            Action::Crew(
                ix,
                CrewEvent::Up {
                    identity: me.into(),
                    role: role.into(),
                },
            ),
        );
    }
    app
}

pub struct JobSpec<'a> {
    pub handle: &'a str,
    pub argv: &'a [&'a str],
    pub owner: &'a str,
    pub tty: bool,
    /// None: running; Some(code): exited with it.
    pub exit: Option<i32>,
    pub age_secs: i64,
    /// The batch it is one of ("": none).
    pub batch: &'a str,
}

/// The batch id the tests' batches carry.
pub const BATCH: &str = "b-0123456789ab";

impl Default for JobSpec<'_> {
    fn default() -> Self {
        Self {
            handle: "job-1",
            argv: &["sleep", "100"],
            owner: "ada",
            tty: false,
            exit: None,
            age_secs: 65,
            batch: "",
        }
    }
}

/// A job as a crew would send it; its id is derived from crew and handle.
pub fn job(crew: usize, s: &JobSpec<'_>) -> pb::Job {
    let n: u64 = s.handle.trim_start_matches("job-").parse().unwrap_or(0);
    let created = 1_800_000_000 - s.age_secs;
    pb::Job {
        id: format!("{crew:02x}{n:030x}"),
        handle: s.handle.into(),
        owner: s.owner.into(),
        user: s.owner.into(),
        argv: s.argv.iter().map(|a| (*a).to_owned()).collect(),
        batch: s.batch.into(),
        tty: s.tty.then_some(pb::TtySize { rows: 24, cols: 80 }),
        created_at: Some(prost_types::Timestamp {
            seconds: created,
            nanos: 0,
        }),
        phase: match s.exit {
            None => pb::JobPhase::Running,
            Some(0) => pb::JobPhase::Completed,
            Some(_) => pb::JobPhase::Failed,
        } as i32,
        outcome: s.exit.map(|c| pb::Outcome {
            termination: Some(pb::outcome::Termination::ExitCode(c)),
            reason: Some(pb::outcome::Reason::Finished(pb::outcome::Finished {})),
            summary: format!("finished (exit code {c})"),
        }),
        ..Default::default()
    }
}

pub fn add(app: &mut App, crew: usize, s: &JobSpec<'_>) -> pb::Job {
    let j = job(crew, s);
    update(app, Action::Crew(crew, CrewEvent::Job(Box::new(j.clone()))));
    j
}

pub fn press(app: &mut App, code: KeyCode) -> Vec<Effect> {
    update(app, Action::Key(KeyEvent::new(code, KeyModifiers::NONE)))
}

pub fn ctrl(app: &mut App, c: char) -> Vec<Effect> {
    update(
        app,
        Action::Key(KeyEvent::new(KeyCode::Char(c), KeyModifiers::CONTROL)),
    )
}

/// Types each character as a key press; the effects of them all.
pub fn type_text(app: &mut App, text: &str) -> Vec<Effect> {
    text.chars().flat_map(|c| press(app, KeyCode::Char(c))).collect()
}

/// `:` + the line + Enter.
pub fn command(app: &mut App, line: &str) -> Vec<Effect> {
    let mut fx = press(app, KeyCode::Char(':'));
    fx.extend(type_text(app, line));
    fx.extend(press(app, KeyCode::Enter));
    fx
}

pub fn click(app: &mut App, col: u16, row: u16) -> Vec<Effect> {
    update(
        app,
        Action::Mouse(MouseEvent {
            kind: MouseEventKind::Down(MouseButton::Left),
            column: col,
            row,
            modifiers: KeyModifiers::NONE,
        }),
    )
}
