//! Known answers for the identity and SID derivations.
//!
//! Every value in the `windows_*` tests was produced by Windows itself (or by a Microsoft
//! service or Microsoft's own tooling) and published; the comment above each names where.
//! "Get-AppxPackage output" means the text PowerShell's `Get-AppxPackage` printed on a real
//! machine, quoted in the named document.
//!
//! Values that no Windows source confirms are in the `self_consistency_*` and
//! `third_party_*` tests, and say so: they pin down what this crate does (so a change is
//! noticed) without claiming it is what Windows does.

use appipc_model::identity::{
    AppId, AppUserModelId, PackageFamilyName, PackageFullName, PackageName, PackageVersion,
    ProcessorArchitecture, Publisher, PublisherId, ResourceId,
};
use appipc_model::sid::{
    LEGACY_CAPABILITIES, Sid, appcontainer_sid, capability_group_sid, capability_sid,
    capability_sids, child_appcontainer_sid,
};

const MICROSOFT_CORPORATION: &str =
    "CN=Microsoft Corporation, O=Microsoft Corporation, L=Redmond, S=Washington, C=US";
const MICROSOFT_WINDOWS: &str =
    "CN=Microsoft Windows, O=Microsoft Corporation, L=Redmond, S=Washington, C=US";

fn publisher_id(publisher: &str) -> String {
    // Both entry points must agree, and the publisher must pass ST_Publisher.
    let validated: Publisher = publisher.parse().unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(validated.publisher_id(), PublisherId::from_publisher(publisher));
    PublisherId::from_publisher(publisher).to_string()
}

fn sha256_utf16le_hex(s: &str) -> String {
    use sha2::Digest;
    let mut h = sha2::Sha256::new();
    for u in s.encode_utf16() {
        h.update(u.to_le_bytes());
    }
    h.finalize().iter().map(|b| format!("{b:02X}")).collect()
}

// ---------------------------------------------------------------------------------------------
// Publisher -> publisher id
// ---------------------------------------------------------------------------------------------

#[test]
fn windows_publisher_id_microsoft_corporation() {
    // Rafael Rivera, "What's That Gobbledygook in my Package Family Name?" (2018),
    // https://withinrafael.com/2018/01/28/whats-that-gobbledygook-in-my-package-family-name
    // gives the intermediate SHA-256 of the UTF-16LE publisher and the result 8wekyb3d8bbwe.
    assert_eq!(
        sha256_utf16le_hex(MICROSOFT_CORPORATION),
        "471D3F2C6D42D7C7FACEEF1ADD20881817082D593D8B7B3E229B3617E4CD2A18"
    );
    assert_eq!(publisher_id(MICROSOFT_CORPORATION), "8wekyb3d8bbwe");
    // Microsoft's MSIX SDK test, microsoft/msix-packaging src/test/msixtest/api_manifestreader.cpp:
    // publisher MICROSOFT_CORPORATION, name SampleAppManifest -> SampleAppManifest_8wekyb3d8bbwe.
    let name: PackageName = "SampleAppManifest".parse().unwrap();
    assert_eq!(
        PackageFamilyName::from_publisher(&name, MICROSOFT_CORPORATION).as_str(),
        "SampleAppManifest_8wekyb3d8bbwe"
    );
}

#[test]
fn windows_publisher_id_microsoft_windows() {
    // Get-AppxPackage output for Microsoft.Win32WebViewHost in Microsoft's Office add-in docs,
    // OfficeDev/office-js-docs-pr docs/testing/debug-add-ins-using-devtools-edge-legacy.md:
    // Publisher CN=Microsoft Windows, … -> PublisherId cw5n1h2txyewy.
    assert_eq!(publisher_id(MICROSOFT_WINDOWS), "cw5n1h2txyewy");
}

