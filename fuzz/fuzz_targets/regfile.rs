//! `.reg` files (`appipc_model::registry::regfile::parse`), as `appipc reg import` reads them
//! and as a package ships its `Registry.reg` (the broker reads it at install and whenever it
//! loads the package's registry): UTF-16LE or UTF-16BE after a BOM, UTF-8, Latin-1; version 5
//! or `REGEDIT4`.
//!
//! Properties:
//! * a refusal names a line of the input (1 to the number of lines) and a problem;
//! * what parses, applied to an empty tree, writes (`regfile::write`) to a version 5 file
//!   that parses, as UTF-16LE with a BOM and as UTF-8, to entries that give the same tree;
//!   writing that tree again gives the same text.
#![no_main]

use appipc_model::registry::RegTree;
use appipc_model::registry::regfile;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let f = match regfile::parse(data) {
        Ok(f) => f,
        Err(e) => {
            assert!(!e.problem.is_empty());
            // A line of the input: at most one per byte (or per two bytes of UTF-16), plus one.
            assert!(e.line >= 1 && e.line <= data.len() + 1, "{e}");
            return;
        }
    };
    let tree = RegTree::from_entries(&f.entries);
    let text = regfile::write(&tree.to_entries());
    for bytes in [regfile::to_utf16le(&text), text.as_bytes().to_vec()] {
        let again = regfile::parse(&bytes).unwrap_or_else(|e| panic!("{e}\n{text}"));
        assert_eq!(again.version, regfile::RegVersion::V5);
        let back = RegTree::from_entries(&again.entries);
        assert_eq!(back, tree, "{text}");
        assert_eq!(regfile::write(&back.to_entries()), text);
    }
});
