//! What a person types to name a job, and what a job's name may be.
//!
//! A job can be named four ways: its id (32 hex digits), a prefix of its
//! id, its `job-N` handle, or the name its owner gave it. If the four could
//! overlap, one user could make a name that reads as another user's id
//! prefix, and an admin who typed that prefix would stop (or type a secret
//! into) the wrong job. So the forms are kept apart by their spelling
//! alone, and a reference is read one way only:
//!
//! | typed                         | read as       |
//! |-------------------------------|---------------|
//! | `job-` and digits             | a handle      |
//! | 32 hex digits                 | an id         |
//! | 6 to 31 hex digits            | an id prefix  |
//! | 1 to 5 hex digits             | refused: too short to be a prefix |
//! | anything else                 | a name        |
//!
//! and a name may never be spelt as one of the others: not `job-` and
//! digits, not only hex digits. A crew also keeps names unique among its
//! jobs that are not archived, and a reference that matches more than one
//! job is an error that lists them, never a pick.

use crate::name::validate_name;

/// The digits in a job id.
pub const ID_LEN: usize = 32;

/// The fewest hex digits read as an id prefix: with ids random, the chance
/// that a given prefix of a crew's 10,000 jobs names two is 10,000 / 16⁶,
/// well under 1%, and when it does the reference is refused, not guessed.
pub const MIN_ID_PREFIX: usize = 6;

