//! Tidy checks of the repository's own rules (ARCHITECTURE.md): every crate is in the
//! code map, the dependency rules between workspace crates hold, the pure core has no
//! I/O-capable dependencies, and every crate root starts with a `//!` header.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../..")
        .canonicalize()
        .unwrap()
}

/// Workspace members (paths) from the root Cargo.toml.
fn members() -> Vec<String> {
    let text = std::fs::read_to_string(root().join("Cargo.toml")).unwrap();
    let start = text.find("members = [").unwrap();
    let end = start + text[start..].find(']').unwrap();
    text[start..end]
        .split('"')
        .skip(1)
        .step_by(2)
        .map(str::to_string)
        .collect()
}

/// Package name and the names in its `[dependencies]` table.
fn manifest(member: &str) -> (String, Vec<String>) {
    let text = std::fs::read_to_string(root().join(member).join("Cargo.toml")).unwrap();
    let name = text
        .lines()
        .find_map(|l| l.strip_prefix("name = "))
        .unwrap()
        .trim_matches('"')
        .to_string();
    let mut deps = Vec::new();
    let mut section = String::new();
    for line in text.lines() {
        let line = line.trim();
        if line.starts_with('[') {
            section = line.to_string();
        } else if section == "[dependencies]" && !line.is_empty() && !line.starts_with('#') {
            let dep = line.split(['=', '.', ' ']).next().unwrap().to_string();
            deps.push(dep);
        }
    }
    (name, deps)
}

#[test]
fn dependency_rules_hold() {
    // Workspace crates each crate may depend on (ARCHITECTURE.md, "Dependency rules").
    let allowed: BTreeMap<&str, &[&str]> = BTreeMap::from([
        ("kpr-domain", &[][..]),
        ("kpr-eventlog", &[][..]),
        ("kpr-eventlog-sled", &["kpr-eventlog"][..]),
        ("kpr-eventlog-kafka", &["kpr-eventlog"][..]),
        ("kpr-projection", &["kpr-domain"][..]),
        ("kpr-wire", &["kpr-domain"][..]),
        ("kpr-net", &[][..]),
        ("kpr-auth", &["kpr-domain"][..]),
        ("kpr-audit", &[][..]),
        (
            "kpr-synth",
            &["kpr-domain", "kpr-wire", "kpr-projection"][..],
        ),
        (
            "kpr-ingest",
            &[
                "kpr-domain",
                "kpr-wire",
                "kpr-eventlog",
                "kpr-auth",
                "kpr-audit",
                "kpr-net",
            ][..],
        ),
        (
            "kpr-statistics",
            &[
                "kpr-domain",
                "kpr-wire",
                "kpr-eventlog",
                "kpr-projection",
                "kpr-net",
                "kpr-auth",
                "kpr-audit",
            ][..],
        ),
        (
            "kpr",
            &[
                "kpr-domain",
                "kpr-wire",
                "kpr-eventlog",
                "kpr-eventlog-sled",
                "kpr-eventlog-kafka",
                "kpr-ingest",
                "kpr-synth",
                "kpr-projection",
                "kpr-statistics",
                "kpr-net",
                "kpr-auth",
                "kpr-audit",
            ][..],
        ),
        // The benchmarks: on top of everything, and nothing may depend on them.
        (
            "kpr-bench",
            &[
                "kpr",
                "kpr-domain",
                "kpr-wire",
                "kpr-eventlog",
                "kpr-eventlog-sled",
                "kpr-eventlog-kafka",
                "kpr-ingest",
                "kpr-synth",
                "kpr-projection",
                "kpr-statistics",
                "kpr-auth",
            ][..],
        ),
    ]);
    assert!(
        allowed.values().all(|deps| !deps.contains(&"kpr-bench")),
        "nothing in the product may depend on the benchmarks"
    );
    let members = members();
    assert_eq!(
        members.len(),
        allowed.len(),
        "a crate was added or removed: update ARCHITECTURE.md and this test"
    );
    for member in &members {
        let (name, deps) = manifest(member);
        let permitted = allowed
            .get(name.as_str())
            .unwrap_or_else(|| panic!("{name} is not in the dependency rules"));
        for dep in deps.iter().filter(|d| d.starts_with("kpr")) {
            assert!(
                permitted.contains(&dep.as_str()),
                "{name} may not depend on {dep}"
            );
        }
        if name == "kpr-projection" {
            assert!(
                deps.iter()
                    .all(|d| ["kpr-domain", "thiserror", "hashbrown"].contains(&d.as_str())),
                "the pure projection core depends on kpr-domain, thiserror and hashbrown only"
            );
        }
        if name == "kpr-domain" {
            assert_eq!(
                deps,
                vec!["thiserror".to_string()],
                "the pure core depends on thiserror only"
            );
        }
        if name == "kpr" {
            assert!(
                !deps.iter().any(|d| d.contains("postgres")),
                "the operator's binary links no PostgreSQL client (the baseline is kpr-bench's)"
            );
        }
        if !matches!(name.as_str(), "kpr" | "kpr-bench") {
            for binary_only in ["anyhow", "clap", "tracing-subscriber"] {
                assert!(
                    !deps.iter().any(|d| d == binary_only),
                    "{name} is a library and may not use {binary_only}"
                );
            }
        }
    }
}

#[test]
fn architecture_names_every_crate_and_roots_have_headers() {
    let architecture = std::fs::read_to_string(root().join("ARCHITECTURE.md")).unwrap();
    for member in members() {
        let (name, _) = manifest(&member);
        assert!(
            architecture.contains(&format!("`{member}/`")),
            "ARCHITECTURE.md does not map {member}"
        );
        assert!(
            architecture.contains(&name),
            "ARCHITECTURE.md does not name {name}"
        );
        for file in ["src/lib.rs", "src/main.rs"] {
            let path = root().join(&member).join(file);
            if let Ok(text) = std::fs::read_to_string(&path) {
                assert!(
                    text.starts_with("//!"),
                    "{} must start with a //! header",
                    path.display()
                );
            }
        }
    }
}
