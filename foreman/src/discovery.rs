//! Crews found besides the static list (`[discovery]` in foreman.toml, see
//! `config::Discovery`), as Prometheus finds its targets:
//!
//! - files of `[[crew]]` entries, read again when they change;
//! - DNS SRV records, asked through `hickory-resolver` (of the system's
//!   resolver, or the server named, Consul's DNS interface included): each
//!   target is a crew named by its first label, at the record's port;
//! - a command that prints one crew a line: `NAME HOST:PORT [GROUP...]`.
//!
//! Every source is asked at once, each bounded in time; one that fails is
//! reported and the others still count. Discovery gives names and
//! addresses, never trust: the TLS handshake of a discovered crew demands
//! a crew certificate that names it (`client::tls`), so a DNS record or a
//! file cannot pass one crew off as another.

use std::net::{IpAddr, SocketAddr};
use std::path::Path;
use std::time::Duration;

use futures_util::future::join_all;
use hickory_resolver::config::{ConnectionConfig, NameServerConfig, ResolverConfig};
use hickory_resolver::net::runtime::TokioRuntimeProvider;
use hickory_resolver::proto::rr::RData;
use hickory_resolver::{Resolver, TokioResolver};

use crate::config::{CrewEntry, Discovery, Source, parse_crew_file};

/// How long one source may take: every CLI command waits for the slowest.
pub const SOURCE_TIMEOUT: Duration = Duration::from_secs(5);
/// How often the DNS names and the command are asked again by default.
pub const DEFAULT_REFRESH: Duration = Duration::from_secs(30);

/// What discovery found: the crews, and what went wrong on the way (a
/// source that failed, an entry refused), for the user to read.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Found {
    pub crews: Vec<CrewEntry>,
    pub problems: Vec<String>,
    /// The sources that failed this time: their crews are not known to
    /// be gone (the dashboard keeps them, as Prometheus keeps a failed
    /// source's last targets).
    pub failed: Vec<Source>,
}

/// How often to ask again (files are watched apart).
pub fn refresh(d: &Discovery) -> Duration {
    d.refresh
        .as_deref()
        .and_then(|r| tasker_common::parse_duration(r).ok())
        .unwrap_or(DEFAULT_REFRESH)
        .max(Duration::from_secs(1))
}

/// Adds what discovery finds to `config`'s crews, after its own; returns
/// what was found (the problems on the way included).
pub async fn add_to(config: &mut crate::config::Config) -> Found {
    if config.discovery.is_empty() {
        return Found::default();
    }
    let found = discover(&config.discovery, &config.crews).await;
    config.crews.extend(found.crews.iter().cloned());
    found
}

/// Asks every source at once. `statics` (the configuration's own crews)
/// come first and keep their names: a discovered crew of the same name is
/// left out, as is a second one found under a name already taken.
pub async fn discover(d: &Discovery, statics: &[CrewEntry]) -> Found {
    type Ask<'a> = futures_util::future::BoxFuture<'a, (Source, String, Result<Vec<CrewEntry>, String>)>;
    let mut asks: Vec<Ask<'_>> = Vec::new();
    for path in &d.files {
        let what = format!("discovery file {}", path.display());
        asks.push(Box::pin(bounded(
            Source::File(path.clone()),
            what,
            from_file(path),
        )));
    }
    if !d.srv.is_empty() {
        let resolver = resolver(d.dns.as_deref());
        for name in &d.srv {
            let resolver = resolver.clone();
            let source = Source::Srv(name.clone());
            asks.push(Box::pin(async move {
                match resolver {
                    Ok(r) => bounded(source, format!("DNS SRV {name}"), from_srv(&r, name)).await,
                    Err(e) => (source, "DNS".to_owned(), Err(e)),
                }
            }));
        }
    }
    if !d.command.is_empty() {
        let what = format!("discovery command {:?}", d.command.join(" "));
        asks.push(Box::pin(bounded(Source::Command, what, from_command(&d.command))));
    }
    let mut found = Found::default();
    let mut taken: Vec<String> = statics.iter().map(|c| c.name.clone()).collect();
    for (source, what, result) in join_all(asks).await {
        let crews = match result {
            Ok(crews) => crews,
            Err(why) => {
                found.problems.push(format!("{what}: {why}"));
                found.failed.push(source);
                continue;
            }
        };
        for c in crews {
            if let Err(why) = check(&c) {
                found.problems.push(format!("{what}: {why}"));
            } else if taken.contains(&c.name) {
                // The same crew from two sources is no problem; two
                // addresses for one name are.
                let same = statics
                    .iter()
                    .chain(&found.crews)
                    .any(|o| o.name == c.name && o.addr == c.addr);
                if !same {
                    found.problems.push(format!(
                        "{what}: crew {:?} is already known at another address; left out",
                        c.name
                    ));
                }
            } else {
                taken.push(c.name.clone());
                found.crews.push(c);
            }
        }
    }
    found
}

