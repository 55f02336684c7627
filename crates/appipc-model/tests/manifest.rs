//! The complete example manifest parses to the expected values; defaults; the error format.

use appipc_model::identity::ProcessorArchitecture;
use appipc_model::manifest::{
    self, ComCompatMode, ComScope, Direction, Guid, Manifest, ManifestError, ProgIdTarget,
    ReturnResults, TrustLevel,
};

const COMPLETE: &str = include_str!("manifests/complete.toml");
const DOC: &str = include_str!("../../../docs/manifest.md");

fn guid(s: &str) -> Guid {
    s.parse().unwrap()
}

#[test]
fn complete_manifest_parses_to_expected_values() {
    let m = manifest::parse(COMPLETE).unwrap();

    // identity
    assert_eq!(m.identity.name.as_str(), "Contoso.Echo");
    assert_eq!(m.identity.publisher, "CN=Contoso Ltd, O=Contoso, C=US");
    assert_eq!(m.identity.version.to_string(), "1.2.3.4");
    assert_eq!(m.identity.architecture, ProcessorArchitecture::X64);
    assert_eq!(m.identity.resource_id.as_ref().unwrap().as_str(), "en-us");
    assert_eq!(m.identity.publisher_id().as_str(), "r20a7bfhmha1g");
    assert_eq!(m.family_name().as_str(), "Contoso.Echo_r20a7bfhmha1g");
    assert_eq!(m.identity.full_name().to_string(), "Contoso.Echo_1.2.3.4_x64_en-us_r20a7bfhmha1g");

    // properties
    assert_eq!(m.properties.display_name, "Contoso Echo");
    assert_eq!(m.properties.publisher_display_name, "Contoso Ltd");
    assert_eq!(m.properties.description.as_deref(), Some("Echo services for the appipc examples"));
    assert_eq!(m.properties.logo.as_ref().unwrap().as_str(), "assets/logo.png");

    // capabilities
    let c = &m.capabilities;
    assert_eq!(c.general, ["internetClient", "privateNetworkClientServer"]);
    assert_eq!(c.restricted, ["runFullTrust", "broadFileSystemAccess", "unvirtualizedResources"]);
    assert_eq!(c.device, ["microphone"]);
    assert_eq!(c.custom.len(), 1);
    assert_eq!(c.custom[0].as_str(), "Fabrikam.sensorAccess_8tkjkmve8mrwr");
    assert_eq!(c.custom[0].owner_publisher_id().as_str(), "8tkjkmve8mrwr");
    assert_eq!(c.custom_capability_descriptors[0].as_str(), "CustomCapability.SCCD");
    assert_eq!(c.names().len(), 7);
    assert!(c.has("RUNFULLTRUST"));
    assert!(c.has("fabrikam.sensoraccess_8tkjkmve8mrwr"));
    assert!(!c.has("webcam"));
    assert!(c.has_run_full_trust());

    // applications
    assert_eq!(m.applications.len(), 2);
    let app = &m.applications[0];
    assert_eq!(app.id.as_str(), "App");
    assert_eq!(app.executable.as_str(), "bin/echo-app");
    assert_eq!(app.arguments, ["--verbose"]);
    assert_eq!(app.trust_level, TrustLevel::AppContainer);
    assert_eq!(app.display_name.as_deref(), Some("Echo"));
    assert_eq!(app.description.as_deref(), Some("The echo front end"));

    assert_eq!(app.app_services.len(), 2);
    let oop = &app.app_services[0];
    assert_eq!(oop.name.as_str(), "com.contoso.echo");
    assert_eq!(oop.entry_point.as_ref().unwrap().as_str(), "bin/echo-service");
    assert!(oop.supports_multiple_instances);
    assert!(!oop.supports_remote_systems);
    assert_eq!(oop.max_message_size, Some(16 * 1024 * 1024));
    assert_eq!(oop.server_name, None);
    assert!(!oop.is_in_process());
    let inproc = &app.app_services[1];
    assert_eq!(inproc.name.as_str(), "com.contoso.echo.inproc");
    assert!(inproc.is_in_process());
    assert!(!inproc.supports_multiple_instances);
    assert_eq!(inproc.max_message_size, Some(65536));
    assert_eq!(inproc.server_name.as_deref(), Some("EchoServer"));

    assert_eq!(app.full_trust_processes.len(), 1);
    let ftp = &app.full_trust_processes[0];
    assert_eq!(ftp.executable.as_str(), "bin/echo-helper");
    assert!(ftp.tie_lifetime_to_caller);
    assert_eq!(ftp.parameter_groups.len(), 2);
    assert_eq!(ftp.parameter_group("Sync").unwrap().parameters, "--sync");
    assert_eq!(ftp.parameter_group("Watch").unwrap().parameters, "--watch --interval 5");
    assert!(ftp.parameter_group("sync").is_none());

    assert_eq!(app.protocols.len(), 1);
    let p = &app.protocols[0];
    assert_eq!(p.name.as_str(), "contoso-echo");
    assert_eq!(p.return_results, ReturnResults::Optional);
    assert!(p.return_results.for_results() && p.return_results.plain_launch());
    assert_eq!(p.display_name.as_deref(), Some("Contoso Echo link"));
    assert!(app.com_servers.is_empty());

    let host = &m.applications[1];
    assert_eq!(host.id.as_str(), "ComHost");
    assert_eq!(host.trust_level, TrustLevel::MediumIL);
    assert!(host.trust_level.is_full_trust());
    assert!(host.arguments.is_empty() && host.app_services.is_empty());
    assert_eq!(host.com_servers.len(), 1);
    let server = &host.com_servers[0];
    assert_eq!(server.scope, ComScope::User);
    assert_eq!(server.compat_mode, ComCompatMode::Modern);
    assert_eq!(server.exe_servers.len(), 1);
    let exe = &server.exe_servers[0];
    assert_eq!(exe.executable.as_str(), "bin/echo-com-server");
    assert_eq!(exe.arguments, ["-serve"]);
    assert_eq!(exe.display_name.as_deref(), Some("Contoso Echo COM server"));
    assert_eq!(
        exe.launch_and_activation_permission.as_deref(),
        Some("O:SYG:SYD:(A;;11;;;IU)(A;;11;;;AC)")
    );
    let clsid = guid("51F4D4BD-96EB-45BA-A1D6-7749037DF702");
    assert_eq!(exe.classes.len(), 1);
    assert_eq!(exe.classes[0].id, clsid);
    assert_eq!(exe.classes[0].display_name.as_deref(), Some("Echo"));
    assert_eq!(exe.classes[0].prog_id.as_deref(), Some("Contoso.Echo.1"));
    assert_eq!(exe.classes[0].version_independent_prog_id.as_deref(), Some("Contoso.Echo"));
    assert_eq!(exe.classes[0].auto_convert_to, None);
    assert_eq!(server.prog_ids.len(), 2);
    assert_eq!(server.prog_ids[0].target, ProgIdTarget::Clsid(clsid));
    assert_eq!(server.prog_ids[1].target, ProgIdTarget::CurrentVersion("Contoso.Echo.1".into()));
    assert_eq!(server.resolve_prog_id("contoso.echo"), Some(clsid));
    assert_eq!(server.resolve_prog_id("Contoso.Other"), None);

    // lookups
    assert_eq!(m.application("app").unwrap().id.as_str(), "App");
    assert_eq!(m.app_service("COM.contoso.echo").unwrap().0.id.as_str(), "App");
    assert_eq!(m.protocol("Contoso-Echo").unwrap().1.return_results, ReturnResults::Optional);
    let (a, e, k) = m.com_class(clsid).unwrap();
    assert_eq!(
        (a.id.as_str(), e.executable.as_str(), k.id),
        ("ComHost", "bin/echo-com-server", clsid)
    );
    assert!(m.com_class(guid("00000000-0000-0000-0000-000000000000")).is_none());

    // package-level extensions
    assert_eq!(m.publisher_cache_folders, ["Shared", "Logs"]);
    assert!(m.declares_publisher_cache_folder("shared"));
    assert!(!m.declares_publisher_cache_folder("Other"));
    assert_eq!(m.loopback_rules.len(), 2);
    assert_eq!(m.loopback_rules[0].direction, Direction::Out);
    assert_eq!(m.loopback_rules[0].package_family_name.as_str(), "Fabrikam.Server_8tkjkmve8mrwr");
    assert_eq!(m.loopback_rules[1].direction, Direction::In);
    assert_eq!(m.loopback_rules[1].package_family_name.as_str(), "Fabrikam.Client_8tkjkmve8mrwr");

    assert_eq!(m.com_interfaces.len(), 1);
    let ci = &m.com_interfaces[0];
    assert_eq!(ci.proxy_stubs.len(), 1);
    assert_eq!(ci.proxy_stubs[0].id, guid("1b9f583a-3ce0-42ba-a565-9c2e130cf4d3"));
    assert_eq!(ci.proxy_stubs[0].path.as_str(), "lib/libecho-ps.so");
    assert_eq!(ci.proxy_stubs[0].display_name.as_deref(), Some("Echo proxy/stub"));
    assert_eq!(ci.type_libs.len(), 1);
    assert_eq!(ci.type_libs[0].versions[0].number, "1.0");
    assert_eq!(ci.type_libs[0].versions[0].path.as_str(), "lib/echo.tlb");
    assert_eq!(ci.interfaces.len(), 2);
    let (sync, asynch) = (&ci.interfaces[0], &ci.interfaces[1]);
    assert_eq!(sync.proxy_stub_clsid, Some(ci.proxy_stubs[0].id));
    assert!(!sync.use_universal_marshaler);
    assert_eq!(sync.asynchronous_interface, Some(asynch.id));
    assert!(asynch.use_universal_marshaler);
    assert_eq!(asynch.type_lib.as_ref().unwrap().id, ci.type_libs[0].id);
    assert_eq!(asynch.type_lib.as_ref().unwrap().version_number.as_deref(), Some("1.0"));
    assert_eq!(asynch.synchronous_interface, Some(sync.id));

    let v = &m.virtualization;
    assert!(v.registry_write_virtualization && v.file_system_write_virtualization);
    assert_eq!(v.excluded_keys, [r"HKEY_CURRENT_USER\Software\Contoso\Shared"]);
    assert_eq!(v.excluded_directories, [r"$(KnownFolder:LocalAppData)\Contoso\Shared"]);

    // FromStr agrees with parse
    assert_eq!(COMPLETE.parse::<Manifest>().unwrap(), m);
}

