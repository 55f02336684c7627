//! Package identity, exact to Windows.
//!
//! * publisher id: the first 8 bytes of SHA-256 over the UTF-16LE publisher string (as written,
//!   no trimming, no case folding, no normalisation), read as a 64-bit big-endian number, padded
//!   with one zero bit to 65 bits and written as 13 base32 digits of the alphabet
//!   `0123456789abcdefghjkmnpqrstvwxyz` (Crockford's, lower case);
//! * package family name: `<Name>_<PublisherId>`;
//! * package full name: `<Name>_<Version>_<arch>_<ResourceId>_<PublisherId>` (an empty resource
//!   id gives `__`; a bundle's resource id is `~`);
//! * application user model id: `<PackageFamilyName>!<AppId>`.
//!
//! The validation rules come from the manifest schema reference (`Identity`, `Application`
//! elements, `ST_Publisher`, `ST_VersionQuad`, `ST_ApplicationId`) and from "An overview of
//! Package Identity in Windows apps" (learn.microsoft.com, `package-identity-overview`), which
//! defines the *package string* rules shared by `Name` and `ResourceId`. The known Windows values
//! these functions are checked against are in `tests/identity_known_answers.rs`.
//!
//! Case: `Publisher` is case-sensitive; `Name`, `ResourceId`, `PublisherId`, family and full
//! names preserve case but Windows compares them ordinal-ignore-case (see the `eq_ignore_case`
//! methods).
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

/// Device names Windows reserves. A package string (`Name`, `ResourceId`) may not equal one
/// of them nor begin with one followed by `.`; no dot-separated field of an application id may
/// be one. Compared case-insensitively.
const RESERVED_NAMES: &[&str] = &[
    "CON", "PRN", "AUX", "NUL", "COM1", "COM2", "COM3", "COM4", "COM5", "COM6", "COM7", "COM8",
    "COM9", "LPT1", "LPT2", "LPT3", "LPT4", "LPT5", "LPT6", "LPT7", "LPT8", "LPT9",
];

fn is_reserved(s: &str) -> bool {
    RESERVED_NAMES.iter().any(|r| r.eq_ignore_ascii_case(s))
}

/// The *package string* rules of `Identity@Name` and `Identity@ResourceId`
/// (learn.microsoft.com `package-identity-overview`, "What is a 'Package String'?", and the same
/// checks in Microsoft's MSIX SDK, `microsoft/msix-packaging` `AppxPackageInfo.cpp`):
/// `[-.A-Za-z0-9]` only, `min..=max` characters, and, compared case-insensitively, not equal to
/// `.`, `..` or a reserved device name, not beginning with `<reserved>.` or `xn--`, not ending
/// with `.`, not containing `.xn--`.
fn check_package_string(
    what: &'static str,
    s: &str,
    min: usize,
    max: usize,
) -> Result<(), IdentityError> {
    if let Some(c) = s.chars().find(|c| !(c.is_ascii_alphanumeric() || *c == '.' || *c == '-')) {
        return Err(IdentityError::new(
            what,
            s,
            format!("character {c:?} is not allowed (only A-Z, a-z, 0-9, '.' and '-')"),
        ));
    }
    if s.len() < min || s.len() > max {
        return Err(IdentityError::new(what, s, format!("must be {min} to {max} characters long")));
    }
    let lower = s.to_ascii_lowercase();
    if is_reserved(&lower) {
        return Err(IdentityError::new(what, s, "is a reserved device name"));
    }
    if let Some((first, _)) = lower.split_once('.')
        && is_reserved(first)
    {
        return Err(IdentityError::new(
            what,
            s,
            format!("must not begin with the reserved device name {first:?} and a '.'"),
        ));
    }
    if lower.starts_with("xn--") {
        return Err(IdentityError::new(what, s, "must not begin with \"xn--\""));
    }
    if lower.contains(".xn--") {
        return Err(IdentityError::new(what, s, "must not contain \".xn--\""));
    }
    if s.ends_with('.') {
        return Err(IdentityError::new(what, s, "must not end with '.'"));
    }
    Ok(())
}