/// One source, given at most [`SOURCE_TIMEOUT`].
async fn bounded(
    source: Source,
    what: String,
    ask: impl Future<Output = Result<Vec<CrewEntry>, String>>,
) -> (Source, String, Result<Vec<CrewEntry>, String>) {
    match tokio::time::timeout(SOURCE_TIMEOUT, ask).await {
        Ok(result) => (source, what, result),
        Err(_) => (source, what, Err(format!("no answer in {SOURCE_TIMEOUT:?}"))),
    }
}

/// A fingerprint of the discovery files (modification time and size of
/// each): the dashboard asks again when it changes.
pub fn files_stamp(d: &Discovery) -> Vec<Option<(std::time::SystemTime, u64)>> {
    d.files
        .iter()
        .map(|p| {
            std::fs::metadata(p)
                .ok()
                .and_then(|m| Some((m.modified().ok()?, m.len())))
        })
        .collect()
}

/// A discovered entry must be usable as a crew: a valid name, HOST:PORT.
fn check(c: &CrewEntry) -> Result<(), String> {
    tasker_common::validate_name(&c.name).map_err(|e| format!("crew {:?}: {e}", c.name))?;
    if crate::client::split_addr(&c.addr).is_none() {
        return Err(format!(
            "crew {:?}: address {:?} is not HOST:PORT",
            c.name, c.addr
        ));
    }
    Ok(())
}

async fn from_file(path: &Path) -> Result<Vec<CrewEntry>, String> {
    let text = tokio::fs::read_to_string(path).await.map_err(|e| e.to_string())?;
    let mut crews = parse_crew_file(&text)?;
    for c in &mut crews {
        c.source = Source::File(path.to_owned());
    }
    Ok(crews)
}

/// A resolver of the system's configuration, or asking `dns` only.
fn resolver(dns: Option<&str>) -> Result<TokioResolver, String> {
    let builder = match dns {
        None => TokioResolver::builder_tokio().map_err(|e| format!("the system's resolver: {e}"))?,
        Some(s) => {
            let at: SocketAddr = s
                .parse()
                .or_else(|_| s.parse::<IpAddr>().map(|ip| SocketAddr::new(ip, 53)))
                .map_err(|_| format!("discovery.dns {s:?}: write IP or IP:PORT"))?;
            let on_port = |mut c: ConnectionConfig| {
                c.port = at.port();
                c
            };
            let server = NameServerConfig::new(
                at.ip(),
                true,
                vec![on_port(ConnectionConfig::udp()), on_port(ConnectionConfig::tcp())],
            );
            Resolver::builder_with_config(
                ResolverConfig::from_name_servers(vec![server]),
                TokioRuntimeProvider::default(),
            )
        }
    };
    let mut builder = builder;
    // Within the source's bound, with a retry: a lost UDP datagram costs
    // 2 s, not the bound.
    builder.options_mut().timeout = Duration::from_secs(2);
    builder.options_mut().attempts = 2;
    builder.build().map_err(|e| e.to_string())
}

/// Each SRV target of `name` as a crew named by the target's first label
/// (`web01.fleet.example.` is `web01`), at the target and port, in the
/// group of the service's name without its `_` labels (`_tasker._tcp.fleet`
/// gives `@fleet`, the first label left).
async fn from_srv(resolver: &TokioResolver, name: &str) -> Result<Vec<CrewEntry>, String> {
    let lookup = resolver.srv_lookup(name).await.map_err(|e| e.to_string())?;
    let group: Vec<String> = name
        .split('.')
        .find(|l| !l.is_empty() && !l.starts_with('_'))
        .map(|l| vec![l.to_owned()])
        .unwrap_or_default();
    let mut crews = Vec::new();
    for record in lookup.answers() {
        let RData::SRV(srv) = &record.data else { continue };
        let target = srv.target.to_utf8();
        let target = target.trim_end_matches('.');
        let Some(label) = target.split('.').next().filter(|l| !l.is_empty()) else {
            continue;
        };
        let addr = match target.parse::<std::net::Ipv6Addr>() {
            Ok(_) => format!("[{target}]:{}", srv.port),
            Err(_) => format!("{target}:{}", srv.port),
        };
        // The target through the same DNS server (a Consul name resolves
        // nowhere else).
        let ip = match target.parse::<IpAddr>() {
            Ok(ip) => ip,
            Err(_) => resolver
                .lookup_ip(format!("{target}."))
                .await
                .ok()
                .and_then(|ips| ips.iter().next())
                .ok_or_else(|| format!("target {target}: no address"))?,
        };
        crews.push(CrewEntry {
            name: label.to_owned(),
            addr,
            groups: group.clone(),
            source: Source::Srv(name.to_owned()),
            dial: Some(SocketAddr::new(ip, srv.port)),
        });
    }
    // The same order every time (DNS rotates records).
    crews.sort_by(|a, b| a.name.cmp(&b.name));
    Ok(crews)
}

