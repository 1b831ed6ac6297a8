//! Writing PEM files safely.
//!
//! - Keys are created with mode 0600 by `open(2)` itself (`O_CREAT|O_EXCL`,
//!   mode 0600): there is no moment at which a key exists with looser
//!   permissions, which a chmod after writing would leave.
//! - `O_EXCL` also means an existing file, or a symlink planted where a key is
//!   to go, is never followed or overwritten. `force` removes the old file
//!   first (removing a symlink removes the link, not its target).
//! - Nothing is replaced unless `force` is given, and that is checked for
//!   every file before the first one is touched, so a refusal leaves no
//!   half-written pair. If writing fails midway, the files this call created
//!   are removed again.

use std::fs::{self, File, OpenOptions, Permissions};
use std::io::{ErrorKind, Write as _};
use std::os::unix::fs::{DirBuilderExt as _, OpenOptionsExt as _, PermissionsExt as _};
use std::path::{Path, PathBuf};

use nix::unistd::{Gid, Uid, User};

use crate::ca::Ca;
use crate::error::{Error, Result};
use crate::layout::{self, CertFiles};
use crate::leaf::Issued;
use crate::validate_name;

/// Mode of private key files.
pub const KEY_MODE: u32 = 0o600;
/// Mode of certificate files.
pub const CERT_MODE: u32 = 0o644;
/// Mode of the directories certgen creates.
pub const DIR_MODE: u32 = 0o755;

/// Who owns a user's certificate and key after [`write_user`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Ownership {
    /// A Linux user of that name exists; the files now belong to it and its
    /// primary group, so it can read its own key.
    Chowned {
        /// The user name.
        user: String,
        /// Its uid.
        uid: u32,
        /// Its primary gid.
        gid: u32,
    },
    /// No Linux user of that name exists on this host; the files keep the
    /// owner of the process that wrote them.
    NoSuchUser {
        /// The user name that was looked up.
        user: String,
    },
}

/// What [`write_user`] did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WrittenUser {
    /// The files written.
    pub files: CertFiles,
    /// Who owns them now.
    pub ownership: Ownership,
}

/// Writes `DIR/ca.crt` and `DIR/ca.key`, creating `DIR` (0755) if needed.
///
/// # Errors
///
/// [`Error::Exists`] when either file exists and `force` is false; I/O errors
/// naming the path.
pub fn write_ca(dir: &Path, ca: &Ca, force: bool) -> Result<CertFiles> {
    ensure_dir(dir, true)?;
    let files = layout::ca_files(dir);
    write_pair(&files, ca.cert_pem(), ca.key_pem(), force, None)?;
    Ok(files)
}

/// Writes `DIR/crews/NAME.crt` and `DIR/crews/NAME.key`, creating `crews/`
/// (0755) if needed. `DIR` must exist.
///
/// # Errors
///
/// An invalid name; [`Error::Exists`] when either file exists and `force` is
/// false; I/O errors naming the path.
pub fn write_crew(dir: &Path, name: &str, issued: &Issued, force: bool) -> Result<CertFiles> {
    validate_name(name)?;
    ensure_dir(&dir.join(layout::CREWS_DIR), false)?;
    let files = layout::crew_files(dir, name);
    write_pair(&files, issued.cert_pem(), issued.key_pem(), force, None)?;
    Ok(files)
}

/// Writes `DIR/users/NAME.crt` and `DIR/users/NAME.key`, creating `users/`
/// (0755) if needed, and gives both files to the Linux user `NAME` (and its
/// primary group) when that user exists, so that it can read its own key.
///
/// # Errors
///
/// An invalid name; [`Error::Exists`] when either file exists and `force` is
/// false; a failed user lookup or chown (e.g. not running as root); I/O
/// errors naming the path.
pub fn write_user(dir: &Path, name: &str, issued: &Issued, force: bool) -> Result<WrittenUser> {
    validate_name(name)?;
    let user = User::from_name(name).map_err(|source| Error::UserLookup {
        name: name.to_owned(),
        source,
    })?;
    let (owner, ownership) = match user {
        Some(user) => (
            Some(Owner {
                name: name.to_owned(),
                uid: user.uid,
                gid: user.gid,
            }),
            Ownership::Chowned {
                user: name.to_owned(),
                uid: user.uid.as_raw(),
                gid: user.gid.as_raw(),
            },
        ),
        None => (
            None,
            Ownership::NoSuchUser {
                user: name.to_owned(),
            },
        ),
    };
    let files = write_user_files(dir, name, issued, force, owner.as_ref())?;
    Ok(WrittenUser { files, ownership })
}

