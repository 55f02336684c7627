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

use crate::principal::Principal;
use crate::sid::{self, Sid};

pub use appipc_wire::status::Win32Error;

/// A failure with its Windows code and an explanation.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{message} (error {})", .code.value())]
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

fn home(who: &Principal) -> Namespace {
    match who.appcontainer_sid() {
        Some(s) => Namespace::AppContainer(s.clone()),
        None => Namespace::Session,
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

/// Resolves a name as written by `who` (see the module table). Whether `who` may create or
/// open there is the policy's decision (`policy::decide`), not this function's.
pub fn resolve(who: &Principal, raw: &str, kind: NameKind) -> Result<ObjectName, NamedObjectError> {
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
        None => home(who),
    };
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

impl Ace {
    /// The entry in SDDL: `(A;;0x4;;;S-1-15-2-…)`.
    pub fn to_sddl(&self) -> String {
        let who = if self.sid == Sid::all_application_packages() {
            "AC".to_owned()
        } else {
            self.sid.to_string()
        };
        format!("({};;{:#x};;;{who})", if self.allow { "A" } else { "D" }, self.mask)
    }
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
            s.push_str(&a.to_sddl());
        }
        s
    }
}

/// `MAXIMUM_ALLOWED`: ask for every right the descriptor grants.
pub const MAXIMUM_ALLOWED: u32 = 0x0200_0000;

/// The outcome of [`check_access`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AccessCheck {
    /// The rights asked, generic rights mapped to the type's specific rights (for
    /// `MAXIMUM_ALLOWED`, what the descriptor grants).
    pub desired: u32,
    /// The rights the descriptor grants the caller, as far as the check looked.
    pub granted: u32,
    /// Whether every right asked is granted (and at least one was asked).
    pub allowed: bool,
    /// The rule that decided, in words: which entry granted or denied, or that none granted.
    pub rule: String,
    /// For a refusal of a confined caller: the SDDL entry that would grant the missing rights
    /// to its package.
    pub missing_entry: Option<String>,
}

/// The access check for opening (or creating an instance of) an object protected by `sd`,
/// asking for `desired` rights of `ty`.
///
/// * Nothing asked (`desired` 0) is refused, as Windows' access check refuses an empty
///   request: a handle with no rights could do nothing.
/// * An unconfined process of the user is granted what it asks (its user rights suffice;
///   namespaces are per user).
/// * An app container is granted only rights that entries for its package SID, one of its
///   capability SIDs or `ALL APPLICATION PACKAGES` allow, in the descriptor's order: a deny
///   entry for a right still missing refuses the whole request.
/// * `MAXIMUM_ALLOWED` asks for every right the entries allow (refused if none).
pub fn check_access(
    who: &Principal,
    sd: &SecurityDescriptor,
    ty: ObjectType,
    desired: u32,
) -> AccessCheck {
    let maximum = desired & MAXIMUM_ALLOWED != 0;
    let desired = ty.map_generic(desired & !MAXIMUM_ALLOWED);
    let refuse = |granted: u32, rule: String, missing_entry: Option<String>| AccessCheck {
        desired,
        granted,
        allowed: false,
        rule,
        missing_entry,
    };
    if desired == 0 && !maximum {
        return refuse(
            0,
            "no rights were asked: an empty request is refused (Windows' access check grants \
             nothing for it, and a handle without rights could do nothing)"
                .into(),
            None,
        );
    }
    let Some(pkg) = who.package.as_ref().filter(|_| who.is_confined()) else {
        let all = ty.map_generic(GENERIC_ALL);
        let desired = if maximum { desired | all } else { desired };
        return AccessCheck {
            desired,
            granted: all,
            allowed: true,
            rule: "an unconfined process of the user needs no entry (namespaces are per user)"
                .into(),
            missing_entry: None,
        };
    };
    let matches = |s: &Sid| {
        *s == pkg.package_sid
            || *s == Sid::all_application_packages()
            || pkg.capability_sids.contains(s)
    };
    let entry =
        |i: usize, ace: &Ace| format!("entry {} ({}) of the descriptor", i + 1, ace.to_sddl());
    let (mut granted, mut denied, mut remaining) = (0u32, 0u32, desired);
    for (i, ace) in sd.dacl.iter().enumerate() {
        if !matches(&ace.sid) {
            continue;
        }
        let mask = ty.map_generic(ace.mask);
        if ace.allow {
            granted |= mask & !denied;
            remaining &= !mask;
            if !maximum && remaining == 0 {
                return AccessCheck {
                    desired,
                    granted,
                    allowed: true,
                    rule: format!("{} completes the grant of {desired:#x}", entry(i, ace)),
                    missing_entry: None,
                };
            }
        } else if maximum {
            denied |= mask & !granted;
        } else if mask & remaining != 0 {
            return refuse(
                granted,
                format!("{} denies {:#x} to {}", entry(i, ace), mask & remaining, ace.sid),
                None,
            );
        }
    }
    if maximum && granted != 0 && granted & desired == desired {
        return AccessCheck {
            desired: granted,
            granted,
            allowed: true,
            rule: format!("MAXIMUM_ALLOWED: the descriptor's entries grant {granted:#x}"),
            missing_entry: None,
        };
    }
    let missing = if maximum && desired == 0 { ty.map_generic(GENERIC_ALL) } else { remaining };
    refuse(
        granted,
        format!(
            "no entry of the descriptor {} grants {missing:#x} to this app container \
             ({} or ALL APPLICATION PACKAGES or one of its capabilities); it grants {granted:#x}",
            quoted_sddl(sd),
            pkg.package_sid
        ),
        Some(format!("(A;;{missing:#x};;;{})", pkg.package_sid)),
    )
}

