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
        include_str!("../../contoso-device/appipc.toml"),
        include_str!("../../fabrikam-sensors/appipc.toml"),
        include_str!("../../contoso-spellcheck/appipc.toml"),
        include_str!("../../fabrikam-writer/appipc.toml"),
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

/// Fabrikam.Sensors' descriptor draft, its key id filled in, is a descriptor of the custom
/// capability its manifest declares, for its family, of the owner Contoso.Device's publisher.
#[test]
fn the_sensor_descriptor_draft_names_the_client_and_its_capability() {
    use appipc_model::sccd::{AuthorizedEntities, SignedDescriptor};
    let m =
        appipc_model::manifest::parse(include_str!("../../fabrikam-sensors/appipc.toml")).unwrap();
    let device =
        appipc_model::manifest::parse(include_str!("../../contoso-device/appipc.toml")).unwrap();
    let draft = include_str!("../../fabrikam-sensors/CustomCapability.sccd.toml");
    let text = draft.replace("FABRIKAM_KEY_ID", &"ab".repeat(32));
    assert_ne!(text, draft, "the draft has the placeholder");
    let d = SignedDescriptor::parse(&text).unwrap();
    assert!(d.signature.is_none());
    let caps: Vec<String> =
        d.descriptor.custom_capabilities.iter().map(|c| c.to_string()).collect();
    let declared: Vec<String> = m.capabilities.custom.iter().map(|c| c.to_string()).collect();
    assert_eq!(caps, declared);
    assert_eq!(caps, [appipc_examples::device::SENSOR_ACCESS]);
    let AuthorizedEntities::Entities(es) = &d.descriptor.authorized_entities else {
        panic!("the draft names its package")
    };
    assert_eq!(es.len(), 1);
    assert_eq!(es[0].package_family_name.as_str(), m.identity.family_name().as_str());
    assert_eq!(device.identity.family_name().as_str(), appipc_examples::device::DEVICE_FAMILY);
    assert!(caps[0].ends_with(&format!("_{}", device.identity.publisher_id())));
    let files: Vec<&str> =
        m.capabilities.custom_capability_descriptors.iter().map(|p| p.as_str()).collect();
    assert_eq!(files, ["CustomCapability.sccd.toml"]);
}