/// [`write_user`] without the user lookup: `testing` writes user files for
/// names that may or may not exist on the test host, and never chowns.
pub(crate) fn write_user_files(
    dir: &Path,
    name: &str,
    issued: &Issued,
    force: bool,
    owner: Option<&Owner>,
) -> Result<CertFiles> {
    validate_name(name)?;
    ensure_dir(&dir.join(layout::USERS_DIR), false)?;
    let files = layout::user_files(dir, name);
    write_pair(&files, issued.cert_pem(), issued.key_pem(), force, owner)?;
    Ok(files)
}

/// The Linux owner to give files to.
#[derive(Debug)]
pub(crate) struct Owner {
    name: String,
    uid: Uid,
    gid: Gid,
}

/// Writes a key (0600) and its certificate (0644), all or nothing.
pub(crate) fn write_pair(
    files: &CertFiles,
    cert_pem: &str,
    key_pem: &str,
    force: bool,
    owner: Option<&Owner>,
) -> Result<()> {
    if !force {
        // The key first, as it is the file whose loss hurts most.
        for path in [&files.key, &files.cert] {
            // symlink_metadata, so a dangling symlink also counts as "exists".
            if fs::symlink_metadata(path).is_ok() {
                return Err(Error::Exists { path: path.clone() });
            }
        }
    }
    let mut created = Rollback::default();
    create_file(&files.key, key_pem, KEY_MODE, force, owner, &mut created)?;
    create_file(&files.cert, cert_pem, CERT_MODE, force, owner, &mut created)?;
    created.commit();
    Ok(())
}

/// Creates `path` with `mode` at open, optionally chowns it, then writes and
/// syncs `contents`.
fn create_file(
    path: &Path,
    contents: &str,
    mode: u32,
    force: bool,
    owner: Option<&Owner>,
    created: &mut Rollback,
) -> Result<()> {
    if force {
        match fs::remove_file(path) {
            Ok(()) => {}
            Err(e) if e.kind() == ErrorKind::NotFound => {}
            Err(e) => return Err(Error::io("remove", path)(e)),
        }
    }
    let mut file = match OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(mode)
        .open(path)
    {
        Ok(file) => file,
        // Someone created it between the check and now.
        Err(e) if e.kind() == ErrorKind::AlreadyExists => return Err(Error::Exists { path: path.into() }),
        Err(e) => return Err(Error::io("create", path)(e)),
    };
    created.0.push(path.to_path_buf());
    widen_to_exact_mode(&file, path, mode)?;
    if let Some(owner) = owner {
        // fchown on the open descriptor, before any secret is in the file.
        nix::unistd::fchown(&file, Some(owner.uid), Some(owner.gid)).map_err(|source| Error::Chown {
            path: path.into(),
            user: owner.name.clone(),
            uid: owner.uid.as_raw(),
            gid: owner.gid.as_raw(),
            source,
        })?;
    }
    file.write_all(contents.as_bytes())
        .map_err(Error::io("write", path))?;
    file.sync_all().map_err(Error::io("sync", path))?;
    Ok(())
}

/// The mode given to `open(2)` is reduced by the umask. For public files
/// (certificates) that would make them unreadable to the users and daemons
/// that need them under a strict umask, so they get their exact mode with
/// fchmod on the still-empty file. Secret files are never widened: a umask
/// can only make a 0600 key stricter.
fn widen_to_exact_mode(file: &File, path: &Path, mode: u32) -> Result<()> {
    if mode & 0o077 == 0 {
        return Ok(());
    }
    file.set_permissions(Permissions::from_mode(mode))
        .map_err(Error::io("fchmod", path))
}

/// Creates `dir` with mode 0755 if it does not exist (and its parents, when
/// `parents`); an existing directory is left as it is.
fn ensure_dir(dir: &Path, parents: bool) -> Result<()> {
    match fs::metadata(dir) {
        Ok(meta) if meta.is_dir() => return Ok(()),
        Ok(_) => {
            let not_dir = std::io::Error::new(ErrorKind::NotADirectory, "exists and is not a directory");
            return Err(Error::io("create directory", dir)(not_dir));
        }
        Err(e) if e.kind() == ErrorKind::NotFound => {}
        Err(e) => return Err(Error::io("stat", dir)(e)),
    }
    fs::DirBuilder::new()
        .recursive(parents)
        .mode(DIR_MODE)
        .create(dir)
        .map_err(Error::io("create directory", dir))?;
    // As for certificates: the umask must not hide users/ from the users
    // whose certificates are in it.
    fs::set_permissions(dir, Permissions::from_mode(DIR_MODE)).map_err(Error::io("chmod", dir))
}

/// Files created by one write; removed again unless the write completes.
#[derive(Debug, Default)]
struct Rollback(Vec<PathBuf>);

