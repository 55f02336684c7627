//! Validated names and paths of the manifest: each type parses once and cannot hold an invalid
//! value afterwards. The rule texts here are the ones error messages quote.

use std::fmt;
use std::str::FromStr;

use crate::identity::PublisherId;

use super::reader::RuleText;

/// Why a name or path was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid {what} {value:?}: {rule}")]
pub struct NameError {
    /// What was being parsed (`app service name`, `package path`, …).
    pub what: &'static str,
    /// The text that was refused.
    pub value: String,
    /// The rule it broke.
    pub rule: String,
}

impl NameError {
    fn new(what: &'static str, value: &str, rule: impl Into<String>) -> Self {
        NameError { what, value: value.to_owned(), rule: rule.into() }
    }
}

impl RuleText for NameError {
    fn rule_text(&self) -> String {
        self.rule.clone()
    }
}

macro_rules! string_newtype {
    ($(#[$m:meta])* $name:ident, $what:literal, $check:path) => {
        crate::identity::string_newtype!($(#[$m])* $name, NameError);

        impl FromStr for $name {
            type Err = NameError;
            fn from_str(s: &str) -> Result<Self, NameError> {
                $check(s).map_err(|rule| NameError::new($what, s, rule))?;
                Ok($name(s.to_owned()))
            }
        }
    };
}

fn char_len(s: &str) -> usize {
    s.chars().count()
}

// ---------------------------------------------------------------------------------------------
// Package-relative paths

/// Rule: length of a package path.
pub const PACKAGE_PATH_LENGTH_RULE: &str = "must be 1 to 256 characters";
/// Rule: package paths are relative.
pub const PACKAGE_PATH_RELATIVE_RULE: &str =
    "must be relative to the package root (no leading '/')";
/// Rule: package paths use `/`.
pub const PACKAGE_PATH_SEPARATOR_RULE: &str = "must use '/' as the separator (no '\\')";
/// Rule: characters refused in package paths.
pub const PACKAGE_PATH_CHARS_RULE: &str = "must not contain < > : \" | ? * or control characters";
/// Rule: components of package paths.
pub const PACKAGE_PATH_COMPONENT_RULE: &str =
    "must not have empty, '.' or '..' components ('//', a trailing '/', './', '../')";

fn check_package_path(s: &str) -> Result<(), &'static str> {
    let len = char_len(s);
    if len == 0 || len > 256 {
        return Err(PACKAGE_PATH_LENGTH_RULE);
    }
    if s.starts_with('/') {
        return Err(PACKAGE_PATH_RELATIVE_RULE);
    }
    if s.contains('\\') {
        return Err(PACKAGE_PATH_SEPARATOR_RULE);
    }
    if s.chars().any(|c| "<>:\"|?*".contains(c) || c.is_control()) {
        return Err(PACKAGE_PATH_CHARS_RULE);
    }
    if s.split('/').any(|c| c.is_empty() || c == "." || c == "..") {
        return Err(PACKAGE_PATH_COMPONENT_RULE);
    }
    Ok(())
}

string_newtype!(
    /// A path to a file inside the package, relative to the package root, `/`-separated:
    /// 1 to 256 characters, no leading `/`, no empty, `.` or `..` components, none of
    /// `< > : " | ? *` `\` or control characters. It can therefore never name anything outside
    /// the package folder by itself ([`load`](super::load) also refuses symbolic links that
    /// lead outside).
    ///
    /// Windows additionally requires executables to end in `.exe`; Linux executables have no
    /// such suffix, so appipc does not.
    PackagePath,
    "package path",
    check_package_path
);

impl PackagePath {
    /// The `/`-separated components.
    pub fn components(&self) -> impl Iterator<Item = &str> {
        self.0.split('/')
    }

    /// The path below `package_root`.
    pub fn under(&self, package_root: &std::path::Path) -> std::path::PathBuf {
        let mut p = package_root.to_path_buf();
        p.extend(self.components());
        p
    }
}

// ---------------------------------------------------------------------------------------------
// Extension names

/// Rule of [`AppServiceName`].
pub const APP_SERVICE_NAME_RULE: &str =
    "must be 2 to 39 characters: letters, digits, '.', '-', not starting with '.'";

fn check_app_service_name(s: &str) -> Result<(), &'static str> {
    let ok = (2..=39).contains(&s.len())
        && s.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'.' || b == b'-')
        && !s.starts_with('.');
    if ok { Ok(()) } else { Err(APP_SERVICE_NAME_RULE) }
}

