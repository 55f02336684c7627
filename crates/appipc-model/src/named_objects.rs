//! Named objects (events, semaphores, mutexes, waitable timers, file mappings, pipes): their
//! names, namespaces, security descriptors and the access check, and the state rules of
//! semaphores, mutexes and timers ([`semaphore_release`], [`MutexState`], [`timer_due`]), as
//! pure functions with Windows' rules and error codes.
//!
//! Namespaces are per user. An app container process lives in its package's namespace
//! `AppContainerNamedObjects\<package SID>`; an unconfined process (unpackaged or full trust) in
//! the user's session namespace.
//!
//! | name as written | from an app container | from an unconfined process |
//! |---|---|---|
//! | `Local\x` or `x` | its package's namespace | the session namespace |
//! | `Session\x` or `Global\x` | the session namespace (open only, by ACL) | the session namespace |
//! | `AppContainerNamedObjects\<SID>\x` | that package's namespace (open only, by ACL; its own: as `Local\x`) | that package's namespace (by its default DACL's entry for the user) |
//!
//! Object names are case-sensitive, and so are the keywords `Global\`, `Local\` and
//! `Session\` (Windows: `CreateEventEx` "Name comparison is case sensitive", "Kernel object
//! namespaces" "These keywords are case sensitive"): `local\x` is not in the local namespace but
//! a name with a backslash, refused (123); `Event` and `event` are two objects. Pipes are named
//! `\\.\pipe\` followed by such a name (`\\.\pipe\LOCAL\x`); pipe names, keywords
//! included, are case-insensitive, as Windows' are (`CreateNamedPipe`).
//!
//! Namespaces are per user (there is no machine-wide namespace), so `Global\` names the user's
//! session namespace: a program written for Windows that shares `Global\x` between its
//! unconfined processes keeps working, and an app container still cannot create there.
//!
//! [`named_object_path`] is `GetAppContainerNamedObjectPath`: the prefix an opener uses to reach
//! a package's namespace.

use std::fmt;

use crate::principal::Principal;
use crate::sddl::{self, READ_CONTROL, WRITE_DAC};
pub use crate::sddl::{Ace, Dacl, MandatoryLabel, QUOTED_SDDL_MAX, SecurityDescriptor};
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

/// A resolved name: its namespace and its key.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ObjectName {
    /// The namespace.
    pub namespace: Namespace,
    /// The name inside it: as written for objects (their names are case-sensitive), lower-cased
    /// for pipes (theirs are not).
    pub key: String,
    /// The name as written (for display).
    pub display: String,
}

/// The longest object name, in characters (UTF-16 code units, as Windows counts them), prefix
/// included: `MAX_PATH` (`CreateEventEx`: "The name is limited to MAX_PATH characters").
pub const MAX_OBJECT_NAME: usize = 260;

/// The longest pipe name, in characters, `\\.\pipe\` included (`CreateNamedPipe`: "The entire
/// pipe name string can be up to 256 characters long").
pub const MAX_PIPE_NAME: usize = 256;

/// The prefix of pipe names.
pub const PIPE_PREFIX: &str = r"\\.\pipe\";

