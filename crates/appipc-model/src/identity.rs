//! Package identity, exact to Windows.
//!
//! * publisher id: the first 8 bytes of SHA-256 over the UTF-16LE publisher string (as written,
//!   no case folding), read as a 64-bit big-endian number, padded with one zero bit to 65 bits
//!   and written as 13 base32 digits of the alphabet `0123456789abcdefghjkmnpqrstvwxyz`;
//! * package family name: `<Name>_<PublisherId>`;
//! * package full name: `<Name>_<Version>_<arch>_<ResourceId>_<PublisherId>`;
//! * application user model id: `<PackageFamilyName>!<AppId>`.
//!
//! Every type here is validated once, when it is parsed or built, and cannot hold an invalid
//! value afterwards.

use std::fmt;
use std::str::FromStr;

use sha2::{Digest, Sha256};

/// Why a piece of identity text was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid {what} {value:?}: {rule}")]
pub struct IdentityError {
    /// What was being parsed (`package name`, `publisher id`, …).
    pub what: &'static str,
    /// The text that was refused.
    pub value: String,
    /// The rule it broke.
    pub rule: String,
}

impl IdentityError {
    fn new(what: &'static str, value: &str, rule: impl Into<String>) -> Self {
        IdentityError { what, value: value.to_owned(), rule: rule.into() }
    }
}

/// Names Windows reserves for package names, resource ids and application ids
/// (`ST_PackageName` and friends refuse them, case-insensitively).
const RESERVED_NAMES: &[&str] = &[
    "CON", "PRN", "AUX", "NUL", "COM1", "COM2", "COM3", "COM4", "COM5", "COM6", "COM7", "COM8",
    "COM9", "LPT1", "LPT2", "LPT3", "LPT4", "LPT5", "LPT6", "LPT7", "LPT8", "LPT9",
];

fn is_reserved(s: &str) -> bool {
    RESERVED_NAMES.iter().any(|r| r.eq_ignore_ascii_case(s))
}

/// A string of `[-.A-Za-z0-9]` with a length range, not a reserved name: the shape of
/// `ST_PackageName` and `ST_ResourceId`.
fn check_dotted_name(
    what: &'static str,
    s: &str,
    min: usize,
    max: usize,
) -> Result<(), IdentityError> {
    if s.len() < min || s.len() > max {
        return Err(IdentityError::new(what, s, format!("must be {min} to {max} characters long")));
    }
    if let Some(c) = s.chars().find(|c| !(c.is_ascii_alphanumeric() || *c == '.' || *c == '-')) {
        return Err(IdentityError::new(
            what,
            s,
            format!("character {c:?} is not allowed (only A-Z, a-z, 0-9, '.' and '-')"),
        ));
    }
    if is_reserved(s) {
        return Err(IdentityError::new(what, s, "is a reserved device name"));
    }
    if s.ends_with('.') {
        return Err(IdentityError::new(what, s, "must not end with '.'"));
    }
    Ok(())
}

macro_rules! string_newtype {
    ($(#[$m:meta])* $name:ident) => {
        $(#[$m])*
        #[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
        pub struct $name(String);

        impl $name {
            /// The validated text.
            pub fn as_str(&self) -> &str {
                &self.0
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.0)
            }
        }

        impl fmt::Debug for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                write!(f, "{}({:?})", stringify!($name), self.0)
            }
        }

        impl AsRef<str> for $name {
            fn as_ref(&self) -> &str {
                &self.0
            }
        }

        impl TryFrom<&str> for $name {
            type Error = IdentityError;
            fn try_from(s: &str) -> Result<Self, IdentityError> {
                s.parse()
            }
        }

        impl TryFrom<String> for $name {
            type Error = IdentityError;
            fn try_from(s: String) -> Result<Self, IdentityError> {
                s.parse()
            }
        }

        impl From<$name> for String {
            fn from(v: $name) -> String {
                v.0
            }
        }
    };
}

string_newtype!(
    /// `Identity@Name`: 3 to 50 characters of `[-.A-Za-z0-9]`, not a reserved device name.
    PackageName
);

