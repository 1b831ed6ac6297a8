//! What a crew or user name may be.
//!
//! A name becomes a file name (`crews/NAME.crt`), a certificate's CN that
//! the crew maps to a Linux user, and a cgroup directory
//! (`tasker/<crew>/<owner>`). So it is held to a strict alphabet rather than
//! sanitised: a name that would need escaping anywhere is refused.

/// The longest crew or user name accepted.
pub const MAX_NAME_LEN: usize = 64;

/// A name that broke the rule, and which part of it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid name {name:?}: {reason}")]
pub struct InvalidName {
    /// The name as given.
    pub name: String,
    /// Which part of the rule it broke.
    pub reason: &'static str,
}

/// Checks that `name` can be a certificate CN, a file name and a cgroup
/// directory: 1 to 64 characters of `[A-Za-z0-9._-]`, not starting with
/// `.` or `-` (so it is never `.`, `..`, a hidden file, or taken for a
/// command-line flag).
///
/// # Errors
///
/// [`InvalidName`] naming the part of the rule that was broken.
pub fn validate_name(name: &str) -> Result<(), InvalidName> {
    let invalid = |reason| {
        Err(InvalidName {
            name: name.to_owned(),
            reason,
        })
    };
    if name.is_empty() {
        return invalid("it is empty");
    }
    if name.len() > MAX_NAME_LEN {
        return invalid("it is longer than 64 characters");
    }
    if name.starts_with(['.', '-']) {
        return invalid("it starts with '.' or '-'");
    }
    if !name
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'))
    {
        return invalid("only letters, digits, '.', '_' and '-' are allowed");
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_that_are_accepted() {
        let longest = "x".repeat(MAX_NAME_LEN);
        for name in [
            "a",
            "alice",
            "web-01",
            "node_7",
            "crew.example",
            "a.",
            "a-",
            "A1",
            "0",
            &longest,
        ] {
            validate_name(name).unwrap_or_else(|e| panic!("{name:?} refused: {e}"));
        }
    }

    #[test]
    fn names_that_are_refused_say_why() {
        let long = "x".repeat(MAX_NAME_LEN + 1);
        let cases: &[(&str, &str)] = &[
            ("", "empty"),
            (&long, "longer than 64"),
            (".", "starts with"),
            ("..", "starts with"),
            (".hidden", "starts with"),
            ("-rf", "starts with"),
            ("a/b", "only letters"),
            ("../etc", "starts with"),
            ("a b", "only letters"),
            ("é", "only letters"),
            ("a\0b", "only letters"),
            ("a\nb", "only letters"),
            ("a:b", "only letters"),
            ("*", "only letters"),
        ];
        for (name, why) in cases {
            let err = validate_name(name).expect_err(name);
            assert_eq!(err.name, *name);
            let text = err.to_string();
            assert!(text.starts_with("invalid name "), "{text}");
            assert!(text.contains(why), "{name:?}: {text:?} lacks {why:?}");
        }
    }
}
