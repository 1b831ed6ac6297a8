//! `certgen`: the command line over the certgen library. Parses arguments,
//! calls the library, prints what was written; one line on stderr and exit 1
//! on failure, exit 2 on usage errors (a bad flag, role, name or host).

use std::path::PathBuf;
use std::process::ExitCode;

use certgen::crl::DEFAULT_CRL_DAYS;
use certgen::{Ca, DEFAULT_CA_DAYS, DEFAULT_LEAF_DAYS, Host, Ownership, Role, Validity};
use clap::{Args, Parser, Subcommand, ValueEnum};

const ABOUT: &str = "Make the Tasker CA and the crew, user, admin and viewer certificates.";

const LONG_ABOUT: &str = "\
Make the Tasker CA and the crew, user, admin and viewer certificates.

Every Tasker connection is mutual TLS 1.3. Crews (the per-host daemons) and \
the people using foreman each hold a certificate signed by the Tasker CA. \
The subject says who they are: CN is the crew or Linux user name, O=Tasker, \
and OU is the role (crew, admin, user or viewer). Keys are ECDSA P-256.

Start with `certgen ca`, then issue one `certgen crew` per host and one \
`certgen user` per person.";

const AFTER_HELP: &str = "\
Files (DIR defaults to /etc/tasker):
  DIR/ca.crt  DIR/ca.key              the CA (ca.key signs identities: keep it on one machine)
  DIR/crews/NAME.crt  NAME.key        crew certificates (serverAuth)
  DIR/users/NAME.crt  NAME.key        user, admin and viewer certificates (clientAuth)
Keys are created with mode 0600, certificates 0644, directories 0755.
A user's files are given to the Linux user NAME when it exists on this host.
Existing files are never replaced without --force.

  DIR/crl.pem                         revoked certificates (certgen revoke, certgen crl)
Exit status: 0 success, 1 error (one line on stderr naming the file), 2 usage error (a bad
command, flag, role, name or host).

Examples:
  certgen ca
  certgen crew alpha --host alpha.example.org --host 10.0.0.5
  certgen user alice --role admin
  certgen user bob --dir ./dev-pki --days 30
  certgen revoke user bob";

#[derive(Debug, Parser)]
#[command(name = "certgen", version, about = ABOUT, long_about = LONG_ABOUT, after_help = AFTER_HELP)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Make the Tasker CA: DIR/ca.crt and DIR/ca.key (CN=Tasker CA, O=Tasker).
    ///
    /// The CA signs crew and user certificates; crews and foremen trust it.
    /// Replacing it (--force) makes every certificate it issued stop working.
    Ca {
        #[command(flatten)]
        common: Common,
        /// How many days the CA is valid.
        #[arg(long, default_value_t = DEFAULT_CA_DAYS, value_parser = clap::value_parser!(u32).range(1..=36_500))]
        days: u32,
    },
    /// Issue a crew (server) certificate: DIR/crews/NAME.{crt,key}, OU=crew.
    ///
    /// Valid for TLS server authentication only (EKU serverAuth), for the host names NAME,
    /// localhost, 127.0.0.1 and ::1, plus every --host. Foreman checks that the
    /// address it dials is one of them.
    Crew {
        /// The crew's name: 1-64 letters, digits, '.', '_' or '-'; not starting with '.' or '-'.
        name: String,
        /// Another host name or IP address the crew is reached at (repeatable).
        #[arg(long = "host", value_name = "HOST_OR_IP")]
        hosts: Vec<String>,
        #[command(flatten)]
        common: Common,
        /// How many days the certificate is valid.
        #[arg(long, default_value_t = DEFAULT_LEAF_DAYS, value_parser = clap::value_parser!(u32).range(1..=36_500))]
        days: u32,
    },
    /// Issue a user, admin or viewer (client) certificate: DIR/users/NAME.{crt,key}.
    ///
    /// Valid for TLS client authentication only (EKU clientAuth); the subject
    /// is CN=NAME, O=Tasker, OU=ROLE. NAME is the Linux user that jobs run as on the crews. If that user
    /// exists on this host, the two files are given to it (and its primary
    /// group) so it can read its own key.
    User {
        /// The user's name: 1-64 letters, digits, '.', '_' or '-'; not starting with '.' or '-'.
        name: String,
        /// What the holder may do: user starts jobs and manages its own, admin
        /// manages every job, viewer only watches.
        #[arg(long, value_enum, default_value_t = ClientRole::User)]
        role: ClientRole,
        #[command(flatten)]
        common: Common,
        /// How many days the certificate is valid.
        #[arg(long, default_value_t = DEFAULT_LEAF_DAYS, value_parser = clap::value_parser!(u32).range(1..=36_500))]
        days: u32,
    },
    /// Revoke a crew or user certificate: add it to DIR/crl.pem and sign that again.
    ///
    /// Crews re-read the CRL when it changes (no restart): they refuse new
    /// connections with a revoked certificate and close open ones (within
    /// 30 s when idle). Copy DIR/crl.pem to every crew's
    /// certificate directory. A CRL expires: sign it again with `certgen crl`
    /// before then, or crews refuse every client.
    Revoke {
        /// Whose certificate: a user's (DIR/users/NAME.crt) or a crew's (DIR/crews/NAME.crt).
        #[arg(value_enum)]
        kind: Kind,
        /// The user or crew name.
        name: String,
        /// The certificate directory.
        #[arg(long, value_name = "DIR", default_value = certgen::DEFAULT_DIR)]
        dir: PathBuf,
        /// How many days the new CRL is valid.
        #[arg(long, default_value_t = DEFAULT_CRL_DAYS, value_parser = clap::value_parser!(u32).range(1..=3650))]
        days: u32,
    },
    /// Sign DIR/crl.pem again (same revocations, or none), valid for --days from now.
    Crl {
        /// The certificate directory.
        #[arg(long, value_name = "DIR", default_value = certgen::DEFAULT_DIR)]
        dir: PathBuf,
        /// How many days the CRL is valid.
        #[arg(long, default_value_t = DEFAULT_CRL_DAYS, value_parser = clap::value_parser!(u32).range(1..=3650))]
        days: u32,
    },
}