/// Runs `argv` (no shell), bounded in time; each line of its stdout
/// `NAME HOST:PORT [GROUP...]`, `#` comments and blank lines skipped.
async fn from_command(argv: &[String]) -> Result<Vec<CrewEntry>, String> {
    let (program, args) = argv.split_first().ok_or("an empty command")?;
    let child = tokio::process::Command::new(program)
        .args(args)
        .stdin(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .kill_on_drop(true)
        .output();
    let out = child.await.map_err(|e| format!("cannot run it: {e}"))?;
    if !out.status.success() {
        let err = String::from_utf8_lossy(&out.stderr);
        let last = err.lines().last().unwrap_or_default();
        return Err(format!(
            "{}: {}",
            out.status,
            crate::sanitize::Sanitizer::clean(last)
        ));
    }
    parse_lines(&String::from_utf8_lossy(&out.stdout))
}

fn parse_lines(text: &str) -> Result<Vec<CrewEntry>, String> {
    let mut crews = Vec::new();
    for (n, line) in text.lines().enumerate() {
        let line = line.split('#').next().unwrap_or_default().trim();
        if line.is_empty() {
            continue;
        }
        let mut words = line.split_whitespace();
        let (Some(name), Some(addr)) = (words.next(), words.next()) else {
            return Err(format!("line {}: write NAME HOST:PORT [GROUP...]", n + 1));
        };
        crews.push(CrewEntry {
            name: name.to_owned(),
            addr: addr.to_owned(),
            groups: words.map(|g| g.trim_start_matches('@').to_owned()).collect(),
            source: Source::Command,
            dial: None,
        });
    }
    Ok(crews)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(name: &str, addr: &str) -> CrewEntry {
        CrewEntry {
            name: name.into(),
            addr: addr.into(),
            groups: Vec::new(),
            source: Source::Config,
            dial: None,
        }
    }

    #[test]
    fn command_lines_are_name_address_and_groups() {
        let crews =
            parse_lines("# fleet\nweb01 10.0.0.1:7443 prod @front\n\n  db1 [::1]:7443 # primary\n").unwrap();
        assert_eq!(crews.len(), 2);
        assert_eq!(crews[0].groups, ["prod", "front"]);
        assert_eq!(
            (crews[1].name.as_str(), crews[1].addr.as_str()),
            ("db1", "[::1]:7443")
        );
        assert!(parse_lines("lonely\n").unwrap_err().contains("line 1"));
    }

    #[tokio::test]
    async fn files_and_commands_are_merged_after_the_static_crews() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("crews.toml");
        std::fs::write(
            &file,
            "[[crew]]\nname = \"web01\"\naddr = \"h1:7443\"\n[[crew]]\nname = \"alpha\"\naddr = \"elsewhere:1\"\n[[crew]]\nname = \"bad name\"\naddr = \"h:1\"\n",
        )
        .unwrap();
        let d = Discovery {
            files: vec![file.clone(), dir.path().join("missing.toml")],
            command: vec!["/bin/echo".into(), "web02 h2:7443 prod".into()],
            ..Discovery::default()
        };
        let found = discover(&d, &[entry("alpha", "a:1")]).await;
        let names: Vec<&str> = found.crews.iter().map(|c| c.name.as_str()).collect();
        assert_eq!(names, ["web01", "web02"], "{found:?}");
        assert_eq!(found.crews[0].source, Source::File(file));
        assert_eq!(found.crews[1].groups, ["prod"]);
        let problems = found.problems.join("\n");
        assert!(
            problems.contains("\"alpha\" is already known at another address"),
            "{problems}"
        );
        assert!(problems.contains("\"bad name\""), "{problems}");
        assert!(problems.contains("missing.toml"), "{problems}");
    }

    #[tokio::test]
    async fn a_failing_command_is_reported_with_its_last_words() {
        let d = Discovery {
            command: vec!["/bin/sh".into(), "-c".into(), "echo nope >&2; exit 3".into()],
            ..Discovery::default()
        };
        let found = discover(&d, &[]).await;
        assert!(found.crews.is_empty());
        assert!(
            found.problems[0].contains("exit status: 3: nope"),
            "{:?}",
            found.problems
        );
    }
}
