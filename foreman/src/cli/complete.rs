//! `foreman __complete WORDS...`: the values a completion script cannot
//! know when it is made (job references, preset and context names), for
//! the command line typed so far.
//!
//! Why a hidden command and not clap_complete's dynamic completion
//! (`CompleteEnv`, `ArgValueCandidates`): that needs its `unstable-dynamic`
//! feature, whose scripts and API may change in any release, and it would
//! replace the static scripts users have installed. Here the static
//! scripts stay as clap makes them; `docs.rs` adds a few lines to each
//! that ask this command at the places it knows (as kubectl's and gh's
//! scripts call `__complete`). The parsing of the words is here, in Rust,
//! once for every shell.
//!
//! It prints one candidate a line and exits 0 when the word being
//! completed is one of its kinds (even with no candidate), and exits 1,
//! silent, when it is not, so that the static script completes it. It
//! never prints an error: stderr would land in the user's prompt.

use std::time::Duration;

use clap::CommandFactory as _;
use futures_util::future::join_all;
use tasker_proto::v1 as pb;

use super::args::Cli;
use crate::client::Crew;
use crate::config::{self, Overrides};
use crate::failure::Failure;

/// How long job references may take, all crews together: a shell waits
/// for it at each Tab. Crews that have not answered by then are left out.
pub const BUDGET: Duration = Duration::from_secs(1);

/// What the word being completed is.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Want {
    Jobs(Which),
    Presets,
    Contexts,
}

/// Which jobs make sense to the command: those it can act on.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Which {
    /// Every listed job (not archived).
    Listed,
    Running,
    /// Ended and not archived.
    Ended,
    Archived,
}

/// The commands that take a job, and which jobs; `true`: several.
const JOB_COMMANDS: [(&str, Which, bool); 9] = [
    ("status", Which::Listed, false),
    ("logs", Which::Listed, false),
    ("wait", Which::Listed, false),
    ("rerun", Which::Listed, false),
    ("audit", Which::Listed, false),
    ("attach", Which::Running, false),
    ("stop", Which::Running, false),
    ("archive", Which::Ended, false),
    ("unarchive", Which::Archived, true),
];

/// The word being completed, what it wants, and the global options typed
/// before it (which config, context, user: the candidates come from
/// there).
#[derive(Debug)]
pub struct Asked {
    pub want: Want,
    /// What is typed of the value so far.
    pub prefix: String,
    pub over: Overrides,
}

/// Prints the candidates for `words` (the command line up to the word
/// being completed, which may be empty; the program's name first).
pub async fn complete(words: &[String]) -> Result<(), Failure> {
    let Some(asked) = read(words) else {
        return Err(Failure::Exit(1));
    };
    let mut found = match asked.want {
        Want::Presets => presets(&asked.over),
        Want::Contexts => config::context_names(&asked.over),
        Want::Jobs(which) => jobs(&asked.over, which, &asked.prefix).await,
    };
    found.retain(|c| c.starts_with(&asked.prefix));
    let mut out = String::new();
    for c in found {
        out.push_str(&c);
        out.push('\n');
    }
    // A shell that stopped reading is no error to report.
    let _ = std::io::Write::write_all(&mut std::io::stdout().lock(), out.as_bytes());
    Ok(())
}

