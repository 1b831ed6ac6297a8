//! Every key binding and every `:` command, in tables that `update`
//! dispatches through and that the hint bar and `:help` are drawn from, so
//! the help can never disagree with the keys.

use crossterm::event::{KeyCode, KeyEvent, KeyModifiers};

/// What a bound key does.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Cmd {
    Up,
    Down,
    PageUp,
    PageDown,
    Top,
    Bottom,
    Attach,
    Stop,
    Archive,
    Filter,
    CommandLine,
    Help,
    Crews,
    Details,
    Logs,
    ShowArchived,
    Unarchive,
    Unfold,
    Fold,
    Quit,
    Detach,
    Input,
    Focus,
    ScrollUp,
    ScrollDown,
    ScrollPageUp,
    ScrollPageDown,
    Live,
    LeaveInput,
    Eof,
}

#[derive(Clone, Copy, Debug)]
pub struct Key {
    pub code: KeyCode,
    pub mods: KeyModifiers,
}

const fn k(c: char) -> Key {
    Key {
        code: KeyCode::Char(c),
        mods: KeyModifiers::NONE,
    }
}

const fn code(code: KeyCode) -> Key {
    Key {
        code,
        mods: KeyModifiers::NONE,
    }
}

const fn ctrl(c: char) -> Key {
    Key {
        code: KeyCode::Char(c),
        mods: KeyModifiers::CONTROL,
    }
}

#[derive(Debug)]
pub struct Binding {
    pub keys: &'static [Key],
    /// How the key is written in hints and help.
    pub label: &'static str,
    pub what: &'static str,
    pub cmd: Cmd,
    /// The word in the hint bar; empty: only in `:help`.
    pub hint: &'static str,
}

const fn b(
    keys: &'static [Key],
    label: &'static str,
    what: &'static str,
    cmd: Cmd,
    hint: &'static str,
) -> Binding {
    Binding {
        keys,
        label,
        what,
        cmd,
        hint,
    }
}

/// The key that leaves input mode; never sent to a job.
pub const LEAVE_INPUT: Key = ctrl(']');
pub const LEAVE_INPUT_LABEL: &str = "Ctrl-]";

/// The job list has the focus.
#[rustfmt::skip]
pub const JOBS: &[Binding] = &[
    b(&[code(KeyCode::Enter), k('a')], "⏎/a", "attach (type into it if you may); a batch: its outputs gathered", Cmd::Attach, "attach"),
    b(&[k('s')], "s", "stop the job (asks first)", Cmd::Stop, "stop"),
    b(&[k('/')], "/", "filter the jobs", Cmd::Filter, "filter"),
    b(&[k(':')], ":", "command line", Cmd::CommandLine, "command"),
    b(&[k('?')], "?", "help", Cmd::Help, "help"),
    b(&[k('q'), ctrl('c')], "q", "quit (every job goes on)", Cmd::Quit, "quit"),
    b(&[code(KeyCode::Up), k('k')], "↑/k", "select the job above", Cmd::Up, ""),
    b(&[code(KeyCode::Down), k('j')], "↓/j", "select the job below", Cmd::Down, ""),
    b(&[code(KeyCode::PageUp)], "PgUp", "a page up", Cmd::PageUp, ""),
    b(&[code(KeyCode::PageDown)], "PgDn", "a page down", Cmd::PageDown, ""),
    b(&[code(KeyCode::Home), k('g')], "Home/g", "the first job", Cmd::Top, ""),
    b(&[code(KeyCode::End), k('G')], "End/G", "the last job", Cmd::Bottom, ""),
    b(&[k('x')], "x", "archive an ended job", Cmd::Archive, ""),
    b(&[k('A')], "A", "show archived jobs too (again: hide them)", Cmd::ShowArchived, ""),
    b(&[k('u')], "u", "un-archive the selected archived job", Cmd::Unarchive, ""),
    b(&[k('d')], "d", "detach (the job goes on)", Cmd::Detach, ""),
    b(&[k('i')], "i", "type into the attached job", Cmd::Input, ""),
    b(&[code(KeyCode::Tab)], "Tab", "focus the terminal pane", Cmd::Focus, ""),
    b(&[k('c')], "c", "crews and their connections", Cmd::Crews, ""),
    b(&[k('v')], "v", "the job's details: spec, limits, outcome, totals", Cmd::Details, ""),
    b(&[k('L')], "L", "the job's whole output: search, times, jump to a time, save", Cmd::Logs, ""),
    b(&[code(KeyCode::Right), k('l')], "→/l", "a batch's line: list its members under it", Cmd::Unfold, ""),
    b(&[code(KeyCode::Left), k('h')], "←/h", "close the batch (its line alone again)", Cmd::Fold, ""),
];