/// The most of a descriptor's SDDL a refusal quotes. The creator chooses the descriptor (as
/// long as a frame allows, 128 KiB), and every refusal's rule is kept in the broker's decision
/// log: quoting all of it would let one object turn each refused open into that much memory.
pub const QUOTED_SDDL_MAX: usize = 256;

/// The descriptor's SDDL for a message: whole, or its first [`QUOTED_SDDL_MAX`] bytes and how
/// many entries it has.
fn quoted_sddl(sd: &SecurityDescriptor) -> String {
    let text = sd.to_sddl();
    if text.len() <= QUOTED_SDDL_MAX {
        return text;
    }
    let mut end = QUOTED_SDDL_MAX;
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}… ({} entries)", &text[..end], sd.dacl.len())
}

/// The descriptor an object gets when its creator gives none: full access for the creator's
/// app container (so its package's processes share it), nothing for other containers.
pub fn default_descriptor(creator: &Principal) -> SecurityDescriptor {
    match creator.appcontainer_sid() {
        Some(sid) => SecurityDescriptor::default().allow(sid.clone(), GENERIC_ALL),
        None => SecurityDescriptor::default(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const A: &str = "Contoso.A_cvnpggrrsm18p";
    const B: &str = "Fabrikam.B_8tkjkmve8mrwr";

    pub(crate) fn confined(family: &str, caps: &[&str]) -> Principal {
        Principal::packaged(
            family.parse().unwrap(),
            "App".parse().unwrap(),
            appipc_wire::caller::TrustLevel::AppContainer,
            caps.iter().map(|c| (*c).to_owned()).collect(),
        )
    }

    fn a() -> Principal {
        confined(A, &[])
    }

    #[test]
    fn local_names_land_in_the_callers_namespace() {
        let n = resolve(&a(), r"LOCAL\buf", NameKind::Object).unwrap();
        assert_eq!(n.namespace, Namespace::AppContainer(sid::appcontainer_sid(A)));
        assert_eq!(n.key, "buf");
        let plain = resolve(&a(), "BUF", NameKind::Object).unwrap();
        assert_eq!(plain.namespace, n.namespace);
        assert_eq!(plain.key, n.key, "case-insensitive");
        let u = resolve(&Principal::unpackaged(), r"LOCAL\buf", NameKind::Object).unwrap();
        assert_eq!(u.namespace, Namespace::Session);
    }

    #[test]
    fn containers_qualify_names_to_reach_other_namespaces() {
        let g = resolve(&a(), r"Global\x", NameKind::Object).unwrap();
        assert_eq!(g.namespace, Namespace::Session);
        let g = resolve(&Principal::unpackaged(), r"global\x", NameKind::Object).unwrap();
        assert_eq!((g.namespace, g.key.as_str()), (Namespace::Session, "x"));
        let other = format!(r"{}\x", named_object_path(B));
        let n = resolve(&a(), &other, NameKind::Object).unwrap();
        assert_eq!(n.namespace, Namespace::AppContainer(sid::appcontainer_sid(B)));
        // An unconfined process reaches any namespace by qualified name.
        let n = resolve(&Principal::unpackaged(), &other, NameKind::Object).unwrap();
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
                resolve(&a(), raw, kind).unwrap_err().code,
                Win32Error::InvalidName,
                "{raw}"
            );
        }
        let long = format!(r"\\.\pipe\LOCAL\{}", "x".repeat(260));
        assert_eq!(resolve(&a(), &long, NameKind::Pipe).unwrap_err().code, Win32Error::InvalidName);
        let p = resolve(&a(), r"\\.\PIPE\LOCAL\my\pipe", NameKind::Pipe).unwrap();
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
        let b = confined(B, &["internetClient"]);
        let none = default_descriptor(&a());
        let c = check_access(&b, &none, ObjectType::Event, SYNCHRONIZE);
        assert!(!c.allowed);
        assert_eq!(c.missing_entry.as_deref(), Some(&*format!("(A;;0x100000;;;{pkg_b})")));
        assert!(check_access(&a(), &none, ObjectType::Event, GENERIC_ALL).allowed, "same package");
        let for_b = none.clone().allow(pkg_b, FILE_MAP_READ);
        let c = check_access(&b, &for_b, ObjectType::FileMapping, FILE_MAP_READ);
        assert!(c.allowed, "{}", c.rule);
        assert!(c.rule.contains("entry 2"), "{}", c.rule);
        assert!(
            !check_access(&b, &for_b, ObjectType::FileMapping, FILE_MAP_WRITE).allowed,
            "read-only grant"
        );
        let by_cap = SecurityDescriptor::default()
            .allow(sid::capability_sid("internetClient"), GENERIC_READ);
        assert!(check_access(&b, &by_cap, ObjectType::FileMapping, FILE_MAP_READ).allowed);
        let all = SecurityDescriptor::from_sddl("D:(A;;GA;;;AC)").unwrap();
        assert!(check_access(&b, &all, ObjectType::Pipe, FILE_READ_DATA | FILE_WRITE_DATA).allowed);
        let denied = SecurityDescriptor::from_sddl("D:(A;;GA;;;AC)(D;;GW;;;AC)").unwrap();
        let c = check_access(&b, &denied, ObjectType::FileMapping, FILE_MAP_WRITE);
        assert!(!c.allowed);
        assert!(c.rule.contains("entry 1") && c.rule.contains("denies"), "{}", c.rule);
        // Unconfined processes of the user need no entry.
        assert!(
            check_access(&Principal::unpackaged(), &none, ObjectType::Event, GENERIC_ALL).allowed
        );
    }

    #[test]
    fn a_refusal_quotes_a_large_descriptor_in_part() {
        // The creator chooses the descriptor; every refused open's rule is kept in the
        // decision log, so it must not carry 128 KiB of SDDL each time.
        let text = format!("D:{}", "(A;;GR;;;WD)".repeat(5000));
        let sd = SecurityDescriptor::from_sddl(&text).unwrap();
        let c = check_access(&confined(B, &[]), &sd, ObjectType::Event, SYNCHRONIZE);
        assert!(!c.allowed);
        assert!(c.rule.len() < 2 * QUOTED_SDDL_MAX, "{} bytes", c.rule.len());
        assert!(c.rule.contains("(5000 entries)"), "{}", c.rule);
        // A small one is quoted whole.
        let small = SecurityDescriptor::from_sddl("D:(A;;GR;;;WD)").unwrap();
        let c = check_access(&confined(B, &[]), &small, ObjectType::Event, SYNCHRONIZE);
        assert!(c.rule.contains("D:(A;;0x80000000;;;S-1-1-0)"), "{}", c.rule);
    }

    #[test]
    fn an_empty_request_is_refused_for_everyone() {
        let all = SecurityDescriptor::from_sddl("D:(A;;GA;;;AC)").unwrap();
        for who in [confined(B, &[]), a(), Principal::unpackaged()] {
            for ty in [
                ObjectType::Event,
                ObjectType::Semaphore,
                ObjectType::FileMapping,
                ObjectType::Pipe,
            ] {
                let c = check_access(&who, &all, ty, 0);
                assert!(!c.allowed, "{ty:?} with access 0 for {}", who.describe());
                assert_eq!(c.desired, 0);
            }
        }
    }

    #[test]
    fn maximum_allowed_grants_what_the_entries_allow() {
        let b = confined(B, &[]);
        let sd = SecurityDescriptor::from_sddl(&format!(
            "D:(D;;0x2;;;AC)(A;;0x6;;;{})",
            sid::appcontainer_sid(B)
        ))
        .unwrap();
        let c = check_access(&b, &sd, ObjectType::FileMapping, MAXIMUM_ALLOWED);
        assert!(c.allowed, "{}", c.rule);
        assert_eq!(c.desired, FILE_MAP_READ, "the denied write is not granted");
        let c = check_access(&b, &sd, ObjectType::FileMapping, MAXIMUM_ALLOWED | FILE_MAP_WRITE);
        assert!(!c.allowed);
        let nothing = default_descriptor(&a());
        assert!(!check_access(&b, &nothing, ObjectType::Event, MAXIMUM_ALLOWED).allowed);
        let u =
            check_access(&Principal::unpackaged(), &nothing, ObjectType::Event, MAXIMUM_ALLOWED);
        assert!(u.allowed && u.desired == ObjectType::Event.map_generic(GENERIC_ALL));
    }
}
