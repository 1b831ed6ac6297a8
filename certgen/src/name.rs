//! Names, hosts and roles: the parts of a certificate a person types.
//!
//! Names become file names (`crews/NAME.crt`) and the certificate's CN, which
//! the crew later maps to a Linux user, so they are held to a strict alphabet
//! rather than sanitised: a name that needs escaping is refused.

use std::fmt;
use std::net::IpAddr;
use std::str::FromStr;

use crate::error::{Error, Result};

/// The longest crew or user name accepted.
pub const MAX_NAME_LEN: usize = 64;

/// Checks that `name` can be a certificate CN and a file name: 1 to 64
/// characters of `[A-Za-z0-9._-]`, not starting with `.` or `-` (so it is
/// never `.`, `..`, a hidden file, or mistaken for a command-line flag).
///
/// # Errors
///
/// [`Error::InvalidName`] naming the rule that was broken.
pub fn validate_name(name: &str) -> Result<()> {
    let invalid = |reason| {
        Err(Error::InvalidName {
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
    if name.starts_with('.') || name.starts_with('-') {
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

/// A subject alternative name of a crew certificate, already validated.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Host {
    /// An IP literal: becomes an IP SAN.
    Ip(IpAddr),
    /// A host name: becomes a DNS SAN.
    Dns(String),
}

impl Host {
    /// Parses a `--host` value: an IPv4 or IPv6 literal (brackets allowed, as
    /// in `[::1]`) or a DNS host name (labels of letters, digits, `-` and `_`,
    /// at most 63 characters each and 253 in all; no wildcards).
    ///
    /// # Errors
    ///
    /// [`Error::InvalidHost`] naming the rule that was broken.
    pub fn parse(host: &str) -> Result<Host> {
        let unbracketed = host
            .strip_prefix('[')
            .and_then(|h| h.strip_suffix(']'))
            .unwrap_or(host);
        if let Ok(ip) = unbracketed.parse::<IpAddr>() {
            return Ok(Host::Ip(ip));
        }
        let invalid = |reason| {
            Err(Error::InvalidHost {
                host: host.to_owned(),
                reason,
            })
        };
        if host.is_empty() {
            return invalid("it is empty");
        }
        if host.len() > 253 {
            return invalid("a host name is at most 253 characters");
        }
        for label in host.split('.') {
            if label.is_empty() {
                return invalid("it has an empty label (leading, trailing or doubled '.')");
            }
            if label.len() > 63 {
                return invalid("a label is at most 63 characters");
            }
            if label.starts_with('-') || label.ends_with('-') {
                return invalid("a label cannot start or end with '-'");
            }
            // Underscores are not RFC 952 but are common in internal names and
            // accepted by webpki as presented identifiers.
            if !label
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
            {
                return invalid("not an IP address, and a host name may only hold letters, digits, '-', '_'");
            }
        }
        Ok(Host::Dns(host.to_ascii_lowercase()))
    }
}

impl fmt::Display for Host {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Host::Ip(ip) => ip.fmt(f),
            Host::Dns(name) => f.write_str(name),
        }
    }
}

/// What a certificate's holder may do, carried in its subject's `OU`.
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

impl Role {
    /// Every role, in the order they are documented.
    pub const ALL: [Role; 4] = [Role::Admin, Role::User, Role::Viewer, Role::Crew];

    /// The `OU` value of this role, which is also its name on the command line.
    #[must_use]
    pub fn as_ou(self) -> &'static str {
        match self {
            Role::Admin => "admin",
            Role::User => "user",
            Role::Viewer => "viewer",
            Role::Crew => "crew",
        }
    }

    /// Whether certificates of this role authenticate clients (everyone but crews).
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
    type Err = Error;

    /// Parses an `OU` value. Exact and case-sensitive: an `OU=Admin` written
    /// by some other tool is not an admin.
    fn from_str(s: &str) -> Result<Role> {
        Role::ALL
            .into_iter()
            .find(|role| role.as_ou() == s)
            .ok_or_else(|| Error::UnknownRole { given: s.to_owned() })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_that_are_accepted() {
        for name in [
            "a",
            "alice",
            "web-01",
            "node_7",
            "crew.example",
            "A1",
            "0",
            &"x".repeat(64),
        ] {
            validate_name(name).unwrap_or_else(|e| panic!("{name:?} refused: {e}"));
        }
    }

    #[test]
    fn names_that_are_refused() {
        let long = "x".repeat(65);
        for name in [
            "", ".", "..", ".hidden", "-rf", "a/b", "../etc", "a b", "é", "a\0b", "a\nb", "a:b", "*", &long,
        ] {
            let err = validate_name(name).expect_err(name);
            assert!(matches!(err, Error::InvalidName { .. }), "{name:?}: {err}");
            assert!(err.to_string().contains("invalid name"), "{err}");
        }
    }

    #[test]
    fn hosts_parse_to_ip_or_dns() {
        assert_eq!(
            Host::parse("127.0.0.1").unwrap(),
            Host::Ip("127.0.0.1".parse().unwrap())
        );
        assert_eq!(Host::parse("::1").unwrap(), Host::Ip("::1".parse().unwrap()));
        assert_eq!(
            Host::parse("[fe80::1]").unwrap(),
            Host::Ip("fe80::1".parse().unwrap())
        );
        assert_eq!(
            Host::parse("Crew-1.Example.org").unwrap(),
            Host::Dns("crew-1.example.org".into())
        );
        assert_eq!(Host::parse("my_host").unwrap(), Host::Dns("my_host".into()));
        for bad in [
            "",
            "*.example.org",
            "a..b",
            ".a",
            "a.",
            "-a",
            "a-",
            "a b",
            "a/b",
            &"x".repeat(64),
        ] {
            assert!(
                matches!(Host::parse(bad), Err(Error::InvalidHost { .. })),
                "{bad:?} accepted"
            );
        }
    }

    #[test]
    fn roles_round_trip_through_their_ou() {
        for role in Role::ALL {
            assert_eq!(role.as_ou().parse::<Role>().unwrap(), role);
            assert_eq!(role.to_string(), role.as_ou());
        }
        assert_eq!("viewer".parse::<Role>().unwrap(), Role::Viewer);
        assert!(Role::Admin.is_client() && Role::User.is_client() && Role::Viewer.is_client());
        assert!(!Role::Crew.is_client());
    }

    #[test]
    fn unknown_roles_are_refused() {
        for bad in ["", "Admin", "ADMIN", "root", "admin ", "crews"] {
            let err = bad.parse::<Role>().expect_err(bad);
            assert!(matches!(err, Error::UnknownRole { .. }), "{bad:?}: {err}");
        }
    }
}