impl FromStr for PackageName {
    type Err = IdentityError;
    fn from_str(s: &str) -> Result<Self, IdentityError> {
        check_dotted_name("package name", s, 3, 50)?;
        Ok(PackageName(s.to_owned()))
    }
}

string_newtype!(
    /// `Identity@ResourceId`: 1 to 30 characters of `[-.A-Za-z0-9]`, not a reserved name.
    /// The empty resource id is represented by `Option::None` where it is optional.
    ResourceId
);

impl FromStr for ResourceId {
    type Err = IdentityError;
    fn from_str(s: &str) -> Result<Self, IdentityError> {
        check_dotted_name("resource id", s, 1, 30)?;
        Ok(ResourceId(s.to_owned()))
    }
}

/// The base32 alphabet of publisher ids (Crockford's, lower case: no i, l, o, u).
const PUBLISHER_ID_ALPHABET: &[u8; 32] = b"0123456789abcdefghjkmnpqrstvwxyz";

string_newtype!(
    /// The 13-character publisher id (`8wekyb3d8bbwe`), derived from a publisher's
    /// distinguished name by [`PublisherId::from_publisher`].
    PublisherId
);

impl PublisherId {
    /// Derives the publisher id from the publisher string exactly as written in the manifest
    /// (no trimming, no case folding; non-ASCII characters are hashed as UTF-16LE).
    pub fn from_publisher(publisher: &str) -> PublisherId {
        let mut hasher = Sha256::new();
        for unit in publisher.encode_utf16() {
            hasher.update(unit.to_le_bytes());
        }
        let digest = hasher.finalize();
        let mut first = [0u8; 8];
        first.copy_from_slice(&digest[..8]);
        // 64 bits padded with one zero bit on the right: 65 bits, 13 groups of 5.
        let bits = (u128::from(u64::from_be_bytes(first))) << 1;
        let mut out = String::with_capacity(13);
        for i in (0..13).rev() {
            let idx = ((bits >> (i * 5)) & 0x1f) as usize;
            out.push(char::from(PUBLISHER_ID_ALPHABET[idx]));
        }
        PublisherId(out)
    }
}

impl FromStr for PublisherId {
    type Err = IdentityError;
    fn from_str(s: &str) -> Result<Self, IdentityError> {
        if s.len() != 13 {
            return Err(IdentityError::new("publisher id", s, "must be exactly 13 characters"));
        }
        if let Some(c) = s.bytes().find(|b| !PUBLISHER_ID_ALPHABET.contains(b)) {
            return Err(IdentityError::new(
                "publisher id",
                s,
                format!(
                    "character {:?} is not in the alphabet 0-9 a-z without i, l, o, u",
                    char::from(c)
                ),
            ));
        }
        // The last digit carries only 4 bits of hash and a zero pad bit: it must be even.
        let last = s.as_bytes()[12];
        let idx = PUBLISHER_ID_ALPHABET.iter().position(|b| *b == last).unwrap_or(0);
        if idx & 1 != 0 {
            return Err(IdentityError::new(
                "publisher id",
                s,
                "the last character must encode a zero pad bit (one of 02468acegjmprtwy)",
            ));
        }
        Ok(PublisherId(s.to_owned()))
    }
}

/// A four-part package version `Major.Minor.Build.Revision`, each 0..=65535.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Debug)]
pub struct PackageVersion(pub [u16; 4]);

impl fmt::Display for PackageVersion {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let [a, b, c, d] = self.0;
        write!(f, "{a}.{b}.{c}.{d}")
    }
}

impl FromStr for PackageVersion {
    type Err = IdentityError;
    fn from_str(s: &str) -> Result<Self, IdentityError> {
        let rule = "must be four numbers 0-65535 separated by dots, like 1.0.0.0";
        let parts: Vec<&str> = s.split('.').collect();
        if parts.len() != 4 {
            return Err(IdentityError::new("version", s, rule));
        }
        let mut v = [0u16; 4];
        for (slot, part) in v.iter_mut().zip(parts) {
            if part.is_empty() || !part.bytes().all(|b| b.is_ascii_digit()) {
                return Err(IdentityError::new("version", s, rule));
            }
            *slot = part.parse().map_err(|_| IdentityError::new("version", s, rule))?;
        }
        Ok(PackageVersion(v))
    }
}