/// A validated string newtype: the struct, `as_str`, `Display`, `Debug`, `AsRef<str>`,
/// `TryFrom<&str>` / `TryFrom<String>` through its `FromStr` (written by the caller, with
/// error type `$err`), and `From<Self> for String`.
macro_rules! string_newtype {
    ($(#[$m:meta])* $name:ident, $err:ty) => {
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
            type Error = $err;
            fn try_from(s: &str) -> Result<Self, $err> {
                s.parse()
            }
        }

        impl TryFrom<String> for $name {
            type Error = $err;
            fn try_from(s: String) -> Result<Self, $err> {
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

pub(crate) use string_newtype;

string_newtype!(
    /// `Identity@Name`: a package string of 3 to 50 characters (`[-.A-Za-z0-9]`, not a reserved
    /// device name nor `<reserved>.…`, not `xn--…`, no `.xn--`, no trailing `.`).
    PackageName, IdentityError
);

impl PackageName {
    /// Ordinal case-insensitive comparison, as Windows compares package strings.
    pub fn eq_ignore_case(&self, other: &PackageName) -> bool {
        self.0.eq_ignore_ascii_case(&other.0)
    }
}

impl FromStr for PackageName {
    type Err = IdentityError;
    fn from_str(s: &str) -> Result<Self, IdentityError> {
        check_package_string("package name", s, 3, 50)?;
        Ok(PackageName(s.to_owned()))
    }
}

/// The resource id Windows gives every bundle (`…_neutral_~_8wekyb3d8bbwe`).
pub const BUNDLE_RESOURCE_ID: &str = "~";

string_newtype!(
    /// `Identity@ResourceId`: a package string of 1 to 30 characters (same rules as
    /// [`PackageName`]). The empty resource id is represented by `Option::None` where it is
    /// optional. Parsing refuses `~`, which no manifest may declare; the bundle resource id is
    /// [`ResourceId::bundle`], and [`PackageFullName`] parses it.
    ResourceId, IdentityError
);

impl ResourceId {
    /// `~`, the resource id of every bundle.
    pub fn bundle() -> ResourceId {
        ResourceId(BUNDLE_RESOURCE_ID.to_owned())
    }

    /// True for the bundle resource id `~`.
    pub fn is_bundle(&self) -> bool {
        self.0 == BUNDLE_RESOURCE_ID
    }

    /// Ordinal case-insensitive comparison, as Windows compares package strings.
    pub fn eq_ignore_case(&self, other: &ResourceId) -> bool {
        self.0.eq_ignore_ascii_case(&other.0)
    }
}

impl FromStr for ResourceId {
    type Err = IdentityError;
    fn from_str(s: &str) -> Result<Self, IdentityError> {
        check_package_string("resource id", s, 1, 30)?;
        Ok(ResourceId(s.to_owned()))
    }
}

/// The relative-distinguished-name attribute types `ST_Publisher` accepts, besides dotted OIDs
/// (`OID.2.5.4.15`). This is the `ST_Publisher_2010_v2` list of `AppxManifestTypes.xsd`, as the
/// Windows 8.1 and later schema reference prints it.
const DN_ATTRIBUTE_TYPES: &[&str] = &[
    "CN",
    "L",
    "O",
    "OU",
    "E",
    "C",
    "S",
    "STREET",
    "T",
    "G",
    "I",
    "SN",
    "DC",
    "SERIALNUMBER",
    "Description",
    "PostalCode",
    "POBox",
    "Phone",
    "X21Address",
    "dnQualifier",
];

/// The characters an unquoted attribute value may not contain (`[^,+="<>#;]`).
const DN_UNQUOTED_FORBIDDEN: &[char] = &[',', '+', '=', '"', '<', '>', '#', ';'];

/// The most characters a publisher may have (`ST_Publisher` `maxLength`).
pub const PUBLISHER_MAX_LENGTH: usize = 8192;

/// The relative distinguished name that marks an unsigned package's publisher; it must be the
/// last one (learn.microsoft.com `package-identity-overview`, note on unsigned packages).
pub const UNSIGNED_PUBLISHER_MARKER: &str = "OID.2.25.311729368913984317654407730594956997722=1";

/// `OID\.(0|[1-9][0-9]*)(\.(0|[1-9][0-9]*))+`
fn is_oid_attribute_type(t: &str) -> bool {
    let Some(rest) = t.strip_prefix("OID.") else {
        return false;
    };
    let arcs: Vec<&str> = rest.split('.').collect();
    arcs.len() >= 2
        && arcs.iter().all(|a| {
            !a.is_empty()
                && a.bytes().all(|b| b.is_ascii_digit())
                && (*a == "0" || !a.starts_with('0'))
        })
}

/// Whether `s` matches the whole `ST_DistinguishedName` pattern
/// `RDN(, RDN)*` with `RDN = TYPE=(([^,+="<>#;])+|".*")`. XSD patterns are regular, so a value
/// in quotes may itself contain `", "`: every way of splitting the text is tried, walking the
/// possible starts of each relative distinguished name left to right.
fn matches_distinguished_name(s: &str) -> bool {
    let chars: Vec<char> = s.chars().collect();
    let n = chars.len();
    let mut rdn_starts = vec![false; n + 1];
    rdn_starts[0] = true;
    for start in 0..n {
        if !rdn_starts[start] {
            continue;
        }
        let Some(eq) = chars[start..].iter().position(|c| *c == '=').map(|p| p + start) else {
            continue;
        };
        let attribute_type: String = chars[start..eq].iter().collect();
        if !DN_ATTRIBUTE_TYPES.contains(&attribute_type.as_str())
            && !is_oid_attribute_type(&attribute_type)
        {
            continue;
        }
        let value = eq + 1;
        let mut ends = Vec::new();
        // Unquoted: one or more allowed characters. As none of them is ',', only the longest
        // run can be followed by ", " or the end.
        let run = chars[value..].iter().take_while(|c| !DN_UNQUOTED_FORBIDDEN.contains(c)).count();
        if run > 0 {
            ends.push(value + run);
        }
        // Quoted: '"', any characters but line breaks ('.' in XSD), '"'.
        if chars.get(value) == Some(&'"') {
            for (k, c) in chars.iter().enumerate().skip(value + 1) {
                if *c == '\n' || *c == '\r' {
                    break;
                }
                if *c == '"' {
                    ends.push(k + 1);
                }
            }
        }
        for end in ends {
            if end == n {
                return true;
            }
            if chars[end..].starts_with(&[',', ' ']) && end + 2 <= n {
                rdn_starts[end + 2] = true;
            }
        }
    }
    false
}

string_newtype!(
    /// `Identity@Publisher` (`ST_Publisher`): the subject distinguished name of the signing
    /// certificate, 1 to 8192 characters, no leading or trailing white space, no line breaks,
    /// matching the schema's distinguished-name pattern: relative distinguished names
    /// `TYPE=value` joined by `", "`, where `TYPE` is one of `CN L O OU E C S STREET T G I SN DC
    /// SERIALNUMBER Description PostalCode POBox Phone X21Address dnQualifier` or `OID.n.n…`, and
    /// the value is either a non-empty run without `, + = " < > # ;` or a quoted string.
    ///
    /// The publisher is case-sensitive and hashed exactly as written
    /// ([`Publisher::publisher_id`]). Windows also runs a semantic check against `CertNameToStr`'s
    /// X.500 rules; that check is not reproduced here.
    Publisher, IdentityError
);

impl Publisher {
    /// The 13-character publisher id of this publisher.
    pub fn publisher_id(&self) -> PublisherId {
        PublisherId::from_publisher(&self.0)
    }

    /// True when the publisher carries the unsigned-package marker as its last relative
    /// distinguished name ([`UNSIGNED_PUBLISHER_MARKER`]).
    pub fn is_unsigned(&self) -> bool {
        self.0 == UNSIGNED_PUBLISHER_MARKER
            || self.0.ends_with(&format!(", {UNSIGNED_PUBLISHER_MARKER}"))
    }
}

impl FromStr for Publisher {
    type Err = IdentityError;
    fn from_str(s: &str) -> Result<Self, IdentityError> {
        let what = "publisher";
        let len = s.chars().count();
        if len == 0 || len > PUBLISHER_MAX_LENGTH {
            return Err(IdentityError::new(
                what,
                s,
                format!("must be 1 to {PUBLISHER_MAX_LENGTH} characters long"),
            ));
        }
        // ST_NonEmptyString: `[^\s]|([^\s].*[^\s])`, where `\s` is space, tab, CR, LF and `.`
        // matches anything but CR and LF.
        let xsd_space = |c: char| matches!(c, ' ' | '\t' | '\n' | '\r');
        if s.starts_with(xsd_space) || s.ends_with(xsd_space) {
            return Err(IdentityError::new(what, s, "must not begin or end with white space"));
        }
        if s.contains(['\n', '\r']) {
            return Err(IdentityError::new(what, s, "must not contain a line break"));
        }
        if !matches_distinguished_name(s) {
            return Err(IdentityError::new(
                what,
                s,
                "must be a distinguished name: TYPE=value pairs joined by \", \", like \
                 CN=Contoso, O=Contoso Corporation, C=US",
            ));
        }
        Ok(Publisher(s.to_owned()))
    }
}

/// The base32 alphabet of publisher ids (Crockford's, lower case: no i, l, o, u).
const PUBLISHER_ID_ALPHABET: &[u8; 32] = b"0123456789abcdefghjkmnpqrstvwxyz";

string_newtype!(
    /// The 13-character publisher id (`8wekyb3d8bbwe`), derived from a publisher's
    /// distinguished name by [`PublisherId::from_publisher`].
    ///
    /// Parsing accepts the alphabet in either case (Windows compares publisher ids
    /// ordinal-ignore-case and keeps the case it was given); derived ids are always lower case.
    /// The last digit carries the four last bits of the hash and one zero pad bit, so it must
    /// be one of `02468acegjmprtwy`: no publisher can produce any other.
    PublisherId, IdentityError
);

impl PublisherId {
    /// Derives the publisher id from the publisher string exactly as written in the manifest
    /// (no trimming, no case folding, no Unicode normalisation; non-ASCII characters are hashed
    /// as their UTF-16LE code units, surrogate pairs included).
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

    /// Ordinal case-insensitive comparison, as Windows compares publisher ids.
    pub fn eq_ignore_case(&self, other: &PublisherId) -> bool {
        self.0.eq_ignore_ascii_case(&other.0)
    }
}

impl FromStr for PublisherId {
    type Err = IdentityError;
    fn from_str(s: &str) -> Result<Self, IdentityError> {
        if s.len() != 13 {
            return Err(IdentityError::new("publisher id", s, "must be exactly 13 characters"));
        }
        let digit = |b: u8| PUBLISHER_ID_ALPHABET.iter().position(|a| *a == b.to_ascii_lowercase());
        if let Some(c) = s.bytes().find(|b| digit(*b).is_none()) {
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
        if digit(s.as_bytes()[12]).unwrap_or(0) & 1 != 0 {
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
///
/// The text form is `ST_VersionQuad`: four decimal numbers without leading zeros (`0` itself
/// is fine) joined by dots. `0.x.y.z` is accepted: the schema reference's "Major cannot be 0"
/// is not enforced by Windows (`MSIXHero_0.7.1.0_neutral__zxq1da1qqbeze` is a real package).
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Debug)]
pub struct PackageVersion(pub [u16; 4]);

impl PackageVersion {
    /// The `PACKAGE_VERSION.Version` value: `Major << 48 | Minor << 32 | Build << 16 |
    /// Revision` (appmodel.h), which is how Windows APIs pass and compare versions.
    pub fn to_u64(self) -> u64 {
        let [a, b, c, d] = self.0.map(u64::from);
        a << 48 | b << 32 | c << 16 | d
    }

    /// The version of a `PACKAGE_VERSION.Version` value.
    pub fn from_u64(v: u64) -> PackageVersion {
        // Each shifted value is masked to 16 bits, so the casts cannot truncate anything else.
        let part = |shift: u32| ((v >> shift) & 0xffff) as u16;
        PackageVersion([part(48), part(32), part(16), part(0)])
    }
}

impl fmt::Display for PackageVersion {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let [a, b, c, d] = self.0;
        write!(f, "{a}.{b}.{c}.{d}")
    }
}

impl FromStr for PackageVersion {
    type Err = IdentityError;
    fn from_str(s: &str) -> Result<Self, IdentityError> {
        let rule =
            "must be four numbers 0-65535 without leading zeros, separated by dots, like 1.0.0.0";
        let parts: Vec<&str> = s.split('.').collect();
        if parts.len() != 4 {
            return Err(IdentityError::new("version", s, rule));
        }
        let mut v = [0u16; 4];
        for (slot, part) in v.iter_mut().zip(parts) {
            if part.is_empty()
                || !part.bytes().all(|b| b.is_ascii_digit())
                || (part.len() > 1 && part.starts_with('0'))
            {
                return Err(IdentityError::new("version", s, rule));
            }
            *slot = part.parse().map_err(|_| IdentityError::new("version", s, rule))?;
        }
        Ok(PackageVersion(v))
    }
}

/// `Identity@ProcessorArchitecture`. Written lower case in full names. The values are the ones
/// package identity allows (learn.microsoft.com `package-identity-overview`: neutral, x86, x64,
/// arm, arm64, x86a64); a manifest that omits the attribute means `neutral`.
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

    /// Builds the family name from a package name and its publisher's distinguished name,
    /// hashed as written (see [`PublisherId::from_publisher`]).
    pub fn from_publisher(name: &PackageName, publisher: &str) -> PackageFamilyName {
        PackageFamilyName::new(name, &PublisherId::from_publisher(publisher))
    }

    /// Builds the family name from a package name and a validated publisher.
    pub fn from_identity(name: &PackageName, publisher: &Publisher) -> PackageFamilyName {
        PackageFamilyName::new(name, &publisher.publisher_id())
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

/// A package full name `<Name>_<Version>_<arch>_<ResourceId>_<PublisherId>`. The resource id
/// is empty for most packages (`…_x64__8wekyb3d8bbwe`), `neutral` for many Windows system
/// packages, a qualifier such as `split.scale-100` for resource packages and `~` for bundles.
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

    /// True for a bundle's full name (resource id `~`).
    pub fn is_bundle(&self) -> bool {
        self.resource_id.as_ref().is_some_and(ResourceId::is_bundle)
    }

    /// Case-insensitive comparison (Windows compares full names ordinal-ignore-case).
    pub fn eq_ignore_case(&self, other: &PackageFullName) -> bool {
        self.to_string().eq_ignore_ascii_case(&other.to_string())
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
            } else if parts[3] == BUNDLE_RESOURCE_ID {
                Some(ResourceId::bundle())
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
    /// `Application@Id` (`ST_ApplicationId`): 1 to 64 ASCII characters matching
    /// `([A-Za-z][A-Za-z0-9]*)(\.[A-Za-z][A-Za-z0-9]*)*`, that is alphanumeric fields separated
    /// by dots, each beginning with a letter; no field may be a reserved device name
    /// (`CON`, `PRN`, `AUX`, `NUL`, `COM1`-`COM9`, `LPT1`-`LPT9`, any case).
    AppId, IdentityError
);

impl AppId {
    /// Case-insensitive comparison.
    pub fn eq_ignore_case(&self, other: &AppId) -> bool {
        self.0.eq_ignore_ascii_case(&other.0)
    }
}

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
            if is_reserved(seg) {
                return Err(IdentityError::new(
                    "application id",
                    s,
                    format!("the part {seg:?} is a reserved device name"),
                ));
            }
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

/// The forms a user may name a package in, for [`PackageReference`]'s errors.
pub const PACKAGE_REFERENCE_FORMS: &str = "a package family name Name_PublisherId \
    (Contoso.Hello_cvnpggrrsm18p), a package full name \
    Name_Version_Architecture_ResourceId_PublisherId \
    (Contoso.Hello_1.0.0.0_neutral__cvnpggrrsm18p), or either followed by !AppId for one \
    application (Contoso.Hello_cvnpggrrsm18p!App)";

/// A package as a user names it on a command line: its family name or its full name.
#[derive(Clone, PartialEq, Eq, Hash, Debug)]
pub enum PackageForm {
    /// `Name_PublisherId`: whatever version is installed.
    Family(PackageFamilyName),
    /// `Name_Version_Architecture_ResourceId_PublisherId`: exactly that package.
    Full(PackageFullName),
}

/// A package, or one application of it, as a user names it: [`PACKAGE_REFERENCE_FORMS`].
#[derive(Clone, PartialEq, Eq, Hash, Debug)]
pub struct PackageReference {
    /// The package.
    pub package: PackageForm,
    /// The application after `!`, when one was named.
    pub app_id: Option<AppId>,
}

impl PackageReference {
    /// The family name, whichever form was given.
    pub fn family_name(&self) -> PackageFamilyName {
        match &self.package {
            PackageForm::Family(f) => f.clone(),
            PackageForm::Full(f) => f.family_name(),
        }
    }

    /// The full name, when that form was given.
    pub fn full_name(&self) -> Option<&PackageFullName> {
        match &self.package {
            PackageForm::Full(f) => Some(f),
            PackageForm::Family(_) => None,
        }
    }
}

impl fmt::Display for PackageReference {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.package {
            PackageForm::Family(n) => write!(f, "{n}")?,
            PackageForm::Full(n) => write!(f, "{n}")?,
        }
        match &self.app_id {
            Some(a) => write!(f, "!{a}"),
            None => Ok(()),
        }
    }
}

impl FromStr for PackageReference {
    type Err = IdentityError;
    /// Which form is meant follows from the underscores: one for a family name, four for a
    /// full name (names, versions, architectures and publisher ids have none). The error says
    /// which form the text was read as, what is wrong with it, and which forms are accepted.
    fn from_str(s: &str) -> Result<Self, IdentityError> {
        let err = |rule: String| {
            IdentityError::new("package", s, format!("{rule}; expected {PACKAGE_REFERENCE_FORMS}"))
        };
        let (package, app) = match s.split_once('!') {
            Some((p, a)) => (p, Some(a)),
            None => (s, None),
        };
        let app_id = app
            .map(|a| a.parse::<AppId>())
            .transpose()
            .map_err(|e| err(format!("the application id after '!': {}", e.rule)))?;
        let package = match package.matches('_').count() {
            1 => PackageForm::Family(
                package
                    .parse()
                    .map_err(|e: IdentityError| err(format!("as a family name: {}", e.rule)))?,
            ),
            4 => PackageForm::Full(
                package
                    .parse()
                    .map_err(|e: IdentityError| err(format!("as a full name: {}", e.rule)))?,
            ),
            0 => return Err(err("no '_': a package name alone does not name a package".into())),
            n => {
                return Err(err(format!("{n} underscores: a family name has 1, a full name 4")));
            }
        };
        Ok(PackageReference { package, app_id })
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
    fn package_string_rules() {
        // learn.microsoft.com package-identity-overview, "What is a 'Package String'?"
        for bad in [
            "con",
            "Nul",
            "lpt9",
            "con.app",
            "COM1.x",
            "xn--abc",
            "XN--abc",
            "a.xn--b",
            "abc.",
            "..",
            "a b",
            "a_b",
            "ab\u{e9}c",
        ] {
            assert!(bad.parse::<PackageName>().is_err(), "{bad:?} should be refused");
        }
        for good in ["Contoso.App", "a-b", "console", "com10", "conx.y", "axn--b", "1.2-3"] {
            assert!(good.parse::<PackageName>().is_ok(), "{good:?} should be accepted");
        }
        assert!("ab".parse::<PackageName>().is_err());
        assert!("x".repeat(50).parse::<PackageName>().is_ok());
        assert!("x".repeat(30).parse::<ResourceId>().is_ok());
        assert!("x".repeat(31).parse::<ResourceId>().is_err());
        assert!("".parse::<ResourceId>().is_err());
        assert!("~".parse::<ResourceId>().is_err());
        assert!("split.scale-100".parse::<ResourceId>().is_ok());
    }

    #[test]
    fn publisher_rules() {
        for good in [
            MS,
            "CN=Contoso",
            "CN=AppModelSamples, OID.2.25.311729368913984317654407730594956997722=1",
            "CN=\"Contoso, Inc.\", O=Contoso",
            "E=marcin@otorowski.com, CN=Marcin Otorowski, O=Marcin Otorowski, S=zachodniopomorskie, C=PL",
            "CN=Hydraulic Software AG, L=Z\u{fc}rich, SERIALNUMBER=CHE-312.597.948, OID.2.5.4.15=Private Organization",
            "Description=x, PostalCode=8001, POBox=1, Phone=555, X21Address=1, dnQualifier=q",
        ] {
            let p: Publisher = good.parse().unwrap_or_else(|e| panic!("{good:?}: {e}"));
            assert_eq!(p.publisher_id(), PublisherId::from_publisher(good));
        }
        for bad in [
            "",
            "Contoso",
            "cn=Contoso",
            "CN=",
            "CN=a,O=b",
            "CN=a,  O=b",
            "CN=a, ",
            " CN=a",
            "CN=a ",
            "CN=a\nb",
            "CN=a+b",
            "CN=a#b",
            "CN=a;b",
            "CN=a<b",
            "X=a",
            "OID.1=a",
            "OID.01.2=a",
            "CN=\"a",
        ] {
            assert!(bad.parse::<Publisher>().is_err(), "{bad:?} should be refused");
        }
        assert!(format!("CN={}", "a".repeat(8189)).parse::<Publisher>().is_ok());
        assert!(format!("CN={}", "a".repeat(8190)).parse::<Publisher>().is_err());
        let unsigned: Publisher =
            "CN=AppModelSamples, OID.2.25.311729368913984317654407730594956997722=1"
                .parse()
                .unwrap();
        assert!(unsigned.is_unsigned());
        assert!(!MS.parse::<Publisher>().unwrap().is_unsigned());
    }

    #[test]
    fn publisher_id_case() {
        let upper: PublisherId = "8WEKYB3D8BBWE".parse().unwrap();
        let lower = PublisherId::from_publisher(MS);
        assert_ne!(upper, lower);
        assert!(upper.eq_ignore_case(&lower));
        // The last digit must carry a zero pad bit.
        assert!("8wekyb3d8bbwf".parse::<PublisherId>().is_err());
        assert!("8wekyb3d8bbwl".parse::<PublisherId>().is_err());
    }

    #[test]
    fn versions() {
        assert_eq!("0.7.1.0".parse::<PackageVersion>().unwrap(), PackageVersion([0, 7, 1, 0]));
        assert!("01.0.0.0".parse::<PackageVersion>().is_err());
        assert!("1.0.0.00".parse::<PackageVersion>().is_err());
        assert!("1.0.0.+1".parse::<PackageVersion>().is_err());
        let v: PackageVersion = "65535.1.2.3".parse().unwrap();
        assert_eq!(PackageVersion::from_u64(v.to_u64()), v);
    }

    #[test]
    fn app_id_reserved_fields() {
        assert!("App.CON".parse::<AppId>().is_err());
        assert!("lpt1".parse::<AppId>().is_err());
        assert!("App.Console".parse::<AppId>().is_ok());
        assert!("App.COM10".parse::<AppId>().is_ok());
        assert!("A.".parse::<AppId>().is_err());
        assert!("a".repeat(64).parse::<AppId>().is_ok());
        assert!("a".repeat(65).parse::<AppId>().is_err());
    }

    #[test]
    fn aumid_round_trip() {
        let a: AppUserModelId = "Contoso.App_8wekyb3d8bbwe!App".parse().unwrap();
        assert_eq!(a.to_string(), "Contoso.App_8wekyb3d8bbwe!App");
    }
}

#[cfg(test)]
mod reference_tests {
    use super::*;

    #[test]
    fn every_form_of_a_package_reference() {
        let family: PackageReference = "Contoso.Hello_cvnpggrrsm18p".parse().unwrap();
        assert!(matches!(family.package, PackageForm::Family(_)));
        assert_eq!(family.app_id, None);
        let full: PackageReference =
            "Contoso.Hello_1.0.0.0_neutral__cvnpggrrsm18p".parse().unwrap();
        assert_eq!(full.family_name(), family.family_name());
        assert_eq!(full.full_name().unwrap().version, PackageVersion([1, 0, 0, 0]));
        for app in
            ["Contoso.Hello_cvnpggrrsm18p!App", "Contoso.Hello_1.0.0.0_neutral__cvnpggrrsm18p!App"]
        {
            let r: PackageReference = app.parse().unwrap();
            assert_eq!(r.app_id.as_ref().map(AppId::as_str), Some("App"));
            assert_eq!(r.to_string(), app);
        }
    }

    #[test]
    fn a_refused_reference_says_what_was_expected() {
        for (text, says) in [
            ("Contoso.Hello", "no '_'"),
            ("Contoso.Hello_1.0_neutral__cvnpggrrsm18p", "as a full name: version"),
            ("Contoso Hello_cvnpggrrsm18p", "as a family name: name part"),
            ("a_b_c", "2 underscores"),
            ("Contoso.Hello_cvnpggrrsm18p!", "the application id after '!'"),
        ] {
            let e = text.parse::<PackageReference>().unwrap_err().to_string();
            assert!(e.contains(says), "{text}: {e}");
            assert!(e.contains("expected a package family name Name_PublisherId"), "{e}");
        }
    }
}
