//! Security descriptors and their text form, SDDL, as Windows writes them
//! (`ConvertStringSecurityDescriptorToSecurityDescriptor`; the grammar is MS-DTYP 2.5.1.1, the
//! tables are the docs' "Security Descriptor String Format", "ACE Strings" and "SID Strings").
//!
//! ```text
//! O:owner G:group D:dacl-flags(ace)(ace)… S:sacl-flags(ace)(ace)…
//! ace = (type;flags;rights;object-guid;inherit-object-guid;trustee[;(condition)])
//! ```
//!
//! Every part is parsed; what the part means on Linux decides what happens to it:
//!
//! | part | appipc |
//! |---|---|
//! | `O:` owner | kept; it must be the creator's user (Windows: `ERROR_INVALID_OWNER` otherwise) |
//! | `G:` group | kept, no effect (Windows' access check does not use it either) |
//! | `D:` entries `A`, `D` | the DACL the access check walks, in the order written |
//! | `D:NO_ACCESS_CONTROL` | a NULL DACL: everyone gets every right |
//! | `D:` with no entries | an empty DACL: nobody gets a right (the owner keeps `READ_CONTROL`, `WRITE_DAC`) |
//! | no `D:` at all | the creator's default DACL |
//! | `S:(ML;;NW;;;LW)` | the mandatory label (integrity level and no-write/read/execute-up policy) |
//! | flags `P`, `AI`, `AR`; entry flags `CI`, `OI`, `NP`, `ID` | inheritance: named objects have no children; kept, no effect, logged |
//! | entry flag `IO` (inherit only) | the entry applies to no named object: dropped, logged |
//! | `OA`, `OD` without an object type | the same as `A`, `D` (as Windows converts them) |
//! | `OA`, `OD` with an object type | directory-service objects only: dropped, logged |
//! | `AU`, `AL`, `OU`, `OL`, `XU` audit and alarm entries | appipc does not audit: dropped, logged |
//! | `XA`, `ZA` conditional allow | the condition is not evaluated; an allow whose condition is unknown grants nothing (MS-DTYP 2.4.4.17.3): dropped, logged |
//! | `XD` conditional deny | likewise unknown, and an unknown deny denies: kept as a deny, logged |
//! | `RA` resource attribute, `SP` scoped policy | no claims or central policies here: dropped, logged |
//!
//! Rights are two-letter codes (`GA`, `GR`, `GW`, `GX`, `RC`, `SD`, `WD`, `WO`, `RP`, `WP`,
//! `CC`, `DC`, `LC`, `SW`, `LO`, `DT`, `CR`, `FA`, `FR`, `FW`, `FX`, `KA`, `KR`, `KW`, `KX`,
//! `NR`, `NW`, `NX`) or a number: `0x` and up to 8 hex digits, `0` and octal digits, or decimal
//! (MS-DTYP's `ace-rights`). Trustees are SID strings (`S-1-…`), the aliases of the docs' SID
//! table that stand for a well-known SID ([`SID_ALIASES`]; the domain-relative ones such as
//! `DA` name no SID without a Windows domain and are refused), and appipc's two extensions
//! `PFN:<package family name>` (the package's SID) and `CAP:<capability>` (the capability's
//! SID). Tokens are matched regardless of case, as RFC 5234 reads the quoted strings of
//! MS-DTYP's ABNF.
//!
//! Malformed text is refused with the character position and the problem, quoting at most
//! [`QUOTED_SDDL_MAX`] bytes of it.

use std::fmt::{self, Write};

use crate::sid::{self, Sid};

/// The most of a descriptor's text an error or a refusal quotes. The creator chooses the text
/// (as long as a frame allows, 128 KiB) and refusals are kept in the broker's decision log.
pub const QUOTED_SDDL_MAX: usize = 256;

/// `READ_CONTROL`.
pub const READ_CONTROL: u32 = 0x0002_0000;
/// `WRITE_DAC`.
pub const WRITE_DAC: u32 = 0x0004_0000;
/// `WRITE_OWNER`.
pub const WRITE_OWNER: u32 = 0x0008_0000;
/// `DELETE`.
pub const DELETE: u32 = 0x0001_0000;
/// `SYSTEM_MANDATORY_LABEL_NO_WRITE_UP` (`NW`).
pub const NO_WRITE_UP: u32 = 0x1;
/// `SYSTEM_MANDATORY_LABEL_NO_READ_UP` (`NR`).
pub const NO_READ_UP: u32 = 0x2;
/// `SYSTEM_MANDATORY_LABEL_NO_EXECUTE_UP` (`NX`).
pub const NO_EXECUTE_UP: u32 = 0x4;

/// The two-letter rights codes of the docs' "ACE Strings" table and their values.
pub const RIGHTS_CODES: &[(&str, u32)] = &[
    ("GA", 0x1000_0000),
    ("GR", 0x8000_0000),
    ("GW", 0x4000_0000),
    ("GX", 0x2000_0000),
    ("RC", READ_CONTROL),
    ("SD", DELETE),
    ("WD", WRITE_DAC),
    ("WO", WRITE_OWNER),
    ("RP", 0x0010),
    ("WP", 0x0020),
    ("CC", 0x0001),
    ("DC", 0x0002),
    ("LC", 0x0004),
    ("SW", 0x0008),
    ("LO", 0x0080),
    ("DT", 0x0040),
    ("CR", 0x0100),
    ("FA", 0x001F_01FF),
    ("FR", 0x0012_0089),
    ("FW", 0x0012_0116),
    ("FX", 0x0012_00A0),
    ("KA", 0x000F_003F),
    ("KR", 0x0002_0019),
    ("KW", 0x0002_0006),
    ("KX", 0x0002_0019),
    ("NR", NO_READ_UP),
    ("NW", NO_WRITE_UP),
    ("NX", NO_EXECUTE_UP),
];