/// `Identity@ProcessorArchitecture`. Written lower case in full names.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug)]
pub enum ProcessorArchitecture {
    /// `x86`
    X86,
    /// `x64`
    X64,
    /// `arm`
    Arm,
    /// `arm64`
    Arm64,
    /// `x86a64` (x86 on arm64)
    X86A64,
    /// `neutral`
    Neutral,
}

impl ProcessorArchitecture {
    /// The lower-case form used in package full names.
    pub fn as_str(self) -> &'static str {
        match self {
            ProcessorArchitecture::X86 => "x86",
            ProcessorArchitecture::X64 => "x64",
            ProcessorArchitecture::Arm => "arm",
            ProcessorArchitecture::Arm64 => "arm64",
            ProcessorArchitecture::X86A64 => "x86a64",
            ProcessorArchitecture::Neutral => "neutral",
        }
    }

    /// The architecture of the machine this code was built for.
    pub fn native() -> ProcessorArchitecture {
        match std::env::consts::ARCH {
            "x86" => ProcessorArchitecture::X86,
            "x86_64" => ProcessorArchitecture::X64,
            "arm" => ProcessorArchitecture::Arm,
            "aarch64" => ProcessorArchitecture::Arm64,
            _ => ProcessorArchitecture::Neutral,
        }
    }
}

impl fmt::Display for ProcessorArchitecture {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for ProcessorArchitecture {
    type Err = IdentityError;
    /// Case-insensitive, as the manifest schema's enumeration is matched by Windows tools.
    fn from_str(s: &str) -> Result<Self, IdentityError> {
        Ok(match s.to_ascii_lowercase().as_str() {
            "x86" => ProcessorArchitecture::X86,
            "x64" => ProcessorArchitecture::X64,
            "arm" => ProcessorArchitecture::Arm,
            "arm64" => ProcessorArchitecture::Arm64,
            "x86a64" => ProcessorArchitecture::X86A64,
            "neutral" => ProcessorArchitecture::Neutral,
            _ => {
                return Err(IdentityError::new(
                    "processor architecture",
                    s,
                    "must be one of x86, x64, arm, arm64, x86a64, neutral",
                ));
            }
        })
    }
}

/// A package family name `<Name>_<PublisherId>`: the identity every access rule uses.
///
/// Comparison is exact on the stored text; [`PackageFamilyName::from_str`] normalises nothing,
/// but [`PackageFamilyName::eq_ignore_case`] is there for the places Windows compares
/// case-insensitively.
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct PackageFamilyName {
    text: String,
    split: usize,
}

impl PackageFamilyName {
    /// Builds the family name of a package.
    pub fn new(name: &PackageName, publisher_id: &PublisherId) -> PackageFamilyName {
        PackageFamilyName {
            text: format!("{}_{}", name.as_str(), publisher_id.as_str()),
            split: name.as_str().len(),
        }
    }

    /// Builds the family name from a package name and its publisher's distinguished name.
    pub fn from_publisher(name: &PackageName, publisher: &str) -> PackageFamilyName {
        PackageFamilyName::new(name, &PublisherId::from_publisher(publisher))
    }

    /// The text, `Name_publisherid`.
    pub fn as_str(&self) -> &str {
        &self.text
    }

    /// The package name part.
    pub fn name(&self) -> PackageName {
        PackageName(self.text[..self.split].to_owned())
    }

    /// The publisher id part.
    pub fn publisher_id(&self) -> PublisherId {
        PublisherId(self.text[self.split + 1..].to_owned())
    }

    /// Case-insensitive comparison (Windows compares family names ordinal-ignore-case).
    pub fn eq_ignore_case(&self, other: &PackageFamilyName) -> bool {
        self.text.eq_ignore_ascii_case(&other.text)
    }
}

impl fmt::Display for PackageFamilyName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.text)
    }
}

