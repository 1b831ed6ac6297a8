//! Completion of what a script cannot know when it is made: job references
//! from real crews, preset and context names from the config; asked of
//! `foreman __complete` and through the scripts `foreman completions
//! bash|zsh|fish` prints, run by a real bash, zsh (Tab pressed in a
//! pseudo-terminal) and fish.

use std::path::Path;
use std::time::{Duration, Instant};

use crate::support::{ALICE, fleet_or_skip};

/// `foreman __complete -- foreman ARGS...`: its exit code and lines.
fn complete(config: &Path, args: &[&str]) -> (i32, Vec<String>, String) {
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_foreman"))
        .args(["__complete", "--", "foreman", "--config"])
        .arg(config)
        .args(args)
        .env_remove("TASKER_CONTEXT")
        .output()
        .expect("foreman runs");
    let lines = String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(str::to_owned)
        .collect();
    (
        out.status.code().unwrap_or(-1),
        lines,
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// The script `foreman completions SHELL` prints, written into `dir`.
fn completion_script(dir: &Path, shell: &str) -> std::path::PathBuf {
    let script = dir.join(format!("foreman.{shell}"));
    let made = std::process::Command::new(env!("CARGO_BIN_EXE_foreman"))
        .args(["completions", shell])
        .output()
        .expect("foreman runs");
    assert!(made.status.success());
    std::fs::write(&script, &made.stdout).unwrap();
    script
}

/// Runs `shell ARGS... -c LINE POSITIONAL...` with foreman on its PATH; the candidates
/// it printed, one a line (a tab ends a candidate: fish's descriptions
/// follow it), sorted.
fn offers_of(shell: &str, args: &[&str], line: &str, positional: &[&str]) -> Vec<String> {
    let bin = Path::new(env!("CARGO_BIN_EXE_foreman")).parent().unwrap();
    let path = format!("{}:{}", bin.display(), std::env::var("PATH").unwrap_or_default());
    let out = std::process::Command::new(shell)
        .args(args)
        .args(["-c", line])
        .args(positional)
        .env("PATH", path)
        .env_remove("TASKER_CONTEXT")
        .output()
        .unwrap_or_else(|e| panic!("{shell} runs: {e}"));
    assert!(
        out.status.success(),
        "{shell}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let mut got: Vec<String> = String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(|l| l.split('\t').next())
        .filter(|l| !l.is_empty())
        .map(str::to_owned)
        .collect();
    got.sort();
    got
}

/// What bash's completion offers for `foreman WORDS...` (the last word the
/// one being completed), with the script `foreman completions bash` prints
/// sourced, as a user's shell would.
fn bash_offers(dir: &Path, words: &[&str]) -> Vec<String> {
    let script = completion_script(dir, "bash");
    let quoted: Vec<String> = words.iter().map(|w| format!("'{w}'")).collect();
    let line = format!(
        "source {script:?}
         COMP_WORDS=(foreman {words})
         COMP_CWORD={cword}
         COMP_LINE=\"${{COMP_WORDS[*]}}\"
         COMP_POINT=${{#COMP_LINE}}
         spec=$(complete -p foreman)
         fn=${{spec#*-F }}; fn=${{fn%% *}}
         \"$fn\" foreman \"${{COMP_WORDS[COMP_CWORD]}}\" \"${{COMP_WORDS[COMP_CWORD-1]}}\"
         printf '%s\\n' \"${{COMPREPLY[@]}}\"",
        words = quoted.join(" "),
        cword = words.len(),
    );
    offers_of("bash", &["--norc", "--noprofile"], &line, &[])
}

/// The script `foreman completions SHELL` prints, written into `dir`, if
/// that shell is installed (`.ci/run` installs fish and zsh).
fn script_for_installed(dir: &Path, shell: &str) -> Option<std::path::PathBuf> {
    if std::process::Command::new(shell)
        .arg("--version")
        .output()
        .is_err()
    {
        println!("SKIPPED ({shell}'s completion): {shell} is not installed (.ci/run installs it)");
        return None;
    }
    Some(completion_script(dir, shell))
}

/// What fish offers for `foreman WORDS...` with the script `foreman
/// completions fish` prints sourced (`complete -C`); `None` without fish.
fn fish_offers(dir: &Path, words: &[&str]) -> Option<Vec<String>> {
    let script = script_for_installed(dir, "fish")?;
    // The words as typed (none has a space): an empty last one is the
    // space after the previous.
    let line = format!("source {script:?}; complete -C \"foreman {}\"", words.join(" "));
    Some(offers_of("fish", &["--no-config"], &line, &[]))
}

/// Drives an interactive zsh in a pseudo-terminal (`zsh/zpty`): compinit,
/// the script sourced, the line typed and Tab pressed, as a user would.
/// Each match the completion system adds is printed after `<M>` (its
/// functions add through `compadd`), and `<END>` when it is done; the
/// matches alone are printed at the end, one a line. The markers are
/// quoted apart so that the echo of these lines holds none.
/// `$1`: the script; `$2`: the line typed before Tab.
const ZSH_DRIVER: &str = r#"
zmodload zsh/zpty
zpty comp zsh -f -i
zpty -w comp "PS1='' RPS1=''; autoload -Uz compinit; compinit -u -D; source ${(q)1}"
zpty -w comp 'compadd() { if (( ! ${@[(I)-[OAD]*]} )); then local -a m; builtin compadd -O m "$@"; print -rl -- "" "<""M>"${^m}; fi; builtin compadd "$@"; }'
zpty -w comp 'comppostfuncs=(__said_end); __said_end() { print -r -- "" "<""END>"; comppostfuncs=(__said_end) }'
zpty -w comp 'print -r -- "<""READY>"'
read_until() {
  out=
  until [[ $out == *$1* ]]; do
    (( SECONDS < 20 )) || { print -u2 -r -- "no $1 from zsh in 20 s: $out"; exit 1 }
    zpty -r -t comp line && out+=$line || sleep 0.02
  done
}
read_until '<READY>'
zpty -w -n comp "$2"$'\t'
read_until '<END>'
zpty -d comp
for l in ${(f)out}; do [[ $l == *'<M>'* ]] && print -r -- ${${l##*<M>}%$'\r'}; done
true
"#;

/// What zsh's completion system offers for `foreman WORDS...` (none has a
/// space; an empty last one is the space after the previous) with the
/// script `foreman completions zsh` prints; `None` without zsh.
fn zsh_offers(dir: &Path, words: &[&str]) -> Option<Vec<String>> {
    let script = script_for_installed(dir, "zsh")?;
    let typed = format!("foreman {}", words.join(" "));
    let script = script.to_str().unwrap();
    Some(offers_of("zsh", &["-f"], ZSH_DRIVER, &["zsh", script, &typed]))
}

/// Presets (the top level's, and a context's added) and contexts, from
/// the config alone: no crew is asked (its address answers nothing).
#[test]
fn presets_and_contexts_come_from_the_config() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("foreman.toml");
    std::fs::write(
        &config,
        r#"
user = "nobody"

[[crew]]
name = "alpha"
addr = "127.0.0.1:1"

[preset.build]
argv = ["make"]

[preset.deploy]
argv = ["./deploy"]

[contexts.prod]
crew = [{ name = "p1", addr = "127.0.0.1:1" }]
[contexts.prod.preset.backup]
argv = ["backup"]

[contexts.staging]
crew = [{ name = "s1", addr = "127.0.0.1:1" }]
"#,
    )
    .unwrap();
    let (code, presets, err) = complete(&config, &["start", "--preset", ""]);
    assert_eq!(
        (code, presets, err.as_str()),
        (0, vec!["build".into(), "deploy".into()], "")
    );
    let (_, presets, _) = complete(&config, &["--context", "prod", "run", "--preset", ""]);
    assert_eq!(presets, ["backup", "build", "deploy"]);
    let (_, presets, _) = complete(&config, &["start", "--preset=d"]);
    assert_eq!(presets, ["deploy"]);
    let (_, contexts, _) = complete(&config, &["--context", ""]);
    assert_eq!(contexts, ["prod", "staging"]);
    // Not one of its kinds: exit 1, nothing said, the static script goes on.
    let (code, none, err) = complete(&config, &["start", "--memory", ""]);
    assert_eq!((code, none.len(), err.as_str()), (1, 0, ""));

    // Through bash, as a user's Tab would (bash splits `--preset=b`).
    let cfg = config.to_str().unwrap();
    assert_eq!(
        bash_offers(dir.path(), &["--config", cfg, "start", "--preset", ""]),
        ["build", "deploy"]
    );
    assert_eq!(
        bash_offers(dir.path(), &["--config", cfg, "start", "--preset", "=", "b"]),
        ["build"]
    );
    assert_eq!(
        bash_offers(dir.path(), &["--config", cfg, "--context", "s"]),
        ["staging"]
    );
    // What the static script completes still is.
    assert_eq!(
        bash_offers(dir.path(), &["--config", cfg, "unarc"]),
        ["unarchive"]
    );
    // The hidden command is not offered.
    assert!(!bash_offers(dir.path(), &["--config", cfg, "__"]).contains(&"__complete".to_owned()));
    // The same through zsh's completion system (`--preset=d` is one word
    // there).
    if let Some(presets) = zsh_offers(dir.path(), &["--config", cfg, "start", "--preset", ""]) {
        assert_eq!(presets, ["build", "deploy"]);
        let zsh = |words: &[&str]| zsh_offers(dir.path(), words).unwrap();
        assert_eq!(zsh(&["--config", cfg, "start", "--preset=d"]), ["deploy"]);
        assert_eq!(zsh(&["--config", cfg, "--context", "s"]), ["staging"]);
        assert_eq!(zsh(&["--config", cfg, "unarc"]), ["unarchive"]);
    }
}

/// Job references from real crews: each job once, by the shortest
/// reference the CLI takes for it alone, only those the command acts on;
/// a crew that does not answer is left out, silently, within the budget.
// Two threads: the crews run in this process, and a completion blocks one.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn job_references_come_from_the_crews() {
    let fleet = fleet_or_skip!("alpha", "beta");
    let run = |args: &'static [&'static str]| {
        let f = &fleet;
        async move { f.run(ALICE, args).await.expect(0) }
    };
    run(&[
        "start",
        "--crew",
        "alpha",
        "--name",
        "ticker",
        "--",
        "/bin/sleep",
        "1000",
    ])
    .await;
    run(&["run", "--crew", "alpha", "--", "/bin/true"]).await;
    run(&["run", "--crew", "alpha", "--name", "old", "--", "/bin/true"]).await;
    run(&["archive", "old"]).await;
    run(&[
        "start",
        "--crew",
        "beta",
        "--name",
        "ticker",
        "--",
        "/bin/sleep",
        "1000",
    ])
    .await;
    run(&[
        "start",
        "--crew",
        "beta",
        "--name",
        "web",
        "--",
        "/bin/sleep",
        "1000",
    ])
    .await;

    // The fleet's crews, and one that never answers (a listener that
    // accepts and says nothing) and one that refuses.
    let silent = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let mut toml = std::fs::read_to_string(fleet.config()).unwrap();
    toml = format!("user = {ALICE:?}\n{toml}");
    toml.push_str(&format!(
        "\n[[crew]]\nname = \"mute\"\naddr = \"{}\"\n\n[[crew]]\nname = \"gone\"\naddr = \"127.0.0.1:1\"\n",
        silent.local_addr().unwrap()
    ));
    let config = fleet.home.path().join("with-dead.toml");
    std::fs::write(&config, toml).unwrap();

    let t0 = Instant::now();
    let (code, listed, err) = complete(&config, &["logs", ""]);
    assert!(t0.elapsed() < Duration::from_secs(3), "took {:?}", t0.elapsed());
    assert_eq!((code, err.as_str()), (0, ""));
    assert_eq!(listed, ["alpha/job-2", "alpha/ticker", "beta/ticker", "web"]);
    assert_eq!(
        complete(&config, &["stop", ""]).1,
        ["alpha/ticker", "beta/ticker", "web"]
    );
    assert_eq!(complete(&config, &["archive", ""]).1, ["alpha/job-2"]);
    assert_eq!(complete(&config, &["unarchive", ""]).1, ["old"]);
    assert_eq!(
        complete(&config, &["attach", "alpha/"]).1,
        ["alpha/job-1", "alpha/ticker"]
    );
    // One job given already: the rest is the static script's.
    assert_eq!(complete(&config, &["logs", "web", ""]).0, 1);

    let cfg = config.to_str().unwrap();
    let dir = fleet.home.path();
    assert_eq!(
        bash_offers(dir, &["--config", cfg, "logs", "-f", ""]),
        ["alpha/job-2", "alpha/ticker", "beta/ticker", "web"]
    );
    assert_eq!(bash_offers(dir, &["--config", cfg, "stop", "w"]), ["web"]);
    assert_eq!(bash_offers(dir, &["--config", cfg, "unarchive", ""]), ["old"]);
    // The same through fish.
    if let Some(offers) = fish_offers(dir, &["--config", cfg, "logs", "-f", ""]) {
        assert_eq!(offers, ["alpha/job-2", "alpha/ticker", "beta/ticker", "web"]);
        assert_eq!(
            fish_offers(dir, &["--config", cfg, "stop", "w"]).unwrap(),
            ["web"]
        );
    }
    // And through zsh.
    if let Some(offers) = zsh_offers(dir, &["--config", cfg, "logs", "-f", ""]) {
        assert_eq!(offers, ["alpha/job-2", "alpha/ticker", "beta/ticker", "web"]);
        assert_eq!(zsh_offers(dir, &["--config", cfg, "stop", "w"]).unwrap(), ["web"]);
        assert_eq!(
            zsh_offers(dir, &["--config", cfg, "unarchive", ""]).unwrap(),
            ["old"]
        );
    }
    drop(silent);
    for job in ["alpha/ticker", "beta/ticker", "beta/web"] {
        fleet.run(ALICE, &["stop", job, "--grace", "1s"]).await.expect(0);
    }
    fleet.stop().await;
}
