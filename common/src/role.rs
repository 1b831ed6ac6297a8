//! What a certificate's holder may do, carried in its subject's `OU`.

use std::fmt;
use std::str::FromStr;

/// The role an `OU` names (SPEC §1).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Role {
    /// Manages every job.
    Admin,
    /// Starts jobs and manages its own.
    User,
    /// Read-only.
    Viewer,
    /// A crew daemon (server certificate); refused as a client.
    Crew,
}

/// An `OU` that is not one of the four roles.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown role {given:?} (expected admin, user, viewer or crew)")]
pub struct UnknownRole {
    /// The role as given.
    pub given: String,
}

impl Role {
    /// Every role, in the order they are documented.
    pub const ALL: [Role; 4] = [Role::Admin, Role::User, Role::Viewer, Role::Crew];

    /// The `OU` value of this role, which is also its name on the command
    /// line and in the API.
    #[must_use]
    pub fn as_ou(self) -> &'static str {
        match self {
            Role::Admin => "admin",
            Role::User => "user",
            Role::Viewer => "viewer",
            Role::Crew => "crew",
        }
    }

    /// Whether certificates of this role authenticate clients (everyone but
    /// crews).
    #[must_use]
    pub fn is_client(self) -> bool {
        self != Role::Crew
    }
}

impl fmt::Display for Role {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_ou())
    }
}

impl FromStr for Role {
    type Err = UnknownRole;

    /// Parses an `OU` value. Exact and case-sensitive: an `OU=Admin` written
    /// by some other tool is not an admin.
    fn from_str(s: &str) -> Result<Role, UnknownRole> {
        Role::ALL
            .into_iter()
            .find(|role| role.as_ou() == s)
            .ok_or_else(|| UnknownRole { given: s.to_owned() })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn roles_round_trip_through_their_ou() {
        let table = [
            ("admin", Role::Admin, true),
            ("user", Role::User, true),
            ("viewer", Role::Viewer, true),
            ("crew", Role::Crew, false),
        ];
        assert_eq!(table.len(), Role::ALL.len(), "a role is missing from the table");
        for (ou, role, client) in table {
            assert_eq!(ou.parse::<Role>(), Ok(role));
            assert_eq!(role.as_ou(), ou);
            assert_eq!(role.to_string(), ou);
            assert_eq!(role.is_client(), client, "{role}");
        }
    }

    #[test]
    fn unknown_roles_are_refused_by_name() {
        for bad in ["", "Admin", "ADMIN", "root", "admin ", "crews", "superuser"] {
            let err = bad.parse::<Role>().expect_err(bad);
            assert_eq!(err.given, bad);
            assert!(err.to_string().contains("unknown role"), "{err}");
        }
    }
}