/// One way of naming a job, read from what was typed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum JobRef<'a> {
    /// A whole id, lowercase.
    Id(&'a str),
    /// The start of an id, lowercase, [`MIN_ID_PREFIX`] to `ID_LEN - 1`
    /// digits.
    IdPrefix(&'a str),
    /// The number of a `job-N` handle.
    Handle(u64),
    /// A name a job's owner gave it.
    Name(&'a str),
}

/// A reference that cannot name any job, and why.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{reference:?} is not a job reference: {reason}")]
pub struct BadRef {
    pub reference: String,
    pub reason: String,
}

/// A job name that broke the rule, and which part of it.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("job name {name:?} is not allowed: {reason}")]
pub struct BadJobName {
    pub name: String,
    pub reason: String,
}

fn is_hex(s: &str) -> bool {
    !s.is_empty() && s.bytes().all(|b| b.is_ascii_hexdigit())
}

/// The number of a `job-N` spelling, if it is one (`Err` when the digits
/// do not fit).
fn handle_number(s: &str) -> Option<Result<u64, std::num::ParseIntError>> {
    let digits = s.strip_prefix("job-")?;
    (!digits.is_empty() && digits.bytes().all(|b| b.is_ascii_digit())).then(|| digits.parse())
}

impl<'a> JobRef<'a> {
    /// Reads `reference` the one way the table above gives. Ids are
    /// lowercase; an id or prefix typed in capitals is refused rather than
    /// read, so that what matched is what was typed.
    ///
    /// # Errors
    ///
    /// [`BadRef`] for an empty reference, a too-short or too-long run of
    /// hex digits, a handle whose number does not fit, and anything that
    /// could not be a name either.
    pub fn parse(reference: &'a str) -> Result<Self, BadRef> {
        let bad = |reason: String| {
            Err(BadRef {
                reference: reference.to_owned(),
                reason,
            })
        };
        if reference.is_empty() {
            return bad("it is empty".into());
        }
        if let Some(n) = handle_number(reference) {
            return match n {
                Ok(n) => Ok(Self::Handle(n)),
                Err(_) => bad("the handle's number is too large".into()),
            };
        }
        if is_hex(reference) {
            if reference.bytes().any(|b| b.is_ascii_uppercase()) {
                return bad("job ids are lowercase hex".into());
            }
            return match reference.len() {
                ID_LEN => Ok(Self::Id(reference)),
                n if n > ID_LEN => bad(format!("a job id has {ID_LEN} hex digits, this has {n}")),
                n if n >= MIN_ID_PREFIX => Ok(Self::IdPrefix(reference)),
                n => bad(format!(
                    "an id prefix needs at least {MIN_ID_PREFIX} hex digits, this has {n} \
                     (job names are never only hex digits)"
                )),
            };
        }
        match validate_name(reference) {
            Ok(()) => Ok(Self::Name(reference)),
            Err(e) => bad(format!(
                "not an id, an id prefix, a job-N handle, or a name ({})",
                e.reason
            )),
        }
    }

    /// Whether a job with this id, handle and name is one this reference
    /// names (a name matches archived jobs too; see [`pick`]).
    pub fn matches(&self, id: &str, handle: &str, name: &str) -> bool {
        match *self {
            Self::Id(r) => id == r,
            Self::IdPrefix(r) => id.starts_with(r),
            Self::Handle(n) => handle_number(handle).and_then(Result::ok) == Some(n),
            Self::Name(r) => name == r,
        }
    }
}

/// Checks a name for a new job: a crew or user name's alphabet
/// ([`validate_name`]), and never spelt as a handle or an id (prefix), so
/// that no reference to someone else's job can ever read as this name.
///
/// # Errors
///
/// [`BadJobName`] naming the rule.
pub fn validate_job_name(name: &str) -> Result<(), BadJobName> {
    let bad = |reason: String| {
        Err(BadJobName {
            name: name.to_owned(),
            reason,
        })
    };
    if let Err(e) = validate_name(name) {
        return bad(e.reason.to_string());
    }
    if handle_number(name).is_some() {
        return bad("it would read as a job-N handle".into());
    }
    if is_hex(name) {
        return bad("it is only hex digits, so it would read as a job id prefix; \
             add a letter past 'f', or '-', '_' or '.'"
            .into());
    }
    Ok(())
}

/// Of the jobs a reference matched, the one it names: a name that
/// matches a job that is not archived means that job (there is at most one
/// per crew); otherwise exactly one match, or `None` when there are none
/// or several (ambiguous: the caller lists them).
pub fn pick<T>(
    reference: &JobRef<'_>,
    mut matches: Vec<T>,
    archived: impl Fn(&T) -> bool,
) -> Result<T, Vec<T>> {
    if matches!(reference, JobRef::Name(_)) && matches.len() > 1 {
        let live: Vec<usize> = (0..matches.len()).filter(|&i| !archived(&matches[i])).collect();
        if let [one] = live[..] {
            return Ok(matches.swap_remove(one));
        }
    }
    if matches.len() == 1 {
        return Ok(matches.remove(0));
    }
    Err(matches)
}

#[cfg(test)]
mod tests {
    use super::*;

    const ID: &str = "88501f18a1b2c3d4e5f60718293a4b5c";

    /// The whole reference grammar: every form, every edge.
    #[test]
    fn references_are_read_one_way() {
        let long = "a".repeat(ID_LEN + 1);
        #[rustfmt::skip]
        let table: &[(&str, Result<JobRef<'_>, &str>)] = &[
            ("job-7",        Ok(JobRef::Handle(7))),
            ("job-0",        Ok(JobRef::Handle(0))),
            ("job-007",      Ok(JobRef::Handle(7))),
            (ID,             Ok(JobRef::Id(ID))),
            ("88501f18",     Ok(JobRef::IdPrefix("88501f18"))),
            ("88501f",       Ok(JobRef::IdPrefix("88501f"))),
            ("88501",        Err("at least 6 hex digits")),
            ("beef",         Err("at least 6 hex digits")),
            ("12",           Err("at least 6 hex digits")),
            ("88501F18",     Err("lowercase")),
            (&long,          Err("32 hex digits")),
            ("build",        Ok(JobRef::Name("build"))),
            ("job-x",        Ok(JobRef::Name("job-x"))),
            ("job-",         Ok(JobRef::Name("job-"))),
            ("88501f18-x",   Ok(JobRef::Name("88501f18-x"))),
            ("web.01",       Ok(JobRef::Name("web.01"))),
            ("",             Err("empty")),
            ("a b",          Err("not an id")),
            ("-rf",          Err("not an id")),
            ("job-99999999999999999999999", Err("too large")),
        ];
        for (typed, want) in table {
            match (JobRef::parse(typed), want) {
                (Ok(got), Ok(want)) => assert_eq!(got, *want, "{typed:?}"),
                (Err(e), Err(why)) => {
                    assert!(e.to_string().contains(why), "{typed:?}: {e} lacks {why:?}")
                }
                (got, want) => panic!("{typed:?}: got {got:?}, want {want:?}"),
            }
        }
    }

    #[test]
    fn a_name_can_never_read_as_another_form() {
        for name in ["build", "web-01", "job-x", "x", "g", "deadbeefz", "a.b", "1-2"] {
            validate_job_name(name).unwrap_or_else(|e| panic!("{e}"));
            assert_eq!(JobRef::parse(name), Ok(JobRef::Name(name)), "{name}");
        }
        for (name, why) in [
            ("88501f18", "hex digits"),
            ("cafe", "hex digits"),
            ("42", "hex digits"),
            ("ABCDEF", "hex digits"),
            ("job-3", "handle"),
            ("job-0003", "handle"),
            ("", "empty"),
            ("-x", "starts with"),
            ("a/b", "only letters"),
        ] {
            let e = validate_job_name(name).expect_err(name);
            assert!(e.to_string().contains(why), "{name:?}: {e}");
        }
    }

    #[test]
    fn matching() {
        let m = |r: &str| JobRef::parse(r).unwrap().matches(ID, "job-12", "build");
        assert!(m(ID));
        assert!(m("88501f"));
        assert!(m("job-12"));
        assert!(m("job-012"));
        assert!(m("build"));
        assert!(!m("88501e"));
        assert!(!m("job-1"));
        assert!(!m("buil"));
        // A name never matches by prefix of an id, whatever it looks like.
        assert!(!JobRef::Name("88501f18-x").matches(ID, "job-1", "other"));
    }

    #[test]
    fn a_name_prefers_the_job_that_is_not_archived_and_otherwise_is_never_guessed() {
        let name = JobRef::Name("build");
        // (handle, archived)
        assert_eq!(
            pick(&name, vec![(1, true), (2, false), (3, true)], |j| j.1),
            Ok((2, false))
        );
        assert_eq!(pick(&name, vec![(1, true)], |j| j.1), Ok((1, true)));
        assert_eq!(
            pick(&name, vec![(1, true), (3, true)], |j| j.1)
                .unwrap_err()
                .len(),
            2
        );
        assert_eq!(
            pick(&name, Vec::<(i32, bool)>::new(), |j| j.1).unwrap_err().len(),
            0
        );
        let prefix = JobRef::IdPrefix("88501f");
        assert_eq!(
            pick(&prefix, vec![(1, true), (2, false)], |j| j.1)
                .unwrap_err()
                .len(),
            2
        );
    }
}