/// The SID aliases of the docs' "SID Strings" table that stand for a well-known SID, and
/// that SID. (`MS`, RDS management servers, is in MS-DTYP's `sid-token` list.)
pub const SID_ALIASES: &[(&str, &str)] = &[
    ("WD", "S-1-1-0"),
    ("CO", "S-1-3-0"),
    ("CG", "S-1-3-1"),
    ("OW", "S-1-3-4"),
    ("NU", "S-1-5-2"),
    ("IU", "S-1-5-4"),
    ("SU", "S-1-5-6"),
    ("AN", "S-1-5-7"),
    ("ED", "S-1-5-9"),
    ("PS", "S-1-5-10"),
    ("AU", "S-1-5-11"),
    ("RC", "S-1-5-12"),
    ("SY", "S-1-5-18"),
    ("LS", "S-1-5-19"),
    ("NS", "S-1-5-20"),
    ("BA", "S-1-5-32-544"),
    ("BU", "S-1-5-32-545"),
    ("BG", "S-1-5-32-546"),
    ("PU", "S-1-5-32-547"),
    ("AO", "S-1-5-32-548"),
    ("SO", "S-1-5-32-549"),
    ("PO", "S-1-5-32-550"),
    ("BO", "S-1-5-32-551"),
    ("RE", "S-1-5-32-552"),
    ("RS", "S-1-5-32-553"),
    ("RU", "S-1-5-32-554"),
    ("RD", "S-1-5-32-555"),
    ("NO", "S-1-5-32-556"),
    ("MU", "S-1-5-32-558"),
    ("LU", "S-1-5-32-559"),
    ("IS", "S-1-5-32-568"),
    ("CY", "S-1-5-32-569"),
    ("ER", "S-1-5-32-573"),
    ("CD", "S-1-5-32-574"),
    ("RA", "S-1-5-32-575"),
    ("ES", "S-1-5-32-576"),
    ("MS", "S-1-5-32-577"),
    ("HA", "S-1-5-32-578"),
    ("AA", "S-1-5-32-579"),
    ("RM", "S-1-5-32-580"),
    ("WR", "S-1-5-33"),
    ("UD", "S-1-5-84-0-0-0-0-0"),
    ("AC", "S-1-15-2-1"),
    ("LW", "S-1-16-4096"),
    ("ME", "S-1-16-8192"),
    ("MP", "S-1-16-8448"),
    ("HI", "S-1-16-12288"),
    ("SI", "S-1-16-16384"),
    ("SS", "S-1-18-2"),
];

/// The aliases of the docs' table that are relative to a Windows domain (or to the machine's
/// account domain): without one they name no SID, and appipc refuses them.
pub const DOMAIN_ALIASES: &[(&str, &str)] = &[
    ("AP", "protected users"),
    ("CA", "certificate publishers"),
    ("CN", "cloneable domain controllers"),
    ("DA", "domain administrators"),
    ("DC", "domain computers"),
    ("DD", "domain controllers"),
    ("DG", "domain guests"),
    ("DU", "domain users"),
    ("EA", "enterprise administrators"),
    ("EK", "enterprise key admins"),
    ("KA", "domain key admins"),
    ("LA", "the local administrator account"),
    ("LG", "the local guest account"),
    ("PA", "group policy administrators"),
    ("RO", "enterprise read-only domain controllers"),
    ("SA", "schema administrators"),
];

/// Why SDDL text was refused: where and what.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("security descriptor {quoted}: at character {position}: {problem}")]
pub struct SddlError {
    /// 1-based character position of the problem.
    pub position: usize,
    /// What is wrong there.
    pub problem: String,
    /// The text (at most [`QUOTED_SDDL_MAX`] bytes of it, around the problem), quoted.
    pub quoted: String,
}

/// Entry flags (`ACE_HEADER.AceFlags`).
pub mod ace_flags {
    /// `OBJECT_INHERIT_ACE` (`OI`).
    pub const OBJECT_INHERIT: u8 = 0x01;
    /// `CONTAINER_INHERIT_ACE` (`CI`).
    pub const CONTAINER_INHERIT: u8 = 0x02;
    /// `NO_PROPAGATE_INHERIT_ACE` (`NP`).
    pub const NO_PROPAGATE_INHERIT: u8 = 0x04;
    /// `INHERIT_ONLY_ACE` (`IO`).
    pub const INHERIT_ONLY: u8 = 0x08;
    /// `INHERITED_ACE` (`ID`).
    pub const INHERITED: u8 = 0x10;
    /// `SUCCESSFUL_ACCESS_ACE_FLAG` (`SA`).
    pub const SUCCESSFUL_ACCESS: u8 = 0x40;
    /// `FAILED_ACCESS_ACE_FLAG` (`FA`).
    pub const FAILED_ACCESS: u8 = 0x80;
    /// The codes, in the order `to_sddl` writes them.
    pub const CODES: &[(&str, u8)] = &[
        ("OI", OBJECT_INHERIT),
        ("CI", CONTAINER_INHERIT),
        ("NP", NO_PROPAGATE_INHERIT),
        ("IO", INHERIT_ONLY),
        ("ID", INHERITED),
        ("SA", SUCCESSFUL_ACCESS),
        ("FA", FAILED_ACCESS),
    ];
}

