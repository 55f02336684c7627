//! Security identifiers (SIDs) and the derivations Windows uses for app containers and
//! capabilities.
//!
//! * [`appcontainer_sid`] = `DeriveAppContainerSidFromAppContainerName`: `S-1-15-2-r1..r7`,
//!   the first 28 bytes of SHA-256 over the UTF-16LE of the lower-cased name, as seven
//!   little-endian 32-bit sub-authorities.
//! * [`child_appcontainer_sid`] = `DeriveRestrictedAppContainerSidFromAppContainerSidAndRestrictedName`:
//!   the parent's eight sub-authorities followed by the last four of the child name's own
//!   app container SID (12 in all).
//! * [`capability_sids`] = `DeriveCapabilitySidsFromName`: the capability SID
//!   `S-1-15-3-1024-h1..h8` (or the fixed `S-1-15-3-N` of one of the twelve legacy
//!   capabilities) and the group SID `S-1-5-32-h1..h8`, where h1..h8 are the eight
//!   little-endian 32-bit words of SHA-256 over the UTF-16LE of the upper-cased name. Windows
//!   returns exactly one SID of each kind, and the group SID is hash based even for a legacy
//!   capability.
//!
//! Case mapping is done one UTF-16 code unit at a time with a one-to-one mapping, as
//! `RtlUpcaseUnicodeString`/`RtlDowncaseUnicodeString` do. For ASCII this is exact and checked
//! against Windows values (`tests/identity_known_answers.rs`). For other characters it uses
//! Unicode's simple case mapping, which is close to, but not proven identical with, the NLS
//! case table Windows uses; no Windows value for a non-ASCII app container or capability name
//! has been found to check it against. App container names are in practice ASCII
//! ([`is_valid_appcontainer_name`]).

use std::fmt;
use std::str::FromStr;

use sha2::{Digest, Sha256};

/// Why a SID string was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid SID {value:?}: {rule}")]
pub struct SidError {
    /// The text that was refused.
    pub value: String,
    /// The rule it broke.
    pub rule: &'static str,
}

/// A security identifier: revision 1, a 48-bit identifier authority, 0..=15 sub-authorities.
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Sid {
    authority: u64,
    sub_authorities: Vec<u32>,
}

/// `SECURITY_NT_AUTHORITY`.
pub const NT_AUTHORITY: u64 = 5;
/// `SECURITY_APP_PACKAGE_AUTHORITY`.
pub const APP_PACKAGE_AUTHORITY: u64 = 15;
/// `SECURITY_MANDATORY_LABEL_AUTHORITY`: integrity levels, `S-1-16-<rid>`.
pub const MANDATORY_LABEL_AUTHORITY: u64 = 16;
/// The authority of Samba's "Unix user" (`S-1-22-1-<uid>`) and "Unix group"
/// (`S-1-22-2-<gid>`) SIDs, which appipc uses for the Linux user: deterministic (the uid
/// alone, no machine id to read or keep), recognisable (Windows' NFS services and Samba name
/// them `Unix User\<uid>`), and claiming no Windows domain (an `S-1-5-21-…` SID would pretend
/// to be a Windows account of a domain that does not exist).
pub const UNIX_USER_AUTHORITY: u64 = 22;
/// The most sub-authorities a SID may have (`SID_MAX_SUB_AUTHORITIES`).
pub const MAX_SUB_AUTHORITIES: usize = 15;

impl Sid {
    /// Builds a SID; `None` if the authority does not fit 48 bits or there are more than 15
    /// sub-authorities.
    pub fn new(authority: u64, sub_authorities: &[u32]) -> Option<Sid> {
        if authority >= 1 << 48 || sub_authorities.len() > MAX_SUB_AUTHORITIES {
            return None;
        }
        Some(Sid { authority, sub_authorities: sub_authorities.to_vec() })
    }

    /// The identifier authority.
    pub fn authority(&self) -> u64 {
        self.authority
    }

    /// The sub-authorities (RIDs).
    pub fn sub_authorities(&self) -> &[u32] {
        &self.sub_authorities
    }