string_newtype!(
    /// `uap3:AppService@Name`: 2 to 39 characters of ASCII letters, digits, `.` and `-`, not
    /// starting with `.` (reverse-domain style is recommended: `com.contoso.inventory`).
    /// Unique (case-insensitively) within a package.
    AppServiceName,
    "app service name",
    check_app_service_name
);

/// Rule of [`ProtocolName`].
pub const PROTOCOL_NAME_RULE: &str =
    "must be 2 to 39 characters: lower-case letters, digits, '.', '+', '-', not starting with '.'";

/// URI schemes no package may register (Windows ignores such a registration, "Reserved file
/// and URI scheme names"; appipc refuses the manifest so that the author hears of it): the
/// desktop's own (`http`, `https`, `file`, `mailto`, …) and every `ms-` scheme.
pub const RESERVED_SCHEMES: &[&str] = &[
    "http",
    "https",
    "file",
    "ftp",
    "mailto",
    "tel",
    "sms",
    "callto",
    "javascript",
    "data",
    "about",
    "res",
    "shell",
    "appipc",
    "ms",
];

/// Rule of reserved schemes, for the error.
pub const RESERVED_SCHEME_RULE: &str = "is a reserved URI scheme (http, https, file, ftp, \
     mailto, tel, sms, callto, javascript, data, about, res, shell, appipc and every ms-*): \
     Windows ignores such a registration and appipc refuses it; choose a scheme of your own";

/// Whether a scheme is reserved ([`RESERVED_SCHEMES`], or starts with `ms-`).
pub fn is_reserved_scheme(scheme: &str) -> bool {
    let s = scheme.to_ascii_lowercase();
    s.starts_with("ms-") || RESERVED_SCHEMES.contains(&s.as_str())
}

fn check_protocol_name(s: &str) -> Result<(), &'static str> {
    let ok = (2..=39).contains(&s.len())
        && s.bytes().all(|b| {
            b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'.' || b == b'+' || b == b'-'
        })
        && !s.starts_with('.');
    if !ok {
        return Err(PROTOCOL_NAME_RULE);
    }
    if is_reserved_scheme(s) {
        return Err(RESERVED_SCHEME_RULE);
    }
    Ok(())
}

string_newtype!(
    /// `uap:Protocol@Name`, a URI scheme: 2 to 39 characters of lower-case ASCII letters,
    /// digits, `.`, `+` and `-`, not starting with `.`. Unique within a package.
    ProtocolName,
    "protocol name",
    check_protocol_name
);

/// Rule of custom capability names.
pub const CUSTOM_CAPABILITY_RULE: &str = "must be <company>.<name>_<publisher id>, like \
     Contoso.sensorAccess_8wekyb3d8bbwe: at most 255 characters; before the last '_' \
     '.'-separated parts of letters, digits and '-' (at least two parts)";