/// Whose certificate a revocation names.
#[derive(Debug, Clone, Copy, ValueEnum)]
enum Kind {
    User,
    Crew,
}

#[derive(Debug, Args)]
struct Common {
    /// The certificate directory.
    #[arg(long, value_name = "DIR", default_value = certgen::DEFAULT_DIR)]
    dir: PathBuf,
    /// Replace existing files instead of refusing.
    #[arg(long)]
    force: bool,
}

/// The roles a client certificate may have: crew is not one (`certgen crew`).
#[derive(Debug, Clone, Copy, ValueEnum)]
enum ClientRole {
    User,
    Admin,
    Viewer,
}

impl From<ClientRole> for Role {
    fn from(role: ClientRole) -> Role {
        match role {
            ClientRole::User => Role::User,
            ClientRole::Admin => Role::Admin,
            ClientRole::Viewer => Role::Viewer,
        }
    }
}

fn main() -> ExitCode {
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) if !e.use_stderr() => e.exit(), // --help, --version
        Err(e) => {
            // One line, as every other refusal, and where to read more.
            let line = certgen::usage_line(&e.to_string());
            eprintln!("certgen: {line} (certgen --help explains the commands)");
            return ExitCode::from(2);
        }
    };
    match run(cli.command) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("certgen: {e}");
            // A bad name or host is how it was asked, as a bad role is.
            match e {
                certgen::Error::InvalidName(_) | certgen::Error::InvalidHost { .. } => ExitCode::from(2),
                _ => ExitCode::FAILURE,
            }
        }
    }
}

fn run(command: Command) -> certgen::Result<()> {
    match command {
        Command::Ca { common, days } => {
            let ca = Ca::generate(&Validity::days_from_now(days)?)?;
            let files = certgen::write_ca(&common.dir, &ca, common.force)?;
            print_written(&files);
            println!(
                "CN={} O={}, valid for {days} days",
                certgen::CA_COMMON_NAME,
                certgen::ORGANIZATION
            );
            if common.force {
                eprintln!(
                    "certgen: note: if this replaced a CA, certificates it issued no longer verify; reissue them"
                );
            }
        }
        Command::Crew {
            name,
            hosts,
            common,
            days,
        } => {
            let hosts = hosts
                .iter()
                .map(|h| Host::parse(h))
                .collect::<certgen::Result<Vec<_>>>()?;
            certgen::validate_name(&name)?;
            let ca = Ca::load(&common.dir)?;
            let issued = ca.issue_crew(&name, &hosts, &Validity::days_from_now(days)?)?;
            let files = certgen::write_crew(&common.dir, &name, &issued, common.force)?;
            print_written(&files);
            let sans: Vec<String> = certgen::crew_hosts(&name, &hosts)
                .iter()
                .map(ToString::to_string)
                .collect();
            println!(
                "CN={name} OU=crew, SANs {}, valid for {days} days",
                sans.join(", ")
            );
        }
        Command::User {
            name,
            role,
            common,
            days,
        } => {
            certgen::validate_name(&name)?;
            let role = Role::from(role);
            let ca = Ca::load(&common.dir)?;
            let issued = ca.issue_client(&name, role, &Validity::days_from_now(days)?)?;
            let written = certgen::write_user(&common.dir, &name, &issued, common.force)?;
            print_written(&written.files);
            println!("CN={name} OU={role}, valid for {days} days");
            match written.ownership {
                Ownership::Chowned { user, uid, gid } => println!("owned by {user} ({uid}:{gid})"),
                Ownership::NoSuchUser { user } => {
                    let euid = nix::unistd::geteuid();
                    let owner = if euid.is_root() {
                        "root".to_owned()
                    } else {
                        format!("uid {euid}")
                    };
                    eprintln!(
                        "certgen: note: no Linux user {user:?} on this host; {} and {} stay owned by {owner}",
                        written.files.cert.display(),
                        written.files.key.display(),
                    );
                }
            }
        }
        Command::Revoke {
            kind,
            name,
            dir,
            days,
        } => {
            certgen::validate_name(&name)?;
            let files = match kind {
                Kind::User => certgen::user_files(&dir, &name),
                Kind::Crew => certgen::crew_files(&dir, &name),
            };
            let crl = certgen::crl::revoke(&dir, &files.cert, days)?;
            print_crl(&crl);
        }
        Command::Crl { dir, days } => print_crl(&certgen::crl::refresh(&dir, days)?),
    }
    Ok(())
}

fn print_crl(crl: &certgen::crl::CrlWritten) {
    println!(
        "wrote {} ({} revoked), valid until {}",
        crl.path.display(),
        crl.revoked,
        crl.next_update.date()
    );
    println!("copy it to every crew's certificate directory; crews pick it up without a restart");
}

fn print_written(files: &certgen::CertFiles) {
    println!("wrote {}", files.cert.display());
    println!("wrote {} (mode 0600)", files.key.display());
}