impl fmt::Debug for PackageFamilyName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "PackageFamilyName({:?})", self.text)
    }
}

impl FromStr for PackageFamilyName {
    type Err = IdentityError;
    fn from_str(s: &str) -> Result<Self, IdentityError> {
        let Some((name, id)) = s.rsplit_once('_') else {
            return Err(IdentityError::new(
                "package family name",
                s,
                "must be <Name>_<PublisherId>, like Contoso.App_8wekyb3d8bbwe",
            ));
        };
        let name: PackageName = name.parse().map_err(|e: IdentityError| {
            IdentityError::new("package family name", s, format!("name part: {}", e.rule))
        })?;
        let id: PublisherId = id.parse().map_err(|e: IdentityError| {
            IdentityError::new("package family name", s, format!("publisher id part: {}", e.rule))
        })?;
        Ok(PackageFamilyName::new(&name, &id))
    }
}

impl TryFrom<&str> for PackageFamilyName {
    type Error = IdentityError;
    fn try_from(s: &str) -> Result<Self, IdentityError> {
        s.parse()
    }
}

/// A package full name `<Name>_<Version>_<arch>_<ResourceId>_<PublisherId>`.
#[derive(Clone, PartialEq, Eq, Hash, Debug)]
pub struct PackageFullName {
    /// `Identity@Name`.
    pub name: PackageName,
    /// `Identity@Version`.
    pub version: PackageVersion,
    /// `Identity@ProcessorArchitecture`.
    pub architecture: ProcessorArchitecture,
    /// `Identity@ResourceId`; `None` gives the double underscore.
    pub resource_id: Option<ResourceId>,
    /// The publisher id.
    pub publisher_id: PublisherId,
}

impl PackageFullName {
    /// The family name of this package.
    pub fn family_name(&self) -> PackageFamilyName {
        PackageFamilyName::new(&self.name, &self.publisher_id)
    }
}

impl fmt::Display for PackageFullName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}_{}_{}_{}_{}",
            self.name,
            self.version,
            self.architecture,
            self.resource_id.as_ref().map(ResourceId::as_str).unwrap_or(""),
            self.publisher_id
        )
    }
}

impl FromStr for PackageFullName {
    type Err = IdentityError;
    fn from_str(s: &str) -> Result<Self, IdentityError> {
        let err = |rule: String| IdentityError::new("package full name", s, rule);
        let parts: Vec<&str> = s.split('_').collect();
        if parts.len() != 5 {
            return Err(err("must be <Name>_<Version>_<arch>_<ResourceId>_<PublisherId>".into()));
        }
        Ok(PackageFullName {
            name: parts[0].parse().map_err(|e: IdentityError| err(format!("name: {}", e.rule)))?,
            version: parts[1]
                .parse()
                .map_err(|e: IdentityError| err(format!("version: {}", e.rule)))?,
            architecture: parts[2]
                .parse()
                .map_err(|e: IdentityError| err(format!("architecture: {}", e.rule)))?,
            resource_id: if parts[3].is_empty() {
                None
            } else {
                Some(
                    parts[3]
                        .parse()
                        .map_err(|e: IdentityError| err(format!("resource id: {}", e.rule)))?,
                )
            },
            publisher_id: parts[4]
                .parse()
                .map_err(|e: IdentityError| err(format!("publisher id: {}", e.rule)))?,
        })
    }
}

string_newtype!(
    /// `Application@Id`: 1 to 64 characters; ASCII letters and digits in dot-separated
    /// segments, each starting with a letter; not a reserved name.
    AppId
);