fn check_custom_capability(s: &str) -> Result<(), String> {
    let Some((prefix, id)) = s.rsplit_once('_') else {
        return Err(CUSTOM_CAPABILITY_RULE.to_owned());
    };
    let parts_ok = prefix.split('.').count() >= 2
        && prefix
            .split('.')
            .all(|p| !p.is_empty() && p.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-'));
    if s.len() > 255 || !parts_ok {
        return Err(CUSTOM_CAPABILITY_RULE.to_owned());
    }
    id.parse::<PublisherId>().map_err(|e| format!("publisher id part: {}", e.rule))?;
    Ok(())
}

string_newtype!(
    /// `uap4:CustomCapability@Name`: `<company>.<name>_<publisher id>` where the publisher id
    /// is the 13-character id of the capability's *owner* (who signs the SCCD), for example
    /// `Microsoft.classicAppCompat_8wekyb3d8bbwe`.
    CustomCapabilityName,
    "custom capability name",
    check_custom_capability
);

impl CustomCapabilityName {
    /// The publisher id of the capability's owner (the part after the last `_`).
    pub fn owner_publisher_id(&self) -> PublisherId {
        let id = self.0.rsplit_once('_').map_or("", |(_, id)| id);
        id.parse().unwrap_or_else(|_| unreachable!("validated at construction"))
    }
}

// ---------------------------------------------------------------------------------------------
// GUIDs

/// Rule of [`Guid`].
pub const GUID_RULE: &str =
    "must be a GUID written xxxxxxxx-xxxx-xxxx-xxxx-xxxxxxxxxxxx (hexadecimal digits, no braces)";

/// A GUID (CLSID, IID, type library id), written in the manifest as
/// `xxxxxxxx-xxxx-xxxx-xxxx-xxxxxxxxxxxx` (either case, no braces). Compared by value, so case
/// does not matter; displayed in lower case.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Guid(u128);

impl Guid {
    /// The GUID as one number, most significant digit first as written.
    pub fn as_u128(self) -> u128 {
        self.0
    }

    /// Builds a GUID from the number [`Guid::as_u128`] returns.
    pub fn from_u128(v: u128) -> Guid {
        Guid(v)
    }

    /// The 16 bytes in Windows' in-memory `GUID` layout (`Data1..Data3` little-endian).
    pub fn to_bytes_le(self) -> [u8; 16] {
        let be = self.0.to_be_bytes();
        let mut out = be;
        out[0..4].reverse();
        out[4..6].reverse();
        out[6..8].reverse();
        out
    }
}

impl FromStr for Guid {
    type Err = NameError;
    fn from_str(s: &str) -> Result<Self, NameError> {
        let err = || NameError::new("GUID", s, GUID_RULE);
        let groups: Vec<&str> = s.split('-').collect();
        let lens = [8, 4, 4, 4, 12];
        if groups.len() != 5
            || groups
                .iter()
                .zip(lens)
                .any(|(g, n)| g.len() != n || !g.bytes().all(|b| b.is_ascii_hexdigit()))
        {
            return Err(err());
        }
        u128::from_str_radix(&groups.concat(), 16).map(Guid).map_err(|_| err())
    }
}

impl fmt::Display for Guid {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let h = format!("{:032x}", self.0);
        write!(f, "{}-{}-{}-{}-{}", &h[0..8], &h[8..12], &h[12..16], &h[16..20], &h[20..32])
    }
}

impl fmt::Debug for Guid {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Guid({self})")
    }
}

impl TryFrom<&str> for Guid {
    type Error = NameError;
    fn try_from(s: &str) -> Result<Self, NameError> {
        s.parse()
    }
}

// ---------------------------------------------------------------------------------------------
// Plain-text rules (checked, kept as `String`)

/// Rule of publisher cache folder names.
pub const FOLDER_NAME_RULE: &str = "must be 1 to 256 characters forming a single path \
     component: none of < > : \" \\ / | ? * or control characters, and not '.' or '..'";

/// Checks a publisher cache folder name (`Folder@Name`): 1 to 256 characters, a single path
/// component (none of `< > : " \ / | ? *`, no control characters), and not `.` or `..`.
/// The broker uses the same check for names passed to `GetPublisherCacheFolder`.
pub fn check_publisher_cache_folder_name(s: &str) -> Result<(), NameError> {
    let len = char_len(s);
    let ok = (1..=256).contains(&len)
        && !s.chars().any(|c| "<>:\"\\/|?*".contains(c) || c.is_control())
        && s != "."
        && s != "..";
    if ok {
        Ok(())
    } else {
        Err(NameError::new("publisher cache folder name", s, FOLDER_NAME_RULE))
    }
}

/// What two publisher cache folder names are compared by: each character upper-cased one to one
/// (a character whose upper case is longer, such as `ß`, stays), as NTFS compares names with
/// its upcase table. `Shared` and `shared` have one key, so one folder: on Windows they are one
/// folder of the publisher's cache, whichever package names it.
pub fn publisher_cache_folder_key(name: &str) -> String {
    name.chars()
        .map(|c| {
            let mut up = c.to_uppercase();
            match (up.next(), up.next()) {
                (Some(u), None) => u,
                _ => c,
            }
        })
        .collect()
}

/// Rule of full-trust parameter group ids and parameters.
pub const PARAMETER_RULE: &str =
    "must be 1 to 32767 characters without leading or trailing whitespace";

pub(super) fn check_parameter_text(s: &str) -> Result<(), &'static str> {
    let len = char_len(s);
    let ok = (1..=32767).contains(&len) && s.trim() == s && !s.contains('\0');
    if ok { Ok(()) } else { Err(PARAMETER_RULE) }
}

