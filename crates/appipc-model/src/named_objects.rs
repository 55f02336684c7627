//! Named objects (events, semaphores, file mappings, pipes): their names, namespaces, security
//! descriptors and the access check, as pure functions with Windows' rules and error codes.
//!
//! Namespaces are per user. An app container process lives in its package's namespace
//! `AppContainerNamedObjects\<package SID>`; an unconfined process (unpackaged or full trust) in
//! the user's session namespace.
//!
//! | name as written | from an app container | from an unconfined process |
//! |---|---|---|
//! | `LOCAL\x` or `x` | its package's namespace | the session namespace |
//! | `Session\x` or `Global\x` | the session namespace (open only, by ACL) | the session namespace |
//! | `AppContainerNamedObjects\<SID>\x` | that package's namespace (open only, by ACL; its own: as `LOCAL\x`) | that package's namespace (no grant needed) |
//!
//! Pipes are named `\\.\pipe\` followed by such a name (`\\.\pipe\LOCAL\x`).
//!
//! Namespaces are per user (there is no machine-wide namespace), so `Global\` names the user's
//! session namespace: a program written for Windows that shares `Global\x` between its
//! unconfined processes keeps working, and an app container still cannot create there.
//!
//! [`named_object_path`] is `GetAppContainerNamedObjectPath`: the prefix an opener uses to reach
//! a package's namespace.

use std::fmt;

use crate::sid::{self, Sid};

/// Windows error codes named-object calls report.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[repr(u32)]
pub enum Win32Error {
    /// `ERROR_FILE_NOT_FOUND`: no such object (or pipe).
    FileNotFound = 2,
    /// `ERROR_ACCESS_DENIED`.
    AccessDenied = 5,
    /// `ERROR_INVALID_HANDLE`: the name exists with another type.
    InvalidHandle = 6,
    /// `ERROR_INVALID_NAME`.
    InvalidName = 123,
    /// `ERROR_ALREADY_EXISTS` (create returned the existing object).
    AlreadyExists = 183,
    /// `ERROR_PIPE_BUSY`: every instance is in use.
    PipeBusy = 231,
    /// `ERROR_NOT_ENOUGH_QUOTA`: the caller holds as many handles (or pipe instances) as a
    /// session may.
    NotEnoughQuota = 1816,
}

impl Win32Error {
    /// The numeric value.
    pub fn code(self) -> u32 {
        self as u32
    }
}

/// A failure with its Windows code and an explanation.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{message} (error {})", .code.code())]
pub struct NamedObjectError {
    /// The Windows code.
    pub code: Win32Error,
    /// What was asked and why it was refused.
    pub message: String,
}

fn err(code: Win32Error, message: impl Into<String>) -> NamedObjectError {
    NamedObjectError { code, message: message.into() }
}

/// The namespaces of one user.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Namespace {
    /// The user's session namespace (unconfined processes).
    Session,
    /// A package's app container namespace.
    AppContainer(Sid),
}

impl fmt::Display for Namespace {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Namespace::Session => f.write_str("Session"),
            Namespace::AppContainer(sid) => write!(f, "AppContainerNamedObjects\\{sid}"),
        }
    }
}

/// `GetAppContainerNamedObjectPath` for a package: the prefix that names its namespace.
pub fn named_object_path(package_family_name: &str) -> String {
    format!("AppContainerNamedObjects\\{}", sid::appcontainer_sid(package_family_name))
}

/// Who asks, as far as names and access are concerned.
#[derive(Debug, Clone)]
pub struct Requester {
    /// The package SID of a confined caller; `None` for an unconfined one.
    pub appcontainer: Option<Sid>,
    /// The caller's capability SIDs (confined callers).
    pub capabilities: Vec<Sid>,
}

impl Requester {
    /// An unconfined process of the user.
    pub fn unconfined() -> Requester {
        Requester { appcontainer: None, capabilities: Vec::new() }
    }

    /// A confined process of a package with these capabilities.
    pub fn confined(package_family_name: &str, capabilities: &[String]) -> Requester {
        Requester {
            appcontainer: Some(sid::appcontainer_sid(package_family_name)),
            capabilities: capabilities.iter().map(|c| sid::capability_sid(c)).collect(),
        }
    }

    fn home(&self) -> Namespace {
        match &self.appcontainer {
            Some(s) => Namespace::AppContainer(s.clone()),
            None => Namespace::Session,
        }
    }
}