/// One access control entry of a DACL, as the access check uses it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Ace {
    /// Allow (`A`) or deny (`D`).
    pub allow: bool,
    /// Its flags ([`ace_flags`]); none of them changes what the entry does to a named object.
    pub flags: u8,
    /// Whom.
    pub sid: Sid,
    /// Which rights (generic rights allowed; mapped at check time).
    pub mask: u32,
}

impl Ace {
    /// An entry without flags.
    pub fn new(allow: bool, sid: Sid, mask: u32) -> Ace {
        Ace { allow, flags: 0, sid, mask }
    }

    /// The entry in SDDL: `(A;;GR;;;S-1-15-2-…)`.
    pub fn to_sddl(&self) -> String {
        format!(
            "({};{};{};;;{})",
            if self.allow { "A" } else { "D" },
            flag_codes(self.flags),
            rights_text(self.mask),
            sid_text(&self.sid)
        )
    }
}

/// The ACL flags of `D:` or `S:` (`SE_DACL_PROTECTED`, …). They steer inheritance, which named
/// objects do not have; kept so the text reads back the same.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct AclFlags {
    /// `P`.
    pub protected: bool,
    /// `AR`.
    pub auto_inherit_req: bool,
    /// `AI`.
    pub auto_inherited: bool,
}

impl AclFlags {
    fn is_empty(self) -> bool {
        !(self.protected || self.auto_inherit_req || self.auto_inherited)
    }

    fn write(self, out: &mut String) {
        for (on, code) in
            [(self.protected, "P"), (self.auto_inherit_req, "AR"), (self.auto_inherited, "AI")]
        {
            if on {
                out.push_str(code);
            }
        }
    }
}

/// A descriptor's DACL.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Dacl {
    /// No `D:` in the text: the object gets its creator's default DACL.
    NotPresent,
    /// `D:NO_ACCESS_CONTROL`, a NULL DACL: every right to everyone.
    Null,
    /// The entries, in order (none: nobody is granted anything).
    Entries(Vec<Ace>),
}

/// A mandatory label (`S:(ML;;NW;;;LW)`): the object's integrity level and what a caller of a
/// lower level may not do.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MandatoryLabel {
    /// The integrity level (the RID of `S-1-16-<rid>`: 0x1000 Low, 0x2000 Medium, …).
    pub level: u32,
    /// [`NO_WRITE_UP`], [`NO_READ_UP`], [`NO_EXECUTE_UP`].
    pub policy: u32,
}

impl MandatoryLabel {
    /// The label Windows gives what an app container creates: Low, no-write-up.
    pub const LOW: MandatoryLabel = MandatoryLabel { level: 0x1000, policy: NO_WRITE_UP };

    /// `(ML;;NW;;;LW)`.
    pub fn to_sddl(&self) -> String {
        let mut policy = String::new();
        for (bit, code) in [(NO_WRITE_UP, "NW"), (NO_READ_UP, "NR"), (NO_EXECUTE_UP, "NX")] {
            if self.policy & bit != 0 {
                policy.push_str(code);
            }
        }
        format!("(ML;;{policy};;;{})", sid_text(&Sid::integrity_level(self.level)))
    }
}

/// A security descriptor: owner, group, DACL, and from the SACL the mandatory label.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SecurityDescriptor {
    /// `O:`; `None` until the object is created (then the creator's user).
    pub owner: Option<Sid>,
    /// `G:`.
    pub group: Option<Sid>,
    /// `D:`.
    pub dacl: Dacl,
    /// `D:`'s flags.
    pub dacl_flags: AclFlags,
    /// Whether the text has `S:`.
    pub sacl_present: bool,
    /// `S:`'s flags.
    pub sacl_flags: AclFlags,
    /// The mandatory label (`None`: the object has none and counts as Medium, no-write-up).
    pub label: Option<MandatoryLabel>,
}

impl Default for SecurityDescriptor {
    /// Nothing given: no owner, no DACL (the creator's default applies), no label.
    fn default() -> SecurityDescriptor {
        SecurityDescriptor {
            owner: None,
            group: None,
            dacl: Dacl::NotPresent,
            dacl_flags: AclFlags::default(),
            sacl_present: false,
            sacl_flags: AclFlags::default(),
            label: None,
        }
    }
}

/// What [`SecurityDescriptor::parse`] gives: the descriptor, and what of the text it set aside
/// (one line each, for the log).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Parsed {
    /// The descriptor.
    pub descriptor: SecurityDescriptor,
    /// What was ignored or has no effect here, and why.
    pub notes: Vec<String>,
}

impl SecurityDescriptor {
    /// A descriptor with these DACL entries (and nothing else).
    pub fn with_entries(entries: Vec<Ace>) -> SecurityDescriptor {
        SecurityDescriptor { dacl: Dacl::Entries(entries), ..SecurityDescriptor::default() }
    }