#[test]
fn windows_publisher_id_store_publishers() {
    // Get-AppxPackage output for CanonicalGroupLimited.Ubuntu22.04LTS quoted in public notes
    // (Publisher CN=23596F84-…, PublisherId 79rhkp1fndgsc); the family name
    // CanonicalGroupLimited.UbuntuonWindows_79rhkp1fndgsc is also in Microsoft's WSL docs
    // (MicrosoftDocs/WSL, "Locate VHD file and disk path for your Linux distribution").
    assert_eq!(publisher_id("CN=23596F84-C3EA-4CD8-A7DF-550DCE37BCD0"), "79rhkp1fndgsc");
    // python/cpython PC/layout/support/appxmanifest.py sets the Store publisher
    // CN=4975D53F-…; Windows installs it as PythonSoftwareFoundation.Python.3.x_qbz5n2kfra8p0
    // (e.g. C:\Program Files\WindowsApps\PythonSoftwareFoundation.Python.3.12_3.12.2800.0_x64__qbz5n2kfra8p0
    // in published tracebacks).
    assert_eq!(publisher_id("CN=4975D53F-AA7E-49A5-8B49-EA4FDC1BB66B"), "qbz5n2kfra8p0");
    // Partner Center's own validation message, quoted in KalubaTech/pos_software
    // MSIX_PARTNER_CENTER_FIX.md: "Expected: CN=6C8EDE9F-…" and "Invalid package family name:
    // KalooTechnologies.DynamosPOS_fxkeb4dgdm144 Expected: KalooTechnologies.DynamosPOS_f2xb7xmhtr0x4",
    // the wrong one being the Flutter `msix` tool's default test publisher.
    assert_eq!(publisher_id("CN=6C8EDE9F-2E47-49E3-B93C-97CDD74A456A"), "f2xb7xmhtr0x4");
    assert_eq!(
        publisher_id("CN=Msix Testing, O=Msix Testing Corporation, S=Some-State, C=US"),
        "fxkeb4dgdm144"
    );
    // Partner Center "Product identity" values of the AetherForge.Spoken app, recorded in that
    // project's store-identity.md: Publisher CN=80415444-…, PFN AetherForge.Spoken_qrby07m9ype14.
    let name: PackageName = "AetherForge.Spoken".parse().unwrap();
    let publisher: Publisher = "CN=80415444-5392-4904-8AC7-7511A51DFC7C".parse().unwrap();
    assert_eq!(
        PackageFamilyName::from_identity(&name, &publisher).as_str(),
        "AetherForge.Spoken_qrby07m9ype14"
    );
}

#[test]
fn windows_publisher_id_with_email_and_test_publishers() {
    // MSIX Hero's signing subject and its family name MSIXHero_zxq1da1qqbeze (used throughout
    // marcinotorowski/msix-hero and in its author's post "Calculating hash part of MSIX Package
    // Family Name", marcinotorowski.com, 2021-12-19).
    assert_eq!(
        publisher_id(
            "E=marcin@otorowski.com, CN=Marcin Otorowski, O=Marcin Otorowski, S=zachodniopomorskie, C=PL"
        ),
        "zxq1da1qqbeze"
    );
    // Microsoft's MSIX SDK test (api_manifestreader.cpp, optional-package case):
    // CN=Microsoft Corporation2, … -> Demo.MyMainApp_4395hyxtvknyy.
    let name: PackageName = "Demo.MyMainApp".parse().unwrap();
    assert_eq!(
        PackageFamilyName::from_publisher(
            &name,
            "CN=Microsoft Corporation2, O=Microsoft Corporation2, L=Redmond2, S=Washington, C=US2"
        )
        .as_str(),
        "Demo.MyMainApp_4395hyxtvknyy"
    );
}