/// A display text rule: `1..=max` characters, no control characters, no leading or trailing
/// whitespace.
pub(super) fn check_display_text(s: &str, max: usize) -> Result<(), String> {
    let len = char_len(s);
    if len == 0 || len > max || s.trim() != s || s.chars().any(char::is_control) {
        return Err(format!(
            "must be 1 to {max} characters without control characters or leading or trailing \
             whitespace"
        ));
    }
    Ok(())
}

/// Rule of command-line arguments.
pub const ARGUMENT_RULE: &str = "must not contain the NUL character";

/// Rule of `ServerName`.
pub const SERVER_NAME_RULE: &str =
    "must be 1 to 255 ASCII letters or digits, starting with a letter";

pub(super) fn check_server_name(s: &str) -> Result<(), &'static str> {
    let ok = (1..=255).contains(&s.len())
        && s.bytes().all(|b| b.is_ascii_alphanumeric())
        && s.starts_with(|c: char| c.is_ascii_alphabetic());
    if ok { Ok(()) } else { Err(SERVER_NAME_RULE) }
}

/// Rule of COM ProgIDs.
pub const PROG_ID_RULE: &str = "must be 1 to 255 characters: letters and digits in \
     '.'-separated parts, like Foo.Bar or Foo.Bar.1";

pub(super) fn check_prog_id(s: &str) -> Result<(), &'static str> {
    let ok = (1..=255).contains(&s.len())
        && s.split('.').all(|p| !p.is_empty() && p.bytes().all(|b| b.is_ascii_alphanumeric()));
    if ok { Ok(()) } else { Err(PROG_ID_RULE) }
}

/// Rule of type library version numbers.
pub const TYPE_LIB_VERSION_RULE: &str =
    "must be 1 to 3 letters or digits, '.', then 1 to 3 letters or digits, like 1.0";

pub(super) fn check_type_lib_version(s: &str) -> Result<(), &'static str> {
    let ok = s.split_once('.').is_some_and(|(a, b)| {
        [a, b]
            .iter()
            .all(|p| (1..=3).contains(&p.len()) && p.bytes().all(|c| c.is_ascii_alphanumeric()))
    });
    if ok { Ok(()) } else { Err(TYPE_LIB_VERSION_RULE) }
}

/// Rule of SDDL strings (only their outline is checked here).
pub const SDDL_RULE: &str = "must be an SDDL security descriptor string starting with O:, G:, \
     D: or S: (1 to 32767 characters, no leading or trailing whitespace)";

pub(super) fn check_sddl(s: &str) -> Result<(), &'static str> {
    let ok = (1..=32767).contains(&char_len(s))
        && s.trim() == s
        && ["O:", "G:", "D:", "S:"].iter().any(|p| s.starts_with(p))
        && !s.chars().any(char::is_control);
    if ok { Ok(()) } else { Err(SDDL_RULE) }
}

/// Rule of registry keys excluded from virtualization.
pub const EXCLUDED_KEY_RULE: &str = "must be a key under HKEY_CURRENT_USER (or HKCU), like \
     HKEY_CURRENT_USER\\Software\\Contoso\\Shared: '\\'-separated non-empty names of at most 255 \
     characters";

pub(super) fn check_excluded_key(s: &str) -> Result<(), &'static str> {
    let upper = s.to_ascii_uppercase();
    let rest = if let Some(r) = upper.strip_prefix("HKEY_CURRENT_USER") {
        r
    } else if let Some(r) = upper.strip_prefix("HKCU") {
        r
    } else {
        return Err(EXCLUDED_KEY_RULE);
    };
    if rest.is_empty() {
        return Ok(());
    }
    let Some(path) = rest.strip_prefix('\\') else {
        return Err(EXCLUDED_KEY_RULE);
    };
    let ok = path
        .split('\\')
        .all(|n| (1..=255).contains(&char_len(n)) && !n.chars().any(char::is_control));
    if ok { Ok(()) } else { Err(EXCLUDED_KEY_RULE) }
}