/// The terminal pane has the focus (not typing into the job).
#[rustfmt::skip]
pub const TERMINAL: &[Binding] = &[
    b(&[k('i'), code(KeyCode::Enter)], "i/⏎", "type into the job", Cmd::Input, "type"),
    b(&[code(KeyCode::PageUp)], "PgUp", "scroll back a page", Cmd::ScrollPageUp, "scroll"),
    b(&[k('d')], "d", "detach (the job goes on)", Cmd::Detach, "detach"),
    b(&[code(KeyCode::Tab), code(KeyCode::Esc)], "Tab", "focus the job list", Cmd::Focus, "jobs"),
    b(&[k(':')], ":", "command line", Cmd::CommandLine, "command"),
    b(&[k('?')], "?", "help", Cmd::Help, "help"),
    b(&[k('q'), ctrl('c')], "q", "quit (every job goes on)", Cmd::Quit, "quit"),
    b(&[code(KeyCode::Up), k('k')], "↑/k", "scroll back a line", Cmd::ScrollUp, ""),
    b(&[code(KeyCode::Down), k('j')], "↓/j", "scroll forward a line", Cmd::ScrollDown, ""),
    b(&[code(KeyCode::PageDown)], "PgDn", "scroll forward a page", Cmd::ScrollPageDown, ""),
    b(&[code(KeyCode::End), k('G')], "End/G", "back to the live screen", Cmd::Live, ""),
    b(&[k('s')], "s", "stop the attached job (asks first)", Cmd::Stop, ""),
];

/// Typing into the job: every key goes to it except these. Terminals send
/// Ctrl-] as 0x1d, which reads back as Ctrl-5 too.
#[rustfmt::skip]
pub const INPUT: &[Binding] = &[
    b(&[LEAVE_INPUT, ctrl('5')], LEAVE_INPUT_LABEL, "stop typing into the job", Cmd::LeaveInput, "stop typing"),
    b(&[ctrl('d')], "Ctrl-D", "pipe jobs: end of input (EOF)", Cmd::Eof, "EOF"),
];

/// Editing the `:` line or the `/` filter (handled in `update::cmdline::on_line_key`;
/// listed here for the hints and `:help`).
#[rustfmt::skip]
pub const LINE: &[Binding] = &[
    b(&[code(KeyCode::Enter)], "⏎", "run the command / keep the filter", Cmd::LeaveInput, "run"),
    b(&[code(KeyCode::Tab)], "Tab", "complete a command, job or crew", Cmd::LeaveInput, "complete"),
    b(&[code(KeyCode::Up), code(KeyCode::Down)], "↑↓", "history", Cmd::LeaveInput, "history"),
    b(&[code(KeyCode::Esc)], "Esc", "cancel (the filter is cleared)", Cmd::LeaveInput, "cancel"),
    b(&[ctrl('w')], "Ctrl-W", "delete a word", Cmd::LeaveInput, ""),
    b(&[ctrl('u')], "Ctrl-U", "delete the line", Cmd::LeaveInput, ""),
    b(&[ctrl('a'), ctrl('e')], "Ctrl-A/E", "start / end of the line", Cmd::LeaveInput, ""),
];

/// The y/n question before a stop.
#[rustfmt::skip]
pub const CONFIRM: &[Binding] = &[
    b(&[k('y')], "y", "stop it", Cmd::Stop, "stop it"),
    b(&[k('n'), code(KeyCode::Esc)], "n", "leave it running (any other key too)", Cmd::LeaveInput, "leave it"),
];

/// The key in `table` that `key` is, if any.
pub fn lookup(table: &[Binding], key: &KeyEvent) -> Option<Cmd> {
    // Shift is part of the character for letters ('G'); ignore it there.
    let mods = if matches!(key.code, KeyCode::Char(_)) {
        key.modifiers - KeyModifiers::SHIFT
    } else {
        key.modifiers
    };
    table
        .iter()
        .find(|b| b.keys.iter().any(|k| k.code == key.code && k.mods == mods))
        .map(|b| b.cmd)
}

/// One `:` command.
#[derive(Debug)]
pub struct Command {
    pub name: &'static str,
    pub args: &'static str,
    pub what: &'static str,
    /// What its first argument completes to.
    pub completes: Completes,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Completes {
    Nothing,
    Job,
    Crew,
}

pub const COMMANDS: &[Command] = &[
    Command {
        name: "attach",
        args: "JOB",
        what: "show JOB's output here and type into it",
        completes: Completes::Job,
    },
    Command {
        name: "sort",
        args: "COLUMN [desc]",
        what: "order the jobs by crew, job, state, owner, batch, age, cpu, mem or command",
        completes: Completes::Nothing,
    },
    Command {
        name: "group",
        args: "crew|owner|batch|none",
        what: "keep the jobs of one crew, owner or batch together",
        completes: Completes::Nothing,
    },
    Command {
        name: "info",
        args: "JOB",
        what: "JOB's details: spec, limits, outcome, totals, owner",
        completes: Completes::Job,
    },
    Command {
        name: "logs",
        args: "JOB",
        what: "JOB's whole output, read-only: search, follow, save",
        completes: Completes::Job,
    },
    Command {
        name: "detach",
        args: "",
        what: "stop showing the attached job (it goes on)",
        completes: Completes::Nothing,
    },
    Command {
        name: "stop",
        args: "JOB",
        what: "SIGTERM, then SIGKILL after the grace period",
        completes: Completes::Job,
    },
    Command {
        name: "archive",
        args: "JOB",
        what: "hide an ended job",
        completes: Completes::Job,
    },
    Command {
        name: "start",
        args: "[CREWS] [--cpu N --memory S --tty ...] -- CMD ARGS",
        what: "start a job (options as `foreman start`; web*, @group or all: a batch)",
        completes: Completes::Crew,
    },
    Command {
        name: "crews",
        args: "",
        what: "each crew: connection, identity, errors",
        completes: Completes::Nothing,
    },
    Command {
        name: "help",
        args: "",
        what: "keys and commands",
        completes: Completes::Nothing,
    },
    Command {
        name: "quit",
        args: "",
        what: "leave; every job goes on",
        completes: Completes::Nothing,
    },
];