#[test]
fn third_party_non_ascii_publisher_ids() {
    // NOT confirmed as Windows output. From the test suite of the `package-family-name` crate
    // (russellbanks/package-family-name src/lib.rs, tests hydraulic_conveyor_15/16): Hydraulic's
    // Conveyor is an MSIX app whose certificate subject contains "Zürich"; the crate's author
    // maintains winget tooling and these match the family names published for Conveyor, but no
    // Windows-printed value was found. The two differ only in RDN order: the publisher is
    // hashed exactly as written.
    assert_eq!(
        publisher_id(
            "CN=Hydraulic Software AG, O=Hydraulic Software AG, L=Zürich, S=Zürich, C=CH, \
             SERIALNUMBER=CHE-312.597.948, OID.1.3.6.1.4.1.311.60.2.1.2=Zürich, \
             OID.1.3.6.1.4.1.311.60.2.1.3=CH, OID.2.5.4.15=Private Organization"
        ),
        "fg3qp2cw01ypp"
    );
    assert_eq!(
        publisher_id(
            "CN=Hydraulic Software AG, O=Hydraulic Software AG, L=Zürich, S=Zürich, C=CH, \
             SERIALNUMBER=CHE-312.597.948, OID.2.5.4.15=Private Organization, \
             OID.1.3.6.1.4.1.311.60.2.1.2=Zürich, OID.1.3.6.1.4.1.311.60.2.1.3=CH"
        ),
        "r94jb655n6kcp"
    );
}

#[test]
fn self_consistency_non_ascii_publishers() {
    // NOT Windows values: computed with the documented algorithm (UTF-16LE as written,
    // microsoft/msix-packaging AppxManifestObject.cpp ComputePublisherId does the same:
    // utf8_to_u16string, then SHA-256). They pin down that nothing is normalised or folded.
    // "ü" precomposed (U+00FC) and decomposed (u + U+0308) are different publishers.
    assert_eq!(publisher_id("CN=Z\u{fc}rich"), "k1qkv4f1qdrjy");
    assert_eq!(publisher_id("CN=Zu\u{308}rich"), "t77c0m53rpbfr");
    // Case matters.
    assert_eq!(publisher_id("CN=z\u{fc}rich"), "kz77cpmgrd2jr");
    // CJK, and a character outside the BMP (hashed as its surrogate pair).
    assert_eq!(publisher_id("CN=株式会社コントソ"), "awkv7c8qnswna");
    assert_eq!(publisher_id("CN=Contoso \u{1F600}"), "phxc596hrcacy");
    // The Rust crate's own example (russellbanks/package-family-name) — not a valid DN, so
    // only the raw derivation applies.
    assert_eq!(PublisherId::from_publisher("Publisher Software").as_str(), "zj75k085cmj1a");
}

// ---------------------------------------------------------------------------------------------
// Full names, family names, application ids
// ---------------------------------------------------------------------------------------------

#[test]
fn windows_full_names() {
    let cases = [
        // learn.microsoft.com package-identity-overview: the Photos app, empty resource id.
        ("Microsoft.Windows.Photos_2020.20090.1002.0_x64__8wekyb3d8bbwe", None),
        // Get-AppxPackage output, OfficeDev/office-js-docs-pr (see above): resource id "neutral".
        (
            "Microsoft.Win32WebViewHost_10.0.18362.449_neutral_neutral_cw5n1h2txyewy",
            Some("neutral"),
        ),
        // Microsoft's MSIX SDK test api_manifestreader.cpp: resource id NorthAmerica.
        ("SampleAppManifest_3.6.25071.0_x64_NorthAmerica_8wekyb3d8bbwe", Some("NorthAmerica")),
        // A bundle: Store bundle file named after its full name (resource id "~"), e.g. in
        // Resurrection2018/LTSC-Add-MicrosoftStore; package-identity-overview: "For bundles,
        // the ResourceId is always ~".
        ("Microsoft.WindowsStore_12107.1001.15.0_neutral_~_8wekyb3d8bbwe", Some("~")),
        // A version with major 0 (msix-hero's own package list).
        ("MSIXHero_0.7.1.0_neutral__zxq1da1qqbeze", None),
        // Python from the Store (see above).
        ("PythonSoftwareFoundation.Python.3.12_3.12.2800.0_x64__qbz5n2kfra8p0", None),
    ];
    for (text, resource) in cases {
        let full: PackageFullName = text.parse().unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(full.to_string(), text);
        assert_eq!(full.resource_id.as_ref().map(ResourceId::as_str), resource);
        assert_eq!(full.is_bundle(), resource == Some("~"));
    }
    let photos: PackageFullName =
        "Microsoft.Windows.Photos_2020.20090.1002.0_x64__8wekyb3d8bbwe".parse().unwrap();
    assert_eq!(photos.family_name().as_str(), "Microsoft.Windows.Photos_8wekyb3d8bbwe");
    assert_eq!(photos.architecture, ProcessorArchitecture::X64);
    assert_eq!(photos.version, PackageVersion([2020, 20090, 1002, 0]));
}