    /// `S-1-15-2-1`, ALL APPLICATION PACKAGES (`AC` in SDDL).
    pub fn all_application_packages() -> Sid {
        Sid { authority: APP_PACKAGE_AUTHORITY, sub_authorities: vec![2, 1] }
    }

    /// `S-1-15-2-2`, ALL RESTRICTED APPLICATION PACKAGES.
    pub fn all_restricted_application_packages() -> Sid {
        Sid { authority: APP_PACKAGE_AUTHORITY, sub_authorities: vec![2, 2] }
    }

    /// `S-1-1-0`, Everyone (`WD` in SDDL).
    pub fn everyone() -> Sid {
        Sid { authority: 1, sub_authorities: vec![0] }
    }

    /// `S-1-3-4`, OWNER RIGHTS (`OW` in SDDL): entries for it apply to the object's owner, in
    /// place of the owner's implicit `READ_CONTROL` and `WRITE_DAC`.
    pub fn owner_rights() -> Sid {
        Sid { authority: 3, sub_authorities: vec![4] }
    }

    /// `S-1-5-18`, LocalSystem (`SY` in SDDL).
    pub fn local_system() -> Sid {
        Sid { authority: NT_AUTHORITY, sub_authorities: vec![18] }
    }

    /// The SID appipc gives the Linux user `uid`: `S-1-22-1-<uid>`, the "Unix user" SID Samba
    /// and Windows' NFS services use for a uid that maps to no Windows account. See
    /// [`UNIX_USER_AUTHORITY`].
    pub fn unix_user(uid: u32) -> Sid {
        Sid { authority: UNIX_USER_AUTHORITY, sub_authorities: vec![1, uid] }
    }

    /// The integrity-level SID `S-1-16-<rid>` (`SECURITY_MANDATORY_LABEL_AUTHORITY`): 0x1000
    /// Low (`LW`), 0x2000 Medium (`ME`), 0x2100 Medium Plus (`MP`), 0x3000 High (`HI`),
    /// 0x4000 System (`SI`).
    pub fn integrity_level(rid: u32) -> Sid {
        Sid { authority: MANDATORY_LABEL_AUTHORITY, sub_authorities: vec![rid] }
    }

    /// The level of an integrity-level SID (`S-1-16-<rid>`), `None` for any other SID.
    pub fn integrity_rid(&self) -> Option<u32> {
        match self.sub_authorities.as_slice() {
            [rid] if self.authority == MANDATORY_LABEL_AUTHORITY => Some(*rid),
            _ => None,
        }
    }

    /// True for an app container (package) SID: `S-1-15-2-` with 8 sub-authorities.
    pub fn is_appcontainer(&self) -> bool {
        self.authority == APP_PACKAGE_AUTHORITY
            && self.sub_authorities.len() == 8
            && self.sub_authorities[0] == 2
    }

    /// True for a child app container SID: `S-1-15-2-` with 12 sub-authorities.
    pub fn is_child_appcontainer(&self) -> bool {
        self.authority == APP_PACKAGE_AUTHORITY
            && self.sub_authorities.len() == 12
            && self.sub_authorities[0] == 2
    }

    /// True for a capability group SID as [`capability_sids`] derives it: `S-1-5-32-` with
    /// eight hash sub-authorities.
    pub fn is_capability_group(&self) -> bool {
        self.authority == NT_AUTHORITY
            && self.sub_authorities.len() == 9
            && self.sub_authorities[0] == 32
    }

    /// True for a capability SID: `S-1-15-3-…`.
    pub fn is_capability(&self) -> bool {
        self.authority == APP_PACKAGE_AUTHORITY && self.sub_authorities.first() == Some(&3)
    }
}

