//! Signed custom capability descriptors: `appipc_model::sccd::SignedDescriptor::parse` (the
//! TOML a package carries, read by the broker at install) and `sccd::import_windows_xml` (the
//! hand parser of Windows' `CustomCapability.SCCD`, `appipc sccd import`), on the same input,
//! and `sccd::check` of what parses against an empty trust store.
//!
//! Properties: what parses writes (`to_toml`) text that parses to the same descriptor and
//! writes the same text; the canonical bytes of equal descriptors are equal; an imported
//! descriptor is valid, unsigned, and round-trips the same way; nothing an empty trust store
//! is asked grants.
#![no_main]

use appipc_model::identity::PackageFamilyName;
use appipc_model::sccd::{self, SignedDescriptor};
use libfuzzer_sys::fuzz_target;

fn round_trip(d: &SignedDescriptor) {
    let text = d.to_toml();
    let again = SignedDescriptor::parse(&text).expect("a descriptor's own text parses");
    assert_eq!(&again, d, "parse(to_toml(d)) == d");
    assert_eq!(again.to_toml(), text, "writing is stable");
    assert_eq!(again.descriptor.canonical_bytes(), d.descriptor.canonical_bytes());
}

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else { return };
    if let Ok(d) = SignedDescriptor::parse(text) {
        round_trip(&d);
        let family: PackageFamilyName = "Fuzz.App_cvnpggrrsm18p".parse().expect("valid");
        let candidate =
            sccd::Candidate { family_name: &family, signer: None, developer_mode: true };
        for c in &d.descriptor.custom_capabilities {
            assert!(sccd::check(&d, c, &[], Some(candidate)).is_err(), "nothing is trusted");
        }
    }
    if let Ok(d) = sccd::import_windows_xml(text) {
        d.validate().expect("an imported descriptor is valid");
        round_trip(&SignedDescriptor { descriptor: d, signature: None });
    }
});