impl Rollback {
    fn commit(mut self) {
        self.0.clear();
    }
}

impl Drop for Rollback {
    fn drop(&mut self) {
        for path in &self.0 {
            // Best effort: the error that got us here is the one to report.
            let _ = fs::remove_file(path);
        }
    }
}

#[cfg(test)]
mod tests {
    use std::os::unix::fs::MetadataExt as _;

    use super::*;
    use crate::{Role, Validity};

    fn mode(path: &Path) -> u32 {
        fs::symlink_metadata(path).unwrap().mode() & 0o7777
    }

    fn setup() -> (tempfile::TempDir, Ca, Issued) {
        let dir = tempfile::tempdir().unwrap();
        let ca = Ca::generate(&Validity::ca_default().unwrap()).unwrap();
        let issued = ca
            .issue_crew("alpha", &[], &Validity::leaf_default().unwrap())
            .unwrap();
        (dir, ca, issued)
    }

    #[test]
    fn keys_are_0600_certificates_0644_directories_0755() {
        let (dir, ca, crew) = setup();
        let pki = dir.path().join("new/pki");
        let ca_files = write_ca(&pki, &ca, false).unwrap();
        assert_eq!(ca_files, layout::ca_files(&pki));
        assert_eq!(mode(&pki), 0o755);
        assert_eq!(mode(&ca_files.key), 0o600);
        assert_eq!(mode(&ca_files.cert), 0o644);
        assert_eq!(fs::read_to_string(&ca_files.key).unwrap(), ca.key_pem());
        assert_eq!(fs::read_to_string(&ca_files.cert).unwrap(), ca.cert_pem());

        let crew_files = write_crew(&pki, "alpha", &crew, false).unwrap();
        assert_eq!(crew_files.cert, pki.join("crews/alpha.crt"));
        assert_eq!(crew_files.key, pki.join("crews/alpha.key"));
        assert_eq!(mode(&pki.join("crews")), 0o755);
        assert_eq!(mode(&crew_files.key), 0o600);
        assert_eq!(mode(&crew_files.cert), 0o644);

        let alice = ca
            .issue_client(
                "tasker-no-such-user-x",
                Role::Admin,
                &Validity::leaf_default().unwrap(),
            )
            .unwrap();
        let written = write_user(&pki, "tasker-no-such-user-x", &alice, false).unwrap();
        assert_eq!(written.files.cert, pki.join("users/tasker-no-such-user-x.crt"));
        assert_eq!(
            written.ownership,
            Ownership::NoSuchUser {
                user: "tasker-no-such-user-x".into()
            }
        );
        assert_eq!(mode(&pki.join("users")), 0o755);
        assert_eq!(mode(&written.files.key), 0o600);
        assert_eq!(mode(&written.files.cert), 0o644);
        assert_eq!(fs::read_to_string(&written.files.key).unwrap(), alice.key_pem());
    }

    #[test]
    fn nothing_is_replaced_without_force_and_everything_with_it() {
        let (dir, ca, first) = setup();
        write_ca(dir.path(), &ca, false).unwrap();
        let files = write_crew(dir.path(), "alpha", &first, false).unwrap();

        let second = ca
            .issue_crew("alpha", &[], &Validity::leaf_default().unwrap())
            .unwrap();
        let err = write_crew(dir.path(), "alpha", &second, false).unwrap_err();
        assert!(
            matches!(&err, Error::Exists { path } if *path == files.key),
            "{err}"
        );
        assert_eq!(
            err.to_string(),
            format!("{} exists; pass --force to replace it", files.key.display())
        );
        assert_eq!(
            fs::read_to_string(&files.key).unwrap(),
            first.key_pem(),
            "untouched"
        );

        let err = write_ca(dir.path(), &ca, false).unwrap_err();
        assert!(matches!(err, Error::Exists { .. }), "{err}");

        write_crew(dir.path(), "alpha", &second, true).unwrap();
        assert_eq!(fs::read_to_string(&files.key).unwrap(), second.key_pem());
        assert_eq!(fs::read_to_string(&files.cert).unwrap(), second.cert_pem());
        assert_eq!(mode(&files.key), 0o600, "a replaced key is still created 0600");
        assert_eq!(mode(&files.cert), 0o644);
    }

    #[test]
    fn one_existing_file_of_a_pair_blocks_the_whole_pair() {
        let (dir, _ca, crew) = setup();
        let files = layout::crew_files(dir.path(), "alpha");
        fs::create_dir(dir.path().join("crews")).unwrap();
        fs::write(&files.cert, "old").unwrap();
        let err = write_crew(dir.path(), "alpha", &crew, false).unwrap_err();
        assert!(
            matches!(&err, Error::Exists { path } if *path == files.cert),
            "{err}"
        );
        assert!(!files.key.exists(), "no half-written pair");
    }

