//! The typed JSON input of the CLI (`appipc app-service call --json`):
//! `serde_json` text read as a `ValueSet` by `appipc_wire::json::value_set_from_json`.
//!
//! Property: what reads prints (`value_set_to_json`, as the CLI prints a response) to JSON
//! text that reads back to a set printing the same, whose CBOR encoding is the original's
//! (unless a NaN lost its payload: JSON has one "NaN").
#![no_main]

use appipc_wire::json::{value_set_from_json, value_set_to_json};
use libfuzzer_sys::fuzz_target;
use serde_json::Value;

fuzz_target!(|data: &[u8]| {
    let Ok(v) = serde_json::from_slice::<Value>(data) else { return };
    let set = match value_set_from_json(&v) {
        Ok(set) => set,
        Err(e) => {
            assert!(!e.to_string().is_empty());
            return;
        }
    };
    let printed = value_set_to_json(&set);
    let text = serde_json::to_string(&printed).expect("a Value prints");
    let back: Value = serde_json::from_str(&text).expect("printed JSON parses");
    let again = value_set_from_json(&back).expect("typed output reads back");
    assert_eq!(value_set_to_json(&again), printed, "{text}");
    if !text.contains("\"NaN\"") {
        assert_eq!(again.to_cbor(), set.to_cbor(), "{text}");
    }
});
