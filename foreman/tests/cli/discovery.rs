//! Crews found by discovery: a watched file, DNS SRV records from a real
//! DNS server on loopback (dnsmasq), and a command. Each command of the
//! CLI asks again, so crews appear and vanish between two commands; a
//! discovered crew must show a certificate that names it.

use std::net::{SocketAddr, UdpSocket};
use std::process::Stdio;
use std::time::{Duration, Instant};

use crate::support::{ALICE, Fleet, fleet_or_skip};

/// A dnsmasq serving only what it is told, on 127.0.0.1 at a free port;
/// killed when dropped.
struct Dns {
    child: std::process::Child,
    at: SocketAddr,
}

impl Dns {
    /// None when dnsmasq is not installed (.ci/run installs it).
    fn start(records: &[String]) -> Option<Self> {
        // A free port: the kernel's pick for a socket dropped just before.
        let at = UdpSocket::bind("127.0.0.1:0").ok()?.local_addr().ok()?;
        let child = std::process::Command::new("dnsmasq")
            .args([
                "--keep-in-foreground",
                "--conf-file=/dev/null",
                "--no-resolv",
                "--no-hosts",
                "--bind-interfaces",
                "--listen-address=127.0.0.1",
                "--pid-file=",
                "--user=root",
            ])
            .arg(format!("--port={}", at.port()))
            .args(records)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .ok()?;
        Some(Self { child, at })
    }
}

impl Drop for Dns {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn write_config(fleet: &Fleet, discovery: &str) {
    let toml = format!(
        "certs = {:?}\n\n[discovery]\n{discovery}",
        fleet.pki.dir().display().to_string()
    );
    std::fs::write(fleet.config(), toml).unwrap();
}

fn crews_listed(ran: &crate::support::Ran) -> Vec<(String, bool, String)> {
    let list = ran.json();
    let mut crews: Vec<(String, bool, String)> = list
        .as_array()
        .expect("a list")
        .iter()
        .map(|c| {
            (
                c["name"].as_str().unwrap().to_owned(),
                c["reachable"].as_bool().unwrap(),
                c["source"].as_str().unwrap().to_owned(),
            )
        })
        .collect();
    crews.sort();
    crews
}

#[tokio::test]
async fn crews_come_from_a_file_dns_srv_and_a_command() {
    if std::process::Command::new("dnsmasq")
        .arg("--version")
        .output()
        .is_err()
    {
        eprintln!(
            "SKIPPED {}: dnsmasq is not installed (apt-get install dnsmasq-base)",
            module_path!()
        );
        return;
    }
    let fleet = fleet_or_skip!("web01", "web02", "web03");
    let port = |i: usize| fleet.crews[i].addr.port();
    let dns = Dns::start(&[
        format!("--srv-host=_tasker._tcp.fleet.test,web03.fleet.test,{}", port(2)),
        "--host-record=web03.fleet.test,127.0.0.1".to_owned(),
    ])
    .expect("dnsmasq starts");
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("crews.toml");
    std::fs::write(
        &file,
        format!("[[crew]]\nname = \"web01\"\naddr = \"127.0.0.1:{}\"\n", port(0)),
    )
    .unwrap();
    write_config(
        &fleet,
        &format!(
            "files = [{:?}]\nsrv = [\"_tasker._tcp.fleet.test\"]\ndns = \"{}\"\ncommand = [\"/bin/echo\", \"web02 127.0.0.1:{} prod\"]\n",
            file.display().to_string(),
            dns.at,
            port(1)
        ),
    );
    // dnsmasq may take a moment to listen: the first ask is retried.
    let t0 = Instant::now();
    let listed = loop {
        let ran = fleet.run(ALICE, &["crews", "--json"]).await;
        if ran.code == 0 || t0.elapsed() > Duration::from_secs(10) {
            break crews_listed(&ran.expect(0));
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    let file_source = format!("file {}", file.display());
    assert_eq!(
        listed,
        [
            ("web01".to_owned(), true, file_source.clone()),
            ("web02".to_owned(), true, "command".to_owned()),
            ("web03".to_owned(), true, "srv _tasker._tcp.fleet.test".to_owned()),
        ]
    );
    // One batch over all of them, and the groups discovery gave.
    let ran = fleet
        .run(ALICE, &["run", "--crew", "all", "-b", "--", "echo", "hi"])
        .await
        .expect(0);
    assert!(ran.out().contains("web[01-03] (3) exit 0\n"), "{}", ran.out());
    let ran = fleet
        .run(ALICE, &["run", "--crew", "@prod,@fleet", "--", "echo", "hi"])
        .await
        .expect(0);
    assert!(
        ran.out().contains("web02: hi\n") && ran.out().contains("web03: hi\n"),
        "{}",
        ran.out()
    );
    // Tab completes the jobs of discovered crews too.
    let config = fleet.config().display().to_string();
    let words = [
        "__complete",
        "--",
        "foreman",
        "--config",
        &config,
        "--user",
        ALICE,
        "logs",
        "",
    ];
    let offered = fleet.run(ALICE, &words).await.expect(0);
    assert_eq!(
        offered.out().lines().collect::<Vec<_>>(),
        [
            "web01/job-1",
            "web02/job-1",
            "web02/job-2",
            "web03/job-1",
            "web03/job-2"
        ]
    );

    // The file changes: web01 goes, and an entry that claims to be web09
    // at web01's address comes, whose certificate names web01: refused.
    std::fs::write(
        &file,
        format!("[[crew]]\nname = \"web09\"\naddr = \"127.0.0.1:{}\"\n", port(0)),
    )
    .unwrap();
    let ran = fleet.run(ALICE, &["crews", "--json"]).await.expect(2);
    let listed = crews_listed(&ran);
    let names: Vec<&str> = listed.iter().map(|(n, _, _)| n.as_str()).collect();
    assert_eq!(names, ["web02", "web03", "web09"]);
    assert!(!listed[2].1, "web09 is not reachable: {listed:?}");
    let json = ran.json();
    let web09 = json
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["name"] == "web09")
        .unwrap();
    assert!(
        web09["error"]
            .as_str()
            .unwrap()
            .contains("not valid for name \"web09\"; certificate is only valid for crew \"web01\""),
        "{web09}"
    );

    // A source that fails is named, and the others still count.
    write_config(
        &fleet,
        &format!(
            "files = [{:?}]\ncommand = [\"/bin/sh\", \"-c\", \"echo broken >&2; exit 4\"]\n",
            dir.path().join("gone.toml").display().to_string()
        ),
    );
    let ran = fleet.run(ALICE, &["crews"]).await.expect(2);
    assert!(ran.stderr.contains("gone.toml"), "{}", ran.stderr);
    assert!(ran.stderr.contains("exit status: 4: broken"), "{}", ran.stderr);
    assert!(ran.stderr.contains("discovery found none"), "{}", ran.stderr);
    drop(dns);
    fleet.stop().await;
}