    /// Appends an allow entry (a DACL not present or NULL becomes one with that entry).
    pub fn allow(mut self, sid: Sid, mask: u32) -> SecurityDescriptor {
        match &mut self.dacl {
            Dacl::Entries(v) => v.push(Ace::new(true, sid, mask)),
            other => *other = Dacl::Entries(vec![Ace::new(true, sid, mask)]),
        }
        self
    }

    /// The DACL's entries (none for a NULL or absent DACL).
    pub fn entries(&self) -> &[Ace] {
        match &self.dacl {
            Dacl::Entries(v) => v,
            Dacl::Null | Dacl::NotPresent => &[],
        }
    }

    /// Parses SDDL text (see the module documentation).
    pub fn parse(text: &str) -> Result<Parsed, SddlError> {
        Parser { text, pos: 0, notes: Vec::new() }.descriptor()
    }

    /// [`SecurityDescriptor::parse`] without the notes.
    pub fn from_sddl(text: &str) -> Result<SecurityDescriptor, SddlError> {
        SecurityDescriptor::parse(text).map(|p| p.descriptor)
    }

    /// The SDDL text of the descriptor as appipc enforces it (entries it set aside are not
    /// in it); it parses back to the same descriptor.
    pub fn to_sddl(&self) -> String {
        let mut s = String::new();
        if let Some(o) = &self.owner {
            let _ = write!(s, "O:{}", sid_text(o));
        }
        if let Some(g) = &self.group {
            let _ = write!(s, "G:{}", sid_text(g));
        }
        match &self.dacl {
            Dacl::NotPresent => {}
            Dacl::Null => {
                s.push_str("D:");
                self.dacl_flags.write(&mut s);
                s.push_str("NO_ACCESS_CONTROL");
            }
            Dacl::Entries(v) => {
                s.push_str("D:");
                self.dacl_flags.write(&mut s);
                for a in v {
                    s.push_str(&a.to_sddl());
                }
            }
        }
        if self.sacl_present || self.label.is_some() || !self.sacl_flags.is_empty() {
            s.push_str("S:");
            self.sacl_flags.write(&mut s);
            if let Some(l) = &self.label {
                s.push_str(&l.to_sddl());
            }
        }
        s
    }
}

/// The descriptor's SDDL for a message: whole, or its first [`QUOTED_SDDL_MAX`] bytes and how
/// many entries it has.
pub fn quoted_sddl(sd: &SecurityDescriptor) -> String {
    let text = sd.to_sddl();
    if text.len() <= QUOTED_SDDL_MAX {
        return text;
    }
    let end = floor_boundary(&text, QUOTED_SDDL_MAX);
    format!("{}… ({} entries)", &text[..end], sd.entries().len())
}

fn floor_boundary(s: &str, mut i: usize) -> usize {
    i = i.min(s.len());
    while !s.is_char_boundary(i) {
        i -= 1;
    }
    i
}

/// A SID as SDDL writes it: its alias if it has one, else `S-1-…`.
pub fn sid_text(sid: &Sid) -> String {
    let text = sid.to_string();
    SID_ALIASES
        .iter()
        .find(|(_, s)| *s == text)
        .map(|(alias, _)| (*alias).to_owned())
        .unwrap_or(text)
}

/// Rights as SDDL text: the generic and standard codes when they say it all, else hex.
pub fn rights_text(mask: u32) -> String {
    let codes = &RIGHTS_CODES[..8];
    let covered = codes.iter().fold(0, |acc, (_, v)| acc | v);
    if mask != 0 && mask & !covered == 0 {
        codes.iter().filter(|(_, v)| mask & v != 0).map(|(c, _)| *c).collect()
    } else {
        format!("{mask:#x}")
    }
}

fn flag_codes(flags: u8) -> String {
    ace_flags::CODES.iter().filter(|(_, v)| flags & v != 0).map(|(c, _)| *c).collect()
}

/// A trustee of an entry: a SID string, an alias, or appipc's `PFN:`/`CAP:` extensions.
fn trustee(s: &str) -> Result<Sid, String> {
    let upper = s.to_ascii_uppercase();
    if upper.starts_with("PFN:") {
        let pfn = &s[4..];
        return pfn
            .parse::<crate::identity::PackageFamilyName>()
            .map(|p| sid::appcontainer_sid(p.as_str()))
            .map_err(|e| format!("trustee {s:?}: {e}"));
    }
    if upper.starts_with("CAP:") {
        let cap = &s[4..];
        if cap.is_empty() || !cap.chars().all(|c| c.is_ascii_alphanumeric() || "._-".contains(c)) {
            return Err(format!("trustee {s:?}: not a capability name"));
        }
        return Ok(sid::capability_sid(cap));
    }
    sid_string(s)
}

