//! The package manifest (`appipc.toml` text, `appipc_model::manifest::parse`), which every
//! package brings, and the error path: the `appipc.toml:LINE:COL: KEY: RULE` rendering, the
//! error's location, key and rule, and `manifest::locate` (the line a decision names) for the
//! error's key and for keys every manifest has.
//!
//! Properties: a refusal's location lies inside the text (a line that exists, a column at
//! most one past that line's end) and its rendering starts with `appipc.toml:LINE:COL`; a
//! manifest that parses gives its family and full names, and its first application (or its
//! package name) can be located.
#![no_main]

use appipc_model::manifest::{self, Location, ManifestError};
use libfuzzer_sys::fuzz_target;

fn check_location(text: &str, at: Location) {
    let lines: Vec<&str> = text.split('\n').collect();
    assert!(at.line >= 1 && at.line <= lines.len(), "{at} of {} lines", lines.len());
    assert!(at.column >= 1 && at.column <= lines[at.line - 1].chars().count() + 1, "{at}");
}

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else { return };
    match manifest::parse(text) {
        Ok(m) => {
            let (family, full) = (m.family_name(), m.identity.full_name());
            assert_eq!(full.family_name(), family);
            for app in &m.applications {
                assert!(m.application(app.id.as_str()).is_some());
            }
            let key = if m.applications.is_empty() { "package.name" } else { "application[0]" };
            let at = manifest::locate(text, key).expect("the manifest declares it");
            check_location(text, at);
        }
        Err(e) => {
            let rendered = e.to_string();
            let at = e.location().expect("parsing text does no I/O");
            check_location(text, at);
            assert!(rendered.starts_with(&format!("{}:{at}: ", manifest::MANIFEST_FILE)));
            assert!(!e.rule().is_empty());
            if let Some(found) = e.key().and_then(|key| manifest::locate(text, key)) {
                check_location(text, found);
            }
            assert!(!matches!(e, ManifestError::Io { .. } | ManifestError::File { .. }));
        }
    }
});