/// What kind of name.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NameKind {
    /// Events, semaphores, file mappings.
    Object,
    /// Pipes (`\\.\pipe\…`).
    Pipe,
}

/// A resolved name: its namespace and its key (case-insensitive).
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ObjectName {
    /// The namespace.
    pub namespace: Namespace,
    /// The name inside it, lower-cased (names compare case-insensitively).
    pub key: String,
    /// The name as written (for display).
    pub display: String,
}

/// Longest name (Windows: `MAX_PATH` for objects; 256 characters for a full pipe name).
pub const MAX_NAME: usize = 256;

/// The prefix of pipe names.
pub const PIPE_PREFIX: &str = r"\\.\pipe\";

/// Why a name is being resolved.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Intent {
    /// Creating it (or an instance of it).
    Create,
    /// Opening an existing one.
    Open,
}

/// Resolves a name as written by `who` (see the module table).
pub fn resolve(
    who: &Requester,
    raw: &str,
    kind: NameKind,
    intent: Intent,
) -> Result<ObjectName, NamedObjectError> {
    let invalid = |why: &str| err(Win32Error::InvalidName, format!("name {raw:?}: {why}"));
    let rest = match kind {
        NameKind::Pipe => {
            if raw.len() > MAX_NAME {
                return Err(invalid("a pipe name is at most 256 characters"));
            }
            let lower = raw.to_ascii_lowercase();
            if !lower.starts_with(&PIPE_PREFIX.to_ascii_lowercase()) {
                return Err(invalid(r"pipe names start with \\.\pipe\"));
            }
            &raw[PIPE_PREFIX.len()..]
        }
        NameKind::Object => {
            if raw.len() > MAX_NAME {
                return Err(invalid("a name is at most 256 characters"));
            }
            raw
        }
    };
    if rest.is_empty() || rest.chars().any(|c| c.is_control()) {
        return Err(invalid("empty, or control characters"));
    }
    let (namespace, name) = split_namespace(rest).map_err(|why| invalid(&why))?;
    if name.is_empty() {
        return Err(invalid("no name after the namespace"));
    }
    if kind == NameKind::Object && name.contains('\\') {
        return Err(invalid(r"an object name has no '\' after its namespace"));
    }
    let namespace = match namespace {
        Some(ns) => ns,
        None => who.home(),
    };
    if let Some(own) = &who.appcontainer {
        let home = Namespace::AppContainer(own.clone());
        if intent == Intent::Create && namespace != home {
            return Err(err(
                Win32Error::AccessDenied,
                format!(
                    r"an app container creates names only in its own namespace (LOCAL\…), not {raw:?}"
                ),
            ));
        }
    }
    Ok(ObjectName { namespace, key: name.to_lowercase(), display: raw.to_owned() })
}

/// Splits `Session\x` (or `Global\x`), `LOCAL\x`, `AppContainerNamedObjects\<SID>\x` or a plain `x`.
fn split_namespace(s: &str) -> Result<(Option<Namespace>, &str), String> {
    let (first, after) = match s.split_once('\\') {
        Some(x) => x,
        None => return Ok((None, s)),
    };
    if first.eq_ignore_ascii_case("LOCAL") {
        return Ok((None, after));
    }
    if first.eq_ignore_ascii_case("Session") || first.eq_ignore_ascii_case("Global") {
        return Ok((Some(Namespace::Session), after));
    }
    if first.eq_ignore_ascii_case("AppContainerNamedObjects") {
        let (sid_text, name) =
            after.split_once('\\').ok_or("AppContainerNamedObjects\\<SID>\\<name> expected")?;
        let sid: Sid = sid_text.parse().map_err(|e| format!("{e}"))?;
        if !sid.is_appcontainer() {
            return Err(format!("{sid} is not an app container SID"));
        }
        return Ok((Some(Namespace::AppContainer(sid)), name));
    }
    // Any other backslash: part of the name (pipes allow it; objects are refused by the caller).
    Ok((None, s))
}

/// `GENERIC_READ`.
pub const GENERIC_READ: u32 = 0x8000_0000;
/// `GENERIC_WRITE`.
pub const GENERIC_WRITE: u32 = 0x4000_0000;
/// `GENERIC_EXECUTE`.
pub const GENERIC_EXECUTE: u32 = 0x2000_0000;
/// `GENERIC_ALL`.
pub const GENERIC_ALL: u32 = 0x1000_0000;
/// `SYNCHRONIZE` (wait on an event or semaphore).
pub const SYNCHRONIZE: u32 = 0x0010_0000;
/// `EVENT_MODIFY_STATE` / `SEMAPHORE_MODIFY_STATE`.
pub const MODIFY_STATE: u32 = 0x0002;
/// `FILE_MAP_WRITE`.
pub const FILE_MAP_WRITE: u32 = 0x0002;
/// `FILE_MAP_READ`.
pub const FILE_MAP_READ: u32 = 0x0004;
/// `FILE_MAP_ALL_ACCESS`.
pub const FILE_MAP_ALL_ACCESS: u32 = 0x000F_001F;
/// `FILE_READ_DATA` (pipes: read).
pub const FILE_READ_DATA: u32 = 0x0001;
/// `FILE_WRITE_DATA` (pipes: write).
pub const FILE_WRITE_DATA: u32 = 0x0002;
/// `FILE_CREATE_PIPE_INSTANCE`.
pub const FILE_CREATE_PIPE_INSTANCE: u32 = 0x0004;
/// `STANDARD_RIGHTS_REQUIRED` (delete, read control, write DAC, write owner).
pub const STANDARD_RIGHTS_REQUIRED: u32 = 0x000F_0000;

/// The object types and how generic rights map onto them (`GENERIC_MAPPING`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ObjectType {
    /// Event.
    Event,
    /// Semaphore.
    Semaphore,
    /// File mapping (shared memory).
    FileMapping,
    /// Named pipe.
    Pipe,
}

impl ObjectType {
    /// Maps generic rights to this type's specific rights.
    pub fn map_generic(self, mask: u32) -> u32 {
        let (read, write, execute, all) = match self {
            ObjectType::Event | ObjectType::Semaphore => {
                (0x0002_0001, 0x0002_0002, 0x0010_0000, 0x001F_0003)
            }
            ObjectType::FileMapping => (
                FILE_MAP_READ | 0x0002_0000,
                FILE_MAP_WRITE | 0x0002_0000,
                0x0002_0020,
                FILE_MAP_ALL_ACCESS,
            ),
            ObjectType::Pipe => (0x0012_0089, 0x0012_0116, 0x0012_00A0, 0x001F_01FF),
        };
        let mut out = mask & !(GENERIC_READ | GENERIC_WRITE | GENERIC_EXECUTE | GENERIC_ALL);
        if mask & GENERIC_READ != 0 {
            out |= read;
        }
        if mask & GENERIC_WRITE != 0 {
            out |= write;
        }
        if mask & GENERIC_EXECUTE != 0 {
            out |= execute;
        }
        if mask & GENERIC_ALL != 0 {
            out |= all;
        }
        out
    }
}

/// One access control entry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Ace {
    /// Allow or deny.
    pub allow: bool,
    /// Whom.
    pub sid: Sid,
    /// Which rights (generic rights allowed; mapped at check time).
    pub mask: u32,
}