/// An owner, group or trustee SID: an alias or `S-1-…`.
fn sid_string(s: &str) -> Result<Sid, String> {
    let upper = s.to_ascii_uppercase();
    if let Some((_, text)) = SID_ALIASES.iter().find(|(a, _)| *a == upper) {
        return Ok(text.parse().expect("the alias table holds valid SIDs"));
    }
    if let Some((alias, what)) = DOMAIN_ALIASES.iter().find(|(a, _)| *a == upper) {
        return Err(format!(
            "{alias} ({what}) is relative to a Windows domain, which appipc has none of; \
             name the SID"
        ));
    }
    if upper.starts_with("S-") {
        return s.parse::<Sid>().map_err(|e| e.to_string());
    }
    if s.is_empty() {
        return Err("a SID is missing".into());
    }
    Err(format!(
        "{s:?} is neither a SID (S-1-…) nor an alias of the SID table (WD, AU, AC, SY, LW, …)"
    ))
}

/// Rights: codes or a number (MS-DTYP `ace-rights`).
fn rights(s: &str) -> Result<u32, String> {
    let b = s.as_bytes();
    if b.len() >= 2 && b[0] == b'0' && (b[1] == b'x' || b[1] == b'X') {
        let hex = &s[2..];
        if hex.is_empty() || hex.len() > 8 || !hex.bytes().all(|c| c.is_ascii_hexdigit()) {
            return Err(format!("rights {s:?}: 0x and 1 to 8 hex digits"));
        }
        return Ok(u32::from_str_radix(hex, 16).expect("checked hex"));
    }
    if !b.is_empty() && b.iter().all(u8::is_ascii_digit) {
        if b.len() > 1 && b[0] == b'0' {
            if !b.iter().all(|c| (b'0'..=b'7').contains(c)) {
                return Err(format!("rights {s:?}: a number starting with 0 is octal"));
            }
            return u32::from_str_radix(&s[1..], 8)
                .map_err(|_| format!("rights {s:?}: more than 32 bits"));
        }
        return s.parse().map_err(|_| format!("rights {s:?}: more than 32 bits"));
    }
    if !b.len().is_multiple_of(2) || !s.is_ascii() {
        return Err(format!("rights {s:?}: two-letter codes (GA, GR, …) or a number"));
    }
    let mut mask = 0;
    for code in b.chunks(2) {
        let code = String::from_utf8_lossy(code).to_ascii_uppercase();
        match RIGHTS_CODES.iter().find(|(c, _)| *c == code) {
            Some((_, v)) => mask |= v,
            None => return Err(format!("unknown right {code:?} in {s:?}")),
        }
    }
    Ok(mask)
}

fn is_guid(s: &str) -> bool {
    let groups: Vec<&str> = s.split('-').collect();
    groups.len() == 5
        && groups
            .iter()
            .zip([8, 4, 4, 4, 12])
            .all(|(g, n)| g.len() == n && g.bytes().all(|c| c.is_ascii_hexdigit()))
}

/// The entry types of the docs' "ACE Strings" table.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum AceType {
    Allow,
    Deny,
    ObjectAllow,
    ObjectDeny,
    Audit,
    Alarm,
    ObjectAudit,
    ObjectAlarm,
    Label,
    CallbackAllow,
    CallbackDeny,
    ResourceAttribute,
    ScopedPolicy,
    CallbackAudit,
    CallbackObjectAllow,
}

const ACE_TYPES: &[(&str, AceType)] = &[
    ("A", AceType::Allow),
    ("D", AceType::Deny),
    ("OA", AceType::ObjectAllow),
    ("OD", AceType::ObjectDeny),
    ("AU", AceType::Audit),
    ("AL", AceType::Alarm),
    ("OU", AceType::ObjectAudit),
    ("OL", AceType::ObjectAlarm),
    ("ML", AceType::Label),
    ("XA", AceType::CallbackAllow),
    ("XD", AceType::CallbackDeny),
    ("RA", AceType::ResourceAttribute),
    ("SP", AceType::ScopedPolicy),
    ("XU", AceType::CallbackAudit),
    ("ZA", AceType::CallbackObjectAllow),
];

impl AceType {
    fn takes_guids(self) -> bool {
        matches!(
            self,
            AceType::ObjectAllow
                | AceType::ObjectDeny
                | AceType::ObjectAudit
                | AceType::ObjectAlarm
                | AceType::CallbackObjectAllow
        )
    }

    /// The seventh field: a condition, or a resource attribute.
    fn takes_extra(self) -> bool {
        matches!(
            self,
            AceType::CallbackAllow
                | AceType::CallbackDeny
                | AceType::CallbackAudit
                | AceType::CallbackObjectAllow
                | AceType::ResourceAttribute
        )
    }
}

/// One entry as written.
struct RawAce<'a> {
    ty: AceType,
    code: &'a str,
    flags: u8,
    mask: u32,
    object_guid: &'a str,
    inherit_guid: &'a str,
    sid: Sid,
    text: &'a str,
}

struct Parser<'a> {
    text: &'a str,
    pos: usize,
    notes: Vec<String>,
}

