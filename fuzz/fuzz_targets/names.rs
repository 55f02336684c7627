//! Every name the broker or the manifest parses from client or package text, on the same
//! input string: package names, resource ids, publishers (distinguished names), publisher ids,
//! versions, architectures, package family and full names, application ids, AUMIDs (the
//! `launch` target), SIDs, GUIDs (manifest and `ValueSet`), package paths, app service and
//! protocol names, custom capability names, publisher cache folder names, message sizes,
//! full-trust parameter groups (command lines), and named-object and pipe names resolved for
//! an unpackaged caller and an app container; and the escaping of client text for the
//! decision log and the CLI (`appipc_wire::text::printable`).
//!
//! Properties: a parsed value prints as the input (or, where parsing normalises — case of an
//! architecture or a GUID, a SID's authority — prints to text that parses to the same value
//! and prints the same); derived parts (a family name's name and publisher id, a full name's
//! family) agree; pipe names ignore ASCII case, object names keep their case (the key is the
//! name as written); a command line's arguments, quoted for `CommandLineToArgvW` and joined,
//! split back into the same arguments; escaped text has no unsafe character left and is the
//! input itself when the input had none.
#![no_main]

use std::fmt::Display;
use std::str::FromStr;
use std::sync::LazyLock;

use appipc_model::identity::{
    AppId, AppUserModelId, PackageFamilyName, PackageFullName, PackageName, PackageVersion,
    ProcessorArchitecture, Publisher, PublisherId, ResourceId,
};
use appipc_model::manifest::{
    AppServiceName, CustomCapabilityName, Guid, MAX_MESSAGE_SIZE, MIN_MESSAGE_SIZE, PackagePath,
    ProtocolName, check_publisher_cache_folder_name, parse_message_size, split_parameters,
};
use appipc_model::named_objects::{NameKind, resolve};
use appipc_model::principal::Principal;
use appipc_model::sid::{self, Sid};
use appipc_wire::caller::TrustLevel;
use libfuzzer_sys::fuzz_target;

/// An unpackaged caller and an app container, built once (their SIDs are hashes).
static CALLERS: LazyLock<[Principal; 2]> = LazyLock::new(|| {
    let container = Principal::packaged(
        1000,
        "Contoso.A_cvnpggrrsm18p".parse().expect("valid family name"),
        "App".parse().expect("valid app id"),
        TrustLevel::AppContainer,
        vec!["internetClient".into()],
    );
    [Principal::unpackaged(1000), container]
});

/// An argument quoted as `CommandLineToArgvW` reads it back: in double quotes, a quote after
/// n backslashes written as 2n+1 backslashes and the quote, n backslashes at the end as 2n.
fn quote_argument(a: &str) -> String {
    let mut out = String::from("\"");
    let mut backslashes = 0;
    for c in a.chars() {
        match c {
            '\\' => backslashes += 1,
            '"' => {
                out.extend(std::iter::repeat_n('\\', 2 * backslashes + 1));
                out.push('"');
                backslashes = 0;
            }
            c => {
                out.extend(std::iter::repeat_n('\\', backslashes));
                out.push(c);
                backslashes = 0;
            }
        }
    }
    out.extend(std::iter::repeat_n('\\', 2 * backslashes));
    out.push('"');
    out
}

/// Parses `s`; if it parses, its printed form must parse to the same value and print the same.
/// Returns the printed form.
fn stable<T>(s: &str) -> Option<String>
where
    T: FromStr + Display + PartialEq + std::fmt::Debug,
{
    let v: T = s.parse().ok()?;
    let printed = v.to_string();
    let again: T = printed.parse().ok().expect("the printed form parses");
    assert_eq!(again, v);
    assert_eq!(again.to_string(), printed);
    Some(printed)
}

/// [`stable`], and the printed form is the input.
fn exact<T>(s: &str) -> Option<T>
where
    T: FromStr + Display + PartialEq + std::fmt::Debug,
{
    let printed = stable::<T>(s)?;
    assert_eq!(printed, s);
    s.parse().ok()
}