#[test]
fn windows_version_as_u64() {
    // microsoft/msix-packaging api_manifestreader.cpp: 3.6.25071.0 -> 844452342988800 and the
    // dependency MinVersion 14.0.0.0 -> 3940649673949184 (PACKAGE_VERSION.Version).
    let v: PackageVersion = "3.6.25071.0".parse().unwrap();
    assert_eq!(v.to_u64(), 844_452_342_988_800);
    assert_eq!(PackageVersion::from_u64(3_940_649_673_949_184), PackageVersion([14, 0, 0, 0]));
}

#[test]
fn windows_application_user_model_ids() {
    // microsoft/msix-packaging api_manifestreader.cpp: AUMID "SampleAppManifest_8wekyb3d8bbwe!Mca.App".
    let aumid: AppUserModelId = "SampleAppManifest_8wekyb3d8bbwe!Mca.App".parse().unwrap();
    assert_eq!(aumid.app_id.as_str(), "Mca.App");
    assert_eq!(aumid.to_string(), "SampleAppManifest_8wekyb3d8bbwe!Mca.App");
    // Real AUMIDs of inbox apps as the shell reports them (System.ParsingName, Start layout
    // XML, the BurntToast module's default AppId): application ids may be long, lower case, or
    // carry several dot-separated fields.
    for aumid in [
        "Microsoft.People_8wekyb3d8bbwe!x4c7a3b7dy2188y46d4ya362y19ac5a5805e5x",
        "Microsoft.Office.OneNote_8wekyb3d8bbwe!microsoft.onenoteim",
        "Microsoft.ScreenSketch_8wekyb3d8bbwe!App",
    ] {
        let parsed: AppUserModelId = aumid.parse().unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(parsed.to_string(), aumid);
    }
    assert!("App".parse::<AppId>().is_ok());
}

#[test]
fn windows_family_names_compare_ignoring_case() {
    // learn.microsoft.com package-identity-overview: PublisherId and family names compare
    // ordinal-case-insensitively ("ABCDEFABCDEFG == abcdefabcdefg"); CheckNetIsolation prints
    // family names in lower case (microsoft.windowsstore_8wekyb3d8bbwe).
    let a: PackageFamilyName = "Microsoft.WindowsStore_8wekyb3d8bbwe".parse().unwrap();
    let b: PackageFamilyName = "microsoft.windowsstore_8WEKYB3D8BBWE".parse().unwrap();
    assert!(a.eq_ignore_case(&b));
    assert!(a.publisher_id().eq_ignore_case(&b.publisher_id()));
}

// ---------------------------------------------------------------------------------------------
// App container SIDs
// ---------------------------------------------------------------------------------------------