impl fmt::Display for Sid {
    /// The `ConvertSidToStringSid` form: the authority in decimal below 2^32, otherwise as
    /// `0x` and twelve lower-case hex digits (Windows formats it with `0x%02hx` six times).
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.authority >= 1 << 32 {
            write!(f, "S-1-0x{:012x}", self.authority)?;
        } else {
            write!(f, "S-1-{}", self.authority)?;
        }
        for rid in &self.sub_authorities {
            write!(f, "-{rid}")?;
        }
        Ok(())
    }
}

impl fmt::Debug for Sid {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Sid({self})")
    }
}

impl FromStr for Sid {
    type Err = SidError;
    fn from_str(s: &str) -> Result<Self, SidError> {
        let err = |rule| SidError { value: s.to_owned(), rule };
        let rest = s
            .strip_prefix("S-")
            .or_else(|| s.strip_prefix("s-"))
            .ok_or_else(|| err("must start with S-"))?;
        let mut parts = rest.split('-');
        if parts.next() != Some("1") {
            return Err(err("revision must be 1"));
        }
        let auth = parts.next().ok_or_else(|| err("missing identifier authority"))?;
        let authority =
            if let Some(hex) = auth.strip_prefix("0x").or_else(|| auth.strip_prefix("0X")) {
                u64::from_str_radix(hex, 16).map_err(|_| err("bad hexadecimal authority"))?
            } else {
                if auth.is_empty() || !auth.bytes().all(|b| b.is_ascii_digit()) {
                    return Err(err("authority must be a number"));
                }
                auth.parse().map_err(|_| err("authority out of range"))?
            };
        let mut subs = Vec::new();
        for p in parts {
            if p.is_empty() || !p.bytes().all(|b| b.is_ascii_digit()) {
                return Err(err("sub-authorities must be decimal numbers"));
            }
            subs.push(p.parse::<u32>().map_err(|_| err("sub-authority exceeds 32 bits"))?);
        }
        Sid::new(authority, &subs)
            .ok_or_else(|| err("authority over 48 bits or more than 15 sub-authorities"))
    }
}

impl TryFrom<&str> for Sid {
    type Error = SidError;
    fn try_from(s: &str) -> Result<Self, SidError> {
        s.parse()
    }
}

/// Upper- or lower-cases one UTF-16 code unit at a time with a one-to-one mapping, as
/// Windows' `RtlUpcaseUnicodeString` / `RtlDowncaseUnicodeString` do: a character whose case
/// mapping is longer than one character (ß → SS, İ → i̇) is left as it is, and so is every
/// character outside the Basic Multilingual Plane (its two surrogates are not letters).
fn simple_case(s: &str, upper: bool) -> Vec<u16> {
    let mut out = Vec::with_capacity(s.len());
    for c in s.chars() {
        let mapped: Vec<char> =
            if upper { c.to_uppercase().collect() } else { c.to_lowercase().collect() };
        let c = match mapped.as_slice() {
            [one] if (*one as u32) < 0x10000 && (c as u32) < 0x10000 => *one,
            _ => c,
        };
        let mut buf = [0u16; 2];
        out.extend_from_slice(c.encode_utf16(&mut buf));
    }
    out
}

fn sha256_utf16(units: &[u16]) -> [u8; 32] {
    let mut hasher = Sha256::new();
    for u in units {
        hasher.update(u.to_le_bytes());
    }
    hasher.finalize().into()
}

fn le_words(bytes: &[u8]) -> Vec<u32> {
    bytes.chunks_exact(4).map(|c| u32::from_le_bytes([c[0], c[1], c[2], c[3]])).collect()
}

/// `DeriveAppContainerSidFromAppContainerName`: the app container SID of a name (for packages,
/// the package family name). Case-insensitive in the name. Any string gets a SID; whether
/// Windows accepts a name outside [`is_valid_appcontainer_name`] is not documented.
pub fn appcontainer_sid(name: &str) -> Sid {
    let hash = sha256_utf16(&simple_case(name, false));
    let mut subs = vec![2u32];
    subs.extend(le_words(&hash[..28]));
    Sid { authority: APP_PACKAGE_AUTHORITY, sub_authorities: subs }
}

