//! `foreman completions SHELL` and `foreman man --dir DIR`: shell completion
//! scripts and man pages, made from the clap definitions themselves
//! (`clap_complete`, `clap_mangen`), so they never disagree with `--help`.

use std::path::Path;

use clap::CommandFactory as _;

use super::args::Cli;
use crate::failure::Failure;

pub fn completions(shell: clap_complete::Shell) -> Result<(), Failure> {
    super::output::outln!("{}", script(shell));
    Ok(())
}

/// clap's script for `shell`, and what values the script cannot know
/// (job references, preset and context names) asked of `foreman
/// __complete` (see `complete.rs`): bash, zsh and fish; the other shells
/// get clap's script alone.
#[must_use]
pub fn script(shell: clap_complete::Shell) -> String {
    use clap_complete::Shell;
    let mut out = Vec::new();
    clap_complete::generate(shell, &mut visible_command(), "foreman", &mut out);
    let text = String::from_utf8_lossy(&out).trim_end().to_owned();
    match shell {
        Shell::Bash => {
            let text = text.replace("complete -F _foreman ", "complete -F _foreman_dynamic ");
            format!("{text}\n{BASH}")
        }
        Shell::Zsh => {
            let text: Vec<String> = text
                .lines()
                .map(|line| {
                    let dynamic = [
                        "':job -- ",
                        "'::job -- ",
                        "'*::jobs -- ",
                        "'--preset=[",
                        "'--context=[",
                    ]
                    .iter()
                    .any(|start| line.starts_with(start));
                    if dynamic {
                        line.replace(":_default' \\", ":_foreman_dynamic' \\")
                    } else {
                        line.to_owned()
                    }
                })
                .collect();
            let text = text.join("\n");
            // Defined before the script's last lines call `_foreman`.
            let last = "if [ \"$funcstack[1]\" = \"_foreman\" ]; then";
            text.replacen(last, &format!("{ZSH}\n{last}"), 1)
        }
        Shell::Fish => format!("{text}\n{FISH}"),
        _ => text,
    }
}

/// The command line as users see it: hidden commands (`__complete`) are
/// left out, which clap_complete would list.
fn visible_command() -> clap::Command {
    let full = Cli::command();
    let mut cmd = clap::Command::new("foreman")
        .version(env!("CARGO_PKG_VERSION"))
        .about(full.get_about().cloned().unwrap_or_default());
    for arg in full.get_arguments() {
        cmd = cmd.arg(arg.clone());
    }
    for sub in full.get_subcommands().filter(|s| !s.is_hide_set()) {
        cmd = cmd.subcommand(sub.clone());
    }
    cmd
}

/// bash: the words so far go to `foreman __complete`; when it says the
/// word is not one of its kinds (exit 1), clap's `_foreman` completes it.
const BASH: &str = r#"
# Job references, preset and context names: asked of `foreman __complete`
# with the words so far (it knows which the word is, and from where).
_foreman_dynamic() {
    local cur="${COMP_WORDS[COMP_CWORD]}" found
    # bash breaks `--preset=bu` into `--preset`, `=`, `bu`.
    [[ $cur == "=" ]] && cur=""
    if found=$("${COMP_WORDS[0]}" __complete -- "${COMP_WORDS[@]:0:COMP_CWORD+1}" 2>/dev/null); then
        local IFS=$'\n'
        COMPREPLY=( $(compgen -W "$found" -- "$cur") )
        return 0
    fi
    _foreman "$@"
}"#;

/// zsh: the job, preset and context arguments of clap's script call this
/// instead of `_default`.
const ZSH: &str = r#"# Job references, preset and context names: asked of `foreman __complete`
# with the line so far (it knows which the word is, and from where).
(( $+functions[_foreman_dynamic] )) ||
_foreman_dynamic() {
    local -a typed found
    local out
    typed=(${(z)LBUFFER})
    [[ $LBUFFER == *[[:space:]] ]] && typed+=('')
    out=$(${(Q)typed[1]} __complete -- "${(@Q)typed}" 2>/dev/null) || { _default "$@"; return }
    found=(${(f)out})
    compadd -a found
}
"#;

/// fish: more rules beside clap's, for the same places.
const FISH: &str = r#"
# Job references, preset and context names: asked of `foreman __complete`
# with the line so far (it knows which the word is, and from where).
function __fish_foreman_dynamic
    set -l typed (commandline -opc) (commandline -ct)
    $typed[1] __complete -- $typed 2>/dev/null
end
complete -c foreman -n "__fish_foreman_using_subcommand status logs wait rerun audit attach stop archive unarchive" -f -a "(__fish_foreman_dynamic)"
complete -c foreman -n "__fish_foreman_using_subcommand start run" -l preset -r -f -a "(__fish_foreman_dynamic)"
complete -c foreman -l context -r -f -a "(__fish_foreman_dynamic)""#;

pub fn man_pages(dir: &Path) -> Result<(), Failure> {
    std::fs::create_dir_all(dir).map_err(|e| Failure::Usage(format!("{}: {e}", dir.display())))?;
    let cmd = Cli::command().name("foreman");
    clap_mangen::generate_to(cmd, dir).map_err(|e| Failure::Usage(format!("{}: {e}", dir.display())))?;
    let mut written: Vec<String> = std::fs::read_dir(dir)
        .map_err(|e| Failure::Usage(format!("{}: {e}", dir.display())))?
        .flatten()
        .filter_map(|e| e.file_name().into_string().ok())
        .filter(|n| n.starts_with("foreman") && n.ends_with(".1"))
        .collect();
    written.sort();
    for name in written {
        super::output::outln!("{}", dir.join(name).display());
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every command, flag and argument says what it is for: `--help`, the
    /// man pages and completions (zsh and fish show it) are made from it.
    #[test]
    fn every_command_flag_and_argument_has_help() {
        fn walk(cmd: &clap::Command, path: &str, missing: &mut Vec<String>) {
            let here = format!("{path} {}", cmd.get_name());
            if !path.is_empty() && cmd.get_about().is_none() {
                missing.push(format!("{here} (the command)"));
            }
            for arg in cmd.get_arguments() {
                let id = arg.get_id().as_str();
                if matches!(id, "help" | "version") {
                    continue;
                }
                if arg.get_help().is_none() && arg.get_long_help().is_none() {
                    missing.push(format!("{here} {id}"));
                }
            }
            for sub in cmd.get_subcommands().filter(|s| s.get_name() != "help") {
                walk(sub, &here, missing);
            }
        }
        let mut missing = Vec::new();
        walk(&Cli::command(), "", &mut missing);
        assert!(missing.is_empty(), "no help text: {missing:#?}");
    }
}
