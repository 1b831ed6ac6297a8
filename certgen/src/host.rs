//! Hosts: the `--host` values a crew certificate's SANs are made from.
//!
//! The name rule and the roles are shared with the crew, so they live in
//! tasker-common (`tasker_common::validate_name`, `tasker_common::Role`);
//! this crate re-exports them.

use std::fmt;
use std::net::IpAddr;

use crate::error::{Error, Result};

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

#[cfg(test)]
mod tests {
    use super::*;

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
}