    #[test]
    fn a_planted_symlink_is_never_followed() {
        let (dir, _ca, crew) = setup();
        let files = layout::crew_files(dir.path(), "alpha");
        let target = dir.path().join("target");
        fs::write(&target, "precious").unwrap();
        fs::create_dir(dir.path().join("crews")).unwrap();
        std::os::unix::fs::symlink(&target, &files.key).unwrap();

        let err = write_crew(dir.path(), "alpha", &crew, false).unwrap_err();
        assert!(matches!(err, Error::Exists { .. }), "{err}");

        write_crew(dir.path(), "alpha", &crew, true).unwrap();
        assert_eq!(fs::read_to_string(&target).unwrap(), "precious");
        assert!(fs::symlink_metadata(&files.key).unwrap().file_type().is_file());
        assert_eq!(mode(&files.key), 0o600);
    }

    #[test]
    fn a_failed_write_removes_what_it_created() {
        let (dir, _ca, crew) = setup();
        let files = layout::crew_files(dir.path(), "alpha");
        // A directory where the certificate goes: --force cannot remove it,
        // so the write fails after the key was created.
        fs::create_dir_all(&files.cert).unwrap();
        let err = write_crew(dir.path(), "alpha", &crew, true).unwrap_err();
        assert!(
            matches!(&err, Error::Io { op: "remove", path, .. } if *path == files.cert),
            "{err}"
        );
        assert!(
            err.to_string()
                .starts_with(&format!("remove {}: ", files.cert.display())),
            "{err}"
        );
        assert!(!files.key.exists(), "the key created by the failed write is gone");
    }

    #[test]
    fn names_are_checked_before_any_path_is_built() {
        let (dir, _ca, crew) = setup();
        for bad in ["../escape", "a/b", ".hidden", ""] {
            assert!(matches!(
                write_crew(dir.path(), bad, &crew, true),
                Err(Error::InvalidName(_))
            ));
            assert!(matches!(
                write_user(dir.path(), bad, &crew, true),
                Err(Error::InvalidName(_))
            ));
        }
        assert!(!dir.path().join("escape.key").exists());
    }

    #[test]
    fn a_missing_directory_is_an_error_naming_it() {
        let (dir, _ca, crew) = setup();
        let missing = dir.path().join("missing");
        let err = write_crew(&missing, "alpha", &crew, false).unwrap_err();
        assert!(
            matches!(&err, Error::Io { op: "create directory", path, .. } if *path == missing.join("crews"))
        );
    }

    #[test]
    fn user_files_go_to_the_linux_user_of_that_name() {
        // The current user: chowning to oneself (and one's primary group) is
        // allowed without root, so this runs everywhere.
        let me = User::from_uid(nix::unistd::geteuid()).unwrap();
        let Some(me) = me.filter(|u| validate_name(&u.name).is_ok()) else {
            eprintln!("SKIPPED: the current uid has no valid user name");
            return;
        };
        let (dir, ca, _) = setup();
        let issued = ca
            .issue_client(&me.name, Role::User, &Validity::leaf_default().unwrap())
            .unwrap();
        let written = write_user(dir.path(), &me.name, &issued, false).unwrap();
        assert_eq!(
            written.ownership,
            Ownership::Chowned {
                user: me.name.clone(),
                uid: me.uid.as_raw(),
                gid: me.gid.as_raw()
            }
        );
        for path in [&written.files.cert, &written.files.key] {
            let meta = fs::metadata(path).unwrap();
            assert_eq!(
                (meta.uid(), meta.gid()),
                (me.uid.as_raw(), me.gid.as_raw()),
                "{}",
                path.display()
            );
        }
        assert_eq!(mode(&written.files.key), 0o600);
    }

    #[test]
    fn user_files_are_given_to_another_user_when_root() {
        if !nix::unistd::geteuid().is_root() {
            eprintln!("SKIPPED: giving files to another user needs root");
            return;
        }
        let Some(nobody) = User::from_name("nobody").unwrap() else {
            eprintln!("SKIPPED: no user 'nobody' on this host");
            return;
        };
        let (dir, ca, _) = setup();
        let issued = ca
            .issue_client("nobody", Role::Viewer, &Validity::leaf_default().unwrap())
            .unwrap();
        let written = write_user(dir.path(), "nobody", &issued, false).unwrap();
        let meta = fs::metadata(&written.files.key).unwrap();
        assert_eq!(
            (meta.uid(), meta.gid()),
            (nobody.uid.as_raw(), nobody.gid.as_raw())
        );
        assert_eq!(mode(&written.files.key), 0o600);
    }
}