/// What the last of `words` is: a job reference, a preset or a context
/// name, or (`None`) something the static script completes.
#[must_use]
pub fn read(words: &[String]) -> Option<Asked> {
    let words = join_equals(words.get(1..)?);
    let (cur, before) = words.split_last()?;
    let cli = Cli::command();
    let mut over = Overrides::default();
    let mut sub: Option<&clap::Command> = None;
    let mut positionals = 0;
    let mut i = 0;
    while i < before.len() {
        let w = before[i].as_str();
        if w == "--" {
            // The job's own command follows.
            return None;
        }
        let (flag, inline) = match w.split_once('=') {
            Some((f, v)) if w.starts_with("--") => (f, Some(v.to_owned())),
            _ => (w, None),
        };
        if flag.starts_with('-') && flag.len() > 1 {
            let takes = takes_value(&cli, sub, flag);
            let value = match (&inline, takes) {
                (Some(v), _) => Some(v.clone()),
                (None, true) => {
                    i += 1;
                    before.get(i).cloned()
                }
                (None, false) => None,
            };
            if let Some(v) = value {
                let v = v.clone();
                match flag {
                    "--config" => over.config = Some(v.into()),
                    "--context" => over.context = Some(v),
                    "--user" => over.user = Some(v),
                    "--certs" => over.certs = Some(v.into()),
                    // Before the command it names crews; after, it picks one.
                    "--crew" if sub.is_none() => over.crews.push(v),
                    _ => {}
                }
            }
        } else if sub.is_none() {
            sub = Some(cli.find_subcommand(w)?);
        } else {
            positionals += 1;
        }
        i += 1;
    }
    // `--preset=bu`, `--context=pr`.
    if let Some((flag, value)) = cur.split_once('=')
        && cur.starts_with("--")
    {
        return value_of(flag, value, over);
    }
    // `--preset bu`.
    if let Some(prev) = before.last()
        && prev.starts_with('-')
        && !prev.contains('=')
        && takes_value(&cli, sub, prev)
    {
        return value_of(prev, cur, over);
    }
    if cur.starts_with('-') {
        return None;
    }
    let name = sub?.get_name();
    let (_, which, several) = JOB_COMMANDS.iter().find(|(c, _, _)| *c == name)?;
    if positionals > 0 && !several {
        return None;
    }
    Some(Asked {
        want: Want::Jobs(*which),
        prefix: cur.clone(),
        over,
    })
}

fn value_of(flag: &str, value: &str, over: Overrides) -> Option<Asked> {
    let want = match flag {
        "--preset" => Want::Presets,
        "--context" => Want::Contexts,
        _ => return None,
    };
    Some(Asked {
        want,
        prefix: value.to_owned(),
        over,
    })
}

/// bash splits `--config=f` into `--config`, `=`, `f` (`=` is one of its
/// word breaks): put them together again.
fn join_equals(words: &[String]) -> Vec<String> {
    let mut out: Vec<String> = Vec::with_capacity(words.len());
    let mut glue = false;
    for w in words {
        if glue {
            if let Some(last) = out.last_mut() {
                last.push_str(w);
            }
            glue = false;
        } else if w == "="
            && let Some(last) = out.last_mut()
            && last.starts_with("--")
            && !last.contains('=')
        {
            last.push('=');
            glue = true;
        } else {
            out.push(w.clone());
        }
    }
    out
}

/// Whether `flag` (`--grace`, `-t`) takes a value, for the command typed
/// so far (global options are known to every command).
fn takes_value(cli: &clap::Command, sub: Option<&clap::Command>, flag: &str) -> bool {
    let matches = |a: &clap::Arg| match flag.strip_prefix("--") {
        Some(long) => a.get_long() == Some(long),
        None => {
            let mut chars = flag.chars().skip(1);
            chars.next().is_some_and(|c| a.get_short() == Some(c)) && chars.next().is_none()
        }
    };
    sub.into_iter()
        .chain(std::iter::once(cli))
        .flat_map(clap::Command::get_arguments)
        .find(|a| matches(a))
        .is_some_and(|a| a.get_action().takes_values())
}

/// The preset names of the config (of its context, if one is chosen).
fn presets(over: &Overrides) -> Vec<String> {
    config::load(over)
        .map(|c| c.presets.into_keys().collect())
        .unwrap_or_default()
}

