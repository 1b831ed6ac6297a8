//! Gathering a batch's outputs as `clush -b` does: identical outputs once,
//! under the crews that printed them (folded into ranges) and how they
//! ended. `foreman run -b`, `logs --batch -b` and the dashboard's batch
//! view all group here.

use crate::select::fold;

/// One member's output, as far as it was read.
#[derive(Clone, Copy, Debug)]
pub struct Member<'a> {
    pub crew: &'a str,
    pub output: &'a [u8],
    /// Its exit code (as `run` would exit), or None while it runs.
    pub code: Option<u8>,
    /// Bytes past what was kept.
    pub cut: u64,
}

/// Members with the same output.
#[derive(Debug)]
pub struct Group<'a> {
    /// Indexes into the members given, in their order.
    pub members: Vec<usize>,
    pub output: &'a [u8],
    /// `web[01-03] (3) exit 0, running`.
    pub header: String,
    /// Every member ended with exit code 0.
    pub ok: bool,
    /// A member ended with another.
    pub failed: bool,
    /// The most any member had past what was kept.
    pub cut: u64,
}

/// Members grouped by identical output, groups in the order their first
/// member comes.
pub fn gather<'a>(members: &[Member<'a>]) -> Vec<Group<'a>> {
    let mut groups: Vec<Group<'a>> = Vec::new();
    for (i, m) in members.iter().enumerate() {
        match groups.iter_mut().find(|g| g.output == m.output) {
            Some(g) => g.members.push(i),
            None => groups.push(Group {
                members: vec![i],
                output: m.output,
                header: String::new(),
                ok: true,
                failed: false,
                cut: 0,
            }),
        }
    }
    for g in &mut groups {
        let ms: Vec<&Member> = g.members.iter().map(|i| &members[*i]).collect();
        let names: Vec<&str> = ms.iter().map(|m| m.crew).collect();
        let mut codes: Vec<u8> = ms.iter().filter_map(|m| m.code).collect();
        codes.sort_unstable();
        codes.dedup();
        let mut ends: Vec<String> = codes.iter().map(|c| format!("exit {c}")).collect();
        if ms.iter().any(|m| m.code.is_none()) {
            ends.push("running".into());
        }
        g.header = format!("{} ({}) {}", fold(&names), ms.len(), ends.join(", "));
        g.ok = ms.iter().all(|m| m.code == Some(0));
        g.failed = ms.iter().any(|m| m.code.is_some_and(|c| c != 0));
        g.cut = ms.iter().map(|m| m.cut).max().unwrap_or(0);
    }
    groups
}

#[cfg(test)]
mod tests {
    use super::*;

    fn m<'a>(crew: &'a str, output: &'a [u8], code: Option<u8>) -> Member<'a> {
        Member {
            crew,
            output,
            code,
            cut: 0,
        }
    }

    #[test]
    fn identical_outputs_are_one_group_under_their_crews_and_ends() {
        let members = [
            m("web1", b"up\n", Some(0)),
            m("web3", b"down\n", Some(3)),
            m("web2", b"up\n", Some(0)),
            m("db", b"up\n", None),
        ];
        let groups = gather(&members);
        assert_eq!(groups.len(), 2);
        assert_eq!(groups[0].members, vec![0, 2, 3]);
        assert_eq!(groups[0].header, "db,web[1-2] (3) exit 0, running");
        assert!(!groups[0].ok && !groups[0].failed, "a member still runs");
        assert!(groups[1].failed);
        assert_eq!(groups[1].header, "web3 (1) exit 3");
        assert_eq!(groups[1].output, b"down\n");
    }
}