/// A security descriptor: its DACL (a list of ACEs; deny entries first, as Windows orders
/// them canonically). `None` as a whole means the creator's default.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct SecurityDescriptor {
    /// The entries, in order.
    pub dacl: Vec<Ace>,
}

/// SDDL aliases appipc understands, and its two extensions: `PFN:<package family name>` for
/// the package's SID and `CAP:<capability name>` for the capability's SID.
fn alias(s: &str) -> Result<Option<Sid>, String> {
    if let Some(pfn) = s.strip_prefix("PFN:") {
        return pfn
            .parse::<crate::identity::PackageFamilyName>()
            .map(|p| Some(sid::appcontainer_sid(p.as_str())))
            .map_err(|e| format!("trustee {s:?}: {e}"));
    }
    if let Some(cap) = s.strip_prefix("CAP:") {
        if cap.is_empty() || !cap.chars().all(|c| c.is_ascii_alphanumeric() || "._-".contains(c)) {
            return Err(format!("trustee {s:?}: not a capability name"));
        }
        return Ok(Some(sid::capability_sid(cap)));
    }
    Ok(match s {
        "AC" => Some(Sid::all_application_packages()),
        "WD" => Sid::new(1, &[0]),
        "AU" => Sid::new(5, &[11]),
        "SY" => Sid::new(5, &[18]),
        "BA" => Sid::new(5, &[32, 544]),
        _ => None,
    })
}

