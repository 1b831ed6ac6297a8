//! Who may do what (SPEC §1), as one pure function.
//!
//! - Everyone authenticated sees every job: list, watch, status, output.
//! - `user` starts jobs, and manages (stop, archive, stdin) its own.
//! - `admin` manages any job.
//! - `viewer` only reads: it may watch and attach to read output.
//! - A `crew` certificate is not a client at all.

use super::identity::{Identity, Role};

/// What a call wants to do.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Action {
    /// Get, list, watch, info, attach to read.
    Read,
    Start,
    /// Stop, archive.
    Manage,
    /// Stdin, EOF, resize.
    Write,
}

/// Why a call was refused: the rule, in words a person can act on.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct Denied(pub String);

/// May `who` do `action`, on a job owned by `owner` when there is one?
pub fn authorize(who: &Identity, action: Action, owner: Option<&str>) -> Result<(), Denied> {
    let deny = |rule: &str| Err(Denied(format!("{who} may not {}: {rule}", verb(action))));
    match (who.role, action) {
        (Role::Crew, _) => deny("a crew certificate is not a client"),
        (_, Action::Read) => Ok(()),
        (Role::Viewer, _) => deny("viewers are read-only"),
        (Role::Admin, _) => Ok(()),
        (Role::User, Action::Start) => Ok(()),
        (Role::User, Action::Manage | Action::Write) => match owner {
            Some(o) if o == who.name => Ok(()),
            Some(o) => deny(&format!(
                "users manage only their own jobs, and this one is {o}'s"
            )),
            None => deny("users manage only their own jobs"),
        },
    }
}

fn verb(action: Action) -> &'static str {
    match action {
        Action::Read => "read jobs",
        Action::Start => "start jobs",
        Action::Manage => "stop, archive or un-archive this job",
        Action::Write => "write to this job",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn id(name: &str, role: Role) -> Identity {
        Identity {
            name: name.into(),
            role,
        }
    }

    /// Every role × action × owner, with the expected answer.
    #[test]
    fn the_whole_matrix() {
        use Action::*;
        use Role::*;
        let own = Some("alice");
        let other = Some("bob");
        #[rustfmt::skip]
        let table: &[(Role, Action, Option<&str>, bool)] = &[
            (Admin,  Read,   None,  true),  (Admin,  Start,  None,  true),
            (Admin,  Manage, own,   true),  (Admin,  Manage, other, true),
            (Admin,  Write,  own,   true),  (Admin,  Write,  other, true),
            (User,   Read,   None,  true),  (User,   Start,  None,  true),
            (User,   Manage, own,   true),  (User,   Manage, other, false),
            (User,   Write,  own,   true),  (User,   Write,  other, false),
            (User,   Manage, None,  false),
            (Viewer, Read,   None,  true),  (Viewer, Start,  None,  false),
            (Viewer, Manage, own,   false), (Viewer, Manage, other, false),
            (Viewer, Write,  own,   false), (Viewer, Write,  other, false),
            (Crew,   Read,   None,  false), (Crew,   Start,  None,  false),
            (Crew,   Manage, own,   false), (Crew,   Write,  own,   false),
        ];
        for &(role, action, owner, allowed) in table {
            let got = authorize(&id("alice", role), action, owner);
            assert_eq!(
                got.is_ok(),
                allowed,
                "{role:?} {action:?} owner={owner:?}: {got:?}"
            );
        }
    }

    #[test]
    fn a_refusal_names_the_rule() {
        let err = authorize(&id("alice", Role::User), Action::Manage, Some("bob")).unwrap_err();
        assert_eq!(
            err.0,
            "alice (user) may not stop, archive or un-archive this job: users manage only their own jobs, and this one is bob's"
        );
        let err = authorize(&id("vic", Role::Viewer), Action::Start, None).unwrap_err();
        assert!(err.0.contains("viewers are read-only"));
        let err = authorize(&id("alpha", Role::Crew), Action::Read, None).unwrap_err();
        assert!(err.0.contains("not a client"));
    }
}