/// The known folders under AppData that `ExcludedDirectory` may start from.
pub const KNOWN_APPDATA_FOLDERS: &[&str] = &[
    "AccountPictures",
    "AdminTools",
    "AppDataDesktop",
    "AppDataDocuments",
    "AppDataFavorites",
    "AppDataProgramData",
    "ApplicationShortcuts",
    "CDBurning",
    "Cookies",
    "GameTasks",
    "History",
    "ImplicitAppShortcuts",
    "InternetCache",
    "Libraries",
    "LocalAppData",
    "LocalAppDataLow",
    "NetHood",
    "OriginalImages",
    "PrintHood",
    "Programs",
    "QuickLaunch",
    "Recent",
    "Ringtones",
    "RoamingAppData",
    "RoamedTileImages",
    "RoamingTiles",
    "SearchHistory",
    "SearchTemplates",
    "SendTo",
    "SidebarParts",
    "StartMenu",
    "Startup",
    "Templates",
    "UserPinned",
    "UserProgramFiles",
    "UserProgramFilesCommon",
];

/// Rule of directories excluded from virtualization.
pub const EXCLUDED_DIRECTORY_RULE: &str = "must be $(KnownFolder:<known folder under AppData>) \
     optionally followed by a relative path, like $(KnownFolder:LocalAppData)\\Contoso\\Shared \
     ('\\' or '/' separated; no empty, '.' or '..' parts; none of < > : \" | ? *)";

pub(super) fn check_excluded_directory(s: &str) -> Result<(), &'static str> {
    const PREFIX: &str = "$(knownfolder:";
    let lower = s.to_ascii_lowercase();
    let Some(rest) = lower.strip_prefix(PREFIX) else {
        return Err(EXCLUDED_DIRECTORY_RULE);
    };
    let Some((folder, path)) = rest.split_once(')') else {
        return Err(EXCLUDED_DIRECTORY_RULE);
    };
    if !KNOWN_APPDATA_FOLDERS.iter().any(|k| k.eq_ignore_ascii_case(folder)) {
        return Err(EXCLUDED_DIRECTORY_RULE);
    }
    if path.is_empty() {
        return Ok(());
    }
    let Some(path) = path.strip_prefix(['\\', '/']) else {
        return Err(EXCLUDED_DIRECTORY_RULE);
    };
    let ok = path.split(['\\', '/']).all(|p| {
        !p.is_empty()
            && p != "."
            && p != ".."
            && !p.chars().any(|c| "<>:\"|?*".contains(c) || c.is_control())
    });
    if ok { Ok(()) } else { Err(EXCLUDED_DIRECTORY_RULE) }
}

// ---------------------------------------------------------------------------------------------
// Publisher distinguished name

/// The value of the first `CN=` of a publisher already validated by
/// [`Publisher`](crate::identity::Publisher), without quotes; `None` if it has no `CN` (or a
/// quoted value this simple reading cannot split).
pub(super) fn common_name(dn: &str) -> Option<String> {
    let mut rest = dn;
    loop {
        let (key, after) = rest.split_once('=')?;
        let (value, after) = if let Some(q) = after.strip_prefix('"') {
            // A quoted value runs to a closing quote that ends the text or precedes ", ".
            let close = q
                .match_indices('"')
                .map(|(i, _)| i)
                .find(|&i| q[i + 1..].is_empty() || q[i + 1..].starts_with(", "))?;
            (&q[..close], &q[close + 1..])
        } else {
            let end = after.find(',').unwrap_or(after.len());
            (&after[..end], &after[end..])
        };
        if key == "CN" {
            return Some(value.to_owned());
        }
        rest = after.strip_prefix(", ")?;
    }
}

// ---------------------------------------------------------------------------------------------
// Sizes

/// Smallest accepted `max-message-size`.
pub const MIN_MESSAGE_SIZE: u64 = 1024;
/// Largest accepted `max-message-size`.
pub const MAX_MESSAGE_SIZE: u64 = 1 << 30;
/// Rule of `max-message-size`.
pub const MESSAGE_SIZE_RULE: &str = "must be a number of bytes (an integer, or a string with a \
     B, KiB, MiB or GiB suffix like \"64KiB\") from 1 KiB to 1 GiB";