/// The complete example in docs/manifest.md is the fixture, byte for byte.
#[test]
fn documentation_example_is_the_fixture() {
    let start = DOC.find("<!-- complete-example -->").expect("marker in docs/manifest.md");
    let rest = &DOC[start..];
    let open = rest.find("```toml\n").unwrap() + "```toml\n".len();
    let close = rest[open..].find("```").unwrap();
    assert_eq!(&rest[open..open + close], COMPLETE, "docs/manifest.md example drifted");
}

/// Every key the parser accepts is documented.
#[test]
fn every_key_is_documented() {
    let keys = [
        "name",
        "publisher",
        "version",
        "architecture",
        "resource-id",
        "display-name",
        "publisher-display-name",
        "description",
        "logo",
        "general",
        "restricted",
        "device",
        "custom",
        "custom-capability-descriptor",
        "id",
        "executable",
        "arguments",
        "trust-level",
        "entry-point",
        "supports-multiple-instances",
        "supports-remote-systems",
        "max-message-size",
        "server-name",
        "tie-lifetime-to-caller",
        "parameter-group",
        "parameters",
        "return-results",
        "scope",
        "compat-mode",
        "exe-server",
        "launch-and-activation-permission",
        "class",
        "prog-id",
        "version-independent-prog-id",
        "auto-convert-to",
        "clsid",
        "current-version",
        "folders",
        "direction",
        "package-family-name",
        "proxy-stub",
        "path",
        "interface",
        "proxy-stub-clsid",
        "use-universal-marshaler",
        "type-lib",
        "synchronous-interface",
        "asynchronous-interface",
        "version-number",
        "number",
        "registry-write-virtualization",
        "file-system-write-virtualization",
        "excluded-keys",
        "excluded-directories",
    ];
    for k in keys {
        assert!(DOC.contains(&format!("`{k}`")), "docs/manifest.md does not document `{k}`");
    }
}

