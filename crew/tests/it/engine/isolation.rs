//! What a job can see of the host: only itself.

use std::collections::BTreeSet;

use crew::engine::{Network, Outcome, Termination};

use crate::support::*;

#[tokio::test]
async fn ps_inside_shows_only_the_job() {
    let t = engine_or_skip!();
    let (out, info) = run(&t.handle, sh("/bin/sleep 30 & ps -e -o pid=,comm=")).await;
    assert_eq!(ended(&info).outcome, Outcome::Finished(Termination::Exited(0)));
    let procs: Vec<(u32, String)> = out
        .lines()
        .map(|l| {
            let mut f = l.split_whitespace();
            (
                f.next().unwrap().parse().unwrap(),
                f.next().unwrap_or("").to_owned(),
            )
        })
        .collect();
    let names: BTreeSet<&str> = procs.iter().map(|(_, c)| c.as_str()).collect();
    assert_eq!(
        names,
        BTreeSet::from(["ps", "sh", "sleep", "tasker-init"]),
        "{out}"
    );
    assert!(
        procs.contains(&(1, "tasker-init".into())),
        "our init is PID 1: {out}"
    );
    assert!(
        procs.iter().all(|(pid, _)| *pid < 10),
        "pids are the namespace's own: {out}"
    );
    t.assert_clean().await;
    t.shutdown().await;
}

#[tokio::test]
async fn an_isolated_job_has_only_lo_and_it_is_up() {
    let t = engine_or_skip!();
    let (out, _) = run(&t.handle, spec(&["/usr/sbin/ip", "-o", "link"])).await;
    let links: Vec<&str> = out.lines().collect();
    assert_eq!(links.len(), 1, "{out}");
    assert!(links[0].contains(": lo:") && links[0].contains("UP"), "{out}");
    // And nothing of the host is reachable.
    let (out, _) = run(
        &t.handle,
        sh("cat /proc/net/dev | tail -n +3 | cut -d: -f1 | tr -d ' '"),
    )
    .await;
    assert_eq!(out.trim(), "lo");
    t.shutdown().await;
}

#[tokio::test]
async fn a_host_network_job_shares_the_host_namespace() {
    let t = engine_or_skip!();
    let mut s = spec(&["/bin/readlink", "/proc/self/ns/net"]);
    s.network = Network::Host;
    let (out, _) = run(&t.handle, s).await;
    let ours = std::fs::read_link("/proc/self/ns/net").unwrap();
    assert_eq!(out.trim(), ours.to_str().unwrap());
    let (out, _) = run(&t.handle, spec(&["/bin/readlink", "/proc/self/ns/net"])).await;
    assert_ne!(out.trim(), ours.to_str().unwrap(), "isolated by default");
    t.shutdown().await;
}

#[tokio::test]
async fn the_first_thing_a_job_reads_is_its_own_cgroup() {
    let t = engine_or_skip!();
    for _ in 0..scaled(20) {
        let info = t
            .handle
            .start(spec(&["/bin/cat", "/proc/self/cgroup"]))
            .await
            .unwrap();
        let (out, _, _) = read_all(&t.handle, &info.id, crew::engine::ReadFrom::Start).await;
        let out = String::from_utf8(out).unwrap();
        // Under its owner's directory, which holds the owner's caps.
        let want = format!("/{}/tester/{}", t.parent.display(), info.id);
        // The cgroup2 line, and on hybrid hosts the v1 controllers every
        // job joins: memory, pids and cpu.
        let unified = out.lines().find(|l| l.starts_with("0::")).expect("cgroup2 line");
        assert_eq!(unified, format!("0::{want}"), "{out}");
        for line in out.lines().filter(|l| {
            ["memory", "pids", "cpu"].iter().any(|c| {
                l.split(':')
                    .nth(1)
                    .is_some_and(|cs| cs.split(',').any(|x| x == *c))
            })
        }) {
            assert!(line.ends_with(&want), "v1 line {line:?} not in the job's cgroup");
        }
    }
    t.shutdown().await;
}