/// Parses `"16MiB"`, `"64 KiB"`, `"1GiB"`, `"2048B"` or `"2048"` into bytes, within
/// 1 KiB ..= 1 GiB.
pub fn parse_message_size(s: &str) -> Result<u64, NameError> {
    let err = || NameError::new("message size", s, MESSAGE_SIZE_RULE);
    let t = s.trim();
    let split = t.find(|c: char| !c.is_ascii_digit()).unwrap_or(t.len());
    let (digits, unit) = t.split_at(split);
    let mult: u64 = match unit.trim_start() {
        "" | "B" => 1,
        "KiB" => 1 << 10,
        "MiB" => 1 << 20,
        "GiB" => 1 << 30,
        _ => return Err(err()),
    };
    let n: u64 = digits.parse().map_err(|_| err())?;
    let bytes = n.checked_mul(mult).ok_or_else(err)?;
    check_message_size(bytes).map_err(|_| err())
}

pub(super) fn check_message_size(bytes: u64) -> Result<u64, &'static str> {
    if (MIN_MESSAGE_SIZE..=MAX_MESSAGE_SIZE).contains(&bytes) {
        Ok(bytes)
    } else {
        Err(MESSAGE_SIZE_RULE)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn publisher_cache_folder_names_differing_in_case_are_one_folder() {
        let k = publisher_cache_folder_key;
        assert_eq!(k("Shared"), k("shared"));
        assert_eq!(k("SHARED"), k("sHaReD"));
        assert_eq!(k("Ärger"), k("ärger"), "beyond ASCII, one to one");
        assert_ne!(k("Shared"), k("Shared2"));
        assert_eq!(k("straße"), "STRAßE", "ß has no one-character upper case: kept");
    }

    #[test]
    fn common_names() {
        assert_eq!(common_name("CN=Contoso").as_deref(), Some("Contoso"));
        assert_eq!(common_name("O=x, CN=\"A, B\", C=US").as_deref(), Some("A, B"));
        assert_eq!(common_name("O=x, C=US"), None);
    }

    #[test]
    fn guid_round_trip() {
        let g: Guid = "0A1B2C3D-4E5F-6071-8293-A4B5C6D7E8F9".parse().unwrap();
        assert_eq!(g.to_string(), "0a1b2c3d-4e5f-6071-8293-a4b5c6d7e8f9");
        assert_eq!(
            g.to_bytes_le(),
            [
                0x3d, 0x2c, 0x1b, 0x0a, 0x5f, 0x4e, 0x71, 0x60, 0x82, 0x93, 0xa4, 0xb5, 0xc6, 0xd7,
                0xe8, 0xf9
            ]
        );
        assert!("{0A1B2C3D-4E5F-6071-8293-A4B5C6D7E8F9}".parse::<Guid>().is_err());
        assert!("0A1B2C3D4E5F60718293A4B5C6D7E8F9".parse::<Guid>().is_err());
        assert!("+A1B2C3D-4E5F-6071-8293-A4B5C6D7E8F9".parse::<Guid>().is_err());
    }

    #[test]
    fn message_sizes() {
        assert_eq!(parse_message_size("16MiB").unwrap(), 16 << 20);
        assert_eq!(parse_message_size("64 KiB").unwrap(), 64 << 10);
        assert_eq!(parse_message_size("1GiB").unwrap(), 1 << 30);
        assert_eq!(parse_message_size("2048").unwrap(), 2048);
        assert!(parse_message_size("2GiB").is_err());
        assert!(parse_message_size("1023B").is_err());
        assert!(parse_message_size("16MB").is_err());
        assert!(parse_message_size("-1KiB").is_err());
        assert!(parse_message_size("99999999999999999999GiB").is_err());
    }

    #[test]
    fn excluded_locations() {
        assert!(check_excluded_key("HKEY_CURRENT_USER\\Software\\Contoso").is_ok());
        assert!(check_excluded_key("hkcu\\Software").is_ok());
        assert!(check_excluded_key("HKEY_LOCAL_MACHINE\\Software").is_err());
        assert!(check_excluded_key("HKCU\\\\Software").is_err());
        assert!(check_excluded_key("HKCUX").is_err());
        assert!(check_excluded_directory("$(KnownFolder:LocalAppData)\\Contoso\\Shared").is_ok());
        assert!(check_excluded_directory("$(knownfolder:roamingappdata)/x").is_ok());
        assert!(check_excluded_directory("$(KnownFolder:Windows)\\x").is_err());
        assert!(check_excluded_directory("$(KnownFolder:LocalAppData)\\..\\x").is_err());
        assert!(check_excluded_directory("C:\\x").is_err());
    }
}