const MINIMAL: &str = r#"
[package]
name = "Contoso.Min"
publisher = "CN=Contoso"
version = "1.0.0.0"

[[application]]
id = "App"
executable = "app"
"#;

#[test]
fn minimal_manifest_gets_defaults() {
    let m = manifest::parse(MINIMAL).unwrap();
    assert_eq!(m.identity.architecture, ProcessorArchitecture::Neutral);
    assert_eq!(m.identity.resource_id, None);
    assert_eq!(
        m.identity.full_name().to_string(),
        format!("Contoso.Min_1.0.0.0_neutral__{}", m.identity.publisher_id())
    );
    assert_eq!(m.properties.display_name, "Contoso.Min");
    assert_eq!(m.properties.publisher_display_name, "Contoso");
    assert_eq!(m.properties.description, None);
    assert_eq!(m.properties.logo, None);
    assert!(m.capabilities.names().is_empty());
    assert!(m.capabilities.custom_capability_descriptors.is_empty());
    let app = &m.applications[0];
    assert_eq!(app.trust_level, TrustLevel::AppContainer);
    assert!(app.arguments.is_empty());
    assert!(app.app_services.is_empty() && app.full_trust_processes.is_empty());
    assert!(app.protocols.is_empty() && app.com_servers.is_empty());
    assert!(m.publisher_cache_folders.is_empty());
    assert!(m.loopback_rules.is_empty());
    assert!(m.com_interfaces.is_empty());
    assert!(m.virtualization.registry_write_virtualization);
    assert!(m.virtualization.file_system_write_virtualization);
    assert!(m.virtualization.excluded_keys.is_empty());
}