/// The most characters an app container name may have (`CreateAppContainerProfile`).
pub const APPCONTAINER_NAME_MAX_LENGTH: usize = 64;

/// Whether `name` is an app container name `CreateAppContainerProfile` accepts: 1 to 64
/// characters matching `[-_. A-Za-z0-9]+`. Every package family name is one (at most
/// 50 + 1 + 13 characters).
pub fn is_valid_appcontainer_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= APPCONTAINER_NAME_MAX_LENGTH
        && name.bytes().all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b' '))
}

/// `DeriveRestrictedAppContainerSidFromAppContainerSidAndRestrictedName`: the SID of the child
/// app container `child_name` of `parent` (a parent app container SID with 8 sub-authorities):
/// the parent's sub-authorities followed by the last four sub-authorities of
/// [`appcontainer_sid`]`(child_name)`. `None` if `parent` is not a parent app container SID.
pub fn child_appcontainer_sid(parent: &Sid, child_name: &str) -> Option<Sid> {
    if !parent.is_appcontainer() {
        return None;
    }
    let child = appcontainer_sid(child_name);
    let mut subs = parent.sub_authorities.clone();
    subs.extend_from_slice(&child.sub_authorities[4..]);
    Some(Sid { authority: APP_PACKAGE_AUTHORITY, sub_authorities: subs })
}

/// Capabilities that predate named capabilities and keep fixed SIDs `S-1-15-3-N`
/// (`SECURITY_CAPABILITY_*` in winnt.h). `DeriveCapabilitySidsFromName` maps these twelve
/// names to their fixed SIDs whatever their case (Chromium's `base/win/sid_unittest.cc` checks
/// `InternetClient` … `Contacts` against Windows); every other name is hashed.
pub const LEGACY_CAPABILITIES: &[(&str, u32)] = &[
    ("internetClient", 1),
    ("internetClientServer", 2),
    ("privateNetworkClientServer", 3),
    ("picturesLibrary", 4),
    ("videosLibrary", 5),
    ("musicLibrary", 6),
    ("documentsLibrary", 7),
    ("enterpriseAuthentication", 8),
    ("sharedUserCertificates", 9),
    ("removableStorage", 10),
    ("appointments", 11),
    ("contacts", 12),
];

/// `SECURITY_CAPABILITY_INTERNET_EXPLORER`: the well-known capability SID `S-1-15-3-4096`
/// ("Internet Explorer"). No capability name is known to derive it, so it is not in
/// [`LEGACY_CAPABILITIES`].
pub const INTERNET_EXPLORER_CAPABILITY_RID: u32 = 4096;

/// `SECURITY_CAPABILITY_APP_RID`, the second sub-authority of a named capability SID.
pub const CAPABILITY_APP_RID: u32 = 1024;

/// The two SIDs `DeriveCapabilitySidsFromName` returns for a capability name.
#[derive(Clone, PartialEq, Eq, Debug)]
pub struct CapabilitySids {
    /// The capability SID under the app package authority (`S-1-15-3-…`).
    pub capability: Sid,
    /// The group SID under the NT authority (`S-1-5-32-…`), always hash based.
    pub group: Sid,
}

/// `DeriveCapabilitySidsFromName`. The name is upper-cased and hashed; if the upper-cased name
/// is one of the [`LEGACY_CAPABILITIES`] (so `InternetClient` and `INTERNETCLIENT` count), the
/// capability SID is that fixed SID instead. Any string, the empty one included, gets SIDs.
pub fn capability_sids(name: &str) -> CapabilitySids {
    let upper = simple_case(name, true);
    let words = le_words(&sha256_utf16(&upper));
    let legacy = LEGACY_CAPABILITIES.iter().find(|(n, _)| {
        n.len() == upper.len()
            && n.bytes().zip(&upper).all(|(a, b)| u16::from(a.to_ascii_uppercase()) == *b)
    });
    let capability = match legacy {
        Some((_, rid)) => Sid { authority: APP_PACKAGE_AUTHORITY, sub_authorities: vec![3, *rid] },
        None => {
            let mut subs = vec![3u32, CAPABILITY_APP_RID];
            subs.extend(&words);
            Sid { authority: APP_PACKAGE_AUTHORITY, sub_authorities: subs }
        }
    };
    let mut group_subs = vec![32u32];
    group_subs.extend(&words);
    CapabilitySids {
        capability,
        group: Sid { authority: NT_AUTHORITY, sub_authorities: group_subs },
    }
}