impl<'a> Parser<'a> {
    fn rest(&self) -> &'a str {
        &self.text[self.pos..]
    }

    fn fail<T>(&self, at: usize, problem: impl Into<String>) -> Result<T, SddlError> {
        let at = floor_boundary(self.text, at);
        Err(SddlError {
            position: self.text[..at].chars().count() + 1,
            problem: problem.into(),
            quoted: quote_around(self.text, at),
        })
    }

    fn skip_spaces(&mut self) {
        let r = self.rest();
        self.pos += r.len() - r.trim_start().len();
    }

    /// `O:`, `G:`, `D:` or `S:` here?
    fn component(&self) -> Option<u8> {
        let b = self.rest().as_bytes();
        match b {
            [c, b':', ..] if b"OGDSogds".contains(c) => Some(c.to_ascii_uppercase()),
            _ => None,
        }
    }

    fn descriptor(mut self) -> Result<Parsed, SddlError> {
        let mut sd = SecurityDescriptor::default();
        let mut seen = Vec::new();
        loop {
            self.skip_spaces();
            if self.rest().is_empty() {
                break;
            }
            let at = self.pos;
            let Some(c) = self.component() else {
                return self.fail(at, "expected O:, G:, D: or S:");
            };
            if seen.contains(&c) {
                return self.fail(at, format!("a second {}: (each part is given once)", c as char));
            }
            seen.push(c);
            self.pos += 2;
            match c {
                b'O' => sd.owner = Some(self.component_sid("owner")?),
                b'G' => sd.group = Some(self.component_sid("group")?),
                b'D' => self.dacl(&mut sd)?,
                _ => self.sacl(&mut sd)?,
            }
        }
        if sd.group.is_some() {
            self.notes.push("the group (G:) has no effect on access, on Windows as here".into());
        }
        Ok(Parsed { descriptor: sd, notes: self.notes })
    }

    /// The SID after `O:` or `G:`: an alias (two letters) or `S-1-…` up to the next part.
    fn component_sid(&mut self, what: &str) -> Result<Sid, SddlError> {
        let at = self.pos;
        let r = self.rest();
        if r.is_empty() || self.component().is_some() {
            return self.fail(at, format!("the {what} SID is missing"));
        }
        let len = if r.len() >= 2 && (r.starts_with("S-") || r.starts_with("s-")) {
            sid_len(r)
        } else {
            r.bytes().take_while(u8::is_ascii_alphabetic).take(2).count()
        };
        if len == 0 {
            return self.fail(at, format!("the {what} SID is missing"));
        }
        let s = &r[..len];
        match sid_string(s) {
            Ok(sid) => {
                self.pos += len;
                Ok(sid)
            }
            Err(e) => self.fail(at, format!("{what}: {e}")),
        }
    }

    /// The flags after `D:` or `S:` (and whether one is `NO_ACCESS_CONTROL`).
    fn acl_flags(&mut self) -> Result<(AclFlags, bool), SddlError> {
        let mut f = AclFlags::default();
        let mut null = false;
        loop {
            self.skip_spaces();
            let at = self.pos;
            let r = self.rest();
            if r.is_empty() || self.component().is_some() {
                return Ok((f, null));
            }
            if r.starts_with('(') {
                if null {
                    return self.fail(at, "a NULL ACL (NO_ACCESS_CONTROL) has no entries");
                }
                return Ok((f, null));
            }
            let head = r.get(..r.len().min(17)).unwrap_or(r).to_ascii_uppercase();
            let len = if head.starts_with("NO_ACCESS_CONTROL") {
                if null {
                    return self.fail(at, "NO_ACCESS_CONTROL twice");
                }
                null = true;
                17
            } else if head.starts_with("AR") {
                f.auto_inherit_req = true;
                2
            } else if head.starts_with("AI") {
                f.auto_inherited = true;
                2
            } else if head.starts_with('P') {
                f.protected = true;
                1
            } else {
                return self.fail(at, "expected an ACL flag (P, AR, AI, NO_ACCESS_CONTROL) or '('");
            };
            self.pos += len;
        }
    }

    fn dacl(&mut self, sd: &mut SecurityDescriptor) -> Result<(), SddlError> {
        let (flags, null) = self.acl_flags()?;
        sd.dacl_flags = flags;
        if !flags.is_empty() {
            self.notes.push(
                "the DACL's flags (P, AR, AI) steer inheritance, which named objects do not have"
                    .into(),
            );
        }
        if null {
            sd.dacl = Dacl::Null;
            return Ok(());
        }
        let mut entries = Vec::new();
        while let Some(raw) = self.ace()? {
            let ace_text = raw.text;
            let effective = match raw.ty {
                AceType::Allow | AceType::Deny => Some(raw.ty == AceType::Allow),
                AceType::ObjectAllow | AceType::ObjectDeny if raw.object_guid.is_empty() => {
                    if !raw.inherit_guid.is_empty() {
                        self.notes.push(format!(
                            "{ace_text}: the inherited object type applies to inheritance only"
                        ));
                    }
                    Some(raw.ty == AceType::ObjectAllow)
                }
                AceType::ObjectAllow | AceType::ObjectDeny => {
                    self.notes.push(format!(
                        "{ace_text} ignored: an entry for an object type applies to \
                         directory-service objects only"
                    ));
                    None
                }
                AceType::CallbackDeny => {
                    self.notes.push(format!(
                        "{ace_text} applied as an unconditional deny: appipc does not evaluate \
                         conditions, and a deny entry whose condition is unknown denies \
                         (MS-DTYP 2.4.4.17.3)"
                    ));
                    Some(false)
                }
                AceType::CallbackAllow | AceType::CallbackObjectAllow => {
                    self.notes.push(format!(
                        "{ace_text} ignored: appipc does not evaluate conditions, and an allow \
                         entry whose condition is unknown grants nothing (MS-DTYP 2.4.4.17.3)"
                    ));
                    None
                }
                _ => {
                    self.notes.push(format!(
                        "{ace_text} ignored: a {} entry has no effect in a DACL",
                        raw.code
                    ));
                    None
                }
            };
            let Some(allow) = effective else { continue };
            if raw.flags & ace_flags::INHERIT_ONLY != 0 {
                self.notes.push(format!(
                    "{ace_text} ignored: an inherit-only entry does not apply to the object itself"
                ));
                continue;
            }
            if raw.flags != 0 {
                self.notes.push(format!(
                    "{ace_text}: its flags ({}) have no effect on a named object",
                    flag_codes(raw.flags)
                ));
            }
            entries.push(Ace { allow, flags: raw.flags, sid: raw.sid, mask: raw.mask });
        }
        sd.dacl = Dacl::Entries(entries);
        Ok(())
    }

    fn sacl(&mut self, sd: &mut SecurityDescriptor) -> Result<(), SddlError> {
        let (flags, _null) = self.acl_flags()?;
        sd.sacl_present = true;
        sd.sacl_flags = flags;
        if !flags.is_empty() {
            self.notes.push(
                "the SACL's flags (P, AR, AI) steer inheritance, which named objects do not have"
                    .into(),
            );
        }
        while let Some(raw) = self.ace()? {
            let ace_text = raw.text;
            match raw.ty {
                AceType::Label => {
                    if raw.flags & ace_flags::INHERIT_ONLY != 0 {
                        self.notes.push(format!(
                            "{ace_text} ignored: an inherit-only label does not label the object"
                        ));
                    } else if sd.label.is_some() {
                        self.notes
                            .push(format!("{ace_text} ignored: the first label is the object's"));
                    } else {
                        let level = raw.sid.integrity_rid().expect("checked in ace()");
                        sd.label = Some(MandatoryLabel { level, policy: raw.mask });
                    }
                }
                AceType::Audit
                | AceType::Alarm
                | AceType::ObjectAudit
                | AceType::ObjectAlarm
                | AceType::CallbackAudit => self
                    .notes
                    .push(format!("{ace_text} ignored: appipc does not audit or raise alarms")),
                AceType::ResourceAttribute | AceType::ScopedPolicy => self.notes.push(format!(
                    "{ace_text} ignored: appipc has no resource claims or central access policies"
                )),
                _ => self.notes.push(format!(
                    "{ace_text} ignored: a {} entry has no effect in a SACL",
                    raw.code
                )),
            }
        }
        Ok(())
    }

    /// One entry, if one starts here (after spaces).
    fn ace(&mut self) -> Result<Option<RawAce<'a>>, SddlError> {
        self.skip_spaces();
        if !self.rest().starts_with('(') {
            return Ok(None);
        }
        let start = self.pos;
        self.pos += 1;
        let mut fields: Vec<(usize, &'a str)> = Vec::with_capacity(6);
        // Six fields, separated by ';', the sixth ended by ')' or by ';' and a seventh.
        let mut ended = false;
        for i in 0..6 {
            let at = self.pos;
            let r = self.rest();
            let Some(end) = r.find([';', ')', '(']) else {
                return self.fail(start, "an entry is not closed with ')'");
            };
            let sep = r.as_bytes()[end];
            fields.push((at, &r[..end]));
            self.pos += end + 1;
            match (i, sep) {
                (_, b'(') => return self.fail(at + end, "'(' inside an entry's field"),
                (5, b')') => ended = true,
                (5, _) => {}
                (_, b')') => {
                    return self.fail(
                        at + end,
                        format!(
                            "an entry has six fields \
                             (type;flags;rights;object-guid;inherit-object-guid;trustee), this \
                             one {}",
                            i + 1
                        ),
                    );
                }
                _ => {}
            }
        }
        let (ty_at, code) = fields[0];
        let Some(&(_, ty)) = ACE_TYPES.iter().find(|(c, _)| c.eq_ignore_ascii_case(code)) else {
            return self.fail(
                ty_at,
                format!(
                    "unknown entry type {code:?} (A, D, OA, OD, AU, AL, OU, OL, ML, XA, XD, \
                     RA, SP, XU, ZA)"
                ),
            );
        };
        if ty.takes_extra() && ended {
            return self.fail(
                self.pos - 1,
                format!("a {code} entry ends with a condition or attribute in parentheses"),
            );
        }
        if !ty.takes_extra() && !ended {
            return self.fail(self.pos - 1, "an entry has six fields; expected ')'");
        }
        if ty.takes_extra() {
            self.skip_spaces();
            let at = self.pos;
            if !self.rest().starts_with('(') {
                return self.fail(at, "expected '(' starting the condition or attribute");
            }
            let len = match balanced_len(self.rest()) {
                Ok(len) => len,
                Err(why) => return self.fail(at, why),
            };
            self.pos += len;
            self.skip_spaces();
            if !self.rest().starts_with(')') {
                let at = self.pos;
                return self.fail(at, "expected ')' closing the entry");
            }
            self.pos += 1;
        }
        let (flags, mask, object_guid, inherit_guid, sid) = self.entry_values(ty, code, &fields)?;
        let text = &self.text[start..self.pos];
        Ok(Some(RawAce { ty, code, flags, mask, object_guid, inherit_guid, sid, text }))
    }

    /// The values of an entry's fields 2 to 6, checked against its type.
    fn entry_values(
        &self,
        ty: AceType,
        code: &str,
        fields: &[(usize, &'a str)],
    ) -> Result<(u8, u32, &'a str, &'a str, Sid), SddlError> {
        let (flags_at, flags_text) = fields[1];
        let flags = self.entry_flags(flags_at, flags_text)?;
        let (rights_at, rights_field) = fields[2];
        let mask = match rights(rights_field) {
            Ok(m) => m,
            Err(e) => return self.fail(rights_at, e),
        };
        let (og_at, object_guid) = fields[3];
        let (ig_at, inherit_guid) = fields[4];
        for (at, g) in [(og_at, object_guid), (ig_at, inherit_guid)] {
            if g.is_empty() {
                continue;
            }
            if !ty.takes_guids() {
                return self.fail(
                    at,
                    format!("a {code} entry has no object types (only OA, OD, OU, OL, ZA do)"),
                );
            }
            if !is_guid(g) {
                return self.fail(
                    at,
                    format!("{g:?} is not a GUID (xxxxxxxx-xxxx-xxxx-xxxx-xxxxxxxxxxxx)"),
                );
            }
        }
        let (sid_at, sid_field) = fields[5];
        let sid = match trustee(sid_field) {
            Ok(s) => s,
            Err(e) => return self.fail(sid_at, e),
        };
        if ty == AceType::Label {
            if sid.integrity_rid().is_none() {
                return self.fail(
                    sid_at,
                    format!(
                        "a mandatory label names an integrity level (LW, ME, MP, HI, SI or \
                         S-1-16-…), not {sid}"
                    ),
                );
            }
            if mask & !(NO_WRITE_UP | NO_READ_UP | NO_EXECUTE_UP) != 0 {
                return self.fail(
                    rights_at,
                    format!(
                        "a mandatory label's policy is NW, NR and NX (0x1, 0x2, 0x4), not {mask:#x}"
                    ),
                );
            }
        }
        Ok((flags, mask, object_guid, inherit_guid, sid))
    }

    fn entry_flags(&self, at: usize, s: &str) -> Result<u8, SddlError> {
        if !s.len().is_multiple_of(2) || !s.is_ascii() {
            return self.fail(
                at,
                format!("entry flags {s:?}: two-letter codes (CI, OI, NP, IO, ID, SA, FA)"),
            );
        }
        let mut flags = 0;
        for (i, code) in s.as_bytes().chunks(2).enumerate() {
            let code = String::from_utf8_lossy(code).to_ascii_uppercase();
            match ace_flags::CODES.iter().find(|(c, _)| *c == code) {
                Some((_, v)) => flags |= v,
                None => {
                    return self.fail(
                        at + 2 * i,
                        format!("unknown entry flag {code:?} (CI, OI, NP, IO, ID, SA, FA)"),
                    );
                }
            }
        }
        Ok(flags)
    }
}

/// The length of `S-1-…` at the start of `s` (revision, authority — decimal, or `0x` and at
/// most 12 hex digits — and decimal sub-authorities).
fn sid_len(s: &str) -> usize {
    let b = s.as_bytes();
    let mut i = 2;
    let digits = |i: usize| b[i..].iter().take_while(|c| c.is_ascii_digit()).count();
    i += digits(i); // revision
    if b.get(i) != Some(&b'-') {
        return i;
    }
    i += 1;
    if b.get(i) == Some(&b'0') && matches!(b.get(i + 1), Some(b'x' | b'X')) {
        i += 2;
        i += b[i..].iter().take(12).take_while(|c| c.is_ascii_hexdigit()).count();
    } else {
        i += digits(i);
    }
    while b.get(i) == Some(&b'-') && b.get(i + 1).is_some_and(u8::is_ascii_digit) {
        i += 1;
        i += digits(i);
    }
    i
}

/// The length of a parenthesized expression at the start of `s`, quoted strings included.
fn balanced_len(s: &str) -> Result<usize, String> {
    let mut depth = 0usize;
    let mut quoted = false;
    for (i, c) in s.char_indices() {
        match c {
            '"' => quoted = !quoted,
            '(' if !quoted => depth += 1,
            ')' if !quoted => {
                depth -= 1;
                if depth == 0 {
                    return Ok(i + 1);
                }
            }
            _ => {}
        }
    }
    Err("an unclosed '(' in a condition or attribute".into())
}

/// The text around byte `at`, at most [`QUOTED_SDDL_MAX`] bytes of it, quoted.
fn quote_around(text: &str, at: usize) -> String {
    if text.len() <= QUOTED_SDDL_MAX {
        return format!("{text:?}");
    }
    let from = floor_boundary(text, at.saturating_sub(QUOTED_SDDL_MAX / 2));
    let to = floor_boundary(text, from + QUOTED_SDDL_MAX);
    let mut s = String::new();
    if from > 0 {
        s.push('…');
    }
    s.push_str(&text[from..to]);
    if to < text.len() {
        s.push('…');
    }
    format!("{s:?} ({} bytes)", text.len())
}

impl fmt::Display for SecurityDescriptor {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.to_sddl())
    }
}

#[cfg(test)]
mod tests;
