//! Before acting on someone else's job: say whose it is, and ask.
//!
//! A reference is resolved once and the action then goes by id, so the job
//! named here is the job hit. When that job is not the caller's own (an
//! admin stopping a user's job, say), a person at a terminal is asked
//! first; a script must say `--yes`, so that a mistyped reference in a
//! script fails instead of stopping another user's work.

use std::io::{BufRead as _, IsTerminal as _, Write as _};

use tasker_proto::v1 as pb;

use crate::client::Crew;
use crate::failure::Failure;
use crate::sanitize::Sanitizer;

/// Who the caller is on `crew`: the name and role its certificate gives
/// there.
async fn me(crew: &Crew) -> Result<(String, String), Failure> {
    let mut client = crew.client.clone();
    let info = client
        .info(pb::InfoRequest {})
        .await
        .map_err(|s| Failure::from_status(&crew.name, &s))?
        .into_inner();
    Ok((info.identity, info.role))
}

/// What the caller said to acting on a job.
enum Answer {
    /// Nothing to ask: the caller's own job, or one only an admin could
    /// act on and the caller is not one (the crew refuses it).
    Own,
    Yes,
    No,
    /// No one to ask (no terminal), and no `--yes`: the caller's name.
    Unasked(String),
}

async fn decide(crew: &Crew, job: &pb::Job, question: &str, yes: bool) -> Result<Answer, Failure> {
    let (me, role) = me(crew).await?;
    // Only an admin can act on another's job: anyone else is refused by
    // the crew, with the rule, and there is nothing to ask.
    if job.owner == me || role != "admin" {
        return Ok(Answer::Own);
    }
    if yes {
        return Ok(Answer::Yes);
    }
    let interactive = std::io::stdin().is_terminal() && std::io::stderr().is_terminal();
    if !interactive {
        return Ok(Answer::Unasked(me));
    }
    let question = format!("foreman: {question}? [y/N] ");
    let said = tokio::task::spawn_blocking(move || ask(&question))
        .await
        .map_err(|e| Failure::Usage(format!("reading the answer: {e}")))?;
    Ok(if said { Answer::Yes } else { Answer::No })
}

/// Whether the caller may go on with `verb` (e.g. "stop") on `job`: yes
/// at once for their own job; for another's, when `yes` was given or a
/// person at the terminal says so. `Err` says why not.
pub async fn others_job(crew: &Crew, job: &pb::Job, verb: &str, yes: bool) -> Result<(), Failure> {
    let what = describe(crew, job);
    match decide(crew, job, &format!("{verb} {what}"), yes).await? {
        Answer::Own => Ok(()),
        Answer::Yes => {
            eprintln!("foreman: {verb}: {what}");
            Ok(())
        }
        Answer::No => Err(Failure::Job(format!("{} left alone", label(crew, job)))),
        Answer::Unasked(me) => Err(Failure::Usage(format!(
            "{what} is not yours (you are {me} on {}): pass --yes to {verb} it",
            crew.name
        ))),
    }
}

/// Whether an attach to `job` should send the caller's input: their own
/// job, yes; another's only with `yes` or their answer (otherwise the
/// attach is read-only, and says so).
pub async fn write_to(crew: &Crew, job: &pb::Job, yes: bool) -> Result<bool, Failure> {
    let what = describe(crew, job);
    let question = format!("type into {what} (no: watch it read-only)");
    Ok(match decide(crew, job, &question, yes).await? {
        Answer::Own | Answer::Yes => true,
        Answer::No => false,
        Answer::Unasked(_) => {
            eprintln!("foreman: {what} is not yours: attaching read-only (--yes to type into it)");
            false
        }
    })
}

fn label(crew: &Crew, job: &pb::Job) -> String {
    format!("{}/{}", crew.name, job.handle)
}

/// "alice's job web/job-7 (named build): sleep 100", filtered for the
/// terminal: the name and command are another user's text.
fn describe(crew: &Crew, job: &pb::Job) -> String {
    let mut s = format!("{}'s job {}", job.owner, label(crew, job));
    if !job.name.is_empty() {
        s.push_str(&format!(" (named {})", job.name));
    }
    s.push_str(": ");
    // Enough of the command to know it by, however long it is.
    let head = job.argv.iter().take(16).cloned().collect::<Vec<_>>();
    let command: String = crate::present::command_line(&head).chars().take(120).collect();
    s.push_str(&command);
    if job.argv.len() > head.len() || command.len() < crate::present::command_line(&head).len() {
        s.push('…');
    }
    Sanitizer::clean(&s)
}

fn ask(question: &str) -> bool {
    let mut err = std::io::stderr().lock();
    let _ = err.write_all(question.as_bytes());
    let _ = err.flush();
    let mut line = String::new();
    if std::io::stdin().lock().read_line(&mut line).is_err() {
        return false;
    }
    matches!(line.trim(), "y" | "Y" | "yes" | "YES" | "Yes")
}
