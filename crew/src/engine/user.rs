//! Who a job runs as: a Linux user from the passwd database, with its
//! primary group and every supplementary group it belongs to.

use std::ffi::CString;
use std::path::PathBuf;

use nix::unistd::{Gid, User, getgrouplist};

use super::error::EngineError;
use super::spec::RunAs;

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum UserError {
    #[error("no such user on this host: {0}")]
    Unknown(String),
    #[error("user name {0:?} is not valid")]
    BadName(String),
    #[error("looking up user {name}: {error}")]
    Lookup { name: String, error: String },
}

impl From<UserError> for EngineError {
    fn from(e: UserError) -> Self {
        EngineError::InvalidSpec(e.to_string())
    }
}

/// Looks `name` up in the passwd database (NSS included).
pub fn lookup(name: &str) -> Result<RunAs, UserError> {
    if name.is_empty() || name.contains(['\0', '/', ':']) || name.len() > 256 {
        return Err(UserError::BadName(name.to_owned()));
    }
    let user = User::from_name(name)
        .map_err(|e| UserError::Lookup {
            name: name.to_owned(),
            error: e.desc().to_owned(),
        })?
        .ok_or_else(|| UserError::Unknown(name.to_owned()))?;
    let cname = CString::new(name).map_err(|_| UserError::BadName(name.to_owned()))?;
    let mut groups: Vec<u32> = getgrouplist(&cname, user.gid)
        .map_err(|e| UserError::Lookup {
            name: name.to_owned(),
            error: e.desc().to_owned(),
        })?
        .into_iter()
        .map(Gid::as_raw)
        .collect();
    groups.sort_unstable();
    groups.dedup();
    Ok(RunAs {
        user: user.name,
        uid: user.uid.as_raw(),
        gid: user.gid.as_raw(),
        groups,
        home: user.dir,
        shell: if user.shell.as_os_str().is_empty() {
            PathBuf::from("/bin/sh")
        } else {
            user.shell
        },
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn root_is_found_and_nobody_else_made_up() {
        let root = lookup("root").unwrap();
        assert_eq!((root.uid, root.gid), (0, 0));
        assert!(root.groups.contains(&0));
        assert_eq!(
            lookup("no-such-user-here-42"),
            Err(UserError::Unknown("no-such-user-here-42".into()))
        );
        assert!(matches!(lookup("a/b"), Err(UserError::BadName(_))));
        assert!(matches!(lookup(""), Err(UserError::BadName(_))));
    }
}
