//! `foreman completions SHELL` and `foreman man --dir DIR`: shell completion
//! scripts and man pages, made from the clap definitions themselves
//! (`clap_complete`, `clap_mangen`), so they never disagree with `--help`.

use std::path::Path;

use clap::CommandFactory as _;

use super::args::Cli;
use crate::failure::Failure;

pub fn completions(shell: clap_complete::Shell) -> Result<(), Failure> {
    let mut out = Vec::new();
    clap_complete::generate(shell, &mut Cli::command(), "foreman", &mut out);
    let text = String::from_utf8_lossy(&out);
    super::output::outln!("{}", text.trim_end());
    Ok(())
}

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