/// The references of the jobs `which` asks for, on every crew (the
/// configuration's and those discovery finds, as every command asks) that
/// answers within [`BUDGET`], discovery included.
async fn jobs(over: &Overrides, which: Which, prefix: &str) -> Vec<String> {
    let Ok(mut config) = config::load(over) else {
        return Vec::new();
    };
    let deadline = tokio::time::Instant::now() + BUDGET;
    // Discovery that takes longer than the budget leaves the
    // configuration's own crews.
    let statics = config.crews.clone();
    if tokio::time::timeout_at(deadline, crate::discovery::add_to(&mut config))
        .await
        .is_err()
    {
        config.crews = statics;
    }
    let Ok(crews) = crate::client::crews(&config) else {
        return Vec::new();
    };
    let archived = which == Which::Archived;
    let asks = crews.iter().map(|c| async move {
        let jobs = list_until(c, archived, deadline).await;
        (c.name.clone(), jobs)
    });
    let lists = join_all(asks).await;
    references(&lists, |j| wanted(j, which), prefix)
}

/// The crew's jobs, as many pages as arrive before `deadline`.
async fn list_until(crew: &Crew, archived: bool, deadline: tokio::time::Instant) -> Vec<pb::Job> {
    let mut client = crew.client.clone();
    let mut jobs = Vec::new();
    let mut token = String::new();
    loop {
        let ask = client.list_jobs(pb::ListJobsRequest {
            include_archived: archived,
            page_size: 0,
            page_token: std::mem::take(&mut token),
        });
        let Ok(Ok(page)) = tokio::time::timeout_at(deadline, ask).await else {
            return jobs;
        };
        let page = page.into_inner();
        jobs.extend(page.jobs);
        if page.next_page_token.is_empty() {
            return jobs;
        }
        token = page.next_page_token;
    }
}

fn wanted(job: &pb::Job, which: Which) -> bool {
    let ended = job.outcome.is_some();
    match which {
        Which::Listed => !job.archived,
        Which::Running => !job.archived && !ended,
        Which::Ended => !job.archived && ended,
        Which::Archived => job.archived,
    }
}

