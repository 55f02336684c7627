//! Security identifiers (SIDs) and the derivations Windows uses for app containers and
//! capabilities.
//!
//! * [`appcontainer_sid`] = `DeriveAppContainerSidFromAppContainerName`: `S-1-15-2-r1..r7`,
//!   the first 28 bytes of SHA-256 over the UTF-16LE of the lower-cased name, as seven
//!   little-endian 32-bit sub-authorities.
//! * [`capability_sids`] = `DeriveCapabilitySidsFromName`: the capability SID
//!   `S-1-15-3-1024-h1..h8` (or the fixed `S-1-15-3-N` of a legacy capability) and the group
//!   SID `S-1-5-32-h1..h8`, where h1..h8 are the eight little-endian 32-bit words of SHA-256
//!   over the UTF-16LE of the upper-cased name.

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

    /// True for an app container (package) SID: `S-1-15-2-` with 8 sub-authorities.
    pub fn is_appcontainer(&self) -> bool {
        self.authority == APP_PACKAGE_AUTHORITY
            && self.sub_authorities.len() == 8
            && self.sub_authorities[0] == 2
    }

    /// True for a capability SID: `S-1-15-3-…`.
    pub fn is_capability(&self) -> bool {
        self.authority == APP_PACKAGE_AUTHORITY && self.sub_authorities.first() == Some(&3)
    }
}

impl fmt::Display for Sid {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Windows prints authorities >= 2^32 in hex.
        if self.authority >= 1 << 32 {
            write!(f, "S-1-0x{:012X}", self.authority)?;
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

/// Upper- or lower-cases one UTF-16 code unit at a time with simple (one-to-one) case mapping,
/// as Windows' `RtlUpcaseUnicodeString` / `RtlDowncaseUnicodeString` do: a character whose
/// full mapping is longer than one character (ß → SS) is left as it is.
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
/// the package family name). Case-insensitive in the name.
pub fn appcontainer_sid(name: &str) -> Sid {
    let hash = sha256_utf16(&simple_case(name, false));
    let mut subs = vec![2u32];
    subs.extend(le_words(&hash[..28]));
    Sid { authority: APP_PACKAGE_AUTHORITY, sub_authorities: subs }
}

/// Capabilities that predate named capabilities and keep fixed SIDs `S-1-15-3-N`.
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

/// The two SIDs `DeriveCapabilitySidsFromName` returns for a capability name.
#[derive(Clone, PartialEq, Eq, Debug)]
pub struct CapabilitySids {
    /// The capability SID under the app package authority (`S-1-15-3-…`).
    pub capability: Sid,
    /// The group SID under the NT authority (`S-1-5-32-…`), always hash based.
    pub group: Sid,
}

/// `DeriveCapabilitySidsFromName`.
pub fn capability_sids(name: &str) -> CapabilitySids {
    let hash = sha256_utf16(&simple_case(name, true));
    let words = le_words(&hash);
    let mut cap_subs = vec![3u32, 1024];
    cap_subs.extend(&words);
    let mut group_subs = vec![32u32];
    group_subs.extend(&words);
    let capability = match LEGACY_CAPABILITIES.iter().find(|(n, _)| n.eq_ignore_ascii_case(name)) {
        Some((_, rid)) => Sid { authority: APP_PACKAGE_AUTHORITY, sub_authorities: vec![3, *rid] },
        None => Sid { authority: APP_PACKAGE_AUTHORITY, sub_authorities: cap_subs },
    };
    CapabilitySids {
        capability,
        group: Sid { authority: NT_AUTHORITY, sub_authorities: group_subs },
    }
}

/// The capability SID alone (see [`capability_sids`]).
pub fn capability_sid(name: &str) -> Sid {
    capability_sids(name).capability
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
    }

    #[test]
    fn sid_text_round_trip() {
        for s in ["S-1-15-2-1", "S-1-5-32-544", "S-1-0x123456789ABC-1"] {
            assert_eq!(s.parse::<Sid>().unwrap().to_string(), s);
        }
        assert!("S-2-1".parse::<Sid>().is_err());
        assert!("S-1-5-4294967296".parse::<Sid>().is_err());
        assert!("S-1-5-1-2-3-4-5-6-7-8-9-10-11-12-13-14-15-16".parse::<Sid>().is_err());
    }
}