#[test]
fn windows_appcontainer_sids_of_packages() {
    let cases = [
        // CheckNetIsolation LoopbackExempt output and firewall rules (AppPkgId) widely quoted;
        // e.g. "Name: microsoft.microsoftedge_8wekyb3d8bbwe / SID: S-1-15-2-3624051433-…".
        (
            "Microsoft.MicrosoftEdge_8wekyb3d8bbwe",
            "S-1-15-2-3624051433-2125758914-1423191267-1740899205-1073925389-3782572162-737981194",
        ),
        // CheckNetIsolation LoopbackExempt -s output "Name: microsoft.win32webviewhost_cw5n1h2txyewy"
        // (quoted in an OfficeDev/Office-Addin-Scripts issue); also hard-coded in a Windows binary.
        (
            "Microsoft.Win32WebViewHost_cw5n1h2txyewy",
            "S-1-15-2-1310292540-1029022339-4008023048-2190398717-53961996-4257829345-603366646",
        ),
        // CheckNetIsolation output "Name: microsoft.windowsstore_8wekyb3d8bbwe", and the SID
        // hard-coded in Windows' WinStoreAuth code.
        (
            "Microsoft.WindowsStore_8wekyb3d8bbwe",
            "S-1-15-2-1609473798-1231923017-684268153-4268514328-882773646-2760585773-1760938157",
        ),
        // CheckNetIsolation output (Name/SID pairs) in public loopback guides.
        (
            "microsoft.windowscommunicationsapps_8wekyb3d8bbwe",
            "S-1-15-2-2551677095-2355568638-4209445997-2436930744-3692183382-387691378-1866284433",
        ),
        (
            "microsoft.windows.authhost.a_8wekyb3d8bbwe",
            "S-1-15-2-2750798217-1343590035-1234819260-1030354384-3318145141-3720257911-3461195215",
        ),
        // Windows' own "BlockCortana" firewall rule: App=…\microsoft.windows.cortana_cw5n1h2txyewy\…
        // AppPkgId=S-1-15-2-1861897761-….
        (
            "Microsoft.Windows.Cortana_cw5n1h2txyewy",
            "S-1-15-2-1861897761-1695161497-2927542615-642690995-327840285-2659745135-2630312742",
        ),
        // DCOM event 10016 text: "running in the application container
        // Microsoft.Windows.ShellExperienceHost_10.0.19041.1023_neutral_neutral_cw5n1h2txyewy
        // SID (S-1-15-2-155514346-…)".
        (
            "Microsoft.Windows.ShellExperienceHost_cw5n1h2txyewy",
            "S-1-15-2-155514346-2573954481-755741238-1654018636-1233331829-3075935687-2861478708",
        ),
        // Hard-coded in Windows binaries (AAD broker checks) and CheckNetIsolation exemptions.
        (
            "Microsoft.AAD.BrokerPlugin_cw5n1h2txyewy",
            "S-1-15-2-1910091885-1573563583-1104941280-2418270861-3411158377-2822700936-2990310272",
        ),
        (
            "Microsoft.Windows.CloudExperienceHost_cw5n1h2txyewy",
            "S-1-15-2-2434737943-167758768-3180539153-984336765-1107280622-3591121930-2677285773",
        ),
        // Partner Center "Package SID" of AetherForge.Spoken (store-identity.md, see above).
        (
            "AetherForge.Spoken_qrby07m9ype14",
            "S-1-15-2-2736691906-1834129564-1175683458-3516803888-2464970110-1830282950-3729152391",
        ),
    ];
    for (pfn, sid) in cases {
        assert_eq!(appcontainer_sid(pfn).to_string(), sid, "{pfn}");
        // The same SID whatever the case of the name (CheckNetIsolation prints it lower-cased).
        assert_eq!(appcontainer_sid(&pfn.to_uppercase()).to_string(), sid);
        assert_eq!(sid.parse::<Sid>().unwrap(), appcontainer_sid(pfn));
    }
}

#[test]
fn windows_appcontainer_sids_of_plain_names() {
    // Doc tests of the `firehazard` crate (MaulingMonkey/firehazard), which call the real
    // DeriveAppContainerSidFromAppContainerName / CreateAppContainerProfile on Windows CI.
    assert_eq!(
        appcontainer_sid("firehazard appcontainer").to_string(),
        "S-1-15-2-1616271714-4138532714-4113762788-3985685701-3505203873-1678203538-1574651687"
    );
    assert_eq!(
        appcontainer_sid("firehazard create_app_container_profile doc example").to_string(),
        "S-1-15-2-382764940-2791294323-2722217349-2365663742-3629851628-1828535050-2293899398"
    );
    // James Forshaw, "Windows Security Internals" (No Starch, 2024), chapter 4, listing 4-20:
    // Get-NtSid -PackageName 'my_package', and its restricted child "CHILD".
    let parent = appcontainer_sid("my_package");
    assert_eq!(
        parent.to_string(),
        "S-1-15-2-4047469452-4024960472-3786564613-914846661-3775852572-3870680127-2256146868"
    );
    assert_eq!(
        child_appcontainer_sid(&parent, "CHILD").unwrap().to_string(),
        "S-1-15-2-4047469452-4024960472-3786564613-914846661-3775852572-3870680127-2256146868-\
         951732652-158068026-753518596-3921317197"
    );
}