/// Resolves a name as written by `who` (see the module table). Whether `who` may create or
/// open there is the policy's decision (`policy::decide`), not this function's.
pub fn resolve(who: &Principal, raw: &str, kind: NameKind) -> Result<ObjectName, NamedObjectError> {
    let invalid = |why: &str| err(Win32Error::InvalidName, format!("name {raw:?}: {why}"));
    let rest = match kind {
        NameKind::Pipe => {
            if raw.encode_utf16().count() > MAX_PIPE_NAME {
                return Err(invalid("a pipe name is at most 256 characters"));
            }
            let lower = raw.to_ascii_lowercase();
            if !lower.starts_with(&PIPE_PREFIX.to_ascii_lowercase()) {
                return Err(invalid(r"pipe names start with \\.\pipe\"));
            }
            &raw[PIPE_PREFIX.len()..]
        }
        NameKind::Object => {
            if raw.encode_utf16().count() > MAX_OBJECT_NAME {
                return Err(invalid("a name is at most MAX_PATH (260) characters"));
            }
            raw
        }
    };
    if rest.is_empty() || rest.chars().any(|c| c.is_control()) {
        return Err(invalid("empty, or control characters"));
    }
    let (namespace, name) = split_namespace(rest, kind).map_err(|why| invalid(&why))?;
    if name.is_empty() {
        return Err(invalid("no name after the namespace"));
    }
    if kind == NameKind::Object && name.contains('\\') {
        let first = name.split('\\').next().unwrap_or_default();
        if let Some(k) = KEYWORDS.iter().find(|k| k.eq_ignore_ascii_case(first)) {
            return Err(invalid(&format!(
                "the keyword is spelled {k}\\ (Windows compares Global\\, Local\\ and Session\\ \
                 case-sensitively), and an object name has no '\\' after its namespace"
            )));
        }
        return Err(invalid(r"an object name has no '\' after its namespace"));
    }
    let namespace = match namespace {
        Some(ns) => ns,
        None => home(who),
    };
    let key = match kind {
        NameKind::Object => name.to_owned(),
        NameKind::Pipe => name.to_lowercase(),
    };
    Ok(ObjectName { namespace, key, display: raw.to_owned() })
}

/// The namespace keywords, as Windows spells them.
const KEYWORDS: [&str; 3] = ["Local", "Global", "Session"];

/// Splits `Session\x` (or `Global\x`), `Local\x`, `AppContainerNamedObjects\<SID>\x` or a
/// plain `x`. For objects the keywords are matched case-sensitively, for pipes not.
fn split_namespace(s: &str, kind: NameKind) -> Result<(Option<Namespace>, &str), String> {
    let (first, after) = match s.split_once('\\') {
        Some(x) => x,
        None => return Ok((None, s)),
    };
    let is = |keyword: &str| match kind {
        NameKind::Object => first == keyword,
        NameKind::Pipe => first.eq_ignore_ascii_case(keyword),
    };
    if is("Local") {
        return Ok((None, after));
    }
    if is("Session") || is("Global") {
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
/// `EVENT_MODIFY_STATE` / `SEMAPHORE_MODIFY_STATE` / `TIMER_MODIFY_STATE` (needed by
/// `SetEvent`/`ResetEvent`, `ReleaseSemaphore`, `SetWaitableTimer`/`CancelWaitableTimer`).
pub const MODIFY_STATE: u32 = 0x0002;
/// `MUTEX_MODIFY_STATE` ("reserved for future use": `ReleaseMutex` needs ownership, not a
/// right).
pub const MUTEX_MODIFY_STATE: u32 = 0x0001;
/// `MUTEX_ALL_ACCESS`.
pub const MUTEX_ALL_ACCESS: u32 = 0x001F_0001;
/// `TIMER_QUERY_STATE` (reserved).
pub const TIMER_QUERY_STATE: u32 = 0x0001;
/// `TIMER_ALL_ACCESS`.
pub const TIMER_ALL_ACCESS: u32 = 0x001F_0003;
/// `MAXIMUM_WAIT_OBJECTS`: the most handles one `WaitForMultipleObjects` takes.
pub const MAXIMUM_WAIT_OBJECTS: usize = 64;
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
    /// Mutex.
    Mutex,
    /// Waitable timer.
    WaitableTimer,
    /// File mapping (shared memory).
    FileMapping,
    /// Named pipe.
    Pipe,
    /// RPC endpoint (an `ncalrpc` endpoint: Windows' ALPC port; its right is `PORT_CONNECT`).
    RpcEndpoint,
    /// A COM server's launch and activation permission (an AppID's `LaunchPermission`): its
    /// rights are the `COM_RIGHTS_*`.
    ComServer,
}

/// `COM_RIGHTS_EXECUTE`: set in every entry of a COM permission that grants anything.
pub const COM_RIGHTS_EXECUTE: u32 = 0x1;
/// `COM_RIGHTS_EXECUTE_LOCAL`: may start the server on this machine.
pub const COM_RIGHTS_EXECUTE_LOCAL: u32 = 0x2;
/// `COM_RIGHTS_EXECUTE_REMOTE`.
pub const COM_RIGHTS_EXECUTE_REMOTE: u32 = 0x4;
/// `COM_RIGHTS_ACTIVATE_LOCAL`: may activate an object of a running server on this machine.
pub const COM_RIGHTS_ACTIVATE_LOCAL: u32 = 0x8;
/// `COM_RIGHTS_ACTIVATE_REMOTE`.
pub const COM_RIGHTS_ACTIVATE_REMOTE: u32 = 0x10;

impl ObjectType {
    /// Every right of this type (`GENERIC_ALL` mapped): `EVENT_ALL_ACCESS`,
    /// `SEMAPHORE_ALL_ACCESS`, `MUTEX_ALL_ACCESS`, `TIMER_ALL_ACCESS`, `FILE_MAP_ALL_ACCESS`,
    /// `FILE_ALL_ACCESS`.
    pub fn valid_rights(self) -> u32 {
        self.map_generic(GENERIC_ALL)
    }

    /// Maps generic rights to this type's specific rights.
    pub fn map_generic(self, mask: u32) -> u32 {
        let (read, write, execute, all) = match self {
            ObjectType::Event | ObjectType::Semaphore | ObjectType::WaitableTimer => {
                (0x0002_0001, 0x0002_0002, 0x0010_0000, 0x001F_0003)
            }
            // `MUTANT_QUERY_STATE` with `STANDARD_RIGHTS_READ`; write is `STANDARD_RIGHTS_WRITE`
            // alone (`MUTEX_MODIFY_STATE` is reserved).
            ObjectType::Mutex => (0x0002_0001, 0x0002_0000, 0x0010_0000, MUTEX_ALL_ACCESS),
            ObjectType::FileMapping => (
                FILE_MAP_READ | 0x0002_0000,
                FILE_MAP_WRITE | 0x0002_0000,
                0x0002_0020,
                FILE_MAP_ALL_ACCESS,
            ),
            ObjectType::Pipe => (0x0012_0089, 0x0012_0116, 0x0012_00A0, 0x001F_01FF),
            // The ALPC port type's mapping: read is `PORT_CONNECT` with `READ_CONTROL`, write
            // `DELETE`, execute nothing, all `PORT_ALL_ACCESS`. Connecting is a read-class
            // right, so an object's no-write-up label does not keep an app container out.
            ObjectType::RpcEndpoint => {
                (PORT_CONNECT | 0x0002_0000, 0x0001_0000, 0, PORT_ALL_ACCESS)
            }
            // COM maps `GENERIC_EXECUTE` and `GENERIC_ALL` to every `COM_RIGHTS_*` bit and has
            // no read or write class: a label's no-write-up does not keep an app container
            // from activating (machine-wide defaults are what refuse it).
            ObjectType::ComServer => (0, 0, 0x1F, 0x1F),
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

/// `PORT_CONNECT`: the right a client needs to connect to an RPC endpoint.
pub const PORT_CONNECT: u32 = 0x0001;

/// `PORT_ALL_ACCESS`: `STANDARD_RIGHTS_REQUIRED | SYNCHRONIZE | PORT_CONNECT`.
pub const PORT_ALL_ACCESS: u32 = 0x001F_0001;

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
    /// For a refusal: the SDDL entry that would grant the missing rights (to the caller's
    /// package, or on the user's side to the user).
    pub missing_entry: Option<String>,
}

/// One pass of the DACL walk, for one set of SIDs.
#[derive(Debug)]
enum Pass {
    /// Every right asked is granted (`MAXIMUM_ALLOWED`: these are).
    Granted { mask: u32, rule: String },
    /// A deny entry refuses a right still asked.
    Denied { rule: String },
    /// The entries grant only `granted`; `missing` is not granted.
    Short { granted: u32, missing: u32 },
}

/// Walks the DACL for a caller whose token holds the SIDs `member` says it holds, as
/// MS-DTYP's access check does: the owner gets `READ_CONTROL` and `WRITE_DAC` unless the DACL
/// has an OWNER RIGHTS (`OW`) entry, in which case `OW` entries apply to the owner instead;
/// entries are taken in order; an allow entry grants its rights, a deny entry refuses the
/// request if it names a right still asked for (`MAXIMUM_ALLOWED`: denies rights not granted
/// yet). A NULL DACL grants everything.
fn walk(
    sd: &SecurityDescriptor,
    ty: ObjectType,
    member: &dyn Fn(&Sid) -> bool,
    desired: u32,
    maximum: bool,
) -> Pass {
    let all = ty.valid_rights();
    let entries = match &sd.dacl {
        Dacl::Null | Dacl::NotPresent => {
            return Pass::Granted {
                mask: if maximum { all } else { desired },
                rule: "a NULL DACL grants every right".into(),
            };
        }
        Dacl::Entries(v) => v,
    };
    let owner_rights = Sid::owner_rights();
    let is_owner = sd.owner.as_ref().is_some_and(member);
    let has_ow = entries.iter().any(|a| a.sid == owner_rights);
    let applies = |s: &Sid| member(s) || (is_owner && *s == owner_rights);
    let implicit = if is_owner && !has_ow { READ_CONTROL | WRITE_DAC } else { 0 };
    let (mut granted, mut denied, mut remaining) = (implicit, 0u32, desired & !implicit);
    let entry = |i: usize, a: &Ace| format!("entry {} {}", i + 1, a.to_sddl());
    if !maximum && remaining == 0 {
        return Pass::Granted {
            mask: desired,
            rule: "the owner's implicit READ_CONTROL and WRITE_DAC".into(),
        };
    }
    for (i, ace) in entries.iter().enumerate() {
        if !applies(&ace.sid) {
            continue;
        }
        let mask = ty.map_generic(ace.mask);
        if ace.allow {
            granted |= mask & !denied;
            remaining &= !mask;
            if !maximum && remaining == 0 {
                return Pass::Granted {
                    mask: desired,
                    rule: format!("{} completes it", entry(i, ace)),
                };
            }
        } else if maximum {
            denied |= mask & !granted;
        } else if mask & remaining != 0 {
            return Pass::Denied {
                rule: format!("{} denies {:#x}", entry(i, ace), mask & remaining),
            };
        }
    }
    if maximum {
        let granted = granted & all;
        if granted != 0 && granted & desired == desired {
            return Pass::Granted {
                mask: granted,
                rule: format!("the entries grant {granted:#x}"),
            };
        }
        let missing = if desired == 0 { all } else { desired & !granted };
        return Pass::Short { granted, missing };
    }
    Pass::Short { granted: granted & desired, missing: remaining }
}

/// The rights a caller of integrity level `caller` may not get on an object labelled `label`
/// (no label: Medium, no-write-up). Windows' mandatory integrity check (MS-DTYP 2.5.3.3): a
/// caller whose level does not dominate the object's loses the rights of the type's
/// `GENERIC_WRITE` for no-write-up, `GENERIC_READ` for no-read-up, `GENERIC_EXECUTE` for
/// no-execute-up. `READ_CONTROL` and `SYNCHRONIZE` stay: several types' write mappings hold
/// them, and a low-integrity process still reads medium objects (`FILE_GENERIC_READ`, which
/// holds both, opens a medium file at Low).
fn label_denies(label: Option<&MandatoryLabel>, caller: u32, ty: ObjectType) -> u32 {
    let MandatoryLabel { level, policy } = label.copied().unwrap_or(MandatoryLabel {
        level: crate::principal::MEDIUM_INTEGRITY,
        policy: sddl::NO_WRITE_UP,
    });
    if caller >= level {
        return 0;
    }
    let mut denied = 0;
    for (bit, generic) in [
        (sddl::NO_WRITE_UP, GENERIC_WRITE),
        (sddl::NO_READ_UP, GENERIC_READ),
        (sddl::NO_EXECUTE_UP, GENERIC_EXECUTE),
    ] {
        if policy & bit != 0 {
            denied |= ty.map_generic(generic);
        }
    }
    denied & !(READ_CONTROL | SYNCHRONIZE)
}

fn level_name(level: u32) -> String {
    match level {
        0 => "Untrusted".into(),
        0x1000 => "Low".into(),
        0x2000 => "Medium".into(),
        0x2100 => "Medium Plus".into(),
        0x3000 => "High".into(),
        0x4000 => "System".into(),
        n => format!("{n:#x}"),
    }
}

/// A refusal by one side of the DACL walk.
struct Refusal {
    granted: u32,
    rule: String,
    missing_entry: Option<String>,
}

/// The discretionary part of [`check_access`]: the user side, and for a confined caller the
/// app-container side; the rights both grant and the rule, or why a side refused.
fn both_sides(
    who: &Principal,
    sd: &SecurityDescriptor,
    ty: ObjectType,
    desired: u32,
    maximum: bool,
    quoted: &str,
) -> Result<(u32, String), Refusal> {
    let short = |side: &str, granted: u32, missing: u32, trustee: String| Refusal {
        granted,
        rule: format!(
            "{side}: no entry of the descriptor {quoted} grants {missing:#x}; it grants \
             {granted:#x}"
        ),
        missing_entry: Some(format!("(A;;{missing:#x};;;{trustee})")),
    };
    let denied = |rule: String| Refusal { granted: 0, rule, missing_entry: None };
    let user = who.user_sid();
    let user_sids = who.user_side_sids();
    let user_side = format!("the user side ({user}, Everyone, Authenticated Users, …)");
    let (user_mask, user_rule) = match walk(sd, ty, &|s| user_sids.contains(s), desired, maximum) {
        Pass::Granted { mask, rule } => (mask, rule),
        Pass::Denied { rule } => return Err(denied(format!("{user_side}: {rule}"))),
        Pass::Short { granted, missing } => {
            return Err(short(&user_side, granted, missing, user.to_string()));
        }
    };
    let Some(pkg) = who.appcontainer_sid() else {
        return Ok((user_mask, format!("{user_side}: {user_rule}")));
    };
    let container_sids = who.container_side_sids();
    let side =
        format!("the app-container side ({pkg}, its capabilities, ALL APPLICATION PACKAGES)");
    match walk(sd, ty, &|s| container_sids.contains(s), desired, maximum) {
        Pass::Granted { mask, rule } => {
            Ok((user_mask & mask, format!("{user_side}: {user_rule}; {side}: {rule}")))
        }
        Pass::Denied { rule } => Err(denied(format!("{side}: {rule}"))),
        Pass::Short { granted, missing } => {
            Err(short(&side, granted & user_mask, missing, pkg.to_string()))
        }
    }
}

/// The access check for opening (or creating an instance of) an object protected by `sd`,
/// asking for `desired` rights of `ty`, as Windows does it for the caller's token:
///
/// * Nothing asked (`desired` 0) is refused, as Windows' access check refuses an empty request.
/// * **Mandatory integrity** first: an app container runs at Low, an unconfined process at
///   Medium; an object without a label counts as Medium, no-write-up. A caller below the
///   object's level loses the rights its policy names ([`label_denies`]): an app container
///   cannot write what an unconfined process created unless that object is labelled Low
///   (`S:(ML;;NW;;;LW)`).
/// * **The user side**: the DACL is walked for the user's SIDs ([`Principal::user_side_sids`]:
///   the user, Everyone `WD`, Authenticated Users `AU`, …); the owner (the creating user) has
///   `READ_CONTROL` and `WRITE_DAC` unless an `OW` entry says otherwise. For an unconfined
///   caller that is the whole check.
/// * **The app-container side**, for a confined caller: the DACL is walked again for its
///   package SID, its capabilities' SIDs, `AC` and `S-1-15-2-2`, and the caller gets only the
///   rights both walks grant ("Launch an AppContainer": the permitted access is the
///   intersection). A deny entry binds in the walk its SID belongs to, so
///   `D:(D;;0x2;;;WD)(A;;GA;;;AC)` refuses `FILE_MAP_WRITE` to every app container, and
///   `D:(A;;GA;;;AC)` alone grants an app container nothing (no user-side entry).
/// * `MAXIMUM_ALLOWED` asks for every right all three allow (refused if none).
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
    let caller_level = who.integrity_level();
    let label_denied = label_denies(sd.label.as_ref(), caller_level, ty);
    let label_text = match &sd.label {
        Some(l) => format!("its label {}", l.to_sddl()),
        None => "no label (Medium, no-write-up)".into(),
    };
    if !maximum && desired & label_denied != 0 {
        let object_level = sd.label.map_or(crate::principal::MEDIUM_INTEGRITY, |l| l.level);
        return refuse(
            0,
            format!(
                "mandatory integrity: the object has {label_text}, so a {} caller may not have \
                 {:#x} of the {desired:#x} it asks (the object is {})",
                level_name(caller_level),
                desired & label_denied,
                level_name(object_level)
            ),
            Some(format!("S:{}", MandatoryLabel::LOW.to_sddl())),
        );
    }
    let quoted = sddl::quoted_sddl(sd);
    let (mask, rule) = match both_sides(who, sd, ty, desired, maximum, &quoted) {
        Ok(granted) => granted,
        Err(r) => return refuse(r.granted, r.rule, r.missing_entry),
    };
    if !maximum {
        return AccessCheck { desired, granted: desired, allowed: true, rule, missing_entry: None };
    }
    let granted = mask & !label_denied;
    if granted == 0 || granted & desired != desired {
        return refuse(
            granted,
            format!(
                "MAXIMUM_ALLOWED: the descriptor {quoted} grants {mask:#x} on both sides, and \
                 {label_text} leaves {granted:#x}"
            ),
            None,
        );
    }
    AccessCheck {
        desired: granted,
        granted,
        allowed: true,
        rule: format!("MAXIMUM_ALLOWED: {granted:#x} ({rule}; {label_text})"),
        missing_entry: None,
    }
}

/// The descriptor an object gets when its creator gives none: the creator's token's default
/// DACL, as Windows builds it — the user and SYSTEM with `GENERIC_ALL`, and for an app
/// container its package SID with `GENERIC_ALL` too — owned by the user; what an app container
/// creates is labelled Low, no-write-up (Windows labels an object with its creator's level).
/// So the creator's package shares it, the user's unconfined processes open it, and other
/// packages are refused until an entry names them.
pub fn default_descriptor(creator: &Principal) -> SecurityDescriptor {
    SecurityDescriptor {
        owner: Some(creator.user_sid()),
        dacl: Dacl::Entries(default_dacl(creator)),
        label: creator.is_confined().then_some(MandatoryLabel::LOW),
        ..SecurityDescriptor::default()
    }
}

fn default_dacl(creator: &Principal) -> Vec<Ace> {
    let mut v = vec![
        Ace::new(true, creator.user_sid(), GENERIC_ALL),
        Ace::new(true, Sid::local_system(), GENERIC_ALL),
    ];
    if let Some(pkg) = creator.appcontainer_sid() {
        v.push(Ace::new(true, pkg.clone(), GENERIC_ALL));
    }
    v
}

/// The descriptor of a new object and what of the creator's text was set aside.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewDescriptor {
    /// The descriptor the object gets.
    pub descriptor: SecurityDescriptor,
    /// What of the text was ignored or has no effect, one line each (for the log).
    pub notes: Vec<String>,
}

/// The descriptor an object created by `creator` gets from the SDDL it gave (`None`: the
/// default, [`default_descriptor`]), as Windows builds a new object's descriptor:
///
/// * no `O:`: the creator's user owns it; an `O:` other than the user is refused
///   (`ERROR_INVALID_OWNER`, 1307: a token may only assign itself as owner);
/// * no `D:`: the creator's default DACL;
/// * no label: an app container's object is labelled Low, no-write-up; an unconfined
///   process's has none (Medium). A label above the creator's own level is refused
///   (`ERROR_INVALID_LABEL`, 1299).
///
/// Malformed text is `ERROR_INVALID_PARAMETER` (87), naming the position and the problem.
pub fn descriptor_for_new_object(
    creator: &Principal,
    sddl_text: Option<&str>,
) -> Result<NewDescriptor, NamedObjectError> {
    let Some(text) = sddl_text else {
        return Ok(NewDescriptor { descriptor: default_descriptor(creator), notes: Vec::new() });
    };
    let parsed = SecurityDescriptor::parse(text)
        .map_err(|e| err(Win32Error::InvalidParameter, e.to_string()))?;
    let mut sd = parsed.descriptor;
    let user = creator.user_sid();
    match &sd.owner {
        None => sd.owner = Some(user),
        Some(o) if *o == user => {}
        Some(o) => {
            return Err(err(
                Win32Error::InvalidOwner,
                format!(
                    "security descriptor: owner {o} may not be assigned: {} may only make its \
                     user ({user}) the owner",
                    creator.describe()
                ),
            ));
        }
    }
    if sd.dacl == Dacl::NotPresent {
        sd.dacl = Dacl::Entries(default_dacl(creator));
    }
    match sd.label {
        Some(l) if l.level > creator.integrity_level() => {
            return Err(err(
                Win32Error::InvalidLabel,
                format!(
                    "security descriptor: the label {} is above the creator's integrity level \
                     ({}): {} cannot raise an object over itself",
                    l.to_sddl(),
                    level_name(creator.integrity_level()),
                    creator.describe()
                ),
            ));
        }
        Some(_) => {}
        None if creator.is_confined() => sd.label = Some(MandatoryLabel::LOW),
        None => {}
    }
    Ok(NewDescriptor { descriptor: sd, notes: parsed.notes })
}

/// `ReleaseSemaphore(n)` on a semaphore at `count` of `maximum`: the new count, or the error
/// Windows gives — `ERROR_INVALID_PARAMETER` (87) for `n` 0 ("The value must be greater than
/// zero"), `ERROR_TOO_MANY_POSTS` (298) past the maximum, which leaves the count as it was
/// (`ReleaseSemaphore`: "the count is not changed and the function returns FALSE"). The
/// previous count, which `ReleaseSemaphore` returns, is `count`.
pub fn semaphore_release(count: u32, maximum: u32, n: u32) -> Result<u32, NamedObjectError> {
    if n == 0 {
        return Err(err(Win32Error::InvalidParameter, "ReleaseSemaphore with a count of 0"));
    }
    match count.checked_add(n) {
        Some(new) if new <= maximum => Ok(new),
        _ => Err(err(
            Win32Error::TooManyPosts,
            format!(
                "ReleaseSemaphore({n}) on a semaphore at {count} of its maximum {maximum}: the \
                 count would pass the maximum; it is left at {count}"
            ),
        )),
    }
}

/// The state of a mutex. Its owner is a broker session: the process (its broker connection)
/// whose wait or `CreateMutex(bInitialOwner)` took it. Windows makes a thread the owner; a
/// session is what the broker can tell apart and watch end (every thread and task of the
/// process counts as the owner). Ownership is recursive: the owner's waits succeed at once
/// and count, and it must release as many times.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct MutexState {
    /// The owning session, if any.
    pub owner: Option<u64>,
    /// How many times the owner holds it (0 when unowned).
    pub recursion: u32,
    /// The last owner ended holding it and nobody took it since: the next wait gets
    /// `WAIT_ABANDONED` (and ownership).
    pub abandoned: bool,
}

/// How a wait on a mutex (or any object) went, in the model: as the wire's `WaitOutcome`.
pub use appipc_wire::protocol::named_objects::WaitOutcome;

impl MutexState {
    /// Whether it is signalled: nobody owns it.
    pub fn is_free(&self) -> bool {
        self.owner.is_none()
    }

    /// Whether `session` may take it now (it is free, or `session` owns it already).
    pub fn can_take(&self, session: u64) -> bool {
        self.owner.is_none_or(|o| o == session)
    }

    /// A wait by `session` completes if it can ([`can_take`](Self::can_take)): `session` owns it
    /// once more; `Abandoned` if the previous owner ended holding it (the state is then
    /// cleared: "the mutex object is signaled ... ownership is granted to the waiting thread",
    /// `WaitForSingleObject`).
    pub fn acquire(&mut self, session: u64) -> Result<WaitOutcome, NamedObjectError> {
        if !self.can_take(session) {
            return Ok(WaitOutcome::NotSignalled);
        }
        self.recursion = self.recursion.checked_add(1).ok_or_else(|| {
            err(Win32Error::InvalidParameter, "the mutex is held recursively as often as it may be")
        })?;
        self.owner = Some(session);
        Ok(if std::mem::take(&mut self.abandoned) {
            WaitOutcome::Abandoned
        } else {
            WaitOutcome::Signalled
        })
    }

    /// `ReleaseMutex` by `session`: `ERROR_NOT_OWNER` (288) unless it owns the mutex ("The
    /// ReleaseMutex function fails if the calling thread does not own the mutex object");
    /// otherwise one level of ownership less. Returns whether the mutex is free now.
    pub fn release(&mut self, session: u64) -> Result<bool, NamedObjectError> {
        if self.owner != Some(session) {
            return Err(err(
                Win32Error::NotOwner,
                match self.owner {
                    None => "ReleaseMutex: nobody owns this mutex".to_owned(),
                    Some(_) => "ReleaseMutex: the mutex is owned by another process".to_owned(),
                },
            ));
        }
        self.recursion -= 1;
        if self.recursion == 0 {
            self.owner = None;
        }
        Ok(self.owner.is_none())
    }

    /// `session` ended: if it owned the mutex, the mutex is free and abandoned. Returns whether
    /// it was.
    pub fn owner_ended(&mut self, session: u64) -> bool {
        if self.owner != Some(session) {
            return false;
        }
        *self = MutexState { owner: None, recursion: 0, abandoned: true };
        true
    }
}

/// When a waitable timer is due, from `SetWaitableTimer`'s `lpDueTime`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TimerDue {
    /// This long from now (`lpDueTime` negative: "Negative values indicate relative time";
    /// 0 or an absolute time already past: at once, which is 1 ns: a zero time disarms a
    /// timerfd).
    Relative(std::time::Duration),
    /// At this UTC time, as a duration since the Unix epoch (`lpDueTime` positive: "Positive
    /// values indicate absolute time", a `FILETIME`).
    Absolute(std::time::Duration),
}

/// 100-nanosecond intervals between 1601-01-01 (the `FILETIME` epoch) and 1970-01-01.
pub const FILETIME_UNIX_EPOCH: i64 = 116_444_736_000_000_000;

/// `SetWaitableTimer(lpDueTime, lPeriod)`'s times: when it is due, and its period (`None`:
/// signalled once, `lPeriod` 0). `lPeriod` below zero is `ERROR_INVALID_PARAMETER` (87) ("If
/// lPeriod is less than zero, the function fails").
pub fn timer_due(
    due_time: i64,
    period_ms: i32,
) -> Result<(TimerDue, Option<std::time::Duration>), NamedObjectError> {
    use std::time::Duration;
    let period = match period_ms {
        p if p < 0 => {
            return Err(err(
                Win32Error::InvalidParameter,
                format!("SetWaitableTimer with a period of {p} ms: the period may not be negative"),
            ));
        }
        0 => None,
        p => Some(Duration::from_millis(p.unsigned_abs().into())),
    };
    let hundreds = |n: u64| Duration::from_nanos(n.saturating_mul(100));
    let at_once = TimerDue::Relative(Duration::from_nanos(1));
    let due = if due_time < 0 {
        TimerDue::Relative(hundreds(due_time.unsigned_abs()))
    } else if due_time <= FILETIME_UNIX_EPOCH {
        at_once
    } else {
        TimerDue::Absolute(hundreds((due_time - FILETIME_UNIX_EPOCH).unsigned_abs()))
    };
    Ok((due, period))
}

#[cfg(test)]
mod tests {
    use super::*;

    const A: &str = "Contoso.A_cvnpggrrsm18p";
    const B: &str = "Fabrikam.B_8tkjkmve8mrwr";
    const UID: u32 = 1000;

    pub(crate) fn confined(family: &str, caps: &[&str]) -> Principal {
        Principal::packaged(
            UID,
            family.parse().unwrap(),
            "App".parse().unwrap(),
            appipc_wire::caller::TrustLevel::AppContainer,
            caps.iter().map(|c| (*c).to_owned()).collect(),
        )
    }

    fn full_trust(family: &str) -> Principal {
        Principal::packaged(
            UID,
            family.parse().unwrap(),
            "App".parse().unwrap(),
            appipc_wire::caller::TrustLevel::FullTrust,
            vec!["runFullTrust".into()],
        )
    }

    fn a() -> Principal {
        confined(A, &[])
    }

    fn user() -> Principal {
        Principal::unpackaged(UID)
    }

    fn sddl(text: &str) -> SecurityDescriptor {
        SecurityDescriptor::from_sddl(text).unwrap()
    }

    /// The descriptor `creator` gets from `text`.
    fn made_by(creator: &Principal, text: &str) -> SecurityDescriptor {
        descriptor_for_new_object(creator, Some(text)).unwrap().descriptor
    }

    #[test]
    fn local_names_land_in_the_callers_namespace() {
        let n = resolve(&a(), r"Local\buf", NameKind::Object).unwrap();
        assert_eq!(n.namespace, Namespace::AppContainer(sid::appcontainer_sid(A)));
        assert_eq!(n.key, "buf");
        let plain = resolve(&a(), "buf", NameKind::Object).unwrap();
        assert_eq!((plain.namespace, plain.key), (n.namespace, n.key));
        let u = resolve(&user(), r"Local\buf", NameKind::Object).unwrap();
        assert_eq!(u.namespace, Namespace::Session);
    }

    #[test]
    fn object_names_and_their_keywords_are_case_sensitive_pipe_names_are_not() {
        // Two spellings, two objects.
        let upper = resolve(&a(), "BUF", NameKind::Object).unwrap();
        let lower = resolve(&a(), "buf", NameKind::Object).unwrap();
        assert_eq!(upper.namespace, lower.namespace);
        assert_ne!(upper.key, lower.key, "Windows: name comparison is case sensitive");
        // The keywords are Local\, Global\ and Session\, exactly.
        for raw in [r"LOCAL\x", r"local\x", r"global\x", r"GLOBAL\x", r"session\x"] {
            let e = resolve(&user(), raw, NameKind::Object).unwrap_err();
            assert_eq!(e.code, Win32Error::InvalidName, "{raw}");
            assert!(e.message.contains("case-sensitively"), "{raw}: {}", e.message);
        }
        assert_eq!(
            resolve(&a(), r"Global\x", NameKind::Object).unwrap().namespace,
            Namespace::Session
        );
        assert_eq!(
            resolve(&a(), r"Session\x", NameKind::Object).unwrap().namespace,
            Namespace::Session
        );
        // Pipes: any case, one pipe.
        let p1 = resolve(&a(), r"\\.\pipe\LOCAL\Inbox", NameKind::Pipe).unwrap();
        let p2 = resolve(&a(), r"\\.\PIPE\local\inbox", NameKind::Pipe).unwrap();
        assert_eq!((&p1.namespace, &p1.key), (&p2.namespace, &p2.key));
        assert_eq!(p1.namespace, Namespace::AppContainer(sid::appcontainer_sid(A)));
        let g = resolve(&a(), r"\\.\pipe\GLOBAL\x", NameKind::Pipe).unwrap();
        assert_eq!(g.namespace, Namespace::Session);
    }

    #[test]
    fn containers_qualify_names_to_reach_other_namespaces() {
        let g = resolve(&a(), r"Global\x", NameKind::Object).unwrap();
        assert_eq!(g.namespace, Namespace::Session);
        let g = resolve(&user(), r"Global\x", NameKind::Object).unwrap();
        assert_eq!((g.namespace, g.key.as_str()), (Namespace::Session, "x"));
        let other = format!(r"{}\x", named_object_path(B));
        let n = resolve(&a(), &other, NameKind::Object).unwrap();
        assert_eq!(n.namespace, Namespace::AppContainer(sid::appcontainer_sid(B)));
        // An unconfined process reaches any namespace by qualified name.
        let n = resolve(&user(), &other, NameKind::Object).unwrap();
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
            (r"Local\", NameKind::Object),
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
        // Pipes: 256 characters in all; objects: MAX_PATH (260), counted as UTF-16 units.
        let pipe = |n: usize| format!(r"\\.\pipe\{}", "x".repeat(n - 9));
        assert!(resolve(&a(), &pipe(256), NameKind::Pipe).is_ok());
        assert!(resolve(&a(), &pipe(257), NameKind::Pipe).is_err());
        let object = |n: usize| format!(r"Local\{}", "x".repeat(n - 6));
        assert!(resolve(&a(), &object(260), NameKind::Object).is_ok());
        let e = resolve(&a(), &object(261), NameKind::Object).unwrap_err();
        assert!(
            e.code == Win32Error::InvalidName && e.message.contains("MAX_PATH"),
            "{}",
            e.message
        );
        assert!(resolve(&a(), &"é".repeat(260), NameKind::Object).is_ok(), "characters, not bytes");
        assert!(
            resolve(&a(), &"😀".repeat(131), NameKind::Object).is_err(),
            "two UTF-16 units each"
        );
        let p = resolve(&a(), r"\\.\PIPE\LOCAL\my\pipe", NameKind::Pipe).unwrap();
        assert_eq!(p.key, r"my\pipe");
    }

    #[test]
    fn default_descriptors_are_the_creators_token_default_dacl() {
        let user_sid = Sid::unix_user(UID);
        let d = default_descriptor(&a());
        assert_eq!(d.owner, Some(user_sid.clone()));
        assert_eq!(
            d.to_sddl(),
            format!(
                "O:{user_sid}D:(A;;GA;;;{user_sid})(A;;GA;;;SY)(A;;GA;;;{})S:(ML;;NW;;;LW)",
                sid::appcontainer_sid(A)
            )
        );
        assert_eq!(
            default_descriptor(&user()).to_sddl(),
            format!("O:{user_sid}D:(A;;GA;;;{user_sid})(A;;GA;;;SY)"),
            "an unconfined creator's object has no label (Medium)"
        );
        // Today's sharing stays: the creator's package shares, the user's unconfined
        // processes open it, other packages are refused without an entry.
        let all = |who: &Principal, sd: &SecurityDescriptor| {
            check_access(who, sd, ObjectType::Event, GENERIC_ALL).allowed
        };
        assert!(all(&a(), &d), "same package");
        assert!(all(&user(), &d), "the user, unconfined");
        assert!(all(&full_trust(B), &d), "a full-trust process of the user");
        let c = check_access(&confined(B, &[]), &d, ObjectType::Event, SYNCHRONIZE);
        assert!(!c.allowed);
        assert_eq!(
            c.missing_entry.as_deref(),
            Some(&*format!("(A;;0x100000;;;{})", sid::appcontainer_sid(B)))
        );
        let u = default_descriptor(&user());
        assert!(all(&user(), &u));
        assert!(!check_access(&a(), &u, ObjectType::Event, SYNCHRONIZE).allowed, "no entry for A");
    }

    #[test]
    fn an_app_container_needs_both_sides_of_the_dacl() {
        let b = confined(B, &["internetClient"]);
        let pkg_b = sid::appcontainer_sid(B);
        // The app-container side alone grants nothing (as on Windows).
        let c = check_access(&b, &sddl("D:(A;;GA;;;AC)"), ObjectType::Event, SYNCHRONIZE);
        assert!(!c.allowed, "{}", c.rule);
        assert!(c.rule.contains("user side"), "{}", c.rule);
        assert_eq!(c.missing_entry.as_deref(), Some("(A;;0x100000;;;S-1-22-1-1000)"));
        // The user side alone grants nothing to a confined caller either.
        let c = check_access(&b, &sddl("D:(A;;GA;;;WD)"), ObjectType::Event, SYNCHRONIZE);
        assert!(!c.allowed, "{}", c.rule);
        assert_eq!(c.missing_entry, Some(format!("(A;;0x100000;;;{pkg_b})")));
        // Both: granted; each side by any of its SIDs.
        for (user_side, container_side) in [
            ("WD", "AC".to_owned()),
            ("AU", pkg_b.to_string()),
            ("S-1-22-1-1000", "S-1-15-2-2".to_owned()),
            ("IU", "CAP:internetClient".to_owned()),
            ("BU", format!("PFN:{B}")),
        ] {
            let sd = made_by(&a(), &format!("D:(A;;GA;;;{user_side})(A;;GA;;;{container_side})"));
            let c = check_access(&b, &sd, ObjectType::Event, SYNCHRONIZE | MODIFY_STATE);
            assert!(c.allowed, "{user_side} + {container_side}: {}", c.rule);
        }
        // The intersection: the user may write, the package only read.
        let sd = made_by(&a(), &format!("D:(A;;GA;;;WD)(A;;GR;;;{pkg_b})"));
        let c = check_access(&b, &sd, ObjectType::FileMapping, MAXIMUM_ALLOWED);
        assert!(c.allowed);
        assert_eq!(c.granted, FILE_MAP_READ | READ_CONTROL, "{}", c.rule);
        assert!(!check_access(&b, &sd, ObjectType::FileMapping, FILE_MAP_WRITE).allowed);
        // Another package's SID or an ungranted capability is not on either side.
        let sd = sddl(&format!("D:(A;;GA;;;WD)(A;;GA;;;PFN:{A})(A;;GA;;;CAP:webcam)"));
        assert!(!check_access(&b, &sd, ObjectType::Event, SYNCHRONIZE).allowed);
    }

    #[test]
    fn f10_a_deny_for_everyone_binds_app_containers() {
        let sd = made_by(&user(), "D:(D;;0x2;;;WD)(A;;GA;;;AC)");
        let b = confined(B, &[]);
        let w = check_access(&b, &sd, ObjectType::FileMapping, FILE_MAP_WRITE);
        assert!(!w.allowed, "{}", w.rule);
        // And the deny binds the user's unconfined processes too (no more "needs no entry").
        let w = check_access(&user(), &sd, ObjectType::FileMapping, FILE_MAP_WRITE);
        assert!(!w.allowed && w.rule.contains("denies 0x2"), "{}", w.rule);
        // Reading: the deny does not name it, but the user side has no allow entry either.
        assert!(!check_access(&b, &sd, ObjectType::FileMapping, FILE_MAP_READ).allowed);
        let readable = made_by(&user(), "D:(D;;0x2;;;WD)(A;;GA;;;WD)(A;;GA;;;AC)");
        let r = check_access(&b, &readable, ObjectType::FileMapping, FILE_MAP_READ);
        assert!(r.allowed, "{}", r.rule);
        assert!(!check_access(&b, &readable, ObjectType::FileMapping, FILE_MAP_WRITE).allowed);
    }

    #[test]
    fn entries_are_walked_in_the_order_written() {
        let b = confined(B, &[]);
        let deny_first = made_by(&a(), "D:(D;;GW;;;AC)(A;;GA;;;WD)(A;;GA;;;AC)");
        let c = check_access(&b, &deny_first, ObjectType::FileMapping, FILE_MAP_WRITE);
        assert!(
            !c.allowed && c.rule.contains("entry 1") && c.rule.contains("denies"),
            "{}",
            c.rule
        );
        // An allow before the deny has granted the right already (a non-canonical DACL, as
        // Windows walks it).
        let allow_first = made_by(&a(), "D:(A;;GA;;;WD)(A;;GA;;;AC)(D;;GW;;;AC)");
        let c = check_access(&b, &allow_first, ObjectType::FileMapping, FILE_MAP_WRITE);
        assert!(c.allowed, "{}", c.rule);
        let c = check_access(&b, &allow_first, ObjectType::FileMapping, MAXIMUM_ALLOWED);
        assert_eq!(c.granted, FILE_MAP_ALL_ACCESS, "{}", c.rule);
        let c = check_access(&b, &deny_first, ObjectType::FileMapping, MAXIMUM_ALLOWED);
        assert_eq!(c.granted & FILE_MAP_WRITE, 0, "{}", c.rule);
    }

    #[test]
    fn unconfined_callers_get_the_user_side_only() {
        let u = user();
        // No entry for the user: refused (an unconfined process used to need none).
        let sd = made_by(&a(), &format!("D:(A;;GA;;;PFN:{B})"));
        let c = check_access(&u, &sd, ObjectType::Event, SYNCHRONIZE);
        assert!(!c.allowed, "{}", c.rule);
        assert_eq!(c.missing_entry.as_deref(), Some("(A;;0x100000;;;S-1-22-1-1000)"));
        // App-container entries do not count for it.
        let c = check_access(&u, &sddl("D:(A;;GA;;;AC)"), ObjectType::Event, SYNCHRONIZE);
        assert!(!c.allowed);
        assert!(check_access(&u, &sddl("D:(A;;GA;;;AU)"), ObjectType::Event, GENERIC_ALL).allowed);
        // Full trust is unconfined: the user side only, at Medium.
        let ft = full_trust(A);
        assert!(check_access(&ft, &sddl("D:(A;;GA;;;WD)"), ObjectType::Pipe, GENERIC_ALL).allowed);
        assert!(
            !check_access(&ft, &sddl("D:(A;;GA;;;AC)"), ObjectType::Pipe, GENERIC_READ).allowed
        );
        // Another uid's SID is not the caller's.
        let other = sddl("D:(A;;GA;;;S-1-22-1-1001)");
        assert!(!check_access(&u, &other, ObjectType::Event, SYNCHRONIZE).allowed);
    }

    #[test]
    fn the_owner_has_read_control_and_write_dac_unless_owner_rights_say_otherwise() {
        let u = user();
        let empty = made_by(&u, "D:");
        assert!(check_access(&u, &empty, ObjectType::Event, READ_CONTROL | WRITE_DAC).allowed);
        assert!(!check_access(&u, &empty, ObjectType::Event, SYNCHRONIZE).allowed, "empty DACL");
        let c = check_access(&u, &empty, ObjectType::Event, MAXIMUM_ALLOWED);
        assert_eq!(c.granted, READ_CONTROL | WRITE_DAC, "{}", c.rule);
        // An OW entry replaces the implicit rights.
        let ow = made_by(&u, "D:(A;;0x100000;;;OW)");
        assert!(!check_access(&u, &ow, ObjectType::Event, READ_CONTROL).allowed);
        assert!(check_access(&u, &ow, ObjectType::Event, SYNCHRONIZE).allowed, "OW is the owner");
        // OW is not a SID of an app container's side.
        let b = confined(B, &[]);
        let sd = made_by(&u, "D:(A;;GA;;;OW)(A;;GA;;;WD)");
        assert!(!check_access(&b, &sd, ObjectType::Event, SYNCHRONIZE).allowed);
    }

    #[test]
    fn a_null_dacl_grants_everyone_everything_an_empty_one_nothing() {
        let b = confined(B, &[]);
        let null = made_by(&a(), "D:NO_ACCESS_CONTROL");
        assert_eq!(null.dacl, Dacl::Null);
        for who in [&b, &a(), &user()] {
            let c = check_access(who, &null, ObjectType::FileMapping, FILE_MAP_ALL_ACCESS);
            assert!(c.allowed, "{}: {}", who.describe(), c.rule);
        }
        let c = check_access(&b, &null, ObjectType::Event, MAXIMUM_ALLOWED);
        assert_eq!(c.granted, ObjectType::Event.valid_rights());
        let empty = made_by(&a(), "D:");
        for who in [&b, &a()] {
            assert!(!check_access(who, &empty, ObjectType::Event, SYNCHRONIZE).allowed);
            assert!(!check_access(who, &empty, ObjectType::Event, MAXIMUM_ALLOWED).allowed);
        }
        // A NULL DACL still has the mandatory label: an app container cannot write what an
        // unconfined process created without a Low label.
        let null_medium = made_by(&user(), "D:NO_ACCESS_CONTROL");
        let c = check_access(&b, &null_medium, ObjectType::FileMapping, FILE_MAP_WRITE);
        assert!(!c.allowed && c.rule.contains("mandatory integrity"), "{}", c.rule);
    }

    #[test]
    fn mandatory_labels_keep_lower_callers_from_what_the_policy_names() {
        let b = confined(B, &[]);
        let open = "(A;;GA;;;WD)(A;;GA;;;AC)";
        // An unconfined creator's object without a label: Medium, no-write-up.
        let medium = made_by(&user(), &format!("D:{open}"));
        assert_eq!(medium.label, None);
        let w = check_access(&b, &medium, ObjectType::Event, SYNCHRONIZE | MODIFY_STATE);
        assert!(!w.allowed, "{}", w.rule);
        assert!(w.rule.contains("Low caller") && w.rule.contains("0x2"), "{}", w.rule);
        assert_eq!(w.missing_entry.as_deref(), Some("S:(ML;;NW;;;LW)"));
        assert!(check_access(&b, &medium, ObjectType::Event, SYNCHRONIZE).allowed, "reading up");
        assert!(
            check_access(&b, &medium, ObjectType::Pipe, GENERIC_READ).allowed,
            "FILE_GENERIC_READ keeps READ_CONTROL and SYNCHRONIZE"
        );
        let c = check_access(&b, &medium, ObjectType::FileMapping, MAXIMUM_ALLOWED);
        assert!(c.allowed);
        assert_eq!(c.granted & FILE_MAP_WRITE, 0, "MAXIMUM_ALLOWED without the write");
        assert_ne!(c.granted & FILE_MAP_READ, 0);
        // Labelled Low: an app container may write it.
        let low = made_by(&user(), &format!("D:{open}S:(ML;;NW;;;LW)"));
        assert!(check_access(&b, &low, ObjectType::Event, SYNCHRONIZE | MODIFY_STATE).allowed);
        // No-read-up and no-execute-up.
        let nr = made_by(&user(), &format!("D:{open}S:(ML;;NWNR;;;ME)"));
        assert!(!check_access(&b, &nr, ObjectType::FileMapping, FILE_MAP_READ).allowed);
        let nx = made_by(&user(), &format!("D:{open}S:(ML;;NX;;;ME)"));
        assert!(check_access(&b, &nx, ObjectType::FileMapping, FILE_MAP_WRITE).allowed, "NX only");
        assert!(!check_access(&b, &nx, ObjectType::FileMapping, 0x20).allowed, "FILE_MAP_EXECUTE");
        // The user's processes are Medium: a Medium label does not stop them.
        for sd in [&medium, &nr, &nx] {
            assert!(
                check_access(&user(), sd, ObjectType::FileMapping, FILE_MAP_ALL_ACCESS).allowed
            );
        }
        // What an app container creates is labelled Low.
        let by_container = made_by(&a(), &format!("D:{open}"));
        assert_eq!(by_container.label, Some(MandatoryLabel::LOW));
        assert!(check_access(&b, &by_container, ObjectType::Event, GENERIC_ALL).allowed);
    }

    #[test]
    fn new_object_descriptors_follow_windows_rules() {
        // The creator's user owns it; another owner is refused (1307).
        let d = made_by(&a(), "D:(A;;GA;;;WD)");
        assert_eq!(d.owner, Some(Sid::unix_user(UID)));
        assert!(descriptor_for_new_object(&a(), Some("O:S-1-22-1-1000D:")).is_ok());
        let e = descriptor_for_new_object(&a(), Some("O:BAD:(A;;GA;;;WD)")).unwrap_err();
        assert_eq!(e.code, Win32Error::InvalidOwner, "{}", e.message);
        assert!(e.message.contains("S-1-5-32-544"), "{}", e.message);
        // No D: gives the default DACL, with the text's label kept.
        let d = made_by(&user(), "S:(ML;;NW;;;LW)");
        assert_eq!(d.entries(), default_descriptor(&user()).entries());
        assert_eq!(d.label, Some(MandatoryLabel::LOW));
        // A label above the creator is refused (1299).
        let e = descriptor_for_new_object(&a(), Some("D:S:(ML;;NW;;;ME)")).unwrap_err();
        assert_eq!(e.code, Win32Error::InvalidLabel, "{}", e.message);
        assert!(descriptor_for_new_object(&user(), Some("S:(ML;;NW;;;ME)")).is_ok());
        assert_eq!(
            descriptor_for_new_object(&user(), Some("S:(ML;;NW;;;HI)")).unwrap_err().code,
            Win32Error::InvalidLabel
        );
        // Malformed: 87, naming position and problem.
        let e = descriptor_for_new_object(&a(), Some("D:(A;;GA;;;WD")).unwrap_err();
        assert_eq!(e.code, Win32Error::InvalidParameter);
        assert!(
            e.message.contains("at character 3") && e.message.contains("not closed"),
            "{}",
            e.message
        );
        // What is ignored comes back as notes.
        let n = descriptor_for_new_object(&a(), Some("D:(AU;SA;GA;;;WD)")).unwrap();
        assert_eq!(n.notes.len(), 1, "{:?}", n.notes);
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
    }

    #[test]
    fn an_empty_request_is_refused_for_everyone() {
        let all = SecurityDescriptor::from_sddl("D:NO_ACCESS_CONTROL").unwrap();
        for who in [confined(B, &[]), a(), user()] {
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
        let sd = made_by(
            &a(),
            &format!("D:(A;;GA;;;WD)(D;;0x2;;;AC)(A;;0x6;;;{})", sid::appcontainer_sid(B)),
        );
        let c = check_access(&b, &sd, ObjectType::FileMapping, MAXIMUM_ALLOWED);
        assert!(c.allowed, "{}", c.rule);
        assert_eq!(c.desired, FILE_MAP_READ, "the denied write is not granted");
        let c = check_access(&b, &sd, ObjectType::FileMapping, MAXIMUM_ALLOWED | FILE_MAP_WRITE);
        assert!(!c.allowed);
        let nothing = default_descriptor(&a());
        assert!(!check_access(&b, &nothing, ObjectType::Event, MAXIMUM_ALLOWED).allowed);
        let u = check_access(&user(), &nothing, ObjectType::Event, MAXIMUM_ALLOWED);
        assert!(u.allowed && u.desired == ObjectType::Event.valid_rights(), "{}", u.rule);
    }

    #[test]
    fn release_semaphore_keeps_the_maximum_and_reports_the_previous_count() {
        assert_eq!(semaphore_release(0, 2, 1).unwrap(), 1);
        assert_eq!(semaphore_release(1, 2, 1).unwrap(), 2);
        let e = semaphore_release(2, 2, 1).unwrap_err();
        assert_eq!(e.code, Win32Error::TooManyPosts);
        assert_eq!(e.code.value(), 298);
        assert_eq!(semaphore_release(1, 3, 3).unwrap_err().code, Win32Error::TooManyPosts);
        assert_eq!(
            semaphore_release(u32::MAX - 1, u32::MAX, 5).unwrap_err().code,
            Win32Error::TooManyPosts
        );
        assert_eq!(semaphore_release(0, 2, 0).unwrap_err().code, Win32Error::InvalidParameter);
    }

    #[test]
    fn mutexes_are_owned_recursively_released_by_their_owner_and_abandoned_when_it_ends() {
        let mut m = MutexState::default();
        assert!(m.is_free());
        assert_eq!(m.acquire(1).unwrap(), WaitOutcome::Signalled);
        assert_eq!(m.acquire(1).unwrap(), WaitOutcome::Signalled, "the owner again: recursion");
        assert_eq!(m.recursion, 2);
        assert_eq!(m.acquire(2).unwrap(), WaitOutcome::NotSignalled, "another session waits");
        let e = m.release(2).unwrap_err();
        assert_eq!((e.code, e.code.value()), (Win32Error::NotOwner, 288));
        assert!(!m.release(1).unwrap(), "released once of twice: still owned");
        assert!(m.release(1).unwrap(), "free");
        assert_eq!(m.release(1).unwrap_err().code, Win32Error::NotOwner, "nobody owns it");
        // The owner ends holding it: the next wait gets it, abandoned, once.
        m.acquire(1).unwrap();
        assert!(!m.owner_ended(2));
        assert!(m.owner_ended(1));
        assert!(m.is_free() && m.abandoned);
        assert_eq!(m.acquire(2).unwrap(), WaitOutcome::Abandoned);
        assert_eq!(m.owner, Some(2));
        assert!(m.release(2).unwrap());
        assert_eq!(m.acquire(3).unwrap(), WaitOutcome::Signalled, "abandoned only once");
    }

    #[test]
    fn mutex_and_timer_rights_map_as_windows_maps_them() {
        assert_eq!(ObjectType::Mutex.valid_rights(), 0x001F_0001);
        assert_eq!(ObjectType::WaitableTimer.valid_rights(), 0x001F_0003);
        assert_eq!(ObjectType::Mutex.map_generic(GENERIC_EXECUTE), SYNCHRONIZE);
        assert_eq!(
            ObjectType::WaitableTimer.map_generic(GENERIC_WRITE) & MODIFY_STATE,
            MODIFY_STATE
        );
        assert_eq!(ObjectType::Mutex.map_generic(GENERIC_WRITE) & MUTEX_MODIFY_STATE, 0);
    }

    #[test]
    fn timer_due_times_are_filetimes_or_relative_100ns_units() {
        use std::time::Duration;
        // -10_000_000 is one second from now.
        assert_eq!(
            timer_due(-10_000_000, 0).unwrap(),
            (TimerDue::Relative(Duration::from_secs(1)), None)
        );
        // 2000-01-01T00:00:00Z as a FILETIME.
        let y2k = FILETIME_UNIX_EPOCH + 946_684_800 * 10_000_000;
        assert_eq!(
            timer_due(y2k, 250).unwrap(),
            (
                TimerDue::Absolute(Duration::from_secs(946_684_800)),
                Some(Duration::from_millis(250))
            )
        );
        // 0 and times before 1970: at once (never "disarmed").
        for t in [0, 1, FILETIME_UNIX_EPOCH] {
            assert_eq!(timer_due(t, 0).unwrap().0, TimerDue::Relative(Duration::from_nanos(1)));
        }
        assert_eq!(timer_due(-1, 0).unwrap().0, TimerDue::Relative(Duration::from_nanos(100)));
        assert_eq!(
            timer_due(i64::MIN, 0).unwrap().0,
            TimerDue::Relative(Duration::from_nanos(u64::MAX))
        );
        assert_eq!(timer_due(-1, -1).unwrap_err().code, Win32Error::InvalidParameter);
    }

    /// A COM server's launch and activation permission (`COM_RIGHTS_*`, decimal 11 = 0xB, or
    /// the SDDL letters `CCDCSW`): the default (the user and SYSTEM) admits the user and no
    /// app container; an `AC` or package entry admits them (both sides); an entry granting
    /// activation alone (9) does not let a client start the server (11).
    #[test]
    fn com_permissions_decide_launch_and_activation() {
        const LAUNCH: u32 =
            COM_RIGHTS_EXECUTE | COM_RIGHTS_EXECUTE_LOCAL | COM_RIGHTS_ACTIVATE_LOCAL;
        const ACTIVATE: u32 = COM_RIGHTS_EXECUTE | COM_RIGHTS_ACTIVATE_LOCAL;
        let u = user().user_sid();
        let check = |who: &Principal, text: &str, desired: u32| {
            check_access(who, &sddl(text), ObjectType::ComServer, desired).allowed
        };
        let default = format!("O:{u}G:{u}D:(A;;0xb;;;{u})(A;;0xb;;;SY)");
        assert!(check(&user(), &default, LAUNCH));
        assert!(check(&full_trust(B), &default, LAUNCH), "full trust is the user side alone");
        assert!(!check(&a(), &default, ACTIVATE), "no app container by default");
        let ac = format!("O:{u}D:(A;;CCDCSW;;;{u})(A;;CCDCSW;;;AC)");
        assert!(check(&a(), &ac, LAUNCH));
        let only_b = format!("O:{u}D:(A;;11;;;{u})(A;;11;;;{})", sid::appcontainer_sid(B));
        assert!(check(&confined(B, &[]), &only_b, LAUNCH));
        assert!(!check(&a(), &only_b, LAUNCH), "another package is not named");
        let no_user_side = "D:(A;;11;;;AC)";
        assert!(!check(&a(), no_user_side, LAUNCH), "the user side must grant too");
        let activate_only = format!("O:{u}D:(A;;9;;;{u})");
        assert!(check(&user(), &activate_only, ACTIVATE));
        assert!(!check(&user(), &activate_only, LAUNCH));
        assert!(
            check(&user(), &format!("O:{u}D:(A;;GA;;;{u})"), LAUNCH),
            "GENERIC_ALL maps to every COM right"
        );
    }
}
