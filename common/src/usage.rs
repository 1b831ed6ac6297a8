//! A command-line usage error in one line: what the crew, certgen and
//! foreman's `:start` say when clap refuses what was typed.

/// clap's rendered error as one line: its first line without `error: `,
/// and the choices when it lists them (`[possible values: a, b]`).
pub fn usage_line(rendered: &str) -> String {
    let first = rendered.lines().next().unwrap_or_default();
    let first = first.strip_prefix("error: ").unwrap_or(first);
    match rendered
        .lines()
        .map(str::trim)
        .find(|l| l.starts_with("[possible values"))
    {
        Some(choices) => format!("{first} {choices}"),
        None => first.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_first_line_and_the_choices() {
        let clap = "error: invalid value 'wizard' for '--role <ROLE>'\n  [possible values: user, admin]\n\nFor more information, try '--help'.\n";
        assert_eq!(
            usage_line(clap),
            "invalid value 'wizard' for '--role <ROLE>' [possible values: user, admin]"
        );
        assert_eq!(
            usage_line("error: unexpected argument 'x' found\n\nUsage: a"),
            "unexpected argument 'x' found"
        );
    }
}