#[tokio::test]
async fn no_fd_of_the_crew_reaches_the_job() {
    let t = engine_or_skip!();
    // A deliberately inheritable fd in the crew (as a careless library might
    // leave one): it must not reach the job either.
    // SAFETY: open(2) of a constant path; the fd is closed below.
    let leaky = unsafe { libc::open(c"/dev/null".as_ptr(), libc::O_RDONLY) };
    assert!(leaky > 2);
    let (out, _) = run(&t.handle, sh("cd /proc/self/fd && ls")).await;
    // The shell's own 0, 1, 2, plus whatever `ls` opens for the listing.
    let fds: Vec<u32> = out.split_whitespace().map(|f| f.parse().unwrap()).collect();
    assert_eq!(&fds[..3], &[0, 1, 2], "{out}");
    assert!(fds.len() <= 4, "extra fds in the job: {out}");
    let (out, _) = run(&t.handle, sh("ls -l /proc/$$/fd")).await;
    let fds: Vec<&str> = out
        .lines()
        .filter(|l| l.contains(" -> "))
        .filter_map(|l| l.split(" -> ").next()?.rsplit(' ').next())
        .collect();
    assert_eq!(fds, ["0", "1", "2"], "the shell has exactly 0, 1, 2: {out}");
    // SAFETY: closing the fd opened above.
    unsafe { libc::close(leaky) };
    t.shutdown().await;
}

#[tokio::test]
async fn the_environment_is_exactly_the_allowed_one() {
    let t = engine_or_skip!();
    let mut s = spec(&["/usr/bin/env"]);
    s.env = vec![
        ("EXTRA".into(), "1".into()),
        ("LANG".into(), "en_US.UTF-8".into()),
    ];
    let (out, _) = run(&t.handle, s).await;
    let got: BTreeSet<&str> = out.lines().collect();
    let want = BTreeSet::from([
        "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
        "HOME=/nonexistent",
        "USER=tasker-test",
        "LOGNAME=tasker-test",
        "SHELL=/bin/sh",
        "LANG=en_US.UTF-8",
        "EXTRA=1",
    ]);
    assert_eq!(got, want, "the crew's environment leaked or a default is missing");
    t.shutdown().await;
}

#[tokio::test]
async fn a_job_runs_with_the_requested_ids_and_no_privileges() {
    let t = engine_or_skip!();
    let (out, _) = run(&t.handle, spec(&["/bin/cat", "/proc/self/status"])).await;
    let field = |name: &str| -> String {
        out.lines()
            .find_map(|l| l.strip_prefix(&format!("{name}:")))
            .unwrap_or_else(|| panic!("no {name} in {out}"))
            .split_whitespace()
            .collect::<Vec<_>>()
            .join(" ")
    };
    assert_eq!(field("Uid"), "4242 4242 4242 4242");
    assert_eq!(field("Gid"), "4343 4343 4343 4343");
    assert_eq!(field("Groups"), "4343 4444 4545");
    assert_eq!(field("NoNewPrivs"), "1");
    for cap in ["CapInh", "CapPrm", "CapEff", "CapBnd", "CapAmb"] {
        assert_eq!(field(cap), "0000000000000000", "{cap}");
    }
    let (out, _) = run(&t.handle, sh("pwd; ulimit -n")).await;
    assert_eq!(
        out, "/\n1024\n",
        "cwd defaults to / without a home; soft nofile 1024"
    );
    t.shutdown().await;
}

#[tokio::test]
async fn a_job_cannot_touch_its_cgroup_or_the_helpers() {
    let t = engine_or_skip!();
    // Move itself out of its cgroup, raise its own limit, kill or inspect
    // its init: all refused.
    let script = format!(
        "cg=$(sed -n 's/^0:://p' /proc/self/cgroup); \
         {{ echo $$ > {root}/cgroup.procs; }} 2>/dev/null && echo ESCAPED; \
         {{ echo max > {root}$cg/pids.max; }} 2>/dev/null && echo RAISED; \
         kill -9 1 2>/dev/null && echo KILLED-INIT; \
         cat /proc/1/environ >/dev/null 2>&1 && echo READ-INIT; \
         ls /proc/1/fd >/dev/null 2>&1 && echo INIT-FDS; echo done",
        root = unified_root().display()
    );
    let (out, info) = run(&t.handle, sh(&script)).await;
    assert_eq!(out, "done\n");
    assert_eq!(ended(&info).outcome, Outcome::Finished(Termination::Exited(0)));
    t.shutdown().await;
}