/// The capability SID alone (see [`capability_sids`]).
pub fn capability_sid(name: &str) -> Sid {
    capability_sids(name).capability
}

/// The capability group SID alone (see [`capability_sids`]).
pub fn capability_group_sid(name: &str) -> Sid {
    capability_sids(name).group
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn edge_appcontainer_sid() {
        assert_eq!(
            appcontainer_sid("Microsoft.MicrosoftEdge_8wekyb3d8bbwe").to_string(),
            "S-1-15-2-3624051433-2125758914-1423191267-1740899205-1073925389-3782572162-737981194"
        );
        // Case-insensitive.
        assert_eq!(
            appcontainer_sid("microsoft.microsoftedge_8WEKYB3D8BBWE"),
            appcontainer_sid("Microsoft.MicrosoftEdge_8wekyb3d8bbwe")
        );
    }

    #[test]
    fn legacy_capability() {
        assert_eq!(capability_sid("internetClient").to_string(), "S-1-15-3-1");
        assert_eq!(capability_sid("privateNetworkClientServer").to_string(), "S-1-15-3-3");
        assert_eq!(capability_sid("CONTACTS").to_string(), "S-1-15-3-12");
        // The group SID stays hash based.
        assert!(capability_group_sid("internetClient").is_capability_group());
        // Not a legacy name: hashed.
        assert_eq!(capability_sid("internetClient2").sub_authorities()[1], CAPABILITY_APP_RID);
    }

    #[test]
    fn sid_text_round_trip() {
        for s in ["S-1-15-2-1", "S-1-5-32-544", "S-1-0x123456789abc-1", "S-1-5"] {
            assert_eq!(s.parse::<Sid>().unwrap().to_string(), s);
        }
        assert_eq!(
            "S-1-0x123456789ABC-1".parse::<Sid>().unwrap().to_string(),
            "S-1-0x123456789abc-1"
        );
        assert!("S-2-1".parse::<Sid>().is_err());
        assert!("S-1-5-4294967296".parse::<Sid>().is_err());
        assert!("S-1-5-1-2-3-4-5-6-7-8-9-10-11-12-13-14-15-16".parse::<Sid>().is_err());
    }

    #[test]
    fn well_known_shapes() {
        assert_eq!(Sid::unix_user(1000).to_string(), "S-1-22-1-1000");
        assert_eq!(Sid::everyone().to_string(), "S-1-1-0");
        assert_eq!(Sid::owner_rights().to_string(), "S-1-3-4");
        assert_eq!(Sid::integrity_level(0x1000).to_string(), "S-1-16-4096");
        assert_eq!(Sid::integrity_level(0x2000).integrity_rid(), Some(0x2000));
        assert_eq!(Sid::everyone().integrity_rid(), None);
    }

    #[test]
    fn child_sid_shape() {
        let parent = appcontainer_sid("my_package");
        let child = child_appcontainer_sid(&parent, "CHILD").unwrap();
        assert!(child.is_child_appcontainer());
        assert_eq!(&child.sub_authorities()[..8], parent.sub_authorities());
        assert!(child_appcontainer_sid(&child, "x").is_none());
    }

    #[test]
    fn appcontainer_names() {
        assert!(is_valid_appcontainer_name("Microsoft.MicrosoftEdge_8wekyb3d8bbwe"));
        assert!(is_valid_appcontainer_name("firehazard appcontainer"));
        assert!(!is_valid_appcontainer_name(""));
        assert!(!is_valid_appcontainer_name("a/b"));
        assert!(!is_valid_appcontainer_name(&"a".repeat(65)));
    }
}
