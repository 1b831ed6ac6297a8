//! The line at the bottom, for `:` commands and the `/` filter: editing
//! keys, the command history, and Tab completion.

use crossterm::event::{KeyCode, KeyEvent, KeyModifiers};

use super::commands::run_line;
use super::jobs::keep_selection_visible;
use super::{crew_name, notify};
use crate::tui::action::{Effect, Notice};
use crate::tui::app::{App, Completion, Mode};
use crate::tui::keys::{self, Completes};

pub(super) fn on_line_key(app: &mut App, key: KeyEvent, fx: &mut Vec<Effect>, command: bool) {
    let ctrl = key.modifiers.contains(KeyModifiers::CONTROL);
    if key.code != KeyCode::Tab {
        app.completion = None;
    }
    match key.code {
        KeyCode::Esc => {
            app.mode = Mode::Normal;
            if !command {
                app.filter.clear();
                keep_selection_visible(app);
            }
            app.line.clear();
            return;
        }
        KeyCode::Char('c') if ctrl => {
            app.mode = Mode::Normal;
            app.line.clear();
            return;
        }
        KeyCode::Enter => {
            app.mode = Mode::Normal;
            let text = std::mem::take(&mut app.line.text);
            app.line.clear();
            if command {
                remember(app, &text);
                run_line(app, text.trim(), fx);
            } else {
                app.filter = text;
                keep_selection_visible(app);
            }
            return;
        }
        KeyCode::Tab if command => complete(app),
        KeyCode::Up if command => history(app, -1),
        KeyCode::Down if command => history(app, 1),
        KeyCode::Backspace if app.line.text.is_empty() => {
            app.mode = Mode::Normal;
            if !command {
                app.filter.clear();
                keep_selection_visible(app);
            }
        }
        KeyCode::Backspace => app.line.backspace(),
        KeyCode::Delete => app.line.delete(),
        KeyCode::Left => app.line.left(),
        KeyCode::Right => app.line.right(),
        KeyCode::Home => app.line.home(),
        KeyCode::End => app.line.end(),
        KeyCode::Char('a') if ctrl => app.line.home(),
        KeyCode::Char('e') if ctrl => app.line.end(),
        KeyCode::Char('u') if ctrl => app.line.clear(),
        KeyCode::Char('w') if ctrl => app.line.delete_word(),
        KeyCode::Char(c) if !ctrl => app.line.insert(c.encode_utf8(&mut [0; 4])),
        _ => {}
    }
    if !command {
        app.filter = app.line.text.clone();
        keep_selection_visible(app);
    }
}

fn remember(app: &mut App, line: &str) {
    let line = line.trim();
    if !line.is_empty() && app.history.last().map(String::as_str) != Some(line) {
        app.history.push(line.to_owned());
        if app.history.len() > 500 {
            app.history.remove(0);
        }
    }
    app.history_pos = None;
}

fn history(app: &mut App, step: isize) {
    if app.history.is_empty() {
        return;
    }
    let last = app.history.len() - 1;
    let pos = match (app.history_pos, step < 0) {
        (None, true) => Some(last),
        (None, false) => None,
        (Some(p), true) => Some(p.saturating_sub(1)),
        (Some(p), false) if p < last => Some(p + 1),
        (Some(_), false) => None,
    };
    app.history_pos = pos;
    let text = pos.map_or_else(String::new, |p| app.history[p].clone());
    app.line.set(&text);
}

/// Tab: completes the word at the end of the line: a command name first,
/// then what that command takes (job references or crew names). Repeated
/// Tabs cycle through the choices.
fn complete(app: &mut App) {
    if let Some(c) = &mut app.completion {
        if !c.choices.is_empty() {
            let choice = c.choices[c.next % c.choices.len()].clone();
            c.next += 1;
            let text = format!("{}{choice} ", c.prefix);
            app.line.set(&text);
        }
        return;
    }
    let text = app.line.text.clone();
    let (prefix, word) = match text.rfind(' ') {
        Some(i) => (&text[..=i], &text[i + 1..]),
        None => ("", text.as_str()),
    };
    let words_before = prefix.split_whitespace().count();
    let choices: Vec<String> = if words_before == 0 {
        keys::COMMANDS
            .iter()
            .map(|c| c.name.to_owned())
            .filter(|n| n.starts_with(word))
            .collect()
    } else {
        let first = prefix.split_whitespace().next().unwrap_or("");
        let completes = keys::COMMANDS
            .iter()
            .find(|c| c.name == first)
            .map_or(Completes::Nothing, |c| c.completes);
        match (completes, words_before) {
            (Completes::Job, 1) => job_choices(app, word),
            (Completes::Crew, 1) => app
                .live_crews()
                .map(|(_, c)| c.name.clone())
                .filter(|n| n.starts_with(word))
                .collect(),
            _ => Vec::new(),
        }
    };
    match choices.as_slice() {
        [] => notify(app, Notice::error(format!("nothing completes {word:?}"))),
        [one] => {
            let line = format!("{prefix}{one} ");
            app.line.set(&line);
        }
        many => {
            let common = common_prefix(many);
            let shown = many.iter().take(8).cloned().collect::<Vec<_>>().join("  ");
            let more = if many.len() > 8 {
                format!("  (+{})", many.len() - 8)
            } else {
                String::new()
            };
            notify(app, Notice::info(format!("{shown}{more}")));
            if common.len() > word.len() {
                let line = format!("{prefix}{common}");
                app.line.set(&line);
            } else {
                app.completion = Some(Completion {
                    prefix: prefix.to_owned(),
                    choices: many.to_vec(),
                    next: 0,
                });
            }
        }
    }
}

/// `crew/handle` of every listed job that the word could begin.
fn job_choices(app: &App, word: &str) -> Vec<String> {
    app.visible()
        .into_iter()
        .filter_map(|(k, e)| {
            let full = format!("{}/{}", crew_name(app, k.crew), e.job.handle);
            let name = (!e.job.name.is_empty()).then(|| format!("{}/{}", crew_name(app, k.crew), e.job.name));
            let hit = full.starts_with(word)
                || e.job.handle.starts_with(word)
                || name.as_ref().is_some_and(|n| n.starts_with(word))
                || (!e.job.name.is_empty() && e.job.name.starts_with(word));
            hit.then_some(full)
        })
        .collect()
}

fn common_prefix(words: &[String]) -> String {
    let first = &words[0];
    let mut len = first.len();
    for w in &words[1..] {
        len = first
            .char_indices()
            .zip(w.chars())
            .take_while(|((_, a), b)| a == b)
            .last()
            .map_or(0, |((i, c), _)| i + c.len_utf8())
            .min(len);
    }
    first[..len].to_owned()
}