#[test]
fn self_consistency_non_ascii_appcontainer_names() {
    // NOT Windows values: app container names are documented as [-_. A-Za-z0-9]
    // (CreateAppContainerProfile), and no Windows SID for a non-ASCII name was found. These pin
    // the one-code-unit-at-a-time lower-casing this crate uses.
    assert_eq!(
        appcontainer_sid("Ünïcode.App_8wekyb3d8bbwe"),
        appcontainer_sid("ünïcode.app_8wekyb3d8bbwe")
    );
    assert_eq!(
        appcontainer_sid("Ünïcode.App_8wekyb3d8bbwe").to_string(),
        "S-1-15-2-1481003265-2041239511-1243243518-4100734215-2835400875-3489798798-39917368"
    );
    // Σ lower-cases to σ everywhere (no final-sigma context).
    assert_eq!(
        appcontainer_sid("ΣΑΣ").to_string(),
        "S-1-15-2-3572735440-85746306-3206540881-1637906624-1306881791-1144037365-1516856527"
    );
    // İ (U+0130) has no one-character lower case: left as it is.
    assert_eq!(
        appcontainer_sid("\u{130}").to_string(),
        "S-1-15-2-3650506741-2369462726-1350326392-861470473-620514911-1073032853-1408965164"
    );
}

// ---------------------------------------------------------------------------------------------
// Capability SIDs
// ---------------------------------------------------------------------------------------------

#[test]
fn windows_named_capability_sids() {
    let cases = [
        // registryRead: in default registry ACLs of every Windows 10/11 install (icacls /
        // Get-Acl output), in Microsoft's microsoft/SandboxSecurityTools LaunchAppContainer/README.md,
        // and in Forshaw's "Windows Security Internals" listing 4-20.
        (
            "registryRead",
            "S-1-15-3-1024-1065365936-1281604716-3511738428-1654721687-432734479-3232135806-4053264122-3456934681",
        ),
        // lpacCom: microsoft/SandboxSecurityTools LaunchAppContainer/README.md, and the default
        // DCOM MachineAccessRestriction SDDL.
        (
            "lpacCom",
            "S-1-15-3-1024-2405443489-874036122-4286035555-1823921565-1746547431-2453885448-3625952902-991631256",
        ),
        // lpacAppExperience: SDDL strings in Windows binaries (input/manipulation events); the
        // rest: Chromium's chrome://sandbox list, chromium/chromium
        // chrome/browser/resources/sandbox_internals/sandbox_internals.ts (WELL_KNOWN_SIDS).
        (
            "lpacAppExperience",
            "S-1-15-3-1024-1502825166-1963708345-2616377461-2562897074-4192028372-3968301570-1997628692-1435953622",
        ),
        (
            "lpacCryptoServices",
            "S-1-15-3-1024-3203351429-2120443784-2872670797-1918958302-2829055647-4275794519-765664414-2751773334",
        ),
        (
            "lpacEnterprisePolicyChangeNotifications",
            "S-1-15-3-1024-126078593-3658686728-1984883306-821399696-3684079960-564038680-3414880098-3435825201",
        ),
        (
            "lpacIdentityServices",
            "S-1-15-3-1024-1788129303-2183208577-3999474272-3147359985-1757322193-3815756386-151582180-1888101193",
        ),
        (
            "lpacInstrumentation",
            "S-1-15-3-1024-3153509613-960666767-3724611135-2725662640-12138253-543910227-1950414635-4190290187",
        ),
        (
            "lpacMedia",
            "S-1-15-3-1024-1692970155-4054893335-185714091-3362601943-3526593181-1159816984-2199008581-497492991",
        ),
        // Chromium spells it lpacPnPNotifications, Windows lpacPnpNotifications: same SID.
        (
            "lpacPnpNotifications",
            "S-1-15-3-1024-220022770-701261984-3991292956-4208751020-2918293058-3396419331-1700932348-2078364891",
        ),
        (
            "lpacPnPNotifications",
            "S-1-15-3-1024-220022770-701261984-3991292956-4208751020-2918293058-3396419331-1700932348-2078364891",
        ),
        (
            "lpacServicesManagement",
            "S-1-15-3-1024-528118966-3876874398-709513571-1907873084-3598227634-3698730060-278077788-3990600205",
        ),
        (
            "lpacSessionManagement",
            "S-1-15-3-1024-1864111754-776273317-3666925027-2523908081-3792458206-3582472437-4114419977-1582884857",
        ),
        // firehazard doc test on Windows (DeriveCapabilitySidsFromName("activateAsUser")).
        (
            "activateAsUser",
            "S-1-15-3-1024-1619559953-3382903645-900470658-1831728285-1265525240-911141481-3610949621-2233473754",
        ),
    ];
    for (name, sid) in cases {
        assert_eq!(capability_sid(name).to_string(), sid, "{name}");
        // Any ASCII case gives the same SID (the name is upper-cased before hashing).
        assert_eq!(capability_sid(&name.to_lowercase()).to_string(), sid);
        assert_eq!(capability_sid(&name.to_uppercase()).to_string(), sid);
    }
}