fn sddl_rights(s: &str) -> Result<u32, String> {
    if let Some(hex) = s.strip_prefix("0x").or_else(|| s.strip_prefix("0X")) {
        return u32::from_str_radix(hex, 16).map_err(|_| format!("bad rights {s:?}"));
    }
    if !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit()) {
        return s.parse().map_err(|_| format!("bad rights {s:?}"));
    }
    let mut mask = 0;
    let bytes = s.as_bytes();
    if !bytes.len().is_multiple_of(2) {
        return Err(format!("bad rights {s:?}: two-letter codes or a hex number"));
    }
    for code in bytes.chunks(2) {
        mask |= match code {
            b"GA" => GENERIC_ALL,
            b"GR" => GENERIC_READ,
            b"GW" => GENERIC_WRITE,
            b"GX" => GENERIC_EXECUTE,
            b"SD" => 0x0001_0000,
            b"RC" => 0x0002_0000,
            b"WD" => 0x0004_0000,
            b"WO" => 0x0008_0000,
            b"FA" => 0x001F_01FF,
            b"FR" => 0x0012_0089,
            b"FW" => 0x0012_0116,
            b"FX" => 0x0012_00A0,
            b"CC" => 0x0001,
            b"DC" => 0x0002,
            b"LC" => 0x0004,
            _ => return Err(format!("unknown right {:?} in {s:?}", String::from_utf8_lossy(code))),
        };
    }
    Ok(mask)
}

impl SecurityDescriptor {
    /// Allows `mask` to `sid`.
    pub fn allow(mut self, sid: Sid, mask: u32) -> SecurityDescriptor {
        self.dacl.push(Ace { allow: true, sid, mask });
        self
    }

    /// Parses the DACL part of SDDL: `D:(A;;GA;;;AC)(A;;0x1f0003;;;S-1-15-2-…)`, with allow
    /// (`A`) and deny (`D`) entries, rights as two-letter codes or a number, trustees as SID
    /// strings or the aliases `AC`, `WD`, `AU`, `SY`, `BA`. Owner, group, flags and SACL are
    /// not supported (and refused).
    pub fn from_sddl(text: &str) -> Result<SecurityDescriptor, String> {
        let t = text.trim();
        let body = t
            .strip_prefix("D:")
            .ok_or_else(|| format!("{text:?}: only a DACL (\"D:…\") is supported"))?;
        let mut body = body.trim_start_matches(|c: char| c.is_ascii_alphabetic() && c != '(');
        let mut dacl = Vec::new();
        while !body.is_empty() {
            let inner = body
                .strip_prefix('(')
                .ok_or_else(|| format!("{text:?}: expected '(' at {body:?}"))?;
            let (ace, after) =
                inner.split_once(')').ok_or_else(|| format!("{text:?}: unclosed '('"))?;
            let f: Vec<&str> = ace.split(';').collect();
            if f.len() < 6 {
                return Err(format!("{text:?}: an ACE has six fields: ({ace})"));
            }
            let allow = match f[0] {
                "A" => true,
                "D" => false,
                other => return Err(format!("{text:?}: ACE type {other:?} (only A and D)")),
            };
            let mask = sddl_rights(f[2])?;
            let sid = match alias(f[5])? {
                Some(sid) => sid,
                None => f[5].parse::<Sid>().map_err(|e| format!("{text:?}: trustee: {e}"))?,
            };
            dacl.push(Ace { allow, sid, mask });
            body = after;
        }
        // Canonical order: deny entries before allow entries.
        dacl.sort_by_key(|a| a.allow);
        Ok(SecurityDescriptor { dacl })
    }

    /// The SDDL text of this descriptor.
    pub fn to_sddl(&self) -> String {
        let mut s = String::from("D:");
        for a in &self.dacl {
            let who = if a.sid == Sid::all_application_packages() {
                "AC".to_owned()
            } else {
                a.sid.to_string()
            };
            s.push_str(&format!("({};;0x{:x};;;{who})", if a.allow { "A" } else { "D" }, a.mask));
        }
        s
    }
}