/// One reference for each job `keep` keeps, the shortest the CLI takes for
/// it alone: its name where no other job of `lists` has it, else
/// `CREW/name` where none other on its crew has it, else `CREW/job-N`
/// (`job-N` with one crew). Once a `CREW/` is typed, every job of that
/// crew also by `CREW/job-N`. Sorted, each once.
#[must_use]
pub fn references(
    lists: &[(String, Vec<pb::Job>)],
    keep: impl Fn(&pb::Job) -> bool,
    prefix: &str,
) -> Vec<String> {
    use std::collections::HashMap;
    let mut everywhere: HashMap<&str, usize> = HashMap::new();
    let mut per_crew: HashMap<(&str, &str), usize> = HashMap::new();
    for (crew, jobs) in lists {
        for j in jobs.iter().filter(|j| !j.name.is_empty()) {
            *everywhere.entry(&j.name).or_default() += 1;
            *per_crew.entry((crew, &j.name)).or_default() += 1;
        }
    }
    let one_crew = lists.len() == 1;
    let typed_crew = prefix.split_once('/').map(|(c, _)| c);
    let mut out = Vec::new();
    for (crew, jobs) in lists {
        for j in jobs.iter().filter(|j| keep(j)) {
            let name = j.name.as_str();
            if !name.is_empty() && everywhere[name] == 1 {
                out.push(name.to_owned());
            } else if !name.is_empty() && per_crew[&(crew.as_str(), name)] == 1 {
                out.push(format!("{crew}/{name}"));
            } else if one_crew {
                out.push(j.handle.clone());
            } else {
                out.push(format!("{crew}/{}", j.handle));
            }
            if typed_crew == Some(crew.as_str()) {
                out.push(format!("{crew}/{}", j.handle));
                if !name.is_empty() && per_crew[&(crew.as_str(), name)] == 1 {
                    out.push(format!("{crew}/{name}"));
                }
            }
        }
    }
    out.sort();
    out.dedup();
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn words(line: &str) -> Vec<String> {
        let mut w: Vec<String> = line.split(' ').map(str::to_owned).collect();
        w.insert(0, "foreman".into());
        w
    }

    fn want(line: &str) -> Option<(Want, String)> {
        read(&words(line)).map(|a| (a.want, a.prefix))
    }

    #[test]
    fn the_word_being_completed_is_read_from_the_line() {
        let jobs = |w, p: &str| Some((Want::Jobs(w), p.to_owned()));
        assert_eq!(want("logs "), jobs(Which::Listed, ""));
        assert_eq!(want("logs ti"), jobs(Which::Listed, "ti"));
        assert_eq!(want("logs -f ti"), jobs(Which::Listed, "ti"));
        assert_eq!(want("logs --tail 5 ti"), jobs(Which::Listed, "ti"));
        assert_eq!(want("--user alice stop --grace 1s "), jobs(Which::Running, ""));
        assert_eq!(want("archive "), jobs(Which::Ended, ""));
        assert_eq!(want("unarchive a b "), jobs(Which::Archived, ""));
        // One job already given; an option; a flag's own value.
        assert_eq!(want("logs job-1 "), None);
        assert_eq!(want("logs --"), None);
        assert_eq!(want("logs --tail "), None);
        assert_eq!(want("stop --grace "), None);
        // Not a command that takes a job; no command yet; the job's argv.
        assert_eq!(want("ls "), None);
        assert_eq!(want(""), None);
        assert_eq!(want("start -- "), None);
        assert_eq!(want("nosuch "), None);

        assert_eq!(want("start --preset "), Some((Want::Presets, String::new())));
        assert_eq!(
            want("run --crew a --preset bu"),
            Some((Want::Presets, "bu".into()))
        );
        assert_eq!(want("start --preset=bu"), Some((Want::Presets, "bu".into())));
        // bash's words: `--preset`, `=`, `bu`.
        assert_eq!(want("start --preset = bu"), Some((Want::Presets, "bu".into())));
        assert_eq!(want("start --preset ="), Some((Want::Presets, String::new())));
        assert_eq!(want("--context "), Some((Want::Contexts, String::new())));
        assert_eq!(want("ls --context pr"), Some((Want::Contexts, "pr".into())));
    }

    #[test]
    fn global_options_typed_say_where_candidates_come_from() {
        let asked = read(&words(
            "--config = /f --context prod --crew a=h:1 --user bob start --crew b --preset ",
        ))
        .unwrap();
        assert_eq!(asked.want, Want::Presets);
        assert_eq!(asked.over.config.as_deref(), Some(std::path::Path::new("/f")));
        assert_eq!(asked.over.context.as_deref(), Some("prod"));
        assert_eq!(asked.over.user.as_deref(), Some("bob"));
        // `start --crew b` picks a crew; only the global one names crews.
        assert_eq!(asked.over.crews, ["a=h:1"]);
    }

    fn job(handle: &str, name: &str) -> pb::Job {
        pb::Job {
            handle: handle.into(),
            name: name.into(),
            ..Default::default()
        }
    }

    #[test]
    fn each_job_gets_the_shortest_reference_that_names_it_alone() {
        let lists = vec![
            (
                "alpha".to_owned(),
                vec![job("job-1", "ticker"), job("job-2", ""), job("job-3", "web")],
            ),
            ("beta".to_owned(), vec![job("job-1", "web"), job("job-2", "only")]),
        ];
        let all = |_: &pb::Job| true;
        assert_eq!(
            references(&lists, all, ""),
            ["alpha/job-2", "alpha/web", "beta/web", "only", "ticker"]
        );
        assert_eq!(
            references(&lists, all, "beta/"),
            [
                "alpha/job-2",
                "alpha/web",
                "beta/job-1",
                "beta/job-2",
                "beta/only",
                "beta/web",
                "only",
                "ticker"
            ]
        );
        // One crew: handles need no crew.
        let one = vec![("alpha".to_owned(), vec![job("job-1", ""), job("job-2", "x")])];
        assert_eq!(references(&one, all, ""), ["job-1", "x"]);
        // A name another job holds, even one not offered, is not enough.
        let archived = |j: &pb::Job| j.archived;
        let mut old = job("job-1", "x");
        old.archived = true;
        let one = vec![("alpha".to_owned(), vec![old, job("job-2", "x")])];
        assert_eq!(references(&one, archived, ""), ["job-1"]);
    }
}