impl FromStr for AppId {
    type Err = IdentityError;
    fn from_str(s: &str) -> Result<Self, IdentityError> {
        if s.is_empty() || s.len() > 64 {
            return Err(IdentityError::new("application id", s, "must be 1 to 64 characters long"));
        }
        for seg in s.split('.') {
            let mut chars = seg.chars();
            match chars.next() {
                Some(c) if c.is_ascii_alphabetic() => {}
                _ => {
                    return Err(IdentityError::new(
                        "application id",
                        s,
                        "each dot-separated part must start with an ASCII letter",
                    ));
                }
            }
            if let Some(c) = chars.find(|c| !c.is_ascii_alphanumeric()) {
                return Err(IdentityError::new(
                    "application id",
                    s,
                    format!("character {c:?} is not allowed (only A-Z, a-z, 0-9 and '.')"),
                ));
            }
        }
        if is_reserved(s) {
            return Err(IdentityError::new("application id", s, "is a reserved device name"));
        }
        Ok(AppId(s.to_owned()))
    }
}

/// An application user model id, `<PackageFamilyName>!<AppId>`.
#[derive(Clone, PartialEq, Eq, Hash, Debug)]
pub struct AppUserModelId {
    /// The package.
    pub family_name: PackageFamilyName,
    /// The application inside it.
    pub app_id: AppId,
}

impl fmt::Display for AppUserModelId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}!{}", self.family_name, self.app_id)
    }
}

impl FromStr for AppUserModelId {
    type Err = IdentityError;
    fn from_str(s: &str) -> Result<Self, IdentityError> {
        let Some((pfn, app)) = s.split_once('!') else {
            return Err(IdentityError::new(
                "application user model id",
                s,
                "must be <PackageFamilyName>!<AppId>",
            ));
        };
        Ok(AppUserModelId { family_name: pfn.parse()?, app_id: app.parse()? })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MS: &str =
        "CN=Microsoft Corporation, O=Microsoft Corporation, L=Redmond, S=Washington, C=US";

    #[test]
    fn microsoft_publisher_id() {
        assert_eq!(PublisherId::from_publisher(MS).as_str(), "8wekyb3d8bbwe");
    }

    #[test]
    fn full_name_with_empty_resource_id() {
        let full = PackageFullName {
            name: "Microsoft.WindowsCalculator".parse().unwrap(),
            version: "10.1906.55.0".parse().unwrap(),
            architecture: "X64".parse().unwrap(),
            resource_id: None,
            publisher_id: PublisherId::from_publisher(MS),
        };
        let text = full.to_string();
        assert_eq!(text, "Microsoft.WindowsCalculator_10.1906.55.0_x64__8wekyb3d8bbwe");
        assert_eq!(text.parse::<PackageFullName>().unwrap(), full);
        assert_eq!(full.family_name().as_str(), "Microsoft.WindowsCalculator_8wekyb3d8bbwe");
    }

    #[test]
    fn family_name_parts() {
        let pfn: PackageFamilyName = "Microsoft.MicrosoftEdge_8wekyb3d8bbwe".parse().unwrap();
        assert_eq!(pfn.name().as_str(), "Microsoft.MicrosoftEdge");
        assert_eq!(pfn.publisher_id().as_str(), "8wekyb3d8bbwe");
        assert!("NoUnderscore".parse::<PackageFamilyName>().is_err());
        assert!("ab_8wekyb3d8bbwe".parse::<PackageFamilyName>().is_err());
        assert!("Name_8wekyb3d8bbwI".parse::<PackageFamilyName>().is_err());
    }

    #[test]
    fn names_refused() {
        assert!("CON".parse::<PackageName>().is_err());
        assert!("a_b_c".parse::<PackageName>().is_err());
        assert!("x".repeat(51).parse::<PackageName>().is_err());
        assert!("App".parse::<AppId>().is_ok());
        assert!("My.App2".parse::<AppId>().is_ok());
        assert!("2App".parse::<AppId>().is_err());
        assert!("App-1".parse::<AppId>().is_err());
        assert!("1.2.3".parse::<PackageVersion>().is_err());
        assert!("1.2.3.65536".parse::<PackageVersion>().is_err());
    }

    #[test]
    fn aumid_round_trip() {
        let a: AppUserModelId = "Contoso.App_8wekyb3d8bbwe!App".parse().unwrap();
        assert_eq!(a.to_string(), "Contoso.App_8wekyb3d8bbwe!App");
    }
}