#[test]
fn windows_capability_group_sids() {
    // firehazard doc test (MaulingMonkey/firehazard), real DeriveCapabilitySidsFromName:
    // internetClient -> one group SID S-1-5-32-<hash>, one capability SID S-1-15-3-1.
    let internet = capability_sids("internetClient");
    assert_eq!(internet.capability.to_string(), "S-1-15-3-1");
    assert_eq!(
        internet.group.to_string(),
        "S-1-5-32-2779705173-1925339129-2667939958-2414465498-3395756507-4015878651-158944808-788332705"
    );
    // activateAsUser -> group and capability SIDs share the hash.
    let activate = capability_sids("activateAsUser");
    assert_eq!(
        activate.group.to_string(),
        "S-1-5-32-1619559953-3382903645-900470658-1831728285-1265525240-911141481-3610949621-2233473754"
    );
    assert_eq!(activate.group.sub_authorities()[1..], activate.capability.sub_authorities()[2..]);
    // Forshaw, "Windows Security Internals", listing 4-20: Get-NtSid -CapabilityName
    // registryRead -CapabilityGroup.
    assert_eq!(
        capability_group_sid("registryRead").to_string(),
        "S-1-5-32-1065365936-1281604716-3511738428-1654721687-432734479-3232135806-4053264122-3456934681"
    );
}

#[test]
fn windows_legacy_capabilities() {
    // chromium/chromium base/win/sid_unittest.cc: KnownCapability gives S-1-15-3-1 … -12, and
    // NamedCapability checks on real Windows that DeriveCapabilitySidsFromName maps the names
    // written "InternetClient", "PicturesLibrary", … "Contacts" (initial capital) to them.
    let expected = [
        ("InternetClient", "S-1-15-3-1"),
        ("InternetClientServer", "S-1-15-3-2"),
        ("PrivateNetworkClientServer", "S-1-15-3-3"),
        ("PicturesLibrary", "S-1-15-3-4"),
        ("VideosLibrary", "S-1-15-3-5"),
        ("MusicLibrary", "S-1-15-3-6"),
        ("DocumentsLibrary", "S-1-15-3-7"),
        ("EnterpriseAuthentication", "S-1-15-3-8"),
        ("SharedUserCertificates", "S-1-15-3-9"),
        ("RemovableStorage", "S-1-15-3-10"),
        ("Appointments", "S-1-15-3-11"),
        ("Contacts", "S-1-15-3-12"),
    ];
    assert_eq!(LEGACY_CAPABILITIES.len(), expected.len());
    for ((name, sid), (legacy, rid)) in expected.iter().zip(LEGACY_CAPABILITIES) {
        assert!(name.eq_ignore_ascii_case(legacy));
        assert_eq!(format!("S-1-15-3-{rid}"), *sid);
        assert_eq!(capability_sid(name).to_string(), *sid);
        assert_eq!(capability_sid(legacy).to_string(), *sid);
        assert_eq!(capability_sid(&name.to_uppercase()).to_string(), *sid);
        // The group SID of a legacy capability is still hash based.
        assert!(capability_group_sid(name).is_capability_group());
    }
}

