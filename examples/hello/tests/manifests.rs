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
        include_str!("../../contoso-loopserver/appipc.toml"),
        include_str!("../../fabrikam-loopclient/appipc.toml"),
    ] {
        let m = appipc_model::manifest::parse(text).unwrap_or_else(|e| panic!("{e}"));
        assert!(!m.applications.is_empty());
    }
}