#[test]
fn publisher_display_name_defaults_to_the_common_name_or_the_whole_publisher() {
    let m =
        manifest::parse(&MINIMAL.replace("CN=Contoso", "O=Contoso Org, CN=\\\"Contoso, Ltd\\\""))
            .unwrap();
    assert_eq!(m.properties.publisher_display_name, "Contoso, Ltd");
    let m = manifest::parse(&MINIMAL.replace("CN=Contoso", "O=Contoso Org")).unwrap();
    assert_eq!(m.properties.publisher_display_name, "O=Contoso Org");
}

#[test]
fn defaults_of_extensions() {
    let text = format!(
        "{MINIMAL}trust-level = \"mediumIL\"\n\
         [[application.app-service]]\nname = \"svc\"\n\
         [[application.full-trust-process]]\n\
         [[application.protocol]]\nname = \"my-scheme\"\n\
         [[application.com-server]]\n\
         [capabilities]\nrestricted = [\"runFullTrust\"]\n"
    );
    let m = manifest::parse(&text).unwrap();
    let app = &m.applications[0];
    let s = &app.app_services[0];
    assert!(s.is_in_process() && !s.supports_multiple_instances && !s.supports_remote_systems);
    assert_eq!((s.max_message_size, s.server_name.as_deref()), (None, None));
    let f = &app.full_trust_processes[0];
    assert_eq!(f.executable, app.executable, "defaults to the application's executable");
    assert!(f.parameter_groups.is_empty() && !f.tie_lifetime_to_caller);
    let p = &app.protocols[0];
    assert_eq!(p.return_results, ReturnResults::None);
    assert!(!p.return_results.for_results() && p.return_results.plain_launch());
    assert!(ReturnResults::Always.for_results() && !ReturnResults::Always.plain_launch());
    let c = &app.com_servers[0];
    assert_eq!((c.scope, c.compat_mode), (ComScope::User, ComCompatMode::Modern));
    assert!(c.exe_servers.is_empty() && c.prog_ids.is_empty());
}

#[test]
fn error_display_names_file_line_column_key_value_and_rule() {
    let text = format!("{MINIMAL}\n[[application.app-service]]\nname = \"x\"\n");
    let err = manifest::parse(&text).unwrap_err();
    assert_eq!(
        err.to_string(),
        "appipc.toml:12:8: application[0].app-service[0].name: \"x\": must be 2 to 39 \
         characters: letters, digits, '.', '-', not starting with '.'"
    );
    assert_eq!(err.line(), Some(12));
    assert_eq!(err.location().unwrap().column, 8);
    assert_eq!(err.key(), Some("application[0].app-service[0].name"));
    assert!(matches!(err, ManifestError::Invalid { value: Some(ref v), .. } if v == "x"));
}

#[test]
fn syntax_errors_are_located() {
    let err = manifest::parse("[package]\nname = \n").unwrap_err();
    assert!(matches!(err, ManifestError::Syntax { .. }), "{err:?}");
    assert_eq!(err.line(), Some(2));
    assert!(err.to_string().starts_with("appipc.toml:2:8: TOML syntax: "), "{err}");
    let err = manifest::parse("[package]\nname = \"a\"\nname = \"b\"\n").unwrap_err();
    assert_eq!(err.line(), Some(3));
    assert!(err.rule().contains("duplicate key"), "{err}");
}
