//! The example manifests are valid. (This integration test also makes `cargo test` build the
//! example binaries, which the end-to-end tests install.)

#[test]
fn example_manifests_parse() {
    for text in [
        include_str!("../appipc.toml"),
        include_str!("../../fabrikam-tools/appipc.toml"),
        include_str!("../../contoso-services/appipc.toml"),
        include_str!("../../fabrikam-client/appipc.toml"),
        include_str!("../../contoso-bridge/appipc.toml"),
        include_str!("../../contoso-picker/appipc.toml"),
        include_str!("../../fabrikam-photos/appipc.toml"),
        include_str!("../../contoso-settings/appipc.toml"),
        include_str!("../../contoso-loopserver/appipc.toml"),
        include_str!("../../fabrikam-loopclient/appipc.toml"),
    ] {
        let m = appipc_model::manifest::parse(text).unwrap_or_else(|e| panic!("{e}"));
        assert!(!m.applications.is_empty());
    }
}

/// Contoso.Settings' shipped registry keys read, and are all under HKLM\Software.
#[test]
fn the_shipped_registry_file_reads() {
    use appipc_model::registry::{KeyPath, RegTree, regfile};
    let f = regfile::parse(include_bytes!("../../contoso-settings/Registry.reg")).unwrap();
    let t = RegTree::from_entries(&f.entries);
    let software = KeyPath::parse("HKEY_LOCAL_MACHINE\\Software").unwrap();
    assert!(t.keys().all(|k| k.path.is_at_or_under(&software)));
    let k = t.get(&KeyPath::parse("HKLM\\Software\\Contoso\\Settings").unwrap()).unwrap();
    assert_eq!(k.values.len(), 2);
}