/// The access check for opening (or creating an instance of) an object in `namespace`
/// protected by `sd`, asking for `desired` rights of `ty`.
///
/// * An unconfined process of the user is granted what it asks (its user rights suffice;
///   namespaces are per user).
/// * An app container is granted only rights that ACEs for its package SID, one of its
///   capability SIDs or `ALL APPLICATION PACKAGES` allow, none denied.
pub fn check_access(
    who: &Requester,
    sd: &SecurityDescriptor,
    ty: ObjectType,
    desired: u32,
) -> Result<u32, NamedObjectError> {
    let desired = ty.map_generic(desired);
    let Some(pkg) = &who.appcontainer else { return Ok(desired) };
    let matches =
        |s: &Sid| s == pkg || *s == Sid::all_application_packages() || who.capabilities.contains(s);
    let mut granted = 0u32;
    for ace in &sd.dacl {
        if !matches(&ace.sid) {
            continue;
        }
        let mask = ty.map_generic(ace.mask);
        if ace.allow {
            granted |= mask;
        } else if mask & desired != 0 {
            return Err(err(
                Win32Error::AccessDenied,
                format!("an entry denies {:#x} to {}", mask & desired, ace.sid),
            ));
        }
    }
    if granted & desired == desired {
        Ok(desired)
    } else {
        Err(err(
            Win32Error::AccessDenied,
            format!(
                "the security descriptor {} grants this app container {granted:#x}, {desired:#x} was asked",
                sd.to_sddl()
            ),
        ))
    }
}