fuzz_target!(|data: &[u8]| {
    let Ok(s) = std::str::from_utf8(data) else { return };

    exact::<PackageName>(s);
    exact::<ResourceId>(s);
    exact::<AppId>(s);
    exact::<PackageVersion>(s);
    if let Some(p) = exact::<Publisher>(s) {
        let _ = (p.publisher_id(), p.is_unsigned());
    }
    exact::<PublisherId>(s);
    if let Some(a) = stable::<ProcessorArchitecture>(s) {
        assert_eq!(a, s.to_ascii_lowercase());
    }
    if let Some(pfn) = exact::<PackageFamilyName>(s) {
        assert_eq!(PackageFamilyName::new(&pfn.name(), &pfn.publisher_id()), pfn);
        let _ = sid::appcontainer_sid(pfn.as_str());
    }
    if let Some(printed) = stable::<PackageFullName>(s) {
        // Only the architecture's case is normalised.
        assert!(printed.eq_ignore_ascii_case(s), "{printed} / {s}");
        let full: PackageFullName = s.parse().expect("parsed once");
        assert!(s.starts_with(full.name.as_str()) && s.ends_with(full.publisher_id.as_str()));
    }
    if let Some(aumid) = exact::<AppUserModelId>(s) {
        assert!(s.starts_with(aumid.family_name.as_str()));
    }
    if stable::<Sid>(s).is_some() {
        let sid: Sid = s.parse().expect("parsed once");
        let _ = (sid.is_appcontainer(), sid.is_capability(), sid.is_capability_group());
        if sid.is_appcontainer() {
            let _ = sid::child_appcontainer_sid(&sid, s);
        }
    }
    if let Some(g) = stable::<Guid>(s) {
        assert_eq!(g, s.to_ascii_lowercase());
    }
    if let Ok(g) = s.parse::<appipc_wire::Guid>() {
        assert_eq!(g.to_string().parse::<appipc_wire::Guid>().ok(), Some(g));
    }
    exact::<PackagePath>(s);
    exact::<AppServiceName>(s);
    exact::<ProtocolName>(s);
    if let Some(c) = exact::<CustomCapabilityName>(s) {
        assert!(s.ends_with(c.owner_publisher_id().as_str()));
    }
    let _ = check_publisher_cache_folder_name(s);
    if let Ok(n) = parse_message_size(s) {
        assert!((MIN_MESSAGE_SIZE..=MAX_MESSAGE_SIZE).contains(&n));
    }
    let _ = sid::is_valid_appcontainer_name(s);

    // A full-trust parameter group's command line: its arguments, each quoted for
    // CommandLineToArgvW, split back into the same arguments.
    let args = split_parameters(s);
    let quoted: Vec<String> = args.iter().map(|a| quote_argument(a)).collect();
    assert_eq!(split_parameters(&quoted.join(" ")), args, "{quoted:?}");

    // Client text as the decision log and the CLI show it: nothing unsafe survives, and text
    // with nothing unsafe is shown as it is.
    let shown = appipc_wire::text::printable(s);
    assert!(!shown.chars().any(appipc_wire::text::is_unsafe), "{shown:?}");
    assert_eq!(
        matches!(shown, std::borrow::Cow::Borrowed(_)),
        !s.chars().any(appipc_wire::text::is_unsafe)
    );

    let upper = s.to_ascii_uppercase();
    for who in CALLERS.iter() {
        // Objects: case-sensitive, keywords included; the key is the name as written.
        if let Ok(n) = resolve(who, s, NameKind::Object) {
            assert_eq!(n.display, s);
            assert!(s.ends_with(n.key.as_str()), "{:?} is not the end of {s:?}", n.key);
        }
        // Pipes: ASCII case is ignored.
        let Ok(n) = resolve(who, s, NameKind::Pipe) else {
            assert!(resolve(who, &upper, NameKind::Pipe).is_err(), "{upper:?} resolves, {s:?} not");
            continue;
        };
        assert_eq!(n.display, s);
        assert_eq!(n.key, n.key.to_lowercase());
        let u = resolve(who, &upper, NameKind::Pipe).expect("pipe names ignore ASCII case");
        assert_eq!((&u.namespace, &u.key), (&n.namespace, &n.key));
    }
});
