//! docs/architecture.md's table of limits says what the code's defaults are: every key of
//! `[limits]` and `[packages]` is in the table with its default, and the table names no key
//! the configuration does not have.

use std::collections::BTreeMap;

use appipc_broker::config::{LimitsConfig, PackageLimits};

/// `"[section] key"` → default, from the code.
fn defaults() -> BTreeMap<String, String> {
    let mut out = BTreeMap::new();
    for (section, table) in [
        ("limits", toml::Value::try_from(LimitsConfig::default()).unwrap()),
        ("packages", toml::Value::try_from(PackageLimits::default()).unwrap()),
    ] {
        for (key, value) in table.as_table().unwrap() {
            out.insert(format!("[{section}] {key}"), value.to_string());
        }
    }
    out
}

/// `"[section] key"` → default, from the document's table rows (`| \`[s] k\` | default | …`).
fn documented() -> BTreeMap<String, String> {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../../docs/architecture.md");
    let doc = std::fs::read_to_string(path).unwrap();
    let mut out = BTreeMap::new();
    for line in doc.lines() {
        let cells: Vec<&str> = line.split('|').map(str::trim).collect();
        if cells.len() < 4 {
            continue;
        }
        if let Some(key) = cells[1].strip_prefix("`[").and_then(|k| k.strip_suffix('`')) {
            out.insert(format!("[{key}"), cells[2].to_owned());
        }
    }
    out
}

#[test]
fn the_limits_table_lists_every_limit_with_its_default() {
    let code = defaults();
    let doc = documented();
    assert!(code.len() >= 16, "the configuration has fewer limits than expected: {code:?}");
    assert_eq!(
        doc, code,
        "docs/architecture.md's Limits table and the code's defaults differ (left: document)"
    );
}