/// The descriptor an object gets when its creator gives none: full access for the creator's
/// app container (so its package's processes share it), nothing for other containers.
pub fn default_descriptor(creator: &Requester) -> SecurityDescriptor {
    match &creator.appcontainer {
        Some(sid) => SecurityDescriptor::default().allow(sid.clone(), GENERIC_ALL),
        None => SecurityDescriptor::default(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const A: &str = "Contoso.A_cvnpggrrsm18p";
    const B: &str = "Fabrikam.B_8tkjkmve8mrwr";

    fn a() -> Requester {
        Requester::confined(A, &[])
    }

    #[test]
    fn local_names_land_in_the_callers_namespace() {
        let n = resolve(&a(), r"LOCAL\buf", NameKind::Object, Intent::Create).unwrap();
        assert_eq!(n.namespace, Namespace::AppContainer(sid::appcontainer_sid(A)));
        assert_eq!(n.key, "buf");
        let plain = resolve(&a(), "BUF", NameKind::Object, Intent::Open).unwrap();
        assert_eq!(plain.namespace, n.namespace);
        assert_eq!(plain.key, n.key, "case-insensitive");
        let u = resolve(&Requester::unconfined(), r"LOCAL\buf", NameKind::Object, Intent::Create)
            .unwrap();
        assert_eq!(u.namespace, Namespace::Session);
    }

    #[test]
    fn containers_create_only_at_home_and_qualify_to_open_elsewhere() {
        let e = resolve(&a(), r"Session\x", NameKind::Object, Intent::Create).unwrap_err();
        assert_eq!(e.code, Win32Error::AccessDenied);
        let e = resolve(&a(), r"Global\x", NameKind::Object, Intent::Create).unwrap_err();
        assert_eq!(e.code, Win32Error::AccessDenied);
        let g = resolve(&a(), r"Global\x", NameKind::Object, Intent::Open).unwrap();
        assert_eq!(g.namespace, Namespace::Session);
        let g = resolve(&Requester::unconfined(), r"global\x", NameKind::Object, Intent::Create)
            .unwrap();
        assert_eq!((g.namespace, g.key.as_str()), (Namespace::Session, "x"));
        let other = format!(r"{}\x", named_object_path(B));
        let e = resolve(&a(), &other, NameKind::Object, Intent::Create).unwrap_err();
        assert_eq!(e.code, Win32Error::AccessDenied);
        let n = resolve(&a(), &other, NameKind::Object, Intent::Open).unwrap();
        assert_eq!(n.namespace, Namespace::AppContainer(sid::appcontainer_sid(B)));
        // An unconfined process reaches any namespace by qualified name.
        let n = resolve(&Requester::unconfined(), &other, NameKind::Object, Intent::Open).unwrap();
        assert_eq!(n.namespace, Namespace::AppContainer(sid::appcontainer_sid(B)));
    }

    #[test]
    fn named_object_path_matches_windows_form() {
        assert_eq!(
            named_object_path("Microsoft.MicrosoftEdge_8wekyb3d8bbwe"),
            r"AppContainerNamedObjects\S-1-15-2-3624051433-2125758914-1423191267-1740899205-1073925389-3782572162-737981194"
        );
    }

    #[test]
    fn invalid_names() {
        for (raw, kind) in [
            ("", NameKind::Object),
            (r"LOCAL\", NameKind::Object),
            (r"a\b", NameKind::Object),
            ("x", NameKind::Pipe),
            (r"AppContainerNamedObjects\S-1-5-32-544\x", NameKind::Object),
        ] {
            assert_eq!(
                resolve(&a(), raw, kind, Intent::Open).unwrap_err().code,
                Win32Error::InvalidName,
                "{raw}"
            );
        }
        let long = format!(r"\\.\pipe\LOCAL\{}", "x".repeat(260));
        assert_eq!(
            resolve(&a(), &long, NameKind::Pipe, Intent::Create).unwrap_err().code,
            Win32Error::InvalidName
        );
        let p = resolve(&a(), r"\\.\PIPE\LOCAL\my\pipe", NameKind::Pipe, Intent::Create).unwrap();
        assert_eq!(p.key, r"my\pipe");
    }

    #[test]
    fn sddl_subset() {
        let sd = SecurityDescriptor::from_sddl(
            "D:(A;;GA;;;AC)(D;;GW;;;S-1-15-3-1)(A;;0x1f0003;;;S-1-15-2-1)",
        )
        .unwrap();
        assert_eq!(sd.dacl.len(), 3);
        assert!(!sd.dacl[0].allow, "deny entries first");
        assert_eq!(sd.dacl[1].sid, Sid::all_application_packages());
        assert_eq!(sd.dacl[1].mask, GENERIC_ALL);
        assert!(SecurityDescriptor::from_sddl("O:BAD:(A;;GA;;;AC)").is_err());
        assert!(SecurityDescriptor::from_sddl("D:(X;;GA;;;AC)").is_err());
        assert!(SecurityDescriptor::from_sddl("D:(A;;ZZ;;;AC)").is_err());
        assert!(SecurityDescriptor::from_sddl("D:(A;;GA;;;NOPE)").is_err());
        let round = SecurityDescriptor::from_sddl(&sd.to_sddl()).unwrap();
        assert_eq!(round, sd);
        // appipc's trustee extensions: a package by family name, a capability by name.
        let ext = SecurityDescriptor::from_sddl(&format!(
            "D:(A;;GR;;;PFN:{B})(A;;GR;;;CAP:internetClient)"
        ))
        .unwrap();
        assert_eq!(ext.dacl[0].sid, sid::appcontainer_sid(B));
        assert_eq!(ext.dacl[1].sid.to_string(), "S-1-15-3-1");
        let e = SecurityDescriptor::from_sddl("D:(A;;GR;;;PFN:not a pfn)").unwrap_err();
        assert!(e.contains("PFN:not a pfn"), "{e}");
        let e = SecurityDescriptor::from_sddl("D:(A;;GR;;;CAP:)").unwrap_err();
        assert!(e.contains("not a capability name"), "{e}");
        let custom = "D:(A;;GR;;;CAP:Contoso.custom_8wekyb3d8bbwe)";
        assert!(SecurityDescriptor::from_sddl(custom).is_ok(), "custom capabilities by name");
    }

    #[test]
    fn access_check_by_package_capability_and_all_packages() {
        let pkg_b = sid::appcontainer_sid(B);
        let b = Requester::confined(B, &["internetClient".to_owned()]);
        let none = default_descriptor(&a());
        assert_eq!(
            check_access(&b, &none, ObjectType::Event, SYNCHRONIZE).unwrap_err().code,
            Win32Error::AccessDenied
        );
        assert!(check_access(&a(), &none, ObjectType::Event, GENERIC_ALL).is_ok(), "same package");
        let for_b = none.clone().allow(pkg_b, FILE_MAP_READ);
        assert!(check_access(&b, &for_b, ObjectType::FileMapping, FILE_MAP_READ).is_ok());
        assert_eq!(
            check_access(&b, &for_b, ObjectType::FileMapping, FILE_MAP_WRITE).unwrap_err().code,
            Win32Error::AccessDenied,
            "read-only grant"
        );
        let by_cap = SecurityDescriptor::default()
            .allow(sid::capability_sid("internetClient"), GENERIC_READ);
        assert!(check_access(&b, &by_cap, ObjectType::FileMapping, FILE_MAP_READ).is_ok());
        let all = SecurityDescriptor::from_sddl("D:(A;;GA;;;AC)").unwrap();
        assert!(check_access(&b, &all, ObjectType::Pipe, FILE_READ_DATA | FILE_WRITE_DATA).is_ok());
        let denied = SecurityDescriptor::from_sddl("D:(A;;GA;;;AC)(D;;GW;;;AC)").unwrap();
        assert!(check_access(&b, &denied, ObjectType::FileMapping, FILE_MAP_WRITE).is_err());
        // Unconfined processes of the user need no entry.
        assert!(
            check_access(&Requester::unconfined(), &none, ObjectType::Event, GENERIC_ALL).is_ok()
        );
    }
}
