//! Which crews a command goes to (`--crew`), and how a set of crew names
//! is written back compactly (`web[01-03,07]`), as ClusterShell does.
//!
//! A selection is a comma list of terms, each one of: `all`; `@GROUP`
//! (the crews whose config entry lists that group); a glob (`web*`,
//! `db-[12]`); or a crew's exact name. The crews come back in config order,
//! each once. A term that matches nothing is an error naming it: a typo must
//! not quietly shrink a fleet-wide command.

use crate::config::CrewEntry;

/// The indexes into `crews` that `spec` selects.
pub fn select(crews: &[CrewEntry], spec: &str) -> Result<Vec<usize>, String> {
    let mut chosen = vec![false; crews.len()];
    for term in spec.split(',').map(str::trim) {
        let matched: Vec<usize> = if term.is_empty() {
            return Err(format!("--crew {spec:?} has an empty term"));
        } else if term == "all" {
            (0..crews.len()).collect()
        } else if let Some(group) = term.strip_prefix('@') {
            crews
                .iter()
                .enumerate()
                .filter(|(_, c)| c.groups.iter().any(|g| g == group))
                .map(|(i, _)| i)
                .collect()
        } else if term.contains(['*', '?', '[']) {
            let pattern = glob::Pattern::new(term).map_err(|e| format!("--crew {term:?}: {e}"))?;
            crews
                .iter()
                .enumerate()
                .filter(|(_, c)| pattern.matches(&c.name))
                .map(|(i, _)| i)
                .collect()
        } else {
            crews.iter().position(|c| c.name == term).into_iter().collect()
        };
        if matched.is_empty() {
            let names: Vec<&str> = crews.iter().map(|c| c.name.as_str()).collect();
            let what = match term.strip_prefix('@') {
                Some(g) => format!("no crew is in group {g:?}"),
                None => format!("no crew matches {term:?}"),
            };
            return Err(format!("{what} (crews: {})", fold(&names)));
        }
        for i in matched {
            chosen[i] = true;
        }
    }
    Ok((0..crews.len()).filter(|i| chosen[*i]).collect())
}

/// Whether `spec` can only ever name one crew (a plain name): such a
/// command runs as before, not as a batch.
pub fn is_single(spec: &str) -> bool {
    !spec.contains([',', '*', '?', '[', '@']) && spec != "all"
}

/// Crew names folded into ranges where they end in numbers of one width:
/// `web01 web02 web03 web07 db` → `db,web[01-03,07]`. Sorted, each once.
pub fn fold<S: AsRef<str>>(names: &[S]) -> String {
    use std::collections::BTreeMap;
    // prefix → (width, numbers); names without a numeric tail stand alone.
    let mut ranged: BTreeMap<(String, usize), Vec<u64>> = BTreeMap::new();
    let mut plain: Vec<String> = Vec::new();
    for name in names {
        let name = name.as_ref();
        let digits = name.len() - name.trim_end_matches(|c: char| c.is_ascii_digit()).len();
        let (prefix, tail) = name.split_at(name.len() - digits);
        match tail.parse::<u64>() {
            Ok(n) if digits > 0 && digits <= 18 => {
                ranged.entry((prefix.to_owned(), digits)).or_default().push(n)
            }
            _ => plain.push(name.to_owned()),
        }
    }
    let mut parts: Vec<String> = plain;
    for ((prefix, width), mut numbers) in ranged {
        numbers.sort_unstable();
        numbers.dedup();
        if let [only] = numbers[..] {
            parts.push(format!("{prefix}{only:0width$}"));
            continue;
        }
        let mut runs: Vec<String> = Vec::new();
        let mut i = 0;
        while i < numbers.len() {
            let start = numbers[i];
            while i + 1 < numbers.len() && numbers[i + 1] == numbers[i] + 1 {
                i += 1;
            }
            let end = numbers[i];
            runs.push(if start == end {
                format!("{start:0width$}")
            } else {
                format!("{start:0width$}-{end:0width$}")
            });
            i += 1;
        }
        parts.push(format!("{prefix}[{}]", runs.join(",")));
    }
    parts.sort();
    parts.dedup();
    parts.join(",")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn crews(names: &[(&str, &[&str])]) -> Vec<CrewEntry> {
        names
            .iter()
            .map(|(n, g)| CrewEntry {
                name: (*n).into(),
                addr: "h:1".into(),
                groups: g.iter().map(|s| (*s).to_owned()).collect(),
                source: Default::default(),
                dial: None,
            })
            .collect()
    }

    #[test]
    fn terms_select_by_name_glob_group_and_all() {
        let c = crews(&[
            ("web01", &["prod"]),
            ("web02", &["prod"]),
            ("db1", &["prod", "db"]),
            ("lab", &[]),
        ]);
        let names = |spec: &str| -> Result<Vec<&str>, String> {
            select(&c, spec).map(|v| v.into_iter().map(|i| c[i].name.as_str()).collect())
        };
        assert_eq!(names("lab").unwrap(), ["lab"]);
        assert_eq!(names("all").unwrap(), ["web01", "web02", "db1", "lab"]);
        assert_eq!(names("web*").unwrap(), ["web01", "web02"]);
        assert_eq!(names("web0[2-9]").unwrap(), ["web02"]);
        assert_eq!(names("@db").unwrap(), ["db1"]);
        // Config order, each once.
        assert_eq!(
            names("lab,@prod,web01").unwrap(),
            ["web01", "web02", "db1", "lab"]
        );
        // A term that matches nothing is an error that names it.
        let e = names("web*,nope").unwrap_err();
        assert!(e.contains("\"nope\"") && e.contains("db1,lab,web[01-02]"), "{e}");
        assert!(
            names("@staging")
                .unwrap_err()
                .contains("no crew is in group \"staging\"")
        );
        assert!(names("lab,,web01").unwrap_err().contains("empty term"));
        assert!(names("web[").is_err());
        assert!(is_single("web01") && !is_single("web*") && !is_single("all") && !is_single("a,b"));
    }

    #[test]
    fn names_fold_into_ranges() {
        assert_eq!(
            fold(&["web01", "web02", "web03", "web07", "db"]),
            "db,web[01-03,07]"
        );
        assert_eq!(fold(&["n9", "n10", "n11"]), "n9,n[10-11]");
        assert_eq!(fold(&["a1"]), "a1");
        assert_eq!(fold(&["x", "x"]), "x");
        assert_eq!(fold::<&str>(&[]), "");
        assert_eq!(fold(&["b2", "a1", "a2", "b3"]), "a[1-2],b[2-3]");
    }
}