#[test]
fn chromium_computed_capability_sids() {
    // Chromium-defined capability names; the SIDs in chromium/chromium sandbox_internals.ts are
    // computed by Chromium's Sid::FromNamedCapability (base/win/sid.cc), whose unit test checks
    // that algorithm against the real DeriveCapabilitySidsFromName.
    assert_eq!(
        capability_sid("chromeInstallFiles").to_string(),
        "S-1-15-3-1024-3424233489-972189580-2057154623-747635277-1604371224-316187997-3786583170-1043257646"
    );
    assert_eq!(
        capability_sid("lpacChromeInstallFiles").to_string(),
        "S-1-15-3-1024-2302894289-466761758-1166120688-1039016420-2430351297-4240214049-4028510897-3317428798"
    );
    // chromium base/win/sid_unittest.cc also checks the empty name "" against Windows: it is
    // hashed like any other (SHA-256 of no bytes).
    assert_eq!(
        capability_sid("").to_string(),
        "S-1-15-3-1024-1120186595-337443992-3371498394-616132505-3829509671-1284741988-463050148-1438143096"
    );
}

#[test]
fn self_consistency_non_ascii_capability_names() {
    // NOT Windows values: no Windows SID for a non-ASCII capability name was found. Windows
    // upper-cases with RtlUpcaseUnicodeString (one UTF-16 unit to one); this crate uses
    // Unicode's one-to-one upper case, so ß stays ß and é becomes É.
    assert_eq!(capability_sid("straße"), capability_sid("STRAßE"));
    assert_eq!(
        capability_sid("Straße").to_string(),
        "S-1-15-3-1024-502180773-404338331-3860733984-2833189153-3478954739-1337079332-2673727635-2375272823"
    );
    assert_eq!(capability_sid("camera\u{e9}"), capability_sid("CAMERA\u{c9}"));
    assert_eq!(
        capability_sid("camera\u{e9}").to_string(),
        "S-1-15-3-1024-2477136267-2556216369-3937574917-375322502-2758286779-817051982-2232441678-858184741"
    );
    // A character outside the BMP is hashed unchanged.
    assert_eq!(
        capability_sid("\u{10428}x").to_string(),
        "S-1-15-3-1024-566740769-2672690781-4246147407-10628258-1529298716-3630411601-973353160-168304342"
    );
}

#[test]
fn windows_sid_string_forms() {
    // Well-known SIDs (chromium base/win/sid_unittest.cc, KnownSids): ALL APPLICATION PACKAGES
    // and ALL RESTRICTED APPLICATION PACKAGES.
    assert_eq!(Sid::all_application_packages().to_string(), "S-1-15-2-1");
    assert_eq!(Sid::all_restricted_application_packages().to_string(), "S-1-15-2-2");
    // Forshaw, table 4-4: the Internet Explorer capability has the fixed SID S-1-15-3-4096.
    assert_eq!(
        Sid::new(15, &[3, appipc_model::sid::INTERNET_EXPLORER_CAPABILITY_RID])
            .unwrap()
            .to_string(),
        "S-1-15-3-4096"
    );
    // ConvertSidToStringSid prints a 48-bit authority as 0x + 12 lower-case hex digits
    // ("0x%02hx" x 6 in the Windows formatting code) and accepts either case when parsing.
    let big: Sid = "S-1-0x00ABCDEF1234-7".parse().unwrap();
    assert_eq!(big.to_string(), "S-1-0x00abcdef1234-7");
    // An authority below 2^32 is printed in decimal, however it was written.
    let small: Sid = "S-1-0x0000ABCDEF12-7".parse().unwrap();
    assert_eq!(small.to_string(), "S-1-2882400018-7");
    assert_eq!(Sid::new(1 << 32, &[1]).unwrap().to_string(), "S-1-0x000100000000-1");
    assert_eq!(Sid::new((1 << 32) - 1, &[1]).unwrap().to_string(), "S-1-4294967295-1");
}
